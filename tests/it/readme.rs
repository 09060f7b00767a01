//! The README's "Five minutes with your own model" walkthrough, run as written: its shell
//! blocks, in order, in one bash in an empty directory, with the binary under test first
//! on `PATH`. A command followed by `# ...` comment lines must print exactly those lines.

use std::process::Command;

use crate::common::*;

const HEADING: &str = "## Five minutes with your own model";

/// The walkthrough as one bash script: the `sh` blocks under [`HEADING`], each command
/// followed by `# expected output` lines turned into a check of that output.
fn script(readme: &str) -> String {
    let start = readme.find(HEADING).expect("the walkthrough heading");
    let section = &readme[start + HEADING.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut out = String::new();
    for (lang, text) in crate::import_docs::blocks(section) {
        assert_eq!(lang, "sh", "a block of the walkthrough that is not sh");
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let command = lines[i];
            let expected: Vec<&str> = lines[i + 1..]
                .iter()
                .map_while(|l| l.strip_prefix("# "))
                .collect();
            if expected.is_empty() {
                out.push_str(command);
                out.push('\n');
            } else {
                out.push_str(&format!(
                    "out=$({command})\nwant=$(cat <<'README_EOF'\n{}\nREADME_EOF\n)\n\
                     [ \"$out\" = \"$want\" ] || {{ printf 'README: %s\\nprinted:  %s\\nexpected: %s\\n' \
                     {command:?} \"$out\" \"$want\" >&2; exit 1; }}\n",
                    expected.join("\n")
                ));
            }
            i += 1 + expected.len();
        }
    }
    out
}

#[test]
fn the_five_minute_walkthrough_runs_as_written() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let walkthrough = script(&readme);
    assert!(walkthrough.contains("treeserve serve"), "{walkthrough}");
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The harness around the README's lines: stop at the first failure, and never leave
    // the background server behind (also when `timeout` ends the script).
    let full = format!(
        "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\ntrap 'exit 1' TERM\n{walkthrough}"
    );
    let out = Command::new("timeout")
        .args(["120", "bash", "-c", &full])
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("TREESERVE_REGISTRY")
        .env_remove("TREESERVE_LISTEN")
        .env("TREESERVE_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{full}\nexit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("my-models/pumps").is_dir());
}

/// The harness checks printed output: a wrong expectation fails the walkthrough.
#[test]
fn a_walkthrough_line_with_a_wrong_expected_output_fails() {
    let doc = format!("{HEADING}\n\n```sh\necho hello\n# goodbye\n```\n");
    let out = Command::new("bash")
        .args(["-c", &format!("set -euo pipefail\n{}", script(&doc))])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected: goodbye"));
    let doc = doc.replace("goodbye", "hello");
    let ok = Command::new("bash")
        .args(["-c", &format!("set -euo pipefail\n{}", script(&doc))])
        .status()
        .unwrap();
    assert!(ok.success());
}
