//! Refusals (each naming the field) and hostile inputs: truncations, wrong magic, huge
//! declared lengths, bounded repeated messages, a million-node tree, random bytes and
//! mutations.

use super::proto::*;
use super::read;
use super::tests::*;
use crate::import::ImportError;
use crate::model::flat::FlatEnsemble;
use proptest::prelude::*;

#[test]
fn refusals_name_the_field() {
    let reg = |extra: Vec<AttributeProto>| reg_model(extra);
    for (bytes, want) in [
        (
            reg(vec![string("aggregate_function", "MIN")]),
            "aggregate_function MIN",
        ),
        (reg(vec![string("post_transform", "PROBIT")]), "PROBIT"),
        (
            reg(vec![string("post_transform", "LOGISTIC")]),
            "post_transform Logistic",
        ),
        (
            reg(vec![floats("base_values", &[1.0, 2.0])]),
            "2 base values",
        ),
        (
            model_with(
                vec![op("TreeEnsembleRegressor", regressor(vec![], 0), &["Y"])],
                7,
                1,
                3,
            ),
            "element type 7",
        ),
        (model_with(vec![], 1, 1, 3), "no TreeEnsembleClassifier"),
        (
            model_with(
                vec![op("TreeEnsembleRegressor", regressor(vec![], 0), &["Y"])],
                1,
                1,
                5,
            ),
            "opsets 1 to 4",
        ),
        (
            classifier(
                &[vec![(0, 0.2)], vec![(1, 0.7)]],
                vec![ints("classlabels_int64s", &[0, 1])],
            ),
            "class_ids [0, 1]",
        ),
        (
            classifier(
                &[vec![(1, 0.2)], vec![(1, 0.7)]],
                vec![ints("classlabels_int64s", &[0, 1])],
            ),
            "class_ids [1]",
        ),
        (
            classifier(
                &[vec![(0, 0.2)], vec![(0, 0.7)]],
                vec![ints("classlabels_int64s", &[0])],
            ),
            "1 class labels",
        ),
        (
            classifier(
                &[vec![(0, 0.2)], vec![(5, 0.7)]],
                vec![ints("classlabels_int64s", &[0, 1, 2])],
            ),
            "class_ids[1]: 5 is out of range",
        ),
        (
            classifier(
                &[vec![(0, 0.2)], vec![(1, 0.7)]],
                vec![ints("classlabels_int64s", &[0, 1, 2])],
            ),
            "no score for class 0",
        ),
    ] {
        let e = err(&bytes);
        assert!(e.contains(want), "{e} should contain {want}");
    }
    let edit = |name: &str, v: AttributeProto| {
        let mut a = regressor(vec![], 0);
        a.retain(|a| a.name != name);
        a.push(v);
        model_with(vec![op("TreeEnsembleRegressor", a, &["Y"])], 1, 1, 3)
    };
    for (bytes, want) in [
        (edit("n_targets", int("n_targets", 2)), "n_targets = 2"),
        (
            edit(
                "nodes_modes",
                strings(
                    "nodes_modes",
                    &["BRANCH_EQ", "LEAF", "LEAF", "BRANCH_LEQ", "LEAF", "LEAF"],
                ),
            ),
            "equality splits",
        ),
        (
            edit(
                "nodes_modes",
                strings(
                    "nodes_modes",
                    &["BRANCH_XX", "LEAF", "LEAF", "BRANCH_LEQ", "LEAF", "LEAF"],
                ),
            ),
            "nodes_modes[0] = 'BRANCH_XX' is unknown",
        ),
        (
            edit("nodes_treeids", ints("nodes_treeids", &[0, 0, 1, 1, 1, 0])),
            "split in two runs",
        ),
        (
            edit(
                "nodes_truenodeids",
                ints("nodes_truenodeids", &[9, 0, 0, 1, 0, 0]),
            ),
            "true node 9",
        ),
        (
            edit(
                "nodes_truenodeids",
                ints("nodes_truenodeids", &[0, 0, 0, 1, 0, 0]),
            ),
            "its own child",
        ),
        (
            edit(
                "nodes_falsenodeids",
                ints("nodes_falsenodeids", &[1, 0, 0, 2, 0, 0]),
            ),
            "reached twice",
        ),
        (
            edit(
                "nodes_values",
                floats("nodes_values", &[f32::NAN, 0.0, 0.0, 0.5, 0.0, 0.0]),
            ),
            "threshold NaN",
        ),
        (
            edit(
                "nodes_values",
                floats("nodes_values", &[f32::INFINITY, 0.0, 0.0, 0.5, 0.0, 0.0]),
            ),
            "threshold inf",
        ),
        (
            edit(
                "nodes_featureids",
                ints("nodes_featureids", &[3, 0, 0, 0, 0, 0]),
            ),
            "feature 3 but the model has 1",
        ),
        (
            edit(
                "nodes_featureids",
                ints("nodes_featureids", &[-1, 0, 0, 0, 0, 0]),
            ),
            "feature -1",
        ),
        (
            edit("nodes_nodeids", ints("nodes_nodeids", &[0, 1, 2, 0, 1, 1])),
            "given twice",
        ),
        (
            edit("nodes_nodeids", ints("nodes_nodeids", &[0, 1])),
            "'nodes_nodeids' has 2 values for 6 nodes",
        ),
        (
            edit("target_nodeids", ints("target_nodeids", &[1, 2, 1, 7])),
            "does not exist",
        ),
        (
            edit("target_treeids", ints("target_treeids", &[0, 0, 1, 0])),
            "a leaf without weight",
        ),
        (
            edit("nodes_values", floats("nodes_values", &[])),
            "'nodes_values' has 0 values",
        ),
        (
            edit("nodes_values", int("nodes_values", 1)),
            "attribute 'nodes_values' has type 2",
        ),
    ] {
        let e = err(&bytes);
        assert!(e.contains(want), "{e} should contain {want}");
    }
}

