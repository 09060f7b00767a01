//! One row's grouped walk of [`super::Wide`] for keyed f32 nodes on x86-64 CPUs with AVX2
//! but not AVX-512 (AMD Zen 2 and 3, Intel's before Ice Lake), where the scalar keyed walk
//! ran (`wide_keys.rs`; batches still take it: with AVX2 alone the nodes are loaded one by
//! one, and the step's vector part saves about what moving the indexes and nodes between
//! registers costs, so batches measured no faster; one row gains from the 64 trees in
//! flight).
//!
//! One step of a group's 8 trees: the 8 nodes loaded one by one into two registers and
//! split into thresholds and meta words (`nodes8`, shared with the AVX-512 walk), the
//! features masked out of the meta words, the 8 keys picked from the row's keys held in up
//! to 4 registers (one `vpermps` per register the row takes, blended by the feature's bits
//! 3 and 4: AVX2 has no two-register permute), one unsigned compare (`vpmaxud`,
//! `vpcmpeqd`) into a vector mask, and the child stepped by subtracting the mask (all ones
//! where the tree goes right). The first three steps pick their nodes from the group's
//! top levels ([`Top`], keyed as the nodes are) by blends, as the AVX-512 walk does by
//! masks. The keys are [`super::Prec::row_key`]'s and the nodes' thresholds
//! [`super::Prec::key`]'s (`Wide::set_keys`): `v < t` iff the row's key is below the
//! threshold's, a missing value has the greatest key, a leaf stays put on the phantom key 0.
//!
//! Why it is sound, whatever the nodes hold: every node index is clamped to
//! `nodes.len() - 1` (the roots and each step's result) before a node is loaded; the row
//! is read with masked loads of its own length, and a feature index only selects among
//! registers. The functions with `#[target_feature]` are called only after AVX2 was
//! detected at run time (`super::simd::How::available`). The walk equals the keyed scalar
//! walk bit for bit (the same compare, the same missing-value rule); the tests of
//! `wide_tests.rs` run it against the flat evaluator (on any CPU with AVX2, AVX-512 or
//! not).
#![allow(unsafe_code)]

use super::Node;
use super::row::{Pending, Top};
use super::simd::Bits;
use super::simd::x86::{finish, first_three, lanes, nodes8, start};
use std::arch::x86_64::*;

/// Registers a row of `fmask + 1` values takes (8 values each): 1, 2 or 4.
pub(super) fn registers(fmask: u32) -> usize {
    match fmask {
        0..8 => 1,
        8..16 => 2,
        _ => 4,
    }
}

/// [`walk32`] with its const parameters chosen at run time: `W` from the row's width,
/// `ADD` whether `sums` has leaves waiting.
///
/// # Safety
/// As [`walk32`]'s.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(super) unsafe fn walk<const NAN: bool, const C: usize, const R: usize>(
    nodes: &[Node<f32>],
    roots: [&[u32; 8]; C],
    tops: Option<[&Top<f32>; C]>,
    xs: [&[f32]; R],
    depth: usize,
    bits: Bits,
    last: u32,
    sums: &mut Pending<f32>,
) -> [[u32; 8]; C] {
    macro_rules! go {
        ($w:literal) => {
            // SAFETY: the caller's.
            unsafe {
                if sums.n > 0 {
                    walk32::<NAN, true, $w, C, R>(nodes, roots, tops, xs, depth, bits, last, sums)
                } else {
                    walk32::<NAN, false, $w, C, R>(nodes, roots, tops, xs, depth, bits, last, sums)
                }
            }
        };
    }
    match registers(bits.fmask) {
        1 => go!(1),
        2 => go!(2),
        _ => go!(4),
    }
}

/// A row of up to 32 keys (as f32 bits) in 4 registers, each load masked to the row's
/// length.
#[target_feature(enable = "avx2")]
#[inline]
fn row(x: &[f32]) -> [__m256; 4] {
    let p = x.as_ptr();
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    std::array::from_fn(|k| {
        let n = x.len().saturating_sub(8 * k).min(8) as i32;
        let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
        // SAFETY: a masked load reads only the lanes of its mask: the row's own values.
        unsafe { _mm256_maskload_ps(p.wrapping_add(8 * k), mask) }
    })
}

