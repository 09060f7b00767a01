//! `POST /feedback`, `/models/{model}/feedback`: ground truth for earlier answers, by the
//! `x-request-id` they carried (and the row, for a batch), joined by the feedback record
//! (`crate::feedback`, on with `--feedback-window`); or labelled rows sent with their
//! features, scored now by the model's current version.

use bytes::Bytes;
use http::{Request, StatusCode};

use super::body::check_content_type;
use super::step::{BodyJob, JobKind, Reply, Step};
use super::{ApiError, AppState, json_response};
use crate::feedback::Outcome;
use crate::metrics::Route;
use crate::protocol::feedback::{self as body_of, Label};
use crate::protocol::{InputError, score};
use crate::serving::{ScoreError, ServedModel, find};

/// The route up to the body.
pub(super) fn step<'a, B>(req: Request<B>, route: Route) -> Step<'a, B> {
    if let Err(e) = check_content_type(req.headers(), &["application/json"]) {
        return Step::Done(route, Box::new(Err(e)));
    }
    let (parts, body) = req.into_parts();
    let job = BodyJob::new(parts.uri, JobKind::Feedback, |path| {
        let model = path
            .strip_prefix("/models/")
            .and_then(|r| r.split_once('/'));
        (model.map(|(name, _)| name), None)
    });
    Step::Body { route, body, job }
}

/// Joins the labels in `body`; answers how many joined and why the others did not.
pub(super) fn label(state: &AppState, model: Option<&str>, body: &Bytes) -> Reply {
    let Some(feedback) = state.scoring.feedback() else {
        return Err(ApiError::NotFound(
            "/feedback: feedback is off; start the server with --feedback-window N to remember \
             answers for labels"
                .into(),
        ));
    };
    if let Some(m) = model {
        state.scoring.catalog(m)?;
    }
    let labels = body_of::decode(body, state.config.max_batch_rows)?;
    // Labelled rows are decoded first: a bad one fails the request before anything counts.
    let rows = labelled_rows(state, model, &labels)?;
    let mut rows = rows.iter();
    let mut counts = [0u64; Outcome::ALL.len()];
    let mut outcomes = Vec::with_capacity(labels.len());
    for l in labels {
        let (outcome, _) = match l {
            Label::ById(l) => feedback.label(&l.request_id, model, l.row, l.label),
            Label::Row(l) => {
                let (served, inputs, predicted) = rows.next().expect("one per labelled row");
                feedback.scored(&served.answerer, inputs, *predicted, l.label)
            }
        };
        counts[outcome.index()] += 1;
        outcomes.push(outcome.as_str());
    }
    let mut answer = serde_json::Map::new();
    for (o, n) in Outcome::ALL.iter().zip(counts) {
        answer.insert(o.as_str().into(), n.into());
    }
    answer.insert("outcomes".into(), outcomes.into());
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&answer).expect("json"),
    ))
}

/// A labelled row scored: the version (the model's current one), the inputs, the
/// prediction (a class index, or a regressor's value).
type ScoredRow = (std::sync::Arc<ServedModel>, Vec<f64>, f64);

/// Each labelled row, scored.
fn labelled_rows(
    state: &AppState,
    model: Option<&str>,
    labels: &[Label],
) -> Result<Vec<ScoredRow>, ApiError> {
    let mut out = Vec::new();
    // One version scores every row of the request (found at the first labelled row).
    let mut served: Option<std::sync::Arc<ServedModel>> = None;
    for (i, l) in labels.iter().enumerate() {
        let Label::Row(row) = l else { continue };
        let served = match &served {
            Some(s) => s.clone(),
            None => {
                let current = find(&state.scoring.fleet().models(), model)?
                    .current()
                    .ok_or_else(|| ScoreError::ModelNotReady(model.unwrap_or_default().into()))?;
                served.insert(current).clone()
            }
        };
        let m = &served.model;
        let body = serde_json::to_vec(&row.features).expect("json");
        let mut inputs = Vec::with_capacity(m.num_features());
        score::decode_with(&body, m.features(), 1, m.missing_aware(), &mut inputs).map_err(
            |e| InputError::new(e.kind, format!("labelled row {i}: features: {}", e.message)),
        )?;
        let predicted = if m.is_regression() {
            let mut value = [0.0];
            m.predict_scores(&inputs, &mut value);
            value[0]
        } else {
            m.predict(&inputs) as f64
        };
        out.push((served, inputs, predicted));
    }
    Ok(out)
}
