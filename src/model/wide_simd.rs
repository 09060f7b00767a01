//! The grouped walk of [`super::Wide`] with x86-64 AVX-512, and the choice of vector walk
//! (with AVX2 alone: `wide_avx2.rs`). One of the few files of `unsafe` code
//! (`tests/it/architecture.rs` checks that it stays in them; so this file is over 500
//! lines: both fetches of both node precisions live here, and nothing else).
//!
//! One step of a group's 8 trees is a few vector instructions: the 8 nodes (threshold
//! and meta word) fetched into registers, the features masked out of the meta
//! words, the 8 feature values picked from the row held in registers
//! (`vpermt2ps`/`vpermt2pd`: rows of up to 32 f32 or 16 f64 values), one compare into a
//! mask, and the child added; the scalar walk needs ~9 instructions and two loads per
//! tree for the same step. Several chains (rows of a batch, or groups of one row) are
//! walked at once so the fetches' latencies overlap. In batches of f32 nodes, two groups
//! of one depth walk as one of 16 trees in 512-bit registers (`walk32x16`: two gathers or
//! 16 loads, then one permute, compare and child step for the 16 lanes: m2 batch 1.29×
//! faster than the groups walked apart with gathers on a Xeon, 1.42× with loads on an AMD
//! EPYC; in `wide_pair.rs`).
//! The nodes are fetched by one gather (f32: the 8-byte nodes whole; f64: thresholds and
//! meta words) on Intel CPUs, and by 8 loads elsewhere ([`gathers`]): an AMD EPYC (Zen 4)
//! gathers about one element in 2 cycles (gathers there: m2 batch 1.2×, m1 1.3×, m3 2.4×
//! slower than loads), an Intel Xeon (Ice Lake class) faster than it loads them one by one
//! (loads there: m2 batch 1.15×, m1 1.4×, m3 1.3× slower than gathers). Reading a group's
//! top levels whole and picking the nodes by permutes measured slower on the EPYC (m2 one
//! row 1.08×). One row's first three steps load its groups' top levels instead, laid out
//! at load path by path (`wide_row.rs`: 7 loads that do not wait on the row, then picks
//! by blends of its masks; on the Xeon m2 one row 1.08× faster, m1 1.12×, m3 1.05×).
//! A category split of f64 nodes (`CAT`) keeps its set's 64 bits in the threshold: the
//! step shifts the loaded bits by the row's category, in registers (a second load, of the
//! set from a table, doubled the step's latency: m3 one row 1.95× slower).
//!
//! Why it is sound, whatever the nodes hold: every loaded node index is clamped to
//! `nodes.len() - 1` (the roots and each step's result), and the row is read with a masked
//! load of its own length; a feature index only selects among registers. The
//! functions with `#[target_feature]` are called only after AVX-512 F and VL were
//! detected at run time ([`available`]). The walk equals [`super::Wide::walk_group`] bit
//! for bit: the same comparison (`v < t`, false for NaN), the same missing-value rule;
//! the tests of `wide_tests.rs` run both walks against the flat evaluator.
#![allow(unsafe_code)]

use super::Node;
use super::row::{Pending, Top};

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

/// Whether this CPU has AVX2 (the vector walk of f32 nodes without AVX-512:
/// `wide_avx2.rs`).
pub(super) fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// How a vector walk runs: with AVX-512, fetching nodes by gathers or by loads; or with
/// AVX2 alone (f32 nodes, by loads: `wide_avx2.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum How {
    Gather,
    Loads,
    Avx2,
}

impl How {
    /// Whether this CPU can run it.
    pub(super) fn available(self) -> bool {
        match self {
            How::Gather | How::Loads => available(),
            How::Avx2 => avx2(),
        }
    }

    /// How new evaluators of `T` nodes walk: with AVX-512 where the CPU has it (nodes
    /// gathered on Intel's: [`gathers`]), else with AVX2 where `T` has that walk;
    /// `TREESERVE_VECTOR_WALK` (`off`, `gather`, `loads`, `avx2`) chooses among what the
    /// CPU can. `None`: the scalar walk.
    pub(super) fn choose<T: Walk>() -> Option<How> {
        let avx2 = T::AVX2 && avx2();
        match setting() {
            Some("off") => None,
            Some("avx2") if avx2 => Some(How::Avx2),
            _ if available() => Some(if gathers() { How::Gather } else { How::Loads }),
            _ => avx2.then_some(How::Avx2),
        }
    }
}

