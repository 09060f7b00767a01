//! Tree structures: a serde mirror of smartcore's serialized trees, structural validation, and
//! the compiled flat evaluator that serves predictions.
//!
//! smartcore keeps its tree nodes private, but serializes them with named fields. Decoding the
//! payload into these mirror types gives treeserve the nodes without depending on smartcore's
//! private layout at run time, and keeps smartcore types out of the serving path.

use serde::{Deserialize, Serialize};

use super::ArtifactError;

/// One node of a smartcore decision tree, as smartcore serializes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MirrorNode {
    /// Majority class index at this node.
    pub output: usize,
    /// Training samples that reached this node.
    #[serde(default)]
    pub n_node_samples: usize,
    /// Feature compared at this node (internal nodes only).
    pub split_feature: usize,
    /// Threshold: `x[split_feature] <= split_value` goes to `true_child`.
    pub split_value: Option<f64>,
    /// Impurity gain of the split.
    #[serde(default)]
    pub split_score: Option<f64>,
    /// Index of the child taken when the comparison holds.
    pub true_child: Option<usize>,
    /// Index of the child taken otherwise.
    pub false_child: Option<usize>,
    /// Node impurity.
    #[serde(default)]
    pub impurity: Option<f64>,
}

/// A smartcore `DecisionTreeClassifier` as serialized (the fields treeserve needs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MirrorTree {
    /// Nodes; index 0 is the root.
    pub nodes: Vec<MirrorNode>,
    /// Number of classes.
    pub num_classes: usize,
    /// Class values (treeserve trains on class indices `0..k`).
    pub classes: Vec<u32>,
    /// Depth recorded by smartcore.
    pub depth: u16,
    /// Number of features.
    pub num_features: usize,
}

/// A smartcore `RandomForestClassifier` as serialized.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MirrorForest {
    /// The trees of the forest.
    pub trees: Option<Vec<MirrorTree>>,
    /// Class values.
    pub classes: Option<Vec<u32>>,
}

/// Limits applied when validating a tree structure.
#[derive(Debug, Clone, Copy)]
pub struct TreeLimits {
    /// Maximum number of nodes in one tree.
    pub max_nodes: usize,
    /// Maximum depth of one tree.
    pub max_depth: usize,
    /// Maximum number of trees in a forest.
    pub max_trees: usize,
}

impl Default for TreeLimits {
    fn default() -> Self {
        Self {
            max_nodes: 1 << 20,
            max_depth: 512,
            max_trees: 4096,
        }
    }
}

impl MirrorTree {
    /// Checks that the tree is well formed for `num_features` features and `num_classes`
    /// classes: every child index is in range and after its parent (so evaluation always
    /// terminates), split features and outputs are in range, thresholds are finite.
    pub fn validate(
        &self,
        num_features: usize,
        num_classes: usize,
        limits: &TreeLimits,
    ) -> Result<(), ArtifactError> {
        let bad = |msg: String| Err(ArtifactError::InvalidTree(msg));
        let n = self.nodes.len();
        if n == 0 {
            return bad("tree has no nodes".into());
        }
        if n > limits.max_nodes {
            return bad(format!(
                "tree has {n} nodes, over the limit of {}",
                limits.max_nodes
            ));
        }
        if self.num_features != num_features {
            return bad(format!(
                "tree expects {} features, manifest names {num_features}",
                self.num_features
            ));
        }
        // A class with no training row (all its rows held out) is absent from the tree's
        // classes: they are the manifest's class indices the tree learned, in order.
        if self.num_classes != self.classes.len()
            || !is_increasing_subset(&self.classes, num_classes)
        {
            return bad(format!(
                "tree classes are not among the manifest's {num_classes} classes"
            ));
        }
        let mut depth = vec![0usize; n];
        for (i, node) in self.nodes.iter().enumerate() {
            if node.output >= self.num_classes {
                return bad(format!("node {i} outputs class {}", node.output));
            }
            match (node.true_child, node.false_child) {
                (None, None) => {}
                (Some(t), Some(f)) => {
                    if t <= i || f <= i || t >= n || f >= n || t == f {
                        return bad(format!("node {i} has children {t} and {f} out of order"));
                    }
                    if node.split_feature >= num_features {
                        return bad(format!("node {i} splits on feature {}", node.split_feature));
                    }
                    match node.split_value {
                        Some(v) if v.is_finite() => {}
                        _ => return bad(format!("node {i} has no finite threshold")),
                    }
                    let d = depth[i] + 1;
                    if d > limits.max_depth {
                        return bad(format!("tree deeper than {}", limits.max_depth));
                    }
                    depth[t] = depth[t].max(d);
                    depth[f] = depth[f].max(d);
                }
                _ => return bad(format!("node {i} has only one child")),
            }
        }
        Ok(())
    }

