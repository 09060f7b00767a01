//! The routes that describe the server: health, readiness, models, metrics, reports, the
//! OpenAPI document and V2 server metadata.

use bytes::Bytes;
use http::header;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::step::Reply;
use super::{ApiError, AppState, json_response};
use crate::serving::{ScoreError, find};

pub(super) fn live() -> Response<Full<Bytes>> {
    json_response(StatusCode::OK, &b"{\"status\":\"live\"}"[..])
}

/// 200 while the fleet is ready: `/score`'s model (if it has one) and every model named
/// with `--model` are loaded, and at least one model is. The body says which model
/// `/score` answers with (or why none), and each model's version, with why when it is an
/// earlier version than its alias's.
pub(super) fn ready(state: &AppState) -> Reply {
    if state.fleet().draining() {
        return Err(ApiError::Draining);
    }
    if !state.fleet().ready() {
        return Err(ScoreError::NoModel.into());
    }
    let models = state.fleet().models();
    let loaded: Vec<_> = models
        .iter()
        .map(|c| {
            let mut m = json!({
                "name": c.name(),
                "version": c.load().as_ref().map(|s| s.model.version()),
            });
            if let Some(why) = c.fallback() {
                m["fallback"] = json!(why);
            }
            m
        })
        .collect();
    let mut body = json!({"status": "ready", "models": loaded});
    // What `/score` does, found the way `/score` finds it.
    let score = match find(&models, None) {
        Ok(d) => match d.load().as_ref() {
            Some(served) => {
                body["model"] = json!(served.model.name());
                body["version"] = json!(served.model.version());
                json!({"model": served.model.name(), "version": served.model.version()})
            }
            None => return Err(ScoreError::NoModel.into()),
        },
        Err(_) => json!({
            "model": null,
            "why": state.fleet().score_model().map(|d| d.why.as_str()),
        }),
    };
    body["score"] = score;
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).expect("json"),
    ))
}

/// `/models` (every served model) or `/models/{name}` (one).
pub(super) fn models(state: &AppState, name: Option<&str>) -> Reply {
    let models = state.fleet().models();
    let describe = |c: &crate::serving::Catalog| {
        let guard = c.load();
        let Some(served) = guard.as_ref() else {
            return json!({"name": c.name(), "alias": c.alias(), "version": null, "ready": false});
        };
        let m = served.model.manifest();
        json!({
            "name": m.name,
            "version": served.model.version(),
            "alias": c.alias(),
            "ready": true,
            "default": models.default_model().is_some_and(|d| d.name() == c.name()),
            "score_path": format!("/models/{}/score", c.name()),
            "sha256": served.model.sha256(),
            "algorithm": m.algorithm,
            "created": m.created,
            "hyper_parameters": m.hyper_parameters,
            "features": m.features,
            "target": m.target,
            "output_key": served.score.output_key(),
            "classes": m.classes,
            "trees": served.model.num_trees(),
            "nodes": served.model.num_nodes(),
            "training": m.training,
            "metrics": m.metrics,
            "task": m.task,
            "missing_values": if m.missing_aware { "null means missing" } else { "refused" },
            "drift": if m.feature_stats.is_empty() { "off: imported without --reference rows" } else { "on" },
            "import": m.import,
            "regression_metrics": m.regression_metrics,
            // The first 16 (an import keeps up to 1,000; a loaded model, these 16): enough
            // for a smoke test.
            "golden_rows": m.golden.iter().take(crate::model::KEPT_GOLDEN_ROWS).map(|g| {
                let features = m.features.iter().zip(&g.features).map(|(f, v)| (f.clone(), json!(v))).collect::<serde_json::Map<_, _>>();
                if m.task == crate::model::Task::Regression {
                    json!({"features": features, "value": g.probabilities.first()})
                } else {
                    json!({"features": features, "class": m.classes.get(g.class as usize)})
                }
            }).collect::<Vec<_>>(),
        })
    };
    let body = match name {
        None => json!({"models": models.iter().map(|c| describe(c)).collect::<Vec<_>>()}),
        Some(n) => describe(find(&models, Some(n))?),
    };
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).expect("json"),
    ))
}

pub(super) fn metrics(state: &AppState) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(state.metrics.render())));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::TEXT_FORMAT),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, super::NOSNIFF);
    resp
}

/// Extensions listed by `GET /v2`.
const EXTENSIONS: [&str; 1] = ["binary_tensor_data"];

/// `GET /v2`.
pub(super) fn server_metadata() -> Response<Full<Bytes>> {
    let body = json!({
        "name": "treeserve",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": EXTENSIONS,
    });
    json_response(StatusCode::OK, serde_json::to_vec(&body).expect("json"))
}

/// `GET /openapi.json`: the document in `openapi.json`, narrowed to what this server
/// serves now: the `model` path parameter lists the served models, and the `/score` row
/// schemas name each model's features exactly.
pub(super) fn openapi(state: &AppState) -> Response<Full<Bytes>> {
    static TEMPLATE: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    let mut doc = TEMPLATE
        .get_or_init(|| serde_json::from_slice(include_bytes!("openapi.json")).expect("valid"))
        .clone();
    let models = state.fleet().models();
    let row = |m: &crate::model::Model| {
        let props: serde_json::Map<String, serde_json::Value> = m
            .features()
            .iter()
            .map(|f| (f.clone(), json!({"type": "number"})))
            .collect();
        json!({
            "type": "object",
            "properties": props,
            "required": m.features(),
            "additionalProperties": false,
        })
    };
    let rows: Vec<serde_json::Value> = models
        .iter()
        .filter_map(|c| c.current().map(|s| row(&s.model)))
        .collect();
    let names: Vec<&str> = models.names();
    let paths = &mut doc["paths"];
    if let Some(paths) = paths.as_object_mut() {
        for op in paths.values_mut().filter_map(|p| p.as_object_mut()) {
            for op in op.values_mut() {
                let params = op.get_mut("parameters").and_then(|p| p.as_array_mut());
                for param in params.into_iter().flatten() {
                    if param["name"] == "model" && !names.is_empty() {
                        param["schema"] = json!({"type": "string", "enum": names});
                    }
                }
            }
        }
    }
    let batch =
        |r: serde_json::Value| json!({"oneOf": [r, {"type": "array", "items": r, "minItems": 1}]});
    let body =
        |path: &str| format!("/paths/{path}/post/requestBody/content/application~1json/schema");
    if let Some(d) = models.default_model().and_then(|c| c.current())
        && let Some(s) = doc.pointer_mut(&body("~1score"))
    {
        *s = batch(row(&d.model));
    }
    if !rows.is_empty()
        && let Some(s) = doc.pointer_mut(&body("~1models~1{model}~1score"))
    {
        *s = batch(json!({"anyOf": rows}));
    }
    json_response(StatusCode::OK, serde_json::to_vec(&doc).expect("json"))
}

/// `GET /models/{model}/live`: the versions on live traffic (production, shadow, canary),
/// their figures from joined labels, the shadow's agreement.
pub(super) fn model_live(state: &AppState, name: &str) -> Reply {
    let report = state.scoring.live_report(name)?;
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&report).expect("json"),
    ))
}
