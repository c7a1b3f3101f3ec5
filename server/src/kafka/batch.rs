//! Consuming in batches with manual commits, the pattern every consuming stage shares: read a
//! batch, do the work, and only then commit the offsets after the batch (at-least-once).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

/// One consumed record, copied out of the client's buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// The record's timestamp in ms since the epoch (the producer's create time), when it has one.
    pub timestamp_ms: Option<i64>,
}

/// How big a batch may grow and how long it waits to fill.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub records: usize,
    pub bytes: usize,
    /// How long a batch waits for more records once it has one.
    pub wait: Duration,
}

/// Waits for one record, then gathers what else arrives within `limits.wait`, up to the limits.
/// A read error ends the batch early with the records gathered: the client's position has
/// moved past them, so dropping them would skip them for good (a broker restart surfaces as
/// such an error behind records already fetched). The error itself is returned only when no
/// record came first; if it persists, the next call returns it.
///
/// Not cancellation-safe: dropping the future mid-batch drops the records gathered so far.
/// Callers race it only against stopping, and then commit nothing, so those records are read
/// again.
pub async fn next_batch<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    limits: BatchLimits,
) -> Result<Vec<Record>, KafkaError> {
    let first = consumer.recv().await?;
    let mut bytes = first.payload_len();
    let mut batch = vec![copy(&first)];
    drop(first);
    let deadline = tokio::time::Instant::now() + limits.wait;
    while batch.len() < limits.records && bytes < limits.bytes {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(message)) => {
                bytes += message.payload_len();
                batch.push(copy(&message));
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, records = batch.len(), "read error ends the batch early");
                break;
            }
            Err(_) => break,
        }
    }
    Ok(batch)
}

/// Copies a message out of the client's buffer.
pub fn copy(message: &BorrowedMessage<'_>) -> Record {
    Record {
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        timestamp_ms: message.timestamp().to_millis(),
    }
}

/// The offset to commit per partition: the one after the batch's last record there.
pub fn next_offsets(batch: &[Record]) -> BTreeMap<i32, i64> {
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for record in batch {
        let entry = next.entry(record.partition).or_insert(0);
        *entry = (*entry).max(record.offset + 1);
    }
    next
}

/// Commits the offsets after `batch` on `topic`.
pub fn commit<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    topic: &str,
    batch: &[Record],
) -> Result<(), KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for (partition, offset) in next_offsets(batch) {
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    }
    consumer.commit(&tpl, CommitMode::Async)
}

/// Closes a consumer (and whatever else is passed) on a blocking thread.
///
/// librdkafka's close waits for the group to finish rebalancing, which needs other consumers'
/// tasks to keep polling: never block a runtime thread with it.
pub async fn close_off_runtime<C: ConsumerContext + 'static, T: Send + 'static>(
    consumer: StreamConsumer<C>,
    others: T,
) {
    let closed = tokio::task::spawn_blocking(move || {
        consumer.unsubscribe();
        drop(consumer);
        drop(others);
    });
    if let Err(error) = closed.await {
        tracing::warn!(%error, "closing Kafka clients failed");
    }
}

/// Test records for the modules that handle batches.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::Record;

    /// An empty record at a partition and offset.
    pub(crate) fn record(partition: i32, offset: i64) -> Record {
        Record {
            partition,
            offset,
            key: None,
            payload: Vec::new(),
            timestamp_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::tests_support::record;

    #[test]
    fn commits_the_offset_after_each_partitions_last_record() {
        let batch = [record(0, 7), record(1, 3), record(0, 9), record(0, 8)];
        let next = next_offsets(&batch);
        assert_eq!(next.get(&0), Some(&10));
        assert_eq!(next.get(&1), Some(&4));
        assert_eq!(next.len(), 2);
    }
}
