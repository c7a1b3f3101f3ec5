//! The indexer's run loop and metrics: a consumer group on `reviews.sentiment` that bulk-indexes.
//!
//! Loop: read a batch (bounded by documents and bytes) → build documents, reviews' and tweets'
//! (malformed records go to the dead-letter topic with their reason) → bulk-index, retrying with
//! backoff while the backend is down → only then commit the offsets. A crash before the commit
//! re-reads the batch, and the documents overwrite themselves by `review_id`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use app::api::{IndexerConfig, TOPIC_SENTIMENT};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;

use super::{Backend, SearchBackend, SearchDoc, SearchError};
use crate::error::ConfigError;
use crate::histogram::{LatencyHistogram, StageLatency};
use crate::kafka::KafkaSettings;
use crate::kafka::batch::{self, BatchLimits, Record, close_off_runtime, next_batch};
use crate::kafka::inspect::{GroupRegistry, RegisteringContext};
use crate::members::MemberFigures;
use crate::records::{DeadLetter, Labelled, deliver_dead_letter, parse_labelled};
use crate::stage::{PhaseClock, StageContext};
use crate::sync::LockExt;
use crate::trace::recent::{BatchIds, BatchMark, RecentBatches};

const STAGE: &str = "indexer";
/// The server's indexer's name in its group (a `pipebook worker` process's is
/// `p<pid>-indexer`).
pub const MEMBER: &str = "indexer-1";
/// How long a batch waits to fill once it has a record.
const BATCH_WAIT: Duration = Duration::from_millis(200);
/// First and longest pause between retries of a failed bulk.
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// Bulk latencies kept for the percentiles the cell shows.
const LATENCY_WINDOW: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    #[error("Kafka client: {0}")]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Search(#[from] SearchError),
}

/// Checks a config before the stage starts; the message names the field.
pub fn validate(config: &IndexerConfig) -> Result<(), ConfigError> {
    if !(1..=10_000).contains(&config.batch_docs) {
        return Err(ConfigError::new(
            "batch_docs",
            format!("must be 1..=10000, got {}", config.batch_docs),
        ));
    }
    if !(1024..=100 * 1024 * 1024).contains(&config.batch_bytes) {
        return Err(ConfigError::new(
            "batch_bytes",
            format!("must be 1 KiB..=100 MiB, got {}", config.batch_bytes),
        ));
    }
    crate::kafka::check_group_name(&config.group).map_err(|e| ConfigError::new("group", e))?;
    Ok(())
}

crate::counters! {
    /// Counters of the indexer since it last started.
    pub struct IndexerMetrics {
        counters {
            consumed, indexed, dlq, retries, bulks,
            /// Records without a label (companies: no text) left out: nothing to search.
            skipped,
            /// Microseconds building documents / waiting on poll / waiting on the search engine.
            busy_us, idle_us, backpressured_us,
        }
        meter: crate::stage::LoadMeter,
        /// Milliseconds each recent bulk took, oldest first.
        latencies: Mutex<VecDeque<u64>>,
        /// Every bulk's time since the run started (`/metrics`), one per `bulks`.
        bulk_histogram: LatencyHistogram,
        /// The reviews each recent bulk indexed, and when the engine accepted them (for tracing).
        pub bulks_indexed: RecentBatches,
        /// When the current run started, ms since the epoch (for its heartbeat).
        started_at: AtomicI64,
    }
}

impl IndexerMetrics {
    /// Its member's figures, for its heartbeat (`crate::members`).
    pub fn figures(&self) -> MemberFigures {
        MemberFigures {
            processed: self.consumed.load(Ordering::Relaxed),
            errors: self.dlq.load(Ordering::Relaxed),
            started_at: self.started_at.load(Ordering::Relaxed),
        }
    }

    pub fn reset(&self) {
        self.reset_counters();
        self.started_at
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
        self.latencies.lock_or_recover().clear();
        self.bulk_histogram.reset();
        self.bulks_indexed.clear();
    }

