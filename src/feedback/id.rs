//! The ids answers are remembered under: one this process generated (`TTTTTTTT-NNNNNNNN`:
//! a per-process tag, then a number unique here) is kept as its number, so remembering
//! the answer hashes, stores and compares no text; a client's own id is kept as text.
//! The same text always gives the same id: a client sending a generated id's text names
//! that answer.

use std::sync::OnceLock;

/// The id of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerId {
    /// Generated here: the text [`generated_text`] makes of the number.
    Generated(u64),
    /// The client's id, as sent (boxed whole: a thin pointer keeps the request's
    /// future small, `http::handler`'s size test).
    Client(Box<String>),
}

impl AnswerId {
    /// The id `text` names.
    pub fn of(text: &str) -> Self {
        match Key::of(text) {
            Key::Generated(n) => AnswerId::Generated(n),
            Key::Client(s) => AnswerId::Client(Box::new(s.to_owned())),
        }
    }

    pub(super) fn key(&self) -> Key<'_> {
        match self {
            AnswerId::Generated(n) => Key::Generated(*n),
            AnswerId::Client(s) => Key::Client(s.as_str()),
        }
    }
}

/// An id borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key<'a> {
    Generated(u64),
    Client(&'a str),
}

impl<'a> Key<'a> {
    /// The id `text` names: a generated one if it is exactly the text of one.
    pub(super) fn of(text: &'a str) -> Self {
        match parse_generated(text) {
            Some(n) => Key::Generated(n),
            None => Key::Client(text),
        }
    }
}

/// A per-process tag (start time and pid mixed), so ids from replicas rarely collide.
pub fn process_tag() -> u32 {
    static TAG: OnceLock<u32> = OnceLock::new();
    *TAG.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let x = nanos ^ (u64::from(std::process::id()) << 32);
        // splitmix64 finaliser
        let x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (x ^ (x >> 31)) as u32
    })
}

/// A generated id as text: `TTTTTTTT-NNNNNNNN` (8 hex digits of the process tag, then at
/// least 8 of the number), without the formatting machinery. Returns the bytes and
/// how many are used.
pub fn generated_text(n: u64) -> ([u8; 25], usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 25];
    let tag = process_tag();
    for (i, o) in out.iter_mut().enumerate().take(8) {
        *o = HEX[(tag >> (28 - 4 * i)) as usize & 15];
    }
    out[8] = b'-';
    let digits = (16 - n.leading_zeros() as usize / 4).max(8);
    for i in 0..digits {
        out[9 + i] = HEX[(n >> (4 * (digits - 1 - i))) as usize & 15];
    }
    (out, 9 + digits)
}

/// The number whose generated text `text` is exactly, if any.
fn parse_generated(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if !(17..=25).contains(&b.len()) || b[8] != b'-' {
        return None;
    }
    let n = u64::from_str_radix(text.get(9..)?, 16).ok()?;
    let (canonical, len) = generated_text(n);
    (canonical[..len] == *b).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: u64) -> String {
        let (t, len) = generated_text(n);
        String::from_utf8(t[..len].to_vec()).unwrap()
    }

    #[test]
    fn generated_text_is_the_formatted_text_and_parses_back() {
        for n in [0, 1, 0xabc, 0xffff_ffff, 0x1_0000_0000, u64::MAX] {
            let want = format!("{:08x}-{n:08x}", process_tag());
            assert_eq!(text(n), want);
            assert_eq!(AnswerId::of(&want), AnswerId::Generated(n));
        }
    }

    #[test]
    fn only_the_exact_text_of_a_generated_id_is_one() {
        let tag = format!("{:08x}", process_tag());
        let other = format!("{:08x}", process_tag() ^ 1);
        for s in [
            format!("{tag}-0000000"),
            format!("{tag}-000000001"),
            format!("{tag}-0000000A"),
            format!("{tag}+00000001"),
            format!("{other}-00000001"),
            format!("{tag}-+0000001"),
            format!("{tag}-00000001 "),
            String::new(),
            "r1".into(),
        ] {
            assert_eq!(AnswerId::of(&s), AnswerId::Client(s.clone().into()), "{s}");
        }
    }
}
