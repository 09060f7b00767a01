//! What answering a request takes, decided from its head: the types the router and the
//! route adapters share.

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderValue, Response, Uri};
use http_body_util::Full;

use super::{ApiError, AppState};
use crate::metrics::Route;
use crate::serving::{Outcome, Scored};

/// A route's answer.
pub(super) type Reply = Result<Response<Full<Bytes>>, ApiError>;

/// A handle on the shared state that boxed work can keep: `Arc<AppState>` on a
/// connection, `&AppState` in process.
pub(super) trait StateRef: std::ops::Deref<Target = AppState> + Clone + Send + Sync {}

impl<S: std::ops::Deref<Target = AppState> + Clone + Send + Sync> StateRef for S {}

/// What answering a request takes, decided from its head alone, without waiting. The
/// hot routes become [`Step::Body`]: the handler's only wait is for the body, and its
/// future stays small (every layer of nested futures is copied on each request).
pub(super) enum Step<'a, B> {
    /// Answered from the head (or refused). Boxed: these routes are rare, and every
    /// request's future holds a `Step`, so it stays the size of the hot variant.
    Done(Route, Box<Reply>),
    /// Read the body, then score it.
    Body { route: Route, body: B, job: BodyJob },
    /// Other asynchronous work (reports, pinned versions, V2 metadata): rare, boxed.
    Later(Route, Later<'a>),
}

impl<B> Step<'_, B> {
    /// The route decided.
    pub(super) fn route(&self) -> Route {
        match self {
            Step::Done(r, _) | Step::Body { route: r, .. } | Step::Later(r, _) => *r,
        }
    }
}

/// A boxed reply still being worked on.
pub(super) type Later<'a> = Pin<Box<dyn Future<Output = Reply> + Send + 'a>>;

/// A reply, now or later.
pub(super) enum Next<'a> {
    Now(Reply),
    Later(Later<'a>),
}

impl<'a> Next<'a> {
    /// The answer of a scoring [`Outcome`], its result made a response by `respond`.
    pub(super) fn scored<T: Send + 'static>(
        outcome: Outcome<'a, T>,
        respond: fn(Scored<T>) -> Response<Full<Bytes>>,
    ) -> Self {
        match outcome {
            Outcome::Now(result) => Next::Now(result.map(respond).map_err(ApiError::from)),
            Outcome::Later(later) => Next::Later(Box::pin(async move {
                later.await.map(respond).map_err(ApiError::from)
            })),
        }
    }
}

/// Scoring that waits for its request body. Only the path is kept (not the whole URI),
/// with the model and version as ranges of it, so nothing is allocated for them and
/// every request's future stays small.
pub(super) struct BodyJob {
    path: Option<PathAndQuery>,
    model: Option<Range<u32>>,
    version: Option<Range<u32>>,
    pub(super) kind: JobKind,
    /// The id the answer is remembered under (`--feedback-window`), the canary draw.
    pub(super) ask: crate::serving::Ask,
}

/// Which protocol scores the body.
pub(super) enum JobKind {
    /// `/score`, `/models/{model}/score`.
    Score { want_proba: bool },
    /// V2 infer.
    Infer { header_len: Option<usize> },
    /// MLflow's `/invocations`, KServe V1 predict (`csv`: a `text/csv` body).
    Tabular { csv: bool },
    /// `/feedback`, `/models/{model}/feedback`.
    Feedback,
}

/// The path a job keeps ("" when its URI had none).
fn path_of(path: &Option<PathAndQuery>) -> &str {
    path.as_ref().map_or("", PathAndQuery::path)
}

impl BodyJob {
    /// Whether the job scores rows (every kind but labels).
    pub(super) fn scores(&self) -> bool {
        !matches!(self.kind, JobKind::Feedback)
    }

    /// A job on `uri`; `names` finds the model and version in its path.
    pub(super) fn new(
        uri: Uri,
        kind: JobKind,
        names: impl for<'p> FnOnce(&'p str) -> (Option<&'p str>, Option<&'p str>),
    ) -> Self {
        let path = uri.into_parts().path_and_query;
        let whole = path_of(&path);
        // A URI is at most 64 KB long (the http crate refuses longer ones): offsets fit.
        let range = |part: &str| {
            let start = (part.as_ptr() as usize - whole.as_ptr() as usize) as u32;
            start..start + part.len() as u32
        };
        let (model, version) = names(whole);
        let (model, version) = (model.map(range), version.map(range));
        Self {
            path,
            model,
            version,
            kind,
            ask: crate::serving::Ask::default(),
        }
    }

    fn part(&self, r: &Option<Range<u32>>) -> Option<&str> {
        r.clone()
            .map(|r| &path_of(&self.path)[r.start as usize..r.end as usize])
    }

    /// The model the path names, if any.
    pub(super) fn model(&self) -> Option<&str> {
        self.part(&self.model)
    }

    /// The version the path names, if any.
    pub(super) fn version(&self) -> Option<&str> {
        self.part(&self.version)
    }
}

/// A response header value from a scored request's model name or version (this
/// thread's copy: no shared reference count is touched).
#[inline]
pub(super) fn header_value(b: Bytes) -> HeaderValue {
    HeaderValue::from_maybe_shared(b).unwrap_or(HeaderValue::from_static("invalid"))
}
