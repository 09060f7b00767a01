//! Hostile inputs: truncation, huge declared sizes, huge and deep trees, mixed missing
//! types, and "no input panics".

use super::{TREE, model, refusal};
use crate::import::ImportError;
use crate::import::lightgbm::read;
use crate::model::flat::{FlatEnsemble, Scratch};
use proptest::prelude::*;
use std::fmt::Write;

/// A prefix of a file is refused, unless it ends after `end of trees`: then it reads as
/// exactly the same model (the sections after the trees do not change predictions).
#[test]
fn every_truncation_is_an_error_or_the_same_model() {
    let text = model("binary sigmoid:1", 1, "", &[TREE, TREE]);
    let full = read(text.as_bytes()).unwrap().ensemble;
    let trees_end = text.find("end of trees").unwrap() + "end of trees".len();
    for k in 0..text.len() {
        match read(&text.as_bytes()[..k]) {
            Ok(m) => assert!(k >= trees_end && m.ensemble == full, "prefix of {k} bytes"),
            Err(_) => assert!(k < text.find("end of parameters").unwrap() + 17, "{k}"),
        }
    }
}

#[test]
fn huge_declared_sizes_allocate_nothing() {
    let ok = model("binary sigmoid:1", 1, "", &[TREE]);
    for (from, to, want) in [
        (
            "num_leaves=3",
            "num_leaves=10000000000",
            "num_leaves: 10000000000",
        ),
        (
            "num_leaves=3",
            "num_leaves=99999999999999999999999",
            "not a valid number",
        ),
        (
            "num_leaves=3",
            "num_leaves=9223372036854775807",
            "num_leaves: 9223372036854775807",
        ),
        (
            "num_cat=0",
            "num_cat=9223372036854775807",
            "no cat_boundaries line",
        ),
        ("num_cat=0", "num_cat=10000000000", "no cat_boundaries line"),
        (
            "max_feature_idx=1",
            "max_feature_idx=4000000000",
            "feature_names: 2 names",
        ),
        (
            "num_class=1",
            "num_class=10000000000",
            "num_class: 10000000000",
        ),
        ("tree_sizes=1", "tree_sizes=10000000000", "cat_boundaries"),
    ] {
        let text = ok.replace(from, to);
        let text = if from == "tree_sizes=1" {
            // A plausible tree_sizes with a huge categorical declaration.
            text.replace(
                "num_cat=0",
                "num_cat=10000000000\ncat_boundaries=0 1\ncat_threshold=1",
            )
        } else {
            text
        };
        let got = refusal(&text);
        assert!(got.contains(want), "{want:?} not in {got:?}");
    }
}

/// A tree of `leaves` leaves in heap order: internal node i has children 2i+1, 2i+2.
fn heap_tree(leaves: usize) -> String {
    let n = leaves - 1;
    let child = |c: usize| {
        if c < n { c as i64 } else { !((c - n) as i64) }
    };
    let mut s = format!("num_leaves={leaves}\nnum_cat=0\nsplit_feature=");
    s += &"0 ".repeat(n);
    s += "\nthreshold=";
    for i in 0..n {
        write!(s, "{} ", i as f64 / n as f64).unwrap();
    }
    s += "\ndecision_type=";
    s += &"2 ".repeat(n);
    for (key, off) in [("left_child", 1), ("right_child", 2)] {
        write!(s, "\n{key}=").unwrap();
        for i in 0..n {
            write!(s, "{} ", child(2 * i + off)).unwrap();
        }
    }
    s += "\nleaf_value=";
    for j in 0..leaves {
        write!(s, "{} ", j as f64).unwrap();
    }
    s
}

