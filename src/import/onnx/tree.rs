//! Builds treeserve trees from ONNX node arrays: children resolved to array indices, then
//! an iterative walk from each root renumbers reachable nodes (root 0), refusing a node
//! reached twice (a cycle, or a node shared by two parents or two trees).

use super::malformed;
use crate::import::ImportError;
use crate::model::ensemble::{Branch, Leaf, Node, Split, Test, Tree};

/// One ONNX node with its children as indices into the same array.
pub enum Src {
    /// A split: `test` true (or NaN with `tracks_true`) goes to `yes`.
    Split {
        /// Feature index.
        feature: u32,
        /// The comparison.
        test: Test,
        /// `nodes_missing_value_tracks_true == 1`.
        tracks_true: bool,
        /// True child.
        yes: usize,
        /// False child.
        no: usize,
    },
    /// A leaf's `(output, weight)` pairs in attribute order.
    Leaf(Vec<(u32, f64)>),
}

/// Parses an ONNX id or index that must lie in `0..n`.
pub fn index(v: i64, n: usize, what: impl Fn() -> String) -> Result<usize, ImportError> {
    usize::try_from(v)
        .ok()
        .filter(|&i| i < n)
        .ok_or_else(|| malformed(format!("{}: {v} is out of range (0..{n})", what())))
}

/// Parses a feature index.
pub fn feature(v: i64, what: impl Fn() -> String) -> Result<u32, ImportError> {
    u32::try_from(v)
        .ok()
        .filter(|&f| f < (1 << 28))
        .ok_or_else(|| malformed(format!("{}: feature {v} is out of range", what())))
}

/// Builds tree `t` from `src` starting at `root`; `seen` is shared by all trees. Also
/// says whether a reached leaf has no weight (it adds nothing, and sets no score).
pub fn build(
    src: &mut [Src],
    root: usize,
    seen: &mut [bool],
    t: usize,
) -> Result<(Tree, bool), ImportError> {
    let twice = |i: usize| {
        malformed(format!(
            "tree {t}: node {i} is reached twice (a cycle, or a node shared by two parents \
             or two trees)"
        ))
    };
    let placeholder = || Node::Leaf(Leaf::Scalar(0.0));
    if std::mem::replace(&mut seen[root], true) {
        return Err(twice(root));
    }
    let mut nodes = vec![placeholder()];
    let mut stack = vec![(root, 0usize)];
    let mut empty_leaf = false;
    while let Some((s, d)) = stack.pop() {
        let node = match &mut src[s] {
            Src::Leaf(pairs) => Node::Leaf(match pairs.as_slice() {
                [] => {
                    // Adding +0.0 is exact: a sum from +0.0 is never -0.0.
                    empty_leaf = true;
                    Leaf::Scalar(0.0)
                }
                [(0, w)] => Leaf::Scalar(*w),
                _ => Leaf::Vector(std::mem::take(pairs)),
            }),
            Src::Split {
                feature,
                test,
                tracks_true,
                yes,
                no,
            } => {
                for c in [*yes, *no] {
                    if std::mem::replace(&mut seen[c], true) {
                        return Err(twice(c));
                    }
                }
                let y = nodes.len();
                let n = y + 1;
                nodes.push(placeholder());
                nodes.push(placeholder());
                stack.push((*no, n));
                stack.push((*yes, y));
                Node::Split(Split {
                    feature: *feature,
                    test: test.clone(),
                    yes: y as u32,
                    no: n as u32,
                    // NaN fails every ordered comparison: it goes true only when tracked.
                    missing: if *tracks_true {
                        Branch::Yes
                    } else {
                        Branch::No
                    },
                    zero_is_missing: false,
                })
            }
        };
        nodes[d] = node;
    }
    Ok((Tree { nodes, group: 0 }, empty_leaf))
}

/// Whether every leaf of `tree` adds to `output` (then ONNX Runtime's `has_score` for it
/// is set in every row).
pub fn covers(tree: &Tree, output: u32) -> bool {
    tree.nodes.iter().all(|n| match n {
        Node::Split(_) => true,
        Node::Leaf(Leaf::Scalar(_)) => output == tree.group,
        Node::Leaf(Leaf::Vector(p)) => p.iter().any(|&(o, _)| o == output),
    })
}
