//! Hand-written tiny models with hand-computed outputs, JSON and UBJSON, plus the
//! helpers the hostile-input tests share.

use super::value::{Typed, Value};
use super::{json, read};
use crate::import::{ImportError, Imported, ImportedTask};
use crate::model::ensemble::{Node, OutputKind, Transform};
use crate::model::flat::{FlatEnsemble, Scratch};

/// A tree object: a split at every node with `left >= 0`, leaf values in `cond`.
pub(super) fn tree(
    id: usize,
    left: &[i32],
    right: &[i32],
    idx: &[i32],
    cond: &[&str],
    dl: &[u8],
) -> String {
    let n = left.len();
    let list = |v: Vec<String>| format!("[{}]", v.join(","));
    let ints = |v: &[i32]| list(v.iter().map(|x| x.to_string()).collect());
    format!(
        r#"{{"base_weights":{bw},"categories":[],"categories_nodes":[],"categories_segments":[],"categories_sizes":[],"default_left":{dl},"id":{id},"left_children":{l},"loss_changes":{bw},"parents":{p},"right_children":{r},"split_conditions":{c},"split_indices":{i},"split_type":{st},"sum_hessian":{bw},"tree_param":{{"num_deleted":"0","num_feature":"2","num_nodes":"{n}","size_leaf_vector":"1"}}}}"#,
        bw = list(vec!["0E0".to_string(); n]),
        dl = list(dl.iter().map(|x| x.to_string()).collect()),
        l = ints(left),
        p = ints(&vec![0; n]),
        r = ints(right),
        c = list(cond.iter().map(|s| s.to_string()).collect()),
        i = ints(idx),
        st = list(vec!["0".to_string(); n]),
    )
}

/// A stump on feature `f`: `x < t` → `a`, else `b`; missing goes left.
pub(super) fn stump(id: usize, f: i32, t: &str, a: &str, b: &str) -> String {
    tree(
        id,
        &[1, -1, -1],
        &[2, -1, -1],
        &[f, 0, 0],
        &[t, a, b],
        &[1, 0, 0],
    )
}

/// A whole model document (2 features).
pub(super) fn model(
    objective: &str,
    num_class: u32,
    base_score: &str,
    trees: &[String],
    info: &[u32],
) -> String {
    let info: Vec<String> = info.iter().map(|x| x.to_string()).collect();
    format!(
        r#"{{"learner":{{"attributes":{{}},"feature_names":["a","b"],"feature_types":["float","float"],"gradient_booster":{{"model":{{"gbtree_model_param":{{"num_parallel_tree":"1","num_trees":"{nt}"}},"iteration_indptr":[],"tree_info":[{info}],"trees":[{trees}]}},"name":"gbtree"}},"learner_model_param":{{"base_score":"{base_score}","boost_from_average":"1","num_class":"{num_class}","num_feature":"2","num_target":"1"}},"objective":{{"name":"{objective}"}}}},"version":[3,4,1]}}"#,
        nt = trees.len(),
        info = info.join(","),
        trees = trees.join(","),
    )
}

/// XGBoost's UBJSON encoding of a (small, trusted) document: keys `L`-prefixed, arrays
/// counted, numeric arrays typed (`[$T#L n`, integers as XGBoost's i32 `l`).
pub(super) fn to_ubj(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(b'Z'),
        Value::Bool(b) => out.push(if *b { b'T' } else { b'F' }),
        Value::Int(i) => {
            out.push(b'L');
            out.extend(i.to_be_bytes());
        }
        Value::Float(f) => {
            out.push(b'd');
            out.extend(f.to_be_bytes());
        }
        Value::Str(s) => {
            out.push(b'S');
            len(out, s.len());
            out.extend(s.as_bytes());
        }
        Value::Array(a) => {
            out.extend(b"[#");
            len(out, a.len());
            a.iter().for_each(|v| to_ubj(v, out));
        }
        Value::Typed(t) => {
            let (m, n, body): (u8, usize, Vec<u8>) = match t {
                Typed::U8(a) => (b'U', a.len(), a.clone()),
                Typed::I64(a) => (
                    b'l',
                    a.len(),
                    a.iter().flat_map(|x| (*x as i32).to_be_bytes()).collect(),
                ),
                Typed::F32(a) => (
                    b'd',
                    a.len(),
                    a.iter().flat_map(|x| x.to_be_bytes()).collect(),
                ),
                _ => unreachable!("JSON gives U8, I64 and F32 arrays"),
            };
            out.extend([b'[', b'$', m, b'#']);
            len(out, n);
            out.extend(body);
        }
        Value::Object(m) => {
            out.push(b'{');
            for (k, v) in m {
                len(out, k.len());
                out.extend(k.as_bytes());
                to_ubj(v, out);
            }
            out.push(b'}');
        }
    }
}

