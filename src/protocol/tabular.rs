//! The scoring contracts of MLflow (`/invocations`: also SageMaker's container contract)
//! and of KServe V1 / TF Serving's REST API (`/v1/models/{m}:predict`): rows as a pandas
//! DataFrame or as tensors, answered `{"predictions": [...]}`.
//!
//! JSON bodies hold exactly one of
//! - `dataframe_split`: `{"columns": [...], "data": [[...], ...]}` (columns optional: then
//!   the values are in the model's feature order),
//! - `dataframe_records`: `[{"feature": value, ...}, ...]`,
//! - `instances` or `inputs`: a list of rows, each a list in feature order or an object
//!   keyed by feature; `inputs` may also be columnar, `{"feature": [values...], ...}`,
//!
//! and optionally `params` (ignored: treeserve's models take none). CSV bodies
//! (`text/csv`) have a header row. Columns the model does not read are ignored, as MLflow
//! ignores them; every feature must be present. `null` (or an empty CSV cell) is a missing
//! value for a model that routes them, an error otherwise.

mod fast;
mod rows;

use std::io::Write;

use serde_json::Value;

use super::{InputError, InputErrorKind as K};
use crate::model::Model;
use rows::{Rows, invalid, truncated};

/// The JSON forms, for messages.
const FORMS: &str = "a JSON object with one of dataframe_split, dataframe_records, instances \
     or inputs (MLflow's scoring protocol), or text/csv with a header row";

/// Decodes a JSON body (one of the forms above) into `out` (cleared first), `rows ×
/// features.len()` values in feature order; returns the rows.
///
/// ```
/// use treeserve::protocol::tabular;
/// let features = ["a".to_string(), "b".to_string()];
/// let mut out = Vec::new();
/// let body = br#"{"dataframe_split": {"columns": ["b", "id", "a"], "data": [[2, 7, 1], [4, 8, 3]]}}"#;
/// assert_eq!(tabular::decode_json(body, &features, 100, false, &mut out), Ok(2));
/// assert_eq!(out, [1.0, 2.0, 3.0, 4.0]);
/// assert_eq!(tabular::decode_json(br#"{"instances": [[1, 2]]}"#, &features, 100, false, &mut out), Ok(1));
/// ```
pub fn decode_json(
    body: &[u8],
    features: &[String],
    max_rows: usize,
    null_is_missing: bool,
    out: &mut Vec<f64>,
) -> Result<usize, InputError> {
    if let Some(rows) = fast::decode(body, features, max_rows, out) {
        return Ok(rows);
    }
    decode_json_serde(body, features, max_rows, null_is_missing, out)
}

/// [`decode_json`] through serde: every form, and the precise error of each mistake.
fn decode_json_serde(
    body: &[u8],
    features: &[String],
    max_rows: usize,
    null_is_missing: bool,
    out: &mut Vec<f64>,
) -> Result<usize, InputError> {
    out.clear();
    let top: Value = serde_json::from_slice(body).map_err(|e| {
        if super::is_out_of_range(&e) {
            InputError::new(K::NonFiniteValue, format!("a number is out of range: {e}"))
        } else {
            InputError::new(K::MalformedJson, format!("malformed JSON: {e}"))
        }
    })?;
    let Value::Object(top) = top else {
        return Err(invalid(format!(
            "the body is {}; send {FORMS}",
            truncated(&top)
        )));
    };
    let mut form = None;
    for (key, value) in &top {
        match key.as_str() {
            "dataframe_split" | "dataframe_records" | "instances" | "inputs" => {
                if let Some((first, _)) = form.replace((key.as_str(), value)) {
                    return Err(invalid(format!(
                        "the body has both {first} and {key}: send exactly one"
                    )));
                }
            }
            "params" => {}
            other => {
                return Err(invalid(format!("unknown field {other:.40?}: send {FORMS}")));
            }
        }
    }
    let Some((key, value)) = form else {
        return Err(invalid(format!("no rows: send {FORMS}")));
    };
    let mut rows = Rows {
        features,
        max_rows,
        null_is_missing,
        out,
        rows: 0,
    };
    match (key, value) {
        ("dataframe_split", Value::Object(split)) => {
            let data = match split.get("data") {
                Some(Value::Array(d)) => d,
                _ => {
                    return Err(invalid(
                        "dataframe_split needs \"data\": a list of rows (and \"columns\": their \
                         names)"
                            .into(),
                    ));
                }
            };
            match split.get("columns") {
                None | Some(Value::Null) => rows.list(data, "dataframe_split.data")?,
                Some(Value::Array(names)) => {
                    let names: Vec<&str> = names
                        .iter()
                        .map(|n| {
                            n.as_str().ok_or_else(|| {
                                invalid(format!(
                                    "dataframe_split.columns holds {}: column names are strings",
                                    truncated(n)
                                ))
                            })
                        })
                        .collect::<Result<_, _>>()?;
                    let map = rows.columns(names.iter().copied())?;
                    for (r, row) in data.iter().enumerate() {
                        let Value::Array(values) = row else {
                            return Err(invalid(format!(
                                "dataframe_split.data[{r}] is {}: a list of values, one per column",
                                truncated(row)
                            )));
                        };
                        if values.len() != map.len() {
                            return Err(InputError::new(
                                K::InvalidShape,
                                format!(
                                    "dataframe_split.data[{r}] has {} values for {} columns",
                                    values.len(),
                                    map.len()
                                ),
                            ));
                        }
                        rows.mapped(&map, values, Rows::value)?;
                    }
                }
                Some(other) => {
                    return Err(invalid(format!(
                        "dataframe_split.columns is {}: a list of column names",
                        truncated(other)
                    )));
                }
            }
        }
        ("dataframe_records", Value::Array(list)) => {
            for (r, row) in list.iter().enumerate() {
                let Value::Object(o) = row else {
                    return Err(invalid(format!(
                        "dataframe_records[{r}] is {}: each record is an object keyed by column",
                        truncated(row)
                    )));
                };
                rows.named(o)?;
            }
        }
        ("instances" | "inputs", Value::Array(list)) => rows.list(list, key)?,
        ("inputs", Value::Object(columns)) => {
            // Columnar: {"feature": [values...], ...}.
            let mut len = None;
            for (name, values) in columns {
                let Value::Array(values) = values else {
                    return Err(invalid(format!(
                        "inputs.{name:.40}: columnar inputs are lists of values"
                    )));
                };
                if *len.get_or_insert(values.len()) != values.len() {
                    return Err(InputError::new(
                        K::InvalidShape,
                        "inputs: the columns have different lengths".to_string(),
                    ));
                }
            }
            let map = rows.columns(columns.keys().map(String::as_str))?;
            let cols: Vec<&Vec<Value>> = columns
                .values()
                .map(|v| v.as_array().expect("checked above"))
                .collect();
            for r in 0..len.unwrap_or(0) {
                rows.mapped(&map, cols.iter().map(|col| &col[r]), Rows::value)?;
            }
        }
        (key, other) => {
            return Err(invalid(format!(
                "{key} is {}: {}",
                truncated(other),
                match key {
                    "dataframe_split" => "an object {\"columns\": [...], \"data\": [[...]]}",
                    "dataframe_records" => "a list of objects keyed by column",
                    _ => "a list of rows",
                }
            )));
        }
    }
    if rows.rows == 0 {
        return Err(InputError::new(
            K::EmptyBatch,
            "no rows to score".to_string(),
        ));
    }
    Ok(rows.rows)
}

