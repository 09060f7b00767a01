//! The nodes of 8-byte layouts (f32) laid out again at load by pairs of levels: a split's
//! two children, then their children, side by side in one block of six (48 bytes), the
//! blocks of a group one level pair after another. One row's walk then finds a node's
//! children and grandchildren in one or two cache lines where the level-by-level layout
//! spreads a tree's levels 3 to 8 over six (m2 one row 0.94× the time, batches the same;
//! 12-byte f64 nodes, whose blocks take 72 bytes, were no faster: m1 1.01×, m3 0.99×).
//!
//! The same nodes, each once, children still side by side: every walk reads either
//! layout. Files keep the level-by-level layout, which their check reads in one pass
//! ([`Wide::in_levels`] lays it out back for writing).

use std::collections::VecDeque;

use super::{FLAG_BITS, Node, Prec, Segment, W_LEAF, W_VECTOR, Wide};

#[cfg(test)]
impl super::WideEnsemble {
    /// Whether the nodes are laid out by pairs of levels (as served), not level by level.
    pub(crate) fn by_pairs(&self) -> bool {
        match &self.nodes {
            super::Nodes::F32(w) => w.blocks,
            super::Nodes::F64(w) => w.blocks,
        }
    }
}

impl<T: Prec> Wide<T> {
    /// Lays 8-byte nodes out by pairs of levels (see the module); other layouts stay.
    /// Keyed nodes ([`Wide::set_keys`]) are laid out as built, then keyed again.
    pub(super) fn lay_out_blocks(&mut self) {
        if size_of::<Node<T>>() != 8 || self.blocks || self.nodes.is_empty() {
            return;
        }
        let keys = self.keys;
        self.set_keys(false);
        self.lay_out_pairs();
        self.set_keys(keys);
    }

    fn lay_out_pairs(&mut self) {
        let old = &self.nodes;
        let mut new = Vec::with_capacity(old.len());
        new.push(old[0]);
        let mut segments = self.segments.clone();
        // (a split's new place, its old child): a block to lay out.
        let mut queue: VecDeque<(usize, usize)> = VecDeque::new();
        for seg in &mut segments {
            for r in roots_mut(seg) {
                let at = new.len();
                if let Some(c) = self.put(old, *r as usize, &mut new) {
                    queue.push_back((at, c));
                }
                *r = at as u32;
            }
            while let Some((parent, c)) = queue.pop_front() {
                if new.len() >= old.len() {
                    // More nodes than there are: trees share nodes (not from a build or
                    // a checked file). Left as they are.
                    return;
                }
                let s = new.len();
                self.set_child(&mut new[parent], s);
                let kids = [self.put(old, c, &mut new), self.put(old, c + 1, &mut new)];
                for (k, kid) in kids.into_iter().enumerate() {
                    let Some(c) = kid else { continue };
                    let s2 = new.len();
                    self.set_child(&mut new[s + k], s2);
                    let grandkids = [self.put(old, c, &mut new), self.put(old, c + 1, &mut new)];
                    for (j, g) in grandkids.into_iter().enumerate() {
                        if let Some(c) = g {
                            queue.push_back((s2 + j, c));
                        }
                    }
                }
            }
        }
        self.nodes = new;
        self.segments = segments;
        self.blocks = true;
        // Tops built already hold the old child indexes (a file's load builds them after).
        if !self.tops.is_empty() {
            self.tops = self.tops();
        }
    }

    /// The same trees laid out level by level over each segment's trees, as the builder
    /// lays them out and files hold them (keyed nodes as built: [`Wide::set_keys`]).
    pub(super) fn in_levels(&self) -> Wide<T> {
        if self.keys {
            let mut w = self.clone();
            w.set_keys(false);
            return w.in_levels();
        }
        let old = &self.nodes;
        let mut new = Vec::with_capacity(old.len());
        new.extend(old.first().copied());
        let mut segments = self.segments.clone();
        let mut queue: VecDeque<usize> = VecDeque::new();
        for seg in &mut segments {
            for r in roots_mut(seg) {
                queue.push_back(*r as usize);
                // The roots are the first nodes taken from the queue.
                *r = (new.len() + queue.len() - 1) as u32;
            }
            while let Some(i) = queue.pop_front() {
                if new.len() >= old.len() {
                    // Trees sharing nodes (only a damaged layout): as they are.
                    return Wide {
                        blocks: false,
                        ..self.clone()
                    };
                }
                let at = new.len();
                if let Some(c) = self.put(old, i, &mut new) {
                    // The children come after everything waiting.
                    self.set_child(&mut new[at], at + 1 + queue.len());
                    queue.extend([c, c + 1]);
                }
            }
        }
        Wide {
            nodes: new,
            segments,
            blocks: false,
            tops: Vec::new(),
            ..self.clone()
        }
    }

