//! Checkpoints in Kafka: after each trigger, every input partition that changed writes its state
//! and its next offset, as one record, to the compacted changelog topic
//! `pipebook.aggregate.changelog`, keyed `<group>/<partition>` (as a Kafka Streams state store's
//! changelog). Whichever process the group assigns a partition to reads the partition's latest
//! record and resumes from exactly that offset with exactly that state: the state and the offset
//! are one record, so a crash between two checkpoints replays records, it never counts one twice.
//!
//! The changelog has as many partitions as the input; input partition `p` is checkpointed to
//! changelog partition `p mod n`, so restoring one partition reads one changelog partition.
//!
//! **Zombie fencing.** A member that lost a partition without knowing it (paused by a long GC
//! or `kill -STOP` until its session expired and the group moved the partition) may wake up in
//! the middle of a trigger and write the partition's checkpoint after the new owner has written
//! its own. Every record carries the group *generation* of the assignment that wrote it (the
//! number the coordinator gives each round of assignments, [`crate::kafka::generation`]), and a
//! restore reads a partition's records in order keeping the latest, except one written in an
//! older generation than a record already read: a zombie's, ignored ([`Restoring`]). A member
//! whose own generation is older than a record it restores has itself lost the partition, and
//! takes nothing ([`CheckpointError::Fenced`]). A start marker ([`mark_start`], written from
//! outside the group while it has no members) has no generation and starts the order over.
//! Why not Kafka's own transactional fencing (KIP-447, `send_offsets_to_transaction` with the
//! consumer's group metadata): the embedded broker (tansu 0.6) stores a `TxnOffsetCommit`
//! without checking its generation against the group, so the broker would fence nothing here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use app::api::TOPIC_AGGREGATE_CHANGELOG;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::partitions::PartitionState;
use crate::kafka::KafkaSettings;
use crate::kafka::admin::TopicSpec;

/// Bumped when the record format changes; an older record is refused, not misread.
const VERSION: u32 = 2;
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a restore may take to read a changelog partition to its end.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(60);
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Largest state record the stage writes (the producer's `message.max.bytes`); the dedup set
/// and open windows are bounded by the allowed lateness, closed windows by count.
pub const MAX_RECORD_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("changelog {TOPIC_AGGREGATE_CHANGELOG}: {0}")]
    Kafka(#[from] KafkaError),
    #[error(
        "changelog record {key} is not readable ({reason}); delete topic {TOPIC_AGGREGATE_CHANGELOG} or use another group to start over"
    )]
    Corrupt { key: String, reason: String },
    #[error(
        "changelog {TOPIC_AGGREGATE_CHANGELOG} partition {partition} not read to its end within {RESTORE_TIMEOUT:?}"
    )]
    Timeout { partition: i32 },
    /// This member's assignment is older than one another member already checkpointed under:
    /// the group moved on without it. Not a failure of the stage: it rejoins at its next
    /// heartbeat. (If the group was deleted and created again, its generations start over:
    /// write start markers or use another group.)
    #[error(
        "partition {partition} was checkpointed in group generation {newer}, after this member's assignment (generation {ours}): it lost the partition"
    )]
    Fenced {
        partition: i32,
        ours: i32,
        newer: i32,
    },
}

/// One changelog record: a partition's state with the offset it covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangelogRecord {
    pub version: u32,
    pub group: String,
    pub partition: i32,
    /// The stage's configuration when written, as JSON (a changed query starts over).
    pub config: serde_json::Value,
    pub held: PartitionState,
    /// The group generation of the assignment that wrote it (the fencing token); `None` for a
    /// start marker, and for records written before records carried it.
    #[serde(default)]
    pub generation: Option<i32>,
}

/// One partition's records as a restore reads them, in changelog order.
#[derive(Debug, Default)]
pub struct Restoring {
    /// The record to resume from.
    pub latest: Option<ChangelogRecord>,
    /// The newest generation read since the last start marker.
    pub newest_generation: Option<i32>,
    /// Records ignored as a zombie's: written in an older generation than one read before.
    pub fenced: u64,
}

