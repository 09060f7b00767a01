//! The serving application (zero-to-production's `startup.rs`): [`Application::build`]
//! binds, loads the models, and starts following the registry and the drift ticker;
//! [`Application::run_until_stopped`] serves until a shutdown future resolves. The CLI
//! serves this way, as can a test or an embedding program (the in-process benchmark
//! builds the same state with [`AppState::new`], without a socket):
//!
//! ```no_run
//! # async fn serve() -> Result<(), treeserve::http::ServeError> {
//! let mut config = treeserve::ServeConfig::new(std::path::Path::new("models"));
//! config.listen = "127.0.0.1:0".parse().unwrap();
//! let app = treeserve::Application::build(config).await?;
//! println!("listening on port {}", app.port());
//! app.run_until_stopped(async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::ServeConfig;
use crate::http::{AppState, ServeError, Server};
use crate::serving::{Fleet, FollowOptions, Follower, ReloadLog, Reloader};

/// A bound server with its models loaded (or being retried) and its background tasks
/// running.
pub struct Application {
    server: Server,
    follower: Follower,
    drift: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Binds `config.listen`, loads every served model once (a model that fails is
    /// logged and retried; `/health/ready` says whether all are loaded), registers the
    /// model metrics, and starts following the registry (file events unless
    /// `--no-watch`, the poll, SIGHUP) and the drift ticker. Call within a runtime.
    ///
    /// Unless `config.wait_for_model`, a local registry that does not exist, or a first
    /// load that leaves nothing served, is [`ServeError::NothingToServe`].
    pub async fn build(config: ServeConfig) -> Result<Self, ServeError> {
        if let Some(bad) = config.models.iter().find(|n| !crate::name::valid_name(n)) {
            return Err(ServeError::InvalidModelName(bad.clone()));
        }
        if !config.wait_for_model {
            missing_registry(&config)?;
        }
        let registry = crate::registry::open(&config.registry)?;
        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir).map_err(|source| crate::registry::RegistryError::Io {
                op: "create the cache directory (--cache-dir)",
                path: dir.display().to_string(),
                source,
            })?;
        }
        feedback_dir(&config)?;
        let keys = match &config.api_keys_file {
            Some(path) => Some(Arc::new(
                crate::auth::KeyFile::open(path).map_err(ServeError::ApiKeys)?,
            )),
            None => None,
        };
        let mut state = AppState::new(config, registry);
        if let Some(keys) = keys {
            tracing::info!(
                file = %keys.path().display(),
                keys = keys.keys().len(),
                "API keys required on every route but the probes"
            );
            follow_keys(keys.clone());
            state = state.with_keys(keys);
        }
        if let (Some(cert), Some(key)) =
            (state.config.tls_cert.clone(), state.config.tls_key.clone())
        {
            state = with_tls(state, &cert, &key)?;
        }
        let state = Arc::new(state);
        let server = Server::bind(state.clone()).await?;
        let fleet = state.fleet().clone();
        let first = fleet.clone();
        let mut log = ReloadLog::default();
        match tokio::task::spawn_blocking(move || first.reload()).await {
            Ok(report) => {
                log.log(&report);
                if !state.config.wait_for_model {
                    nothing_served(&fleet, &state.config, report.discovery.as_ref())?;
                }
                log_first_load(&fleet, &state.config);
            }
            Err(e) => tracing::error!(error = %e, "model load task failed"),
        }
        let config = &state.config;
        state
            .metrics
            .register(Box::new(crate::stats::ModelCollector::new(
                fleet.clone(),
                config.drift_min_rows,
            )));
        let drift = tokio::spawn(drift_ticks(fleet.clone(), config.drift_window));
        let follower = Follower::spawn(
            fleet,
            &FollowOptions {
                poll_interval: config.poll_interval(),
                watch: !config.no_watch,
                sighup: true,
            },
            log,
        );
        Ok(Self {
            server,
            follower,
            drift,
        })
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Whether the server speaks TLS (`--tls-cert`).
    pub fn tls(&self) -> bool {
        self.state().config.tls_cert.is_some()
    }

