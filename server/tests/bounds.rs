//! Bounds on expensive reads, through the HTTP API of a real engine: a crowd of browses gets
//! answers or 429s (never a 5xx, never a crash) without growing the process by more than
//! 50 MB, traces past their bound get a 429 at once, group names do not grow the inspector's
//! cache of clients, and random start bodies never give a 5xx.

mod common;

use std::time::{Duration, Instant};

use common::{serve, start_engine, stream_reviews};
use pipebook::bounds::{MAX_BROWSES, MAX_TRACES};
use pipebook::kafka::inspect::{OFFSET_READERS_KEPT, REGISTERED_GROUPS_KEPT};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

/// This process's resident set size in MB (the test is both the server and its clients).
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kb / 1024.0
}

/// The tests of this file run one at a time: the memory figure is the whole process's, and
/// another test starting stages beside it would blur it.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    busy: usize,
    other: Vec<(u16, String)>,
    took: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_browses_get_answers_or_429s_and_memory_stays_bounded() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let t = start_engine().await;
    let served = serve(t.engine.clone()).await;
    stream_reviews(&t.engine, 3_000, 7).await;
    t.engine.stop_all().await.expect("stop");
    let http = reqwest::Client::new();
    let before = rss_mb();
    let first = browse_burst(&http, &served.base).await;
    let after_first = rss_mb();
    // A second crowd reuses the pooled readers: memory should not grow again.
    let second = browse_burst(&http, &served.base).await;
    let after = rss_mb();

    let counts = t.engine.inspector().reader_counts();
    for (name, tally, rss) in [("first", &first, after_first), ("second", &second, after)] {
        eprintln!(
            "{name} 100 concurrent browses: {} × 200, {} × 429, other {:?} in {} ms; RSS \
             {rss:.1} MB ({:+.1} MB since before the first, {before:.1} MB)",
            tally.ok,
            tally.busy,
            tally.other,
            tally.took.as_millis(),
            rss - before,
        );
        assert!(tally.other.is_empty(), "{:?}", tally.other);
        assert_eq!(tally.ok + tally.busy, 100);
        assert!(tally.ok >= 1, "at least the first browses are answered");
    }
    eprintln!("browse readers: {counts:?}");
    assert!(
        counts.browsers_created <= MAX_BROWSES as u64,
        "no more readers than browses allowed at once: {counts:?}"
    );
    assert!(counts.idle_browsers <= MAX_BROWSES, "{counts:?}");
    assert!(
        after - before < 50.0,
        "RSS grew by {:.1} MB ({before:.1} → {after:.1})",
        after - before
    );

    // One after the other, the pooled readers are reused, and each browse gets exactly what it
    // asked for, whatever the reader read before.
    let made = t.engine.inspector().reader_counts().browsers_created;
    for (topic, partition, offset) in [
        ("reviews", 0, 0),
        ("reviews", 1, 3),
        ("reviews.dlq", 0, 0),
        ("reviews", 2, 100),
        ("reviews", 0, 7),
    ] {
        let records = t
            .engine
            .messages(topic, partition, offset, 5)
            .await
            .expect("browse");
        if topic == "reviews" {
            assert_eq!(records.len(), 5, "{topic}-{partition}@{offset}");
        }
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record.partition, partition);
            assert_eq!(record.offset, offset + i as i64, "{topic}-{partition}");
        }
    }
    assert_eq!(
        t.engine.inspector().reader_counts().browsers_created,
        made,
        "sequential browses reuse pooled readers"
    );
    t.engine.shutdown().await;
}

