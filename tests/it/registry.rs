//! The file registry through its Rust interface: atomic publish, concurrent publishers,
//! aliases and their history.

use std::sync::Arc;

use treeserve::registry::{FsRegistry, Registry, RegistryError};

#[test]
fn concurrent_threads_publish_distinct_contiguous_versions() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Arc::new(FsRegistry::new(dir.path()));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let reg = reg.clone();
            std::thread::spawn(move || {
                (0..10)
                    .map(|i| {
                        reg.publish("m", format!("artifact {t} {i}").as_bytes())
                            .unwrap()
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (1..=80).collect::<Vec<_>>());
    assert_eq!(reg.versions("m").unwrap(), all);
    // Every version holds exactly what its publisher wrote.
    let mut contents: Vec<Vec<u8>> = all.iter().map(|&v| reg.read("m", v).unwrap()).collect();
    contents.sort();
    contents.dedup();
    assert_eq!(contents.len(), 80);
    // Nothing is left in staging.
    assert_eq!(
        std::fs::read_dir(dir.path().join("m/.staging"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn aliases_remember_history_and_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let reg = FsRegistry::new(dir.path());
    assert!(reg.models().unwrap().is_empty());
    for _ in 0..3 {
        reg.publish("m", b"x").unwrap();
    }
    assert_eq!(reg.models().unwrap(), vec!["m".to_string()]);
    reg.set_alias("m", "production", 1).unwrap();
    reg.set_alias("m", "production", 3).unwrap();
    reg.set_alias("m", "production", 3).unwrap();
    reg.set_alias("m", "production", 2).unwrap();
    assert_eq!(reg.resolve("m", "production").unwrap(), 2);
    assert_eq!(reg.aliases("m").unwrap()["production"].history, vec![1, 3]);
    assert_eq!(reg.rollback("m", "production").unwrap().version, 3);
    assert_eq!(reg.rollback("m", "production").unwrap().version, 1);
    assert!(matches!(
        reg.rollback("m", "production"),
        Err(RegistryError::NoHistory { .. })
    ));
    assert!(matches!(
        reg.set_alias("m", "production", 4),
        Err(RegistryError::VersionNotFound { .. })
    ));
    assert!(matches!(
        reg.resolve("m", "staging"),
        Err(RegistryError::AliasNotFound { .. })
    ));
    assert!(matches!(
        reg.resolve("n", "production"),
        Err(RegistryError::ModelNotFound(_))
    ));
    for bad in ["", "../x", ".hidden", "a/b", "x y"] {
        assert!(
            matches!(reg.publish(bad, b"x"), Err(RegistryError::InvalidName(_))),
            "{bad:?}"
        );
        assert!(
            matches!(
                reg.set_alias("m", bad, 1),
                Err(RegistryError::InvalidName(_))
            ),
            "{bad:?}"
        );
    }
    // A corrupt alias file is an error, not a panic or a silent default.
    std::fs::write(dir.path().join("m/aliases/production"), b"{not json").unwrap();
    assert!(matches!(
        reg.resolve("m", "production"),
        Err(RegistryError::Corrupt { .. })
    ));
    // A stray directory without an artifact is not a version.
    std::fs::create_dir_all(dir.path().join("m/versions/99")).unwrap();
    assert_eq!(reg.versions("m").unwrap(), vec![1, 2, 3]);
}
