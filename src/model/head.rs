//! The model-level rules an evaluator shares: the row pre-pass (f32 rounding, zero snap,
//! zero-as-missing), the sum's start and end (base, mean) in the model's precision, and
//! the answer (decision, output cast, transform). [`super::flat`] and [`super::wide`]
//! differ only in how they find the leaves.

use std::fmt::Debug;
use std::ops::{AddAssign, DivAssign};

use super::ensemble::{
    Aggregation, BasePlacement, CategoryRule, Ensemble, EnsembleError, EnsembleLimits, OutputKind,
    Precision, Transform,
};

/// LightGBM's `kZeroThreshold`: `1e-35f` as a double.
const ZERO_THRESHOLD: f64 = 1e-35_f32 as f64;

/// The arithmetic of a model: f32 (XGBoost) or f64 (LightGBM, ONNX double).
pub(super) trait Prec: Copy + Default + Debug + PartialOrd + AddAssign + DivAssign {
    /// The value in this precision (`as`: exact for values of this precision).
    fn of(v: f64) -> Self;
    /// The value as f64 (exact).
    fn f64(self) -> f64;
    /// Whether the value is NaN.
    fn nan(self) -> bool;
    /// The least value of this precision at or above `v`: for every `x` of this
    /// precision, `x < v` iff `x < Self::up(v)`.
    fn up(v: f64) -> Self;
    /// The low bits of an integer value in `[0, 2^22)` without a conversion (the
    /// mantissa after adding 1.5·2^23 or 1.5·2^52); other values give any bits.
    fn low(self) -> u32;
    /// The value's bits as an unsigned integer in the values' order: for `a`, `b` not NaN,
    /// `a < b` iff `a.key() < b.key()`, except that -0.0 is below +0.0.
    fn key(self) -> Self::Key;
    /// A row value's key: -0.0 as +0.0 (then `v < t` iff `v.row_key() < t.key()` for any
    /// threshold `t` not NaN), NaN as the greatest key (below no threshold's).
    #[inline(always)]
    fn row_key(self) -> Self::Key {
        if self.nan() {
            Self::Key::MAX
        } else {
            let mut zero = self;
            zero += Self::default();
            zero.key()
        }
    }
    /// The value of key `k`: `Self::unkey(v.key())` is `v`, bit for bit.
    fn unkey(k: Self::Key) -> Self;
    /// The value's bits, unchanged (a threshold that holds its key, `Wide::set_keys`).
    fn bits(self) -> Self::Key;
    /// The value of these bits.
    fn from_bits(k: Self::Key) -> Self;
    /// Keys: `u32` for f32, `u64` for f64.
    type Key: KeyBits;
}

/// An unsigned integer a value's bits are compared as ([`Prec::key`]).
pub(super) trait KeyBits: Copy + Default + Debug + Ord {
    /// The greatest: a missing value's.
    const MAX: Self;
    /// A small integer's key (a row's category, below 64).
    fn of_small(c: u32) -> Self;
    /// The low 6 bits (a row's category, or 63 for [`KeyBits::MAX`]).
    fn low6(self) -> u32;
}

impl KeyBits for u32 {
    const MAX: Self = u32::MAX;
    #[inline(always)]
    fn of_small(c: u32) -> Self {
        c
    }
    #[inline(always)]
    fn low6(self) -> u32 {
        self & 63
    }
}

impl KeyBits for u64 {
    const MAX: Self = u64::MAX;
    #[inline(always)]
    fn of_small(c: u32) -> Self {
        c.into()
    }
    #[inline(always)]
    fn low6(self) -> u32 {
        self as u32 & 63
    }
}

impl Prec for f32 {
    #[inline]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn nan(self) -> bool {
        self.is_nan()
    }
    fn up(v: f64) -> Self {
        let r = v as f32;
        if (r as f64) < v { r.next_up() } else { r }
    }
    #[inline(always)]
    fn low(self) -> u32 {
        (self + 12582912.0).to_bits()
    }
    type Key = u32;
    #[inline(always)]
    fn key(self) -> u32 {
        // Negative values' bits all flipped (their order reversed), others' sign bit set.
        let b = self.to_bits();
        b ^ (((b as i32) >> 31) as u32 | 1 << 31)
    }
    fn unkey(k: u32) -> Self {
        // A key's top bit is set where the value's sign bit was clear.
        f32::from_bits(k ^ if k >> 31 == 1 { 1 << 31 } else { u32::MAX })
    }
    #[inline(always)]
    fn bits(self) -> u32 {
        self.to_bits()
    }
    fn from_bits(k: u32) -> Self {
        f32::from_bits(k)
    }
}

