//! One LightGBM tree into treeserve's [`Tree`] (docs/design/import.md §2.3, §3.1).
//!
//! Node numbering: internal node `i` stays `i` (so the root is 0), leaf `j` becomes
//! `(num_leaves - 1) + j`. LightGBM's numerical decision (`tree.h` `NumericalDecision`) is
//! `x <= threshold` goes left after: NaN becomes 0.0 unless the missing type is NaN; a
//! missing value (NaN for type NaN, zero for type Zero) goes to the default child. Its
//! categorical decision sends `(int)x` in the node's bitset left, NaN and negatives right.

use super::malformed;
use super::parse::{Field, TreeText};
use crate::import::ImportError;
use crate::model::ensemble::{Branch, CategoryRule, EnsembleLimits, Leaf, Node, Split, Test, Tree};

/// `decision_type` bit 0: categorical split.
const CATEGORICAL: i64 = 1;
/// `decision_type` bit 1: missing values go left.
const DEFAULT_LEFT: i64 = 2;

/// Translates tree `index` (of a model with `num_features` features) into a tree adding
/// to output `group`.
pub(super) fn tree<'a>(
    t: &TreeText<'a>,
    index: usize,
    num_features: u32,
    group: u32,
) -> Result<Tree, ImportError> {
    let need = |f: &Option<Field<'a>>, key: &str| -> Result<Field<'a>, ImportError> {
        f.ok_or_else(|| malformed(format!("Tree={index} (line {}) has no {key} line", t.line)))
    };
    if let Some(f) = t.is_linear
        && f.one::<i64>()? != 0
    {
        return Err(ImportError::Unsupported(format!(
            "LightGBM Tree={index} has is_linear={}: linear trees are not supported; \
             re-train with linear_tree=false",
            f.value.trim()
        )));
    }
    let leaves = need(&t.num_leaves, "num_leaves")?;
    let num_leaves: i64 = leaves.one()?;
    let max = EnsembleLimits::default().max_nodes as i64;
    if num_leaves < 1 || num_leaves > (max + 1) / 2 {
        return Err(leaves.error(format_args!(
            "{num_leaves} (1 to {} leaves allowed)",
            (max + 1) / 2
        )));
    }
    let l = num_leaves as usize;
    let leaf_value = need(&t.leaf_value, "leaf_value")?.finite(l)?;
    if l == 1 {
        return Ok(Tree {
            nodes: vec![Node::Leaf(Leaf::Scalar(leaf_value[0]))],
            group,
        });
    }
    let n = l - 1; // internal nodes
    let split_feature: Vec<i64> = need(&t.split_feature, "split_feature")?.array(n)?;
    let threshold_field = need(&t.threshold, "threshold")?;
    let threshold: Vec<f64> = threshold_field.array(n)?;
    if let Some(i) = threshold.iter().position(|t| t.is_nan()) {
        return Err(threshold_field.error(format_args!("node {i}: NaN is not a threshold")));
    }
    let decision_type: Vec<i64> = match &t.decision_type {
        Some(f) => f.array(n)?,
        None => vec![0; n], // LightGBM's default when the line is absent
    };
    let left_field = need(&t.left_child, "left_child")?;
    let right_field = need(&t.right_child, "right_child")?;
    let left: Vec<i64> = left_field.array(n)?;
    let right: Vec<i64> = right_field.array(n)?;
    let (boundaries, words) = categories(t, index)?;

    let child = |f: &Field<'_>, i: usize, v: i64| -> Result<u32, ImportError> {
        if v >= 0 {
            if (v as u64) < n as u64 {
                return Ok(v as u32);
            }
            return Err(f.error(format_args!(
                "node {i}: child {v} is not an internal node (0..{n})"
            )));
        }
        let leaf = !v; // v < 0: leaf ~v
        if (leaf as u64) < l as u64 {
            return Ok((n + leaf as usize) as u32);
        }
        Err(f.error(format_args!(
            "node {i}: child {v} is leaf {leaf}, but the tree has {l} leaves"
        )))
    };

    let mut nodes = Vec::with_capacity(n + l);
    for i in 0..n {
        let feature = split_feature[i];
        if feature < 0 || feature >= i64::from(num_features) {
            return Err(need(&t.split_feature, "split_feature")?.error(format_args!(
                "node {i}: feature {feature}, but the model has {num_features} features"
            )));
        }
        let d = decision_type[i];
        if !(0..=15).contains(&d) {
            return Err(need(&t.decision_type, "decision_type")?.error(format_args!(
                "node {i}: {d} is not a LightGBM decision type"
            )));
        }
        let yes = child(&left_field, i, left[i])?;
        let no = child(&right_field, i, right[i])?;
        let t_i = threshold[i];
        let (test, missing, zero_is_missing) = if d & CATEGORICAL != 0 {
            let idx = t_i as i64; // an index written as a double
            if t_i != idx as f64 || idx < 0 || idx as usize + 1 >= boundaries.len() {
                return Err(threshold_field.error(format_args!(
                    "node {i}: categorical split {t_i} is not a category set of the tree \
                     (num_cat={})",
                    boundaries.len().saturating_sub(1)
                )));
            }
            let set = &words[boundaries[idx as usize]..boundaries[idx as usize + 1]];
            let test = Test::InSet {
                words: set.to_vec(),
                rule: CategoryRule::TruncateNegativeFractionIsZero,
            };
            (test, Branch::No, false) // NaN goes right
        } else {
            let default = if d & DEFAULT_LEFT != 0 {
                Branch::Yes
            } else {
                Branch::No
            };
            match (d >> 2) & 3 {
                // None: NaN is compared as 0.0.
                0 => (
                    le(t_i),
                    if 0.0 <= t_i { Branch::Yes } else { Branch::No },
                    false,
                ),
                1 => (le(t_i), default, true), // Zero: zero and NaN are missing
                2 => (le(t_i), default, false), // NaN
                _ => {
                    return Err(need(&t.decision_type, "decision_type")?.error(format_args!(
                        "node {i}: {d} has missing type 3, which LightGBM does not define"
                    )));
                }
            }
        };
        nodes.push(Node::Split(Split {
            feature: feature as u32,
            test,
            yes,
            no,
            missing,
            zero_is_missing,
        }));
    }
    nodes.extend(leaf_value.into_iter().map(|v| Node::Leaf(Leaf::Scalar(v))));
    Ok(Tree { nodes, group })
}