/// `TREESERVE_VECTOR_WALK` (read once): `off`, `gather`, `loads` or `avx2` (for
/// comparisons and as an escape hatch); anything else chooses by the CPU.
fn setting() -> Option<&'static str> {
    static SET: std::sync::OnceLock<Option<&'static str>> = std::sync::OnceLock::new();
    *SET.get_or_init(|| {
        let v = std::env::var_os("TREESERVE_VECTOR_WALK")?;
        ["off", "gather", "loads", "avx2"]
            .into_iter()
            .find(|s| v == *s)
    })
}

/// Whether new evaluators' vector walks fetch nodes by gathers (else by loads): on Intel
/// CPUs (see the module's comment), unless `TREESERVE_VECTOR_WALK` says `gather` or `loads`.
pub(super) fn gathers() -> bool {
    match setting() {
        Some("gather") => true,
        Some("loads") => false,
        _ => intel(),
    }
}

/// Whether the CPU is Intel's (its CPUID vendor string).
fn intel() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let id = std::arch::x86_64::__cpuid(0);
        [id.ebx, id.edx, id.ecx]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .eq(*b"GenuineIntel")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Node precisions the vector walk knows.
pub(super) trait Walk: Copy + Sized {
    /// The widest row (feature values, the phantom, padding) the walk holds in registers.
    const MAX_STRIDE: usize;
    /// Whether [`How::Avx2`] can walk these nodes (f32).
    const AVX2: bool;
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
    /// returns each chain's 8 leaves. `tops`: each chain's top levels (`roots`' [`Top`]; then
    /// `depth` is at least 3): its first three steps pick nodes from them. Meanwhile adds the leaves `sums` holds to its sum, in
    /// order (one row's previous groups: the chain of adds overlaps the walk). Only where
    /// `how` is [`How::available`] (and for [`How::Avx2`], [`Walk::AVX2`]): the same answers
    /// every way; `NAN`: whether a row may
    /// hold NaN. `CAT`: a node may split on a category set held in its threshold (only where
    /// [`Walk::SET_IN_NODE`]; the row holds categories, see `Wide::encode`).
    #[allow(clippy::too_many_arguments)]
    fn walk<const NAN: bool, const CAT: bool, const C: usize, const R: usize>(
        nodes: &[Node<Self>],
        roots: [&[u32; 8]; C],
        tops: Option<[&Top<Self>; C]>,
        xs: [&[Self]; R],
        depth: usize,
        bits: Bits,
        how: How,
        sums: &mut Pending<Self>,
    ) -> [[u32; 8]; C];

    /// Whether [`Walk::walk_pair`] exists (f32 nodes); it is taken only where nodes are
    /// gathered (on Intel CPUs: see the module's comment).
    const PAIRS: bool = false;

    /// Two groups of `depth` steps walked as one of 16 trees for `C` rows (row `c`:
    /// `xs[c]`): each row's 8 leaves of `roots[0]`, then of `roots[1]`. Only where
    /// [`Walk::PAIRS`] and [`available`].
    fn walk_pair<const NAN: bool, const C: usize>(
        _nodes: &[Node<Self>],
        _roots: [&[u32; 8]; 2],
        _xs: [&[Self]; C],
        _depth: usize,
        _bits: Bits,
        _gather: bool,
    ) -> [[u32; 16]; C] {
        unreachable!("only where Walk::PAIRS")
    }