fn len(out: &mut Vec<u8>, n: usize) {
    out.push(b'L');
    out.extend((n as i64).to_be_bytes());
}

/// The UBJSON form of a JSON model text.
pub(super) fn ubj(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    to_ubj(
        &json::parse(text.as_bytes()).expect("test JSON parses"),
        &mut out,
    );
    out
}

/// Reads the JSON text and its UBJSON form, checks both give the same import.
pub(super) fn both(text: &str) -> Result<Imported, ImportError> {
    let a = read(text.as_bytes());
    let b = read(&ubj(text));
    match (&a, &b) {
        (Ok(x), Ok(y)) => {
            assert_eq!(x.ensemble, y.ensemble);
            assert_eq!(x.source, y.source.replace("UBJSON", "JSON"));
        }
        (Err(x), Err(y)) => assert_eq!(
            x.to_string().replace("UBJSON", "JSON"),
            y.to_string().replace("UBJSON", "JSON")
        ),
        _ => panic!("JSON and UBJSON disagree: {a:?} / {b:?}"),
    }
    a
}

/// Predicts one row: (class, scores).
pub(super) fn predict(imp: &Imported, row: &[f64]) -> (usize, Vec<f64>) {
    let flat = FlatEnsemble::compile(&imp.ensemble).expect("compiles");
    let mut scores = vec![0.0; flat.num_scores()];
    let class = flat.predict(row, &mut Scratch::default(), &mut scores);
    (class, scores)
}

fn sigmoid(x: f32) -> f64 {
    (1.0f32 / ((-x).min(88.7).exp() + 1.0)) as f64
}

#[test]
fn binary_logistic_stump() {
    // base 0.5 → margin 0; x0 < 0.5 → -0.4, else 0.6; missing → left.
    let m = model(
        "binary:logistic",
        0,
        "[5E-1]",
        &[stump(0, 0, "5E-1", "-4E-1", "6E-1")],
        &[0],
    );
    let imp = both(&m).unwrap();
    assert_eq!(imp.task, ImportedTask::Classification);
    assert_eq!(imp.ensemble.output, OutputKind::BinaryOneMinus);
    assert_eq!(imp.ensemble.transform, Transform::XgbSigmoid);
    assert_eq!(imp.ensemble.base, vec![0.0]);
    assert_eq!(imp.source, "XGBoost 3.4.1 JSON");
    assert_eq!(read(&ubj(&m)).unwrap().source, "XGBoost 3.4.1 UBJSON");
    assert_eq!(imp.objective, "binary:logistic");
    assert_eq!(imp.format, "xgboost");
    assert_eq!(imp.features, Some(vec!["a".to_string(), "b".to_string()]));
    assert_eq!(imp.classes, None);
    assert!(imp.missing_aware);
    let p = sigmoid(-0.4);
    assert_eq!(
        predict(&imp, &[0.0, 9.0]),
        (0, vec![(1.0 - p as f32) as f64, p])
    );
    assert_eq!(predict(&imp, &[f64::NAN, 9.0]).1[1], p);
    // 0.5 itself is not < 0.5: right.
    let q = sigmoid(0.6);
    assert_eq!(
        predict(&imp, &[0.5, 0.0]),
        (1, vec![(1.0 - q as f32) as f64, q])
    );
    // A double just below 0.5 rounds to 0.5f32 first: right, as XGBoost.
    assert_eq!(predict(&imp, &[0.49999999999, 0.0]).0, 1);
}

#[test]
fn base_score_margins() {
    let t = || vec![stump(0, 1, "0E0", "1E0", "2E0")];
    let base = |obj: &str, b: &str| both(&model(obj, 0, b, &t(), &[0])).unwrap().ensemble.base[0];
    // Before 3.1 a bare number, since 3.1 a one-element array.
    assert_eq!(base("reg:squarederror", "5E-1"), 0.5);
    assert_eq!(base("reg:squarederror", "[-1.25E0]"), -1.25);
    assert_eq!(base("reg:linear", "[2E0]"), 2.0);
    assert_eq!(
        base("reg:logistic", "[2.5E-1]"),
        (-(1.0f32 / 0.25 - 1.0).ln()) as f64
    );
    // Clamped to [1e-6, 1 - 1e-6] before the logit.
    assert_eq!(
        base("binary:logistic", "[0E0]"),
        (-(1.0f32 / 1e-6 - 1.0).ln()) as f64
    );
    for obj in ["count:poisson", "reg:gamma", "reg:tweedie"] {
        assert_eq!(base(obj, "[2E0]"), 2.0f32.ln() as f64, "{obj}");
    }
    let imp = both(&model("reg:gamma", 0, "[2E0]", &t(), &[0])).unwrap();
    assert_eq!(imp.ensemble.transform, Transform::ExpF32);
    // x1 >= 0 → 2; exp(ln 2 + 2) in f32.
    assert_eq!(
        predict(&imp, &[0.0, 1.0]).1,
        vec![(2.0f32.ln() + 2.0).exp() as f64]
    );
    let err = both(&model("count:poisson", 0, "[-1E0]", &t(), &[0])).unwrap_err();
    assert!(err.to_string().contains("base_score"), "{err}");
    assert_eq!(base("reg:squarederror", "(3E0)"), 3.0);
    // Two values for one output; non-ASCII text after a bracket (a fuzz finding).
    for bad in ["[1E0,2E0]", "[\u{e9}", "[1E0,\u{3da}", "[", "[]", "[1E0"] {
        let err = both(&model("reg:squarederror", 0, bad, &t(), &[0])).unwrap_err();
        assert!(err.to_string().contains("base_score"), "{err}");
    }
}

