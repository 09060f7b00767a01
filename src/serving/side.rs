//! A model's side versions: the shadow (`--shadow ALIAS`), scored beside production off
//! the response path, and the canary (`--canary ALIAS=PERCENT`), which answers a share of
//! requests. Each follows its own alias, loaded and validated like a pinned version (and
//! with production's features: both are fed the same rows), swapped atomically.

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use super::{Catalog, LoadError, ServedModel};
use crate::registry::RegistryError;

/// Which side version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Scored beside production, never answering.
    Shadow,
    /// Answers a share of requests.
    Canary,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Side::Shadow => "shadow",
            Side::Canary => "canary",
        }
    }
}

/// `--canary ALIAS=PERCENT`: the alias, and its share of requests in parts per million.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanarySplit {
    /// The canary's alias.
    pub alias: String,
    /// Its share of requests, parts per million.
    pub ppm: u32,
}

impl std::str::FromStr for CanarySplit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (alias, percent) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: write ALIAS=PERCENT, e.g. staging=10"))?;
        if !crate::name::valid_name(alias) {
            return Err(format!("{alias:?} is not an alias name"));
        }
        let p: f64 = percent
            .trim_end_matches('%')
            .parse()
            .ok()
            .filter(|p: &f64| (0.0..=100.0).contains(p) && *p > 0.0)
            .ok_or_else(|| {
                format!("{percent:?}: the share is a percentage above 0, at most 100")
            })?;
        Ok(Self {
            alias: alias.to_owned(),
            ppm: (p * 10_000.0).round() as u32,
        })
    }
}

/// One side's alias and loaded version.
#[derive(Debug, Default)]
pub(super) struct Lane {
    alias: Option<String>,
    served: ArcSwapOption<ServedModel>,
    /// The version that last failed to load, warned about once.
    failed: Mutex<Option<u64>>,
}

/// The shadow and canary lanes of one model.
#[derive(Debug, Default)]
pub(super) struct Sides {
    shadow: Lane,
    canary: Lane,
    canary_ppm: u32,
}

impl Sides {
    pub(super) fn new(shadow: Option<String>, canary: Option<CanarySplit>) -> Self {
        Self {
            shadow: Lane {
                alias: shadow,
                ..Lane::default()
            },
            canary_ppm: canary.as_ref().map_or(0, |c| c.ppm),
            canary: Lane {
                alias: canary.map(|c| c.alias),
                ..Lane::default()
            },
        }
    }

    fn lane(&self, side: Side) -> &Lane {
        match side {
            Side::Shadow => &self.shadow,
            Side::Canary => &self.canary,
        }
    }
}

thread_local! {
    /// This thread's random state for unkeyed canary picks (xorshift64*).
    static DRAW: std::cell::Cell<u64> = std::cell::Cell::new(
        std::collections::hash_map::RandomState::new().hash_one(std::thread::current().id()) | 1,
    );
}

/// A number in `0..1_000_000`: from `key` (the same key always draws the same, on every
/// replica), or random. A request takes the canary when it draws below the share.
pub fn draw(key: Option<&[u8]>) -> u32 {
    let x = match key {
        Some(k) => {
            // A fixed hash (not per-process), so every replica splits a key alike.
            let mut h = 0xcbf2_9ce4_8422_2325u64;
            for b in k {
                h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
            }
            h ^ (h >> 29)
        }
        None => DRAW.with(|s| {
            let mut x = s.get();
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            s.set(x);
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }),
    };
    ((x >> 32) % 1_000_000) as u32
}

impl Catalog {
    /// The shadow version as a cheap guard (within synchronous code only).
    #[inline]
    pub fn shadow_guard(&self) -> arc_swap::Guard<Option<Arc<ServedModel>>> {
        self.sides().shadow.served.load()
    }

