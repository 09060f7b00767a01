//! One row's vector walk ([`Wide::eval_row`]): up to `ROW_CHAINS` groups walked at once,
//! their leaves added in tree order while the next ones walk ([`Pending`]), and their first
//! three levels read from a copy laid out at load ([`Top`]).
//!
//! A group's [`Top`]: for each of the 7 paths of up to two steps from the roots (none;
//! left, right; left-left, left-right, right-left, right-right) the 8 trees' nodes there,
//! thresholds and meta words apart, so that a row's first three steps take 7 loads that do
//! not wait on the row, and two picks by its masks, instead of three dependent node
//! fetches. Built with the walk's own rule (a node's children are its child and the next
//! node, each clamped to the last node; a leaf's own "left" child is itself), so picking a
//! path's nodes by the row's masks reaches exactly the nodes the walk's fetches would.

use super::walk::Row;
use super::{Head, LANES, Node, Prec, ROW_CHAINS, Segment, Walk, Wide};

/// Paths of up to two steps from a root.
pub(super) const PATHS: usize = 7;

/// A group's nodes along each path of up to two steps (see the module): `t[p][j]`, `m[p][j]`
/// the threshold and meta word of tree `j`'s node at path `p`.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(super) struct Top<T> {
    pub t: [[T; LANES]; PATHS],
    pub m: [[u32; LANES]; PATHS],
}

impl<T: Copy + Default> Wide<T> {
    /// One [`Top`] per segment (that of a tree walked alone is unused), then the dummy
    /// group's (every root the dummy leaf 0, as chains past the last group walk).
    pub(super) fn tops(&self) -> Vec<Top<T>> {
        let dummy = [0; LANES];
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Group { roots, .. } => roots,
                Segment::One { .. } => &dummy,
            })
            .chain([&dummy])
            .map(|roots| self.top(roots))
            .collect()
    }

    /// The nodes along each path from `roots`.
    fn top(&self, roots: &[u32; LANES]) -> Top<T> {
        let Some(last) = self.nodes.len().checked_sub(1) else {
            return Top {
                t: [[T::default(); LANES]; PATHS],
                m: [[0; LANES]; PATHS],
            };
        };
        let node = |i: usize| self.nodes[i.min(last)];
        let kids = |n: Node<T>| {
            let c = (n.m >> self.cshift) as usize;
            (node(c), node(c.saturating_add(1)))
        };
        let paths: [[Node<T>; LANES]; PATHS] = {
            let n0 = roots.map(|r| node(r as usize));
            let (l, r) = (n0.map(|n| kids(n).0), n0.map(|n| kids(n).1));
            [
                n0,
                l,
                r,
                l.map(|n| kids(n).0),
                l.map(|n| kids(n).1),
                r.map(|n| kids(n).0),
                r.map(|n| kids(n).1),
            ]
        };
        Top {
            t: paths.map(|p| p.map(|n| n.t)),
            m: paths.map(|p| p.map(|n| n.m)),
        }
    }
}

