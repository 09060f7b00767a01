//! The scoring use case every protocol shares: find the model (one lookup, one error
//! mapping), decode the body with the protocol's [`Codec`], predict on the one path,
//! record statistics, encode. Protocol adapters (HTTP `/score`, V2, and those to come)
//! only translate requests into [`Scoring::score`] and its results into their answers.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use super::{Catalog, Fleet, LoadError, Models, ScoreError, ServedModel, predict};
use crate::metrics::Metrics;
use crate::model::Model;
use crate::protocol::InputError;
use crate::registry::RegistryError;

/// Bodies larger than this are decoded and scored on a blocking thread, not on the runtime.
const INLINE_BODY_LIMIT: usize = 256 * 1024;

/// Bodies that could hold more than this many tree·rows (the most rows a body of its size
/// can hold, every value taking at least two bytes, times the model's trees) are scored on
/// a blocking thread: for 4 features, 256 KiB on one tree, 2.6 KB on a 100-tree forest
/// (tens of µs to ~1 ms of work); one row of a 1,000-tree model stays inline.
const INLINE_TREE_ROWS: usize = 32 * 1024;

/// Whether a body of `len` bytes is cheap enough for the runtime.
fn inline(len: usize, model: &Model) -> bool {
    let most_rows = len / (2 * model.num_features().max(1)) + 1;
    len <= INLINE_BODY_LIMIT && most_rows.saturating_mul(model.num_trees()) <= INLINE_TREE_ROWS
}