impl Restoring {
    /// Takes the next record of the partition (`None`: a tombstone).
    pub fn read(&mut self, record: Option<ChangelogRecord>) {
        let Some(record) = record else {
            // The state was deleted: nothing to resume, and no order to keep.
            self.latest = None;
            self.newest_generation = None;
            return;
        };
        match record.generation {
            // A start marker: whatever comes after it counts.
            None => self.newest_generation = None,
            Some(generation) if self.newest_generation.is_some_and(|n| generation < n) => {
                tracing::warn!(
                    key = %key(&record.group, record.partition),
                    generation,
                    newer = self.newest_generation,
                    offset = record.held.offset,
                    "changelog record of an older group generation than one before it (a zombie's write); ignored"
                );
                self.fenced += 1;
                return;
            }
            Some(generation) => self.newest_generation = Some(generation),
        }
        self.latest = Some(record);
    }
}

/// What a restore found for the partitions asked for.
#[derive(Debug, Default)]
pub struct Restored {
    /// The record each partition resumes from (absent: none, start from the beginning).
    pub records: BTreeMap<i32, ChangelogRecord>,
    /// Zombie writes ignored, over all the partitions.
    pub fenced: u64,
}

/// The changelog topic, compacted, with one partition per input partition.
pub fn topic_spec(partitions: i32) -> TopicSpec {
    TopicSpec {
        name: TOPIC_AGGREGATE_CHANGELOG.to_owned(),
        partitions,
        compact: true,
    }
}

/// The record key of a group's partition.
pub fn key(group: &str, partition: i32) -> String {
    format!("{group}/{partition}")
}

fn changelog_partition(partition: i32, changelog_partitions: i32) -> i32 {
    partition.rem_euclid(changelog_partitions.max(1))
}

/// The producer checkpoints are written with: idempotent, never timing out, and allowed records
/// as large as [`MAX_RECORD_BYTES`].
pub fn producer(kafka: &KafkaSettings) -> Result<FutureProducer, KafkaError> {
    kafka
        .client_config()
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "0")
        .set("message.max.bytes", MAX_RECORD_BYTES.to_string())
        .create()
}

/// How many partitions the changelog topic has.
pub fn partition_count<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> Result<i32, KafkaError> {
    let metadata = consumer.fetch_metadata(Some(TOPIC_AGGREGATE_CHANGELOG), METADATA_TIMEOUT)?;
    Ok(metadata
        .topics()
        .iter()
        .map(|t| t.partitions().len() as i32)
        .max()
        .unwrap_or(0))
}

/// The latest record of each of `partitions` of `group`, read to the end of the changelog,
/// ignoring zombie writes ([`Restoring`]). `generation`: the group generation of the assignment
/// restoring them; a record written in a newer one means this member lost the partitions
/// ([`CheckpointError::Fenced`]).
/// Blocking: call it on a blocking thread (a rebalance callback runs on the polling one).
pub fn restore(
    kafka: &KafkaSettings,
    group: &str,
    partitions: &[i32],
    generation: Option<i32>,
) -> Result<Restored, CheckpointError> {
    let read = read_partitions(kafka, group, partitions)?;
    settle(read, generation)
}

/// What a member assigned in `generation` resumes from, given each partition's records as read.
pub fn settle(
    read: BTreeMap<i32, Restoring>,
    generation: Option<i32>,
) -> Result<Restored, CheckpointError> {
    let mut restored = Restored::default();
    for (partition, restoring) in read {
        if let (Some(ours), Some(newer)) = (generation, restoring.newest_generation)
            && newer > ours
        {
            return Err(CheckpointError::Fenced {
                partition,
                ours,
                newer,
            });
        }
        restored.fenced += restoring.fenced;
        if let Some(record) = restoring.latest {
            restored.records.insert(partition, record);
        }
    }
    Ok(restored)
}

