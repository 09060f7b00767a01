//! The wide layout built from a compiled [`FlatEnsemble`]: trees in groups of
//! [`LANES`], each group level by level; trees that cannot be grouped walked alone.

use super::{
    CATEGORICAL, DEFAULT_LEFT, FEATURE_MASK, FLAG_BITS, FlatEnsemble, LANES, LEAF, MAX_GROUP_DEPTH,
    MAX_SETS, Node, Prec, Segment, VECTOR, W_CAT, W_DEFAULT_LEFT, W_LEAF, W_VECTOR, Walk, Wide,
    default_block,
};

/// The wide layout of `flat`'s trees, or `None` if features and nodes do not fit.
pub(super) fn build<T: Prec + Walk>(flat: &FlatEnsemble) -> Option<Wide<T>> {
    // Feature indexes 0..=nf: nf is the phantom `-inf` of the leaves.
    let nf = flat.head.num_features as u32;
    // At least 3 bits: a row is at least 8 values (the smallest stride `eval` knows).
    let fbits = (u32::BITS - nf.leading_zeros()).max(3);
    let total = flat.nodes.len() + 1;
    let cshift = fbits + FLAG_BITS;
    if cshift >= 32 || total > 1 << (32 - cshift) || flat.head.sets.len() > MAX_SETS {
        return None;
    }
    let mut w = Wide {
        nodes: Vec::with_capacity(total),
        segments: Vec::new(),
        ranges: Vec::new(),
        fbits,
        fmask: (1 << fbits) - 1,
        dl: W_DEFAULT_LEFT << fbits,
        cshift,
        catw: W_CAT << fbits,
        masks: vec![0],
        smask: 0,
        codes: Vec::new(),
        simd: false,
        avx2: false,
        how: super::How::choose::<T>().unwrap_or(super::How::Loads),
        block: default_block::<T>(fbits),
        tops: Vec::new(),
        blocks: false,
        keys: false,
    };
    if let Some((codes, masks)) = category_codes(flat) {
        w.smask = (masks.len().next_power_of_two() - 1) as u32;
        w.masks = masks;
        w.masks.resize(w.smask as usize + 1, 0);
        w.codes = codes;
    }
    let cats = !w.codes.is_empty();
    // The dummy leaf: node 0.
    let dummy = Node {
        t: T::default(),
        m: w.meta(nf, W_LEAF, 0),
    };
    w.nodes.push(dummy);
    let mut group: Vec<Grouped> = Vec::new();
    let mut depths = Vec::new();
    let ends = flat
        .roots
        .iter()
        .skip(1)
        .copied()
        .chain([flat.nodes.len() as u32]);
    for ((&root, end), &out) in flat.roots.iter().zip(ends).zip(&flat.groups) {
        if let Some((cat, depth)) = groupable(flat, root..end, cats, &mut depths) {
            group.push(Grouped {
                root,
                out,
                cat,
                depth,
            });
            if group.len() == LANES {
                flush(&mut w, flat, &mut group)?;
            }
        } else {
            flush(&mut w, flat, &mut group)?;
            let (roots, _) = lay_out(&mut w, flat, &[root], false)?;
            w.segments.push(Segment::One {
                root: roots[0],
                out,
            });
        }
    }
    flush(&mut w, flat, &mut group)?;
    if w.nodes.len() > 1 << (32 - cshift) {
        return None;
    }
    // Each node is laid out once per root reaching it: the reservation holds unless
    // trees share nodes, and then the Vec doubled; give any excess back.
    w.nodes.shrink_to_fit();
    w.set_vector_walk(true);
    Some(w)
}

/// A tree waiting for its group.
struct Grouped {
    /// Its root in `flat`.
    root: u32,
    out: u32,
    /// Whether it has a category split.
    cat: bool,
    depth: usize,
}

/// Whether a tree can be walked in a group: only number splits (and category splits,
/// when `cats`: they are grouped) and scalar leaves, at most `MAX_GROUP_DEPTH` deep.
/// `Some((whether it has a category split, its depth))`. The tree is the nodes `range`
/// of `flat`, its children after their parent ([`FlatEnsemble::compile`]'s layout): one
/// pass in order, each node's depth set by its parent (`depths`, reused), where a search
/// from the root took 3.5 ms of a 500-tree model's 25 ms load.
fn groupable(
    flat: &FlatEnsemble,
    range: std::ops::Range<u32>,
    cats: bool,
    depths: &mut Vec<u8>,
) -> Option<(bool, usize)> {
    const _: () = assert!(MAX_GROUP_DEPTH < 256, "depths are u8");
    let root = range.start;
    let nodes = flat.nodes.get(range.start as usize..range.end as usize)?;
    depths.clear();
    depths.resize(nodes.len(), 0);
    let mut has_cat = false;
    let mut deepest = 0;
    for (k, n) in nodes.iter().enumerate() {
        let d = usize::from(depths[k]);
        if n.meta & LEAF != 0 {
            if n.meta & VECTOR != 0 {
                return None;
            }
            deepest = deepest.max(d);
        } else {
            let cat = n.meta & CATEGORICAL != 0;
            if (cat && !cats) || d >= MAX_GROUP_DEPTH {
                return None;
            }
            has_cat |= cat;
            for child in [n.left, n.right] {
                // A child is after its parent, in the tree: anything else is not grouped.
                let at = child.checked_sub(root).filter(|&c| c as usize > k)?;
                *depths.get_mut(at as usize)? = (d + 1) as u8;
            }
        }
    }
    Some((has_cat, deepest))
}