#[test]
fn external_tensors_and_v5_categorical_splits_are_refused() {
    let mut a = regressor(vec![], 0);
    a.retain(|a| a.name != "nodes_values");
    let mut t = doubles("nodes_values_as_tensor", &[0.5, 0.0, 0.0, 0.5, 0.0, 0.0]);
    if let Some(t) = t.t.as_mut() {
        t.data_location = 1;
        t.raw_data.clear();
    }
    a.push(t);
    let e = err(&model_with(
        vec![op("TreeEnsembleRegressor", a, &["Y"])],
        11,
        1,
        3,
    ));
    assert!(e.contains("external file"), "{e}");
    let a = vec![
        ints("tree_roots", &[0]),
        ints("nodes_featureids", &[0]),
        ints("nodes_truenodeids", &[0]),
        ints("nodes_falsenodeids", &[1]),
        ints("nodes_trueleafs", &[1]),
        ints("nodes_falseleafs", &[1]),
        u8_tensor("nodes_modes", &[6]),
        f32_tensor("nodes_splits", &[0.0]),
        f32_tensor("membership_values", &[1.0, f32::NAN]),
        ints("leaf_targetids", &[0, 0]),
        f32_tensor("leaf_weights", &[1.0, 2.0]),
        int("n_targets", 1),
    ];
    let e = err(&model_with(vec![op("TreeEnsemble", a, &["Y"])], 1, 1, 5));
    assert!(e.contains("MEMBER"), "{e}");
}

#[test]
fn truncations_wrong_magic_and_huge_lengths_are_errors() {
    let valid = reg_model(vec![]);
    for cut in 0..valid.len() {
        assert!(
            read(&valid[..cut]).is_err(),
            "prefix of {cut} bytes accepted"
        );
    }
    for bytes in [
        &b"{\"learner\": {}}"[..],
        b"tree\nversion=v4\n",
        b"\x80\x04\x95",
        b"PK\x03\x04",
        b"",
    ] {
        assert!(read(bytes).is_err());
    }
    // Graph field declaring 10 GB.
    let mut huge = vec![0x3a];
    let mut n: u64 = 10 << 30;
    while n >= 0x80 {
        huge.push((n as u8) | 0x80);
        n >>= 7;
    }
    huge.push(n as u8);
    huge.extend([0u8; 16]);
    assert!(err(&huge).contains("declares 10737418240 bytes"));
}

