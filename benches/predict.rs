//! Criterion benches: prediction (flat evaluator against smartcore's `predict`), the
//! `/score` request decoding (IRIS's 4 features, and 30 as Python writes them) and response
//! encoding, the metrics and drift observation of
//! one request, and the whole in-process request handler (treeserve's, against the floor
//! server's handler on the same requests), and the CSV's number parser (`csv_numbers`:
//! treeserve's against `fast-float2` and `str::parse`, on numpy's `%.17g` numbers).
//!
//! `cargo bench --bench predict`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use smartcore::ensemble::random_forest_classifier::RandomForestClassifier;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::tree::decision_tree_classifier::DecisionTreeClassifier;
use std::hint::black_box;
use treeserve::Model;
use treeserve::model::{self, Algorithm};
use treeserve::protocol::score;
use treeserve::train::{TrainConfig, load_csv, train_dataset};

type Tree = DecisionTreeClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>;
type Forest = RandomForestClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>;

/// The next state of the benches' generator (a 64-bit LCG: Knuth's MMIX constants).
fn next(s: &mut u64) -> u64 {
    *s = s
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *s
}

/// The next uniform in [0, 1) (53 bits) of the generator at `s`.
fn uniform(s: &mut u64) -> f64 {
    (next(s) >> 11) as f64 / (1u64 << 53) as f64
}

fn rows(n: usize) -> Vec<f64> {
    let mut s = 1u64;
    (0..n * 4)
        .map(|i| uniform(&mut s) * [8.0, 4.5, 7.0, 2.5][i % 4])
        .collect()
}

fn prediction(c: &mut Criterion) {
    let data = load_csv(
        std::path::Path::new("models/data/iris.csv"),
        "Species",
        Some("Id"),
    )
    .unwrap();
    for (name, algorithm) in [
        ("tree", Algorithm::DecisionTree),
        ("forest100", Algorithm::RandomForest),
    ] {
        let t = train_dataset(
            &data,
            &TrainConfig {
                algorithm,
                n_trees: 100,
                ..Default::default()
            },
        )
        .unwrap();
        let m = Model::from_bytes(&t.artifact, 1, &Default::default()).unwrap();
        let (_, payload) = model::read_parts(&t.artifact).unwrap();
        let mut g = c.benchmark_group(format!("predict/{name}"));
        for n in [1usize, 100, 10_000] {
            let x = rows(n);
            let matrix = DenseMatrix::new(n, 4, x.clone(), false).unwrap();
            g.throughput(Throughput::Elements(n as u64));
            g.bench_with_input(BenchmarkId::new("flat", n), &x, |b, x| {
                b.iter(|| {
                    x.chunks_exact(4)
                        .map(|r| m.predict(black_box(r)))
                        .sum::<usize>()
                })
            });
            match algorithm {
                Algorithm::DecisionTree => {
                    let sc: Tree = rmp_serde::from_slice(payload).unwrap();
                    g.bench_with_input(BenchmarkId::new("smartcore", n), &matrix, |b, x| {
                        b.iter(|| sc.predict(black_box(x)).unwrap())
                    });
                }
                Algorithm::RandomForest => {
                    let sc: Forest = rmp_serde::from_slice(payload).unwrap();
                    g.bench_with_input(BenchmarkId::new("smartcore", n), &matrix, |b, x| {
                        b.iter(|| sc.predict(black_box(x)).unwrap())
                    });
                }
                Algorithm::Imported => unreachable!("the benchmark trains its models"),
            }
        }
        g.finish();
    }
}

