use super::*;

fn reg() -> MlflowRegistry {
    MlflowRegistry::new("http://127.0.0.1:1/").expect("no configuration needed")
}

#[test]
fn artifact_uris_map_to_proxy_paths() {
    let r = reg();
    assert_eq!(
        r.proxy_path("x", "mlflow-artifacts:/0/models/m-1/artifacts")
            .unwrap(),
        "0/models/m-1/artifacts"
    );
    assert_eq!(
        r.proxy_path(
            "x",
            "mlflow-artifacts://host:5000/1/abc/artifacts/treeserve/"
        )
        .unwrap(),
        "1/abc/artifacts/treeserve"
    );
    let e = r
        .proxy_path("models:/m/1", "s3://bucket/1/abc")
        .unwrap_err();
    assert!(e.to_string().contains("--serve-artifacts"), "{e}");
}

#[test]
fn datasets_are_refused_naming_the_registries_that_keep_them() {
    let r = reg();
    for e in [
        r.datasets().unwrap_err(),
        r.dataset_versions("d").unwrap_err(),
        r.read_dataset_file("d", 1, "x").unwrap_err(),
        r.publish_dataset("d", &[]).unwrap_err(),
    ] {
        let s = e.to_string();
        assert!(s.contains("directory or object-store registry"), "{s}");
    }
}

#[test]
fn an_unreachable_server_is_one_line_saying_what_to_check() {
    let e = reg().alias("iris", "production").unwrap_err();
    let s = e.to_string();
    assert!(matches!(e, RegistryError::Remote { .. }), "{e:?}");
    assert!(
        s.contains("cannot connect") && s.contains("registry URL"),
        "{s}"
    );
    assert!(
        s.contains("mlflow+http://127.0.0.1:1/api/2.0/mlflow/registered-models/get"),
        "{s}"
    );
    assert!(!s.contains('\n'));
}

#[test]
fn names_are_checked_before_any_call() {
    let r = reg();
    assert!(matches!(
        r.alias("a b", "production"),
        Err(RegistryError::InvalidName(_))
    ));
    assert!(matches!(
        r.alias("iris", "../x"),
        Err(RegistryError::InvalidName(_))
    ));
    assert!(matches!(
        r.publish("a'b", b""),
        Err(RegistryError::InvalidName(_))
    ));
}
