//! A minimal JSON cursor for the fast decoding paths: a strict subset of JSON parsed without
//! serde; anything unusual makes the caller fall back to serde.

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

    pub fn digits(&mut self) -> usize {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    /// A JSON number, by the JSON grammar.
    pub fn number(&mut self) -> Option<f64> {
        self.ws();
        let start = self.i;
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return None,
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        let text = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        text.parse::<f64>().ok().filter(|v| v.is_finite())
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
