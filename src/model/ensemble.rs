//! treeserve's own tree-ensemble form: what every importer produces (XGBoost, LightGBM,
//! ONNX), what an imported artifact stores, what validation checks and what
//! [`super::flat::FlatEnsemble`] compiles. No foreign type appears here.
//!
//! Exactness is part of the form, not a tolerance: each framework's comparison, threshold
//! precision, input rounding, missing-value routing, sum order and precision, and output
//! transform are recorded so the evaluator reproduces them (see `docs/design/import.md`).

use serde::{Deserialize, Serialize};

#[path = "ensemble_decode.rs"]
mod decode;
#[doc(hidden)]
pub use decode::decode_fast;

/// A validated-on-load tree ensemble.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ensemble {
    /// Number of input features a row has.
    pub num_features: u32,
    /// Length of the raw score vector (1 for regression and one-score binary models).
    pub outputs: u32,
    /// The trees, summed in this order.
    pub trees: Vec<Tree>,
    /// Base score per output (empty = zero).
    pub base: Vec<f64>,
    /// Where the base score enters the sum.
    pub base_placement: BasePlacement,
    /// How tree outputs are combined.
    pub aggregation: Aggregation,
    /// Arithmetic of inputs, thresholds, sums and transforms.
    pub precision: Precision,
    /// LightGBM: inputs with `|x| <= 1e-35f32` are exactly zero before any tree sees them.
    pub zero_snap: bool,
    /// Output transform applied to the raw scores.
    pub transform: Transform,
    /// Raw scores are cast to f32 before the transform (ONNX opset ≤ 3 outputs are float).
    pub output_cast_f32: bool,
    /// How the final answer is read from the transformed scores.
    pub output: OutputKind,
}

/// One tree: an arena of nodes, root at index 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Nodes; index 0 is the root. Every node is reached exactly once from the root.
    pub nodes: Vec<Node>,
    /// Output a scalar leaf of this tree adds to.
    pub group: u32,
}

/// A split or a leaf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Node {
    /// An internal node.
    Split(Split),
    /// A leaf.
    Leaf(Leaf),
}

/// An internal node: `test(x[feature])` true goes to `yes`, false to `no`; a missing value
/// (NaN) goes to `missing`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// Feature index.
    pub feature: u32,
    /// The comparison.
    pub test: Test,
    /// Child when the test holds.
    pub yes: u32,
    /// Child otherwise.
    pub no: u32,
    /// Where a missing value goes.
    pub missing: Branch,
    /// LightGBM missing type Zero: `x == 0` is missing too. Every node on a feature with
    /// such a node must send zero where it sends missing values (checked at compile time).
    pub zero_is_missing: bool,
}

/// A branch of a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Branch {
    /// The `yes` child.
    Yes,
    /// The `no` child.
    No,
}

/// A split's comparison of a non-missing value `x`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Test {
    /// `x < t`.
    Lt(f64),
    /// `x <= t`.
    Le(f64),
    /// `x >= t`.
    Ge(f64),
    /// `x > t`.
    Gt(f64),
    /// `x` is a category in the set: bit `c` of `words` (32-bit words) for category `c`.
    InSet {
        /// The bitset.
        words: Vec<u32>,
        /// How a value becomes a category.
        rule: CategoryRule,
    },
}

/// How a feature value becomes a category index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CategoryRule {
    /// Truncation toward zero; negative values are in no set (XGBoost).
    Truncate,
    /// C's `(int)x`: values in (-1, 0) are category 0; values <= -1 are in no set (LightGBM).
    TruncateNegativeFractionIsZero,
}

/// A leaf's contribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Leaf {
    /// Adds to the tree's group.
    Scalar(f64),
    /// Adds each `(output, value)` pair, in order.
    Vector(Vec<(u32, f64)>),
}

/// Where the base score enters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BasePlacement {
    /// The sum starts at the base (XGBoost's base margin).
    Initial,
    /// The base is added after the sum (and after a mean) (ONNX `base_values`).
    AfterSum,
}

/// How tree outputs combine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Aggregation {
    /// Sum in tree order.
    Sum,
    /// Sum in tree order, then divide by `divisor` (LightGBM `average_output`, ONNX
    /// AVERAGE).
    Mean {
        /// The divisor.
        divisor: f64,
    },
}

