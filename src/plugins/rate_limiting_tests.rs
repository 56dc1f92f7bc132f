//! The rate-limiting plugin: whom a key counts, and what a refusal costs each period.

use super::*;
use crate::proxy::context::ConsumerInfo;
use crate::ratelimit::window::counter_key;

fn config(limit_by: &str) -> RateLimitingConfig {
    RateLimitingConfig {
        second: None,
        minute: Some(5.0),
        hour: None,
        day: None,
        month: None,
        year: None,
        limit_by: limit_by.into(),
        header_name: Some("x-who".into()),
        path: Some("/only".into()),
        policy: "cluster".into(),
        fault_tolerant: true,
        hide_client_headers: false,
        error_code: 429.0,
        error_message: "API rate limit exceeded".into(),
    }
}

/// The key `access` uses for `cfg` and a request to `uri` with `headers`, from 10.0.0.7.
fn key(cfg: &RateLimitingConfig, uri: &str, headers: &[(&str, &str)], consumer: Option<Uuid>) -> String {
    let mut req = hyper::Request::get(uri);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let parts = req.body(()).unwrap().into_parts().0;
    let mut ctx = RequestContext::new("10.0.0.7:5555".parse().unwrap());
    ctx.consumer = consumer.map(|id| Arc::new(ConsumerInfo { id, username: None, custom_id: None }));
    let mut key = String::new();
    key_prefix(&mut key, &RateLimitPlugin::new(PLUGIN, cfg.clone()), &parts, &ctx);
    window::push_window(&mut key, &WINDOW);
    key
}

const PLUGIN: Uuid = Uuid::from_u128(0x1234);
const WINDOW: Window = Window { period: Period::Minute, start_ms: 120_000 };

fn expected(identifier: &str) -> String {
    counter_key(&PLUGIN.to_string(), identifier, &WINDOW)
}

#[test]
fn the_key_counts_whom_limit_by_names_and_falls_back_to_the_client_address() {
    let consumer = Uuid::from_u128(0xabc);
    assert_eq!(key(&config("ip"), "/", &[], None), expected("10.0.0.7"));
    assert_eq!(key(&config("header"), "/", &[("x-who", "alice")], None), expected("alice"));
    assert_eq!(key(&config("header"), "/", &[], None), expected("10.0.0.7"));
    assert_eq!(key(&config("path"), "/only", &[], None), expected("/only"));
    assert_eq!(key(&config("path"), "/other", &[], None), expected("10.0.0.7"));
    assert_eq!(key(&config("consumer"), "/", &[], Some(consumer)), expected(&consumer.to_string()));
    assert_eq!(key(&config("consumer"), "/", &[], None), expected("10.0.0.7"));
}

#[test]
fn a_header_limit_on_a_consumer_field_counts_the_consumer_found_not_the_field_sent() {
    use crate::model::{create, Consumer};
    use crate::proxy::consumer_fields::{ConsumerFields, ConsumerValues};
    let mut cfg = config("header");
    cfg.header_name = Some("X-Consumer-Username".into());
    let parts = hyper::Request::get("/").header("x-consumer-username", "eve").body(()).unwrap().into_parts().0;
    let mut ctx = RequestContext::new("10.0.0.7:5555".parse().unwrap());
    let bob: Consumer = create(&serde_json::json!({"username": "bob"}), 1.0).unwrap();
    ctx.consumer_fields = Some(ConsumerFields { values: Arc::new(ConsumerValues::new(&bob, None)), anonymous: false });
    let mut key = String::new();
    key_prefix(&mut key, &RateLimitPlugin::new(PLUGIN, cfg), &parts, &ctx);
    window::push_window(&mut key, &WINDOW);
    assert_eq!(key, expected("bob"));
}

/// A time in a minute's first second, far from any clock a sweep would read.
const MINUTE_START: u64 = 150_000_000_000_000 * 60_000;

fn limits(policy: &str, second: u64, minute: u64) -> RateLimitPlugin {
    let mut cfg = config("ip");
    cfg.policy = policy.into();
    (cfg.second, cfg.minute) = (Some(second as f64), Some(minute as f64));
    RateLimitPlugin::new(PLUGIN, cfg)
}

/// One request from 10.0.0.7 at `now_ms`: admitted or not.
async fn request(plugin: &RateLimitPlugin, limiters: &Limiters, now_ms: u64) -> bool {
    refusal(plugin, limiters, now_ms).await.is_none()
}

