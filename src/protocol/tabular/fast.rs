//! The fast decoding path of the common JSON bodies, without serde: `dataframe_split`
//! (`columns`, an `index` of numbers, `data`), `dataframe_records`, and `instances` or
//! `inputs` as lists of rows in feature order, every value a number, at most 64 features
//! and columns. Anything else, including every error, returns `None` and takes the serde
//! path, which gives the same values and the precise error messages.

use crate::protocol::cursor::Cursor;

/// Most features (and columns) the fast path maps.
const MAX: usize = 64;
/// A column the model does not read.
const SKIP: u8 = u8::MAX;

/// Decodes `body` into `out` (cleared first); the rows, or `None` for the serde path.
pub(super) fn decode(
    body: &[u8],
    features: &[String],
    max_rows: usize,
    out: &mut Vec<f64>,
) -> Option<usize> {
    if features.is_empty() || features.len() > MAX {
        return None;
    }
    let mut c = Cursor { b: body, i: 0 };
    out.clear();
    let mut rows = None;
    c.members(|c, key| {
        if rows.is_some() {
            return None;
        }
        rows = Some(match key {
            b"dataframe_split" => split(c, features, max_rows, out)?,
            b"instances" | b"inputs" => list(c, None, features.len(), max_rows, out)?,
            b"dataframe_records" => records(c, features, max_rows, out)?,
            _ => return None,
        });
        Some(())
    })?;
    c.ws();
    (c.i == body.len()).then_some(())?;
    rows.filter(|r| (1..=max_rows).contains(r))
}

/// The feature a name is, if the model reads it.
fn feature(features: &[String], name: &[u8]) -> Option<usize> {
    features.iter().position(|f| f.as_bytes() == name)
}

/// `{"columns": [...], "index": [...], "data": [[...], ...]}`, columns before data.
fn split(
    c: &mut Cursor<'_>,
    features: &[String],
    max_rows: usize,
    out: &mut Vec<f64>,
) -> Option<usize> {
    let mut map: Option<([u8; MAX], usize)> = None;
    let mut rows = None;
    c.members(|c, key| {
        match key {
            b"columns" if map.is_none() && rows.is_none() => map = Some(columns(c, features)?),
            b"index" => {
                c.eat(b'[')?;
                if c.eat(b']').is_none() {
                    loop {
                        c.number()?;
                        if !c.next_or_end(b']')? {
                            break;
                        }
                    }
                }
            }
            b"data" if rows.is_none() => {
                let m = map.as_ref().map(|(m, n)| &m[..*n]);
                rows = Some(list(c, m, features.len(), max_rows, out)?);
            }
            _ => return None,
        }
        Some(())
    })?;
    rows
}

/// Column names: each column's feature (or [`SKIP`]), every feature exactly once.
fn columns(c: &mut Cursor<'_>, features: &[String]) -> Option<([u8; MAX], usize)> {
    let mut map = [SKIP; MAX];
    let (mut n, mut seen) = (0, 0u64);
    c.eat(b'[')?;
    loop {
        let name = c.key()?;
        (n < MAX).then_some(())?;
        if let Some(f) = feature(features, name) {
            (seen & (1 << f) == 0).then_some(())?;
            seen |= 1 << f;
            map[n] = f as u8;
        }
        n += 1;
        if !c.next_or_end(b']')? {
            break;
        }
    }
    (seen.count_ones() as usize == features.len()).then_some((map, n))
}

/// `[[v, ...], ...]`: each row's values by `map` (column → feature), or in feature order.
fn list(
    c: &mut Cursor<'_>,
    map: Option<&[u8]>,
    features: usize,
    max_rows: usize,
    out: &mut Vec<f64>,
) -> Option<usize> {
    let width = map.map_or(features, <[u8]>::len);
    let mut rows = 0;
    c.eat(b'[')?;
    loop {
        rows += 1;
        (rows <= max_rows).then_some(())?;
        let base = out.len();
        out.resize(base + features, 0.0);
        c.eat(b'[')?;
        for j in 0..width {
            if j > 0 {
                c.eat(b',')?;
            }
            let v = c.number()?;
            match map {
                None => out[base + j] = v,
                Some(m) if m[j] != SKIP => out[base + m[j] as usize] = v,
                Some(_) => {}
            }
        }
        c.eat(b']')?;
        if !c.next_or_end(b']')? {
            return Some(rows);
        }
    }
}

/// `[{"feature": v, ...}, ...]`: every feature once; other keys' numbers ignored.
fn records(
    c: &mut Cursor<'_>,
    features: &[String],
    max_rows: usize,
    out: &mut Vec<f64>,
) -> Option<usize> {
    let mut rows = 0;
    c.eat(b'[')?;
    loop {
        rows += 1;
        (rows <= max_rows).then_some(())?;
        let base = out.len();
        out.resize(base + features.len(), 0.0);
        let mut seen = 0u64;
        c.members(|c, key| {
            let v = c.number()?;
            if let Some(f) = feature(features, key) {
                (seen & (1 << f) == 0).then_some(())?;
                seen |= 1 << f;
                out[base + f] = v;
            }
            Some(())
        })?;
        (seen.count_ones() as usize == features.len()).then_some(())?;
        if !c.next_or_end(b']')? {
            return Some(rows);
        }
    }
}
