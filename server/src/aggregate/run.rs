//! The aggregate stage's run loop: trigger → read → window → emit → checkpoint → commit.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use app::api::{
    AggregateConfig, EnrichedReview, LatePolicy, TOPIC_AGGREGATES, TOPIC_LATE, TOPIC_SENTIMENT,
    TimeDomain,
};
use chrono::NaiveDateTime;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use super::checkpoint::{self, Checkpoint, CheckpointError};
use super::windows::{Emitted, Event, Spec, row};
use super::{AggregateMetrics, frame};
use crate::kafka::KafkaSettings;
use crate::kafka::batch::Record;
use crate::kafka::inspect::GroupRegistry;
use crate::records::{DATE_FORMAT, DeadLetter, deliver_dead_letter};
use crate::stage::StageContext;
use crate::trace::recent::{BatchIds, BatchMark};

const STAGE: &str = "aggregate";
/// Most records one trigger reads.
const MAX_BATCH: usize = 50_000;
/// A trigger stops reading when nothing arrives for this long.
const DRAIN_IDLE: Duration = Duration::from_millis(50);
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_PAUSE: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error("Kafka client: {0}")]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("Polars: {0}")]
    Polars(#[from] polars::error::PolarsError),
    #[error("{0}")]
    Task(String),
}

pub struct AggregateSetup {
    pub config: AggregateConfig,
    pub spec: Spec,
    pub kafka: KafkaSettings,
    pub data_dir: PathBuf,
    pub metrics: Arc<AggregateMetrics>,
    /// Where the stage's group is declared: it assigns its partitions itself (no group
    /// membership), so the embedded broker would never list it, though it commits its offsets
    /// there and its lag is what cell 2 shows.
    pub registry: Arc<GroupRegistry>,
}

pub async fn run(setup: AggregateSetup, ctx: StageContext) -> Result<(), AggregateError> {
    setup
        .registry
        .declare(&setup.config.group, &[TOPIC_SENTIMENT]);
    let path = checkpoint::path(&setup.data_dir, &setup.config.group);
    let config_json = serde_json::to_value(&setup.config).unwrap_or_default();
    let mut checkpoint = match checkpoint::load(&path)? {
        Some(saved) if same_query(&saved.config, &config_json) => {
            ctx.set_detail(format!(
                "resumed from checkpoint after trigger {} ({} records counted)",
                saved.triggers, saved.state.counted
            ));
            saved
        }
        Some(_) => {
            ctx.set_detail("windows changed since the checkpoint: started over from offset 0");
            Checkpoint::default()
        }
        None => Checkpoint::default(),
    };
    checkpoint.config = config_json;
    setup.metrics.publish(&checkpoint.state);

    let consumer: BaseConsumer = setup
        .kafka
        .client_config()
        .set("group.id", &setup.config.group)
        .set("enable.auto.commit", "false")
        .create()?;
    let consumer = Arc::new(consumer);
    assign_from(&consumer, &checkpoint.offsets).await?;
    let producer = setup.kafka.reliable_producer()?;

    // "Once": read up to the end of the topic as it is now, then stop.
    let end = if setup.config.trigger_ms == 0 {
        Some(end_offsets(&consumer).await?)
    } else {
        None
    };
    let trigger = Duration::from_millis(setup.config.trigger_ms.max(1));
    let mut ticker = tokio::time::interval(trigger);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let batch = drain(&consumer).await?;
        if !batch.is_empty() {
            trigger_once(
                &setup,
                &ctx,
                &consumer,
                &producer,
                &mut checkpoint,
                batch,
                &path,
            )
            .await?;
        }
        if let Some(end) = &end
            && reached(&checkpoint.offsets, end)
        {
            ctx.set_detail(format!(
                "once: read to the end after trigger {}",
                checkpoint.triggers
            ));
            break;
        }
    }
    let closing = tokio::task::spawn_blocking(move || {
        drop(consumer);
        drop(producer);
    });
    let _ = closing.await;
    Ok(())
}

/// Whether a checkpoint was written by the same query (the trigger interval may change).
fn same_query(saved: &serde_json::Value, current: &serde_json::Value) -> bool {
    let without_trigger = |v: &serde_json::Value| {
        let mut v = v.clone();
        if let Some(map) = v.as_object_mut() {
            map.remove("trigger_ms");
        }
        v
    };
    without_trigger(saved) == without_trigger(current)
}

