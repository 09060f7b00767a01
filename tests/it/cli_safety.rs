//! The CLI as a careless operator meets it: `predict --output` onto links, devices,
//! FIFOs and directories; output piped into a reader that goes away (`| head`); error
//! lines; a second SIGTERM during `--shutdown-delay`.

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// `treeserve predict` of the shipped IRIS CSV with the shipped model into `output`.
fn predict_into(output: &Path) -> Output {
    let models = repo().join("models");
    treeserve(&[
        "predict",
        "--registry",
        models.to_str().unwrap(),
        "--input",
        iris_csv().to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ])
}

fn assert_predicted(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Through a symbolic link the target gets the predictions; the link stays a link.
#[test]
fn predict_output_through_a_symlink_writes_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.csv");
    std::fs::write(&target, "old\n").unwrap();
    let link = dir.path().join("link.csv");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert_predicted(&predict_into(&link));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let written = std::fs::read_to_string(&target).unwrap();
    assert!(written.starts_with("Id,predicted_species\n"), "{written}");
    assert_eq!(written.lines().count(), 151);
}

/// A link to a character device (`/dev/null`, which the command as root once replaced
/// with a regular file) is written through; neither the link nor the device changes.
#[test]
fn predict_output_to_a_device_writes_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("null.csv");
    std::os::unix::fs::symlink("/dev/null", &link).unwrap();
    assert_predicted(&predict_into(&link));
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("/dev/null"));
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert!(!dir.path().join("null.csv.partial").exists());
}

/// A link that resolves to no path, as `/dev/stdout` → `/proc/self/fd/1` → `pipe:[…]`
/// with stdout a pipe, is written through (it was once refused as a link to nothing).
#[test]
fn predict_output_through_a_link_to_a_pipe_writes_the_pipe() {
    let dir = tempfile::tempdir().unwrap();
    // Like /dev/stdout, but in the temporary directory.
    let link = dir.path().join("stdout.csv");
    std::os::unix::fs::symlink("/proc/self/fd/1", &link).unwrap();
    let out = predict_into(&link);
    assert_predicted(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Id,predicted_species\n"), "{text}");
    assert_eq!(text.lines().count(), 151);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

/// A FIFO is written through (a reader gets the rows), not replaced by a file.
#[test]
fn predict_output_to_a_fifo_writes_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("out.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // Read and write: opening does not wait for a writer, and the pipe's buffer (64 KiB)
    // holds IRIS's predictions (about 3 KB) until the command is done.
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    assert_predicted(&predict_into(&fifo));
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo(),
        "the FIFO was replaced"
    );
    let mut buf = vec![0u8; 1 << 16];
    let n = reader.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("Id,predicted_species\n"), "{text}");
    assert_eq!(text.lines().count(), 151);
}

