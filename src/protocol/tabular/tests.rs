use proptest::prelude::*;

use super::*;

fn features() -> Vec<String> {
    ["a", "b", "c"].iter().map(|s| s.to_string()).collect()
}

fn json(body: &str) -> Result<(usize, Vec<f64>), InputError> {
    let mut out = Vec::new();
    decode_json(body.as_bytes(), &features(), 10, false, &mut out).map(|n| (n, out))
}

fn kind(body: &str) -> K {
    json(body).unwrap_err().kind
}

#[test]
fn every_json_form_gives_the_same_rows() {
    let want = (2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
    for body in [
        r#"{"dataframe_split": {"columns": ["c", "a", "b"], "data": [[3, 1, 2], [6.5, 4, 5]]}}"#,
        r#"{"dataframe_split": {"index": [0, 1], "columns": ["a", "b", "c", "extra"], "data": [[1, 2, 3, "x"], [4, 5, 6.5, null]]}}"#,
        r#"{"dataframe_split": {"data": [[1, 2, 3], [4, 5, 6.5]]}}"#,
        r#"{"dataframe_records": [{"a": 1, "b": 2, "c": 3}, {"c": 6.5, "b": 5, "a": 4, "id": "x"}]}"#,
        r#"{"instances": [[1, 2, 3], {"a": 4, "b": 5, "c": 6.5}]}"#,
        r#"{"inputs": [[1, 2, 3], [4, 5, 6.5]], "params": {"k": 1}}"#,
        r#"{"inputs": {"b": [2, 5], "a": [1, 4], "c": [3, 6.5]}}"#,
    ] {
        assert_eq!(json(body), Ok(want.clone()), "{body}");
    }
    let mut out = Vec::new();
    let csv = "c,a,b,extra\n3,1,2,x\n6.5,4,5,y\n";
    assert_eq!(
        decode_csv(csv.as_bytes(), &features(), 10, false, &mut out),
        Ok(2)
    );
    assert_eq!(out, want.1);
}

#[test]
fn bad_bodies_are_named_errors() {
    assert_eq!(kind("not json"), K::MalformedJson);
    assert_eq!(kind("[1, 2]"), K::InvalidBody);
    assert_eq!(kind("{}"), K::InvalidBody);
    assert_eq!(kind(r#"{"rows": []}"#), K::InvalidBody);
    assert_eq!(
        kind(r#"{"instances": [[1, 2, 3]], "inputs": [[1, 2, 3]]}"#),
        K::InvalidBody
    );
    assert_eq!(kind(r#"{"instances": []}"#), K::EmptyBatch);
    assert_eq!(kind(r#"{"instances": [[1, 2]]}"#), K::InvalidShape);
    assert_eq!(
        kind(r#"{"instances": [{"a": 1, "b": 2}]}"#),
        K::MissingFeature
    );
    assert_eq!(kind(r#"{"instances": [[1, "2", 3]]}"#), K::InvalidValue);
    assert_eq!(kind(r#"{"instances": [[1, null, 3]]}"#), K::InvalidValue);
    assert_eq!(kind(r#"{"instances": [[1, 1e999, 3]]}"#), K::NonFiniteValue);
    assert_eq!(
        kind(r#"{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}"#),
        K::MissingFeature
    );
    assert_eq!(
        kind(r#"{"dataframe_split": {"columns": ["a", "a", "b", "c"], "data": [[1, 1, 2, 3]]}}"#),
        K::DuplicateFeature
    );
    assert_eq!(
        kind(r#"{"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2]]}}"#),
        K::InvalidShape
    );
    assert_eq!(
        kind(r#"{"inputs": {"a": [1], "b": [2, 3], "c": [4]}}"#),
        K::InvalidShape
    );
    let many = format!(r#"{{"instances": [{}]}}"#, ["[1,2,3]"; 11].join(","));
    assert_eq!(kind(&many), K::TooManyRows);
    let e = json(r#"{"instances": [{"a": 1, "b": 2}]}"#).unwrap_err();
    assert!(
        e.message.contains("\"c\"") && e.message.contains("a, b, c"),
        "{e}"
    );
}

#[test]
fn null_and_empty_cells_are_missing_for_a_model_that_routes_them() {
    let mut out = Vec::new();
    let body = br#"{"instances": [[1, null, 3]]}"#;
    assert_eq!(decode_json(body, &features(), 10, true, &mut out), Ok(1));
    assert!(out[1].is_nan());
    assert_eq!(
        decode_csv(b"a,b,c\n1,,3\n", &features(), 10, true, &mut out),
        Ok(1)
    );
    assert!(out[1].is_nan() && out[2] == 3.0);
    let e = decode_csv(b"a,b,c\n1,,3\n", &features(), 10, false, &mut out).unwrap_err();
    assert_eq!(e.kind, K::InvalidValue);
    let e = decode_csv(b"a,b,c\n1,x,3\n", &features(), 10, false, &mut out).unwrap_err();
    assert_eq!(e.kind, K::InvalidValue);
    let e = decode_csv(b"a,b,c\n1,2\n", &features(), 10, false, &mut out).unwrap_err();
    assert_eq!(e.kind, K::InvalidShape);
    let e = decode_csv(b"a,b,c\n", &features(), 10, false, &mut out).unwrap_err();
    assert_eq!(e.kind, K::EmptyBatch);
}

proptest! {
    /// No input panics, and what decodes has whole rows.
    #[test]
    fn no_input_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut out = Vec::new();
        if let Ok(n) = decode_json(&body, &features(), 10, true, &mut out) {
            prop_assert_eq!(out.len(), n * 3);
        }
        if let Ok(n) = decode_csv(&body, &features(), 10, true, &mut out) {
            prop_assert_eq!(out.len(), n * 3);
        }
    }
}

/// A JSON body of one of the fast path's forms, over columns drawn from `a`, `b`, `c`,
/// `x` (ignored), sometimes with a duplicate, a missing feature, a row of the wrong
/// width, a `null` or an out-of-range number.
fn fast_form() -> impl Strategy<Value = String> {
    let cols = proptest::sample::subsequence(vec!["a", "b", "c", "x", "a"], 2..=5).prop_shuffle();
    let value = prop_oneof![
        20 => (-1e6f64..1e6).prop_map(|v| v.to_string()),
        20 => (0i64..1000).prop_map(|v| v.to_string()),
        1 => Just("null".to_string()),
        1 => Just("1e400".to_string()),
    ];
    let values = proptest::collection::vec(value, 60);
    (cols, values, 0usize..6, 0u8..5, 0u8..12).prop_map(|(cols, values, nrows, form, perturb)| {
        let width = if matches!(form, 0 | 1 | 4) {
            cols.len()
        } else {
            3
        };
        let width = match perturb {
            0 => width + 1,
            1 => width - 1,
            _ => width,
        };
        let rows: Vec<&[String]> = values.chunks(width).take(nrows).collect();
        let row = |r: &&[String]| format!("[{}]", r.join(","));
        let data = rows.iter().map(row).collect::<Vec<_>>().join(",");
        let names = cols
            .iter()
            .map(|c| format!("{c:?}"))
            .collect::<Vec<_>>()
            .join(",");
        match form {
            0 => format!(r#"{{"dataframe_split": {{"columns": [{names}], "data": [{data}]}}}}"#),
            1 => format!(
                r#"{{"dataframe_split": {{"index": [0], "columns": [{names}], "data": [{data}]}}}}"#
            ),
            2 => format!(r#"{{"instances": [{data}]}}"#),
            3 => format!(r#"{{"dataframe_split": {{"data": [{data}]}}}}"#),
            _ => {
                let recs = rows
                    .iter()
                    .map(|r| {
                        let kv = cols
                            .iter()
                            .zip(r.iter())
                            .map(|(c, v)| format!("{c:?}: {v}"));
                        format!("{{{}}}", kv.collect::<Vec<_>>().join(","))
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                format!(r#"{{"dataframe_records": [{recs}]}}"#)
            }
        }
    })
}

proptest! {
    /// Wherever the fast path answers, the serde path answers the same rows.
    #[test]
    fn the_fast_path_agrees_with_serde(body in fast_form(), missing in any::<bool>()) {
        let mut fast_out = Vec::new();
        if let Some(n) = fast::decode(body.as_bytes(), &features(), 10, &mut fast_out) {
            let mut slow = Vec::new();
            let m = decode_json_serde(body.as_bytes(), &features(), 10, missing, &mut slow);
            prop_assert_eq!(m, Ok(n), "{}", body);
            prop_assert_eq!(fast_out, slow, "{}", body);
        }
    }
}

#[test]
fn the_fast_path_takes_the_common_forms() {
    let mut out = Vec::new();
    for body in [
        r#"{"dataframe_split": {"columns": ["c", "a", "b"], "data": [[3, 1, 2], [6.5, 4, 5]]}}"#,
        r#"{"dataframe_split": {"index": [0, 1], "columns": ["a", "x", "b", "c"], "data": [[1, 9, 2, 3], [4, 9, 5, 6.5]]}}"#,
        r#"{"instances": [[1, 2, 3], [4, 5, 6.5]]}"#,
        r#"{"dataframe_records": [{"a": 1, "b": 2, "c": 3}, {"c": 6.5, "b": 5, "a": 4, "id": 7}]}"#,
    ] {
        assert_eq!(
            fast::decode(body.as_bytes(), &features(), 10, &mut out),
            Some(2),
            "{body}"
        );
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
    }
}