/// Whether category splits can be grouped, and then the features they split on and each
/// set as bits: every set has one rule and only categories below 63 (a row's category
/// fits 6 bits, 63 meaning "in no set"), a set's index is exact in `Prec::low`, and no
/// number split reads a category feature (the row holds categories for them).
fn category_codes(flat: &FlatEnsemble) -> Option<(Vec<usize>, Vec<u64>)> {
    let sets = &flat.head.sets;
    let rule = sets.first()?.rule;
    if sets.len() >= 1 << 22 || sets.iter().any(|s| s.rule != rule) {
        return None;
    }
    let mut masks = Vec::with_capacity(sets.len());
    for s in sets {
        let w = &s.words;
        if w.len() > 2 || w.get(1).is_some_and(|&hi| hi >> 31 != 0) {
            return None;
        }
        masks.push(
            u64::from(w.first().copied().unwrap_or(0))
                | u64::from(w.get(1).copied().unwrap_or(0)) << 32,
        );
    }
    let nf = flat.head.num_features;
    let (mut by_cat, mut by_number) = (vec![false; nf], vec![false; nf]);
    for n in flat.nodes.iter().filter(|n| n.meta & LEAF == 0) {
        let f = (n.meta & FEATURE_MASK) as usize;
        if n.meta & CATEGORICAL != 0 {
            by_cat[f] = true;
        } else {
            by_number[f] = true;
        }
    }
    if by_cat.iter().zip(&by_number).any(|(&c, &n)| c && n) {
        return None;
    }
    Some(((0..nf).filter(|&f| by_cat[f]).collect(), masks))
}

fn flush<T: Prec + Walk>(
    w: &mut Wide<T>,
    flat: &FlatEnsemble,
    group: &mut Vec<Grouped>,
) -> Option<()> {
    if group.is_empty() {
        return Some(());
    }
    let flat_roots: Vec<u32> = group.iter().map(|g| g.root).collect();
    let deepest = group.iter().map(|g| g.depth).max().unwrap_or(0);
    let (new_roots, depth) = lay_out(w, flat, &flat_roots, T::SET_IN_NODE)?;
    debug_assert_eq!(depth, deepest);
    let mut roots = [0; LANES];
    let mut outs = [0; LANES];
    for (j, (&r, g)) in new_roots.iter().zip(group.iter()).enumerate() {
        roots[j] = r;
        outs[j] = g.out;
    }
    w.segments.push(Segment::Group {
        roots,
        outs,
        count: group.len(),
        depth,
        cat: group.iter().any(|g| g.cat),
    });
    group.clear();
    Some(())
}

/// Appends the trees at `roots` level by level (all trees' level 0, then level 1, …),
/// each split's children side by side. A category split's threshold is its set's index,
/// or with `set_in_node` (a group's, [`Walk::SET_IN_NODE`]) the set's bits. Returns the
/// new roots and the depth.
fn lay_out<T: Prec + Walk>(
    w: &mut Wide<T>,
    flat: &FlatEnsemble,
    roots: &[u32],
    set_in_node: bool,
) -> Option<(Vec<u32>, usize)> {
    let new_roots = (w.nodes.len() as u32..).take(roots.len()).collect();
    let mut cur = roots.to_vec();
    let mut next = Vec::new();
    let mut levels = 0;
    while !cur.is_empty() {
        let base_next = w.nodes.len() + cur.len();
        // Every child offset must fit the meta word.
        if base_next + 2 * cur.len() >= 1 << (32 - w.cshift) {
            return None;
        }
        for &fi in &cur {
            let n = flat.nodes[fi as usize];
            let node = if n.meta & LEAF != 0 {
                if n.meta & VECTOR != 0 {
                    w.ranges.push((n.left, n.right));
                    let r = (w.ranges.len() - 1) as u32;
                    if r as usize >= 1 << (32 - w.cshift) {
                        return None;
                    }
                    Node {
                        t: T::default(),
                        m: w.meta(0, W_LEAF | W_VECTOR, r),
                    }
                } else {
                    // Its own left child on the phantom feature.
                    Node {
                        t: T::of(n.threshold),
                        m: w.meta(flat.head.num_features as u32, W_LEAF, w.nodes.len() as u32),
                    }
                }
            } else {
                let child = (base_next + next.len()) as u32;
                debug_assert_eq!(n.right, n.left + 1);
                next.extend([n.left, n.right]);
                let cat = n.meta & CATEGORICAL != 0;
                let t = if cat && set_in_node {
                    T::from_set(*w.masks.get(n.threshold as usize)?)
                } else if cat {
                    T::of(n.threshold)
                } else {
                    T::up(n.threshold)
                };
                let mut flags = 0;
                if n.meta & DEFAULT_LEFT != 0 {
                    flags |= W_DEFAULT_LEFT;
                }
                if cat {
                    flags |= W_CAT;
                }
                Node {
                    t,
                    m: w.meta(n.meta & FEATURE_MASK, flags, child),
                }
            };
            w.nodes.push(node);
        }
        std::mem::swap(&mut cur, &mut next);
        next.clear();
        levels += 1;
    }
    Some((new_roots, levels - 1))
}
