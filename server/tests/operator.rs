//! The operator's views against the real embedded broker: lag in records and seconds with its
//! history, offset resets (dry run, execution, refusal while the group is active), and
//! `/metrics`.

mod common;

use std::time::Duration;

use app::api::TOPIC_REVIEWS;
use app::ops::{GroupLagHistory, ResetOutcome};
use common::{eventually, review_lines, sampled, serve, start_engine};
use pipebook::pipeline::Engine;
use rdkafka::producer::FutureRecord;
use serde_json::{Value, json};

/// Writes `n` reviews to `reviews`, record `i` to partition `i % 3` stamped `base_ms + i s`.
async fn produce_stamped(engine: &Engine, n: usize, base_ms: i64) {
    let producer = engine.kafka().reliable_producer().expect("producer");
    for (i, line) in review_lines(7, n).iter().enumerate() {
        let key = format!("k{i}");
        let record = FutureRecord::to(TOPIC_REVIEWS)
            .partition(i32::try_from(i % 3).expect("small"))
            .key(&key)
            .payload(line)
            .timestamp(base_ms + i64::try_from(i).expect("small") * 1000);
        producer
            .send(record, Duration::from_secs(30))
            .await
            .expect("acknowledged");
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_in_records_and_seconds_with_its_history_and_metrics() {
    let t = start_engine().await;
    let engine = t.engine.clone();
    let served = serve(engine.clone()).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", served.base);

    // 90 reviews stamped two minutes ago and after, one a second.
    let base = now_ms() - 120_000;
    produce_stamped(&engine, 90, base).await;
    // A group that has read nothing yet: it starts at the oldest record.
    engine
        .inspector()
        .registry()
        .declare("lag-g", &[TOPIC_REVIEWS]);

    let behind = eventually(
        "the group sampled behind",
        Duration::from_secs(30),
        || async {
            sampled(&engine, "lag-g").filter(|g| g.lag.records == 90 && g.lag.seconds > 0.0)
        },
    )
    .await;
    let history: GroupLagHistory = http
        .get(url("/api/kafka/groups/lag-g/lag"))
        .send()
        .await
        .expect("lag")
        .json()
        .await
        .expect("json");
    assert_eq!(history.partitions.len(), 3);
    // The oldest unread record is partition 0's first, stamped `base`: the group is as far
    // behind as that record is old at the moment of the sample.
    let p0 = &history.partitions[0];
    assert_eq!((p0.partition, p0.lag), (0, 30));
    let expected = (history.at - base) as f64 / 1000.0;
    let p0_seconds = p0.lag_seconds.expect("partition 0's seconds were read");
    assert!(
        (p0_seconds - expected).abs() <= 0.1,
        "{p0_seconds} vs {expected}"
    );
    assert!((history.now.seconds - expected).abs() <= 0.1);
    // Partition 1's first record is a second younger.
    let p1_seconds = history.partitions[1].lag_seconds.expect("read");
    assert!((p1_seconds - (expected - 1.0)).abs() <= 0.1);
    assert!(
        behind
            .partitions
            .iter()
            .all(|p| p.lag == 30 && p.lag_seconds.is_some_and(|s| s > 0.0))
    );
    assert_eq!(behind.lag.catch_up_secs, None, "nothing is consuming");

    // The group catches up: a consumer in it reads everything and commits.
    engine
        .start_stage("sentiment", json!({"group": "lag-g", "workers": 1}))
        .await
        .expect("sentiment starts");
    let caught_up = eventually(
        "the group sampled caught up",
        Duration::from_secs(60),
        || async { sampled(&engine, "lag-g").filter(|g| g.lag.records == 0) },
    )
    .await;
    assert_eq!(caught_up.lag.seconds, 0.0);
    assert!(
        caught_up
            .partitions
            .iter()
            .all(|p| p.lag_seconds == Some(0.0))
    );
    assert_eq!(caught_up.lag.catch_up_secs, Some(0.0));

    // The server kept the history: what a reloaded page reads.
    let history: GroupLagHistory = http
        .get(url("/api/kafka/groups/lag-g/lag"))
        .send()
        .await
        .expect("lag")
        .json()
        .await
        .expect("json");
    let points = &history.partitions[0].history;
    assert!(
        points
            .iter()
            .any(|p| p.lag == 30 && p.lag_seconds.is_some_and(|s| s > 0.0)),
        "{points:?}"
    );
    assert_eq!(
        points.last().map(|p| (p.lag, p.lag_seconds)),
        Some((0, Some(0.0)))
    );
    assert!(points.windows(2).all(|w| w[0].at < w[1].at));
    let unknown = http
        .get(url("/api/kafka/groups/nobody/lag"))
        .send()
        .await
        .expect("lag");
    assert_eq!(unknown.status(), 404);

    // /metrics: valid text format, the same counters as the API, the same lag as the sample.
    engine.stop_stage("sentiment").await.expect("stops");
    let status = engine.pipeline_status();
    let response = http.get(url("/metrics")).send().await.expect("metrics");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        pipebook::metrics::CONTENT_TYPE
    );
    let text = response.text().await.expect("text");
    let samples = pipebook::metrics::parse(&text).expect("Prometheus text format");
    let value =
        |name: &str, labels: &[(&str, &str)]| pipebook::metrics::value(&samples, name, labels);
    let sentiment = status.stage("sentiment").expect("sentiment stage");
    assert!(sentiment.counters["consumed"] >= 90);
    for (name, count) in &sentiment.counters {
        let exported = value(
            "pipebook_stage_events_total",
            &[("stage", "sentiment"), ("counter", name)],
        )
        .or_else(|| {
            value(
                "pipebook_stage_gauge",
                &[("stage", "sentiment"), ("name", name)],
            )
        });
        assert_eq!(exported, Some(*count as f64), "{name}");
    }
    assert_eq!(
        value(
            "pipebook_stage_state",
            &[("stage", "sentiment"), ("state", "stopped")]
        ),
        Some(1.0)
    );
    assert_eq!(value("pipebook_broker_up", &[]), Some(1.0));
    let snapshot = engine.subscribe().borrow().clone();
    let group = snapshot
        .groups
        .iter()
        .find(|g| g.group == "lag-g")
        .expect("sampled");
    for p in &group.partitions {
        let partition = p.partition.to_string();
        let labels = [
            ("group", "lag-g"),
            ("topic", "reviews"),
            ("partition", partition.as_str()),
        ];
        // The scrape and the snapshot read may straddle a sample; the group no longer moves.
        assert_eq!(
            value("pipebook_consumer_group_lag", &labels),
            Some(p.lag as f64)
        );
        assert_eq!(
            value("pipebook_consumer_group_lag_seconds", &labels),
            p.lag_seconds
        );
    }
}

async fn reset(http: &reqwest::Client, base: &str, group: &str, body: Value) -> (u16, Value) {
    let response = http
        .post(format!("{base}/api/kafka/groups/{group}/reset"))
        .json(&body)
        .send()
        .await
        .expect("reset");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

fn outcome(body: Value) -> ResetOutcome {
    serde_json::from_value(body).expect("reset outcome")
}

fn afters(outcome: &ResetOutcome) -> Vec<i64> {
    outcome.partitions.iter().map(|p| p.after).collect()
}

/// A dry run of `body` on group "g" (it commits nothing), then the same reset executed: the
/// execution's outcome is the dry run's, partition by partition. Returns the execution's.
async fn dry_run_then_execute(
    engine: &Engine,
    http: &reqwest::Client,
    base: &str,
    body: Value,
) -> ResetOutcome {
    let before = committed(engine, "g").await;
    let mut dry_body = body.clone();
    dry_body["dry_run"] = true.into();
    let (status, answer) = reset(http, base, "g", dry_body).await;
    assert_eq!(status, 200, "dry run {body}: {answer}");
    let dry = outcome(answer);
    assert!(dry.dry_run && !dry.executed, "{body}");
    assert_eq!(
        committed(engine, "g").await,
        before,
        "dry run {body} committed"
    );

    let mut run_body = body.clone();
    run_body["dry_run"] = false.into();
    let (status, answer) = reset(http, base, "g", run_body).await;
    assert_eq!(status, 200, "execute {body}: {answer}");
    let done = outcome(answer);
    assert!(done.executed, "{body}");
    assert_eq!(done.partitions, dry.partitions, "{body}");
    assert_eq!(
        (done.reread, done.skipped),
        (dry.reread, dry.skipped),
        "{body}"
    );
    let committed_now = committed(engine, "g").await;
    let expected: Vec<Option<i64>> = before
        .iter()
        .enumerate()
        .map(|(partition, was)| {
            done.partitions
                .iter()
                .find(|p| p.partition == partition as i32)
                .map_or(*was, |p| Some(p.after))
        })
        .collect();
    assert_eq!(committed_now, expected, "{body}");
    done
}

async fn committed(engine: &Engine, group: &str) -> Vec<Option<i64>> {
    let mut out = Vec::new();
    for partition in 0..3 {
        out.push(
            engine
                .inspector()
                .committed(group, TOPIC_REVIEWS, partition)
                .await
                .expect("committed"),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_reset_to_every_target_with_a_dry_run_and_never_under_a_live_group() {
    let t = start_engine().await;
    let engine = t.engine.clone();
    let served = serve(engine.clone()).await;
    let http = reqwest::Client::new();
    let base = served.base.clone();

    // 100 reviews, record i stamped base + i s in partition i % 3 (34, 33, 33).
    let stamped_from = now_ms() - 500_000;
    produce_stamped(&engine, 100, stamped_from).await;
    engine
        .start_stage("sentiment", json!({"group": "g", "workers": 1}))
        .await
        .expect("sentiment starts");
    eventually("group g caught up", Duration::from_secs(60), || async {
        common::group_lag(&engine, "g")
            .await
            .filter(|lag| *lag == 0)
    })
    .await;
    assert_eq!(
        committed(&engine, "g").await,
        [Some(34), Some(33), Some(33)]
    );

    // Executing is refused while the group has a member; a dry run is not.
    let (status, body) = reset(
        &http,
        &base,
        "g",
        json!({"to": "earliest", "dry_run": false}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("active member") && message.contains("inactive"),
        "{message}"
    );
    let (status, _) = reset(
        &http,
        &base,
        "g",
        json!({"to": "earliest", "dry_run": true}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        committed(&engine, "g").await,
        [Some(34), Some(33), Some(33)]
    );

    engine.stop_stage("sentiment").await.expect("stops");
    eventually(
        "group g without members",
        Duration::from_secs(10),
        || async {
            let groups = engine.groups().await.ok()?;
            groups
                .iter()
                .find(|g| g.group == "g" && g.members.is_empty())
                .map(|_| ())
        },
    )
    .await;

    // Earliest: the dry run shows all 100 to re-read and commits nothing.
    let (status, body) = reset(&http, &base, "g", json!({"to": "earliest"})).await;
    assert_eq!(status, 200, "{body}");
    let dry = outcome(body);
    assert!(dry.dry_run && !dry.executed);
    assert_eq!((dry.reread, dry.skipped), (100, 0));
    assert_eq!(
        dry.partitions.iter().map(|p| p.before).collect::<Vec<_>>(),
        [Some(34), Some(33), Some(33)]
    );
    assert_eq!(afters(&dry), [0, 0, 0]);
    assert_eq!(
        committed(&engine, "g").await,
        [Some(34), Some(33), Some(33)]
    );
    // Executed: exactly what the dry run said.
    let (status, body) = reset(
        &http,
        &base,
        "g",
        json!({"to": "earliest", "dry_run": false}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let done = outcome(body);
    assert!(done.executed);
    assert_eq!(done.partitions, dry.partitions);
    assert_eq!(committed(&engine, "g").await, [Some(0), Some(0), Some(0)]);

    // By timestamp: the first record at or after base + 50 s, i.e. records 50..100 left to read.
    let at = stamped_from + 50_000;
    let timed = dry_run_then_execute(
        &engine,
        &http,
        &base,
        json!({"to": "timestamp", "timestamp_ms": at}),
    )
    .await;
    // Partition p holds records p, p + 3, …: 17, 17 and 16 of them are older than 50 s.
    assert_eq!(afters(&timed), [17, 17, 16]);
    assert_eq!((timed.reread, timed.skipped), (0, 50));
    assert_eq!(
        committed(&engine, "g").await,
        [Some(17), Some(17), Some(16)]
    );

    // Shift back by 10 on every partition: 30 records to read again.
    let shifted =
        dry_run_then_execute(&engine, &http, &base, json!({"to": "shift", "shift": -10})).await;
    assert_eq!(afters(&shifted), [7, 7, 6]);
    assert_eq!(shifted.reread, 30);
    // One partition to a given offset (clamped to its log), the others untouched.
    let pinned = dry_run_then_execute(
        &engine,
        &http,
        &base,
        json!({"to": "offset", "offset": 1000, "partitions": [2]}),
    )
    .await;
    assert_eq!(afters(&pinned), [33]);
    assert_eq!(committed(&engine, "g").await, [Some(7), Some(7), Some(33)]);
    // And inside the log, on every partition: back to 5 on each.
    let middle =
        dry_run_then_execute(&engine, &http, &base, json!({"to": "offset", "offset": 5})).await;
    assert_eq!(afters(&middle), [5, 5, 5]);
    assert_eq!((middle.reread, middle.skipped), (2 + 2 + 28, 0));
    assert_eq!(committed(&engine, "g").await, [Some(5), Some(5), Some(5)]);
    // Latest: from 5 on every partition to the end, 29 + 28 + 28 skipped.
    let latest = dry_run_then_execute(&engine, &http, &base, json!({"to": "latest"})).await;
    assert_eq!((latest.reread, latest.skipped), (0, 29 + 28 + 28));
    assert_eq!(
        committed(&engine, "g").await,
        [Some(34), Some(33), Some(33)]
    );

    // Bad values: 400 naming the field; an unknown group: 404.
    for (body, field) in [
        (json!({"to": "offset"}), "offset"),
        (json!({"to": "sideways"}), "to"),
        (json!({"to": "earliest", "shift": 3}), "shift"),
        (json!({"to": "earliest", "partitions": [7]}), "partitions"),
        (
            json!({"to": "timestamp", "timestamp_ms": "yesterday"}),
            "timestamp_ms",
        ),
        (json!({"to": "earliest", "force": true}), "force"),
        (json!({}), "to"),
    ] {
        let (status, answer) = reset(&http, &base, "g", body.clone()).await;
        assert_eq!(status, 400, "{body} → {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        // A field of the wrong kind or value leads the message; a missing or unknown one is
        // named in serde's words.
        let named = message.starts_with(field) || message.contains(&format!("`{field}`"));
        assert!(named, "{body} → {message}");
    }
    let (status, _) = reset(&http, &base, "nobody", json!({"to": "earliest"})).await;
    assert_eq!(status, 404);
    assert_eq!(
        committed(&engine, "g").await,
        [Some(34), Some(33), Some(33)]
    );
}

/// The sampler's cost, for docs/benchmarks.md (nothing asserted on time):
/// `cargo test -p server --test operator -- --ignored --nocapture sampler_cost`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn sampler_cost() {
    use app::ops::{ResetRequest, ResetTo};
    use pipebook::kafka::lag::LagBook;
    use std::time::Instant;

    let t = start_engine().await;
    let engine = t.engine.clone();
    produce_stamped(&engine, 300, now_ms() - 600_000).await;
    for groups in [10usize, 30] {
        for g in 0..groups {
            let name = format!("cost-{g}");
            engine
                .inspector()
                .registry()
                .declare(&name, &[TOPIC_REVIEWS]);
            // Every group at its own position: a timestamp read each.
            let request = ResetRequest {
                to: ResetTo::Offset,
                offset: Some(i64::try_from(g).expect("small")),
                timestamp_ms: None,
                shift: None,
                partitions: None,
                dry_run: false,
            };
            pipebook::kafka::reset::reset(engine.kafka(), engine.inspector(), &name, request)
                .await
                .expect("positioned");
        }
        let book = LagBook::default();
        let mut samples = Vec::new();
        for round in 0..6 {
            let started = Instant::now();
            let topics = engine.inspector().topics().await.expect("topics");
            let mut listed = engine.inspector().groups(&topics).await.expect("groups");
            let offsets = started.elapsed();
            let cost = book
                .observe(engine.inspector(), &topics, &mut listed, now_ms())
                .await;
            samples.push((round, offsets, cost));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for (round, offsets, cost) in samples {
            println!(
                "groups={groups} round={round} partitions={} offsets+watermarks={:?} timestamps_read={} read={:?} record={:?}",
                cost.partitions, offsets, cost.timestamps_read, cost.read, cost.record
            );
        }
    }

    // CPU of recording alone, and memory of a full history, with synthetic samples.
    for groups in [10usize, 60] {
        let book = LagBook::default();
        let lows = std::collections::HashMap::new();
        let mut listed: Vec<app::api::GroupInfo> = (0..groups)
            .map(|g| app::api::GroupInfo {
                group: format!("g{g}"),
                state: "Empty".into(),
                members: vec![],
                partitions: (0..3)
                    .map(|p| app::api::GroupPartition {
                        topic: "reviews".into(),
                        partition: p,
                        committed: Some(0),
                        high: 100,
                        lag: 100,
                        lag_seconds: None,
                    })
                    .collect(),
                lag: Default::default(),
                state_history: Vec::new(),
            })
            .collect();
        // 75 minutes at one sample a second fills both rings.
        let seconds = 75 * 60;
        let started = Instant::now();
        for s in 0..seconds {
            book.record(
                s * 1000,
                &mut listed,
                &lows,
                std::collections::HashMap::new(),
            );
        }
        let per_sample = started.elapsed() / u32::try_from(seconds).expect("small");
        println!(
            "synthetic groups={groups} partitions={} record per sample={per_sample:?} history bytes={} (per group {})",
            groups * 3,
            book.heap_bytes(),
            book.heap_bytes() / groups
        );
    }
}

/// Writes `values` to `reviews` (record i: key `k{i}`, partition i % 3, stamped `base_ms + i s`,
/// header `kind` = `even`/`odd`).
async fn produce_values(engine: &Engine, values: &[String], base_ms: i64, first: usize) {
    use rdkafka::message::{Header, OwnedHeaders};
    let producer = engine.kafka().reliable_producer().expect("producer");
    for (n, value) in values.iter().enumerate() {
        let i = first + n;
        let key = format!("k{i}");
        let kind = if i.is_multiple_of(2) { "even" } else { "odd" };
        let record = FutureRecord::to(TOPIC_REVIEWS)
            .partition(i32::try_from(i % 3).expect("small"))
            .key(&key)
            .payload(value)
            .headers(OwnedHeaders::new().insert(Header {
                key: "kind",
                value: Some(kind),
            }))
            .timestamp(base_ms + i64::try_from(i).expect("small") * 1000);
        producer
            .send(record, Duration::from_secs(30))
            .await
            .expect("acknowledged");
    }
}

/// An open tail: its SSE body, read event by event.
struct Tail {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>>,
    buffer: String,
}

impl Tail {
    async fn open(http: &reqwest::Client, base: &str, query: &str) -> Result<Self, (u16, Value)> {
        let response = http
            .get(format!("{base}/api/kafka/topics/reviews/tail?{query}"))
            .send()
            .await
            .expect("tail");
        if response.status() != 200 {
            let status = response.status().as_u16();
            return Err((status, response.json().await.expect("json")));
        }
        Ok(Self {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        })
    }

    /// The next `record` event (waits up to 30 s).
    async fn next(&mut self) -> app::api::Message {
        use futures::StreamExt as _;
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let event: String = self.buffer.drain(..end + 2).collect();
                    if event.lines().any(|l| l == "event: record") {
                        let data = event
                            .lines()
                            .find_map(|l| l.strip_prefix("data: "))
                            .expect("data line");
                        return serde_json::from_str(data).expect("a record");
                    }
                    continue;
                }
                let chunk = self.body.next().await.expect("stream open").expect("bytes");
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .expect("a record within 30 s")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_streams_exactly_the_matching_records_and_is_bounded() {
    let t = start_engine().await;
    let engine = t.engine.clone();
    let served = serve(engine.clone()).await;
    let http = reqwest::Client::new();
    let base = served.base.clone();

    // 30 known records: every fifth holds "needle".
    let stamped_from = now_ms() - 100_000;
    let values: Vec<String> = (0..30)
        .map(|i| {
            if i % 5 == 0 {
                format!("a needle {i}")
            } else {
                format!("hay {i}")
            }
        })
        .collect();
    produce_values(&engine, &values, stamped_from, 0).await;
    let from = format!("from_ms={stamped_from}");

    // Each filter: exactly its records of the known set, then — nothing else before — a new
    // matching record written afterwards (which later cases' known sets include).
    let until = format!("until_ms={}", stamped_from + 2_000);
    let cases = [
        ("header=kind%3Deven&contains=needle", vec![0, 10, 20]),
        ("contains=needle", vec![0, 5, 10, 15, 20, 25, 30]),
        ("key=k7", vec![7]),
        (until.as_str(), vec![0, 1, 2]),
    ];
    let mut next = 30;
    for (filter, expected) in cases {
        let mut tail = Tail::open(&http, &base, &format!("{from}&{filter}&rate=200"))
            .await
            .expect("tail opens");
        let mut got = Vec::new();
        for _ in 0..expected.len() {
            let record = tail.next().await;
            got.push(
                record.key.expect("key")[1..]
                    .parse::<usize>()
                    .expect("k<i>"),
            );
        }
        got.sort_unstable();
        assert_eq!(got, expected, "{filter}");
        if filter.starts_with("until_ms") {
            continue;
        }
        // The sentinel matches every other filter: key k7 needs its own key.
        let sentinel = if filter == "key=k7" { 7 } else { next };
        let value = format!("a needle {sentinel} again");
        if filter == "key=k7" {
            produce_values(&engine, &[value], stamped_from, 7).await;
        } else {
            produce_values(&engine, &[value], stamped_from, next).await;
            next += 2;
        }
        let record = tail.next().await;
        assert_eq!(
            record.key.as_deref(),
            Some(&*format!("k{sentinel}")),
            "{filter}"
        );
        assert!(record.value.ends_with("again"));
        assert_eq!(
            record.headers.get("kind").map(String::as_str),
            Some(if sentinel.is_multiple_of(2) {
                "even"
            } else {
                "odd"
            })
        );
    }

    // Bad values: 400 naming the field; an unknown topic: 404.
    let (status, body) = Tail::open(&http, &base, "rate=0")
        .await
        .err()
        .expect("refused");
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("rate"),
        "{body}"
    );
    let (status, _) = Tail::open(&http, &base, "colour=red")
        .await
        .err()
        .expect("refused");
    assert_eq!(status, 400);
    let missing = http
        .get(format!("{base}/api/kafka/topics/no.such.topic/tail"))
        .send()
        .await
        .expect("tail");
    assert_eq!(missing.status(), 404);

    // The check (what a browser asks after its EventSource was refused) answers as the tail
    // would, without opening one.
    let check = |path: String| {
        let http = http.clone();
        let url = format!("{base}/api/kafka/topics/{path}");
        async move {
            let response = http.get(url).send().await.expect("check");
            let status = response.status().as_u16();
            (status, response.text().await.expect("body"))
        }
    };
    let far = now_ms() + 2 * 24 * 3600 * 1000;
    let (status, body) = check(format!("reviews/tail/check?from_ms={far}")).await;
    assert_eq!(status, 400);
    let error: Value = serde_json::from_str(&body).expect("json");
    assert!(
        error["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("from_ms: "),
        "{body}"
    );
    assert_eq!(check("no.such.topic/tail/check".into()).await.0, 404);
    assert_eq!(
        check(format!("reviews/tail/check?{from}&key=k7")).await,
        (204, String::new())
    );

    // At most MAX_TAILS at once: one more is a 429; closing one makes room. (A closed tail's
    // place is freed when the server next writes to it — a record or the 5 s keep-alive — so
    // the tails above may hold theirs a moment longer.)
    let mut open = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while open.len() < pipebook::kafka::tail::MAX_TAILS {
        match Tail::open(&http, &base, "").await {
            Ok(tail) => open.push(tail),
            Err((429, _)) => {
                assert!(tokio::time::Instant::now() < deadline, "tails never freed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    let (status, body) = Tail::open(&http, &base, "")
        .await
        .err()
        .expect("past the bound");
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("live tails")
    );
    let (status, body) = check("reviews/tail/check".into()).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("live tails"), "{body}");
    open.pop();
    eventually(
        "a closed tail frees its place",
        Duration::from_secs(30),
        || async { Tail::open(&http, &base, "").await.ok() },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topics_schema_is_inferred_from_its_records_and_dead_letters_are_grouped() {
    use app::api::TOPIC_DLQ;
    use app::ops::TopicSchema;
    use pipebook::records::DeadLetter;

    let t = start_engine().await;
    let engine = t.engine.clone();
    let served = serve(engine.clone()).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", served.base);

    produce_stamped(&engine, 30, now_ms()).await;
    let schema: TopicSchema = http
        .get(url("/api/kafka/topics/reviews/schema?sample=30"))
        .send()
        .await
        .expect("schema")
        .json()
        .await
        .expect("json");
    assert_eq!((schema.sampled, schema.not_objects), (30, 0));
    let field = |path: &str| {
        schema
            .fields
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("{path} in {:?}", schema.fields))
    };
    // Every generated review has these, with one type each.
    for (path, kind) in [
        ("review_id", "string"),
        ("business_id", "string"),
        ("text", "string"),
    ] {
        let f = field(path);
        assert_eq!((f.present, f.nulls, f.presence), (30, 0, 1.0), "{path}");
        assert_eq!(f.types, [(kind.to_owned(), 30)], "{path}");
        assert!(!f.example.is_empty());
    }
    assert_eq!(field("stars").present, 30);
    assert!(schema.dead_letters.is_empty(), "only the DLQ's are grouped");

    // Three dead letters, two of them breaking the same rule with different values.
    let producer = engine.kafka().reliable_producer().expect("producer");
    for (reason, raw) in [
        (
            "stars must be a whole number 1..=5, got 9",
            "{\"stars\": 9}",
        ),
        (
            "stars must be a whole number 1..=5, got 0",
            "{\"stars\": 0}",
        ),
        ("review_id is empty", "{\"review_id\": \"\"}"),
    ] {
        let letter = DeadLetter::new("producer", reason, raw.as_bytes(), None);
        let json = letter.to_json();
        producer
            .send(
                FutureRecord::<(), str>::to(TOPIC_DLQ).payload(&json),
                Duration::from_secs(30),
            )
            .await
            .expect("acknowledged");
    }
    let dlq: TopicSchema = http
        .get(url("/api/kafka/topics/reviews.dlq/schema"))
        .send()
        .await
        .expect("schema")
        .json()
        .await
        .expect("json");
    assert_eq!(dlq.sampled, 3);
    let reasons: Vec<(&str, u32)> = dlq
        .dead_letters
        .iter()
        .map(|r| (r.reason.as_str(), r.count))
        .collect();
    assert_eq!(
        reasons,
        [
            ("stars must be a whole number 1..=5", 2),
            ("review_id is empty", 1)
        ]
    );

    // Bad requests name what is wrong; an unknown topic is not found.
    let bad = http
        .get(url("/api/kafka/topics/reviews/schema?sample=0"))
        .send()
        .await
        .expect("answer");
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.expect("body").contains("sample"));
    let missing = http
        .get(url("/api/kafka/topics/no-such-topic/schema"))
        .send()
        .await
        .expect("answer");
    assert_eq!(missing.status(), 404);
}
