//! Azure ML's `/score` contract over HTTP: the checks of the head, then the scoring use
//! case with the `/score` codec.

use bytes::Bytes;
use http::header::HeaderName;
use http::{Request, Response, StatusCode};
use http_body_util::Full;

use super::body::check_content_type;
use super::step::{BodyJob, JobKind, Next, Step, header_value};
use super::{ApiError, AppState, json_response};
use crate::metrics::Route;
use crate::serving::{ScoreCodec, Scored};

/// The name of the model that answered.
pub(super) const X_MODEL_NAME: HeaderName = HeaderName::from_static("x-model-name");
/// The version of the model that answered.
pub(super) const X_MODEL_VERSION: HeaderName = HeaderName::from_static("x-model-version");

/// `/score` and (`named`) `/models/{model}/score` up to the body: the checks of the head.
pub(super) fn score_step<'a, B>(req: Request<B>, route: Route, named: bool) -> Step<'a, B> {
    let checked = check_content_type(req.headers(), &["application/json"])
        .and_then(|()| wants_probabilities(req.uri().query()));
    match checked {
        Err(e) => Step::Done(route, Box::new(Err(e))),
        Ok(want_proba) => {
            let (parts, body) = req.into_parts();
            let job = BodyJob::new(parts.uri, JobKind::Score { want_proba }, |path| {
                let model = path
                    .strip_prefix("/models/")
                    .and_then(|r| r.split_once('/'));
                (model.filter(|_| named).map(|(name, _)| name), None)
            });
            Step::Body { route, body, job }
        }
    }
}

/// Parses `?probabilities=true|false|1|0` (names and values percent-decoded, `+` a
/// space); other parameters are ignored.
fn wants_probabilities(query: Option<&str>) -> Result<bool, ApiError> {
    let mut want = false;
    for pair in query.unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, "true"));
        if &*decoded(k)? == b"probabilities" {
            want = match &*decoded(v)? {
                b"true" | b"1" => true,
                b"false" | b"0" => false,
                _ => {
                    return Err(ApiError::InvalidQuery(
                        "probabilities must be true or false".into(),
                    ));
                }
            };
        }
    }
    Ok(want)
}

/// A query component percent-decoded (`application/x-www-form-urlencoded`); borrowed
/// when there is nothing to decode.
fn decoded(s: &str) -> Result<std::borrow::Cow<'_, [u8]>, ApiError> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(s.as_bytes().into());
    }
    let bad = || ApiError::InvalidQuery(format!("bad percent-encoding in the query: {s:.64}"));
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        out.push(match b {
            b'+' => b' ',
            b'%' => {
                let hi = bytes.next().and_then(hex).ok_or_else(bad)?;
                let lo = bytes.next().and_then(hex).ok_or_else(bad)?;
                (hi * 16 + lo) as u8
            }
            b => b,
        });
    }
    Ok(out.into())
}

/// Scores a `/score` body with `model` (the default model if `None`).
pub(super) fn score<'a>(
    state: &'a AppState,
    model: Option<&str>,
    want_proba: bool,
    body: Bytes,
    ask: crate::serving::Ask,
) -> Next<'a> {
    let outcome = state
        .scoring
        .score_asked(model, None, ScoreCodec { want_proba }, body, ask);
    Next::scored(outcome, respond)
}

/// A scored JSON answer, with the model's name and version in headers.
pub(super) fn respond(scored: Scored<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = json_response(StatusCode::OK, scored.output);
    // A fresh map: `append` is `insert` here, and it is the code hyper's request parsing
    // keeps hot.
    let headers = resp.headers_mut();
    headers.append(X_MODEL_NAME, header_value(scored.model));
    headers.append(X_MODEL_VERSION, header_value(scored.version));
    resp
}
