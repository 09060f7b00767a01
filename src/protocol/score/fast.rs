//! The fast decoding path: a strict subset of JSON (objects whose keys are plain feature
//! names and whose values are numbers, or an array of them) decoded without serde.
//! Anything else, including every error, returns `None` and takes the serde path
//! ([`super::serde_decode`]), which gives the same values (both parse numbers correctly
//! rounded) and precise error messages.

use super::Decoded;

use crate::protocol::cursor::Cursor;

impl Cursor<'_> {
    fn row(&mut self, features: &[String], out: &mut Vec<f64>) -> Option<()> {
        let start = out.len();
        out.resize(start + features.len(), f64::NAN);
        let mut seen = 0;
        self.members(|c, key| {
            // Clients usually send the features in the model's order: try that first.
            let i = match features.get(seen) {
                Some(f) if f.as_bytes() == key => seen,
                _ => features.iter().position(|f| f.as_bytes() == key)?,
            };
            let slot = &mut out[start + i];
            if !slot.is_nan() {
                return None;
            }
            *slot = c.number()?;
            seen += 1;
            Some(())
        })?;
        (seen == features.len()).then_some(())
    }
}

pub(super) fn decode(
    body: &[u8],
    features: &[String],
    max_rows: usize,
    out: &mut Vec<f64>,
) -> Option<Decoded> {
    let mut c = Cursor { b: body, i: 0 };
    let decoded = match c.peek()? {
        b'{' => {
            c.row(features, out)?;
            Decoded {
                rows: 1,
                batch: false,
            }
        }
        b'[' => {
            c.i += 1;
            let mut rows = 0;
            loop {
                if rows == max_rows {
                    return None;
                }
                c.row(features, out)?;
                rows += 1;
                if !c.next_or_end(b']')? {
                    break;
                }
            }
            Decoded { rows, batch: true }
        }
        _ => return None,
    };
    c.ws();
    (c.i == body.len()).then_some(decoded)
}
