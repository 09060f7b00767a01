//! Ground truth for earlier answers (`--feedback-window`): a bounded record of recent
//! answers (request id → model, version, inputs, predictions), labels joined to it as they
//! arrive (minutes to hours later), and the live quality of each version from the joined
//! labels (accuracy and recall per class; MAE and RMSE for a regressor).
//!
//! The record is split into shards (a generated id's number picks its shard, a client
//! id's hash its), each the answers in insertion order and the means to find one by id
//! ([`record`]), evicted by count (`--feedback-window` answers in all) and by age
//! (`--feedback-max-age`). An id answered again replaces the earlier answer. A row is
//! labelled at most once.

mod collector;
mod files;
pub mod id;
mod live;
mod record;

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use collector::Collector;
pub use files::{Files, FilesCounts, FilesOptions};
pub use id::AnswerId;
use id::Key;
pub use live::{Live, LiveFigures};

/// Shards of the record.
const SHARDS: usize = 16;

/// How much is remembered.
#[derive(Debug, Clone, Copy)]
pub struct FeedbackOptions {
    /// Most answers remembered (all shards together).
    pub window: usize,
    /// Oldest answer a label can still join.
    pub max_age: Duration,
    /// Labels behind each live figure (the most recent ones).
    pub live_window: usize,
}

/// What a version's answers are, shared by every answer it gave.
#[derive(Debug)]
pub struct Answerer {
    /// The model.
    pub model: String,
    /// The version.
    pub version: u64,
    /// Class labels (empty: a regressor).
    pub classes: Vec<String>,
    /// Feature names, in the order of a row's inputs.
    pub features: Vec<String>,
    /// The target column (the feedback files' last column).
    pub target: String,
}

impl Answerer {
    /// What a label means for this version: a class index, or a regressor's value.
    fn actual(&self, truth: &Truth) -> Result<f64, Outcome> {
        match (truth, self.classes.is_empty()) {
            (Truth::Class(c), false) => match self.classes.iter().position(|k| k == c) {
                Some(k) => Ok(k as f64),
                None => Err(Outcome::UnknownClass),
            },
            (Truth::Value(v), true) => Ok(*v),
            _ => Err(Outcome::WrongKind),
        }
    }
}

/// A label for an earlier answer's row.
#[derive(Debug, Clone, PartialEq)]
pub enum Truth {
    /// A class label.
    Class(String),
    /// A regressor's true value.
    Value(f64),
}

/// What became of one label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Joined to its answer and counted.
    Joined,
    /// No remembered answer has this id (never seen, or evicted by count or age).
    UnknownId,
    /// The answer has no such row (or a batch's row was left out).
    NoSuchRow,
    /// The row was labelled already.
    Duplicate,
    /// A class the model does not have.
    UnknownClass,
    /// A number for a classifier, or a class for a regressor.
    WrongKind,
    /// A labelled row sent with its features: scored by the current version and counted.
    Scored,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 7] = [
        Outcome::Joined,
        Outcome::UnknownId,
        Outcome::NoSuchRow,
        Outcome::Duplicate,
        Outcome::UnknownClass,
        Outcome::WrongKind,
        Outcome::Scored,
    ];

    /// Its place in [`Outcome::ALL`] (declaration order).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The snake_case name (the metric's `outcome`, the answer's key).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Joined => "joined",
            Outcome::UnknownId => "unknown_id",
            Outcome::NoSuchRow => "no_such_row",
            Outcome::Duplicate => "duplicate",
            Outcome::UnknownClass => "unknown_class",
            Outcome::WrongKind => "wrong_kind",
            Outcome::Scored => "scored",
        }
    }
}

/// A joined label: the row's inputs, prediction and truth, for the feedback files.
#[derive(Debug, Clone)]
pub struct Joined {
    /// Who answered.
    pub by: Arc<Answerer>,
    /// The row's inputs.
    pub inputs: Vec<f64>,
    /// The truth.
    pub truth: Truth,
}

/// The record and the live figures.
#[derive(Debug)]
pub struct Feedback {
    options: FeedbackOptions,
    hasher: RandomState,
    /// When the record started: answers keep their time as nanoseconds from it.
    epoch: Instant,
    shards: Vec<Mutex<record::Shard>>,
    live: Mutex<HashMap<(String, u64), Live>>,
    outcomes: [AtomicU64; Outcome::ALL.len()],
    files: Option<Files>,
}

