//! The Open Inference Protocol (KServe V2) REST inference body, with Triton's binary tensor
//! data extension: request decoding into row-major `f64` values, response encoding.
//!
//! A request carries one input tensor of shape `[N, F]` (or `[F]` for one row), datatype
//! `FP32`, `FP64` or an integer type, its data flat row-major or nested, as JSON or (with
//! `parameters.binary_data_size`) as little-endian bytes after the JSON header. The outputs
//! are the predicted label (`BYTES`, `[N]`) and the class probabilities (`FP32`, `[N, C]`).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};

use super::{InputError, InputErrorKind as K};

/// The label output's name.
pub const LABEL: &str = "label";
/// The probabilities output's name.
pub const PROBABILITIES: &str = "probabilities";
/// The input tensor's advertised name (any name is accepted).
pub const INPUT: &str = "input";
/// Input datatypes accepted.
pub const INPUT_DATATYPES: [&str; 10] = [
    "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64",
];

/// An output a request can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Predicted class labels.
    Label,
    /// Class probabilities.
    Probabilities,
}

/// One requested output and whether its data goes in the binary section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requested {
    /// Which output.
    pub output: Output,
    /// Data as bytes after the JSON header (Triton's binary tensor data extension).
    pub binary: bool,
}

/// The outputs to answer with, in order (each at most once).
#[derive(Debug, Clone, Copy)]
pub struct Outputs {
    list: [Requested; 2],
    len: usize,
}

impl Outputs {
    fn push(&mut self, r: Requested) {
        self.list[self.len] = r;
        self.len += 1;
    }

    /// The outputs, in order.
    pub fn as_slice(&self) -> &[Requested] {
        &self.list[..self.len]
    }
}

/// A decoded inference request, borrowing the body.
#[derive(Debug)]
pub struct Decoded<'a> {
    /// The request id, echoed.
    pub id: Option<Cow<'a, str>>,
    /// Rows.
    pub rows: usize,
    /// The outputs to answer with.
    pub outputs: Outputs,
}

#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    parameters: Option<RequestParameters>,
    #[serde(borrow)]
    inputs: Vec<RawInput<'a>>,
    #[serde(default, borrow)]
    outputs: Option<Vec<RawOutput<'a>>>,
}

#[derive(Deserialize, Default)]
struct RequestParameters {
    #[serde(default)]
    binary_data_output: Option<bool>,
}

#[derive(Deserialize)]
struct RawInput<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    shape: Vec<i64>,
    #[serde(borrow)]
    datatype: Cow<'a, str>,
    #[serde(default)]
    parameters: Option<InputParameters>,
    #[serde(default, borrow)]
    data: Option<&'a serde_json::value::RawValue>,
}

#[derive(Deserialize, Default)]
struct InputParameters {
    #[serde(default)]
    binary_data_size: Option<u64>,
}

#[derive(Deserialize)]
struct RawOutput<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default)]
    parameters: Option<OutputParameters>,
}

#[derive(Deserialize, Default)]
struct OutputParameters {
    #[serde(default)]
    binary_data: Option<bool>,
}

/// Appends tensor data, flattened from any nesting of arrays of numbers.
struct FlatSeed<'v>(&'v mut Vec<f64>);

impl<'de> DeserializeSeed<'de> for FlatSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FlatSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("numbers, or arrays of numbers")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.push(v);
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.push(v as f64);
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.push(v as f64);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(FlatSeed(self.0))?.is_some() {}
        Ok(())
    }
}

fn bad(kind: K, msg: impl Into<String>) -> InputError {
    InputError::new(kind, msg)
}

/// Decodes a request body for a model reading `features` features: the JSON header
/// (`json`), and `binary`, the bytes after it (empty without the binary extension). The
/// values go into `out`, row-major.
pub fn decode<'a>(
    json: &'a [u8],
    binary: &[u8],
    features: usize,
    max_rows: usize,
    out: &mut Vec<f64>,
) -> Result<Decoded<'a>, InputError> {
    if binary.is_empty()
        && let Some(d) = fast::decode(json, features, max_rows, out)
    {
        return Ok(d);
    }
    decode_serde(json, binary, features, max_rows, out)
}

