//! Datasets, not paths, and sockets that stay on the machine: a learner's (or an attacker's)
//! requests against a real server — the engine with its embedded broker, behind the HTTP router
//! on a real socket — and what ends up in the topics and the datasets folder.

mod common;

use std::time::Duration;

use app::api::{DatasetInfo, DatasetList, TOPIC_DLQ, TOPIC_REVIEWS};
use common::{
    Served, counter, eventually, read_all, review_lines, serve, start_engine, start_engine_with,
};
use pipebook::pipeline::Engine;
use pipebook::reach::NetworkReach;
use serde_json::{Value, json};

const NDJSON: &str = "application/x-ndjson";

/// A POST with a JSON body; the status and the JSON answer.
async fn post(served: &Served, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", served.base))
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

/// Every entry of the datasets folder, hidden ones (uploads in progress) included.
fn folder_entries(engine: &Engine) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(engine.datasets().dir())
        .expect("read the datasets folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn stage_state(engine: &Engine, id: &str) -> app::api::StageState {
    engine
        .pipeline_status()
        .stage(id)
        .map(|s| s.state)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_outside_the_datasets_folder_are_refused_and_nothing_of_them_reaches_a_topic() {
    let t = start_engine().await;
    let engine = &t.engine;
    let served = serve(engine.clone()).await;
    let folder = engine.datasets().dir().to_owned();
    // A file beside the datasets folder, and links in the folder that leave it.
    let outside = t.dir.path().join("secret.jsonl");
    std::fs::write(&outside, "{\"review_id\":\"TOP-SECRET-7f3a\"}\n").expect("write");
    std::os::unix::fs::symlink("/etc/passwd", folder.join("passwd.jsonl")).expect("link");
    std::os::unix::fs::symlink(&outside, folder.join("secret.jsonl")).expect("link");
    std::os::unix::fs::symlink("../secret.jsonl", folder.join("relative.jsonl")).expect("link");

    // The producer runs and follows the streamer, so anything the streamer served would land.
    let (status, _) = post(&served, "/api/stages/producer/start", json!({})).await;
    assert_eq!(status, 200);
    let absolute = outside.display().to_string();
    for source in [
        "/etc/passwd",
        "../../etc/passwd",
        "../../../../../../etc/passwd",
        "/proc/self/environ",
        absolute.as_str(),
        "passwd.jsonl",
        "secret.jsonl",
        "relative.jsonl",
        "../secret.jsonl",
        "..",
        "",
    ] {
        let (status, body) = post(
            &served,
            "/api/stages/streamer/start",
            json!({"source": source, "rate": 0}),
        )
        .await;
        assert_eq!(status, 400, "{source:?}: {body}");
        assert!(
            error_of(&body).starts_with("source: "),
            "{source:?}: {body}"
        );
        assert_eq!(
            stage_state(engine, "streamer"),
            app::api::StageState::Stopped
        );
    }
    assert_eq!(counter(engine, "streamer", "sent"), 0);

    // A real dataset streams, so the topics are not trivially empty when searched: 300 reviews
    // and 2 malformed lines, which the producer dead-letters with their raw text.
    let mut lines = review_lines(31, 300);
    lines.insert(10, "{not json".to_owned());
    lines.insert(200, "root-like line: not a review".to_owned());
    let file = format!("{}\n", lines.join("\n"));
    std::fs::write(folder.join("mixed.jsonl"), file).expect("write");
    let (status, body) = post(
        &served,
        "/api/stages/streamer/start",
        json!({"source": "mixed.jsonl", "rate": 0, "chunk_size": 100}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    eventually(
        "300 acked, 2 dead-lettered",
        Duration::from_secs(60),
        || async {
            (counter(engine, "producer", "acked") >= 300
                && counter(engine, "producer", "dlq_acked") >= 2)
                .then_some(())
        },
    )
    .await;

    // Read every topic to its end: not one line of the refused files is in a key or a value.
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let forbidden: Vec<&str> = passwd
        .lines()
        .map(str::trim)
        .filter(|line| line.len() >= 8)
        .chain(["TOP-SECRET-7f3a"])
        .collect();
    assert!(forbidden.iter().any(|l| l.starts_with("root:")), "{passwd}");
    let mut read = 0;
    for topic in engine.topics().await.expect("topics") {
        for message in read_all(engine, &topic.name).await {
            read += 1;
            let text = format!("{:?} {} {:?}", message.key, message.value, message.headers);
            for line in &forbidden {
                assert!(!text.contains(line), "{line:?} leaked into {}", topic.name);
            }
        }
    }
    assert!(read >= 302, "read {read} records");
    assert_eq!(read_all(engine, TOPIC_DLQ).await.len(), 2);
    assert_eq!(read_all(engine, TOPIC_REVIEWS).await.len(), 300);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_limited_checked_and_then_streams_end_to_end() {
    const LIMIT: u64 = 64 * 1024;
    let t = start_engine_with(|settings| settings.max_upload_bytes = LIMIT).await;
    let engine = &t.engine;
    let served = serve(engine.clone()).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", served.base);
    let put = |name: &str, content_type: &str, body: reqwest::Body| {
        http.put(url(&format!("/api/datasets/{name}")))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    // The empty folder was given the sample dataset at start.
    let before = folder_entries(engine);
    assert_eq!(before, ["sample-yelp.jsonl"]);

    // Over the limit, announced (Content-Length) or streamed (chunked, no length): 413 naming
    // the limit, and the folder is as it was.
    let too_big = vec![b'x'; 2 * LIMIT as usize];
    let response = put("big.jsonl", NDJSON, too_big.into()).await.expect("put");
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.expect("json");
    assert!(error_of(&body).contains("65536 bytes (64 KiB)"), "{body}");
    assert!(
        error_of(&body).contains("PIPEBOOK_MAX_UPLOAD_BYTES"),
        "{body}"
    );
    assert_eq!(folder_entries(engine), before);

    let mut chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(b"{}\n".to_vec())];
    chunks.extend((0..16).map(|_| Ok(vec![b' '; 4096])));
    let streamed = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let response = put("big.jsonl", NDJSON, streamed).await.expect("put");
    assert_eq!(response.status(), 413);
    assert_eq!(
        folder_entries(engine),
        before,
        "nothing half-written is left"
    );

    // Wrong content type, bad names, bad content: refused, nothing written.
    let response = put("a.jsonl", "text/plain", "{}\n".into())
        .await
        .expect("put");
    assert_eq!(response.status(), 415);
    for name in [
        "..%2F..%2Fetc%2Fpasswd.jsonl",
        ".hidden.jsonl",
        "reviews.csv",
        "a%20b.jsonl",
    ] {
        let response = put(name, NDJSON, "{}\n".into()).await.expect("put");
        assert_eq!(response.status(), 400, "{name}");
        let body: Value = response.json().await.expect("json");
        assert!(error_of(&body).starts_with("name: "), "{name}: {body}");
    }
    let response = put("csv.jsonl", NDJSON, "stars,text\n5,great\n".into())
        .await
        .expect("put");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert!(error_of(&body).starts_with("csv.jsonl line 1: "), "{body}");
    assert_eq!(folder_entries(engine), before);

    // A good upload: 201 with its size and line count, listed, and streamed at once.
    let lines = review_lines(47, 80);
    let file = format!("{}\n", lines.join("\n"));
    let response = put("yelp-mine.jsonl", NDJSON, file.clone().into())
        .await
        .expect("put");
    assert_eq!(response.status(), 201);
    let info: DatasetInfo = response.json().await.expect("dataset info");
    assert_eq!(
        info,
        DatasetInfo {
            name: "yelp-mine.jsonl".into(),
            bytes: file.len() as u64,
            lines: Some(80),
        }
    );
    let list: DatasetList = http
        .get(url("/api/datasets"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list.max_upload_bytes, LIMIT);
    assert!(list.datasets.contains(&info), "{list:?}");
    // Beside the files, the kinds of record the pipeline knows, each with its fields.
    let kinds: Vec<(&str, &str, Option<&str>)> = list
        .kinds
        .iter()
        .map(|k| {
            (
                k.name.as_str(),
                k.key_field.as_str(),
                k.text_field.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("yelp", "business_id", Some("text")),
            ("tweets", "user", Some("text")),
            ("companies", "company_id", None)
        ]
    );
    let sample = list
        .datasets
        .iter()
        .find(|d| d.name == "sample-yelp.jsonl")
        .expect("sample listed");
    assert_eq!(sample.lines, Some(2_000));

    let response = put("yelp-mine.jsonl", NDJSON, "{}\n".into())
        .await
        .expect("put");
    assert_eq!(response.status(), 409, "no silent overwrite");

    for (stage, body) in [
        ("streamer", json!({"source": "yelp-mine.jsonl", "rate": 0})),
        ("producer", json!({})),
    ] {
        let (status, answer) = post(&served, &format!("/api/stages/{stage}/start"), body).await;
        assert_eq!(status, 200, "{stage}: {answer}");
    }
    eventually("80 reviews acked", Duration::from_secs(60), || async {
        (counter(engine, "producer", "acked") >= 80).then_some(())
    })
    .await;
    let ids: std::collections::BTreeSet<String> = read_all(engine, TOPIC_REVIEWS)
        .await
        .into_iter()
        .filter_map(|m| serde_json::from_str::<Value>(&m.value).ok())
        .filter_map(|v| v["review_id"].as_str().map(str::to_owned))
        .collect();
    let sent: std::collections::BTreeSet<String> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["review_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids, sent, "exactly the uploaded reviews");

    // Replace on request; delete.
    let response = http
        .put(url("/api/datasets/yelp-mine.jsonl?replace=true"))
        .header("content-type", NDJSON)
        .body("{}\n{}\n")
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), 201);
    let replaced: DatasetInfo = response.json().await.expect("json");
    assert_eq!(replaced.lines, Some(2));
    let deleted = http
        .delete(url("/api/datasets/yelp-mine.jsonl"))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    let again = http
        .delete(url("/api/datasets/yelp-mine.jsonl"))
        .send()
        .await
        .expect("delete");
    assert_eq!(again.status(), 404);
    assert_eq!(folder_entries(engine), before);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_stay_on_loopback_unless_the_operator_allows_the_network() {
    let t = start_engine().await;
    let engine = &t.engine;
    let served = serve(engine.clone()).await;
    assert!(!engine.pipeline_status().network_sockets_allowed);
    // 192.0.2.1 is TEST-NET-1: never this machine's address.
    for listen in ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"] {
        let (status, body) = post(
            &served,
            "/api/stages/streamer/start",
            json!({"listen": listen}),
        )
        .await;
        assert_eq!(status, 400, "{listen}: {body}");
        assert!(error_of(&body).starts_with("listen: "), "{body}");
        assert!(
            error_of(&body).contains("PIPEBOOK_ALLOW_NETWORK_SOCKETS=true"),
            "{body}"
        );
    }
    // The producer reads from the streamer Pipebook runs, and nowhere else.
    for socket in ["127.0.0.1:6379", "192.0.2.1:9"] {
        let (status, body) = post(
            &served,
            "/api/stages/producer/start",
            json!({"socket": socket}),
        )
        .await;
        assert_eq!(status, 400, "{socket}: {body}");
        assert!(error_of(&body).starts_with("socket: "), "{body}");
        assert!(
            error_of(&body).contains("PIPEBOOK_ALLOW_NETWORK_SOCKETS=true"),
            "{body}"
        );
    }
    let (status, body) = post(
        &served,
        "/api/stages/streamer/start",
        json!({"listen": "127.0.0.1:0", "rate": 10}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let streamer = engine
        .streamer_listening()
        .expect("the streamer is listening")
        .to_string();
    let (status, body) = post(
        &served,
        "/api/stages/producer/start",
        json!({"socket": streamer}),
    )
    .await;
    assert_eq!(status, 200, "the streamer's own address: {body}");
    engine.stop_all().await.expect("stop");
    engine.shutdown().await;

    // Allowed by the operator: the checks let any address through (the TEST-NET address gets
    // as far as binding, and fails there: nothing in this test listens beyond loopback).
    let t = start_engine_with(|settings| {
        settings.reach = NetworkReach {
            allow_network: true,
        }
    })
    .await;
    let engine = &t.engine;
    let served = serve(engine.clone()).await;
    let (status, body) = post(
        &served,
        "/api/stages/streamer/start",
        json!({"listen": "192.0.2.1:0"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let failed = eventually("the bind to fail", Duration::from_secs(10), || async {
        engine
            .pipeline_status()
            .stage("streamer")
            .filter(|s| s.state == app::api::StageState::Failed)
            .and_then(|s| s.last_error.clone())
    })
    .await;
    assert!(failed.contains("cannot listen on 192.0.2.1:0"), "{failed}");
    let (status, body) = post(
        &served,
        "/api/stages/producer/start",
        json!({"socket": "192.0.2.1:9"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(engine.pipeline_status().network_sockets_allowed);
    engine.stop_all().await.expect("stop");
    engine.shutdown().await;
}
