//! The full decoding path, through serde: streams the JSON straight into the flat buffer
//! (no intermediate map, no per-key allocation) and explains every error.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::Decoded;
use crate::protocol::{InputError, InputErrorKind as K};

struct Ctx<'a> {
    features: &'a [String],
    max_rows: usize,
    /// `null` is a missing value (NaN), for a model that routes them.
    null_is_missing: bool,
    out: &'a mut Vec<f64>,
    err: Option<InputError>,
}

impl Ctx<'_> {
    fn fail<E: de::Error>(&mut self, kind: K, message: String) -> E {
        let e = E::custom(&message);
        self.err = Some(InputError::new(kind, message));
        e
    }
}

fn at(row: Option<usize>) -> String {
    row.map(|r| format!(" in row {r}")).unwrap_or_default()
}

/// The full decoder (serde), which also explains every error.
pub(super) fn decode_serde(
    body: &[u8],
    features: &[String],
    max_rows: usize,
    null_is_missing: bool,
    out: &mut Vec<f64>,
) -> Result<Decoded, InputError> {
    out.clear();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(InputError::new(
            K::InvalidBody,
            format!("the request body is empty: {SHAPE}"),
        ));
    }
    let mut ctx = Ctx {
        features,
        max_rows,
        null_is_missing,
        out,
        err: None,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let result = TopSeed(&mut ctx)
        .deserialize(&mut de)
        .and_then(|d| de.end().map(|()| d));
    match result {
        Ok(d) => Ok(d),
        Err(e) => Err(ctx.err.take().unwrap_or_else(|| json_error(&e))),
    }
}

fn json_error(e: &serde_json::Error) -> InputError {
    let msg = e.to_string();
    if crate::protocol::is_out_of_range(e) {
        return InputError::new(
            K::NonFiniteValue,
            format!("a number is out of range: {msg}"),
        );
    }
    match e.classify() {
        serde_json::error::Category::Eof => {
            InputError::new(K::MalformedJson, format!("the JSON body ends early: {msg}"))
        }
        _ => InputError::new(K::MalformedJson, format!("malformed JSON: {msg}")),
    }
}

const SHAPE: &str = "the body must be a JSON object of feature values (one row) or an array of such objects (a batch)";

struct TopSeed<'c, 'a>(&'c mut Ctx<'a>);

