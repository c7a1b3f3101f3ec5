//! Predictions of the lesson over the real HTTP stack (access guard, JSON extractor) and a real
//! engine: refused when the step or the choice is wrong or the step is done, judged from the
//! live figures when the step completes, and still there after the server restarts on the same
//! data dir.

mod common;

use std::time::Duration;

use common::{TestEngine, eventually, serve_page, start_engine};
use pipebook::pipeline::{Engine, EngineSettings};
use serde_json::{Value, json};

async fn predict(http: &reqwest::Client, base: &str, step: &str, body: Value) -> (u16, Value) {
    let response = http
        .post(format!("{base}/api/lesson/steps/{step}/prediction"))
        .json(&body)
        .send()
        .await
        .expect("prediction sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json answer"))
}

async fn lesson_step(http: &reqwest::Client, base: &str, id: &str) -> Value {
    let lesson: Value = http
        .get(format!("{base}/api/lesson"))
        .send()
        .await
        .expect("lesson")
        .json()
        .await
        .expect("json");
    lesson["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["id"] == id))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits for the stream step to be done (`what` names the wait in a timeout's message).
async fn stream_step_done(http: &reqwest::Client, base: &str, what: &str) {
    eventually(what, Duration::from_secs(60), || async move {
        let step = lesson_step(http, base, "stream").await;
        (!step["done_at"].is_null()).then_some(())
    })
    .await;
}

/// Waits for the stream step to be done, then presses Start over.
async fn stream_step_done_then_start_over(http: &reqwest::Client, base: &str) {
    stream_step_done(http, base, "the stream step done").await;
    let reset = http
        .post(format!("{base}/api/lesson/reset"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("reset sent");
    assert_eq!(reset.status(), 200);
}

fn error(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prediction_is_judged_from_live_figures_and_survives_a_restart() {
    let t = start_engine().await;
    let served = serve_page(&t).await;
    let http = reqwest::Client::new();
    let base = served.base.clone();

    // Refusals name the field; the guard still wants JSON for a change of state.
    let (status, body) = predict(&http, &base, "no-such-step", json!({"choice": 0})).await;
    assert_eq!(status, 400, "{body}");
    assert!(error(&body).starts_with("id:"), "{body}");
    let (status, body) = predict(&http, &base, "stream", json!({"choice": 9})).await;
    assert_eq!(status, 400, "{body}");
    assert!(error(&body).starts_with("choice:"), "{body}");
    let (status, body) = predict(&http, &base, "stream", json!({"choice": -1})).await;
    assert_eq!(status, 400, "{body}");
    assert!(error(&body).starts_with("choice"), "{body}");
    let plain = http
        .post(format!("{base}/api/lesson/steps/stream/prediction"))
        .header("content-type", "text/plain")
        .body(r#"{"choice": 1}"#)
        .send()
        .await
        .expect("sent");
    assert_eq!(plain.status(), 403);

    // "Spread over the partitions by key" — then the learner streams.
    let (status, body) = predict(&http, &base, "stream", json!({"choice": 1})).await;
    assert_eq!(status, 200, "{body}");
    let stream = body["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["id"] == "stream"))
        .expect("stream step");
    assert_eq!(stream["prediction"]["choice"], 1);
    assert!(stream["prediction"]["outcome"].is_null());

    t.engine
        .start_stage(
            "streamer",
            json!({"rate": 0, "chunk_size": 100, "limit": 300, "seed": 17, "clock": "replay"}),
        )
        .await
        .expect("streamer");
    t.engine
        .start_stage("producer", json!({}))
        .await
        .expect("producer");
    let observed = eventually("the stream step judged", Duration::from_secs(60), || {
        let (http, base) = (&http, &base);
        async move {
            let step = lesson_step(http, base, "stream").await;
            (!step["prediction"]["outcome"].is_null()).then_some(step)
        }
    })
    .await;
    let outcome = &observed["prediction"]["outcome"];
    // The figures are the live state's: at least 100 acknowledged, over more than one partition.
    let figures = outcome["figures"].as_array().expect("figures");
    assert_eq!(figures[0]["label"], "reviews acknowledged");
    assert!(figures[0]["after"].as_i64() >= Some(100), "{outcome}");
    assert!(figures[2]["after"].as_i64() > Some(1), "{outcome}");
    assert_eq!(outcome["happened"], 1, "{outcome}");
    assert_eq!(
        outcome["explanation"]
            .as_str()
            .map(|e| e.matches(". ").count()),
        Some(2)
    );

    // Once done, the step takes no more predictions.
    let (status, body) = predict(&http, &base, "stream", json!({"choice": 0})).await;
    assert_eq!(status, 409, "{body}");

    // A new server on the same data dir shows the same answer and the same outcome.
    drop(served);
    t.engine.shutdown().await;
    let TestEngine { engine, dir } = t;
    drop(engine);
    let engine = Engine::start(EngineSettings::embedded(dir.path()))
        .await
        .expect("restarted on the same data dir");
    let t = TestEngine { engine, dir };
    let served = serve_page(&t).await;
    let base = served.base.clone();
    let after = eventually(
        "the lesson after the restart",
        Duration::from_secs(30),
        || {
            let (http, base) = (&http, &base);
            async move {
                let step = lesson_step(http, base, "stream").await;
                (!step["done_at"].is_null()).then_some(step)
            }
        },
    )
    .await;
    assert_eq!(after["prediction"]["choice"], 1);
    assert_eq!(
        after["prediction"]["outcome"],
        observed["prediction"]["outcome"]
    );
    t.engine.shutdown().await;
}

/// Start over on a pipeline that already ran: the count step ("Kafka acknowledges 100 reviews")
/// counts from where the counter stood, not from 0, so it is not done again at once; new
/// records complete it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_over_counts_a_count_step_from_its_baseline() {
    let t = start_engine().await;
    let served = serve_page(&t).await;
    let http = reqwest::Client::new();
    let base = served.base.clone();

    common::stream_reviews(&t.engine, 150, 17).await;
    stream_step_done_then_start_over(&http, &base).await;
    let acked_at_reset = common::counter(&t.engine, "producer", "acked");
    assert!(acked_at_reset >= 150);

    // Several snapshots later, with the counter far above 100, the step is still open.
    let mut snapshots = t.engine.subscribe();
    for _ in 0..3 {
        snapshots.changed().await.expect("a snapshot");
    }
    let step = lesson_step(&http, &base, "stream").await;
    assert!(step["done_at"].is_null(), "done again at once: {step}");
    assert_eq!(step["reached"], 0, "{step}");

    // 120 new reviews acknowledged: now it is done.
    t.engine
        .stop_stage("streamer")
        .await
        .expect("streamer stops");
    t.engine
        .start_stage(
            "streamer",
            json!({"rate": 0, "chunk_size": 120, "limit": 120, "seed": 18}),
        )
        .await
        .expect("streamer again");
    stream_step_done(&http, &base, "the stream step done again").await;
    assert!(common::counter(&t.engine, "producer", "acked") >= acked_at_reset + 100);
    t.engine.shutdown().await;
}

/// Start over on a pipeline that keeps streaming: the stream step asks the learner to start the
/// streamer, so reviews acknowledged by the streamer left running do not tick it however many
/// there are; the learner's stop and start does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_over_on_a_running_pipeline_waits_for_the_learner_to_start_the_stage() {
    let t = start_engine().await;
    let served = serve_page(&t).await;
    let http = reqwest::Client::new();
    let base = served.base.clone();

    // A slow, long stream: reviews keep being acknowledged across the Start over.
    t.engine
        .start_stage("producer", json!({}))
        .await
        .expect("producer");
    t.engine
        .start_stage(
            "streamer",
            json!({"rate": 100, "limit": 100_000, "seed": 17}),
        )
        .await
        .expect("streamer");
    stream_step_done_then_start_over(&http, &base).await;
    let acked_at_reset = common::counter(&t.engine, "producer", "acked");

    // A snapshot (and the lesson judged from it) with 200 more reviews acknowledged since the
    // Start over, by the streamer that ran all along: the step is still open.
    let mut snapshots = t.engine.subscribe();
    let snapshot = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            snapshots.changed().await.expect("a snapshot");
            let snapshot = snapshots.borrow_and_update().clone();
            if snapshot.pipeline.counter("producer", "acked") >= acked_at_reset + 200 {
                break snapshot;
            }
        }
    })
    .await
    .expect("200 more reviews acknowledged within 60 s");
    let stream = snapshot
        .lesson
        .steps
        .iter()
        .find(|s| s.id == "stream")
        .expect("stream step");
    assert!(
        !stream.done(),
        "done by a streamer left running: {stream:?}"
    );

    // The learner stops and starts the streamer: now it is done.
    t.engine
        .restart_stage("streamer")
        .await
        .expect("streamer restarted");
    stream_step_done(&http, &base, "the stream step done after the restart").await;
    t.engine.shutdown().await;
}
