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
    let mut seen = Seen::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !seen.enough() && tokio::time::Instant::now() < deadline {
        let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_secs(5), body.next()).await
        else {
            continue;
        };
        for (kind, data) in reader.push(&String::from_utf8_lossy(&chunk)) {
            seen.kinds.push(kind.clone());
            match (kind.as_str(), held.as_mut()) {
                ("snapshot", None) => held = Some(serde_json::from_str(&data).expect("snapshot")),
                ("parts", Some(snapshot)) => {
                    let value: Value = serde_json::from_str(&data).expect("JSON");
                    let sent = value["parts"].as_object().expect("parts object");
                    seen.unknown_parts |=
                        sent.keys().any(|k| !SNAPSHOT_PARTS.contains(&k.as_str()));
                    if sent.len() < SNAPSHOT_PARTS.len() {
                        seen.partial += 1;
                    }
                    let delta: SnapshotDelta = serde_json::from_str(&data).expect("parts");
                    snapshot.apply(delta);
                }
                _ => continue, // out of order: the assertions on `kinds` below say so
            }
            let snapshot = held.as_ref().expect("held");
            let high = snapshot.topic("reviews").map_or(0, |t| t.high_sum());
            seen.highs.push(high);
            // The sampler may have moved on since the event was sent; compare same samples,
            // once records flow (the very first samples are all but empty).
            let engine = engine_view(&t.engine);
            if engine.at == snapshot.at && high > 0 {
                if *snapshot == engine {
                    seen.matches += 1;
                } else {
                    seen.mismatch.get_or_insert((snapshot.clone(), engine));
                }
            }
        }
    }

    // A viewer that connects (or reconnects) now starts with the whole snapshot.
    let again = http
        .get(format!("{}/api/events", served.base))
        .send()
        .await
        .expect("sse");
    let mut body = again.bytes_stream();
    let mut reader = EventReader::default();
    let mut first_event = None;
    while first_event.is_none() {
        let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_secs(20), body.next()).await
        else {
            break;
        };
        first_event = reader
            .push(&String::from_utf8_lossy(&chunk))
            .into_iter()
            .next();
    }
    // Stopped before asserting: a test that fails with the stages running can hang in the
    // Kafka clients' destructors when the runtime drops them.
    t.engine.shutdown().await;

    assert_eq!(seen.kinds.first().map(String::as_str), Some("snapshot"));
    assert!(
        seen.kinds[1..].iter().all(|k| k == "parts"),
        "after the snapshot only parts: {:?}",
        seen.kinds
    );
    assert!(!seen.unknown_parts, "a part that is not a snapshot field");
    if let Some((rebuilt, engine)) = &seen.mismatch {
        assert_eq!(
            rebuilt, engine,
            "rebuilt snapshot differs from the engine's"
        );
    }
    assert!(
        seen.enough(),
        "{} matches with the engine, {} partial parts events, highs {:?}",
        seen.matches,
        seen.partial,
        seen.highs
    );
    let (kind, data) = first_event.expect("a second connection gets an event");
    assert_eq!(kind, "snapshot");
    let snapshot: Snapshot = serde_json::from_str(&data).expect("snapshot");
    assert!(snapshot.topic("reviews").is_some_and(|t| t.high_sum() > 0));
}

/// What the first viewer saw.
#[derive(Default)]
struct Seen {
    kinds: Vec<String>,
    /// Parts events that left a part out (it had not changed).
    partial: usize,
    unknown_parts: bool,
    /// Events after which the rebuilt snapshot equalled the engine's (same sample).
    matches: usize,
    mismatch: Option<(Snapshot, Snapshot)>,
    /// Sum of `reviews`' high watermarks in the rebuilt snapshot, event by event.
    highs: Vec<i64>,
}

impl Seen {
    fn enough(&self) -> bool {
        let first = self.highs.iter().copied().find(|&h| h > 0);
        let grown = first.is_some_and(|f| self.highs.last().is_some_and(|&l| l > f));
        self.matches >= 3 && self.partial >= 3 && grown && self.mismatch.is_none()
    }
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
    let encoding = response
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = response.bytes_stream();
    // Decoded as it arrives, while the stream stays open (the unit tests of feed::gzip check
    // that every chunk decodes to whole events).
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    let mut reader = EventReader::default();
    let mut kinds = Vec::new();
    let mut decode_error = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while kinds.len() < 4 && tokio::time::Instant::now() < deadline {
        let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_secs(20), body.next()).await
        else {
            break;
        };
        if let Err(error) = decoder.write_all(&chunk).and_then(|()| decoder.flush()) {
            decode_error = Some(error.to_string());
            break;
        }
        let text = String::from_utf8_lossy(&std::mem::take(decoder.get_mut())).into_owned();
        kinds.extend(reader.push(&text).into_iter().map(|(kind, _)| kind));
    }

    // Shutdown ends the stream, with a complete gzip trailer.
    t.engine.closing().cancel();
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(chunk)) = body.next().await {
            let _ = decoder.write_all(&chunk);
        }
    })
    .await;
    let finished = decoder.try_finish();
    // Stopped before asserting (see the test above).
    t.engine.shutdown().await;

    assert_eq!(encoding.as_deref(), Some("gzip"));
    assert_eq!(decode_error, None);
    assert!(kinds.len() >= 4, "events decoded: {kinds:?}");
    assert_eq!(kinds[0], "snapshot");
    assert!(kinds[1..].iter().all(|k| k == "parts"), "{kinds:?}");
    assert!(ended.is_ok(), "the feed did not end on shutdown");
    assert!(finished.is_ok(), "not a complete gzip stream: {finished:?}");
}

/// The notebook page is rendered from the feed's latest snapshot and carries that snapshot's JSON
/// for the browser to hydrate from: its first paint shows the pipeline's real state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_rendered_from_the_latest_snapshot_and_carries_it() {
    let t = start_engine().await;
    let served = common::serve_page(&t).await;
    common::eventually("a sampled snapshot", Duration::from_secs(30), || async {
        let snapshot: Snapshot =
            serde_json::from_str(t.engine.feed().borrow().snapshot_json()).ok()?;
        (snapshot.pipeline.kafka.state == app::api::StageState::Running).then_some(())
    })
    .await;

    let html = client()
        .get(format!("{}/", served.base))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("text");
    let open = r#"<script type="application/json" id="pipebook-snapshot">"#;
    let start = html.find(open).expect("the page carries its snapshot") + open.len();
    let json = &html[start..start + html[start..].find("</script>").expect("closed")];
    assert!(
        !json.contains('<'),
        "a '<' in the data could close the element"
    );
    let embedded: Snapshot = serde_json::from_str(json).expect("the embedded JSON is a Snapshot");
    assert_eq!(embedded.pipeline.kafka.state, app::api::StageState::Running);
    // The cells were rendered from it: the cluster badge names the running broker.
    let badge = format!(
        "Kafka embedded · {} · running",
        embedded.pipeline.kafka.bootstrap_servers
    );
    assert!(html.contains(&badge), "badge {badge:?} not in the page");
    assert!(!html.contains("connecting…"));
}
