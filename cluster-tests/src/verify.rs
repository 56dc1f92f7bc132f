//! The shape every chaos run shares: start the workloads it asks for, and at the end undo
//! every fault (heal, resume, restart), stop the workloads, run every checker and fail
//! with the evidence if any invariant was violated.

use std::time::Duration;

use crate::checker::{self, Verdict};
use crate::history::Kind;
use crate::run::Run;
use crate::workload::status::{Observation, Observations};
use crate::workload::{self, Handle};

/// Which workloads a run drives.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub writers: usize,
    /// Writers also delete (see `workload::writes`).
    pub deletes: bool,
    pub proxy_clients: usize,
    /// A route path with `rate-limiting` `second = limit`, and the clients loading it.
    pub ratelimit: Option<RateLoad>,
}

#[derive(Debug, Clone)]
pub struct RateLoad {
    pub path: String,
    pub limit: u64,
    pub clients: usize,
    pub pause: Duration,
}

pub struct Workloads {
    writes: Handle,
    proxy: Handle,
    ratelimit: Option<(Handle, RateLoad)>,
    status: Handle,
    pub observations: Observations,
}

/// What a finished run found.
pub struct Outcome {
    pub verdicts: Vec<Verdict>,
    pub observations: Vec<Observation>,
}

impl Run {
    /// Creates the rate-limited route if asked, then starts every workload.
    pub async fn workloads(&mut self, spec: &Spec) -> Workloads {
        if let Some(rl) = &spec.ratelimit {
            let route = format!("name=limited&paths[]={}", rl.path);
            self.admin_ok("/services/chaos-echo/routes", &route).await;
            let plugin = format!("name=rate-limiting&config.second={}&config.policy=cluster&config.limit_by=header&config.header_name=x-who", rl.limit);
            self.admin_ok("/routes/limited/plugins", &plugin).await;
            for i in 1..=self.n() {
                let url = format!("http://{}{}", self.cluster.node(i).proxy(), rl.path);
                let client = self.client.clone();
                crate::wait_for(&format!("the rate limit on node {i}"), Duration::from_secs(10), || async {
                    let r = client.request(hyper::Method::GET, &url, &[("x-who", "probe")], Vec::new()).await.ok()?;
                    r.headers.contains_key("x-ratelimit-limit-second").then_some(())
                })
                .await;
            }
        }
        let (status, observations) = workload::status::spawn(&self.shared(), spec.ratelimit.is_some());
        let ratelimit = spec.ratelimit.clone().map(|rl| (workload::ratelimit::spawn(&self.shared(), &rl.path, rl.clients, rl.pause), rl));
        Workloads {
            writes: workload::writes::spawn(&self.shared(), spec.writers, spec.deletes),
            proxy: workload::proxy::spawn(&self.shared(), spec.proxy_clients),
            ratelimit,
            status,
            observations,
        }
    }

    /// Undoes every fault still in place: heals the network, resumes paused nodes and
    /// restarts killed ones.
    pub async fn undo_faults(&mut self) {
        if self.partitions.active() {
            self.heal();
        }
        for i in 1..=self.n() {
            if !self.cluster.is_running(i) {
                self.restart(i).await;
            } else if !self.nodes.get(i).0 {
                self.resume(i);
            }
        }
    }

    /// Ends the run: undoes faults, stops workloads (writes first, so the cluster can
    /// settle while the status poller still watches), then checks every invariant.
    pub async fn finish(&mut self, w: Workloads) -> Outcome {
        self.undo_faults().await;
        w.writes.stop().await;
        let admins: Vec<(usize, String)> = (1..=self.n()).map(|i| (i, self.admin(i))).collect();
        let mut verdicts = vec![checker::writes::converge(&self.client, &admins, Duration::from_secs(20)).await];
        w.proxy.stop().await;
        let ratelimit = match w.ratelimit {
            Some((h, rl)) => {
                h.stop().await;
                Some(rl)
            }
            None => None,
        };
        w.status.stop().await;
        let observations = w.observations.all();
        let writes = self.history.of_kind(Kind::Write);
        verdicts.push(checker::writes::check(&self.client, &admins, &writes, &["chaos-echo"]).await);
        verdicts.push(checker::leaders::check(&observations, self.history.started));
        verdicts.push(checker::proxy::check(&self.history.of_kind(Kind::Proxy), self.history.started));
        if let Some(rl) = ratelimit {
            let requests = self.history.of_kind(Kind::Ratelimit);
            verdicts.extend(checker::ratelimit::check(&requests, &observations, &self.partition_log, rl.limit, self.n(), self.history.started));
        }
        for v in &verdicts {
            self.log(&format!("{}: {} checked, {} violated", v.invariant, v.checked, v.violations.len()));
        }
        Outcome { verdicts, observations }
    }

    /// Fails the run (evidence kept) if any invariant was violated.
    pub fn assert_held(&self, outcome: &Outcome) {
        if let Some(report) = checker::report(&outcome.verdicts) {
            self.fail(&report);
        }
    }
}

impl Run {
    /// Guards against a vacuous pass: the workloads must have done real work.
    pub fn assert_exercised(&self, min_acked_writes: usize, min_clean_proxied: usize) {
        let acked = self.history.of_kind(Kind::Write).iter().filter(|w| w.outcome == crate::history::Outcome::Ok).count();
        let proxied = self.history.of_kind(Kind::Proxy).iter().filter(|p| p.node_up == Some(true)).count();
        if acked < min_acked_writes || proxied < min_clean_proxied {
            self.fail(&format!(
                "the run did too little to check: {acked} acknowledged writes (want {min_acked_writes}), {proxied} proxied requests to running nodes (want {min_clean_proxied})"
            ));
        }
    }
}