/// A protocol's wire format for scoring: decode a body into rows, encode predictions.
pub trait Codec: Send + 'static {
    /// What decoding learned that encoding needs (batch or not, outputs, request id).
    type Decoded<'b>;
    /// The encoded answer.
    type Output: Send + 'static;
    /// Decodes `body` for `model` into `values` (row-major); returns the rows.
    fn decode<'b>(
        &self,
        model: &Model,
        body: &'b [u8],
        max_rows: usize,
        values: &mut Vec<f64>,
    ) -> Result<(usize, Self::Decoded<'b>), InputError>;
    /// Whether the answer needs class probabilities.
    fn wants_proba(&self, decoded: &Self::Decoded<'_>) -> bool;
    /// Encodes each row's class (and probabilities, `rows × classes`, when wanted).
    fn encode(
        &self,
        served: &ServedModel,
        local: &Local,
        decoded: Self::Decoded<'_>,
        classes: &[usize],
        proba: Option<&[f64]>,
    ) -> Self::Output;
}

/// This thread's copies of one loaded version's response pieces. Cloning a shared
/// `Bytes` touches a reference count every core writes to; per-thread copies keep those
/// writes on one core.
#[derive(Debug)]
pub struct Local {
    id: u64,
    /// The model's name.
    pub name: Bytes,
    /// The version, as decimal text.
    pub version: Bytes,
    /// The `/score` answer of one row without probabilities, per class.
    pub singles: Vec<Bytes>,
}

impl Local {
    fn new(served: &ServedModel) -> Self {
        Self {
            id: served.id,
            name: Bytes::copy_from_slice(served.model.name().as_bytes()),
            version: Bytes::copy_from_slice(served.version_text.as_bytes()),
            singles: (0..served.model.num_classes())
                .map(|c| Bytes::copy_from_slice(served.score.single(c)))
                .collect(),
        }
    }
}

/// This thread's reusable buffers: the one scratch mechanism of every protocol.
#[derive(Default)]
struct Scratch {
    values: Vec<f64>,
    classes: Vec<usize>,
    proba: Vec<f64>,
    local: Option<Local>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// A scored request.
#[derive(Debug)]
pub struct Scored<T> {
    /// Rows scored.
    pub rows: usize,
    /// The encoded answer.
    pub output: T,
    /// The name of the model that answered (this thread's copy).
    pub model: Bytes,
    /// Its version, as decimal text (this thread's copy).
    pub version: Bytes,
}

/// A result still being worked on (a pinned version's first load, a large body).
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T, ScoreError>> + Send + 'a>>;

/// A result, now or later.
pub enum Outcome<'a, T> {
    /// Scored inline.
    Now(Result<Scored<T>, ScoreError>),
    /// Scored on a blocking thread, or after loading a pinned version.
    Later(Pending<'a, Scored<T>>),
}

/// What a request brings besides its body (`/score`): the id its answer is remembered
/// under (with a feedback record), and its canary draw (from `--canary-key`'s header).
#[derive(Debug, Default)]
pub struct Ask {
    /// The answer's id, for labels.
    pub id: Option<crate::feedback::AnswerId>,
    /// When the request arrived: the answer's time in the feedback record (`None`: when
    /// it is remembered).
    pub at: Option<std::time::Instant>,
    /// The request's canary draw ([`super::draw`]); `None`: at random.
    pub drawn: Option<u32>,
}

/// How requests are scored: limits, statistics, and the permits for blocking work.
#[derive(Debug)]
pub struct Scoring {
    fleet: Arc<Fleet>,
    metrics: Arc<Metrics>,
    blocking: Arc<tokio::sync::Semaphore>,
    max_rows: usize,
    record: bool,
    threads: usize,
    feedback: Option<Arc<crate::feedback::Feedback>>,
    shadowing: Option<Arc<super::Shadowing>>,
}

impl Scoring {
    /// Scoring of `fleet`'s models: at most `max_rows` rows a request, at most
    /// `max_blocking` requests at once on blocking threads; `record` predictions, drift
    /// and batch sizes in `metrics`.
    pub fn new(
        fleet: Arc<Fleet>,
        metrics: Arc<Metrics>,
        max_rows: usize,
        max_blocking: usize,
        record: bool,
    ) -> Self {
        Self {
            fleet,
            metrics,
            blocking: Arc::new(tokio::sync::Semaphore::new(max_blocking)),
            max_rows,
            record,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            feedback: None,
            shadowing: None,
        }
    }

    /// Scores every alias answer with the shadow version too (`--shadow`).
    pub fn with_shadowing(mut self, shadowing: Arc<super::Shadowing>) -> Self {
        self.shadowing = Some(shadowing);
        self
    }

    /// The shadow queue, with `--shadow`.
    pub fn shadowing(&self) -> Option<&Arc<super::Shadowing>> {
        self.shadowing.as_ref()
    }

    /// Remembers answers given with an id in `feedback`, for labels to join later.
    pub fn with_feedback(mut self, feedback: Arc<crate::feedback::Feedback>) -> Self {
        self.feedback = Some(feedback);
        self
    }

    /// The feedback record, with `--feedback-window`.
    pub fn feedback(&self) -> Option<&Arc<crate::feedback::Feedback>> {
        self.feedback.as_ref()
    }

    /// Splits each large batch over at most `threads` threads (default: one per core).
    pub fn with_batch_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The served models.
    #[inline]
    pub fn fleet(&self) -> &Arc<Fleet> {
        &self.fleet
    }

    /// Scores `body` with `codec`: with `model` (the default model if `None`) at
    /// `version` (the alias's if `None`). The version is loaded once, here, and answers
    /// the whole request. Small bodies on the alias's version are scored inline, under
    /// guards that touch no shared reference count.
    pub fn score<'a, C: Codec>(
        &'a self,
        model: Option<&str>,
        version: Option<&str>,
        codec: C,
        body: Bytes,
    ) -> Outcome<'a, C::Output> {
        self.score_asked(model, version, codec, body, Ask::default())
    }

    /// [`Scoring::score`] with what the request brings: its answer remembered under
    /// `ask.id` when there is a feedback record, its canary draw.
    pub fn score_asked<'a, C: Codec>(
        &'a self,
        model: Option<&str>,
        version: Option<&str>,
        codec: C,
        body: Bytes,
        ask: Ask,
    ) -> Outcome<'a, C::Output> {
        let id = ask
            .id
            .filter(|_| self.feedback.is_some())
            .map(|id| (id, ask.at.unwrap_or_else(std::time::Instant::now)));
        if let Some(version) = version {
            let (model, version) = (model.unwrap_or_default().to_owned(), version.to_owned());
            return Outcome::Later(Box::pin(async move {
                let (_, served) = self.resolve(&model, Some(&version)).await?;
                match self.score_on(&served, None, codec, body, id) {
                    Outcome::Now(result) => result,
                    Outcome::Later(later) => later.await,
                }
            }));
        }
        let models = self.fleet.models();
        let catalog = match find(&models, model) {
            Ok(c) => c,
            Err(e) => return Outcome::Now(Err(e)),
        };
        let guard = catalog.load();
        let Some(current) = guard.as_ref() else {
            return Outcome::Now(Err(not_ready(model)));
        };
        if let Some(canary) = catalog.canary_pick(ask.drawn)
            && let Some(canary) = canary.as_ref()
        {
            return self.score_on(canary, None, codec, body, id);
        }
        match &self.shadowing {
            Some(q) => match catalog.shadow_guard().as_ref() {
                Some(shadow) => self.score_on(current, Some((shadow, q)), codec, body, id),
                None => self.score_on(current, None, codec, body, id),
            },
            None => self.score_on(current, None, codec, body, id),
        }
    }

    /// Scores with `served` (and queues the rows for `shadow`): inline when the body is
    /// cheap for its forest, else on a blocking thread.
    fn score_on<'a, C: Codec>(
        &'a self,
        served: &Arc<ServedModel>,
        shadow: Option<(&Arc<ServedModel>, &Arc<super::Shadowing>)>,
        codec: C,
        body: Bytes,
        id: Option<(crate::feedback::AnswerId, std::time::Instant)>,
    ) -> Outcome<'a, C::Output> {
        let (max_rows, record) = (self.max_rows, self.record);
        if inline(body.len(), &served.model) {
            let remember = id.as_ref().zip(self.feedback.as_deref());
            let scored = run(served, &codec, &body, max_rows, record, 1, remember, shadow);
            return Outcome::Now(self.finish(scored));
        }
        let feedback = self.feedback.clone();
        let served = Arc::clone(served);
        let shadow = shadow.map(|(s, q)| (Arc::clone(s), Arc::clone(q)));
        let threads = self.threads;
        Outcome::Later(Box::pin(async move {
            let scored = self
                .blocking("scoring", move || {
                    let remember = id.as_ref().zip(feedback.as_deref());
                    let shadow = shadow.as_ref().map(|(s, q)| (s, q));
                    run(
                        &served, &codec, &body, max_rows, record, threads, remember, shadow,
                    )
                })
                .await?;
            self.finish(scored)
        }))
    }

    fn finish<T>(&self, scored: Result<Scored<T>, InputError>) -> Result<Scored<T>, ScoreError> {
        let scored = scored?;
        if self.record {
            self.metrics.observe_batch(scored.rows);
        }
        Ok(scored)
    }

    /// The served model called `name`.
    pub fn catalog(&self, name: &str) -> Result<Arc<Catalog>, ScoreError> {
        find(&self.fleet.models(), Some(name)).cloned()
    }

    /// The version a request names: the alias's, or a pinned one (loaded on first use,
    /// on a blocking thread).
    pub async fn resolve(
        &self,
        model: &str,
        version: Option<&str>,
    ) -> Result<(Arc<Catalog>, Arc<ServedModel>), ScoreError> {
        let catalog = self.catalog(model)?;
        let Some(v) = version else {
            let served = catalog.current().ok_or_else(|| not_ready(Some(model)))?;
            return Ok((catalog, served));
        };
        let v = v
            .parse()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| ScoreError::VersionNotFound {
                model: truncated(model),
                version: truncated(v),
            })?;
        if let Some(s) = catalog.cached(v) {
            return Ok((catalog, s));
        }
        let c = catalog.clone();
        match self.blocking("version load", move || c.pinned(v)).await? {
            Ok(s) => Ok((catalog, s)),
            Err(LoadError::Registry(
                RegistryError::VersionNotFound { .. } | RegistryError::ModelNotFound(_),
            )) => Err(ScoreError::VersionNotFound {
                model: truncated(model),
                version: v.to_string(),
            }),
            Err(e) => Err(ScoreError::VersionUnavailable {
                model: truncated(model),
                version: v,
                reason: e.to_string(),
            }),
        }
    }

    /// Runs `f` on a blocking thread, if one of the permits is free (else
    /// [`ScoreError::Overloaded`]).
    pub async fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ScoreError> {
        let permit = self
            .blocking
            .clone()
            .try_acquire_owned()
            .map_err(|_| ScoreError::Overloaded("too many large requests in progress"))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await
        .map_err(|e| ScoreError::TaskFailed(what, e.to_string()))
    }
}

