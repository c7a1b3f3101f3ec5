//! The HTTP API over a real engine, through a real socket: status codes, error messages that
//! name the field, and the live feed.

mod common;

use std::time::Duration;

use common::{serve, start_engine};
use futures::StreamExt;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_and_messages() {
    let t = start_engine().await;
    let served = serve(t.engine.clone()).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", served.base);

    let health: Value = http
        .get(url("/api/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health, json!({"status": "ok"}));

    let bad = http
        .post(url("/api/stages/streamer/start"))
        .json(&json!({"rate": 100, "chunk_size": 0}))
        .send()
        .await
        .expect("start");
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("chunk_size"),
        "{body}"
    );

    let wrong_type = http
        .post(url("/api/stages/sentiment/start"))
        .json(&json!({"workers": "many"}))
        .send()
        .await
        .expect("start");
    assert_eq!(wrong_type.status(), 400);
    let body: Value = wrong_type.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("workers"),
        "{body}"
    );

    let unknown = http
        .post(url("/api/stages/nope/start"))
        .send()
        .await
        .expect("unknown");
    assert_eq!(unknown.status(), 404);

    let not_running = http
        .post(url("/api/stages/producer/stop"))
        .send()
        .await
        .expect("stop");
    assert_eq!(not_running.status(), 409);

    let limit = http
        .get(url("/api/kafka/topics/reviews/messages?limit=0"))
        .send()
        .await
        .expect("browse");
    assert_eq!(limit.status(), 400);
    let no_topic = http
        .get(url("/api/kafka/topics/nope/messages"))
        .send()
        .await
        .expect("browse");
    assert_eq!(no_topic.status(), 404);

    let topics: Value = http
        .get(url("/api/kafka/topics"))
        .send()
        .await
        .expect("topics")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = topics
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            // The aggregate stage's state changelog, created with the others.
            "pipebook.aggregate.changelog",
            "pipebook.workers",
            "reviews",
            "reviews.aggregates",
            "reviews.dlq",
            "reviews.late",
            "reviews.sentiment"
        ]
    );
    t.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_sends_snapshots_with_growing_offsets() {
    let t = start_engine().await;
    let served = serve(t.engine.clone()).await;
    let http = reqwest::Client::new();
    for (stage, body) in [
        ("streamer", json!({"rate": 1000, "chunk_size": 100})),
        ("producer", json!({})),
    ] {
        let started = http
            .post(format!("{}/api/stages/{stage}/start", served.base))
            .json(&body)
            .send()
            .await
            .expect("start");
        assert_eq!(started.status(), 200, "{stage}: {:?}", started.text().await);
    }

    let response = http
        .get(format!("{}/api/events", served.base))
        .send()
        .await
        .expect("sse");
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut highs = Vec::new();
    // A whole snapshot first, then the parts that changed (tests/feed.rs checks the format).
    let mut held: Option<app::api::Snapshot> = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // Grown: a later snapshot shows more records than the first one that showed any.
    let grown = |h: &Vec<i64>| {
        let first = h.iter().copied().find(|&v| v > 0);
        first.is_some_and(|first| h.last().is_some_and(|&last| last > first))
    };
    while !grown(&highs) && tokio::time::Instant::now() < deadline {
        let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_secs(5), body.next()).await
        else {
            continue;
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            match held.as_mut() {
                None => held = Some(serde_json::from_str(data).expect("snapshot JSON")),
                Some(snapshot) => snapshot.apply(serde_json::from_str(data).expect("parts JSON")),
            }
            let snapshot = held.as_ref().expect("held");
            highs.push(snapshot.topic("reviews").map_or(0, |t| t.high_sum()));
        }
    }
    // Once records land, later snapshots show a higher sum of high watermarks.
    assert!(
        grown(&highs),
        "offsets did not grow across snapshots: {highs:?}"
    );
    t.engine.shutdown().await;
}
