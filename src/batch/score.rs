//! Scoring a chunk: the fast path for chunks without quotes (fields cut at commas, exact
//! decimals), and the csv reader for any chunk, which also reports errors with their line.

use super::output::write_scored;
use super::{BatchError, Chunk, Layout, Pool};
use crate::model::Model;

/// Rows a chunk hands the model at once: the wide evaluator's largest block (m2's 30
/// features: 240 KB of values, 128 KB prepared, in L2). 256 rows before: m2 CSV → CSV
/// 1.05× slower at 200,000 rows.
const BATCH_ROWS: usize = crate::model::wide::BLOCK;

/// A chunk's rows gathered for one [`Model::predict_rows`] call, with their ids, then
/// written out in order. Without a model yet (it is still loading), it keeps every row.
pub(super) struct Batch<'m> {
    model: Option<&'m Model>,
    layout: &'m Layout,
    values: Vec<f64>,
    ids: Vec<u8>,
    id_ends: Vec<usize>,
    scores: Vec<f64>,
    classes: Vec<usize>,
    ryu: ryu::Buffer,
}

impl<'m> Batch<'m> {
    fn new(model: Option<&'m Model>, layout: &'m Layout) -> Self {
        let (f, k) = (layout.features.len(), layout.scores);
        Self {
            model,
            layout,
            values: Vec::with_capacity(BATCH_ROWS * f),
            ids: Vec::new(),
            id_ends: Vec::with_capacity(BATCH_ROWS),
            scores: Vec::with_capacity(BATCH_ROWS * k),
            classes: Vec::with_capacity(BATCH_ROWS),
            ryu: ryu::Buffer::new(),
        }
    }

    /// Adds a row (and its id); predicts and writes the batch to `out` once full.
    #[inline]
    fn push(&mut self, row: &[f64], id: Option<&[u8]>, out: &mut Vec<u8>) {
        self.values.extend_from_slice(row);
        self.ids.extend_from_slice(id.unwrap_or_default());
        self.id_ends.push(self.ids.len());
        if self.id_ends.len() == BATCH_ROWS && self.model.is_some() {
            self.flush(out);
        }
    }

    /// Predicts the rows gathered and writes them to `out` (without a model: keeps them).
    fn flush(&mut self, out: &mut Vec<u8>) {
        let (Some(model), layout) = (self.model, self.layout) else {
            return;
        };
        let n = self.id_ends.len();
        let regression = layout.regression;
        self.scores.resize(n * layout.scores, 0.0);
        self.classes.resize(n, 0);
        let want_scores = regression || layout.probabilities;
        model.predict_rows(
            &self.values,
            &mut self.scores,
            &mut self.classes,
            want_scores,
            1,
        );
        let k = layout.scores;
        let mut start = 0;
        for (i, &end) in self.id_ends.iter().enumerate() {
            let id = layout.id_column.map(|_| &self.ids[start..end]);
            let scores = &self.scores[i * k..(i + 1) * k];
            write_scored(
                regression,
                layout,
                id,
                self.classes[i],
                scores,
                &mut self.ryu,
                out,
            );
            start = end;
        }
        self.values.clear();
        self.ids.clear();
        self.id_ends.clear();
    }

    /// Rows kept while the model loaded, predicted with it: the chunk's output.
    pub(super) fn finish(mut self, model: &'m Model, mut out: Vec<u8>) -> Vec<u8> {
        self.model = Some(model);
        self.flush(&mut out);
        out
    }
}

/// A chunk's output and rows, and its batch: empty, or without a model every row kept.
pub(super) type Scored<'m> = (Vec<u8>, u64, Batch<'m>);

pub(super) fn score_chunk<'m>(
    model: Option<&'m Model>,
    layout: &'m Layout,
    chunk: &Chunk,
    columns: usize,
    out: &Pool,
) -> Result<Scored<'m>, BatchError> {
    if !chunk.quoted
        && let Some(done) = score_plain_chunk(model, layout, &chunk.bytes, columns, out.get())
    {
        return Ok(done);
    }
    score_csv_chunk(model, layout, chunk, columns)
}