    /// The gRPC address bound, with `--grpc-listen`.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.server.grpc_addr()
    }

    /// The port bound (the one picked when the configuration said port 0).
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The shared state (the fleet, metrics, configuration).
    pub fn state(&self) -> &Arc<AppState> {
        self.server.state()
    }

    /// A handle that asks the reload task to reconcile with the registry now; it
    /// outlives [`Application::run_until_stopped`]'s taking of the application.
    pub fn reloader(&self) -> Reloader {
        self.follower.reloader()
    }

    /// Serves until `shutdown` resolves; then the server is not ready any more
    /// (`/health/ready` answers 503) while it keeps serving for `--shutdown-delay`, stops
    /// accepting, and gives in-flight requests `--shutdown-grace`.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send) {
        self.run_until_stopped_or_hurried(shutdown, std::future::pending())
            .await;
    }

    /// The same, and `hurry` resolving cuts `--shutdown-delay` short (the CLI: a second
    /// SIGTERM or Ctrl-C).
    pub async fn run_until_stopped_or_hurried(
        self,
        shutdown: impl Future<Output = ()> + Send,
        hurry: impl Future<Output = ()> + Send,
    ) {
        let Self {
            server,
            follower,
            drift,
        } = self;
        let state = server.state().clone();
        let feedback = state.scoring.feedback().cloned();
        server
            .run(async move {
                shutdown.await;
                state.fleet().drain();
                let delay = state.config.shutdown_delay;
                if !delay.is_zero() {
                    tracing::info!(
                        ?delay,
                        "draining: /health/ready answers 503 while still serving"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = hurry => tracing::info!("asked again: not waiting out the delay"),
                    }
                }
            })
            .await;
        drop(follower);
        drift.abort();
        if let Some(feedback) = feedback.filter(|f| f.files().is_some()) {
            // The open feedback files are completed (renamed in) before the process ends.
            let flush = move || {
                if let Some(files) = feedback.files() {
                    files.flush(Duration::from_secs(10));
                }
            };
            let _ = tokio::task::spawn_blocking(flush).await;
        }
        tracing::info!("stopped");
    }
}

/// Makes `--feedback-dir` (which needs `--feedback-window`).
fn feedback_dir(config: &ServeConfig) -> Result<(), ServeError> {
    let Some(dir) = &config.feedback_dir else {
        return Ok(());
    };
    if config.feedback_window == 0 {
        return Err(ServeError::FeedbackDir(
            "needs --feedback-window N (the answers labels join)".into(),
        ));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| ServeError::FeedbackDir(format!("{}: cannot create it: {e}", dir.display())))
}

/// `state` serving HTTPS with the pair, which is then followed for rotation.
#[cfg(feature = "tls")]
fn with_tls(
    state: AppState,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<AppState, ServeError> {
    let certs = Arc::new(crate::http::Certs::open(cert, key).map_err(ServeError::Tls)?);
    crate::http::tls_follow(certs.clone());
    tracing::info!(cert = %cert.display(), "serving TLS; the files are read again when they change");
    Ok(state.with_tls(certs))
}

#[cfg(not(feature = "tls"))]
fn with_tls(_: AppState, _: &std::path::Path, _: &std::path::Path) -> Result<AppState, ServeError> {
    Err(ServeError::Tls(
        "--tls-cert: this treeserve was built without TLS (cargo feature `tls`); rebuild with it, \
         or end TLS in front of the server"
            .into(),
    ))
}

/// Without `--wait-for-model`: a local registry that does not exist is a mistake (a
/// misspelled `--registry`), said before anything starts.
fn missing_registry(config: &ServeConfig) -> Result<(), ServeError> {
    let Some(dir) = config.registry.dir() else {
        return Ok(());
    };
    let reg = dir.display();
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(ServeError::NothingToServe(format!(
            "registry {reg} is not a directory: pass the registry's directory with --registry"
        ))),
        Err(_) => Err(ServeError::NothingToServe(format!(
            "registry {reg} does not exist: check --registry (or TREESERVE_REGISTRY), publish a \
             model there with `treeserve publish FILE.tsm --registry {reg} --alias {}`, or pass \
             --wait-for-model to wait for one",
            config.alias
        ))),
    }
}

