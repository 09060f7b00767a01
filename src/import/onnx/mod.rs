//! Placeholder: the reader lands in a following commit; not wired to any command yet.

use super::{ImportError, Imported};

/// Reads a model file.
pub fn read(_bytes: &[u8]) -> Result<Imported, ImportError> {
    Err(ImportError::Unsupported("not implemented yet".into()))
}
