//! The Open Inference Protocol over gRPC: `ModelInfer` request decoding into row-major
//! `f64` values and response encoding, with the same rules as the REST body (one input of
//! shape `[N, F]` or `[F]`, the accepted datatypes, the outputs `label`/`probabilities`
//! or a regressor's `predict`). The data comes in `raw_input_contents` (what `tritonclient`
//! sends) or in the typed contents field of its datatype; the outputs go back in
//! `raw_output_contents`, as Triton answers (`tritonclient` reads numbers only from there).

use prost::Message;

use super::datatype::{check_values, datatype_width, from_le};
use super::proto::{InferOutputTensor, InferTensorContents, ModelInferRequest, ModelInferResponse};
use super::{
    LABEL, Output, Outputs, PREDICT, PROBABILITIES, Requested, bad, input_rows, one_input,
};
use crate::protocol::{InputError, InputErrorKind as K};

/// The model, version and request id a `ModelInfer` request names, read without
/// decoding the rest (the model must be found before its body is decoded).
pub fn target(body: &[u8]) -> Result<(&str, &str, &str), InputError> {
    use prost::encoding::{DecodeContext, WireType, decode_key, skip_field};
    let mut rest = body;
    let (mut model, mut version, mut id) = ("", "", "");
    while !rest.is_empty() {
        let (field, wire) =
            decode_key(&mut rest).map_err(|_| malformed("a field key is invalid"))?;
        if wire == WireType::LengthDelimited && (1..=3).contains(&field) {
            let len = usize::try_from(varint(&mut rest)?).unwrap_or(usize::MAX);
            let Some((value, tail)) = rest.split_at_checked(len) else {
                return Err(malformed("a field runs past the end of the message"));
            };
            rest = tail;
            let s = std::str::from_utf8(value)
                .map_err(|_| malformed("model_name, model_version or id is not UTF-8"))?;
            match field {
                1 => model = s,
                2 => version = s,
                _ => id = s,
            }
        } else {
            // Every other field skipped as the full decoder skips it (groups included).
            skip_field(wire, field, &mut rest, DecodeContext::default())
                .map_err(|_| malformed("a field is cut or malformed"))?;
        }
    }
    Ok((model, version, id))
}

fn varint(buf: &mut &[u8]) -> Result<u64, InputError> {
    prost::encoding::decode_varint(buf).map_err(|_| malformed("a varint is cut or too long"))
}

#[cold]
fn malformed(what: &str) -> InputError {
    bad(K::InvalidBody, format!("invalid ModelInferRequest: {what}"))
}

/// A decoded `ModelInfer` request.
#[derive(Debug)]
pub struct Decoded {
    /// The request id, echoed.
    pub id: String,
    /// Rows.
    pub rows: usize,
    /// The outputs to answer with.
    pub outputs: Outputs,
}

/// Decodes a `ModelInfer` request for a model reading `features` features into `out`,
/// row-major. With `missing_aware`, NaN in FP32/FP64 data is a missing value.
pub fn decode(
    body: &[u8],
    features: usize,
    max_rows: usize,
    missing_aware: bool,
    out: &mut Vec<f64>,
) -> Result<Decoded, InputError> {
    let req = ModelInferRequest::decode(body)
        .map_err(|e| bad(K::InvalidBody, format!("invalid ModelInferRequest: {e}")))?;
    let input = one_input(&req.inputs)?;
    let name = &input.name;
    let datatype = input.datatype.as_str();
    let rows = input_rows(name, datatype, &input.shape, features, max_rows)?;
    let expected = rows * features;
    out.clear();
    match (req.raw_input_contents.as_slice(), &input.contents) {
        ([], None) => return Err(bad(K::InvalidBody, format!("input {name:?} has no data"))),
        ([], Some(c)) => typed(name, datatype, c, out)?,
        ([raw], None) => {
            let width = datatype_width(datatype);
            if raw.len() != expected * width {
                return Err(bad(
                    K::InvalidShape,
                    format!(
                        "input {name:?}: shape {:?} of {datatype} takes {} bytes; raw_input_contents has {}",
                        input.shape,
                        expected * width,
                        raw.len()
                    ),
                ));
            }
            out.extend(raw.chunks_exact(width).map(|b| from_le(datatype, b)));
        }
        ([_], Some(_)) => {
            return Err(bad(
                K::InvalidBody,
                format!("input {name:?} has both contents and raw_input_contents"),
            ));
        }
        (raw, _) => {
            return Err(bad(
                K::InvalidBody,
                format!("raw_input_contents has {} entries for 1 input", raw.len()),
            ));
        }
    }
    if out.len() != expected {
        return Err(bad(
            K::InvalidShape,
            format!(
                "input {name:?}: shape {:?} holds {expected} values, contents has {}",
                input.shape,
                out.len()
            ),
        ));
    }
    check_values(name, datatype, missing_aware, out)?;
    let mut outputs = if req.outputs.is_empty() {
        Outputs::all(true)
    } else {
        Outputs::none()
    };
    for o in &req.outputs {
        outputs.add_named(&o.name, true)?;
    }
    Ok(Decoded {
        id: req.id,
        rows,
        outputs,
    })
}

