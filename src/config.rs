//! Server configuration: one struct, parsed from the command line (and environment).

use std::net::SocketAddr;
use std::time::Duration;

use crate::model::tree::TreeLimits;

/// Everything `treeserve serve` needs.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeConfig {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "TREESERVE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Also serve the Open Inference Protocol over gRPC (KServe's
    /// `inference.GRPCInferenceService`, what `tritonclient.grpc` calls) on this address;
    /// off unless given (8001 by convention).
    #[arg(long, env = "TREESERVE_GRPC_LISTEN")]
    pub grpc_listen: Option<SocketAddr>,

    /// Serve HTTPS (and gRPC over TLS) with this PEM certificate chain; needs --tls-key.
    /// HTTP/1.1 and HTTP/2 are chosen by ALPN. Read again when it changes (rotation
    /// without restart).
    #[arg(long, env = "TREESERVE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "TREESERVE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Remember this many recent answers (request id → inputs and predictions) so that
    /// ground truth posted to `/feedback` joins them; 0 (the default): off. Every answer
    /// over HTTP then carries an `x-request-id` (the client's, or a generated one); gRPC
    /// answers are remembered under their request's `id`.
    #[arg(long, env = "TREESERVE_FEEDBACK_WINDOW", default_value_t = 0)]
    pub feedback_window: usize,

    /// Oldest answer a label can still join.
    #[arg(long, env = "TREESERVE_FEEDBACK_MAX_AGE", default_value = "1h", value_parser = humantime::parse_duration)]
    pub feedback_max_age: Duration,

    /// Labels behind each live figure (accuracy, recall, MAE, RMSE): the most recent ones.
    #[arg(long, env = "TREESERVE_FEEDBACK_LIVE_WINDOW", default_value_t = 1000)]
    pub feedback_live_window: usize,

    /// Write every labelled row (joined or sent with its features) to CSV files in the
    /// dataset layout under DIR/MODEL/, for `treeserve retrain --watch DIR/MODEL`; needs
    /// --feedback-window.
    #[arg(long, env = "TREESERVE_FEEDBACK_DIR")]
    pub feedback_dir: Option<std::path::PathBuf>,

    /// Rows per feedback file: a file is renamed in when it has this many rows, ...
    #[arg(long, env = "TREESERVE_FEEDBACK_FILE_ROWS", default_value_t = 10_000)]
    pub feedback_file_rows: usize,

    /// ... or when it is this old (and at shutdown).
    #[arg(long, env = "TREESERVE_FEEDBACK_FILE_AGE", default_value = "10m", value_parser = humantime::parse_duration)]
    pub feedback_file_age: Duration,

    /// Also score every request the alias's version answers with this alias's version
    /// (e.g. staging), off the response path: its agreement with production, and its live
    /// accuracy from /feedback, go to /metrics; it never answers.
    #[arg(long, env = "TREESERVE_SHADOW")]
    pub shadow: Option<String>,

    /// Most rows waiting to be shadow-scored; a request that does not fit is not
    /// shadowed (and counted): the shadow never delays an answer.
    #[arg(long, env = "TREESERVE_SHADOW_QUEUE_ROWS", default_value_t = 100_000)]
    pub shadow_queue_rows: usize,

    /// Answer this share of requests with this alias's version, e.g. staging=10 (10%):
    /// `x-model-version` says which answered; its live accuracy is tracked apart.
    #[arg(long, env = "TREESERVE_CANARY")]
    pub canary: Option<crate::serving::CanarySplit>,

    /// Pick the canary by this request header (e.g. x-user-id), so that one client
    /// always gets the same version; without it (or the header), at random.
    #[arg(long, env = "TREESERVE_CANARY_KEY")]
    pub canary_key: Option<http::HeaderName>,

    /// Registry: a directory, s3://BUCKET[/PREFIX], az://CONTAINER[/PREFIX],
    /// gs://BUCKET[/PREFIX], mlflow+http(s)://HOST:PORT, or mlflow ($MLFLOW_TRACKING_URI).
    #[arg(long, env = "TREESERVE_REGISTRY", default_value = "models")]
    pub registry: crate::registry::Location,

    /// Model to serve (repeat, or separate with commas); the first one answers `/score`.
    /// By default every model in the registry that has the alias, and `/score` answers
    /// with the only one loaded at start (models published later never change it).
    #[arg(long = "model", env = "TREESERVE_MODEL", value_delimiter = ',')]
    pub models: Vec<String>,

    /// Alias to follow.
    #[arg(long, env = "TREESERVE_ALIAS", default_value = crate::registry::DEFAULT_ALIAS)]
    pub alias: String,

    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long, env = "TREESERVE_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Most rows accepted in one batch (more: 413).
    #[arg(long, env = "TREESERVE_MAX_BATCH_ROWS", default_value_t = 10_000)]
    pub max_batch_rows: usize,

    /// Time a client has to send a complete request head, counted from the connection's
    /// accept or the end of its previous response (so also the keep-alive idle timeout).
    #[arg(long, env = "TREESERVE_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,

    /// Time a client has to send a request body once its head has arrived (slower: 408).
    #[arg(long, env = "TREESERVE_BODY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub body_read_timeout: Duration,

    /// On shutdown, time in-flight requests get to finish.
    #[arg(long, env = "TREESERVE_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// On SIGTERM or Ctrl-C, keep serving this long with `/health/ready` answering 503, so
    /// load balancers stop sending traffic, before closing the listener (Kubernetes: a few
    /// seconds longer than the readiness probe's period).
    #[arg(long, env = "TREESERVE_SHUTDOWN_DELAY", default_value = "0s", value_parser = humantime::parse_duration)]
    pub shutdown_delay: Duration,

    /// Most open connections; more are answered 503 (`Retry-After: 1`) and closed.
    #[arg(long, env = "TREESERVE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Most requests at once whose work runs on blocking threads (large batches, first use
    /// of a pinned version); more are answered 503 (`Retry-After: 1`).
    #[arg(long, env = "TREESERVE_MAX_BLOCKING_REQUESTS", default_value_t = 64)]
    pub max_blocking_requests: usize,

    /// Most concurrent HTTP/2 streams per connection.
    #[arg(long, env = "TREESERVE_MAX_H2_STREAMS", default_value_t = 128)]
    pub max_h2_streams: u32,

    /// Largest request head (request line and headers; HTTP/2: the header list) in bytes;
    /// larger: 431. Also bounds what a connection holding a partial head costs.
    #[arg(long, env = "TREESERVE_MAX_HEADER_BYTES", default_value_t = 32 * 1024, value_parser = clap::value_parser!(u64).range(8192..=1 << 20))]
    pub max_header_bytes: u64,

    /// Largest tree accepted in an artifact, in nodes (larger: the version is refused).
    #[arg(long, env = "TREESERVE_MAX_TREE_NODES", default_value_t = 1 << 20)]
    pub max_tree_nodes: usize,

    /// Deepest tree accepted in an artifact.
    #[arg(long, env = "TREESERVE_MAX_TREE_DEPTH", default_value_t = 512)]
    pub max_tree_depth: usize,

    /// Most trees accepted in a forest.
    #[arg(long, env = "TREESERVE_MAX_TREES", default_value_t = 4096, value_parser = at_least_one)]
    pub max_trees: usize,

    /// Reconcile with the registry this often even without file events (`0s`: never;
    /// each wait is jittered by ±10% and backs off while the registry is unreachable).
    /// Alone, it covers file systems without inotify (NFS, some Kubernetes volumes).
    /// Default: 2s for a directory, 10s for object stores and MLflow (each poll of an
    /// unmoved alias is one small conditional request).
    #[arg(long, env = "TREESERVE_POLL_INTERVAL", value_parser = humantime::parse_duration)]
    pub poll_interval: Option<Duration>,

    /// Keep verified artifacts and the last aliases seen here: a replica that starts
    /// while the registry is unreachable serves the versions it last verified, and a
    /// restart does not download an artifact again. Created if missing.
    #[arg(long, env = "TREESERVE_CACHE_DIR")]
    pub cache_dir: Option<std::path::PathBuf>,

    /// Do not watch the registry for file events; rely on polling alone.
    #[arg(long, env = "TREESERVE_NO_WATCH")]
    pub no_watch: bool,

    /// Start even when the registry is missing or holds no model with the alias, and
    /// become ready when one appears (orchestrated starts); without it, exit 2 with a hint.
    #[arg(long, env = "TREESERVE_WAIT_FOR_MODEL")]
    pub wait_for_model: bool,

    /// Let a new version with other feature names replace the served one.
    #[arg(long, env = "TREESERVE_ALLOW_SCHEMA_CHANGE")]
    pub allow_schema_change: bool,

    /// API keys, one a line, each optionally scoped `score` or `admin` (none: admin):
    /// every route but the probes then needs `Authorization: Bearer KEY` or
    /// `x-api-key: KEY`. Read again when the file changes (rotation without a restart).
    #[arg(long, env = "TREESERVE_API_KEYS_FILE")]
    pub api_keys_file: Option<std::path::PathBuf>,

    /// With --api-keys-file: leave `/metrics` open (a Prometheus scraping without a key).
    #[arg(long, env = "TREESERVE_METRICS_OPEN")]
    pub metrics_open: bool,

    /// Turn off recording of request metrics, predictions and drift (for measuring their
    /// cost; `/metrics` still answers).
    #[arg(long, env = "TREESERVE_NO_METRICS")]
    pub no_metrics: bool,

    /// Sliding window over which the drift PSI is computed.
    #[arg(long, env = "TREESERVE_DRIFT_WINDOW", default_value = "5m", value_parser = humantime::parse_duration)]
    pub drift_window: Duration,

    /// Rows the drift window must hold before a PSI is exported.
    #[arg(long, env = "TREESERVE_DRIFT_MIN_ROWS", default_value_t = 100)]
    pub drift_min_rows: u64,

    /// Pinned versions (`/v2/models/M/versions/V/...`) kept loaded per model besides the
    /// alias's; the least recently used is dropped first.
    #[arg(long, env = "TREESERVE_PINNED_VERSIONS", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub pinned_versions: u64,

    /// Most bytes of artifacts kept loaded as pinned versions per model (besides the
    /// alias's); the least recently used is dropped first.
    #[arg(long, env = "TREESERVE_PINNED_BYTES", default_value_t = 256 << 20)]
    pub pinned_bytes: u64,

    /// Worker threads of the runtime (default: one per core).
    #[arg(long, env = "TREESERVE_WORKERS")]
    pub workers: Option<usize>,
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

