//! Latency histograms for `GET /metrics`: fixed buckets, one relaxed atomic increment per bucket
//! hit plus one for the sum, so observing a latency on the hot path (once per review, per
//! acknowledgement, per bulk) costs a few nanoseconds and never takes a lock.
//!
//! Why not a metrics crate: `prometheus-client` encodes its own registry in the OpenMetrics
//! format (not the 0.0.4 text `crate::metrics` writes) and its histogram takes a lock per
//! observation; `metrics` + `metrics-exporter-prometheus` install a process-wide recorder whose
//! series outlive a stage's run, while every other figure Pipebook exports counts "since the
//! stage last started" — and `_count` has to equal the stage's counter in `GET /api/pipeline`.
//! A histogram owned by the stage's metrics, reset with its counters, keeps the two equal.
//!
//! The buckets ([`BOUNDS_US`]) run 1-2.5-5 per decade from 1 ms to 10 s, then 30 s, 1 min, 2 min
//! and 5 min: an acknowledgement at `linger.ms` 5 or a bulk on the embedded index takes
//! milliseconds, a review waiting behind a backlog or a paused broker takes minutes. Within a
//! decade `histogram_quantile` is then off by at most one step (×2–2.5); 18 series per
//! histogram keep a scrape small.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets (`le`), in microseconds, ascending. A bucket holds the latencies
/// above the previous bound up to and including its own; one more bucket holds the rest (`+Inf`).
pub const BOUNDS_US: [u64; 17] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    120_000_000,
    300_000_000,
];

/// Buckets including the last one, past every bound.
const BUCKETS: usize = BOUNDS_US.len() + 1;

/// Latencies observed since the last [`Self::reset`], shared by the threads that observe them
/// and the one that reads them.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Observations per bucket, not cumulative (one atomic per bucket: observing touches one).
    counts: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl LatencyHistogram {
    pub fn observe(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        // The first bound at or above the latency: `le` is inclusive.
        let bucket = BOUNDS_US.partition_point(|bound| *bound < us);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Observes the time between two wall-clock instants in ms since the epoch (a record's
    /// timestamp and now); a clock step that puts `to` before `from` counts as 0.
    pub fn observe_between_ms(&self, from: i64, to: i64) {
        let ms = u64::try_from(to.saturating_sub(from)).unwrap_or(0);
        self.observe(Duration::from_millis(ms));
    }

    pub fn reset(&self) {
        for count in &self.counts {
            count.store(0, Ordering::Relaxed);
        }
        self.sum_us.store(0, Ordering::Relaxed);
    }

    /// The figures now. Read while others observe, the sum may include an observation whose
    /// bucket was read before it landed (or miss one); the counts are each exact.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

/// A histogram's figures at one moment, to render or to add up (a stage's workers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    counts: [u64; BUCKETS],
    sum_us: u64,
}

impl HistogramSnapshot {
    /// Observations, over every bucket (so it always equals the `+Inf` bucket).
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The sum of the latencies, seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_us as f64 / 1e6
    }

    /// `(le in seconds, observations at or below it)`, the bounds ascending and the last one
    /// `+Inf`: the cumulative counts Prometheus' `_bucket` series carry.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let bounds = BOUNDS_US
            .iter()
            .map(|us| *us as f64 / 1e6)
            .chain([f64::INFINITY]);
        let mut total = 0;
        bounds
            .zip(self.counts)
            .map(|(le, count)| {
                total += count;
                (le, total)
            })
            .collect()
    }

    /// Adds another histogram's figures (same buckets) to these.
    pub fn add(&mut self, other: &HistogramSnapshot) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
        self.sum_us += other.sum_us;
    }
}

/// One latency histogram a stage exports: its metric name in `/metrics`, what it measures, and
/// the stage counter (`GET /api/pipeline`) that counts the same events as its `_count`.
#[derive(Debug, Clone, PartialEq)]
pub struct StageLatency {
    /// The family's name, `pipebook_…_seconds`.
    pub metric: &'static str,
    pub help: &'static str,
    /// The stage counter its `_count` equals.
    pub counter: &'static str,
    pub histogram: HistogramSnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_latency_lands_in_the_first_bucket_whose_bound_is_at_or_above_it() {
        let histogram = LatencyHistogram::default();
        for ms in [0, 1, 2, 3, 400, 400_000] {
            histogram.observe(Duration::from_millis(ms));
        }
        let snapshot = histogram.snapshot();
        let cumulative = snapshot.cumulative();
        let at = |le: f64| {
            cumulative
                .iter()
                .find(|(bound, _)| *bound == le)
                .map(|(_, n)| *n)
        };
        // 0 and 1 ms are ≤ 1 ms (inclusive bound); 2 ms ≤ 2.5 ms; 3 ms ≤ 5 ms; 400 ms ≤ 0.5 s;
        // 400 s is past every bound.
        assert_eq!(at(0.001), Some(2));
        assert_eq!(at(0.0025), Some(3));
        assert_eq!(at(0.005), Some(4));
        assert_eq!(at(0.25), Some(4));
        assert_eq!(at(0.5), Some(5));
        assert_eq!(at(300.0), Some(5));
        assert_eq!(at(f64::INFINITY), Some(6));
        assert_eq!(snapshot.count(), 6);
        assert!((snapshot.sum_seconds() - 400.406).abs() < 1e-9);
        assert!(
            cumulative
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        );
    }

    #[test]
    fn a_clock_step_backwards_counts_as_no_time_and_reset_empties_it() {
        let histogram = LatencyHistogram::default();
        histogram.observe_between_ms(2_000, 1_500);
        histogram.observe_between_ms(1_000, 1_030);
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.cumulative()[0], (0.001, 1));
        assert_eq!(snapshot.count(), 2);
        assert!((snapshot.sum_seconds() - 0.03).abs() < 1e-9);
        histogram.reset();
        assert_eq!(histogram.snapshot(), HistogramSnapshot::default());
    }

    #[test]
    fn snapshots_add_up_bucket_by_bucket() {
        let (a, b) = (LatencyHistogram::default(), LatencyHistogram::default());
        a.observe(Duration::from_millis(7));
        b.observe(Duration::from_millis(7));
        b.observe(Duration::from_secs(3));
        let mut total = a.snapshot();
        total.add(&b.snapshot());
        assert_eq!(total.count(), 3);
        let cumulative = total.cumulative();
        assert_eq!(cumulative[3], (0.01, 2));
        assert_eq!(cumulative[11], (5.0, 3));
    }
}
