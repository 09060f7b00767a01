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
use crate::protocol::cursor::exact_decimal;

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

/// The common case without any quote in the chunk: records are lines, fields are cut at
/// commas, numbers take [`exact_decimal`] (else `str::parse` on the trimmed text).
/// `None` on anything the csv path must judge (a field count or a value it would
/// refuse): the caller then runs that path, which reports the error with its line.
fn score_plain_chunk(
    model: &Model,
    layout: &Layout,
    bytes: &[u8],
    columns: usize,
    mut out: Vec<u8>,
) -> Option<(Vec<u8>, u64)> {
    let f = layout.feature_columns.len();
    let mut row = vec![0.0; f];
    let mut proba = vec![0.0; model.num_classes()];
    out.reserve(bytes.len() / 2);
    let mut ryu = ryu::Buffer::new();
    // Where each wanted column goes: a feature slot, the id, or nowhere.
    const SKIP: usize = usize::MAX;
    const ID: usize = usize::MAX - 1;
    let mut slot = vec![SKIP; columns];
    for (j, &c) in layout.feature_columns.iter().enumerate() {
        slot[c] = j;
    }
    if let Some(c) = layout.id_column {
        slot[c] = ID;
    }
    let mut rows = 0u64;
    let (len, mut i) = (bytes.len(), 0);
    // One pass: fields are cut and numbers accumulated as the bytes go by.
    while i < len {
        match bytes[i] {
            b'\n' => {
                i += 1;
                continue; // the csv reader skips blank lines too
            }
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                i += 2;
                continue;
            }
            _ => {}
        }
        let mut id: &[u8] = &[];
        let mut n = 0;
        loop {
            let start = i;
            while i < len && !matches!(bytes[i], b',' | b'\n' | b'\r') {
                i += 1;
            }
            let field = &bytes[start..i];
            match *slot.get(n)? {
                j if j < f => {
                    let v = match exact_decimal(field) {
                        Some(v) => v,
                        None => std::str::from_utf8(field)
                            .ok()?
                            .trim()
                            .parse::<f64>()
                            .ok()?,
                    };
                    if !v.is_finite() {
                        return None;
                    }
                    row[j] = v;
                }
                ID => id = field,
                _ => {}
            }
            n += 1;
            match bytes.get(i) {
                Some(b',') => i += 1,
                // A lone carriage return ends a record for the csv reader: let it judge.
                Some(b'\r') if bytes.get(i + 1) != Some(&b'\n') => return None,
                Some(b'\r') => {
                    i += 2;
                    break;
                }
                Some(_) => {
                    i += 1;
                    break;
                }
                None => break,
            }
        }
        if n != columns {
            return None;
        }
        rows += 1;
        let id = layout.id_column.map(|_| id);
        write_row(model, layout, &row, id, &mut proba, &mut ryu, &mut out);
    }
    Some((out, rows))
}

/// Writes one output record: the id (when the input has the column), the predicted label,
/// and with probabilities one column per class.
#[inline(always)]
fn write_row(
    model: &Model,
    layout: &Layout,
    row: &[f64],
    id: Option<&[u8]>,
    proba: &mut [f64],
    ryu: &mut ryu::Buffer,
    out: &mut Vec<u8>,
) {
    if let Some(id) = id {
        write_field(out, id);
        out.push(b',');
    }
    let class = model.predict(row);
    out.extend_from_slice(layout.labels[class].as_bytes());
    if layout.probabilities {
        model.predict_proba(row, proba);
        for p in proba.iter() {
            out.push(b',');
            out.extend_from_slice(ryu.format(*p).as_bytes());
        }
    }
    out.push(b'\n');
}

fn score_chunk(
    model: &Model,
    layout: &Layout,
    chunk: &Chunk,
    columns: usize,
    out: &Pool,
) -> Result<(Vec<u8>, u64), BatchError> {
    if !chunk.quoted
        && let Some(done) = score_plain_chunk(model, layout, &chunk.bytes, columns, out.get())
    {
        return Ok(done);
    }
    score_csv_chunk(model, layout, chunk, columns)
}

