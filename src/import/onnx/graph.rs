//! Graph acceptance: one tree operator over one FLOAT or DOUBLE `[N, F]` input, with only
//! output-preserving nodes around it (Identity, ZipMap, Cast of the scores to float or
//! double). Attribute access with the type checks ONNX Runtime makes.

use super::proto::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};
use super::{malformed, unsupported};
use crate::import::ImportError;
use std::collections::HashMap;

/// The domain of the tree operators.
pub const ML: &str = "ai.onnx.ml";

/// Which tree operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// `TreeEnsembleClassifier` (ml opsets 1–4).
    Classifier,
    /// `TreeEnsembleRegressor` (ml opsets 1–4).
    Regressor,
    /// `TreeEnsemble` (ml opset 5).
    TreeEnsemble,
}

/// What the graph holds, once accepted.
pub struct Accepted<'a> {
    /// The tree operator node.
    pub node: &'a NodeProto,
    /// Which operator.
    pub kind: OpKind,
    /// The input is DOUBLE (else FLOAT).
    pub double: bool,
    /// `F` when the input shape declares it.
    pub num_features: Option<u32>,
    /// The `ai.onnx.ml` opset version.
    pub ml_opset: i64,
}

/// Where a value of the graph comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Input,
    Label,
    Scores,
    Other,
}

/// Accepts the model's graph or says which node or field is not served.
pub fn accept(model: &ModelProto) -> Result<Accepted<'_>, ImportError> {
    let graph: &GraphProto = model
        .graph
        .as_ref()
        .ok_or_else(|| malformed("no graph (field 7 of ModelProto)"))?;
    let ml_opset = model
        .opset_import
        .iter()
        .find(|o| o.domain == ML)
        .map(|o| o.version)
        .ok_or_else(|| {
            malformed("no ai.onnx.ml operator set is imported: not a tree-ensemble model")
        })?;
    let [input] = graph.input.as_slice() else {
        return Err(unsupported(format!(
            "the graph has {} inputs; treeserve serves one [N, F] input of FLOAT or DOUBLE",
            graph.input.len()
        )));
    };
    let tensor = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .ok_or_else(|| {
            unsupported(format!(
                "graph input '{}' is not a tensor; treeserve serves one [N, F] FLOAT or DOUBLE tensor",
                input.name
            ))
        })?;
    let double = match tensor.elem_type {
        1 => false,
        11 => true,
        t => {
            return Err(unsupported(format!(
                "graph input '{}' has element type {t}; treeserve serves FLOAT (1) or DOUBLE (11) \
                 inputs (convert with FloatTensorType or DoubleTensorType)",
                input.name
            )));
        }
    };
    let num_features = match tensor.shape.as_ref().map(|s| s.dim.as_slice()) {
        Some([_, f]) if f.dim_value > 0 => Some(
            u32::try_from(f.dim_value)
                .map_err(|_| malformed(format!("graph input shape: {} features", f.dim_value)))?,
        ),
        Some([_, _]) | None => None,
        Some(d) => {
            return Err(unsupported(format!(
                "graph input '{}' has {} dimensions; treeserve serves [N, F] inputs",
                input.name,
                d.len()
            )));
        }
    };
    let mut origin: HashMap<&str, Origin> = HashMap::new();
    origin.insert(input.name.as_str(), Origin::Input);
    let mut tree: Option<(&NodeProto, OpKind)> = None;
    for node in &graph.node {
        let op = node.op_type.as_str();
        let kind = match (node.domain.as_str(), op) {
            (ML, "TreeEnsembleClassifier") => Some(OpKind::Classifier),
            (ML, "TreeEnsembleRegressor") => Some(OpKind::Regressor),
            (ML, "TreeEnsemble") => Some(OpKind::TreeEnsemble),
            _ => None,
        };
        let first = node
            .input
            .first()
            .and_then(|i| origin.get(i.as_str()).copied());
        if let Some(kind) = kind {
            if tree.is_some() {
                return Err(unsupported(
                    "the graph has more than one tree operator; treeserve serves one",
                ));
            }
            if node.input.len() != 1 || first != Some(Origin::Input) {
                return Err(unsupported(format!(
                    "{op} does not read the graph input directly; export the trees alone \
                     (preprocess outside the model)"
                )));
            }
            let outs: &[Origin] = match kind {
                OpKind::Classifier => &[Origin::Label, Origin::Scores],
                _ => &[Origin::Scores],
            };
            for (name, o) in node.output.iter().zip(outs) {
                origin.insert(name.as_str(), *o);
            }
            tree = Some((node, kind));
            continue;
        }
        let out = match (node.domain.as_str(), op) {
            ("" | "ai.onnx", "Identity") => first.unwrap_or(Origin::Other),
            (ML, "ZipMap") if first == Some(Origin::Scores) => Origin::Other,
            ("" | "ai.onnx", "Cast") if first == Some(Origin::Label) => {
                let to = Attrs::new(node, op)?.int("to")?.unwrap_or(0);
                if to != 7 && to != 8 {
                    return Err(unsupported(format!(
                        "Cast of the tree labels to type {to}: only INT64 (7) or STRING (8)"
                    )));
                }
                Origin::Other
            }
            ("" | "ai.onnx", "Cast") if first == Some(Origin::Scores) => {
                let to = Attrs::new(node, op)?.int("to")?.unwrap_or(0);
                if to != 1 && to != 11 {
                    return Err(unsupported(format!(
                        "Cast of the tree scores to type {to}: only FLOAT (1) or DOUBLE (11) \
                         keeps them exact"
                    )));
                }
                Origin::Scores
            }
            (_, "Exp") => {
                return Err(unsupported(
                    "Exp after the trees: ONNX Runtime's vectorised exp is not reproduced \
                     exactly; import the LightGBM or XGBoost model file instead",
                ));
            }
            (d, _) => {
                let d = if d.is_empty() { "ai.onnx" } else { d };
                return Err(unsupported(format!(
                    "operator {d}.{op} (node '{}') is not served: only one tree ensemble with \
                     Identity, ZipMap or Cast of its outputs; export the trees alone or \
                     preprocess outside the model",
                    node.name
                )));
            }
        };
        for name in &node.output {
            origin.insert(name.as_str(), out);
        }
    }
    let (node, kind) = tree.ok_or_else(|| {
        unsupported(
            "the graph has no TreeEnsembleClassifier, TreeEnsembleRegressor or TreeEnsemble \
             operator (domain ai.onnx.ml)",
        )
    })?;
    match kind {
        OpKind::TreeEnsemble if ml_opset != 5 => Err(unsupported(format!(
            "TreeEnsemble with ai.onnx.ml opset {ml_opset}; treeserve reads it at opset 5"
        ))),
        OpKind::Classifier | OpKind::Regressor if !(1..=4).contains(&ml_opset) => {
            Err(unsupported(format!(
                "{} with ai.onnx.ml opset {ml_opset}; treeserve reads it at opsets 1 to 4",
                node.op_type
            )))
        }
        _ => Ok(Accepted {
            node,
            kind,
            double,
            num_features,
            ml_opset,
        }),
    }
}

