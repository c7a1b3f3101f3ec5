//! A bounded memory of recent batches of reviews — the streamer's chunks, the aggregate stage's
//! triggers, the indexer's bulks — so a trace can say which batch a review was in and when.
//!
//! Stages write to it once per batch (one string of joined ids, no per-review allocation), and it
//! forgets the oldest batches once it holds more than its capacity of review ids. Nothing of it
//! goes to the broker: the tracing costs the pipeline nothing but this memory.

use crate::sync::LockExt;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

/// Review ids each log keeps by default (about 5 MB of ids).
pub const KEPT_IDS: usize = 200_000;

/// Which batch a review was in, and when that batch happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMark {
    /// 1-based number of the batch since the stage started.
    pub number: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
}

struct Batch {
    mark: BatchMark,
    /// The batch's review ids, each followed by '\n'.
    ids: String,
    count: usize,
}

#[derive(Default)]
struct Inner {
    batches: VecDeque<Batch>,
    ids: usize,
}

/// The recent batches of one stage.
pub struct RecentBatches {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for RecentBatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecentBatches")
            .field("ids", &self.len())
            .finish()
    }
}

impl Default for RecentBatches {
    fn default() -> Self {
        Self::new(KEPT_IDS)
    }
}

/// Collects one batch's ids before [`RecentBatches::record`].
#[derive(Default)]
pub struct BatchIds {
    ids: String,
    count: usize,
}

impl BatchIds {
    pub fn push(&mut self, review_id: &str) {
        self.ids.push_str(review_id);
        self.ids.push('\n');
        self.count += 1;
    }

    /// A review read from `partition` at `offset` of its input topic: a copy a trace can name
    /// exactly, where the id alone is ambiguous (a replayed dataset writes the same ids again).
    pub fn push_from(&mut self, review_id: &str, partition: i32, offset: i64) {
        use std::fmt::Write as _;
        let _ = writeln!(self.ids, "{review_id}\t{partition}\t{offset}");
        self.count += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl<'a> FromIterator<&'a str> for BatchIds {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let mut ids = BatchIds::default();
        for id in iter {
            ids.push(id);
        }
        ids
    }
}

impl RecentBatches {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock_or_recover()
    }

    /// Remembers a batch, forgetting the oldest ones beyond the capacity.
    pub fn record(&self, mark: BatchMark, ids: BatchIds) {
        if ids.is_empty() {
            return;
        }
        let mut inner = self.lock();
        inner.ids += ids.count;
        inner.batches.push_back(Batch {
            mark,
            ids: ids.ids,
            count: ids.count,
        });
        while inner.ids > self.capacity && inner.batches.len() > 1 {
            if let Some(oldest) = inner.batches.pop_front() {
                inner.ids -= oldest.count;
            }
        }
    }

    /// The first remembered batch that held `review_id` (a review read twice, at-least-once, is
    /// in two batches; the first is when it got there).
    pub fn find(&self, review_id: &str) -> Option<BatchMark> {
        self.holding(review_id).into_iter().next()
    }

    /// The first batch that held `review_id` at or after `from_ms`: a replayed dataset writes
    /// the same ids again, and a downstream stage's batch of an earlier copy is not this copy's.
    /// Any batch when the time is not known.
    pub fn find_from(&self, review_id: &str, from_ms: Option<i64>) -> Option<BatchMark> {
        self.holding(review_id)
            .into_iter()
            .find(|mark| from_ms.is_none_or(|from| mark.at_ms >= from))
    }

    /// The last batch that held `review_id` at or before `until_ms` (the streamer's chunk of a
    /// copy is written before the copy is produced). The first one when the time is not known.
    pub fn find_until(&self, review_id: &str, until_ms: Option<i64>) -> Option<BatchMark> {
        let held = self.holding(review_id);
        match until_ms {
            Some(until) => held.into_iter().rev().find(|mark| mark.at_ms <= until),
            None => held.into_iter().next(),
        }
    }

