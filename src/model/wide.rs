//! The evaluator of large ensembles. The same trees, rules and answers as
//! [`FlatEnsemble`] (bit for bit), in a layout for many trees and rows:
//!
//! - compact nodes: the threshold in the model's precision (f32 for XGBoost, f64 for
//!   LightGBM) and one `u32` holding the feature, the left child (the right child is the
//!   next node) and the flags: 8 bytes for f32 models, 12 for f64;
//! - trees in groups of [`LANES`], each group laid out level by level over its trees, so
//!   the hot top levels of a group share a few cache lines;
//! - a group is walked all at once for a fixed number of steps (its depth), every step an
//!   index computation (`left + (x >= t)`): no branch on the data, and the trees' dependent
//!   loads overlap. A leaf is its own left child, split on a phantom feature that is
//!   always `-inf` (`-inf < value` for every leaf value), so a finished tree stays put;
//!   rows without a missing value skip the missing-value term;
//! - batches go in blocks of rows, so a group's nodes stay in cache over the block.
//!
//! Trees with a category split or a vector leaf, or deeper than [`MAX_GROUP_DEPTH`], are
//! walked one at a time with branches, in their place in the sum order.

use super::ensemble::{Ensemble, EnsembleError, OutputKind, Precision};
use super::flat::{CATEGORICAL, DEFAULT_LEFT, FEATURE_MASK, FlatEnsemble, LEAF, VECTOR};
use super::head::{Head, Prec};

/// Trees walked at once.
pub const LANES: usize = 8;
/// Rows of a batch block.
pub const BLOCK: usize = 64;
/// The deepest tree walked in a group; deeper trees are walked alone.
pub const MAX_GROUP_DEPTH: usize = 32;

// The meta word, low to high: the feature (`fbits` bits), three flags, the left child (or a
// vector leaf's index in `ranges`): the child is one shift away, the feature one mask.
/// Flag: a leaf.
const W_LEAF: u32 = 1;
/// Flag: a split's missing values go left.
const W_DEFAULT_LEFT: u32 = 2;
/// Flag: a split on a category set (its index is the threshold).
const W_CAT: u32 = 4;
/// Flag (with `W_LEAF`): a vector leaf.
const W_VECTOR: u32 = 4;
/// Bits of the feature, flags and child together.
const FLAG_BITS: u32 = 3;
/// Category set indexes must be exact in an f32 threshold.
const MAX_SETS: usize = 1 << 24;

/// A node: the threshold (a scalar leaf's value; a category split's set index) and the
/// meta word.
#[derive(Clone, Copy, Debug)]
#[repr(C, packed(4))]
struct Node<T> {
    t: T,
    m: u32,
}

#[derive(Clone, Debug)]
enum Segment {
    /// Up to `LANES` trees walked together for `depth` steps; lanes past `count` walk the
    /// dummy leaf 0.
    Group {
        roots: [u32; LANES],
        outs: [u32; LANES],
        count: usize,
        depth: usize,
        /// Whether a tree of the group splits on a category set.
        cat: bool,
    },
    /// One tree walked alone.
    One { root: u32, out: u32 },
}

#[derive(Clone, Debug)]
struct Wide<T: Copy> {
    nodes: Vec<Node<T>>,
    segments: Vec<Segment>,
    ranges: Vec<(u32, u32)>,
    fbits: u32,
    fmask: u32,
    /// `W_DEFAULT_LEFT` in place.
    dl: u32,
    /// Where the child starts.
    cshift: u32,
    /// `W_CAT` in place.
    catw: u32,
    /// Grouped category splits: each set's categories (all below 63) as bits; a
    /// power-of-two length.
    masks: Vec<u64>,
    /// `masks.len() - 1`.
    smask: u32,
    /// The features a category splits on, replaced in a prepared row by their category
    /// (63: in no set) when category splits are grouped; empty otherwise.
    codes: Vec<usize>,
}

#[derive(Clone, Debug)]
enum Nodes {
    F32(Wide<f32>),
    F64(Wide<f64>),
}

/// A compiled ensemble in the wide layout, ready to evaluate rows and batches.
#[derive(Clone, Debug)]
pub struct WideEnsemble {
    head: Head,
    nodes: Nodes,
    num_trees: usize,
}

/// Per-thread buffers of [`WideEnsemble`].
#[derive(Debug, Default)]
pub struct WideScratch {
    x32: Vec<f32>,
    x64: Vec<f64>,
    acc32: Vec<f32>,
    acc64: Vec<f64>,
    raw: Vec<f64>,
}

