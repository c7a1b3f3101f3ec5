//! One mode of the lab, for real: fresh topics, the input written once by an idempotent producer,
//! a copy job that crashes at the crash point, a fresh job in the same group that finishes, and
//! the output topic read back (read_committed) to count what was lost and what was duplicated.
//!
//! The job reads one partition, assigned rather than subscribed: the lab is about where the commit
//! happens, and a fixed assignment makes the crash land on the same records every run. Batches are
//! cut so that one starts exactly at the crash point; the crash hits that batch at the moment
//! the mode is exposed:
//!
//! - at-most-once: offsets committed, output not yet written → the batch is lost;
//! - at-least-once: output written and acknowledged, offsets not yet committed → written twice;
//! - exactly-once: output written inside a transaction that is never committed → the restart
//!   aborts it (same `transactional.id`) and does the batch again; read_committed readers must
//!   not see the aborted copies. The embedded broker supports this (tansu with the patch in
//!   `vendor/`); a cluster that refuses transactions makes the row `unsupported`.
//!
//! "Crash" means the job's consumer and producer are dropped where they are, with no commit,
//! flush of later work or transaction abort. librdkafka calls block, so every Kafka step runs on
//! a blocking thread.

use std::ops::Range;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use app::api::{DeliveryLabView, DeliveryMode, DeliveryResult, LabState};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::{BATCH_RECORDS, DeliveryLab, LabPlan};
use crate::kafka::KafkaSettings;
use crate::kafka::admin::{AdminError, TopicSpec, delete_topics, ensure_topics};
use crate::sync::LockExt;

/// How long a job waits for the next input record before giving up.
const STALL_LIMIT: Duration = Duration::from_secs(60);
/// Timeout of one Kafka call (flush, commit, transaction step, watermarks).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(200);
/// The input and output have one partition each, so a crash point is one offset.
const PARTITION: i32 = 0;

/// Transaction API steps: when one fails with [`refuses_transactions`], the cluster lacks them.
const TRANSACTION_STEPS: [&str; 4] = [
    "init_transactions",
    "begin_transaction",
    "send_offsets_to_transaction",
    "commit_transaction",
];

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot create the lab's topics: {0}")]
    Topics(#[from] AdminError),
    #[error("{step} failed: {source}")]
    Kafka {
        step: &'static str,
        source: KafkaError,
    },
    #[error("{step}: {failed} record(s) were not acknowledged ({last_error})")]
    Undelivered {
        step: &'static str,
        failed: u64,
        last_error: String,
    },
    #[error("no input record arrived for {STALL_LIMIT:?} (next offset {next})")]
    Stalled { next: u64 },
    #[error("output record at offset {offset} is not an input id: {payload:?}")]
    Foreign { offset: i64, payload: String },
    #[error("the output topic was not read to its end within {STALL_LIMIT:?}")]
    OutputUnread,
    #[error("stopped: the server is shutting down")]
    Cancelled,
    #[error("a lab task failed: {0}")]
    Task(String),
}

impl RunError {
    /// Whether a transaction step failed because the cluster does not offer transactions at
    /// all (a broker without the API, or one that forbids them), not because one transaction
    /// went wrong: only then is exactly-once "unsupported" rather than "failed".
    fn refuses_transactions(&self) -> bool {
        let RunError::Kafka { step, source } = self else {
            return false;
        };
        let refused = matches!(
            source.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::UnsupportedFeature
                    | RDKafkaErrorCode::UnsupportedVersion
                    | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
                    | RDKafkaErrorCode::ClusterAuthorizationFailed
            )
        ) || source.to_string().contains("not supported by broker");
        TRANSACTION_STEPS.contains(step) && refused
    }
}

/// Tags a Kafka call's error with the step it belongs to.
fn step<T>(step: &'static str, result: Result<T, KafkaError>) -> Result<T, RunError> {
    result.map_err(|source| RunError::Kafka { step, source })
}

/// The names one mode of one run uses; fresh per run, so runs never read each other's data.
#[derive(Debug, Clone, PartialEq)]
pub struct Topics {
    pub input: String,
    pub output: String,
    pub group: String,
    pub transactional_id: String,
}

impl Topics {
    pub fn new(mode: DeliveryMode, run: &str) -> Self {
        let base = format!("lab.{}.{run}", mode.as_str());
        Self {
            input: format!("{base}.in"),
            output: format!("{base}.out"),
            group: base.clone(),
            transactional_id: base,
        }
    }
}

