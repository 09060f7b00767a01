//! The artifact format: round trip, truncation, byte flips, hostile trees, and agreement of
//! the flat evaluator with smartcore's own `predict`.

use proptest::prelude::*;
use smartcore::ensemble::random_forest_classifier::RandomForestClassifier;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::tree::decision_tree_classifier::DecisionTreeClassifier;
use treeserve::Model;
use treeserve::model::tree::{MirrorTree, TreeLimits};
use treeserve::model::{self, Algorithm, ArtifactError};
use treeserve::train::{Dataset, TrainConfig, Trained, load_csv, train_dataset};

use crate::common::iris_csv;

type Tree = DecisionTreeClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>;
type Forest = RandomForestClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>;
type TreeEdit = Box<dyn Fn(&mut MirrorTree)>;
type ManifestEdit = Box<dyn Fn(&mut model::Manifest)>;

fn iris() -> Dataset {
    load_csv(&iris_csv(), "Species", Some("Id")).unwrap()
}

fn trained(algorithm: Algorithm) -> Trained {
    let config = TrainConfig {
        algorithm,
        n_trees: 10,
        ..TrainConfig::default()
    };
    train_dataset(&iris(), &config).unwrap()
}

fn load(bytes: &[u8]) -> Result<Model, ArtifactError> {
    Model::from_bytes(bytes, 1, &TreeLimits::default())
}

