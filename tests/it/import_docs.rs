//! docs/import.md's worked examples, run as a user would: each Python block in the venv
//! with the pinned frameworks (`target/importenv`, made by `.ci/run` from
//! `tests/import/requirements.txt`), then each `treeserve` line of the shell blocks, in one
//! directory. The imports check parity with the frameworks' own outputs.

use std::path::PathBuf;
use std::process::Command;

use crate::common::*;

fn python() -> PathBuf {
    let root = std::env::var_os("TREESERVE_IMPORTENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/importenv"));
    let py = root.join("bin/python");
    assert!(
        py.exists(),
        "no venv with the pinned frameworks at {}: run `bash .ci/run`, which creates it \
         (python3 -m venv target/importenv && target/importenv/bin/pip install -r tests/import/requirements.txt)",
        root.display()
    );
    py
}

/// The fenced blocks of `lang`, in order, with the others interleaved: (lang, text).
pub(crate) fn blocks(doc: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in doc.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(lang)) => current = Some((lang.trim().to_owned(), String::new())),
            (Some(_), Some("")) => out.push(current.take().expect("open block")),
            (Some((_, text)), _) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

#[test]
fn the_worked_examples_run_as_written() {
    let doc = std::fs::read_to_string(repo().join("docs/import.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let py = python();
    let mut imports = 0;
    for (lang, text) in blocks(&doc) {
        match lang.as_str() {
            "python" => {
                let out = Command::new(&py)
                    .arg("-c")
                    .arg(&text)
                    .current_dir(dir.path())
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{text}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            "sh" => {
                for command in text.replace("\\\n", " ").lines() {
                    let words: Vec<&str> = command.split_whitespace().collect();
                    let Some((&"treeserve", args)) = words.split_first() else {
                        panic!(
                            "a shell line of docs/import.md that this test cannot run: {command}"
                        );
                    };
                    let out = Command::new(BIN)
                        .args(args)
                        .current_dir(dir.path())
                        .env_remove("TREESERVE_REGISTRY")
                        .output()
                        .unwrap();
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    assert!(out.status.success(), "{command}\n{stderr}");
                    if args.first() == Some(&"import") {
                        assert!(stderr.contains("parity with the framework"), "{stderr}");
                        imports += 1;
                    }
                }
            }
            _ => {}
        }
    }
    assert_eq!(imports, 3, "one import per framework");
}
