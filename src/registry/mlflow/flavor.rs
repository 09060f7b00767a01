//! Models logged with MLflow's own flavors: which file of a version's artifacts holds the
//! trees (from its `MLmodel` file), and how it becomes a treeserve artifact (the importers,
//! as `treeserve import` runs them). Pickles are never read.

use std::collections::BTreeMap;

use crate::import::build::{ImportOptions, Table};
use crate::import::detect::{self, Format};

/// What to do instead of a pickled model.
pub(super) const PICKLE_HINT: &str = "log it with a flavor that saves the trees themselves: \
     mlflow.xgboost.log_model(booster or XGBModel), mlflow.lightgbm.log_model(booster, i.e. \
     model.booster_ for an LGBMModel), or scikit-learn through mlflow.onnx.log_model(\
     skl2onnx.to_onnx(model, X[:1], options={id(model): {'zipmap': False}}))";

/// The flavors of an `MLmodel` file: flavor name → its scalar keys (`data`, …).
pub(super) type Flavors = BTreeMap<String, BTreeMap<String, String>>;

/// Reads the `flavors:` block of an `MLmodel` file (YAML as MLflow writes it: two-space
/// indents, one `key: value` a line). Only what is needed is read: each flavor's scalar
/// keys; nested blocks and lists are skipped.
pub(super) fn parse_flavors(mlmodel: &str) -> Flavors {
    let mut out = Flavors::new();
    let mut inside = false;
    let mut current: Option<String> = None;
    for line in mlmodel.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start_matches(' ').len();
        let text = line.trim();
        if indent == 0 {
            inside = text == "flavors:";
            current = None;
            continue;
        }
        if !inside {
            continue;
        }
        let Some((key, value)) = text.split_once(':') else {
            continue;
        };
        let (key, value) = (unquote(key.trim()), unquote(value.trim()));
        if indent == 2 {
            out.entry(key.clone()).or_default();
            current = Some(key);
        } else if indent == 4
            && let Some(f) = &current
            && !value.is_empty()
        {
            out.entry(f.clone()).or_default().insert(key, value);
        }
    }
    out
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    for q in ['\'', '"'] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return s[1..s.len() - 1].to_owned();
        }
    }
    s.to_owned()
}

/// The model file to read and its format, from the flavors; or why the version cannot be
/// served.
pub(super) fn choose(flavors: &Flavors) -> Result<(Format, String), String> {
    let data = |f: &str| flavors.get(f).and_then(|k| k.get("data")).cloned();
    let pickled = |file: &str| file.ends_with(".pkl") || file.ends_with(".pickle");
    for (flavor, format) in [
        ("xgboost", Format::Xgboost),
        ("lightgbm", Format::Lightgbm),
        ("onnx", Format::Onnx),
    ] {
        if !flavors.contains_key(flavor) {
            continue;
        }
        let Some(file) = data(flavor) else {
            return Err(format!(
                "its MLmodel file names no data file for the {flavor} flavor"
            ));
        };
        if pickled(&file) {
            return Err(format!(
                "its {flavor} flavor holds a pickle ({file}; MLflow pickles scikit-learn-API \
                 models), which treeserve never loads: {PICKLE_HINT}"
            ));
        }
        if file.contains("..") || file.starts_with('/') {
            return Err(format!(
                "its MLmodel file names a data file outside the model: {file:?}"
            ));
        }
        return Ok((format, file));
    }
    if flavors.contains_key("sklearn") {
        return Err(format!(
            "it is an MLflow sklearn-flavor model (a pickled or skops-saved Python object), which treeserve never loads: {PICKLE_HINT}"
        ));
    }
    let names: Vec<&str> = flavors.keys().map(String::as_str).collect();
    Err(format!(
        "its flavors ({}) are none treeserve reads: log it with mlflow.xgboost, mlflow.lightgbm \
         or mlflow.onnx (tree ensembles), or publish a treeserve artifact with `treeserve publish`",
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    ))
}

