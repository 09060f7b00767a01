//! The feedback record's cost per remembered answer (issue 24: `/score` with the record
//! on must stay ≥ 0.97× of off): `Feedback::remember` of one-row IRIS-shaped answers,
//! each under an id never seen before (as the server's generated ids are), for record
//! windows from 16 answers (all in L1) to 1,000,000 (far beyond the last-level cache),
//! under generated ids (consecutive numbers, as the server makes them) and clients' own
//! ids (text). Before criterion runs, one line per window and kind gives ns per answer
//! (median of 7 rounds of 2 million answers) and the record's resident memory per answer.
//!
//! Then the whole in-process `/score` handler on the shipped IRIS model (each request a
//! different row, cycling through 1,000) with the record off and at each window, side by side in
//! rounds: the ratio to off is what the record costs a request, without the network.
//!
//! `cargo bench --bench feedback`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use treeserve::feedback::{AnswerId, Answerer, Feedback, FeedbackOptions};

const WINDOWS: [usize; 4] = [16, 10_000, 100_000, 1_000_000];

fn answerer() -> Arc<Answerer> {
    Arc::new(Answerer {
        model: "iris".into(),
        version: 1,
        classes: vec!["a".into(), "b".into(), "c".into()],
        features: (0..4).map(|j| format!("f{j}")).collect(),
        target: "class".into(),
    })
}

fn record(window: usize) -> Feedback {
    Feedback::new(FeedbackOptions {
        window,
        max_age: Duration::from_secs(3600),
        live_window: 1000,
    })
}

/// `n` ids of one kind, all different: the server's generated ones (consecutive
/// numbers), or clients' (16 hex digits of text).
fn ids(n: usize, generated: bool) -> Vec<AnswerId> {
    (0..n as u64)
        .map(|i| {
            if generated {
                AnswerId::Generated(i)
            } else {
                let text = format!("{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                AnswerId::Client(text.into())
            }
        })
        .collect()
}

/// Resident set size in bytes (Linux), 0 elsewhere.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn summary() {
    let by = answerer();
    let inputs = [5.1, 3.5, 1.4, 0.2];
    for (kind, generated) in [("generated", true), ("client", false)] {
        let ids = ids(2_000_000, generated);
        for window in WINDOWS {
            let before = rss();
            let feedback = record(window);
            // Filled first: the figures are for a full record, evicting as it remembers.
            for id in &ids[..window] {
                feedback.remember(id, Instant::now(), &by, &inputs, [0.0].into_iter());
            }
            let memory = (rss().saturating_sub(before)) as f64 / window as f64;
            let mut rounds: Vec<f64> = (0..7)
                .map(|_| {
                    // The server passes the request's arrival time: no clock read here.
                    let t = Instant::now();
                    for id in &ids {
                        feedback.remember(id, t, &by, &inputs, [1.0].into_iter());
                    }
                    t.elapsed().as_nanos() as f64 / ids.len() as f64
                })
                .collect();
            rounds.sort_by(f64::total_cmp);
            println!(
                "{kind:>9} ids, window {window:>9}: {:6.1} ns per answer (median of 7), {memory:6.0} bytes resident per answer",
                rounds[3]
            );
            drop(black_box(feedback));
        }
    }
}

/// The served IRIS registry, with the record at `window` (0: off).
fn state(window: usize) -> treeserve::http::AppState {
    let mut config = treeserve::ServeConfig::new(std::path::Path::new("models"));
    config.feedback_window = window;
    let state = treeserve::http::AppState::new(
        config,
        Arc::new(treeserve::registry::FsRegistry::new("models")),
    );
    state.fleet().reload();
    assert!(state.fleet().ready(), "the shipped registry loads");
    state
}

/// 1,000 different one-row `/score` bodies in IRIS's ranges (so that no branch is
/// learnt from one row).
fn bodies() -> Vec<bytes::Bytes> {
    let ranges = [
        ("SepalLengthCm", 4.3, 7.9),
        ("SepalWidthCm", 2.0, 4.4),
        ("PetalLengthCm", 1.0, 6.9),
        ("PetalWidthCm", 0.1, 2.5),
    ];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut unit = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..1000)
        .map(|_| {
            let fields: Vec<String> = ranges
                .iter()
                .map(|(name, lo, hi)| format!("\"{name}\": {:.1}", lo + (hi - lo) * unit()))
                .collect();
            bytes::Bytes::from(format!("{{{}}}", fields.join(", ")))
        })
        .collect()
}

/// `/score` through the in-process handler: ns per request, record off and at each
/// window, interleaved in rounds (median of 9).
fn handler_summary() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bodies = bodies();
    let request = |body: &bytes::Bytes| {
        http::Request::post("/score")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(body.clone()))
            .unwrap()
    };
    let windows = [0, 16, 100_000, 1_000_000];
    let states: Vec<_> = windows.iter().map(|&w| state(w)).collect();
    for s in &states {
        let resp = rt.block_on(treeserve::http::respond(request(&bodies[0]), s));
        assert_eq!(resp.status(), 200);
    }
    let mut times = vec![Vec::new(); windows.len()];
    for _ in 0..9 {
        for (i, s) in states.iter().enumerate() {
            let t = Instant::now();
            for _ in 0..300 {
                for body in &bodies {
                    black_box(rt.block_on(treeserve::http::respond(request(body), s)));
                }
            }
            times[i].push(t.elapsed().as_nanos() as f64 / (300 * bodies.len()) as f64);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let off = median(&mut times[0]);
    for (i, w) in windows.iter().enumerate() {
        let t = median(&mut times[i]);
        println!(
            "/score in-process, record {:>9}: {t:7.0} ns per request, {:.3}× off's rate",
            if *w == 0 {
                "off".to_string()
            } else {
                w.to_string()
            },
            off / t
        );
    }
}

fn bench(c: &mut Criterion) {
    // `cargo test --benches` runs each bench once: the summaries only in a real run.
    if std::env::args().any(|a| a == "--bench") {
        summary();
        handler_summary();
    }
    let ids = ids(2_000_000, true);
    let by = answerer();
    let inputs = [5.1, 3.5, 1.4, 0.2];
    let mut group = c.benchmark_group("remember");
    for window in WINDOWS {
        let feedback = record(window);
        let mut next = 0;
        let now = Instant::now();
        group.bench_function(format!("window {window}"), |b| {
            b.iter(|| {
                next = (next + 1) % ids.len();
                feedback.remember(&ids[next], now, &by, &inputs, [1.0].into_iter());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
