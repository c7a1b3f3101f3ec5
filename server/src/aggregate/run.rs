//! The aggregate stage's run loop: trigger → read → window (per input partition) → emit →
//! checkpoint each changed partition to the changelog → commit.
//!
//! The stage is a consumer-group member like any other: the group spreads the partitions of
//! `reviews.sentiment` over every process running this loop with the same group, and on each
//! assignment the rebalance callback restores the assigned partitions' state from the changelog
//! and starts reading each at the offset stored with its state ([`AggregateContext`]). A
//! standalone process (`pipebook worker --stage aggregate`) calls [`run`] with its own
//! [`AggregateSetup`] (`registry: None`) and a [`StageContext`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::api::{
    AggregateConfig, DatasetKind, EnrichedReview, LatePolicy, TOPIC_AGGREGATES, TOPIC_LATE,
    TOPIC_SENTIMENT, TimeDomain,
};
use chrono::NaiveDateTime;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use super::checkpoint::{self, ChangelogRecord, CheckpointError};
use super::partitions::{self, PartitionState, Partitions, Positioned};
use super::windows::{Emitted, Event, Spec, row};
use super::{AggregateMetrics, frame};
use crate::kafka::KafkaSettings;
use crate::kafka::admin::{AdminError, ensure_topics};
use crate::kafka::batch::Record;
use crate::kafka::inspect::GroupRegistry;
use crate::records::{DATE_FORMAT, DeadLetter, deliver_dead_letter, parse_dataset_record};
use crate::stage::{PhaseClock, StageContext};
use crate::sync::LockExt;
use crate::trace::recent::{BatchIds, BatchMark};