/// What one mode's run measured.
#[derive(Debug, Clone, PartialEq)]
struct Measured {
    /// Input offsets of the batch the crash hit.
    crash_batch: Range<u64>,
    counts: OutputCounts,
}

/// The output topic, counted against the input ids `0..records`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OutputCounts {
    pub read_out: u64,
    pub distinct: u64,
    pub lost: u64,
    pub duplicated: u64,
}

impl OutputCounts {
    /// `seen[id]` = how many times input id `id` was read from the output.
    pub fn from_seen(seen: &[u32]) -> Self {
        let read_out: u64 = seen.iter().map(|&n| u64::from(n)).sum();
        let distinct = seen.iter().filter(|&&n| n > 0).count() as u64;
        Self {
            read_out,
            distinct,
            lost: seen.len() as u64 - distinct,
            duplicated: read_out - distinct,
        }
    }
}

/// Runs one mode end to end and describes the outcome; never fails, a failure is a result.
pub(super) async fn run_mode(
    lab: &Arc<DeliveryLab>,
    kafka: &KafkaSettings,
    plan: &LabPlan,
    run: &str,
    mode: DeliveryMode,
) -> DeliveryResult {
    let topics = Topics::new(mode, run);
    let mut result = empty_result(mode, &topics, LabState::Done);
    let measured = measure(lab, kafka, plan, &topics, mode, &mut result).await;
    result.processed = lab.view().result(mode).map_or(0, |r| r.processed);
    match measured {
        Ok(measured) => describe(&mut result, &measured),
        Err(error) => {
            tracing::warn!(mode = mode.as_str(), %error, "delivery lab mode failed");
            if error.refuses_transactions() {
                unsupported(&mut result, &error, kafka, &topics, plan.records).await;
            } else {
                result.state = LabState::Failed;
                result.note = Some(error.to_string());
            }
        }
    }
    result
}

/// The cluster refused a transaction step. The output topic is still counted: what a
/// read_committed reader sees of a transaction that never ended is part of the evidence.
async fn unsupported(
    result: &mut DeliveryResult,
    error: &RunError,
    kafka: &KafkaSettings,
    topics: &Topics,
    records: u64,
) {
    result.state = LabState::Unsupported;
    let counted = {
        let (kafka, topics) = (kafka.clone(), topics.clone());
        blocking(move || count_output(&kafka, &topics, records)).await
    };
    let seen = match counted {
        Ok(counts) => {
            fill_counts(result, counts);
            if counts.read_out > 0 {
                format!(
                    "; a read_committed reader nevertheless sees the {} output record(s) of \
                     the transaction that was never committed",
                    counts.read_out
                )
            } else {
                String::new()
            }
        }
        Err(count_error) => format!("; the output could not be counted: {count_error}"),
    };
    result.note = Some(format!(
        "this cluster does not support transactions: {error}{seen}. Exactly-once needs a \
         broker with transactions (the embedded one has them)."
    ));
}

async fn measure(
    lab: &Arc<DeliveryLab>,
    kafka: &KafkaSettings,
    plan: &LabPlan,
    topics: &Topics,
    mode: DeliveryMode,
    result: &mut DeliveryResult,
) -> Result<Measured, RunError> {
    let specs = [&topics.input, &topics.output].map(|name| TopicSpec {
        name: name.clone(),
        partitions: 1,
        compact: false,
    });
    ensure_topics(kafka, &specs).await?;
    let records = plan.records;
    result.produced_in = {
        let (kafka, topic) = (kafka.clone(), topics.input.clone());
        blocking(move || produce_input(&kafka, &topic, records)).await?
    };
    let job = |crash: Option<u64>| {
        let (lab, kafka, topics) = (lab.clone(), kafka.clone(), topics.clone());
        blocking(move || copy_job(&lab, &kafka, &topics, mode, records, crash))
    };
    let crash_batch = match job(Some(plan.crash_after)).await? {
        JobEnd::Crashed(batch) => batch,
        // Cannot happen (the crash point is below `records`), but say so rather than guess.
        JobEnd::Finished => return Err(RunError::Task("the job never reached the crash".into())),
    };
    result.crash_at_offset = Some(crash_batch.start);
    tracing::info!(
        mode = mode.as_str(),
        ?crash_batch,
        "lab job crashed; restarting"
    );
    job(None).await?;
    let counts = {
        let (kafka, topics) = (kafka.clone(), topics.clone());
        blocking(move || count_output(&kafka, &topics, records)).await?
    };
    Ok(Measured {
        crash_batch,
        counts,
    })
}