#[test]
fn multiclass_softprob_and_softmax() {
    // Two iterations of three classes; base per class.
    let trees: Vec<String> = (0..6)
        .map(|i| {
            stump(
                i,
                (i % 2) as i32,
                "0E0",
                &format!("{i}E-1"),
                &format!("-{i}E-1"),
            )
        })
        .collect();
    let info = [0, 1, 2, 0, 1, 2];
    let base = "[1E-1,2E-1,3E-1]";
    let imp = both(&model("multi:softprob", 3, base, &trees, &info)).unwrap();
    assert_eq!(imp.ensemble.outputs, 3);
    assert_eq!(imp.ensemble.output, OutputKind::ArgmaxProbabilities);
    // Row (-1, -1): every tree goes left (leaf i/10), summed in f32 from the base.
    let raw = [0.1f32 + 0.0 + 0.3, 0.2f32 + 0.1 + 0.4, 0.3f32 + 0.2 + 0.5];
    let max = raw.iter().fold(f32::MIN, |m, &x| m.max(x));
    let e: Vec<f32> = raw.iter().map(|&x| (x - max).exp()).collect();
    let sum = e.iter().map(|&x| x as f64).sum::<f64>() as f32;
    let want: Vec<f64> = e.iter().map(|&x| (x / sum) as f64).collect();
    assert_eq!(predict(&imp, &[-1.0, -1.0]), (2, want.clone()));
    let imp = both(&model("multi:softmax", 3, base, &trees, &info)).unwrap();
    assert_eq!(imp.ensemble.output, OutputKind::ArgmaxRaw);
    assert_eq!(predict(&imp, &[-1.0, -1.0]), (2, want));
    let err = both(&model(
        "multi:softprob",
        3,
        base,
        &trees,
        &[0, 1, 3, 0, 1, 2],
    ))
    .unwrap_err();
    assert!(err.to_string().contains("tree_info[2]"), "{err}");
    let err = both(&model("multi:softprob", 1, "[0E0]", &trees, &[0; 6])).unwrap_err();
    assert!(err.to_string().contains("num_class"), "{err}");
}

