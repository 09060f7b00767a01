//! Bounded reads of registry files: regular files only (a symlink is followed, but its
//! target must be a regular file), at most a size cap per kind of file, within a time
//! limit, on a helper thread so a file system that hangs cannot hang the caller.
//!
//! A FIFO or device is refused without blocking (opened non-blocking, then checked with
//! `fstat`); a file over its cap is refused from its size before any byte is read. A
//! read that outlives its time limit is abandoned (the caller gets an error; the thread
//! finishes, or stays stuck in the kernel); while [`MAX_ABANDONED`] reads are stuck, new
//! reads are refused at once rather than piling up threads.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use crate::registry::RegistryError;

/// Largest alias file read (an alias record with its 100-entry history is ~3 KB).
pub const MAX_ALIAS_BYTES: u64 = 64 * 1024;
/// Largest record file read (`records/N.KIND.json`: a gate decision, a few KB; the rows a
/// version trained on, ~20 bytes per training row plus its held-out rows).
pub const MAX_RECORD_BYTES: u64 = 1024 * 1024 * 1024;
/// Largest artifact or dataset file read.
pub const MAX_ARTIFACT_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Reads that timed out and are still running; more refuse new reads at once.
pub const MAX_ABANDONED: usize = 8;

/// A kind of registry file: its size cap and time limit.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// What the file is, for errors.
    pub what: &'static str,
    /// Most bytes read.
    pub cap: u64,
}

/// An alias file.
pub const ALIAS: Kind = Kind {
    what: "alias file",
    cap: MAX_ALIAS_BYTES,
};
/// A record file.
pub const RECORD: Kind = Kind {
    what: "record file",
    cap: MAX_RECORD_BYTES,
};
/// An artifact.
pub const ARTIFACT: Kind = Kind {
    what: "artifact",
    cap: MAX_ARTIFACT_BYTES,
};
/// A dataset file.
pub const DATASET_FILE: Kind = Kind {
    what: "dataset file",
    cap: MAX_ARTIFACT_BYTES,
};

/// Time a read of `size` bytes may take: 10 s, plus 1 s per 16 MiB.
pub fn time_limit(size: u64) -> Duration {
    Duration::from_secs(10 + size / (16 * 1024 * 1024))
}

static ABANDONED: AtomicUsize = AtomicUsize::new(0);
const WAITING: u8 = 0;
const DONE: u8 = 1;
const ABANDONED_STATE: u8 = 2;

/// `O_NONBLOCK`: opening a FIFO must not wait for a writer. (Where it is not defined
/// here, the `stat` before opening and the time limit still keep a FIFO from blocking the
/// caller.)
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(any(
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc",
        target_arch = "sparc64"
    ))
))]
const O_NONBLOCK: i32 = 0o4000;
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd"
))]
const O_NONBLOCK: i32 = 0x0004;
#[cfg(not(any(
    all(
        any(target_os = "linux", target_os = "android"),
        not(any(
            target_arch = "mips",
            target_arch = "mips64",
            target_arch = "sparc",
            target_arch = "sparc64"
        ))
    ),
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd"
)))]
const O_NONBLOCK: i32 = 0;

fn refused(path: &Path, detail: String) -> RegistryError {
    RegistryError::Refused {
        path: path.display().to_string(),
        detail,
    }
}

/// What a regular-file check found wrong, or `None` when `meta` is a regular file
/// within the cap.
fn check_meta(meta: &std::fs::Metadata, kind: Kind) -> Option<String> {
    let ft = meta.file_type();
    if !ft.is_file() {
        let what = file_type_name(&ft);
        return Some(format!(
            "the {} is {what}, not a regular file; replace it with the file itself",
            kind.what
        ));
    }
    (meta.len() > kind.cap).then(|| {
        format!(
            "the {} is {} bytes, over the limit of {} bytes",
            kind.what,
            meta.len(),
            kind.cap
        )
    })
}

fn file_type_name(ft: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO";
        }
        if ft.is_char_device() || ft.is_block_device() {
            return "a device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

/// Opens, checks and reads the file (on the calling thread).
fn read_now(path: &Path, kind: Kind) -> Result<Option<Vec<u8>>, RegistryError> {
    // `metadata` follows symlinks: a link to a regular file is read, a link to a device
    // or FIFO is refused before it is opened.
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", path, e)),
    };
    if let Some(why) = check_meta(&meta, kind) {
        return Err(refused(path, why));
    }
    let mut opts = OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(O_NONBLOCK);
    }
    let file: File = match opts.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", path, e)),
    };
    // The file opened may not be the one checked (replaced in between): check it again.
    let meta = file.metadata().map_err(|e| io_err("read", path, e))?;
    if let Some(why) = check_meta(&meta, kind) {
        return Err(refused(path, why));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    // A file growing while it is read is cut at the size checked.
    file.take(meta.len())
        .read_to_end(&mut buf)
        .map_err(|e| io_err("read", path, e))?;
    Ok(Some(buf))
}

fn io_err(op: &'static str, path: &Path, source: std::io::Error) -> RegistryError {
    RegistryError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

/// The bytes of the registry file `path` of kind `kind`, or `None` when it does not
/// exist; refused (never blocking) when it is not a regular file or is over the cap, and
/// abandoned with an error when it takes longer than [`time_limit`].
pub fn read_capped(path: &Path, kind: Kind) -> Result<Option<Vec<u8>>, RegistryError> {
    let stuck = ABANDONED.load(Ordering::Relaxed);
    if stuck >= MAX_ABANDONED {
        return Err(refused(
            path,
            format!(
                "{stuck} earlier registry reads are still stuck past their time limit; check the file system"
            ),
        ));
    }
    // The size for the time limit; a file that is not there or not regular is answered
    // by `read_now` in the helper.
    let size = std::fs::metadata(path).map_or(0, |m| m.len().min(kind.cap));
    let limit = time_limit(size);
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    // WAITING, then DONE (the helper sends its result) or ABANDONED (the caller gave
    // up), whichever comes first.
    let state = Arc::new(AtomicU8::new(WAITING));
    let helper_state = state.clone();
    let owned: PathBuf = path.to_owned();
    let spawned = std::thread::Builder::new()
        .name("registry-read".into())
        .spawn(move || {
            let result = read_now(&owned, kind);
            match helper_state.compare_exchange(WAITING, DONE, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    let _ = tx.send(result);
                }
                Err(_) => {
                    ABANDONED.fetch_sub(1, Ordering::AcqRel);
                }
            }
        });
    if spawned.is_err() {
        // No thread to spare: read here (still non-blocking for FIFOs and capped).
        return read_now(path, kind);
    }
    match rx.recv_timeout(limit) {
        Ok(result) => result,
        Err(_) => {
            ABANDONED.fetch_add(1, Ordering::AcqRel);
            if state
                .compare_exchange(
                    WAITING,
                    ABANDONED_STATE,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_err()
            {
                // The helper finished just now: its result is on its way.
                ABANDONED.fetch_sub(1, Ordering::AcqRel);
                return rx.recv().unwrap_or_else(|_| {
                    Err(refused(path, "the read's helper thread failed".into()))
                });
            }
            Err(refused(
                path,
                format!(
                    "no answer within {}; the read was abandoned",
                    humantime::format_duration(limit)
                ),
            ))
        }
    }
}
