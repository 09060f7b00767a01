//! `treeserve predict`: offline batch scoring of a CSV of any size. One thread reads and
//! splits the CSV into chunks of records, every core parses, predicts and formats chunks,
//! and one thread writes them back in order; memory stays bounded by a few chunks per
//! thread whatever the file size. The model may still be loading ([`ModelSource`]): the
//! first chunks are parsed meanwhile (up to `PARSED_AHEAD`), and nothing is written
//! before it has loaded.
//!
//! Here: the options, errors and summary, the buffers passed between threads, and
//! `predict_csv`, which wires the reader (`input`), the worker threads (each scoring chunks
//! with `score`) and the ordered writer (`output`) together.

mod input;
mod output;
mod score;
#[cfg(test)]
mod tests;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use input::{read_chunks, read_header};
use output::{csv_field, write_ordered};
use score::{Batch, score_chunk};

use crate::model::{Manifest, Model};

/// How to score.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Rows per chunk handed to a worker (approximately: chunks are cut by size).
    pub chunk_rows: usize,
    /// Add one probability column per class.
    pub probabilities: bool,
    /// A column copied to the output as the first column (e.g. `Id`), if present.
    pub id_column: Option<String>,
    /// Print a progress line to stderr every quarter second.
    pub progress: bool,
}

impl Default for PredictOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            chunk_rows: DEFAULT_CHUNK_ROWS,
            probabilities: false,
            id_column: Some("Id".into()),
            progress: false,
        }
    }
}

/// Why batch scoring failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Reading or writing failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being read or written.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The CSV is malformed.
    #[error("line {line}: {message}")]
    Csv {
        /// 1-based line.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The model reads a feature the CSV has no column for.
    #[error("the CSV has no column {0:?}, which the model reads")]
    MissingColumn(String),
    /// A cell is not a finite number.
    #[error("line {line}, column {column:?}: {value:?} is not a finite number")]
    Value {
        /// 1-based line.
        line: u64,
        /// Column name.
        column: String,
        /// The cell.
        value: String,
    },
    /// The model, loading while rows were read, failed to load (the loader says why).
    #[error("the model did not load")]
    NotLoaded,
}

/// The model of a run: loaded, or loading on another thread while the CSV is read and
/// parsed (its manifest, not yet checked, tells the columns; the loader publishes the
/// checked model, or `None` if it failed, in `slot`: rows parsed meanwhile are predicted
/// then, or the run stops).
#[derive(Clone, Copy)]
pub enum ModelSource<'a> {
    /// Loaded.
    Ready(&'a Model),
    /// Loading.
    Loading {
        /// The artifact's manifest, read from its bytes before they are checked.
        manifest: &'a Manifest,
        /// Set once by the loader.
        slot: &'a OnceLock<Option<Model>>,
    },
}

impl<'a> ModelSource<'a> {
    fn manifest(self) -> &'a Manifest {
        match self {
            ModelSource::Ready(m) => m.manifest(),
            ModelSource::Loading { manifest, .. } => manifest,
        }
    }

    /// The model if its load is over (`Some(None)`: it failed), without waiting.
    fn now(self) -> Option<Option<&'a Model>> {
        match self {
            ModelSource::Ready(m) => Some(Some(m)),
            ModelSource::Loading { slot, .. } => slot.get().map(Option::as_ref),
        }
    }

    /// The model, once its load is over (`None`: it failed).
    fn wait(self) -> Option<&'a Model> {
        match self {
            ModelSource::Ready(m) => Some(m),
            ModelSource::Loading { slot, .. } => slot.wait().as_ref(),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Rows scored.
    pub rows: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Worker threads used.
    pub threads: usize,
}

impl Summary {
    /// Rows per second.
    pub fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Spare buffers handed back for reuse: fresh megabyte buffers for every block cost page
/// faults and zeroed pages in the kernel.
#[derive(Default)]
struct Pool(Mutex<Vec<Vec<u8>>>);

impl Pool {
    fn get(&self) -> Vec<u8> {
        let mut b = self.0.lock().expect("lock").pop().unwrap_or_default();
        b.clear();
        b
    }