impl WideEnsemble {
    /// Compiles a validated ensemble ([`Ensemble::validate`] first).
    pub fn compile(e: &Ensemble) -> Result<Self, EnsembleError> {
        Self::from_flat(FlatEnsemble::compile(e)?)
            .map_err(|_| EnsembleError("too many nodes or features for the wide layout".into()))
    }

    /// Re-lays out a compiled ensemble; gives it back when it does not fit the compact
    /// node (features and nodes share 29 bits).
    pub fn from_flat(flat: FlatEnsemble) -> Result<Self, Box<FlatEnsemble>> {
        let nodes = match flat.head.precision {
            Precision::F32 => build::<f32>(&flat).map(Nodes::F32),
            Precision::F64 => build::<f64>(&flat).map(Nodes::F64),
        };
        match nodes {
            Some(nodes) => Ok(WideEnsemble {
                num_trees: flat.roots.len(),
                head: flat.head,
                nodes,
            }),
            None => Err(Box::new(flat)),
        }
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
        self.num_trees
    }

    /// Nodes over all trees (without the dummy leaf).
    pub fn num_nodes(&self) -> usize {
        match &self.nodes {
            Nodes::F32(w) => w.nodes.len() - 1,
            Nodes::F64(w) => w.nodes.len() - 1,
        }
    }

    /// Bytes of one node (8 for f32 models, 12 for f64).
    pub fn node_bytes(&self) -> usize {
        match &self.nodes {
            Nodes::F32(_) => size_of::<Node<f32>>(),
            Nodes::F64(_) => size_of::<Node<f64>>(),
        }
    }

    /// The output kind.
    pub fn output(&self) -> OutputKind {
        self.head.output
    }

    /// Evaluates one row, as [`FlatEnsemble::predict`].
    pub fn predict(&self, row: &[f64], scratch: &mut WideScratch, scores: &mut [f64]) -> usize {
        let mut class = [0];
        self.predict_batch(row, scratch, scores, &mut class);
        class[0]
    }

