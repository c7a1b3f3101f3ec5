//! One sentiment worker: a real consumer in the group, with its own idempotent producer.
//!
//! Loop: read a batch → classify → produce every output record → wait for the broker's
//! acknowledgements → only then commit the batch's offsets. A crash anywhere before the commit
//! means the batch is read again (at-least-once): duplicates are possible, loss is not.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use app::api::{DatasetDescription, EnrichedReview, LatestReview, TOPIC_REVIEWS, TOPIC_SENTIMENT};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, TopicPartitionList};

use super::{Classifier, SentimentRuntime, WorkerMetrics};
use crate::kafka::KafkaSettings;
use crate::kafka::batch::{self, BatchLimits, Record, close_off_runtime, next_batch};
use crate::records::{
    CheckedRecord, DeadLetter, SKIPPED_FIELD, deliver_dead_letter, parse_dataset_record,
    parse_review,
};
use crate::stage::{PhaseClock, StageContext};
use tokio_util::sync::CancellationToken;

/// Most records handled (and committed) together, and how long a batch waits to fill.
const BATCH: BatchLimits = BatchLimits {
    records: 500,
    bytes: 8 * 1024 * 1024,
    wait: Duration::from_millis(20),
};
const RETRY_PAUSE: Duration = Duration::from_millis(500);
const STAGE: &str = "sentiment";

pub(super) struct WorkerSetup {
    pub id: String,
    pub group: String,
    pub kafka: KafkaSettings,
    pub classifier: Arc<Classifier>,
    /// Extra work per review (the slow-consumer incident's knob; zero otherwise).
    pub slow: Duration,
    /// Attempts at a review that fails to classify before it is dead-lettered; 0 = never.
    pub dead_letter_after: u8,
    pub runtime: Arc<SentimentRuntime>,
    pub metrics: Arc<WorkerMetrics>,
}

/// Reports this worker's partition assignments as the group rebalances, and remembers which
/// partitions were taken away while a batch was filling.
struct WorkerContext {
    id: String,
    runtime: Arc<SentimentRuntime>,
    revoked: std::sync::Mutex<BTreeSet<i32>>,
}

impl WorkerContext {
    /// Partitions revoked since the last call.
    fn take_revoked(&self) -> BTreeSet<i32> {
        std::mem::take(
            &mut *self
                .revoked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl ClientContext for WorkerContext {}

impl ConsumerContext for WorkerContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = |tpl: &TopicPartitionList| {
            tpl.elements()
                .iter()
                .filter(|e| e.topic() == TOPIC_REVIEWS)
                .map(|e| e.partition())
                .collect::<Vec<_>>()
        };
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.runtime
                    .assignment_changed(&self.id, true, partitions(tpl));
            }
            Rebalance::Revoke(tpl) => {
                let revoked = partitions(tpl);
                self.revoked
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend(revoked.iter().copied());
                self.runtime.assignment_changed(&self.id, false, revoked);
            }
            Rebalance::Error(error) => {
                tracing::warn!(worker = %self.id, %error, "rebalance error");
            }
        }
    }
}

type WorkerConsumer = StreamConsumer<WorkerContext>;

/// The worker's run loop under its [`crate::stage::Lifecycle`]: `ctx.cancel` stops it gracefully
/// (finish the batch, commit, leave the group), `ctx.kill` crashes it (drop the batch in hand
/// uncommitted). A loop that fails leaves the worker `failed` with its error.
pub(super) async fn run(setup: WorkerSetup, ctx: StageContext) -> Result<(), KafkaError> {
    let outcome = run_loop(&setup, &ctx).await;
    if let Err(error) = &outcome {
        tracing::error!(worker = %setup.id, %error, "sentiment worker failed");
        setup.runtime.worker_failed(&setup.id);
    }
    outcome
}