impl<'de> DeserializeSeed<'de> for TopSeed<'_, '_> {
    type Value = Decoded;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Decoded, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_, '_> {
    type Value = Decoded;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(SHAPE)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Decoded, A::Error> {
        read_row(self.0, map, None)?;
        Ok(Decoded {
            rows: 1,
            batch: false,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Decoded, A::Error> {
        let ctx = self.0;
        let mut rows = 0;
        loop {
            if rows == ctx.max_rows {
                // One more element means over the limit.
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    let max = ctx.max_rows;
                    return Err(ctx.fail(
                        K::TooManyRows,
                        format!("the batch has more than {max} rows (the server's row limit)"),
                    ));
                }
                break;
            }
            if seq.next_element_seed(RowSeed { ctx, row: rows })?.is_none() {
                break;
            }
            rows += 1;
        }
        if rows == 0 {
            return Err(ctx.fail(
                K::EmptyBatch,
                "the batch is empty: send at least one row".into(),
            ));
        }
        Ok(Decoded { rows, batch: true })
    }

    fn visit_unit<E: de::Error>(self) -> Result<Decoded, E> {
        Err(self.0.fail(K::InvalidBody, format!("{SHAPE}, not null")))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Decoded, E> {
        Err(self
            .0
            .fail(K::InvalidBody, format!("{SHAPE}, not a boolean")))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Decoded, E> {
        Err(self
            .0
            .fail(K::InvalidBody, format!("{SHAPE}, not a number")))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Decoded, E> {
        Err(self
            .0
            .fail(K::InvalidBody, format!("{SHAPE}, not a number")))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Decoded, E> {
        Err(self
            .0
            .fail(K::InvalidBody, format!("{SHAPE}, not a number")))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Decoded, E> {
        Err(self
            .0
            .fail(K::InvalidBody, format!("{SHAPE}, not a string")))
    }
}

struct RowSeed<'c, 'a> {
    ctx: &'c mut Ctx<'a>,
    row: usize,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of feature values")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        read_row(self.ctx, map, Some(self.row))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.not_object("an array"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.not_object("null"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.not_object("a boolean"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self.not_object("a number"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self.not_object("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self.not_object("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.not_object("a string"))
    }
}

impl RowSeed<'_, '_> {
    fn not_object<E: de::Error>(self, what: &str) -> E {
        let row = self.row;
        self.ctx.fail(
            K::InvalidBody,
            format!("row {row} of the batch is {what}, not an object of feature values"),
        )
    }
}

/// A slot no key has filled yet: a NaN with its own payload, told apart from a `null`
/// (a missing value, the plain NaN) by its bits.
const UNSET: u64 = 0x7ff8_dead_beef_0001;

fn unset(v: f64) -> bool {
    v.to_bits() == UNSET
}

fn read_row<'de, A: MapAccess<'de>>(
    ctx: &mut Ctx<'_>,
    mut map: A,
    row: Option<usize>,
) -> Result<(), A::Error> {
    let start = ctx.out.len();
    let n = ctx.features.len();
    ctx.out.resize(start + n, f64::from_bits(UNSET));
    while let Some(key) = map.next_key_seed(KeySeed(ctx.features))? {
        let i = match key {
            Ok(i) => i,
            Err(name) => {
                let msg = format!(
                    "unknown feature {name:?}{}; the model's features are {}",
                    at(row),
                    ctx.features.join(", ")
                );
                return Err(ctx.fail(K::UnknownFeature, msg));
            }
        };
        if !unset(ctx.out[start + i]) {
            let msg = format!("feature {:?} appears twice{}", ctx.features[i], at(row));
            return Err(ctx.fail(K::DuplicateFeature, msg));
        }
        let v = map.next_value_seed(ValueSeed {
            ctx,
            feature: i,
            row,
        })?;
        ctx.out[start + i] = v;
    }
    if let Some(i) = ctx.out[start..].iter().position(|&v| unset(v)) {
        let msg = format!("missing feature {:?}{}", ctx.features[i], at(row));
        return Err(ctx.fail(K::MissingFeature, msg));
    }
    Ok(())
}

/// Resolves a key to a feature index; `Err(name)` for an unknown key.
struct KeySeed<'a>(&'a [String]);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Result<usize, String>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Result<usize, String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a feature name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self
            .0
            .iter()
            .position(|f| f == v)
            .ok_or_else(|| truncate(v)))
    }
}

fn truncate(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

struct ValueSeed<'c, 'a> {
    ctx: &'c mut Ctx<'a>,
    feature: usize,
    row: Option<usize>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = f64;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<f64, D::Error> {
        d.deserialize_any(self)
    }
}

impl ValueSeed<'_, '_> {
    fn wrong<E: de::Error>(self, what: &str) -> E {
        let msg = format!(
            "feature {:?}{} must be a number, not {what}",
            self.ctx.features[self.feature],
            at(self.row)
        );
        self.ctx.fail(K::InvalidValue, msg)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        if v.is_finite() {
            Ok(v)
        } else {
            let msg = format!(
                "feature {:?}{} is not finite",
                self.ctx.features[self.feature],
                at(self.row)
            );
            Err(self.ctx.fail(K::NonFiniteValue, msg))
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<f64, E> {
        Err(self.wrong("a string"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<f64, E> {
        Err(self.wrong("a boolean"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
        if self.ctx.null_is_missing {
            return Ok(f64::NAN);
        }
        Err(self.wrong("null (this model does not route missing values)"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<f64, A::Error> {
        Err(self.wrong("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<f64, A::Error> {
        Err(self.wrong("an object"))
    }
}