    /// Evaluates `rows` (`n × num_features` values, row after row) into `scores`
    /// (`n × num_scores`) and `classes` (`n`), each row as [`FlatEnsemble::predict`].
    pub fn predict_batch(
        &self,
        rows: &[f64],
        scratch: &mut WideScratch,
        scores: &mut [f64],
        classes: &mut [usize],
    ) {
        let s = scratch;
        match &self.nodes {
            Nodes::F32(w) => self.run(
                w,
                rows,
                &mut s.x32,
                &mut s.acc32,
                &mut s.raw,
                scores,
                classes,
            ),
            Nodes::F64(w) => self.run(
                w,
                rows,
                &mut s.x64,
                &mut s.acc64,
                &mut s.raw,
                scores,
                classes,
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn run<T: Prec>(
        &self,
        w: &Wide<T>,
        rows: &[f64],
        x: &mut Vec<T>,
        acc: &mut Vec<T>,
        raw: &mut Vec<f64>,
        scores: &mut [f64],
        classes: &mut [usize],
    ) {
        let h = &self.head;
        let (nf, k, ns) = (h.num_features, h.outputs, h.num_scores);
        debug_assert_eq!(rows.len(), classes.len() * nf);
        debug_assert_eq!(scores.len(), classes.len() * ns);
        for ((block, scores), classes) in rows
            .chunks(BLOCK * nf)
            .zip(scores.chunks_mut(BLOCK * ns))
            .zip(classes.chunks_mut(BLOCK))
        {
            x.clear();
            let mut nan = false;
            for row in block.chunks_exact(nf) {
                let start = x.len();
                nan |= h.prepare_into(row, x);
                w.encode(h, &mut x[start..]);
                // The phantom feature and the padding to the stride: `-inf`.
                x.resize(
                    x.len().next_multiple_of(w.stride()),
                    T::of(f64::NEG_INFINITY),
                );
            }
            acc.clear();
            acc.resize(classes.len() * k, T::default());
            acc.chunks_exact_mut(k).for_each(|a| h.begin(a));
            match (nan, w.fbits) {
                (false, 0..=3) => w.eval::<false, _>(h, x.as_chunks::<8>().0.iter(), acc),
                (false, 4) => w.eval::<false, _>(h, x.as_chunks::<16>().0.iter(), acc),
                (false, 5) => w.eval::<false, _>(h, x.as_chunks::<32>().0.iter(), acc),
                (false, 6) => w.eval::<false, _>(h, x.as_chunks::<64>().0.iter(), acc),
                (false, 7) => w.eval::<false, _>(h, x.as_chunks::<128>().0.iter(), acc),
                (false, _) => w.eval::<false, _>(h, x.chunks_exact(w.stride()), acc),
                (true, 0..=3) => w.eval::<true, _>(h, x.as_chunks::<8>().0.iter(), acc),
                (true, 4) => w.eval::<true, _>(h, x.as_chunks::<16>().0.iter(), acc),
                (true, 5) => w.eval::<true, _>(h, x.as_chunks::<32>().0.iter(), acc),
                (true, 6) => w.eval::<true, _>(h, x.as_chunks::<64>().0.iter(), acc),
                (true, 7) => w.eval::<true, _>(h, x.as_chunks::<128>().0.iter(), acc),
                (true, _) => w.eval::<true, _>(h, x.chunks_exact(w.stride()), acc),
            }
            for ((a, s), c) in acc
                .chunks_exact_mut(k)
                .zip(scores.chunks_exact_mut(ns))
                .zip(classes.iter_mut())
            {
                h.end(a, raw);
                *c = h.finish(raw, s);
            }
        }
    }
}

impl<T: Prec> Wide<T> {
    /// Adds every tree's leaf to each prepared row's sum (`x`: rows of `num_features`
    /// and the phantom `-inf`; `acc`: rows of `outputs`), in tree order. `NAN`: whether a
    /// row may hold a missing value.
    #[inline]
    fn eval<'x, const NAN: bool, R: Row<T> + ?Sized + 'x>(
        &self,
        h: &Head,
        rows: impl Iterator<Item = &'x R> + Clone,
        acc: &mut [T],
    ) {
        for seg in &self.segments {
            match seg {
                &Segment::Group {
                    ref roots,
                    ref outs,
                    count,
                    depth,
                    cat,
                } => {
                    if cat {
                        self.group::<NAN, true, R>(h, roots, outs, count, depth, rows.clone(), acc);
                    } else {
                        self.group::<NAN, false, R>(
                            h,
                            roots,
                            outs,
                            count,
                            depth,
                            rows.clone(),
                            acc,
                        );
                    }
                }
                Segment::One { root, out } => {
                    for (row, a) in rows.clone().zip(acc.chunks_exact_mut(h.outputs)) {
                        let n = self.nodes[self.walk_one(h, *root, row) as usize];
                        if self.flags(n.m) & W_VECTOR != 0 {
                            let (s, e) = self.ranges[(n.m >> self.cshift) as usize];
                            for &(o, v) in &h.leaf_table[s as usize..e as usize] {
                                a[o as usize] += T::of(v);
                            }
                        } else {
                            a[*out as usize] += n.t;
                        }
                    }
                }
            }
        }
    }

    /// Adds a group's leaves to each row's sum.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn group<'x, const NAN: bool, const CAT: bool, R: Row<T> + ?Sized + 'x>(
        &self,
        h: &Head,
        roots: &[u32; LANES],
        outs: &[u32; LANES],
        count: usize,
        depth: usize,
        rows: impl Iterator<Item = &'x R> + Clone,
        acc: &mut [T],
    ) {
        {
            {
                {
                    if h.outputs == 1 {
                        // One output: the group's leaves summed in a register, in tree
                        // order; two rows walked together.
                        let mut rs = rows.clone();
                        let mut it = acc.iter_mut();
                        loop {
                            match (rs.next(), rs.next()) {
                                (Some(r0), Some(r1)) => {
                                    let [l0, l1] =
                                        self.walk_group2::<NAN, CAT, R>(roots, depth, [r0, r1]);
                                    for l in [l0, l1] {
                                        let a = it.next().expect("a sum per row");
                                        let mut s = *a;
                                        for &l in l.iter().take(count) {
                                            s += self.nodes[l as usize].t;
                                        }
                                        *a = s;
                                    }
                                }
                                (Some(r0), None) => {
                                    let l = self.walk_group::<NAN, CAT, R>(roots, depth, r0);
                                    let a = it.next().expect("a sum per row");
                                    let mut s = *a;
                                    for &l in l.iter().take(count) {
                                        s += self.nodes[l as usize].t;
                                    }
                                    *a = s;
                                    break;
                                }
                                _ => break,
                            }
                        }
                    } else {
                        for (row, a) in rows.clone().zip(acc.chunks_exact_mut(h.outputs)) {
                            let leaves = self.walk_group::<NAN, CAT, R>(roots, depth, row);
                            for (&l, &o) in leaves.iter().zip(outs).take(count) {
                                a[o as usize] += self.nodes[l as usize].t;
                            }
                        }
                    }
                }
            }
        }
    }

    /// One step of a grouped walk from node `i`: index arithmetic, no data branch. `CAT`:
    /// the node may split on a category set (the row holds categories, see `codes`).
    #[inline(always)]
    fn step<const NAN: bool, const CAT: bool, R: Row<T> + ?Sized>(&self, i: u32, x: &R) -> u32 {
        let n = self.nodes[i as usize];
        let m = n.m;
        let v = x.at(m, self.fmask);
        let t = n.t;
        let mut left = v < t;
        if CAT {
            // A set's index in `t`, the row's category in `v` (both exact small integers).
            let mask = self.masks[(t.low() & self.smask) as usize];
            let mut hit = (mask >> (v.low() & 63)) & 1 != 0;
            if NAN {
                hit &= !v.nan();
            }
            let cat = m & self.catw != 0;
            left = (left & !cat) | (hit & cat);
        }
        if NAN {
            left |= v.nan() & (m & self.dl != 0);
        }
        (m >> x.shift(self.cshift)) + u32::from(!left)
    }

    /// The leaves of a group's trees after `depth` steps.
    #[inline(always)]
    fn walk_group<const NAN: bool, const CAT: bool, R: Row<T> + ?Sized>(
        &self,
        roots: &[u32; LANES],
        depth: usize,
        x: &R,
    ) -> [u32; LANES] {
        let mut idx = *roots;
        for _ in 0..depth {
            for i in idx.iter_mut() {
                *i = self.step::<NAN, CAT, R>(*i, x);
            }
        }
        idx
    }

    /// [`Wide::walk_group`] for two rows at once.
    #[inline(always)]
    fn walk_group2<const NAN: bool, const CAT: bool, R: Row<T> + ?Sized>(
        &self,
        roots: &[u32; LANES],
        depth: usize,
        x: [&R; 2],
    ) -> [[u32; LANES]; 2] {
        let mut idx = [*roots; 2];
        for _ in 0..depth {
            for (idx, x) in idx.iter_mut().zip(x) {
                for i in idx.iter_mut() {
                    *i = self.step::<NAN, CAT, R>(*i, x);
                }
            }
        }
        idx
    }

    /// Replaces the category features of a prepared row by their categories (63: in no
    /// set; NaN stays), when category splits are grouped.
    fn encode(&self, h: &Head, x: &mut [T]) {
        if let Some(set) = h.sets.first() {
            for &f in &self.codes {
                if !x[f].nan() {
                    let c = set.category(x[f].f64()).filter(|&c| c < 63).unwrap_or(63);
                    x[f] = T::of(c as f64);
                }
            }
        }
    }

    /// One tree's leaf, every node kind (category sets, vector leaves).
    #[inline]
    fn walk_one<R: Row<T> + ?Sized>(&self, h: &Head, root: u32, x: &R) -> u32 {
        let mut i = root;
        loop {
            let n = self.nodes[i as usize];
            let m = n.m;
            let flags = self.flags(m);
            if flags & W_LEAF != 0 {
                return i;
            }
            let v = x.at(m, self.fmask);
            let left = if v.nan() {
                flags & W_DEFAULT_LEFT != 0
            } else if flags & W_CAT != 0 {
                h.sets[n.t.f64() as usize].contains(v.f64())
            } else {
                let t = n.t;
                v < t
            };
            i = (m >> self.cshift) + u32::from(!left);
        }
    }

    /// Values per prepared row: the features, the phantom, padding to a power of two.
    fn stride(&self) -> usize {
        1 << self.fbits
    }

    #[inline]
    fn flags(&self, m: u32) -> u32 {
        (m >> self.fbits) & ((1 << FLAG_BITS) - 1)
    }

    /// A meta word.
    fn meta(&self, feature: u32, flags: u32, child: u32) -> u32 {
        feature | flags << self.fbits | child << self.cshift
    }
}

/// A prepared row: a feature's value from a meta word.
trait Row<T> {
    /// The value of the feature in `m`'s low bits (`fmask`: their mask).
    fn at(&self, m: u32, fmask: u32) -> T;
    /// Where the child starts in a meta word (`cshift`, a constant for arrays).
    fn shift(&self, cshift: u32) -> u32;
}

impl<T: Copy, const S: usize> Row<T> for [T; S] {
    #[inline(always)]
    fn at(&self, m: u32, _: u32) -> T {
        // `S` is the stride, `2^fbits`: the mask is the feature's, and no bounds check.
        self[m as usize & (S - 1)]
    }
    #[inline(always)]
    fn shift(&self, _: u32) -> u32 {
        S.trailing_zeros() + FLAG_BITS
    }
}

impl<T: Copy> Row<T> for [T] {
    #[inline(always)]
    fn at(&self, m: u32, fmask: u32) -> T {
        self[(m & fmask) as usize]
    }
    #[inline(always)]
    fn shift(&self, cshift: u32) -> u32 {
        cshift
    }
}

/// The wide layout of `flat`'s trees, or `None` if features and nodes do not fit.
fn build<T: Prec>(flat: &FlatEnsemble) -> Option<Wide<T>> {
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
    };
    if let Some((codes, masks)) = category_codes(flat) {
        w.smask = (masks.len().next_power_of_two() - 1) as u32;
        w.masks = masks;
        w.masks.resize(w.smask as usize + 1, 0);
        w.codes = codes;
    }
    let cats = !w.codes.is_empty();
    w.nodes.push(Node {
        t: T::default(),
        m: w.meta(nf, W_LEAF, 0),
    });
    let mut group: Vec<(u32, u32, bool)> = Vec::new(); // (flat root, output, category splits)
    for (&root, &out) in flat.roots.iter().zip(&flat.groups) {
        if let Some(cat) = groupable(flat, root, cats) {
            group.push((root, out, cat));
            if group.len() == LANES {
                flush(&mut w, flat, &mut group)?;
            }
        } else {
            flush(&mut w, flat, &mut group)?;
            let (roots, _) = lay_out(&mut w, flat, &[root])?;
            w.segments.push(Segment::One {
                root: roots[0],
                out,
            });
        }
    }
    flush(&mut w, flat, &mut group)?;
    Some(w)
}

/// Whether a tree can be walked in a group: only number splits (and category splits,
/// when `cats`: they are grouped) and scalar leaves, at most `MAX_GROUP_DEPTH` deep.
/// `Some(true)`: it has a category split.
fn groupable(flat: &FlatEnsemble, root: u32, cats: bool) -> Option<bool> {
    let mut stack = vec![(root, 0usize)];
    let mut has_cat = false;
    while let Some((i, d)) = stack.pop() {
        let n = flat.nodes[i as usize];
        if n.meta & LEAF != 0 {
            if n.meta & VECTOR != 0 {
                return None;
            }
        } else {
            let cat = n.meta & CATEGORICAL != 0;
            if (cat && !cats) || d >= MAX_GROUP_DEPTH {
                return None;
            }
            has_cat |= cat;
            stack.extend([(n.left, d + 1), (n.right, d + 1)]);
        }
    }
    Some(has_cat)
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

fn flush<T: Prec>(
    w: &mut Wide<T>,
    flat: &FlatEnsemble,
    group: &mut Vec<(u32, u32, bool)>,
) -> Option<()> {
    if group.is_empty() {
        return Some(());
    }
    let flat_roots: Vec<u32> = group.iter().map(|g| g.0).collect();
    let (new_roots, depth) = lay_out(w, flat, &flat_roots)?;
    let mut roots = [0; LANES];
    let mut outs = [0; LANES];
    for (j, (&r, g)) in new_roots.iter().zip(group.iter()).enumerate() {
        roots[j] = r;
        outs[j] = g.1;
    }
    w.segments.push(Segment::Group {
        roots,
        outs,
        count: group.len(),
        depth,
        cat: group.iter().any(|g| g.2),
    });
    group.clear();
    Some(())
}

/// Appends the trees at `roots` level by level (all trees' level 0, then level 1, …),
/// each split's children side by side. Returns the new roots and the depth.
fn lay_out<T: Prec>(
    w: &mut Wide<T>,
    flat: &FlatEnsemble,
    roots: &[u32],
) -> Option<(Vec<u32>, usize)> {
    let new_roots = (w.nodes.len() as u32..).take(roots.len()).collect();
    let mut cur = roots.to_vec();
    let mut next = Vec::new();
    let mut levels = 0;
    while !cur.is_empty() {
        let base_next = w.nodes.len() + cur.len();
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
                let t = if cat {
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

#[cfg(test)]
#[path = "wide_tests.rs"]
mod tests;
