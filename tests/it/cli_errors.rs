//! The command line's errors for people: one line without a backtrace (even with
//! `RUST_BACKTRACE=1`), what to do about a busy port or an absent server, completions, the
//! man page and exit codes, and a closed stdout.

use crate::common::*;

/// Runs `treeserve ARGS` with `RUST_BACKTRACE=1` (as many developers' shells set it),
/// expecting a user error: exit 1, one `Error:` line, no backtrace. Returns stderr.
fn user_error(args: &[&str]) -> String {
    let out = std::process::Command::new(BIN)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    let errors = stderr.lines().filter(|l| l.starts_with("Error: ")).count();
    assert_eq!(errors, 1, "{args:?}: {stderr}");
    assert!(
        !stderr.contains("acktrace") && !stderr.contains("Error {"),
        "{stderr}"
    );
    stderr
}

/// A user's mistake is one line on stderr, without a backtrace, even where the shell sets
/// `RUST_BACKTRACE=1` (as many developers' shells do).
#[test]
fn user_errors_are_one_line_without_a_backtrace() {
    let reg = tempfile::tempdir().unwrap();
    let reg = reg.path().to_str().unwrap();
    for args in [
        &["promote", "iris", "7", "--registry", reg][..],
        &["publish", "/nonexistent/model.tsm", "--registry", reg],
        &["serve", "--registry", reg, "--model", "not a name!"],
        &[
            "predict",
            "--registry",
            reg,
            "--input",
            "-",
            "--output",
            "-",
        ],
    ] {
        let stderr = user_error(args);
        let lines = stderr.lines().filter(|l| !l.trim().is_empty()).count();
        assert_eq!(lines, 1, "{args:?}: {stderr}");
    }
}

/// A busy port and an absent server are said in one line, with what to do.
#[test]
fn a_busy_port_and_an_absent_server_say_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    let free = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let models = repo().join("models");
    let cases: [(&[&str], &str); 3] = [
        (
            &[
                "serve",
                "--registry",
                models.to_str().unwrap(),
                "--listen",
                &busy,
            ],
            "--listen",
        ),
        (
            &[
                "score",
                &format!("http://{free}"),
                "--row",
                "SepalLengthCm=1",
            ],
            "treeserve serve",
        ),
        (
            &["health", "--url", &format!("http://{free}")],
            "treeserve serve",
        ),
    ];
    for (args, hint) in cases {
        assert!(user_error(args).contains(hint), "{args:?}");
    }
    drop(taken);
}

/// Shell completions and a man page from the same definitions as `--help`; `--help` lists
/// the exit codes; `publish` without `--alias` says the version is not served yet.
#[test]
fn completions_man_page_exit_codes_and_the_publish_hint() {
    let dir = tempfile::tempdir().unwrap();
    let bash = treeserve_ok(&["completions", "bash"]);
    assert!(
        bash.contains("_treeserve()") && bash.contains("--registry"),
        "{bash}"
    );
    let script = dir.path().join("treeserve.bash");
    std::fs::write(&script, &bash).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    for shell in ["zsh", "fish"] {
        assert!(
            treeserve_ok(&["completions", shell]).contains("serve"),
            "{shell}"
        );
    }
    let man = treeserve_ok(&["man"]);
    assert!(
        man.contains(".TH treeserve 1") && man.contains("predict"),
        "{man}"
    );
    assert!(treeserve_ok(&["--help"]).contains("Exit codes:\n  0    success"));

    let registry = dir.path().join("registry");
    let artifact = repo().join("models/iris/versions/1/model.tsm");
    let out = treeserve(&[
        "publish",
        artifact.to_str().unwrap(),
        "--registry",
        registry.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("treeserve promote iris 1 --alias production"),
        "{stderr}"
    );
}

/// `treeserve train ... | head -1`: a reader that goes away stops the command quietly,
/// with SIGPIPE's status (141), not a panic and a backtrace.
#[test]
fn a_closed_stdout_stops_a_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("iris.tsm");
    // The pipe's reader is gone before the command starts: its first line meets a closed
    // pipe whatever the scheduling (a reader dropped after the spawn raced the command's
    // first line on a busy machine).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = std::process::Command::new(BIN)
        .args(["train", "--data", iris_csv().to_str().unwrap()])
        .args(["--output", out.to_str().unwrap()])
        .env("RUST_BACKTRACE", "1")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}