/// Assigns every partition of `reviews.sentiment`, at the checkpoint's offsets (or the start).
async fn assign_from(
    consumer: &Arc<BaseConsumer>,
    offsets: &BTreeMap<i32, i64>,
) -> Result<(), AggregateError> {
    let consumer = consumer.clone();
    let offsets = offsets.clone();
    tokio::task::spawn_blocking(move || -> Result<(), KafkaError> {
        let metadata = consumer.fetch_metadata(Some(TOPIC_SENTIMENT), METADATA_TIMEOUT)?;
        let mut tpl = TopicPartitionList::new();
        for topic in metadata.topics() {
            for partition in topic.partitions() {
                let offset = offsets
                    .get(&partition.id())
                    .map_or(Offset::Beginning, |o| Offset::Offset(*o));
                tpl.add_partition_offset(TOPIC_SENTIMENT, partition.id(), offset)?;
            }
        }
        consumer.assign(&tpl)
    })
    .await
    .map_err(|e| AggregateError::Task(e.to_string()))??;
    Ok(())
}

/// The high watermark of every partition of `reviews.sentiment` now.
async fn end_offsets(consumer: &Arc<BaseConsumer>) -> Result<BTreeMap<i32, i64>, AggregateError> {
    let consumer = consumer.clone();
    tokio::task::spawn_blocking(move || -> Result<BTreeMap<i32, i64>, KafkaError> {
        let assigned = consumer.assignment()?;
        let mut end = BTreeMap::new();
        for element in assigned.elements() {
            let (_, high) = consumer.fetch_watermarks(
                TOPIC_SENTIMENT,
                element.partition(),
                METADATA_TIMEOUT,
            )?;
            end.insert(element.partition(), high);
        }
        Ok(end)
    })
    .await
    .map_err(|e| AggregateError::Task(e.to_string()))?
    .map_err(AggregateError::from)
}

/// Whether every partition has been read up to `end`.
fn reached(offsets: &BTreeMap<i32, i64>, end: &BTreeMap<i32, i64>) -> bool {
    end.iter()
        .all(|(partition, high)| *high == 0 || offsets.get(partition).is_some_and(|o| o >= high))
}

/// Reads what has arrived, up to [`MAX_BATCH`] records.
async fn drain(consumer: &Arc<BaseConsumer>) -> Result<Vec<Record>, AggregateError> {
    let consumer = consumer.clone();
    tokio::task::spawn_blocking(move || {
        let mut batch = Vec::new();
        while batch.len() < MAX_BATCH {
            match consumer.poll(DRAIN_IDLE) {
                None => break,
                Some(Ok(message)) => batch.push(Record {
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                }),
                // Transient (a broker restart): read again next trigger.
                Some(Err(error)) => {
                    tracing::debug!(%error, "aggregate poll error");
                    break;
                }
            }
        }
        batch
    })
    .await
    .map_err(|e| AggregateError::Task(e.to_string()))
}

/// The event a record stands for, or why it cannot be counted.
fn event(record: &Record, time: TimeDomain, now: i64) -> Result<Event, String> {
    let enriched: EnrichedReview = serde_json::from_slice(&record.payload)
        .map_err(|e| format!("not an enriched review JSON object: {e}"))?;
    let review = enriched.review;
    let time = match time {
        TimeDomain::Processing => now,
        TimeDomain::Event => NaiveDateTime::parse_from_str(&review.date, DATE_FORMAT)
            .map_err(|e| format!("date {:?} is not {DATE_FORMAT}: {e}", review.date))?
            .and_utc()
            .timestamp_millis(),
    };
    Ok(Event {
        review_id: review.review_id,
        time,
        sentiment: enriched.sentiment,
        score: enriched.score,
        stars: review.stars,
        business_id: review.business_id,
    })
}

