//! Integration tests: the real binary, started on port 0 with a fresh registry, spoken to
//! over HTTP; and the library's artifact, registry and training code.

mod architecture;
mod artifact;
mod batches;
mod bounds;
mod cli;
mod cli_safety;
mod clients;
mod common;
mod feedback;
mod first_hour;
mod fleet;
mod gate;
mod grpc;
mod hostile;
mod import;
mod import_docs;
mod import_fixtures;
mod keys;
mod lifecycle;
mod no_5xx;
mod objstore;
mod observe;
mod protocols;
mod readme;
mod registry;
mod registry_mlflow;
mod regression;
mod score;
mod server;
mod sides;
mod stores;
mod swap;
mod tls;
mod train_classes;
mod v2;