    /// Copies node `i` of `old` to the end of `new`: a split's old child, or `None` for a
    /// leaf (a scalar leaf's own child set to its new place).
    fn put(&self, old: &[Node<T>], i: usize, new: &mut Vec<Node<T>>) -> Option<usize> {
        // Every index is a node of a checked layout; clamped all the same.
        let mut n = old[i.min(old.len() - 1)];
        let flags = (n.m >> self.fbits) & ((1 << FLAG_BITS) - 1);
        let child = (n.m >> self.cshift) as usize;
        let leaf = flags & W_LEAF != 0;
        if leaf && flags & W_VECTOR == 0 {
            self.set_child(&mut n, new.len());
        }
        new.push(n);
        (!leaf).then_some(child)
    }

    fn set_child(&self, n: &mut Node<T>, child: usize) {
        n.m = (n.m & ((1 << self.cshift) - 1)) | (child as u32) << self.cshift;
    }
}

/// A segment's roots (of a group, those of its trees).
fn roots_mut(seg: &mut Segment) -> &mut [u32] {
    match seg {
        Segment::Group { roots, count, .. } => &mut roots[..*count],
        Segment::One { root, .. } => std::slice::from_mut(root),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::ensemble_of;
    use super::super::{Nodes, WideEnsemble};
    use crate::model::ensemble::{Branch, EnsembleLimits, Leaf, Node, Split, Test, Tree};

    /// A complete tree of depth 4 whose every node's threshold (a leaf's value) is its
    /// place in breadth-first order: the layouts read as those places.
    fn places(f32m: bool, blocks: bool) -> Vec<f64> {
        let nodes = (0..31u32)
            .map(|k| {
                if k < 15 {
                    Node::Split(Split {
                        feature: 0,
                        test: Test::Lt(f64::from(k)),
                        yes: 2 * k + 1,
                        no: 2 * k + 2,
                        missing: Branch::Yes,
                        zero_is_missing: false,
                    })
                } else {
                    Node::Leaf(Leaf::Scalar(f64::from(k)))
                }
            })
            .collect();
        let e = ensemble_of(vec![Tree { nodes, group: 0 }], f32m, 1);
        e.validate(&EnsembleLimits::default()).unwrap();
        let mut w = WideEnsemble::compile(&e).unwrap();
        if !blocks {
            w = WideEnsemble::from_payload(&w.to_payload(), &EnsembleLimits::default()).unwrap();
            match &mut w.nodes {
                Nodes::F32(x) => *x = x.in_levels(),
                Nodes::F64(x) => *x = x.in_levels(),
            }
        }
        // The thresholds as built, not keys (`Wide::set_keys`).
        match &mut w.nodes {
            Nodes::F32(x) => {
                x.set_keys(false);
                x.nodes[1..].iter().map(|n| f64::from(n.t)).collect()
            }
            Nodes::F64(x) => {
                x.set_keys(false);
                x.nodes[1..].iter().map(|n| n.t).collect()
            }
        }
    }

    #[test]
    fn f32_nodes_are_laid_out_by_pairs_of_levels_and_back() {
        let levels: Vec<f64> = (0..31).map(f64::from).collect();
        #[rustfmt::skip]
        let blocks: Vec<f64> = [
            0,
            1, 2, 3, 4, 5, 6,
            7, 8, 15, 16, 17, 18,
            9, 10, 19, 20, 21, 22,
            11, 12, 23, 24, 25, 26,
            13, 14, 27, 28, 29, 30,
        ]
        .map(f64::from)
        .to_vec();
        assert_eq!(places(true, true), blocks);
        assert_eq!(places(true, false), levels);
        // 12-byte nodes stay level by level.
        assert_eq!(places(false, true), levels);
    }
}
