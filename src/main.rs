//! The treeserve binary: parse the command line, set up logging, run the command.

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use treeserve::cli::LogFormat;

fn main() {
    quiet_on_closed_pipe();
    let cli = treeserve::cli::Cli::parse();
    let filter =
        EnvFilter::try_from_env("TREESERVE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }
    if let Err(e) = treeserve::cli::run(cli) {
        let code = e.exit_code();
        if matches!(e, treeserve::cli::CommandError::ClosedPipe) {
            // The output's reader went away: nothing to say (see quiet_on_closed_pipe).
            std::process::exit(code);
        }
        // Display, not Debug: one line for people, and no backtrace even where
        // RUST_BACKTRACE=1 is set (every variant says its cause in its message).
        eprintln!("Error: {e}");
        std::process::exit(code);
    }
}

/// `treeserve models | head -1`: when the reader of stdout goes away, stop quietly with
/// the status a process killed by SIGPIPE has (141), as command-line tools do, instead of
/// a panic message and a backtrace (`println!` panics on a closed pipe). Other panics are
/// reported as before.
fn quiet_on_closed_pipe() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        report(info);
    }));
}
