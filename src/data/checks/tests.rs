//! Unit tests of the data checks.

use super::*;

fn table(csv: &str) -> Table {
    Table::parse(csv.as_bytes(), "t.csv").unwrap()
}

fn prev(csv: &str) -> DatasetManifest {
    let t = table(csv);
    let schema = schema_of(&t, "y", Some("id"));
    let p = profile(&t, &schema);
    DatasetManifest {
        name: "d".into(),
        version: 1,
        sha256: String::new(),
        created: String::new(),
        parent: None,
        sources: vec![],
        schema,
        rows: t.rows.len() as u64,
        columns: p.columns,
        classes: p.classes,
        duplicate_rows: p.duplicate_rows,
        findings: vec![],
    }
}

fn checks(csv: &str, previous: Option<&DatasetManifest>, whole: bool) -> Vec<(Severity, String)> {
    let t = table(csv);
    let schema = schema_of(&t, "y", Some("id"));
    check(&t, &schema, previous, whole, &CheckConfig::default())
        .findings
        .into_iter()
        .map(|f| (f.severity, f.check))
        .collect()
}

const BASE: &str = "id,a,b,y\n1,1,10,x\n2,2,20,x\n3,3,30,z\n4,4,40,z\n";

#[test]
fn clean_data_passes() {
    assert!(checks(BASE, None, true).is_empty());
    let p = prev(BASE);
    assert!(checks("a,b,y\n2.5,25,x\n", Some(&p), false).is_empty());
}

#[test]
fn each_problem_is_found() {
    let p = prev(BASE);
    use Severity::*;
    let has = |csv: &str, whole, want: (Severity, &str)| {
        let got = checks(csv, Some(&p), whole);
        assert!(
            got.contains(&(want.0, want.1.to_string())),
            "{csv:?}: {got:?} lacks {want:?}"
        );
    };
    has("a,c,y\n1,1,x\n", false, (Critical, "columns"));
    has("a,y\n1,x\n", false, (Critical, "columns"));
    has("a,b\n1,2\n", false, (Critical, "columns"));
    has("a,b,y\n1,oops,x\n", false, (Critical, "types"));
    has("a,b,y\n1,NaN,x\n", false, (Critical, "types"));
    has("a,b,y\n1,,x\n", false, (Critical, "missing"));
    has("a,b,y\n1,2,\n", false, (Critical, "missing"));
    has("a,b,y\n1,2,w\n", false, (Critical, "labels"));
    has("a,b,y\n1,10,x\n2,20,x\n", true, (Critical, "labels"));
    has("a,b,y\n100,10,x\n", false, (Critical, "range"));
    has("a,b,y\n1,10,x\n1,10,x\n", false, (Warning, "duplicates"));
    has("a,b,y\n1,10,x\n1,10,z\n", false, (Warning, "duplicates"));
    has(
        "a,b,y\n1,10,x\n1,11,x\n1,12,x\n1,13,x\n1,14,z\n",
        true,
        (Warning, "imbalance"),
    );
    has("a,b,y\n1,10,x\n1,10,x,3\n", false, (Critical, "columns"));
    has("a,b,y\n", false, (Critical, "rows"));
}

#[test]
fn a_few_far_values_only_warn() {
    let p = prev(BASE);
    let mut csv = String::from("a,b,y\n");
    for i in 0..40 {
        csv += &format!("{},{},x\n", 1 + i % 3, 10 + i % 30);
    }
    csv += "100,10,x\n";
    let got = checks(&csv, Some(&p), false);
    assert!(
        got.contains(&(Severity::Warning, "range".into())),
        "{got:?}"
    );
    assert!(!got.iter().any(|f| f.0 == Severity::Critical), "{got:?}");
}

proptest::proptest! {
    /// No file content panics the reader or the checks, with or without a previous
    /// version, whole or appended.
    #[test]
    fn no_input_panics(body in proptest::collection::vec(
        proptest::prop_oneof![
            proptest::strategy::Just(b','), proptest::strategy::Just(b'\n'),
            proptest::strategy::Just(b'"'), proptest::strategy::Just(b'y'),
            proptest::strategy::Just(b'a'), proptest::strategy::Just(b'1'),
            proptest::strategy::Just(b'-'), proptest::strategy::Just(b'.'),
            proptest::num::u8::ANY,
        ],
        0..200,
    )) {
        let mut bytes = b"id,a,b,y\n".to_vec();
        bytes.extend(body);
        if let Ok(t) = Table::parse(&bytes, "p.csv") {
            let schema = schema_of(&t, "y", Some("id"));
            let p = prev(BASE);
            for whole in [false, true] {
                let r = check(&t, &schema, Some(&p), whole, &CheckConfig::default());
                let _ = r.text();
                let _ = check(&t, &schema, None, whole, &CheckConfig::default());
            }
            let again = Table::parse(&t.to_csv(), "again.csv").unwrap();
            proptest::prop_assert_eq!(&again.columns, &t.columns);
            let cells = |t: &Table| t.rows.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>();
            proptest::prop_assert_eq!(cells(&again), cells(&t));
        }
    }
}