const STAGE: &str = "aggregate";
/// The server's own member of the aggregate group.
pub const MEMBER: &str = "aggregate";
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
    #[error("creating the changelog topic: {0}")]
    Admin(#[from] AdminError),
    #[error("restoring partitions on assignment: {0}")]
    Restore(String),
    #[error("Polars: {0}")]
    Polars(#[from] polars::error::PolarsError),
    #[error("{0}")]
    Task(String),
}

pub struct AggregateSetup {
    pub config: AggregateConfig,
    pub spec: Spec,
    pub kafka: KafkaSettings,
    pub metrics: Arc<AggregateMetrics>,
    /// This process's name in the group (its `client.id`), e.g. `aggregate` in the server.
    pub member: String,
    /// Where the server lists its groups' members for cell 2; `None` in a worker process.
    pub registry: Option<Arc<GroupRegistry>>,
}

/// What the rebalance callback saw, for the run loop to apply before its next trigger.
#[derive(Debug)]
enum Change {
    /// Partitions assigned, with the changelog record of those that had one for this query.
    Assigned {
        partitions: Vec<i32>,
        /// The group generation of this assignment: every checkpoint written for these
        /// partitions carries it (the fencing token, see `checkpoint`).
        generation: Option<i32>,
        restored: BTreeMap<i32, ChangelogRecord>,
        /// Partitions whose changelog record was written by another query (started over),
        /// with the offset each starts over from.
        changed_query: BTreeMap<i32, i64>,
        /// Zombie writes the restore ignored.
        fenced: u64,
    },
    /// The assignment is older than a checkpoint already written by a later one: this member
    /// lost the partitions (a zombie) and takes none; it rejoins at its next heartbeat.
    Fenced(String),
    Revoked(Vec<i32>),
    /// Everything is gone (a rebalance error): the loop drops what it holds.
    RevokedAll,
    Failed(String),
}

/// The consumer's context: on assignment it restores the partitions from the changelog and
/// assigns them at their checkpointed offsets (inside the callback, before any of their records
/// is fetched); on revocation it unassigns. Both are queued for the run loop.
pub struct AggregateContext {
    kafka: KafkaSettings,
    group: String,
    member: String,
    config: serde_json::Value,
    registry: Option<Arc<GroupRegistry>>,
    changes: Mutex<Vec<Change>>,
    pending: AtomicBool,
}

impl AggregateContext {
    fn push(&self, change: Change) {
        self.changes.lock_or_recover().push(change);
        self.pending.store(true, Ordering::SeqCst);
    }

    fn take(&self) -> Vec<Change> {
        self.pending.store(false, Ordering::SeqCst);
        std::mem::take(&mut *self.changes.lock_or_recover())
    }

    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let partitions: Vec<i32> = tpl
            .elements_for_topic(TOPIC_SENTIMENT)
            .iter()
            .map(|e| e.partition())
            .collect();
        let generation = crate::kafka::generation::of(consumer);
        let restored = match checkpoint::restore(&self.kafka, &self.group, &partitions, generation)
        {
            Ok(restored) => restored,
            Err(error @ CheckpointError::Fenced { .. }) => {
                tracing::warn!(group = %self.group, member = %self.member, %error, "assignment fenced: holding no partition until the group assigns again");
                if let Err(error) = consumer.unassign() {
                    tracing::debug!(%error, "aggregate unassign");
                }
                if let Some(registry) = &self.registry {
                    registry.set_assignment(&self.group, &self.member, Vec::new());
                }
                self.push(Change::Fenced(error.to_string()));
                return;
            }
            Err(error) => {
                // Reading without the state would count records twice: take nothing.
                self.push(Change::Failed(error.to_string()));
                return;
            }
        };
        // A start marker (config null, see `checkpoint::mark_start`) holds no windows: any
        // query resumes from it.
        let fenced = restored.fenced;
        let (restored, other): (BTreeMap<_, _>, BTreeMap<_, _>) =
            restored.records.into_iter().partition(|(_, record)| {
                record.config.is_null() || same_query(&record.config, &self.config)
            });
        // A changed query starts over from where the partition's count began.
        let changed_query: BTreeMap<i32, i64> = other
            .into_iter()
            .map(|(partition, record)| (partition, record.held.start))
            .collect();
        let mut assignment = TopicPartitionList::new();
        for partition in &partitions {
            let start = changed_query.get(partition).copied().unwrap_or(0);
            let offset = match restored.get(partition) {
                Some(record) => Offset::Offset(record.held.offset),
                None if start > 0 => Offset::Offset(start),
                None => Offset::Beginning,
            };
            if let Err(error) = assignment.add_partition_offset(TOPIC_SENTIMENT, *partition, offset)
            {
                self.push(Change::Failed(error.to_string()));
                return;
            }
        }
        if let Err(error) = consumer.assign(&assignment) {
            self.push(Change::Failed(format!("assign: {error}")));
            return;
        }
        if let Some(registry) = &self.registry {
            let assigned = partitions
                .iter()
                .map(|p| (TOPIC_SENTIMENT.to_owned(), *p))
                .collect();
            registry.set_assignment(&self.group, &self.member, assigned);
        }
        self.push(Change::Assigned {
            partitions,
            generation,
            restored,
            changed_query,
            fenced,
        });
    }

    fn unassign(&self, consumer: &BaseConsumer<Self>, change: Change) {
        if let Err(error) = consumer.unassign() {
            tracing::debug!(%error, "aggregate unassign");
        }
        if let Some(registry) = &self.registry {
            registry.set_assignment(&self.group, &self.member, Vec::new());
        }
        self.push(change);
    }
}

impl rdkafka::ClientContext for AggregateContext {}

impl ConsumerContext for AggregateContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let partitions = tpl
                    .elements_for_topic(TOPIC_SENTIMENT)
                    .iter()
                    .map(|e| e.partition())
                    .collect();
                self.unassign(consumer, Change::Revoked(partitions));
            }
            other => {
                tracing::warn!(group = %self.group, error = ?other, "aggregate rebalance error");
                self.unassign(consumer, Change::RevokedAll);
            }
        }
    }
}