    /// [`Walk::walk_pair`] for rows of one output each (`xs[c]`, in blocks of 8, the rest
    /// ignored), both groups of 8 trees: adds each row's 16 leaves to its sum (`sums[c]`),
    /// in tree order.
    fn walk_pair_sum<const NAN: bool>(
        _nodes: &[Node<Self>],
        _roots: [&[u32; 8]; 2],
        _xs: &[&[Self]],
        _depth: usize,
        _bits: Bits,
        _gather: bool,
        _sums: &mut [Self],
    ) {
        unreachable!("only where Walk::PAIRS")
    }
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

/// Checks what the walk relies on (`how`: the walk, its CPU features); the last node's
/// index, or `None` if it cannot run.
fn checked<T: Walk>(nodes: &[Node<T>], xs: &[&[T]], bits: Bits, how: How) -> Option<u32> {
    // Node indexes travel in 32-bit lanes, and as gather offsets (signed, 3 per f64 node).
    let last = u32::try_from(nodes.len().checked_sub(1)?)
        .ok()
        .filter(|&l| l < 1 << 29)?;
    let rows = xs
        .iter()
        .all(|x| (bits.fmask as usize) < x.len() && x.len() <= T::MAX_STRIDE);
    let cpu = how.available() && (how != How::Avx2 || T::AVX2);
    (cpu && rows && bits.cshift < 32).then_some(last)
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use super::super::avx2;
    use super::super::pair::{walk32x16, walk32x16_sum};
    use super::{Bits, How, Node, Pending, Top, Walk, checked};
    use std::arch::x86_64::*;

    /// Calls a walk with its `G` (fetch by gathers) and `ADD` (leaves waiting) chosen at run
    /// time, the first const parameters given and `C`, `R` last.
    macro_rules! pick {
        ($walk:ident::<$($p:ident),*>($g:expr, $add:expr)($($arg:expr),*)) => {
            match ($g, $add) {
                (true, true) => $walk::<$($p,)* true, true, C, R>($($arg),*),
                (true, false) => $walk::<$($p,)* true, false, C, R>($($arg),*),
                (false, true) => $walk::<$($p,)* false, true, C, R>($($arg),*),
                (false, false) => $walk::<$($p,)* false, false, C, R>($($arg),*),
            }
        };
    }

    impl Walk for f32 {
        const AVX2: bool = true;
        const MAX_STRIDE: usize = 32;
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
            tops: Option<[&Top<f32>; C]>,
            xs: [&[f32]; R],
            depth: usize,
            bits: Bits,
            how: How,
            sums: &mut Pending<Self>,
        ) -> [[u32; 8]; C] {
            assert!(!CAT, "f32 category splits take the scalar walk");
            let last = checked(nodes, &xs, bits, how).expect("the vector walk's conditions");
            if how == How::Avx2 {
                // SAFETY: AVX2 is available, `last` is the last node, each row holds more
                // than `fmask` values and at most 32 (`checked`); see `wide_avx2.rs`.
                return unsafe {
                    avx2::walk::<NAN, C, R>(nodes, roots, tops, xs, depth, bits, last, sums)
                };
            }
            // SAFETY: AVX-512 F and VL are available, `last` is the last node (`checked`);
            // see the module's comment.
            unsafe {
                pick!(walk32::<NAN>(how == How::Gather, sums.n > 0)(
                    nodes, roots, tops, xs, depth, bits, last, sums
                ))
            }
        }

        const PAIRS: bool = true;

        #[inline]
        fn walk_pair<const NAN: bool, const C: usize>(
            nodes: &[Node<f32>],
            roots: [&[u32; 8]; 2],
            xs: [&[f32]; C],
            depth: usize,
            bits: Bits,
            gather: bool,
        ) -> [[u32; 16]; C] {
            let how = if gather { How::Gather } else { How::Loads };
            let last = checked(nodes, &xs, bits, how).expect("the vector walk's conditions");
            // SAFETY: as for `walk`.
            unsafe { walk32x16::<NAN, C>(nodes, roots, xs, depth, bits, last, gather) }
        }

        #[inline]
        fn walk_pair_sum<const NAN: bool>(
            nodes: &[Node<f32>],
            roots: [&[u32; 8]; 2],
            xs: &[&[f32]],
            depth: usize,
            bits: Bits,
            gather: bool,
            sums: &mut [f32],
        ) {
            assert_eq!(xs.len(), sums.len(), "a sum per row");
            let how = if gather { How::Gather } else { How::Loads };
            let last = checked(nodes, xs, bits, how).expect("the vector walk's conditions");
            // SAFETY: as for `walk`.
            unsafe { walk32x16_sum::<NAN>(nodes, roots, xs, depth, bits, last, gather, sums) }
        }
    }

