//! Which reader a model file needs, decided by its content (never by its name alone), and
//! the refusal of pickles: they execute code when loaded and are never read.

use super::ImportError;

/// A model file format treeserve imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// XGBoost `save_model` JSON or UBJSON.
    Xgboost,
    /// LightGBM `save_model` text.
    Lightgbm,
    /// ONNX `ai.onnx.ml` tree ensembles (scikit-learn through skl2onnx, onnxmltools).
    Onnx,
}

impl Format {
    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Xgboost => "xgboost",
            Format::Lightgbm => "lightgbm",
            Format::Onnx => "onnx",
        }
    }
}

/// What to do instead of a pickle.
pub const EXPORT_HINT: &str = "export the model instead: scikit-learn -> skl2onnx.to_onnx(model, \
     X[:1].astype('float64'), options={id(model): {'zipmap': False}}); XGBoost -> \
     booster.save_model('model.json') (or .ubj); LightGBM -> booster.save_model('model.txt')";

/// The format of `bytes`: `forced` if given (after the pickle check, which is never
/// skipped), else decided by content.
pub fn detect(bytes: &[u8], forced: Option<Format>) -> Result<Format, ImportError> {
    refuse_foreign(bytes)?;
    if let Some(f) = forced {
        return Ok(f);
    }
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let text = &bytes[start..];
    if bytes.starts_with(b"{L") {
        return Ok(Format::Xgboost); // UBJSON: an object whose first key has an i64 length
    }
    if text.starts_with(b"{") {
        let head = &text[..text.len().min(4096)];
        if contains(head, b"\"learner\"") {
            return Ok(Format::Xgboost);
        }
        if contains(head, b"\"tree_info\"") || contains(head, b"\"nodeid\"") {
            return Err(ImportError::Unsupported(
                "this is a dump_model() output, which lacks what predictions need; save the \
                 model with save_model() instead"
                    .into(),
            ));
        }
        return Err(ImportError::Unsupported(
            "a JSON file that is not an XGBoost model (no \"learner\" object); XGBoost models \
             are saved with booster.save_model('model.json')"
                .into(),
        ));
    }
    if text.starts_with(b"[") {
        return Err(ImportError::Unsupported(
            "a JSON array: this looks like an XGBoost dump_model() output; save the model with \
             save_model('model.json') instead"
                .into(),
        ));
    }
    if bytes.starts_with(b"tree\n") || bytes.starts_with(b"tree\r\n") {
        return Ok(Format::Lightgbm);
    }
    // ONNX: a protobuf ModelProto; field 1 (ir_version, varint) comes first in every
    // writer's output.
    if bytes.first() == Some(&0x08) {
        return Ok(Format::Onnx);
    }
    Err(ImportError::Unsupported(
        "unrecognised model file: treeserve imports XGBoost JSON/UBJSON (save_model), LightGBM \
         text (save_model) and ONNX tree ensembles (skl2onnx, onnxmltools); --format forces one"
            .into(),
    ))
}

/// Refuses pickles, compressed pickles, archives and files that are already artifacts.
fn refuse_foreign(bytes: &[u8]) -> Result<(), ImportError> {
    let pickle = || {
        Err(ImportError::Unsupported(format!(
            "this is a Python pickle (or joblib) file: pickles execute code when loaded and \
             are never read; {EXPORT_HINT}"
        )))
    };
    if bytes.is_empty() {
        return Err(ImportError::malformed("model file", "the file is empty"));
    }
    if bytes.starts_with(crate::model::MAGIC) {
        return Err(ImportError::Unsupported(
            "this is already a treeserve artifact: publish it with `treeserve publish`".into(),
        ));
    }
    match bytes {
        [0x80, 2..=5, ..] => return pickle(),
        [b'(' | b']' | b'}' | b'c', .., b'.'] if !bytes.starts_with(b"{") => return pickle(),
        _ => {}
    }
    let compressed: [&[u8]; 7] = [
        b"\x1f\x8b",
        b"BZh",
        b"\xfd7zXZ",
        b"\x5d\x00\x00",
        b"\x04\x22\x4d\x18",
        b"ZF",
        b"\x78\x9c",
    ];
    if compressed.iter().any(|m| bytes.starts_with(m)) || bytes.starts_with(b"\x78\x01") {
        return Err(ImportError::Unsupported(format!(
            "this is a compressed file (joblib writes compressed pickles this way); \
             treeserve never reads pickles; {EXPORT_HINT}"
        )));
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return Err(ImportError::Unsupported(format!(
            "this is a zip archive (skops, or a zipped MLflow model directory); import the \
             model file inside it (model.json, model.ubj, model.txt or model.onnx); {EXPORT_HINT}"
        )));
    }
    if bytes.starts_with(b"binf") || bytes.starts_with(b"CONFIG-offset:") {
        return Err(ImportError::Unsupported(
            "this is XGBoost's legacy binary format: load it with XGBoost ≤ 3.0 and \
             save_model('model.json')"
                .into(),
        ));
    }
    Ok(())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(bytes: &[u8]) -> String {
        detect(bytes, None).unwrap_err().to_string()
    }

    #[test]
    fn content_decides() {
        assert_eq!(detect(b"{\"learner\":{}}", None).unwrap(), Format::Xgboost);
        assert_eq!(
            detect(b"{L\0\0\0\0\0\0\0\x07learner", None).unwrap(),
            Format::Xgboost
        );
        assert_eq!(
            detect(b"tree\nversion=v4\n", None).unwrap(),
            Format::Lightgbm
        );
        assert_eq!(
            detect(b"\x08\x08\x12\x07skl2onnx", None).unwrap(),
            Format::Onnx
        );
        assert!(refused(b"hello").contains("unrecognised"));
        assert!(refused(b"[{\"nodeid\":0}]").contains("dump_model"));
    }

    #[test]
    fn pickles_are_never_read_even_when_a_format_is_forced() {
        for p in [
            &b"\x80\x04\x95\x10\x00"[..],
            b"\x80\x02c__builtin__\n.",
            b"(dp0\n.",
            b"\x1f\x8b\x08",
        ] {
            for forced in [None, Some(Format::Xgboost), Some(Format::Onnx)] {
                let e = detect(p, forced).unwrap_err().to_string();
                assert!(e.contains("never read") && e.contains("skl2onnx"), "{e}");
            }
        }
        assert!(refused(b"PK\x03\x04rest").contains("zip"));
        assert!(refused(b"binf\0\0\0").contains("XGBoost ≤ 3.0"));
        assert!(refused(b"TREESERV\x01").contains("treeserve publish"));
        assert!(refused(b"").contains("empty"));
    }
}