    /// The first batch that held the copy of `review_id` read from `partition` at `offset`.
    pub fn find_at(&self, review_id: &str, partition: i32, offset: i64) -> Option<BatchMark> {
        let line = format!("{review_id}\t{partition}\t{offset}");
        let inner = self.lock();
        inner
            .batches
            .iter()
            .find(|batch| batch.ids.lines().any(|l| l == line))
            .map(|batch| batch.mark)
    }

    /// The marks of the batches holding `review_id`, oldest first.
    fn holding(&self, review_id: &str) -> Vec<BatchMark> {
        let inner = self.lock();
        inner
            .batches
            .iter()
            .filter(|batch| batch.ids.lines().any(|line| id_of(line) == review_id))
            .map(|batch| batch.mark)
            .collect()
    }

    /// How many review ids are remembered now.
    pub fn len(&self) -> usize {
        self.lock().ids
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&self) {
        *self.lock() = Inner::default();
    }
}

/// The review id of a remembered line (`id`, or `id<TAB>partition<TAB>offset`).
fn id_of(line: &str) -> &str {
    line.split('\t').next().unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(number: u64) -> BatchMark {
        BatchMark {
            number,
            at_ms: 1_000 * number as i64,
        }
    }

    #[test]
    fn finds_the_first_batch_holding_an_id_and_forgets_the_oldest() {
        let log = RecentBatches::new(4);
        log.record(mark(1), ["a", "b"].into_iter().collect());
        log.record(mark(2), ["c", "a"].into_iter().collect());
        assert_eq!(log.find("a"), Some(mark(1)));
        assert_eq!(log.find("c"), Some(mark(2)));
        // "ab" is not "a": ids are compared whole.
        assert_eq!(log.find("ab"), None);
        log.record(mark(3), ["d"].into_iter().collect());
        assert_eq!(log.len(), 3, "batch 1 forgotten to stay within 4 ids");
        assert_eq!(log.find("b"), None);
        assert_eq!(log.find("a"), Some(mark(2)));
        log.record(mark(4), BatchIds::default());
        assert_eq!(log.len(), 3, "empty batches are not kept");
        log.clear();
        assert!(log.is_empty());
    }

    #[test]
    fn a_replayed_id_is_found_in_the_batch_of_its_own_copy() {
        let log = RecentBatches::new(100);
        // Copy 1 in batches 1 and 2 (read twice), copy 2 in batch 4.
        log.record(mark(1), ["a"].into_iter().collect());
        log.record(mark(2), ["a"].into_iter().collect());
        log.record(mark(3), ["b"].into_iter().collect());
        log.record(mark(4), ["a"].into_iter().collect());
        // Downstream of copy 2, produced at 3,500 ms: batch 4, not batch 1.
        assert_eq!(log.find_from("a", Some(3_500)), Some(mark(4)));
        assert_eq!(log.find_from("a", Some(4_001)), None, "copy 2 not read yet");
        assert_eq!(log.find_from("a", None), Some(mark(1)));
        // Upstream of copy 2 (the streamer's chunk): the last batch at or before it.
        assert_eq!(log.find_until("a", Some(4_200)), Some(mark(4)));
        assert_eq!(log.find_until("a", Some(3_500)), Some(mark(2)));
        assert_eq!(log.find_until("a", Some(500)), None);
        assert_eq!(log.find_until("a", None), Some(mark(1)));
    }

    #[test]
    fn a_copy_read_from_a_known_place_is_found_exactly() {
        let log = RecentBatches::new(100);
        let at = |places: &[(&str, i32, i64)]| {
            let mut ids = BatchIds::default();
            for (id, partition, offset) in places {
                ids.push_from(id, *partition, *offset);
            }
            ids
        };
        log.record(mark(1), at(&[("a", 0, 10), ("b", 0, 11)]));
        log.record(mark(2), at(&[("a", 0, 500)]));
        assert_eq!(log.find_at("a", 0, 500), Some(mark(2)));
        assert_eq!(log.find_at("a", 0, 10), Some(mark(1)));
        assert_eq!(log.find_at("a", 1, 500), None);
        // By id alone, the positions do not get in the way.
        assert_eq!(log.find("a"), Some(mark(1)));
        assert_eq!(log.find_from("b", Some(0)), Some(mark(1)));
    }
}
