//! The grouped walk of [`super::Wide`] with x86-64 AVX-512: the crate's only `unsafe`
//! code (`tests/it/architecture.rs` checks that it stays here).
//!
//! One step of a group's 8 trees is a few vector instructions: one gather of the 8 nodes
//! (threshold and meta word), the features masked out of the meta words, the 8 feature
//! values picked from the row held in registers (`vpermt2ps`/`vpermt2pd`: rows of up to
//! 32 f32 or 16 f64 values), one compare into a mask, and the child added; the scalar walk
//! needs ~9 instructions and two loads per tree for the same step. Several chains (rows
//! of a batch, or groups of one row) are walked at once so the gathers' latencies overlap.
//! One row reads a group's top levels whole instead (level `s`: `8 << s` nodes, the layout
//! keeps every tree on level `s` after `s` steps): the 8 nodes picked by permutes, each
//! step's latency shorter than a gather's (m2 one row ~0.9×).
//! (AVX2 alone, three gathers a step, measured slower than the scalar walk on this
//! machine's AMD EPYC: its gathers fetch about one value a cycle.)
//! A category split of f64 nodes (`CAT`) keeps its set's 64 bits in the threshold: the
//! step shifts the gathered bits by the row's category, in registers (a second gather,
//! of the set from a table, doubled the step's latency: m3 one row 1.95× slower). Batches
//! of m3 take it (1.18× faster); one row stays on the scalar walk (1.25× slower here).
//!
//! Why it is sound, whatever the nodes hold: every gathered node index is clamped to
//! `nodes.len() - 1` (the roots and each step's result), a level read whole is first
//! checked to lie inside the nodes ([`whole_levels`]; an index only selects among the
//! registers read), and the row is read with a masked load of its own length; a feature
//! index only selects among registers. The
//! functions with `#[target_feature]` are called only after AVX-512 F and VL were
//! detected at run time ([`available`]). The walk equals [`super::Wide::walk_group`] bit
//! for bit: the same comparison (`v < t`, false for NaN), the same missing-value rule;
//! the tests of `wide_tests.rs` run both walks against the flat evaluator.
#![allow(unsafe_code)]

use super::{Node, TOP};

// `x86::level` knows levels 0 to 3.
const _: () = assert!(TOP <= 4);

/// Whether this CPU can run the vector walk (AVX-512 F and VL; checked once, then cached
/// by std).
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether new evaluators take the vector walk: where [`available`], unless the
/// environment says `TREESERVE_VECTOR_WALK=off` (read once; for comparisons and as an
/// escape hatch).
pub(super) fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        available() && std::env::var_os("TREESERVE_VECTOR_WALK").is_none_or(|v| v != "off")
    })
}

/// Node precisions the vector walk knows.
pub(super) trait Walk: Copy + Sized {
    /// The widest row (feature values, the phantom, padding) the walk holds in registers.
    const MAX_STRIDE: usize;
    /// Whether one row's walk reads a group's top levels whole (f32 nodes).
    const READS_LEVELS: bool;
    /// Whether a grouped category split keeps its set's bits in its threshold (f64 nodes:
    /// all 64 bits, one load and no table); else the threshold is the set's index in
    /// `masks`.
    const SET_IN_NODE: bool;

    /// A threshold holding a set's bits (only where [`Walk::SET_IN_NODE`]).
    fn from_set(bits: u64) -> Self;
    /// The set's bits a threshold holds (only where [`Walk::SET_IN_NODE`]).
    fn set(self) -> u64;

    /// Walks `C` chains for `depth` steps: chain `c` starts at `roots[c]` and reads the row
    /// `xs[c % R]` (`R`: 1, or `C`; each at most [`Walk::MAX_STRIDE`] values, and more than `bits.fmask`);
    /// returns each chain's 8 leaves. Only when [`available`]; `NAN`: whether a row may
    /// hold NaN. For steps `s < top`, every tree of chain `c` is among the `8 << s` nodes
    /// from `tops[c][s]` (f32 nodes: the walk reads them whole instead of gathering).
    /// `CAT`: a node may split on a category set held in its threshold (only where
    /// [`Walk::SET_IN_NODE`]; the row holds categories, see `Wide::encode`).
    fn walk<const NAN: bool, const CAT: bool, const C: usize, const R: usize>(
        nodes: &[Node<Self>],
        roots: [&[u32; 8]; C],
        tops: [&[u32; TOP]; C],
        top: usize,
        xs: [&[Self]; R],
        depth: usize,
        bits: Bits,
    ) -> [[u32; 8]; C];
}

