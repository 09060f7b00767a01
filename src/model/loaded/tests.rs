use super::{Engine, Model, PARALLEL_MIN_ROWS};
use crate::import::build::{Built, ImportOptions, build};
use crate::import::{Imported, ImportedTask};
use crate::model::ensemble::{
    Aggregation, BasePlacement, Branch, Ensemble, Leaf, Node, OutputKind, Precision, Split, Test,
    Transform, Tree,
};
use crate::model::wide::{BLOCK, MIN_BLOCK};

struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }
}

/// Leaf-wise trees of `leaves` leaves over `features` features, thresholds in (0, 1).
fn tree(r: &mut Rng, leaves: usize, features: usize, f32m: bool) -> Tree {
    let round = |v: f64| if f32m { v as f32 as f64 } else { v };
    let mut nodes = vec![Node::Leaf(Leaf::Scalar(round(r.unit() - 0.5)))];
    let mut frontier = vec![0];
    while frontier.len() < leaves {
        let at = frontier.swap_remove(r.below(frontier.len()));
        let (y, n) = (nodes.len(), nodes.len() + 1);
        nodes.push(Node::Leaf(Leaf::Scalar(round(r.unit() * 0.2 - 0.1))));
        nodes.push(Node::Leaf(Leaf::Scalar(round(r.unit() * 0.2 - 0.1))));
        nodes[at] = Node::Split(Split {
            feature: r.below(features) as u32,
            test: Test::Lt(round(r.unit())),
            yes: y as u32,
            no: n as u32,
            missing: Branch::Yes,
            zero_is_missing: false,
        });
        frontier.extend([y, n]);
    }
    Tree { nodes, group: 0 }
}

/// An imported model of `trees` trees: an f32 binary classifier, or an f64 regressor.
fn imported(trees: usize, features: usize, classifier: bool) -> Model {
    built(trees, features, classifier).0.model
}

/// [`imported`]'s import, and its trees.
fn built(trees: usize, features: usize, classifier: bool) -> (Built, Ensemble) {
    let mut r = Rng(trees as u64 * 7 + features as u64);
    let ensemble = Ensemble {
        num_features: features as u32,
        outputs: 1,
        trees: (0..trees)
            .map(|_| tree(&mut r, 31, features, classifier))
            .collect(),
        base: vec![0.0],
        base_placement: BasePlacement::Initial,
        aggregation: Aggregation::Sum,
        precision: if classifier {
            Precision::F32
        } else {
            Precision::F64
        },
        zero_snap: !classifier,
        transform: if classifier {
            Transform::XgbSigmoid
        } else {
            Transform::Identity
        },
        output_cast_f32: false,
        output: if classifier {
            OutputKind::BinaryOneMinus
        } else {
            OutputKind::Value
        },
    };
    let imported = Imported {
        ensemble: ensemble.clone(),
        task: if classifier {
            ImportedTask::Classification
        } else {
            ImportedTask::Regression
        },
        features: None,
        classes: None,
        missing_aware: false,
        format: "xgboost",
        source: "test".into(),
        objective: "test".into(),
        warnings: Vec::new(),
    };
    let opts = ImportOptions {
        name: "t".into(),
        ..Default::default()
    };
    (build(imported, opts).expect("builds"), ensemble)
}

fn iris() -> Model {
    let bytes = std::fs::read("models/iris/versions/1/model.tsm").unwrap();
    Model::from_bytes(&bytes, 1, &Default::default()).unwrap()
}

/// `n` different rows of `f` features in (-0.1, 1.1).
fn rows(n: usize, f: usize, seed: u64) -> Vec<f64> {
    let mut r = Rng(seed);
    (0..n * f).map(|_| r.unit() * 1.2 - 0.1).collect()
}

