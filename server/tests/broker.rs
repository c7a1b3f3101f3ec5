//! What the embedded broker (tansu 0.6 with our patch, SQLite storage) does and does not do,
//! pinned by tests so a tansu upgrade that changes any of it is noticed. docs/architecture.md lists the same findings.

mod common;

use std::time::Duration;

use app::api::TOPIC_REVIEWS;
use common::{eventually, high_sum, start_engine};
use pipebook::pipeline::{Engine, EngineSettings};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

fn producer(engine: &Engine, idempotent: bool) -> BaseProducer {
    engine
        .kafka()
        .client_config()
        .set("enable.idempotence", idempotent.to_string())
        .create()
        .expect("producer")
}

fn produce(engine: &Engine, topic: &str, n: usize) {
    let producer = producer(engine, true);
    for i in 0..n {
        let key = format!("key-{}", i % 7);
        let payload = format!("record {i}");
        producer
            .send(BaseRecord::to(topic).key(&key).payload(&payload))
            .expect("enqueue");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_data_and_committed_offsets_survive_a_restart() {
    let t = start_engine().await;
    let engine = t.engine.clone();
    let consumer: BaseConsumer = {
        let e = engine.clone();
        tokio::task::spawn_blocking(move || {
            produce(&e, TOPIC_REVIEWS, 1_000);
            let consumer: BaseConsumer = e
                .kafka()
                .client_config()
                .set("group.id", "restart-test")
                .set("enable.auto.commit", "false")
                .create()
                .expect("consumer");
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(TOPIC_REVIEWS, 0, Offset::Offset(42))
                .expect("tpl");
            consumer.commit(&tpl, CommitMode::Sync).expect("commit");
            consumer
        })
        .await
        .expect("blocking")
    };
    drop(consumer);
    assert_eq!(high_sum(&engine, TOPIC_REVIEWS).await, 1_000);
    engine.shutdown().await;
    drop(engine);
    drop(t.engine);

    // A new engine on the same data dir (and a new port) finds everything where it was.
    let engine = Engine::start(EngineSettings::embedded(t.dir.path()))
        .await
        .expect("restarted");
    assert_eq!(high_sum(&engine, TOPIC_REVIEWS).await, 1_000);
    let e = engine.clone();
    let committed = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = e
            .kafka()
            .client_config()
            .set("group.id", "restart-test")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(TOPIC_REVIEWS, 0);
        consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("offset fetch")
    })
    .await
    .expect("blocking");
    let offset = committed.elements()[0].offset();
    assert_eq!(offset, Offset::Offset(42));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_and_starting_the_broker_loses_nothing_in_flight() {
    let t = start_engine().await;
    let engine = t.engine.clone();
    engine.stop_stage("broker").await.expect("stop broker");
    assert_eq!(engine.kafka_status().state, app::api::StageState::Stopped);
    // Records produced while the broker is down wait in the client and land after it returns.
    let e = engine.clone();
    let sender = tokio::task::spawn_blocking(move || produce(&e, TOPIC_REVIEWS, 500));
    tokio::time::sleep(Duration::from_secs(1)).await;
    engine
        .start_stage("broker", serde_json::Value::Null)
        .await
        .expect("start broker");
    sender.await.expect("producer flushed");
    eventually("500 records", Duration::from_secs(30), || async {
        (high_sum(&engine, TOPIC_REVIEWS).await == 500).then_some(())
    })
    .await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_not_auto_created() {
    let t = start_engine().await;
    let engine = t.engine.clone();
    let e = engine.clone();
    tokio::task::spawn_blocking(move || {
        // Producing to an unknown topic does not create it.
        let producer: BaseProducer = e
            .kafka()
            .client_config()
            .set("message.timeout.ms", "2000")
            .create()
            .expect("producer");
        let _ = producer.send(BaseRecord::<(), _>::to("no.such.topic").payload("x"));
        let _ = producer.flush(Duration::from_secs(5));
    })
    .await
    .expect("blocking");
    let topics = engine.topics().await.expect("topics");
    assert!(
        topics.iter().all(|t| t.name != "no.such.topic"),
        "{topics:?}"
    );

    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_show_the_brokers_state_and_members() {
    let t = start_engine().await;
    let engine = t.engine.clone();
    // A declared group the broker has no record of yet is listed, with its lag.
    engine
        .inspector()
        .registry()
        .declare("lag-test", &[TOPIC_REVIEWS]);
    let e = engine.clone();
    tokio::task::spawn_blocking(move || produce(&e, TOPIC_REVIEWS, 90))
        .await
        .expect("produce");
    let groups = engine.groups().await.expect("groups");
    let group = groups
        .iter()
        .find(|g| g.group == "lag-test")
        .expect("declared group");
    assert_eq!(group.state, "Dead", "{group:?}");
    assert!(group.members.is_empty());
    assert_eq!(group.total_lag(), 90);
    assert!(group.partitions.iter().all(|p| p.committed.is_none()));

    // A consumer Pipebook knows nothing about joins it: the broker's state and member show.
    let e = engine.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let outsider = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let consumer: BaseConsumer = e
                .kafka()
                .client_config()
                .set("group.id", "lag-test")
                .set("client.id", "outsider")
                .set("enable.auto.commit", "false")
                .create()
                .expect("consumer");
            consumer.subscribe(&[TOPIC_REVIEWS]).expect("subscribe");
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = consumer.poll(Duration::from_millis(100));
            }
        })
    };
    let group = eventually(
        "a stable group with the outsider",
        Duration::from_secs(60),
        || async {
            let groups = engine.groups().await.ok()?;
            let group = groups.into_iter().find(|g| g.group == "lag-test")?;
            (group.state == "Stable" && group.members.len() == 1).then_some(group)
        },
    )
    .await;
    let member = &group.members[0];
    assert_eq!(member.client_id, "outsider");
    // The broker reports where the member connects from, as Kafka does (vendor/PATCHES.md,
    // "groups: client host").
    assert_eq!(member.host, "/127.0.0.1", "{member:?}");
    assert_eq!(member.assignment.len(), 3, "{member:?}");
    assert!(member.assignment.iter().all(|p| p.starts_with("reviews-")));

    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::task::spawn_blocking(move || outsider.join())
        .await
        .expect("blocking")
        .expect("outsider thread");
    eventually(
        "an empty group after it left",
        Duration::from_secs(60),
        || async {
            let groups = engine.groups().await.ok()?;
            let group = groups.into_iter().find(|g| g.group == "lag-test")?;
            (group.state == "Empty" && group.members.is_empty()).then_some(())
        },
    )
    .await;
    engine.shutdown().await;
}

