//! What following an MLflow alias costs: swap latency (alias moved in MLflow → first
//! answer from the new version) and requests per poll while idle, counted in the MLflow
//! server's own request log.
//!
//! `TREESERVE_MLFLOW_MOVES` (default 20) and `TREESERVE_MLFLOW_POLL` (default `1s`) set
//! the number of moves and the poll interval, for a longer measurement.

use std::time::{Duration, Instant};

use super::{mlflow_log, move_alias_in_mlflow, registry};
use crate::common::*;

async fn version_of(app: &App) -> Option<u64> {
    let r = app.post("/score", VERSICOLOR).await;
    (r.status() == 200).then(|| header_number(&r, "x-model-version") as u64)
}

/// Requests for `name` in the MLflow server's log so far.
fn requests_for(name: &str) -> usize {
    let needle = format!("name={name} ");
    mlflow_log()
        .lines()
        .filter(|l| l.contains(&needle) || l.contains(&format!("name={name}&")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_moves_in_mlflow_are_served_within_a_poll_and_idle_following_is_one_request_a_poll() {
    let moves: usize = std::env::var("TREESERVE_MLFLOW_MOVES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(20);
    let poll = std::env::var("TREESERVE_MLFLOW_POLL").unwrap_or_else(|_| "1s".into());
    let interval = humantime::parse_duration(&poll).expect("TREESERVE_MLFLOW_POLL");
    let reg = registry();
    let name = "it-measure";
    let work = TestRegistry::new();
    for (file, extra) in [("v1.tsm", &[][..]), ("v2.tsm", &["--max-depth", "2"][..])] {
        let mut flags = vec!["--name", name];
        flags.extend_from_slice(extra);
        let a = work.train(file, &flags);
        treeserve_ok(&["publish", a.to_str().unwrap(), "--registry", &reg]);
    }
    treeserve_ok(&["promote", name, "1", "--registry", &reg]);
    let app = App::spawn(
        std::path::Path::new(&reg),
        &["--model", name, "--poll-interval", &poll],
    );
    assert_eq!(version_of(&app).await, Some(1));

    let mut took = Vec::with_capacity(moves);
    for i in 0..moves {
        let to = if i % 2 == 0 { 2 } else { 1 };
        // Not a wait for anything: the moves would otherwise come right after the poll
        // that saw the previous one (a full interval before the next). Phases spread
        // evenly over the interval (golden-ratio steps) measure what a move at any time sees.
        let phase = (i as f64 * 0.618_034).fract();
        tokio::time::sleep(interval.mul_f64(phase)).await;
        let started = Instant::now();
        move_alias_in_mlflow(name, "production", to).await;
        loop {
            if version_of(&app).await == Some(to) {
                break;
            }
            assert!(
                started.elapsed() < interval + Duration::from_secs(10),
                "move {i} to version {to} not served in {:?}",
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        took.push(started.elapsed());
    }
    took.sort();
    let pct = |p: f64| took[((took.len() as f64 * p).ceil() as usize).clamp(1, took.len()) - 1];
    let (p50, p99) = (pct(0.50), pct(0.99));
    eprintln!(
        "MLflow swap latency at --poll-interval {poll}, {moves} moves: p50 {p50:?}, p99 {p99:?}, max {:?}",
        took.last().unwrap()
    );
    // A move is seen at the next poll: on average half an interval, at most one, plus
    // the read and the checks (slack for a busy machine).
    assert!(p50 <= interval + Duration::from_secs(2), "p50 {p50:?}");

    // Idle: the server's requests for this model over several polls, from one request on
    // (any request still due to the last move is past). A request answered late (the
    // machine is busy) can bunch up with the next one, hence the slack.
    let polls = 10;
    let first = requests_for(name) + 1;
    wait_for(interval * 3, || async { requests_for(name) >= first }).await;
    let started = Instant::now();
    while requests_for(name) < first + polls {
        assert!(
            started.elapsed() < interval * (polls as u32 + 10),
            "fewer polls than expected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let per_poll = polls as f64 / (elapsed.as_secs_f64() / interval.as_secs_f64());
    eprintln!(
        "MLflow idle following: {polls} requests in {elapsed:?} at --poll-interval {poll}: {per_poll:.2} requests a poll, {:.0} an hour",
        per_poll * 3600.0 / interval.as_secs_f64()
    );
    // One request a poll takes about `polls` intervals; two would take half as long.
    assert!(
        elapsed >= interval * (polls as u32) * 7 / 10,
        "{polls} requests in {elapsed:?}: more than one a poll"
    );
}
