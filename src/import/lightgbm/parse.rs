//! The line level of a LightGBM text model: lines (LF or CRLF), `key=value` pairs, the
//! header, one `Tree=` block at a time, and the parameters section. Nothing is sized from
//! a number the file declares: every array is counted in its line before it is allocated.

use std::collections::HashSet;
use std::str::FromStr;

use super::malformed;
use crate::import::ImportError;

/// The file's lines, numbered from 1, without their `\n` or `\r\n`.
pub(super) struct Lines<'a> {
    rest: &'a [u8],
    number: usize,
    peeked: Option<(usize, &'a str)>,
}

impl<'a> Lines<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Lines {
            rest: bytes,
            number: 0,
            peeked: None,
        }
    }

    /// The next line, or `None` at the end of the file.
    pub(super) fn next_line(&mut self) -> Result<Option<(usize, &'a str)>, ImportError> {
        if let Some(p) = self.peeked.take() {
            return Ok(Some(p));
        }
        if self.rest.is_empty() {
            return Ok(None);
        }
        let (line, rest) = match self.rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
            None => (self.rest, &self.rest[self.rest.len()..]),
        };
        self.rest = rest;
        self.number += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = std::str::from_utf8(line)
            .map_err(|_| malformed(format!("line {} is not UTF-8 text", self.number)))?;
        Ok(Some((self.number, text)))
    }

    /// Puts a line back (at most one).
    fn push_back(&mut self, line: (usize, &'a str)) {
        self.peeked = Some(line);
    }
}

/// The space-separated tokens of a value, empty tokens skipped (as LightGBM's `Split`).
pub(super) fn tokens(value: &str) -> impl Iterator<Item = &str> {
    value.split(' ').filter(|t| !t.is_empty())
}

/// A `key=value` line's value, with its line number and key for messages.
#[derive(Debug, Clone, Copy)]
pub(super) struct Field<'a> {
    pub(super) line: usize,
    pub(super) key: &'static str,
    pub(super) value: &'a str,
}

impl Field<'_> {
    /// The error "line N: key: what".
    pub(super) fn error(&self, what: impl std::fmt::Display) -> ImportError {
        malformed(format!("line {}: {}: {what}", self.line, self.key))
    }

    /// One number.
    pub(super) fn one<T: FromStr>(&self) -> Result<T, ImportError> {
        let v = self.value.trim();
        v.parse()
            .map_err(|_| self.error(format_args!("`{}` is not a valid number", short(v))))
    }

    /// Exactly `expected` numbers (counted before anything is allocated).
    pub(super) fn array<T: FromStr>(&self, expected: usize) -> Result<Vec<T>, ImportError> {
        let found = tokens(self.value).count();
        if found != expected {
            return Err(self.error(format_args!("{found} values, expected {expected}")));
        }
        let mut out = Vec::with_capacity(expected);
        for t in tokens(self.value) {
            out.push(
                t.parse().map_err(|_| {
                    self.error(format_args!("`{}` is not a valid number", short(t)))
                })?,
            );
        }
        Ok(out)
    }

    /// Exactly `expected` finite f64 values.
    pub(super) fn finite(&self, expected: usize) -> Result<Vec<f64>, ImportError> {
        let v: Vec<f64> = self.array(expected)?;
        if let Some(x) = v.iter().find(|x| !x.is_finite()) {
            return Err(self.error(format_args!("{x} is not a finite number")));
        }
        Ok(v)
    }
}

/// At most 40 characters of a token, for messages.
fn short(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// The header lines before the first tree.
#[derive(Debug, Default)]
pub(super) struct Header<'a> {
    pub(super) version: Option<Field<'a>>,
    pub(super) num_class: Option<Field<'a>>,
    pub(super) num_tree_per_iteration: Option<Field<'a>>,
    pub(super) max_feature_idx: Option<Field<'a>>,
    pub(super) objective: Option<Field<'a>>,
    pub(super) average_output: bool,
    pub(super) feature_names: Option<Field<'a>>,
    pub(super) feature_infos: Option<Field<'a>>,
    pub(super) tree_sizes: Option<Field<'a>>,
}

/// Sets a header or tree field once; a second line with the same key is an error.
fn set<'a>(
    slot: &mut Option<Field<'a>>,
    line: usize,
    key: &'static str,
    value: &'a str,
) -> Result<(), ImportError> {
    if let Some(first) = slot {
        return Err(malformed(format!(
            "line {line}: {key} appears twice (first on line {})",
            first.line
        )));
    }
    *slot = Some(Field { line, key, value });
    Ok(())
}

/// Reads the magic line and the header, stopping before the first `Tree=` or `end of
/// trees` line.
pub(super) fn header<'a>(lines: &mut Lines<'a>) -> Result<Header<'a>, ImportError> {
    match lines.next_line()? {
        Some((_, "tree")) => {}
        _ => {
            return Err(malformed(
                "the first line is not `tree`: not a LightGBM text model (Booster.save_model)",
            ));
        }
    }
    let mut h = Header::default();
    while let Some((n, line)) = lines.next_line()? {
        if line.starts_with("Tree=") || line == "end of trees" {
            lines.push_back((n, line));
            return Ok(h);
        }
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        match key {
            "version" => set(&mut h.version, n, "version", value)?,
            "num_class" => set(&mut h.num_class, n, "num_class", value)?,
            "num_tree_per_iteration" => set(
                &mut h.num_tree_per_iteration,
                n,
                "num_tree_per_iteration",
                value,
            )?,
            "max_feature_idx" => set(&mut h.max_feature_idx, n, "max_feature_idx", value)?,
            "objective" => set(&mut h.objective, n, "objective", value)?,
            "feature_names" => set(&mut h.feature_names, n, "feature_names", value)?,
            "feature_infos" => set(&mut h.feature_infos, n, "feature_infos", value)?,
            "tree_sizes" => set(&mut h.tree_sizes, n, "tree_sizes", value)?,
            "average_output" => h.average_output = true,
            _ => {} // label_index, monotone_constraints, ...: not needed to predict
        }
    }
    Err(malformed(
        "the file ends in its header: no `Tree=` or `end of trees` line (truncated?)",
    ))
}

