//! `GET /models/{model}/report`: the HTML report ([`crate::report`]), cached per registry
//! state. A cached page is answered without touching the registry for [`FRESH_FOR`]; then
//! the registry state it was built from (versions, aliases, gate records, datasets) is
//! read again, and the page rebuilt only if that changed. Reads and builds run one at a
//! time ([`REPORT_BUILDS`]) on a blocking thread, so reports cannot take the cores that
//! `/score` needs; the page is one shared `Bytes`, so however many streams wait for it
//! (an HTTP/2 client that never opens its window) it is held once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::Full;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::step::Reply;
use super::{ApiError, AppState, NOSNIFF};
use crate::registry::{Registry, RegistryError};
use crate::serving::{ScoreError, truncated};

/// How long a cached report is answered without reading the registry again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);
/// Reports read or built at once.
pub const REPORT_BUILDS: usize = 1;
/// Longest a report request waits for its turn before a 503.
const WAIT: Duration = Duration::from_secs(10);
/// Most models whose report is kept (each at most [`crate::report::MAX_REPORT_BYTES`]).
const MAX_CACHED: usize = 16;

/// A built report and the registry state it shows.
#[derive(Debug)]
struct Cached {
    key: [u8; 32],
    html: Bytes,
    checked: Instant,
}

/// The report cache and its concurrency limit.
#[derive(Debug)]
pub struct Reports {
    cache: Mutex<HashMap<String, Cached>>,
    builds: Semaphore,
}

impl Default for Reports {
    fn default() -> Self {
        Self {
            cache: Mutex::new(HashMap::new()),
            builds: Semaphore::new(REPORT_BUILDS),
        }
    }
}

impl Reports {
    /// The cached page of `name` if it was checked within [`FRESH_FOR`].
    fn fresh(&self, name: &str) -> Option<Bytes> {
        let cache = self.cache.lock().expect("lock");
        cache
            .get(name)
            .filter(|c| c.checked.elapsed() < FRESH_FOR)
            .map(|c| c.html.clone())
    }

    fn key_of(&self, name: &str) -> Option<[u8; 32]> {
        self.cache.lock().expect("lock").get(name).map(|c| c.key)
    }

    /// Stores (or marks checked) `name`'s page, dropping the least recently checked
    /// page when full.
    fn store(&self, name: String, key: [u8; 32], html: Option<Bytes>) -> Option<Bytes> {
        let mut cache = self.cache.lock().expect("lock");
        let checked = Instant::now();
        if html.is_none() {
            let c = cache.get_mut(&name)?;
            c.checked = checked;
            return Some(c.html.clone());
        }
        if !cache.contains_key(&name)
            && cache.len() >= MAX_CACHED
            && let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, c)| c.checked)
                .map(|(n, _)| n.clone())
        {
            cache.remove(&oldest);
        }
        let html = html.expect("checked above");
        cache.insert(
            name,
            Cached {
                key,
                html: html.clone(),
                checked,
            },
        );
        Some(html)
    }
}

/// The registry state a report of `model` shows, hashed: its versions, aliases and gate
/// records, every dataset's versions, and the live figures. Blocking.
fn state_key(
    reg: &dyn Registry,
    model: &str,
    live: Option<&crate::serving::LiveReport>,
) -> Result<[u8; 32], RegistryError> {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&live).expect("json"));
    let versions = reg.versions(model)?;
    for v in &versions {
        h.update(v.to_le_bytes());
        if let Ok(Some(gate)) = reg.get_record(model, *v, "gate") {
            h.update(Sha256::digest(&gate));
        }
    }
    h.update(b"aliases");
    for (alias, record) in reg.aliases(model)? {
        h.update(alias.as_bytes());
        h.update(record.version.to_le_bytes());
    }
    h.update(b"datasets");
    for d in reg.datasets().unwrap_or_default() {
        h.update(d.as_bytes());
        for v in reg.dataset_versions(&d).unwrap_or_default() {
            h.update(v.to_le_bytes());
        }
    }
    Ok(h.finalize().into())
}

/// The model's HTML report, from the cache when the registry has not changed.
pub(super) async fn report(state: &AppState, name: String) -> Reply {
    let reports = &state.reports;
    if let Some(html) = reports.fresh(&name) {
        return Ok(html_response(html));
    }
    let _turn = tokio::time::timeout(WAIT, reports.builds.acquire())
        .await
        .map_err(|_| ScoreError::Overloaded("too many report requests in progress"))?
        .expect("never closed");
    // Someone may have checked it while this request waited.
    if let Some(html) = reports.fresh(&name) {
        return Ok(html_response(html));
    }
    let registry = Arc::clone(state.fleet().registry());
    let known = reports.key_of(&name);
    // What this server saw of the model's versions: part of the page, and of its key.
    let live = state.scoring.live_report(&name).ok();
    let built = state
        .scoring
        .blocking("report", move || {
            let key = match state_key(&*registry, &name, live.as_ref()) {
                Ok(key) => key,
                Err(RegistryError::ModelNotFound(_) | RegistryError::InvalidName(_)) => {
                    return Err(ScoreError::ModelNotFound(truncated(&name)).into());
                }
                Err(e) => return Err(ApiError::Internal(format!("reading the registry: {e}"))),
            };
            if known == Some(key) {
                return Ok((name, key, None));
            }
            // Datasets come from the same registry, through the same trait.
            let datasets = crate::data::DatasetStore::new(Arc::clone(&registry));
            let html = crate::report::html(&*registry, Some(&datasets), &name, live.as_ref())
                .map_err(|e| ApiError::Internal(format!("building the report: {e}")))?;
            Ok((name, key, Some(Bytes::from(html))))
        })
        .await??;
    let (name, key, html) = built;
    let html = reports
        .store(name, key, html)
        .ok_or_else(|| ApiError::Internal("the cached report vanished".into()))?;
    Ok(html_response(html))
}

fn html_response(html: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(html));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, csp().clone());
    h.insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF);
    resp
}

/// Self-contained: nothing loads from elsewhere, and the only script that may run is the
/// report's own (named by its hash); inline styles are allowed (the charts' colours).
fn csp() -> &'static HeaderValue {
    static CSP: OnceLock<HeaderValue> = OnceLock::new();
    CSP.get_or_init(|| {
        let hash = base64(&Sha256::digest(crate::report::SCRIPT.as_bytes()));
        HeaderValue::from_str(&format!(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{hash}'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        ))
        .expect("ASCII")
    })
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(b"foobar"), "Zm9vYmFy");
    }
}
