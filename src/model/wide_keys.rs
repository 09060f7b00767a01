//! The keyed walk of [`Wide`]: without the vector walk, plain groups compare a row's
//! values as integer keys ([`Prec::key`]), which the nodes hold in place of their
//! thresholds ([`Wide::set_keys`]). The step is then a load, a compare and a subtract with
//! borrow, without moving a float compare's flags or making the threshold's key.

use super::walk::Row;
use super::{CHAINS, Head, Prec, Segment, W_LEAF, Walk, Wide};
use crate::model::head::KeyBits;

impl<T: Prec> Wide<T> {
    /// Whether rows walk as keys ([`Prec::key`], [`Wide::eval_keys`]): without the vector
    /// walk, when every segment is a group without category splits and a row has at most
    /// 128 values.
    pub(super) fn keyed(&self) -> bool {
        !self.simd
            && self.fbits <= 7
            && (self.segments.iter()).all(|s| matches!(s, Segment::Group { cat: false, .. }))
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
    /// adds, holds -0.0. Only where [`Wide::keyed`] (no vector leaf, no category split).
    pub(super) fn set_keys(&mut self, on: bool) {
        if on == self.keys || (on && !self.keyed()) {
            return;
        }
        let (cshift, fbits) = (self.cshift, self.fbits);
        let zero = <T::Key as Default>::default();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            let (t, m) = (n.t, n.m);
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
        // The phantom feature and the padding: key 0, on which every leaf stays put.
        let nf = h.num_features;
        for row in keys.chunks_exact_mut(self.stride()) {
            row[nf..].fill(Default::default());
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
                ..
            } = seg
            else {
                unreachable!("keyed walks take groups only (Wide::keyed)");
            };
            for (x, a) in rows.iter().zip(acc.chunks_exact_mut(h.outputs)) {
                let mut idx = *roots;
                for _ in 0..*depth {
                    for i in idx.iter_mut() {
                        let n = self.nodes[*i as usize];
                        let m = n.m;
                        let v = x.at(m, self.fmask);
                        let mut left = v < n.t.bits();
                        if NAN {
                            left |= (v == <T::Key as KeyBits>::MAX) & (m & self.dl != 0);
                        }
                        *i = (m >> x.shift(self.cshift)) + u32::from(!left);
                    }
                }
                self.add_leaves(h, &idx, outs, *count, a);
            }
        }
    }
}