fn fill_counts(result: &mut DeliveryResult, counts: OutputCounts) {
    result.read_out = counts.read_out;
    result.distinct = counts.distinct;
    result.lost = counts.lost;
    result.duplicated = counts.duplicated;
}

/// Fills in the counts and says what happened; decides whether exactly-once held.
fn describe(result: &mut DeliveryResult, measured: &Measured) {
    let counts = measured.counts;
    fill_counts(result, counts);
    let Range { start, end } = measured.crash_batch;
    let batch = format!("records {start}–{}", end - 1);
    let note = match result.mode {
        DeliveryMode::AtMostOnce => format!(
            "Committed offset {end}, then crashed before writing {batch}: the restarted consumer \
             resumed at {end}, so they were never written."
        ),
        DeliveryMode::AtLeastOnce => format!(
            "Wrote {batch} and got their acks, then crashed before committing: the restarted \
             consumer resumed at {start} and wrote them again."
        ),
        DeliveryMode::ExactlyOnce if counts.lost == 0 && counts.duplicated == 0 => format!(
            "Crashed inside the transaction holding {batch} and its offsets: the restart \
             aborted it and redid the batch in a new transaction; read_committed readers never \
             saw the aborted copies. Had the job never come back, the broker would have aborted \
             it once it was open longer than the producer's transaction.timeout.ms (60 s by \
             default)."
        ),
        DeliveryMode::ExactlyOnce => {
            let failed = format!(
                "after a crash inside the transaction holding {batch}, a read_committed \
                 consumer read {} duplicated and missed {} record(s)",
                counts.duplicated, counts.lost
            );
            result.state = LabState::Failed;
            format!("exactly-once did not hold on this cluster: {failed}")
        }
    };
    result.note = Some(note);
}

/// Runs blocking Kafka work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RunError> + Send + 'static,
) -> Result<T, RunError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| RunError::Task(error.to_string()))?
}

/// Counts acknowledgements and failures of a producer's deliveries.
#[derive(Default)]
struct Acks {
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            *self.last_error.lock_or_recover() = Some(error.to_string());
        }
    }
}

type LabProducer = BaseProducer<Acks>;

/// An idempotent producer, transactional when `transactional_id` is set (then initialised:
/// this is where a restarted job fences its crashed predecessor and aborts its transaction).
fn producer(
    kafka: &KafkaSettings,
    transactional_id: Option<&str>,
) -> Result<LabProducer, RunError> {
    let mut config = kafka.client_config();
    config
        .set("enable.idempotence", "true")
        .set("linger.ms", "5");
    if let Some(id) = transactional_id {
        config.set("transactional.id", id);
    }
    let producer: LabProducer = step(
        "create producer",
        config.create_with_context(Acks::default()),
    )?;
    if transactional_id.is_some() {
        step(
            "init_transactions",
            producer.init_transactions(CALL_TIMEOUT),
        )?;
    }
    Ok(producer)
}

/// Queues one record, waiting while the client's queue is full.
fn send(producer: &LabProducer, topic: &str, key: &[u8], value: &[u8]) -> Result<(), RunError> {
    let mut record = BaseRecord::to(topic).key(key).payload(value);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(50));
            }
            Err((error, _)) => {
                return Err(RunError::Kafka {
                    step: "send",
                    source: error,
                });
            }
        }
    }
}

/// Waits until every queued record is acknowledged; any failed delivery is an error.
fn flush(producer: &LabProducer, what: &'static str) -> Result<(), RunError> {
    step(what, producer.flush(CALL_TIMEOUT))?;
    let failed = producer.context().failed.swap(0, Ordering::Relaxed);
    if failed > 0 {
        let last_error = producer
            .context()
            .last_error
            .lock()
            .ok()
            .and_then(|last| last.clone())
            .unwrap_or_default();
        return Err(RunError::Undelivered {
            step: what,
            failed,
            last_error,
        });
    }
    Ok(())
}

