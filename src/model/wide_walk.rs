//! The walks of [`Wide`]: a group's trees stepped together by index arithmetic (no branch
//! on the data), one tree alone with every node kind, the prepared rows they read; and
//! what drives the vector walk ([`super::simd`]) over a batch's rows (one row's groups:
//! `wide_row.rs`).

use super::row::Pending;
use super::{
    CHAINS, FLAG_BITS, Head, How, LANES, MIN_BLOCK, Prec, Segment, W_CAT, W_DEFAULT_LEFT, W_LEAF,
    W_VECTOR, Walk, Wide, simd,
};

impl<T: Prec + Walk> Wide<T> {
    /// Adds a group's leaves to each row's sum.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn group<'x, const NAN: bool, const CAT: bool, R: Row<T> + ?Sized + 'x>(
        &self,
        h: &Head,
        roots: &[u32; LANES],
        outs: &[u32; LANES],
        count: usize,
        depth: usize,
        rows: impl Iterator<Item = &'x R> + Clone,
        acc: &mut [T],
    ) {
        if h.outputs == 1 {
            // One output: the group's leaves summed in a register, in tree
            // order; two rows walked together.
            let mut rs = rows.clone();
            let mut it = acc.iter_mut();
            loop {
                match (rs.next(), rs.next()) {
                    (Some(r0), Some(r1)) => {
                        let [l0, l1] = self.walk_group2::<NAN, CAT, R>(roots, depth, [r0, r1]);
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
            // The set in `t` (its bits, or its index: an exact small integer), the row's
            // category in `v` (an exact small integer).
            let mask = if T::SET_IN_NODE {
                t.set()
            } else {
                self.masks[(t.low() & self.smask) as usize]
            };
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
    pub(super) fn encode(&self, h: &Head, x: &mut [T]) {
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
    pub(super) fn walk_one<R: Row<T> + ?Sized>(&self, h: &Head, root: u32, x: &R) -> u32 {
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
}

/// A prepared row: a feature's value from a meta word.
pub(super) trait Row<T> {
    /// The value of the feature in `m`'s low bits (`fmask`: their mask).
    fn at(&self, m: u32, fmask: u32) -> T;
    /// Where the child starts in a meta word (`cshift`, a constant for arrays).
    fn shift(&self, cshift: u32) -> u32;
    /// The values.
    fn slice(&self) -> &[T];
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
    #[inline(always)]
    fn slice(&self) -> &[T] {
        self
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
    #[inline(always)]
    fn slice(&self) -> &[T] {
        self
    }
}

impl<T: Prec + Walk> Wide<T> {
    /// Adds a group's leaves (`count` of them) to a row's sums, in tree order.
    #[inline(always)]
    pub(super) fn add_leaves(
        &self,
        h: &Head,
        leaves: &[u32; LANES],
        outs: &[u32; LANES],
        count: usize,
        a: &mut [T],
    ) {
        if h.outputs == 1 {
            let mut s = a[0];
            for &l in leaves.iter().take(count) {
                s += self.nodes[l as usize].t;
            }
            a[0] = s;
        } else {
            for (&l, &o) in leaves.iter().zip(outs).take(count) {
                a[o as usize] += self.nodes[l as usize].t;
            }
        }
    }

    /// Where the vector walk finds a meta word's parts.
    pub(super) fn bits(&self) -> simd::Bits {
        simd::Bits {
            fmask: self.fmask,
            dl: self.dl,
            cshift: self.cshift,
            catw: self.catw,
        }
    }

    /// [`Wide::group`] with the vector walk (`CAT`: a group with category splits, their
    /// sets in the nodes, [`Walk::SET_IN_NODE`]): `CHAINS` rows at once.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn group_simd<'x, const NAN: bool, const CAT: bool, R: Row<T> + ?Sized + 'x>(
        &self,
        h: &Head,
        roots: &[u32; LANES],
        outs: &[u32; LANES],
        count: usize,
        depth: usize,
        rows: impl Iterator<Item = &'x R>,
        acc: &mut [T],
    ) {
        let k = h.outputs;
        let bits = self.bits();
        let mut sums = acc.chunks_exact_mut(k);
        let mut xs: [&[T]; CHAINS] = [&[]; CHAINS];
        // No leaves wait: the walks take no adds.
        let mut none = Pending::new(T::default());
        let mut n = 0;
        for row in rows {
            xs[n] = row.slice();
            n += 1;
            if n == CHAINS {
                n = 0;
                let leaves = T::walk::<NAN, CAT, CHAINS, CHAINS>(
                    &self.nodes,
                    [roots; CHAINS],
                    None,
                    xs,
                    depth,
                    bits,
                    self.how,
                    &mut none,
                );
                for v in &leaves {
                    let a = sums.next().expect("a sum per row");
                    self.add_leaves(h, v, outs, count, a);
                }
            }
        }
        for &x in &xs[..n] {
            let [l] = T::walk::<NAN, CAT, 1, 1>(
                &self.nodes,
                [roots],
                None,
                [x],
                depth,
                bits,
                self.how,
                &mut none,
            );
            let a = sums.next().expect("a sum per row");
            self.add_leaves(h, &l, outs, count, a);
        }
    }
}

/// Rows a paired walk takes at once (16, 6 and 4 measured slower: m2 batch 1.15×, 1.20×,
/// 1.05×).
const PAIR_CHAINS: usize = 8;
/// Rows of a block handed to a paired walk at once (its top levels fetched once for them).
const PAIR_ROWS: usize = 4 * MIN_BLOCK;

impl<T: Prec + Walk> Wide<T> {
    /// Two groups of the same depth, without category splits, walked as one of 16 trees
    /// ([`Walk::walk_pair`], only where [`Walk::PAIRS`]):
    /// `PAIR_CHAINS` rows at once, each row's leaves added group by group, in tree order.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn pair_simd<'x, const NAN: bool, R: Row<T> + ?Sized + 'x>(
        &self,
        h: &Head,
        roots: [&[u32; LANES]; 2],
        outs: [&[u32; LANES]; 2],
        count: [usize; 2],
        depth: usize,
        rows: impl Iterator<Item = &'x R>,
        acc: &mut [T],
    ) {
        let (bits, g) = (self.bits(), self.how == How::Gather);
        let o = h.outputs;
        let add = |leaves: &[u32; 2 * LANES], a: &mut [T]| {
            let (halves, _) = leaves.as_chunks::<LANES>();
            self.add_leaves(h, &halves[0], outs[0], count[0], a);
            self.add_leaves(h, &halves[1], outs[1], count[1], a);
        };
        // One output and both groups full: the walk adds the leaves itself, in blocks of
        // 8 rows (the pair's top levels fetched once for the block).
        let summed = o == 1 && count == [LANES; 2];
        // A block's rows, up to `PAIR_ROWS` at a time (the array is not sized for the
        // largest block: it is set anew for every pair).
        let mut xs: [&[T]; PAIR_ROWS] = [&[]; PAIR_ROWS];
        let (mut rows, mut done) = (rows.peekable(), 0);
        while rows.peek().is_some() {
            let mut n = 0;
            for (x, row) in xs.iter_mut().zip(rows.by_ref()) {
                (*x, n) = (row.slice(), n + 1);
            }
            let whole = if summed { n - n % PAIR_CHAINS } else { 0 };
            let acc = &mut acc[done * o..(done + n) * o];
            if whole > 0 {
                let walk = T::walk_pair_sum::<NAN>;
                walk(
                    &self.nodes,
                    roots,
                    &xs[..whole],
                    depth,
                    bits,
                    g,
                    &mut acc[..whole],
                );
            }
            let rest = acc[whole * o..].chunks_mut(PAIR_CHAINS * o);
            for (x, a) in xs[whole..n].chunks(PAIR_CHAINS).zip(rest) {
                if let Ok(&x) = <&[&[T]; PAIR_CHAINS]>::try_from(x) {
                    let leaves =
                        T::walk_pair::<NAN, PAIR_CHAINS>(&self.nodes, roots, x, depth, bits, g);
                    leaves
                        .iter()
                        .zip(a.chunks_exact_mut(o))
                        .for_each(|(l, a)| add(l, a));
                } else {
                    for (&x, a) in x.iter().zip(a.chunks_exact_mut(o)) {
                        add(
                            &T::walk_pair::<NAN, 1>(&self.nodes, roots, [x], depth, bits, g)[0],
                            a,
                        );
                    }
                }
            }
            done += n;
        }
    }
}

impl<T: Prec + Walk> Wide<T> {
    /// Adds every tree's leaf to each prepared row's sum (`x`: rows of `num_features`
    /// and the phantom `-inf`; `acc`: rows of `outputs`), in tree order. `NAN`: whether a
    /// row may hold a missing value.
    #[inline]
    pub(super) fn eval<'x, const NAN: bool, R: Row<T> + ?Sized + 'x>(
        &self,
        h: &Head,
        rows: impl Iterator<Item = &'x R> + Clone,
        acc: &mut [T],
    ) {
        if self.simd && rows.clone().nth(CHAINS - 1).is_none() {
            // Too few rows to chain: each row walks up to `ROW_CHAINS` groups at once.
            for (row, a) in rows.zip(acc.chunks_exact_mut(h.outputs)) {
                self.eval_row::<NAN, R>(h, row, a);
            }
            return;
        }
        let mut segs = self.segments.iter().peekable();
        while let Some(seg) = segs.next() {
            // Two groups of one depth without category splits: walked as one of 16 trees.
            if self.simd
                && T::PAIRS
                && let Segment::Group {
                    roots: ra,
                    outs: oa,
                    count: ca,
                    depth,
                    cat: false,
                } = seg
                && let Some(Segment::Group {
                    roots: rb,
                    outs: ob,
                    count: cb,
                    depth: db,
                    cat: false,
                }) = segs.peek()
                && db == depth
            {
                let (roots, outs) = ([ra, rb], [oa, ob]);
                self.pair_simd::<NAN, R>(h, roots, outs, [*ca, *cb], *depth, rows.clone(), acc);
                segs.next();
                continue;
            }
            self.segment::<NAN, R>(h, seg, rows.clone(), acc);
        }
    }

    /// Adds one segment's leaves to each row's sum. A group with category splits takes the
    /// vector walk where its nodes hold their sets ([`Walk::SET_IN_NODE`]).
    #[inline]
    pub(super) fn segment<'x, const NAN: bool, R: Row<T> + ?Sized + 'x>(
        &self,
        h: &Head,
        seg: &Segment,
        rows: impl Iterator<Item = &'x R> + Clone,
        acc: &mut [T],
    ) {
        match seg {
            &Segment::Group {
                ref roots,
                ref outs,
                count,
                depth,
                cat,
                ..
            } => match (self.simd, cat) {
                (true, false) => {
                    self.group_simd::<NAN, false, R>(h, roots, outs, count, depth, rows, acc)
                }
                (true, true) if T::SET_IN_NODE => {
                    self.group_simd::<NAN, true, R>(h, roots, outs, count, depth, rows, acc)
                }
                (_, true) => self.group::<NAN, true, R>(h, roots, outs, count, depth, rows, acc),
                (false, false) => {
                    self.group::<NAN, false, R>(h, roots, outs, count, depth, rows, acc)
                }
            },
            Segment::One { root, out } => {
                for (row, a) in rows.zip(acc.chunks_exact_mut(h.outputs)) {
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