/// A node's attributes by name, each checked for its declared type.
pub struct Attrs<'a> {
    op: &'a str,
    map: HashMap<&'a str, &'a AttributeProto>,
}

impl<'a> Attrs<'a> {
    /// Indexes `node`'s attributes; a name given twice is refused.
    pub fn new(node: &'a NodeProto, op: &'a str) -> Result<Self, ImportError> {
        let mut map = HashMap::new();
        for a in &node.attribute {
            if map.insert(a.name.as_str(), a).is_some() {
                return Err(malformed(format!(
                    "{op}: attribute '{}' is given twice",
                    a.name
                )));
            }
        }
        Ok(Attrs { op, map })
    }

    fn get(&self, name: &str, ty: i32) -> Result<Option<&'a AttributeProto>, ImportError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(a) if a.r#type == ty => Ok(Some(a)),
            Some(a) => Err(malformed(format!(
                "{}: attribute '{name}' has type {} (expected {ty})",
                self.op, a.r#type
            ))),
        }
    }

    /// Whether the attribute is present.
    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// An INTS attribute (empty when absent).
    pub fn ints(&self, name: &str) -> Result<&'a [i64], ImportError> {
        Ok(self.get(name, 7)?.map_or(&[][..], |a| a.ints.as_slice()))
    }

    /// A FLOATS attribute (empty when absent).
    pub fn floats(&self, name: &str) -> Result<&'a [f32], ImportError> {
        Ok(self.get(name, 6)?.map_or(&[][..], |a| a.floats.as_slice()))
    }

    /// A STRINGS attribute (empty when absent).
    pub fn strings(&self, name: &str) -> Result<&'a [Vec<u8>], ImportError> {
        Ok(self.get(name, 8)?.map_or(&[][..], |a| a.strings.as_slice()))
    }

    /// An INT attribute.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ImportError> {
        Ok(self.get(name, 2)?.map(|a| a.i))
    }

    /// A STRING attribute, as UTF-8.
    pub fn string(&self, name: &str) -> Result<Option<&'a str>, ImportError> {
        match self.get(name, 3)? {
            None => Ok(None),
            Some(a) => std::str::from_utf8(&a.s)
                .map(Some)
                .map_err(|_| malformed(format!("{}: attribute '{name}' is not UTF-8", self.op))),
        }
    }

    /// A TENSOR attribute.
    pub fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>, ImportError> {
        match self.get(name, 4)? {
            None => Ok(None),
            Some(a) => a.t.as_ref().map(Some).ok_or_else(|| {
                malformed(format!("{}: attribute '{name}' holds no tensor", self.op))
            }),
        }
    }
}
