//! `treeserve predict`: offline batch scoring of a CSV of any size. One thread reads and
//! splits the CSV into chunks of records, every core parses, predicts and formats chunks,
//! and one thread writes them back in order; memory stays bounded by a few chunks per
//! thread whatever the file size.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::model::Model;

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
            chunk_rows: 16 * 1024,
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

/// A block of whole CSV records (cut at a newline outside quotes).
struct Chunk {
    index: u64,
    /// Line number of the block's first line, 1-based.
    first_line: u64,
    bytes: Vec<u8>,
}

struct Layout {
    feature_columns: Vec<usize>,
    id_column: Option<usize>,
    features: Vec<String>,
    /// Each class label as a CSV field.
    labels: Vec<String>,
    probabilities: bool,
}

fn csv_field(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    write_field(&mut out, s.as_bytes());
    String::from_utf8(out).expect("quoting keeps UTF-8")
}

/// Writes a CSV field as is, or quoted when it holds a comma, quote or line break.
fn write_field(out: &mut Vec<u8>, field: &[u8]) {
    if field
        .iter()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        out.push(b'"');
        for &b in field {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(field);
    }
}

fn score_chunk(
    model: &Model,
    layout: &Layout,
    chunk: &Chunk,
    columns: usize,
) -> Result<(Vec<u8>, u64), BatchError> {
    let f = layout.feature_columns.len();
    let k = model.num_classes();
    let mut row = vec![0.0; f];
    let mut proba = vec![0.0; k];
    let mut out = Vec::with_capacity(chunk.bytes.len() / 2);
    let mut ryu = ryu::Buffer::new();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_reader(&chunk.bytes[..]);
    let mut rec = csv::ByteRecord::new();
    let mut rows = 0u64;
    loop {
        match reader.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = chunk.first_line + e.position().map_or(1, |p| p.line()) - 1;
                return Err(BatchError::Csv {
                    line,
                    message: e.to_string(),
                });
            }
        }
        let line = chunk.first_line + rec.position().map_or(1, |p| p.line()) - 1;
        if rec.len() != columns {
            return Err(BatchError::Csv {
                line,
                message: format!("{} fields, the header has {columns}", rec.len()),
            });
        }
        rows += 1;
        for (j, &c) in layout.feature_columns.iter().enumerate() {
            let cell = rec.get(c).unwrap_or_default();
            let value = std::str::from_utf8(cell)
                .ok()
                .map(str::trim)
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|v| v.is_finite());
            row[j] = value.ok_or_else(|| BatchError::Value {
                line,
                column: layout.features[j].clone(),
                value: String::from_utf8_lossy(cell).into_owned(),
            })?;
        }
        if let Some(c) = layout.id_column {
            write_field(&mut out, rec.get(c).unwrap_or_default());
            out.push(b',');
        }
        let class = model.predict(&row);
        out.extend_from_slice(layout.labels[class].as_bytes());
        if layout.probabilities {
            model.predict_proba(&row, &mut proba);
            for p in &proba {
                out.push(b',');
                out.extend_from_slice(ryu.format(*p).as_bytes());
            }
        }
        out.push(b'\n');
    }
    Ok((out, rows))
}

