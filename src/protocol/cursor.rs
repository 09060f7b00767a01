//! A minimal JSON cursor for the fast decoding paths: a strict subset of JSON parsed without
//! serde; anything unusual makes the caller fall back to serde.

/// Powers of ten that are exact `f64`s.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Where the ASCII digits from `i` on end.
#[inline(always)]
fn digits_end(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// A position in a body being parsed.
pub(crate) struct Cursor<'a> {
    /// The body.
    pub b: &'a [u8],
    /// The next byte.
    pub i: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    pub fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    pub fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    /// Skips the ASCII digits here; how many there were.
    pub fn digits(&mut self) -> usize {
        let start = self.i;
        self.i = digits_end(self.b, start);
        self.i - start
    }

    /// A JSON number, by the JSON grammar (correctly rounded, as `str::parse`). The grammar
    /// is checked first, by a scan that only finds where the parts end; a plain decimal of
    /// at most 15 digits is then exact (the digits and the power of ten are exact `f64`s
    /// and the one division rounds correctly: Clinger's fast path), anything else
    /// (exponents, more digits: Python's `json.dumps` writes 16–17) goes to
    /// [`crate::decimal::parse_prefix`], and where that cannot decide to `fast_float2`
    /// (both the same correctly rounded answer as `str::parse`). Accumulating the digits
    /// during the scan, one dependent multiply a digit, was wasted on the long ones:
    /// `cargo bench --bench predict -- score_codec/decode/1x30`, docs/benchmarks.md.
    pub fn number(&mut self) -> Option<f64> {
        self.ws();
        let b = self.b;
        let start = self.i;
        let negative = b.get(start) == Some(&b'-');
        let int = start + usize::from(negative);
        let mut i = match b.get(int) {
            Some(b'0') => int + 1,
            Some(b'1'..=b'9') => digits_end(b, int + 1),
            _ => return None,
        };
        let (int_end, mut digits, mut frac) = (i, i - int, 0);
        if b.get(i) == Some(&b'.') {
            let first = i + 1;
            i = digits_end(b, first);
            frac = i - first;
            if frac == 0 {
                return None;
            }
            digits += frac;
        }
        let exponent = matches!(b.get(i), Some(b'e' | b'E'));
        if exponent {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            let first = i;
            i = digits_end(b, first);
            if i == first {
                return None;
            }
        }
        self.i = i;
        if !exponent && digits <= 15 {
            let add = |m: u64, &c: &u8| m * 10 + u64::from(c - b'0');
            let m = b[i - frac..i]
                .iter()
                .fold(b[int..int_end].iter().fold(0, add), add);
            let v = m as f64 / POW10[frac];
            return Some(if negative { -v } else { v });
        }
        let text = &b[start..i];
        match crate::decimal::parse_prefix(text) {
            Some((v, used)) if used == text.len() => Some(v),
            _ => fast_float2::parse::<f64, _>(text).ok(),
        }
        .filter(|v| v.is_finite())
    }

    /// A key without escapes or control characters.
    pub fn key(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
        let b: &'a [u8] = self.b;
        let key = &b[start..self.i];
        self.i += 1;
        Some(key)
    }

    /// After an element of an array or object closed by `close`: `Some(true)` past a `,`
    /// (another element follows), `Some(false)` past `close`, `None` for anything else.
    #[inline]
    pub fn next_or_end(&mut self, close: u8) -> Option<bool> {
        match self.peek()? {
            b',' => {
                self.i += 1;
                Some(true)
            }
            c if c == close => {
                self.i += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// A non-empty `{...}` object: calls `member(cursor, key)` after each `key:`, which
    /// must read the value.
    pub fn members(
        &mut self,
        mut member: impl FnMut(&mut Self, &[u8]) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        loop {
            let key = self.key()?;
            self.eat(b':')?;
            member(self, key)?;
            if !self.next_or_end(b'}')? {
                return Some(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn numbers_parse_exactly_like_str_parse() {
        let mut state = 11u64;
        for _ in 0..200_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let digits = (state >> 59) as usize + 1;
            let m = (state >> 4) % 10u64.pow(digits.min(18) as u32);
            let mut s = m.to_string();
            let frac = ((state >> 52) & 31) as usize % (s.len() + 1);
            if frac > 0 {
                let (int, f) = s.split_at(s.len() - frac);
                s = format!("{}.{f}", if int.is_empty() { "0" } else { int });
            }
            if state & 1 == 1 {
                s.insert(0, '-');
            }
            if state & 2 == 2 {
                s += &format!("e{}", (state >> 40) % 30);
            }
            let want: f64 = s.parse().unwrap();
            let got = Cursor {
                b: s.as_bytes(),
                i: 0,
            }
            .number();
            assert_eq!(got.map(f64::to_bits), Some(want.to_bits()), "{s}");
        }
        // Any finite double as numpy's %.17g and Rust's shortest form write it.
        for _ in 0..50_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let x = f64::from_bits(state);
            if !x.is_finite() {
                continue;
            }
            for s in [format!("{x:.16e}"), format!("{x}")] {
                let got = Cursor {
                    b: s.as_bytes(),
                    i: 0,
                }
                .number();
                assert_eq!(got.map(f64::to_bits), Some(x.to_bits()), "{s}");
            }
        }
        for s in [
            "0",
            "-0",
            "-0.0",
            "0.05",
            "0.000000000000001",
            "0.0000000000000001",
            "123456789012345",
            "1234567890123456",
            "12345678901234567890123",
            "0.1e1",
            "1E-2",
            "1e+2",
            "0e0",
            "9007199254740993",
            "100000000000000.5",
            "5.000000000000001",
        ] {
            let want: f64 = s.parse().unwrap();
            let mut c = Cursor {
                b: s.as_bytes(),
                i: 0,
            };
            assert_eq!(c.number().map(f64::to_bits), Some(want.to_bits()), "{s}");
            assert_eq!(c.i, s.len(), "{s}");
        }
        for s in ["", "-", "+1", "01", "1.", ".5", "1e", "1e+", "--1", "1.e5"] {
            let mut c = Cursor {
                b: s.as_bytes(),
                i: 0,
            };
            let got = c.number();
            assert!(got.is_none() || c.i < s.len(), "{s:?} read as {got:?}");
        }
    }
}