impl Prec for f64 {
    #[inline]
    fn of(v: f64) -> Self {
        v
    }
    #[inline]
    fn f64(self) -> f64 {
        self
    }
    #[inline]
    fn nan(self) -> bool {
        self.is_nan()
    }
    fn up(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn low(self) -> u32 {
        (self + 6755399441055744.0).to_bits() as u32
    }
    type Key = u64;
    #[inline(always)]
    fn key(self) -> u64 {
        let b = self.to_bits();
        b ^ (((b as i64) >> 63) as u64 | 1 << 63)
    }
    fn unkey(k: u64) -> Self {
        f64::from_bits(k ^ if k >> 63 == 1 { 1 << 63 } else { u64::MAX })
    }
    #[inline(always)]
    fn bits(self) -> u64 {
        self.to_bits()
    }
    fn from_bits(k: u64) -> Self {
        f64::from_bits(k)
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct CategorySet {
    pub(super) words: Box<[u32]>,
    pub(super) rule: CategoryRule,
}

impl CategorySet {
    /// `x`'s category under this set's rule, or `None` if `x` is in no set of the rule
    /// (NaN: none; the caller routes NaN first).
    #[inline]
    pub(super) fn category(&self, x: f64) -> Option<u64> {
        match self.rule {
            CategoryRule::Truncate if x < 0.0 => None,
            CategoryRule::TruncateNegativeFractionIsZero if x <= -1.0 => None,
            _ if x.is_nan() => None,
            _ => Some(x as u64),
        }
    }

    #[inline]
    pub(super) fn contains(&self, x: f64) -> bool {
        let c = match self.rule {
            CategoryRule::Truncate if x < 0.0 => return false,
            CategoryRule::TruncateNegativeFractionIsZero if x <= -1.0 => return false,
            _ => x as u64, // truncates; NaN gives 0 (the caller routes NaN first)
        };
        let w = (c / 32) as usize;
        w < self.words.len() && self.words[w] >> (c % 32) & 1 == 1
    }
}

/// What a compiled ensemble knows besides its nodes (written as it is in the wide
/// layout's artifact payload, [`super::wide`]; [`Head::check`] reads it back).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct Head {
    pub(super) leaf_table: Vec<(u32, f64)>,
    pub(super) sets: Vec<CategorySet>,
    pub(super) zero_missing: Vec<bool>,
    pub(super) any_zero_missing: bool,
    pub(super) num_features: usize,
    pub(super) outputs: usize,
    pub(super) base: Vec<f64>,
    base_placement: BasePlacement,
    aggregation: Aggregation,
    pub(super) precision: Precision,
    zero_snap: bool,
    transform: Transform,
    output_cast_f32: bool,
    pub(super) output: OutputKind,
    pub(super) num_scores: usize,
}

impl Head {
    /// The model-level part of `e`: no tables, no zero-as-missing feature yet (set by
    /// [`super::flat::FlatEnsemble::compile`] as it reads the nodes).
    pub(super) fn new(e: &Ensemble) -> Self {
        Head {
            leaf_table: Vec::new(),
            sets: Vec::new(),
            any_zero_missing: false,
            zero_missing: Vec::new(),
            num_features: e.num_features as usize,
            outputs: e.outputs as usize,
            base: if e.base.is_empty() {
                vec![0.0; e.outputs as usize]
            } else {
                e.base.clone()
            },
            base_placement: e.base_placement,
            aggregation: e.aggregation,
            precision: e.precision,
            zero_snap: e.zero_snap,
            transform: e.transform,
            output_cast_f32: e.output_cast_f32,
            output: e.output,
            num_scores: e.num_scores(),
        }
    }

    /// Checks a head read from a file: the model-level rules of [`Ensemble::validate`],
    /// and what the compiler derives (the base's length, the scores, the zero-as-missing
    /// features, the sets' sizes, the vector leaves' table) consistent with them.
    pub(super) fn check(&self, limits: &EnsembleLimits) -> Result<(), EnsembleError> {
        let bad = |m: String| Err(EnsembleError(m));
        let shell = Ensemble {
            num_features: u32::try_from(self.num_features).unwrap_or(u32::MAX),
            outputs: u32::try_from(self.outputs).unwrap_or(u32::MAX),
            trees: Vec::new(),
            base: self.base.clone(),
            base_placement: self.base_placement,
            aggregation: self.aggregation,
            precision: self.precision,
            zero_snap: self.zero_snap,
            transform: self.transform,
            output_cast_f32: self.output_cast_f32,
            output: self.output,
        };
        shell.validate_model(limits)?;
        if self.num_features >= 1 << 24 {
            return bad(format!(
                "{} features (fewer than 2^24 allowed)",
                self.num_features
            ));
        }
        if self.base.len() != self.outputs {
            return bad(format!(
                "base: {} values for {} outputs",
                self.base.len(),
                self.outputs
            ));
        }
        if self.num_scores != shell.num_scores() {
            return bad(format!(
                "{} scores where the output kind gives {}",
                self.num_scores,
                shell.num_scores()
            ));
        }
        if self.zero_missing.len() != self.num_features
            || self.any_zero_missing != self.zero_missing.contains(&true)
        {
            return bad("the zero-as-missing features do not match the features".into());
        }
        if let Some(s) = self
            .sets
            .iter()
            .find(|s| s.words.len() > limits.max_set_words)
        {
            return bad(format!(
                "a category set of {} words (at most {} allowed)",
                s.words.len(),
                limits.max_set_words
            ));
        }
        let f32_model = self.precision == Precision::F32;
        let value_ok = |v: f64| v.is_finite() && (!f32_model || (v as f32) as f64 == v);
        if let Some(&(o, v)) = self
            .leaf_table
            .iter()
            .find(|&&(o, v)| o as usize >= self.outputs || !value_ok(v))
        {
            return bad(format!(
                "a vector leaf gives {v} to output {o} of {}",
                self.outputs
            ));
        }
        Ok(())
    }

    /// The row pre-pass: f32 rounding, LightGBM's zero snap and zero-as-missing, appended
    /// to `out`. Returns whether any value is missing.
    #[inline]
    pub(super) fn prepare_into<T: Prec>(&self, row: &[f64], out: &mut Vec<T>) -> bool {
        let mut nan = false;
        let start = out.len();
        out.extend(row.iter().map(|&v| {
            let mut x = if self.precision == Precision::F32 {
                v as f32 as f64
            } else {
                v
            };
            if self.zero_snap && x.abs() <= ZERO_THRESHOLD {
                x = 0.0;
            }
            T::of(x)
        }));
        let out = &mut out[start..];
        if self.any_zero_missing {
            for (x, &z) in out.iter_mut().zip(&self.zero_missing) {
                if z && x.f64() == 0.0 {
                    *x = T::of(f64::NAN);
                }
            }
        }
        for x in out.iter() {
            nan |= x.nan();
        }
        nan
    }

    /// Starts a sum: `acc` (`outputs` long) holds the base or zero.
    #[inline]
    pub(super) fn begin<T: Prec>(&self, acc: &mut [T]) {
        if self.base_placement == BasePlacement::Initial {
            acc.iter_mut()
                .zip(&self.base)
                .for_each(|(a, &b)| *a = T::of(b));
        } else {
            acc.fill(T::default());
        }
    }

    /// Ends a sum (mean, base after the sum) and writes the raw scores to `raw`.
    #[inline]
    pub(super) fn end<T: Prec>(&self, acc: &mut [T], raw: &mut Vec<f64>) {
        if let Aggregation::Mean { divisor } = self.aggregation {
            let d = T::of(divisor);
            acc.iter_mut().for_each(|a| *a /= d);
        }
        if self.base_placement == BasePlacement::AfterSum {
            acc.iter_mut()
                .zip(&self.base)
                .for_each(|(a, &b)| *a += T::of(b));
        }
        raw.clear();
        raw.extend(acc.iter().map(|a| a.f64()));
    }

    /// Reads the answer from the raw scores: the decision, the output cast, the transform.
    /// Returns the class index (0 for regression).
    pub(super) fn finish(&self, raw: &mut [f64], scores: &mut [f64]) -> usize {
        // ONNX Runtime decides on the scores in the model's precision, then writes them
        // to a float tensor: the decisions that read raw scores look before the cast.
        let decided = match self.output {
            OutputKind::ArgmaxRaw => first_max(raw),
            OutputKind::BinaryLogisticPair => usize::from(raw[0] > 0.0),
            OutputKind::OrtBinaryOneMinus => usize::from(raw[0] > 0.5),
            _ => 0,
        };
        let first = raw[0];
        if self.output_cast_f32 {
            raw.iter_mut().for_each(|r| *r = *r as f32 as f64);
        }
        match self.output {
            OutputKind::Value => {
                transform(self.transform, raw);
                scores[0] = raw[0];
                0
            }
            OutputKind::BinaryOneMinus => {
                transform(self.transform, raw);
                let p = raw[0];
                scores[1] = p;
                scores[0] = match self.precision {
                    Precision::F32 => (1.0f32 - p as f32) as f64,
                    Precision::F64 => 1.0 - p,
                };
                usize::from(p > 0.5)
            }
            OutputKind::BinaryLogisticPair => {
                let s = raw[0];
                let mut pair = [-s, s];
                transform(self.transform, &mut pair[..1]);
                transform(self.transform, &mut pair[1..]);
                scores[..2].copy_from_slice(&pair);
                decided
            }
            OutputKind::OrtBinaryOneMinus => {
                // 1 - s in the model's precision, then the output cast.
                let one_minus = match self.precision {
                    Precision::F32 => (1.0f32 - first as f32) as f64,
                    Precision::F64 => 1.0 - first,
                };
                scores[0] = one_minus;
                scores[1] = raw[0];
                if self.output_cast_f32 {
                    scores[0] = scores[0] as f32 as f64;
                }
                decided
            }
            OutputKind::ArgmaxRaw => {
                transform(self.transform, raw);
                scores.copy_from_slice(raw);
                decided
            }
            OutputKind::ArgmaxProbabilities => {
                transform(self.transform, raw);
                scores.copy_from_slice(raw);
                first_max(scores)
            }
        }
    }
}

fn first_max(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate().skip(1) {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Applies `t` in place, with the framework's arithmetic.
pub fn transform(t: Transform, v: &mut [f64]) {
    match t {
        Transform::Identity => {}
        Transform::XgbSigmoid => v.iter_mut().for_each(|x| {
            let m = *x as f32;
            *x = (1.0f32 / ((-m).min(88.7).exp() + 1.0 + 1e-16)) as f64;
        }),
        Transform::XgbSoftmax => {
            let max = v.iter().fold(f32::MIN, |m, &x| m.max(x as f32));
            let mut sum = 0.0f64;
            for x in v.iter_mut() {
                let e = (*x as f32 - max).exp();
                *x = e as f64;
                sum += e as f64;
            }
            let s = sum as f32;
            v.iter_mut().for_each(|x| *x = (*x as f32 / s) as f64);
        }
        Transform::ExpF32 => v.iter_mut().for_each(|x| *x = (*x as f32).exp() as f64),
        Transform::LgbSigmoid { alpha } | Transform::LgbOvrSigmoid { alpha } => v
            .iter_mut()
            .for_each(|x| *x = 1.0 / (1.0 + (-alpha * *x).exp())),
        Transform::LgbSoftmax => {
            let max = v.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
            let mut sum = 0.0;
            for x in v.iter_mut() {
                *x = (*x - max).exp();
                sum += *x;
            }
            v.iter_mut().for_each(|x| *x /= sum);
        }
        Transform::ExpF64 => v.iter_mut().for_each(|x| *x = x.exp()),
        Transform::SignedSquare => v.iter_mut().for_each(|x| *x = x.signum() * *x * *x),
        Transform::Log1pExp => v.iter_mut().for_each(|x| *x = x.exp().ln_1p()),
        Transform::OrtLogistic => v.iter_mut().for_each(|x| {
            let s = *x as f32;
            let p = 1.0f32 / (1.0 + (-s.abs()).exp());
            *x = if s < 0.0 { 1.0 - p } else { p } as f64;
        }),
        Transform::OrtSoftmax | Transform::OrtSoftmaxZero => {
            let zero = t == Transform::OrtSoftmaxZero;
            let max = v.iter().fold(-f32::MAX, |m, &x| m.max(x as f32));
            let mut sum = 0.0f32;
            for x in v.iter_mut() {
                let s = *x as f32;
                // ORT's test `s > 1e-7f || s < -1e-7f` sends NaN here too (a range
                // `contains` would not).
                #[allow(clippy::manual_range_contains)]
                let exp_branch = s > 1e-7 || s < -1e-7;
                if zero && !exp_branch {
                    *x = (s * (-max).exp()) as f64;
                } else {
                    let e = (s - max).exp();
                    *x = e as f64;
                    sum += e;
                }
            }
            for x in v.iter_mut() {
                let s = *x as f32;
                *x = (s / sum) as f64;
            }
        }
    }
}
