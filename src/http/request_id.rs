//! Request ids: the client's `x-request-id` (or Azure's `x-ms-request-id`) when it sent
//! one, else an id generated only when something needs it (an error answer, or request
//! logging turned on), so a successful request pays nothing for it.

use std::fmt::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderValue;

use crate::feedback::AnswerId;
use crate::feedback::id::generated_text;

/// Longest client id kept (longer ones are cut in logs).
const MAX_LOGGED_LEN: usize = 128;

/// Who named a request.
#[derive(Debug, Clone)]
pub(super) enum RequestId {
    /// The client's header value.
    Client(HeaderValue),
    /// Generated here: unique within this process, prefixed by a per-process tag.
    Generated(u64),
}

static NEXT: AtomicU64 = AtomicU64::new(1);

/// Ids a thread takes from [`NEXT`] at once, so that threads rarely write the same
/// counter.
const ID_BLOCK: u64 = 1024;

thread_local! {
    /// This thread's next id and the end of its block.
    static BLOCK: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

impl RequestId {
    /// A fresh id.
    pub(super) fn generate() -> Self {
        let n = BLOCK.with(|b| {
            let (mut next, mut end) = b.get();
            if next == end {
                next = NEXT.fetch_add(ID_BLOCK, Ordering::Relaxed);
                end = next + ID_BLOCK;
            }
            b.set((next + 1, end));
            next
        });
        RequestId::Generated(n)
    }

    /// The client's id, or a fresh one.
    pub(super) fn or_generate(client: Option<&HeaderValue>) -> Self {
        match client {
            Some(v) => RequestId::Client(v.clone()),
            None => Self::generate(),
        }
    }

    /// The header value to answer with.
    pub(super) fn header_value(&self) -> HeaderValue {
        match self {
            RequestId::Client(v) => v.clone(),
            RequestId::Generated(n) => {
                let (text, len) = generated_text(*n);
                HeaderValue::from_bytes(&text[..len]).expect("hex digits are a valid header")
            }
        }
    }
}

impl RequestId {
    /// The id as the feedback record keys it: the generated number, or the client's
    /// value whole (not cut as in logs).
    pub(super) fn answer_id(&self) -> AnswerId {
        match self {
            RequestId::Client(v) => AnswerId::of(&String::from_utf8_lossy(v.as_bytes())),
            RequestId::Generated(n) => AnswerId::Generated(*n),
        }
    }
}

/// Whether a byte of a client's id is logged as it is (else as `_`).
fn logged_as_is(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.:/+@~#".contains(&b)
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Generated(n) => {
                let (text, len) = generated_text(*n);
                f.write_str(std::str::from_utf8(&text[..len]).expect("hex digits"))
            }
            // Logged as one inert token: a client's spaces, tabs, quotes, `=` or non-ASCII
            // bytes would let it forge fields or lines in text logs.
            RequestId::Client(v) => {
                let bytes = &v.as_bytes()[..v.len().min(MAX_LOGGED_LEN)];
                bytes
                    .iter()
                    .try_for_each(|&b| f.write_char(if logged_as_is(b) { b as char } else { '_' }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_distinct_and_valid_headers() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a.to_string(), b.to_string());
        assert_eq!(a.to_string().len(), 17);
        assert_eq!(a.header_value().to_str().unwrap(), a.to_string());
    }

    #[test]
    fn client_ids_are_kept_and_cut_in_logs() {
        let long = "x".repeat(300);
        let id = RequestId::or_generate(Some(&HeaderValue::from_str(&long).unwrap()));
        assert_eq!(id.header_value().len(), 300);
        assert_eq!(id.to_string().len(), MAX_LOGGED_LEN);
        let odd = HeaderValue::from_bytes(b"caf\xe9").unwrap();
        assert_eq!(RequestId::or_generate(Some(&odd)).to_string(), "caf_");
        let forged = HeaderValue::from_static("a b\tstatus=200 \"x\"");
        let id = RequestId::or_generate(Some(&forged));
        assert_eq!(id.to_string(), "a_b_status_200__x_");
        assert_eq!(id.header_value(), forged, "echoed as sent");
    }
}
