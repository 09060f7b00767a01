//! An MLflow alias has no history; treeserve keeps one, for `rollback`, in a registered
//! model tag `treeserve.history.ALIAS` (JSON: the version the alias pointed to when the
//! tag was written, the versions before it, and when). An alias moved in MLflow itself
//! leaves the tag behind: the tag's version is then where the alias was before the move.

use serde::{Deserialize, Serialize};

use super::super::AliasRecord;
use crate::registry::HISTORY_LIMIT;

/// The tag key of an alias's history.
pub(super) fn tag_key(alias: &str) -> String {
    format!("treeserve.history.{alias}")
}

/// The tag's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Tag {
    /// The version the alias pointed to when the tag was written.
    pub version: u64,
    /// Versions before it, oldest first.
    #[serde(default)]
    pub history: Vec<u64>,
    /// When the alias was moved by treeserve, RFC 3339.
    #[serde(default)]
    pub updated: String,
}

/// The alias record of an alias that points to `version`, given its history tag (absent or
/// unreadable: no history).
pub(super) fn record(version: u64, tag: Option<&str>) -> AliasRecord {
    let tag: Option<Tag> = tag.and_then(|t| serde_json::from_str(t).ok());
    match tag {
        Some(t) if t.version == version => AliasRecord {
            version,
            history: t.history,
            updated: t.updated,
        },
        // Moved in MLflow since treeserve last moved it: from the tag's version.
        Some(mut t) => {
            t.history.push(t.version);
            trim(&mut t.history);
            AliasRecord {
                version,
                history: t.history,
                updated: String::new(),
            }
        }
        None => AliasRecord {
            version,
            history: Vec::new(),
            updated: String::new(),
        },
    }
}

/// The record after pointing the alias (now `old`, if it exists) at `version`.
pub(super) fn moved(old: Option<AliasRecord>, version: u64, now: String) -> AliasRecord {
    AliasRecord::moved_at(old, version, now)
}

/// The tag value that records `rec`.
pub(super) fn tag_value(rec: &AliasRecord) -> String {
    serde_json::to_string(&Tag {
        version: rec.version,
        history: rec.history.clone(),
        updated: rec.updated.clone(),
    })
    .expect("a tag serializes")
}

fn trim(history: &mut Vec<u64>) {
    if history.len() > HISTORY_LIMIT {
        history.drain(..history.len() - HISTORY_LIMIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_in_step_with_the_alias_is_its_history() {
        let rec = moved(None, 1, "t1".into());
        assert_eq!(rec.history, Vec::<u64>::new());
        let rec = moved(Some(rec), 2, "t2".into());
        let rec = moved(Some(rec), 3, "t3".into());
        assert_eq!(rec.history, vec![1, 2]);
        let tag = tag_value(&rec);
        assert_eq!(record(3, Some(&tag)), rec);
    }

    #[test]
    fn an_alias_moved_in_mlflow_rolls_back_to_where_it_was() {
        let rec = moved(Some(moved(None, 1, "t1".into())), 2, "t2".into());
        let tag = tag_value(&rec);
        // Someone ran set_registered_model_alias(..., 5) in MLflow.
        let now = record(5, Some(&tag));
        assert_eq!(now.version, 5);
        assert_eq!(now.history, vec![1, 2]);
        assert_eq!(now.updated, "");
    }

    #[test]
    fn no_tag_or_a_broken_one_is_no_history() {
        assert_eq!(record(4, None).history, Vec::<u64>::new());
        assert_eq!(record(4, Some("{not json")).history, Vec::<u64>::new());
    }

    #[test]
    fn history_is_bounded() {
        let mut rec = moved(None, 0, String::new());
        for v in 1..=(HISTORY_LIMIT as u64 + 50) {
            rec = moved(Some(rec), v, String::new());
        }
        assert_eq!(rec.history.len(), HISTORY_LIMIT);
        assert_eq!(*rec.history.last().unwrap(), HISTORY_LIMIT as u64 + 49);
    }
}
