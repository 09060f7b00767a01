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
        // The first stdout line: tests and scripts read the bound address from it.
        println!("treeserve listening on http://{}", app.local_addr());
        let _ = std::io::stdout().flush();
        app.run_until_stopped(shutdown_signal()).await;
        Ok(())
    })
}

/// Resolves on SIGTERM or Ctrl-C.
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
