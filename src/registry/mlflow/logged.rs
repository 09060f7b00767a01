//! What a published version's MLflow run shows: the model's parameters, test metrics and
//! provenance from its manifest, as one `runs/log-batch` body, so MLflow's UI and its
//! search (`metrics.accuracy > 0.9`) work on treeserve's versions as on any other run.

use serde_json::{Value, json};

use crate::model::{Algorithm, Manifest, Task};

/// MLflow's limits per `log-batch` call (params 100, metrics 1000, tags 100); a model
/// with more classes logs the first classes' metrics only.
const MAX_METRICS: usize = 1000;
const MAX_PARAMS: usize = 100;
/// MLflow keeps a param value of at most this many characters.
const MAX_PARAM_CHARS: usize = 6000;

/// A metric or param key MLflow accepts: alphanumerics, `_ - . / space`; anything else
/// (a class label's `:` or `+`) becomes `_`.
fn key(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ' ') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The `runs/log-batch` body for `run_id`, at `timestamp_ms`.
pub(super) fn log_batch(run_id: &str, m: &Manifest, timestamp_ms: u64) -> Value {
    let mut params: Vec<(String, String)> = Vec::new();
    let mut p = |k: &str, v: String| params.push((k.to_owned(), v));
    let algorithm = match m.algorithm {
        Algorithm::DecisionTree => "decision_tree",
        Algorithm::RandomForest => "random_forest",
        Algorithm::Imported => "imported",
    };
    p("algorithm", algorithm.into());
    p(
        "task",
        match m.task {
            Task::Classification => "classification",
            Task::Regression => "regression",
        }
        .into(),
    );
    p("target", m.target.clone());
    p("n_features", m.features.len().to_string());
    p("features", m.features.join(","));
    if m.task == Task::Classification {
        p("classes", m.classes.join(","));
    }
    p("treeserve_version", m.treeserve_version.clone());
    if let Some(h) = &m.hyper_parameters {
        p("criterion", h.criterion.clone());
        p("min_samples_leaf", h.min_samples_leaf.to_string());
        p("min_samples_split", h.min_samples_split.to_string());
        p("seed", h.seed.to_string());
        if let Some(d) = h.max_depth {
            p("max_depth", d.to_string());
        }
        if let Some(n) = h.n_trees {
            p("n_trees", n.to_string());
        }
        if let Some(f) = h.max_features {
            p("max_features", f.to_string());
        }
    }
    if let Some(i) = &m.import {
        p("import_format", i.format.clone());
        p("import_source", i.source.clone());
        p("import_objective", i.objective.clone());
        p("import_file", i.file.clone());
    } else {
        let t = &m.training;
        p("data_source", t.source.clone());
        p("data_rows", t.rows.to_string());
        p("train_rows", t.train_rows.to_string());
        p("test_rows", t.test_rows.to_string());
        p("test_size", t.test_size.to_string());
        p("split_seed", t.split_seed.to_string());
    }
    params.truncate(MAX_PARAMS);

    let mut metrics: Vec<(String, f64)> = vec![("accuracy".into(), m.metrics.accuracy)];
    if !m.metrics.per_class.is_empty() {
        let n = m.metrics.per_class.len() as f64;
        let macro_f1 = m.metrics.per_class.iter().map(|c| c.f1).sum::<f64>() / n;
        metrics.push(("f1_macro".into(), macro_f1));
    }
    if let Some(r) = &m.regression_metrics {
        metrics.push(("rmse".into(), r.rmse));
        metrics.push(("mae".into(), r.mae));
        metrics.push(("r2".into(), r.r2));
    }
    if let Some(parity) = m.import.as_ref().and_then(|i| i.parity.as_ref()) {
        metrics.push(("import_parity_max_abs".into(), parity.max_abs));
        metrics.push(("import_parity_max_rel".into(), parity.max_rel));
    }
    for c in &m.metrics.per_class {
        let label = key(&c.label);
        metrics.push((format!("precision/{label}"), c.precision));
        metrics.push((format!("recall/{label}"), c.recall));
        metrics.push((format!("f1/{label}"), c.f1));
    }
    // JSON has no NaN (an unknown metric, e.g. an import's accuracy): it is left out.
    metrics.retain(|(_, v)| v.is_finite());
    metrics.truncate(MAX_METRICS);

    json!({
        "run_id": run_id,
        "params": params.into_iter().map(|(k, v)| {
            let v: String = v.chars().take(MAX_PARAM_CHARS).collect();
            json!({ "key": key(&k), "value": v })
        }).collect::<Vec<_>>(),
        "metrics": metrics.into_iter().map(|(k, v)| {
            json!({ "key": k, "value": v, "timestamp": timestamp_ms, "step": 0 })
        }).collect::<Vec<_>>(),
        "tags": [
            { "key": "treeserve.model", "value": m.name },
            { "key": "treeserve.payload_sha256", "value": m.payload_sha256 },
            { "key": "treeserve.created", "value": m.created },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_what_mlflow_accepts() {
        assert_eq!(key("Iris-setosa"), "Iris-setosa");
        assert_eq!(key("a:b+c/d é"), "a_b_c/d _");
    }
}
