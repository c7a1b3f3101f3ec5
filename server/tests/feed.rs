//! The live feed (`GET /api/events`) of a real server with the pipeline running: a whole
//! snapshot first, then parts; what a viewer rebuilds is the engine's snapshot; gzip flushed
//! event by event; the feed ends on shutdown.

mod common;

use std::io::Write;
use std::time::Duration;

use app::api::{SNAPSHOT_PARTS, Snapshot, SnapshotDelta};
use common::{serve, start_engine};
use futures::StreamExt;
use pipebook::feed::for_viewers;
use serde_json::{Value, json};


/// Starts the streamer and the stages after it, so most parts change every second.
async fn start_pipeline(http: &reqwest::Client, base: &str) {
    for (stage, body) in [
        ("streamer", json!({"rate": 1000, "chunk_size": 100})),
        ("producer", json!({})),
        ("sentiment", json!({"workers": 2})),
        ("aggregate", json!({})),
    ] {
        let started = http
            .post(format!("{base}/api/stages/{stage}/start"))
            .json(&body)
            .send()
            .await
            .expect("start");
        assert_eq!(started.status(), 200, "{stage}: {:?}", started.text().await);
    }
}

/// Reads server-sent events (`event:` and `data:` lines) from decoded text.
#[derive(Default)]
struct EventReader {
    buffer: String,
}

impl EventReader {
    fn push(&mut self, text: &str) -> Vec<(String, String)> {
        self.buffer.push_str(text);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.find("\n\n") {
            let block: String = self.buffer.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::to_owned)
            };
            // Keep-alive comments have neither.
            if let (Some(kind), Some(data)) = (field("event: "), field("data: ")) {
                events.push((kind, data));
            }
        }
        events
    }
}

/// A client that shows the bytes as sent: reqwest would otherwise ask for gzip and decode it
/// (another crate of the workspace turns its gzip feature on), hiding `Content-Encoding`.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_gzip()
        .build()
        .expect("client")
}

/// The engine's current snapshot as a viewer gets it, after going through JSON text as it does
/// (serde_json reads a float back to within one unit in the last place, the same way each time).
fn engine_view(engine: &pipebook::pipeline::Engine) -> Snapshot {
    let live = for_viewers(&engine.subscribe().borrow());
    serde_json::from_str(&serde_json::to_string(&live).expect("serialise")).expect("deserialise")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_gets_a_snapshot_then_parts_and_rebuilds_the_engines_snapshot() {
    let t = start_engine().await;
    let served = serve(t.engine.clone()).await;
    let http = client();
    start_pipeline(&http, &served.base).await;

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
    assert!(response.headers().get("content-encoding").is_none());
    let mut body = response.bytes_stream();
    let mut reader = EventReader::default();
    let mut held: Option<Snapshot> = None;
    let (mut parts_events, mut partial_events, mut matches) = (0, 0, 0);
    let mut highs = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while (matches < 3 || partial_events < 3) && tokio::time::Instant::now() < deadline {
        let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_secs(5), body.next()).await
        else {
            continue;
        };
        for (kind, data) in reader.push(&String::from_utf8_lossy(&chunk)) {
            match (kind.as_str(), held.as_mut()) {
                ("snapshot", None) => held = Some(serde_json::from_str(&data).expect("snapshot")),
                ("snapshot", Some(_)) => panic!("a second snapshot on the same connection"),
                ("parts", None) => panic!("parts before the snapshot"),
                ("parts", Some(snapshot)) => {
                    let value: Value = serde_json::from_str(&data).expect("JSON");
                    let sent = value["parts"].as_object().expect("parts object");
                    assert!(sent.keys().all(|k| SNAPSHOT_PARTS.contains(&k.as_str())));
                    parts_events += 1;
                    if sent.len() < SNAPSHOT_PARTS.len() {
                        partial_events += 1;
                    }
                    let delta: SnapshotDelta = serde_json::from_str(&data).expect("parts");
                    snapshot.apply(delta);
                }
                (other, _) => panic!("unexpected event {other:?}"),
            }
            let snapshot = held.as_ref().expect("held");
            highs.push(snapshot.topic("reviews").map_or(0, |t| t.high_sum()));
            // The sampler may have moved on since the event was sent; compare same samples.
            let engine = engine_view(&t.engine);
            if engine.at == snapshot.at {
                assert_eq!(
                    snapshot, &engine,
                    "rebuilt snapshot differs from the engine's"
                );
                matches += 1;
            }
        }
    }
    assert!(
        matches >= 3,
        "rebuilt snapshot matched the engine's {matches} times"
    );
    assert!(
        partial_events >= 3,
        "{partial_events} of {parts_events} parts events left a part out"
    );
    // The records flowing show in the rebuilt snapshots.
    let first = highs.iter().copied().find(|&h| h > 0);
    assert!(
        first.is_some_and(|f| highs.last().is_some_and(|&l| l > f)),
        "offsets did not grow: {highs:?}"
    );

    // A viewer that connects (or reconnects) now starts with the whole snapshot.
    let again = http
        .get(format!("{}/api/events", served.base))
        .send()
        .await
        .expect("sse");
    let mut body = again.bytes_stream();
    let mut reader = EventReader::default();
    let first_event = loop {
        let chunk = tokio::time::timeout(Duration::from_secs(20), body.next())
            .await
            .expect("an event within 20 s")
            .expect("stream open")
            .expect("bytes");
        if let Some(event) = reader
            .push(&String::from_utf8_lossy(&chunk))
            .into_iter()
            .next()
        {
            break event;
        }
    };
    assert_eq!(first_event.0, "snapshot");
    let snapshot: Snapshot = serde_json::from_str(&first_event.1).expect("snapshot");
    assert!(snapshot.topic("reviews").is_some_and(|t| t.high_sum() > 0));
    t.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_is_flushed_event_by_event_and_the_feed_ends_on_shutdown() {
    let t = start_engine().await;
    let served = serve(t.engine.clone()).await;
    let http = client();
    start_pipeline(&http, &served.base).await;

    let response = http
        .get(format!("{}/api/events", served.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("sse");
    assert_eq!(
        response
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip")
    );
    let mut body = response.bytes_stream();
    // Decoded as it arrives, while the stream stays open (the unit tests of feed::gzip check
    // that every chunk decodes to whole events).
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    let mut reader = EventReader::default();
    let mut kinds = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while kinds.len() < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "events decoded: {kinds:?}"
        );
        let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_secs(20), body.next()).await
        else {
            panic!("the stream ended or stalled (decoded so far: {kinds:?})");
        };
        decoder.write_all(&chunk.expect("bytes")).expect("gzip");
        decoder.flush().expect("gzip");
        let text = String::from_utf8(std::mem::take(decoder.get_mut())).expect("utf-8");
        kinds.extend(reader.push(&text).into_iter().map(|(kind, _)| kind));
    }
    assert_eq!(kinds[0], "snapshot");
    assert!(kinds[1..].iter().all(|k| k == "parts"), "{kinds:?}");

    // Shutdown ends the stream, with a complete gzip trailer.
    t.engine.closing().cancel();
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = body.next().await {
            decoder.write_all(&chunk.expect("bytes")).expect("gzip");
        }
    })
    .await;
    assert!(ended.is_ok(), "the feed did not end on shutdown");
    decoder.try_finish().expect("a complete gzip stream");
    t.engine.shutdown().await;
}
