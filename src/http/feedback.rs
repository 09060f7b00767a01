//! `POST /feedback`, `/models/{model}/feedback`: ground truth for earlier answers, by the
//! `x-request-id` they carried (and the row, for a batch), joined by the feedback record
//! (`crate::feedback`, on with `--feedback-window`).

use bytes::Bytes;
use http::{Request, StatusCode};
use serde::Deserialize;

use super::body::check_content_type;
use super::step::{BodyJob, JobKind, Reply, Step};
use super::{ApiError, AppState, json_response};
use crate::feedback::{Outcome, Truth};
use crate::metrics::Route;
use crate::protocol::{InputError, InputErrorKind as K};

/// One label.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Label {
    request_id: String,
    #[serde(default)]
    row: Option<usize>,
    label: LabelValue,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum LabelValue {
    Class(String),
    Value(f64),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Body {
    Many(Vec<Label>),
    One(Label),
}

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
    let labels = match serde_json::from_slice::<Body>(body) {
        Ok(Body::Many(l)) => l,
        Ok(Body::One(l)) => vec![l],
        Err(e) => {
            let kind = if e.is_data() {
                K::InvalidBody
            } else {
                K::MalformedJson
            };
            return Err(InputError::new(
                kind,
                format!(
                    "send [{{\"request_id\": \"…\", \"row\": 0, \"label\": \"class\" or a number}}, …]: {e}"
                ),
            )
            .into());
        }
    };
    let limit = state.config.max_batch_rows;
    if labels.len() > limit {
        return Err(InputError::new(
            K::TooManyRows,
            format!(
                "{} labels in one request; the limit is {limit}",
                labels.len()
            ),
        )
        .into());
    }
    let mut counts = [0u64; Outcome::ALL.len()];
    let mut outcomes = Vec::with_capacity(labels.len());
    for l in labels {
        let truth = match l.label {
            LabelValue::Class(c) => Truth::Class(c),
            LabelValue::Value(v) => Truth::Value(v),
        };
        let (outcome, _) = feedback.label(&l.request_id, model, l.row, truth);
        counts[Outcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .expect("listed")] += 1;
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
