//! Tensor datatypes: byte widths, little-endian decoding of binary tensor data, and the
//! check that each value is finite and representable in its declared datatype.

use super::bad;
use crate::protocol::{InputError, InputErrorKind as K};

pub(super) fn datatype_width(datatype: &str) -> usize {
    match datatype {
        "INT8" | "UINT8" => 1,
        "INT16" | "UINT16" => 2,
        "FP32" | "INT32" | "UINT32" => 4,
        _ => 8,
    }
}

pub(super) fn from_le(datatype: &str, b: &[u8]) -> f64 {
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
/// With `missing_aware`, NaN (a JSON `null`, or NaN in FP32/FP64 binary data) is a missing
/// value.
pub(super) fn check_values(
    name: &str,
    datatype: &str,
    missing_aware: bool,
    values: &[f64],
) -> Result<(), InputError> {
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
        if v.is_nan() {
            if missing_aware {
                continue;
            }
            return Err(bad(
                K::InvalidValue,
                format!(
                    "input {name:?}: value {i} is null (or NaN), a missing value, and this model \
                     does not route missing values"
                ),
            ));
        }
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