/// Without `--wait-for-model`: the first load leaving nothing served is a mistake (no
/// model has the alias, or none loads), said at once instead of answering 503 forever.
fn nothing_served(
    fleet: &Fleet,
    config: &ServeConfig,
    discovery: Option<&crate::registry::RegistryError>,
) -> Result<(), ServeError> {
    let models = fleet.models();
    if models.iter().any(|c| c.current().is_some()) {
        return Ok(());
    }
    if !fleet.metrics().registry_is_up() {
        let why = discovery.map_or_else(String::new, |e| format!(" ({e})"));
        return Err(ServeError::NothingToServe(format!(
            "registry {} cannot be reached{why} and nothing is cached for alias {}: check the registry and its credentials, pass --cache-dir so replicas can start from the versions they last verified, or pass --wait-for-model to wait for it",
            config.registry, config.alias
        )));
    }
    let (reg, alias) = (&config.registry, &config.alias);
    let names: Vec<&str> = models.iter().map(|c| c.name()).collect();
    Err(ServeError::NothingToServe(if names.is_empty() {
        format!(
            "no model in {reg} has alias {alias}: publish one with `treeserve publish FILE.tsm \
             --registry {reg} --alias {alias}` or `treeserve promote NAME VERSION --registry \
             {reg} --alias {alias}`, or pass --wait-for-model to wait for one"
        )
    } else {
        format!(
            "no version of {} in {reg} could be served under alias {alias} (the log above says \
             why): promote a version that loads with `treeserve promote NAME VERSION --registry \
             {reg} --alias {alias}`, or pass --wait-for-model to wait for one",
            names.join(", ")
        )
    }))
}

/// Says what the first load left served.
fn log_first_load(fleet: &Fleet, config: &ServeConfig) {
    let models = fleet.models();
    let loaded: Vec<String> = models
        .iter()
        .filter_map(|c| {
            c.current()
                .map(|s| format!("{}@{}", c.name(), s.version_text))
        })
        .collect();
    if fleet.ready() {
        tracing::info!(models = ?loaded, "models loaded");
    } else if models.iter().next().is_none() {
        let error = format!(
            "no model in registry {} has alias {:?}",
            config.registry, config.alias
        );
        let hint = format!(
            "treeserve publish FILE.tsm --registry {} --alias {}",
            config.registry, config.alias
        );
        tracing::warn!(
            error,
            hint,
            "waiting for a model (--wait-for-model); /health/ready answers 503 until one is served"
        )
    } else {
        tracing::error!(models = ?loaded, "no model loaded yet for every model required; /health/ready answers 503")
    }
}

/// Snapshots the served models' bin counts ten times per drift window, so the PSI covers
/// the last window.
async fn drift_ticks(fleet: Arc<Fleet>, window: Duration) {
    let period = (window / 10).max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        for catalog in fleet.models_full().iter() {
            if let Some(served) = catalog.current() {
                served.stats.tick(window);
            }
        }
    }
}

/// Reads the keys file again each second when it changed (a thread of its own: the read
/// is file I/O, kept off the runtime). A broken file keeps the keys in use, logged once.
fn follow_keys(keys: Arc<crate::auth::KeyFile>) {
    std::thread::Builder::new()
        .name("treeserve-keys".into())
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                match keys.refresh() {
                    Ok(Some(n)) => tracing::info!(keys = n, "API keys file changed: reloaded"),
                    Ok(None) => {}
                    Err(e) => tracing::error!(
                        error = %e,
                        "API keys file changed but cannot be used; the previous keys stay"
                    ),
                }
            }
        })
        .expect("start the keys thread");
}