/// Writes ids `0..records` to the input (key = value = the id); returns its high watermark.
fn produce_input(kafka: &KafkaSettings, topic: &str, records: u64) -> Result<u64, RunError> {
    let producer = producer(kafka, None)?;
    for id in 0..records {
        let id = id.to_string();
        send(&producer, topic, id.as_bytes(), id.as_bytes())?;
    }
    flush(&producer, "produce input")?;
    let (_, high) = step(
        "input watermarks",
        producer
            .client()
            .fetch_watermarks(topic, PARTITION, CALL_TIMEOUT),
    )?;
    Ok(u64::try_from(high).unwrap_or(0))
}

/// How a copy job ended.
enum JobEnd {
    /// Crashed in the batch with these input offsets.
    Crashed(Range<u64>),
    /// Copied the input to its end.
    Finished,
}

/// One input record in hand.
struct Input {
    offset: u64,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// The copy job: read a batch, write it to the output, commit (in the mode's order), until the
/// input's end, or until the crash point's batch, where it crashes.
fn copy_job(
    lab: &DeliveryLab,
    kafka: &KafkaSettings,
    topics: &Topics,
    mode: DeliveryMode,
    records: u64,
    crash_at: Option<u64>,
) -> Result<JobEnd, RunError> {
    let consumer = job_consumer(kafka, topics)?;
    let transactional_id =
        (mode == DeliveryMode::ExactlyOnce).then_some(topics.transactional_id.as_str());
    let producer = producer(kafka, transactional_id)?;
    let mut next = committed_offset(&consumer, topics)?;
    while next < records {
        if lab.cancelled() {
            return Err(RunError::Cancelled);
        }
        let batch = next_batch(&consumer, next, batch_end(next, records, crash_at))?;
        let offsets = next..next + batch.len() as u64;
        let crash = crash_at == Some(next);
        let outcome = match mode {
            DeliveryMode::AtMostOnce => at_most_once(&consumer, &producer, topics, &batch, crash),
            DeliveryMode::AtLeastOnce => at_least_once(&consumer, &producer, topics, &batch, crash),
            DeliveryMode::ExactlyOnce => exactly_once(&consumer, &producer, topics, &batch, crash),
        }?;
        if outcome.written {
            lab.add_processed(mode, batch.len() as u64);
        }
        if crash {
            // The crash: consumer and producer are dropped as they are on return.
            return Ok(JobEnd::Crashed(offsets));
        }
        next = offsets.end;
    }
    Ok(JobEnd::Finished)
}

/// Where the batch starting at `next` ends: after `BATCH_RECORDS`, at the input's end, or just
/// before the crash point, so that the crash point starts a batch.
fn batch_end(next: u64, records: u64, crash_at: Option<u64>) -> u64 {
    let mut end = (next + BATCH_RECORDS).min(records);
    if let Some(crash) = crash_at
        && crash > next
    {
        end = end.min(crash);
    }
    end
}

/// What a mode did with one batch.
struct BatchOutcome {
    /// The batch's output was written and acknowledged.
    written: bool,
}

fn at_most_once(
    consumer: &BaseConsumer,
    producer: &LabProducer,
    topics: &Topics,
    batch: &[Input],
    crash: bool,
) -> Result<BatchOutcome, RunError> {
    commit(consumer, topics, batch)?;
    if crash {
        return Ok(BatchOutcome { written: false });
    }
    write(producer, topics, batch)?;
    flush(producer, "write output")?;
    Ok(BatchOutcome { written: true })
}

fn at_least_once(
    consumer: &BaseConsumer,
    producer: &LabProducer,
    topics: &Topics,
    batch: &[Input],
    crash: bool,
) -> Result<BatchOutcome, RunError> {
    write(producer, topics, batch)?;
    flush(producer, "write output")?;
    if !crash {
        commit(consumer, topics, batch)?;
    }
    Ok(BatchOutcome { written: true })
}

fn exactly_once(
    consumer: &BaseConsumer,
    producer: &LabProducer,
    topics: &Topics,
    batch: &[Input],
    crash: bool,
) -> Result<BatchOutcome, RunError> {
    step("begin_transaction", producer.begin_transaction())?;
    write(producer, topics, batch)?;
    // commit_transaction would flush too; flushing first tells a broker that cannot write
    // inside a transaction apart from one that cannot end it.
    flush(producer, "write output")?;
    if crash {
        // The output is in the broker inside the open transaction, and the job dies without
        // committing or aborting it: the worst moment for exactly-once.
        return Ok(BatchOutcome { written: true });
    }
    let metadata = consumer
        .group_metadata()
        .ok_or_else(|| RunError::Task("the job's consumer has no group metadata".into()))?;
    step(
        "send_offsets_to_transaction",
        producer.send_offsets_to_transaction(
            &next_offsets(topics, batch)?,
            &metadata,
            CALL_TIMEOUT,
        ),
    )?;
    step(
        "commit_transaction",
        producer.commit_transaction(CALL_TIMEOUT),
    )?;
    let failed = producer.context().failed.swap(0, Ordering::Relaxed);
    if failed > 0 {
        return Err(RunError::Undelivered {
            step: "commit_transaction",
            failed,
            last_error: String::new(),
        });
    }
    Ok(BatchOutcome { written: true })
}

/// Queues the batch's copies (same key, same value) to the output.
fn write(producer: &LabProducer, topics: &Topics, batch: &[Input]) -> Result<(), RunError> {
    batch
        .iter()
        .try_for_each(|input| send(producer, &topics.output, &input.key, &input.value))
}

/// The offsets to commit after `batch`: its last offset + 1.
fn next_offsets(topics: &Topics, batch: &[Input]) -> Result<TopicPartitionList, RunError> {
    let next = batch.last().map_or(0, |input| input.offset + 1);
    let mut tpl = TopicPartitionList::new();
    step(
        "offsets",
        tpl.add_partition_offset(&topics.input, PARTITION, Offset::Offset(next as i64)),
    )?;
    Ok(tpl)
}

/// A mode's result before anything is counted.
pub(super) fn empty_result(mode: DeliveryMode, topics: &Topics, state: LabState) -> DeliveryResult {
    DeliveryResult {
        mode,
        state,
        input_topic: topics.input.clone(),
        output_topic: topics.output.clone(),
        produced_in: 0,
        read_out: 0,
        distinct: 0,
        lost: 0,
        duplicated: 0,
        crash_at_offset: None,
        processed: 0,
        note: None,
    }
}

fn commit(consumer: &BaseConsumer, topics: &Topics, batch: &[Input]) -> Result<(), RunError> {
    let tpl = next_offsets(topics, batch)?;
    step("commit offsets", consumer.commit(&tpl, CommitMode::Sync))
}

/// What every lab consumer shares: manual commits, from the start, only committed records.
fn lab_consumer_config(kafka: &KafkaSettings, group: &str) -> rdkafka::ClientConfig {
    let mut config = kafka.client_config();
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        // The embedded broker answers a fetch only when its wait expires.
        .set("fetch.wait.max.ms", "100");
    config
}

/// A consumer in the job's group, assigned the input partition at the group's committed offset.
fn job_consumer(kafka: &KafkaSettings, topics: &Topics) -> Result<BaseConsumer, RunError> {
    let consumer: BaseConsumer = step(
        "create consumer",
        lab_consumer_config(kafka, &topics.group)
            .set("enable.auto.offset.store", "false")
            .create(),
    )?;
    let mut tpl = TopicPartitionList::new();
    step(
        "assign",
        tpl.add_partition_offset(&topics.input, PARTITION, Offset::Stored),
    )?;
    step("assign", consumer.assign(&tpl))?;
    Ok(consumer)
}

/// The group's committed offset on the input (0 when nothing is committed yet).
fn committed_offset(consumer: &BaseConsumer, topics: &Topics) -> Result<u64, RunError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&topics.input, PARTITION);
    let committed = step(
        "read committed offset",
        consumer.committed_offsets(tpl, CALL_TIMEOUT),
    )?;
    let offset = committed
        .find_partition(&topics.input, PARTITION)
        .and_then(|element| match element.offset() {
            Offset::Offset(offset) => u64::try_from(offset).ok(),
            _ => None,
        })
        .unwrap_or(0);
    Ok(offset)
}

