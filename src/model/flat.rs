//! The compiled evaluator of an [`Ensemble`]: one flat array of 24-byte nodes for all
//! trees, every comparison normalised to `x < t` (exact: `x <= t` is `x < next_up(t)`), a
//! row pre-pass for the framework's input rules, and the framework's sum order, precision
//! and transform.

use super::ensemble::{
    Aggregation, BasePlacement, Branch, CategoryRule, Ensemble, EnsembleError, Leaf, Node,
    OutputKind, Precision, Test, Transform,
};

const FEATURE_MASK: u32 = (1 << 28) - 1;
const LEAF: u32 = 1 << 31;
const DEFAULT_LEFT: u32 = 1 << 30;
const CATEGORICAL: u32 = 1 << 29;
/// For a vector leaf (with `LEAF`): `left..right` index the leaf table.
const VECTOR: u32 = 1 << 28;

#[derive(Debug, Clone, Copy)]
struct FlatNode {
    /// Threshold (`x < threshold` goes left); a scalar leaf's value; a categorical node's
    /// set index.
    threshold: f64,
    meta: u32,
    left: u32,
    right: u32,
}

#[derive(Debug, Clone)]
struct CategorySet {
    words: Box<[u32]>,
    rule: CategoryRule,
}

impl CategorySet {
    #[inline]
    fn contains(&self, x: f64) -> bool {
        let c = match self.rule {
            CategoryRule::Truncate if x < 0.0 => return false,
            CategoryRule::TruncateNegativeFractionIsZero if x <= -1.0 => return false,
            _ => x as u64, // truncates; NaN gives 0 (the caller routes NaN first)
        };
        let w = (c / 32) as usize;
        w < self.words.len() && self.words[w] >> (c % 32) & 1 == 1
    }
}

/// A compiled ensemble, ready to evaluate rows.
#[derive(Debug, Clone)]
pub struct FlatEnsemble {
    nodes: Vec<FlatNode>,
    roots: Vec<u32>,
    groups: Vec<u32>,
    leaf_table: Vec<(u32, f64)>,
    sets: Vec<CategorySet>,
    zero_missing: Vec<bool>,
    any_zero_missing: bool,
    num_features: usize,
    outputs: usize,
    base: Vec<f64>,
    base_placement: BasePlacement,
    aggregation: Aggregation,
    precision: Precision,
    zero_snap: bool,
    transform: Transform,
    output_cast_f32: bool,
    output: OutputKind,
    num_scores: usize,
}

/// LightGBM's `kZeroThreshold`: `1e-35f` as a double.
const ZERO_THRESHOLD: f64 = 1e-35_f32 as f64;

