//! The compiled evaluator of an [`Ensemble`]: one flat array of 24-byte nodes for all
//! trees, every comparison normalised to `x < t` (exact: `x <= t` is `x < next_up(t)`), a
//! row pre-pass for the framework's input rules, and the framework's sum order, precision
//! and transform.

use super::ensemble::{
    Branch, Ensemble, EnsembleError, Leaf, Node, OutputKind, Precision, Test, Tree,
};
pub use super::head::transform;
use super::head::{CategorySet, Head, Prec};

pub(super) const FEATURE_MASK: u32 = (1 << 28) - 1;
pub(super) const LEAF: u32 = 1 << 31;
pub(super) const DEFAULT_LEFT: u32 = 1 << 30;
pub(super) const CATEGORICAL: u32 = 1 << 29;
/// For a vector leaf (with `LEAF`): `left..right` index the leaf table.
pub(super) const VECTOR: u32 = 1 << 28;

/// A node: `x < threshold` goes `left`; `right == left + 1` always.
#[derive(Debug, Clone, Copy)]
pub(super) struct FlatNode {
    /// Threshold (`x < threshold` goes left); a scalar leaf's value; a categorical node's
    /// set index.
    pub(super) threshold: f64,
    pub(super) meta: u32,
    pub(super) left: u32,
    pub(super) right: u32,
}

/// A compiled ensemble, ready to evaluate rows.
#[derive(Debug, Clone)]
pub struct FlatEnsemble {
    pub(super) nodes: Vec<FlatNode>,
    pub(super) roots: Vec<u32>,
    pub(super) groups: Vec<u32>,
    pub(super) head: Head,
}

impl FlatEnsemble {
    /// Compiles a validated ensemble ([`Ensemble::validate`] first). Each tree's nodes
    /// are contiguous from its root, a child after its parent (the wide build's one pass
    /// relies on it).
    pub fn compile(e: &Ensemble) -> Result<Self, EnsembleError> {
        Self::compile_trees(e, &e.trees)
    }

    /// [`FlatEnsemble::compile`], each tree freed once compiled, while its nodes are in
    /// the cache (freeing the whole ensemble after read every node once more, cold: 3%
    /// of a 500-tree load's CPU).
    pub(crate) fn compile_owned(mut e: Ensemble) -> Result<Self, EnsembleError> {
        let trees = std::mem::take(&mut e.trees);
        Self::compile_trees(&e, trees)
    }