/// Decodes a CSV body with a header row into `out` (cleared first); returns the rows.
pub fn decode_csv(
    body: &[u8],
    features: &[String],
    max_rows: usize,
    null_is_missing: bool,
    out: &mut Vec<f64>,
) -> Result<usize, InputError> {
    out.clear();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        // The body is in memory: the reader's default 8 KB buffer would only be copied into.
        .buffer_capacity(body.len().clamp(64, 8 << 10))
        .from_reader(body);
    let header = reader
        .headers()
        .map_err(|e| invalid(format!("the CSV header cannot be read: {e}")))?
        .clone();
    let mut rows = Rows {
        features,
        max_rows,
        null_is_missing,
        out,
        rows: 0,
    };
    let map = rows.columns(header.iter().map(str::trim))?;
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                return Err(InputError::new(
                    K::InvalidShape,
                    format!("CSV row {}: {e}", rows.rows),
                ));
            }
        }
        rows.mapped(&map, record.iter(), Rows::cell)?;
    }
    if rows.rows == 0 {
        return Err(InputError::new(
            K::EmptyBatch,
            "the CSV has a header but no rows".to_string(),
        ));
    }
    Ok(rows.rows)
}

/// `{"predictions": [...]}` for one model, precomputed at load: each class's label as
/// MLflow answers it (a number when every label is an integer, as for a model trained on
/// integer labels; a string otherwise).
#[derive(Debug, Clone)]
pub struct Encoder {
    labels: Vec<String>,
    regression: bool,
}

impl Encoder {
    /// Precomputes the encoding for `model`.
    pub fn new(model: &Model) -> Self {
        let classes = model.classes();
        let integers = !classes.is_empty()
            && classes
                .iter()
                .all(|c| c.parse::<i64>().is_ok_and(|n| n.to_string() == *c));
        let labels = classes
            .iter()
            .map(|c| {
                if integers {
                    c.clone()
                } else {
                    serde_json::to_string(c).expect("strings serialize")
                }
            })
            .collect();
        Self {
            labels,
            regression: model.is_regression(),
        }
    }

    /// The answer: each row's class, or (a regressor) each row's value from `values`.
    pub fn encode(&self, classes: &[usize], values: Option<&[f64]>) -> Vec<u8> {
        let mut out = Vec::with_capacity(18 + classes.len() * 16);
        out.extend_from_slice(b"{\"predictions\":[");
        if self.regression {
            let mut buf = ryu::Buffer::new();
            for (i, &v) in values.unwrap_or_default().iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if v.is_finite() {
                    out.extend_from_slice(buf.format_finite(v).as_bytes());
                } else {
                    out.extend_from_slice(b"null");
                }
            }
        } else {
            for (i, &c) in classes.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = out.write_all(self.labels[c].as_bytes());
            }
        }
        out.extend_from_slice(b"]}");
        out
    }
}

#[cfg(test)]
mod tests;