fn decode_serde<'a>(
    json: &'a [u8],
    binary: &[u8],
    features: usize,
    max_rows: usize,
    out: &mut Vec<f64>,
) -> Result<Decoded<'a>, InputError> {
    let req: RawRequest<'a> = serde_json::from_slice(json).map_err(|e| {
        let kind = if e.is_data() {
            K::InvalidBody
        } else {
            K::MalformedJson
        };
        bad(kind, format!("invalid inference request: {e}"))
    })?;
    let [input] = req.inputs.as_slice() else {
        return Err(bad(
            K::InvalidBody,
            format!(
                "expected exactly one input tensor, got {}",
                req.inputs.len()
            ),
        ));
    };
    let name = &input.name;
    let datatype = input.datatype.as_ref();
    if !INPUT_DATATYPES.contains(&datatype) {
        return Err(bad(
            K::InvalidDatatype,
            format!(
                "input {name:?}: datatype {datatype:?} is not accepted; use one of {}",
                INPUT_DATATYPES.join(", ")
            ),
        ));
    }
    let rows = match input.shape.as_slice() {
        [f] if *f == features as i64 => 1,
        [n, f] if *f == features as i64 && *n >= 0 => *n as usize,
        _ => {
            return Err(bad(
                K::InvalidShape,
                format!(
                    "input {name:?}: shape {:?} does not fit the model: use [N, {features}] or [{features}]",
                    input.shape
                ),
            ));
        }
    };
    if rows == 0 {
        return Err(bad(K::EmptyBatch, format!("input {name:?} has no rows")));
    }
    if rows > max_rows {
        return Err(bad(
            K::TooManyRows,
            format!("input {name:?} has {rows} rows; the limit is {max_rows}"),
        ));
    }
    let expected = rows * features;
    out.clear();
    let binary_size = input.parameters.as_ref().and_then(|p| p.binary_data_size);
    match (&input.data, binary_size) {
        (Some(_), Some(_)) => {
            return Err(bad(
                K::InvalidBody,
                format!("input {name:?} has both data and binary_data_size"),
            ));
        }
        (None, None) => {
            return Err(bad(K::InvalidBody, format!("input {name:?} has no data")));
        }
        (Some(raw), None) => {
            let mut de = serde_json::Deserializer::from_str(raw.get());
            FlatSeed(out).deserialize(&mut de).map_err(|e| {
                bad(
                    if super::is_out_of_range(&e) {
                        K::NonFiniteValue
                    } else {
                        K::InvalidBody
                    },
                    format!("input {name:?}: data must be numbers, or arrays of numbers: {e}"),
                )
            })?;
            if out.len() != expected {
                return Err(bad(
                    K::InvalidShape,
                    format!(
                        "input {name:?}: shape {:?} holds {expected} values, data has {}",
                        input.shape,
                        out.len()
                    ),
                ));
            }
        }
        (None, Some(size)) => {
            let width = datatype_width(datatype);
            if size != (expected * width) as u64 || binary.len() as u64 != size {
                return Err(bad(
                    K::InvalidShape,
                    format!(
                        "input {name:?}: shape {:?} of {datatype} takes {} bytes; binary_data_size is {size} and {} bytes follow the JSON header",
                        input.shape,
                        expected * width,
                        binary.len()
                    ),
                ));
            }
            out.extend(binary.chunks_exact(width).map(|b| from_le(datatype, b)));
        }
    }
    check_values(name, datatype, out)?;
    let default_binary = req
        .parameters
        .as_ref()
        .and_then(|p| p.binary_data_output)
        .unwrap_or(false);
    let label = Requested {
        output: Output::Label,
        binary: default_binary,
    };
    let mut outputs = Outputs {
        list: [label; 2],
        len: 0,
    };
    match &req.outputs {
        None => {
            outputs.push(label);
            outputs.push(Requested {
                output: Output::Probabilities,
                binary: default_binary,
            });
        }
        Some(list) => {
            for o in list {
                let output = match o.name.as_ref() {
                    LABEL => Output::Label,
                    PROBABILITIES => Output::Probabilities,
                    other => {
                        return Err(bad(
                            K::UnknownOutput,
                            format!(
                                "unknown output {other:?}; the model has {LABEL:?} and {PROBABILITIES:?}"
                            ),
                        ));
                    }
                };
                if outputs.as_slice().iter().any(|r| r.output == output) {
                    return Err(bad(
                        K::InvalidBody,
                        format!("output {:?} is requested twice", o.name),
                    ));
                }
                let binary = o
                    .parameters
                    .as_ref()
                    .and_then(|p| p.binary_data)
                    .unwrap_or(default_binary);
                outputs.push(Requested { output, binary });
            }
        }
    }
    Ok(Decoded {
        id: req.id,
        rows,
        outputs,
    })
}

