//! Following the registry (vector's watcher and controller): one reload task reconciles
//! the fleet with the registry; the file watcher, the reconciliation poll and SIGHUP only
//! signal it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{Fleet, FleetReport, LoadError, Reloaded};
use crate::registry::RegistryError;

/// What signals the reload task.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// Reconcile this often even without a signal (zero: never).
    pub poll_interval: Duration,
    /// Watch the registry's directory for file events, if it is local
    /// ([`crate::registry::Registry::local_dir`]); else polling alone.
    pub watch: bool,
    /// Reconcile on SIGHUP.
    pub sighup: bool,
}

/// The running reload task and its signals; stopped when dropped.
#[derive(Debug)]
pub struct Follower {
    signal: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

impl Follower {
    /// Starts the reload task of `fleet` and what signals it; `log` remembers what was
    /// already said (e.g. by the first load). Call within a runtime.
    pub fn spawn(fleet: Arc<Fleet>, opts: &FollowOptions, log: ReloadLog) -> Self {
        let signal = Arc::new(Notify::new());
        let watch = opts
            .watch
            .then(|| fleet.registry().local_dir().map(PathBuf::from))
            .flatten();
        let metrics = fleet.metrics().clone();
        let mut tasks = vec![tokio::spawn(reload_task(fleet, signal.clone(), log))];
        if !opts.poll_interval.is_zero() {
            let (signal, period) = (signal.clone(), opts.poll_interval);
            tasks.push(tokio::spawn(async move {
                let mut jitter = Jitter::new();
                let mut down = 0u32;
                loop {
                    tokio::time::sleep(poll_wait(period, down, jitter.next())).await;
                    signal.notify_one();
                    down = if metrics.registry_is_up() {
                        0
                    } else {
                        down.saturating_add(1)
                    };
                }
            }));
        }
        #[cfg(unix)]
        if opts.sighup {
            use tokio::signal::unix::{SignalKind, signal as unix_signal};
            match unix_signal(SignalKind::hangup()) {
                Ok(mut hup) => {
                    let signal = signal.clone();
                    tasks.push(tokio::spawn(async move {
                        while hup.recv().await.is_some() {
                            tracing::info!("SIGHUP: reconciling with the registry");
                            signal.notify_one();
                        }
                    }));
                }
                Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP"),
            }
        }
        if let Some(root) = watch {
            let s = signal.clone();
            let notify: Arc<dyn Fn() + Send + Sync> = Arc::new(move || s.notify_one());
            tasks.push(tokio::spawn(crate::registry::keep_watching(root, notify)));
        }
        Self { signal, tasks }
    }

    /// A handle that asks the reload task for a reconciliation.
    pub fn reloader(&self) -> Reloader {
        Reloader(self.signal.clone())
    }
}

/// The wait before the next poll: `period` scaled by `unit` (in [0, 1): ±10%), doubled
/// for each poll in a row that found the registry unreachable (at most 8×, and at most
/// 60 s unless `period` is longer), so a fleet neither polls in lockstep nor hammers a
/// registry that is down.
pub fn poll_wait(period: Duration, down: u32, unit: f64) -> Duration {
    let backoff = period.saturating_mul(1 << down.min(3));
    let capped = backoff.min(period.max(Duration::from_secs(60)));
    capped.mul_f64(0.9 + 0.2 * unit.clamp(0.0, 1.0))
}

/// A small pseudo-random sequence in [0, 1), seeded per process and task (xorshift):
/// enough to spread a fleet's polls.
struct Jitter(u64);

impl Jitter {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self((nanos ^ (u64::from(std::process::id()) << 32)) | 1)
    }

    fn next(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Asks the reload task to reconcile with the registry now, as a file event, the poll or
/// SIGHUP do (requests coalesce).
#[derive(Debug, Clone)]
pub struct Reloader(Arc<Notify>);

impl Reloader {
    /// Signals the reload task.
    pub fn reload(&self) {
        self.0.notify_one();
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_are_jittered_and_back_off_while_the_registry_is_down() {
        let s = Duration::from_secs(10);
        assert_eq!(poll_wait(s, 0, 0.5), s);
        assert_eq!(poll_wait(s, 0, 0.0), Duration::from_secs(9));
        assert_eq!(poll_wait(s, 1, 0.5), Duration::from_secs(20));
        assert_eq!(poll_wait(s, 9, 0.5), Duration::from_secs(60));
        assert_eq!(
            poll_wait(Duration::from_secs(100), 3, 0.5),
            Duration::from_secs(100)
        );
        let mut j = Jitter::new();
        let v: Vec<f64> = (0..1000).map(|_| j.next()).collect();
        assert!(v.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(v.iter().any(|x| *x < 0.1) && v.iter().any(|x| *x > 0.9));
    }
}

/// The reload task: waits for signals and reconciles on a blocking thread, one
/// reconciliation at a time. Signals that arrive during one coalesce into one more,
/// which re-reads the aliases: the last published state wins.
async fn reload_task(fleet: Arc<Fleet>, signal: Arc<Notify>, mut log: ReloadLog) {
    loop {
        signal.notified().await;
        let f = fleet.clone();
        match tokio::task::spawn_blocking(move || f.reload()).await {
            Ok(report) => log.log(&report),
            Err(e) => tracing::error!(error = %e, "reload task panicked"),
        }
    }
}

/// Logs swaps and failures of reconciliations. A failure that repeats (a missing alias
/// polled every two seconds) is logged once, until it changes or the model recovers.
#[derive(Debug, Default)]
pub struct ReloadLog {
    /// The last failure logged, per model ("" for listing the registry).
    said: HashMap<String, String>,
}

impl ReloadLog {
    /// Logs what one reconciliation did that was not said already.
    pub fn log(&mut self, report: &FleetReport) {
        match &report.discovery {
            Some(e) => {
                if self.first_time("", e.to_string()) {
                    tracing::warn!(error = %e, "cannot list the registry's models; serving the same set (said once until it changes)");
                }
            }
            None => {
                self.said.remove("");
            }
        }
        for (model, result) in &report.models {
            match result {
                Ok(r) => {
                    if self.said.remove(model).is_some() {
                        tracing::info!(model, "reload works again");
                    }
                    if let Reloaded::Swapped { from, to } = r {
                        tracing::info!(model, from = ?from, to, "now serving a new version")
                    }
                }
                Err(e) => {
                    if self.first_time(model, e.to_string()) {
                        let hint = hint(e);
                        tracing::warn!(model, error = %e, reason = e.reason(), hint, "reload failed; still serving the current version, if any (said once until it changes)")
                    }
                }
            }
        }
    }

    /// Whether `error` is new for `key` (and remembers it).
    fn first_time(&mut self, key: &str, error: String) -> bool {
        if self.said.get(key) == Some(&error) {
            return false;
        }
        self.said.insert(key.to_owned(), error);
        true
    }
}

/// What to do about a load failure, when there is something to say.
fn hint(e: &LoadError) -> String {
    match e {
        LoadError::Registry(RegistryError::AliasNotFound { model, alias }) => format!(
            "point the alias at a version: treeserve promote {model} VERSION --alias {alias}"
        ),
        LoadError::Registry(RegistryError::ModelNotFound(model)) => format!(
            "publish a version: treeserve publish MODEL.tsm (an artifact of {model}) --alias ALIAS"
        ),
        LoadError::SchemaChange { .. } => "restart with --allow-schema-change to serve it".into(),
        _ => String::new(),
    }
}