/// The rows of an MLflow input example (`input_example.json`, pandas `split` orient:
/// `{"columns": [...], "data": [[...], ...]}`) as a reference table; `None` when it is
/// not one.
pub(super) fn input_example(bytes: &[u8]) -> Option<Table> {
    #[derive(serde::Deserialize)]
    struct Split {
        columns: Vec<String>,
        data: Vec<Vec<serde_json::Value>>,
    }
    let split: Split = serde_json::from_slice(bytes).ok()?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&split.columns).ok()?;
    for row in &split.data {
        let cells: Vec<String> = row
            .iter()
            .map(|v| match v {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        w.write_record(&cells).ok()?;
    }
    let csv = w.into_inner().ok()?;
    Table::parse("the MLflow input example (input_example.json)", &csv).ok()
}

/// When the model was logged: the `MLmodel` file's `utc_time_created`
/// (`'2026-12-03 14:00:00.123456'`) as RFC 3339 seconds, so every build of a version is
/// the same bytes (the same SHA-256 on every replica, a cache that matches).
pub(super) fn created(mlmodel: &str) -> Option<String> {
    let line = mlmodel
        .lines()
        .find_map(|l| l.strip_prefix("utc_time_created:"))?;
    let t = line.trim().trim_matches(|c| c == '\'' || c == '"');
    let (date, time) = t.split_once(' ').or_else(|| t.split_once('T'))?;
    let time = time.split('.').next()?.trim_end_matches('Z');
    let ok = date.len() == 10
        && time.len() == 8
        && date.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
        && time.bytes().enumerate().all(|(i, b)| {
            if i == 2 || i == 5 {
                b == b':'
            } else {
                b.is_ascii_digit()
            }
        });
    ok.then(|| format!("{date}T{time}Z"))
}

/// Builds the validated treeserve artifact of a flavor's model file, with the input
/// example (if any) as golden rows and drift baseline. `Err`: one line saying why.
pub(super) fn build(
    model: &str,
    format: Format,
    file_name: &str,
    bytes: &[u8],
    example: Option<Table>,
    created: Option<String>,
) -> Result<Vec<u8>, String> {
    let format = detect::detect(bytes, Some(format)).map_err(|e| e.to_string())?;
    let imported = crate::import::read(format, bytes).map_err(|e| e.to_string())?;
    let opts = ImportOptions {
        name: model.to_owned(),
        file_name: file_name.to_owned(),
        file_sha256: crate::model::sha256_hex(bytes),
        created,
        ..Default::default()
    };
    if let Some(t) = example {
        // A file that names no features (an ONNX graph reads one tensor) takes the names of
        // the example's columns, in order, when they are as many: the names clients send.
        let features = (imported.features.is_none()
            && t.header.len() == imported.ensemble.num_features as usize)
            .then(|| t.header.clone());
        let with = ImportOptions {
            reference: Some(t),
            features,
            ..opts.clone()
        };
        match crate::import::build::build(imported.clone(), with) {
            Ok(b) => return Ok(b.artifact),
            Err(e) => tracing::warn!(
                model,
                error = %e,
                "the MLflow input example does not fit the model; built without golden rows from it"
            ),
        }
    }
    crate::import::build::build(imported, opts)
        .map(|b| b.artifact)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logged_time_makes_builds_reproducible() {
        let m = "artifact_path: model\nutc_time_created: '2026-12-03 14:00:00.123456'\n";
        assert_eq!(created(m).as_deref(), Some("2026-12-03T14:00:00Z"));
        assert_eq!(created("utc_time_created: 'yesterday'"), None);
        assert_eq!(created("flavors: {}"), None);
    }

    const XGB: &str = "artifact_path: mlflow-artifacts:/0/models/m-1/artifacts
flavors:
  python_function:
    data: model.ubj
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.xgboost
  xgboost:
    code: null
    data: model.ubj
    model_class: xgboost.sklearn.XGBClassifier
    model_format: ubj
mlflow_version: 3.17.2
signature:
  inputs: '[{\"type\": \"double\", \"name\": \"a\"}]'
";

    #[test]
    fn reads_the_flavors_block_only() {
        let f = parse_flavors(XGB);
        assert_eq!(f.keys().collect::<Vec<_>>(), ["python_function", "xgboost"]);
        assert_eq!(f["xgboost"]["data"], "model.ubj");
        assert_eq!(f["xgboost"]["model_format"], "ubj");
        assert!(!f["python_function"].contains_key("conda"));
        assert_eq!(choose(&f), Ok((Format::Xgboost, "model.ubj".into())));
    }

    #[test]
    fn lightgbm_and_onnx_flavors() {
        let lgb =
            "flavors:\n  lightgbm:\n    data: model.lgb\n  python_function:\n    data: model.lgb\n";
        assert_eq!(
            choose(&parse_flavors(lgb)),
            Ok((Format::Lightgbm, "model.lgb".into()))
        );
        let onnx = "flavors:\n  onnx:\n    data: \"model.onnx\"\n    onnx_version: 1.17.0\n";
        assert_eq!(
            choose(&parse_flavors(onnx)),
            Ok((Format::Onnx, "model.onnx".into()))
        );
    }

    #[test]
    fn pickles_are_refused_saying_how_to_log_instead() {
        let sk = "flavors:\n  python_function:\n    data: model.pkl\n  sklearn:\n    pickled_model: model.pkl\n";
        let e = choose(&parse_flavors(sk)).unwrap_err();
        assert!(
            e.contains("sklearn-flavor") && e.contains("mlflow.onnx"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        let lgb_sk = "flavors:\n  lightgbm:\n    data: model.pkl\n";
        let e = choose(&parse_flavors(lgb_sk)).unwrap_err();
        assert!(e.contains("booster_"), "{e}");
        let other = "flavors:\n  pytorch:\n    data: data\n";
        assert!(
            choose(&parse_flavors(other))
                .unwrap_err()
                .contains("pytorch")
        );
        assert!(
            choose(&parse_flavors("x: 1\n"))
                .unwrap_err()
                .contains("none")
        );
        let escape = "flavors:\n  onnx:\n    data: ../../etc/passwd\n";
        assert!(choose(&parse_flavors(escape)).is_err());
    }

    #[test]
    fn input_examples_in_split_orient_become_tables() {
        let t = input_example(br#"{"columns": ["a", "b"], "data": [[1.5, null], [2, 3]]}"#)
            .expect("a table");
        assert!(t.name.contains("input example"));
        assert!(input_example(b"[1, 2]").is_none());
        assert!(input_example(b"not json").is_none());
    }
}
