//! `treeserve completions SHELL` and `treeserve man`: shell completions and a man page,
//! generated from the same clap definitions as `--help` (as ripgrep and fd ship them).

use clap::CommandFactory;

use super::{Cli, CommandError};

/// `treeserve completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell, e.g. `treeserve completions bash > /etc/bash_completion.d/treeserve`.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Prints the completion script for a shell.
pub(super) fn completions(a: CompletionsArgs) -> Result<(), CommandError> {
    let mut cmd = Cli::command();
    // Into memory first: `generate` panics when its writer fails (`... | head`).
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "treeserve", &mut out);
    super::print_out(&out)
}

/// Prints the man page (roff), e.g. `treeserve man > /usr/local/share/man/man1/treeserve.1`.
pub(super) fn man() -> Result<(), CommandError> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|source| CommandError::Io {
            path: "man page".into(),
            source,
        })?;
    super::print_out(&out)
}
