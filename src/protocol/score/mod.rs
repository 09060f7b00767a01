//! The Azure ML `/score` contract.
//!
//! Request: one object `{"SepalLengthCm": 6.6, ...}` or an array of them (a batch).
//! Response: `{"output": {"predicted_species": "Iris-versicolor"}}`, or `{"output": [...]}`
//! for a batch, in order; with probabilities, each output also has
//! `"probabilities": {"Iris-setosa": 0.0, ...}`.
//!
//! Decoding streams the JSON straight into a flat `f64` buffer in feature order: no
//! intermediate map, no per-key allocation.

use std::fmt;
use std::io::Write;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::{InputError, InputErrorKind as K};
use crate::model::Model;

/// Shape of a decoded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Number of rows written to the buffer.
    pub rows: usize,
    /// Whether the body was an array (the response is then an array too).
    pub batch: bool,
}

struct Ctx<'a> {
    features: &'a [String],
    max_rows: usize,
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

/// Decodes a `/score` body into `out` (cleared first): `rows × features.len()` values,
/// row-major, in the order of `features`. Every feature must be present exactly once, with
/// a finite number; unknown keys are refused.
///
/// ```
/// use treeserve::protocol::{score, InputErrorKind};
/// let features = ["a".to_string(), "b".to_string()];
/// let mut out = Vec::new();
/// let d = score::decode(br#"[{"b": 2, "a": 1}, {"a": 3, "b": 4.5}]"#, &features, 100, &mut out).unwrap();
/// assert_eq!((d.rows, d.batch), (2, true));
/// assert_eq!(out, [1.0, 2.0, 3.0, 4.5]);
/// let err = score::decode(br#"{"a": 1}"#, &features, 100, &mut out).unwrap_err();
/// assert_eq!(err.kind, InputErrorKind::MissingFeature);
/// assert!(err.message.contains("\"b\""));
/// ```
pub fn decode(
    body: &[u8],
    features: &[String],
    max_rows: usize,
    out: &mut Vec<f64>,
) -> Result<Decoded, InputError> {
    out.clear();
    if let Some(d) = fast::decode(body, features, max_rows, out) {
        return Ok(d);
    }
    decode_serde(body, features, max_rows, out)
}