type AggregateConsumer = BaseConsumer<AggregateContext>;

/// Runs the aggregate stage until stopped (`ctx.cancel`), killed (`ctx.kill`: leaves without
/// writing or committing the trigger in hand), or — with `trigger_ms` 0 — until it has read its
/// partitions to their end.
pub async fn run(setup: AggregateSetup, ctx: StageContext) -> Result<(), AggregateError> {
    let group = setup.config.group.clone();
    if let Some(registry) = &setup.registry {
        registry.declare(&group, &[TOPIC_SENTIMENT]);
    }
    let consumer: AggregateConsumer = setup
        .kafka
        .client_config()
        .set("group.id", &group)
        .set("client.id", &setup.member)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create_with_context(AggregateContext {
            kafka: setup.kafka.clone(),
            group: group.clone(),
            member: setup.member.clone(),
            config: serde_json::to_value(&setup.config).unwrap_or_default(),
            registry: setup.registry.clone(),
            changes: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
        })?;
    let consumer = Arc::new(consumer);
    // The server creates the changelog with its topics; a worker on another cluster may have to.
    let mut changelog_partitions = changelog_partitions(&consumer).await?;
    if changelog_partitions == 0 {
        ensure_topics(
            &setup.kafka,
            &[checkpoint::topic_spec(setup.kafka.topic_partitions)],
        )
        .await?;
        changelog_partitions = self::changelog_partitions(&consumer).await?;
    }
    consumer.subscribe(&[TOPIC_SENTIMENT])?;
    let producer = setup.kafka.reliable_producer()?;
    let changelog = checkpoint::producer(&setup.kafka)?;
    ctx.set_detail("joining the group; partitions are restored from the changelog as assigned");
    // Killed (a crash): the trigger in hand is neither checkpointed nor committed; the clients
    // are still closed below, off the runtime threads.
    let outcome = tokio::select! {
        _ = ctx.kill.cancelled() => Ok(()),
        outcome = aggregate_until_stopped(
            &setup, &ctx, &consumer, &producer, (&changelog, changelog_partitions),
        ) => outcome,
    };
    let closing = tokio::task::spawn_blocking(move || {
        drop(consumer);
        drop(producer);
        drop(changelog);
    });
    let _ = closing.await;
    if let Some(registry) = &setup.registry {
        registry.remove_member(&group, &setup.member);
    }
    outcome
}

async fn aggregate_until_stopped(
    setup: &AggregateSetup,
    ctx: &StageContext,
    consumer: &Arc<AggregateConsumer>,
    producer: &FutureProducer,
    (changelog, changelog_partitions): (&FutureProducer, i32),
) -> Result<(), AggregateError> {
    let mut held = Partitions::new();
    // The group generation each held partition was assigned in: its checkpoints carry it.
    let mut generations: Generations = BTreeMap::new();
    let mut triggers = 0u64;
    // "Once": the end of each partition when it was first assigned.
    let mut end: BTreeMap<i32, i64> = BTreeMap::new();
    let trigger = Duration::from_millis(setup.config.trigger_ms.max(1));
    let mut ticker = tokio::time::interval(trigger);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut clock = PhaseClock::new();
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let drained = drain(consumer).await?;
        // Waiting for the trigger and reading what arrived since.
        clock.mark(&setup.metrics.idle_us);
        let changes = consumer.context().take();
        let mut batch = drained.before;
        if !changes.is_empty() {
            let revoked = apply(&mut held, &mut generations, changes, ctx, &setup.metrics)?;
            // Read before the rebalance from a partition given up (perhaps given back, then
            // restored from its checkpoint, which does not have them): not ours to count.
            batch.retain(|r| !revoked.contains(&r.partition));
            setup.metrics.publish(&held);
        }
        batch.extend(drained.after);
        // Already counted in the partition's state (read again after a rebalance), or of a
        // partition not held.
        batch.retain(|r| held.get(&r.partition).is_some_and(|h| r.offset >= h.offset));
        if !batch.is_empty() {
            triggers += 1;
            let done = trigger_once(
                setup,
                ctx,
                consumer,
                (producer, changelog, changelog_partitions),
                (&mut held, &generations),
                batch,
                (triggers, &mut clock),
            )
            .await?;
            if !done {
                break;
            }
        }
        if setup.config.trigger_ms == 0 {
            for partition in held.keys() {
                if !end.contains_key(partition) {
                    let high = high_watermark(consumer, *partition).await?;
                    end.insert(*partition, high);
                }
            }
            let reached = !held.is_empty()
                && held.iter().all(|(p, h)| {
                    end.get(p)
                        .is_none_or(|high| *high == 0 || h.offset >= *high)
                });
            if reached {
                ctx.set_detail(format!("once: read to the end after trigger {triggers}"));
                break;
            }
        }
    }
    Ok(())
}