    /// The canary version if this request draws it: `drawn` (from its key, [`draw`]), or
    /// at random.
    #[inline]
    pub fn canary_pick(
        &self,
        drawn: Option<u32>,
    ) -> Option<arc_swap::Guard<Option<Arc<ServedModel>>>> {
        let sides = self.sides();
        if sides.canary_ppm == 0 || drawn.unwrap_or_else(|| draw(None)) >= sides.canary_ppm {
            return None;
        }
        let g = sides.canary.served.load();
        g.is_some().then_some(g)
    }

    /// The alias a side follows, if configured.
    pub fn side_alias(&self, side: Side) -> Option<&str> {
        self.sides().lane(side).alias.as_deref()
    }

    /// The canary's share of requests, percent.
    pub fn canary_percent(&self) -> f64 {
        f64::from(self.sides().canary_ppm) / 10_000.0
    }

    /// The side version loaded now, if any.
    pub fn side(&self, side: Side) -> Option<Arc<ServedModel>> {
        self.sides().lane(side).served.load_full()
    }

    /// Re-reads the side aliases and loads a version they moved to; a missing alias
    /// leaves the side empty. Blocking: call from a blocking thread.
    pub fn reload_sides(&self) {
        for side in [Side::Shadow, Side::Canary] {
            let lane = self.sides().lane(side);
            let Some(alias) = &lane.alias else { continue };
            match self.side_version(alias) {
                Ok(None) => {
                    if lane.served.swap(None).is_some() {
                        tracing::info!(model = %self.name(), side = side.as_str(), %alias, "side alias gone: no version");
                    }
                }
                Ok(Some(v))
                    if lane
                        .served
                        .load()
                        .as_ref()
                        .is_some_and(|s| s.model.version() == v) => {}
                Ok(Some(v)) => match self.load_side(v) {
                    Ok(served) => {
                        lane.served.store(Some(served));
                        *lane.failed.lock().expect("lock") = None;
                        tracing::info!(model = %self.name(), side = side.as_str(), %alias, version = v, "side version loaded");
                    }
                    Err(e) => {
                        let mut failed = lane.failed.lock().expect("lock");
                        if *failed != Some(v) {
                            *failed = Some(v);
                            tracing::warn!(model = %self.name(), side = side.as_str(), %alias, version = v, error = %e, "side version not loaded; the previous one (if any) stays");
                        }
                    }
                },
                Err(e) => {
                    tracing::warn!(model = %self.name(), side = side.as_str(), %alias, error = %e, "side alias unreadable")
                }
            }
        }
    }

    fn side_version(&self, alias: &str) -> Result<Option<u64>, RegistryError> {
        match self.registry().resolve(self.name(), alias) {
            Ok(v) => Ok(Some(v)),
            Err(RegistryError::AliasNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Loads version `v` as a side version: it must read production's features.
    fn load_side(&self, v: u64) -> Result<Arc<ServedModel>, LoadError> {
        let served = self.pinned(v)?;
        if let Some(current) = self.load().as_ref()
            && current.model.features() != served.model.features()
        {
            return Err(LoadError::SchemaChange {
                version: v,
                from: current.model.features().to_vec(),
                to: served.model.features().to_vec(),
            });
        }
        Ok(served)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_parses_and_refuses_nonsense() {
        let c: CanarySplit = "staging=10".parse().unwrap();
        assert_eq!((c.alias.as_str(), c.ppm), ("staging", 100_000));
        assert_eq!("c=0.5%".parse::<CanarySplit>().unwrap().ppm, 5_000);
        for bad in ["staging", "staging=0", "staging=101", "=5", "s=x"] {
            assert!(bad.parse::<CanarySplit>().is_err(), "{bad}");
        }
    }

    #[test]
    fn keyed_draws_are_sticky_and_random_ones_spread() {
        assert_eq!(draw(Some(b"user-1")), draw(Some(b"user-1")));
        let below = (0..100_000).filter(|_| draw(None) < 200_000).count();
        assert!((19_000..21_000).contains(&below), "{below}");
        let keyed = (0..100_000)
            .filter(|i| draw(Some(format!("user-{i}").as_bytes())) < 200_000)
            .count();
        assert!((19_000..21_000).contains(&keyed), "{keyed}");
    }
}