fn nest(field: u8, inner: Vec<u8>) -> Vec<u8> {
    let mut v = vec![field];
    let mut n = inner.len();
    while n >= 0x80 {
        v.push((n as u8) | 0x80);
        n >>= 7;
    }
    v.push(n as u8);
    v.extend(inner);
    v
}

#[test]
fn repeated_messages_and_nesting_are_bounded() {
    // 65 empty nodes: 130 bytes that would decode to ~65 × 100 bytes.
    let graph: Vec<u8> = [0x0a, 0x00].repeat(65);
    assert!(err(&nest(0x3a, graph)).contains("more than 64 elements"));
    // An attribute of a million empty strings: 2 MB that would decode to 24 MB.
    let attribute = [0x4a, 0x00].repeat(1_000_000);
    let e = err(&nest(0x3a, nest(0x0a, nest(0x2a, attribute))));
    assert!(e.contains("memory"), "{e}");
    // Messages nest at most 8 deep: a tensor's entry is at depth 6, fine; deeper
    // unknown nesting is skipped, not walked.
    let deep = nest(0x3a, nest(0x0a, nest(0x2a, nest(0x2a, nest(0x6a, vec![])))));
    assert!(!err(&deep).contains("nest"));
    // A graph given twice would merge.
    let twice = [nest(0x3a, vec![]), nest(0x3a, vec![])].concat();
    assert!(err(&twice).contains("appears twice"));
    // Groups are refused.
    assert!(err(&[0x0b]).contains("wire type 3"));
}

#[test]
fn a_million_node_tree_imports() {
    // A chain: node i splits x0 <= i, true → leaf (i+1), false → next split (i+2)...
    let splits = 500_000i64;
    let n = 2 * splits + 1;
    let mut nodeids = Vec::with_capacity(n as usize);
    let (mut tru, mut fal, mut modes, mut vals) = (vec![], vec![], vec![], vec![]);
    for i in 0..n {
        nodeids.push(i);
        let split = i % 2 == 0 && i < n - 1;
        tru.push(if split { i + 1 } else { 0 });
        fal.push(if split { i + 2 } else { 0 });
        modes.push(if split { "BRANCH_LEQ" } else { "LEAF" });
        vals.push(i as f32);
    }
    let leaves: Vec<i64> = (0..n).filter(|i| i % 2 == 1 || *i == n - 1).collect();
    let a = vec![
        ints("nodes_treeids", &vec![0; n as usize]),
        ints("nodes_nodeids", &nodeids),
        ints("nodes_featureids", &vec![0; n as usize]),
        ints("nodes_truenodeids", &tru),
        ints("nodes_falsenodeids", &fal),
        strings("nodes_modes", &modes),
        floats("nodes_values", &vals),
        ints("target_ids", &vec![0; leaves.len()]),
        ints("target_nodeids", &leaves),
        ints("target_treeids", &vec![0; leaves.len()]),
        floats("target_weights", &vec![1.0; leaves.len()]),
        int("n_targets", 1),
    ];
    let bytes = model_with(vec![op("TreeEnsembleRegressor", a, &["Y"])], 1, 1, 3);
    // Deeper than the 4096 levels allowed: refused cleanly.
    let e = err(&bytes);
    assert!(e.contains("deeper than 4096"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = read(&bytes);
    }

    #[test]
    fn no_mutation_panics(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = classifier(
            &[vec![(0, 1.0), (1, 0.5), (2, 0.0)], vec![(1, 2.0), (2, 0.5), (0, 0.0)]],
            vec![ints("classlabels_int64s", &[0, 1, 2]), string("post_transform", "SOFTMAX_ZERO")],
        );
        for (at, b) in edits {
            let i = at % bytes.len();
            bytes[i] = b;
        }
        if let Ok(m) = read(&bytes) {
            let flat = FlatEnsemble::compile(&m.ensemble);
            prop_assert!(flat.is_ok());
        }
    }
}

#[test]
fn errors_are_import_errors() {
    assert!(matches!(read(b"\x08"), Err(ImportError::Malformed { .. })));
}
