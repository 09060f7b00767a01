//! The keyed walk of [`Wide`]: without the vector walk, plain groups compare a row's
//! values as integer keys ([`Prec::key`]), which the nodes hold in place of their
//! thresholds ([`Wide::set_keys`]). The step is then a load, a compare and a subtract with
//! borrow, without moving a float compare's flags or making the threshold's key. A
//! category split keeps its set (its bits, or its index in `masks`) and reads the row's
//! category as its key's low 6 bits (a missing value's key, all ones, reads 63: in no set).

use super::walk::Row;
use super::{CHAINS, Head, LANES, Prec, Segment, W_CAT, W_LEAF, Walk, Wide};
use crate::model::head::KeyBits;

/// Groups this deep walk a row only until every tree is at a leaf ([`Wide::keyed_group`]'s
/// `EXIT`): LightGBM's trees grow leaf by leaf, and m3's groups of 8 trees (31 leaves each)
/// take 12.2 steps on average where a row's deepest path in the group is 7.3 (108 of its
/// 125 groups this deep); XGBoost's grow level by level (m2: depth 8), m1's groups are at
/// most 10 deep (a row's deepest path 8.3 there: the test and the exit cost about that).
pub(super) const EXIT_DEPTH: usize = 11;

impl<T: Prec> Wide<T> {
    /// Whether rows walk as keys ([`Prec::key`], [`Wide::eval_keys`]): without the vector
    /// walk, when every segment is a group (category splits grouped: the row holds
    /// categories) and a row has at most 128 values.
    pub(super) fn keyed(&self) -> bool {
        !self.simd
            && self.fbits <= 7
            && (self.segments.iter()).all(|s| matches!(s, Segment::Group { .. }))
    }

    /// Whether a group splits on a category set.
    pub(super) fn category_groups(&self) -> bool {
        (self.segments.iter()).any(|s| matches!(s, Segment::Group { cat: true, .. }))
    }

    /// Puts the nodes in the form the walk takes: keyed where [`Wide::keyed`], else as
    /// built. Called last wherever the walk or the nodes change (the build, a file's load,
    /// a layout, [`super::WideEnsemble::with_vector_walk`]).
    pub(super) fn key_nodes(&mut self) {
        self.set_keys(self.keyed());
    }

    /// The nodes keyed (`on`) or back as built, bit for bit. Keyed: a split's threshold
    /// holds its key's bits; a leaf stays put on the phantom key 0 ([`Wide::eval_keys`]),
    /// below its value's bits unless the value is +0.0: such a leaf's left child is then
    /// the node before it (its right child itself); the dummy leaf 0, whose value no walk
    /// adds, holds -0.0. A category split keeps its set. Only where [`Wide::keyed`] (no
    /// vector leaf).
    pub(super) fn set_keys(&mut self, on: bool) {
        if on == self.keys || (on && !self.keyed()) {
            return;
        }
        let (cshift, fbits) = (self.cshift, self.fbits);
        let zero = <T::Key as Default>::default();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            let (t, m) = (n.t, n.m);
            if (m >> fbits) & (W_LEAF | W_CAT) == W_CAT {
                continue;
            }
            if (m >> fbits) & W_LEAF == 0 {
                n.t = if on {
                    T::from_bits(t.key())
                } else {
                    T::unkey(t.bits())
                };
                continue;
            }
            let child = if on && i > 0 && t.bits() == zero {
                i - 1
            } else {
                i
            };
            n.m = m & ((1 << cshift) - 1) | (child as u32) << cshift;
            if i == 0 {
                n.t = if on { T::of(-0.0) } else { T::default() };
            }
        }
        self.keys = on;
        // One row's top levels hold the nodes as they now are (the AVX2 walk reads keys).
        if !self.tops.is_empty() {
            self.tops = self.tops();
        }
    }
}

impl<T: Prec + Walk> Wide<T> {
    /// The vector walk on where the CPU has it and a row fits (`on`) or off (AVX-512 for
    /// groups, or AVX2 for one row's groups); the nodes in the form the walk takes, and
    /// one row's top levels from them.
    pub(super) fn set_vector_walk(&mut self, on: bool) {
        self.simd = on && self.vector_fits();
        self.avx2 = on && self.avx2_fits();
        self.key_nodes();
        self.tops = self.tops();
    }

