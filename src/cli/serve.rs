//! `treeserve serve`: the server's startup, its registry following, and its shutdown.

use std::io::Write;
use std::sync::Arc;

use super::CommandError;
use crate::config::ServeConfig;
use crate::registry::FsRegistry;

pub(super) fn serve(config: ServeConfig) -> Result<(), CommandError> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(w) = config.workers {
        rt.worker_threads(w.max(1));
    }
    let rt = rt.enable_all().build().map_err(|source| CommandError::Io {
        path: "tokio runtime".into(),
        source,
    })?;
    rt.block_on(async move {
        let metrics = Arc::new(crate::metrics::Metrics::new());
        for name in &config.models {
            if !crate::registry::valid_name(name) {
                return Err(CommandError::Usage(format!("invalid model name {name:?}")));
            }
        }
        let fleet = Arc::new(crate::serving::Fleet::new(
            Arc::new(FsRegistry::new(&config.registry)),
            config.models.clone(),
            config.catalog_options(),
            metrics.clone(),
        ));
        let state = Arc::new(crate::http::AppState {
            fleet: fleet.clone(),
            metrics,
            config: config.clone(),
            blocking: Arc::new(tokio::sync::Semaphore::new(config.max_blocking_requests)),
        });
        let server = crate::http::Server::bind(state.clone()).await?;
        let first = fleet.clone();
        match tokio::task::spawn_blocking(move || first.reload()).await {
            Ok(report) => {
                crate::serving::log_report(&report);
                let models = fleet.models();
                let loaded: Vec<String> = models
                    .iter()
                    .filter_map(|c| c.current().map(|s| format!("{}@{}", c.name(), s.version_text)))
                    .collect();
                if fleet.ready() {
                    tracing::info!(models = ?loaded, "models loaded");
                } else if models.iter().next().is_none() {
                    let error = format!(
                        "no model in registry {} has alias {:?}",
                        config.registry.display(),
                        config.alias
                    );
                    tracing::error!(error, "no model loaded yet; /health/ready answers 503")
                } else {
                    tracing::error!(models = ?loaded, "no model loaded yet for every model required; /health/ready answers 503")
                }
            }
            Err(e) => tracing::error!(error = %e, "model load task failed"),
        }
        state
            .metrics
            .register(Box::new(crate::stats::ModelCollector::new(
                fleet.clone(),
                config.drift_min_rows,
            )));
        spawn_drift_ticks(fleet.clone(), config.drift_window);
        follow_registry(&config, fleet);
        // The first stdout line: tests and scripts read the bound address from it.
        println!("treeserve listening on http://{}", server.local_addr());
        let _ = std::io::stdout().flush();
        let drain = state.clone();
        server
            .run(async move {
                shutdown_signal().await;
                drain.fleet.drain();
                let delay = drain.config.shutdown_delay;
                if !delay.is_zero() {
                    tracing::info!(?delay, "draining: /health/ready answers 503 while still serving");
                    tokio::time::sleep(delay).await;
                }
            })
            .await;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Snapshots the served model's bin counts ten times per drift window, so the PSI covers
/// the last window.
fn spawn_drift_ticks(fleet: Arc<crate::serving::Fleet>, window: std::time::Duration) {
    let period = (window / 10).max(std::time::Duration::from_millis(100));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            for catalog in fleet.models_full().iter() {
                if let Some(served) = catalog.current() {
                    served.stats.tick(window);
                }
            }
        }
    });
}

/// Starts the reload task and what signals it: the file watcher (unless `--no-watch`),
/// the reconciliation poll, and SIGHUP.
fn follow_registry(config: &ServeConfig, fleet: Arc<crate::serving::Fleet>) {
    let signal = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(crate::serving::follow(fleet, signal.clone()));
    if !config.poll_interval.is_zero() {
        let (signal, period) = (signal.clone(), config.poll_interval);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                signal.notify_one();
            }
        });
    }
    #[cfg(unix)]
    {
        let signal = signal.clone();
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        tracing::info!("SIGHUP: reconciling with the registry");
                        signal.notify_one();
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP"),
        }
    }
    if !config.no_watch {
        tokio::spawn(keep_watching(config.registry.clone(), signal));
    }
}

/// Keeps a watcher on the registry root, and puts a new one on it when the root is
/// replaced (a watch follows the directory it was put on, not the path): the root's
/// identity is checked once a second.
async fn keep_watching(root: std::path::PathBuf, signal: Arc<tokio::sync::Notify>) {
    let identity = |root: &std::path::Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(root).ok().map(|m| (m.dev(), m.ino()))
    };
    let mut watched: Option<(u64, u64)> = None;
    let mut watcher: Option<notify::RecommendedWatcher> = None;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let now = identity(&root);
        if now == watched && watcher.is_some() {
            continue;
        }
        let s = signal.clone();
        watcher = match crate::registry::watch(&root, move || s.notify_one()) {
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
        signal.notify_one();
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
