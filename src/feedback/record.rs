//! One shard of the feedback record: answers in insertion order in a ring (a `VecDeque`
//! of slots, each numbered by the shard), and a hash table of the live slots' numbers,
//! keyed by the id's hash, so that an id is stored once and evicting the oldest answer
//! reads nothing but its slot. Answers are evicted oldest first, so their ids and numbers
//! (inputs, then predictions) live in two rings of their own (arenas): remembering an
//! answer allocates nothing once the rings have grown, and evicting one touches only
//! their fronts. The version that answered is an index into the shard's few versions.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashTable;

use super::{Answerer, Outcome};

/// Most versions a shard names before it starts afresh (forgetting its answers).
const MAX_ANSWERERS: usize = 1024;

/// Which rows were labelled.
#[derive(Debug)]
enum Labelled {
    /// Up to 64 rows.
    Bits(u64),
    /// More.
    Many(Box<[u64]>),
}

impl Labelled {
    fn new(rows: usize) -> Self {
        if rows <= 64 {
            Labelled::Bits(0)
        } else {
            Labelled::Many(vec![0; rows.div_ceil(64)].into())
        }
    }

    /// Marks `row`; false if it was marked already.
    fn mark(&mut self, row: usize) -> bool {
        let (word, bit) = match self {
            Labelled::Bits(w) => (w, row),
            Labelled::Many(ws) => (&mut ws[row / 64], row % 64),
        };
        let was = *word & (1 << bit) != 0;
        *word |= 1 << bit;
        !was
    }
}

/// One remembered answer.
#[derive(Debug)]
pub(super) struct Slot {
    seq: u64,
    hash: u64,
    at: Instant,
    by: u32,
    /// Its id's length in the id ring (the id starts where the previous slot's ended).
    id_len: u32,
    /// Its numbers' count in the number ring: rows × features inputs, then per row the
    /// predicted class index (or a regressor's value).
    data_len: u32,
    /// Where its id and numbers start in the rings (absolute positions).
    id_at: u64,
    data_at: u64,
    labelled: Labelled,
    /// The shadow version's answer to the same rows (`--shadow`), once it is scored.
    beside: Option<Box<(u32, Box<[f64]>)>>,
}

/// What a label found.
pub(super) struct Found {
    /// The version that answered.
    pub by: Arc<Answerer>,
    /// The row's inputs.
    pub inputs: Vec<f64>,
    /// Its prediction.
    pub predicted: f64,
    /// The truth, as the version reads it.
    pub actual: f64,
    /// When it was answered.
    pub at: Instant,
    /// The shadow's version and prediction, if it scored the row.
    pub beside: Option<(Arc<Answerer>, f64)>,
}

/// Positions `start..start + len` of a ring.
fn range(start: u64, len: u32) -> std::ops::Range<usize> {
    start as usize..start as usize + len as usize
}

/// Slot number `seq` of `slots`.
fn slot_mut(slots: &mut VecDeque<Slot>, seq: u64) -> Option<&mut Slot> {
    let first = slots.front()?.seq;
    slots.get_mut(usize::try_from(seq.checked_sub(first)?).ok()?)
}

/// One shard, aligned to its own cache lines (two cores locking neighbours do not
/// contend).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(super) struct Shard {
    slots: VecDeque<Slot>,
    /// Numbers of the slots an id finds (an id answered again finds its newest).
    table: HashTable<u64>,
    next: u64,
    answerers: Vec<Arc<Answerer>>,
    /// The slots' ids, oldest first; `ids_at` is the absolute position of its front.
    ids: VecDeque<u8>,
    ids_at: u64,
    /// The slots' numbers, oldest first; `data_at` is the absolute position of its front.
    data: VecDeque<f64>,
    data_at: u64,
}

impl Shard {
    fn slot(&self, seq: u64) -> Option<&Slot> {
        let first = self.slots.front()?.seq;
        self.slots
            .get(usize::try_from(seq.checked_sub(first)?).ok()?)
    }

    /// Whether `slot`'s id is `id`.
    fn id_is(&self, slot: &Slot, id: &str) -> bool {
        slot.id_len as usize == id.len()
            && self
                .ids
                .range(range(slot.id_at - self.ids_at, slot.id_len))
                .eq(id.as_bytes())
    }

