//! Rows decoded from any tabular form, written in feature order into a flat buffer,
//! with the errors that name what is wrong.

use std::collections::HashMap;

use serde_json::Value;

use crate::protocol::{InputError, InputErrorKind as K};

/// Rows written in feature order into a flat buffer.
pub(super) struct Rows<'a> {
    pub(super) features: &'a [String],
    pub(super) max_rows: usize,
    pub(super) null_is_missing: bool,
    pub(super) out: &'a mut Vec<f64>,
    pub(super) rows: usize,
}

impl Rows<'_> {
    /// Starts a row; refuses one over the limit.
    pub(super) fn start(&mut self) -> Result<&mut [f64], InputError> {
        if self.rows == self.max_rows {
            return Err(InputError::new(
                K::TooManyRows,
                format!(
                    "more than {} rows in one request: split the batch",
                    self.max_rows
                ),
            ));
        }
        self.rows += 1;
        let f = self.features.len();
        let at = self.out.len();
        self.out.resize(at + f, f64::NAN);
        Ok(&mut self.out[at..])
    }

    /// A JSON value as a feature value of row `row`, column `feature`.
    pub(super) fn value(&self, v: &Value, row: usize, feature: usize) -> Result<f64, InputError> {
        let name = &self.features[feature];
        match v {
            Value::Number(n) => n.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                InputError::new(
                    K::NonFiniteValue,
                    format!("row {row}, {name:?}: {n} is out of range"),
                )
            }),
            Value::Null if self.null_is_missing => Ok(f64::NAN),
            Value::Null => Err(InputError::new(
                K::InvalidValue,
                format!(
                    "row {row}, {name:?} is null: this model has no missing-value routing; \
                     send a number"
                ),
            )),
            other => Err(InputError::new(
                K::InvalidValue,
                format!(
                    "row {row}, {name:?}: expected a number, got {}",
                    truncated(other)
                ),
            )),
        }
    }

    /// A CSV cell as a feature value (empty: missing).
    pub(super) fn cell(&self, s: &str, row: usize, feature: usize) -> Result<f64, InputError> {
        let s = s.trim();
        if s.is_empty() {
            return self.value(&Value::Null, row, feature);
        }
        let name = &self.features[feature];
        match s.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(x),
            Ok(_) => Err(InputError::new(
                K::NonFiniteValue,
                format!("row {row}, {name:?}: {s:.32} is not a finite number"),
            )),
            Err(_) => Err(InputError::new(
                K::InvalidValue,
                format!("row {row}, {name:?}: expected a number, got {s:.32?}"),
            )),
        }
    }

    /// Each column's feature (`None`: a column the model does not read); every feature
    /// must have a column, once.
    pub(super) fn columns<'c>(
        &self,
        names: impl IntoIterator<Item = &'c str>,
    ) -> Result<Vec<Option<usize>>, InputError> {
        // A few features (the common case): the column in the same place, else a scan;
        // many: a map, built once.
        let index: Option<HashMap<&str, usize>> = (self.features.len() > 32).then(|| {
            self.features
                .iter()
                .enumerate()
                .map(|(i, f)| (f.as_str(), i))
                .collect()
        });
        let mut seen = vec![false; self.features.len()];
        let mut map = Vec::with_capacity(self.features.len());
        for (col, name) in names.into_iter().enumerate() {
            let i = match &index {
                Some(index) => index.get(name).copied(),
                None if self.features.get(col).is_some_and(|f| f == name) => Some(col),
                None => self.features.iter().position(|f| f == name),
            };
            if let Some(i) = i
                && std::mem::replace(&mut seen[i], true)
            {
                return Err(InputError::new(
                    K::DuplicateFeature,
                    format!("column {name:?} is given twice"),
                ));
            }
            map.push(i);
        }
        if let Some(missing) = seen.iter().position(|s| !s) {
            return Err(self.missing(missing, None));
        }
        Ok(map)
    }

    /// One row from columns mapped by [`Rows::columns`]: `convert(self, cell, row,
    /// feature)` reads each mapped cell; the model's other columns are skipped.
    pub(super) fn mapped<T>(
        &mut self,
        map: &[Option<usize>],
        cells: impl IntoIterator<Item = T>,
        convert: impl Fn(&Self, T, usize, usize) -> Result<f64, InputError>,
    ) -> Result<(), InputError> {
        let row = self.rows;
        let mut values = vec![f64::NAN; self.features.len()];
        for (cell, i) in cells.into_iter().zip(map) {
            if let Some(i) = *i {
                values[i] = convert(self, cell, row, i)?;
            }
        }
        self.start()?.copy_from_slice(&values);
        Ok(())
    }

    pub(super) fn missing(&self, feature: usize, row: Option<usize>) -> InputError {
        let at = row
            .map(|r| format!("row {r} lacks"))
            .unwrap_or("no column for".into());
        InputError::new(
            K::MissingFeature,
            format!(
                "{at} feature {:?}; the model reads {}",
                self.features[feature],
                self.features.join(", ")
            ),
        )
    }

    /// One row as a list of values in feature order.
    pub(super) fn positional(&mut self, values: &[Value], what: &str) -> Result<(), InputError> {
        let f = self.features.len();
        if values.len() != f {
            return Err(InputError::new(
                K::InvalidShape,
                format!(
                    "{what} has {} values; the model reads {f} features ({}), in that order",
                    values.len(),
                    self.features.join(", ")
                ),
            ));
        }
        let row = self.rows;
        let mut cells = Vec::with_capacity(f);
        for (i, v) in values.iter().enumerate() {
            cells.push(self.value(v, row, i)?);
        }
        self.start()?.copy_from_slice(&cells);
        Ok(())
    }

    /// One row as an object keyed by feature (other keys ignored).
    pub(super) fn named(
        &mut self,
        object: &serde_json::Map<String, Value>,
    ) -> Result<(), InputError> {
        let row = self.rows;
        let mut cells = Vec::with_capacity(self.features.len());
        for (i, name) in self.features.iter().enumerate() {
            let v = object.get(name).ok_or_else(|| self.missing(i, Some(row)))?;
            cells.push(self.value(v, row, i)?);
        }
        self.start()?.copy_from_slice(&cells);
        Ok(())
    }

    /// A list of rows, each a list (feature order) or an object.
    pub(super) fn list(&mut self, rows: &[Value], what: &str) -> Result<(), InputError> {
        for (r, row) in rows.iter().enumerate() {
            match row {
                Value::Array(values) => self.positional(values, &format!("{what}[{r}]"))?,
                Value::Object(o) => self.named(o)?,
                // One feature: a list of scalars is one value a row.
                v if self.features.len() == 1 => {
                    self.positional(std::slice::from_ref(v), &format!("{what}[{r}]"))?
                }
                other => {
                    return Err(invalid(format!(
                        "{what}[{r}] is {}: each row is a list of values in feature order \
                         or an object keyed by feature",
                        truncated(other)
                    )));
                }
            }
        }
        Ok(())
    }
}

pub(super) fn invalid(message: String) -> InputError {
    InputError::new(K::InvalidBody, message)
}

pub(super) fn truncated(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 40 {
        let cut = (0..=40).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        format!("{}…", &s[..cut])
    } else {
        s
    }
}
