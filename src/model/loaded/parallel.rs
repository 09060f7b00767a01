//! Batches over several threads: [`Model::predict_batch_threads`] and what keeps
//! concurrent calls from oversubscribing the cores.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Engine, Model, PARALLEL_MIN_ROWS};
use crate::model::wide::MIN_BLOCK;

impl Model {
    /// [`Model::predict_batch`] split over up to `threads` threads (this one included), at
    /// least [`Model::parallel_min_rows`] rows each (fewer rows stay on this thread). Calls
    /// from several threads at once share the cores: a call adds helper threads only while
    /// fewer than `max(threads, cores)` threads are predicting batches in the process.
    pub fn predict_batch_threads(
        &self,
        rows: &[f64],
        scores: &mut [f64],
        classes: &mut [usize],
        threads: usize,
    ) {
        let n = classes.len();
        let want = threads.min(n / self.parallel_min_rows()).max(1);
        if want == 1 {
            return self.predict_batch(rows, scores, classes);
        }
        let _caller = Busy::enter(1);
        let helpers = Busy::reserve(want - 1, threads.max(cores()));
        let parts = helpers.0 + 1;
        if parts == 1 {
            return self.predict_batch(rows, scores, classes);
        }
        let (f, k) = (self.num_features(), self.num_scores());
        // `SLICES` slices a thread, of whole `MIN_BLOCK`s (whole 8-row chunks of the wide
        // evaluator's paired walk: only the last slice ends in a short one), each thread
        // taking the next one as it finishes its last: a thread on a slower core (a vCPU
        // its host shares) takes fewer, where halves would wait for it.
        let min = self.parallel_min_rows().div_ceil(SLICES);
        let per = n
            .div_ceil(parts * SLICES)
            .max(min)
            .next_multiple_of(MIN_BLOCK);
        let slices = std::sync::Mutex::new(
            rows.chunks(per * f)
                .zip(scores.chunks_mut(per * k))
                .zip(classes.chunks_mut(per)),
        );
        let work = || {
            loop {
                // The lock is held only to take a slice; a panic elsewhere poisons
                // nothing this needs.
                let next = slices.lock().unwrap_or_else(|p| p.into_inner()).next();
                let Some(((r, s), c)) = next else { break };
                self.predict_batch(r, s, c);
            }
        };
        std::thread::scope(|scope| {
            for _ in 1..parts {
                scope.spawn(work);
            }
            work();
        });
    }

    /// The fewest rows [`Model::predict_batch_threads`] gives a thread: at least
    /// [`PARALLEL_MIN_ROWS`], more for small models, so that a thread's work (trees ×
    /// rows) outweighs starting it.
    pub fn parallel_min_rows(&self) -> usize {
        PARALLEL_MIN_ROWS.max(PARALLEL_MIN_WORK / self.num_trees().max(1))
    }

    /// Each row's class into `classes`, and its scores into `scores`, as
    /// [`Model::predict_batch_threads`]; without `want_scores` a model whose class is a
    /// vote of its trees apart from its scores (smartcore's forests) only votes, as
    /// [`Model::predict`] (`scores` is then left as it is).
    pub fn predict_rows(
        &self,
        rows: &[f64],
        scores: &mut [f64],
        classes: &mut [usize],
        want_scores: bool,
        threads: usize,
    ) {
        match &self.engine {
            Engine::Forest(forest) if !want_scores => {
                let f = self.num_features();
                for (row, c) in rows.chunks_exact(f).zip(classes.iter_mut()) {
                    *c = forest.predict(row);
                }
            }
            _ => self.predict_batch_threads(rows, scores, classes, threads),
        }
    }
}

/// Slices of a batch per thread in [`Model::predict_batch_threads`], taken as threads
/// finish their last.
const SLICES: usize = 4;

/// Tree·rows of work below which a thread of its own does not pay (~100 µs).
const PARALLEL_MIN_WORK: usize = 64 * 1024;

/// Threads predicting batches in [`Model::predict_batch_threads`] now, over the process.
static BUSY: AtomicUsize = AtomicUsize::new(0);

/// Threads counted in [`BUSY`], given back on drop.
struct Busy(usize);

impl Busy {
    fn enter(n: usize) -> Self {
        BUSY.fetch_add(n, Ordering::Relaxed);
        Busy(n)
    }

    /// Up to `want` more threads, while at most `limit` are busy.
    fn reserve(want: usize, limit: usize) -> Self {
        let mut got = 0;
        let _ = BUSY.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |busy| {
            got = want.min(limit.saturating_sub(busy));
            Some(busy + got)
        });
        Busy(got)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.fetch_sub(self.0, Ordering::Relaxed);
    }
}

/// Cores of the machine (1 if unknown), asked once.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