#[test]
fn a_million_node_tree_imports_and_predicts() {
    let text = model("regression", 1, "", &[&heap_tree(500_000)]);
    let e = read(text.as_bytes()).unwrap().ensemble;
    assert_eq!(e.trees[0].nodes.len(), 999_999);
    let flat = FlatEnsemble::compile(&e).unwrap();
    let mut scores = [0.0];
    flat.predict(&[0.5, 0.0], &mut Scratch::default(), &mut scores);
    assert!(scores[0].is_finite());
    // One node more than the limit is refused before anything is built.
    let got = refusal(&model("regression", 1, "", &[&heap_tree(600_000)]));
    assert!(got.contains("num_leaves: 600000"), "{got}");
}

#[test]
fn deep_chain_is_refused_without_recursion() {
    // Internal node i: left leaf i, right internal i+1; 5,000 deep.
    let n = 5_000;
    let mut s = format!("num_leaves={}\nnum_cat=0\nsplit_feature=", n + 1);
    s += &"1 ".repeat(n);
    s += "\nthreshold=";
    s += &"0 ".repeat(n);
    s += "\nleft_child=";
    (0..n).for_each(|i| write!(s, "{} ", !(i as i64)).unwrap());
    s += "\nright_child=";
    (1..n).for_each(|i| write!(s, "{i} ").unwrap());
    write!(s, "{}\nleaf_value=", !(n as i64)).unwrap();
    s += &"1 ".repeat(n + 1);
    let err = read(model("regression", 1, "", &[&s]).as_bytes()).unwrap_err();
    assert!(matches!(err, ImportError::Invalid(_)));
    assert!(err.to_string().contains("deeper than"), "{err}");
}

#[test]
fn a_cycle_through_internal_nodes_is_refused() {
    let tree = "num_leaves=3\nnum_cat=0\nsplit_feature=0 1\nthreshold=0 0\n\
                left_child=1 0\nright_child=-1 -2\nleaf_value=1 2 3";
    let got = refusal(&model("regression", 1, "", &[tree]));
    assert!(got.contains("reached twice"), "{got}");
}

#[test]
fn mixed_zero_and_nan_missing_on_a_feature_is_refused() {
    // Tree 0: a <= 1 with missing Zero (default right); tree 1: a <= 1 with missing NaN
    // (default right) sends zero left, elsewhere than its missing values.
    let zero = "num_leaves=2\nnum_cat=0\nsplit_feature=0\nthreshold=1\ndecision_type=4\n\
                left_child=-1\nright_child=-2\nleaf_value=1 2";
    let nan = zero.replace("decision_type=4", "decision_type=8");
    let got = refusal(&model("regression", 1, "", &[zero, &nan]));
    assert!(
        got.contains("Tree=1 node 0: feature 0 is zero-as-missing"),
        "{got}"
    );
    // Missing None nodes send NaN where zero goes: consistent.
    let none = zero.replace("decision_type=4", "decision_type=0");
    assert!(read(model("regression", 1, "", &[zero, &none]).as_bytes()).is_ok());
}

/// Imports, and when that works compiles and predicts a few rows.
fn import_and_predict(bytes: &[u8]) {
    let Ok(imported) = read(bytes) else { return };
    let Ok(flat) = FlatEnsemble::compile(&imported.ensemble) else {
        return;
    };
    let mut scores = vec![0.0; flat.num_scores()];
    for probe in [0.0, f64::NAN, -1e300, 0.5, 3.0] {
        let row = vec![probe; flat.num_features()];
        flat.predict(&row, &mut Scratch::default(), &mut scores);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        import_and_predict(&bytes);
        let mut with_magic = b"tree\n".to_vec();
        with_magic.extend_from_slice(&bytes);
        import_and_predict(&with_magic);
    }

    #[test]
    fn mutated_models_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut bytes = model("multiclass num_class:2", 2, "", &[TREE, TREE]).into_bytes();
        for (at, byte, kind) in edits {
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => {
                    let pool = b"0123456789 -.=\n\rnaif";
                    bytes.insert(i, pool[byte as usize % pool.len()]);
                }
            }
        }
        import_and_predict(&bytes);
    }
}
