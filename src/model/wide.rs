//! The evaluator of large ensembles. The same trees, rules and answers as
//! [`FlatEnsemble`] (bit for bit), in a layout for many trees and rows:
//!
//! - compact nodes: the threshold in the model's precision (f32 for XGBoost, f64 for
//!   LightGBM) and one `u32` holding the feature, the left child (the right child is the
//!   next node) and the flags: 8 bytes for f32 models, 12 for f64;
//! - trees in groups of [`LANES`], each group laid out level by level over its trees, so
//!   the hot top levels of a group share a few cache lines; 8-byte (f32) nodes are served
//!   laid out again by pairs of levels, a node's children and grandchildren side by side
//!   (`wide_lines.rs`; files keep the level-by-level layout);
//! - a group is walked all at once for a fixed number of steps (its depth), every step an
//!   index computation (`left + (x >= t)`): no branch on the data, and the trees' dependent
//!   loads overlap. A leaf is its own left child, split on a phantom feature that is
//!   always `-inf` (`-inf < value` for every leaf value), so a finished tree stays put;
//!   rows without a missing value skip the missing-value term;
//! - batches go in blocks of rows, so a group's nodes stay in cache over the block;
//! - one row walks its groups' first three levels from a copy laid out path by path
//!   (`wide_row.rs`): loads that do not wait on the row, and picks by its masks;
//! - the vector walks: AVX-512 for groups (`wide_simd.rs`, pairs of groups in
//!   `wide_pair.rs`); without AVX-512, batches compare keys in the scalar walk
//!   (`wide_keys.rs`) and one row of f32 nodes walks 8 groups at once with AVX2
//!   (`wide_avx2.rs`).
//!
//! Category splits are grouped when every set has one rule and only categories below 63:
//! a prepared row holds the category of such a feature, and the step tests its bit in the
//! set's 64 bits (held in the threshold itself for f64 nodes, in `masks` for f32). Trees
//! with other category splits or a vector leaf, or deeper than [`MAX_GROUP_DEPTH`], are
//! walked one at a time with branches, in their place in the sum order.

use super::ensemble::{Ensemble, EnsembleError, OutputKind, Precision};
use super::flat::{CATEGORICAL, DEFAULT_LEFT, FEATURE_MASK, FlatEnsemble, LEAF, VECTOR};
use super::head::{Head, Prec};
use simd::{How, Walk};

#[cfg(target_arch = "x86_64")]
#[path = "wide_avx2.rs"]
mod avx2;
#[path = "wide_build.rs"]
mod build;
#[path = "wide_file.rs"]
mod file;
#[path = "wide_keys.rs"]
mod keys;
#[path = "wide_lines.rs"]
mod lines;
#[cfg(target_arch = "x86_64")]
#[path = "wide_pair.rs"]
mod pair;
#[path = "wide_row.rs"]
mod row;
#[path = "wide_simd.rs"]
mod simd;
#[path = "wide_walk.rs"]
mod walk;
use build::build;

/// Trees walked at once.
pub const LANES: usize = 8;
/// Rows of a batch block, at most: a block's prepared rows take up to [`BLOCK_BYTES`],
/// and every group (or pair) walks the whole block before the next, so the model's nodes
/// come from memory once a block (m2 batch 1.1× faster at 1,024 rows than at 64).
pub const BLOCK: usize = 1024;
/// Rows of a batch block, at least (where rows are wide), and the unit a batch is split
/// in over threads.
pub const MIN_BLOCK: usize = 64;
/// Bytes of a block's prepared rows (while they fit [`BLOCK`] rows): they stay in L2
/// beside a group's nodes.
const BLOCK_BYTES: usize = 128 << 10;
/// The deepest tree walked in a group; deeper trees are walked alone.
pub const MAX_GROUP_DEPTH: usize = 32;
/// Rows of a batch the vector walk keeps in flight (16 against 8 since the nodes are
/// loaded, not gathered, on AMD: m2 batch 8% faster; 32 no faster).
const CHAINS: usize = 16;
/// Groups of one row the vector walk keeps in flight.
const ROW_CHAINS: usize = 8;

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