fn codec(c: &mut Criterion) {
    let bytes = std::fs::read("models/iris/versions/1/model.tsm").unwrap();
    let m = Model::from_bytes(&bytes, 1, &Default::default()).unwrap();
    let enc = score::Encoder::new(&m);
    let one =
        br#"{"SepalLengthCm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}"#;
    let batch = format!(
        "[{}]",
        vec![std::str::from_utf8(one).unwrap(); 100].join(",")
    );
    let mut buf = Vec::new();
    let mut g = c.benchmark_group("score_codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode/1", |b| {
        b.iter(|| score::decode(black_box(one), m.features(), 10_000, &mut buf).unwrap())
    });
    g.bench_function("encode/1", |b| b.iter(|| enc.single(black_box(1))));
    g.throughput(Throughput::Elements(100));
    g.bench_function("decode/100", |b| {
        b.iter(|| {
            score::decode(black_box(batch.as_bytes()), m.features(), 10_000, &mut buf).unwrap()
        })
    });
    // One row of 30 features, as Python's `json.dumps` writes them (shortest round-trip
    // form: mostly 16–17 digits), 1,000 different rows in turn.
    let names: Vec<String> = (0..30).map(|i| format!("f{i}")).collect();
    let mut state = 7u64;
    let wide: Vec<String> = (0..1000)
        .map(|_| {
            let fields: Vec<String> = names
                .iter()
                .map(|n| format!("\"{n}\": {}", (uniform(&mut state) - 0.5) * 6.0))
                .collect();
            format!("{{{}}}", fields.join(", "))
        })
        .collect();
    g.throughput(Throughput::Elements(1));
    let mut k = 0;
    g.bench_function("decode/1x30", |b| {
        b.iter(|| {
            k = (k + 1) % wide.len();
            score::decode(black_box(wide[k].as_bytes()), &names, 10_000, &mut buf).unwrap()
        })
    });
    let classes: Vec<usize> = (0..100).map(|i| i % 3).collect();
    g.bench_function("encode/100", |b| {
        b.iter(|| enc.encode(black_box(&classes), None, true))
    });
    g.finish();
}

/// What metrics and drift add to one `/score` request: the request counters and duration
/// histogram, the batch-size histogram, and the model's prediction and drift counters.
fn observe(c: &mut Criterion) {
    let bytes = std::fs::read("models/iris/versions/1/model.tsm").unwrap();
    let m = Model::from_bytes(&bytes, 1, &Default::default()).unwrap();
    let stats = treeserve::stats::ModelStats::new(&m);
    let metrics = treeserve::metrics::Metrics::new();
    let row = [6.6, 3.0, 4.4, 1.4];
    let mut g = c.benchmark_group("observe");
    g.throughput(Throughput::Elements(1));
    g.bench_function("request", |b| {
        b.iter(|| {
            metrics.request_started();
            metrics.observe_batch(black_box(1));
            metrics.request_finished(
                treeserve::metrics::Route::Score,
                &http::Method::POST,
                200,
                black_box(42e-6),
            )
        })
    });
    g.bench_function("row_stats", |b| {
        b.iter(|| stats.record(black_box(&row), black_box(1)))
    });
    g.finish();
}

