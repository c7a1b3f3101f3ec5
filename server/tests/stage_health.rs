//! Per-stage health against the real embedded broker: a running windows stage reports where its
//! loop spends its time, its last checkpoints (duration and size) and its state's size, in its
//! status (the live snapshot) and in `/metrics`.

mod common;

use std::time::Duration;

use app::ops::{CHECKPOINTS_KEPT, StageLoad};
use common::{counter, eventually, start_engine, stream_reviews};
use pipebook::pipeline::Engine;
use serde_json::json;

fn load_of(engine: &Engine, stage: &str) -> Option<StageLoad> {
    engine.pipeline_status().stage(stage)?.load.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_windows_stage_reports_its_checkpoints_and_state_size() {
    let t = start_engine().await;
    let engine = t.engine.clone();
    stream_reviews(&engine, 600, 17).await;
    engine
        .start_stage("sentiment", json!({"workers": 1}))
        .await
        .expect("sentiment");
    // Day-long windows and lateness over the generator's dates: every review stays in an open
    // window and in the dedup horizon, so the state holds something of each kind.
    engine
        .start_stage(
            "aggregate",
            json!({
                "trigger_ms": 200,
                "tumbling_secs": 86_400,
                "sliding_secs": 86_400,
                "slide_secs": 21_600,
                "session_gap_secs": 3_600,
                "allowed_lateness_secs": 86_400,
                "output_mode": "update"
            }),
        )
        .await
        .expect("aggregate");

    eventually("every review counted", Duration::from_secs(120), || async {
        (counter(&engine, "aggregate", "counted") >= 600).then_some(())
    })
    .await;
    let first = eventually("a checkpoint reported", Duration::from_secs(30), || async {
        let operator = load_of(&engine, "aggregate")?.operator?;
        operator.checkpoints.last().copied()
    })
    .await;
    // More reviews, more triggers: the history grows (at most the last ten are kept).
    engine
        .start_stage(
            "streamer",
            json!({"rate": 0, "chunk_size": 100, "limit": 300, "seed": 18}),
        )
        .await
        .expect("streamer again");
    let load = eventually("a later checkpoint", Duration::from_secs(120), || async {
        let load = load_of(&engine, "aggregate")?;
        let operator = load.operator.as_ref()?;
        (operator.checkpoints.len() >= 2
            && operator.checkpoints.last().is_some_and(|c| c.at > first.at)
            && counter(&engine, "aggregate", "counted") >= 900)
            .then_some(load)
    })
    .await;
    let operator = load.operator.clone().expect("operator state");
    assert!(operator.checkpoints.len() <= CHECKPOINTS_KEPT);
    assert!(operator.checkpoints.iter().all(|c| c.bytes > 0));
    assert!(
        operator.checkpoints.windows(2).all(|w| w[0].at <= w[1].at),
        "oldest first: {:?}",
        operator.checkpoints
    );
    // The state: windows and sessions held, and one dedup id per review still in the horizon.
    assert!(operator.open_windows > 0, "{operator:?}");
    assert!(operator.sessions > 0, "{operator:?}");
    let view = engine.aggregates(None);
    assert!(
        operator.dedup_ids > 0 && operator.dedup_ids <= view.counted,
        "{} ids for {} counted",
        operator.dedup_ids,
        view.counted
    );
    // Each partition holds its own share of a window: at least the merged view's open ones.
    let merged_open: u64 = [
        app::api::WindowKind::Tumbling,
        app::api::WindowKind::Sliding,
    ]
    .into_iter()
    .map(|kind| view.count_of(kind).open)
    .sum();
    assert!(operator.open_windows >= merged_open);
    // The loop measured itself: one loop, some of its time spent, a processing rate.
    assert_eq!(load.loops, 1);
    assert!(load.busy_ms + load.idle_ms + load.backpressured_ms > 0.0);
    assert!(load.processing_rate >= 0.0);
    let sentiment = eventually(
        "the sentiment worker's load",
        Duration::from_secs(30),
        || async { load_of(&engine, "sentiment") },
    )
    .await;
    assert_eq!(sentiment.loops, 1);
    // The Parquet sink measures itself too (it writes to local disk: nothing holds it back).
    engine
        .start_stage("parquet", json!({"roll_secs": 1}))
        .await
        .expect("parquet");
    let parquet = eventually(
        "the Parquet sink's load",
        Duration::from_secs(60),
        || async { load_of(&engine, "parquet") },
    )
    .await;
    assert_eq!(parquet.loops, 1);
    assert_eq!(parquet.backpressured_ms, 0.0);

    // The same figures in /metrics: the phases per stage and the state as gauges.
    let live = engine.pipeline_status();
    let snapshot = engine.subscribe().borrow().clone();
    let text = pipebook::metrics::render(&live, &snapshot, true);
    let samples = pipebook::metrics::parse(&text).expect("the exposition parses");
    let find =
        |name: &str, labels: &[(&str, &str)]| pipebook::metrics::value(&samples, name, labels);
    for phase in ["busy", "idle", "backpressured"] {
        let labels = [("stage", "aggregate"), ("phase", phase)];
        assert!(
            find("pipebook_stage_load_ms_per_second", &labels).is_some(),
            "{phase} missing"
        );
    }
    let dedup = live
        .stage("aggregate")
        .and_then(|s| s.counters.get("dedup_ids").copied())
        .expect("dedup_ids counter");
    let exported = find(
        "pipebook_stage_gauge",
        &[("stage", "aggregate"), ("name", "dedup_ids")],
    );
    assert_eq!(exported, Some(dedup as f64));
    engine.shutdown().await;
}