/// Arithmetic precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    /// Inputs rounded to f32; thresholds, leaves and base are f32 values; f32 sums.
    F32,
    /// f64 throughout.
    F64,
}

/// The output transform, each with its framework's exact formula.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Transform {
    /// No transform.
    Identity,
    /// XGBoost's f32 sigmoid `1 / (expf(min(-x, 88.7)) + 1)`.
    XgbSigmoid,
    /// XGBoost's softmax: f32 exps of `x - max`, f64 sum, f32 divide.
    XgbSoftmax,
    /// `expf(x)` (XGBoost poisson, gamma, tweedie).
    ExpF32,
    /// LightGBM's f64 sigmoid `1 / (1 + exp(-alpha x))`.
    LgbSigmoid {
        /// The sigmoid parameter.
        alpha: f64,
    },
    /// LightGBM's per-class sigmoid (multiclassova), not normalised.
    LgbOvrSigmoid {
        /// The sigmoid parameter.
        alpha: f64,
    },
    /// LightGBM's f64 softmax.
    LgbSoftmax,
    /// `exp(x)` in f64 (LightGBM poisson, gamma, tweedie).
    ExpF64,
    /// LightGBM `regression` with `sqrt`: `sign(x) x²`.
    SignedSquare,
    /// LightGBM `cross_entropy_lambda`: `log1p(exp(x))`.
    Log1pExp,
    /// ONNX Runtime's f32 LOGISTIC.
    OrtLogistic,
    /// ONNX Runtime's f32 SOFTMAX.
    OrtSoftmax,
    /// ONNX Runtime's f32 SOFTMAX_ZERO.
    OrtSoftmaxZero,
}

/// How the answer is read from the transformed scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum OutputKind {
    /// Regression: the transformed scalar (`outputs == 1`).
    Value,
    /// Binary classification from one probability `p` (`outputs == 1`): probabilities
    /// `[1 - p, p]` (in the model's precision); class 1 iff `p > 0.5`.
    BinaryOneMinus,
    /// Binary classification from one raw score `s` (`outputs == 1`), ONNX Runtime's
    /// logistic pair: probabilities `[T(-s), T(s)]`; class 1 iff `s > 0`.
    BinaryLogisticPair,
    /// ONNX Runtime's binary rule for one non-negative score `s` (`outputs == 1`): class 1
    /// iff `s > 0.5` in the model's precision (before any output cast); probabilities
    /// `[1 - s, s]` with `1 - s` computed in the model's precision, then both cast as
    /// `output_cast_f32` says. No transform applies.
    OrtBinaryOneMinus,
    /// Classification over `outputs` classes: probabilities are the transformed scores;
    /// the class is the first maximum of the probabilities.
    ArgmaxProbabilities,
    /// As `ArgmaxProbabilities`, but the class is the first maximum of the raw scores
    /// (ONNX Runtime's rule).
    ArgmaxRaw,
}

/// Limits on an ensemble's size, checked before anything is built from it.
#[derive(Debug, Clone, Copy)]
pub struct EnsembleLimits {
    /// Trees.
    pub max_trees: usize,
    /// Nodes in one tree.
    pub max_nodes: usize,
    /// Nodes over all trees.
    pub max_total_nodes: usize,
    /// Depth of one tree.
    pub max_depth: usize,
    /// 32-bit words of one category set (2^11 words = categories below 65,536).
    pub max_set_words: usize,
    /// Outputs.
    pub max_outputs: usize,
    /// Features (columns of a dense row): loading and checking a model allocates per
    /// feature, so a few bytes declaring millions must not become gigabytes.
    pub max_features: usize,
}

impl Default for EnsembleLimits {
    fn default() -> Self {
        Self {
            max_trees: 1 << 16,
            max_nodes: 1 << 20,
            max_total_nodes: 1 << 26,
            max_depth: 4096,
            max_set_words: 1 << 11,
            max_outputs: 1 << 12,
            max_features: 1 << 20,
        }
    }
}

/// Why an ensemble is refused: names the tree, node and field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct EnsembleError(pub String);

impl Ensemble {
    /// Number of scores an answer has: classes for classification, 1 for regression.
    pub fn num_scores(&self) -> usize {
        match self.output {
            OutputKind::Value => 1,
            OutputKind::BinaryOneMinus
            | OutputKind::BinaryLogisticPair
            | OutputKind::OrtBinaryOneMinus => 2,
            OutputKind::ArgmaxProbabilities | OutputKind::ArgmaxRaw => self.outputs as usize,
        }
    }

