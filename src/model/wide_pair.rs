//! The paired walk of [`super::Wide`] with x86-64 AVX-512 (with `wide_simd.rs`, the
//! crate's only `unsafe` code: `tests/it/architecture.rs`): in batches of f32 nodes
//! (XGBoost models), two groups of one depth walk as one group of 16 trees in 512-bit
//! registers, 8 rows at once. A step is two gathers (or, where nodes are loaded: AMD, 16
//! loads; m2 batch 1.42× faster there than the groups walked apart), two permutes that
//! split the 16 nodes into thresholds and meta words, then one feature permute, one
//! compare and one child step for the 16 lanes (two groups walked apart take two of each,
//! and twice the splits: m2 batch 1.29× faster). The top three levels are the same nodes
//! for every row: fetched once for a block of rows, a row's first step takes no fetch and
//! its next two pick their nodes from registers by its earlier steps' masks (m2 batch 1.1×
//! faster than three steps' gathers; four levels picked by 14 blends were 1.17× slower).
//! Where rows have one output, the walk adds the leaves too: a row's 16 leaf values are one
//! gather, and 8 rows' registers are transposed so that each tree's 8 leaves are one
//! 256-bit add to the 8 sums, in tree order (the leaves one by one took two loads, a bounds
//! check and a scalar add each: m2 batch 1.2× faster).
//!
//! Why it is sound, whatever the nodes hold: every node index is clamped to
//! `nodes.len() - 1` (the roots and each step's children) before it is gathered, leaf
//! values included; rows are read by `row32`'s masked loads of their own length; a
//! feature index only selects among registers; the sums are read and written as slices
//! of 8. The functions with `#[target_feature]` are called only after AVX-512 F and VL
//! were detected at run time (`super::simd::available`). The walk equals the scalar one
//! bit for bit: the same comparison (`v < t`, false for NaN), the same missing-value
//! rule, and each row's leaves added in tree order (`wide_tests.rs` checks every walk
//! against the flat evaluator).
#![allow(unsafe_code)]

use super::Node;
use super::simd::Bits;
use super::simd::x86::{lanes, nodes8, row32, start};
use std::arch::x86_64::*;

/// A pair's walk (see [`walk32x16`]): the step's constants, the roots, and the nodes
/// of the top three levels, the same for every row (where the depth is at least 3).
#[derive(Clone, Copy)]
struct Pair16 {
    fmask: __m512i,
    dl: __m512i,
    shift: __m128i,
    one: __m512i,
    last: __m512i,
    even: __m512i,
    odd: __m512i,
    base: *const i64,
    /// Nodes fetched by gathers, else by loads (`super::simd::gathers`).
    gather: bool,
    roots: __m512i,
    /// Level 0; level 1 left, right; level 2 left-left, left-right, right-left,
    /// right-right: thresholds and meta words.
    top: Option<[(__m512, __m512i); 7]>,
}

