//! The lesson's fault buttons on the real embedded broker and search index: each breaks something
//! on purpose, and the pipeline must show the consequence and lose nothing. The lesson steps
//! that watch for them must turn green from the same real events.

mod common;

use std::time::Duration;

use app::api::{LessonView, TOPIC_DLQ, TOPIC_SENTIMENT};
use common::{counter, eventually, high_sum, read_all, start_engine, stream_reviews};
use pipebook::pipeline::Engine;
use pipebook::records::DeadLetter;
use serde_json::json;

fn lesson(engine: &Engine) -> LessonView {
    engine.subscribe().borrow().lesson.clone()
}

async fn wait_step_done(engine: &Engine, id: &str) {
    eventually(
        &format!("lesson step {id} done"),
        Duration::from_secs(60),
        || async {
            lesson(engine)
                .steps
                .iter()
                .any(|s| s.id == id && s.done())
                .then_some(())
        },
    )
    .await;
}

fn documents(engine: &Engine) -> Option<u64> {
    engine.subscribe().borrow().search.documents
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_show_their_consequences_and_lose_nothing() {
    let t = start_engine().await;
    let engine = &t.engine;
    engine
        .start_stage("sentiment", json!({"workers": 1}))
        .await
        .expect("sentiment");
    // An hour of allowed lateness keeps every review id in the dedup horizon.
    engine
        .start_stage(
            "aggregate",
            json!({"trigger_ms": 200, "allowed_lateness_secs": 3600}),
        )
        .await
        .expect("aggregate");
    engine
        .start_stage("indexer", json!({}))
        .await
        .expect("indexer");
    stream_reviews(engine, 500, 71).await;
    eventually("500 reviews indexed", Duration::from_secs(120), || async {
        (documents(engine) == Some(500) && engine.aggregates(None).counted == 500).then_some(())
    })
    .await;

    // 1. A flood of malformed records: each in reviews.dlq with its reason, the stage goes on.
    assert_eq!(engine.flood_malformed(100).await.expect("flood"), 100);
    eventually("100 dead letters", Duration::from_secs(60), || async {
        (counter(engine, "sentiment", "dlq") == 100).then_some(())
    })
    .await;
    let letters: Vec<DeadLetter> = read_all(engine, TOPIC_DLQ)
        .await
        .iter()
        .map(|m| serde_json::from_str(&m.value).expect("dead letter JSON"))
        .collect();
    assert_eq!(letters.len(), 100);
    for damage in [
        "expected ident",
        "missing field",
        "stars must be",
        "date must look like",
    ] {
        let hits = letters.iter().filter(|l| l.reason.contains(damage)).count();
        assert_eq!(hits, 25, "reason {damage:?}");
    }
    wait_step_done(engine, "dead-letter").await;

    // 2. The newest 100 reviews sent again: skipped as duplicates by the windows, overwritten
    //    in place by the index.
    assert_eq!(engine.resend_newest(100).await.expect("resend"), 100);
    eventually(
        "100 duplicates skipped",
        Duration::from_secs(60),
        || async { (engine.aggregates(None).duplicates == 100).then_some(()) },
    )
    .await;
    assert_eq!(engine.aggregates(None).counted, 500);
    eventually("600 labelled records", Duration::from_secs(60), || async {
        (high_sum(engine, TOPIC_SENTIMENT).await == 600).then_some(())
    })
    .await;
    eventually("the indexer caught up", Duration::from_secs(60), || async {
        (counter(engine, "indexer", "indexed") == 600).then_some(())
    })
    .await;
    assert_eq!(documents(engine), Some(500), "same id, same document");
    wait_step_done(engine, "dedup").await;
    wait_step_done(engine, "idempotent-sink").await;

    // 3. The search backend down: the indexer retries, commits nothing, and catches up after.
    engine.set_search_outage(true);
    engine
        .start_stage(
            "streamer",
            json!({"rate": 0, "chunk_size": 100, "limit": 200, "seed": 72}),
        )
        .await
        .expect("streamer again");
    eventually(
        "the lesson sees the indexer retry",
        Duration::from_secs(60),
        || async {
            let view = lesson(engine);
            let step = view.steps.iter().find(|s| s.id == "search-outage")?;
            (step.reached == 1).then_some(())
        },
    )
    .await;
    assert!(counter(engine, "indexer", "retries") >= 1);
    assert_eq!(
        documents(engine),
        None,
        "an unavailable backend has no count"
    );
    engine.set_search_outage(false);
    eventually(
        "700 documents after the outage",
        Duration::from_secs(120),
        || async { (documents(engine) == Some(700)).then_some(()) },
    )
    .await;
    wait_step_done(engine, "search-outage").await;
    assert_eq!(engine.aggregates(None).counted, 700);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_counts_out_of_range_are_refused_by_name() {
    let t = start_engine().await;
    let engine = &t.engine;
    let error = engine.flood_malformed(0).await.expect_err("zero");
    assert!(error.to_string().starts_with("count:"), "{error}");
    let error = engine.resend_newest(1_000_000).await.expect_err("too many");
    assert!(error.to_string().starts_with("count:"), "{error}");
    // Nothing to re-send yet is not an error: nothing was sent.
    assert_eq!(engine.resend_newest(10).await.expect("empty topic"), 0);
    // The largest count reads more per partition than one browse holds: bounded, no panic.
    let largest = pipebook::faults::MAX_FAULT_RECORDS;
    assert_eq!(
        engine.resend_newest(largest).await.expect("largest count"),
        0
    );
    engine.shutdown().await;
}
