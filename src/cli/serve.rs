//! `treeserve serve`: a runtime, the library's [`crate::Application`], and the process's
//! shutdown signals.

use std::io::Write;

use super::CommandError;
use crate::config::ServeConfig;

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
        let app = crate::Application::build(config).await?;
        let count = signals();
        // The first stdout line: tests and scripts read the bound addresses from it (the
        // HTTP one last). One line: a reader may close the pipe after it.
        let http = if app.tls() { "https" } else { "http" };
        match app.grpc_addr() {
            Some(grpc) => println!(
                "treeserve listening on grpc://{grpc} and {http}://{}",
                app.local_addr()
            ),
            None => println!("treeserve listening on {http}://{}", app.local_addr()),
        }
        let _ = std::io::stdout().flush();
        app.run_until_stopped_or_hurried(nth_signal(count.clone(), 1), nth_signal(count, 2))
            .await;
        Ok(())
    })
}

/// Counts SIGTERM and Ctrl-C: the first stops the server, a second cuts
/// `--shutdown-delay` short.
fn signals() -> tokio::sync::watch::Receiver<u32> {
    let (tx, rx) = tokio::sync::watch::channel(0u32);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
        tokio::spawn(async move {
            loop {
                let got = tokio::select! {
                    s = term.recv() => s,
                    s = int.recv() => s,
                };
                if got.is_none() {
                    return;
                }
                tx.send_modify(|n| *n += 1);
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            tx.send_modify(|n| *n += 1);
        }
    });
    rx
}

/// Resolves at the `n`th signal counted by [`signals`].
async fn nth_signal(mut count: tokio::sync::watch::Receiver<u32>, n: u32) {
    let _ = count.wait_for(|c| *c >= n).await;
    if n == 1 {
        tracing::info!("shutting down");
    }
}
