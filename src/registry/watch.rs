//! The registry watcher: file events are only hints. Every relevant event signals the one
//! reload task, which re-reads the alias itself; bursts coalesce into one reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// Keeps a watcher on the registry root, and puts a new one on it when the root is
/// replaced (a watch follows the directory it was put on, not the path): the root's
/// identity is checked once a second. Runs until dropped (a task to spawn).
pub async fn keep_watching(root: PathBuf, signal: Arc<dyn Fn() + Send + Sync>) {
    let identity = |root: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(root).ok().map(|m| (m.dev(), m.ino()))
    };
    let mut watched: Option<(u64, u64)> = None;
    let mut watcher: Option<RecommendedWatcher> = None;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let now = identity(&root);
        if now == watched && watcher.is_some() {
            continue;
        }
        let s = signal.clone();
        watcher = match watch(&root, move || s()) {
            Ok(w) => {
                if watched.is_some() {
                    tracing::info!(registry = %root.display(), "registry root replaced; watching the new one");
                }
                Some(w)
            }
            Err(e) => {
                if watcher.is_some() || watched.is_none() {
                    tracing::warn!(error = %e, registry = %root.display(), "cannot watch the registry; relying on polling");
                }
                None
            }
        };
        watched = now;
        // Whatever changed while nothing watched: look now.
        signal();
    }
}
