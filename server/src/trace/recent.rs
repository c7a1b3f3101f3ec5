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
        let inner = self.lock();
        inner
            .batches
            .iter()
            .find(|batch| batch.ids.lines().any(|id| id == review_id))
            .map(|batch| batch.mark)
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
}