impl Pair16 {
    /// The constants, and the top levels fetched (two gathers a level's 16 nodes).
    ///
    /// # Safety
    /// As `walk32`'s (`super::simd`): AVX-512 F and VL are available; `last == nodes.len() - 1`,
    /// below 2^29; each row holds more than `bits.fmask` values.
    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    unsafe fn new(
        nodes: &[Node<f32>],
        roots: [&[u32; 8]; 2],
        depth: usize,
        bits: Bits,
        last: u32,
        gather: bool,
    ) -> Self {
        let one = _mm512_set1_epi32(1);
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let last8 = _mm256_set1_epi32(last as i32);
        let mut p = Pair16 {
            fmask: _mm512_set1_epi32(bits.fmask as i32),
            dl: _mm512_set1_epi32(bits.dl as i32),
            shift: _mm_cvtsi32_si128(bits.cshift as i32),
            one,
            last: _mm512_set1_epi32(last as i32),
            even,
            odd: _mm512_add_epi32(even, one),
            base: nodes.as_ptr().cast::<i64>(),
            gather,
            roots: _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(start(roots[0], last8)),
                start(roots[1], last8),
            ),
            top: None,
        };
        if depth >= 3 {
            // SAFETY: every index is at most `last` (`start` and `children` clamp).
            unsafe {
                let n0 = p.nodes(p.roots);
                let (l, r) = p.children(n0.1);
                let (nl, nr) = (p.nodes(l), p.nodes(r));
                let (ll, lr) = p.children(nl.1);
                let (rl, rr) = p.children(nr.1);
                p.top = Some([
                    n0,
                    nl,
                    nr,
                    p.nodes(ll),
                    p.nodes(lr),
                    p.nodes(rl),
                    p.nodes(rr),
                ]);
            }
        }
        p
    }

    /// The thresholds and meta words of the 16 nodes `i`: two gathers of 8 nodes, split by
    /// two permutes; or, loaded, two halves of 8 put together (`nodes8`).
    ///
    /// # Safety
    /// Every index addresses a node.
    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    unsafe fn nodes(&self, i: __m512i) -> (__m512, __m512i) {
        let (lo, hi) = (_mm512_castsi512_si256(i), _mm512_extracti64x4_epi64::<1>(i));
        if !self.gather {
            // SAFETY: the caller's.
            let ((t0, m0), (t1, m1)) =
                unsafe { (nodes8(self.base, lanes(lo)), nodes8(self.base, lanes(hi))) };
            let t = _mm512_insertf64x4::<1>(
                _mm512_castpd256_pd512(_mm256_castps_pd(t0)),
                _mm256_castps_pd(t1),
            );
            return (
                _mm512_castpd_ps(t),
                _mm512_inserti64x4::<1>(_mm512_castsi256_si512(m0), m1),
            );
        }
        // SAFETY: the caller's.
        let (n0, n1) = unsafe {
            (
                _mm512_i32gather_epi64::<8>(lo, self.base),
                _mm512_i32gather_epi64::<8>(hi, self.base),
            )
        };
        (
            _mm512_castsi512_ps(_mm512_permutex2var_epi32(n0, self.even, n1)),
            _mm512_permutex2var_epi32(n0, self.odd, n1),
        )
    }

    /// Where the 16 nodes (thresholds `t`, meta words `m`) send the row `(lo, hi)` right:
    /// one compare, `!(v < t)` (true for NaN), then cleared where a missing value goes
    /// left. Exactly the complement of "left" (`v < t`, or missing and going left).
    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    fn right<const NAN: bool>(
        &self,
        (t, m): (__m512, __m512i),
        (lo, hi): (__m512, __m512),
    ) -> __mmask16 {
        let v = _mm512_permutex2var_ps(lo, _mm512_and_si512(m, self.fmask), hi);
        let mut right = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(v, t);
        if NAN {
            right &=
                !(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v) & _mm512_test_epi32_mask(m, self.dl));
        }
        right
    }

    /// The 16 nodes' children: left and right, each clamped to the last node.
    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    fn children(&self, m: __m512i) -> (__m512i, __m512i) {
        let child = _mm512_srl_epi32(m, self.shift);
        (
            _mm512_min_epu32(child, self.last),
            _mm512_min_epu32(_mm512_add_epi32(child, self.one), self.last),
        )
    }

    /// The next nodes after `n` for the row `row`: the left child, plus one where the row
    /// goes right ([`Self::right`]), clamped to the last node: one add under that mask and
    /// one clamp instead of two clamps, an add and a select (m2 batch: see
    /// docs/benchmarks.md).
    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    fn step<const NAN: bool>(&self, n: (__m512, __m512i), row: (__m512, __m512)) -> __m512i {
        let right = self.right::<NAN>(n, row);
        let child = _mm512_srl_epi32(n.1, self.shift);
        _mm512_min_epu32(
            _mm512_mask_add_epi32(child, right, child, self.one),
            self.last,
        )
    }

    /// The leaves of `C` rows: with the top levels, a row's first step takes no
    /// fetch and its next two pick their nodes from registers by its earlier steps'
    /// masks (m2 batch 1.1× faster than three steps' gathers).
    ///
    /// # Safety
    /// Each row holds more than `fmask` values.
    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    unsafe fn walk<const NAN: bool, const C: usize>(
        &self,
        xs: [&[f32]; C],
        depth: usize,
    ) -> [__m512i; C] {
        let rows = xs.map(|x| row32(x));
        let mut idx = [self.roots; C];
        let mut done = 0;
        if let Some([n0, nl, nr, nll, nlr, nrl, nrr]) = self.top {
            let pick = |a: __mmask16, (t1, m1): (__m512, __m512i), (t0, m0): (__m512, __m512i)| {
                (
                    _mm512_mask_mov_ps(t0, a, t1),
                    _mm512_mask_mov_epi32(m0, a, m1),
                )
            };
            for c in 0..C {
                let a = self.right::<NAN>(n0, rows[c]);
                let n1 = pick(a, nr, nl);
                let b = self.right::<NAN>(n1, rows[c]);
                let n2 = pick(a, pick(b, nrr, nrl), pick(b, nlr, nll));
                idx[c] = self.step::<NAN>(n2, rows[c]);
            }
            done = 3;
        }
        for _ in done..depth {
            for c in 0..C {
                // SAFETY: every index is at most `last`.
                let n = unsafe { self.nodes(idx[c]) };
                idx[c] = self.step::<NAN>(n, rows[c]);
            }
        }
        idx
    }
}