/// Scores every row of the CSV `input` with `model`, writing a CSV to `output`: the id
/// column (if the input has it), `predicted_<target>`, and with `probabilities` one
/// `p_<class>` column per class. Rows come out in input order.
pub fn predict_csv<R: Read + Send, W: Write + Send>(
    model: &Model,
    input: R,
    output: W,
    opts: &PredictOptions,
) -> Result<Summary, BatchError> {
    let started = Instant::now();
    let threads = opts.threads.max(1);
    let mut input = std::io::BufReader::with_capacity(1 << 20, input);
    let header_line = read_header(&mut input)?;
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
    let feature_columns = model
        .features()
        .iter()
        .map(|f| col(f).ok_or_else(|| BatchError::MissingColumn(f.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let id_column = opts.id_column.as_deref().and_then(col);
    let layout = Layout {
        feature_columns,
        id_column,
        features: model.features().to_vec(),
        labels: model.classes().iter().map(|c| csv_field(c)).collect(),
        probabilities: opts.probabilities,
    };
    let mut header = Vec::new();
    if let Some(c) = id_column {
        header.push(csv_field(&headers[c]));
    }
    header.push(format!(
        "predicted_{}",
        model.manifest().target.to_lowercase()
    ));
    if opts.probabilities {
        header.extend(model.classes().iter().map(|c| csv_field(&format!("p_{c}"))));
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
    let write_result = std::thread::scope(|scope| {
        for _ in 0..threads {
            let rx = Arc::clone(&chunk_rx);
            let tx = out_tx.clone();
            let (layout, fail, failed) = (&layout, &fail, &failed);
            scope.spawn(move || worker(model, layout, columns, &rx, &tx, fail, failed));
        }
        drop(out_tx);
        let writer = scope
            .spawn(|| write_ordered(output, &header, out_rx, &rows_done, opts.progress, started));
        // About `chunk_rows` rows of typical width per block.
        let block = (opts.chunk_rows.max(1) * 64).clamp(256, 8 << 20);
        read_chunks(&mut input, block, &chunk_tx, &failed, &fail);
        drop(chunk_tx);
        writer.join().expect("writer thread")
    });
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

/// The header: bytes up to the first newline outside quotes.
fn read_header<R: std::io::BufRead>(input: &mut R) -> Result<Vec<u8>, BatchError> {
    let mut line = Vec::new();
    let mut quoted = false;
    loop {
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|source| BatchError::Io {
                what: "reading the input".into(),
                source,
            })?;
        if n == 0 {
            break;
        }
        quoted ^= line[line.len() - n..]
            .iter()
            .filter(|&&b| b == b'"')
            .count()
            % 2
            == 1;
        if !quoted {
            break;
        }
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(BatchError::Csv {
            line: 1,
            message: "the input is empty: expected a header naming the model's features".into(),
        });
    }
    Ok(line)
}

/// Reads `block`-byte pieces and cuts each after its last newline outside quotes, so every
/// chunk holds whole records; carries the rest into the next piece.
fn read_chunks<R: Read>(
    input: &mut R,
    block: usize,
    tx: &SyncSender<Chunk>,
    failed: &AtomicBool,
    fail: &(impl Fn(u64, BatchError) + Sync),
) {
    let mut index = 0;
    let mut line = 2u64;
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let mut buf = std::mem::take(&mut carry);
        buf.reserve(block);
        // `read_to_end` fills spare capacity without zeroing it first.
        let eof = match input.by_ref().take(block as u64).read_to_end(&mut buf) {
            Ok(n) => n < block,
            Err(source) => {
                fail(
                    index,
                    BatchError::Io {
                        what: "reading the input".into(),
                        source,
                    },
                );
                return;
            }
        };
        // The last newline outside quotes; without any quote in the block (the common
        // case) simply the last newline, found without a byte-by-byte state machine.
        let cut = if buf.contains(&b'"') {
            let mut quoted = false;
            let mut cut = None;
            for (i, &b) in buf.iter().enumerate() {
                match b {
                    b'"' => quoted = !quoted,
                    b'\n' if !quoted => cut = Some(i + 1),
                    _ => {}
                }
            }
            cut
        } else {
            buf.iter().rposition(|&b| b == b'\n').map(|i| i + 1)
        };
        let cut = if eof { buf.len() } else { cut.unwrap_or(0) };
        if cut == 0 && !eof {
            // A record longer than the block: read more before sending anything.
            carry = buf;
            continue;
        }
        carry = buf.split_off(cut);
        let lines = buf.iter().filter(|&&b| b == b'\n').count() as u64;
        if !buf.iter().all(u8::is_ascii_whitespace) {
            if failed.load(Ordering::Relaxed) {
                return;
            }
            let chunk = Chunk {
                index,
                first_line: line,
                bytes: buf,
            };
            if tx.send(chunk).is_err() {
                return;
            }
            index += 1;
        }
        line += lines;
        if eof {
            return;
        }
    }
}

fn worker(
    model: &Model,
    layout: &Layout,
    columns: usize,
    rx: &Mutex<Receiver<Chunk>>,
    tx: &SyncSender<(u64, Vec<u8>, u64)>,
    fail: &(impl Fn(u64, BatchError) + Sync),
    failed: &AtomicBool,
) {
    loop {
        let chunk = match rx.lock().expect("lock").recv() {
            Ok(c) => c,
            Err(_) => return,
        };
        if failed.load(Ordering::Relaxed) {
            continue;
        }
        match score_chunk(model, layout, &chunk, columns) {
            Ok((bytes, rows)) => {
                if tx.send((chunk.index, bytes, rows)).is_err() {
                    return;
                }
            }
            Err(e) => fail(chunk.index, e),
        }
    }
}

fn write_ordered<W: Write>(
    output: W,
    header: &[String],
    rx: Receiver<(u64, Vec<u8>, u64)>,
    rows_done: &AtomicU64,
    progress: bool,
    started: Instant,
) -> Result<(), BatchError> {
    let io = |source| BatchError::Io {
        what: "writing the output".into(),
        source,
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, output);
    writeln!(out, "{}", header.join(",")).map_err(io)?;
    let mut pending = BTreeMap::new();
    let mut next = 0u64;
    let mut last_report = Instant::now();
    for (index, bytes, rows) in rx {
        pending.insert(index, (bytes, rows));
        while let Some((bytes, rows)) = pending.remove(&next) {
            out.write_all(&bytes).map_err(io)?;
            rows_done.fetch_add(rows, Ordering::Relaxed);
            next += 1;
        }
        if progress && last_report.elapsed() >= Duration::from_millis(250) {
            last_report = Instant::now();
            let n = rows_done.load(Ordering::Relaxed);
            let rate = n as f64 / started.elapsed().as_secs_f64().max(1e-9);
            eprint!("\r  {n:>12} rows  {rate:>12.0} rows/s");
        }
    }
    if progress {
        eprint!("\r{:60}\r", "");
    }
    out.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("Iris-setosa"), "Iris-setosa");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