/// The row's keys at the features `f` (each below `8·W`): one `vpermps` per register,
/// blended by the features' bits 3 and 4 (moved to the sign bit, which `vblendvps` reads).
#[target_feature(enable = "avx2")]
#[inline]
fn pick<const W: usize>(r: &[__m256; 4], f: __m256i) -> __m256 {
    let a = _mm256_permutevar8x32_ps(r[0], f);
    if W == 1 {
        return a;
    }
    let b = _mm256_permutevar8x32_ps(r[1], f);
    let bit3 = _mm256_castsi256_ps(_mm256_slli_epi32::<28>(f));
    let ab = _mm256_blendv_ps(a, b, bit3);
    if W == 2 {
        return ab;
    }
    let c = _mm256_permutevar8x32_ps(r[2], f);
    let d = _mm256_permutevar8x32_ps(r[3], f);
    let cd = _mm256_blendv_ps(c, d, bit3);
    _mm256_blendv_ps(ab, cd, _mm256_castsi256_ps(_mm256_slli_epi32::<27>(f)))
}

/// The next nodes: `child` plus one where the tree goes right (`right`: all ones there,
/// so subtracted), clamped to the last node.
#[target_feature(enable = "avx2")]
#[inline]
fn next(m: __m256i, right: __m256i, shift: __m128i, last: __m256i) -> __m256i {
    let child = _mm256_srl_epi32(m, shift);
    _mm256_min_epu32(_mm256_sub_epi32(child, right), last)
}

/// The walk of keyed 8-byte nodes (the threshold's key bits, or a leaf's value, then the
/// meta word) for `C` chains, as `Walk::walk` says (`wide_simd.rs`), over rows of keys
/// (f32 bits) of at most `8·W` values. `ADD`: `sums` has leaves waiting.
///
/// # Safety
/// AVX2 is available; `last == nodes.len() - 1`, below 2^29; each row holds more than
/// `bits.fmask` values, at most 32, and `bits.fmask` is below `8·W`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
unsafe fn walk32<
    const NAN: bool,
    const ADD: bool,
    const W: usize,
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
    let dl = _mm256_set1_epi32(bits.dl as i32);
    let shift = _mm_cvtsi32_si128(bits.cshift as i32);
    let base = nodes.as_ptr().cast::<i64>();
    let rows = xs.map(|x| row(x));
    let mut idx = roots.map(|r| start(r, lastv));
    // The sum in a local: it stays in a register.
    let mut sum = sums.sum;
    let mut k = 0;
    // Where the nodes `(t, m)` send the row `r`: all ones where right (a number split's
    // `!(v < t)`, true for NaN), but not for a missing value where the node sends those left.
    // Where the nodes `(t, m)` send the row `r`: all ones where right (`!(v < t)` as
    // unsigned keys: `max(v, t) == v`), but not for a missing value (the greatest key)
    // where the node sends those left.
    let right = |(t, m): (__m256, __m256i), r: &[__m256; 4]| {
        let v = _mm256_castps_si256(pick::<W>(r, _mm256_and_si256(m, fmask)));
        let t = _mm256_castps_si256(t);
        let right = _mm256_cmpeq_epi32(_mm256_max_epu32(v, t), v);
        if NAN {
            let nan = _mm256_cmpeq_epi32(v, _mm256_set1_epi32(-1));
            let left = _mm256_cmpeq_epi32(_mm256_and_si256(m, dl), dl);
            _mm256_andnot_si256(_mm256_and_si256(nan, left), right)
        } else {
            right
        }
    };
    let mut done = 0;
    if let Some(tops) = tops {
        idx = first_three(
            tops,
            // SAFETY: a path's thresholds and meta words are 32 bytes each; the loads are
            // unaligned.
            |top: &Top<f32>, p| unsafe {
                (
                    _mm256_loadu_ps(top.t[p].as_ptr()),
                    _mm256_loadu_si256(top.m[p].as_ptr().cast()),
                )
            },
            |a: __m256i, (t1, m1): (__m256, __m256i), (t0, m0)| {
                let a = _mm256_castsi256_ps(a);
                (
                    _mm256_blendv_ps(t0, t1, a),
                    _mm256_castps_si256(_mm256_blendv_ps(
                        _mm256_castsi256_ps(m0),
                        _mm256_castsi256_ps(m1),
                        a,
                    )),
                )
            },
            |n, c| right(n, &rows[c % R]),
            |n| n.1,
            |m, r| next(m, r, shift, lastv),
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
            let (t, m) = unsafe { nodes8(base, lanes(idx[c])) };
            idx[c] = next(m, right((t, m), &rows[c % R]), shift, lastv);
        }
    }
    if ADD {
        sums.sum = sum;
        sums.finish(nodes, k);
    }
    finish(idx)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_row_takes_the_registers_its_features_need() {
        use super::registers;
        assert_eq!(registers(0), 1);
        assert_eq!(registers(7), 1);
        assert_eq!(registers(15), 2);
        assert_eq!(registers(31), 4);
    }
}