    /// `slot`'s numbers from `from`, `len` of them.
    fn numbers(&self, slot: &Slot, from: usize, len: usize) -> impl Iterator<Item = f64> + '_ {
        let start = (slot.data_at - self.data_at) as usize + from;
        self.data.range(start..start + len).copied()
    }

    /// Answers findable now.
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    fn answerer(&mut self, by: &Arc<Answerer>) -> u32 {
        if let Some(i) = self.answerers.iter().rposition(|a| Arc::ptr_eq(a, by)) {
            return i as u32;
        }
        if self.answerers.len() >= MAX_ANSWERERS {
            *self = Shard::default();
        }
        self.answerers.push(by.clone());
        (self.answerers.len() - 1) as u32
    }

    /// The slot number `id` (of hash `hash`) finds.
    fn find(&self, hash: u64, id: &str) -> Option<u64> {
        self.table
            .find(hash, |&s| {
                self.slot(s).is_some_and(|slot| self.id_is(slot, id))
            })
            .copied()
    }

    /// Remembers an answer (`fresh`: an id never given before, not looked up); evicts
    /// the oldest while more than `cap` are kept or the oldest is older than `max_age`.
    /// Returns the change in findable answers.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn insert(
        &mut self,
        hash: u64,
        id: &str,
        fresh: bool,
        by: &Arc<Answerer>,
        inputs: &[f64],
        predicted: &[f64],
        now: Instant,
        cap: usize,
        max_age: Duration,
    ) -> i64 {
        let before = self.table.len() as i64;
        let by = self.answerer(by);
        let seq = self.next;
        self.next += 1;
        let slot = Slot {
            seq,
            hash,
            at: now,
            by,
            id_len: id.len() as u32,
            data_len: (inputs.len() + predicted.len()) as u32,
            id_at: self.ids_at + self.ids.len() as u64,
            data_at: self.data_at + self.data.len() as u64,
            labelled: Labelled::new(predicted.len()),
            beside: None,
        };
        // An id answered again: the new answer replaces the old one in the table; the
        // old slot stays in line until it is evicted, found by nobody.
        let old = if fresh { None } else { self.find(hash, id) };
        self.ids.extend(id.as_bytes());
        self.data.extend(inputs);
        self.data.extend(predicted);
        match old {
            Some(old) => {
                let entry = self
                    .table
                    .find_mut(hash, |&s| s == old)
                    .expect("found above");
                *entry = seq;
            }
            None => {
                let slots = &self.slots;
                let first = slots.front().map_or(seq, |s| s.seq);
                self.table.insert_unique(hash, seq, |&s| {
                    slots.get((s - first) as usize).map_or(0, |slot| slot.hash)
                });
            }
        }
        self.slots.push_back(slot);
        while let Some(front) = self.slots.front() {
            if self.slots.len() <= cap && now.duration_since(front.at) <= max_age {
                break;
            }
            let (seq, hash) = (front.seq, front.hash);
            let (ids, data) = (front.id_len as usize, front.data_len as usize);
            if let Ok(entry) = self.table.find_entry(hash, |&s| s == seq) {
                entry.remove();
            }
            self.slots.pop_front();
            self.ids.drain(..ids);
            self.ids_at += ids as u64;
            self.data.drain(..data);
            self.data_at += data as u64;
        }
        self.shrink();
        self.table.len() as i64 - before
    }

    /// Sets the shadow's answer beside `production`'s answer to `id`.
    pub(super) fn beside(
        &mut self,
        hash: u64,
        id: &str,
        production: &Arc<Answerer>,
        shadow: &Arc<Answerer>,
        predicted: &[f64],
    ) {
        let Some(seq) = self.find(hash, id) else {
            return;
        };
        let shadow = self.answerer(shadow);
        let answerers = &self.answerers;
        let Some(slot) = slot_mut(&mut self.slots, seq) else {
            return;
        };
        let by = &answerers[slot.by as usize];
        let rows = slot.data_len as usize / (by.features.len() + 1);
        if Arc::ptr_eq(by, production) && rows == predicted.len() {
            slot.beside = Some(Box::new((shadow, predicted.into())));
        }
    }

    /// Marks row `row` (`None`: the only row) of the answer to `id` labelled and says
    /// what it was: if `known` takes the answer (its time and version), and `actual`
    /// reads the truth for its version.
    pub(super) fn label(
        &mut self,
        hash: u64,
        id: &str,
        row: Option<usize>,
        known: impl FnOnce(Instant, &Answerer) -> bool,
        actual: impl FnOnce(&Answerer) -> Result<f64, Outcome>,
    ) -> Result<Found, Outcome> {
        let seq = self.find(hash, id).ok_or(Outcome::UnknownId)?;
        let slot = self.slot(seq).ok_or(Outcome::UnknownId)?;
        let by = &self.answerers[slot.by as usize];
        if !known(slot.at, by) {
            return Err(Outcome::UnknownId);
        }
        let f = by.features.len();
        let rows = slot.data_len as usize / (f + 1);
        let row = match row {
            Some(r) if r < rows => r,
            None if rows == 1 => 0,
            _ => return Err(Outcome::NoSuchRow),
        };
        let actual = actual(by)?;
        let found = Found {
            by: by.clone(),
            inputs: self.numbers(slot, row * f, f).collect(),
            predicted: self
                .numbers(slot, rows * f + row, 1)
                .next()
                .unwrap_or(f64::NAN),
            actual,
            at: slot.at,
            beside: slot
                .beside
                .as_ref()
                .map(|b| (self.answerers[b.0 as usize].clone(), b.1[row])),
        };
        let slot = slot_mut(&mut self.slots, seq).ok_or(Outcome::UnknownId)?;
        if !slot.labelled.mark(row) {
            return Err(Outcome::Duplicate);
        }
        Ok(found)
    }

    /// Gives memory back when the rings hold a quarter of what they have room for (the
    /// window shrank, or answers aged out), so that a burst does not keep its peak.
    fn shrink(&mut self) {
        if self.data.capacity() > 4096 && self.data.len() < self.data.capacity() / 4 {
            self.data.shrink_to(self.data.len() * 2);
            self.ids.shrink_to(self.ids.len() * 2);
            self.slots.shrink_to(self.slots.len() * 2);
        }
    }
}
