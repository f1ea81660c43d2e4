//! `weir serve --cluster`: several real nodes on loopback, a real Kafka-protocol broker
//! for membership and a real PostgreSQL for the shared registry and checkpoints.

use crate::fixtures::cluster::*;
use crate::fixtures::server::*;
use crate::support::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(90);

/// Polls until `done` holds, or panics with `what` and the nodes' logs.
fn wait(what: &str, nodes: &[&Server], mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + LONG;
    while !done() {
        if Instant::now() > deadline {
            let logs: Vec<String> = nodes.iter().map(|n| n.log()).collect();
            panic!("{what}: not within {LONG:?}\n{}", logs.join("\n-----\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Three nodes share thirty pipelines; the API works on every node; a push on one node
/// swaps the pipelines wherever they run; a node that leaves cleanly hands its pipelines
/// over with no duplicate; a node killed with SIGKILL has its pipelines resumed elsewhere
/// with nothing lost; a node that comes back takes a share again.
#[test]
fn three_nodes_share_pipelines_and_survive_a_leave_and_a_kill() {
    let s = Scratch::new();
    let c = Cluster::new(&s.path(""));
    let n1 = c.node("n1");
    let n2 = c.node("n2");
    let n3 = c.node("n3");

    // A tenant made on n1 works on n2 and n3: the registry is shared.
    let token = c.acme(&n1, 30);
    let names: Vec<String> = (0..30).map(|i| format!("p{i:02}")).collect();
    let nodes = [&n1, &n2, &n3];
    for (i, name) in names.iter().enumerate() {
        nodes[i % 3].create_ok(&token, &slow_counting(name, &c.out()));
    }
    let (status, listed) = n3.call(Some(&token), "GET", "/v1/pipelines", None);
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed.as_array().unwrap().len(),
        30,
        "every node sees every pipeline"
    );

    wait("30 pipelines spread over n1, n2, n3", &nodes, || {
        spread_over(&n2, &["n1", "n2", "n3"], &names)
    });
    wait("every pipeline delivering", &nodes, || {
        names
            .iter()
            .all(|n| delivered(&c.out(), n).len() as u64 >= 2 * BATCH)
    });

    // A new version pushed on n2 reaches every pipeline, on whichever node runs it.
    let v2 = new_version(read_plugin("counter_stream"), "v2");
    let (status, pushed) = n2.push(&token, "counter", v2);
    assert_eq!(status, 201, "{pushed}");
    assert_eq!(pushed["upgraded"].as_array().unwrap().len(), 30, "{pushed}");
    let by_name = |node: &str| match node {
        "n1" => &n1,
        "n2" => &n2,
        _ => &n3,
    };
    wait("every pipeline on counter v2", &nodes, || {
        names.iter().all(|name| {
            let anywhere = n1.status(&token, name);
            let owner = anywhere["node"].as_str().unwrap_or_default().to_string();
            !owner.is_empty() && by_name(&owner).status(&token, name)["source"]["version"] == 2
        })
    });

    // A clean leave: n2 commits and hands over; no record is written twice.
    let left = pipelines_of(&n1, "n2");
    assert!(!left.is_empty());
    let at_leave: BTreeMap<&String, usize> = names
        .iter()
        .map(|n| (n, delivered(&c.out(), n).len()))
        .collect();
    n2.stop();
    wait("n2's pipelines on n1 and n3", &[&n1, &n3], || {
        spread_over(&n1, &["n1", "n3"], &names)
    });
    wait("n2's pipelines delivering again", &[&n1, &n3], || {
        left.iter()
            .all(|n| delivered(&c.out(), n).len() >= at_leave[n] + 3 * BATCH as usize)
    });
    for name in &names {
        assert_eq!(
            nothing_lost(&c.out(), name),
            0,
            "{name}: duplicates after a clean leave"
        );
    }

    // SIGKILL n3: its pipelines resume on n1 from their checkpoints.
    let killed = pipelines_of(&n1, "n3");
    assert!(!killed.is_empty());
    let at_kill: BTreeMap<&String, usize> = killed
        .iter()
        .map(|n| (n, delivered(&c.out(), n).len()))
        .collect();
    let t0 = Instant::now();
    n3.kill_9();
    wait("n3's pipelines delivering on n1", &[&n1], || {
        killed
            .iter()
            .all(|n| delivered(&c.out(), n).len() >= at_kill[n] + 3 * BATCH as usize)
    });
    eprintln!(
        "failover of {} pipelines: {:?} (session timeout 3 s)",
        killed.len(),
        t0.elapsed()
    );
    wait("all pipelines on n1", &[&n1], || {
        spread_over(&n1, &["n1"], &names)
    });

    // n3 comes back and takes a share without stopping the pipelines that stay.
    let n3 = c.node("n3");
    wait("n3 takes a share again", &[&n1, &n3], || {
        spread_over(&n1, &["n1", "n3"], &names)
    });
    let (status, view) = n3.call(Some(ADMIN), "GET", "/v1/cluster", None);
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["node"], "n3");
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["cluster", "status", "--server", &n1.url, "--token", ADMIN])
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(printed["node"], "n1", "weir cluster status: {printed}");
    assert!(
        n1.metrics().contains("node=\"n1\""),
        "series carry the node"
    );
    n3.stop();
    n1.stop();

    let mut duplicates = 0;
    for name in &names {
        duplicates += nothing_lost(&c.out(), name);
    }
    // Only what n3 had in flight when it died may be written twice: a batch or two per
    // pipeline it ran.
    assert!(
        duplicates <= killed.len() as u64 * 2 * BATCH,
        "{duplicates} duplicates for {} pipelines killed",
        killed.len()
    );
}

/// A node stopped past its session (SIGSTOP: a long pause, a partition) loses its
/// pipelines to the other; when it wakes (SIGCONT), its late commits are refused and it
/// stops those pipelines, so the output holds no duplicates beyond the batches in flight.
#[test]
fn a_paused_node_is_fenced_out_when_it_wakes() {
    let s = Scratch::new();
    let c = Cluster::new(&s.path(""));
    let n1 = c.node("n1");
    let n2 = c.node("n2");
    let token = c.acme(&n1, 20);
    let names: Vec<String> = (0..8).map(|i| format!("f{i}")).collect();
    for name in &names {
        n1.create_ok(&token, &slow_counting(name, &c.out()));
    }
    wait("8 pipelines over n1 and n2", &[&n1, &n2], || {
        spread_over(&n2, &["n1", "n2"], &names)
    });
    let paused = pipelines_of(&n2, "n1");
    wait("every pipeline delivering", &[&n1, &n2], || {
        names
            .iter()
            .all(|n| delivered(&c.out(), n).len() as u64 >= 2 * BATCH)
    });

    signal(n1.pid(), "STOP");
    let at_pause: BTreeMap<&String, usize> = paused
        .iter()
        .map(|n| (n, delivered(&c.out(), n).len()))
        .collect();
    // n2 takes them over: they deliver again while n1 sleeps.
    wait("n1's pipelines delivering on n2", &[&n2], || {
        paused
            .iter()
            .all(|n| delivered(&c.out(), n).len() >= at_pause[n] + 3 * BATCH as usize)
    });
    let epochs: BTreeSet<String> = paused
        .iter()
        .map(|n| n2.status(&token, n)["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(epochs, BTreeSet::from(["n2".to_string()]));

    signal(n1.pid(), "CONT");
    wait("n1 stops the pipelines it lost", &[&n1, &n2], || {
        let log = n1.log();
        log.contains("fenced out") && log.contains("taken over by another node")
    });
    // n2 keeps delivering them; n1 may come back for a share, from their checkpoints.
    let at_wake: BTreeMap<&String, usize> = paused
        .iter()
        .map(|n| (n, delivered(&c.out(), n).len()))
        .collect();
    wait(
        "the pipelines deliver on after n1 woke",
        &[&n1, &n2],
        || {
            paused
                .iter()
                .all(|n| delivered(&c.out(), n).len() >= at_wake[n] + 3 * BATCH as usize)
        },
    );
    n1.stop();
    n2.stop();
    let mut duplicates = 0;
    for name in &names {
        duplicates += nothing_lost(&c.out(), name);
    }
    // n1's batches in flight when it was paused, written but never committed.
    assert!(
        duplicates <= paused.len() as u64 * 2 * BATCH,
        "{duplicates} duplicates for {} pipelines paused",
        paused.len()
    );
}

/// Epochs only grow, even across a delete: a pipeline deleted and created again under its
/// name commits into the exactly-once file sink that still holds the old one's higher
/// epoch, and resumes from the checkpoint the sink holds.
#[test]
fn a_pipeline_created_again_commits_into_its_exactly_once_sink() {
    let s = Scratch::new();
    let c = Cluster::new(&s.path(""));
    let n1 = c.node("n1");
    let token = c.acme(&n1, 5);
    let grown = |at_least: usize| {
        wait("the pipeline delivering", &[&n1], || {
            delivered(&c.out(), "again").len() >= at_least
        })
    };
    n1.create_ok(&token, &counting("again", &c.out()));
    grown(20);
    // A swap is a second run: epoch 2 in the sink.
    let (status, pushed) = n1.push(
        &token,
        "counter",
        new_version(read_plugin("counter_stream"), "v2"),
    );
    assert_eq!(status, 201, "{pushed}");
    n1.wait_for(&token, "again", LONG, |p| p["source"]["version"] == 2);
    let before = delivered(&c.out(), "again").len();
    grown(before + 20);
    let (status, reply) = n1.call(Some(&token), "DELETE", "/v1/pipelines/again", None);
    assert!(status < 300, "{status}: {reply}");
    let at_delete = delivered(&c.out(), "again").len();
    n1.create_ok(&token, &counting("again", &c.out()));
    grown(at_delete + 30);
    let status = n1.status(&token, "again");
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(
        status["errors"], 0,
        "no commit refused on the way: {status}"
    );
    n1.stop();
    assert_eq!(
        nothing_lost(&c.out(), "again"),
        0,
        "exactly once across the delete"
    );
}