    /// Compiles `trees` (borrowed, or owned and each freed once compiled) with the rest of
    /// `e` (whose own trees are not read).
    fn compile_trees<T: std::borrow::Borrow<Tree>>(
        e: &Ensemble,
        trees: impl IntoIterator<Item = T> + AsRef<[Tree]>,
    ) -> Result<Self, EnsembleError> {
        let (count, total) = {
            let trees = trees.as_ref();
            (trees.len(), trees.iter().map(|t| t.nodes.len()).sum())
        };
        if total >= FEATURE_MASK as usize || e.num_features as usize > FEATURE_MASK as usize {
            return Err(EnsembleError(
                "too many nodes or features to compile".into(),
            ));
        }
        let nf = e.num_features as usize;
        let mut out = FlatEnsemble {
            nodes: Vec::with_capacity(total),
            roots: Vec::with_capacity(count),
            groups: Vec::with_capacity(count),
            head: Head::new(e),
        };
        // Zero becomes missing for a feature if any node says so; then every node on it
        // must send zero where it sends missing values. Found in the same pass (a pass of
        // its own over the nodes, cold, took 1.5 ms of a 500-tree load): per feature, the
        // first node, in this order, that does not.
        let mut zero_missing = vec![false; nf];
        let mut first_apart: Vec<Option<(usize, usize, u32)>> = vec![None; nf];
        let mut seq = 0usize;
        // Depth-first pre-order, so a left child is usually the next node.
        let mut stack: Vec<(u32, usize)> = Vec::new(); // (source node, flat slot)
        for (t, tree) in trees.into_iter().enumerate() {
            let tree = tree.borrow();
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
                        let start = out.head.leaf_table.len() as u32;
                        out.head.leaf_table.extend_from_slice(pairs);
                        FlatNode {
                            threshold: 0.0,
                            meta: LEAF | VECTOR,
                            left: start,
                            right: out.head.leaf_table.len() as u32,
                        }
                    }
                    Node::Split(s) => {
                        let f = s.feature as usize;
                        if s.zero_is_missing {
                            zero_missing[f] = true;
                        } else if first_apart[f].is_none()
                            && test_holds(&s.test, 0.0) != (s.missing == Branch::Yes)
                        {
                            first_apart[f] = Some((seq, t, i));
                        }
                        // (threshold, yes_is_left)
                        let (threshold, cat, yes_left) = match &s.test {
                            Test::Lt(v) => (*v, false, true),
                            Test::Le(v) => (v.next_up(), false, true),
                            Test::Ge(v) => (*v, false, false),
                            Test::Gt(v) => (v.next_up(), false, false),
                            Test::InSet { words, rule } => {
                                out.head.sets.push(CategorySet {
                                    words: words.clone().into_boxed_slice(),
                                    rule: *rule,
                                });
                                ((out.head.sets.len() - 1) as f64, true, true)
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
                seq += 1;
            }
        }
        let apart = (0..nf)
            .filter(|&f| zero_missing[f])
            .filter_map(|f| first_apart[f].map(|(seq, t, i)| (seq, t, i, f)))
            .min();
        if let Some((_, t, i, f)) = apart {
            return Err(EnsembleError(format!(
                "tree {t} node {i}: feature {f} treats zero as missing in other nodes but \
                 not here; this model cannot be compiled"
            )));
        }
        out.head.any_zero_missing = zero_missing.contains(&true);
        out.head.zero_missing = zero_missing;
        Ok(out)
    }

    /// Features a row has.
    pub fn num_features(&self) -> usize {
        self.head.num_features
    }

    /// Scores an answer has (classes, or 1 for regression).
    pub fn num_scores(&self) -> usize {
        self.head.num_scores
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
        self.head.output
    }

    /// Evaluates one row (`num_features` values; NaN = missing) into `scores`
    /// (`num_scores` long: probabilities, or the value) and returns the class index (0 for
    /// regression). `scratch` is reused between calls.
    pub fn predict(&self, row: &[f64], scratch: &mut Scratch, scores: &mut [f64]) -> usize {
        debug_assert_eq!(row.len(), self.head.num_features);
        scratch.row.clear();
        let has_nan = self.head.prepare_into(row, &mut scratch.row);
        match self.head.precision {
            Precision::F64 => self.sum(&scratch.row, has_nan, &mut scratch.acc64, &mut scratch.raw),
            Precision::F32 => self.sum(&scratch.row, has_nan, &mut scratch.acc32, &mut scratch.raw),
        }
        self.head.finish(&mut scratch.raw, scores)
    }

    /// The raw scores of a prepared row, summed in tree order in precision `T`.
    #[inline]
    fn sum<T: Prec>(&self, x: &[f64], has_nan: bool, acc: &mut Vec<T>, raw: &mut Vec<f64>) {
        acc.clear();
        acc.resize(self.head.outputs, T::default());
        self.head.begin(acc);
        for (t, &root) in self.roots.iter().enumerate() {
            self.add_leaf(self.leaf(root, x, has_nan), self.groups[t], |o, v| {
                acc[o] += T::of(v)
            });
        }
        self.head.end(acc, raw);
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
                self.head.sets[n.threshold as usize].contains(v)
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
            for &(o, v) in &self.head.leaf_table[leaf.left as usize..leaf.right as usize] {
                add(o as usize, v);
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
    acc64: Vec<f64>,
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