    /// Index of the leaf a row reaches, walking the mirror nodes (used at training time).
    pub fn leaf_for(&self, row: &[f64]) -> usize {
        let mut i = 0;
        loop {
            let node = &self.nodes[i];
            match (node.true_child, node.false_child) {
                (Some(t), Some(f)) => {
                    let v = node.split_value.unwrap_or(f64::NAN);
                    i = if row[node.split_feature] <= v { t } else { f };
                }
                _ => return i,
            }
        }
    }
}

/// `classes` strictly increasing and each below `k` (the identity when every class trained).
fn is_increasing_subset(classes: &[u32], k: usize) -> bool {
    !classes.is_empty()
        && classes.windows(2).all(|w| w[0] < w[1])
        && classes.iter().all(|&c| (c as usize) < k)
}

/// Marks a leaf in [`FlatNode::feature`].
const LEAF: u32 = u32::MAX;

/// A compact node: 24 bytes, children as indices into one array shared by every tree.
#[derive(Debug, Clone, Copy)]
struct FlatNode {
    threshold: f64,
    /// Feature index, or [`LEAF`].
    feature: u32,
    /// Child taken when `x <= threshold`; for a leaf, the leaf's index.
    left: u32,
    /// Child taken otherwise.
    right: u32,
}

/// Every tree of a model compiled into one flat node array, with per-leaf class
/// probabilities. Built only from validated trees.
#[derive(Debug, Clone)]
pub struct FlatForest {
    nodes: Vec<FlatNode>,
    roots: Vec<u32>,
    leaf_class: Vec<u32>,
    leaf_proba: Vec<f64>,
    num_classes: usize,
    num_features: usize,
}

impl FlatForest {
    /// Compiles validated trees. `leaf_counts[t][node]` holds the training class counts of
    /// each leaf (empty for internal nodes).
    pub fn compile(
        trees: &[MirrorTree],
        leaf_counts: &[Vec<Vec<u32>>],
        num_features: usize,
        num_classes: usize,
    ) -> Result<Self, ArtifactError> {
        if leaf_counts.len() != trees.len() {
            return Err(ArtifactError::Invalid(format!(
                "leaf counts cover {} trees, the model has {}",
                leaf_counts.len(),
                trees.len()
            )));
        }
        let total: usize = trees.iter().map(|t| t.nodes.len()).sum();
        if total >= LEAF as usize {
            return Err(ArtifactError::Invalid("too many nodes".into()));
        }
        let mut forest = FlatForest {
            nodes: Vec::with_capacity(total),
            roots: Vec::with_capacity(trees.len()),
            leaf_class: Vec::new(),
            leaf_proba: Vec::new(),
            num_classes,
            num_features,
        };
        for (t, (tree, counts)) in trees.iter().zip(leaf_counts).enumerate() {
            if counts.len() != tree.nodes.len() {
                return Err(ArtifactError::Invalid(format!(
                    "tree {t}: leaf counts cover {} nodes, the tree has {}",
                    counts.len(),
                    tree.nodes.len()
                )));
            }
            let base = forest.nodes.len() as u32;
            forest.roots.push(base);
            for (i, node) in tree.nodes.iter().enumerate() {
                match (node.true_child, node.false_child) {
                    (Some(l), Some(r)) => forest.nodes.push(FlatNode {
                        threshold: node.split_value.unwrap_or(f64::NAN),
                        feature: node.split_feature as u32,
                        left: base + l as u32,
                        right: base + r as u32,
                    }),
                    _ => {
                        let leaf = forest.leaf_class.len() as u32;
                        // The tree's class index, as the manifest's (validated: in range).
                        let class = tree.classes[node.output] as usize;
                        forest.leaf_class.push(class as u32);
                        push_proba(&mut forest.leaf_proba, &counts[i], class, num_classes)
                            .map_err(|m| {
                                ArtifactError::Invalid(format!("tree {t} node {i}: {m}"))
                            })?;
                        forest.nodes.push(FlatNode {
                            threshold: 0.0,
                            feature: LEAF,
                            left: leaf,
                            right: leaf,
                        });
                    }
                }
            }
        }
        Ok(forest)
    }

