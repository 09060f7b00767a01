//! One XGBoost tree object → a treeserve [`Tree`]: built by an explicit-stack traversal
//! from node 0, renumbered so every kept node is reached exactly once (deleted and other
//! unreachable nodes are dropped).

use super::Fail;
use super::value::{Seq, Value};
use crate::model::ensemble::{Branch, CategoryRule, EnsembleLimits, Leaf, Node, Split, Test, Tree};

/// XGBoost's largest valid category is below 2^24 (`OutOfRangeCat`).
const MAX_CATEGORY: i64 = 1 << 24;

/// Reads tree `t` (output group `group`) of a model with `num_feature` features.
pub fn read_tree(
    tree: &Value,
    t: usize,
    group: u32,
    num_feature: u32,
    limits: &EnsembleLimits,
) -> Result<Tree, Fail> {
    let field = |name: &str| -> Result<Seq<'_>, String> {
        tree.get(name)
            .and_then(Value::seq)
            .ok_or_else(|| format!("trees[{t}].{name} is missing or not an array"))
    };
    let param = tree
        .get("tree_param")
        .ok_or_else(|| format!("trees[{t}].tree_param is missing"))?;
    let size_leaf = match param.get("size_leaf_vector") {
        None => 1,
        Some(v) => super::int_param(v)
            .ok_or_else(|| format!("trees[{t}].tree_param.size_leaf_vector is not an integer"))?,
    };
    if size_leaf > 1 {
        return Err(Fail::Unsupported(format!(
            "trees[{t}] is a multi-target tree (size_leaf_vector {size_leaf}); treeserve \
             serves one output per tree: retrain with multi_strategy=one_output_per_tree"
        )));
    }
    let left = field("left_children")?;
    let right = field("right_children")?;
    let index = field("split_indices")?;
    let cond = field("split_conditions")?;
    let dleft = field("default_left")?;
    let n = left.len();
    if let Some(declared) = param.get("num_nodes").and_then(super::int_param)
        && declared != n as i64
    {
        return Err(format!(
            "trees[{t}].tree_param.num_nodes is {declared} but left_children has {n} entries"
        )
        .into());
    }
    if n == 0 {
        return Err(format!("trees[{t}] has no nodes").into());
    }
    if n > limits.max_nodes {
        return Err(Fail::Unsupported(format!(
            "trees[{t}] has {n} nodes (treeserve allows at most {})",
            limits.max_nodes
        )));
    }
    for (name, s) in [
        ("right_children", right),
        ("split_indices", index),
        ("split_conditions", cond),
        ("default_left", dleft),
    ] {
        if s.len() != n {
            return Err(format!("trees[{t}].{name} has {} entries for {n} nodes", s.len()).into());
        }
    }
    let split_type = match tree.get("split_type") {
        None => None,
        Some(v) => {
            let s = v
                .seq()
                .ok_or_else(|| format!("trees[{t}].split_type is not an array"))?;
            if s.len() != n {
                return Err(format!(
                    "trees[{t}].split_type has {} entries for {n} nodes",
                    s.len()
                )
                .into());
            }
            Some(s)
        }
    };
    let cats = match split_type {
        Some(st) if (0..n).any(|i| st.int(i) == Some(1)) => Some(Categories::read(tree, t, n)?),
        _ => None,
    };

    let bad = |i: usize, what: String| Fail::Malformed(format!("trees[{t}] node {i}: {what}"));
    let mut nodes: Vec<Node> = Vec::new();
    let mut seen = vec![false; n];
    let mut stack: Vec<(usize, usize)> = vec![(0, 0)]; // (file node, new index)
    seen[0] = true;
    nodes.push(Node::Leaf(Leaf::Scalar(0.0)));
    while let Some((i, slot)) = stack.pop() {
        let l = left
            .int(i)
            .ok_or_else(|| bad(i, "left_children is not an integer".into()))?;
        if l == -1 {
            let v = cond
                .float(i)
                .ok_or_else(|| bad(i, "split_conditions is not a number".into()))?;
            if !v.is_finite() {
                return Err(bad(i, format!("leaf value {v} is not finite")));
            }
            nodes[slot] = Node::Leaf(Leaf::Scalar(v as f64));
            continue;
        }
        let r = right
            .int(i)
            .ok_or_else(|| bad(i, "right_children is not an integer".into()))?;
        let child = |c: i64, name: &str| -> Result<usize, Fail> {
            if c < 0 || c >= n as i64 {
                return Err(bad(i, format!("{name} {c} is out of range (0..{n})")));
            }
            Ok(c as usize)
        };
        let (l, r) = (child(l, "left child")?, child(r, "right child")?);
        if r != l + 1 {
            // XGBoost's predictor goes to `left + 1` for "not left" but to the right child
            // for a missing value; a file breaking the assumption has no single meaning.
            return Err(bad(
                i,
                format!(
                    "right child {r} is not left child {l} + 1, as XGBoost's predictor assumes"
                ),
            ));
        }
        for c in [l, r] {
            if seen[c] {
                return Err(bad(
                    i,
                    format!("child {c} is reached twice (a cycle or a shared node)"),
                ));
            }
            seen[c] = true;
        }
        let feature = index
            .int(i)
            .ok_or_else(|| bad(i, "split_indices is not an integer".into()))?
            & 0x7FFF_FFFF;
        if feature >= num_feature as i64 {
            return Err(bad(
                i,
                format!("split feature {feature} but the model has {num_feature} features"),
            ));
        }
        let default_left = match dleft.int(i) {
            Some(0) => false,
            Some(1) => true,
            _ => return Err(bad(i, "default_left is not 0/1 or a boolean".into())),
        };
        let categorical = match split_type.map(|s| s.int(i)) {
            None | Some(Some(0)) => false,
            Some(Some(1)) => true,
            _ => return Err(bad(i, "split_type is not 0 or 1".into())),
        };
        let (yes, no) = (nodes.len(), nodes.len() + 1);
        let (test, yes_child, no_child, missing) = if categorical {
            let words = cats
                .as_ref()
                .ok_or_else(|| bad(i, "categorical split without categories".into()))?
                .set(t, i, limits)?;
            // Listed categories go right: yes = right, no = left.
            let missing = if default_left {
                Branch::No
            } else {
                Branch::Yes
            };
            let test = Test::InSet {
                words,
                rule: CategoryRule::Truncate,
            };
            (test, r, l, missing)
        } else {
            let v = cond
                .float(i)
                .ok_or_else(|| bad(i, "split_conditions is not a number".into()))?;
            if !v.is_finite() {
                return Err(bad(i, format!("split threshold {v} is not finite")));
            }
            let missing = if default_left {
                Branch::Yes
            } else {
                Branch::No
            };
            (Test::Lt(v as f64), l, r, missing)
        };
        nodes[slot] = Node::Split(Split {
            feature: feature as u32,
            test,
            yes: yes as u32,
            no: no as u32,
            missing,
            zero_is_missing: false,
        });
        nodes.push(Node::Leaf(Leaf::Scalar(0.0)));
        nodes.push(Node::Leaf(Leaf::Scalar(0.0)));
        stack.push((no_child, no));
        stack.push((yes_child, yes));
    }
    Ok(Tree { nodes, group })
}