    impl Walk for f64 {
        const AVX2: bool = false;
        const MAX_STRIDE: usize = 16;
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
            tops: Option<[&Top<f64>; C]>,
            xs: [&[f64]; R],
            depth: usize,
            bits: Bits,
            how: How,
            sums: &mut Pending<Self>,
        ) -> [[u32; 8]; C] {
            let last = checked(nodes, &xs, bits, how).expect("the vector walk's conditions");
            // SAFETY: as for f32 (`checked` refuses `How::Avx2` for f64 nodes).
            unsafe {
                pick!(walk64::<NAN, CAT>(how == How::Gather, sums.n > 0)(
                    nodes, roots, tops, xs, depth, bits, last, sums
                ))
            }
        }
    }

    /// 8 roots, clamped to the last node.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(in crate::model::wide) fn start(roots: &[u32; 8], last: __m256i) -> __m256i {
        // SAFETY: `roots` is 32 bytes; the load is unaligned.
        _mm256_min_epu32(unsafe { _mm256_loadu_si256(roots.as_ptr().cast()) }, last)
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    pub(in crate::model::wide) fn finish<const C: usize>(idx: [__m256i; C]) -> [[u32; 8]; C] {
        let mut out = [[0u32; 8]; C];
        for (o, i) in out.iter_mut().zip(idx) {
            // SAFETY: `o` is 32 bytes; the store is unaligned.
            unsafe { _mm256_storeu_si256(o.as_mut_ptr().cast(), i) };
        }
        out
    }

    /// 8 node indexes, to load the nodes one by one (faster than a gather on AMD: see the
    /// module's comment); taken out of the register as four 64-bit pairs (4 moves to the
    /// integer registers instead of 8 `vpextrd`: m2 batch 3% faster).
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(in crate::model::wide) fn lanes(idx: __m256i) -> [usize; 8] {
        let (lo, hi) = (
            _mm256_castsi256_si128(idx),
            _mm256_extracti128_si256::<1>(idx),
        );
        let q = [
            _mm_cvtsi128_si64(lo),
            _mm_extract_epi64::<1>(lo),
            _mm_cvtsi128_si64(hi),
            _mm_extract_epi64::<1>(hi),
        ]
        .map(|q| q as u64);
        std::array::from_fn(|j| (q[j / 2] >> (32 * (j % 2))) as u32 as usize)
    }

    /// The next nodes: `child`, plus one where the tree goes right (`right`: see
    /// [`rightward`]), clamped to the last node. One masked add and one clamp (an add, a
    /// select and a clamp before: m2 one row and batch, see docs/benchmarks.md).
    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    fn next(m: __m256i, right: __mmask8, bits: Bits, last: __m256i) -> __m256i {
        let child = _mm256_srl_epi32(m, _mm_cvtsi32_si128(bits.cshift as i32));
        _mm256_min_epu32(
            _mm256_mask_add_epi32(child, right, child, _mm256_set1_epi32(1)),
            last,
        )
    }

    /// Each chain's first three steps over its group's top levels (`tops[c]`, a [`Top`]:
    /// `at(top, p)` the nodes along path `p`): the level-2 nodes the row reaches, picked by
    /// its masks (`right(nodes, c)`), and the nodes they send it to (`next(meta words,
    /// mask)`). `add` runs three times before each chain's steps (as the steps' own adds).
    #[inline(always)]
    pub(in crate::model::wide) fn first_three<P, N: Copy, K: Copy, const C: usize>(
        tops: [&P; C],
        at: impl Fn(&P, usize) -> N,
        pick: impl Fn(K, N, N) -> N,
        right: impl Fn(N, usize) -> K,
        meta: impl Fn(N) -> __m256i,
        next: impl Fn(__m256i, K) -> __m256i,
        mut add: impl FnMut(),
    ) -> [__m256i; C] {
        std::array::from_fn(|c| {
            (0..3).for_each(|_| add());
            let at = |p| at(tops[c], p);
            let a = right(at(0), c);
            let n1 = pick(a, at(2), at(1));
            let b = right(n1, c);
            let n2 = pick(a, pick(b, at(6), at(5)), pick(b, at(4), at(3)));
            next(meta(n2), right(n2, c))
        })
    }

    /// Where the nodes `m` send the row right: `right` (where the split does not send the
    /// row left: a number split's `!(v < t)`, one compare, true for NaN), but not for a
    /// missing value (`nan`) where the node sends those left.
    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    fn rightward(m: __m256i, right: __mmask8, nan: __mmask8, bits: Bits) -> __mmask8 {
        right & !(nan & _mm256_test_epi32_mask(m, _mm256_set1_epi32(bits.dl as i32)))
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
    pub(in crate::model::wide) fn row32(x: &[f32]) -> (__m512, __m512) {
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

    /// The thresholds and meta words of the 8-byte nodes `i` (each a threshold then a meta
    /// word): two registers of 4 nodes (lanes 0, 1, 4, 5 and 2, 3, 6, 7) split by two
    /// `vshufps` into lane order (one 512-bit register split by `vpmovqd` took 9 shuffles
    /// to assemble and 3 to split: on the AMD EPYC shuffles share two ports).
    ///
    /// # Safety
    /// Every index addresses a node.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(in crate::model::wide) unsafe fn nodes8(
        base: *const i64,
        i: [usize; 8],
    ) -> (__m256, __m256i) {
        // SAFETY: the caller's.
        unsafe {
            // Each node's 8 bytes read as an f64's bits (moved, never computed with: they
            // arrive unchanged), so that two loads pair up in one `vmovsd` + `vmovhps`.
            let n = |j: usize| base.add(i[j]).cast::<f64>().read_unaligned();
            let a = _mm256_castpd_ps(_mm256_setr_pd(n(0), n(1), n(4), n(5)));
            let b = _mm256_castpd_ps(_mm256_setr_pd(n(2), n(3), n(6), n(7)));
            (
                _mm256_shuffle_ps::<0x88>(a, b),
                _mm256_castps_si256(_mm256_shuffle_ps::<0xdd>(a, b)),
            )
        }
    }

    /// 8-byte nodes: the f32 threshold, then the meta word. `G`: fetched by gathers; `ADD`:
    /// `sums` has leaves waiting.
    ///
    /// # Safety
    /// AVX-512 F and VL are available; `last == nodes.len() - 1`, below 2^29; each row holds
    /// more than `bits.fmask` values.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512vl")]
    unsafe fn walk32<
        const NAN: bool,
        const G: bool,
        const ADD: bool,
        const C: usize,
        const R: usize,
    >(
        nodes: &[Node<f32>],
        roots: [&[u32; 8]; C],
        tops: Option<[&Top<f32>; C]>,
        xs: [&[f32]; R],
        depth: usize,
        bits: Bits,
        last: u32,
        sums: &mut Pending<f32>,
    ) -> [[u32; 8]; C] {
        let lastv = _mm256_set1_epi32(last as i32);
        let fmask = _mm256_set1_epi32(bits.fmask as i32);
        let base = nodes.as_ptr().cast::<i64>();
        let rows = xs.map(|x| row32(x));
        let mut idx = roots.map(|r| start(r, lastv));
        // The sum in a local: it stays in a register.
        let mut sum = sums.sum;
        let mut k = 0;
        // Where the nodes `(t, m)` send the row `(lo, hi)`.
        let right = |(t, m): (__m256, __m256i), (lo, hi): (__m512, __m512)| {
            let f = _mm512_castsi256_si512(_mm256_and_si256(m, fmask));
            let v = _mm512_castps512_ps256(_mm512_permutex2var_ps(lo, f, hi));
            let right = _mm256_cmp_ps_mask::<_CMP_NLT_UQ>(v, t);
            if NAN {
                rightward(m, right, _mm256_cmp_ps_mask::<_CMP_UNORD_Q>(v, v), bits)
            } else {
                right
            }
        };
        let mut done = 0;
        if let Some(tops) = tops {
            idx = first_three(
                tops,
                // SAFETY: a path's thresholds and meta words are 32 bytes each; the loads
                // are unaligned.
                |top: &Top<f32>, p| unsafe {
                    (
                        _mm256_loadu_ps(top.t[p].as_ptr()),
                        _mm256_loadu_si256(top.m[p].as_ptr().cast()),
                    )
                },
                |a, (t1, m1), (t0, m0)| {
                    (
                        _mm256_mask_mov_ps(t0, a, t1),
                        _mm256_mask_mov_epi32(m0, a, m1),
                    )
                },
                |n, c| right(n, rows[c % R]),
                |n| n.1,
                |m, r| next(m, r, bits, lastv),
                || {
                    if ADD {
                        sums.add(nodes, k, &mut sum);
                        k += 1;
                    }
                },
            );
            done = 3;
        }
        for _ in done..depth {
            for c in 0..C {
                if ADD {
                    sums.add(nodes, k, &mut sum);
                    k += 1;
                }
                // SAFETY: every index is at most `last`: node `i` is the 8 bytes at `8·i`.
                let (t, m) = unsafe {
                    if G {
                        let n = _mm512_i32gather_epi64::<8>(idx[c], base);
                        (
                            _mm256_castsi256_ps(_mm512_cvtepi64_epi32(n)),
                            _mm512_cvtepi64_epi32(_mm512_srli_epi64::<32>(n)),
                        )
                    } else {
                        nodes8(base, lanes(idx[c]))
                    }
                };
                idx[c] = next(m, right((t, m), rows[c % R]), bits, lastv);
            }
        }
        if ADD {
            sums.sum = sum;
            sums.finish(nodes, k);
        }
        finish(idx)
    }

    /// 12-byte nodes: the f64 threshold, then the meta word. `G`, `ADD`: as [`walk32`]'s.
    ///
    /// # Safety
    /// As [`walk32`].
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512vl")]
    unsafe fn walk64<
        const NAN: bool,
        const CAT: bool,
        const G: bool,
        const ADD: bool,
        const C: usize,
        const R: usize,
    >(
        nodes: &[Node<f64>],
        roots: [&[u32; 8]; C],
        tops: Option<[&Top<f64>; C]>,
        xs: [&[f64]; R],
        depth: usize,
        bits: Bits,
        last: u32,
        sums: &mut Pending<f64>,
    ) -> [[u32; 8]; C] {
        let lastv = _mm256_set1_epi32(last as i32);
        let fmask = _mm256_set1_epi32(bits.fmask as i32);
        let base = nodes.as_ptr();
        let rows = xs.map(|x| row64(x));
        let mut idx = roots.map(|r| start(r, lastv));
        // The sum in a local: it stays in a register.
        let mut sum = sums.sum;
        let mut k = 0;
        // Where the nodes `(t, m)` send the row `(lo, hi)`.
        let right = |(t, m): (__m512d, __m256i), (lo, hi): (__m512d, __m512d)| {
            let f = _mm512_cvtepu32_epi64(_mm256_and_si256(m, fmask));
            let v = _mm512_permutex2var_pd(lo, f, hi);
            let nan = if NAN {
                _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(v, v)
            } else {
                0
            };
            let right = if CAT {
                let left = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(v, t);
                !category(m, t, v, left, nan, bits)
            } else {
                _mm512_cmp_pd_mask::<_CMP_NLT_UQ>(v, t)
            };
            rightward(m, right, nan, bits)
        };
        let mut done = 0;
        if let Some(tops) = tops {
            idx = first_three(
                tops,
                // SAFETY: a path's 8 thresholds are 64 bytes, its meta words 32; the loads
                // are unaligned.
                |top: &Top<f64>, p| unsafe {
                    (
                        _mm512_loadu_pd(top.t[p].as_ptr()),
                        _mm256_loadu_si256(top.m[p].as_ptr().cast()),
                    )
                },
                |a, (t1, m1), (t0, m0)| {
                    (
                        _mm512_mask_mov_pd(t0, a, t1),
                        _mm256_mask_mov_epi32(m0, a, m1),
                    )
                },
                |n, c| right(n, rows[c % R]),
                |n| n.1,
                |m, r| next(m, r, bits, lastv),
                || {
                    if ADD {
                        sums.add(nodes, k, &mut sum);
                        k += 1;
                    }
                },
            );
            done = 3;
        }
        for _ in done..depth {
            for c in 0..C {
                if ADD {
                    sums.add(nodes, k, &mut sum);
                    k += 1;
                }
                let (t, m) = if G {
                    // Node `i` is at `12·i` bytes: `3·i` in 4-byte units (below 2^31).
                    let i3 = _mm256_add_epi32(idx[c], _mm256_add_epi32(idx[c], idx[c]));
                    // SAFETY: every index is at most `last`; the meta word is the last 4
                    // bytes of a node.
                    unsafe {
                        (
                            _mm512_i32gather_pd::<4>(i3, base.cast()),
                            _mm256_mmask_i32gather_epi32::<4>(
                                _mm256_setzero_si256(),
                                0xff,
                                i3,
                                base.cast::<i32>().wrapping_add(2),
                            ),
                        )
                    }
                } else {
                    // SAFETY: every index is at most `last`.
                    let n = lanes(idx[c]).map(|i| unsafe { *base.add(i) });
                    let [t, m] = [n.map(|n| n.t), n.map(|n| f64::from_bits(n.m.into()))];
                    let t = _mm512_set_pd(t[7], t[6], t[5], t[4], t[3], t[2], t[1], t[0]);
                    let m = _mm512_cvtepi64_epi32(_mm512_castpd_si512(_mm512_set_pd(
                        m[7], m[6], m[5], m[4], m[3], m[2], m[1], m[0],
                    )));
                    (t, m)
                };
                idx[c] = next(m, right((t, m), rows[c % R]), bits, lastv);
            }
        }
        if ADD {
            sums.sum = sum;
            sums.finish(nodes, k);
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
    const AVX2: bool = false;
    const MAX_STRIDE: usize = 0;
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
        _: Option<[&Top<Self>; C]>,
        _: [&[Self]; R],
        _: usize,
        _: Bits,
        _: How,
        _: &mut Pending<Self>,
    ) -> [[u32; 8]; C] {
        unreachable!("the vector walk runs only where `available`")
    }
}
