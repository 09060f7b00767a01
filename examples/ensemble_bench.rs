//! treeserve in-process, the contender of `benches/ensembles.py`: loads an artifact,
//! predicts every row of a raw file at batch sizes 1, 100 and 10,000 on one thread and on
//! all threads, and prints one JSON line of timings.
//!
//! ```text
//! ensemble_bench MODEL.tsm ROWS.f64 [--threads N] [--reps R] [--batches 1,100,10000]
//!                [--predictions OUT.f64]
//! ```
//!
//! `ROWS.f64` holds `n × num_features` little-endian f64 values, row after row. Every timed
//! pass predicts each row once (no row repeated, so the branch predictor cannot learn the
//! paths): batch 1 is one `Model::predict_scores` call per row, a larger batch one
//! `Model::predict_batch` call (`Model::predict_batch_threads` with N threads) per chunk of
//! that many rows. Every pass must give the same scores, bit for bit; `--predictions`
//! writes them (`n × num_scores` little-endian f64) for the parity check.

use std::time::Instant;
use treeserve::model::Model;
use treeserve::model::tree::TreeLimits;

struct Args {
    model: String,
    rows: String,
    threads: usize,
    reps: usize,
    batches: Vec<usize>,
    predictions: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut pos = Vec::new();
    let mut a = Args {
        model: String::new(),
        rows: String::new(),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        reps: 3,
        batches: vec![1, 100, 10_000],
        predictions: None,
    };
    while let Some(x) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match x.as_str() {
            "--threads" => a.threads = value("--threads")?.parse().map_err(|e| format!("{e}"))?,
            "--reps" => a.reps = value("--reps")?.parse().map_err(|e| format!("{e}"))?,
            "--batches" => {
                a.batches = value("--batches")?
                    .split(',')
                    .map(|b| b.parse().map_err(|e| format!("--batches: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--predictions" => a.predictions = Some(value("--predictions")?),
            _ if x.starts_with("--") => return Err(format!("unknown option {x}")),
            _ => pos.push(x),
        }
    }
    let [model, rows]: [String; 2] = pos
        .try_into()
        .map_err(|_| "usage: ensemble_bench MODEL.tsm ROWS.f64 [options]".to_string())?;
    (a.model, a.rows) = (model, rows);
    Ok(a)
}

/// One pass over all rows at `batch` rows per call on `threads` threads; seconds taken.
fn pass(m: &Model, rows: &[f64], batch: usize, threads: usize, scores: &mut [f64]) -> f64 {
    let (f, k) = (m.num_features(), m.num_scores());
    let mut classes = vec![0usize; batch];
    let t = Instant::now();
    if batch == 1 {
        for (row, out) in rows.chunks_exact(f).zip(scores.chunks_exact_mut(k)) {
            std::hint::black_box(m.predict_scores(row, out));
        }
    } else {
        for (r, s) in rows.chunks(batch * f).zip(scores.chunks_mut(batch * k)) {
            let c = &mut classes[..r.len() / f];
            if threads == 1 {
                m.predict_batch(r, s, c);
            } else {
                m.predict_batch_threads(r, s, c, threads);
            }
        }
    }
    std::hint::black_box(&scores);
    t.elapsed().as_secs_f64()
}

fn run(a: &Args) -> Result<String, String> {
    let bytes = std::fs::read(&a.model).map_err(|e| format!("{}: {e}", a.model))?;
    let t = Instant::now();
    let m = Model::from_bytes(&bytes, 0, &TreeLimits::default())
        .map_err(|e| format!("{}: {e}", a.model))?;
    let load_s = t.elapsed().as_secs_f64();
    let raw = std::fs::read(&a.rows).map_err(|e| format!("{}: {e}", a.rows))?;
    let rows: Vec<f64> = raw
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap_or_default()))
        .collect();
    let (f, k) = (m.num_features(), m.num_scores());
    if !raw.len().is_multiple_of(8) || !rows.len().is_multiple_of(f) {
        return Err(format!(
            "{}: not a whole number of {f}-feature rows",
            a.rows
        ));
    }
    let n = rows.len() / f;
    let mut want = vec![0.0; n * k];
    pass(&m, &rows, 1, 1, &mut want); // warm-up, and the scores every pass must repeat
    let mut got = vec![0.0; n * k];
    let mut results = Vec::new();
    let threads_list = if a.threads > 1 {
        vec![1, a.threads]
    } else {
        vec![1]
    };
    for &threads in &threads_list {
        for &batch in &a.batches {
            if threads > 1 && batch == 1 {
                continue; // one row is one call on this thread whatever the thread count
            }
            let mut secs = Vec::new();
            for _ in 0..a.reps {
                got.fill(f64::NAN);
                secs.push(pass(&m, &rows, batch, threads, &mut got));
                if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
                    return Err(format!(
                        "batch {batch}, {threads} threads: row {} score {} is {}, one row at a time gave {}",
                        i / k,
                        i % k,
                        got[i],
                        want[i]
                    ));
                }
            }
            let s: Vec<String> = secs.iter().map(|s| format!("{s:e}")).collect();
            results.push(format!(
                r#"{{"batch":{batch},"threads":{threads},"seconds":[{}]}}"#,
                s.join(",")
            ));
        }
    }
    if let Some(p) = &a.predictions {
        let out: Vec<u8> = want.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(p, out).map_err(|e| format!("{p}: {e}"))?;
    }
    Ok(format!(
        r#"{{"contender":"treeserve","trees":{},"features":{f},"scores":{k},"rows":{n},"load_seconds":{load_s:e},"results":[{}]}}"#,
        m.num_trees(),
        results.join(",")
    ))
}

fn main() {
    match parse().and_then(|a| run(&a)) {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("ensemble_bench: {e}");
            std::process::exit(1);
        }
    }
}