/// One request from 10.0.0.7 at `now_ms`: the refusal's fields, if it is refused.
async fn refusal(plugin: &RateLimitPlugin, limiters: &Limiters, now_ms: u64) -> Option<hyper::HeaderMap> {
    let parts = hyper::Request::get("/").body(()).unwrap().into_parts().0;
    let mut ctx = RequestContext::new("10.0.0.7:5555".parse().unwrap());
    access(plugin, limiters, &parts, &mut ctx, now_ms).await.err().map(|resp| resp.headers().clone())
}

fn key_at(period: Period, now_ms: u64) -> String {
    counter_key(&PLUGIN.to_string(), "10.0.0.7", &Window::containing(period, now_ms))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_minute_refuses_costs_its_second_nothing_on_either_policy() {
    use crate::ratelimit::limiter::tests::{limiter_over, store};
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, true).await;
    let (cluster, trigger) = limiter_over(&store);
    let limiters = Limiters { cluster, local: Arc::default() };
    for policy in ["cluster", "local"] {
        let plugin = limits(policy, 2, 3);
        let remaining_second = |now_ms| match policy {
            "local" => limiters.local.remaining(&key_at(Period::Second, now_ms), 2),
            _ => limiters.cluster.remaining(&key_at(Period::Second, now_ms), 2),
        };
        assert!(request(&plugin, &limiters, MINUTE_START).await);
        assert!(request(&plugin, &limiters, MINUTE_START + 10).await);
        let next_second = MINUTE_START + 1_000;
        assert!(request(&plugin, &limiters, next_second).await, "{policy}: the minute's third");
        // The second admits the fourth and the minute refuses it: the second gives its
        // token back, so it has one left however many more the minute refuses, and the
        // refusal says so, counting the request only where it was refused (as Kong).
        for _ in 0..3 {
            let fields = refusal(&plugin, &limiters, next_second + 10).await.expect(policy);
            assert_eq!(remaining_second(next_second), 1, "{policy}");
            assert_eq!((&fields["x-ratelimit-remaining-second"], &fields["x-ratelimit-remaining-minute"]), (&"1".parse().unwrap(), &"0".parse().unwrap()), "{policy}");
        }
    }
    trigger.trigger();
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quorum_a_request_on_the_share_counts_once_and_its_fields_say_what_is_left() {
    use crate::ratelimit::limiter::tests::{leaderless_limiter, store};
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, false).await;
    let (cluster, _reserver, trigger) = leaderless_limiter(&store);
    let limiters = Limiters { cluster, local: Arc::default() };
    // Shares of a third (three live nodes): 2 of 6 a second, 3 of 9 a minute.
    let plugin = limits("cluster", 6, 9);
    assert!(request(&plugin, &limiters, MINUTE_START).await);
    assert!(request(&plugin, &limiters, MINUTE_START + 10).await);
    assert_eq!(limiters.cluster.degraded_admissions(), 2, "two requests, each on the share in two periods");
    let fields = refusal(&plugin, &limiters, MINUTE_START + 20).await.expect("the second's share is spent");
    assert_eq!(fields["x-ratelimit-remaining-second"], "0");
    assert_eq!(fields["x-ratelimit-remaining-minute"], "1", "the minute's share less its two");
    trigger.trigger();
    store.shutdown().await;
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// The local policy decides every request as Kong does, and counts only those it
    /// admits: a request passes when every period has room, and then counts in each.
    #[test]
    fn the_local_policy_admits_and_counts_as_kong(
        second in 1u64..5,
        extra in 0u64..8,
        steps in proptest::collection::vec(0u64..400, 1..60),
        offset in 0u64..60_000,
    ) {
        use std::collections::HashMap;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        runtime.block_on(async {
            let store = crate::ratelimit::limiter::tests::store(&dir, false).await;
            let (cluster, trigger) = crate::ratelimit::limiter::tests::limiter_over(&store);
            let limiters = Limiters { cluster, local: Arc::default() };
            let minute = second + extra;
            let plugin = limits("local", second, minute);
            let mut counts: HashMap<String, u64> = HashMap::new();
            let mut now = MINUTE_START + offset;
            for step in steps {
                now += step;
                let keys = [(key_at(Period::Second, now), second), (key_at(Period::Minute, now), minute)];
                let room = keys.iter().all(|(k, limit)| counts.get(k).copied().unwrap_or(0) < *limit);
                if room {
                    for (k, _) in &keys {
                        *counts.entry(k.clone()).or_default() += 1;
                    }
                }
                proptest::prop_assert_eq!(request(&plugin, &limiters, now).await, room, "at {}", now);
                for (k, limit) in &keys {
                    proptest::prop_assert_eq!(limiters.local.remaining(k, *limit), limit - counts.get(k).copied().unwrap_or(0), "{} at {}", k, now);
                }
            }
            trigger.trigger();
            store.shutdown().await;
            Ok(())
        })?;
    }
}