/// Appends the typed contents of `datatype` (the other fields must be empty).
fn typed(
    name: &str,
    datatype: &str,
    c: &InferTensorContents,
    out: &mut Vec<f64>,
) -> Result<(), InputError> {
    let field = match datatype {
        "FP32" => "fp32_contents",
        "FP64" => "fp64_contents",
        "INT64" => "int64_contents",
        "UINT64" => "uint64_contents",
        "UINT8" | "UINT16" | "UINT32" => "uint_contents",
        _ => "int_contents",
    };
    let filled = [
        ("bool_contents", c.bool_contents.len()),
        ("int_contents", c.int_contents.len()),
        ("int64_contents", c.int64_contents.len()),
        ("uint_contents", c.uint_contents.len()),
        ("uint64_contents", c.uint64_contents.len()),
        ("fp32_contents", c.fp32_contents.len()),
        ("fp64_contents", c.fp64_contents.len()),
        ("bytes_contents", c.bytes_contents.len()),
    ];
    if let Some((other, _)) = filled.iter().find(|(f, n)| *n > 0 && *f != field) {
        return Err(bad(
            K::InvalidBody,
            format!("input {name:?} of {datatype} carries {other}; put its values in {field}"),
        ));
    }
    match field {
        "fp32_contents" => out.extend(c.fp32_contents.iter().map(|&v| v as f64)),
        "fp64_contents" => out.extend_from_slice(&c.fp64_contents),
        "int64_contents" => out.extend(c.int64_contents.iter().map(|&v| v as f64)),
        "uint64_contents" => out.extend(c.uint64_contents.iter().map(|&v| v as f64)),
        "uint_contents" => out.extend(c.uint_contents.iter().map(|&v| v as f64)),
        _ => out.extend(c.int_contents.iter().map(|&v| v as f64)),
    }
    Ok(())
}

/// A model's `ModelInfer` answer pieces.
#[derive(Debug)]
pub struct Encoder {
    name: String,
    version: String,
    labels: Vec<String>,
}