    fn put(&self, b: Vec<u8>) {
        let mut spare = self.0.lock().expect("lock");
        if spare.len() < 16 {
            spare.push(b);
        }
    }
}

/// A block of whole CSV records (cut at a newline outside quotes).
struct Chunk {
    index: u64,
    /// Line number of the block's first line, 1-based.
    first_line: u64,
    bytes: Vec<u8>,
    /// Whether the block holds a quote (then only the csv reader parses it).
    quoted: bool,
}

struct Layout {
    feature_columns: Vec<usize>,
    id_column: Option<usize>,
    features: Vec<String>,
    /// Each class label as a CSV field.
    labels: Vec<String>,
    probabilities: bool,
    /// Fields per record.
    columns: usize,
    /// The model's task is a regression.
    regression: bool,
    /// Scores per row.
    scores: usize,
    /// Empty cells are missing values.
    missing_aware: bool,
}

/// Rows per chunk unless told (blocks of ~256 KiB of CSV): smaller blocks than the 1 MiB
/// of before keep both cores busy to the end of a short file and reuse their buffers (m2,
/// 10,000 rows: 24.6 → 21.7 ms, medians of 40 alternated runs; 200,000 rows the same).
pub const DEFAULT_CHUNK_ROWS: usize = 4 * 1024;

/// Chunks parsed while the model loads, at most this many (then the workers wait): a
/// chunk (~256 KiB of CSV) parses into ~0.1 MB of numbers for m2's 30 features of 17
/// digits (~450 rows), at most 1 MiB (one-digit fields), so this bounds the extra memory to
/// ~100 MiB whatever the file; m2's load parses ~20 chunks on one core meanwhile.
const PARSED_AHEAD: usize = 96;

/// Scores every row of the CSV `input` with `model`, writing a CSV to `output`: the id
/// column (if the input has it), `predicted_<target>`, and with `probabilities` one
/// `p_<class>` column per class. Rows come out in input order.
pub fn predict_csv<R: Read + Send, W: Write + Send>(
    model: &Model,
    input: R,
    output: W,
    opts: &PredictOptions,
) -> Result<Summary, BatchError> {
    predict_csv_from(ModelSource::Ready(model), input, output, opts)
}

/// [`predict_csv`] with a model that may still be loading: the CSV is read and its first
/// chunks parsed meanwhile (up to `PARSED_AHEAD`), then predicted once it is there.
pub fn predict_csv_from<R: Read + Send, W: Write + Send>(
    model: ModelSource<'_>,
    input: R,
    output: W,
    opts: &PredictOptions,
) -> Result<Summary, BatchError> {
    let started = Instant::now();
    let manifest = model.manifest();
    let threads = opts.threads.max(1);
    // Buffered for the header only: the blocks are then read straight into the chunks'
    // buffers (through a buffer they would be copied twice), after what the buffer holds
    // past the header.
    let mut input = std::io::BufReader::with_capacity(64 << 10, input);
    let header_line = read_header(&mut input)?;
    let mut input = std::io::Cursor::new(input.buffer().to_vec()).chain(input.into_inner());
    let mut header_reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(&header_line[..]);
    let headers = header_reader
        .byte_headers()
        .map_err(|e| csv_error(&e))?
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_owned())
        .collect::<Vec<_>>();
    let columns = headers.len();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let feature_columns = manifest
        .features
        .iter()
        .map(|f| col(f).ok_or_else(|| BatchError::MissingColumn(f.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let id_column = opts.id_column.as_deref().and_then(col);
    let regression = manifest.task == crate::model::Task::Regression;
    let layout = Layout {
        feature_columns,
        id_column,
        features: manifest.features.clone(),
        labels: manifest.classes.iter().map(|c| csv_field(c)).collect(),
        probabilities: opts.probabilities,
        columns,
        regression,
        scores: if regression {
            1
        } else {
            manifest.classes.len()
        },
        missing_aware: manifest.missing_aware,
    };
    let mut header = Vec::new();
    if let Some(c) = id_column {
        header.push(csv_field(&headers[c]));
    }
    header.push(format!("predicted_{}", manifest.target.to_lowercase()));
    if opts.probabilities {
        header.extend(
            manifest
                .classes
                .iter()
                .map(|c| csv_field(&format!("p_{c}"))),
        );
    }

    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<(u64, BatchError)>> = Mutex::new(None);
    let fail = |index: u64, e: BatchError| {
        failed.store(true, Ordering::Relaxed);
        let mut slot = first_error.lock().expect("lock");
        if slot.as_ref().is_none_or(|(i, _)| index < *i) {
            *slot = Some((index, e));
        }
    };
    let rows_done = AtomicU64::new(0);
    let (chunk_tx, chunk_rx) = sync_channel::<Chunk>(threads * 2);
    let chunk_rx = Arc::new(Mutex::new(chunk_rx));
    let (out_tx, out_rx) = sync_channel::<(u64, Vec<u8>, u64)>(threads * 2);
    // Spare input and output buffers.
    let pools: [Pool; 2] = Default::default();
    let parsed = Mutex::new(Vec::new());
    let write_result = std::thread::scope(|scope| {
        for _ in 0..threads {
            let rx = Arc::clone(&chunk_rx);
            let tx = out_tx.clone();
            let shared = Shared {
                model,
                layout: &layout,
                fail: &fail,
                failed: &failed,
                pools: &pools,
                parsed: &parsed,
            };
            scope.spawn(move || worker(shared, &rx, &tx));
        }
        drop(out_tx);
        let writer = scope.spawn(|| {
            let (rows_done, spare) = (&rows_done, &pools[1]);
            // Nothing is written, not even the header, unless the model loads.
            if model.wait().is_none() {
                return Ok(());
            }
            write_ordered(
                output,
                &header,
                out_rx,
                rows_done,
                opts.progress,
                started,
                spare,
            )
        });
        // About `chunk_rows` rows of typical width per block.
        let block = (opts.chunk_rows.max(1) * 64).clamp(256, 8 << 20);
        read_chunks(&mut input, block, &chunk_tx, &failed, &fail, &pools[0]);
        drop(chunk_tx);
        writer.join().expect("writer thread")
    });
    // A failed load fails the run, even one without a row.
    if model.wait().is_none() {
        return Err(BatchError::NotLoaded);
    }
    if let Some((_, e)) = first_error.into_inner().expect("lock") {
        return Err(e);
    }
    write_result?;
    Ok(Summary {
        rows: rows_done.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        threads,
    })
}

fn csv_error(e: &csv::Error) -> BatchError {
    BatchError::Csv {
        line: e.position().map_or(0, |p| p.line()),
        message: e.to_string(),
    }
}

/// What the workers share.
struct Shared<'a, 'm, F> {
    model: ModelSource<'m>,
    layout: &'m Layout,
    fail: &'a F,
    failed: &'a AtomicBool,
    pools: &'a [Pool; 2],
    /// Chunks parsed while the model loads: index, rows kept, row count.
    parsed: &'a Mutex<Vec<(u64, Batch<'m>, u64)>>,
}

impl<F> Clone for Shared<'_, '_, F> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<F> Copy for Shared<'_, '_, F> {}

fn worker<F: Fn(u64, BatchError) + Sync>(
    s: Shared<'_, '_, F>,
    rx: &Mutex<Receiver<Chunk>>,
    tx: &SyncSender<(u64, Vec<u8>, u64)>,
) {
    let send = |index: u64, bytes: Vec<u8>, rows: u64| tx.send((index, bytes, rows)).is_ok();
    // Chunks parsed ahead, predicted once the model is there.
    let drain = |model: Option<&Model>| {
        loop {
            let Some((index, batch, rows)) = s.parsed.lock().expect("lock").pop() else {
                return true;
            };
            match model {
                Some(m) => {
                    if !send(index, batch.finish(m, s.pools[1].get()), rows) {
                        return false;
                    }
                }
                None => (s.fail)(index, BatchError::NotLoaded),
            }
        }
    };
    loop {
        let chunk = match rx.lock().expect("lock").recv() {
            Ok(c) => c,
            Err(_) => break,
        };
        if s.failed.load(Ordering::Relaxed) {
            continue;
        }
        let model = match s.model.now() {
            Some(m) => {
                if !drain(m) {
                    return;
                }
                match m {
                    Some(m) => Some(m),
                    None => {
                        (s.fail)(chunk.index, BatchError::NotLoaded);
                        continue;
                    }
                }
            }
            // Still loading: parse ahead while there is room.
            None if s.parsed.lock().expect("lock").len() < PARSED_AHEAD => None,
            None => match s.model.wait() {
                Some(m) => Some(m),
                None => {
                    (s.fail)(chunk.index, BatchError::NotLoaded);
                    continue;
                }
            },
        };
        let scored = score_chunk(model, s.layout, &chunk, s.layout.columns, &s.pools[1]);
        s.pools[0].put(chunk.bytes);
        match scored {
            Ok((bytes, rows, batch)) => {
                let sent = match model {
                    Some(_) => send(chunk.index, bytes, rows),
                    None => {
                        s.parsed
                            .lock()
                            .expect("lock")
                            .push((chunk.index, batch, rows));
                        true
                    }
                };
                if !sent {
                    return;
                }
            }
            Err(e) => (s.fail)(chunk.index, e),
        }
    }
    // The input is read: what was parsed ahead waits for the model.
    drain(s.model.wait());
}