/// A node: the threshold (a scalar leaf's value; a category split's set index, or in a
/// group of f64 nodes the set's bits) and the
/// meta word.
#[derive(Clone, Copy, Debug)]
#[repr(C, packed(4))]
struct Node<T> {
    t: T,
    m: u32,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// Whether groups take the vector walk ([`simd`]; with category splits: f64 nodes,
    /// in batches).
    simd: bool,
    /// How the vector walk runs ([`How::choose`]: AVX-512 fetching nodes by gathers or
    /// loads, or AVX2).
    how: How,
    /// Whether one row walks its groups with AVX2 over keyed nodes (`wide_avx2.rs`; then
    /// `simd` is off and batches take the keyed walk).
    avx2: bool,
    /// Rows of a batch block: as many as fit [`BLOCK_BYTES`], from [`MIN_BLOCK`] to
    /// [`BLOCK`].
    block: usize,
    /// Each segment's top levels for one row's walk, then the dummy group's ([`Wide::tops`]).
    tops: Vec<row::Top<T>>,
    /// Whether the nodes are laid out by pairs of levels ([`lines`]), not level by level.
    blocks: bool,
    /// Whether the nodes hold keys for the keyed walk ([`Wide::set_keys`]).
    keys: bool,
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
    num_nodes: usize,
}

/// Per-thread buffers of [`WideEnsemble`].
#[derive(Debug, Default)]
pub struct WideScratch {
    x32: Vec<f32>,
    x64: Vec<f64>,
    k32: Vec<u32>,
    k64: Vec<u64>,
    acc32: Vec<f32>,
    acc64: Vec<f64>,
    raw: Vec<f64>,
}

impl WideEnsemble {
    /// Compiles a validated ensemble ([`Ensemble::validate`] first), laid out to serve
    /// ([`WideEnsemble::with_pair_blocks`]).
    pub fn compile(e: &Ensemble) -> Result<Self, EnsembleError> {
        Self::from_flat(FlatEnsemble::compile(e)?)
            .map(Self::with_pair_blocks)
            .map_err(|_| EnsembleError("too many nodes or features for the wide layout".into()))
    }

    /// The same evaluator with f32 nodes laid out by pairs of levels, as a load serves
    /// them (one row's walk reads two levels of a tree a cache line; the same answers).
    pub fn with_pair_blocks(mut self) -> Self {
        match &mut self.nodes {
            Nodes::F32(w) => w.lay_out_blocks(),
            Nodes::F64(w) => w.lay_out_blocks(),
        }
        self
    }

    /// Re-lays out a compiled ensemble, level by level as a file holds it; gives it back
    /// when it does not fit the compact node (features and nodes share 29 bits).
    pub fn from_flat(flat: FlatEnsemble) -> Result<Self, Box<FlatEnsemble>> {
        let nodes = match flat.head.precision {
            Precision::F32 => build::<f32>(&flat).map(Nodes::F32),
            Precision::F64 => build::<f64>(&flat).map(Nodes::F64),
        };
        match nodes {
            Some(nodes) => Ok(WideEnsemble {
                num_trees: flat.roots.len(),
                num_nodes: flat.num_nodes(),
                head: flat.head,
                nodes,
            }),
            None => Err(Box::new(flat)),
        }
    }

    /// The same evaluator with the vector walk (AVX-512, or AVX2 for f32 nodes) on or off;
    /// on only where the CPU has it and a row fits its registers, as [`WideEnsemble::compile`] chooses. For
    /// tests and benchmarks.
    pub fn with_vector_walk(mut self, on: bool) -> Self {
        match &mut self.nodes {
            Nodes::F32(w) => w.set_vector_walk(on),
            Nodes::F64(w) => w.set_vector_walk(on),
        }
        self
    }

