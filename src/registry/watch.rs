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
    // Whether the current failure to watch was said (once until a watch works again).
    let mut said = false;
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
                said = false;
                if watched.is_some() {
                    tracing::info!(registry = %root.display(), "registry root replaced; watching the new one");
                }
                Some(w)
            }
            Err(e) => {
                if !said {
                    said = true;
                    let hint = if now.is_none() {
                        "the registry does not exist (yet): it is watched once it is created"
                    } else {
                        ""
                    };
                    tracing::warn!(error = %e, registry = %root.display(), hint, "cannot watch the registry; relying on polling (said once until it is watched)");
                }
                None
            }
        };
        watched = now;
        // Whatever changed while nothing watched: look now.
        signal();
    }
}
