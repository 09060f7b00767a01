//! The memory a training run may take, estimated before anything large is allocated, so
//! a run that would exhaust memory stops with one clear line instead of an allocation
//! failure (SIGABRT) minutes later.
//!
//! The learner (smartcore) holds, per open tree node, a vector of one `usize` per training
//! row, and grows trees breadth first: the open nodes at once are taken as at most
//! 4 × √(training rows) (and at most 2^max_depth), which errs high (docs/lifecycle.md has
//! measurements). Each leaf keeps a class count and a
//! probability per class, and the metrics a classes × classes confusion matrix. The
//! estimate (in bytes):
//!
//! ```text
//!   rows × features × 8 × 5                       the rows, their copies and sort orders
//! + open nodes × training rows × 8                the learner's open nodes
//! + trees × leaves × (classes × 16 + 1000)        leaf counts, probabilities, nodes
//! + classes² × 16                                 confusion matrices
//! ```
//!
//! with leaves ≤ training rows / min_samples_leaf (and ≤ 2^max_depth).

use super::{TrainConfig, TrainError};
use crate::model::Algorithm;

/// The default budget: 2 GiB.
pub const DEFAULT_MAX_MEMORY: u64 = 2 << 30;

/// Estimated peak bytes of training on `train_rows` (and testing on `test_rows`) with
/// `features` columns and `classes` classes (1 for a regressor).
pub fn estimate(
    train_rows: usize,
    test_rows: usize,
    features: usize,
    classes: usize,
    config: &TrainConfig,
) -> u64 {
    let n = train_rows as u128;
    let depth_cap = 1u128 << config.max_depth.unwrap_or(64).min(64).saturating_sub(1);
    let open = depth_cap.min(4 * (n as f64).sqrt().ceil() as u128).max(1);
    let leaves = (n / config.min_samples_leaf.max(1) as u128)
        .min(depth_cap.saturating_mul(2))
        .max(1);
    let trees = match config.algorithm {
        Algorithm::RandomForest => u128::from(config.n_trees),
        _ => 1,
    };
    let k = classes as u128;
    let total = (n + test_rows as u128) * features as u128 * 8 * 5
        + open * n * 8
        + trees * leaves * (k * 16 + 1000)
        + k * k * 16;
    total.min(u128::from(u64::MAX)) as u64
}

/// Refuses a run whose estimate exceeds `config.max_memory`, saying what to change.
pub fn check(
    train_rows: usize,
    test_rows: usize,
    features: usize,
    classes: usize,
    config: &TrainConfig,
) -> Result<(), TrainError> {
    let need = estimate(train_rows, test_rows, features, classes, config);
    if need <= config.max_memory {
        return Ok(());
    }
    Err(TrainError::Memory(format!(
        "training would need about {} ({train_rows} training rows, {features} features, \
         {classes} {}), over the --max-memory budget of {}: train on fewer rows{}, set \
         --max-depth, or raise --max-memory",
        size(need),
        if classes == 1 { "target" } else { "classes" },
        size(config.max_memory),
        if classes > 1000 {
            " or fewer classes"
        } else {
            ""
        },
    )))
}

/// Bytes for people: `512 B`, `3.2 MiB`, `4.0 GiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Parses a size: a number of bytes with an optional `K`, `M`, `G` or `T` suffix (powers
/// of 1024; `KiB`, `MB`… accepted alike).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches(['B', 'I'])
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("{s:?}: use a number of bytes, e.g. 512M or 4G")),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: use a number of bytes, e.g. 512M or 4G"))?;
    Ok((v * (1u64 << shift) as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.5 MiB").unwrap(), 3 << 19);
        assert_eq!(parse_size("4kb").unwrap(), 4096);
        assert!(parse_size("lots").is_err());
        assert_eq!(size(3 << 29), "1.5 GiB");
    }

    #[test]
    fn the_reported_runs_are_over_the_default_budget_and_iris_is_not() {
        let c = TrainConfig::default();
        // 10,000 classes of two rows; 1 M rows × 4 features.
        assert!(estimate(12_000, 8_000, 4, 10_000, &c) > DEFAULT_MAX_MEMORY);
        assert!(estimate(600_000, 400_000, 4, 3, &c) > DEFAULT_MAX_MEMORY);
        assert!(estimate(90, 60, 4, 3, &c) < 1 << 20);
    }
}
