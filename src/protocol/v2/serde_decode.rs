//! The full decoding path, through serde: every request shape the protocol allows, nested
//! data, Triton's binary tensor data, and the precise error for each malformed request.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};

use super::datatype::{check_values, datatype_width, from_le};
use super::{Decoded, Outputs, bad, input_rows, one_input};
use crate::protocol::{InputError, InputErrorKind as K};

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
/// The values, and whether `null` is a missing value (NaN).
struct FlatSeed<'v>(&'v mut Vec<f64>, bool);

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
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        // A missing value; `check_values` refuses it for a model that does not route them.
        self.0.push(f64::NAN);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(FlatSeed(self.0, self.1))?.is_some() {}
        Ok(())
    }
}

/// Decodes a request through serde: see [`super::decode`].
pub(super) fn decode_serde<'a>(
    json: &'a [u8],
    binary: &[u8],
    features: usize,
    max_rows: usize,
    missing_aware: bool,
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
    let input = one_input(&req.inputs)?;
    let name = &input.name;
    let datatype = input.datatype.as_ref();
    let rows = input_rows(name, datatype, &input.shape, features, max_rows)?;
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
            FlatSeed(out, missing_aware)
                .deserialize(&mut de)
                .map_err(|e| {
                    bad(
                        if crate::protocol::is_out_of_range(&e) {
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
    check_values(name, datatype, missing_aware, out)?;
    let default_binary = req
        .parameters
        .as_ref()
        .and_then(|p| p.binary_data_output)
        .unwrap_or(false);
    let outputs = match &req.outputs {
        None => Outputs::all(default_binary),
        Some(list) => {
            let mut outputs = Outputs::none();
            for o in list {
                let binary = o
                    .parameters
                    .as_ref()
                    .and_then(|p| p.binary_data)
                    .unwrap_or(default_binary);
                outputs.add_named(&o.name, binary)?;
            }
            outputs
        }
    };
    Ok(Decoded {
        id: req.id,
        rows,
        outputs,
    })
}
