//! The `/feedback` body: labels for earlier answers, by request id (and the row, for a
//! batch), or labelled rows sent with their features.

use serde::Deserialize;

use super::{InputError, InputErrorKind as K};
use crate::feedback::Truth;

/// One label.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Label {
    /// For an earlier answer's row.
    ById(ById),
    /// With the row's features.
    Row(Row),
}

/// A label for an earlier answer's row.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ById {
    /// The answer's `x-request-id`.
    pub request_id: String,
    /// The row of a batch (`None`: the only row).
    #[serde(default)]
    pub row: Option<usize>,
    /// The truth.
    #[serde(deserialize_with = "truth")]
    pub label: Truth,
}

/// A labelled row: its features as a `/score` body of one row.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    /// The row, as `/score` takes it.
    pub features: serde_json::Value,
    /// The truth.
    #[serde(deserialize_with = "truth")]
    pub label: Truth,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum LabelValue {
    Class(String),
    Value(f64),
}

fn truth<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Truth, D::Error> {
    Ok(match LabelValue::deserialize(d)? {
        LabelValue::Class(c) => Truth::Class(c),
        LabelValue::Value(v) => Truth::Value(v),
    })
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Body {
    Many(Vec<Label>),
    One(Label),
}

/// The labels in `body`: one, or a list of at most `limit`.
pub fn decode(body: &[u8], limit: usize) -> Result<Vec<Label>, InputError> {
    let labels = match serde_json::from_slice::<Body>(body) {
        Ok(Body::Many(l)) => l,
        Ok(Body::One(l)) => vec![l],
        Err(e) => {
            let kind = if e.is_data() {
                K::InvalidBody
            } else {
                K::MalformedJson
            };
            return Err(InputError::new(
                kind,
                format!(
                    "send [{{\"request_id\": \"…\", \"row\": 0, \"label\": \"class\" or a number}}, …] \
                     or [{{\"features\": {{\"name\": value, …}}, \"label\": …}}, …]: {e}"
                ),
            ));
        }
    };
    if labels.len() > limit {
        return Err(InputError::new(
            K::TooManyRows,
            format!(
                "{} labels in one request; the limit is {limit}",
                labels.len()
            ),
        ));
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_label_or_a_list_of_both_kinds() {
        let one = decode(br#"{"request_id": "a", "label": "x"}"#, 10).unwrap();
        assert!(
            matches!(&one[..], [Label::ById(ById { row: None, label: Truth::Class(c), .. })] if c == "x")
        );
        let many = decode(
            br#"[{"request_id": "a", "row": 2, "label": 1.5}, {"features": {"f": 1}, "label": "y"}]"#,
            10,
        )
        .unwrap();
        assert!(
            matches!(&many[0], Label::ById(ById { row: Some(2), label: Truth::Value(v), .. }) if *v == 1.5)
        );
        assert!(matches!(&many[1], Label::Row(_)));
    }

    #[test]
    fn bad_bodies_say_what_to_send() {
        for (body, kind) in [
            (&b"{"[..], K::MalformedJson),
            (b"[{\"request_id\": \"a\"}]", K::InvalidBody),
            (
                b"{\"request_id\": \"a\", \"label\": \"x\", \"extra\": 1}",
                K::InvalidBody,
            ),
            (b"[{\"request_id\": 1, \"label\": \"x\"}]", K::InvalidBody),
            (
                b"[{\"request_id\": \"a\", \"row\": -1, \"label\": \"x\"}]",
                K::InvalidBody,
            ),
        ] {
            let e = decode(body, 10).unwrap_err();
            assert_eq!(e.kind, kind, "{}", String::from_utf8_lossy(body));
            assert!(e.message.contains("request_id"), "{}", e.message);
        }
        let list = format!("[{}]", [r#"{"request_id": "a", "label": 1}"#; 3].join(","));
        assert_eq!(decode(list.as_bytes(), 2).unwrap_err().kind, K::TooManyRows);
    }
}