    fn record_bulk(&self, took: Duration) {
        self.bulks.fetch_add(1, Ordering::Relaxed);
        self.bulk_histogram.observe(took);
        let mut latencies = self.latencies.lock_or_recover();
        if latencies.len() == LATENCY_WINDOW {
            latencies.pop_front();
        }
        latencies.push_back(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
    }

    pub fn bulk_duration(&self) -> StageLatency {
        StageLatency {
            metric: "pipebook_indexer_bulk_duration_seconds",
            help: "How long each bulk of documents took until the search engine accepted it, its retries and their back-off while the engine is down included (count = the indexer's bulks).",
            counter: "bulks",
            histogram: self.bulk_histogram.snapshot(),
        }
    }

    /// Where the loop spends its time.
    pub fn load(&self) -> Option<app::ops::StageLoad> {
        self.meter.read(crate::stage::LoadTotals {
            busy_us: self.busy_us.load(Ordering::Relaxed),
            idle_us: self.idle_us.load(Ordering::Relaxed),
            backpressured_us: self.backpressured_us.load(Ordering::Relaxed),
            processed: self.consumed.load(Ordering::Relaxed),
            loops: 1,
        })
    }

    /// The counters, and the recent bulks' latency.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let mut counters = self.counter_values();
        let latencies = self.latencies.lock_or_recover();
        if let Some(last) = latencies.back() {
            let mut sorted: Vec<u64> = latencies.iter().copied().collect();
            sorted.sort_unstable();
            counters.insert("bulk_ms_last".into(), *last);
            counters.insert("bulk_ms_p50".into(), percentile(&sorted, 0.50));
            counters.insert("bulk_ms_p99".into(), percentile(&sorted, 0.99));
        }
        counters
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u64], quantile: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Everything the run loop needs.
pub struct IndexerSetup {
    pub config: IndexerConfig,
    pub registry: std::sync::Arc<GroupRegistry>,
    pub backend: std::sync::Arc<Backend>,
    pub kafka: KafkaSettings,
    pub metrics: std::sync::Arc<IndexerMetrics>,
    /// Its name in the group (`client.id`): [`MEMBER`] in the server, `p<pid>-indexer` in a
    /// worker process.
    pub member: String,
}

type IndexerConsumer = StreamConsumer<RegisteringContext>;

pub async fn run(setup: IndexerSetup, ctx: StageContext) -> Result<(), IndexerError> {
    let group = setup.config.group.clone();
    setup.registry.declare(&group, &[TOPIC_SENTIMENT]);
    let consumer: IndexerConsumer = setup
        .kafka
        .client_config()
        .set("group.id", &setup.config.group)
        .set("client.id", &setup.member)
        .set("fetch.wait.max.ms", "100")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create_with_context(RegisteringContext {
            registry: setup.registry.clone(),
            group: group.clone(),
            member: setup.member.clone(),
        })?;
    let producer = setup.kafka.reliable_producer()?;
    let outcome = match with_retry(&ctx, &setup.metrics, || setup.backend.prepare()).await {
        Ok(Some(())) => {
            consumer.subscribe(&[TOPIC_SENTIMENT])?;
            ctx.set_detail(format!(
                "indexing {TOPIC_SENTIMENT} in group {}",
                setup.config.group
            ));
            // Killed (a crash): the batch in hand is dropped uncommitted, and the consumer is
            // still closed below, off the runtime threads.
            tokio::select! {
                _ = ctx.kill.cancelled() => Ok(()),
                outcome = index_until_stopped(&setup, &consumer, &producer, &ctx) => outcome,
            }
        }
        Ok(None) => Ok(()),
        Err(error) => Err(error),
    };
    close_off_runtime(consumer, producer).await;
    setup.registry.remove_member(&group, &setup.member);
    Ok(outcome?)
}

async fn index_until_stopped(
    setup: &IndexerSetup,
    consumer: &IndexerConsumer,
    producer: &FutureProducer,
    ctx: &StageContext,
) -> Result<(), SearchError> {
    let limits = BatchLimits {
        records: setup.config.batch_docs as usize,
        bytes: setup.config.batch_bytes as usize,
        wait: BATCH_WAIT,
    };
    let metrics = &setup.metrics;
    let mut clock = PhaseClock::new();
    loop {
        let batch = tokio::select! {
            _ = ctx.cancel.cancelled() => return Ok(()),
            batch = next_batch(consumer, limits) => batch,
        };
        clock.mark(&metrics.idle_us);
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                ctx.report_error(format!("consume failed, retrying: {error}"));
                tokio::time::sleep(BACKOFF_START).await;
                continue;
            }
        };
        let count = batch.len() as u64;
        setup.metrics.consumed.fetch_add(count, Ordering::Relaxed);
        // Cancelled while the backend was down: leave the batch uncommitted for next time.
        if !index_batch(setup, producer, ctx, &batch, &mut clock).await? {
            return Ok(());
        }
        if let Err(error) = batch::commit(consumer, TOPIC_SENTIMENT, &batch) {
            // A partition revoked meanwhile: its next owner re-reads; the ids keep it idempotent.
            tracing::debug!(%error, "indexer commit refused");
        }
        clock.mark(&metrics.backpressured_us);
    }
}

