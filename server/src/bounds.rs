//! How many expensive reads run at once. A read past its bound is refused at once with
//! [`EngineError::Busy`] (429 with `Retry-After: 1`), never queued: a room of learners (or a
//! script) must not be able to pile up blocking threads, librdkafka clients and broker load
//! until the pipeline itself stalls.
//!
//! The global request body limit and per-request timeouts are router layers (see `api.rs` and
//! `main.rs`); these are the per-kind concurrency bounds under them.

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::pipeline::EngineError;

/// Message browses at once (`GET /api/kafka/topics/{topic}/messages`). Each holds a blocking
/// thread and one pooled librdkafka consumer (its threads and a read-ahead of up to 4 MB) for
/// up to 5 s; a browse of the embedded broker takes about half a second, so 8 at once serve a
/// room clicking through cell 2 while the reader pool, and so memory, stays small.
pub const MAX_BROWSES: usize = 8;
/// Traces at once (`GET /api/trace`, `GET /api/trace/next`). A trace may scan up to 200,000
/// records of each of two topics for up to 20 s, or wait 10 s for the next review: on two cores
/// more than two at once take CPU and broker time from the pipeline they are tracing.
pub const MAX_TRACES: usize = 2;
/// Searches at once (`GET /api/search`, `GET /api/search/aggregations`). Each counts or
/// aggregates over the whole index on a blocking thread (or holds an Elasticsearch request for
/// up to 30 s); typing in the search box sends one per change.
pub const MAX_SEARCHES: usize = 4;
/// Cluster listings at once (`GET /api/kafka/topics`, `GET /api/kafka/groups`): a listing asks
/// the broker for every partition's watermarks (and every group's offsets), up to 5 s each when
/// the broker is down. The UI reads them from the live feed; these routes are for scripts. A
/// tail and its check (`…/tail`, `…/tail/check`) look their topic's partitions up under the
/// same bound, before a tail's place is taken.
pub const MAX_LISTINGS: usize = 4;

/// What a bound limits; names the read in the 429's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bounded {
    Browse,
    Trace,
    Search,
    Listing,
}

impl Bounded {
    fn describe(self) -> &'static str {
        match self {
            Bounded::Browse => "message browses",
            Bounded::Trace => "traces",
            Bounded::Search => "searches",
            Bounded::Listing => "topic and group listings",
        }
    }
}

/// One semaphore per kind of expensive read.
pub struct Bounds {
    browses: Semaphore,
    traces: Semaphore,
    searches: Semaphore,
    listings: Semaphore,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            browses: Semaphore::new(MAX_BROWSES),
            traces: Semaphore::new(MAX_TRACES),
            searches: Semaphore::new(MAX_SEARCHES),
            listings: Semaphore::new(MAX_LISTINGS),
        }
    }
}

impl Bounds {
    /// A permit to run one read of this kind, held until dropped; [`EngineError::Busy`] when
    /// the bound is reached.
    pub fn try_acquire(&self, what: Bounded) -> Result<SemaphorePermit<'_>, EngineError> {
        let (semaphore, max) = match what {
            Bounded::Browse => (&self.browses, MAX_BROWSES),
            Bounded::Trace => (&self.traces, MAX_TRACES),
            Bounded::Search => (&self.searches, MAX_SEARCHES),
            Bounded::Listing => (&self.listings, MAX_LISTINGS),
        };
        semaphore.try_acquire().map_err(|_| {
            EngineError::Busy(format!(
                "busy: {max} {} are already running (the most at once); try again in a second",
                what.describe()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_bound_is_refused_at_once_and_a_released_permit_is_reusable() {
        let bounds = Bounds::default();
        let held: Vec<_> = (0..MAX_TRACES)
            .map(|_| {
                bounds
                    .try_acquire(Bounded::Trace)
                    .expect("within the bound")
            })
            .collect();
        let refused = bounds
            .try_acquire(Bounded::Trace)
            .expect_err("past the bound");
        assert!(matches!(refused, EngineError::Busy(_)));
        let message = refused.to_string();
        assert!(message.contains("traces"), "{message}");
        assert!(message.contains("try again"), "{message}");
        // Other kinds have their own bound.
        assert!(bounds.try_acquire(Bounded::Browse).is_ok());
        drop(held);
        assert!(bounds.try_acquire(Bounded::Trace).is_ok());
    }
}
