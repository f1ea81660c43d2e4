//! `cargo bench -p weir-cli --bench cluster`: what clustering costs. Prints tables; asserts
//! nothing timed.
//!
//! 1. Failover: SIGKILL a node, time until each of its pipelines delivers its first record
//!    from the node that takes it over; ten kills (the node restarted between them).
//! 2. The pause a joining node causes to pipelines that stay where they are: the longest
//!    gap between two writes of theirs while the group rebalances, against the same window
//!    before.
//! 3. A checkpoint commit in the shared PostgreSQL store (fenced) against the embedded
//!    SQLite one (fsynced), one after another.
//!
//! Real processes on loopback: tansu as the broker, PostgreSQL, `weir serve` nodes.

#[allow(dead_code)]
#[path = "../../../tests/e2e/fixtures/mod.rs"]
mod fixtures;

use fixtures::cluster::*;
use fixtures::server::Server;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use weir_checkpoint::{CheckpointStore, Owner, SqliteCheckpoints};

const PIPELINES: usize = 12;

fn main() {
    let scratch = tempfile::tempdir().unwrap();
    let c = Cluster::new(scratch.path());
    let names: Vec<String> = (0..PIPELINES).map(|i| format!("b{i:02}")).collect();
    let mut nodes: BTreeMap<String, Server> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| (n.to_string(), c.node(n)))
        .collect();
    let token = c.acme(&nodes["n1"], PIPELINES as u32);
    for name in &names {
        nodes["n1"].create_ok(&token, &counting(name, &c.out()));
    }
    let all = ["n1", "n2", "n3"];
    until(|| spread_over(&nodes["n1"], &all, &names));

    failover(&c, &mut nodes, &names);
    join_pause(&c, &mut nodes, &names);
    for (_, node) in std::mem::take(&mut nodes) {
        node.stop();
    }
    commit_cost(&c);
}

fn until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "the cluster did not settle");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn lines(c: &Cluster, names: &[String]) -> BTreeMap<String, usize> {
    names
        .iter()
        .map(|n| {
            (
                n.clone(),
                delivered(&c.out(), n).values().sum::<u32>() as usize,
            )
        })
        .collect()
}

fn failover(c: &Cluster, nodes: &mut BTreeMap<String, Server>, names: &[String]) {
    println!("\n## Failover: SIGKILL a node → first record from the new owner\n");
    println!("3 nodes, {PIPELINES} stream pipelines, session timeout 3 s, heartbeat 300 ms.\n");
    println!("| kill | node | its pipelines | last one resumed after |");
    println!("|---:|---|---:|---:|");
    let mut times = Vec::new();
    for round in 0..10 {
        let victim = format!("n{}", round % 3 + 1);
        let survivor = nodes.keys().find(|n| **n != victim).unwrap().clone();
        let moved = pipelines_of(&nodes[&survivor], &victim);
        let killed = Instant::now();
        nodes.remove(&victim).unwrap().kill_9();
        // Read once it is dead: whatever grows after this, the new owner wrote.
        let before = lines(c, names);
        until(|| {
            let now = lines(c, &moved);
            moved.iter().all(|n| now[n] > before[n])
        });
        let took = killed.elapsed();
        times.push(took);
        println!(
            "| {} | {victim} | {} | {:.2} s |",
            round + 1,
            moved.len(),
            took.as_secs_f64()
        );
        nodes.insert(victim.clone(), c.node(&victim));
        let all: Vec<&str> = nodes.keys().map(String::as_str).collect();
        until(|| spread_over(&nodes[&survivor], &all, names));
    }
    times.sort();
    println!(
        "\nmedian {:.2} s, max {:.2} s over {} kills (goal: < 10 s)",
        times[times.len() / 2].as_secs_f64(),
        times.last().unwrap().as_secs_f64(),
        times.len()
    );
}

/// The longest time each of `names` went without a new line, sampling for `window`.
fn longest_gap(
    c: &Cluster,
    names: &[String],
    mut window: impl FnMut() -> bool,
) -> BTreeMap<String, Duration> {
    let mut last = lines(c, names);
    let mut since: BTreeMap<String, Instant> =
        names.iter().map(|n| (n.clone(), Instant::now())).collect();
    let mut longest: BTreeMap<String, Duration> =
        names.iter().map(|n| (n.clone(), Duration::ZERO)).collect();
    while window() {
        std::thread::sleep(Duration::from_millis(10));
        let now = lines(c, names);
        for n in names {
            if now[n] > last[n] {
                let gap = longest.get_mut(n).unwrap();
                *gap = (*gap).max(since[n].elapsed());
                since.insert(n.clone(), Instant::now());
            }
        }
        last = now;
    }
    longest
}