/// Each of `partitions` of `group` as read to the end of the changelog.
fn read_partitions(
    kafka: &KafkaSettings,
    group: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, Restoring>, CheckpointError> {
    let reader: BaseConsumer = kafka
        .client_config()
        .set("group.id", "pipebook-changelog-restore")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .create()?;
    let count = partition_count(&reader)?;
    let mut restored = BTreeMap::new();
    if count == 0 || partitions.is_empty() {
        return Ok(restored);
    }
    let wanted: BTreeMap<String, i32> = partitions.iter().map(|p| (key(group, *p), *p)).collect();
    // Changelog partition → its end offset, for those holding anything.
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for partition in partitions {
        let source = changelog_partition(*partition, count);
        if ends.contains_key(&source) {
            continue;
        }
        let (low, high) =
            reader.fetch_watermarks(TOPIC_AGGREGATE_CHANGELOG, source, METADATA_TIMEOUT)?;
        if high > low {
            ends.insert(source, high);
        }
    }
    if ends.is_empty() {
        return Ok(restored);
    }
    let mut tpl = TopicPartitionList::new();
    for source in ends.keys() {
        tpl.add_partition_offset(TOPIC_AGGREGATE_CHANGELOG, *source, Offset::Beginning)?;
    }
    reader.assign(&tpl)?;
    let deadline = Instant::now() + RESTORE_TIMEOUT;
    while !ends.is_empty() {
        if Instant::now() >= deadline {
            let partition = ends.keys().next().copied().unwrap_or_default();
            return Err(CheckpointError::Timeout { partition });
        }
        let message = match reader.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(source))) => {
                ends.remove(&source);
                continue;
            }
            Some(Err(error)) => {
                tracing::debug!(%error, "changelog restore poll error");
                continue;
            }
            Some(Ok(message)) => message,
        };
        if ends
            .get(&message.partition())
            .is_some_and(|end| message.offset() + 1 >= *end)
        {
            ends.remove(&message.partition());
        }
        let Some(record_key) = message.key().map(String::from_utf8_lossy) else {
            continue;
        };
        let Some(partition) = wanted.get(record_key.as_ref()) else {
            continue;
        };
        let record = match message.payload() {
            Some(payload) => Some(decode(&record_key, payload)?),
            None => None,
        };
        restored.entry(*partition).or_default().read(record);
    }
    Ok(restored)
}

fn decode(key: &str, payload: &[u8]) -> Result<ChangelogRecord, CheckpointError> {
    let corrupt = |reason: String| CheckpointError::Corrupt {
        key: key.to_owned(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| corrupt(e.to_string()))?;
    let version = value["version"].as_u64().unwrap_or_default();
    if version != u64::from(VERSION) {
        return Err(corrupt(format!("version {version} (expected {VERSION})")));
    }
    serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))
}