    /// Number of features a row must have.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Number of trees.
    pub fn num_trees(&self) -> usize {
        self.roots.len()
    }

    /// Total number of nodes over all trees.
    pub fn num_nodes(&self) -> usize {
        self.nodes.len()
    }

    #[inline]
    fn leaf(&self, root: u32, row: &[f64]) -> usize {
        let mut i = root as usize;
        loop {
            let n = &self.nodes[i];
            if n.feature == LEAF {
                return n.left as usize;
            }
            i = if row[n.feature as usize] <= n.threshold {
                n.left
            } else {
                n.right
            } as usize;
        }
    }

    /// Predicts the class index of one row (`row.len() == num_features`). A forest takes
    /// the majority vote of its trees, the first class winning ties, as smartcore does.
    #[inline]
    pub fn predict(&self, row: &[f64]) -> usize {
        debug_assert_eq!(row.len(), self.num_features);
        if let [root] = self.roots[..] {
            return self.leaf_class[self.leaf(root, row)] as usize;
        }
        let mut small = [0u32; 16];
        let mut big;
        let votes: &mut [u32] = if self.num_classes <= small.len() {
            &mut small[..self.num_classes]
        } else {
            big = vec![0u32; self.num_classes];
            &mut big
        };
        for &root in &self.roots {
            votes[self.leaf_class[self.leaf(root, row)] as usize] += 1;
        }
        which_max(votes)
    }

    /// Writes class probabilities of one row into `out` (`num_classes` long): the leaf's
    /// training class distribution, averaged over the trees of a forest.
    pub fn predict_proba(&self, row: &[f64], out: &mut [f64]) {
        let k = self.num_classes;
        out.fill(0.0);
        for &root in &self.roots {
            let leaf = self.leaf(root, row);
            for (o, p) in out
                .iter_mut()
                .zip(&self.leaf_proba[leaf * k..(leaf + 1) * k])
            {
                *o += p;
            }
        }
        if self.roots.len() > 1 {
            let n = self.roots.len() as f64;
            out.iter_mut().for_each(|o| *o /= n);
        }
    }
}

fn push_proba(
    out: &mut Vec<f64>,
    counts: &[u32],
    output: usize,
    k: usize,
) -> Result<(), &'static str> {
    if counts.len() != k {
        return Err("leaf class counts do not match the number of classes");
    }
    let total: u64 = counts.iter().map(|&c| c as u64).sum();
    if total == 0 {
        // No training row reached this leaf: all mass on its output.
        out.extend((0..k).map(|c| if c == output { 1.0 } else { 0.0 }));
    } else {
        out.extend(counts.iter().map(|&c| c as f64 / total as f64));
    }
    Ok(())
}

/// Index of the first maximum, as smartcore's `which_max`.
fn which_max(v: &[u32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate().skip(1) {
        if x > v[best] {
            best = i;
        }
    }
    best
}
