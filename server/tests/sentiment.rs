//! The sentiment stage on the embedded broker: a real consumer group of workers, at-least-once.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use app::api::{EnrichedReview, TOPIC_REVIEWS, TOPIC_SENTIMENT};
use common::{counter, eventually, group_lag, high_sum, read_all, start_engine, stream_reviews};
use pipebook::sentiment::GROUP;
use serde_json::json;

/// review_id → how many times it appears in `reviews.sentiment`.
async fn output_counts(engine: &pipebook::pipeline::Engine) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for message in read_all(engine, TOPIC_SENTIMENT).await {
        let enriched: EnrichedReview =
            serde_json::from_str(&message.value).expect("enriched review JSON");
        *counts.entry(enriched.review.review_id).or_default() += 1;
    }
    counts
}

async fn wait_for_lag_zero(engine: &pipebook::pipeline::Engine) {
    eventually("group lag 0", Duration::from_secs(180), || async {
        (group_lag(engine, GROUP).await == Some(0)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_label_every_review_exactly_once_when_nothing_fails() {
    let t = start_engine().await;
    let engine = &t.engine;
    stream_reviews(engine, 20_000, 21).await;
    assert_eq!(high_sum(engine, TOPIC_REVIEWS).await, 20_000);

    engine
        .start_stage("sentiment", json!({"workers": 3}))
        .await
        .expect("sentiment starts");
    wait_for_lag_zero(engine).await;

    let counts = output_counts(engine).await;
    assert_eq!(counts.len(), 20_000, "distinct review_ids");
    assert!(
        counts.values().all(|&n| n == 1),
        "a review was labelled twice"
    );
    assert_eq!(high_sum(engine, TOPIC_SENTIMENT).await, 20_000);
    assert_eq!(counter(engine, "sentiment", "produced"), 20_000);

    // Each of the 3 partitions owned by one worker (snapshots are published once a second, so
    // the newest may predate the last assignment callback).
    let view = eventually("3 partitions assigned", Duration::from_secs(30), || async {
        let view = engine.subscribe().borrow().sentiment.clone();
        let assigned: usize = view
            .workers
            .iter()
            .filter(|w| w.state == "running")
            .map(|w| w.partitions.len())
            .sum();
        (assigned == 3).then_some(view)
    })
    .await;
    let labelled: u64 = view.confusion.iter().flatten().sum();
    assert!(labelled >= 20_000);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_worker_mid_way_rebalances_and_loses_nothing() {
    let t = start_engine().await;
    let engine = &t.engine;
    stream_reviews(engine, 20_000, 22).await;
    engine
        .start_stage("sentiment", json!({"workers": 3}))
        .await
        .expect("sentiment starts");
    // Wait for a worker that owns partitions while work is under way: between two snapshots the
    // group may be mid-rebalance, with every worker's assignment momentarily empty.
    let victim = eventually("work under way", Duration::from_secs(60), || async {
        if counter(engine, "sentiment", "consumed") <= 3_000 {
            return None;
        }
        engine
            .subscribe()
            .borrow()
            .sentiment
            .workers
            .iter()
            .find(|w| !w.partitions.is_empty())
            .map(|w| w.id.clone())
    })
    .await;
    engine.kill_sentiment_worker(&victim).expect("kill");
    wait_for_lag_zero(engine).await;

    let counts = output_counts(engine).await;
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    println!(
        "after killing {victim}: {} distinct, {duplicates} duplicates",
        counts.len()
    );
    assert_eq!(counts.len(), 20_000, "every review labelled at least once");

    // The rebalance is visible through the API: the kill, then partitions assigned again.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let events = engine.subscribe().borrow().sentiment.rebalances.clone();
    let killed_at = events
        .iter()
        .find(|e| e.kind == "killed" && e.worker == victim)
        .map(|e| e.at)
        .expect("kill event");
    assert!(
        events
            .iter()
            .any(|e| e.kind == "assigned" && e.at >= killed_at && e.worker != victim),
        "no reassignment after the kill: {events:?}"
    );
    engine.shutdown().await;
}
