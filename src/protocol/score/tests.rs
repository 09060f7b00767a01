use super::*;
use proptest::prelude::*;

fn features() -> Vec<String> {
    [
        "SepalLengthCm",
        "SepalWidthCm",
        "PetalLengthCm",
        "PetalWidthCm",
    ]
    .map(String::from)
    .to_vec()
}

/// Bodies that are mostly valid: rows with the right keys in any order, numbers in
/// many spellings, with random whitespace, and sometimes a defect.
fn body() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| format!("{v:e}")),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
        Just("1e400".to_string()),
        Just("-0".to_string()),
        Just("01".to_string()),
        Just("1.".to_string()),
        Just("\"1\"".to_string()),
    ];
    let ws = prop::sample::select(vec!["", " ", "\n", "\t ", "\r\n"]);
    let row = (
        Just(features()).prop_shuffle(),
        prop::collection::vec(number, 4),
        prop::collection::vec(ws.clone(), 4),
        0..8u8,
    )
        .prop_map(|(keys, values, ws, defect)| {
            let mut pairs: Vec<String> = keys
                .iter()
                .zip(&values)
                .zip(&ws)
                .map(|((k, v), w)| format!("{w}\"{k}\"{w}:{w}{v}{w}"))
                .collect();
            match defect {
                0 => {
                    pairs.pop();
                }
                1 => pairs.push(pairs[0].clone()),
                2 => pairs.push("\"Other\": 1".into()),
                3 => pairs[0] = pairs[0].replacen("Cm", "C\\u006d", 1),
                _ => {}
            }
            format!("{{{}}}", pairs.join(","))
        });
    prop_oneof![
        row.clone(),
        prop::collection::vec(row, 0..5).prop_map(|rows| format!("[{}]", rows.join(","))),
    ]
}

#[test]
fn fast_path_takes_ordinary_bodies() {
    let f = features();
    let mut out = Vec::new();
    for body in [
        r#"{"SepalLengthCm": 6.6, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}"#,
        "{\"PetalWidthCm\":1e-1,\n \"SepalWidthCm\" : -0.5E+2 , \"PetalLengthCm\":0,\"SepalLengthCm\":12345678901234567890}",
        r#" [ {"SepalLengthCm": 1, "SepalWidthCm": 2, "PetalLengthCm": 3, "PetalWidthCm": 4} ] "#,
    ] {
        assert!(
            fast::decode(body.as_bytes(), &f, 10, &mut out).is_some(),
            "{body}"
        );
    }
    for body in [
        r#"{"SepalLengthCm": 01, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}"#,
        r#"{"SepalLengthCm": 1e999, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4}"#,
        r#"{"SepalLengthCm": 1, "SepalWidthCm": 3, "PetalLengthCm": 4.4, "PetalWidthCm": 1.4,}"#,
        r#"[]"#,
    ] {
        assert!(
            fast::decode(body.as_bytes(), &f, 10, &mut out).is_none(),
            "{body}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The fast path accepts only what serde accepts, with identical values; both
    /// paths answer identically through `decode`.
    #[test]
    fn fast_path_agrees_with_serde(body in body()) {
        let f = features();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let slow = decode_serde(body.as_bytes(), &f, 3, false, &mut a);
        if let Some(fast) = fast::decode(body.as_bytes(), &f, 3, &mut b) {
            prop_assert_eq!(Ok(fast), slow.clone(), "{}", body);
            prop_assert_eq!(a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), b.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }
        let mut c = Vec::new();
        prop_assert_eq!(decode(body.as_bytes(), &f, 3, &mut c), slow);
    }
}
