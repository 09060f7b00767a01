//! The treeserve binary: parse the command line, set up logging, run the command.

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use treeserve::cli::LogFormat;

/// `--verbose` or `TREESERVE_BACKTRACE=1`, for the panic hook installed before parsing.
static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn main() {
    quiet_on_closed_pipe();
    let cli = treeserve::cli::Cli::parse();
    let verbose = cli.verbose || std::env::var_os("TREESERVE_BACKTRACE").is_some_and(|v| v == "1");
    VERBOSE.store(verbose, std::sync::atomic::Ordering::Relaxed);
    let filter = EnvFilter::try_from_env("TREESERVE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,object_store=warn,reqwest=warn,hyper_util=warn"));
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
        if verbose {
            print_causes(&e);
        }
        std::process::exit(code);
    }
}

/// `--verbose`: the error's chain of causes, one a line, for a bug report (a cause the
/// message above already quotes is printed too: the chain is complete). treeserve's errors
/// are values that carry their causes, so there is no backtrace to add; a crash (a
/// panic) prints one.
fn print_causes(e: &dyn std::error::Error) {
    let mut cause = e.source();
    let mut depth = 1;
    while let Some(c) = cause {
        eprintln!("  cause {depth}: {c}");
        eprintln!("           {c:?}");
        cause = c.source();
        depth += 1;
    }
    eprintln!("  (treeserve {})", env!("CARGO_PKG_VERSION"));
}

/// `treeserve models | head -1`: when the reader of stdout goes away, stop quietly with
/// the status a process killed by SIGPIPE has (141), as command-line tools do, instead of
/// a panic message and a backtrace (`println!` panics on a closed pipe). Other panics are
/// reported as before.
///
/// With `--verbose` (or `TREESERVE_BACKTRACE=1`), a crash prints its backtrace even
/// without `RUST_BACKTRACE`.
fn quiet_on_closed_pipe() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        // stderr too: `treeserve train … 2>&1 | head -1` closes both.
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        report(info);
        if VERBOSE.load(std::sync::atomic::Ordering::Relaxed)
            && std::env::var_os("RUST_BACKTRACE").is_none()
        {
            eprintln!("{}", std::backtrace::Backtrace::force_capture());
        }
    }));
}
