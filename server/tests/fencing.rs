//! Zombie fencing of the aggregate changelog on the embedded broker: a member that lost its
//! partitions (its session expired while it was paused, the group moved on) and writes a
//! checkpoint after the new owner cannot make anyone resume from it; the group generation the
//! broker hands out is what tells them apart.

mod common;

use std::sync::Arc;
use std::time::Duration;

use app::api::{TOPIC_AGGREGATE_CHANGELOG, TOPIC_SENTIMENT};
use common::{counter, eventually, read_all, start_engine, stream_reviews};
use pipebook::aggregate::checkpoint::{self, ChangelogRecord, CheckpointError};
use pipebook::aggregate::partitions::PartitionState;
use pipebook::kafka::KafkaSettings;
use pipebook::kafka::generation;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const GROUP: &str = "fencing";

/// A consumer of `reviews.sentiment` in [`GROUP`], polled until the group has assigned it
/// partitions; with the generation of that assignment.
async fn joined(kafka: &KafkaSettings, name: &str) -> (Arc<BaseConsumer>, i32) {
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", GROUP)
        .set("client.id", name)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[TOPIC_SENTIMENT]).expect("subscribe");
    let consumer = Arc::new(consumer);
    let polling = consumer.clone();
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while polling.assignment().map_or(0, |a| a.count()) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{GROUP} never assigned partitions"
            );
            let _ = polling.poll(Duration::from_millis(100));
        }
    })
    .await
    .expect("poll");
    let generation =
        generation::of(&consumer).expect("a member of a formed group has a generation");
    (consumer, generation)
}

/// Closes a consumer off the runtime threads (its close waits for the group).
async fn close(consumer: Arc<BaseConsumer>) {
    tokio::task::spawn_blocking(move || drop(consumer))
        .await
        .expect("closed");
}

fn record(offset: i64, generation: i32) -> ChangelogRecord {
    ChangelogRecord {
        version: 0,
        group: GROUP.into(),
        partition: 0,
        config: serde_json::Value::Null,
        held: PartitionState {
            offset,
            ..PartitionState::default()
        },
        generation: Some(generation),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombies_checkpoint_after_the_new_owners_is_ignored_and_the_zombie_is_fenced() {
    let t = start_engine().await;
    let kafka = t.engine.kafka().clone();
    let partitions = kafka.topic_partitions;
    let changelog = checkpoint::producer(&kafka).expect("changelog producer");
    let never = CancellationToken::new();
    let save = |record: ChangelogRecord| {
        let changelog = &changelog;
        let never = &never;
        async move {
            checkpoint::save(changelog, &record, partitions, never)
                .await
                .expect("written");
        }
    };

    // A is assigned every partition, and checkpoints partition 0 under its generation.
    let (a, old) = joined(&kafka, "a").await;
    save(record(100, old)).await;
    // A loses its partitions (here it leaves; a paused member's session expiring does the
    // same to the group) and B is assigned them in a later generation.
    close(a).await;
    let (b, new) = joined(&kafka, "b").await;
    assert!(
        new > old,
        "the broker's generations increase: {old} then {new}"
    );
    let restored = checkpoint::restore(&kafka, GROUP, &[0], Some(new)).expect("B restores");
    assert_eq!(
        restored.records[&0].held.offset, 100,
        "B resumes from A's checkpoint"
    );
    save(record(180, new)).await;
    // A wakes up and writes the trigger it had in hand, after B's checkpoint.
    save(record(130, old)).await;
    let written: Vec<(i64, Option<i64>)> = read_all(&t.engine, TOPIC_AGGREGATE_CHANGELOG)
        .await
        .iter()
        .filter(|m| m.key.as_deref() == Some("fencing/0"))
        .map(|m| {
            let value: serde_json::Value = serde_json::from_str(&m.value).expect("JSON");
            (m.offset, value["held"]["offset"].as_i64())
        })
        .collect();
    assert_eq!(
        written
            .iter()
            .map(|(_, offset)| *offset)
            .collect::<Vec<_>>(),
        [Some(100), Some(180), Some(130)],
        "the zombie's record is the partition's last: {written:?}"
    );

    // Whoever restores partition 0 next resumes from B's checkpoint, not the zombie's.
    let restored = checkpoint::restore(&kafka, GROUP, &[0], Some(new)).expect("restores");
    assert_eq!(restored.records[&0].held.offset, 180);
    assert_eq!(restored.records[&0].generation, Some(new));
    assert_eq!(
        restored.fenced, 1,
        "the zombie's write was seen and ignored"
    );
    // And A, restoring under its old assignment, learns it lost the partition.
    match checkpoint::restore(&kafka, GROUP, &[0], Some(old)) {
        Err(CheckpointError::Fenced {
            partition: 0,
            ours,
            newer,
        }) => assert_eq!((ours, newer), (old, new)),
        other => panic!("the zombie is fenced, got {other:?}"),
    }
    close(b).await;
    t.engine.shutdown().await;
}

/// The stage's own checkpoints carry the generation of the assignment that wrote them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stages_checkpoints_carry_its_group_generation() {
    let t = start_engine().await;
    let engine = &t.engine;
    const N: u64 = 300;
    stream_reviews(engine, N, 73).await;
    engine
        .start_stage("sentiment", json!({"workers": 1}))
        .await
        .expect("sentiment");
    engine
        .start_stage("aggregate", json!({"trigger_ms": 200}))
        .await
        .expect("aggregate");
    // The stage's checkpoints, once it has read everything and checkpointed a trigger.
    let checkpoints = || async {
        read_all(engine, TOPIC_AGGREGATE_CHANGELOG)
            .await
            .iter()
            .filter(|m| {
                m.key
                    .as_deref()
                    .is_some_and(|k| k.starts_with("pipebook-aggregate/"))
            })
            .map(|m| {
                let value: serde_json::Value = serde_json::from_str(&m.value).expect("JSON");
                value["generation"].as_i64()
            })
            .collect::<Vec<Option<i64>>>()
    };
    let generations = eventually(
        "every review counted and checkpointed",
        Duration::from_secs(120),
        || async {
            let written = checkpoints().await;
            (counter(engine, "aggregate", "consumed") >= N
                && counter(engine, "aggregate", "triggers") > 0
                && !written.is_empty())
            .then_some(written)
        },
    )
    .await;
    assert!(
        generations.iter().all(Option::is_some),
        "every checkpoint carries its generation: {generations:?}"
    );
    assert_eq!(counter(engine, "aggregate", "fenced_records"), 0);
    assert_eq!(counter(engine, "aggregate", "fenced_assignments"), 0);
    engine.shutdown().await;
}