/// A tree's categorical splits: per node, a range of `categories`.
struct Categories<'a> {
    /// Per file node: `(offset, size)` into `values`, for categorical nodes.
    ranges: Vec<Option<(usize, usize)>>,
    values: Seq<'a>,
}

impl<'a> Categories<'a> {
    fn read(tree: &'a Value, t: usize, n: usize) -> Result<Self, String> {
        let field = |name: &str| -> Result<Seq<'a>, String> {
            tree.get(name)
                .and_then(Value::seq)
                .ok_or_else(|| format!("trees[{t}].{name} is missing or not an array"))
        };
        let nodes = field("categories_nodes")?;
        let segments = field("categories_segments")?;
        let sizes = field("categories_sizes")?;
        let values = field("categories")?;
        if segments.len() != nodes.len() || sizes.len() != nodes.len() {
            return Err(format!(
                "trees[{t}]: categories_nodes, categories_segments and categories_sizes \
                 have different lengths"
            ));
        }
        let mut ranges = vec![None; n];
        for j in 0..nodes.len() {
            let (node, seg, size) = (nodes.int(j), segments.int(j), sizes.int(j));
            let (Some(node), Some(seg), Some(size)) = (node, seg, size) else {
                return Err(format!("trees[{t}].categories_*[{j}] is not an integer"));
            };
            let end = seg.checked_add(size);
            if node < 0
                || node >= n as i64
                || seg < 0
                || size < 0
                || end.is_none_or(|e| e > values.len() as i64)
            {
                return Err(format!(
                    "trees[{t}].categories_*[{j}]: node {node}, segment {seg}, size {size} \
                     out of range ({n} nodes, {} categories)",
                    values.len()
                ));
            }
            ranges[node as usize] = Some((seg as usize, size as usize));
        }
        Ok(Categories { ranges, values })
    }

    /// The bitset of node `i`'s categories.
    fn set(&self, t: usize, i: usize, limits: &EnsembleLimits) -> Result<Vec<u32>, Fail> {
        let bad = |what: String| format!("trees[{t}] node {i}: {what}");
        let (seg, size) = self.ranges[i]
            .ok_or_else(|| bad("categorical split not in categories_nodes".into()))?;
        let mut words: Vec<u32> = Vec::new();
        for j in seg..seg + size {
            let c = self
                .values
                .int(j)
                .ok_or_else(|| bad(format!("categories[{j}] is not an integer")))?;
            if !(0..MAX_CATEGORY).contains(&c) {
                return Err(bad(format!(
                    "category {c} is outside XGBoost's range 0..{MAX_CATEGORY}"
                ))
                .into());
            }
            let w = (c / 32) as usize;
            if w >= limits.max_set_words {
                return Err(Fail::Unsupported(bad(format!(
                    "category {c}: treeserve serves categories below {}",
                    limits.max_set_words * 32
                ))));
            }
            if w >= words.len() {
                words.resize(w + 1, 0);
            }
            words[w] |= 1 << (c % 32);
        }
        Ok(words)
    }
}
