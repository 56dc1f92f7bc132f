//! Accuracy of the cluster policy under load: a limit of 200 per second, three nodes
//! driven concurrently well above it. Every one-second window admits at most 200 and,
//! with no faults, at least 190; at most 200 still holds while a follower and then the
//! leader are killed.
//!
//! The driver does not know in which window a node admitted a request, only that it
//! happened between sending it and reading the answer. So a window's admissions are at
//! least the 200s whose whole round trip fell inside it (checked against the limit) and
//! at most the 200s whose round trip touched it (checked against the floor).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cluster_tests::http::admin_form;
use cluster_tests::process::view;
use cluster_tests::{form, serial, wait_for, Cluster};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const LIMIT: u64 = 200;
const FLOOR: u64 = 190;
const CONNECTIONS_PER_NODE: usize = 8;

#[derive(Debug, Clone, Copy)]
struct Sample {
    node: usize,
    start_us: u64,
    end_us: u64,
    /// 0: no answer (connection refused or reset).
    status: u16,
}

fn unix_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_micros() as u64
}

/// The proxy address of every node, by node number.
fn proxies(c: &Cluster) -> Vec<(usize, String)> {
    c.nodes.iter().map(|n| (n.index, n.proxy())).collect()
}

/// Closed-loop load on `path` of every proxy in `targets` for `duration`.
async fn drive(targets: Vec<(usize, String)>, path: &'static str, duration: Duration) -> Vec<Sample> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(64).build_http();
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for (node, proxy) in targets {
        for _ in 0..CONNECTIONS_PER_NODE {
            let client = client.clone();
            let url: hyper::Uri = format!("http://{proxy}{path}").parse().expect("url");
            tasks.push(tokio::spawn(async move {
                let mut samples = Vec::new();
                while Instant::now() < deadline {
                    let start_us = unix_us();
                    let answer = tokio::time::timeout(Duration::from_secs(5), async {
                        let resp = client.get(url.clone()).await.ok()?;
                        let status = resp.status().as_u16();
                        resp.into_body().collect().await.ok()?;
                        Some(status)
                    })
                    .await;
                    let status = answer.ok().flatten().unwrap_or(0);
                    samples.push(Sample { node, start_us, end_us: unix_us(), status });
                    if status == 0 {
                        // A dead node refuses at once; pace the retries instead of spinning.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                samples
            }));
        }
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("driver task"));
    }
    all
}

#[derive(Debug, Default, Clone, Copy)]
struct Window {
    /// 200s sent and answered within the window: surely admitted in it.
    inside: u64,
    /// 200s whose round trip overlapped the window: possibly admitted in it.
    touching: u64,
    rejected: u64,
    /// `touching` by node number, for the report.
    by_node: [u64; 4],
}

/// Per unix second, for the seconds the load covered completely.
fn windows(samples: &[Sample]) -> BTreeMap<u64, Window> {
    let first = samples.iter().map(|s| s.start_us).min().unwrap_or(0) / 1_000_000 + 1;
    let last = samples.iter().map(|s| s.end_us).max().unwrap_or(0) / 1_000_000;
    let mut out: BTreeMap<u64, Window> = (first..last).map(|w| (w, Window::default())).collect();
    for s in samples {
        let (from, to) = (s.start_us / 1_000_000, s.end_us / 1_000_000);
        for w in from..=to {
            let Some(window) = out.get_mut(&w) else { continue };
            match s.status {
                200 => {
                    window.touching += 1;
                    window.by_node[s.node.min(3)] += 1;
                    if from == to {
                        window.inside += 1;
                    }
                }
                429 => window.rejected += 1,
                _ => {}
            }
        }
    }
    out
}

/// Three nodes, a route limited to 200 per second cluster-wide; returns the cluster.
async fn limited_cluster(prefix: &str) -> Cluster {
    let mut c = Cluster::new(prefix, 3);
    let echo = format!("{prefix}.100:9000");
    c.start_echo(&echo, "echo-acc");
    form(&mut c, 3, 3, &[]).await;
    let a = c.node(1).admin();
    admin_form(&format!("http://{a}/services"), &format!("name=s&url=http://{echo}")).await;
    admin_form(&format!("http://{a}/services/s/routes"), "name=r&paths[]=/limited").await;
    admin_form(&format!("http://{a}/routes/r/plugins"), &format!("name=rate-limiting&config.second={LIMIT}&config.policy=cluster&config.limit_by=service")).await;
    for i in 1..=3 {
        let url = format!("http://{}/limited", c.node(i).proxy());
        wait_for("the limit on every node", Duration::from_secs(5), || async {
            let r = cluster_tests::http::get(&url).await.ok()?;
            r.headers.contains_key("x-ratelimit-limit-second").then_some(())
        })
        .await;
    }
    c
}

fn report(windows: &BTreeMap<u64, Window>) -> String {
    windows.iter().map(|(w, c)| format!("{w}: inside {} touching {} rejected {} by node {:?}\n", c.inside, c.touching, c.rejected, &c.by_node[1..])).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_per_second_across_three_nodes_admits_between_190_and_200_per_window() {
    let _serial = serial();
    let c = limited_cluster("127.0.26").await;
    let samples = drive(proxies(&c), "/limited", Duration::from_secs(10)).await;
    let per_window = windows(&samples);
    let table = report(&per_window);
    eprintln!("{table}");
    assert!(per_window.len() >= 8, "the load covered too few whole seconds:\n{table}");
    for (w, counts) in &per_window {
        assert!(counts.inside <= LIMIT, "window {w} admitted {} > {LIMIT}:\n{table}", counts.inside);
        assert!(counts.touching >= FLOOR, "window {w} admitted at most {} < {FLOOR}:\n{table}", counts.touching);
        assert!(counts.rejected > 0, "window {w} was not driven above the limit:\n{table}");
    }
    let failed = samples.iter().filter(|s| s.status != 200 && s.status != 429).count();
    assert_eq!(failed, 0, "every request is admitted or refused with 429");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_holds_while_a_follower_and_then_the_leader_are_killed() {
    let _serial = serial();
    let mut c = limited_cluster("127.0.27").await;
    let status = c.status(1).await.expect("status");
    let leader_admin = view::admin_of(&status, view::leader(&status).expect("a leader")).expect("leader's address");
    let leader = (1..=3).find(|i| c.node(*i).admin() == leader_admin).expect("the leader is one of ours");
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    let survivor = (1..=3).find(|i| *i != leader && *i != follower).expect("a survivor");

    let load = tokio::spawn(drive(proxies(&c), "/limited", Duration::from_secs(10)));
    // Faults at fixed points of the run, so that windows before, between and after them
    // are all measured.
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.kill(follower);
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.kill(leader);
    let samples = load.await.expect("driver");

    let per_window = windows(&samples);
    let table = report(&per_window);
    eprintln!("{table}");
    for (w, counts) in &per_window {
        assert!(counts.inside <= LIMIT, "window {w} admitted {} > {LIMIT}:\n{table}", counts.inside);
    }
    let survivor_failures = samples.iter().filter(|s| s.node == survivor && s.status != 200 && s.status != 429).count();
    assert_eq!(survivor_failures, 0, "the survivor answers every request, quorum or not:\n{table}");
    let last_window = per_window.keys().last().copied().expect("windows");
    let survivor_admitted_alone = samples.iter().filter(|s| s.node == survivor && s.status == 200 && s.start_us / 1_000_000 == last_window).count();
    assert!(survivor_admitted_alone > 0, "alone, the survivor still admits its fallback share:\n{table}");
}