/// Scores and classes of every row: one row at a time.
fn one_by_one(m: &Model, rows: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let (f, k) = (m.num_features(), m.num_scores());
    let mut scores = vec![0.0; rows.len() / f * k];
    let classes = rows
        .chunks_exact(f)
        .zip(scores.chunks_exact_mut(k))
        .map(|(row, out)| m.predict_scores(row, out))
        .collect();
    (scores, classes)
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn batches_on_any_number_of_threads_answer_as_one_row_at_a_time() {
    let models = [
        ("wide f64 regressor", imported(40, 7, false)),
        ("wide f32 classifier", imported(33, 5, true)),
        ("flat regressor", imported(8, 4, false)),
        ("iris", iris()),
    ];
    assert!(matches!(models[0].1.engine, Engine::Wide(_)));
    assert!(matches!(models[1].1.engine, Engine::Wide(_)));
    assert!(matches!(models[2].1.engine, Engine::Ensemble(_)));
    assert!(matches!(models[3].1.engine, Engine::Forest(_)));
    for (name, m) in &models {
        let min = m.parallel_min_rows();
        assert!(min >= PARALLEL_MIN_ROWS, "{name}");
        let counts = [
            0,
            1,
            MIN_BLOCK - 1,
            MIN_BLOCK,
            MIN_BLOCK + 1,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            PARALLEL_MIN_ROWS - 1,
            PARALLEL_MIN_ROWS,
            PARALLEL_MIN_ROWS + 1,
            2 * PARALLEL_MIN_ROWS + 1,
            2 * min - 1,
            2 * min,
            2 * min + BLOCK + 1,
            3 * min + 5,
        ];
        let (f, k) = (m.num_features(), m.num_scores());
        for (i, &n) in counts.iter().enumerate() {
            if n > 20_000 {
                continue; // a one-tree model's threshold: the split is the same code
            }
            let x = rows(n, f, i as u64 + 1);
            let (want_scores, want_classes) = one_by_one(m, &x);
            let mut scores = vec![f64::NAN; n * k];
            let mut classes = vec![usize::MAX; n];
            m.predict_batch(&x, &mut scores, &mut classes);
            assert_eq!(bits(&scores), bits(&want_scores), "{name}: {n} rows");
            assert_eq!(classes, want_classes, "{name}: {n} rows");
            for threads in [1, 2, 3, 4, 8] {
                let mut scores = vec![f64::NAN; n * k];
                let mut classes = vec![usize::MAX; n];
                m.predict_batch_threads(&x, &mut scores, &mut classes, threads);
                let what = format!("{name}: {n} rows on {threads} threads");
                assert_eq!(bits(&scores), bits(&want_scores), "{what}");
                assert_eq!(classes, want_classes, "{what}");
                let mut classes = vec![usize::MAX; n];
                m.predict_rows(&x, &mut scores, &mut classes, false, threads);
                let voted: Vec<usize> = x.chunks_exact(f).map(|r| m.predict(r)).collect();
                assert_eq!(classes, voted, "{what}, classes only");
            }
        }
    }
}

#[test]
fn concurrent_batches_share_the_cores_and_stay_exact() {
    let m = imported(40, 7, false);
    let n = 4 * m.parallel_min_rows() + 7;
    let x = rows(n, m.num_features(), 99);
    let (want, _) = one_by_one(&m, &x);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..3 {
                    let mut scores = vec![0.0; n];
                    let mut classes = vec![0; n];
                    m.predict_batch_threads(&x, &mut scores, &mut classes, 4);
                    assert_eq!(bits(&scores), bits(&want));
                }
            });
        }
    });
}

