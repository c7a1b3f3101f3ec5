//! Each consumer stage's input rate against its processing rate over time, for its health
//! panel's sparkline: sampled by the engine's once-a-second sampler from counters — the records
//! appended to the stage's input topic (the sum of its partitions' high watermarks) and the
//! records the stage processed (the counter its load's processing rate counts) — and kept in the
//! lag history's bounded series ([`Series`]), so a reload of the page keeps the line.
//!
//! A rate is the counter's growth between two samples over the time between them; a counter
//! that went back (a restart, a sentiment worker removed and its counts with it) gives no rate
//! for that second rather than a negative or made-up one. The snapshot carries the newest
//! [`RATE_POINTS`] of each running stage.

use std::collections::BTreeMap;

use app::api::{StageStatus, TOPIC_REVIEWS, TOPIC_SENTIMENT, TopicInfo};
use app::ops::{RATE_POINTS, StageRates};

use crate::kafka::lag::{Series, SeriesPoint};
use crate::stage::StageId;
use crate::sync::LockExt;

/// The stages sampled: the topic each reads and the counter of the records it processed (the
/// one its `StageLoad::processing_rate` counts; a unit test checks the names).
pub const SAMPLED: [(StageId, &str, &str); 4] = [
    (StageId::Sentiment, TOPIC_REVIEWS, "consumed"),
    (StageId::Aggregate, TOPIC_SENTIMENT, "consumed"),
    (StageId::Parquet, TOPIC_SENTIMENT, "rows"),
    (StageId::Indexer, TOPIC_SENTIMENT, "consumed"),
];

/// One sample of one stage's rates (records/s); `None`: not known for that second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatePoint {
    pub at: i64,
    pub input: Option<f32>,
    pub processed: Option<f32>,
}

/// A coarse bucket holds the mean of its seconds (a rate's max over ten seconds would read as
/// a throughput the stage never sustained).
impl SeriesPoint for RatePoint {
    fn at(&self) -> i64 {
        self.at
    }

    fn merge(&mut self, later: Self, n: u32) {
        let mean = |a: Option<f32>, b: Option<f32>| match (a, b) {
            (Some(a), Some(b)) => Some(a + (b - a) / n as f32),
            (a, b) => a.or(b),
        };
        self.input = mean(self.input, later.input);
        self.processed = mean(self.processed, later.processed);
        self.at = later.at;
    }
}

/// The counters of one stage at one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub at: i64,
    /// Records ever appended to the input topic; `None` when the broker was not read.
    pub input: Option<i64>,
    pub processed: u64,
}

impl Reading {
    /// The rates between `self` and the `later` reading; `None` when no time passed.
    pub fn rates_until(&self, later: &Reading) -> Option<RatePoint> {
        let secs = (later.at - self.at) as f64 / 1000.0;
        if secs <= 0.0 {
            return None;
        }
        let input = match (self.input, later.input) {
            (Some(a), Some(b)) if b >= a => Some(((b - a) as f64 / secs) as f32),
            _ => None,
        };
        let processed = later
            .processed
            .checked_sub(self.processed)
            .map(|n| (n as f64 / secs) as f32);
        Some(RatePoint {
            at: later.at,
            input,
            processed,
        })
    }
}

#[derive(Debug, Default)]
struct StageHistory {
    series: Series<RatePoint>,
    last: Option<Reading>,
}

/// Every sampled stage's rate history (see the module docs).
#[derive(Debug, Default)]
pub struct RateBook {
    stages: std::sync::Mutex<BTreeMap<StageId, StageHistory>>,
}

impl RateBook {
    /// Records one sample taken at `at` (ms) from the stages' counters and, when the broker was
    /// read this time, the topics' high watermarks.
    pub fn record(&self, at: i64, stages: &[StageStatus], topics: Option<&[TopicInfo]>) {
        let mut book = self.stages.lock_or_recover();
        for (id, topic, counter) in SAMPLED {
            let Some(status) = stages.iter().find(|s| s.id == id.as_str()) else {
                continue;
            };
            let reading = Reading {
                at,
                input: topics
                    .and_then(|topics| topics.iter().find(|t| t.name == topic))
                    .map(TopicInfo::high_sum),
                processed: status.counters.get(counter).copied().unwrap_or(0),
            };
            let history = book.entry(id).or_default();
            if let Some(point) = history.last.and_then(|last| last.rates_until(&reading)) {
                history.series.push(point);
            }
            history.last = Some(reading);
        }
    }

    /// The newest [`RATE_POINTS`] of a stage, as the snapshot carries them.
    pub fn recent(&self, id: StageId) -> Option<StageRates> {
        let book = self.stages.lock_or_recover();
        let series = &book.get(&id)?.series;
        let at = series.latest()?.at;
        let whole = |rate: Option<f32>| rate.map(|r| r.max(0.0).round() as u32);
        let (input, processed) = series
            .newest(RATE_POINTS)
            .map(|p| (whole(p.input), whole(p.processed)))
            .unzip();
        Some(StageRates {
            at,
            input,
            processed,
        })
    }

