//! The wide layout as an artifact's payload (format 3, [`crate::model::FORMAT_VERSION_WIDE`]):
//! what [`super::build`] makes, written as it is, so a load reads it back instead of
//! decoding, validating and compiling the source trees (m2, 500 trees of depth 8: 1.5 MB
//! where the trees take 5 MB of MessagePack, and ~12 ms of a 25 ms load).
//!
//! The payload is MessagePack (`rmp_serde`, structs as arrays): the head, the counts, the
//! segments, the vector leaves' ranges, the category masks and features, then the nodes as
//! one byte string (each node its threshold's bits then its meta word, little-endian: 8
//! bytes for f32 models, 12 for f64). What the CPU decides (the vector walk, gathers, the
//! batch block) is chosen again at load; f32 nodes, once checked, are laid out again by
//! pairs of levels to serve (`wide_lines.rs`), and laid out back to be written.
//!
//! A file can hold anything, so [`check`] proves what the walks rely on before a node is
//! walked, in one pass over the nodes: the trees laid out exactly as the builder lays them
//! out (each segment's roots, then level by level each split's two children at the next
//! free place: so a split's children are after it, a lone tree's walk ends, and every node
//! is reached exactly once), a grouped tree no deeper than its group and without vector
//! leaves, a lone tree's category sets in the table, leaves finite, features, outputs and
//! ranges in bounds, the counts and limits. Then the
//! golden rows check the answers, as for every artifact. The `wide_payload` fuzz target
//! feeds it arbitrary bytes.

use serde::{Deserialize, Serialize};

use super::{
    FLAG_BITS, Head, LANES, MAX_GROUP_DEPTH, Node, Nodes, Prec, Segment, W_CAT, W_DEFAULT_LEFT,
    W_LEAF, W_VECTOR, Walk, Wide, WideEnsemble, default_block,
};
use crate::model::ensemble::{EnsembleError, EnsembleLimits, Precision};

#[derive(Serialize)]
struct LayoutOut<'a> {
    head: &'a Head,
    num_trees: u64,
    num_nodes: u64,
    segments: &'a [Segment],
    ranges: &'a [(u32, u32)],
    masks: &'a [u64],
    codes: &'a [usize],
    #[serde(with = "serde_bytes")]
    nodes: &'a [u8],
}

#[derive(Deserialize)]
struct LayoutIn<'a> {
    head: Head,
    num_trees: u64,
    num_nodes: u64,
    segments: Vec<Segment>,
    ranges: Vec<(u32, u32)>,
    masks: Vec<u64>,
    codes: Vec<usize>,
    #[serde(borrow, with = "serde_bytes")]
    nodes: &'a [u8],
}

/// A threshold's bits, little-endian.
trait Bytes: Sized {
    const SIZE: usize;
    fn put(self, out: &mut Vec<u8>);
    fn get(b: &[u8]) -> Self;
}