/// Where a meta word keeps its parts.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bits {
    /// The feature's mask.
    pub fmask: u32,
    /// The missing-goes-left flag.
    pub dl: u32,
    /// Where the child starts.
    pub cshift: u32,
    /// The category-split flag.
    pub catw: u32,
}

/// Checks what the walk relies on; the last node's index, or `None` if it cannot run.
fn checked<T: Walk>(nodes: &[Node<T>], xs: &[&[T]], bits: Bits) -> Option<u32> {
    let last = nodes.len().checked_sub(1)?;
    // Node offsets are signed 32-bit gather indexes (f64 nodes: 3 per node).
    let fits = (nodes.len() as u64) * 3 < i32::MAX as u64;
    let rows = xs
        .iter()
        .all(|x| (bits.fmask as usize) < x.len() && x.len() <= T::MAX_STRIDE);
    (available() && fits && rows && bits.cshift < 32).then_some(last as u32)
}

/// How many of the first `top` levels (at most [`TOP`]) lie whole inside the nodes for
/// every chain: those the walk may read whole.
fn whole_levels<T>(nodes: &[Node<T>], tops: &[&[u32; TOP]], top: usize) -> usize {
    (0..top.min(TOP))
        .take_while(|&s| {
            tops.iter()
                .all(|t| (t[s] as usize).saturating_add(8 << s) <= nodes.len())
        })
        .count()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Bits, Node, TOP, Walk, checked, whole_levels};
    use std::arch::x86_64::*;

    impl Walk for f32 {
        const MAX_STRIDE: usize = 32;
        const READS_LEVELS: bool = true;
        const SET_IN_NODE: bool = false;

        fn from_set(_: u64) -> Self {
            unreachable!("f32 thresholds hold set indexes")
        }
        fn set(self) -> u64 {
            unreachable!("f32 thresholds hold set indexes")
        }

        #[inline]
        fn walk<const NAN: bool, const CAT: bool, const C: usize, const R: usize>(
            nodes: &[Node<f32>],
            roots: [&[u32; 8]; C],
            tops: [&[u32; TOP]; C],
            top: usize,
            xs: [&[f32]; R],
            depth: usize,
            bits: Bits,
        ) -> [[u32; 8]; C] {
            assert!(!CAT, "f32 category splits take the scalar walk");
            let last = checked(nodes, &xs, bits).expect("the vector walk's conditions");
            let top = whole_levels(nodes, &tops, top);
            // SAFETY: AVX-512 F and VL are available, `last` is the last node (`checked`),
            // the first `top` levels of every chain lie inside the nodes (`whole_levels`);
            // see the module's comment.
            unsafe { walk32::<NAN, C, R>(nodes, roots, tops, top, xs, depth, bits, last) }
        }
    }

    impl Walk for f64 {
        const MAX_STRIDE: usize = 16;
        const READS_LEVELS: bool = false;
        const SET_IN_NODE: bool = true;

        #[inline(always)]
        fn from_set(bits: u64) -> Self {
            f64::from_bits(bits)
        }
        #[inline(always)]
        fn set(self) -> u64 {
            self.to_bits()
        }

        #[inline]
        fn walk<const NAN: bool, const CAT: bool, const C: usize, const R: usize>(
            nodes: &[Node<f64>],
            roots: [&[u32; 8]; C],
            _: [&[u32; TOP]; C],
            _: usize,
            xs: [&[f64]; R],
            depth: usize,
            bits: Bits,
        ) -> [[u32; 8]; C] {
            let last = checked(nodes, &xs, bits).expect("the vector walk's conditions");
            // SAFETY: as for f32.
            unsafe { walk64::<NAN, CAT, C, R>(nodes, roots, xs, depth, bits, last) }
        }
    }

    /// 8 roots, clamped to the last node.
    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    fn start(roots: &[u32; 8], last: __m256i) -> __m256i {
        // SAFETY: `roots` is 32 bytes; the load is unaligned.
        _mm256_min_epu32(unsafe { _mm256_loadu_si256(roots.as_ptr().cast()) }, last)
    }

    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    fn finish<const C: usize>(idx: [__m256i; C]) -> [[u32; 8]; C] {
        let mut out = [[0u32; 8]; C];
        for (o, i) in out.iter_mut().zip(idx) {
            // SAFETY: `o` is 32 bytes; the store is unaligned.
            unsafe { _mm256_storeu_si256(o.as_mut_ptr().cast(), i) };
        }
        out
    }

    /// The next nodes: `child + 1`, less one where the tree goes left, clamped to the last
    /// node. `nan`: where the value is missing (it goes left where the node says so).
    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    fn next(m: __m256i, left: __mmask8, nan: __mmask8, bits: Bits, last: __m256i) -> __m256i {
        let left = left | (nan & _mm256_test_epi32_mask(m, _mm256_set1_epi32(bits.dl as i32)));
        let child = _mm256_srl_epi32(m, _mm_cvtsi32_si128(bits.cshift as i32));
        let right = _mm256_add_epi32(child, _mm256_set1_epi32(1));
        _mm256_min_epu32(_mm256_mask_mov_epi32(right, left, child), last)
    }

    /// `left` where a node splits on a number; where it splits on a category set (its
    /// bits in the threshold `t`), whether the row's category (`v`: an integer below 64,
    /// or NaN: `nan`, not in the set) is in the set: the rule of `Wide::step`.
    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    fn category(
        m: __m256i,
        t: __m512d,
        v: __m512d,
        left: __mmask8,
        nan: __mmask8,
        bits: Bits,
    ) -> __mmask8 {
        let cat = _mm256_test_epi32_mask(m, _mm256_set1_epi32(bits.catw as i32));
        // The category's low bits without a conversion: the mantissa of `v + 1.5·2^52`.
        let code = _mm512_and_si512(
            _mm512_castpd_si512(_mm512_add_pd(v, _mm512_set1_pd(6755399441055744.0))),
            _mm512_set1_epi64(63),
        );
        let shifted = _mm512_srlv_epi64(_mm512_castpd_si512(t), code);
        let hit = _mm512_test_epi64_mask(shifted, _mm512_set1_epi64(1)) & !nan;
        (left & !cat) | (hit & cat)
    }

    /// The load masks of a row of `n` values in two registers of `half` lanes each.
    pub(super) fn halves(n: usize, half: usize) -> (u32, u32) {
        let ones = |k: usize| ((1u64 << k.min(half)) - 1) as u32;
        (ones(n), ones(n.saturating_sub(half)))
    }

    /// A row of up to 32 f32 values in two registers (the load masked to its length).
    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    fn row32(x: &[f32]) -> (__m512, __m512) {
        let (lo, hi) = halves(x.len(), 16);
        let p = x.as_ptr();
        // SAFETY: masked loads read only the lanes of the mask: the row's own values.
        unsafe {
            (
                _mm512_maskz_loadu_ps(lo as u16, p),
                _mm512_maskz_loadu_ps(hi as u16, p.wrapping_add(16)),
            )
        }
    }

    /// A row of up to 16 f64 values in two registers (the load masked to its length).
    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    fn row64(x: &[f64]) -> (__m512d, __m512d) {
        let (lo, hi) = halves(x.len(), 8);
        let p = x.as_ptr();
        // SAFETY: masked loads read only the lanes of the mask: the row's own values.
        unsafe {
            (
                _mm512_maskz_loadu_pd(lo as u8, p),
                _mm512_maskz_loadu_pd(hi as u8, p.wrapping_add(8)),
            )
        }
    }

    /// 8 consecutive 8-byte nodes from `p`.
    ///
    /// # Safety
    /// The 64 bytes from `p` are nodes.
    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    unsafe fn block(p: *const i64) -> __m512i {
        // SAFETY: the caller's.
        unsafe { _mm512_loadu_si512(p.cast()) }
    }

    /// The 8 nodes at `idx` picked from level `s`'s `8 << s` nodes from `start`, read whole
    /// (`s < 4`): permutes by each index's low bits instead of a gather. An index outside
    /// the level picks some node of it.
    ///
    /// # Safety
    /// AVX-512 F and VL are available; the `8 << s` nodes from `base + start` are nodes.
    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    unsafe fn level(base: *const i64, start: u32, s: usize, idx: __m256i) -> __m512i {
        let rel = _mm512_cvtepu32_epi64(_mm256_sub_epi32(idx, _mm256_set1_epi32(start as i32)));
        let p = base.wrapping_add(start as usize);
        // SAFETY: the `8 << s` nodes from `p` are nodes (the caller's).
        unsafe {
            match s {
                0 => _mm512_permutexvar_epi64(rel, block(p)),
                1 => _mm512_permutex2var_epi64(block(p), rel, block(p.add(8))),
                2 => {
                    let a = _mm512_permutex2var_epi64(block(p), rel, block(p.add(8)));
                    let b = _mm512_permutex2var_epi64(block(p.add(16)), rel, block(p.add(24)));
                    _mm512_mask_mov_epi64(a, _mm512_test_epi64_mask(rel, _mm512_set1_epi64(16)), b)
                }
                _ => {
                    let [a, b, c, d] = [0, 16, 32, 48].map(|k| {
                        _mm512_permutex2var_epi64(block(p.add(k)), rel, block(p.add(k + 8)))
                    });
                    let hi = _mm512_test_epi64_mask(rel, _mm512_set1_epi64(16));
                    let ab = _mm512_mask_mov_epi64(a, hi, b);
                    let cd = _mm512_mask_mov_epi64(c, hi, d);
                    _mm512_mask_mov_epi64(
                        ab,
                        _mm512_test_epi64_mask(rel, _mm512_set1_epi64(32)),
                        cd,
                    )
                }
            }
        }
    }

    /// 8-byte nodes: the f32 threshold, then the meta word.
    ///
    /// # Safety
    /// AVX-512 F and VL are available; `last == nodes.len() - 1`; each row holds more than
    /// `bits.fmask` values; for `s < top` (at most 4), the `8 << s` nodes from each
    /// `tops[c][s]` are nodes.
    #[target_feature(enable = "avx512f,avx512vl")]
    // The steps index each chain's levels: clearer than iterators over both.
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    unsafe fn walk32<const NAN: bool, const C: usize, const R: usize>(
        nodes: &[Node<f32>],
        roots: [&[u32; 8]; C],
        tops: [&[u32; TOP]; C],
        top: usize,
        xs: [&[f32]; R],
        depth: usize,
        bits: Bits,
        last: u32,
    ) -> [[u32; 8]; C] {
        let lastv = _mm256_set1_epi32(last as i32);
        let fmask = _mm256_set1_epi32(bits.fmask as i32);
        let base = nodes.as_ptr().cast::<i64>();
        let rows = xs.map(|x| row32(x));
        let mut idx = roots.map(|r| start(r, lastv));
        for s in 0..depth {
            for c in 0..C {
                let n = if s < top {
                    // SAFETY: the level lies inside the nodes (the caller's).
                    unsafe { level(base, tops[c][s], s, idx[c]) }
                } else {
                    // SAFETY: every index is at most `last`: node `i` is the 8 bytes at `8·i`.
                    unsafe { _mm512_i32gather_epi64::<8>(idx[c], base) }
                };
                let t = _mm256_castsi256_ps(_mm512_cvtepi64_epi32(n));
                let m = _mm512_cvtepi64_epi32(_mm512_srli_epi64::<32>(n));
                let f = _mm512_castsi256_si512(_mm256_and_si256(m, fmask));
                let (lo, hi) = rows[c % R];
                let v = _mm512_castps512_ps256(_mm512_permutex2var_ps(lo, f, hi));
                let left = _mm256_cmp_ps_mask::<_CMP_LT_OQ>(v, t);
                let nan = if NAN {
                    _mm256_cmp_ps_mask::<_CMP_UNORD_Q>(v, v)
                } else {
                    0
                };
                idx[c] = next(m, left, nan, bits, lastv);
            }
        }
        finish(idx)
    }

    /// 12-byte nodes: the f64 threshold, then the meta word.
    ///
    /// # Safety
    /// As [`walk32`].
    #[target_feature(enable = "avx512f,avx512vl")]
    unsafe fn walk64<const NAN: bool, const CAT: bool, const C: usize, const R: usize>(
        nodes: &[Node<f64>],
        roots: [&[u32; 8]; C],
        xs: [&[f64]; R],
        depth: usize,
        bits: Bits,
        last: u32,
    ) -> [[u32; 8]; C] {
        let lastv = _mm256_set1_epi32(last as i32);
        let fmask = _mm256_set1_epi32(bits.fmask as i32);
        let t_base = nodes.as_ptr().cast::<f64>();
        // The meta word is the last 4 bytes of each 12-byte node.
        let m_base = nodes.as_ptr().cast::<i32>().wrapping_add(2);
        let rows = xs.map(|x| row64(x));
        let mut idx = roots.map(|r| start(r, lastv));
        for _ in 0..depth {
            for c in 0..C {
                // Node `i` is at `12·i` bytes: `3·i` in 4-byte units (below 2^31, `checked`).
                let i3 = _mm256_add_epi32(idx[c], _mm256_add_epi32(idx[c], idx[c]));
                // SAFETY: every index is at most `last`.
                let (m, t) = unsafe {
                    (
                        _mm256_mmask_i32gather_epi32::<4>(_mm256_setzero_si256(), 0xff, i3, m_base),
                        _mm512_i32gather_pd::<4>(i3, t_base),
                    )
                };
                let f = _mm512_cvtepu32_epi64(_mm256_and_si256(m, fmask));
                let (lo, hi) = rows[c % R];
                let v = _mm512_permutex2var_pd(lo, f, hi);
                let left = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(v, t);
                let nan = if NAN {
                    _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(v, v)
                } else {
                    0
                };
                let left = if CAT {
                    category(m, t, v, left, nan, bits)
                } else {
                    left
                };
                idx[c] = next(m, left, nan, bits, lastv);
            }
        }
        finish(idx)
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    #[test]
    fn a_row_is_loaded_to_its_length_and_no_further() {
        use super::x86::halves;
        assert_eq!(halves(0, 16), (0, 0));
        assert_eq!(halves(5, 16), (0b1_1111, 0));
        assert_eq!(halves(16, 16), (0xffff, 0));
        assert_eq!(halves(17, 16), (0xffff, 1));
        assert_eq!(halves(32, 16), (0xffff, 0xffff));
        assert_eq!(halves(40, 16), (0xffff, 0xffff));
        assert_eq!(halves(8, 8), (0xff, 0));
        assert_eq!(halves(12, 8), (0xff, 0xf));
    }
}

#[cfg(not(target_arch = "x86_64"))]
impl<T: Copy> Walk for T {
    const MAX_STRIDE: usize = 0;
    const READS_LEVELS: bool = false;
    const SET_IN_NODE: bool = false;

    fn from_set(_: u64) -> Self {
        unreachable!("thresholds hold set indexes here")
    }
    fn set(self) -> u64 {
        unreachable!("thresholds hold set indexes here")
    }

    fn walk<const NAN: bool, const CAT: bool, const C: usize, const R: usize>(
        _: &[Node<Self>],
        _: [&[u32; 8]; C],
        _: [&[u32; TOP]; C],
        _: usize,
        _: [&[Self]; R],
        _: usize,
        _: Bits,
    ) -> [[u32; 8]; C] {
        unreachable!("the vector walk runs only where `available`")
    }
}
