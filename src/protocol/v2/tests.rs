use super::*;

fn dec(body: &str) -> Result<(Decoded<'_>, Vec<f64>), InputError> {
    let mut out = Vec::new();
    decode(body.as_bytes(), &[], 4, 100, &mut out).map(|d| (d, out))
}

#[test]
fn flat_nested_and_one_row_shapes_decode_alike() {
    let flat = r#"{"id":"a","inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,8.5]}]}"#;
    let nested = r#"{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP64","data":[[1,2,3,4],[5,6,7,8.5]]}]}"#;
    let (d, v) = dec(flat).unwrap();
    assert_eq!((d.rows, d.id.as_deref()), (2, Some("a")));
    assert_eq!(v, dec(nested).unwrap().1);
    let (d, v) =
        dec(r#"{"inputs":[{"name":"x","shape":[4],"datatype":"INT32","data":[1,2,3,4]}]}"#)
            .unwrap();
    assert_eq!((d.rows, v.len()), (1, 4));
    assert_eq!(d.outputs.as_slice().len(), 2);
}

#[test]
fn errors_name_what_is_wrong() {
    let kind = |body: &str| dec(body).unwrap_err().kind;
    let t = |shape: &str, dt: &str, data: &str| {
        format!(r#"{{"inputs":[{{"name":"x","shape":{shape},"datatype":"{dt}","data":{data}}}]}}"#)
    };
    assert_eq!(kind(&t("[1,3]", "FP32", "[1,2,3]")), K::InvalidShape);
    assert_eq!(kind(&t("[2,4]", "FP32", "[1,2,3,4]")), K::InvalidShape);
    assert_eq!(kind(&t("[1,4]", "BYTES", "[1,2,3,4]")), K::InvalidDatatype);
    assert_eq!(kind(&t("[1,4]", "INT8", "[1,2,3,400]")), K::InvalidValue);
    assert_eq!(kind(&t("[1,4]", "INT8", "[1,2,3,4.5]")), K::InvalidValue);
    assert_eq!(kind(&t("[1,4]", "FP32", "[1,2,3,1e300]")), K::InvalidValue);
    assert_eq!(kind(&t("[1,4]", "FP32", r#"[1,2,3,"4"]"#)), K::InvalidBody);
    assert_eq!(kind(&t("[0,4]", "FP32", "[]")), K::EmptyBatch);
    assert_eq!(kind(&t("[101,4]", "FP32", "[]")), K::TooManyRows);
    assert_eq!(kind(r#"{"inputs":[]}"#), K::InvalidBody);
    assert_eq!(kind("{"), K::MalformedJson);
    let unknown = r#"{"inputs":[{"name":"x","shape":[4],"datatype":"FP32","data":[1,2,3,4]}],"outputs":[{"name":"nope"}]}"#;
    assert_eq!(kind(unknown), K::UnknownOutput);
}

use proptest::prelude::*;

/// Requests in the shapes clients send (and some they should not), with whitespace.
fn request() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        any::<f32>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| v.to_string()),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| format!("{v:e}")),
        any::<i32>().prop_map(|v| v.to_string()),
        Just("1e400".to_string()),
        Just("\"1\"".to_string()),
        Just("null".to_string()),
    ];
    let ws = prop_oneof![Just(""), Just(" "), Just("\n  ")];
    (
        1usize..4,
        prop::collection::vec(number, 0..14),
        any::<bool>(),
        prop_oneof![Just("FP32"), Just("FP64"), Just("INT32"), Just("BYTES")],
        prop_oneof![Just(None), Just(Some("[1,4]")), Just(Some("[4]")), Just(Some("[2,4]")), Just(Some("[3,4]")), Just(Some("[1,3]"))],
        prop_oneof![Just(""), Just(r#","outputs":[{"name":"label"}]"#), Just(r#","outputs":[{"name":"probabilities"},{"name":"label"}]"#), Just(r#","outputs":[{"name":"x"}]"#), Just(r#","outputs":[{"name":"label"},{"name":"label"}]"#), Just(r#","outputs":[]"#)],
        prop_oneof![Just(""), Just(r#""id":"a-1","#), Just(r#""id":"\u0041","#), Just(r#""parameters":{},"#)],
        ws,
    )
        .prop_map(|(rows, values, nested, dt, shape, outputs, prefix, ws)| {
            let data = if nested {
                let chunks: Vec<String> = values.chunks(4).map(|c| format!("[{}]", c.join(","))).collect();
                format!("[{}]", chunks.join(","))
            } else {
                format!("[{}]", values.join(&format!(",{ws}")))
            };
            let shape = shape.map(String::from).unwrap_or_else(|| format!("[{rows},4]"));
            format!(r#"{{{ws}{prefix}"inputs":[{{"name":"in","shape":{shape},{ws}"datatype":"{dt}","data":{data}}}]{outputs}}}"#)
        })
}

fn same(a: &Decoded<'_>, b: &Decoded<'_>) -> bool {
    a.id == b.id && a.rows == b.rows && a.outputs.as_slice() == b.outputs.as_slice()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// The fast path accepts only what serde accepts, with identical values.
    #[test]
    fn fast_path_agrees_with_serde(body in request()) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let slow = decode_serde(body.as_bytes(), &[], 4, 3, false, &mut a);
        if let Some(fast) = fast::decode(body.as_bytes(), 4, 3, &mut b) {
            let slow = slow.as_ref().map_err(|e| e.to_string());
            let agrees = slow.as_ref().is_ok_and(|s| same(s, &fast));
            prop_assert!(agrees, "{} {:?}", body, slow);
            prop_assert_eq!(a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), b.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }
    }

    /// No input panics either path.
    #[test]
    fn no_input_panics(body in prop::collection::vec(any::<u8>(), 0..200), bin in prop::collection::vec(any::<u8>(), 0..40)) {
        let mut out = Vec::new();
        let _ = decode(&body, &bin, 4, 3, &mut out);
    }
}

#[test]
fn the_fast_path_takes_the_common_requests() {
    let mut out = Vec::new();
    for body in [
        r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[6.6,3,4.4,1.4]}]}"#,
        r#"{"id":"7","inputs":[{"name":"input","shape":[2,4],"datatype":"FP64","data":[[6.6,3,4.4,1.4],[1,2,3,4]]}],"outputs":[{"name":"label"}]}"#,
    ] {
        assert!(
            fast::decode(body.as_bytes(), 4, 10, &mut out).is_some(),
            "{body}"
        );
    }
}

#[test]
fn binary_inputs_and_outputs_round_trip() {
    let json = br#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}],"parameters":{"binary_data_output":true}}"#;
    let bin: Vec<u8> = [6.6f32, 3.0, 4.4, 1.4]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut out = Vec::new();
    let d = decode(json, &bin, 4, 10, &mut out).unwrap();
    assert_eq!(out[1], 3.0);
    assert!(d.outputs.as_slice().iter().all(|o| o.binary));
    assert!(decode(json, &bin[..12], 4, 10, &mut out).is_err());
    let labels = vec!["a".to_string(), "bb".to_string()];
    let e = Encoder::new("m", "1", &labels).encode(
        None,
        &[1],
        Some(&[0.25, 0.75]),
        d.outputs.as_slice(),
    );
    assert_eq!(&e.binary[..6], &[2, 0, 0, 0, b'b', b'b']);
    assert_eq!(&e.binary[6..10], &0.25f32.to_le_bytes());
    let v: serde_json::Value = serde_json::from_slice(&e.json).unwrap();
    assert_eq!(v["outputs"][0]["parameters"]["binary_data_size"], 6);
    assert_eq!(v["outputs"][1]["shape"], serde_json::json!([1, 2]));
}

#[test]
fn json_outputs_carry_labels_and_probabilities() {
    let labels = vec!["x\"y".to_string(), "z".to_string()];
    let outs = [
        Requested {
            output: Output::Probabilities,
            binary: false,
        },
        Requested {
            output: Output::Label,
            binary: false,
        },
    ];
    let e = Encoder::new("m", "3", &labels).encode(
        Some("r\n1"),
        &[0, 1],
        Some(&[1.0, 0.0, 0.5, 0.5]),
        &outs,
    );
    let v: serde_json::Value = serde_json::from_slice(&e.json).unwrap();
    assert_eq!(v["id"], "r\n1");
    assert_eq!(v["model_version"], "3");
    assert_eq!(
        v["outputs"][0]["data"],
        serde_json::json!([1.0, 0.0, 0.5, 0.5])
    );
    assert_eq!(v["outputs"][1]["data"], serde_json::json!(["x\"y", "z"]));
    assert!(e.binary.is_empty());
}