fn join_pause(c: &Cluster, nodes: &mut BTreeMap<String, Server>, names: &[String]) {
    println!("\n## The pause a joining node causes to pipelines that stay\n");
    // Two nodes run everything; then n3 joins.
    nodes.remove("n3").unwrap().stop();
    until(|| spread_over(&nodes["n1"], &["n1", "n2"], names));
    let before: BTreeMap<String, Vec<String>> = ["n1", "n2"]
        .iter()
        .map(|n| (n.to_string(), pipelines_of(&nodes["n1"], n)))
        .collect();
    let steady_for = Duration::from_secs(5);
    let started = Instant::now();
    let steady = longest_gap(c, names, || started.elapsed() < steady_for)
        .into_values()
        .max()
        .unwrap_or_default();
    let joining = Instant::now();
    nodes.insert("n3".into(), c.node("n3"));
    let all = ["n1", "n2", "n3"];
    let mut settled = None;
    let during = longest_gap(c, names, || {
        if settled.is_none() && spread_over(&nodes["n1"], &all, names) {
            settled = Some(joining.elapsed());
        }
        // Past the rebalance, a little longer: a pipeline stalled by it shows.
        settled.is_none_or(|s| joining.elapsed() < s + Duration::from_secs(2))
    });
    let stayed: Vec<String> = ["n1", "n2"]
        .iter()
        .flat_map(|n| {
            let now = pipelines_of(&nodes["n1"], n);
            before[*n]
                .iter()
                .filter(|p| now.contains(p))
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    let worst = |of: &mut dyn Iterator<Item = &String>| {
        of.map(|p| during[p]).max().unwrap_or_default().as_millis()
    };
    let moved: Vec<&String> = names.iter().filter(|n| !stayed.contains(n)).collect();
    println!("| pipelines | longest gap between writes |");
    println!("|---|---:|");
    println!(
        "| all {PIPELINES}, steady on 2 nodes ({} s) | {} ms |",
        steady_for.as_secs(),
        steady.as_millis()
    );
    println!(
        "| the {} that stayed, while n3 joins | {} ms |",
        stayed.len(),
        worst(&mut stayed.iter())
    );
    println!(
        "| the {} that moved to n3 | {} ms |",
        moved.len(),
        worst(&mut moved.into_iter())
    );
    println!(
        "\nThe group settled in {:.2} s. Every pipeline writes 10 records every 100 ms.",
        settled.unwrap_or_default().as_secs_f64()
    );
}

fn commit_cost(c: &Cluster) {
    println!("\n## A checkpoint commit: shared PostgreSQL (fenced) vs embedded SQLite (fsync)\n");
    const N: usize = 2000;
    let runtime = weir_runtime::task_runtime().unwrap();
    let pg = weir_checkpoint::postgres::Pg::connect(&c.postgres_url(), runtime.handle().clone())
        .unwrap();
    let shared = weir_checkpoint::postgres::PgCheckpoints::open(pg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let embedded = SqliteCheckpoints::open(dir.path()).unwrap();
    let owner = shared.acquire("bench/commit", "bench").unwrap();
    println!("| store | mean | p99 |");
    println!("|---|---:|---:|");
    let mut means = Vec::new();
    for (label, store, owner) in [
        (
            "SQLite (WAL, synchronous=FULL)",
            &embedded as &dyn CheckpointStore,
            Owner::default(),
        ),
        ("PostgreSQL (fenced UPDATE)", &shared, owner),
    ] {
        let mut times = Vec::with_capacity(N);
        for i in 0..N {
            let started = Instant::now();
            store
                .commit("bench/commit", &format!("{{\"n\":{i}}}"), &owner)
                .unwrap();
            times.push(started.elapsed());
        }
        let mean = times.iter().sum::<Duration>() / N as u32;
        times.sort();
        means.push(mean);
        println!(
            "| {label} | {} µs | {} µs |",
            mean.as_micros(),
            times[N * 99 / 100].as_micros()
        );
    }
    println!(
        "\nPostgreSQL / SQLite: {:.2}× per commit (the test server runs with fsync=off; one commit per batch)",
        means[1].as_secs_f64() / means[0].as_secs_f64()
    );
}
