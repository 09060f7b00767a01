//! treeserve: train tree models, keep them in a versioned registry, and serve them over
//! HTTP, fast.
//!
//! The core ([`model`], [`registry`], [`train`], [`serving`], [`protocol`]) speaks domain
//! types and never imports hyper; [`http`] is a thin adapter over it, and the binary's
//! `main` only parses the command line and calls [`cli::run`].

pub mod app;
pub mod auth;
pub mod batch;
pub mod cli;
pub mod client;
pub mod config;
pub mod data;
pub mod decimal;
pub mod error_type;
pub mod feedback;
pub mod http;
pub mod import;
pub mod lifecycle;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod name;
pub mod protocol;
pub mod registry;
pub mod report;
pub mod serving;
pub mod smoke;
pub mod stats;
pub mod train;

pub use app::Application;
pub use config::ServeConfig;
pub use model::Model;