#[test]
fn imports_write_the_wide_layout_and_the_trees_still_load_alike() {
    use crate::model::{
        ArtifactError, FORMAT_VERSION_ENSEMBLE, FORMAT_VERSION_WIDE, encode_artifact_as,
        read_parts, unseal_version,
    };
    for classifier in [true, false] {
        let (b, e) = built(40, 12, classifier);
        let (format, _) = unseal_version(&b.artifact).unwrap();
        assert_eq!(format, FORMAT_VERSION_WIDE, "an import of 40 trees");
        let (manifest, wide_payload) = read_parts(&b.artifact).unwrap();
        let trees = rmp_serde::to_vec(&e).unwrap();
        let v2 = encode_artifact_as(&manifest, &trees, FORMAT_VERSION_ENSEMBLE);
        let (m3, m2) = (
            Model::from_bytes(&b.artifact, 1, &Default::default()).unwrap(),
            Model::from_bytes(&v2, 1, &Default::default()).unwrap(),
        );
        assert!(matches!(m2.engine, Engine::Wide(_)) && matches!(m3.engine, Engine::Wide(_)));
        let x = rows(2000, 12, 3);
        let (s3, c3) = one_by_one(&m3, &x);
        let (s2, c2) = one_by_one(&m2, &x);
        assert_eq!((bits(&s3), c3), (bits(&s2), c2));
        // Each payload under the other's format number: refused, not misread.
        let swapped = [
            encode_artifact_as(&manifest, wide_payload, FORMAT_VERSION_ENSEMBLE),
            encode_artifact_as(&manifest, &trees, FORMAT_VERSION_WIDE),
        ];
        for a in swapped {
            let err = Model::from_bytes(&a, 1, &Default::default()).unwrap_err();
            assert!(
                matches!(
                    err,
                    ArtifactError::Decode(_) | ArtifactError::InvalidTree(_)
                ),
                "{err}"
            );
        }
    }
    // Fewer trees than the wide evaluator takes: the trees, format 2.
    let (small, _) = built(5, 4, true);
    assert_eq!(
        unseal_version(&small.artifact).unwrap().0,
        FORMAT_VERSION_ENSEMBLE
    );
}

#[test]
fn a_load_for_batches_answers_as_a_served_one_without_its_identity_or_pairs() {
    use crate::model::{FORMAT_VERSION_ENSEMBLE, encode_artifact_as, read_parts};
    for classifier in [true, false] {
        let (b, e) = built(40, 12, classifier);
        let (manifest, _) = read_parts(&b.artifact).unwrap();
        let trees = rmp_serde::to_vec(&e).unwrap();
        let v2 = encode_artifact_as(&manifest, &trees, FORMAT_VERSION_ENSEMBLE);
        for artifact in [&b.artifact, &v2] {
            let served = Model::from_bytes(artifact, 1, &Default::default()).unwrap();
            let batches = Model::for_batches(artifact, 1, &Default::default()).unwrap();
            assert_eq!(served.sha256(), crate::model::sha256_hex(artifact));
            assert_eq!(batches.sha256(), "");
            let (Engine::Wide(s), Engine::Wide(w)) = (&served.engine, &batches.engine) else {
                panic!("40 trees: the wide evaluator");
            };
            // f32 nodes served by pairs of levels; for batches as the file holds them.
            assert_eq!((s.by_pairs(), w.by_pairs()), (classifier, false));
            let x = rows(3000, 12, 5);
            let (k, n) = (served.num_scores(), x.len() / 12);
            let (mut sb, mut cb) = (vec![0.0; n * k], vec![0; n]);
            batches.predict_batch_threads(&x, &mut sb, &mut cb, 2);
            let (s1, c1) = one_by_one(&served, &x);
            assert_eq!((bits(&sb), &cb), (bits(&s1), &c1));
            let (b1, d1) = one_by_one(&batches, &x);
            assert_eq!((bits(&b1), d1), (bits(&s1), c1));
        }
    }
    // A damaged artifact is refused alike.
    let (b, _) = built(40, 12, true);
    let mut bad = b.artifact.clone();
    let n = bad.len();
    bad[n - 10] ^= 1;
    let (a, z) = (
        Model::from_bytes(&bad, 1, &Default::default()).unwrap_err(),
        Model::for_batches(&bad, 1, &Default::default()).unwrap_err(),
    );
    assert_eq!(a.to_string(), z.to_string());
}

#[test]
fn a_smartcore_manifest_in_format_3_is_refused() {
    use crate::model::{FORMAT_VERSION_WIDE, encode_artifact_as, read_parts};
    let bytes = std::fs::read("models/iris/versions/1/model.tsm").unwrap();
    let (manifest, _) = read_parts(&bytes).unwrap();
    let (b, _) = built(40, 4, true);
    let (_, wide_payload) = read_parts(&b.artifact).unwrap();
    let a = encode_artifact_as(&manifest, wide_payload, FORMAT_VERSION_WIDE);
    let err = Model::from_bytes(&a, 1, &Default::default()).unwrap_err();
    assert!(err.to_string().contains("format version 3"), "{err}");
}