/// The fields of one `Tree=` block that prediction needs.
#[derive(Debug, Default)]
pub(super) struct TreeText<'a> {
    /// The `Tree=` line.
    pub(super) line: usize,
    pub(super) num_leaves: Option<Field<'a>>,
    pub(super) num_cat: Option<Field<'a>>,
    pub(super) split_feature: Option<Field<'a>>,
    pub(super) threshold: Option<Field<'a>>,
    pub(super) decision_type: Option<Field<'a>>,
    pub(super) left_child: Option<Field<'a>>,
    pub(super) right_child: Option<Field<'a>>,
    pub(super) leaf_value: Option<Field<'a>>,
    pub(super) cat_boundaries: Option<Field<'a>>,
    pub(super) cat_threshold: Option<Field<'a>>,
    pub(super) is_linear: Option<Field<'a>>,
}

/// Reads the next tree block, `Tree=<index>` up to its blank line; `None` at `end of
/// trees`.
pub(super) fn next_tree<'a>(
    lines: &mut Lines<'a>,
    index: usize,
) -> Result<Option<TreeText<'a>>, ImportError> {
    let (n, line) = loop {
        match lines.next_line()? {
            None => {
                return Err(malformed(
                    "the file ends before `end of trees` (truncated?)",
                ));
            }
            Some((_, "")) => continue,
            Some(l) => break l,
        }
    };
    if line == "end of trees" {
        return Ok(None);
    }
    match line.strip_prefix("Tree=") {
        Some(i) if i.parse::<usize>().ok() == Some(index) => {}
        _ => {
            return Err(malformed(format!(
                "line {n}: expected `Tree={index}` or `end of trees`, found `{}`",
                short(line)
            )));
        }
    }
    let mut t = TreeText {
        line: n,
        ..TreeText::default()
    };
    // At the end of the file the caller finds no `end of trees`.
    while let Some((n, line)) = lines.next_line()? {
        if line.is_empty() {
            break;
        }
        if line.starts_with("Tree=") || line == "end of trees" {
            lines.push_back((n, line));
            break;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(malformed(format!(
                "line {n}: `{}` in Tree={index} is not a key=value line",
                short(line)
            )));
        };
        let slot = match key {
            "num_leaves" => (&mut t.num_leaves, "num_leaves"),
            "num_cat" => (&mut t.num_cat, "num_cat"),
            "split_feature" => (&mut t.split_feature, "split_feature"),
            "threshold" => (&mut t.threshold, "threshold"),
            "decision_type" => (&mut t.decision_type, "decision_type"),
            "left_child" => (&mut t.left_child, "left_child"),
            "right_child" => (&mut t.right_child, "right_child"),
            "leaf_value" => (&mut t.leaf_value, "leaf_value"),
            "cat_boundaries" => (&mut t.cat_boundaries, "cat_boundaries"),
            "cat_threshold" => (&mut t.cat_threshold, "cat_threshold"),
            "is_linear" => (&mut t.is_linear, "is_linear"),
            _ => continue, // split_gain, leaf_weight, leaf_count, internal_*, shrinkage
        };
        set(slot.0, n, slot.1, value)?;
    }
    Ok(Some(t))
}

/// After `end of trees`: reads the `parameters:` section (if any) far enough to know
/// whether the model has linear trees.
pub(super) fn linear_tree_parameter(lines: &mut Lines<'_>) -> Result<bool, ImportError> {
    let mut start = None;
    let mut linear = false;
    while let Some((n, line)) = lines.next_line()? {
        match (start, line) {
            (None, "parameters:") => start = Some(n),
            (None, _) => {}
            (Some(_), "end of parameters") => return Ok(linear),
            (Some(_), l) => {
                if let Some(v) = l.strip_prefix("[linear_tree: ") {
                    linear = v.starts_with(|c: char| c.is_ascii_digit() && c != '0');
                }
            }
        }
    }
    match start {
        Some(n) => Err(malformed(format!(
            "the parameters section (line {n}) has no `end of parameters` (truncated?)"
        ))),
        None => Ok(false),
    }
}

/// Feature names: exactly `count`, each unique.
pub(super) fn feature_names(field: &Field<'_>, count: usize) -> Result<Vec<String>, ImportError> {
    let found = tokens(field.value).count();
    if found != count {
        return Err(field.error(format_args!(
            "{found} names, but max_feature_idx says {count} features"
        )));
    }
    let mut seen = HashSet::with_capacity(count);
    let mut names = Vec::with_capacity(count);
    for name in tokens(field.value) {
        if !seen.insert(name) {
            return Err(field.error(format_args!("`{}` appears twice", short(name))));
        }
        names.push(name.to_string());
    }
    Ok(names)
}