    /// Checks structure and values: sizes within `limits`, children in range, every node
    /// reached exactly once from the root (no cycle, no sharing), finite values, features
    /// and outputs in range, f32-exact values for an f32 model. Iterative: no recursion.
    pub fn validate(&self, limits: &EnsembleLimits) -> Result<(), EnsembleError> {
        self.validate_with(limits, true)
    }

    /// The model-level part of [`Ensemble::validate`] (outputs and their kind, features,
    /// base, mean): everything but the trees, shared with the wide layout's reader.
    pub(super) fn validate_model(&self, limits: &EnsembleLimits) -> Result<(), EnsembleError> {
        let bad = |m: String| Err(EnsembleError(m));
        let k = self.outputs as usize;
        if k == 0 || k > limits.max_outputs {
            return bad(format!(
                "outputs: {k} (1 to {} allowed)",
                limits.max_outputs
            ));
        }
        match self.output {
            OutputKind::Value
            | OutputKind::BinaryOneMinus
            | OutputKind::BinaryLogisticPair
            | OutputKind::OrtBinaryOneMinus
                if k != 1 =>
            {
                return bad(format!(
                    "output kind {:?} needs 1 output, has {k}",
                    self.output
                ));
            }
            OutputKind::ArgmaxProbabilities | OutputKind::ArgmaxRaw if k < 2 => {
                return bad("a multiclass output needs at least 2 outputs".into());
            }
            _ => {}
        }
        if self.num_features == 0 || self.num_features as usize > limits.max_features {
            return bad(format!(
                "features: {} (1 to {} allowed: rows are dense)",
                self.num_features, limits.max_features
            ));
        }
        if !self.base.is_empty() && self.base.len() != k {
            return bad(format!("base: {} values for {k} outputs", self.base.len()));
        }
        let f32_model = self.precision == Precision::F32;
        let value_ok = |v: f64| v.is_finite() && (!f32_model || (v as f32) as f64 == v);
        if let Some(b) = self.base.iter().find(|&&b| !value_ok(b)) {
            return bad(format!(
                "base: {b} is not a finite value of the model's precision"
            ));
        }
        if let Aggregation::Mean { divisor } = self.aggregation
            && !(divisor.is_finite() && divisor > 0.0)
        {
            return bad(format!("mean divisor {divisor} is not a positive number"));
        }
        Ok(())
    }

    /// [`Ensemble::validate`]; `in_order: false` searches every tree from its root (the
    /// tests check that both answer alike).
    fn validate_with(&self, limits: &EnsembleLimits, in_order: bool) -> Result<(), EnsembleError> {
        self.validate_model(limits)?;
        let bad = |m: String| Err(EnsembleError(m));
        let k = self.outputs as usize;
        let f32_model = self.precision == Precision::F32;
        let value_ok = |v: f64| v.is_finite() && (!f32_model || (v as f32) as f64 == v);
        if self.trees.is_empty() || self.trees.len() > limits.max_trees {
            return bad(format!(
                "{} trees (1 to {} allowed)",
                self.trees.len(),
                limits.max_trees
            ));
        }
        let mut total = 0usize;
        let mut seen: Vec<bool> = Vec::new();
        let mut stack: Vec<(u32, u32)> = Vec::new();
        let mut depths: Vec<u32> = Vec::new();
        for (t, tree) in self.trees.iter().enumerate() {
            let n = tree.nodes.len();
            let bad = |m: String| Err(EnsembleError(format!("tree {t}: {m}")));
            if n == 0 || n > limits.max_nodes {
                return bad(format!("{n} nodes (1 to {} allowed)", limits.max_nodes));
            }
            total += n;
            if total > limits.max_total_nodes {
                return Err(EnsembleError(format!(
                    "more than {} nodes in all",
                    limits.max_total_nodes
                )));
            }
            if tree.group as usize >= k {
                return bad(format!("group {} but {k} outputs", tree.group));
            }
            if in_order && self.valid_in_order(tree, limits, &value_ok, &mut depths) {
                continue;
            }
            // Otherwise a search from the root checks it, and names the first fault.
            seen.clear();
            seen.resize(n, false);
            stack.clear();
            stack.push((0, 0));
            seen[0] = true;
            let mut reached = 1usize;
            while let Some((i, depth)) = stack.pop() {
                let bad = |m: String| Err(EnsembleError(format!("tree {t} node {i}: {m}")));
                let node = &tree.nodes[i as usize];
                if let Some(m) = self.node_fault(node, depth, limits, &value_ok) {
                    return bad(m);
                }
                if let Node::Split(s) = node {
                    for c in [s.yes, s.no] {
                        let Some(slot) = seen.get_mut(c as usize) else {
                            return bad(format!("child {c} is out of range (0..{n})"));
                        };
                        if *slot {
                            return bad(format!(
                                "child {c} is reached twice (a cycle or a shared node)"
                            ));
                        }
                        *slot = true;
                        reached += 1;
                        stack.push((c, depth + 1));
                    }
                }
            }
            if reached != n {
                return bad(format!(
                    "{} of {n} nodes are not reachable from the root",
                    n - reached
                ));
            }
        }
        Ok(())
    }
}

