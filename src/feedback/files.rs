//! `--feedback-dir`: joined labelled rows written as CSV files in the dataset layout (the
//! model's features, then its target column), one folder per model, for
//! `treeserve retrain --watch DIR/MODEL`. A file is written under a hidden temporary name
//! and renamed in when it has `rows` rows or is `age` old (or at shutdown), so a watcher
//! never reads half a file.
//!
//! Rows reach the writer thread through a bounded queue: the label request never waits on
//! the disk. A full queue or a failed write drops the rows and counts them.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Joined, Truth};

/// Rows waiting for the writer, at most.
const QUEUE: usize = 65_536;

/// When a file is complete.
#[derive(Debug, Clone)]
pub struct FilesOptions {
    /// The folder (a subfolder per model is made in it).
    pub dir: PathBuf,
    /// Rows per file, at most.
    pub rows: usize,
    /// Age of a file when it is renamed in, at most.
    pub age: Duration,
}

enum Msg {
    Row(Box<Joined>),
    Flush(std::sync::mpsc::Sender<()>),
}

/// Rows written and dropped, since start.
#[derive(Debug, Default)]
pub struct FilesCounts {
    /// Rows in completed files.
    pub written: AtomicU64,
    /// Rows lost: queue full, or the disk refused them.
    pub dropped: AtomicU64,
    /// Files renamed in.
    pub files: AtomicU64,
}

/// The writer: a queue and its thread.
#[derive(Debug)]
pub struct Files {
    tx: SyncSender<Msg>,
    counts: std::sync::Arc<FilesCounts>,
}

impl Files {
    /// Starts the writer thread; fails if `options.dir` cannot be made.
    pub fn start(options: FilesOptions) -> std::io::Result<Self> {
        std::fs::create_dir_all(&options.dir)?;
        let (tx, rx) = sync_channel(QUEUE);
        let counts = std::sync::Arc::<FilesCounts>::default();
        let c = counts.clone();
        std::thread::Builder::new()
            .name("feedback-files".into())
            .spawn(move || Writer::new(options, c).run(rx))?;
        Ok(Self { tx, counts })
    }

    /// Queues a joined row (dropped and counted if the queue is full).
    pub fn push(&self, joined: Joined) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send(Msg::Row(Box::new(joined)))
        {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Completes every open file now (waits up to `timeout`); at shutdown.
    pub fn flush(&self, timeout: Duration) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(timeout);
        }
    }

    /// Rows written and dropped.
    pub fn counts(&self) -> &FilesCounts {
        &self.counts
    }
}

/// One model's file being written.
struct Open {
    part: PathBuf,
    out: csv::Writer<BufWriter<File>>,
    header: Vec<String>,
    rows: u64,
    opened: Instant,
}

struct Writer {
    options: FilesOptions,
    counts: std::sync::Arc<FilesCounts>,
    open: HashMap<String, Open>,
    seq: u64,
}

impl Writer {
    fn new(options: FilesOptions, counts: std::sync::Arc<FilesCounts>) -> Self {
        Self {
            options,
            counts,
            open: HashMap::new(),
            seq: 0,
        }
    }

    fn run(mut self, rx: Receiver<Msg>) {
        let tick = self
            .options
            .age
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            match rx.recv_timeout(tick) {
                Ok(Msg::Row(joined)) => self.write(&joined),
                Ok(Msg::Flush(done)) => {
                    self.complete_all(|_| true);
                    let _ = done.send(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.complete_all(|_| true);
                    return;
                }
            }
            let age = self.options.age;
            self.complete_all(|o| o.opened.elapsed() >= age);
        }
    }

    fn write(&mut self, joined: &Joined) {
        let by = &joined.by;
        let mut header = by.features.clone();
        header.push(by.target.clone());
        // A version with other columns starts a new file.
        if self.open.get(&by.model).is_some_and(|o| o.header != header) {
            self.complete(&by.model.clone());
        }
        if !self.open.contains_key(&by.model) {
            match self.create(&by.model, header) {
                Ok(open) => {
                    self.open.insert(by.model.clone(), open);
                }
                Err(e) => {
                    tracing::warn!(model = %by.model, error = %e, "cannot write a feedback file; rows dropped");
                    self.counts.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        let open = self.open.get_mut(&by.model).expect("opened above");
        let mut record: Vec<String> = joined
            .inputs
            .iter()
            .map(|v| {
                if v.is_nan() {
                    String::new()
                } else {
                    v.to_string()
                }
            })
            .collect();
        record.push(match &joined.truth {
            Truth::Class(c) => c.clone(),
            Truth::Value(v) => v.to_string(),
        });
        if let Err(e) = open.out.write_record(&record) {
            tracing::warn!(model = %by.model, error = %e, "feedback row not written");
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        open.rows += 1;
        if open.rows >= self.options.rows as u64 {
            self.complete(&by.model.clone());
        }
    }

    fn create(&mut self, model: &str, header: Vec<String>) -> std::io::Result<Open> {
        let dir = self.options.dir.join(model);
        std::fs::create_dir_all(&dir)?;
        self.seq += 1;
        let part = dir.join(format!(".{}.csv.part", self.stem()));
        let mut out = csv::Writer::from_writer(BufWriter::new(File::create(&part)?));
        out.write_record(&header)?;
        Ok(Open {
            part,
            out,
            header,
            rows: 0,
            opened: Instant::now(),
        })
    }

    /// `feedback-MILLIS-PID-SEQ`: unique per process and file, ordered by time.
    fn stem(&self) -> String {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        format!("feedback-{ms}-{}-{}", std::process::id(), self.seq)
    }

    fn complete_all(&mut self, due: impl Fn(&Open) -> bool) {
        let models: Vec<String> = self
            .open
            .iter()
            .filter(|(_, o)| due(o))
            .map(|(m, _)| m.clone())
            .collect();
        for m in models {
            self.complete(&m);
        }
    }

    /// Flushes, syncs and renames `model`'s file in (an empty one is removed).
    fn complete(&mut self, model: &str) {
        let Some(open) = self.open.remove(model) else {
            return;
        };
        let rows = open.rows;
        let part = open.part.clone();
        match finish(open) {
            Ok(()) if rows == 0 => {
                let _ = std::fs::remove_file(&part);
            }
            Ok(()) => {
                self.counts.written.fetch_add(rows, Ordering::Relaxed);
                self.counts.files.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(file = %part.display(), error = %e, "feedback file not completed; rows dropped");
                self.counts.dropped.fetch_add(rows, Ordering::Relaxed);
                let _ = std::fs::remove_file(&part);
            }
        }
    }
}

/// Writes `open` out and renames it to its final name.
fn finish(open: Open) -> std::io::Result<()> {
    let file = open
        .out
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .into_inner()
        .map_err(|e| e.into_error())?;
    if open.rows == 0 {
        return Ok(());
    }
    file.sync_all()?;
    std::fs::rename(&open.part, final_name(&open.part))
}

/// `DIR/.STEM.csv.part` → `DIR/STEM.csv`.
fn final_name(part: &Path) -> PathBuf {
    let name = part
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let stem = name.trim_start_matches('.').trim_end_matches(".part");
    part.with_file_name(stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_name_drops_the_dot_and_part() {
        assert_eq!(
            final_name(Path::new("/d/m/.feedback-1-2-3.csv.part")),
            PathBuf::from("/d/m/feedback-1-2-3.csv")
        );
    }
}