/// 100 browses of 500 records at once, spread over the partitions of `reviews`.
async fn browse_burst(http: &reqwest::Client, base: &str) -> Tally {
    let started = Instant::now();
    let requests = (0..100).map(|i| {
        let http = http.clone();
        let url = format!(
            "{base}/api/kafka/topics/reviews/messages?partition={}&offset={}&limit=500",
            i % 3,
            (i * 7) % 500
        );
        tokio::spawn(async move {
            let response = http.get(url).send().await.expect("a response, not a crash");
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body: Value = response.json().await.expect("JSON body");
            (status, retry_after, body)
        })
    });
    let mut tally = Tally::default();
    for request in futures::future::join_all(requests).await {
        let (status, retry_after, body) = request.expect("request task");
        match status {
            200 => {
                let records = body.as_array().expect("records");
                assert!(
                    !records.is_empty(),
                    "a browse of a full partition is not empty"
                );
                tally.ok += 1;
            }
            429 => {
                assert_eq!(retry_after.as_deref(), Some("1"));
                let message = body["error"].as_str().unwrap_or_default();
                assert!(message.contains("message browses"), "{message}");
                assert!(message.contains("try again"), "{message}");
                tally.busy += 1;
            }
            other => tally.other.push((other, body.to_string())),
        }
    }
    tally.took = started.elapsed();
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_past_the_bound_get_a_429_at_once() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let t = start_engine().await;
    let served = serve(t.engine.clone()).await;
    let http = reqwest::Client::new();
    // Nothing is produced, so each "next" trace holds its permit for its whole 10 s wait.
    let waiting: Vec<_> = (0..MAX_TRACES)
        .map(|_| {
            let request = http.get(format!("{}/api/trace/next", served.base)).send();
            tokio::spawn(request)
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let started = Instant::now();
    for path in ["/api/trace/next", "/api/trace?review_id=abc"] {
        let refused = http
            .get(format!("{}{path}", served.base))
            .send()
            .await
            .expect("response");
        assert_eq!(refused.status(), 429, "{path}");
        assert_eq!(
            refused
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
        let body: Value = refused.json().await.expect("json");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(message.contains("traces"), "{message}");
    }
    let refused_in = started.elapsed();
    let mut statuses = Vec::new();
    for request in waiting {
        let response = request.await.expect("task").expect("response");
        statuses.push(response.status().as_u16());
    }
    eprintln!(
        "{MAX_TRACES} traces waiting, the next two refused in {} ms; the waiting ones ended with {statuses:?}",
        refused_in.as_millis()
    );
    // No review was produced: the waiting traces end with "no next review".
    assert_eq!(statuses, vec![404; MAX_TRACES]);
    // Once they are done, a trace is accepted again (404: no such review, but not refused).
    let again = http
        .get(format!("{}/api/trace?review_id=abc", served.base))
        .send()
        .await
        .expect("response");
    assert_eq!(again.status(), 404);
    t.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_group_names_do_not_grow_the_offset_reader_cache() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let t = start_engine().await;
    let inspector = t.engine.inspector();
    for i in 0..100 {
        let committed = inspector
            .committed(&format!("learner-group-{i}"), "reviews", 0)
            .await
            .expect("offset fetch");
        assert_eq!(committed, None, "a new group has committed nothing");
    }
    let counts = inspector.reader_counts();
    eprintln!("after 100 group names: {counts:?}");
    assert_eq!(counts.offset_readers, OFFSET_READERS_KEPT);

    // Groups named by stage starts are listed, the oldest idle ones forgotten past the bound,
    // so the once-a-second sample does not cycle through more readers than are kept.
    for i in 0..100 {
        inspector
            .registry()
            .declare(&format!("stage-group-{i}"), &["reviews"]);
    }
    assert_eq!(inspector.registry().len(), REGISTERED_GROUPS_KEPT);
    let groups = t.engine.groups().await.expect("groups");
    assert_eq!(groups.len(), REGISTERED_GROUPS_KEPT);
    assert!(groups.iter().any(|g| g.group == "stage-group-99"));
    assert!(!groups.iter().any(|g| g.group == "stage-group-0"));
    assert!(inspector.reader_counts().offset_readers <= OFFSET_READERS_KEPT);
    t.engine.shutdown().await;
}

/// Each stage and its settings.
const STAGES: [(&str, &[&str]); 6] = [
    (
        "streamer",
        &[
            "rate",
            "chunk_size",
            "source",
            "seed",
            "limit",
            "listen",
            "clock",
            "late_share",
            "late_by_secs",
            "dataset",
        ],
    ),
    ("producer", &["socket"]),
    (
        "sentiment",
        &[
            "workers",
            "classifier",
            "positive_threshold",
            "negative_threshold",
            "group",
        ],
    ),
    (
        "aggregate",
        &[
            "group",
            "trigger_ms",
            "time",
            "tumbling_secs",
            "sliding_secs",
            "slide_secs",
            "session_gap_secs",
            "allowed_lateness_secs",
            "late_policy",
            "output_mode",
        ],
    ),
    ("parquet", &["group", "roll_rows", "roll_secs"]),
    ("indexer", &["group", "batch_docs", "batch_bytes"]),
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        Just(json!(1e300)),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(1)),
        Just(json!(2)),
        Just(json!(100)),
        Just(json!("NaN")),
        Just(json!("a\u{0}b")),
        Just(json!("x".repeat(20_000))),
        Just(json!("127.0.0.1:0")),
        Just(json!(0.5)),
        Just(json!(10)),
        Just(json!(1000)),
        Just(json!("lexicon")),
        Just(json!("replay")),
        Just(json!("update")),
        Just(json!("learner-group")),
        "\\PC{0,16}".prop_map(Value::from),
    ]
}

/// Mostly the stage's own settings, sometimes a name it does not have.
fn field(fields: &'static [&'static str]) -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        6 => prop::sample::select(fields).prop_map(str::to_owned),
        1 => "\\PC{0,8}",
    ]
}

/// A stage and a body for it: any JSON tree, or (mostly) one or two of its settings set to
/// anything, the rest at their defaults.
fn stage_and_body() -> impl Strategy<Value = (&'static str, Value)> {
    prop::sample::select(STAGES.to_vec()).prop_flat_map(|(stage, fields)| {
        let tree = leaf().prop_recursive(3, 24, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(field(fields), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        let body = prop_oneof![
            1 => tree.clone(),
            4 => prop::collection::btree_map(field(fields), prop_oneof![4 => leaf(), 1 => tree], 1..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ];
        (Just(stage), body)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_start_bodies_never_give_a_server_error() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let t = start_engine().await;
    let served = serve(t.engine.clone()).await;
    let http = reqwest::Client::new();
    let mut runner = TestRunner::deterministic();
    let strategy = stage_and_body();
    let started = Instant::now();
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..300 {
        let (stage, body) = strategy
            .new_tree(&mut runner)
            .expect("generate a body")
            .current();
        let response = http
            .post(format!("{}/api/stages/{stage}/start", served.base))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{stage} {body}: no response (a panic?): {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        assert!(status < 500, "{stage} {body}: {status} {text}");
        if status == 200 {
            accepted += 1;
            let stopped = http
                .post(format!("{}/api/stages/{stage}/stop", served.base))
                .send()
                .await
                .expect("stop");
            assert!(stopped.status().as_u16() < 500, "stop {stage} after {body}");
        } else {
            refused += 1;
            let message: Value = serde_json::from_str(&text).expect("a JSON error");
            assert!(message["error"].is_string(), "{text}");
        }
    }
    eprintln!(
        "300 random start bodies: {accepted} started (and stopped), {refused} refused, none 5xx, in {} s",
        started.elapsed().as_secs()
    );
    assert!(accepted > 0 && refused > 0, "{accepted} / {refused}");
    t.engine.shutdown().await;
}
