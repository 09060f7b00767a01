//! One shard of the feedback record: answers in insertion order in a ring (a `VecDeque`
//! of 48-byte slots, numbered by the shard: a slot's number is its position plus the
//! front's), and two ways to find one:
//!
//! - a generated id (most answers) by its number, in a direct-mapped index of slot
//!   numbers: the shard holds every 16th number, the index covers at least twice the
//!   window of them, so remembering writes one entry next to the previous one, and
//!   evicting touches nothing (a stale entry names a slot gone, or one of another id);
//! - a client's id by its hash, in a hash table of slot numbers (an id answered again
//!   finds its newest answer).
//!
//! Answers are evicted oldest first, so client ids and the numbers (inputs, then
//! predictions) live in rings of their own: remembering an answer allocates nothing once
//! the rings have grown, and evicting one touches only their fronts. The version that
//! answered is an index into the shard's few versions. Positions in the rings are kept
//! to 32 bits (wrapping): a ring never holds 2³² values.

use std::collections::VecDeque;
use std::sync::Arc;

use hashbrown::HashTable;

use super::id::Key;
use super::{Answerer, Outcome, SHARDS};

/// Most versions a shard names before it starts afresh (forgetting its answers).
const MAX_ANSWERERS: usize = 1024;

/// `Slot::by`'s flag for a generated id (then `key` is its number, else its hash).
const GENERATED: u16 = 1 << 15;

/// What few answers need: rows labelled beyond the 64th, the shadow's answer.
#[derive(Debug, Default)]
struct More {
    labelled: Box<[u64]>,
    /// The shadow version's answer to the same rows (`--shadow`), once it is scored.
    beside: Option<(u16, Box<[f64]>)>,
}

/// One remembered answer.
#[derive(Debug)]
pub(super) struct Slot {
    /// The generated id's number, or the client id's hash.
    key: u64,
    /// When, in nanoseconds from the record's start.
    at: u64,
    /// Where its numbers start in the number ring (absolute, wrapping), and how many:
    /// rows × features inputs, then per row the predicted class index (or a
    /// regressor's value).
    data_at: u32,
    data_len: u32,
    /// Where a client id starts in the id ring (absolute, wrapping), and its length.
    id_at: u32,
    id_len: u16,
    /// The version's index, with [`GENERATED`].
    by: u16,
    /// Rows 0–63 labelled.
    labelled: u64,
    more: Option<Box<More>>,
}

impl Slot {
    fn generated(&self) -> bool {
        self.by & GENERATED != 0
    }

    fn by(&self) -> usize {
        usize::from(self.by & !GENERATED)
    }

    /// Marks `row`; false if it was marked already.
    fn mark(&mut self, row: usize) -> bool {
        let word = if row < 64 {
            &mut self.labelled
        } else {
            match self
                .more
                .as_mut()
                .and_then(|m| m.labelled.get_mut(row / 64 - 1))
            {
                Some(w) => w,
                None => return false,
            }
        };
        let bit = 1 << (row % 64);
        let was = *word & bit != 0;
        *word |= bit;
        !was
    }
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
    /// When it was answered (nanoseconds from the record's start).
    pub at: u64,
    /// The shadow's version and prediction, if it scored the row.
    pub beside: Option<(Arc<Answerer>, f64)>,
}

/// Entries of a shard's generated-id index for `cap` answers: a power of two over twice
/// `cap` (so that an id is overwritten only by one at least twice the window newer),
/// plus room for the blocks of ids threads hold unused.
fn index_len(cap: usize) -> usize {
    (2 * cap + 1024).next_power_of_two()
}

/// One shard, aligned to its own cache lines (two cores locking neighbours do not
/// contend).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(super) struct Shard {
    slots: VecDeque<Slot>,
    /// The number the next slot gets.
    next: u64,
    /// Client ids: numbers of the slots, by the id's hash.
    table: HashTable<u64>,
    /// Generated ids: the number (+ 1, low 32 bits; 0: none) of the slot of the id
    /// `n`, at `(n / SHARDS) % len`. Made at the first generated id.
    index: Box<[u32]>,
    /// Answers findable now.
    live: usize,
    answerers: Vec<Arc<Answerer>>,
    /// The client ids, oldest first; `ids_at` is the absolute position of its front.
    ids: VecDeque<u8>,
    ids_at: u64,
    /// The slots' numbers, oldest first; `data_at` is the absolute position of its front.
    data: VecDeque<f64>,
    data_at: u64,
}

impl Shard {
    /// The number of the oldest slot.
    fn first(&self) -> u64 {
        self.next - self.slots.len() as u64
    }