impl FlatEnsemble {
    /// Compiles a validated ensemble ([`Ensemble::validate`] first).
    pub fn compile(e: &Ensemble) -> Result<Self, EnsembleError> {
        let total: usize = e.trees.iter().map(|t| t.nodes.len()).sum();
        if total >= FEATURE_MASK as usize || e.num_features as usize > FEATURE_MASK as usize {
            return Err(EnsembleError(
                "too many nodes or features to compile".into(),
            ));
        }
        let mut zero_missing = vec![false; e.num_features as usize];
        for tree in &e.trees {
            for node in &tree.nodes {
                if let Node::Split(s) = node
                    && s.zero_is_missing
                {
                    zero_missing[s.feature as usize] = true;
                }
            }
        }
        let mut out = FlatEnsemble {
            nodes: Vec::with_capacity(total),
            roots: Vec::with_capacity(e.trees.len()),
            groups: Vec::with_capacity(e.trees.len()),
            leaf_table: Vec::new(),
            sets: Vec::new(),
            any_zero_missing: zero_missing.iter().any(|&z| z),
            zero_missing,
            num_features: e.num_features as usize,
            outputs: e.outputs as usize,
            base: if e.base.is_empty() {
                vec![0.0; e.outputs as usize]
            } else {
                e.base.clone()
            },
            base_placement: e.base_placement,
            aggregation: e.aggregation,
            precision: e.precision,
            zero_snap: e.zero_snap,
            transform: e.transform,
            output_cast_f32: e.output_cast_f32,
            output: e.output,
            num_scores: e.num_scores(),
        };
        // Depth-first pre-order, so a left child is usually the next node.
        let mut stack: Vec<(u32, usize)> = Vec::new(); // (source node, flat slot)
        for (t, tree) in e.trees.iter().enumerate() {
            let root = out.nodes.len();
            out.roots.push(root as u32);
            out.groups.push(tree.group);
            out.nodes.push(placeholder());
            stack.push((0, root));
            while let Some((i, slot)) = stack.pop() {
                let node = &tree.nodes[i as usize];
                let flat = match node {
                    Node::Leaf(Leaf::Scalar(v)) => FlatNode {
                        threshold: *v,
                        meta: LEAF,
                        left: 0,
                        right: 0,
                    },
                    Node::Leaf(Leaf::Vector(pairs)) => {
                        let start = out.leaf_table.len() as u32;
                        out.leaf_table.extend_from_slice(pairs);
                        FlatNode {
                            threshold: 0.0,
                            meta: LEAF | VECTOR,
                            left: start,
                            right: out.leaf_table.len() as u32,
                        }
                    }
                    Node::Split(s) => {
                        if out.zero_missing[s.feature as usize] && !s.zero_is_missing {
                            // Zero becomes missing for this feature: this node must send
                            // zero where it sends missing values.
                            let zero_goes_yes = test_holds(&s.test, 0.0);
                            if zero_goes_yes != (s.missing == Branch::Yes) {
                                return Err(EnsembleError(format!(
                                    "tree {t} node {i}: feature {} treats zero as missing in \
                                     other nodes but not here; this model cannot be compiled",
                                    s.feature
                                )));
                            }
                        }
                        // (threshold, yes_is_left)
                        let (threshold, cat, yes_left) = match &s.test {
                            Test::Lt(v) => (*v, false, true),
                            Test::Le(v) => (v.next_up(), false, true),
                            Test::Ge(v) => (*v, false, false),
                            Test::Gt(v) => (v.next_up(), false, false),
                            Test::InSet { words, rule } => {
                                out.sets.push(CategorySet {
                                    words: words.clone().into_boxed_slice(),
                                    rule: *rule,
                                });
                                ((out.sets.len() - 1) as f64, true, true)
                            }
                        };
                        let (l, r) = if yes_left {
                            (s.yes, s.no)
                        } else {
                            (s.no, s.yes)
                        };
                        let missing_left = (s.missing == Branch::Yes) == yes_left;
                        let left = out.nodes.len();
                        out.nodes.push(placeholder());
                        let right = out.nodes.len();
                        out.nodes.push(placeholder());
                        // Right pushed first: the left subtree is laid out next.
                        stack.push((r, right));
                        stack.push((l, left));
                        FlatNode {
                            threshold,
                            meta: s.feature
                                | if cat { CATEGORICAL } else { 0 }
                                | if missing_left { DEFAULT_LEFT } else { 0 },
                            left: left as u32,
                            right: right as u32,
                        }
                    }
                };
                out.nodes[slot] = flat;
            }
        }
        Ok(out)
    }

    /// Features a row has.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Scores an answer has (classes, or 1 for regression).
    pub fn num_scores(&self) -> usize {
        self.num_scores
    }

    /// Trees.
    pub fn num_trees(&self) -> usize {
        self.roots.len()
    }

    /// Nodes over all trees.
    pub fn num_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// The output kind.
    pub fn output(&self) -> OutputKind {
        self.output
    }

    /// Evaluates one row (`num_features` values; NaN = missing) into `scores`
    /// (`num_scores` long: probabilities, or the value) and returns the class index (0 for
    /// regression). `scratch` is reused between calls.
    pub fn predict(&self, row: &[f64], scratch: &mut Scratch, scores: &mut [f64]) -> usize {
        debug_assert_eq!(row.len(), self.num_features);
        let has_nan = self.prepare(row, &mut scratch.row);
        let x = &scratch.row[..];
        let raw = &mut scratch.raw;
        raw.clear();
        match self.precision {
            Precision::F64 => {
                raw.resize(self.outputs, 0.0);
                if self.base_placement == BasePlacement::Initial {
                    raw.copy_from_slice(&self.base);
                }
                for (t, &root) in self.roots.iter().enumerate() {
                    self.add_leaf(self.leaf(root, x, has_nan), self.groups[t], |o, v| {
                        raw[o] += v
                    });
                }
                if let Aggregation::Mean { divisor } = self.aggregation {
                    raw.iter_mut().for_each(|r| *r /= divisor);
                }
                if self.base_placement == BasePlacement::AfterSum {
                    raw.iter_mut().zip(&self.base).for_each(|(r, b)| *r += b);
                }
            }
            Precision::F32 => {
                let acc = &mut scratch.acc32;
                acc.clear();
                acc.resize(self.outputs, 0.0);
                if self.base_placement == BasePlacement::Initial {
                    acc.iter_mut()
                        .zip(&self.base)
                        .for_each(|(a, &b)| *a = b as f32);
                }
                for (t, &root) in self.roots.iter().enumerate() {
                    self.add_leaf(self.leaf(root, x, has_nan), self.groups[t], |o, v| {
                        acc[o] += v as f32
                    });
                }
                if let Aggregation::Mean { divisor } = self.aggregation {
                    let d = divisor as f32;
                    acc.iter_mut().for_each(|a| *a /= d);
                }
                if self.base_placement == BasePlacement::AfterSum {
                    acc.iter_mut()
                        .zip(&self.base)
                        .for_each(|(a, &b)| *a += b as f32);
                }
                raw.extend(acc.iter().map(|&a| a as f64));
            }
        }
        self.finish(raw, scores)
    }