/// The whole request handler in process (no socket, no HTTP parsing): treeserve's
/// `http::respond` with the shipped registry and default configuration (metrics and drift
/// on), against the floor server's handler (`floor_handler.rs`), on the same bodies.
fn handler(c: &mut Criterion) {
    use bytes::Bytes;
    use http_body_util::Full;
    use std::sync::Arc;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let state = treeserve::http::AppState::new(
        treeserve::ServeConfig::new(std::path::Path::new("models")),
        Arc::new(treeserve::registry::FsRegistry::new("models")),
    );
    state.fleet().reload();
    assert!(state.fleet().ready(), "the shipped registry loads");
    let bytes = std::fs::read("models/iris/versions/1/model.tsm").unwrap();
    let m = Model::from_bytes(&bytes, 1, &Default::default()).unwrap();
    let one =
        r#"{"SepalLengthCm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}"#;
    let hundred = format!("[{}]", vec![one; 100].join(","));
    let v2 = r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[6.6,3,4.4,1.4]}],"outputs":[{"name":"label"}]}"#;
    let cases = [
        ("score/1", "/score", Bytes::from(one), 1),
        ("score/100", "/score", Bytes::from(hundred), 100),
        ("v2/1", "/v2/models/iris/infer", Bytes::from(v2), 1),
    ];
    let mut g = c.benchmark_group("handler");
    for (name, path, body, rows) in cases {
        g.throughput(Throughput::Elements(rows));
        let request = || {
            http::Request::post(path)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(body.clone()))
                .unwrap()
        };
        let resp = rt.block_on(treeserve::http::respond(request(), &state));
        assert_eq!(resp.status(), 200, "{name}");
        g.bench_function(BenchmarkId::new("treeserve", name), |b| {
            b.iter(|| rt.block_on(treeserve::http::respond(black_box(request()), &state)))
        });
        assert_eq!(
            floor_handler::answer(&m, path, "iris", "1", &body).status(),
            200
        );
        g.bench_function(BenchmarkId::new("floor", name), |b| {
            b.iter(|| {
                // Through `block_on` too, as treeserve's, so both pay the same overhead.
                rt.block_on(async {
                    let req = black_box(request());
                    let (parts, body) = req.into_parts();
                    // The floor collects the body into Bytes; here it is already whole.
                    let body = body.into_inner().unwrap_or_default();
                    floor_handler::answer(&m, parts.uri.path(), "iris", "1", &body)
                })
            })
        });
    }
    g.finish();
}

/// 100,000 different numbers as `np.savetxt`'s `%.17g` writes them (17 digits, fixed from
/// 1e-4 to 1e17), of a standard normal's spread of magnitudes, comma-separated.
fn numpy_numbers(n: usize) -> Vec<u8> {
    let mut s = 9u64;
    let mut text = String::new();
    for _ in 0..n {
        next(&mut s);
        // A sum of uniforms: roughly normal, about two thirds below 1 in magnitude.
        let u = |k: u32| ((s >> (11 + 13 * k)) & 0x1fff) as f64 / 8192.0;
        let x = (u(0) + u(1) + u(2) + u(3) - 2.0) * 1.7;
        let e = x.abs().log10().floor() as i32;
        let cell = if (-4..17).contains(&e) {
            format!("{x:.*}", (16 - e) as usize)
        } else {
            format!("{x:.16e}")
        };
        text.push_str(&cell);
        text.push(',');
    }
    text.into_bytes()
}

/// A parser of the number a field starts with: its value and length.
type NumberAt = dyn Fn(&[u8]) -> Option<(f64, usize)>;

fn csv_numbers(c: &mut Criterion) {
    let text = numpy_numbers(100_000);
    let mut g = c.benchmark_group("csv_numbers");
    g.throughput(Throughput::Elements(100_000));
    // Each field's number where it starts; the field's end is the byte after it.
    let each = |parse: &NumberAt| {
        let (mut i, mut sum) = (0, 0.0);
        while i < text.len() {
            let (v, used) = parse(&text[i..]).expect("a number");
            sum += v;
            i += used + 1;
        }
        sum
    };
    g.bench_function("treeserve", |b| {
        b.iter(|| each(&|t| treeserve_parse(black_box(t))))
    });
    g.bench_function("fast_float2", |b| {
        b.iter(|| each(&|t| fast_float2::parse_partial::<f64, _>(black_box(t)).ok()))
    });
    g.bench_function("str_parse", |b| {
        b.iter(|| {
            each(&|t| {
                let end = t.iter().position(|&c| c == b',').unwrap_or(t.len());
                let v = std::str::from_utf8(&t[..end]).ok()?.parse().ok()?;
                Some((v, end))
            })
        })
    });
    g.finish();
}

/// What `treeserve predict` does with a field: its parser, the general one behind it.
fn treeserve_parse(t: &[u8]) -> Option<(f64, usize)> {
    treeserve::decimal::parse_prefix(t).or_else(|| fast_float2::parse_partial::<f64, _>(t).ok())
}

#[path = "floor_handler.rs"]
mod floor_handler;

criterion_group!(benches, prediction, codec, observe, handler, csv_numbers);
criterion_main!(benches);