/// The common case without any quote in the chunk: records are lines, fields are cut at
/// commas, numbers take [`number_at`] (else `str::parse` on the trimmed text).
/// `None` on anything the csv path must judge (a field count or a value it would
/// refuse): the caller then runs that path, which reports the error with its line.
pub(super) fn score_plain_chunk<'m>(
    model: Option<&'m Model>,
    layout: &'m Layout,
    bytes: &[u8],
    columns: usize,
    mut out: Vec<u8>,
) -> Option<Scored<'m>> {
    let f = layout.feature_columns.len();
    let mut row = vec![0.0; f];
    let mut batch = Batch::new(model, layout);
    out.reserve(bytes.len() / 2);
    // Where each wanted column goes: a feature slot, the id, or nowhere.
    const SKIP: usize = usize::MAX;
    const ID: usize = usize::MAX - 1;
    let mut slot = vec![SKIP; columns];
    for (j, &c) in layout.feature_columns.iter().enumerate() {
        slot[c] = j;
    }
    if let Some(c) = layout.id_column {
        slot[c] = ID;
    }
    let mut rows = 0u64;
    let (len, mut i) = (bytes.len(), 0);
    // One pass: fields are cut and numbers accumulated as the bytes go by.
    while i < len {
        match bytes[i] {
            b'\n' => {
                i += 1;
                continue; // the csv reader skips blank lines too
            }
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                i += 2;
                continue;
            }
            _ => {}
        }
        let mut id: &[u8] = &[];
        let mut n = 0;
        loop {
            let start = i;
            let to = *slot.get(n)?;
            // A feature's number, parsed where it starts (one pass over its bytes).
            if to < f
                && let Some((v, used)) = number_at(&bytes[start..])
            {
                row[to] = v;
                i += used;
            } else {
                while i < len && !matches!(bytes[i], b',' | b'\n' | b'\r') {
                    i += 1;
                }
                let field = &bytes[start..i];
                match to {
                    j if j < f => {
                        let v = std::str::from_utf8(field)
                            .ok()?
                            .trim()
                            .parse::<f64>()
                            .ok()?;
                        if !v.is_finite() {
                            return None;
                        }
                        row[j] = v;
                    }
                    ID => id = field,
                    _ => {}
                }
            }
            n += 1;
            match bytes.get(i) {
                Some(b',') => i += 1,
                // A lone carriage return ends a record for the csv reader: let it judge.
                Some(b'\r') if bytes.get(i + 1) != Some(&b'\n') => return None,
                Some(b'\r') => {
                    i += 2;
                    break;
                }
                Some(_) => {
                    i += 1;
                    break;
                }
                None => break,
            }
        }
        if n != columns {
            return None;
        }
        rows += 1;
        batch.push(&row, layout.id_column.map(|_| id), &mut out);
    }
    batch.flush(&mut out);
    Some((out, rows, batch))
}

/// The finite number a field starts with, and its length, when the field is exactly that
/// number (the next byte ends the field): correctly rounded, as `str::parse` would give.
/// `None` for anything else (spaces, `inf`, `nan`, junk), which `str::parse` then judges.
#[inline]
pub(super) fn number_at(bytes: &[u8]) -> Option<(f64, usize)> {
    if !matches!(bytes.first()?, b'0'..=b'9' | b'-' | b'+' | b'.') {
        return None;
    }
    let ends = |used: usize| matches!(bytes.get(used), None | Some(b',' | b'\n' | b'\r'));
    // The usual shape first: 15.6 ns a number against the general parser's 20.7
    // (`cargo bench --bench predict -- csv_numbers`).
    if let Some((v, used)) = crate::decimal::parse_prefix(bytes)
        && ends(used)
    {
        return Some((v, used));
    }
    let (v, used) = fast_float2::parse_partial::<f64, _>(bytes).ok()?;
    (ends(used) && used > 0 && v.is_finite()).then_some((v, used))
}

/// Any chunk, through the csv reader (quotes, and the errors with their lines).
pub(super) fn score_csv_chunk<'m>(
    model: Option<&'m Model>,
    layout: &'m Layout,
    chunk: &Chunk,
    columns: usize,
) -> Result<Scored<'m>, BatchError> {
    let f = layout.feature_columns.len();
    let missing_aware = layout.missing_aware;
    let mut row = vec![0.0; f];
    let mut batch = Batch::new(model, layout);
    let mut out = Vec::with_capacity(chunk.bytes.len() / 2);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_reader(&chunk.bytes[..]);
    let mut rec = csv::ByteRecord::new();
    let mut rows = 0u64;
    loop {
        match reader.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = chunk.first_line + e.position().map_or(1, |p| p.line()) - 1;
                return Err(BatchError::Csv {
                    line,
                    message: e.to_string(),
                });
            }
        }
        let line = chunk.first_line + rec.position().map_or(1, |p| p.line()) - 1;
        if rec.len() != columns {
            return Err(BatchError::Csv {
                line,
                message: format!("{} fields, the header has {columns}", rec.len()),
            });
        }
        rows += 1;
        for (j, &c) in layout.feature_columns.iter().enumerate() {
            let cell = rec.get(c).unwrap_or_default();
            if missing_aware && cell.trim_ascii().is_empty() {
                // An empty cell is a missing value for a model that routes them.
                row[j] = f64::NAN;
                continue;
            }
            let value = std::str::from_utf8(cell)
                .ok()
                .map(str::trim)
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|v| v.is_finite());
            row[j] = value.ok_or_else(|| BatchError::Value {
                line,
                column: layout.features[j].clone(),
                value: String::from_utf8_lossy(cell).into_owned(),
            })?;
        }
        let id = layout.id_column.map(|c| rec.get(c).unwrap_or_default());
        batch.push(&row, id, &mut out);
    }
    batch.flush(&mut out);
    Ok((out, rows, batch))
}
