//! Refusals and hostile inputs: every refusal names its field and what to do; truncated,
//! oversized, cyclic, deep or random input is an error, never a panic or a huge
//! allocation.

use super::tests::{both, cat_stump, model, stump, to_ubj, tree, ubj};
use super::value::{Typed, Value};
use super::{json, read, ubjson};
use crate::import::ImportError;
use proptest::prelude::*;

fn reg(trees: &[String]) -> String {
    model("reg:squarederror", 0, "[0E0]", trees, &vec![0; trees.len()])
}

fn err(text: &str) -> String {
    both(text).unwrap_err().to_string()
}

fn unsupported(text: &str) -> String {
    match both(text).unwrap_err() {
        ImportError::Unsupported(m) => m,
        other => panic!("expected Unsupported, got {other}"),
    }
}

#[test]
fn boosters_other_than_gbtree_are_refused() {
    let m = reg(&[stump(0, 0, "0E0", "1E0", "2E0")]);
    let dart = m.replace(r#""name":"gbtree""#, r#""name":"dart""#);
    assert!(unsupported(&dart).contains("retrain with booster=gbtree"));
    let lin = m.replace(r#""name":"gbtree""#, r#""name":"gblinear""#);
    assert!(unsupported(&lin).contains("gblinear"));
    // 3.4+: DART keeps the name gbtree and stores weights.
    let weighted = m.replace(
        r#""iteration_indptr""#,
        r#""weight_drop":[5E-1],"iteration_indptr""#,
    );
    let msg = unsupported(&weighted);
    assert!(
        msg.contains("weight_drop") && msg.contains("booster=gbtree"),
        "{msg}"
    );
    let ones = m.replace(
        r#""iteration_indptr""#,
        r#""weight_drop":[1E0],"iteration_indptr""#,
    );
    assert!(both(&ones).is_ok());
}

#[test]
fn unsupported_objectives_and_multi_target_are_refused() {
    let t = [stump(0, 0, "0E0", "1E0", "2E0")];
    for obj in [
        "binary:logitraw",
        "binary:hinge",
        "rank:pairwise",
        "survival:cox",
        "reg:quantileerror",
        "x",
    ] {
        let msg = unsupported(&model(obj, 0, "[0E0]", &t, &[0]));
        assert!(msg.contains(&format!("{obj:?}")), "{msg}");
    }
    let mt = reg(&t).replace(r#""num_target":"1""#, r#""num_target":"2""#);
    assert!(unsupported(&mt).contains("num_target"));
    let vec_leaf = reg(&[stump(0, 0, "0E0", "1E0", "2E0")
        .replace(r#""size_leaf_vector":"1""#, r#""size_leaf_vector":"2""#)]);
    assert!(unsupported(&vec_leaf).contains("size_leaf_vector"));
}

#[test]
fn categories_out_of_range_are_refused() {
    assert!(err(&reg(&[cat_stump("16777216")])).contains("outside XGBoost's range"));
    assert!(err(&reg(&[cat_stump("-1")])).contains("category -1"));
    assert!(unsupported(&reg(&[cat_stump("70000")])).contains("below 65536"));
    let no_cats = reg(&[cat_stump("1")
        .replace(r#""categories_nodes":[0]"#, r#""categories_nodes":[]"#)
        .replace(
            r#""categories_segments":[0]"#,
            r#""categories_segments":[]"#,
        )
        .replace(r#""categories_sizes":[1]"#, r#""categories_sizes":[]"#)]);
    assert!(err(&no_cats).contains("not in categories_nodes"));
    let past_end =
        reg(&[cat_stump("1").replace(r#""categories_sizes":[1]"#, r#""categories_sizes":[5]"#)]);
    assert!(err(&past_end).contains("out of range"));
}

#[test]
fn bad_structure_is_refused_with_the_node_named() {
    let t =
        |l: &[i32], r: &[i32], idx: &[i32], c: &[&str]| reg(&[tree(0, l, r, idx, c, &[0, 0, 0])]);
    let leaves = ["0E0", "1E0", "2E0"];
    assert!(
        err(&t(&[1, -1, -1], &[3, -1, -1], &[0, 0, 0], &leaves))
            .contains("right child 3 is out of range")
    );
    assert!(err(&t(&[-5, -1, -1], &[2, -1, -1], &[0, 0, 0], &leaves)).contains("node 0"));
    // A cycle back to the root.
    assert!(
        err(&t(
            &[1, -1, 0],
            &[2, -1, 1],
            &[0, 0, 0],
            &["0E0", "1E0", "0E0"]
        ))
        .contains("reached twice")
    );
    // Right must be left + 1 (XGBoost's predictor assumes it).
    assert!(err(&t(&[2, -1, -1], &[1, -1, -1], &[0, 0, 0], &leaves)).contains("left child 2 + 1"));
    assert!(err(&t(&[1, -1, -1], &[2, -1, -1], &[7, 0, 0], &leaves)).contains("split feature 7"));
    for bad in ["NaN", "Infinity", "-Infinity"] {
        assert!(
            err(&t(
                &[1, -1, -1],
                &[2, -1, -1],
                &[0, 0, 0],
                &[bad, "1E0", "2E0"]
            ))
            .contains("threshold")
        );
        assert!(
            err(&t(
                &[1, -1, -1],
                &[2, -1, -1],
                &[0, 0, 0],
                &["0E0", bad, "2E0"]
            ))
            .contains("leaf value")
        );
    }
    let short = reg(&[stump(0, 0, "0E0", "1E0", "2E0").replace(
        r#""right_children":[2,-1,-1]"#,
        r#""right_children":[2,-1]"#,
    )]);
    assert!(err(&short).contains("right_children has 2 entries"));
    let info = model(
        "reg:squarederror",
        0,
        "[0E0]",
        &[stump(0, 0, "0E0", "1E0", "2E0")],
        &[1],
    );
    assert!(err(&info).contains("tree_info[0]"));
    let names = reg(&[stump(0, 0, "0E0", "1E0", "2E0")]).replace(r#"["a","b"]"#, r#"["a"]"#);
    assert!(err(&names).contains("feature_names"));
    assert!(err(&reg(&[])).contains("trees is empty"));
}

#[test]
fn not_a_model_file() {
    for bytes in [
        &b""[..],
        b"hello",
        b"{}",
        b"[1,2]",
        b"\x00\x01\x02",
        b"{\"learner\":1}",
        b"{L\0\0\0",
    ] {
        assert!(read(bytes).is_err(), "{bytes:?}");
    }
    assert!(
        read(b"{\"learner\":{}} x")
            .unwrap_err()
            .to_string()
            .contains("after the document")
    );
}

#[test]
fn truncated_at_every_byte_is_an_error() {
    let cat = cat_stump("1,2").replace(r#""id":0"#, r#""id":1"#);
    let text = model(
        "binary:logistic",
        0,
        "[5E-1]",
        &[stump(0, 0, "5E-1", "-4E-1", "6E-1"), cat],
        &[0, 0],
    );
    let u = ubj(&text);
    assert!(read(text.as_bytes()).is_ok() && read(&u).is_ok());
    for n in 0..text.len() {
        assert!(read(&text.as_bytes()[..n]).is_err(), "JSON cut at {n}");
    }
    for n in 0..u.len() {
        assert!(read(&u[..n]).is_err(), "UBJSON cut at {n}");
    }
}

#[test]
fn huge_declared_sizes_are_refused_before_allocating() {
    let big = 10_000_000_000i64.to_be_bytes();
    let cases: Vec<Vec<u8>> = vec![
        [&b"[$d#L"[..], &big].concat(),
        [&b"[$L#L"[..], &i64::MAX.to_be_bytes()].concat(),
        [&b"[#L"[..], &big].concat(),
        [&b"SL"[..], &big].concat(),
        [&b"{L"[..], &big, b"x"].concat(),
        [&b"SL"[..], &(-1i64).to_be_bytes()].concat(),
        [&b"[$l#L"[..], &(-3i64).to_be_bytes()].concat(),
        b"[$S#i\x01".to_vec(),
        b"H".to_vec(),
        b"N".to_vec(),
    ];
    for c in &cases {
        let e = ubjson::parse(c).unwrap_err();
        assert!(e.contains("UBJSON byte"), "{e}");
    }
    assert!(ubjson::parse(&cases[0]).unwrap_err().contains("remain"));
}

/// Found by the fuzzer: a few hundred bytes declaring 200 million features made the
/// compile step allocate 6.4 GB (per-feature tables); the count is now refused first.
#[test]
fn a_huge_feature_count_is_refused_before_allocating() {
    let m = reg(&[stump(0, 0, "0E0", "1E0", "2E0")]);
    let declare = |n: u64| {
        m.replace(r#""num_feature":"2""#, &format!(r#""num_feature":"{n}""#))
            .replace(
                r#""feature_names":["a","b"],"feature_types":["float","float"],"#,
                "",
            )
    };
    assert_ne!(declare(3), m, "the template changed");
    let msg = err(&declare(200_000_000));
    assert!(
        msg.contains("num_feature is 200000000") && msg.contains("1 to 1048576 allowed"),
        "{msg}"
    );
    assert!(both(&declare(1 << 20)).is_ok());
}

#[test]
fn deep_nesting_is_refused_without_recursion() {
    for depth in [65, 100_000] {
        let j = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(
            json::parse(j.as_bytes())
                .unwrap_err()
                .contains("deeper than 64")
        );
        let u = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(
            ubjson::parse(u.as_bytes())
                .unwrap_err()
                .contains("deeper than 64")
        );
        let o = "{\"a\":".repeat(depth);
        assert!(
            json::parse(o.as_bytes())
                .unwrap_err()
                .contains("deeper than 64")
        );
    }
    let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
    assert!(json::parse(ok.as_bytes()).is_ok() && ubjson::parse(ok.as_bytes()).is_ok());
}

/// A model with one complete tree of depth `d` (2^(d+1) - 1 nodes), as UBJSON.
fn big_tree_ubj(d: u32) -> Vec<u8> {
    let n = (1usize << (d + 1)) - 1;
    let leaf = |i: usize| 2 * i + 1 >= n;
    let ints = |f: &dyn Fn(usize) -> i64| Value::Typed(Typed::I64((0..n).map(f).collect()));
    let text = model(
        "reg:squarederror",
        0,
        "[0E0]",
        &[stump(0, 0, "0E0", "1E0", "2E0")],
        &[0],
    );
    let mut doc = json::parse(text.as_bytes()).unwrap();
    let mut tree = Vec::new();
    tree.push((
        "default_left".to_string(),
        Value::Typed(Typed::U8(vec![0; n])),
    ));
    tree.push((
        "left_children".into(),
        ints(&|i| if leaf(i) { -1 } else { 2 * i as i64 + 1 }),
    ));
    tree.push((
        "right_children".into(),
        ints(&|i| if leaf(i) { -1 } else { 2 * i as i64 + 2 }),
    ));
    let cond = (0..n)
        .map(|i| if leaf(i) { (i % 7) as f32 } else { 0.0 })
        .collect();
    tree.push(("split_conditions".into(), Value::Typed(Typed::F32(cond))));
    tree.push(("split_indices".into(), ints(&|i| (i % 2) as i64)));
    let param = vec![("num_nodes".to_string(), Value::Str(n.to_string()))];
    tree.push(("tree_param".into(), Value::Object(param)));
    let mut at = &mut doc;
    for key in ["learner", "gradient_booster", "model", "trees"] {
        let Value::Object(m) = at else { panic!() };
        at = &mut m.iter_mut().find(|(k, _)| k == key).unwrap().1;
    }
    *at = Value::Array(vec![Value::Object(tree)]);
    let mut out = Vec::new();
    to_ubj(&doc, &mut out);
    out
}

#[test]
fn a_million_node_tree_imports() {
    let bytes = big_tree_ubj(19); // 1,048,575 nodes
    let imp = read(&bytes).unwrap();
    assert_eq!(imp.ensemble.trees[0].nodes.len(), 1_048_575);
    // One more level is past the node limit: refused cleanly.
    let msg = read(&big_tree_ubj(20)).unwrap_err().to_string();
    assert!(msg.contains("at most 1048576"), "{msg}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = read(&bytes);
        let _ = json::parse(&bytes);
        let _ = ubjson::parse(&bytes);
    }

    #[test]
    fn mutated_models_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), ubj_form in any::<bool>()) {
        let cat = cat_stump("1,2").replace(r#""id":0"#, r#""id":1"#);
        let text = model("multi:softprob", 2, "[1E-1,2E-1]", &[stump(0, 0, "5E-1", "-4E-1", "6E-1"), cat], &[0, 1]);
        let mut bytes = if ubj_form { ubj(&text) } else { text.into_bytes() };
        for (at, b) in edits {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        if let Ok(imp) = read(&bytes) {
            let (class, scores) = super::tests::predict(&imp, &[0.5, f64::NAN]);
            prop_assert!(class < scores.len().max(1) && scores.iter().all(|s| s.is_finite()));
        }
    }
}
