//! Reading the CSV: the header line, then blocks cut after their last newline outside
//! quotes so that every chunk handed to the workers holds whole records.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;

use super::{BatchError, Chunk, Pool};

/// The header: bytes up to the first newline outside quotes.
pub(super) fn read_header<R: std::io::BufRead>(input: &mut R) -> Result<Vec<u8>, BatchError> {
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
pub(super) fn read_chunks<R: Read>(
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
