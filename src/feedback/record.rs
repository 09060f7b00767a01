//! One shard of the feedback record: answers in insertion order in a ring (a `VecDeque`
//! of slots, each numbered by the shard), and a hash table of the live slots' numbers,
//! keyed by the id's hash, so that an id is stored once and evicting the oldest answer
//! reads nothing but its slot. A slot's numbers (inputs, then predictions) are one
//! allocation; the version that answered is an index into the shard's few versions.

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
    id: Box<str>,
    /// Rows × features inputs, then per row the predicted class index (or a
    /// regressor's value).
    data: Box<[f64]>,
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

/// Slot number `seq` of `slots`.
fn slot_mut(slots: &mut VecDeque<Slot>, seq: u64) -> Option<&mut Slot> {
    let first = slots.front()?.seq;
    slots.get_mut(usize::try_from(seq.checked_sub(first)?).ok()?)
}

/// One shard.
#[derive(Debug, Default)]
pub(super) struct Shard {
    slots: VecDeque<Slot>,
    /// Numbers of the slots an id finds (an id answered again finds its newest).
    table: HashTable<u64>,
    next: u64,
    answerers: Vec<Arc<Answerer>>,
}

impl Shard {
    fn slot(&self, seq: u64) -> Option<&Slot> {
        let first = self.slots.front()?.seq;
        self.slots
            .get(usize::try_from(seq.checked_sub(first)?).ok()?)
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
            .find(hash, |&s| self.slot(s).is_some_and(|slot| &*slot.id == id))
            .copied()
    }

    /// Remembers an answer; evicts the oldest while more than `cap` are kept or the
    /// oldest is older than `max_age`. Returns the change in findable answers.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn insert(
        &mut self,
        hash: u64,
        id: &str,
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
        let mut data = Vec::with_capacity(inputs.len() + predicted.len());
        data.extend_from_slice(inputs);
        data.extend_from_slice(predicted);
        let slot = Slot {
            seq,
            hash,
            at: now,
            by,
            id: id.into(),
            data: data.into(),
            labelled: Labelled::new(predicted.len()),
            beside: None,
        };
        // An id answered again: the new answer replaces the old one in the table; the
        // old slot stays in line until it is evicted, found by nobody.
        match self.find(hash, id) {
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
            if let Ok(entry) = self.table.find_entry(hash, |&s| s == seq) {
                entry.remove();
            }
            self.slots.pop_front();
        }
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
        let rows = slot.data.len() / (by.features.len() + 1);
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
        let answerers = &self.answerers;
        let slot = slot_mut(&mut self.slots, seq).ok_or(Outcome::UnknownId)?;
        let by = &answerers[slot.by as usize];
        if !known(slot.at, by) {
            return Err(Outcome::UnknownId);
        }
        let f = by.features.len();
        let rows = slot.data.len() / (f + 1);
        let row = match row {
            Some(r) if r < rows => r,
            None if rows == 1 => 0,
            _ => return Err(Outcome::NoSuchRow),
        };
        let actual = actual(by)?;
        if !slot.labelled.mark(row) {
            return Err(Outcome::Duplicate);
        }
        Ok(Found {
            by: by.clone(),
            inputs: slot.data[row * f..(row + 1) * f].to_vec(),
            predicted: slot.data[rows * f + row],
            actual,
            at: slot.at,
            beside: slot
                .beside
                .as_ref()
                .map(|b| (answerers[b.0 as usize].clone(), b.1[row])),
        })
    }
}