impl Bytes for f32 {
    const SIZE: usize = 4;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bits().to_le_bytes());
    }
    fn get(b: &[u8]) -> Self {
        f32::from_bits(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
}

impl Bytes for f64 {
    const SIZE: usize = 8;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bits().to_le_bytes());
    }
    fn get(b: &[u8]) -> Self {
        f64::from_bits(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
}

impl WideEnsemble {
    /// The artifact payload of this layout (format 3); [`WideEnsemble::from_payload`]
    /// reads it back.
    pub fn to_payload(&self) -> Vec<u8> {
        match &self.nodes {
            Nodes::F32(w) => self.payload(w),
            Nodes::F64(w) => self.payload(w),
        }
    }

    fn payload<T: Prec + Bytes>(&self, w: &Wide<T>) -> Vec<u8> {
        if w.blocks || w.keys {
            let w = w.in_levels();
            return self.payload_of(&w, &node_bytes(&w));
        }
        self.payload_of(w, &node_bytes(w))
    }

    /// The payload of `w` with `nodes` as its nodes' bytes.
    fn payload_of<T: Copy>(&self, w: &Wide<T>, nodes: &[u8]) -> Vec<u8> {
        rmp_serde::to_vec(&LayoutOut {
            head: &self.head,
            num_trees: self.num_trees as u64,
            num_nodes: self.num_nodes as u64,
            segments: &w.segments,
            ranges: &w.ranges,
            masks: &w.masks,
            codes: &w.codes,
            nodes,
        })
        .expect("a layout serializes")
    }

    /// Reads a format-3 payload and checks everything the walks rely on (see the module);
    /// the error says what is wrong. The golden rows are the caller's.
    pub fn from_payload(bytes: &[u8], limits: &EnsembleLimits) -> Result<Self, EnsembleError> {
        Self::read_payload(bytes, limits, true)
    }

    /// [`WideEnsemble::from_payload`] kept level by level as the file holds it, for
    /// batches only (`treeserve predict`): their walks gain nothing from the pairs of
    /// levels one row's walk reads, so the load skips laying them out (the same answers).
    pub fn from_payload_for_batches(
        bytes: &[u8],
        limits: &EnsembleLimits,
    ) -> Result<Self, EnsembleError> {
        Self::read_payload(bytes, limits, false)
    }

    /// The payload read and checked; `blocks`: laid out by pairs of levels.
    fn read_payload(
        bytes: &[u8],
        limits: &EnsembleLimits,
        blocks: bool,
    ) -> Result<Self, EnsembleError> {
        let l: LayoutIn = rmp_serde::from_slice(bytes)
            .map_err(|e| EnsembleError(format!("the wide layout does not read: {e}")))?;
        l.head.check(limits)?;
        let nodes = match l.head.precision {
            Precision::F32 => Nodes::F32(wide::<f32>(&l, limits, blocks)?),
            Precision::F64 => Nodes::F64(wide::<f64>(&l, limits, blocks)?),
        };
        Ok(WideEnsemble {
            num_trees: l.num_trees as usize,
            num_nodes: l.num_nodes as usize,
            head: l.head,
            nodes,
        })
    }
}

/// The nodes' bytes: each threshold's bits, then its meta word.
fn node_bytes<T: Prec + Bytes>(w: &Wide<T>) -> Vec<u8> {
    let mut nodes = Vec::with_capacity(w.nodes.len() * (T::SIZE + 4));
    for n in &w.nodes {
        let (t, m) = (n.t, n.m);
        t.put(&mut nodes);
        nodes.extend_from_slice(&m.to_le_bytes());
    }
    nodes
}

/// The layout's nodes and tables, checked; `blocks`: then laid out by pairs of levels.
fn wide<T: Prec + Walk + Bytes>(
    l: &LayoutIn,
    limits: &EnsembleLimits,
    blocks: bool,
) -> Result<Wide<T>, EnsembleError> {
    let bad = |m: String| Err(EnsembleError(m));
    let size = T::SIZE + 4;
    if !l.nodes.len().is_multiple_of(size) {
        return bad(format!(
            "{} bytes of nodes, not a whole number of {size}-byte nodes",
            l.nodes.len()
        ));
    }
    let nf = l.head.num_features as u32;
    let fbits = (u32::BITS - nf.leading_zeros()).max(3);
    let cshift = fbits + FLAG_BITS;
    let count = l.nodes.len() / size;
    if cshift >= 32 || count > 1 << (32 - cshift) {
        return bad(format!(
            "{count} nodes of {nf} features do not fit the wide layout"
        ));
    }
    if !l.masks.len().is_power_of_two() {
        return bad(format!(
            "{} category masks (a power of two wanted)",
            l.masks.len()
        ));
    }
    let mut w = Wide {
        nodes: l
            .nodes
            .chunks_exact(size)
            .map(|c| Node {
                t: T::get(&c[..T::SIZE]),
                m: u32::from_le_bytes(c[T::SIZE..].try_into().expect("4 bytes")),
            })
            .collect(),
        segments: l.segments.clone(),
        ranges: l.ranges.clone(),
        fbits,
        fmask: (1 << fbits) - 1,
        dl: W_DEFAULT_LEFT << fbits,
        cshift,
        catw: W_CAT << fbits,
        smask: (l.masks.len() - 1) as u32,
        masks: l.masks.clone(),
        codes: l.codes.clone(),
        simd: false,
        avx2: false,
        how: super::How::choose::<T>().unwrap_or(super::How::Loads),
        block: default_block::<T>(fbits),
        tops: Vec::new(),
        blocks: false,
        keys: false,
    };
    check(&w, &l.head, l.num_trees, l.num_nodes, limits)?;
    if blocks {
        w.lay_out_blocks();
    }
    w.set_vector_walk(true);
    Ok(w)
}

/// What the walks rely on, whatever the file holds (see the module). One pass in node
/// order: the segments tile the nodes after the empty leaf 0, each one's trees laid out as
/// the builder lays them out, level by level over its trees (the roots first, then each
/// split's two children at the next free place): so every child is after its parent, every
/// node is reached exactly once, and a node's depth is known when it is read.
fn check<T: Prec + Walk>(
    w: &Wide<T>,
    h: &Head,
    num_trees: u64,
    num_nodes: u64,
    limits: &EnsembleLimits,
) -> Result<(), EnsembleError> {
    let bad = |m: String| Err(EnsembleError(m));
    let (nf, len, k) = (h.num_features, w.nodes.len(), h.outputs);
    if num_trees == 0 || num_trees > limits.max_trees as u64 {
        return bad(format!(
            "{num_trees} trees (1 to {} allowed)",
            limits.max_trees
        ));
    }
    if num_nodes > limits.max_total_nodes as u64 || num_nodes + 1 != len as u64 {
        return bad(format!(
            "{len} nodes laid out for {num_nodes} (at most {} allowed)",
            limits.max_total_nodes
        ));
    }
    if let Some(&(s, e)) = w
        .ranges
        .iter()
        .find(|&&(s, e)| s > e || e as usize > h.leaf_table.len())
    {
        return bad(format!(
            "a vector leaf's values {s}..{e} are outside the table of {}",
            h.leaf_table.len()
        ));
    }
    if w.codes.windows(2).any(|p| p[0] >= p[1]) || w.codes.last().is_some_and(|&f| f >= nf) {
        return bad("the category features are not increasing features of the model".into());
    }
    let dummy = w.nodes.first().map(|n| (n.t.f64(), n.m));
    if dummy != Some((0.0, w.meta(nf as u32, W_LEAF, 0))) {
        return bad("node 0 is not the layout's empty leaf".into());
    }
    // A prepared row holds the category of the features in `codes`.
    let mut coded = vec![false; nf];
    w.codes.iter().for_each(|&f| coded[f] = true);
    let max_depth = limits.max_depth;
    // A scalar leaf's meta word, but for its index (its own child).
    let leaf = w.meta(nf as u32, W_LEAF, 0);
    let (mut next, mut trees) = (1usize, 0u64);
    for (s, seg) in w.segments.iter().enumerate() {
        let bad = |m: String| Err(EnsembleError(format!("segment {s}: {m}")));
        let (roots, outs, count, depth, grouped) = match seg {
            Segment::Group {
                roots,
                outs,
                count,
                depth,
                ..
            } if *depth <= MAX_GROUP_DEPTH.min(max_depth) => {
                (&roots[..], &outs[..], *count, *depth, true)
            }
            Segment::Group { depth, .. } => return bad(format!("a group of depth {depth}")),
            Segment::One { root, out } => (
                std::slice::from_ref(root),
                std::slice::from_ref(out),
                1,
                max_depth,
                false,
            ),
        };
        if count == 0 || count > LANES {
            return bad(format!("a group of {count} trees"));
        }
        if outs.iter().any(|&o| o as usize >= k) || roots[count..].iter().any(|&r| r != 0) {
            return bad("an output out of range, or a lane past the trees not empty".into());
        }
        if (0..count).any(|j| roots[j] as usize != next + j) || next + count > len {
            return bad("its roots are not the next nodes".into());
        }
        trees += count as u64;
        // The nodes from `next` to `end` are this segment's, `end` its next free place.
        let mut end = next + count;
        let mut has_cat = false;
        // Level by level: `d` the depth of the nodes up to `level_end`.
        let (mut i, mut d, mut level_end) = (next, 0, end);
        while i < end {
            if i == level_end {
                d += 1;
                level_end = end;
            }
            let n = w.nodes[i];
            let (t, m) = (n.t, n.m);
            // The common nodes first: a scalar leaf; a number split on a number.
            if m == leaf | (i as u32) << w.cshift && t.f64().is_finite() {
                i += 1;
                continue;
            }
            let (f, flags, child) = ((m & w.fmask) as usize, w.flags(m), (m >> w.cshift) as usize);
            if flags & !W_DEFAULT_LEFT == 0
                && f < nf
                && !coded[f]
                && d < depth
                && child == end
                && end + 2 <= len
                && !t.nan()
            {
                end += 2;
                i += 1;
                continue;
            }
            let fault = if flags == W_LEAF | W_VECTOR {
                if grouped {
                    Some("a vector leaf in a group")
                } else {
                    (f != 0 || child >= w.ranges.len()).then_some("a vector leaf out of its table")
                }
            } else if flags & W_LEAF != 0 {
                (flags != W_LEAF || f != nf || child != i || !t.f64().is_finite())
                    .then_some("a leaf that is not its own finite, final node")
            } else if f >= nf {
                Some("a split on a feature the model does not have")
            } else if d >= depth {
                Some("a split deeper than its segment's depth")
            } else if child != end {
                Some("a split whose children are not the next nodes of its trees")
            } else if end + 2 > len {
                Some("a split whose children are past the last node")
            } else {
                let cat = flags & W_CAT != 0;
                has_cat |= cat;
                // A lone tree's category split reads its set from the head's table; a
                // grouped one the set's bits (f64) or its index in the masks (f32).
                let table = match (grouped, T::SET_IN_NODE) {
                    (false, _) => h.sets.len(),
                    (true, false) => w.masks.len(),
                    (true, true) => usize::MAX,
                };
                let index = t.f64();
                let in_table = table == usize::MAX
                    || (index >= 0.0 && index.fract() == 0.0 && (index as usize) < table);
                // A number split must not read a category the row holds, a grouped
                // category split must read one.
                if (!cat && coded[f]) || (cat && !coded[f] && (grouped || !w.codes.is_empty())) {
                    Some("a split reading a feature as a number and a category")
                } else if cat && !in_table {
                    Some("a category set out of the table")
                } else if !cat && t.nan() {
                    Some("a split on NaN")
                } else {
                    end += 2;
                    None
                }
            };
            if let Some(fault) = fault {
                return bad(format!("node {i}: {fault}"));
            }
            i += 1;
        }
        if let Segment::Group { cat, .. } = seg
            && *cat != has_cat
        {
            return bad("its category flag does not match its splits".into());
        }
        next = end;
    }
    if trees != num_trees {
        return bad(format!("{trees} trees laid out, {num_trees} counted"));
    }
    if next != len {
        return bad(format!("node {next} is in no tree"));
    }
    Ok(())
}

#[cfg(test)]
#[path = "wide_file_tests.rs"]
mod tests;