    /// The row pre-pass: f32 rounding, LightGBM's zero snap and zero-as-missing. Returns
    /// whether any value is missing.
    #[inline]
    fn prepare(&self, row: &[f64], out: &mut Vec<f64>) -> bool {
        out.clear();
        out.extend_from_slice(row);
        if self.precision == Precision::F32 {
            out.iter_mut().for_each(|x| *x = *x as f32 as f64);
        }
        if self.zero_snap {
            out.iter_mut()
                .filter(|x| x.abs() <= ZERO_THRESHOLD)
                .for_each(|x| *x = 0.0);
        }
        if self.any_zero_missing {
            for (x, &z) in out.iter_mut().zip(&self.zero_missing) {
                if z && *x == 0.0 {
                    *x = f64::NAN;
                }
            }
        }
        out.iter().any(|x| x.is_nan())
    }

    #[inline]
    fn leaf(&self, root: u32, x: &[f64], has_nan: bool) -> &FlatNode {
        let mut i = root as usize;
        loop {
            let n = &self.nodes[i];
            if n.meta & LEAF != 0 {
                return n;
            }
            let v = x[(n.meta & FEATURE_MASK) as usize];
            let mut go_left = if n.meta & CATEGORICAL != 0 {
                self.sets[n.threshold as usize].contains(v)
            } else {
                v < n.threshold
            };
            if has_nan && v.is_nan() {
                go_left = n.meta & DEFAULT_LEFT != 0;
            }
            i = if go_left { n.left } else { n.right } as usize;
        }
    }

    #[inline]
    fn add_leaf(&self, leaf: &FlatNode, group: u32, mut add: impl FnMut(usize, f64)) {
        if leaf.meta & VECTOR == 0 {
            add(group as usize, leaf.threshold);
        } else {
            for &(o, v) in &self.leaf_table[leaf.left as usize..leaf.right as usize] {
                add(o as usize, v);
            }
        }
    }

    fn finish(&self, raw: &mut [f64], scores: &mut [f64]) -> usize {
        // ONNX Runtime decides on the scores in the model's precision, then writes them
        // to a float tensor: the decisions that read raw scores look before the cast.
        let decided = match self.output {
            OutputKind::ArgmaxRaw => first_max(raw),
            OutputKind::BinaryLogisticPair => usize::from(raw[0] > 0.0),
            OutputKind::OrtBinaryOneMinus => usize::from(raw[0] > 0.5),
            _ => 0,
        };
        let first = raw[0];
        if self.output_cast_f32 {
            raw.iter_mut().for_each(|r| *r = *r as f32 as f64);
        }
        match self.output {
            OutputKind::Value => {
                transform(self.transform, raw);
                scores[0] = raw[0];
                0
            }
            OutputKind::BinaryOneMinus => {
                transform(self.transform, raw);
                let p = raw[0];
                scores[1] = p;
                scores[0] = match self.precision {
                    Precision::F32 => (1.0f32 - p as f32) as f64,
                    Precision::F64 => 1.0 - p,
                };
                usize::from(p > 0.5)
            }
            OutputKind::BinaryLogisticPair => {
                let s = raw[0];
                let mut pair = [-s, s];
                transform(self.transform, &mut pair[..1]);
                transform(self.transform, &mut pair[1..]);
                scores[..2].copy_from_slice(&pair);
                decided
            }
            OutputKind::OrtBinaryOneMinus => {
                // 1 - s in the model's precision, then the output cast.
                let one_minus = match self.precision {
                    Precision::F32 => (1.0f32 - first as f32) as f64,
                    Precision::F64 => 1.0 - first,
                };
                scores[0] = one_minus;
                scores[1] = raw[0];
                if self.output_cast_f32 {
                    scores[0] = scores[0] as f32 as f64;
                }
                decided
            }
            OutputKind::ArgmaxRaw => {
                transform(self.transform, raw);
                scores.copy_from_slice(raw);
                decided
            }
            OutputKind::ArgmaxProbabilities => {
                transform(self.transform, raw);
                scores.copy_from_slice(raw);
                first_max(scores)
            }
        }
    }
}