impl Encoder {
    /// The pieces for model `name` at `version` with class `labels` (none: a regressor).
    pub fn new(name: &str, version: &str, labels: &[String]) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            labels: labels.to_vec(),
        }
    }

    /// The encoded `ModelInferResponse`: each row's class (a regressor: its value in
    /// `proba`), and the `rows × classes` probabilities when asked.
    pub fn encode(
        &self,
        id: String,
        classes: &[usize],
        proba: Option<&[f64]>,
        outputs: &[Requested],
    ) -> Vec<u8> {
        let rows = classes.len() as i64;
        let regression = self.labels.is_empty();
        let mut resp = ModelInferResponse {
            model_name: self.name.clone(),
            model_version: self.version.clone(),
            id,
            ..Default::default()
        };
        for r in outputs {
            let (name, datatype, shape, raw) = match r.output {
                Output::Label if regression => {
                    let values = proba.expect("a regressor's values are always computed");
                    let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                    (PREDICT, "FP64", vec![rows], raw)
                }
                Output::Label => {
                    let mut raw = Vec::with_capacity(classes.len() * 16);
                    for &c in classes {
                        let l = self.labels[c].as_bytes();
                        raw.extend_from_slice(&(l.len() as u32).to_le_bytes());
                        raw.extend_from_slice(l);
                    }
                    (LABEL, "BYTES", vec![rows], raw)
                }
                Output::Probabilities => {
                    let p = proba.expect("probabilities are computed when asked");
                    let raw = p.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect();
                    let width = self.labels.len() as i64;
                    (PROBABILITIES, "FP32", vec![rows, width], raw)
                }
            };
            resp.outputs.push(InferOutputTensor {
                name: name.to_owned(),
                datatype: datatype.to_owned(),
                shape,
                ..Default::default()
            });
            resp.raw_output_contents.push(raw);
        }
        resp.encode_to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::super::proto::{InferInputTensor, InferRequestedOutputTensor};
    use super::*;

    fn request(datatype: &str, shape: Vec<i64>, raw: Option<Vec<u8>>) -> ModelInferRequest {
        ModelInferRequest {
            model_name: "iris".into(),
            model_version: "2".into(),
            id: "r1".into(),
            inputs: vec![InferInputTensor {
                name: "input".into(),
                datatype: datatype.into(),
                shape,
                ..Default::default()
            }],
            raw_input_contents: raw.into_iter().collect(),
            ..Default::default()
        }
    }

    fn le32(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn target_reads_the_model_version_and_id_without_decoding_the_rest() {
        let body = request("FP32", vec![1, 4], Some(le32(&[1.0; 4]))).encode_to_vec();
        assert_eq!(target(&body).unwrap(), ("iris", "2", "r1"));
        assert_eq!(target(&[]).unwrap(), ("", "", ""));
        // A length running past the end, a cut varint, an unknown wire type.
        for hostile in [&[0x0a, 0x05, b'a'][..], &[0x80], &[0x0b]] {
            let e = target(hostile).unwrap_err();
            assert_eq!(e.kind, K::InvalidBody, "{hostile:?}");
        }
        let huge = [
            0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(target(&huge).is_err());
        // A group (protobuf's deprecated wire types 3 and 4) is skipped, as the full
        // decoder skips it: found by the grpc_decode fuzz target.
        let mut grouped = request("FP32", vec![1, 4], Some(le32(&[1.0; 4]))).encode_to_vec();
        grouped.extend([0x6b, 0x12, 0x01, b'x', 0x6c]);
        assert_eq!(target(&grouped).unwrap(), ("iris", "2", "r1"));
        assert!(decode(&grouped, 4, 10, false, &mut Vec::new()).is_ok());
        // An end without its start, and a start without its end.
        assert!(target(&[0x6c]).is_err());
        assert!(target(&[0x6b, 0x12, 0x01, b'x']).is_err());
    }

    #[test]
    fn raw_and_typed_contents_decode_alike() {
        let mut out = Vec::new();
        let raw = request("FP32", vec![2, 2], Some(le32(&[1.0, 2.0, 3.0, 4.5])));
        let d = decode(&raw.encode_to_vec(), 2, 10, false, &mut out).unwrap();
        assert_eq!((d.rows, d.id.as_str()), (2, "r1"));
        assert_eq!(out, [1.0, 2.0, 3.0, 4.5]);
        let mut typed = request("FP64", vec![2, 2], None);
        typed.inputs[0].contents = Some(InferTensorContents {
            fp64_contents: vec![1.0, 2.0, 3.0, 4.5],
            ..Default::default()
        });
        decode(&typed.encode_to_vec(), 2, 10, false, &mut out).unwrap();
        assert_eq!(out, [1.0, 2.0, 3.0, 4.5]);
        let mut ints = request("INT8", vec![2], None);
        ints.inputs[0].contents = Some(InferTensorContents {
            int_contents: vec![-3, 7],
            ..Default::default()
        });
        decode(&ints.encode_to_vec(), 2, 10, false, &mut out).unwrap();
        assert_eq!(out, [-3.0, 7.0]);
    }

    #[test]
    fn each_malformed_request_gets_its_error() {
        let mut out = Vec::new();
        let kind = |r: &ModelInferRequest| {
            decode(&r.encode_to_vec(), 2, 10, false, &mut Vec::new())
                .unwrap_err()
                .kind
        };
        assert_eq!(
            kind(&request("FP32", vec![1, 3], Some(le32(&[1.0; 3])))),
            K::InvalidShape
        );
        assert_eq!(
            kind(&request("FP32", vec![1, 2], Some(le32(&[1.0; 3])))),
            K::InvalidShape
        );
        assert_eq!(
            kind(&request("FP32", vec![0, 2], Some(vec![]))),
            K::EmptyBatch
        );
        assert_eq!(
            kind(&request("FP32", vec![11, 2], Some(le32(&[1.0; 22])))),
            K::TooManyRows
        );
        assert_eq!(
            kind(&request("BYTES", vec![1, 2], Some(vec![0; 8]))),
            K::InvalidDatatype
        );
        assert_eq!(kind(&request("FP32", vec![1, 2], None)), K::InvalidBody);
        assert_eq!(
            kind(&request("FP32", vec![1, 2], Some(le32(&[f32::NAN, 1.0])))),
            K::InvalidValue
        );
        assert_eq!(
            kind(&request(
                "FP32",
                vec![1, 2],
                Some(le32(&[f32::INFINITY, 1.0]))
            )),
            K::NonFiniteValue
        );
        let mut wrong_field = request("FP32", vec![1, 2], None);
        wrong_field.inputs[0].contents = Some(InferTensorContents {
            fp64_contents: vec![1.0, 2.0],
            ..Default::default()
        });
        assert_eq!(kind(&wrong_field), K::InvalidBody);
        let mut both = request("FP32", vec![1, 2], Some(le32(&[1.0; 2])));
        both.inputs[0].contents = wrong_field.inputs[0].contents.clone();
        assert_eq!(kind(&both), K::InvalidBody);
        let mut unknown = request("FP32", vec![1, 2], Some(le32(&[1.0; 2])));
        unknown.outputs = vec![InferRequestedOutputTensor {
            name: "nope".into(),
            ..Default::default()
        }];
        assert_eq!(kind(&unknown), K::UnknownOutput);
        let e = decode(&[0xff, 0xff], 2, 10, false, &mut out).unwrap_err();
        assert_eq!(e.kind, K::InvalidBody);
        // A missing-aware model takes NaN.
        let nan = request("FP32", vec![1, 2], Some(le32(&[f32::NAN, 1.0])));
        assert!(decode(&nan.encode_to_vec(), 2, 10, true, &mut out).is_ok());
    }

    #[test]
    fn the_answer_carries_raw_outputs_in_the_order_asked() {
        let labels = ["a".to_owned(), "bb".to_owned()];
        let enc = Encoder::new("m", "3", &labels);
        let both = [
            Requested {
                output: Output::Probabilities,
                binary: true,
            },
            Requested {
                output: Output::Label,
                binary: true,
            },
        ];
        let bytes = enc.encode("x".into(), &[1, 0], Some(&[0.25, 0.75, 1.0, 0.0]), &both);
        let r = ModelInferResponse::decode(&bytes[..]).unwrap();
        assert_eq!(
            (
                r.model_name.as_str(),
                r.model_version.as_str(),
                r.id.as_str()
            ),
            ("m", "3", "x")
        );
        assert_eq!(r.outputs[0].name, PROBABILITIES);
        assert_eq!(r.outputs[0].shape, [2, 2]);
        assert_eq!(r.raw_output_contents[0], le32(&[0.25, 0.75, 1.0, 0.0]));
        assert_eq!(r.outputs[1].datatype, "BYTES");
        assert_eq!(r.raw_output_contents[1], b"\x02\0\0\0bb\x01\0\0\0a");
        let reg = Encoder::new("m", "3", &[]);
        let bytes = reg.encode(String::new(), &[0], Some(&[2.5]), &both[1..]);
        let r = ModelInferResponse::decode(&bytes[..]).unwrap();
        assert_eq!(
            (r.outputs[0].name.as_str(), r.outputs[0].datatype.as_str()),
            (PREDICT, "FP64")
        );
        assert_eq!(r.raw_output_contents[0], 2.5f64.to_le_bytes());
    }
}
