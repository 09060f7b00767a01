//! The file-system registry's dataset methods.

use super::*;

fn files<'a>(csv: &'a [u8], manifest: &'a [u8]) -> [(&'a str, &'a [u8]); 2] {
    [("data.csv", csv), (DATASET_MANIFEST, manifest)]
}

#[test]
fn datasets_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let reg = FsRegistry::new(dir.path());
    assert!(reg.datasets().unwrap().is_empty());
    assert!(reg.dataset_versions("iris").unwrap().is_empty());
    assert_eq!(reg.read_dataset_file("iris", 1, "data.csv").unwrap(), None);

    assert_eq!(
        reg.publish_dataset("iris", &files(b"a\n1\n", b"{}"))
            .unwrap(),
        1
    );
    assert_eq!(
        reg.publish_dataset("iris", &files(b"a\n2\n", b"{}"))
            .unwrap(),
        2
    );
    assert_eq!(
        reg.publish_dataset("wine", &files(b"b\n", b"{}")).unwrap(),
        1
    );
    assert_eq!(reg.datasets().unwrap(), ["iris", "wine"]);
    assert_eq!(reg.dataset_versions("iris").unwrap(), [1, 2]);
    assert_eq!(
        reg.read_dataset_file("iris", 2, "data.csv")
            .unwrap()
            .unwrap(),
        b"a\n2\n"
    );
    assert_eq!(
        reg.read_dataset_file("iris", 1, DATASET_MANIFEST)
            .unwrap()
            .unwrap(),
        b"{}"
    );
    // Today's layout, so existing registries keep working.
    let stored = fs::read(dir.path().join("_datasets/iris/versions/1/data.csv")).unwrap();
    assert_eq!(stored, b"a\n1\n");
    // Datasets are not models.
    assert!(reg.models().unwrap().is_empty());

    // Missing version, missing file.
    assert_eq!(reg.read_dataset_file("iris", 3, "data.csv").unwrap(), None);
    assert_eq!(reg.read_dataset_file("iris", 1, "other.csv").unwrap(), None);
    assert_eq!(reg.read_dataset_file("nope", 1, "data.csv").unwrap(), None);

    // A version without its manifest (copied in by hand, half done) is not listed.
    fs::create_dir_all(dir.path().join("_datasets/iris/versions/7")).unwrap();
    assert_eq!(reg.dataset_versions("iris").unwrap(), [1, 2]);
    assert_eq!(
        reg.publish_dataset("iris", &files(b"a\n", b"{}")).unwrap(),
        8
    );
}

#[test]
fn dataset_names_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let reg = FsRegistry::new(dir.path());
    fn invalid<T>(r: Result<T, RegistryError>) -> bool {
        matches!(r, Err(RegistryError::InvalidName(_)))
    }
    for name in ["", "../x", ".hidden", "a/b", "_datasets"] {
        assert!(invalid(reg.dataset_versions(name)), "{name:?}");
        assert!(
            invalid(reg.read_dataset_file(name, 1, "data.csv")),
            "{name:?}"
        );
        assert!(
            invalid(reg.publish_dataset(name, &files(b"", b"{}"))),
            "{name:?}"
        );
    }
    for file in ["../data.csv", ".staging", "a/b"] {
        assert!(invalid(reg.read_dataset_file("iris", 1, file)), "{file:?}");
        assert!(
            invalid(reg.publish_dataset("iris", &[(file, b"x")])),
            "{file:?}"
        );
    }
    // Nothing was written by the refused publishes.
    assert!(reg.datasets().unwrap().is_empty());
}

#[test]
fn version_names_are_canonical_decimal() {
    for (name, want) in [
        ("1", Some(1)),
        ("42", Some(42)),
        ("18446744073709551615", Some(u64::MAX)),
        ("0", None),
        ("01", None),
        ("+1", None),
        ("-1", None),
        (" 1", None),
        ("1a", None),
        ("", None),
        ("18446744073709551616", None),
    ] {
        assert_eq!(parse_version(name), want, "{name:?}");
    }
}

#[cfg(unix)]
#[test]
fn a_symlink_to_a_regular_file_is_read_and_one_to_a_device_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let reg = FsRegistry::new(dir.path());
    reg.publish("m", b"x").unwrap();
    let real = dir.path().join("real-alias.json");
    std::fs::write(&real, br#"{"version": 1}"#).unwrap();
    std::fs::create_dir_all(dir.path().join("m/aliases")).unwrap();
    std::os::unix::fs::symlink(&real, dir.path().join("m/aliases/production")).unwrap();
    assert_eq!(reg.resolve("m", "production").unwrap(), 1);
    std::os::unix::fs::symlink("/dev/null", dir.path().join("m/aliases/null")).unwrap();
    let listing = reg.alias_listing("m").unwrap();
    assert_eq!(listing.aliases.keys().collect::<Vec<_>>(), ["production"]);
    assert!(listing.broken["null"].contains("a device"), "{listing:?}");
}