/// Per-thread buffers of [`FlatEnsemble::predict`].
#[derive(Debug, Default)]
pub struct Scratch {
    row: Vec<f64>,
    raw: Vec<f64>,
    acc32: Vec<f32>,
}

fn placeholder() -> FlatNode {
    FlatNode {
        threshold: 0.0,
        meta: LEAF,
        left: 0,
        right: 0,
    }
}

/// Whether a non-missing `x` passes `test` (used at compile time only).
fn test_holds(test: &Test, x: f64) -> bool {
    match test {
        Test::Lt(t) => x < *t,
        Test::Le(t) => x <= *t,
        Test::Ge(t) => x >= *t,
        Test::Gt(t) => x > *t,
        Test::InSet { words, rule } => CategorySet {
            words: words.clone().into_boxed_slice(),
            rule: *rule,
        }
        .contains(x),
    }
}

fn first_max(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate().skip(1) {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Applies `t` in place, with the framework's arithmetic.
pub fn transform(t: Transform, v: &mut [f64]) {
    match t {
        Transform::Identity => {}
        Transform::XgbSigmoid => v.iter_mut().for_each(|x| {
            let m = *x as f32;
            *x = (1.0f32 / ((-m).min(88.7).exp() + 1.0 + 1e-16)) as f64;
        }),
        Transform::XgbSoftmax => {
            let max = v.iter().fold(f32::MIN, |m, &x| m.max(x as f32));
            let mut sum = 0.0f64;
            for x in v.iter_mut() {
                let e = (*x as f32 - max).exp();
                *x = e as f64;
                sum += e as f64;
            }
            let s = sum as f32;
            v.iter_mut().for_each(|x| *x = (*x as f32 / s) as f64);
        }
        Transform::ExpF32 => v.iter_mut().for_each(|x| *x = (*x as f32).exp() as f64),
        Transform::LgbSigmoid { alpha } | Transform::LgbOvrSigmoid { alpha } => v
            .iter_mut()
            .for_each(|x| *x = 1.0 / (1.0 + (-alpha * *x).exp())),
        Transform::LgbSoftmax => {
            let max = v.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
            let mut sum = 0.0;
            for x in v.iter_mut() {
                *x = (*x - max).exp();
                sum += *x;
            }
            v.iter_mut().for_each(|x| *x /= sum);
        }
        Transform::ExpF64 => v.iter_mut().for_each(|x| *x = x.exp()),
        Transform::SignedSquare => v.iter_mut().for_each(|x| *x = x.signum() * *x * *x),
        Transform::Log1pExp => v.iter_mut().for_each(|x| *x = x.exp().ln_1p()),
        Transform::OrtLogistic => v.iter_mut().for_each(|x| {
            let s = *x as f32;
            let p = 1.0f32 / (1.0 + (-s.abs()).exp());
            *x = if s < 0.0 { 1.0 - p } else { p } as f64;
        }),
        Transform::OrtSoftmax | Transform::OrtSoftmaxZero => {
            let zero = t == Transform::OrtSoftmaxZero;
            let max = v.iter().fold(-f32::MAX, |m, &x| m.max(x as f32));
            let mut sum = 0.0f32;
            for x in v.iter_mut() {
                let s = *x as f32;
                // ORT's test `s > 1e-7f || s < -1e-7f` sends NaN here too (a range
                // `contains` would not).
                #[allow(clippy::manual_range_contains)]
                let exp_branch = s > 1e-7 || s < -1e-7;
                if zero && !exp_branch {
                    *x = (s * (-max).exp()) as f64;
                } else {
                    let e = (s - max).exp();
                    *x = e as f64;
                    sum += e;
                }
            }
            for x in v.iter_mut() {
                let s = *x as f32;
                *x = (s / sum) as f64;
            }
        }
    }
}
