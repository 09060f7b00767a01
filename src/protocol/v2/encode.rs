//! Response encoding: a model's precomputed pieces ([`Encoder`]) and the inference
//! response, as JSON or with Triton's binary tensor data.

use super::{Output, Requested};

/// An encoded response: the JSON header and the binary section (empty unless an output
/// asked for binary data).
#[derive(Debug, Default)]
pub struct Encoded {
    /// The JSON part.
    pub json: Vec<u8>,
    /// Bytes after the JSON (Triton's binary tensor data extension).
    pub binary: Vec<u8>,
}

/// A model's precomputed response pieces.
#[derive(Debug)]
pub struct Encoder {
    /// `{"model_name":"…","model_version":"…"`.
    head: Vec<u8>,
    /// Each class label as a JSON string.
    labels_json: Vec<Vec<u8>>,
    /// Each class label.
    labels: Vec<String>,
    /// A regressor: the `label` output is the FP64 tensor `predict` of values.
    regression: bool,
}

impl Encoder {
    /// The pieces for model `name` at `version` with class `labels` (none: a regressor).
    pub fn new(name: &str, version: &str, labels: &[String]) -> Self {
        let mut head = b"{\"model_name\":".to_vec();
        write_str(&mut head, name);
        head.extend_from_slice(b",\"model_version\":");
        write_str(&mut head, version);
        let labels_json = labels
            .iter()
            .map(|l| {
                let mut v = Vec::new();
                write_str(&mut v, l);
                v
            })
            .collect();
        Self {
            head,
            labels_json,
            labels: labels.to_vec(),
            regression: labels.is_empty(),
        }
    }

    /// Encodes an inference response. `classes` holds each row's class index, `proba`
    /// the `rows × classes` probabilities when requested.
    pub fn encode(
        &self,
        id: Option<&str>,
        classes: &[usize],
        proba: Option<&[f64]>,
        outputs: &[Requested],
    ) -> Encoded {
        encode(self, id, classes, proba, outputs)
    }
}

fn encode(
    enc: &Encoder,
    id: Option<&str>,
    classes: &[usize],
    proba: Option<&[f64]>,
    outputs: &[Requested],
) -> Encoded {
    let labels = &enc.labels;
    let mut e = Encoded {
        json: Vec::with_capacity(160 + classes.len() * 20),
        binary: Vec::new(),
    };
    let j = &mut e.json;
    j.extend_from_slice(&enc.head);
    if let Some(id) = id {
        j.extend_from_slice(b",\"id\":");
        write_str(j, id);
    }
    j.extend_from_slice(b",\"outputs\":[");
    let rows = classes.len();
    for (n, r) in outputs.iter().enumerate() {
        if n > 0 {
            j.push(b',');
        }
        match r.output {
            Output::Label if enc.regression => {
                let values = proba.expect("a regressor's values are always computed");
                j.extend_from_slice(b"{\"name\":\"predict\",\"datatype\":\"FP64\",\"shape\":[");
                write_usize(j, rows);
                j.push(b']');
                if r.binary {
                    let start = e.binary.len();
                    for &v in values {
                        e.binary.extend_from_slice(&v.to_le_bytes());
                    }
                    binary_size(j, e.binary.len() - start);
                } else {
                    j.extend_from_slice(b",\"data\":[");
                    let mut buf = ryu::Buffer::new();
                    for (i, &v) in values.iter().enumerate() {
                        if i > 0 {
                            j.push(b',');
                        }
                        if v.is_finite() {
                            j.extend_from_slice(buf.format_finite(v).as_bytes());
                        } else {
                            j.extend_from_slice(b"null");
                        }
                    }
                    j.push(b']');
                }
            }
            Output::Label => {
                j.extend_from_slice(b"{\"name\":\"label\",\"datatype\":\"BYTES\",\"shape\":[");
                write_usize(j, rows);
                j.push(b']');
                if r.binary {
                    let start = e.binary.len();
                    for &c in classes {
                        let l = labels[c].as_bytes();
                        e.binary.extend_from_slice(&(l.len() as u32).to_le_bytes());
                        e.binary.extend_from_slice(l);
                    }
                    binary_size(j, e.binary.len() - start);
                } else {
                    j.extend_from_slice(b",\"data\":[");
                    for (i, &c) in classes.iter().enumerate() {
                        if i > 0 {
                            j.push(b',');
                        }
                        j.extend_from_slice(&enc.labels_json[c]);
                    }
                    j.push(b']');
                }
            }
            Output::Probabilities => {
                let p = proba.expect("probabilities computed when requested");
                j.extend_from_slice(
                    b"{\"name\":\"probabilities\",\"datatype\":\"FP32\",\"shape\":[",
                );
                write_usize(j, rows);
                j.push(b',');
                write_usize(j, labels.len());
                j.push(b']');
                if r.binary {
                    let start = e.binary.len();
                    for &v in p {
                        e.binary.extend_from_slice(&(v as f32).to_le_bytes());
                    }
                    binary_size(j, e.binary.len() - start);
                } else {
                    j.extend_from_slice(b",\"data\":[");
                    let mut buf = ryu::Buffer::new();
                    for (i, &v) in p.iter().enumerate() {
                        if i > 0 {
                            j.push(b',');
                        }
                        j.extend_from_slice(buf.format_finite(v as f32).as_bytes());
                    }
                    j.push(b']');
                }
            }
        }
        j.push(b'}');
    }
    j.extend_from_slice(b"]}");
    e
}

fn binary_size(j: &mut Vec<u8>, n: usize) {
    j.extend_from_slice(b",\"parameters\":{\"binary_data_size\":");
    write_usize(j, n);
    j.push(b'}');
}

fn write_usize(j: &mut Vec<u8>, n: usize) {
    use std::io::Write;
    write!(j, "{n}").expect("writing to a Vec cannot fail");
}

fn write_str(j: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *j, s).expect("writing to a Vec cannot fail");
}