/// A stump on feature 1 whose node 0 is categorical: `cats` go right (2.0), others left
/// (1.0); missing goes right (default_left 0).
pub(super) fn cat_stump(cats: &str) -> String {
    let n = cats.split(',').filter(|s| !s.is_empty()).count();
    tree(
        0,
        &[1, -1, -1],
        &[2, -1, -1],
        &[1, 0, 0],
        &["1E-45", "1E0", "2E0"],
        &[0, 0, 0],
    )
    .replace(r#""split_type":[0,0,0]"#, r#""split_type":[1,0,0]"#)
    .replace(r#""categories":[]"#, &format!(r#""categories":[{cats}]"#))
    .replace(r#""categories_nodes":[]"#, r#""categories_nodes":[0]"#)
    .replace(
        r#""categories_segments":[]"#,
        r#""categories_segments":[0]"#,
    )
    .replace(
        r#""categories_sizes":[]"#,
        &format!(r#""categories_sizes":[{n}]"#),
    )
}

#[test]
fn categorical_split_listed_categories_go_right() {
    let imp = both(&model(
        "reg:squarederror",
        0,
        "[0E0]",
        &[cat_stump("1,3,40")],
        &[0],
    ))
    .unwrap();
    let v = |x: f64| predict(&imp, &[0.0, x]).1[0];
    assert_eq!([v(1.0), v(3.0), v(3.7), v(40.0)], [2.0; 4]);
    assert_eq!(
        [v(0.0), v(2.0), v(-1.0), v(-0.5), v(41.0), v(1e9)],
        [1.0; 6]
    );
    assert_eq!(v(f64::NAN), 2.0);
}

#[test]
fn deleted_nodes_are_dropped_and_children_may_precede_parents() {
    // Root 0 splits to 3, 4; node 3 splits to 1, 2; nodes 5, 6 are deleted leftovers.
    let t = tree(
        0,
        &[3, -1, -1, 1, -1, -1, -1],
        &[4, -1, -1, 2, -1, -1, -1],
        &[0, 0, 0, 1, 0, 2147483647, 2147483647],
        &["0E0", "1E0", "2E0", "0E0", "3E0", "0E0", "0E0"],
        &[0, 0, 0, 1, 0, 1, 1],
    )
    .replace(r#""num_deleted":"0""#, r#""num_deleted":"2""#);
    let imp = both(&model("reg:squarederror", 0, "[0E0]", &[t], &[0])).unwrap();
    assert_eq!(imp.ensemble.trees[0].nodes.len(), 5);
    let v = |a: f64, b: f64| predict(&imp, &[a, b]).1[0];
    assert_eq!(
        [v(-1.0, -1.0), v(-1.0, 1.0), v(1.0, 0.0), v(-1.0, f64::NAN)],
        [1.0, 2.0, 3.0, 1.0]
    );
}

#[test]
fn numbers_parse_straight_to_f32() {
    // Just above the f32 halfway point 1 + 2^-24: via f64 it would round to the halfway
    // point and then to even (1.0); directly it rounds up.
    let v = json::parse(b"[1.0000000596046447753906251]").unwrap();
    assert_eq!(v, Value::Typed(Typed::F32(vec![1.000_000_1])));
    let v = json::parse(b" [NaN, Infinity, -Infinity, 1, 2E0, -0.0] ").unwrap();
    let Value::Typed(Typed::F32(a)) = v else {
        panic!()
    };
    assert!(a[0].is_nan());
    assert_eq!(&a[1..], &[f32::INFINITY, f32::NEG_INFINITY, 1.0, 2.0, -0.0]);
    assert_eq!(
        json::parse(b"[1,-2]").unwrap(),
        Value::Typed(Typed::I64(vec![1, -2]))
    );
    let s = json::parse(br#""a\u00e9\ud83d\ude00\n""#).unwrap();
    assert_eq!(s, Value::Str("a\u{e9}\u{1f600}\n".into()));
    assert_eq!(
        json::parse(b"[true,false]").unwrap(),
        Value::Typed(Typed::U8(vec![1, 0]))
    );
}

#[test]
fn old_json_booleans_and_missing_optional_fields() {
    // Before 1.5: default_left as booleans, no split_type; no feature names, no version.
    let t = stump(0, 0, "0E0", "1E0", "2E0")
        .replace(
            r#""default_left":[1,0,0]"#,
            r#""default_left":[true,false,false]"#,
        )
        .replace(r#""split_type":[0,0,0],"#, "");
    let m = model("reg:squarederror", 0, "5E-1", &[t], &[0])
        .replace(r#""feature_names":["a","b"],"#, "")
        .replace(r#","version":[3,4,1]"#, "");
    let imp = both(&m).unwrap();
    assert_eq!(imp.features, None);
    assert_eq!(imp.source, "XGBoost JSON");
    assert_eq!(predict(&imp, &[f64::NAN, 0.0]).1, vec![1.5]);
}

#[test]
fn best_iteration_below_the_last_warns_and_categorical_features_are_named() {
    let trees: Vec<String> = (0..4).map(|i| stump(i, 0, "0E0", "1E0", "2E0")).collect();
    let m = model("reg:squarederror", 0, "[0E0]", &trees, &[0; 4])
        .replace(
            r#""attributes":{}"#,
            r#""attributes":{"best_iteration":"1","best_score":"0.5"}"#,
        )
        .replace(
            r#""feature_types":["float","float"]"#,
            r#""feature_types":["float","c"]"#,
        );
    let imp = both(&m).unwrap();
    assert_eq!(imp.warnings.len(), 2, "{:?}", imp.warnings);
    assert!(imp.warnings[0].contains("features 1 are categorical"));
    assert!(imp.warnings[1].contains("best iteration is 1") && imp.warnings[1].contains("all 4"));
    let m = model("reg:squarederror", 0, "[0E0]", &trees, &[0; 4]).replace(
        r#""attributes":{}"#,
        r#""attributes":{"best_iteration":"3"}"#,
    );
    assert!(both(&m).unwrap().warnings.is_empty());
}

#[test]
fn renumbered_tree_is_pre_order_from_the_root() {
    let m = model(
        "reg:squarederror",
        0,
        "[0E0]",
        &[stump(0, 0, "0E0", "1E0", "2E0")],
        &[0],
    );
    let Node::Split(s) = &both(&m).unwrap().ensemble.trees[0].nodes[0] else {
        panic!()
    };
    assert_eq!((s.yes, s.no), (1, 2));
}
