//! Imported models through the real binary: a hand-built regressor that routes missing
//! values (the serving side of every importer), and the import command's refusals.

use serde_json::{Value, json};
use treeserve::import::build::{ImportOptions, Table, build};
use treeserve::import::{Imported, ImportedTask};
use treeserve::model::ensemble::*;

use crate::common::*;

/// `price = base + (x < 2 ? 10 : 20) + (y missing or y < 0 ? 1 : 2)`, XGBoost-like (f32,
/// base margin first); missing x goes the `no` way.
fn regressor() -> Imported {
    let split = |feature, t: f64, missing| {
        Node::Split(Split {
            feature,
            test: Test::Lt(t),
            yes: 1,
            no: 2,
            missing,
            zero_is_missing: false,
        })
    };
    let tree = |root, a: f64, b: f64| Tree {
        nodes: vec![
            root,
            Node::Leaf(Leaf::Scalar(a)),
            Node::Leaf(Leaf::Scalar(b)),
        ],
        group: 0,
    };
    Imported {
        ensemble: Ensemble {
            num_features: 2,
            outputs: 1,
            trees: vec![
                tree(split(0, 2.0, Branch::No), 10.0, 20.0),
                tree(split(1, 0.0, Branch::Yes), 1.0, 2.0),
            ],
            base: vec![0.5],
            base_placement: BasePlacement::Initial,
            aggregation: Aggregation::Sum,
            precision: Precision::F32,
            zero_snap: false,
            transform: Transform::Identity,
            output_cast_f32: false,
            output: OutputKind::Value,
        },
        task: ImportedTask::Regression,
        features: Some(vec!["x".into(), "y".into()]),
        classes: None,
        missing_aware: true,
        format: "xgboost",
        source: "hand-built".into(),
        objective: "reg:squarederror".into(),
        warnings: Vec::new(),
    }
}

fn table(name: &str, csv: &str) -> Table {
    Table::parse(name, csv.as_bytes()).unwrap()
}

const REFERENCE: &str = "x,y,price\n1,-1,11.5\n3,5,22.5\n,1,22.5\n1,,11.5\n";
const EXPECTED: &str = "predicted_price\n11.5\n22.5\n22.5\n11.5\n";