/// The fast path: the common request (`id`, one `FP32` or `FP64` input with `name`,
/// `shape` and `data` flat or nested one level, `outputs` naming outputs only) parsed
/// without serde. Anything else, including every error, returns `None` and takes the serde
/// path, which gives the same values and the precise error messages.
mod fast {
    use std::borrow::Cow;

    use super::{Decoded, Output, Outputs, Requested};
    use crate::protocol::cursor::Cursor;

    impl<'a> Cursor<'a> {
        /// A string without escapes, as UTF-8.
        fn plain_str(&mut self) -> Option<&'a str> {
            std::str::from_utf8(self.key()?).ok()
        }

        /// Numbers, or arrays of numbers, into `out`.
        fn data(&mut self, out: &mut Vec<f64>) -> Option<()> {
            self.eat(b'[')?;
            if self.eat(b']').is_some() {
                return Some(());
            }
            loop {
                if self.peek()? == b'[' {
                    self.i += 1;
                    loop {
                        out.push(self.number()?);
                        if !self.next_or_end(b']')? {
                            break;
                        }
                    }
                } else {
                    out.push(self.number()?);
                }
                if !self.next_or_end(b']')? {
                    return Some(());
                }
            }
        }

        fn shape(&mut self) -> Option<([u64; 2], usize)> {
            self.eat(b'[')?;
            let mut dims = [0u64; 2];
            let mut n = 0;
            loop {
                self.ws();
                let start = self.i;
                if self.digits() == 0 || n == 2 {
                    return None;
                }
                dims[n] = std::str::from_utf8(&self.b[start..self.i])
                    .ok()?
                    .parse()
                    .ok()?;
                n += 1;
                if !self.next_or_end(b']')? {
                    return Some((dims, n));
                }
            }
        }
    }

    pub(super) fn decode<'a>(
        json: &'a [u8],
        features: usize,
        max_rows: usize,
        out: &mut Vec<f64>,
    ) -> Option<Decoded<'a>> {
        let mut c = Cursor { b: json, i: 0 };
        out.clear();
        let mut id = None;
        let mut input: Option<([u64; 2], usize, bool)> = None;
        let label = Requested {
            output: Output::Label,
            binary: false,
        };
        let mut outputs: Option<Outputs> = None;
        c.members(|c, key| {
            match key {
                b"id" if id.is_none() => id = Some(c.plain_str()?),
                b"inputs" if input.is_none() => {
                    c.eat(b'[')?;
                    let (mut shape, mut fp32, mut seen) = (None, None, 0u8);
                    c.members(|c, key| {
                        match key {
                            b"name" if seen & 1 == 0 => {
                                seen |= 1;
                                c.plain_str()?;
                            }
                            b"shape" if shape.is_none() => shape = Some(c.shape()?),
                            b"datatype" if fp32.is_none() => {
                                fp32 = Some(match c.plain_str()? {
                                    "FP32" => true,
                                    "FP64" => false,
                                    _ => return None,
                                })
                            }
                            b"data" if seen & 2 == 0 => {
                                seen |= 2;
                                c.data(out)?;
                            }
                            _ => return None,
                        }
                        Some(())
                    })?;
                    c.eat(b']')?;
                    let (dims, n) = shape?;
                    (seen == 3).then_some(())?;
                    input = Some((dims, n, fp32?));
                }
                b"outputs" if outputs.is_none() => {
                    let mut list = Outputs {
                        list: [label; 2],
                        len: 0,
                    };
                    c.eat(b'[')?;
                    loop {
                        c.members(|c, key| {
                            (key == b"name").then_some(())?;
                            let output = match c.plain_str()? {
                                super::LABEL => Output::Label,
                                super::PROBABILITIES => Output::Probabilities,
                                _ => return None,
                            };
                            if list.as_slice().iter().any(|r| r.output == output) {
                                return None;
                            }
                            list.push(Requested {
                                output,
                                binary: false,
                            });
                            Some(())
                        })?;
                        if !c.next_or_end(b']')? {
                            break;
                        }
                    }
                    outputs = Some(list);
                }
                _ => return None,
            }
            Some(())
        })?;
        c.ws();
        (c.i == json.len()).then_some(())?;
        let (dims, n, fp32) = input?;
        let rows = match (n, dims) {
            (1, [f, _]) if f == features as u64 => 1,
            (2, [r, f]) if f == features as u64 => usize::try_from(r).ok()?,
            _ => return None,
        };
        if rows == 0 || rows > max_rows || out.len() != rows * features {
            return None;
        }
        super::check_values("", if fp32 { "FP32" } else { "FP64" }, out).ok()?;
        let outputs = outputs.unwrap_or(Outputs {
            list: [
                label,
                Requested {
                    output: Output::Probabilities,
                    binary: false,
                },
            ],
            len: 2,
        });
        (outputs.len > 0).then_some(())?;
        Some(Decoded {
            id: id.map(Cow::Borrowed),
            rows,
            outputs,
        })
    }
}

