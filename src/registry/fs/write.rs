//! Writing the file-system registry: atomic file replacement, numbered publishes, the
//! lock, and cleaning what killed writers left behind.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::io;
use crate::registry::RegistryError;

/// A leftover (a staging directory, a `.NAME.tmp-*` file) untouched for this long is
/// stale: its writer was killed. A writer touches its files as it writes and holds them
/// for seconds (minutes for a multi-gigabyte artifact on a slow disk); an alias writer
/// holds the lock throughout.
pub const STALE_AFTER: Duration = Duration::from_secs(60 * 60);

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A version directory's number: canonical decimal only (`1`, `42`; not `0`, `01` or
/// `+1`), so that one number has one directory.
pub fn parse_version(name: &str) -> Option<u64> {
    let b = name.as_bytes();
    if b.is_empty() || b[0] == b'0' || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    name.parse().ok()
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), RegistryError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", dir))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let mut f = File::create(path).map_err(io("create", path))?;
    f.write_all(bytes).map_err(io("write", path))?;
    f.sync_all().map_err(io("fsync", path))
}

/// Replaces `path` with `bytes` atomically (a synced temporary file renamed over it). A
/// failed write (disk full) removes its temporary file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let dir = path.parent().expect("a file in a directory");
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp-{}", unique_suffix()));
    let written =
        write_synced(&tmp, bytes).and_then(|()| fs::rename(&tmp, path).map_err(io("rename", path)));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Runs `f` holding `dir/.lock` (alias read-modify-write, cleaning).
pub(super) fn locked<T>(
    dir: &Path,
    f: impl FnOnce() -> Result<T, RegistryError>,
) -> Result<T, RegistryError> {
    let path = dir.join(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io("open", &path))?;
    file.lock().map_err(io("lock", &path))?;
    let out = f();
    let _ = file.unlock();
    out
}

/// Publishes `files` as the next numbered version under `dir/versions/`: written and
/// synced under `dir/.staging/`, then renamed into place, so readers see all of a version
/// or nothing; a concurrent publisher that takes the number first makes this one retry
/// with the next. Stale leftovers of killed publishers are removed first.
pub(super) fn publish_dir(dir: &Path, files: &[(&str, &[u8])]) -> Result<u64, RegistryError> {
    let versions = dir.join("versions");
    let staging = dir.join(".staging");
    for d in [&versions, &staging] {
        fs::create_dir_all(d).map_err(io("create", d))?;
    }
    locked(dir, || {
        clean_stale(dir);
        Ok(())
    })?;
    let tmp = staging.join(unique_suffix());
    fs::create_dir(&tmp).map_err(io("create", &tmp))?;
    let result = (|| {
        for (name, bytes) in files {
            write_synced(&tmp.join(name), bytes)?;
        }
        sync_dir(&tmp)?;
        let exhausted = || RegistryError::VersionsExhausted {
            path: versions.display().to_string(),
        };
        let highest = fs::read_dir(&versions)
            .map_err(io("list", &versions))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(parse_version))
            .max()
            .unwrap_or(0);
        let mut next = highest.checked_add(1).ok_or_else(exhausted)?;
        loop {
            let target = versions.join(next.to_string());
            match fs::rename(&tmp, &target) {
                Ok(()) => {
                    sync_dir(&versions)?;
                    return Ok(next);
                }
                // Taken by a concurrent publisher: ENOTEMPTY or EEXIST.
                Err(e)
                    if target.exists()
                        && matches!(
                            e.kind(),
                            ErrorKind::DirectoryNotEmpty | ErrorKind::AlreadyExists
                        ) =>
                {
                    next = next.checked_add(1).ok_or_else(exhausted)?;
                }
                Err(e) => return Err(io("rename", &target)(e)),
            }
        }
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

/// The newest modification time of `path` and, for a directory, of its entries (links
/// not followed).
fn last_touched(path: &Path) -> Option<SystemTime> {
    let meta = fs::symlink_metadata(path).ok()?;
    let mut newest = meta.modified().ok()?;
    if meta.is_dir() {
        for entry in fs::read_dir(path).ok()?.filter_map(|e| e.ok()) {
            let t = entry.metadata().ok()?.modified().ok()?;
            newest = newest.max(t);
        }
    }
    Some(newest)
}

fn is_stale(path: &Path, now: SystemTime) -> bool {
    last_touched(path)
        .and_then(|t| now.duration_since(t).ok())
        .is_some_and(|age| age >= STALE_AFTER)
}

/// Removes what killed writers left under the model or dataset directory `dir`:
/// directories in `.staging/` and `.NAME.tmp-*` files in `aliases/` and `records/`,
/// each only once untouched for [`STALE_AFTER`]. Call holding `dir/.lock`. Best effort:
/// what cannot be removed is logged and left. Returns how many were removed.
pub(super) fn clean_stale(dir: &Path) -> usize {
    let now = SystemTime::now();
    let mut removed = 0;
    let mut remove = |path: &Path, result: std::io::Result<()>| match result {
        Ok(()) => {
            removed += 1;
            tracing::info!(path = %path.display(), "removed a stale leftover of a killed writer");
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a stale leftover")
        }
    };
    if let Ok(entries) = fs::read_dir(dir.join(".staging")) {
        for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
            if is_stale(&path, now) {
                let result = match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => fs::remove_dir_all(&path),
                    _ => fs::remove_file(&path),
                };
                remove(&path, result);
            }
        }
    }
    for sub in ["aliases", "records"] {
        let Ok(entries) = fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let temp = name.starts_with('.') && name.contains(".tmp-");
            let path = entry.path();
            if temp && entry.file_type().is_ok_and(|t| t.is_file()) && is_stale(&path, now) {
                remove(&path, fs::remove_file(&path));
            }
        }
    }
    removed
}