/// Indexes one batch and dead-letters what cannot be indexed. False when cancelled first.
async fn index_batch(
    setup: &IndexerSetup,
    producer: &FutureProducer,
    ctx: &StageContext,
    batch: &[Record],
    clock: &mut PhaseClock,
) -> Result<bool, SearchError> {
    let mut letters = Vec::new();
    let mut docs = Vec::with_capacity(batch.len());
    let mut sources = Vec::with_capacity(batch.len());
    for record in batch {
        match document(&record.payload) {
            Ok(Some(doc)) => {
                docs.push(doc);
                sources.push(record);
            }
            Ok(None) => {
                setup.metrics.skipped.fetch_add(1, Ordering::Relaxed);
            }
            Err(reason) => letters.push(dead_letter(record, reason)),
        }
    }
    // Building the documents is the indexer's own work; the bulks (and their retries) wait on
    // the search engine.
    clock.mark(&setup.metrics.busy_us);
    while !docs.is_empty() {
        let started = Instant::now();
        let sent = docs.clone();
        let attempt = || setup.backend.bulk(sent.clone());
        let Some(outcome) = with_retry(ctx, &setup.metrics, attempt).await? else {
            return Ok(false);
        };
        setup.metrics.record_bulk(started.elapsed());
        setup
            .metrics
            .indexed
            .fetch_add(outcome.indexed as u64, Ordering::Relaxed);
        record_indexed(&setup.metrics, &docs, &sources, &outcome);
        for (position, reason) in &outcome.rejected {
            letters.push(dead_letter(sources[*position], reason.clone()));
        }
        if !outcome.retry.is_empty() {
            setup.metrics.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(BACKOFF_START).await;
        }
        sources = outcome.retry.iter().map(|&i| sources[i]).collect();
        docs = outcome.retry.iter().map(|&i| docs[i].clone()).collect();
    }
    for letter in &letters {
        if !deliver_dead_letter(producer, letter, &ctx.cancel).await {
            return Ok(false);
        }
        setup.metrics.dlq.fetch_add(1, Ordering::Relaxed);
    }
    Ok(true)
}

/// Remembers which reviews this bulk indexed (not those to retry or refused).
/// Each with the place it was read from in `reviews.sentiment`, so a trace names this copy.
fn record_indexed(
    metrics: &IndexerMetrics,
    docs: &[SearchDoc],
    sources: &[&Record],
    outcome: &super::BulkOutcome,
) {
    let failed = |i: usize| outcome.retry.contains(&i) || outcome.rejected.iter().any(|r| r.0 == i);
    let mut ids = BatchIds::default();
    for (i, (doc, source)) in docs.iter().zip(sources).enumerate() {
        if !failed(i) {
            ids.push_from(&doc.review_id, source.partition, source.offset);
        }
    }
    let mark = BatchMark {
        number: metrics.bulks.load(Ordering::Relaxed),
        at_ms: chrono::Utc::now().timestamp_millis(),
    };
    metrics.bulks_indexed.record(mark, ids);
}

/// A review's or a tweet's document (`SearchDoc`); `None` for a record without a label (a
/// company: no text to search); anything else is refused with the reason.
fn document(payload: &[u8]) -> Result<Option<SearchDoc>, String> {
    match parse_labelled(payload)? {
        Labelled::Unlabelled(_) => Ok(None),
        labelled => SearchDoc::from_labelled(labelled).map(Some),
    }
}

fn dead_letter(record: &Record, reason: String) -> DeadLetter {
    let origin = format!("{TOPIC_SENTIMENT}/{}@{}", record.partition, record.offset);
    DeadLetter::new(STAGE, reason, &record.payload, Some(origin))
}

/// Runs `attempt` until it succeeds, backing off while the backend is unavailable and showing
/// why on the stage. `Ok(None)` when cancelled; `Err` when a retry cannot help (bad mapping,
/// bad credentials): the stage then fails with that error.
async fn with_retry<T, F, Fut>(
    ctx: &StageContext,
    metrics: &IndexerMetrics,
    attempt: F,
) -> Result<Option<T>, SearchError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, SearchError>>,
{
    let mut pause = BACKOFF_START;
    let mut failures = 0_u32;
    loop {
        let result = tokio::select! {
            _ = ctx.cancel.cancelled() => return Ok(None),
            result = attempt() => result,
        };
        match result {
            Ok(value) => {
                if failures > 0 {
                    ctx.clear_error();
                }
                return Ok(Some(value));
            }
            Err(error) if error.is_retryable() => {
                failures += 1;
                metrics.retries.fetch_add(1, Ordering::Relaxed);
                ctx.report_error(format!(
                    "{error} — retry {failures} in {:.1} s; offsets not committed",
                    pause.as_secs_f64()
                ));
                tokio::select! {
                    _ = ctx.cancel.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(BACKOFF_MAX);
            }
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 0.50), 50);
        assert_eq!(percentile(&sorted, 0.99), 99);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn config_limits_are_named() {
        let mut config = IndexerConfig::default();
        validate(&config).expect("defaults are valid");
        config.batch_docs = 0;
        assert!(validate(&config).expect_err("0").field == "batch_docs");
        config.batch_docs = 10;
        config.batch_bytes = 10;
        assert!(validate(&config).expect_err("tiny").field == "batch_bytes");
    }

    #[test]
    fn malformed_records_get_a_reason() {
        let reason = document(b"{\"review_id\": 1}").expect_err("malformed");
        assert!(reason.starts_with("not an enriched review"), "{reason}");
        // A company, as sentiment forwards it unlabelled: skipped, not refused.
        let company = br#"{"dataset":"companies","company_id":"c1","name":"A","country":"Peru","industry":"Energy","employees":3,"founded":1999,"created_at":"2024-01-01 09:00:00","skipped":"companies has no text field: nothing to classify"}"#;
        assert!(matches!(document(company), Ok(None)));
    }
}
