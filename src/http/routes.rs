//! Routing: a match on method and path, to the route adapters.

use bytes::Bytes;
use http::{Method, Request};

use super::body::RequestBody;
use super::step::{BodyJob, JobKind, Next, StateRef, Step};
use super::{ApiError, AppState, feedback, info, report, score, tabular, v2};
use crate::metrics::Route;
use crate::serving::truncated;

impl BodyJob {
    /// Scores the body, once read, with the protocol the route chose.
    pub(super) fn finish<'a>(&mut self, state: &'a AppState, body: Bytes) -> Next<'a> {
        match self.kind {
            JobKind::Score { want_proba } => {
                let ask = std::mem::take(&mut self.ask);
                score::score(state, self.model(), want_proba, body, ask)
            }
            JobKind::Infer { header_len } => {
                let ask = std::mem::take(&mut self.ask);
                let (model, version) = (self.model().unwrap_or_default(), self.version());
                v2::infer(state, model, version, header_len, body, ask)
            }
            JobKind::Tabular { csv } => {
                let ask = std::mem::take(&mut self.ask);
                tabular::score(state, self.model(), csv, body, ask)
            }
            JobKind::Feedback => Next::Now(feedback::label(state, self.model(), &body)),
        }
    }
}

/// Routes a request: a match on method and path.
/// Work that outlives the call ([`Step::Later`]) keeps its own clone of `handle`.
pub(super) fn route<'a, B: RequestBody + 'a, S: StateRef + 'a>(
    req: Request<B>,
    handle: &S,
) -> Step<'a, B> {
    let state: &AppState = handle;
    let path = req.uri().path();
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    let post = *req.method() == Method::POST;
    let not_allowed = |allow: &'static str| ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        allow,
    };
    const GET: &str = "GET, HEAD";
    const POST: &str = "POST";
    let (route, reply) = match path {
        "/score" if post => return score::score_step(req, Route::Score, false),
        "/score" => (Route::Score, Err(not_allowed(POST))),
        "/health/live" if get => (Route::HealthLive, Ok(info::live())),
        "/health/ready" if get => (Route::HealthReady, info::ready(state)),
        "/models" if get => (Route::Models, info::models(state, None)),
        "/metrics" if get => (Route::Metrics, Ok(info::metrics(state))),
        "/openapi.json" if get => (Route::OpenApi, Ok(info::openapi(state))),
        "/v2" if get => (Route::V2Server, Ok(info::server_metadata())),
        "/v2/health/live" if get => (Route::V2Live, Ok(info::live())),
        "/v2/health/ready" if get => (Route::V2Ready, info::ready(state)),
        "/invocations" if post => {
            return tabular::step(req, Route::Invocations, tabular::Named::Default);
        }
        "/" if get => (Route::Root, Ok(tabular::root())),
        "/ping" if get => (Route::Ping, tabular::ping(state)),
        "/swagger.json" if get => (Route::Swagger, Ok(info::openapi(state))),
        "/invocations" => (Route::Invocations, Err(not_allowed(POST))),
        "/feedback" if post => return feedback::step(req, Route::Feedback),
        "/feedback" => (Route::Feedback, Err(not_allowed(POST))),
        "/" => (Route::Root, Err(not_allowed(GET))),
        "/ping" => (Route::Ping, Err(not_allowed(GET))),
        "/swagger.json" => (Route::Swagger, Err(not_allowed(GET))),
        "/health/live" => (Route::HealthLive, Err(not_allowed(GET))),
        "/health/ready" => (Route::HealthReady, Err(not_allowed(GET))),
        "/models" => (Route::Models, Err(not_allowed(GET))),
        "/metrics" => (Route::Metrics, Err(not_allowed(GET))),
        "/openapi.json" => (Route::OpenApi, Err(not_allowed(GET))),
        "/v2" => (Route::V2Server, Err(not_allowed(GET))),
        "/v2/health/live" => (Route::V2Live, Err(not_allowed(GET))),
        "/v2/health/ready" => (Route::V2Ready, Err(not_allowed(GET))),
        _ => {
            if path.starts_with("/v2/models/") {
                let (parts, body) = req.into_parts();
                return v2::route(parts, body, handle);
            }
            if let Some(rest) = path.strip_prefix("/v1/models/") {
                return match rest.strip_suffix(":predict") {
                    Some(name) if !name.is_empty() && !name.contains('/') && post => {
                        tabular::step(req, Route::V1Predict, tabular::Named::V1)
                    }
                    Some(name) if !name.is_empty() && !name.contains('/') => {
                        Step::Done(Route::V1Predict, Box::new(Err(not_allowed(POST))))
                    }
                    None if !rest.is_empty() && !rest.contains('/') && get => {
                        Step::Done(Route::V1Model, Box::new(tabular::v1_model(state, rest)))
                    }
                    None if !rest.is_empty() && !rest.contains('/') => {
                        Step::Done(Route::V1Model, Box::new(Err(not_allowed(GET))))
                    }
                    _ => Step::Done(
                        Route::Unmatched,
                        Box::new(Err(ApiError::NotFound(truncated(path)))),
                    ),
                };
            }
            if let Some(rest) = path.strip_prefix("/models/") {
                match rest.split_once('/') {
                    None if get => (Route::Model, info::models(state, Some(rest))),
                    None => (Route::Model, Err(not_allowed(GET))),
                    Some((_, "score")) if post => {
                        return score::score_step(req, Route::ModelScore, true);
                    }
                    Some((_, "score")) => (Route::ModelScore, Err(not_allowed(POST))),
                    Some((_, "invocations")) if post => {
                        return tabular::step(req, Route::ModelInvocations, tabular::Named::Models);
                    }
                    Some((_, "invocations")) => (Route::ModelInvocations, Err(not_allowed(POST))),
                    Some((_, "feedback")) if post => {
                        return feedback::step(req, Route::ModelFeedback);
                    }
                    Some((_, "feedback")) => (Route::ModelFeedback, Err(not_allowed(POST))),
                    Some((name, "report")) if get => {
                        let name = name.to_owned();
                        let state = handle.clone();
                        return Step::Later(
                            Route::ModelReport,
                            Box::pin(async move { report::report(&state, name).await }),
                        );
                    }
                    Some((_, "report")) => (Route::ModelReport, Err(not_allowed(GET))),
                    Some((name, "live")) if get => {
                        (Route::ModelLive, info::model_live(state, name))
                    }
                    Some((_, "live")) => (Route::ModelLive, Err(not_allowed(GET))),
                    Some(_) => (Route::Unmatched, Err(ApiError::NotFound(truncated(path)))),
                }
            } else {
                (Route::Unmatched, Err(ApiError::NotFound(truncated(path))))
            }
        }
    };
    Step::Done(route, Box::new(reply))
}