impl Ensemble {
    /// What is wrong with `node` at `depth`, apart from its children: its values, feature,
    /// test and depth (shared by both ways of [`Ensemble::validate`]).
    #[inline]
    fn node_fault(
        &self,
        node: &Node,
        depth: u32,
        limits: &EnsembleLimits,
        value_ok: &impl Fn(f64) -> bool,
    ) -> Option<String> {
        let k = self.outputs as usize;
        let not_a_value = |what, v| {
            Some(format!(
                "{what} {v} is not a finite value of the model's precision"
            ))
        };
        match node {
            Node::Leaf(Leaf::Scalar(v)) if !value_ok(*v) => not_a_value("leaf value", *v),
            Node::Leaf(Leaf::Scalar(_)) => None,
            Node::Leaf(Leaf::Vector(pairs)) => {
                if pairs.is_empty() || pairs.len() > k {
                    return Some(format!("leaf has {} values for {k} outputs", pairs.len()));
                }
                for &(o, v) in pairs {
                    if o as usize >= k {
                        return Some(format!("leaf adds to output {o} of {k}"));
                    }
                    if !value_ok(v) {
                        return not_a_value("leaf value", v);
                    }
                }
                None
            }
            Node::Split(s) => {
                if s.feature >= self.num_features {
                    return Some(format!(
                        "feature {} but the model has {}",
                        s.feature, self.num_features
                    ));
                }
                match &s.test {
                    Test::Lt(v) | Test::Le(v) | Test::Ge(v) | Test::Gt(v) if !value_ok(*v) => {
                        return not_a_value("threshold", *v);
                    }
                    Test::InSet { words, .. } if words.len() > limits.max_set_words => {
                        return Some(format!(
                            "category set of {} words (at most {})",
                            words.len(),
                            limits.max_set_words
                        ));
                    }
                    _ => {}
                }
                (depth as usize >= limits.max_depth)
                    .then(|| format!("deeper than {}", limits.max_depth))
            }
        }
    }

    /// Whether `tree` is valid and laid out as importers write trees, every child after
    /// its parent: then one pass in index order checks it (each node's depth set by its
    /// parent, `depths` reused), where the search from the root read the nodes in an
    /// order the cache does not foresee (6 ms of a 500-tree model's load, cold). `false`
    /// for anything else, valid or not: the search then decides.
    fn valid_in_order(
        &self,
        tree: &Tree,
        limits: &EnsembleLimits,
        value_ok: &impl Fn(f64) -> bool,
        depths: &mut Vec<u32>,
    ) -> bool {
        let n = tree.nodes.len();
        // A node's depth plus one; 0 while no parent reached it.
        depths.clear();
        depths.resize(n, 0);
        depths[0] = 1;
        for (i, node) in tree.nodes.iter().enumerate() {
            let d = depths[i];
            if d == 0 {
                return false;
            }
            if self.node_fault(node, d - 1, limits, value_ok).is_some() {
                return false;
            }
            if let Node::Split(s) = node {
                for c in [s.yes as usize, s.no as usize] {
                    if c <= i || c >= n || depths[c] != 0 {
                        return false;
                    }
                    depths[c] = d + 1;
                }
            }
        }
        // Each node after the root was reached once, from an earlier one: a tree.
        true
    }
}

#[cfg(test)]
#[path = "ensemble_tests.rs"]
pub(super) mod tests;
#[cfg(test)]
#[path = "ensemble_validate_tests.rs"]
mod validate_tests;