/// Writes one partition's checkpoint and waits until the broker has it: its size in bytes, or
/// `None` when cancelled first (then nothing may be committed for that partition).
pub async fn save(
    producer: &FutureProducer,
    record: &ChangelogRecord,
    changelog_partitions: i32,
    cancel: &CancellationToken,
) -> Option<u64> {
    let mut record = record.clone();
    record.version = VERSION;
    let payload = serde_json::to_vec(&record).ok()?;
    let record_key = key(&record.group, record.partition);
    let partition = changelog_partition(record.partition, changelog_partitions);
    loop {
        let sending = FutureRecord::to(TOPIC_AGGREGATE_CHANGELOG)
            .partition(partition)
            .key(&record_key)
            .payload(&payload);
        match producer.send(sending, Timeout::Never).await {
            Ok(_) => return Some(payload.len() as u64),
            Err(_) if cancel.is_cancelled() => return None,
            Err((error, _)) => {
                tracing::warn!(key = %record_key, bytes = payload.len(), %error, "checkpoint not written; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

/// Writes a *start marker* for each input partition `p` of `group`: no windows, the next offset
/// to read `offsets[p]`, and config null, so whatever query the group runs next resumes there
/// (and a changed query later starts over from there, not from 0). It is to the aggregate's
/// group what committing offsets is to a plain consumer group: the stage positions itself from
/// its checkpoints, not from committed offsets. Call it only while the group has no members.
pub async fn mark_start(
    kafka: &KafkaSettings,
    group: &str,
    offsets: &[i64],
    changelog_partitions: i32,
) -> Result<(), KafkaError> {
    let producer = producer(kafka)?;
    let cancel = CancellationToken::new();
    for (partition, offset) in offsets.iter().enumerate() {
        let record = ChangelogRecord {
            version: VERSION,
            group: group.to_owned(),
            partition: i32::try_from(partition).unwrap_or(i32::MAX),
            config: serde_json::Value::Null,
            held: PartitionState {
                offset: *offset,
                start: *offset,
                ..PartitionState::default()
            },
            // Written from outside the group: no generation, so the order starts over here.
            generation: None,
        };
        save(&producer, &record, changelog_partitions, &cancel).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_and_junk_or_old_versions_are_refused_by_name() {
        let mut held = PartitionState {
            offset: 10,
            triggers: 3,
            ..PartitionState::default()
        };
        held.state.counted = 17;
        held.state.seen.insert("r1".into(), 5);
        let record = ChangelogRecord {
            version: VERSION,
            group: "g".into(),
            partition: 2,
            config: serde_json::json!({"a": 1}),
            held,
            generation: Some(4),
        };
        let bytes = serde_json::to_vec(&record).expect("encode");
        assert_eq!(decode("g/2", &bytes).expect("decode"), record);
        let err = decode("g/2", b"{half").expect_err("corrupt");
        assert!(err.to_string().contains("g/2"), "{err}");
        let old = serde_json::json!({"version": 1});
        let err = decode("g/2", old.to_string().as_bytes()).expect_err("old");
        assert!(err.to_string().contains("version 1"), "{err}");
        assert_eq!(key("pipebook-aggregate", 0), "pipebook-aggregate/0");
        assert_eq!(changelog_partition(4, 3), 1);
    }

    fn written(offset: i64, generation: Option<i32>) -> ChangelogRecord {
        ChangelogRecord {
            version: VERSION,
            group: "g".into(),
            partition: 0,
            config: serde_json::Value::Null,
            held: PartitionState {
                offset,
                ..PartitionState::default()
            },
            generation,
        }
    }

    fn read(records: Vec<Option<ChangelogRecord>>) -> Restoring {
        let mut restoring = Restoring::default();
        for record in records {
            restoring.read(record);
        }
        restoring
    }

    #[test]
    fn a_zombies_late_write_is_ignored_and_the_new_owners_checkpoint_kept() {
        // The owner of generation 3 checkpoints; the partition moves to generation 4, whose
        // owner checkpoints twice; the old owner wakes up and writes its trigger anyway.
        let restoring = read(vec![
            Some(written(100, Some(3))),
            Some(written(180, Some(4))),
            Some(written(250, Some(4))),
            Some(written(130, Some(3))),
        ]);
        assert_eq!(restoring.latest.map(|r| r.held.offset), Some(250));
        assert_eq!(restoring.fenced, 1);
        assert_eq!(restoring.newest_generation, Some(4));
    }

    #[test]
    fn later_generations_start_markers_and_tombstones_are_taken_in_order() {
        let restoring = read(vec![Some(written(10, Some(7))), Some(written(20, Some(9)))]);
        assert_eq!(restoring.latest.map(|r| r.held.offset), Some(20));
        // A start marker (a reset from outside the group) resets the order: generation 2
        // after it counts (the group may even have been created again).
        let restoring = read(vec![
            Some(written(20, Some(9))),
            Some(written(5, None)),
            Some(written(6, Some(2))),
        ]);
        assert_eq!(restoring.latest.map(|r| r.held.offset), Some(6));
        assert_eq!(restoring.fenced, 0);
        let restoring = read(vec![Some(written(20, Some(9))), None]);
        assert!(restoring.latest.is_none() && restoring.newest_generation.is_none());
        // Records written before they carried a generation read as `None`.
        let mut old = serde_json::to_value(written(3, Some(1))).expect("JSON");
        old.as_object_mut()
            .map(|fields| fields.remove("generation"));
        let decoded = decode("g/0", old.to_string().as_bytes()).expect("an older record");
        assert_eq!(decoded.generation, None);
    }

    #[test]
    fn a_member_assigned_in_an_older_generation_than_a_checkpoint_is_fenced() {
        let partitions = |records: Vec<Option<ChangelogRecord>>| {
            BTreeMap::from([(0, read(records)), (1, Restoring::default())])
        };
        let restored = settle(partitions(vec![Some(written(180, Some(4)))]), Some(4))
            .expect("the owner of generation 4");
        assert_eq!(restored.records[&0].held.offset, 180);
        assert!(!restored.records.contains_key(&1));
        let restored =
            settle(partitions(vec![Some(written(180, Some(4)))]), Some(6)).expect("a later owner");
        assert_eq!(restored.records.len(), 1);
        let err = settle(partitions(vec![Some(written(180, Some(4)))]), Some(3))
            .expect_err("the zombie of generation 3");
        assert!(matches!(
            err,
            CheckpointError::Fenced {
                partition: 0,
                ours: 3,
                newer: 4
            }
        ));
        assert!(err.to_string().contains("generation 4"), "{err}");
        // Without a generation of its own (not known), nothing is refused.
        settle(partitions(vec![Some(written(180, Some(4)))]), None).expect("no generation");
    }
}