fn datatype_width(datatype: &str) -> usize {
    match datatype {
        "INT8" | "UINT8" => 1,
        "INT16" | "UINT16" => 2,
        "FP32" | "INT32" | "UINT32" => 4,
        _ => 8,
    }
}

fn from_le(datatype: &str, b: &[u8]) -> f64 {
    let a = |n: usize| -> [u8; 8] {
        let mut x = [0u8; 8];
        x[..n].copy_from_slice(&b[..n]);
        x
    };
    match datatype {
        "FP32" => f32::from_le_bytes(b.try_into().expect("4 bytes")) as f64,
        "FP64" => f64::from_le_bytes(b.try_into().expect("8 bytes")),
        "INT8" => b[0] as i8 as f64,
        "UINT8" => b[0] as f64,
        "INT16" => i16::from_le_bytes(b.try_into().expect("2 bytes")) as f64,
        "UINT16" => u16::from_le_bytes(b.try_into().expect("2 bytes")) as f64,
        "INT32" => i32::from_le_bytes(b.try_into().expect("4 bytes")) as f64,
        "UINT32" => u32::from_le_bytes(b.try_into().expect("4 bytes")) as f64,
        "INT64" => i64::from_le_bytes(a(8)) as f64,
        _ => u64::from_le_bytes(a(8)) as f64,
    }
}

/// Finite, and representable in the declared datatype.
fn check_values(name: &str, datatype: &str, values: &[f64]) -> Result<(), InputError> {
    let (lo, hi, integer) = match datatype {
        "FP32" => (-(f32::MAX as f64), f32::MAX as f64, false),
        "FP64" => (f64::MIN, f64::MAX, false),
        "INT8" => (i8::MIN as f64, i8::MAX as f64, true),
        "UINT8" => (0.0, u8::MAX as f64, true),
        "INT16" => (i16::MIN as f64, i16::MAX as f64, true),
        "UINT16" => (0.0, u16::MAX as f64, true),
        "INT32" => (i32::MIN as f64, i32::MAX as f64, true),
        "UINT32" => (0.0, u32::MAX as f64, true),
        "INT64" => (i64::MIN as f64, i64::MAX as f64, true),
        _ => (0.0, u64::MAX as f64, true),
    };
    for (i, &v) in values.iter().enumerate() {
        if !v.is_finite() {
            return Err(bad(
                K::NonFiniteValue,
                format!("input {name:?}: value {i} is not finite"),
            ));
        }
        if v < lo || v > hi || (integer && v.fract() != 0.0) {
            return Err(bad(
                K::InvalidValue,
                format!("input {name:?}: value {i} ({v}) is not a valid {datatype}"),
            ));
        }
    }
    Ok(())
}

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
}

impl Encoder {
    /// The pieces for model `name` at `version` with class `labels`.
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

#[cfg(test)]
mod tests {
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
            format!(
                r#"{{"inputs":[{{"name":"x","shape":{shape},"datatype":"{dt}","data":{data}}}]}}"#
            )
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
            let slow = decode_serde(body.as_bytes(), &[], 4, 3, &mut a);
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
}