/// The model a request names (`None`: the default model): one lookup, one error mapping.
pub fn find<'m>(models: &'m Models, name: Option<&str>) -> Result<&'m Arc<Catalog>, ScoreError> {
    match name {
        Some(name) => models
            .get(name)
            .ok_or_else(|| ScoreError::ModelNotFound(truncated(name))),
        None => models.default_model().ok_or_else(|| {
            let names = models.names();
            if names.is_empty() {
                ScoreError::NoModel
            } else {
                ScoreError::NoDefaultModel(names.iter().map(|n| n.to_string()).collect())
            }
        }),
    }
}

/// A found model with no version loaded.
#[cold]
fn not_ready(name: Option<&str>) -> ScoreError {
    match name {
        Some(name) => ScoreError::ModelNotReady(truncated(name)),
        None => ScoreError::NoModel,
    }
}

/// Decodes, predicts (over up to `threads` threads), records and encodes one body with
/// this thread's buffers; queues the rows for the shadow version.
#[allow(clippy::too_many_arguments)]
fn run<C: Codec>(
    served: &ServedModel,
    codec: &C,
    body: &[u8],
    max_rows: usize,
    record: bool,
    threads: usize,
    remember: Option<(
        &(crate::feedback::AnswerId, std::time::Instant),
        &crate::feedback::Feedback,
    )>,
    shadow: Option<(&Arc<ServedModel>, &Arc<super::Shadowing>)>,
) -> Result<Scored<C::Output>, InputError> {
    SCRATCH.with_borrow_mut(|s| {
        if s.local.as_ref().is_none_or(|l| l.id != served.id) {
            s.local = Some(Local::new(served));
        }
        let Scratch {
            values,
            classes,
            proba,
            local,
        } = s;
        let local = local.as_ref().expect("set above");
        let (rows, decoded) = codec.decode(&served.model, body, max_rows, values)?;
        // A regressor's value is its one score.
        let want_proba = codec.wants_proba(&decoded) || served.model.is_regression();
        predict(served, values, classes, proba, want_proba, record, threads);
        if let Some(((id, at), feedback)) = remember {
            remember_answer(feedback, id, *at, served, values, classes, proba);
        }
        if let Some((shadow, queue)) = shadow {
            let id = remember.map(|((id, _), _)| id);
            queue.push(shadow, served, values, classes, proba, id);
        }
        let output = codec.encode(
            served,
            local,
            decoded,
            classes,
            want_proba.then_some(&proba[..]),
        );
        Ok(Scored {
            rows,
            output,
            model: local.name.clone(),
            version: local.version.clone(),
        })
    })
}

/// Remembers one answer: each row's class, or a regressor's value.
#[cold]
fn remember_answer(
    feedback: &crate::feedback::Feedback,
    id: &crate::feedback::AnswerId,
    at: std::time::Instant,
    served: &ServedModel,
    values: &[f64],
    classes: &[usize],
    scores: &[f64],
) {
    let by = &served.answerer;
    if served.model.is_regression() {
        let values_of = scores[..classes.len()].iter().copied();
        feedback.remember(id, at, by, values, values_of);
    } else {
        feedback.remember(id, at, by, values, classes.iter().map(|&c| c as f64));
    }
}

/// `s` cut to at most 128 bytes (on a character boundary), for error messages.
pub fn truncated(s: &str) -> String {
    let mut end = s.len().min(128);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