/// LightGBM's `x <= t` as a test with a finite threshold. LightGBM writes `inf` for a
/// split of a NaN-missing feature that sends every number left and only NaN to the
/// default child: `x <= f64::MAX` holds for every finite `x` (an infinite input, which
/// treeserve's decoders refuse, is the only difference). `x <= -inf` is exactly
/// `x < -f64::MAX`.
fn le(t: f64) -> Test {
    if t == f64::INFINITY {
        Test::Le(f64::MAX)
    } else if t == f64::NEG_INFINITY {
        Test::Lt(-f64::MAX)
    } else {
        Test::Le(t)
    }
}

/// The tree's category sets: `cat_boundaries` (num_cat + 1 offsets, ascending) into
/// `cat_threshold` (32-bit words). Empty when `num_cat` is 0.
fn categories(t: &TreeText<'_>, index: usize) -> Result<(Vec<usize>, Vec<u32>), ImportError> {
    let num_cat: i64 = match &t.num_cat {
        Some(f) => f.one()?,
        None => {
            return Err(malformed(format!(
                "Tree={index} (line {}) has no num_cat line",
                t.line
            )));
        }
    };
    if num_cat == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let missing = |key: &str| {
        malformed(format!(
            "Tree={index} (line {}) has num_cat={num_cat} but no {key} line",
            t.line
        ))
    };
    let b_field = t.cat_boundaries.ok_or_else(|| missing("cat_boundaries"))?;
    let w_field = t.cat_threshold.ok_or_else(|| missing("cat_threshold"))?;
    // The boundaries line must hold num_cat + 1 values: compare with its token count so
    // a huge num_cat allocates nothing.
    let count = super::parse::tokens(b_field.value).count();
    if num_cat < 0 || num_cat as u64 + 1 != count as u64 {
        return Err(b_field.error(format_args!(
            "{count} values, but num_cat={num_cat} needs num_cat + 1"
        )));
    }
    let boundaries: Vec<usize> = b_field.array(count)?;
    let words_count = super::parse::tokens(w_field.value).count();
    if boundaries.windows(2).any(|w| w[0] > w[1]) || boundaries[0] != 0 {
        return Err(b_field.error("offsets must start at 0 and never decrease"));
    }
    if boundaries[count - 1] != words_count {
        return Err(w_field.error(format_args!(
            "{words_count} words, but cat_boundaries ends at {}",
            boundaries[count - 1]
        )));
    }
    let words: Vec<u32> = w_field.array(words_count)?;
    Ok((boundaries, words))
}

/// LightGBM decides missing values per node; treeserve per feature (a feature with a
/// missing-type Zero node has its zeros made missing before the trees). A file whose
/// other nodes on such a feature send zero elsewhere than missing values cannot be
/// served exactly: LightGBM writes one when training continues (`init_model`) under a
/// different `zero_as_missing` or `use_missing`.
pub(super) fn check_zero_missing(trees: &[Tree], num_features: u32) -> Result<(), ImportError> {
    let mut zero_missing = vec![false; num_features as usize];
    for node in trees.iter().flat_map(|t| &t.nodes) {
        if let Node::Split(s) = node
            && s.zero_is_missing
        {
            zero_missing[s.feature as usize] = true;
        }
    }
    for (t, tree) in trees.iter().enumerate() {
        for (i, node) in tree.nodes.iter().enumerate() {
            let Node::Split(s) = node else { continue };
            if s.zero_is_missing || !zero_missing[s.feature as usize] {
                continue;
            }
            let zero_goes_yes = match &s.test {
                Test::Le(t) => 0.0 <= *t,
                Test::Lt(t) => 0.0 < *t,
                Test::InSet { words, .. } => words.first().is_some_and(|w| w & 1 == 1),
                Test::Ge(_) | Test::Gt(_) => continue, // not produced by this reader
            };
            if zero_goes_yes != (s.missing == Branch::Yes) {
                return Err(ImportError::Unsupported(format!(
                    "LightGBM Tree={t} node {i}: feature {} is zero-as-missing in other \
                     trees but not in this one (training continued with different \
                     zero_as_missing/use_missing settings?); treeserve decides missing \
                     values per feature: re-train the model in one go",
                    s.feature
                )));
            }
        }
    }
    Ok(())
}