/// Any chunk, through the csv reader (quotes, and the errors with their lines).
fn score_csv_chunk(
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
        let id = layout.id_column.map(|c| rec.get(c).unwrap_or_default());
        write_row(model, layout, &row, id, &mut proba, &mut ryu, &mut out);
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
        columns,
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
    // Spare input and output buffers.
    let pools: [Pool; 2] = Default::default();
    let write_result = std::thread::scope(|scope| {
        for _ in 0..threads {
            let rx = Arc::clone(&chunk_rx);
            let tx = out_tx.clone();
            let (layout, fail, failed, pools) = (&layout, &fail, &failed, &pools);
            scope.spawn(move || worker(model, layout, &rx, &tx, fail, failed, pools));
        }
        drop(out_tx);
        let writer = scope.spawn(|| {
            let (rows_done, spare) = (&rows_done, &pools[1]);
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
    spare: &Pool,
) {
    let mut index = 0;
    let mut line = 2u64;
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let mut buf = spare.get();
        buf.extend_from_slice(&carry);
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
        let quoted = buf.contains(&b'"');
        let cut = if quoted {
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
        // On the reader's serial path: a SIMD count (AVX2 where the CPU has it).
        let lines = bytecount::count(&buf, b'\n') as u64;
        if !buf.iter().all(u8::is_ascii_whitespace) {
            if failed.load(Ordering::Relaxed) {
                return;
            }
            // The quote may have been in the carried-over rest.
            let quoted = quoted && buf.contains(&b'"');
            let chunk = Chunk {
                index,
                first_line: line,
                bytes: buf,
                quoted,
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
    rx: &Mutex<Receiver<Chunk>>,
    tx: &SyncSender<(u64, Vec<u8>, u64)>,
    fail: &(impl Fn(u64, BatchError) + Sync),
    failed: &AtomicBool,
    pools: &[Pool; 2],
) {
    loop {
        let chunk = match rx.lock().expect("lock").recv() {
            Ok(c) => c,
            Err(_) => return,
        };
        if failed.load(Ordering::Relaxed) {
            continue;
        }
        let scored = score_chunk(model, layout, &chunk, layout.columns, &pools[1]);
        pools[0].put(chunk.bytes);
        match scored {
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
    spare: &Pool,
) -> Result<(), BatchError> {
    let io = |source| BatchError::Io {
        what: "writing the output".into(),
        source,
    };
    // Blocks (hundreds of kilobytes) are larger than the buffer: written straight through.
    let mut out = std::io::BufWriter::with_capacity(64 << 10, output);
    writeln!(out, "{}", header.join(",")).map_err(io)?;
    let mut pending = BTreeMap::new();
    let mut next = 0u64;
    let mut last_report = Instant::now();
    for (index, bytes, rows) in rx {
        pending.insert(index, (bytes, rows));
        while let Some((bytes, rows)) = pending.remove(&next) {
            out.write_all(&bytes).map_err(io)?;
            spare.put(bytes);
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
    use super::{csv_field, exact_decimal};

    #[test]
    fn simple_decimals_parse_exactly_like_str_parse() {
        let mut state = 7u64;
        for _ in 0..200_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let digits = (state >> 60) as usize + 1;
            let frac = ((state >> 56) & 15) as usize % (digits + 1);
            let m = (state >> 8) % 10u64.pow(digits.min(15) as u32);
            let mut s = format!("{m:0digits$}");
            if frac > 0 {
                s.insert(s.len() - frac, '.');
            }
            if state & 1 == 1 {
                s.insert(0, '-');
            }
            let want: f64 = s.parse().unwrap();
            let got = exact_decimal(s.as_bytes());
            assert!(
                got.is_none_or(|g| g.to_bits() == want.to_bits()),
                "{s}: {got:?} vs {want}"
            );
        }
        for s in [
            "",
            "-",
            ".",
            "1e5",
            " 1",
            "1 ",
            "inf",
            "NaN",
            "1.2.3",
            "0x10",
            "1234567890123456",
        ] {
            assert_eq!(exact_decimal(s.as_bytes()), None, "{s:?}");
        }
        assert_eq!(exact_decimal(b"5.1"), Some(5.1));
        assert_eq!(exact_decimal(b"-0.25"), Some(-0.25));
        assert_eq!(exact_decimal(b"+3"), Some(3.0));
        assert_eq!(exact_decimal(b"007.50"), Some(7.5));
    }

    #[test]
    fn the_plain_path_writes_what_the_csv_path_writes() {
        let bytes = std::fs::read("models/iris/versions/1/model.tsm").unwrap();
        let model = crate::Model::from_bytes(&bytes, 1, &Default::default()).unwrap();
        let mut state = 3u64;
        let mut next = move |n: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        let mut text = String::new();
        for i in 0..3000 {
            let v = |x: u64| match x % 5 {
                0 => format!("{}", x % 9),
                1 => format!("{}.{}", x % 8, x % 10),
                2 => format!(" {}.{:02} ", x % 7, x % 100),
                3 => format!("{}e-1", x % 70),
                _ => format!("-0.{}", x % 1000),
            };
            let feats: Vec<String> = (0..4).map(|_| v(next(1000))).collect();
            text += &format!(
                "{i},{},extra,{}\r\n",
                feats[..2].join(","),
                feats[2..].join(",")
            );
            if next(50) == 0 {
                text += "\n";
            }
        }
        let chunk = super::Chunk {
            index: 0,
            first_line: 2,
            bytes: text.into_bytes(),
            quoted: false,
        };
        for probabilities in [false, true] {
            let layout = super::Layout {
                feature_columns: vec![1, 2, 4, 5],
                id_column: Some(0),
                features: model.features().to_vec(),
                labels: model
                    .classes()
                    .iter()
                    .map(|c| super::csv_field(c))
                    .collect(),
                probabilities,
                columns: 6,
            };
            let plain = super::score_plain_chunk(&model, &layout, &chunk.bytes, 6, Vec::new())
                .expect("plain");
            let csv = super::score_csv_chunk(&model, &layout, &chunk, 6).unwrap();
            assert_eq!(plain.1, 3000);
            assert_eq!(plain, csv);
        }
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("Iris-setosa"), "Iris-setosa");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