fn states(history: &[app::api::GroupStateChange]) -> Vec<&str> {
    history.iter().map(|c| c.state.as_str()).collect()
}

/// Starts the sentiment stage with one worker and waits until its group is Stable.
async fn start_one_worker_until_stable(engine: &pipebook::pipeline::Engine) {
    engine
        .start_stage("sentiment", serde_json::json!({"workers": 1}))
        .await
        .expect("sentiment");
    eventually("the group stable", Duration::from_secs(60), || async {
        let history = engine.inspector().state_history(pipebook::sentiment::GROUP);
        (history.last().map(|c| c.state.as_str()) == Some("Stable")).then_some(())
    })
    .await;
}

/// The group-state watch belongs to the engine, not to the HTTP handlers: a rebalance made by
/// calling the engine directly (as the lesson, an incident or a test does) is recorded with its
/// passing states.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_made_without_an_http_call_is_recorded() {
    let t = start_engine().await;
    let engine = t.engine.clone();
    let group = pipebook::sentiment::GROUP;
    start_one_worker_until_stable(&engine).await;
    let before = engine.inspector().state_history(group).len();
    engine.add_sentiment_worker().expect("a second worker");
    let history = eventually(
        "the rebalance and the group stable again",
        Duration::from_secs(60),
        || async {
            let history = engine.inspector().state_history(group);
            let after: Vec<&str> = states(&history).into_iter().skip(before).collect();
            (after.iter().any(|s| s.ends_with("Rebalance")) && after.last() == Some(&"Stable"))
                .then_some(history)
        },
    )
    .await;
    println!("states: {:?}", states(&history));
    engine.shutdown().await;
}

/// The watch records nothing until woken, then describes every group; cancelled, it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_state_watch_records_when_woken_and_ends_when_cancelled() {
    use std::sync::Arc;
    let t = start_engine().await;
    let engine = t.engine.clone();
    let group = pipebook::sentiment::GROUP;
    start_one_worker_until_stable(&engine).await;

    // An inspector of its own: no sampler, no handler; only its watch records.
    let inspector =
        pipebook::kafka::inspect::Inspector::new(engine.kafka().clone(), Arc::default())
            .expect("inspector");
    let wake = Arc::new(tokio::sync::Notify::new());
    let cancel = tokio_util::sync::CancellationToken::new();
    let watch = tokio::spawn(
        inspector
            .clone()
            .watch_group_states(wake.clone(), cancel.clone()),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        inspector.state_history(group).is_empty(),
        "asleep until woken"
    );
    wake.notify_one();
    eventually("recorded once woken", Duration::from_secs(30), || async {
        (states(&inspector.state_history(group)) == ["Stable"]).then_some(())
    })
    .await;
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(30), watch)
        .await
        .expect("the watch ends when cancelled")
        .expect("not panicked");
    engine.shutdown().await;
}