async fn run_loop(setup: &WorkerSetup, ctx: &StageContext) -> Result<(), KafkaError> {
    let consumer: WorkerConsumer = setup
        .kafka
        .client_config()
        .set("group.id", &setup.group)
        .set("client.id", &setup.id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // Short timeouts so a learner sees a dead worker's partitions move within seconds.
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        // The embedded broker answers a fetch only when its wait expires, so the wait is the
        // floor of every record's latency: 100 ms instead of librdkafka's 500.
        .set("fetch.wait.max.ms", "100")
        .create_with_context(WorkerContext {
            id: setup.id.clone(),
            runtime: setup.runtime.clone(),
            revoked: Default::default(),
        })?;
    let producer = setup.kafka.reliable_producer()?;
    consumer.subscribe(&[TOPIC_REVIEWS])?;
    let mut attempts = Attempts::default();
    let metrics = &setup.metrics;
    let mut clock = PhaseClock::new();
    loop {
        consumer.context().take_revoked();
        let batch = tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            _ = ctx.kill.cancelled() => break,
            batch = next_batch(&consumer, BATCH) => batch,
        };
        clock.mark(&metrics.idle_us);
        let batch = match batch {
            Ok(batch) => after_rebalance(&consumer, batch),
            Err(error) => {
                tracing::warn!(worker = %setup.id, %error, "consume failed; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        let (batch, stalled) = hold_back_failing(&consumer, batch, setup, &mut attempts);
        if stalled {
            // A retry, not a spin: the failing review is fetched again after a pause.
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        if batch.is_empty() {
            continue;
        }
        setup
            .metrics
            .consumed
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let crashed = tokio::select! {
            _ = ctx.kill.cancelled() => true,
            _ = async {
                let outputs = enrich_all(setup, &ctx.cancel, &batch).await;
                clock.mark(&metrics.busy_us);
                deliver_all(setup, &ctx.cancel, &producer, &outputs, &batch).await;
                commit(&consumer, &batch, setup).await;
                clock.mark(&metrics.backpressured_us);
            } => false,
        };
        if crashed {
            break;
        }
    }
    close_off_runtime(consumer, producer).await;
    Ok(())
}

/// Failed attempts per review (partition, offset) this worker has seen.
type Attempts = BTreeMap<(i32, i64), u8>;

/// Reviews that fail to classify are retried: the first one of each partition still within its
/// attempts stops that partition's part of the batch there, and the partition is sought back
/// to it, so it is fetched (and fails) again and nothing behind it is committed. Once its
/// attempts are used up it passes, and [`enrich`] dead-letters it. Returns the records to
/// process and whether a partition was held back.
fn hold_back_failing(
    consumer: &WorkerConsumer,
    batch: Vec<Record>,
    setup: &WorkerSetup,
    attempts: &mut Attempts,
) -> (Vec<Record>, bool) {
    let mut held: BTreeMap<i32, i64> = BTreeMap::new();
    for record in &batch {
        if held.contains_key(&record.partition) || failing_reason(record).is_none() {
            continue;
        }
        let tried = attempts
            .entry((record.partition, record.offset))
            .or_default();
        *tried = tried.saturating_add(1);
        if setup.dead_letter_after == 0 || *tried < setup.dead_letter_after {
            held.insert(record.partition, record.offset);
        }
    }
    for (partition, offset) in &held {
        tracing::warn!(worker = %setup.id, partition, offset, "a review failed to classify; retrying it");
        let seek = consumer.seek(
            TOPIC_REVIEWS,
            *partition,
            rdkafka::Offset::Offset(*offset),
            Duration::from_secs(1),
        );
        if let Err(error) = seek {
            tracing::warn!(worker = %setup.id, %error, "seek back to a failing review");
        }
    }
    let stalled = !held.is_empty();
    let kept = batch
        .into_iter()
        .filter(|r| held.get(&r.partition).is_none_or(|at| r.offset < *at))
        .collect();
    (kept, stalled)
}

/// Why a record's review fails to classify (not why it is malformed: that is dead-lettered at once).
fn failing_reason(record: &Record) -> Option<String> {
    // Too long a text makes too long a record: most records are not parsed twice.
    if record.payload.len() <= super::MAX_TEXT_CHARS {
        return None;
    }
    let review = parse_review(&record.payload).ok()?;
    super::unclassifiable(&review.text)
}

/// Classifies the batch: the worker's own work (and the `slow_ms` an incident adds to it).
async fn enrich_all(
    setup: &WorkerSetup,
    cancel: &CancellationToken,
    batch: &[Record],
) -> Vec<Output> {
    let outputs = futures::future::join_all(batch.iter().map(|input| enrich(setup, input))).await;
    if !setup.slow.is_zero() {
        let work = setup.slow * u32::try_from(batch.len()).unwrap_or(u32::MAX);
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(work) => {}
        }
    }
    outputs
}

/// Produces every output, returning once all are acknowledged: time spent here is the broker
/// holding the worker back.
async fn deliver_all(
    setup: &WorkerSetup,
    cancel: &CancellationToken,
    producer: &FutureProducer,
    outputs: &[Output],
    batch: &[Record],
) {
    let sends = outputs
        .iter()
        .zip(batch)
        .map(|(output, input)| deliver(producer, output, input, setup, cancel));
    futures::future::join_all(sends).await;
}

/// What one input becomes: an enriched review, a record written on unlabelled (a company:
/// no text), or a dead letter.
enum Output {
    Enriched(String),
    Skipped(String),
    Dead(DeadLetter),
}

async fn enrich(setup: &WorkerSetup, input: &Record) -> Output {
    let origin = Some(format!(
        "{TOPIC_REVIEWS}/{}@{}",
        input.partition, input.offset
    ));
    let review = match parse_review(&input.payload) {
        Ok(review) => review,
        // Not a Yelp review: maybe another dataset's record (tagged by the producer).
        Err(not_a_review) => {
            let reason = match parse_dataset_record(&input.payload) {
                Some(Ok((description, record))) => {
                    return enrich_record(setup, input, &description, record, origin).await;
                }
                Some(Err(reason)) => reason,
                None => not_a_review,
            };
            return Output::Dead(DeadLetter::new(STAGE, reason, &input.payload, origin));
        }
    };
    if review.text.trim().is_empty() {
        let reason = "text is empty: nothing to classify";
        return Output::Dead(DeadLetter::new(STAGE, reason, &input.payload, origin));
    }
    // Here only once its attempts are used up (see `hold_back_failing`).
    if let Some(reason) = super::unclassifiable(&review.text) {
        let reason = format!(
            "{reason}; gave up after {} attempts",
            setup.dead_letter_after
        );
        return Output::Dead(DeadLetter::new(STAGE, reason, &input.payload, origin));
    }
    let classification = setup.classifier.classify(&review.text).await;
    if classification.note.is_some() {
        setup.metrics.fallbacks.fetch_add(1, Ordering::Relaxed);
    }
    let classifier = classification.classifier.as_str();
    setup.runtime.record_classified(LatestReview {
        review_id: review.review_id.clone(),
        excerpt: review.text.chars().take(120).collect(),
        stars: review.stars,
        sentiment: classification.sentiment,
        score: classification.score,
        classifier: classifier.to_owned(),
        worker: setup.id.clone(),
        partition: input.partition,
        offset: input.offset,
    });
    let enriched = EnrichedReview {
        review,
        sentiment: classification.sentiment,
        score: classification.score,
        classifier: classifier.to_owned(),
        model: classification.model,
        processed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        worker: setup.id.clone(),
    };
    match serde_json::to_string(&enriched) {
        Ok(json) => Output::Enriched(json),
        Err(error) => Output::Dead(DeadLetter::new(
            STAGE,
            format!("cannot serialise: {error}"),
            &input.payload,
            origin,
        )),
    }
}

/// Classifies another dataset's record on its text field: the output is the record as it came
/// with the label fields an enriched review has (`sentiment`, `score`, `classifier`, `model`,
/// `processed_at`, `worker`), keyed as its input was (a tweet by its user).
async fn enrich_record(
    setup: &WorkerSetup,
    input: &Record,
    description: &DatasetDescription,
    record: CheckedRecord,
    origin: Option<String>,
) -> Output {
    let dead =
        |reason: String| Output::Dead(DeadLetter::new(STAGE, reason, &input.payload, origin));
    if description.text_field.is_none() {
        return skipped(setup, description, record);
    }
    let Some(text) = record.text(description).map(str::to_owned) else {
        return dead(format!(
            "{} has no text to classify",
            description.name.as_str()
        ));
    };
    if text.trim().is_empty() {
        return dead("text is empty: nothing to classify".to_owned());
    }
    if let Some(reason) = super::unclassifiable(&text) {
        return dead(reason);
    }
    let classification = setup.classifier.classify(&text).await;
    if classification.note.is_some() {
        setup.metrics.fallbacks.fetch_add(1, Ordering::Relaxed);
    }
    let classifier = classification.classifier.as_str();
    let id = record
        .fields
        .get(&description.id_field)
        .and_then(|id| id.as_str())
        .unwrap_or_default();
    setup.runtime.record_classified(LatestReview {
        review_id: id.to_owned(),
        excerpt: text.chars().take(120).collect(),
        // No stars: nothing to check the label against.
        stars: 0,
        sentiment: classification.sentiment,
        score: classification.score,
        classifier: classifier.to_owned(),
        worker: setup.id.clone(),
        partition: input.partition,
        offset: input.offset,
    });
    let labels = serde_json::json!({
        "sentiment": classification.sentiment,
        "score": classification.score,
        "classifier": classifier,
        "model": classification.model,
    });
    Output::Enriched(written(setup, record, labels))
}

/// The output record: the input's fields, `added` (its label, or why it has none), and when and
/// by which worker it was processed.
fn written(setup: &WorkerSetup, mut record: CheckedRecord, added: serde_json::Value) -> String {
    if let serde_json::Value::Object(added) = added {
        record.fields.extend(added);
    }
    let processed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    record
        .fields
        .insert("processed_at".to_owned(), processed_at.into());
    record
        .fields
        .insert("worker".to_owned(), setup.id.clone().into());
    serde_json::Value::Object(record.fields).to_string()
}

/// A record of a dataset without text (a company) is not an error: it goes on to
/// `reviews.sentiment` as it came, without a label, with `skipped` saying why (and when and
/// by whom, as a label would), so the windows can count it by its dimensions.
fn skipped(setup: &WorkerSetup, description: &DatasetDescription, record: CheckedRecord) -> Output {
    let reason = serde_json::json!({ SKIPPED_FIELD: super::skipped_reason(description.name) });
    Output::Skipped(written(setup, record, reason))
}

/// Produces one output, retrying until the broker acknowledges it (or the worker is stopped).
/// `cancel`: the worker is stopping (a dead letter that cannot be delivered is not waited for).
async fn deliver(
    producer: &FutureProducer,
    output: &Output,
    input: &Record,
    setup: &WorkerSetup,
    cancel: &CancellationToken,
) {
    let json = match output {
        Output::Dead(letter) => {
            if deliver_dead_letter(producer, letter, cancel).await {
                setup.metrics.dlq.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        Output::Enriched(json) | Output::Skipped(json) => json,
    };
    loop {
        let mut record = FutureRecord::<[u8], str>::to(TOPIC_SENTIMENT).payload(json);
        if let Some(key) = &input.key {
            record = record.key(key.as_slice());
        }
        match producer.send(record, Timeout::Never).await {
            Ok(_) => {
                setup.metrics.produced.fetch_add(1, Ordering::Relaxed);
                // A record without a timestamp (none in this pipeline) counts as no wait.
                let now = chrono::Utc::now().timestamp_millis();
                let since = input.timestamp_ms.unwrap_or(now);
                setup.metrics.latency.observe_between_ms(since, now);
                if matches!(output, Output::Skipped(_)) {
                    setup.metrics.skipped.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            Err((error, _)) if !cancel.is_cancelled() => {
                tracing::warn!(worker = %setup.id, %error, "delivery failed; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(_) => return,
        }
    }
}

/// Commits the offsets after the batch.
/// A batch can straddle a rebalance: its partitions are revoked and maybe assigned back while
/// it fills, and librdkafka then fetches them again from the last commit. Keeps only what will
/// not be delivered again, so a rebalance where nothing failed duplicates nothing.
fn after_rebalance(consumer: &WorkerConsumer, batch: Vec<Record>) -> Vec<Record> {
    let revoked = consumer.context().take_revoked();
    if revoked.is_empty() {
        return batch;
    }
    let positions: BTreeMap<i32, i64> = consumer
        .position()
        .map(|tpl| {
            tpl.elements_for_topic(TOPIC_REVIEWS)
                .iter()
                .filter_map(|e| e.offset().to_raw().map(|o| (e.partition(), o)))
                .collect()
        })
        .unwrap_or_default();
    redeliverable_removed(batch, &revoked, &positions)
}

/// For each revoked partition: drops records at or past the consumer's position (they will be
/// fetched again) — all of them when the partition is no longer assigned or its position is not
/// known yet — and keeps one copy of an offset received twice (before and after the rebalance).
fn redeliverable_removed(
    batch: Vec<Record>,
    revoked: &BTreeSet<i32>,
    positions: &BTreeMap<i32, i64>,
) -> Vec<Record> {
    let mut seen = BTreeSet::new();
    let mut kept: Vec<Record> = batch
        .into_iter()
        .rev()
        .filter(|record| {
            if !revoked.contains(&record.partition) {
                return true;
            }
            let fetched_again = positions
                .get(&record.partition)
                .is_none_or(|&position| position < 0 || record.offset >= position);
            !fetched_again && seen.insert((record.partition, record.offset))
        })
        .collect();
    kept.reverse();
    kept
}

async fn commit(consumer: &WorkerConsumer, batch: &[Record], setup: &WorkerSetup) {
    match batch::commit(consumer, TOPIC_REVIEWS, batch) {
        Ok(()) => {
            setup.metrics.commits.fetch_add(1, Ordering::Relaxed);
        }
        // A partition revoked meanwhile: its new owner re-reads from the last commit.
        Err(error) => tracing::debug!(worker = %setup.id, %error, "commit refused"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::kafka::batch::tests_support::record;

    #[test]
    fn a_batch_straddling_a_rebalance_keeps_only_what_will_not_come_again() {
        // Partition 1 was revoked and assigned back: offsets 7..9 came before, 7..8 again after,
        // and the consumer will next return offset 9. Partition 2 was revoked for good.
        let batch = vec![
            record(0, 1),
            record(1, 7),
            record(1, 8),
            record(1, 9),
            record(2, 3),
            record(1, 7),
            record(1, 8),
        ];
        let revoked = BTreeSet::from([1, 2]);
        let positions = BTreeMap::from([(0, 2), (1, 9)]);
        let kept = redeliverable_removed(batch, &revoked, &positions);
        let kept: Vec<(i32, i64)> = kept.iter().map(|r| (r.partition, r.offset)).collect();
        assert_eq!(kept, vec![(0, 1), (1, 7), (1, 8)]);
    }

    #[test]
    fn an_unknown_position_means_everything_comes_again() {
        let kept = redeliverable_removed(
            vec![record(1, 7), record(1, 8)],
            &BTreeSet::from([1]),
            &BTreeMap::from([(1, -1001)]),
        );
        assert!(kept.is_empty());
    }
}