impl<T: Prec + Walk> Wide<T> {
    /// [`Wide::eval`] of one row with the vector walk: consecutive groups walked together
    /// (`ROW_CHAINS` of them), their leaves added in tree order; with one output, while the
    /// next groups walk (the adds are one dependent chain, 500 of them for m2: overlapped,
    /// not after). (Groups with category splits of f32 nodes take the scalar walk: their
    /// sets are in a table.)
    pub(super) fn eval_row<const NAN: bool, R: Row<T> + ?Sized>(
        &self,
        h: &Head,
        row: &R,
        acc: &mut [T],
    ) {
        let plain = |seg: &Segment| match seg {
            Segment::Group { cat, .. } => !cat || T::SET_IN_NODE,
            Segment::One { .. } => false,
        };
        let one = h.outputs == 1;
        let mut sums = Pending::new(acc[0]);
        let mut segs = self.segments.as_slice();
        while let Some(first) = segs.first() {
            let n = segs
                .iter()
                .take(ROW_CHAINS)
                .take_while(|s| plain(s))
                .count();
            if n == 0 {
                if one {
                    sums.finish(&self.nodes, 0);
                    acc[0] = sums.sum;
                }
                self.segment::<NAN, R>(h, first, std::iter::once(row), acc);
                sums.sum = acc[0];
                segs = &segs[1..];
                continue;
            }
            let (chained, rest) = segs.split_at(n);
            segs = rest;
            let (mut depth, mut cat) = (0, false);
            let mut roots = [&[0u32; LANES]; ROW_CHAINS];
            // Chains past `n` walk the dummy group (the last top).
            let first = self.segments.len() - segs.len() - n;
            let dummy = self.tops.last().expect("the dummy group's top");
            let mut tops = [dummy; ROW_CHAINS];
            for (t, top) in tops.iter_mut().zip(&self.tops[first..first + n]) {
                *t = top;
            }
            for (r, seg) in roots.iter_mut().zip(chained) {
                if let Segment::Group {
                    roots,
                    depth: d,
                    cat: c,
                    ..
                } = seg
                {
                    *r = roots;
                    depth = depth.max(*d);
                    cat |= c;
                }
            }
            // Chains past `n` walk the dummy leaf 0.
            let (x, bits, g) = ([row.slice()], self.bits(), self.how);
            let tops = (depth >= 3).then_some(tops);
            let walk = if cat {
                T::walk::<NAN, true, ROW_CHAINS, 1>
            } else {
                T::walk::<NAN, false, ROW_CHAINS, 1>
            };
            let leaves = walk(&self.nodes, roots, tops, x, depth, bits, g, &mut sums);
            for (v, seg) in leaves.iter().zip(chained) {
                if let Segment::Group { outs, count, .. } = seg {
                    if one {
                        // Added during the next walk, or below.
                        // All 8 copied, those past `count` not waiting (a fixed-size
                        // copy, not a call): chain `c`'s start `n` is at most `8·c`.
                        sums.leaves[sums.n..sums.n + LANES].copy_from_slice(v);
                        sums.n += count;
                    } else {
                        self.add_leaves(h, v, outs, *count, acc);
                    }
                }
            }
        }
        if one {
            sums.finish(&self.nodes, 0);
            acc[0] = sums.sum;
        }
    }
}

/// Leaves waiting to be added to one row's sum, in order (node indexes: a scalar leaf's
/// value is its threshold).
#[derive(Clone, Copy, Debug)]
pub(super) struct Pending<T> {
    /// The leaves, the first `n` of them waiting.
    pub leaves: [u32; ROW_CHAINS * LANES],
    pub n: usize,
    /// The sum so far.
    pub sum: T,
}

impl<T: Prec> Pending<T> {
    /// Nothing waiting; the sum so far `sum`.
    pub(super) fn new(sum: T) -> Self {
        Pending {
            leaves: [0; ROW_CHAINS * LANES],
            n: 0,
            sum,
        }
    }

    /// Adds the leaf `k` if it is waiting (for the walks: one add at a time between steps).
    #[inline(always)]
    pub(super) fn add(&self, nodes: &[Node<T>], k: usize, sum: &mut T) {
        // No panic path: one would keep the sum in memory, stored at every add (m2 one
        // row 3% slower). Both `get`s hold: `n` is at most the length, and the walks
        // clamp every leaf to the last node.
        if k < self.n
            && let Some(&l) = self.leaves.get(k)
            && let Some(n) = nodes.get(l as usize)
        {
            *sum += n.t;
        }
    }

    /// Adds every leaf from `k` on; none left waiting.
    #[inline(always)]
    pub(super) fn finish(&mut self, nodes: &[Node<T>], k: usize) {
        let mut sum = self.sum;
        for &l in self.leaves.get(k..self.n).unwrap_or_default() {
            if let Some(n) = nodes.get(l as usize) {
                sum += n.t;
            }
        }
        self.sum = sum;
        self.n = 0;
    }
}
