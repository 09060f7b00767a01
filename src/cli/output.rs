//! Writing a command's output file (`predict --output`, `import --output`) without
//! replacing what is not a regular file: as root, `--output /dev/null` once replaced the
//! device node with a regular file, and a symbolic link with a file of its own.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::{CommandError, io_err};

/// Writes the output at `path` with `write`: a regular file, or a new one (through a
/// symbolic link: its target), whole or not at all (see [`replace`]); a device or FIFO
/// in place; a directory or a dangling link is refused.
pub(super) fn write_output<T>(
    path: &Path,
    write: impl FnOnce(File) -> Result<T, CommandError>,
) -> Result<T, CommandError> {
    match destination(path)? {
        Destination::Replace(target) => replace(&target, write),
        Destination::InPlace(file) => write(file),
    }
}

/// Where `--output` goes.
enum Destination {
    /// A regular file, or none yet: write beside it and rename over it.
    Replace(PathBuf),
    /// A device or FIFO, opened: write through it, never replace it.
    InPlace(File),
}

/// Resolves `--output`: a symbolic link to its target (a dangling one is refused, as is a
/// directory), then a regular file or a missing one is replaced, anything else written in
/// place, so `--output /dev/null` as root never replaces the device node.
fn destination(path: &Path) -> Result<Destination, CommandError> {
    let meta = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Destination::Replace(path.to_path_buf()));
        }
        other => other.map_err(io_err(path))?,
    };
    let target = if meta.file_type().is_symlink() {
        match std::fs::canonicalize(path) {
            Ok(target) => target,
            // No path to resolve to, as `/dev/stdout` → `/proc/self/fd/1` → `pipe:[…]`:
            // what the link opens is written in place; a link to nothing is refused.
            Err(_) => return open_in_place(path),
        }
    } else {
        path.to_path_buf()
    };
    let meta = std::fs::metadata(&target).map_err(io_err(&target))?;
    if meta.is_dir() {
        Err(CommandError::Usage(format!(
            "--output {}: a directory; give the path of a file",
            path.display()
        )))
    } else if meta.is_file() {
        Ok(Destination::Replace(target))
    } else {
        open_in_place(&target)
    }
}

/// Opens an existing output for writing in place (never creating it), truncating it if
/// it is a regular file after all.
fn open_in_place(path: &Path) -> Result<Destination, CommandError> {
    let file = match std::fs::OpenOptions::new().write(true).open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CommandError::Usage(format!(
                "--output {}: a symbolic link to nothing; give the path of a file",
                path.display()
            )));
        }
        other => other.map_err(io_err(path))?,
    };
    if file.metadata().is_ok_and(|m| m.is_file()) {
        file.set_len(0).map_err(io_err(path))?;
    }
    Ok(Destination::InPlace(file))
}

/// Writes `target` whole or not at all: `write` fills `TARGET.partial` (made anew, never
/// through a link left there), which then takes the place (and an existing file's
/// permissions) of `target`; on failure it is removed.
fn replace<T>(
    target: &Path,
    write: impl FnOnce(File) -> Result<T, CommandError>,
) -> Result<T, CommandError> {
    let mut partial = target.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    // A stale one (or a link planted there) goes; `create_new` then refuses to follow
    // anything that reappears in between.
    let _ = std::fs::remove_file(&partial);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .map_err(io_err(&partial))?;
    if let Ok(old) = std::fs::metadata(target) {
        let _ = file.set_permissions(old.permissions());
    }
    let done = write(file).and_then(|s| {
        std::fs::rename(&partial, target).map_err(io_err(target))?;
        Ok(s)
    });
    if done.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    done
}