    fn slot(&self, seq: u64) -> Option<&Slot> {
        self.slots
            .get(usize::try_from(seq.checked_sub(self.first())?).ok()?)
    }

    fn slot_mut(&mut self, seq: u64) -> Option<&mut Slot> {
        let first = self.first();
        self.slots
            .get_mut(usize::try_from(seq.checked_sub(first)?).ok()?)
    }

    /// Where the generated id `n` is in the index.
    fn index_at(&self, n: u64) -> usize {
        (n / SHARDS as u64) as usize & (self.index.len() - 1)
    }

    /// Whether `slot` is the client id `id` (of hash `hash`).
    fn client_is(&self, slot: &Slot, hash: u64, id: &str) -> bool {
        let start = slot.id_at.wrapping_sub(self.ids_at as u32) as usize;
        !slot.generated()
            && slot.key == hash
            && usize::from(slot.id_len) == id.len()
            && self.ids.range(start..start + id.len()).eq(id.as_bytes())
    }

    /// `slot`'s numbers from `from`, `len` of them.
    fn numbers(&self, slot: &Slot, from: usize, len: usize) -> impl Iterator<Item = f64> + '_ {
        let start = slot.data_at.wrapping_sub(self.data_at as u32) as usize + from;
        self.data.range(start..start + len).copied()
    }

    /// Answers findable now.
    pub(super) fn len(&self) -> usize {
        self.live
    }

    /// Answers findable now, counted the slow way: each slot its id finds.
    #[cfg(test)]
    pub(super) fn findable(&self) -> usize {
        (self.first()..self.next)
            .filter(|&seq| {
                let slot = self.slot(seq).expect("in the ring");
                let found = if slot.generated() {
                    self.find(Key::Generated(slot.key), 0)
                } else {
                    let start = slot.id_at.wrapping_sub(self.ids_at as u32) as usize;
                    let id: Vec<u8> = self
                        .ids
                        .range(start..start + usize::from(slot.id_len))
                        .copied()
                        .collect();
                    let id = String::from_utf8(id).expect("an id");
                    self.find(Key::Client(&id), slot.key)
                };
                found == Some(seq)
            })
            .count()
    }

    fn answerer(&mut self, by: &Arc<Answerer>) -> u16 {
        if let Some(i) = self.answerers.iter().rposition(|a| Arc::ptr_eq(a, by)) {
            return i as u16;
        }
        if self.answerers.len() >= MAX_ANSWERERS {
            *self = Shard::default();
        }
        self.answerers.push(by.clone());
        (self.answerers.len() - 1) as u16
    }

    /// The number of the slot still here that the index entry of the generated id `n`
    /// names (the id's own, or one it shares the entry with).
    fn indexed(&self, n: u64) -> Option<u64> {
        if self.index.is_empty() {
            return None;
        }
        let entry = self.index[self.index_at(n)].checked_sub(1)?;
        // The entry keeps the slot number's low 32 bits: the ring holds fewer slots.
        let first = self.first();
        let seq = first + u64::from(entry.wrapping_sub(first as u32));
        self.slot(seq).is_some().then_some(seq)
    }

    /// The number of the slot `key` (of hash `hash` if a client's) finds.
    fn find(&self, key: Key<'_>, hash: u64) -> Option<u64> {
        match key {
            Key::Generated(n) => {
                let seq = self.indexed(n)?;
                let slot = self.slot(seq)?;
                (slot.generated() && slot.key == n).then_some(seq)
            }
            Key::Client(id) => self
                .table
                .find(hash, |&s| {
                    self.slot(s)
                        .is_some_and(|slot| self.client_is(slot, hash, id))
                })
                .copied(),
        }
    }

    /// Remembers an answer given at `now` under `key` (`hash`: a client id's); evicts
    /// the oldest while more than `cap` are kept or the oldest was given before
    /// `oldest`. Returns the change in findable answers; an answer too large to keep
    /// (an id over 65,535 bytes, 2³² numbers) is not remembered.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn insert(
        &mut self,
        key: Key<'_>,
        hash: u64,
        by: &Arc<Answerer>,
        inputs: &[f64],
        predicted: impl ExactSizeIterator<Item = f64>,
        now: u64,
        oldest: u64,
        cap: usize,
    ) -> i64 {
        let id = match key {
            Key::Client(id) => id,
            Key::Generated(_) => "",
        };
        let data_len = inputs.len() + predicted.len();
        let (Ok(id_len), Ok(data_len)) = (u16::try_from(id.len()), u32::try_from(data_len)) else {
            return 0;
        };
        let before = self.live as i64;
        let by = self.answerer(by);
        let rows = predicted.len();
        let seq = self.next;
        let mut slot = Slot {
            key: hash,
            at: now,
            data_at: (self.data_at + self.data.len() as u64) as u32,
            data_len,
            id_at: (self.ids_at + self.ids.len() as u64) as u32,
            id_len,
            by,
            labelled: 0,
            more: (rows > 64).then(|| {
                Box::new(More {
                    labelled: vec![0; rows.div_ceil(64) - 1].into(),
                    beside: None,
                })
            }),
        };
        match key {
            Key::Generated(n) => {
                slot.key = n;
                slot.by |= GENERATED;
                if self.index.is_empty() {
                    self.index = vec![0; index_len(cap)].into();
                }
                // The answer the entry named (the id's, answered again, or one of an id
                // at least twice the window older) stays in line, found by nobody.
                if self.indexed(n).is_none() {
                    self.live += 1;
                }
                let at = self.index_at(n);
                self.index[at] = (seq as u32).wrapping_add(1);
            }
            Key::Client(id) => {
                match self.find(key, hash) {
                    Some(old) => {
                        let entry = self
                            .table
                            .find_mut(hash, |&s| s == old)
                            .expect("found above");
                        *entry = seq;
                    }
                    None => {
                        let (slots, first) = (&self.slots, self.first());
                        self.table.insert_unique(hash, seq, |&s| {
                            slots.get((s - first) as usize).map_or(0, |slot| slot.key)
                        });
                        self.live += 1;
                    }
                }
                self.ids.extend(id.as_bytes());
            }
        }
        self.data.extend(inputs);
        self.data.extend(predicted);
        self.slots.push_back(slot);
        self.next += 1;
        while let Some(front) = self.slots.front() {
            if self.slots.len() <= cap && front.at >= oldest {
                break;
            }
            self.evict();
        }
        self.shrink();
        self.live as i64 - before
    }

    /// Forgets the oldest answer.
    fn evict(&mut self) {
        let seq = self.first();
        let Some(front) = self.slots.pop_front() else {
            return;
        };
        let findable = if front.generated() {
            // Findable unless its index entry names a newer answer.
            self.index[self.index_at(front.key)] == (seq as u32).wrapping_add(1)
        } else {
            self.table
                .find_entry(front.key, |&s| s == seq)
                .map(|e| e.remove())
                .is_ok()
        };
        if findable {
            self.live -= 1;
        }
        let ids = usize::from(front.id_len);
        self.ids.drain(..ids);
        self.ids_at += ids as u64;
        let data = front.data_len as usize;
        self.data.drain(..data);
        self.data_at += data as u64;
    }

    /// Sets the shadow's answer beside `production`'s answer to `key`.
    pub(super) fn beside(
        &mut self,
        key: Key<'_>,
        hash: u64,
        production: &Arc<Answerer>,
        shadow: &Arc<Answerer>,
        predicted: &[f64],
    ) {
        let Some(seq) = self.find(key, hash) else {
            return;
        };
        let shadow = self.answerer(shadow);
        let answerers = std::mem::take(&mut self.answerers);
        if let Some(slot) = self.slot_mut(seq) {
            let by = &answerers[slot.by()];
            let rows = slot.data_len as usize / (by.features.len() + 1);
            if Arc::ptr_eq(by, production) && rows == predicted.len() {
                slot.more.get_or_insert_default().beside = Some((shadow, predicted.into()));
            }
        }
        self.answerers = answerers;
    }

    /// Marks row `row` (`None`: the only row) of the answer to `key` labelled and says
    /// what it was: if `known` takes the answer (its time and version), and `actual`
    /// reads the truth for its version.
    pub(super) fn label(
        &mut self,
        key: Key<'_>,
        hash: u64,
        row: Option<usize>,
        known: impl FnOnce(u64, &Answerer) -> bool,
        actual: impl FnOnce(&Answerer) -> Result<f64, Outcome>,
    ) -> Result<Found, Outcome> {
        let seq = self.find(key, hash).ok_or(Outcome::UnknownId)?;
        let slot = self.slot(seq).ok_or(Outcome::UnknownId)?;
        let by = &self.answerers[slot.by()];
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
                .more
                .as_ref()
                .and_then(|m| m.beside.as_ref())
                .map(|(s, p)| (self.answerers[usize::from(*s)].clone(), p[row])),
        };
        let slot = self.slot_mut(seq).ok_or(Outcome::UnknownId)?;
        if !slot.mark(row) {
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