/// The full decoder (serde), which also explains every error.
fn decode_serde(
    body: &[u8],
    features: &[String],
    max_rows: usize,
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
    if super::is_out_of_range(e) {
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

/// The fast path: a strict subset of JSON (objects whose keys are plain feature names and
/// whose values are numbers, or an array of them) decoded without serde. Anything else,
/// including every error, returns `None` and takes the serde path, which gives the same
/// values (both parse numbers correctly rounded) and precise error messages.
mod fast {
    use super::Decoded;

    use crate::protocol::cursor::Cursor;

    impl Cursor<'_> {
        fn row(&mut self, features: &[String], out: &mut Vec<f64>) -> Option<()> {
            let start = out.len();
            out.resize(start + features.len(), f64::NAN);
            let mut seen = 0;
            self.members(|c, key| {
                // Clients usually send the features in the model's order: try that first.
                let i = match features.get(seen) {
                    Some(f) if f.as_bytes() == key => seen,
                    _ => features.iter().position(|f| f.as_bytes() == key)?,
                };
                let slot = &mut out[start + i];
                if !slot.is_nan() {
                    return None;
                }
                *slot = c.number()?;
                seen += 1;
                Some(())
            })?;
            (seen == features.len()).then_some(())
        }
    }

    pub(super) fn decode(
        body: &[u8],
        features: &[String],
        max_rows: usize,
        out: &mut Vec<f64>,
    ) -> Option<Decoded> {
        let mut c = Cursor { b: body, i: 0 };
        let decoded = match c.peek()? {
            b'{' => {
                c.row(features, out)?;
                Decoded {
                    rows: 1,
                    batch: false,
                }
            }
            b'[' => {
                c.i += 1;
                let mut rows = 0;
                loop {
                    if rows == max_rows {
                        return None;
                    }
                    c.row(features, out)?;
                    rows += 1;
                    if !c.next_or_end(b']')? {
                        break;
                    }
                }
                Decoded { rows, batch: true }
            }
            _ => return None,
        };
        c.ws();
        (c.i == body.len()).then_some(decoded)
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

fn read_row<'de, A: MapAccess<'de>>(
    ctx: &mut Ctx<'_>,
    mut map: A,
    row: Option<usize>,
) -> Result<(), A::Error> {
    let start = ctx.out.len();
    let n = ctx.features.len();
    ctx.out.resize(start + n, f64::NAN);
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
        if !ctx.out[start + i].is_nan() {
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
    if let Some(i) = ctx.out[start..].iter().position(|v| v.is_nan()) {
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
        Err(self.wrong("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<f64, A::Error> {
        Err(self.wrong("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<f64, A::Error> {
        Err(self.wrong("an object"))
    }
}

/// Response encoding for one model, precomputed at load: the single-row responses are
/// ready-made bytes, so answering one row copies nothing.
#[derive(Debug, Clone)]
pub struct Encoder {
    key: String,
    labels: Vec<String>,
    single: Vec<Box<[u8]>>,
}

impl Encoder {
    /// Precomputes the encoding for `model`.
    pub fn new(model: &Model) -> Self {
        let key = json_string(&format!(
            "predicted_{}",
            model.manifest().target.to_lowercase()
        ));
        let labels: Vec<String> = model.classes().iter().map(|c| json_string(c)).collect();
        let single = labels
            .iter()
            .map(|l| {
                format!("{{\"output\":{{{key}:{l}}}}}")
                    .into_bytes()
                    .into_boxed_slice()
            })
            .collect();
        Self {
            key,
            labels,
            single,
        }
    }

    /// The response key, e.g. `predicted_species`.
    pub fn output_key(&self) -> String {
        serde_json::from_str(&self.key).expect("key is JSON")
    }

    /// The response for one row predicted as `class`, without probabilities.
    pub fn single(&self, class: usize) -> &[u8] {
        &self.single[class]
    }

    /// Encodes any response: `classes[i]` for each row, `proba` (`rows × classes`) if asked
    /// for, as an array when `batch`.
    pub fn encode(&self, classes: &[usize], proba: Option<&[f64]>, batch: bool) -> Vec<u8> {
        if !batch && proba.is_none() && classes.len() == 1 {
            return self.single[classes[0]].to_vec();
        }
        let k = self.labels.len();
        let per_row = self.key.len() + 24 + proba.map_or(0, |_| k * 40);
        let mut out = Vec::with_capacity(16 + classes.len() * per_row);
        out.extend_from_slice(b"{\"output\":");
        if batch {
            out.push(b'[');
        }
        for (i, &c) in classes.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'{');
            out.extend_from_slice(self.key.as_bytes());
            out.push(b':');
            out.extend_from_slice(self.labels[c].as_bytes());
            if let Some(p) = proba {
                out.extend_from_slice(b",\"probabilities\":{");
                for (j, v) in p[i * k..(i + 1) * k].iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(self.labels[j].as_bytes());
                    let _ = write!(out, ":{v}");
                }
                out.push(b'}');
            }
            out.push(b'}');
        }
        if batch {
            out.push(b']');
        }
        out.push(b'}');
        out
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

#[cfg(test)]
mod tests {
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
            let slow = decode_serde(body.as_bytes(), &f, 3, &mut a);
            if let Some(fast) = fast::decode(body.as_bytes(), &f, 3, &mut b) {
                prop_assert_eq!(Ok(fast), slow.clone(), "{}", body);
                prop_assert_eq!(a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), b.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
            }
            let mut c = Vec::new();
            prop_assert_eq!(decode(body.as_bytes(), &f, 3, &mut c), slow);
        }
    }
}