    /// [`Wide::eval`] of a block's prepared rows `x` with the values compared as integers:
    /// each row's keys made once (into `keys`), the thresholds' held by the nodes. On an
    /// AMD EPYC without AVX-512, with the keys made in the step: m2 batch 1.35× faster
    /// than the float walk, m1 1.28×, one row 1.05× and 1.17× (docs/benchmarks.md).
    /// The same leaves: `v < t` iff `v.row_key() < t.key()` (the thresholds are not NaN,
    /// `check` and `validate` refuse it; a missing value's key is above every threshold's).
    pub(super) fn eval_keys(
        &self,
        h: &Head,
        x: &[T],
        keys: &mut Vec<T::Key>,
        nan: bool,
        acc: &mut [T],
    ) {
        debug_assert!(self.keys, "keyed nodes (Wide::key_nodes)");
        keys.clear();
        keys.extend(x.iter().map(|v| v.row_key()));
        // The phantom feature and the padding: key 0, on which every leaf stays put; a
        // category feature: its category (`Wide::encode`: below 64), NaN the greatest key.
        let nf = h.num_features;
        for (row, x) in keys
            .chunks_exact_mut(self.stride())
            .zip(x.chunks_exact(self.stride()))
        {
            row[nf..].fill(Default::default());
            for &f in &self.codes {
                if !x[f].nan() {
                    row[f] = T::Key::of_small(x[f].low() & 63);
                }
            }
        }
        let s = self.stride();
        if self.avx2 && keys.len() < CHAINS * s {
            // Too few rows for the batch walk to pay: each row walks `ROW_CHAINS` groups
            // at once with AVX2, its keys in place of its values (`wide_avx2.rs`).
            let mut row = [T::default(); 32];
            for (k, a) in keys.chunks_exact(s).zip(acc.chunks_exact_mut(h.outputs)) {
                for (r, &k) in row.iter_mut().zip(k) {
                    *r = T::from_bits(k);
                }
                let row = &row[..s];
                if nan {
                    self.eval_row::<true, [T]>(h, row, a);
                } else {
                    self.eval_row::<false, [T]>(h, row, a);
                }
            }
            return;
        }
        match (nan, self.fbits) {
            (false, 0..=3) => self.keyed_rows::<false, 8>(h, keys, acc),
            (false, 4) => self.keyed_rows::<false, 16>(h, keys, acc),
            (false, 5) => self.keyed_rows::<false, 32>(h, keys, acc),
            (false, 6) => self.keyed_rows::<false, 64>(h, keys, acc),
            (false, _) => self.keyed_rows::<false, 128>(h, keys, acc),
            (true, 0..=3) => self.keyed_rows::<true, 8>(h, keys, acc),
            (true, 4) => self.keyed_rows::<true, 16>(h, keys, acc),
            (true, 5) => self.keyed_rows::<true, 32>(h, keys, acc),
            (true, 6) => self.keyed_rows::<true, 64>(h, keys, acc),
            (true, _) => self.keyed_rows::<true, 128>(h, keys, acc),
        }
    }

    /// Every group walked over the rows of `S` keys, a row at a time (two rows at once were
    /// slower in the prototype), in the order of [`Wide::eval`]'s sums.
    fn keyed_rows<const NAN: bool, const S: usize>(
        &self,
        h: &Head,
        keys: &[T::Key],
        acc: &mut [T],
    ) {
        let rows = keys.as_chunks::<S>().0;
        for seg in &self.segments {
            let Segment::Group {
                roots,
                outs,
                count,
                depth,
                cat,
            } = seg
            else {
                unreachable!("keyed walks take groups only (Wide::keyed)");
            };
            let g = (h, rows, roots, outs, *count, *depth);
            match (*cat, *depth >= EXIT_DEPTH) {
                (false, false) => self.keyed_segment::<NAN, false, false, S>(g, acc),
                (false, true) => self.keyed_segment::<NAN, false, true, S>(g, acc),
                (true, false) => self.keyed_segment::<NAN, true, false, S>(g, acc),
                (true, true) => self.keyed_segment::<NAN, true, true, S>(g, acc),
            }
        }
    }

    /// One group (`h`, the rows, its roots and outputs, its count and depth) over the rows.
    #[allow(clippy::type_complexity)]
    #[inline(always)]
    fn keyed_segment<const NAN: bool, const CAT: bool, const EXIT: bool, const S: usize>(
        &self,
        (h, rows, roots, outs, count, depth): (
            &Head,
            &[[T::Key; S]],
            &[u32; LANES],
            &[u32; LANES],
            usize,
            usize,
        ),
        acc: &mut [T],
    ) {
        for (x, a) in rows.iter().zip(acc.chunks_exact_mut(h.outputs)) {
            let idx = self.keyed_group::<NAN, CAT, EXIT, S>(roots, depth, x);
            self.add_leaves(h, &idx, outs, count, a);
        }
    }

    /// A group's leaves for the row of keys `x` after `depth` steps. `CAT`: a node may split
    /// on a category set (the rule of `Wide::step`). `EXIT`: stops once a step starts with
    /// every tree at a leaf (keyed leaves stay put: the steps left would change nothing).
    #[inline(always)]
    fn keyed_group<const NAN: bool, const CAT: bool, const EXIT: bool, const S: usize>(
        &self,
        roots: &[u32; LANES],
        depth: usize,
        x: &[T::Key; S],
    ) -> [u32; LANES] {
        let mut idx = *roots;
        let leaf = W_LEAF << self.fbits;
        for _ in 0..depth {
            // The meta words' common bits: the leaf flag where every tree is at a leaf.
            let mut all = u32::MAX;
            for i in idx.iter_mut() {
                let n = self.nodes[*i as usize];
                let m = n.m;
                all &= m;
                let v = x.at(m, self.fmask);
                let mut left = v < n.t.bits();
                if CAT {
                    let set = if T::SET_IN_NODE {
                        n.t.set()
                    } else {
                        self.masks[(n.t.low() & self.smask) as usize]
                    };
                    let hit = (set >> v.low6()) & 1 != 0;
                    let cat = m & self.catw != 0;
                    left = (left & !cat) | (hit & cat);
                }
                if NAN {
                    left |= (v == <T::Key as KeyBits>::MAX) & (m & self.dl != 0);
                }
                *i = (m >> x.shift(self.cshift)) + u32::from(!left);
            }
            if EXIT && all & leaf != 0 {
                break;
            }
        }
        idx
    }
}