fn options(expected: &str) -> ImportOptions {
    ImportOptions {
        name: "price".into(),
        target: Some("price".into()),
        reference: Some(table("reference.csv", REFERENCE)),
        expected: Some(table("expected.csv", expected)),
        file_name: "hand-built".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_regressor_answers_numbers_and_routes_nulls_over_every_protocol() {
    let built = build(regressor(), options(EXPECTED)).unwrap();
    let p = built.parity.as_ref().expect("parity checked");
    assert_eq!((p.rows, p.max_abs), (4, 0.0));
    let m = built.model.manifest();
    let r = m
        .regression_metrics
        .as_ref()
        .expect("the reference has the target");
    assert_eq!((r.rmse, r.rows), (0.0, 4));
    assert_eq!(
        m.feature_stats.len(),
        2,
        "the reference rows are the drift baseline"
    );

    let reg = TestRegistry::new();
    let file = reg.path().join("price.tsm");
    std::fs::write(&file, &built.artifact).unwrap();
    assert_eq!(reg.publish(&file, Some("production")), 1);
    let app = App::spawn(reg.path(), &[]);

    let resp = app.post("/score", r#"{"x": 1, "y": -1}"#).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"output":{"predicted_price":11.5}}"#
    );
    let v: Value = app
        .post("/score", r#"[{"x": null, "y": 1}, {"x": 3, "y": null}]"#)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v,
        json!({"output": [{"predicted_price": 22.5}, {"predicted_price": 21.5}]})
    );
    // Absent is still an error; null is not.
    let resp = app.post("/score", r#"{"x": 1}"#).await;
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error_type"], "missing_feature");

    // V2: an FP64 tensor named predict.
    let body =
        r#"{"inputs":[{"name":"input","shape":[3,2],"datatype":"FP64","data":[1,-1,3,5,3,null]}]}"#;
    let v: Value = app
        .post("/v2/models/price/infer", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["outputs"][0]["name"], "predict", "{v}");
    assert_eq!(v["outputs"][0]["datatype"], "FP64");
    assert_eq!(v["outputs"][0]["data"], json!([11.5, 22.5, 21.5]));
    let ask = r#"{"inputs":[{"name":"input","shape":[1,2],"datatype":"FP64","data":[1,1]}],"outputs":[{"name":"probabilities"}]}"#;
    let resp = app.post("/v2/models/price/infer", ask).await;
    assert_eq!(resp.status(), 400);

    // V2 binary data: NaN is a missing value too.
    let header = json!({"inputs": [{"name": "input", "shape": [2, 2], "datatype": "FP64",
        "parameters": {"binary_data_size": 32}}]})
    .to_string();
    let mut binary = header.clone().into_bytes();
    for v in [f64::NAN, 1.0, 3.0, f64::NAN] {
        binary.extend_from_slice(&v.to_le_bytes());
    }
    let resp = app
        .client
        .post(app.url("/v2/models/price/infer"))
        .header("inference-header-content-length", header.len())
        .header("content-type", "application/octet-stream")
        .body(binary)
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["outputs"][0]["data"], json!([22.5, 21.5]), "{v}");

    let smoke = treeserve(&["smoke", &app.url("")]);
    assert!(
        smoke.status.success(),
        "{}",
        String::from_utf8_lossy(&smoke.stdout)
    );

    let meta: Value = app.get("/v2/models/price").await.json().await.unwrap();
    assert_eq!(
        meta["outputs"],
        json!([{"name": "predict", "datatype": "FP64", "shape": [-1]}])
    );
    assert_eq!(meta["parameters"]["missing_values"], true);

    let info: Value = app.get("/models/price").await.json().await.unwrap();
    assert_eq!(info["task"], "regression");
    assert_eq!(info["missing_values"], "null means missing");
    assert_eq!(info["import"]["parity"]["rows"], 4);

    // predict: an empty cell is a missing value.
    let input = reg.path().join("rows.csv");
    std::fs::write(&input, "x,y\n1,-1\n,1\n3,\n").unwrap();
    let out = treeserve_ok(&[
        "predict",
        "--registry",
        reg.arg(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        "-",
    ]);
    assert_eq!(out, "predicted_price\n11.5\n22.5\n21.5\n");
}

#[test]
fn parity_is_checked_row_by_row() {
    let wrong = EXPECTED.replace("22.5\n11.5", "22.5\n11.6");
    let e = build(regressor(), options(&wrong)).unwrap_err().to_string();
    assert!(
        e.contains("line 5") && e.contains("11.6") && e.contains("refused"),
        "{e}"
    );
    // Within 1e-6 relative passes.
    let near = EXPECTED.replace("11.5\n22.5", "11.500001\n22.5");
    let built = build(regressor(), options(&near)).unwrap();
    assert!(built.parity.unwrap().max_rel > 0.0);
    // Without --expected: loud, and still golden rows.
    let mut o = options(EXPECTED);
    o.expected = None;
    let built = build(regressor(), o).unwrap();
    assert!(
        built
            .warnings
            .iter()
            .any(|w| w.contains("parity NOT checked"))
    );
}

#[test]
fn the_import_command_refuses_pickles_and_unknown_files_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, says) in [
        (
            "model.pkl",
            &b"\x80\x04\x95\x20\x00\x00\x00"[..],
            "never read",
        ),
        ("model.joblib", b"\x78\x9c\x01\x02", "never reads pickles"),
        ("model.bin", b"hello world", "unrecognised"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = std::process::Command::new(BIN)
            .args(["import", path.to_str().unwrap(), "--name", "m", "--output"])
            .arg(dir.path().join("m.tsm"))
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!err.contains("backtrace"), "{err}");
    }
}

/// [`regressor`]'s two trees ten times over, leaves shifted: enough trees for the wide
/// layout (format 3).
fn many_trees() -> Imported {
    let mut m = regressor();
    let two = m.ensemble.trees.clone();
    m.ensemble.trees = (0..10)
        .flat_map(|i| {
            two.iter().cloned().map(move |mut t| {
                for n in &mut t.nodes {
                    if let Node::Leaf(Leaf::Scalar(v)) = n
                        && *v >= 10.0
                    {
                        *v += f64::from(i);
                    }
                }
                t
            })
        })
        .collect();
    m
}

#[test]
fn imports_write_format_3_and_format_2_artifacts_still_serve_alike() {
    // Leaves 10+i and 20+i for x, 1 and 2 for y, ten times, and the base.
    let expected = "predicted_price\n155.5\n265.5\n265.5\n155.5\n";
    let built = build(many_trees(), options(expected)).unwrap();
    let format = |a: &[u8]| u32::from_le_bytes(a[8..12].try_into().unwrap());
    assert_eq!(format(&built.artifact), 3, "an import of 20 trees");
    let (manifest, _) = treeserve::model::read_parts(&built.artifact).unwrap();
    let trees = rmp_serde::to_vec(&many_trees().ensemble).unwrap();
    let v2 = treeserve::model::encode_artifact_as(&manifest, &trees, 2);
    let reg = TestRegistry::new();
    for (file, bytes) in [("v3.tsm", &built.artifact), ("v2.tsm", &v2)] {
        let path = reg.path().join(file);
        std::fs::write(&path, bytes).unwrap();
        reg.publish(&path, None);
    }
    let input = reg.path().join("rows.csv");
    std::fs::write(&input, "x,y\n1,-1\n3,5\n,1\n1,\n").unwrap();
    for version in ["1", "2"] {
        let out = treeserve_ok(&[
            "predict",
            "--registry",
            reg.arg(),
            "--version",
            version,
            "--input",
            input.to_str().unwrap(),
            "--output",
            "-",
        ]);
        assert_eq!(out, expected, "version {version}");
    }
}

/// A few hundred bytes declaring 200 million features (found by the fuzzer: compiling
/// such a model once allocated 6.4 GB) are refused through the binary in one line.
#[test]
fn the_import_command_refuses_a_huge_feature_count_in_one_line() {
    let tree = r#"{"base_weights":[0E0,0E0,0E0],"categories":[],"categories_nodes":[],"categories_segments":[],"categories_sizes":[],"default_left":[1,0,0],"id":0,"left_children":[1,-1,-1],"loss_changes":[0E0,0E0,0E0],"parents":[0,0,0],"right_children":[2,-1,-1],"split_conditions":[0E0,1E0,2E0],"split_indices":[0,0,0],"split_type":[0,0,0],"sum_hessian":[0E0,0E0,0E0],"tree_param":{"num_deleted":"0","num_feature":"2","num_nodes":"3","size_leaf_vector":"1"}}"#;
    let model = |features: u64| {
        format!(
            r#"{{"learner":{{"attributes":{{}},"gradient_booster":{{"model":{{"gbtree_model_param":{{"num_parallel_tree":"1","num_trees":"1"}},"iteration_indptr":[],"tree_info":[0],"trees":[{tree}]}},"name":"gbtree"}},"learner_model_param":{{"base_score":"0E0","boost_from_average":"1","num_class":"0","num_feature":"{features}","num_target":"1"}},"objective":{{"name":"reg:squarederror"}}}},"version":[3,4,1]}}"#
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let import = |features: u64| {
        let path = dir.path().join("model.json");
        std::fs::write(&path, model(features)).unwrap();
        std::process::Command::new(BIN)
            .args(["import", path.to_str().unwrap(), "--name", "m", "--output"])
            .arg(dir.path().join("m.tsm"))
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap()
    };
    // The same document with a small count imports: the refusal is the count's.
    let ok = import(2);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let out = import(200_000_000);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("num_feature is 200000000") && err.contains("1 to 1048576 allowed"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("backtrace"), "{err}");
}
