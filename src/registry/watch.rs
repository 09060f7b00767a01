//! The registry watcher: file events are only hints. Every relevant event signals the one
//! reload task, which re-reads the alias itself; bursts coalesce into one reload.

use std::path::Path;

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

/// Watches `root` (its directories, recursively: a file replaced by rename stops
/// producing events for a watch on the file itself) and calls `signal` on every change.
/// Reads are ignored, so the reload task's own reads cannot wake it again. Keep the
/// returned watcher alive for as long as events are wanted.
pub fn watch(
    root: &Path,
    signal: impl Fn() + Send + 'static,
) -> Result<RecommendedWatcher, notify::Error> {
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<Event>| match event {
            Ok(e) if matches!(e.kind, EventKind::Access(_)) => {}
            // Errors too: something happened that the reload should look at.
            _ => signal(),
        })?;
    watcher.watch(root, RecursiveMode::Recursive)?;
    Ok(watcher)
}
