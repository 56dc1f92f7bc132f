//! Write latency and throughput of a three-node store on loopback: criterion's sequential
//! write, then a printed summary of p50/p99 for sequential writes and writes/s for 64
//! concurrent writers (through the leader and through a follower).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use gatehouse_raft::{Role, Store, StoreConfig};

struct Bench {
    _dir: tempfile::TempDir,
    stores: Vec<Store>,
}

async fn cluster() -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let mut stores = Vec::new();
    for i in 0..3u64 {
        let mut cfg = StoreConfig::new(i + 1, format!("127.0.0.{}:0", i + 1).parse().unwrap(), dir.path().join(format!("n{i}")));
        cfg.secret = b"bench".to_vec();
        stores.push(Store::open(cfg).await.unwrap());
    }
    stores[0].initialize().await.unwrap();
    for s in &stores[1..] {
        stores[0].add_learner(s.id(), s.node()).await.unwrap();
    }
    stores[0].set_voters(BTreeSet::from([1, 2, 3])).await.unwrap();
    Bench { _dir: dir, stores }
}

fn leader(b: &Bench) -> &Store {
    b.stores.iter().find(|s| s.status().role == Role::Leader).expect("a leader")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn sequential(store: &Store, n: usize) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        store.put(format!("seq/{i}"), vec![0u8; 100]).await.unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    lat
}

async fn concurrent(store: &Store, writers: usize, per_writer: usize) -> f64 {
    let t = Instant::now();
    let store = Arc::new(store.clone());
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..per_writer {
                    store.put(format!("conc/{w}/{i}"), vec![0u8; 100]).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (writers * per_writer) as f64 / t.elapsed().as_secs_f64()
}

fn writes(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let bench = rt.block_on(cluster());
    let leader = leader(&bench).clone();
    let follower = bench.stores.iter().find(|s| s.id() != leader.id()).unwrap().clone();

    let mut i = 0u64;
    c.bench_function("raft/sequential_put_on_leader", |b| {
        b.to_async(&rt).iter(|| {
            i += 1;
            let leader = leader.clone();
            async move { leader.put(format!("crit/{i}"), vec![0u8; 100]).await.unwrap() }
        })
    });

    rt.block_on(async {
        let lat = sequential(&leader, 2000).await;
        println!("sequential put via leader:   p50 {:?}  p99 {:?}", percentile(&lat, 0.5), percentile(&lat, 0.99));
        let lat = sequential(&follower, 2000).await;
        println!("sequential put via follower: p50 {:?}  p99 {:?}", percentile(&lat, 0.5), percentile(&lat, 0.99));
        println!("64 concurrent writers via leader:   {:.0} writes/s", concurrent(&leader, 64, 200).await);
        println!("64 concurrent writers via follower: {:.0} writes/s", concurrent(&follower, 64, 200).await);
        for s in &bench.stores {
            s.shutdown().await;
        }
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = writes
}
criterion_main!(benches);
