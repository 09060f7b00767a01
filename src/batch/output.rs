//! Writing the output: CSV fields and records, and the writer thread that puts scored
//! chunks back in input order and reports progress.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use super::{BatchError, Layout, Pool};

pub(super) fn csv_field(s: &str) -> String {
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

/// Writes one output record: the id (when the input has the column), the predicted label
/// (a regressor's value), and with probabilities one column per class from `scores`.
#[inline(always)]
pub(super) fn write_scored(
    regression: bool,
    layout: &Layout,
    id: Option<&[u8]>,
    class: usize,
    scores: &[f64],
    ryu: &mut ryu::Buffer,
    out: &mut Vec<u8>,
) {
    if let Some(id) = id {
        write_field(out, id);
        out.push(b',');
    }
    if regression {
        out.extend_from_slice(ryu.format(scores[0]).as_bytes());
        out.push(b'\n');
        return;
    }
    out.extend_from_slice(layout.labels[class].as_bytes());
    if layout.probabilities {
        for p in scores {
            out.push(b',');
            out.extend_from_slice(ryu.format(*p).as_bytes());
        }
    }
    out.push(b'\n');
}

pub(super) fn write_ordered<W: Write>(
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