/// Reads the records at offsets `next..end`.
fn next_batch(consumer: &BaseConsumer, next: u64, end: u64) -> Result<Vec<Input>, RunError> {
    let mut batch = Vec::with_capacity((end - next) as usize);
    let mut expected = next;
    let mut waited_since = Instant::now();
    while expected < end {
        match consumer.poll(POLL) {
            Some(Ok(message)) => {
                let offset = u64::try_from(message.offset()).unwrap_or(0);
                batch.push(Input {
                    offset,
                    key: message.key().map(<[u8]>::to_vec).unwrap_or_default(),
                    value: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                });
                expected = offset + 1;
                waited_since = Instant::now();
            }
            Some(Err(error)) => {
                return Err(RunError::Kafka {
                    step: "consume",
                    source: error,
                });
            }
            None if waited_since.elapsed() > STALL_LIMIT => {
                return Err(RunError::Stalled { next: expected });
            }
            None => {}
        }
    }
    Ok(batch)
}

/// Reads the whole output topic as a read_committed consumer and counts the ids in it.
fn count_output(
    kafka: &KafkaSettings,
    topics: &Topics,
    records: u64,
) -> Result<OutputCounts, RunError> {
    let consumer: BaseConsumer = step(
        "create output reader",
        lab_consumer_config(kafka, &format!("{}.reader", topics.group))
            .set("enable.partition.eof", "true")
            .create(),
    )?;
    let mut tpl = TopicPartitionList::new();
    step(
        "assign output",
        tpl.add_partition_offset(&topics.output, PARTITION, Offset::Beginning),
    )?;
    step("assign output", consumer.assign(&tpl))?;
    let (_, high) = step(
        "output watermarks",
        consumer.fetch_watermarks(&topics.output, PARTITION, CALL_TIMEOUT),
    )?;
    let mut seen = vec![0u32; records as usize];
    let deadline = Instant::now() + STALL_LIMIT;
    while position(&consumer, topics)? < high {
        if Instant::now() > deadline {
            return Err(RunError::OutputUnread);
        }
        match consumer.poll(POLL) {
            Some(Ok(message)) => {
                let payload = message.payload().unwrap_or_default();
                let id = std::str::from_utf8(payload)
                    .ok()
                    .and_then(|text| text.parse::<usize>().ok())
                    .filter(|&id| id < seen.len())
                    .ok_or_else(|| RunError::Foreign {
                        offset: message.offset(),
                        payload: String::from_utf8_lossy(payload).into_owned(),
                    })?;
                seen[id] += 1;
            }
            // The end of what a read_committed reader may read now; the loop checks the position.
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(error)) => {
                return Err(RunError::Kafka {
                    step: "read output",
                    source: error,
                });
            }
        }
    }
    Ok(OutputCounts::from_seen(&seen))
}