    /// Fills in the running stages' recent rates (those with a load: the ones whose health
    /// panel shows), leaving the others' out of the snapshot.
    pub fn annotate(&self, stages: &mut [StageStatus]) {
        for status in stages {
            let id = status.id.parse::<StageId>().ok();
            status.rates = match id {
                Some(id) if status.load.is_some() => self.recent(id),
                _ => None,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::api::PartitionInfo;
    use app::ops::StageLoad;

    fn topics(name: &str, highs: &[i64]) -> Vec<TopicInfo> {
        vec![TopicInfo {
            name: name.into(),
            partitions: highs
                .iter()
                .enumerate()
                .map(|(id, high)| PartitionInfo {
                    id: id as i32,
                    low: 0,
                    high: *high,
                    rate: 0.0,
                })
                .collect(),
        }]
    }

    fn sentiment(consumed: u64) -> Vec<StageStatus> {
        vec![StageStatus {
            id: "sentiment".into(),
            counters: BTreeMap::from([("consumed".to_owned(), consumed)]),
            load: Some(StageLoad::default()),
            ..StageStatus::default()
        }]
    }

    #[test]
    fn rates_are_counter_growth_over_the_time_between_samples() {
        let before = Reading {
            at: 10_000,
            input: Some(1_000),
            processed: 400,
        };
        let after = Reading {
            at: 12_000,
            input: Some(1_300),
            processed: 500,
        };
        assert_eq!(
            before.rates_until(&after),
            Some(RatePoint {
                at: 12_000,
                input: Some(150.0),
                processed: Some(50.0)
            })
        );
        // A counter that went back (a restart) or a topic not read: unknown, never negative.
        let restarted = Reading {
            at: 13_000,
            input: None,
            processed: 10,
        };
        let point = after.rates_until(&restarted).expect("time passed");
        assert_eq!((point.input, point.processed), (None, None));
        // No time passed: no point.
        assert_eq!(after.rates_until(&after), None);
    }

    #[test]
    fn the_book_samples_every_second_and_serves_a_bounded_minute() {
        let book = RateBook::default();
        // Two partitions each appended 60 a second, the stage processing 100 a second, for
        // 20 minutes.
        for s in 0..1_200i64 {
            let stages = sentiment(s as u64 * 100);
            let topics = topics(TOPIC_REVIEWS, &[s * 60, s * 60]);
            book.record(s * 1_000, &stages, Some(&topics));
        }
        let rates = book.recent(StageId::Sentiment).expect("sampled");
        assert_eq!(rates.at, 1_199_000);
        assert_eq!(rates.input.len(), RATE_POINTS);
        assert_eq!(rates.processed.len(), RATE_POINTS);
        assert!(rates.input.iter().all(|r| *r == Some(120)));
        assert!(rates.processed.iter().all(|r| *r == Some(100)));
        assert_eq!(rates.latest(), (Some(120), Some(100)));
        // The kept history is the lag history's bound: 15 min at 1 s, then 10 s buckets.
        let book = book.stages.lock_or_recover();
        let series = &book[&StageId::Sentiment].series;
        assert!(series.len() <= 900 + 360 + 1, "{}", series.len());
        // Coarse buckets hold their seconds' mean.
        assert_eq!(series.points()[0].processed, Some(100.0));
    }

    #[test]
    fn a_missed_read_is_a_gap_and_only_running_stages_are_annotated() {
        let book = RateBook::default();
        book.record(0, &sentiment(0), Some(&topics(TOPIC_REVIEWS, &[0])));
        book.record(1_000, &sentiment(50), None);
        book.record(2_000, &sentiment(90), Some(&topics(TOPIC_REVIEWS, &[30])));
        let rates = book.recent(StageId::Sentiment).expect("sampled");
        assert_eq!(rates.input, vec![None, None]);
        assert_eq!(rates.processed, vec![Some(50), Some(40)]);
        book.record(3_000, &sentiment(90), Some(&topics(TOPIC_REVIEWS, &[50])));
        assert_eq!(
            book.recent(StageId::Sentiment).expect("").input[2],
            Some(20)
        );
        // Not sampled: no history. Stopped (no load): left out of the snapshot.
        assert_eq!(book.recent(StageId::Indexer), None);
        let mut stages = sentiment(90);
        book.annotate(&mut stages);
        assert!(stages[0].rates.is_some());
        stages[0].load = None;
        book.annotate(&mut stages);
        assert_eq!(stages[0].rates, None);
    }

    #[test]
    fn the_sampled_counters_are_the_stages_processed_counters() {
        use crate::aggregate::AggregateMetrics;
        use crate::aggregate::parquet::ParquetMetrics;
        use crate::index::indexer::IndexerMetrics;
        use crate::sentiment::WorkerMetrics;
        let names = |id| match id {
            StageId::Sentiment => WorkerMetrics::COUNTERS,
            StageId::Aggregate => AggregateMetrics::COUNTERS,
            StageId::Parquet => ParquetMetrics::COUNTERS,
            _ => IndexerMetrics::COUNTERS,
        };
        for (id, _, counter) in SAMPLED {
            assert!(names(id).contains(&counter), "{id}: {counter}");
        }
    }
}