#[allow(clippy::too_many_arguments)]
async fn trigger_once(
    setup: &AggregateSetup,
    ctx: &StageContext,
    consumer: &Arc<BaseConsumer>,
    producer: &FutureProducer,
    checkpoint: &mut Checkpoint,
    batch: Vec<Record>,
    path: &std::path::Path,
) -> Result<(), AggregateError> {
    let started = Instant::now();
    let metrics = &setup.metrics;
    metrics
        .consumed
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    let now = chrono::Utc::now().timestamp_millis();
    let mut events = Vec::with_capacity(batch.len());
    let mut payloads: HashMap<String, &Record> = HashMap::new();
    let mut letters = Vec::new();
    for record in &batch {
        match event(record, setup.config.time, now) {
            Ok(event) => {
                payloads.insert(event.review_id.clone(), record);
                events.push(event);
            }
            Err(reason) => {
                let origin = format!("{TOPIC_SENTIMENT}/{}@{}", record.partition, record.offset);
                letters.push(DeadLetter::new(
                    STAGE,
                    reason,
                    &record.payload,
                    Some(origin),
                ));
            }
        }
    }
    let spec = setup.spec;
    let read: BatchIds = events.iter().map(|e| e.review_id.as_str()).collect();
    let outcome = checkpoint
        .state
        .process(&spec, events, |kept| frame::window_partials(kept, &spec))?;

    // Outputs first, then the checkpoint: a crash in between re-emits the same keys.
    let mode = serde_json::to_value(setup.config.output_mode).unwrap_or_default();
    let sends = outcome
        .emitted
        .iter()
        .map(|emitted| send_window(producer, emitted, &mode, &ctx.cancel));
    let emitted = futures::future::join_all(sends).await;
    metrics.emitted.fetch_add(
        emitted.iter().filter(|ok| **ok).count() as u64,
        Ordering::Relaxed,
    );
    if setup.config.late_policy == LatePolicy::Topic {
        for late in &outcome.late {
            if let Some(record) = payloads.get(&late.review_id) {
                send_late(producer, record, &ctx.cancel).await;
                metrics.late_to_topic.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    for letter in &letters {
        if deliver_dead_letter(producer, letter, &ctx.cancel).await {
            metrics.dlq.fetch_add(1, Ordering::Relaxed);
        }
    }
    if ctx.cancel.is_cancelled() {
        // Stopped while writing: do not checkpoint a batch whose outputs may be missing.
        return Ok(());
    }

    for record in &batch {
        checkpoint
            .offsets
            .insert(record.partition, record.offset + 1);
    }
    checkpoint.triggers += 1;
    let saving = Instant::now();
    let to_save = checkpoint.clone();
    let target = path.to_owned();
    tokio::task::spawn_blocking(move || checkpoint::save(&target, &to_save))
        .await
        .map_err(|e| AggregateError::Task(e.to_string()))??;
    metrics.checkpoint_ms.store(
        u64::try_from(saving.elapsed().as_millis()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    commit(consumer, &checkpoint.offsets);
    metrics.publish(&checkpoint.state);
    // Stamped with the trigger's own time: what processing-time windows use for its records.
    let mark = BatchMark {
        number: checkpoint.triggers,
        at_ms: now,
    };
    metrics.triggers_read.record(mark, read);
    let late: BatchIds = outcome.late.iter().map(|e| e.review_id.as_str()).collect();
    metrics.late_read.record(mark, late);
    metrics.triggers.fetch_add(1, Ordering::Relaxed);
    metrics
        .last_batch
        .store(batch.len() as u64, Ordering::Relaxed);
    metrics.batch_ms.store(
        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    Ok(())
}

/// The group's offsets in Kafka follow the checkpoint, so cell 2 shows this stage's lag. They
/// are not what the stage restarts from: the checkpoint is.
fn commit(consumer: &BaseConsumer, offsets: &BTreeMap<i32, i64>) {
    let mut tpl = TopicPartitionList::new();
    for (partition, offset) in offsets {
        if tpl
            .add_partition_offset(TOPIC_SENTIMENT, *partition, Offset::Offset(*offset))
            .is_err()
        {
            return;
        }
    }
    if let Err(error) = consumer.commit(&tpl, CommitMode::Async) {
        tracing::debug!(%error, "aggregate commit refused");
    }
}

/// Writes one window result, keyed by the window, until the broker acknowledges it.
async fn send_window(
    producer: &FutureProducer,
    emitted: &Emitted,
    mode: &serde_json::Value,
    cancel: &tokio_util::sync::CancellationToken,
) -> bool {
    let mut value = serde_json::to_value(row(&emitted.window, &emitted.agg, emitted.closed))
        .unwrap_or_default();
    value["mode"] = mode.clone();
    value["emitted_at"] = chrono::Utc::now().timestamp_millis().into();
    let payload = value.to_string();
    let key = emitted.window.record_key();
    send_until_acked(
        producer,
        TOPIC_AGGREGATES,
        Some(&key),
        payload.as_bytes(),
        cancel,
    )
    .await
}

async fn send_late(
    producer: &FutureProducer,
    record: &Record,
    cancel: &tokio_util::sync::CancellationToken,
) -> bool {
    let key = record.key.as_deref().map(String::from_utf8_lossy);
    send_until_acked(
        producer,
        TOPIC_LATE,
        key.as_deref(),
        &record.payload,
        cancel,
    )
    .await
}

async fn send_until_acked(
    producer: &FutureProducer,
    topic: &str,
    key: Option<&str>,
    payload: &[u8],
    cancel: &tokio_util::sync::CancellationToken,
) -> bool {
    loop {
        let mut record = FutureRecord::<str, [u8]>::to(topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        match producer.send(record, Timeout::Never).await {
            Ok(_) => return true,
            Err(_) if cancel.is_cancelled() => return false,
            Err((error, _)) => {
                tracing::warn!(topic, %error, "aggregate output not delivered; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}
