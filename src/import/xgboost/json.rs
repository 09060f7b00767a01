//! A bounded, iterative JSON reader for XGBoost model files: accepts XGBoost's `NaN`,
//! `Infinity` and `-Infinity` tokens and parses numbers with a fraction or exponent
//! straight to f32 (`str::parse::<f32>`, correctly rounded, as XGBoost's `from_chars`),
//! never through f64.

use super::value::{ArrayBuilder, MAX_DEPTH, Value};

enum Frame {
    Array(ArrayBuilder),
    Object(Vec<(String, Value)>, String),
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

/// Parses a whole JSON document (nothing but whitespace may follow it).
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    let mut c = Cursor { b: bytes, pos: 0 };
    let mut stack: Vec<Frame> = Vec::new();
    'value: loop {
        c.ws();
        let mut v = match c.peek() {
            Some(b'{') => {
                c.pos += 1;
                if stack.len() >= MAX_DEPTH {
                    return Err(c.err(&format!("nested deeper than {MAX_DEPTH}")));
                }
                c.ws();
                if c.eat(b'}') {
                    Value::Object(Vec::new())
                } else {
                    let key = c.key()?;
                    stack.push(Frame::Object(Vec::new(), key));
                    continue 'value;
                }
            }
            Some(b'[') => {
                c.pos += 1;
                if stack.len() >= MAX_DEPTH {
                    return Err(c.err(&format!("nested deeper than {MAX_DEPTH}")));
                }
                c.ws();
                if c.eat(b']') {
                    Value::Array(Vec::new())
                } else {
                    stack.push(Frame::Array(ArrayBuilder::default()));
                    continue 'value;
                }
            }
            Some(b'"') => Value::Str(c.string()?),
            Some(b't') => c.literal("true", Value::Bool(true))?,
            Some(b'f') => c.literal("false", Value::Bool(false))?,
            Some(b'n') => c.literal("null", Value::Null)?,
            Some(b'N') => c.literal("NaN", Value::Float(f32::NAN))?,
            Some(b'I') => c.literal("Infinity", Value::Float(f32::INFINITY))?,
            Some(b'-' | b'0'..=b'9') => c.number()?,
            Some(_) => return Err(c.err("expected a value")),
            None => return Err(c.err("unexpected end of input, expected a value")),
        };
        // Hand the finished value to its container, closing containers as they end.
        loop {
            let Some(top) = stack.last_mut() else {
                c.ws();
                if c.pos != c.b.len() {
                    return Err(c.err("unexpected data after the document"));
                }
                return Ok(v);
            };
            c.ws();
            match top {
                Frame::Array(a) => {
                    a.push(v);
                    match c.next() {
                        Some(b',') => continue 'value,
                        Some(b']') => {}
                        _ => return Err(c.err_before("expected ',' or ']'")),
                    }
                }
                Frame::Object(m, key) => {
                    m.push((std::mem::take(key), v));
                    match c.next() {
                        Some(b',') => {
                            c.ws();
                            *key = c.key()?;
                            continue 'value;
                        }
                        Some(b'}') => {}
                        _ => return Err(c.err_before("expected ',' or '}'")),
                    }
                }
            }
            v = match stack.pop() {
                Some(Frame::Array(a)) => a.finish(),
                Some(Frame::Object(m, _)) => Value::Object(m),
                None => return Err(c.err("internal: empty stack")),
            };
        }
    }
}

impl Cursor<'_> {
    fn err(&self, what: &str) -> String {
        format!("JSON byte {}: {what}", self.pos)
    }

    fn err_before(&self, what: &str) -> String {
        format!("JSON byte {}: {what}", self.pos.saturating_sub(1))
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let x = self.peek();
        self.pos += x.is_some() as usize;
        x
    }

    fn eat(&mut self, x: u8) -> bool {
        let hit = self.peek() == Some(x);
        self.pos += hit as usize;
        hit
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &str, v: Value) -> Result<Value, String> {
        if self.b[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.err("expected a value"))
        }
    }

    /// An object key and the `:` after it.
    fn key(&mut self) -> Result<String, String> {
        if self.peek() != Some(b'"') {
            return Err(self.err("expected a string key"));
        }
        let k = self.string()?;
        self.ws();
        if !self.eat(b':') {
            return Err(self.err("expected ':' after a key"));
        }
        Ok(k)
    }

    fn string(&mut self) -> Result<String, String> {
        let start = self.pos;
        self.pos += 1; // the opening quote
        let mut out: Vec<u8> = Vec::new();
        loop {
            match self.next() {
                None => return Err(format!("JSON byte {start}: unterminated string")),
                Some(b'"') => break,
                Some(b'\\') => match self.next() {
                    Some(b'"') => out.push(b'"'),
                    Some(b'\\') => out.push(b'\\'),
                    Some(b'/') => out.push(b'/'),
                    Some(b'b') => out.push(8),
                    Some(b'f') => out.push(12),
                    Some(b'n') => out.push(b'\n'),
                    Some(b'r') => out.push(b'\r'),
                    Some(b't') => out.push(b'\t'),
                    Some(b'u') => {
                        let hi = self.hex4()?;
                        let ch = if (0xD800..0xDC00).contains(&hi) {
                            if !(self.eat(b'\\') && self.eat(b'u')) {
                                return Err(self.err("unpaired surrogate in \\u escape"));
                            }
                            let lo = self.hex4()?;
                            if !(0xDC00..0xE000).contains(&lo) {
                                return Err(self.err("unpaired surrogate in \\u escape"));
                            }
                            char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                        } else {
                            char::from_u32(hi)
                        };
                        let ch = ch.ok_or_else(|| self.err("invalid \\u escape"))?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => return Err(self.err_before("invalid escape in a string")),
                },
                Some(x) => out.push(x),
            }
        }
        String::from_utf8(out).map_err(|_| format!("JSON byte {start}: string is not UTF-8"))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .b
            .get(self.pos..self.pos + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok())
            .filter(|_| {
                self.b[self.pos..self.pos + 4]
                    .iter()
                    .all(u8::is_ascii_hexdigit)
            });
        let v = digits.ok_or_else(|| self.err("expected four hex digits after \\u"))?;
        self.pos += 4;
        Ok(v)
    }

    /// An integer (to i64) or a number with a fraction or exponent (to f32), or
    /// `-Infinity` / `-NaN`.
    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        if self.eat(b'-') {
            if self.b[self.pos..].starts_with(b"Infinity") {
                self.pos += 8;
                return Ok(Value::Float(f32::NEG_INFINITY));
            }
            if self.b[self.pos..].starts_with(b"NaN") {
                self.pos += 3;
                return Ok(Value::Float(f32::NAN));
            }
        }
        while matches!(
            self.peek(),
            Some(b'0'..=b'9' | b'+' | b'-' | b'.' | b'e' | b'E')
        ) {
            self.pos += 1;
        }
        let text = std::str::from_utf8(&self.b[start..self.pos]).unwrap_or("");
        let bad = || format!("JSON byte {start}: invalid number {text:?}");
        if text.bytes().any(|x| matches!(x, b'.' | b'e' | b'E')) {
            text.parse::<f32>().map(Value::Float).map_err(|_| bad())
        } else {
            text.parse::<i64>().map(Value::Int).map_err(|_| bad())
        }
    }
}
