//! Streamer → producer → embedded broker, end to end, counted from the broker's watermarks.

mod common;

use std::io::Write;
use std::time::Duration;

use app::api::{TOPIC_DLQ, TOPIC_REVIEWS};
use common::{counter, eventually, high_sum, review_lines, start_engine};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_generated_reviews_land_exactly_once() {
    let t = start_engine().await;
    let engine = &t.engine;
    engine
        .start_stage(
            "streamer",
            json!({"rate": 0, "chunk_size": 500, "limit": 20_000, "seed": 11}),
        )
        .await
        .expect("streamer starts");
    engine
        .start_stage("producer", json!({}))
        .await
        .expect("producer starts");

    eventually(
        "20,000 acknowledgements",
        Duration::from_secs(120),
        || async { (counter(engine, "producer", "acked") >= 20_000).then_some(()) },
    )
    .await;
    assert_eq!(high_sum(engine, TOPIC_REVIEWS).await, 20_000);
    assert_eq!(high_sum(engine, TOPIC_DLQ).await, 0);
    assert_eq!(counter(engine, "streamer", "sent"), 20_000);
    // Keyed by business_id: with 250 businesses every partition gets records.
    let topics = engine.topics().await.expect("topics");
    let reviews = topics
        .iter()
        .find(|t| t.name == TOPIC_REVIEWS)
        .expect("reviews");
    assert!(reviews.partitions.iter().all(|p| p.high > 0), "{reviews:?}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yelp_file_with_malformed_lines_sends_each_bad_line_to_the_dlq_with_its_reason() {
    let t = start_engine().await;
    let engine = &t.engine;
    let good = review_lines(5, 20_000);
    // The streamer reads only from the datasets folder, by name.
    let path = engine.datasets().dir().join("yelp_reviews.json");
    let mut file = std::fs::File::create(&path).expect("file");
    for (i, line) in good.iter().enumerate() {
        writeln!(file, "{line}").expect("write");
        if i % 200 == 100 {
            // 100 malformed lines of different kinds, mixed in.
            let bad = match i % 3 {
                0 => "{not json".to_owned(),
                1 => line.replace("\"stars\":", "\"stars\":9,\"x\":"),
                _ => line.replace("\"date\":\"", "\"date\":\"someday "),
            };
            writeln!(file, "{bad}").expect("write");
        }
    }
    drop(file);

    engine
        .start_stage(
            "streamer",
            json!({"rate": 0, "chunk_size": 1000, "source": "yelp_reviews.json"}),
        )
        .await
        .expect("streamer starts");
    engine
        .start_stage("producer", json!({}))
        .await
        .expect("producer starts");

    eventually(
        "all records acknowledged",
        Duration::from_secs(120),
        || async {
            let done = counter(engine, "producer", "acked") >= 20_000
                && counter(engine, "producer", "dlq_acked") >= 100;
            done.then_some(())
        },
    )
    .await;
    assert_eq!(high_sum(engine, TOPIC_REVIEWS).await, 20_000);
    assert_eq!(high_sum(engine, TOPIC_DLQ).await, 100);

    let letters = engine.messages(TOPIC_DLQ, 0, 0, 100).await.expect("dlq");
    assert_eq!(letters.len(), 100);
    for letter in &letters {
        let body: serde_json::Value = serde_json::from_str(&letter.value).expect("dlq json");
        assert_eq!(body["stage"], "producer");
        assert!(!body["reason"].as_str().unwrap_or_default().is_empty());
        assert!(!body["raw"].as_str().unwrap_or_default().is_empty());
        assert_eq!(
            letter.headers.get("pipebook.stage").map(String::as_str),
            Some("producer")
        );
    }
    let reasons: Vec<&str> = letters
        .iter()
        .map(|l| l.headers.get("pipebook.reason").map_or("", String::as_str))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("not a review JSON object"))
    );
    assert!(reasons.iter().any(|r| r.contains("date")));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_the_streamer_holds_the_count_and_resuming_continues() {
    let t = start_engine().await;
    let engine = &t.engine;
    engine
        .start_stage("streamer", json!({"rate": 2000, "chunk_size": 100}))
        .await
        .expect("streamer starts");
    engine
        .start_stage("producer", json!({}))
        .await
        .expect("producer starts");
    eventually("some records", Duration::from_secs(30), || async {
        (counter(engine, "streamer", "sent") > 500).then_some(())
    })
    .await;
    engine.pause_stage("streamer", true).expect("pause");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let paused_at = counter(engine, "streamer", "sent");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(counter(engine, "streamer", "sent"), paused_at);
    engine.pause_stage("streamer", false).expect("resume");
    eventually("sending again", Duration::from_secs(10), || async {
        (counter(engine, "streamer", "sent") > paused_at).then_some(())
    })
    .await;
    engine.stop_stage("streamer").await.expect("stop");
    let sent = counter(engine, "streamer", "sent");
    eventually(
        "the producer to read every line sent",
        Duration::from_secs(10),
        || async { (counter(engine, "producer", "lines") == sent).then_some(()) },
    )
    .await;
    engine.stop_stage("producer").await.expect("stop");
    // Everything the streamer sent was acknowledged by the broker once the producer flushed.
    assert_eq!(
        counter(engine, "producer", "acked"),
        counter(engine, "streamer", "sent")
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producer_follows_a_restarted_streamer_to_its_new_port() {
    let t = start_engine().await;
    let engine = &t.engine;
    let start_streamer = || async {
        engine
            .start_stage("streamer", json!({"rate": 1000, "chunk_size": 50}))
            .await
            .expect("streamer starts");
    };
    start_streamer().await;
    engine
        .start_stage("producer", json!({}))
        .await
        .expect("producer starts");
    eventually("first records", Duration::from_secs(30), || async {
        (counter(engine, "producer", "acked") > 100).then_some(())
    })
    .await;
    engine.stop_stage("streamer").await.expect("stop");
    let before = counter(engine, "producer", "lines");
    // A new run listens on a new free port; the producer finds it without being restarted.
    start_streamer().await;
    eventually(
        "records from the new streamer",
        Duration::from_secs(30),
        || async { (counter(engine, "producer", "lines") > before + 100).then_some(()) },
    )
    .await;
    assert!(counter(engine, "producer", "reconnects") <= 50);
    engine.shutdown().await;
}

/// After a restart on the same data dir the streamer's status still carries its last run's
/// config (stopped), so the cells word what the topics hold — tweets, not the default reviews —
/// until a new run replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_streamers_last_config_survives_a_restart() {
    use app::api::StageState;
    use pipebook::pipeline::{Engine, EngineSettings};

    let dataset_of = |engine: &Engine| {
        let streamer = engine
            .pipeline_status()
            .stages
            .into_iter()
            .find(|s| s.id == "streamer")
            .expect("the streamer's status");
        let dataset = streamer.config.map(|c| c["dataset"].clone());
        (streamer.state, dataset)
    };
    let t = start_engine().await;
    t.engine
        .start_stage("streamer", json!({"dataset": "tweets", "rate": 10}))
        .await
        .expect("streamer starts");
    t.engine.stop_stage("streamer").await.expect("stops");
    t.engine.shutdown().await;
    let common::TestEngine { engine, dir } = t;
    drop(engine);

    let engine = Engine::start(EngineSettings::embedded(dir.path()))
        .await
        .expect("restarted on the same data dir");
    assert_eq!(
        dataset_of(&engine),
        (StageState::Stopped, Some(json!("tweets")))
    );
    engine
        .start_stage("streamer", json!({"rate": 10}))
        .await
        .expect("streamer starts again");
    assert_eq!(
        dataset_of(&engine),
        (StageState::Running, Some(json!("yelp")))
    );
    engine.shutdown().await;
}
