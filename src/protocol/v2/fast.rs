//! The fast decoding path: the common request (`id`, one `FP32` or `FP64` input with
//! `name`, `shape` and `data` flat or nested one level, `outputs` naming outputs only)
//! parsed without serde. Anything else, including every error, returns `None` and takes
//! the serde path ([`super::serde_decode`]), which gives the same values and the precise
//! error messages.

use std::borrow::Cow;

use super::{Decoded, Output, Outputs, Requested};
use crate::protocol::cursor::Cursor;

impl<'a> Cursor<'a> {
    /// A string without escapes, as UTF-8.
    fn plain_str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.key()?).ok()
    }

    /// Numbers, or arrays of numbers, into `out`.
    fn data(&mut self, out: &mut Vec<f64>) -> Option<()> {
        self.eat(b'[')?;
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            if self.peek()? == b'[' {
                self.i += 1;
                loop {
                    out.push(self.number()?);
                    if !self.next_or_end(b']')? {
                        break;
                    }
                }
            } else {
                out.push(self.number()?);
            }
            if !self.next_or_end(b']')? {
                return Some(());
            }
        }
    }

    fn shape(&mut self) -> Option<([u64; 2], usize)> {
        self.eat(b'[')?;
        let mut dims = [0u64; 2];
        let mut n = 0;
        loop {
            self.ws();
            let start = self.i;
            if self.digits() == 0 || n == 2 {
                return None;
            }
            dims[n] = std::str::from_utf8(&self.b[start..self.i])
                .ok()?
                .parse()
                .ok()?;
            n += 1;
            if !self.next_or_end(b']')? {
                return Some((dims, n));
            }
        }
    }
}

pub(super) fn decode<'a>(
    json: &'a [u8],
    features: usize,
    max_rows: usize,
    out: &mut Vec<f64>,
) -> Option<Decoded<'a>> {
    let mut c = Cursor { b: json, i: 0 };
    out.clear();
    let mut id = None;
    let mut input: Option<([u64; 2], usize, bool)> = None;
    let label = Requested {
        output: Output::Label,
        binary: false,
    };
    let mut outputs: Option<Outputs> = None;
    c.members(|c, key| {
        match key {
            b"id" if id.is_none() => id = Some(c.plain_str()?),
            b"inputs" if input.is_none() => {
                c.eat(b'[')?;
                let (mut shape, mut fp32, mut seen) = (None, None, 0u8);
                c.members(|c, key| {
                    match key {
                        b"name" if seen & 1 == 0 => {
                            seen |= 1;
                            c.plain_str()?;
                        }
                        b"shape" if shape.is_none() => shape = Some(c.shape()?),
                        b"datatype" if fp32.is_none() => {
                            fp32 = Some(match c.plain_str()? {
                                "FP32" => true,
                                "FP64" => false,
                                _ => return None,
                            })
                        }
                        b"data" if seen & 2 == 0 => {
                            seen |= 2;
                            c.data(out)?;
                        }
                        _ => return None,
                    }
                    Some(())
                })?;
                c.eat(b']')?;
                let (dims, n) = shape?;
                (seen == 3).then_some(())?;
                input = Some((dims, n, fp32?));
            }
            b"outputs" if outputs.is_none() => {
                let mut list = Outputs {
                    list: [label; 2],
                    len: 0,
                };
                c.eat(b'[')?;
                loop {
                    c.members(|c, key| {
                        (key == b"name").then_some(())?;
                        let output = match c.plain_str()? {
                            super::LABEL | super::PREDICT => Output::Label,
                            super::PROBABILITIES => Output::Probabilities,
                            _ => return None,
                        };
                        if list.as_slice().iter().any(|r| r.output == output) {
                            return None;
                        }
                        list.push(Requested {
                            output,
                            binary: false,
                        });
                        Some(())
                    })?;
                    if !c.next_or_end(b']')? {
                        break;
                    }
                }
                outputs = Some(list);
            }
            _ => return None,
        }
        Some(())
    })?;
    c.ws();
    (c.i == json.len()).then_some(())?;
    let (dims, n, fp32) = input?;
    let rows = match (n, dims) {
        (1, [f, _]) if f == features as u64 => 1,
        (2, [r, f]) if f == features as u64 => usize::try_from(r).ok()?,
        _ => return None,
    };
    if rows == 0 || rows > max_rows || out.len() != rows * features {
        return None;
    }
    super::datatype::check_values("", if fp32 { "FP32" } else { "FP64" }, false, out).ok()?;
    let outputs = outputs.unwrap_or(Outputs {
        list: [
            label,
            Requested {
                output: Output::Probabilities,
                binary: false,
            },
        ],
        len: 2,
    });
    (outputs.len > 0).then_some(())?;
    Some(Decoded {
        id: id.map(Cow::Borrowed),
        rows,
        outputs,
    })
}
