//! The house rules the compiler does not check: the core never imports hyper (or the
//! `http` adapters, or the CLI), and no source file grows past ~500 lines unless its
//! first comment says why.

use std::path::{Path, PathBuf};

use crate::common::repo;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The core speaks domain types; every protocol is an adapter over it.
#[test]
fn the_core_never_imports_hyper_http_adapters_or_the_cli() {
    let src = repo().join("src");
    let mut files = Vec::new();
    for core in [
        "model",
        "registry",
        "serving",
        "protocol",
        "train",
        "data",
        "lifecycle",
    ] {
        rust_files(&src.join(core), &mut files);
    }
    for file in ["name.rs", "error_type.rs", "stats.rs", "config.rs"] {
        files.push(src.join(file));
    }
    let mut offences = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if [
                "hyper::",
                "hyper_util",
                "tonic",
                "crate::http",
                "crate::cli",
                "crate::app",
            ]
            .iter()
            .any(|p| code.contains(p))
            {
                offences.push(format!("{}:{}: {line}", file.display(), n + 1));
            }
        }
    }
    assert!(offences.is_empty(), "{}", offences.join("\n"));
}

/// Every source file under `src/` is at most ~500 lines, or says in its first comment
/// why it is longer.
#[test]
fn source_files_stay_readable_at_once() {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let lines = text.lines().count();
            let says_why = text
                .lines()
                .take_while(|l| l.starts_with("//!"))
                .any(|l| l.contains("lines"));
            (lines > 520 && !says_why).then(|| format!("{}: {lines} lines", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "{}", long.join("\n"));
}

/// `unsafe` code lives in four files, the vector walks of large ensembles (groups and
/// pairs of groups with AVX-512, groups with AVX2) and the call that gives a large load's
/// freed memory back, each saying why it is sound; the crate denies it everywhere else
/// (`Cargo.toml`, `[lints.rust]`).
#[test]
fn unsafe_code_stays_in_the_vector_walk_and_the_memory_release() {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    let allowed = repo().join("src/model/wide_simd.rs");
    let pair = repo().join("src/model/wide_pair.rs");
    let avx2 = repo().join("src/model/wide_avx2.rs");
    let memory = repo().join("src/memory.rs");
    let mut offences = Vec::new();
    for file in files
        .iter()
        .filter(|f| ![&allowed, &pair, &avx2, &memory].contains(f))
    {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let words = [
                "unsafe {",
                "unsafe fn",
                "unsafe impl",
                "unsafe extern",
                "unsafe_code",
            ];
            if words.iter().any(|w| code.contains(w)) {
                offences.push(format!("{}:{}: {line}", file.display(), n + 1));
            }
        }
    }
    assert!(offences.is_empty(), "{}", offences.join("\n"));
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    assert!(manifest.contains("unsafe_code = \"deny\""));
    for walk in [&allowed, &pair, &avx2] {
        let text = std::fs::read_to_string(walk).unwrap();
        assert!(text.contains("Why it is sound"), "{}", walk.display());
    }
    let memory = std::fs::read_to_string(&memory).unwrap();
    assert!(memory.contains("no\n//! preconditions") && memory.contains("// SAFETY:"));
}