/// How many partitions the changelog topic has (0 when it does not exist).
async fn changelog_partitions(consumer: &Arc<AggregateConsumer>) -> Result<i32, AggregateError> {
    let consumer = consumer.clone();
    tokio::task::spawn_blocking(move || checkpoint::partition_count(&consumer))
        .await
        .map_err(|e| AggregateError::Task(e.to_string()))?
        .map_err(AggregateError::from)
}

/// Partition → the group generation it was assigned in (`None`: not known).
type Generations = BTreeMap<i32, Option<i32>>;

/// Applies the rebalance changes to the partitions held; returns those revoked meanwhile.
fn apply(
    held: &mut Partitions,
    generations: &mut Generations,
    changes: Vec<Change>,
    ctx: &StageContext,
    metrics: &AggregateMetrics,
) -> Result<BTreeSet<i32>, AggregateError> {
    let mut revoked = BTreeSet::new();
    for change in changes {
        match change {
            Change::Failed(error) => return Err(AggregateError::Restore(error)),
            Change::RevokedAll => {
                generations.clear();
                revoked.extend(std::mem::take(held).into_keys());
            }
            Change::Revoked(partitions) => {
                for partition in partitions {
                    held.remove(&partition);
                    generations.remove(&partition);
                    revoked.insert(partition);
                }
            }
            Change::Fenced(reason) => {
                metrics.fenced_assignments.fetch_add(1, Ordering::Relaxed);
                generations.clear();
                revoked.extend(std::mem::take(held).into_keys());
                ctx.set_detail(format!(
                    "holding no partition: {reason}; rejoining the group"
                ));
            }
            Change::Assigned {
                partitions,
                generation,
                restored,
                changed_query,
                fenced,
            } => {
                metrics.fenced_records.fetch_add(fenced, Ordering::Relaxed);
                let mut resumed = Vec::new();
                for partition in &partitions {
                    let state = match restored.get(partition) {
                        Some(record) => {
                            resumed.push(format!(
                                "{partition} at offset {} ({} counted)",
                                record.held.offset, record.held.state.counted
                            ));
                            record.held.clone()
                        }
                        None => {
                            let start = changed_query.get(partition).copied().unwrap_or(0);
                            PartitionState {
                                offset: start,
                                start,
                                ..PartitionState::default()
                            }
                        }
                    };
                    held.insert(*partition, state);
                    generations.insert(*partition, generation);
                }
                let list =
                    |ps: &[i32]| ps.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
                let mut detail = format!("partitions {} assigned", list(&partitions));
                if !resumed.is_empty() {
                    detail.push_str(&format!(
                        "; resumed from checkpoint (changelog): {}",
                        resumed.join(", ")
                    ));
                }
                if fenced > 0 {
                    detail.push_str(&format!(
                        "; {fenced} checkpoint(s) of an older group generation ignored (a member that lost its partitions wrote them late)"
                    ));
                }
                if let Some(generation) = generation {
                    detail.push_str(&format!("; group generation {generation}"));
                }
                if !changed_query.is_empty() {
                    let from: Vec<String> = changed_query
                        .iter()
                        .map(|(p, start)| format!("{p} from offset {start}"))
                        .collect();
                    detail.push_str(&format!(
                        "; windows changed since the checkpoint: started over, {}",
                        from.join(", ")
                    ));
                }
                ctx.set_detail(detail);
            }
        }
    }
    Ok(revoked)
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

/// The high watermark of one partition of `reviews.sentiment` now.
async fn high_watermark(
    consumer: &Arc<AggregateConsumer>,
    partition: i32,
) -> Result<i64, AggregateError> {
    let consumer = consumer.clone();
    let (_, high) = tokio::task::spawn_blocking(move || {
        consumer.fetch_watermarks(TOPIC_SENTIMENT, partition, METADATA_TIMEOUT)
    })
    .await
    .map_err(|e| AggregateError::Task(e.to_string()))??;
    Ok(high)
}

/// What one drain read: the records before a rebalance, and the first one after it.
struct Drained {
    before: Vec<Record>,
    after: Option<Record>,
}

/// Reads what has arrived, up to [`MAX_BATCH`] records, stopping at a rebalance.
async fn drain(consumer: &Arc<AggregateConsumer>) -> Result<Drained, AggregateError> {
    let consumer = consumer.clone();
    tokio::task::spawn_blocking(move || {
        let mut before = Vec::new();
        let mut after = None;
        while before.len() < MAX_BATCH {
            let polled = consumer.poll(DRAIN_IDLE);
            let rebalanced = consumer.context().pending.load(Ordering::SeqCst);
            match polled {
                None => break,
                Some(Ok(message)) => {
                    let record = Record {
                        partition: message.partition(),
                        offset: message.offset(),
                        key: message.key().map(<[u8]>::to_vec),
                        payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                        timestamp_ms: message.timestamp().to_millis(),
                    };
                    if rebalanced {
                        after = Some(record);
                        break;
                    }
                    before.push(record);
                }
                // Transient (a broker restart): read again next trigger.
                Some(Err(error)) => {
                    tracing::debug!(%error, "aggregate poll error");
                    break;
                }
            }
            if rebalanced {
                break;
            }
        }
        Drained { before, after }
    })
    .await
    .map_err(|e| AggregateError::Task(e.to_string()))
}

/// The event a record stands for, or why it cannot be counted.
fn event(record: &Record, time: TimeDomain, now: i64) -> Result<Event, String> {
    let enriched: EnrichedReview = match serde_json::from_slice(&record.payload) {
        Ok(enriched) => enriched,
        Err(error) => {
            return dataset_event(&record.payload, time, now)
                .unwrap_or_else(|| Err(format!("not an enriched review JSON object: {error}")));
        }
    };
    let review = enriched.review;
    let time = time_of(time, "date", &review.date, now)?;
    Ok(Event {
        review_id: review.review_id,
        time,
        sentiment: Some(enriched.sentiment),
        score: enriched.score,
        stars: review.stars,
        business_id: review.business_id,
        dataset: DatasetKind::Yelp,
        hashtags: Vec::new(),
        country: None,
        industry: None,
    })
}

/// Milliseconds of an event: now, or its own `field` (`YYYY-MM-DD HH:MM:SS`).
fn time_of(domain: TimeDomain, field: &str, value: &str, now: i64) -> Result<i64, String> {
    Ok(match domain {
        TimeDomain::Processing => now,
        TimeDomain::Event => NaiveDateTime::parse_from_str(value, DATE_FORMAT)
            .map_err(|e| format!("{field} {value:?} is not {DATE_FORMAT}: {e}"))?
            .and_utc()
            .timestamp_millis(),
    })
}

/// A record of another dataset (tagged by the producer): a labelled tweet is counted by its
/// label like a review, without stars, and a window lists its hashtags where a review's
/// business would be; a company (no text: sentiment forwards it unlabelled) is counted without
/// a label, by its country and industry. Its key field keys its sessions (per user, per
/// company). `None` when the record names no other dataset.
fn dataset_event(payload: &[u8], domain: TimeDomain, now: i64) -> Option<Result<Event, String>> {
    #[derive(serde::Deserialize)]
    struct Label {
        sentiment: app::api::Sentiment,
        score: f64,
    }
    let (description, record) = match parse_dataset_record(payload)? {
        Ok(checked) => checked,
        Err(reason) => return Some(Err(reason)),
    };
    let name = description.name.as_str();
    let field = |name: &str| {
        record
            .fields
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    };
    let first = |name: &str| {
        crate::records::dimension_values(record.fields.get(name))
            .into_iter()
            .next()
    };
    let company = description.name == DatasetKind::Companies;
    Some((|| {
        // Nothing to label without text: sentiment skipped it, and says so in `skipped`.
        let label = match description.text_field {
            None => None,
            Some(_) => Some(
                serde_json::from_slice::<Label>(payload)
                    .map_err(|e| format!("a {name} record without its sentiment label: {e}"))?,
            ),
        };
        let time_field = &description.time_field;
        Ok(Event {
            review_id: field(&description.id_field).to_owned(),
            time: time_of(domain, time_field, field(time_field), now)?,
            sentiment: label.as_ref().map(|l| l.sentiment),
            score: label.map_or(0.0, |l| l.score),
            stars: 0,
            business_id: record.key.clone(),
            dataset: description.name,
            hashtags: match description.name {
                DatasetKind::Tweets => {
                    crate::records::dimension_values(record.fields.get("hashtags"))
                }
                DatasetKind::Yelp | DatasetKind::Companies => Vec::new(),
            },
            country: company.then(|| first("country")).flatten(),
            industry: company.then(|| first("industry")).flatten(),
        })
    })())
}

/// One trigger over `batch`: windows per partition, outputs, then the changelog, then the
/// group's offsets. Returns false when stopped before its checkpoint was written (the trigger is
/// then read again by whoever holds the partitions next).
async fn trigger_once(
    setup: &AggregateSetup,
    ctx: &StageContext,
    consumer: &Arc<AggregateConsumer>,
    (producer, changelog, changelog_partitions): (&FutureProducer, &FutureProducer, i32),
    (held, generations): (&mut Partitions, &Generations),
    batch: Vec<Record>,
    (trigger, clock): (u64, &mut PhaseClock),
) -> Result<bool, AggregateError> {
    let started = Instant::now();
    let metrics = &setup.metrics;
    metrics
        .consumed
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    let now = chrono::Utc::now().timestamp_millis();
    let mut events = Vec::with_capacity(batch.len());
    let mut payloads: HashMap<String, &Record> = HashMap::new();
    let mut letters = Vec::new();
    let mut read = BatchIds::default();
    for record in &batch {
        let event = match event(record, setup.config.time, now) {
            Ok(event) => {
                payloads.insert(event.review_id.clone(), record);
                read.push_from(&event.review_id, record.partition, record.offset);
                Some(event)
            }
            Err(reason) => {
                let origin = format!("{TOPIC_SENTIMENT}/{}@{}", record.partition, record.offset);
                letters.push(DeadLetter::new(
                    STAGE,
                    reason,
                    &record.payload,
                    Some(origin),
                ));
                None
            }
        };
        events.push(Positioned {
            partition: record.partition,
            offset: record.offset,
            event,
        });
    }
    let spec = setup.spec;
    let outcomes = partitions::process(held, &spec, events, |kept| {
        frame::window_partials(kept, &spec)
    })?;

    clock.mark(&metrics.busy_us);

    // Outputs first, then the checkpoint: a crash in between re-emits the same keys.
    let mode = serde_json::to_value(setup.config.output_mode).unwrap_or_default();
    let sends = outcomes.iter().flat_map(|o| {
        o.outcome
            .emitted
            .iter()
            .map(|emitted| send_window(producer, o.partition, emitted, &mode, &ctx.cancel))
    });
    let emitted = futures::future::join_all(sends).await;
    metrics.emitted.fetch_add(
        emitted.iter().filter(|ok| **ok).count() as u64,
        Ordering::Relaxed,
    );
    let late: Vec<&Event> = outcomes.iter().flat_map(|o| &o.outcome.late).collect();
    if setup.config.late_policy == LatePolicy::Topic {
        for event in &late {
            if let Some(record) = payloads.get(&event.review_id) {
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
        return Ok(false);
    }
    // Nothing local can tell this member it lost its partitions meanwhile: it learns of a
    // rebalance only when it polls, and a paused process polls nothing. Its checkpoints carry
    // the generation of its assignment, and a restore ignores them once a later generation
    // has written (`checkpoint`, zombie fencing).

    let saving = Instant::now();
    let config = serde_json::to_value(&setup.config).unwrap_or_default();
    let records: Vec<ChangelogRecord> = outcomes
        .iter()
        .filter_map(|o| {
            Some(ChangelogRecord {
                version: 0,
                group: setup.config.group.clone(),
                partition: o.partition,
                config: config.clone(),
                held: held.get(&o.partition)?.clone(),
                generation: generations.get(&o.partition).copied().flatten(),
            })
        })
        .collect();
    let saves = records
        .iter()
        .map(|record| checkpoint::save(changelog, record, changelog_partitions, &ctx.cancel));
    let saved = futures::future::join_all(saves).await;
    if saved.iter().any(Option::is_none) {
        return Ok(false);
    }
    metrics.record_checkpoint(saving.elapsed(), saved.iter().flatten().sum());
    // Outputs and checkpoint: waiting for the broker's acknowledgements.
    clock.mark(&metrics.backpressured_us);
    let offsets: BTreeMap<i32, i64> = records
        .iter()
        .map(|r| (r.partition, r.held.offset))
        .collect();
    // The trace reads these marks beside the group's committed offset: they are remembered
    // before the commit, so a review past the committed offset is always found in them.
    // Stamped with the trigger's own time: what processing-time windows use for its records.
    let mark = BatchMark {
        number: trigger,
        at_ms: now,
    };
    metrics.triggers_read.record(mark, read);
    let mut late_read = BatchIds::default();
    for event in &late {
        match payloads.get(&event.review_id) {
            Some(record) => late_read.push_from(&event.review_id, record.partition, record.offset),
            None => late_read.push(&event.review_id),
        }
    }
    metrics.late_read.record(mark, late_read);
    commit(consumer, &offsets);
    metrics.publish(held);
    metrics.triggers.fetch_add(1, Ordering::Relaxed);
    metrics
        .last_batch
        .store(batch.len() as u64, Ordering::Relaxed);
    metrics.batch_ms.store(
        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    Ok(true)
}

/// The group's offsets in Kafka follow the changelog, so cell 2 shows this stage's lag. They
/// are not what a partition restarts from: its changelog record is.
fn commit(consumer: &AggregateConsumer, offsets: &BTreeMap<i32, i64>) {
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

/// Writes one partition's share of a window, keyed by the window and partition, until the broker acknowledges it.
async fn send_window(
    producer: &FutureProducer,
    partition: i32,
    emitted: &Emitted,
    mode: &serde_json::Value,
    cancel: &tokio_util::sync::CancellationToken,
) -> bool {
    let mut value = serde_json::to_value(row(&emitted.window, &emitted.agg, emitted.closed))
        .unwrap_or_default();
    value["mode"] = mode.clone();
    // The changelog marker, as Flink's SQL client shows it: the first result of a window is
    // an insert; in update mode a later one replaces it (−U of `previous`, then +U), and a
    // session merged into another is withdrawn (−D, with what it said); complete mode writes
    // the whole table every trigger, as rows.
    let change = match (mode.as_str(), &emitted.previous) {
        (Some("complete"), _) => "row",
        _ if emitted.retract => "-D",
        (_, Some(previous)) => {
            let before = row(&emitted.window, previous, false);
            value["previous"] =
                serde_json::json!({"counts": before.counts, "total": previous.total()});
            "+U"
        }
        (_, None) => "+I",
    };
    value["change"] = change.into();
    value["emitted_at"] = chrono::Utc::now().timestamp_millis().into();
    // Each input partition's share of a window is its own result; readers add them up.
    value["partition"] = partition.into();
    let payload = value.to_string();
    let key = format!("{}@{partition}", emitted.window.record_key());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(payload: serde_json::Value) -> Record {
        Record {
            partition: 0,
            offset: 0,
            key: None,
            payload: payload.to_string().into_bytes(),
            timestamp_ms: None,
        }
    }

    #[test]
    fn a_labelled_tweet_counts_by_its_label_keyed_by_user_without_stars() {
        let tweet = serde_json::json!({"dataset": "tweets", "tweet_id": "t1", "user": "ana",
            "text": "love it", "hashtags": ["#kafka"], "created_at": "2024-01-01 09:00:00",
            "sentiment": "POSITIVE", "score": 0.6, "classifier": "lexicon"});
        let counted = event(&record(tweet.clone()), TimeDomain::Event, 0).expect("counted");
        assert_eq!(
            (counted.review_id.as_str(), counted.business_id.as_str()),
            ("t1", "ana")
        );
        assert_eq!(
            (counted.sentiment, counted.stars),
            (Some(app::api::Sentiment::Positive), 0)
        );
        assert_eq!(counted.time, 1_704_099_600_000);
        assert_eq!(
            (counted.dataset, counted.hashtags.as_slice()),
            (DatasetKind::Tweets, ["#kafka".to_owned()].as_slice())
        );
        let mut one_tag = tweet.clone();
        one_tag["hashtags"] = serde_json::json!("#rust");
        let counted = event(&record(one_tag), TimeDomain::Event, 0).expect("counted");
        assert_eq!(counted.hashtags, ["#rust"]);

        let mut unlabelled = tweet;
        unlabelled
            .as_object_mut()
            .map(|fields| fields.remove("sentiment"));
        let reason = event(&record(unlabelled), TimeDomain::Event, 0).expect_err("no label");
        assert!(reason.contains("without its sentiment label"), "{reason}");
        let reason =
            event(&record(serde_json::json!({"x": 1})), TimeDomain::Event, 0).expect_err("neither");
        assert!(reason.starts_with("not an enriched review"), "{reason}");
    }

    #[test]
    fn a_skipped_company_counts_without_a_label_by_country_and_industry() {
        let company = serde_json::json!({"dataset": "companies", "company_id": "c7",
            "name": "Acme", "country": "Peru", "industry": "Energy", "employees": 40,
            "founded": 1999, "created_at": "2024-01-01 09:00:00",
            "skipped": "companies has no text field: nothing to classify",
            "processed_at": "2026-11-23T10:00:00.000Z", "worker": "worker-1"});
        let counted = event(&record(company), TimeDomain::Event, 0).expect("counted");
        assert_eq!(
            (counted.review_id.as_str(), counted.business_id.as_str()),
            ("c7", "c7")
        );
        assert_eq!((counted.sentiment, counted.stars), (None, 0));
        assert_eq!(
            (counted.country.as_deref(), counted.industry.as_deref()),
            (Some("Peru"), Some("Energy"))
        );
        assert_eq!(counted.time, 1_704_099_600_000);
    }
}