/// Two groups' 16 trees in one 512-bit register of node indexes, for `C` rows: per
/// step two gathers (or 16 loads), and one permute, compare and child for the 16 lanes
/// (two groups walked apart take two of each, and the splits of the nodes into thresholds
/// and meta words twice as many shuffles).
///
/// # Safety
/// As `walk32`'s (`super::simd`): AVX-512 F and VL are available; `last == nodes.len() - 1`,
/// below 2^29; each row holds more than `bits.fmask` values.
#[target_feature(enable = "avx512f,avx512vl")]
pub(super) unsafe fn walk32x16<const NAN: bool, const C: usize>(
    nodes: &[Node<f32>],
    roots: [&[u32; 8]; 2],
    xs: [&[f32]; C],
    depth: usize,
    bits: Bits,
    last: u32,
    gather: bool,
) -> [[u32; 16]; C] {
    // SAFETY: the caller's.
    let pair = unsafe { Pair16::new(nodes, roots, depth, bits, last, gather) };
    // SAFETY: the caller's.
    let idx = unsafe { pair.walk::<NAN, C>(xs, depth) };
    let mut out = [[0u32; 16]; C];
    for (o, i) in out.iter_mut().zip(idx) {
        // SAFETY: `o` is 64 bytes; the store is unaligned.
        unsafe { _mm512_storeu_si512(o.as_mut_ptr().cast(), i) };
    }
    out
}

/// [`walk32x16`] for rows of one output, in blocks of 8, the top levels fetched once:
/// each row's 16 leaves added to its sum (`sums`) in tree order. A row's 16 leaf
/// values are one gather; the 8 rows' registers are transposed (16 shuffles, then 8
/// permutes pairing rows 0–3 with 4–7) so that each tree's 8 leaves are one 256-bit add
/// to the 8 sums (the leaves one by one took two loads, a bounds check and a scalar
/// add each: m2 batch 1.1× faster).
///
/// # Safety
/// As `walk32`'s (`super::simd`): AVX-512 F and VL are available; `last == nodes.len() - 1`,
/// below 2^29; each row holds more than `bits.fmask` values.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512vl")]
pub(super) unsafe fn walk32x16_sum<const NAN: bool>(
    nodes: &[Node<f32>],
    roots: [&[u32; 8]; 2],
    xs: &[&[f32]],
    depth: usize,
    bits: Bits,
    last: u32,
    gather: bool,
    sums: &mut [f32],
) {
    // SAFETY: the caller's.
    let p = unsafe { Pair16::new(nodes, roots, depth, bits, last, gather) };
    let base = nodes.as_ptr().cast::<f32>();
    let pick = [
        _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23),
        _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31),
    ];
    let (blocks, _) = xs.as_chunks::<8>();
    let (outs, _) = sums.as_chunks_mut::<8>();
    for (x, out) in blocks.iter().zip(outs) {
        // SAFETY: the caller's.
        let idx = unsafe { p.walk::<NAN, 8>(*x, depth) };
        // SAFETY: every index is at most `last` (clamped): a node's threshold is the 4
        // bytes at `8·i`.
        let v = idx.map(|i| unsafe { _mm512_i32gather_ps::<8>(i, base) });
        // Within each 128-bit lane k: `u[a]` holds rows 0–3 of column 4k + a, `u[4 + a]`
        // rows 4–7.
        let lo = |a, b| _mm512_unpacklo_ps(a, b);
        let hi = |a, b| _mm512_unpackhi_ps(a, b);
        let t = [
            lo(v[0], v[1]),
            hi(v[0], v[1]),
            lo(v[2], v[3]),
            hi(v[2], v[3]),
            lo(v[4], v[5]),
            hi(v[4], v[5]),
            lo(v[6], v[7]),
            hi(v[6], v[7]),
        ];
        let u = [
            _mm512_shuffle_ps::<0x44>(t[0], t[2]),
            _mm512_shuffle_ps::<0xee>(t[0], t[2]),
            _mm512_shuffle_ps::<0x44>(t[1], t[3]),
            _mm512_shuffle_ps::<0xee>(t[1], t[3]),
            _mm512_shuffle_ps::<0x44>(t[4], t[6]),
            _mm512_shuffle_ps::<0xee>(t[4], t[6]),
            _mm512_shuffle_ps::<0x44>(t[5], t[7]),
            _mm512_shuffle_ps::<0xee>(t[5], t[7]),
        ];
        // `w[h][a]`: rows 0–7 of column 8h + a (low half) and of 8h + 4 + a (high half).
        let w = pick
            .map(|q| std::array::from_fn::<_, 4, _>(|a| _mm512_permutex2var_ps(u[a], q, u[4 + a])));
        // SAFETY: `out` is 32 bytes; the load and store are unaligned.
        let mut s = unsafe { _mm256_loadu_ps(out.as_ptr()) };
        for h in w {
            for &c in &h {
                s = _mm256_add_ps(s, _mm512_castps512_ps256(c));
            }
            for &c in &h {
                let high = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(c));
                s = _mm256_add_ps(s, _mm256_castpd_ps(high));
            }
        }
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
    }
}
