//! Overload: the streamer as fast as it goes (no rate limit) with every stage running. The
//! producer's bounded queue pushes back on the socket, the consumers fall behind (lag grows, the
//! notebook shows it), and once the source stops everything catches up with nothing lost and no
//! stage failed. Runs `PIPEBOOK_OVERLOAD_SECS` seconds (default 20; the figure, 60, by
//! hand: `PIPEBOOK_OVERLOAD_SECS=60 cargo test -p server --test overload -- --nocapture`).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use app::api::{StageState, TOPIC_REVIEWS, TOPIC_SENTIMENT};
use common::{counter, eventually, group_lag, read_all, sampled, start_engine};
use pipebook::pipeline::Engine;
use serde_json::json;

fn overload_secs() -> u64 {
    std::env::var("PIPEBOOK_OVERLOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

/// Stages that are not running (a failed one carries its error).
fn not_running(engine: &Engine, stages: &[&str]) -> Vec<String> {
    engine
        .pipeline_status()
        .stages
        .iter()
        .filter(|s| stages.contains(&s.id.as_str()) && s.state != StageState::Running)
        .map(|s| format!("{} {:?} {:?}", s.id, s.state, s.last_error))
        .collect()
}

/// The lag the once-a-second sample shows for `group` (what cell 2 and the strip show).
fn sampled_lag(engine: &Engine, group: &str) -> i64 {
    sampled(engine, group).map_or(0, |g| g.lag.records)
}

fn review_ids(records: &[app::api::Message]) -> BTreeSet<String> {
    records
        .iter()
        .filter_map(|m| serde_json::from_str::<serde_json::Value>(&m.value).ok())
        .filter_map(|v| v["review_id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlimited_source_is_pushed_back_and_everything_catches_up_losing_nothing() {
    let t = start_engine().await;
    let engine = &t.engine;
    let consumers = ["sentiment", "aggregate", "indexer"];
    engine
        .start_stage("producer", json!({}))
        .await
        .expect("producer");
    for stage in consumers {
        let config = if stage == "sentiment" {
            json!({"workers": 2})
        } else {
            json!({})
        };
        engine.start_stage(stage, config).await.expect(stage);
    }
    engine
        .start_stage(
            "streamer",
            json!({"rate": 0, "chunk_size": 500, "seed": 21}),
        )
        .await
        .expect("streamer");

    let started = Instant::now();
    let run_for = Duration::from_secs(overload_secs());
    let mut most_behind = 0;
    while started.elapsed() < run_for {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for group in [
            "pipebook-sentiment",
            "pipebook-aggregate",
            "pipebook-indexer",
        ] {
            most_behind = most_behind.max(sampled_lag(engine, group));
        }
        let down = not_running(
            engine,
            &["streamer", "producer", "sentiment", "aggregate", "indexer"],
        );
        assert!(down.is_empty(), "under overload: {down:?}");
    }
    engine.stop_stage("streamer").await.expect("streamer stops");
    let sent = counter(engine, "streamer", "sent");
    let overload_ended = Instant::now();

    // Everything catches up: every line sent is acknowledged, every group reaches the end.
    eventually(
        "the producer acknowledged every line",
        Duration::from_secs(300),
        || async {
            (counter(engine, "producer", "acked") + counter(engine, "producer", "dlq") >= sent)
                .then_some(())
        },
    )
    .await;
    for group in ["pipebook-sentiment", "pipebook-indexer"] {
        eventually(group, Duration::from_secs(900), || async {
            (group_lag(engine, group).await == Some(0)).then_some(())
        })
        .await;
    }
    let caught_up = overload_ended.elapsed();
    let down = not_running(engine, &["producer", "sentiment", "aggregate", "indexer"]);
    assert!(down.is_empty(), "after the overload: {down:?}");

    // Nothing lost: every review produced was labelled and indexed.
    let reviews = review_ids(&read_all(engine, TOPIC_REVIEWS).await);
    let labelled = review_ids(&read_all(engine, TOPIC_SENTIMENT).await);
    assert_eq!(reviews.len() as u64, counter(engine, "producer", "acked"));
    assert_eq!(labelled, reviews, "labelled ≠ produced");
    let indexed = eventually(
        "the index has every review",
        Duration::from_secs(120),
        || async {
            let documents = engine.subscribe().borrow().search.documents?;
            (documents >= reviews.len() as u64).then_some(documents)
        },
    )
    .await;
    assert_eq!(indexed, reviews.len() as u64);
    // The back-pressure was visible while it lasted: a consumer group fell behind (which one
    // depends on the build and the machine: in a debug build the indexer is the slowest).
    assert!(most_behind > 0, "no consumer group ever showed lag");
    println!(
        "{} s unthrottled: {sent} lines sent, {} reviews; a group's lag peaked at {most_behind}; \
         caught up {:.0} s after the source stopped",
        run_for.as_secs(),
        reviews.len(),
        caught_up.as_secs_f64()
    );
    engine.shutdown().await;
}
