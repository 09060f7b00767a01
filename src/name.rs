//! Names of models, aliases and datasets: what a registry can store and a URL can carry.
//! Below both [`crate::model`] (a manifest's name) and [`crate::registry`] (paths, keys).

/// Whether `name` is a valid model, alias, dataset or dataset file name: 1–128 characters of ASCII
/// letters, digits, `-`, `_`, `.`, starting with a letter or digit.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}
