//! The delivery-semantics lab on the embedded broker: records copied with a crash, lost and
//! duplicated counted from the output topic.

mod common;

use std::time::Duration;

use app::api::{DeliveryLabView, DeliveryMode, DeliveryResult, LabState, TOPIC_REVIEWS};
use common::{eventually, serve, start_engine};
use pipebook::pipeline::Engine;
use serde_json::{Value, json};

const RECORDS: u64 = 10_000;
const CRASH_AFTER: u64 = 5_000;

async fn run_to_end(engine: &Engine, mode: &str) -> DeliveryResult {
    engine
        .start_delivery_lab(json!({"mode": mode, "records": RECORDS, "crash_after": CRASH_AFTER}))
        .expect("lab starts");
    let view = finished(engine).await;
    let result = view.results.first().cloned().expect("one result");
    println!("{mode}: {result:?}");
    result
}

async fn finished(engine: &Engine) -> DeliveryLabView {
    eventually("lab run finished", Duration::from_secs(300), || async {
        let view = engine.delivery_lab();
        (!view.running).then_some(view)
    })
    .await
}

fn assert_counted(result: &DeliveryResult) {
    assert_eq!(
        result.produced_in, RECORDS,
        "input holds exactly the records"
    );
    assert_eq!(result.crash_at_offset, Some(CRASH_AFTER));
    assert_eq!(result.read_out, result.distinct + result.duplicated);
    assert_eq!(result.distinct + result.lost, RECORDS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_once_loses_the_crashed_batch_and_duplicates_nothing() {
    let t = start_engine().await;
    let result = run_to_end(&t.engine, "at_most_once").await;
    assert_eq!(result.state, LabState::Done, "{:?}", result.note);
    assert_counted(&result);
    assert!(result.lost > 0, "{result:?}");
    assert_eq!(
        result.lost, 500,
        "the whole batch committed before the crash"
    );
    assert_eq!(result.duplicated, 0);
    t.engine.shutdown().await;
}

/// Records of one exactly-once run: four transactions of 500 (a crash point in each).
const EXACTLY_ONCE_RECORDS: u64 = 2_000;
/// Crash points drawn per test run (issue 14 asks for 20; see docs/architecture.md).
const CRASH_POINTS: usize = 20;

/// Exactly-once holds on the embedded broker wherever the crash lands: crash points drawn from
/// a seeded generator (PIPEBOOK_LAB_SEED replays a failure), each run 0 lost and 0 duplicated
/// as a read_committed reader counts them, with the crashed transaction aborted by the
/// restart's `init_transactions`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_loses_and_duplicates_nothing_at_seeded_crash_points() {
    use rand::{Rng, SeedableRng};
    let seed = std::env::var("PIPEBOOK_LAB_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(14);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let t = start_engine().await;
    let mut lab_topics = Vec::new();
    for point in 0..CRASH_POINTS {
        let crash_after = rng.random_range(0..EXACTLY_ONCE_RECORDS);
        let context = format!("seed {seed}, crash point #{point} at {crash_after}");
        t.engine
            .start_delivery_lab(json!({
                "mode": "exactly_once",
                "records": EXACTLY_ONCE_RECORDS,
                "crash_after": crash_after,
            }))
            .expect("lab starts");
        let view = finished(&t.engine).await;
        let result = view.results.first().cloned().expect("one result");
        println!("{context}: {result:?}");
        assert_eq!(result.state, LabState::Done, "{context}: {:?}", result.note);
        assert_eq!(result.produced_in, EXACTLY_ONCE_RECORDS, "{context}");
        assert_eq!(result.crash_at_offset, Some(crash_after), "{context}");
        assert_eq!(result.lost, 0, "{context}: {result:?}");
        assert_eq!(result.duplicated, 0, "{context}: {result:?}");
        assert_eq!(result.distinct, EXACTLY_ONCE_RECORDS, "{context}");
        assert_eq!(result.read_out, EXACTLY_ONCE_RECORDS, "{context}");
        lab_topics.push([result.input_topic, result.output_topic]);
    }
    // Each run deleted the previous run's topics, and only those: on stock tansu 0.6.0 one
    // DeleteTopics deleted every topic of the cluster (vendor/PATCHES.md, "DeleteTopics").
    let listed: Vec<String> = t
        .engine
        .topics()
        .await
        .expect("topics")
        .into_iter()
        .map(|topic| topic.name)
        .collect();
    let (last, earlier) = lab_topics.split_last().expect("runs");
    for name in last {
        assert!(listed.contains(name), "{name} missing from {listed:?}");
    }
    for name in earlier.iter().flatten() {
        assert!(!listed.contains(name), "{name} was not deleted: {listed:?}");
    }
    assert!(listed.iter().any(|n| n == TOPIC_REVIEWS), "{listed:?}");
    t.engine.shutdown().await;
}

/// Through HTTP: bad requests name the field, a second run is refused while one runs, and the
/// at-least-once run writes the crashed batch twice and loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_over_http_duplicates_the_crashed_batch_and_loses_nothing() {
    let t = start_engine().await;
    let served = serve(t.engine.clone()).await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/lab/delivery", served.base);

    for (body, field) in [
        (json!({"records": 0}), "records"),
        (json!({"records": 100_001}), "records"),
        (json!({"records": 100, "crash_after": 100}), "crash_after"),
        (json!({"mode": "twice"}), "mode"),
    ] {
        let response = http.post(&url).json(&body).send().await.expect("post");
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.expect("json");
        let message = error["error"].as_str().unwrap_or_default();
        assert!(message.starts_with(field), "{body} → {message}");
    }

    let body = json!({"mode": "at_least_once", "records": RECORDS, "crash_after": CRASH_AFTER});
    let started = http.post(&url).json(&body).send().await.expect("post");
    assert_eq!(started.status(), 202);
    let again = http.post(&url).json(&body).send().await.expect("post");
    assert_eq!(again.status(), 409);

    // Progress shows while it runs, in the API and in the live snapshot.
    eventually("progress", Duration::from_secs(120), || async {
        let view: DeliveryLabView = http.get(&url).send().await.ok()?.json().await.ok()?;
        (view.running && view.processed > 0).then_some(())
    })
    .await;
    let view = finished(&t.engine).await;
    let result = view
        .result(DeliveryMode::AtLeastOnce)
        .cloned()
        .expect("result");
    println!("at_least_once: {result:?}");
    assert_eq!(result.state, LabState::Done, "{:?}", result.note);
    assert_counted(&result);
    assert!(result.duplicated > 0, "{result:?}");
    assert_eq!(
        result.duplicated, 500,
        "the acknowledged, uncommitted batch"
    );
    assert_eq!(result.lost, 0);

    let fetched: DeliveryLabView = http
        .get(&url)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(fetched, view);
    eventually("lab in the snapshot", Duration::from_secs(5), || async {
        (t.engine.subscribe().borrow().lab == view).then_some(())
    })
    .await;
    t.engine.shutdown().await;
}