/// A directory and a dangling link are refused in one line; nothing is created.
#[test]
fn predict_output_refuses_a_directory_and_a_dangling_link() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let dangling = dir.path().join("dangling.csv");
    std::os::unix::fs::symlink(dir.path().join("nothing/here.csv"), &dangling).unwrap();
    for (path, needle) in [
        (&sub, "a directory"),
        (&dangling, "a symbolic link to nothing"),
    ] {
        let out = predict_into(path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    assert!(sub.is_dir() && std::fs::read_dir(&sub).unwrap().next().is_none());
    assert!(
        std::fs::symlink_metadata(&dangling)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(!dir.path().join("nothing").exists());
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

/// A link planted at `OUTPUT.partial` is not followed: its target keeps its bytes.
#[test]
fn predict_does_not_write_through_a_planted_partial_link() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep me\n").unwrap();
    let out = dir.path().join("out.csv");
    std::os::unix::fs::symlink(&victim, dir.path().join("out.csv.partial")).unwrap();
    assert_predicted(&predict_into(&out));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 151);
}

/// The smallest XGBoost model: one stump, `a < 0.5` → 1, else 2 (a regressor).
const XGBOOST_STUMP: &str = r#"{"learner":{"attributes":{},"feature_names":["a","b"],"feature_types":["float","float"],"gradient_booster":{"model":{"gbtree_model_param":{"num_parallel_tree":"1","num_trees":"1"},"iteration_indptr":[],"tree_info":[0],"trees":[{"base_weights":[0E0,0E0,0E0],"categories":[],"categories_nodes":[],"categories_segments":[],"categories_sizes":[],"default_left":[1,0,0],"id":0,"left_children":[1,-1,-1],"loss_changes":[0E0,0E0,0E0],"parents":[0,0,0],"right_children":[2,-1,-1],"split_conditions":[0.5,1.0,2.0],"split_indices":[0,0,0],"split_type":[0,0,0],"sum_hessian":[0E0,0E0,0E0],"tree_param":{"num_deleted":"0","num_feature":"2","num_nodes":"3","size_leaf_vector":"1"}}]},"name":"gbtree"},"learner_model_param":{"base_score":"0","boost_from_average":"1","num_class":"0","num_feature":"2","num_target":"1"},"objective":{"name":"reg:squarederror"}},"version":[3,4,1]}"#;

/// `import --output` (the sibling of `predict --output`) also writes through a link to
/// its target and through a device, never replacing either.
#[test]
fn import_output_writes_through_links_and_devices() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.json");
    std::fs::write(&model, XGBOOST_STUMP).unwrap();
    let target = dir.path().join("target.tsm");
    std::fs::write(&target, "old").unwrap();
    let link = dir.path().join("link.tsm");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let null = dir.path().join("null.tsm");
    std::os::unix::fs::symlink("/dev/null", &null).unwrap();
    for out in [&link, &null] {
        treeserve_ok(&[
            "import",
            model.to_str().unwrap(),
            "--name",
            "m",
            "--output",
            out.to_str().unwrap(),
        ]);
        assert!(
            std::fs::symlink_metadata(out)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
    assert!(std::fs::read(&target).unwrap().len() > 100);
    assert_eq!(std::fs::read_link(&null).unwrap(), Path::new("/dev/null"));
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

/// Runs `treeserve ARGS` with stdout a pipe whose reader is already gone (closed after
/// the spawn instead, a short output could fit the pipe first: `man` once exited 0).
fn with_closed_stdout(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove("TREESERVE_REGISTRY")
        .stdout(reader_gone())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Every command writing to stdout stops quietly (status 141, as when killed by
/// SIGPIPE, nothing on stderr) when the reader goes away: `data list | head`, `models`,
/// `completions` (once a panic with a backtrace), `man`, `predict --output -` (once an
/// error line).
#[test]
fn every_command_stops_quietly_when_its_reader_goes_away() {
    let reg = TestRegistry::new();
    reg.add_iris_dataset(&iris_csv());
    let models = repo().join("models");
    let models = models.to_str().unwrap();
    let iris = iris_csv();
    let iris = iris.to_str().unwrap();
    for args in [
        &["data", "list", "--registry", reg.arg()][..],
        &["models", "--registry", models],
        &["models", "--json", "--registry", models],
        &["completions", "bash"],
        &["man"],
        &[
            "predict",
            "--registry",
            models,
            "--input",
            iris,
            "--output",
            "-",
        ],
    ] {
        let out = with_closed_stdout(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
    }
}

/// A failing command says one line, `Error: ` and the message once: no `Caused by:`
/// section repeating it (as the anyhow-based printing did), no backtrace, even with
/// RUST_BACKTRACE=1.
#[test]
fn an_error_is_said_once_on_one_line() {
    let reg = TestRegistry::new();
    let garbage = reg.path().join("garbage.tsm");
    std::fs::write(&garbage, "garbage").unwrap();
    let garbage = garbage.to_str().unwrap();
    for args in [
        &["publish", garbage, "--registry", reg.arg()][..],
        &["publish", "/nonexistent/model.tsm", "--registry", reg.arg()],
        &["train", "--data", "/nonexistent.csv", "--output", garbage],
        &[
            "data",
            "add",
            "/nonexistent.csv",
            "--name",
            "x",
            "--registry",
            reg.arg(),
        ],
        &["models", "--registry", garbage],
        &["health", "--url", "http://127.0.0.1:9"],
    ] {
        let out = Command::new(BIN)
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        let line = stderr.trim_end();
        assert_eq!(line.lines().count(), 1, "{args:?}: {stderr}");
        assert!(line.starts_with("Error: "), "{args:?}: {stderr}");
        assert!(!line.contains("Caused by"), "{args:?}: {stderr}");
        // The message's parts appear once each.
        let parts: Vec<&str> = line["Error: ".len()..].split(": ").collect();
        for (i, p) in parts.iter().enumerate() {
            assert!(
                !parts[i + 1..].contains(p),
                "{args:?} repeats {p:?}: {stderr}"
            );
        }
    }
}

/// A second SIGTERM during `--shutdown-delay` stops the server at once (it finishes
/// closing its connections) instead of being ignored for the rest of the delay.
#[tokio::test]
async fn a_second_sigterm_cuts_the_shutdown_delay_short() {
    let reg = TestRegistry::with_iris();
    let mut app = App::spawn(reg.path(), &["--shutdown-delay", "60s"]);
    assert_eq!(app.get("/health/ready").await.status(), 200);
    app.signal("TERM");
    wait_for(Duration::from_secs(10), || async {
        app.get("/health/ready").await.status() == 503
    })
    .await;
    assert!(app.is_running());
    let asked = Instant::now();
    app.signal("TERM");
    while app.is_running() {
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "the second SIGTERM was ignored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `treeserve train … 2>&1 | head -1`: stdout and stderr are one pipe whose reader went
/// away; the messages `train` writes to stderr then stop it quietly with 141 too (once a
/// panic, exit 101, its message lost in the closed pipe).
#[test]
fn a_command_whose_stderr_reader_goes_away_stops_quietly() {
    let reg = TestRegistry::new();
    let iris = iris_csv();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let status = Command::new(BIN)
        .args(["train", "--data", iris.to_str().unwrap(), "--name", "iris"])
        .args(["--publish", reg.arg()])
        .env("RUST_BACKTRACE", "1")
        .env_remove("TREESERVE_REGISTRY")
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(141), "{status:?}");
}
