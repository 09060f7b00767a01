//! A bounded, iterative UBJSON reader for XGBoost's `.ubj` files: big-endian numbers,
//! objects with length-prefixed keys, counted and uncounted arrays and typed arrays
//! (`[$T#n`), kept as typed vectors. Every declared count is checked against the bytes
//! that remain before anything is allocated.

use super::value::{ArrayBuilder, MAX_DEPTH, Typed, Value};

enum Frame {
    /// An array; `Some(n)`: `n` more elements (counted), `None`: until `]`.
    Array(ArrayBuilder, Option<u64>),
    Object(Vec<(String, Value)>, String),
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

/// Parses a whole UBJSON document (nothing may follow it).
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    let mut c = Cursor { b: bytes, pos: 0 };
    let mut stack: Vec<Frame> = Vec::new();
    'value: loop {
        let at = c.pos;
        let mut v = match c.byte("a value")? {
            b'{' => {
                if stack.len() >= MAX_DEPTH {
                    return Err(c.err_at(at, &format!("nested deeper than {MAX_DEPTH}")));
                }
                if c.peek() == Some(b'}') {
                    c.pos += 1;
                    Value::Object(Vec::new())
                } else {
                    let key = c.key()?;
                    stack.push(Frame::Object(Vec::new(), key));
                    continue 'value;
                }
            }
            b'[' => {
                if stack.len() >= MAX_DEPTH {
                    return Err(c.err_at(at, &format!("nested deeper than {MAX_DEPTH}")));
                }
                match c.peek() {
                    Some(b'$') => {
                        c.pos += 1;
                        c.typed_array()?
                    }
                    Some(b'#') => {
                        c.pos += 1;
                        let n = c.count()?;
                        // Each element takes at least one byte.
                        if n > c.remaining() {
                            return Err(c.err_at(
                                at,
                                &format!(
                                    "array of {n} elements but {} bytes remain",
                                    c.remaining()
                                ),
                            ));
                        }
                        if n == 0 {
                            Value::Array(Vec::new())
                        } else {
                            stack.push(Frame::Array(ArrayBuilder::default(), Some(n)));
                            continue 'value;
                        }
                    }
                    Some(b']') => {
                        c.pos += 1;
                        Value::Array(Vec::new())
                    }
                    _ => {
                        stack.push(Frame::Array(ArrayBuilder::default(), None));
                        continue 'value;
                    }
                }
            }
            b'Z' => Value::Null,
            b'T' => Value::Bool(true),
            b'F' => Value::Bool(false),
            b'S' => Value::Str(c.string()?),
            b'C' => Value::Str(char::from(c.byte("a char")?).to_string()),
            b'd' => Value::Float(f32::from_be_bytes(c.array()?)),
            b'D' => Value::Float(f64::from_be_bytes(c.array()?) as f32),
            m @ (b'i' | b'U' | b'I' | b'l' | b'L') => Value::Int(c.int_body(m)?),
            m => {
                return Err(c.err_at(at, &format!("unsupported marker {:?}", char::from(m))));
            }
        };
        // Hand the finished value to its container, closing containers as they end.
        loop {
            match stack.last_mut() {
                None => {
                    if c.pos != c.b.len() {
                        return Err(c.err_at(c.pos, "unexpected data after the document"));
                    }
                    return Ok(v);
                }
                Some(Frame::Array(a, count)) => {
                    a.push(v);
                    match count {
                        Some(n) => {
                            *n -= 1;
                            if *n > 0 {
                                continue 'value;
                            }
                        }
                        None => {
                            if c.peek() == Some(b']') {
                                c.pos += 1;
                            } else {
                                continue 'value;
                            }
                        }
                    }
                }
                Some(Frame::Object(m, key)) => {
                    m.push((std::mem::take(key), v));
                    if c.peek() == Some(b'}') {
                        c.pos += 1;
                    } else {
                        *key = c.key()?;
                        continue 'value;
                    }
                }
            }
            v = match stack.pop() {
                Some(Frame::Array(a, _)) => a.finish(),
                Some(Frame::Object(m, _)) => Value::Object(m),
                None => return Err(c.err_at(c.pos, "internal: empty stack")),
            };
        }
    }
}