    /// The same evaluator with the vector walk fetching nodes by gathers or by loads (the
    /// same answers; [`WideEnsemble::compile`] chooses by the CPU). For tests and benchmarks.
    /// Only where the CPU has AVX-512 (the AVX2 walk loads them).
    pub fn with_node_gathers(mut self, on: bool) -> Self {
        let how = if on { How::Gather } else { How::Loads };
        if how.available() {
            match &mut self.nodes {
                Nodes::F32(w) => w.how = how,
                Nodes::F64(w) => w.how = how,
            }
        }
        self
    }

    /// The same evaluator with the walks of CPUs without AVX-512 (one row with AVX2 over
    /// keyed nodes, batches keyed) where the CPU has AVX2 and the nodes are f32; else
    /// unchanged. For tests and benchmarks on CPUs with AVX-512.
    pub fn with_avx2_walk(mut self) -> Self {
        if let Nodes::F32(w) = &mut self.nodes
            && How::Avx2.available()
        {
            w.how = How::Avx2;
            w.set_vector_walk(true);
        }
        self
    }

    /// The same evaluator with batch blocks of `rows` rows (1 to [`BLOCK`]; the same
    /// answers). For tests and benchmarks.
    pub fn with_block_rows(mut self, rows: usize) -> Self {
        let rows = rows.clamp(1, BLOCK);
        match &mut self.nodes {
            Nodes::F32(w) => w.block = rows,
            Nodes::F64(w) => w.block = rows,
        }
        self
    }

    /// Rows of a batch block.
    pub fn block_rows(&self) -> usize {
        match &self.nodes {
            Nodes::F32(w) => w.block,
            Nodes::F64(w) => w.block,
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

    /// Nodes over all trees, as in the model (the layout adds a dummy leaf).
    pub fn num_nodes(&self) -> usize {
        self.num_nodes
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
                &mut s.k32,
                &mut s.acc32,
                &mut s.raw,
                scores,
                classes,
            ),
            Nodes::F64(w) => self.run(
                w,
                rows,
                &mut s.x64,
                &mut s.k64,
                &mut s.acc64,
                &mut s.raw,
                scores,
                classes,
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn run<T: Prec + Walk>(
        &self,
        w: &Wide<T>,
        rows: &[f64],
        x: &mut Vec<T>,
        keys: &mut Vec<T::Key>,
        acc: &mut Vec<T>,
        raw: &mut Vec<f64>,
        scores: &mut [f64],
        classes: &mut [usize],
    ) {
        let h = &self.head;
        let (nf, k, ns) = (h.num_features, h.outputs, h.num_scores);
        debug_assert_eq!(rows.len(), classes.len() * nf);
        debug_assert_eq!(scores.len(), classes.len() * ns);
        let b = w.block;
        for ((block, scores), classes) in rows
            .chunks(b * nf)
            .zip(scores.chunks_mut(b * ns))
            .zip(classes.chunks_mut(b))
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
            if w.keys {
                w.eval_keys(h, x, keys, nan, acc);
            } else {
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

/// Rows of a batch block by default for rows of `1 << fbits` values of `T`: as many as
/// [`BLOCK_BYTES`] holds.
fn default_block<T>(fbits: u32) -> usize {
    (BLOCK_BYTES / ((1 << fbits) * size_of::<T>())).clamp(MIN_BLOCK, BLOCK)
}

impl<T: Prec + Walk> Wide<T> {
    /// Whether the vector walk can run: the CPU has it (and it is not turned off), and a
    /// row fits its registers.
    fn vector_fits(&self) -> bool {
        let how = self.how.available() && self.how != How::Avx2;
        How::choose::<T>().is_some() && how && self.stride() <= T::MAX_STRIDE
    }

    /// Whether one row of keyed nodes can take the AVX2 walk (`wide_avx2.rs`): chosen
    /// ([`How::Avx2`]: the CPU has AVX2, not AVX-512), f32 nodes, no category split, a row
    /// fits its registers.
    fn avx2_fits(&self) -> bool {
        How::choose::<T>().is_some()
            && self.how == How::Avx2
            && self.how.available()
            && T::AVX2
            && !self.category_groups()
            && self.stride() <= T::MAX_STRIDE
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

#[cfg(test)]
#[path = "wide_tests.rs"]
mod tests;
