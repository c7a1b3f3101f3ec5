//! The aggregate stage on the embedded broker: windows over 50,000 labelled reviews survive a
//! crash and a server restart without losing or double-counting a review, and two members of
//! one group — one of them crashed mid-way — give the windows of a single one.

mod common;

use std::time::Duration;

use app::api::{
    AggregateConfig, AggregateView, OutputMode, StageState, TOPIC_AGGREGATES, TOPIC_LATE,
    TOPIC_SENTIMENT, WindowKind,
};
use common::aggregate::{assert_counted_as_one, member, one_member_alone, stream_with_late_tenth};
use common::{counter, eventually, group_lag, high_sum, read_all, start_engine, start_labelling};
use pipebook::pipeline::{Engine, EngineSettings};
use serde_json::json;

const N: u64 = 50_000;

/// Replayed generator dates (10 s apart, ~6 days): day-long tumbling windows, a lateness wide
/// enough that partitions read at different paces are not late.
fn config() -> serde_json::Value {
    json!({
        "trigger_ms": 200,
        "tumbling_secs": 86_400,
        "sliding_secs": 86_400,
        "slide_secs": 21_600,
        "session_gap_secs": 3_600,
        "allowed_lateness_secs": 86_400,
        "output_mode": "update"
    })
}

fn tumbling_sum(view: &AggregateView) -> u64 {
    view.windows
        .iter()
        .filter(|w| w.kind == WindowKind::Tumbling)
        .map(|w| w.total())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_count_every_review_once_across_a_crash_and_a_restart() {
    let t = start_engine().await;
    let engine = t.engine.clone();
    engine
        .start_stage(
            "streamer",
            json!({"rate": 0, "chunk_size": 1000, "limit": N, "seed": 61, "clock": "replay"}),
        )
        .await
        .expect("streamer");
    start_labelling(&engine, 2).await;
    engine
        .start_stage("aggregate", config())
        .await
        .expect("aggregate");
    // Crash mid-stream: no final checkpoint, no goodbye.
    eventually(
        "aggregation under way",
        Duration::from_secs(120),
        || async { (counter(&engine, "aggregate", "counted") > 10_000).then_some(()) },
    )
    .await;
    engine.crash_stage("aggregate").expect("crash");
    let before = engine.aggregates(None).counted;
    assert!(before < N, "crashed after all {before} were counted");
    eventually("all labelled", Duration::from_secs(300), || async {
        (group_lag(&engine, "pipebook-sentiment").await == Some(0)
            && high_sum(&engine, app::api::TOPIC_SENTIMENT).await >= N as i64)
            .then_some(())
    })
    .await;
    engine.shutdown().await;
    drop(engine);
    drop(t.engine);

    // A new server on the same data dir resumes from the checkpoint.
    let engine = Engine::start(EngineSettings::embedded(t.dir.path()))
        .await
        .expect("restarted");
    engine
        .start_stage("aggregate", config())
        .await
        .expect("aggregate resumes");
    // The sentiment stage is at-least-once: `reviews.sentiment` may hold a few reviews twice.
    let records = high_sum(&engine, app::api::TOPIC_SENTIMENT).await as u64;
    assert!(records >= N, "{records} records for {N} reviews");
    let view = eventually("every record read", Duration::from_secs(180), || async {
        let view = engine.aggregates(None);
        (view.counted + view.late_records + view.duplicates >= records).then_some(view)
    })
    .await;
    // Exactly once across the crash: every record read once (counted, late or a duplicate of a
    // counted review), and no review counted twice.
    assert_eq!(
        view.counted + view.late_records + view.duplicates,
        records,
        "{} counted, {} late, {} duplicates",
        view.counted,
        view.late_records,
        view.duplicates
    );
    assert!(
        view.counted <= N,
        "{} counted for {N} reviews",
        view.counted
    );
    assert_eq!(tumbling_sum(&view), view.counted);
    let sessions: u64 = view
        .windows
        .iter()
        .filter(|w| w.kind == WindowKind::Session)
        .map(|w| w.total())
        .sum();
    assert!(sessions <= view.counted);
    // Results were written, keyed by window.
    assert!(high_sum(&engine, TOPIC_AGGREGATES).await > 0);
    let results = read_all(&engine, TOPIC_AGGREGATES).await;
    assert!(
        results
            .iter()
            .all(|m| m.key.as_deref().is_some_and(|k| k.contains(':')))
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_reviews_are_counted_and_kept_in_reviews_late() {
    let t = start_engine().await;
    let engine = &t.engine;
    start_labelling(engine, 1).await;
    engine
        .start_stage(
            "aggregate",
            json!({"trigger_ms": 200, "allowed_lateness_secs": 60, "late_policy": "topic"}),
        )
        .await
        .expect("aggregate");
    // Each partition's watermark starts with its first counted record, so nothing is late
    // before: 200 on-time reviews set the watermarks of all three partitions.
    stream(engine, json!({"rate": 0, "limit": 200, "seed": 61})).await;
    eventually("the watermark", Duration::from_secs(120), || async {
        let view = engine.aggregates(None);
        (view.counted >= 200).then_some(())
    })
    .await;
    // Live event time; 20% of reviews 10 minutes late, with 60 s allowed.
    stream(
        engine,
        json!({"rate": 2000, "chunk_size": 100, "limit": 4000, "seed": 62,
               "late_share": 0.2, "late_by_secs": 600}),
    )
    .await;
    let view = eventually("all 4,200 seen", Duration::from_secs(120), || async {
        let view = engine.aggregates(None);
        (view.counted + view.late_records >= 4_200).then_some(view)
    })
    .await;
    let shifted = shifted_back_reviews(engine).await;
    assert!(
        (650..950).contains(&shifted),
        "{shifted} of 4,000 shifted at 20%"
    );
    assert_eq!(view.late_records, shifted, "{view:?}");
    assert_eq!(view.counted + view.late_records, 4_200);
    eventually(
        "late reviews in reviews.late",
        Duration::from_secs(30),
        || async { (high_sum(engine, TOPIC_LATE).await == view.late_records as i64).then_some(()) },
    )
    .await;
    assert!(view.watermark < view.max_event_time);
    engine.shutdown().await;
}

/// Runs the streamer once with `config` and waits until all its reviews are in `reviews`.
async fn stream(engine: &Engine, config: serde_json::Value) {
    let before = high_sum(engine, app::api::TOPIC_REVIEWS).await;
    let limit = config["limit"].as_i64().expect("limit");
    engine
        .start_stage("streamer", config)
        .await
        .expect("streamer");
    eventually("the reviews in Kafka", Duration::from_secs(120), || async {
        (high_sum(engine, app::api::TOPIC_REVIEWS).await >= before + limit).then_some(())
    })
    .await;
}

/// Reviews in `reviews` whose event time is more than 5 minutes behind the time they were sent.
async fn shifted_back_reviews(engine: &Engine) -> u64 {
    let mut shifted = 0;
    for message in read_all(engine, app::api::TOPIC_REVIEWS).await {
        let review: serde_json::Value = serde_json::from_str(&message.value).expect("json");
        let date = review["date"].as_str().expect("date");
        let event = chrono::NaiveDateTime::parse_from_str(date, "%Y-%m-%d %H:%M:%S")
            .expect("date format")
            .and_utc()
            .timestamp_millis();
        let sent = message.timestamp.expect("broker timestamp");
        if sent - event > 300_000 {
            shifted += 1;
        }
    }
    shifted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parquet_sink_writes_every_review_into_date_folders() {
    let t = start_engine().await;
    let engine = &t.engine;
    engine
        .start_stage(
            "streamer",
            json!({"rate": 0, "chunk_size": 500, "limit": 5000, "seed": 63, "clock": "replay"}),
        )
        .await
        .expect("streamer");
    start_labelling(engine, 1).await;
    engine
        .start_stage("parquet", json!({"roll_secs": 1}))
        .await
        .expect("parquet sink");
    eventually("5,000 rows on disk", Duration::from_secs(240), || async {
        (counter(engine, "parquet", "rows_on_disk") >= 5_000).then_some(())
    })
    .await;
    assert_eq!(counter(engine, "parquet", "rows_on_disk"), 5_000);
    engine.stop_stage("parquet").await.expect("stop");
    // 5,000 reviews 10 s apart from 2024-01-01 09:00 end before midnight: one date folder.
    let root = engine.parquet_root();
    let mut dates: Vec<String> = std::fs::read_dir(&root)
        .expect("parquet dir")
        .flatten()
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .collect();
    dates.sort();
    assert_eq!(dates, ["date=2024-01-01"], "{dates:?}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_one_crashed_give_the_windows_of_one() {
    let t = start_engine().await;
    let engine = &t.engine;
    start_labelling(engine, 2).await;
    // Short windows over live event time, and reviews 10 minutes late with 3 s allowed.
    let config = AggregateConfig {
        group: "pair".into(),
        trigger_ms: 200,
        tumbling_secs: 5,
        sliding_secs: 10,
        slide_secs: 5,
        session_gap_secs: 2,
        allowed_lateness_secs: 3,
        output_mode: OutputMode::Update,
        ..AggregateConfig::default()
    };
    let (a, a_metrics) = member(engine, "member-a", &config);
    let (b, b_metrics) = member(engine, "member-b", &config);
    const N: u64 = 6_000;
    stream_with_late_tenth(engine, N).await;
    // Crash member A mid-stream, holding partitions: no checkpoint of its trigger in hand, no
    // commit.
    let held = eventually(
        "both members counting",
        Duration::from_secs(120),
        || async {
            let (va, vb) = (a_metrics.view(), b_metrics.view());
            (va.counted + vb.counted > N / 4 && !va.partitions.is_empty())
                .then_some(va.partitions.len())
        },
    )
    .await;
    a.crash().expect("crash A");
    a.wait().await;
    assert!(held > 0);
    eventually("all labelled", Duration::from_secs(300), || async {
        (group_lag(engine, "pipebook-sentiment").await == Some(0)
            && high_sum(engine, TOPIC_SENTIMENT).await >= N as i64)
            .then_some(())
    })
    .await;
    let records = high_sum(engine, TOPIC_SENTIMENT).await as u64;
    // B took over A's partitions from the changelog and read everything.
    let survivor = eventually(
        "B holds and read all 3 partitions",
        Duration::from_secs(180),
        || async {
            let view = b_metrics.view();
            (view.partitions.len() == 3
                && view.counted + view.late_records + view.duplicates == records)
                .then_some(view)
        },
    )
    .await;
    assert_eq!(b.state(), StageState::Running);

    // One member alone, over the same input, in one go.
    let reference = one_member_alone(engine, &config).await;
    assert_counted_as_one(&survivor, &reference);
    assert_eq!(
        survivor.counted + survivor.late_records + survivor.duplicates,
        records,
        "every record once"
    );
    assert!(survivor.counted <= N);
    let progress = |v: &AggregateView| {
        v.partitions
            .iter()
            .map(|p| {
                (
                    p.partition,
                    p.offset,
                    p.watermark,
                    p.counted,
                    p.late_records,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(progress(&survivor), progress(&reference));
    assert_eq!(survivor.watermark, reference.watermark);
    b.stop().await.expect("stop B");
    engine.shutdown().await;
}