impl Cursor<'_> {
    fn err_at(&self, at: usize, what: &str) -> String {
        format!("UBJSON byte {at}: {what}")
    }

    fn remaining(&self) -> u64 {
        (self.b.len() - self.pos) as u64
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn byte(&mut self, what: &str) -> Result<u8, String> {
        let x = self.peek().ok_or_else(|| {
            self.err_at(
                self.pos,
                &format!("unexpected end of input, expected {what}"),
            )
        })?;
        self.pos += 1;
        Ok(x)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if (n as u64) > self.remaining() {
            return Err(self.err_at(
                self.pos,
                &format!("{n} bytes declared but {} remain", self.remaining()),
            ));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn int_body(&mut self, marker: u8) -> Result<i64, String> {
        Ok(match marker {
            b'i' => i8::from_be_bytes(self.array()?) as i64,
            b'U' => u8::from_be_bytes(self.array()?) as i64,
            b'I' => i16::from_be_bytes(self.array()?) as i64,
            b'l' => i32::from_be_bytes(self.array()?) as i64,
            _ => i64::from_be_bytes(self.array()?),
        })
    }

    /// A length or count: an integer marker and its value, which must not be negative.
    fn count(&mut self) -> Result<u64, String> {
        let at = self.pos;
        let m = self.byte("a length")?;
        if !matches!(m, b'i' | b'U' | b'I' | b'l' | b'L') {
            return Err(self.err_at(at, "expected an integer length"));
        }
        let n = self.int_body(m)?;
        u64::try_from(n).map_err(|_| self.err_at(at, &format!("negative length {n}")))
    }

    /// A string body: its length, then that many UTF-8 bytes.
    fn string(&mut self) -> Result<String, String> {
        let at = self.pos;
        let n = self.count()?;
        if n > self.remaining() {
            return Err(self.err_at(
                at,
                &format!("string of {n} bytes but {} remain", self.remaining()),
            ));
        }
        let s = self.take(n as usize)?;
        String::from_utf8(s.to_vec()).map_err(|_| self.err_at(at, "string is not UTF-8"))
    }

    /// An object key (no `S` marker), or the error that the object is unterminated.
    fn key(&mut self) -> Result<String, String> {
        if self.peek().is_none() {
            return Err(self.err_at(self.pos, "unexpected end of input inside an object"));
        }
        self.string()
    }

    /// The rest of `[$T#n` after the `$`.
    fn typed_array(&mut self) -> Result<Value, String> {
        let at = self.pos;
        let t = self.byte("an element type")?;
        if self.byte("'#'")? != b'#' {
            return Err(self.err_at(at, "a typed array needs a count ('#')"));
        }
        let n = self.count()?;
        let size: u64 = match t {
            b'i' | b'U' => 1,
            b'I' => 2,
            b'l' | b'd' => 4,
            b'L' | b'D' => 8,
            _ => {
                return Err(self.err_at(
                    at,
                    &format!("unsupported typed-array element {:?}", char::from(t)),
                ));
            }
        };
        let bytes = n
            .checked_mul(size)
            .filter(|&b| b <= self.remaining())
            .ok_or_else(|| {
                self.err_at(
                    at,
                    &format!(
                        "typed array of {n} elements but {} bytes remain",
                        self.remaining()
                    ),
                )
            })?;
        let raw = self.take(bytes as usize)?;
        fn conv<const N: usize, T>(raw: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
            raw.chunks_exact(N)
                .map(|c| {
                    let mut a = [0u8; N];
                    a.copy_from_slice(c);
                    f(a)
                })
                .collect()
        }
        Ok(Value::Typed(match t {
            b'i' => Typed::I8(conv(raw, i8::from_be_bytes)),
            b'U' => Typed::U8(raw.to_vec()),
            b'I' => Typed::I16(conv(raw, i16::from_be_bytes)),
            b'l' => Typed::I32(conv(raw, i32::from_be_bytes)),
            b'L' => Typed::I64(conv(raw, i64::from_be_bytes)),
            b'd' => Typed::F32(conv(raw, f32::from_be_bytes)),
            _ => Typed::F64(conv(raw, f64::from_be_bytes)),
        }))
    }
}