#[test]
fn round_trip_keeps_the_manifest() {
    for algorithm in [Algorithm::DecisionTree, Algorithm::RandomForest] {
        let t = trained(algorithm);
        let m = load(&t.artifact).unwrap();
        assert_eq!(m.manifest(), &t.manifest);
        assert_eq!(model::read_manifest(&t.artifact).unwrap(), t.manifest);
        assert_eq!(m.manifest().payload_sha256.len(), 64);
        assert_eq!(
            m.manifest().training.sha256,
            model::sha256_hex(&std::fs::read(iris_csv()).unwrap())
        );
        assert!(m.manifest().golden.len() >= 3);
        assert_eq!(m.manifest().feature_stats.len(), 4);
        let s = &m.manifest().feature_stats[2];
        assert!(s.min < s.mean && s.mean < s.max && s.std > 0.0);
        assert_eq!(s.bin_fractions.len(), s.bin_edges.len() + 1);
        assert!((s.bin_fractions.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        // Re-encoding gives the same bytes.
        let (manifest, payload) = model::read_parts(&t.artifact).unwrap();
        assert_eq!(model::encode_artifact(&manifest, payload), t.artifact);
    }
}

#[test]
fn header_errors_are_specific() {
    let t = trained(Algorithm::DecisionTree);
    let mut b = t.artifact.clone();
    b[0] = b'X';
    assert!(matches!(load(&b), Err(ArtifactError::BadMagic)));
    let mut b = t.artifact.clone();
    b[8] = 4;
    assert!(matches!(
        load(&b),
        Err(ArtifactError::UnsupportedVersion { found: 4 })
    ));
    // Versions 2 and 3 are the imported models' formats: a smartcore payload under either
    // is refused.
    for v in [2u8, 3] {
        let mut b = t.artifact.clone();
        b[8] = v;
        let want = format!("format version {v}");
        assert!(
            matches!(load(&b), Err(ArtifactError::Invalid(ref m)) if m.contains(&want)),
            "{:?}",
            load(&b).err()
        );
    }
    let mut b = t.artifact.clone();
    b.push(0);
    assert!(matches!(load(&b), Err(ArtifactError::Decode(_))));
    assert!(matches!(
        load(b"TREESERV"),
        Err(ArtifactError::Truncated(_))
    ));
    assert!(matches!(load(b""), Err(ArtifactError::Truncated(_))));
}

#[test]
fn every_truncation_fails_cleanly() {
    for algorithm in [Algorithm::DecisionTree, Algorithm::RandomForest] {
        let t = trained(algorithm);
        for len in 0..t.artifact.len() {
            assert!(load(&t.artifact[..len]).is_err(), "{len} bytes loaded");
        }
    }
}

/// Deterministic pseudo-random positions and values.
fn lcg(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 33
}

/// Large artifacts (from 1 MiB) hash on a helper thread while they decode: what they are
/// told stays what a small one is told, the body's checksum first, then a decoding error,
/// then the payload's checksum, then what the payload holds.
#[test]
fn a_large_artifact_is_told_its_errors_in_the_same_order() {
    let t = trained(Algorithm::DecisionTree);
    let (manifest, _) = model::read_parts(&t.artifact).unwrap();
    let kind = |b: &[u8]| match load(b) {
        Err(ArtifactError::Checksum(what)) => format!("checksum {what}"),
        Err(ArtifactError::Decode(_)) => "decode".to_string(),
        Err(e) => format!("other: {e}"),
        Ok(_) => "loaded".to_string(),
    };
    for len in [1000, 3 << 20] {
        // A payload that is not a tree: refused for what it holds (it does not decode).
        let big = model::encode_artifact(&manifest, &vec![7u8; len]);
        assert_eq!(kind(&big), "decode", "{len}");
        // A flipped byte, the header's checksum left: the body's checksum.
        for at in [60, big.len() / 2, big.len() - 1] {
            let mut b = big.clone();
            b[at] ^= 0x10;
            assert_eq!(kind(&b), "checksum body", "{len} at {at}");
        }
        // Not a body at all, sealed: a decoding error.
        assert_eq!(kind(&model::seal(&vec![0xc1; len])), "decode", "{len}");
        // The payload changed and the body re-sealed: the payload's checksum.
        let body = &big[52..];
        let mut changed = body.to_vec();
        let n = changed.len();
        changed[n - 3] ^= 1;
        assert_eq!(kind(&model::seal(&changed)), "checksum payload", "{len}");
    }
}

#[test]
fn byte_flips_fail_or_load_a_valid_model() {
    let t = trained(Algorithm::DecisionTree);
    let mut state = 7;
    // Flips anywhere: the body checksum refuses them all.
    for _ in 0..2000 {
        let mut b = t.artifact.clone();
        let i = (lcg(&mut state) as usize) % b.len();
        b[i] ^= 1 << (lcg(&mut state) % 8);
        assert!(load(&b).is_err(), "flip at {i} loaded");
    }
    // Flips inside the payload with every checksum recomputed (a hostile or buggy writer):
    // structure validation and the golden rows must catch whatever decodes wrongly.
    let (manifest, payload) = model::read_parts(&t.artifact).unwrap();
    let (mut refused, mut accepted) = (0, 0);
    for _ in 0..3000 {
        let mut p = payload.to_vec();
        let i = (lcg(&mut state) as usize) % p.len();
        p[i] = lcg(&mut state) as u8;
        match load(&model::encode_artifact(&manifest, &p)) {
            Err(_) => refused += 1,
            Ok(m) => {
                accepted += 1;
                // A model that loads must predict without panicking on any finite row.
                for _ in 0..50 {
                    let row: Vec<f64> = (0..4)
                        .map(|_| (lcg(&mut state) % 100) as f64 / 10.0)
                        .collect();
                    assert!(m.predict(&row) < 3);
                }
            }
        }
    }
    assert!(refused > 0 && refused + accepted == 3000);
    // Flips inside the manifest, re-sealed.
    let body_start = 52;
    for _ in 0..2000 {
        let (m2, p2) = model::read_parts(&t.artifact).unwrap();
        let mut body = t.artifact[body_start..].to_vec();
        let i = (lcg(&mut state) as usize) % (body.len() - p2.len());
        body[i] ^= 1 << (lcg(&mut state) % 8);
        let _ = m2;
        if let Ok(m) = load(&model::seal(&body)) {
            assert_eq!(m.num_features(), m.features().len());
        }
    }
}

fn with_tree(t: &Trained, edit: impl FnOnce(&mut MirrorTree)) -> Result<Model, ArtifactError> {
    let (manifest, payload) = model::read_parts(&t.artifact).unwrap();
    let mut tree: MirrorTree = rmp_serde::from_slice(payload).unwrap();
    edit(&mut tree);
    load(&model::encode_artifact(
        &manifest,
        &rmp_serde::to_vec_named(&tree).unwrap(),
    ))
}

#[test]
fn hostile_trees_are_refused() {
    let t = trained(Algorithm::DecisionTree);
    assert!(with_tree(&t, |_| {}).is_ok());
    let internal = |tree: &MirrorTree| {
        tree.nodes
            .iter()
            .position(|n| n.true_child.is_some())
            .unwrap()
    };
    let cases: Vec<(&str, TreeEdit)> = vec![
        (
            "cycle",
            Box::new(move |tr| {
                let i = internal(tr);
                tr.nodes[i].true_child = Some(i)
            }),
        ),
        (
            "back edge",
            Box::new(move |tr| {
                let last = tr.nodes.len() - 1;
                tr.nodes[last].true_child = Some(0);
                tr.nodes[last].false_child = Some(0);
            }),
        ),
        (
            "out of range",
            Box::new(move |tr| {
                let i = internal(tr);
                tr.nodes[i].false_child = Some(1 << 40)
            }),
        ),
        (
            "feature",
            Box::new(move |tr| {
                let i = internal(tr);
                tr.nodes[i].split_feature = 4
            }),
        ),
        ("class", Box::new(|tr| tr.nodes[0].output = 3)),
        (
            "nan threshold",
            Box::new(move |tr| {
                let i = internal(tr);
                tr.nodes[i].split_value = Some(f64::NAN)
            }),
        ),
        (
            "no threshold",
            Box::new(move |tr| {
                let i = internal(tr);
                tr.nodes[i].split_value = None
            }),
        ),
        (
            "one child",
            Box::new(move |tr| {
                let i = internal(tr);
                tr.nodes[i].false_child = None
            }),
        ),
        ("empty", Box::new(|tr| tr.nodes.clear())),
        ("features", Box::new(|tr| tr.num_features = 5)),
        ("classes", Box::new(|tr| tr.classes = vec![0, 2, 1])),
        // A valid structure that answers differently: caught by the golden rows.
        (
            "threshold moved",
            Box::new(move |tr| {
                for n in tr.nodes.iter_mut() {
                    if let Some(v) = n.split_value.as_mut() {
                        *v += 100.0;
                    }
                }
            }),
        ),
    ];
    for (name, edit) in cases {
        let err = with_tree(&t, |tr| edit(tr)).expect_err(name);
        let expect_golden = name == "threshold moved";
        assert_eq!(
            matches!(err, ArtifactError::Golden { .. }),
            expect_golden,
            "{name}: {err}"
        );
    }
    // Deep chains are refused by the depth limit.
    let limits = TreeLimits {
        max_depth: 2,
        ..TreeLimits::default()
    };
    let err = Model::from_bytes(&t.artifact, 1, &limits).unwrap_err();
    assert!(err.to_string().contains("deeper"), "{err}");
}

#[test]
fn manifest_inconsistencies_are_refused() {
    let t = trained(Algorithm::DecisionTree);
    let (manifest, payload) = model::read_parts(&t.artifact).unwrap();
    let edits: Vec<ManifestEdit> = vec![
        Box::new(|m| m.features[1] = m.features[0].clone()),
        Box::new(|m| m.features.pop().map(|_| ()).unwrap()),
        Box::new(|m| m.classes.truncate(1)),
        Box::new(|m| m.leaf_counts.push(Vec::new())),
        Box::new(|m| m.leaf_counts[0].pop().map(|_| ()).unwrap()),
        Box::new(|m| m.golden.clear()),
        Box::new(|m| m.golden[0].class = (m.golden[0].class + 1) % 3),
        Box::new(|m| m.golden[0].features.push(1.0)),
        Box::new(|m| m.feature_stats.pop().map(|_| ()).unwrap()),
        Box::new(|m| m.name = "../x".into()),
    ];
    for (i, edit) in edits.iter().enumerate() {
        let mut m = manifest.clone();
        edit(&mut m);
        assert!(
            load(&model::encode_artifact(&m, payload)).is_err(),
            "edit {i} loaded"
        );
    }
}

fn matrix(rows: &[Vec<f64>]) -> DenseMatrix<f64> {
    DenseMatrix::from_2d_vec(&rows.to_vec()).unwrap()
}

/// Random data sets: 3 features, 2–4 classes, 8–60 rows, values on a coarse grid so that
/// ties and repeated values occur.
fn dataset() -> impl Strategy<Value = Dataset> {
    (2usize..=4, 8usize..=60).prop_flat_map(|(k, n)| {
        (
            prop::collection::vec(prop::collection::vec(-20i32..20, 3), n),
            prop::collection::vec(0..k as u32, n),
        )
            .prop_filter("two classes", |(_, y)| y.iter().any(|&c| c != y[0]))
            .prop_map(move |(x, y)| Dataset {
                features: vec!["a".into(), "b".into(), "c".into()],
                target: "t".into(),
                classes: (0..k).map(|c| format!("class{c}")).collect(),
                x: x.iter().flatten().map(|&v| v as f64 / 4.0).collect(),
                y,
                values: Vec::new(),
                sha256: String::new(),
                source: "random.csv".into(),
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn flat_tree_agrees_with_smartcore(
        data in dataset(),
        rows in prop::collection::vec(prop::collection::vec(-24i32..24, 3), 50),
        depth in prop::option::of(1u16..6),
    ) {
        let config = TrainConfig { max_depth: depth, test_size: 0.25, ..TrainConfig::default() };
        let Ok(t) = train_dataset(&data, &config) else { return Ok(()) };
        let m = load(&t.artifact).unwrap();
        let (_, payload) = model::read_parts(&t.artifact).unwrap();
        let tree: Tree = rmp_serde::from_slice(payload).unwrap();
        let rows: Vec<Vec<f64>> = rows.iter().map(|r| r.iter().map(|&v| v as f64 / 4.0 + 0.05).collect()).collect();
        let expected: Vec<u32> = tree.predict(&matrix(&rows)).unwrap();
        for (r, e) in rows.iter().zip(&expected) {
            prop_assert_eq!(m.predict(r), *e as usize);
        }
        // And on the training grid itself, where values equal thresholds' neighbours.
        let train_rows: Vec<Vec<f64>> = data.x.chunks(3).map(<[f64]>::to_vec).collect();
        let expected: Vec<u32> = tree.predict(&matrix(&train_rows)).unwrap();
        for (r, e) in train_rows.iter().zip(&expected) {
            prop_assert_eq!(m.predict(r), *e as usize);
        }
    }

    #[test]
    fn flat_forest_agrees_with_smartcore(
        data in dataset(),
        rows in prop::collection::vec(prop::collection::vec(-24i32..24, 3), 30),
        seed in 0u64..1000,
    ) {
        let config = TrainConfig {
            algorithm: Algorithm::RandomForest, n_trees: 7, seed, test_size: 0.25, ..TrainConfig::default()
        };
        let Ok(t) = train_dataset(&data, &config) else { return Ok(()) };
        let m = load(&t.artifact).unwrap();
        let (_, payload) = model::read_parts(&t.artifact).unwrap();
        let forest: Forest = rmp_serde::from_slice(payload).unwrap();
        let rows: Vec<Vec<f64>> = rows.iter().map(|r| r.iter().map(|&v| v as f64 / 4.0).collect()).collect();
        let expected: Vec<u32> = forest.predict(&matrix(&rows)).unwrap();
        let mut proba = vec![0.0; data.classes.len()];
        for (r, e) in rows.iter().zip(&expected) {
            prop_assert_eq!(m.predict(r), *e as usize);
            m.predict_proba(r, &mut proba);
            prop_assert!((proba.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
    }
}

#[test]
fn tree_probabilities_come_from_leaf_counts() {
    let t = trained(Algorithm::DecisionTree);
    let m = load(&t.artifact).unwrap();
    let data = iris();
    let mut proba = vec![0.0; 3];
    for i in 0..data.rows() {
        m.predict_proba(data.row(i), &mut proba);
        let best = proba
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
            .unwrap()
            .0;
        assert_eq!(best, m.predict(data.row(i)), "row {i}: {proba:?}");
    }
}

/// Bodies whose MessagePack length prefixes claim gigabytes, or nest deeper than any stack.
fn hostile_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let mut deep = vec![0x81, 0xa8];
    deep.extend_from_slice(b"manifest");
    deep.extend(std::iter::repeat_n(0x91, 200_000));
    vec![
        (
            "map32 of 2^32-1 entries",
            vec![0xdf, 0xff, 0xff, 0xff, 0xff],
        ),
        (
            "array32 of 2^32-1 entries",
            vec![0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0],
        ),
        ("bin32 of 4 GiB", {
            let mut b = vec![0x82, 0xa8];
            b.extend_from_slice(b"manifest");
            b.extend_from_slice(&[0xdd, 0xff, 0xff, 0xff, 0xf0]);
            b
        }),
        (
            "str32 key of 4 GiB",
            vec![0x81, 0xdb, 0xff, 0xff, 0xff, 0xff, b'a'],
        ),
        ("200,000 nested arrays", deep),
    ]
}

#[test]
fn hostile_length_prefixes_and_nesting_are_refused_cheaply() {
    for (name, body) in hostile_bodies() {
        let bytes = model::seal(&body);
        let started = std::time::Instant::now();
        let err = Model::from_bytes(&bytes, 1, &TreeLimits::default()).unwrap_err();
        assert!(matches!(err, ArtifactError::Decode(_)), "{name}: {err:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{name}"
        );
    }
}

#[test]
fn hostile_artifacts_fit_in_a_small_address_space() {
    // The binary validates each artifact under a 256 MiB address-space limit: a loader that
    // believed a length prefix would fail to allocate and abort instead of refusing.
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, body)) in hostile_bodies().into_iter().enumerate() {
        let path = dir.path().join(format!("h{i}.tsm"));
        std::fs::write(&path, model::seal(&body)).unwrap();
        let out = std::process::Command::new("prlimit")
            .args(["--as=268435456", "--"])
            .arg(crate::common::BIN)
            .args(["publish", path.to_str().unwrap(), "--registry"])
            .arg(dir.path().join("reg"))
            .output()
            .expect("prlimit (util-linux) runs the binary");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.contains("decode") || stderr.contains("invalid"),
            "{name}: {stderr}"
        );
    }
}