/// The reader's next offset on the output (control records of transactions included).
fn position(consumer: &BaseConsumer, topics: &Topics) -> Result<i64, RunError> {
    let position = step("output position", consumer.position())?;
    Ok(position
        .find_partition(&topics.output, PARTITION)
        .and_then(|element| match element.offset() {
            Offset::Offset(offset) => Some(offset),
            _ => None,
        })
        .unwrap_or(0))
}

/// Deletes a previous run's topics, so lab runs do not pile up in the Kafka cell.
pub(super) async fn remove_topics(kafka: &KafkaSettings, previous: &DeliveryLabView) {
    let names: Vec<&str> = previous
        .results
        .iter()
        .flat_map(|result| [result.input_topic.as_str(), result.output_topic.as_str()])
        .collect();
    if names.is_empty() {
        return;
    }
    if let Err(error) = delete_topics(kafka, &names).await {
        tracing::warn!(%error, "could not delete the previous lab run's topics");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crash_point_starts_a_batch() {
        assert_eq!(batch_end(0, 10_000, Some(5_000)), 500);
        assert_eq!(batch_end(4_500, 10_000, Some(4_750)), 4_750);
        assert_eq!(batch_end(4_750, 10_000, Some(4_750)), 5_250);
        assert_eq!(batch_end(9_800, 10_000, None), 10_000);
        assert_eq!(batch_end(0, 10, Some(0)), 10);
    }

    #[test]
    fn counts_lost_and_duplicated_from_what_was_read() {
        let counts = OutputCounts::from_seen(&[1, 0, 2, 1, 3, 0]);
        assert_eq!(
            counts,
            OutputCounts {
                read_out: 7,
                distinct: 4,
                lost: 2,
                duplicated: 3,
            }
        );
    }

    #[test]
    fn names_are_fresh_per_run_and_mode() {
        let topics = Topics::new(DeliveryMode::AtLeastOnce, "1700000000000");
        assert_eq!(topics.input, "lab.at_least_once.1700000000000.in");
        assert_eq!(topics.output, "lab.at_least_once.1700000000000.out");
        assert_ne!(
            topics,
            Topics::new(DeliveryMode::AtLeastOnce, "1700000000001")
        );
    }
}
