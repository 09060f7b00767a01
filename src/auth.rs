//! API keys (`--api-keys-file`): who may call what. Free of HTTP: the adapters pass the
//! key a request presented and the scope its route needs.
//!
//! The file holds one key a line, optionally followed by its scope: `score` (scoring and
//! the metadata clients read before scoring) or `admin` (also reports, `/models` details
//! and `/metrics`); a key without a scope is `admin`. `#` starts a comment. Keys are kept
//! as SHA-256 digests and compared in constant time; logs name a key by its digest's
//! first 8 hex digits, never by the key.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Probes: always open.
    Open,
    /// Scoring and the metadata clients read before scoring.
    Score,
    /// Reports, model details, metrics.
    Admin,
}

/// Why a call is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No key was presented.
    Missing,
    /// The key is not in the file.
    Wrong,
    /// A `score` key on an `admin` route.
    Forbidden,
}

/// The shortest key accepted: a guessable key is no key.
pub const MIN_KEY_CHARS: usize = 16;

/// The keys of one version of the file.
#[derive(Debug, Default)]
pub struct ApiKeys {
    keys: Vec<([u8; 32], Scope)>,
}

impl ApiKeys {
    /// Parses the file's text. `Err`: one line naming the line at fault (never the key).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let key = words.next().expect("a non-empty line has a word");
            let scope = match words.next() {
                None | Some("admin") => Scope::Admin,
                Some("score") => Scope::Score,
                Some(other) => {
                    return Err(format!(
                        "line {}: unknown scope {other:.20?}: use `score` or `admin` (or none, \
                         which is admin)",
                        n + 1
                    ));
                }
            };
            if words.next().is_some() {
                return Err(format!(
                    "line {}: a line is a key and at most one scope",
                    n + 1
                ));
            }
            if key.chars().count() < MIN_KEY_CHARS {
                return Err(format!(
                    "line {}: the key is shorter than {MIN_KEY_CHARS} characters: use a long \
                     random key (e.g. openssl rand -hex 32)",
                    n + 1
                ));
            }
            keys.push((Sha256::digest(key.as_bytes()).into(), scope));
        }
        if keys.is_empty() {
            return Err("no keys: every call would be refused; add one key a line".into());
        }
        Ok(Self { keys })
    }

    /// Whether `presented` may call a route that needs `need`. Every stored key is
    /// compared, in constant time, whatever matches.
    pub fn check(&self, presented: Option<&[u8]>, need: Scope) -> Result<(), Refusal> {
        if need == Scope::Open {
            return Ok(());
        }
        let Some(presented) = presented else {
            return Err(Refusal::Missing);
        };
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let mut best: Option<Scope> = None;
        for (key, scope) in &self.keys {
            let diff = key
                .iter()
                .zip(&digest)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if std::hint::black_box(diff) == 0 {
                best = best.max(Some(*scope));
            }
        }
        match best {
            None => Err(Refusal::Wrong),
            Some(s) if s >= need => Ok(()),
            Some(_) => Err(Refusal::Forbidden),
        }
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A key's name in logs: its SHA-256's first 8 hex digits.
pub fn key_id(key: &[u8]) -> String {
    hex::encode(&Sha256::digest(key)[..4])
}

/// The keys file, read again when it changes ([`KeyFile::refresh`]).
#[derive(Debug)]
pub struct KeyFile {
    path: PathBuf,
    keys: ArcSwap<ApiKeys>,
    seen: std::sync::Mutex<Option<(SystemTime, u64)>>,
}

impl KeyFile {
    /// Reads `path`. `Err`: one line saying what is wrong with it.
    pub fn open(path: &Path) -> Result<Self, String> {
        let (keys, stamp) = read(path)?;
        Ok(Self {
            path: path.to_owned(),
            keys: ArcSwap::from_pointee(keys),
            seen: std::sync::Mutex::new(stamp),
        })
    }

    /// The keys now.
    pub fn keys(&self) -> arc_swap::Guard<Arc<ApiKeys>> {
        self.keys.load()
    }

    /// Reads the file again if its modification time or size changed: `Ok(Some(n))` when
    /// `n` keys were loaded, `Ok(None)` when unchanged; `Err` keeps the keys in use.
    pub fn refresh(&self) -> Result<Option<usize>, String> {
        let stamp = stamp(&self.path);
        let mut seen = self.seen.lock().expect("lock");
        if stamp.is_some() && stamp == *seen {
            return Ok(None);
        }
        // Remembered even when it fails: a broken file is reported once, not every poll.
        *seen = stamp;
        let (keys, _) = read(&self.path)?;
        let n = keys.len();
        self.keys.store(Arc::new(keys));
        Ok(Some(n))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Largest keys file read.
const MAX_FILE_BYTES: u64 = 1 << 20;

fn read(path: &Path) -> Result<(ApiKeys, Option<(SystemTime, u64)>), String> {
    let shown = path.display();
    let stamp = stamp(path);
    if stamp.is_some_and(|(_, len)| len > MAX_FILE_BYTES) {
        return Err(format!("{shown}: larger than 1 MiB; is it the keys file?"));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{shown}: cannot be read: {e}"))?;
    let keys = ApiKeys::parse(&text).map_err(|e| format!("{shown}: {e}"))?;
    Ok((keys, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef-admin";
    const S: &str = "0123456789abcdef-score";

    #[test]
    fn scopes_and_refusals() {
        let keys = ApiKeys::parse(&format!("# keys\n{A}\n{S} score  # the app\n\n")).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.check(None, Scope::Open), Ok(()));
        assert_eq!(keys.check(None, Scope::Score), Err(Refusal::Missing));
        assert_eq!(keys.check(Some(b"nope"), Scope::Score), Err(Refusal::Wrong));
        assert_eq!(keys.check(Some(S.as_bytes()), Scope::Score), Ok(()));
        assert_eq!(
            keys.check(Some(S.as_bytes()), Scope::Admin),
            Err(Refusal::Forbidden)
        );
        assert_eq!(keys.check(Some(A.as_bytes()), Scope::Admin), Ok(()));
        assert_eq!(keys.check(Some(A.as_bytes()), Scope::Score), Ok(()));
    }

    #[test]
    fn bad_files_are_one_line_naming_the_line_not_the_key() {
        for (text, needle) in [
            ("", "no keys"),
            ("# only a comment\n", "no keys"),
            ("short\n", "line 1: the key is shorter"),
            (&format!("{A}\n{S} root\n"), "line 2: unknown scope"),
            (&format!("{A} score extra\n"), "line 1: a line is a key"),
        ] {
            let e = ApiKeys::parse(text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
            assert!(!e.contains("0123456789abcdef"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn key_ids_are_short_digests() {
        assert_eq!(key_id(A.as_bytes()).len(), 8);
        assert_ne!(key_id(A.as_bytes()), key_id(S.as_bytes()));
    }
}