impl ServeConfig {
    /// The feedback record's options, when `--feedback-window` is on.
    pub fn feedback(&self) -> Option<crate::feedback::FeedbackOptions> {
        (self.feedback_window > 0).then_some(crate::feedback::FeedbackOptions {
            window: self.feedback_window,
            max_age: self.feedback_max_age,
            live_window: self.feedback_live_window,
        })
    }

    /// The feedback files' options, with `--feedback-dir`.
    pub fn feedback_files(&self) -> Option<crate::feedback::FilesOptions> {
        self.feedback_dir
            .as_ref()
            .map(|dir| crate::feedback::FilesOptions {
                dir: dir.clone(),
                rows: self.feedback_file_rows.max(1),
                age: self.feedback_file_age,
            })
    }

    /// `--poll-interval`, or its default for the registry: 2 s for a directory (file
    /// events do most of the work), 10 s for a remote registry.
    pub fn poll_interval(&self) -> Duration {
        self.poll_interval.unwrap_or(match self.registry {
            crate::registry::Location::Dir(_) => Duration::from_secs(2),
            _ => Duration::from_secs(10),
        })
    }

    /// A configuration with the defaults, for `registry`.
    pub fn new(registry: impl Into<crate::registry::Location>) -> Self {
        Self {
            listen: ([127, 0, 0, 1], 8080).into(),
            grpc_listen: None,
            tls_cert: None,
            tls_key: None,
            feedback_window: 0,
            feedback_max_age: Duration::from_secs(3600),
            feedback_live_window: 1000,
            feedback_dir: None,
            feedback_file_rows: 10_000,
            feedback_file_age: Duration::from_secs(600),
            shadow: None,
            shadow_queue_rows: 100_000,
            canary: None,
            canary_key: None,
            registry: registry.into(),
            models: Vec::new(),
            alias: crate::registry::DEFAULT_ALIAS.into(),
            max_body_bytes: 1024 * 1024,
            max_batch_rows: 10_000,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            shutdown_delay: Duration::ZERO,
            max_connections: 10_000,
            max_blocking_requests: 64,
            max_h2_streams: 128,
            max_header_bytes: 32 * 1024,
            max_tree_nodes: 1 << 20,
            max_tree_depth: 512,
            max_trees: 4096,
            poll_interval: None,
            cache_dir: None,
            api_keys_file: None,
            metrics_open: false,
            no_watch: false,
            wait_for_model: false,
            allow_schema_change: false,
            no_metrics: false,
            drift_window: Duration::from_secs(300),
            drift_min_rows: 100,
            pinned_versions: 16,
            pinned_bytes: 256 << 20,
            workers: None,
        }
    }

    /// How each model's catalog loads and keeps versions.
    pub fn catalog_options(&self) -> crate::serving::CatalogOptions {
        crate::serving::CatalogOptions {
            alias: self.alias.clone(),
            limits: self.tree_limits(),
            allow_schema_change: self.allow_schema_change,
            pinned_versions: self.pinned_versions as usize,
            pinned_bytes: self.pinned_bytes,
            shadow: self.shadow.clone(),
            canary: self.canary.clone(),
        }
    }

    /// Limits applied to artifacts.
    pub fn tree_limits(&self) -> TreeLimits {
        TreeLimits {
            max_nodes: self.max_tree_nodes,
            max_depth: self.max_tree_depth,
            max_trees: self.max_trees,
        }
    }
}