impl Feedback {
    /// An empty record.
    pub fn new(options: FeedbackOptions) -> Self {
        Self {
            options,
            hasher: RandomState::new(),
            epoch: Instant::now(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            live: Mutex::default(),
            outcomes: Default::default(),
            files: None,
        }
    }

    /// Writes every joined row to `files` too (`--feedback-dir`).
    pub fn with_files(mut self, files: Files) -> Self {
        self.files = Some(files);
        self
    }

    /// The feedback files' writer, with `--feedback-dir`.
    pub fn files(&self) -> Option<&Files> {
        self.files.as_ref()
    }

    /// The options.
    pub fn options(&self) -> &FeedbackOptions {
        &self.options
    }

    /// The id's hash (a client's; 0 for a generated one) and its shard.
    fn shard(&self, key: Key<'_>) -> (u64, &Mutex<record::Shard>) {
        match key {
            // Consecutive numbers go to every shard in turn.
            Key::Generated(n) => (0, &self.shards[n as usize % SHARDS]),
            Key::Client(id) => {
                let hash = self.hasher.hash_one(id);
                // The table uses the hash's low bits: the shard takes high ones.
                (hash, &self.shards[(hash >> 57) as usize % SHARDS])
            }
        }
    }

    /// Most answers a shard keeps.
    fn per_shard(&self) -> usize {
        self.options.window.div_ceil(SHARDS).max(1)
    }

    /// Nanoseconds from the record's start to `t`.
    fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Remembers the answer `by` gave request `id` at `at`: `inputs` (rows × features)
    /// and, per row, `predicted` (a class index, or a regressor's value).
    pub fn remember(
        &self,
        id: &AnswerId,
        at: Instant,
        by: &Arc<Answerer>,
        inputs: &[f64],
        predicted: impl ExactSizeIterator<Item = f64>,
    ) {
        let now = self.nanos(at);
        let oldest = now.saturating_sub(self.options.max_age.as_nanos() as u64);
        let key = id.key();
        let (hash, shard) = self.shard(key);
        shard.lock().expect("feedback shard lock").insert(
            key,
            hash,
            by,
            inputs,
            predicted,
            now,
            oldest,
            self.per_shard(),
        );
    }

    /// Remembers the shadow version `shadow`'s answer (`predicted`, per row) beside
    /// `production`'s answer to `id`, so that its labels count for the shadow too.
    pub fn remember_beside(
        &self,
        id: &AnswerId,
        production: &Arc<Answerer>,
        shadow: &Arc<Answerer>,
        predicted: &[f64],
    ) {
        let key = id.key();
        let (hash, shard) = self.shard(key);
        shard
            .lock()
            .expect("feedback shard lock")
            .beside(key, hash, production, shadow, predicted);
    }

    /// Joins `truth` to row `row` (`None`: the only row) of the answer to `id` (given by
    /// `model`, if named: another model's answer is not found).
    pub fn label(
        &self,
        id: &str,
        model: Option<&str>,
        row: Option<usize>,
        truth: Truth,
    ) -> (Outcome, Option<Joined>) {
        let outcome = self.join(id, model, row, truth);
        self.counted(outcome)
    }

    /// Counts a label for a row `by` just scored (`inputs`, `predicted`: a class index or
    /// a regressor's value), sent with its features rather than an id.
    pub fn scored(
        &self,
        by: &Arc<Answerer>,
        inputs: &[f64],
        predicted: f64,
        truth: Truth,
    ) -> (Outcome, Option<Joined>) {
        let outcome = match by.actual(&truth) {
            Ok(actual) => {
                self.add_live(by, predicted, actual, Duration::ZERO);
                let joined = Joined {
                    by: by.clone(),
                    inputs: inputs.to_vec(),
                    truth,
                };
                (Outcome::Scored, Some(joined))
            }
            Err(o) => (o, None),
        };
        self.counted(outcome)
    }

    fn counted(&self, outcome: (Outcome, Option<Joined>)) -> (Outcome, Option<Joined>) {
        self.outcomes[outcome.0.index()].fetch_add(1, Ordering::Relaxed);
        if let (Some(files), Some(joined)) = (&self.files, &outcome.1) {
            files.push(joined.clone());
        }
        outcome
    }

    fn add_live(&self, by: &Arc<Answerer>, predicted: f64, actual: f64, delay: Duration) {
        let key = (by.model.clone(), by.version);
        let mut live = self.live.lock().expect("live lock");
        live.entry(key)
            .or_insert_with(|| Live::new(by, self.options.live_window))
            .add(predicted, actual, delay);
    }

    fn join(
        &self,
        id: &str,
        model: Option<&str>,
        row: Option<usize>,
        truth: Truth,
    ) -> (Outcome, Option<Joined>) {
        let now = self.nanos(Instant::now());
        let max_age = self.options.max_age.as_nanos() as u64;
        let key = Key::of(id);
        let (hash, shard) = self.shard(key);
        let found = shard.lock().expect("feedback shard lock").label(
            key,
            hash,
            row,
            |at, by| now.saturating_sub(at) <= max_age && model.is_none_or(|m| by.model == m),
            |by| by.actual(&truth),
        );
        let found = match found {
            Ok(f) => f,
            Err(o) => return (o, None),
        };
        let delay = Duration::from_nanos(now.saturating_sub(found.at));
        self.add_live(&found.by, found.predicted, found.actual, delay);
        if let Some((shadow, predicted)) = found.beside
            && let Ok(actual) = shadow.actual(&truth)
        {
            self.add_live(&shadow, predicted, actual, delay);
        }
        let joined = Joined {
            by: found.by,
            inputs: found.inputs,
            truth,
        };
        (Outcome::Joined, Some(joined))
    }

    /// Answers remembered now.
    pub fn remembered(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.lock().expect("feedback shard lock").len() as u64)
            .sum()
    }

    /// Labels by outcome, since start.
    pub fn outcomes(&self) -> Vec<(Outcome, u64)> {
        Outcome::ALL
            .iter()
            .zip(&self.outcomes)
            .map(|(o, n)| (*o, n.load(Ordering::Relaxed)))
            .collect()
    }

    /// Each version's live figures.
    pub fn live(&self) -> Vec<LiveFigures> {
        let live = self.live.lock().expect("live lock");
        let mut out: Vec<_> = live.values().map(Live::figures).collect();
        out.sort_by(|a, b| (&a.model, a.version).cmp(&(&b.model, b.version)));
        out
    }
}

#[cfg(test)]
mod tests;
