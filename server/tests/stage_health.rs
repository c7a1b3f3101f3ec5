//! Per-stage health against the real embedded broker: a running windows stage reports where its
//! loop spends its time, its last checkpoints (duration and size) and its state's size, in its
//! status (the live snapshot) and in `/metrics`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use app::ops::{CHECKPOINTS_KEPT, RATE_POINTS, StageLoad};
use common::{counter, eventually, serve, start_engine, stream_reviews};
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
    let latencies = engine.latencies();
    let text = pipebook::metrics::render(&live, &latencies, &snapshot, true);
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

    // The Grafana dashboard: every metric it queries is in this answer, every gauge name it
    // selects is one a stage exports, and every family exported has a panel.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/grafana/pipebook-dashboard.json"
    );
    let text = std::fs::read_to_string(path).expect("the dashboard file");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    let exported: BTreeSet<&str> = samples.iter().map(|s| s.name.as_str()).collect();
    let mut queried = BTreeSet::new();
    for expr in &exprs {
        for name in metric_names(expr) {
            assert!(
                exported.contains(name.as_str()),
                "the dashboard queries {name}, which /metrics does not export (in {expr})"
            );
            queried.insert(name);
        }
        for gauge in selected_values(expr, "pipebook_stage_gauge", "name") {
            assert!(
                samples
                    .iter()
                    .any(|s| s.name == "pipebook_stage_gauge"
                        && s.labels.get("name") == Some(&gauge)),
                "the dashboard selects stage gauge {gauge:?}, which no stage exports"
            );
        }
    }
    let unpanelled: Vec<&&str> = exported
        .iter()
        .filter(|name| !queried.contains(**name))
        .collect();
    assert!(unpanelled.is_empty(), "no panel for {unpanelled:?}");
    engine.shutdown().await;
}

/// A running consumer stage's input and processing rates are sampled by the server every second
/// into a bounded history that the snapshot carries (what the health panel's sparkline draws,
/// and what a reloaded page gets in its first snapshot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_stage_has_a_history_of_input_and_processing_rates() {
    let t = start_engine().await;
    let engine = t.engine.clone();
    engine
        .start_stage("sentiment", json!({"workers": 1}))
        .await
        .expect("sentiment");
    engine
        .start_stage("producer", json!({}))
        .await
        .expect("producer");
    engine
        .start_stage(
            "streamer",
            json!({"rate": 100, "chunk_size": 20, "seed": 5}),
        )
        .await
        .expect("streamer");
    let rates_of = |stage: &str| {
        engine
            .subscribe()
            .borrow()
            .pipeline
            .stage(stage)
            .and_then(|s| s.rates.clone())
    };
    let rates = eventually(
        "seconds with records arriving and processed",
        Duration::from_secs(90),
        || async {
            let rates = rates_of("sentiment")?;
            let known = |v: &[Option<u32>]| v.iter().flatten().any(|r| *r > 0);
            (rates.input.len() >= 3 && known(&rates.input) && known(&rates.processed))
                .then_some(rates)
        },
    )
    .await;
    assert_eq!(rates.input.len(), rates.processed.len());
    assert!(rates.input.len() <= RATE_POINTS);
    // The series run up to the latest sample.
    assert!(rates.at <= engine.subscribe().borrow().at);
    // `/api/pipeline` carries the same history (at most a sample newer).
    let status = engine.pipeline_status();
    let served = status
        .stage("sentiment")
        .and_then(|s| s.rates.as_ref())
        .expect("served");
    assert!(served.at >= rates.at);
    // Stages not running carry none (their panel is not shown).
    assert_eq!(rates_of("indexer"), None);
    engine.stop_stage("sentiment").await.expect("stops");
    eventually(
        "a stopped stage's rates left out",
        Duration::from_secs(10),
        || async { rates_of("sentiment").is_none().then_some(()) },
    )
    .await;
    engine.shutdown().await;
}

/// `/metrics` served over HTTP and read by an independent parser (`prometheus-parse`, not
/// Pipebook's own): every line is a sample it understands, every stage counter equals the API's,
/// and each latency histogram is well formed (`le` ascending, counts cumulative, `+Inf` equal to
/// `_count`) and counts what its stage counter counts, in seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_histograms_parse_as_prometheus_and_count_what_the_api_counts() {
    use prometheus_parse::{Scrape, Value};
    const REVIEWS: u64 = 300;
    let started = std::time::Instant::now();
    let t = start_engine().await;
    let engine = t.engine.clone();
    let served = serve(engine.clone()).await;
    engine
        .start_stage("sentiment", json!({"workers": 2}))
        .await
        .expect("sentiment");
    engine
        .start_stage("indexer", json!({}))
        .await
        .expect("indexer");
    stream_reviews(&engine, REVIEWS, 23).await;
    // `indexed` is counted after its bulk's time is observed: then every figure is still.
    eventually(
        "every review labelled and indexed",
        Duration::from_secs(120),
        || async {
            (counter(&engine, "sentiment", "produced") >= REVIEWS
                && counter(&engine, "indexer", "indexed") >= REVIEWS)
                .then_some(())
        },
    )
    .await;
    let status = engine.pipeline_status();
    let text = reqwest::get(format!("{}/metrics", served.base))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the body");
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let scrape = Scrape::parse(lines).expect("the exposition parses");
    // The parser skips lines it cannot read: each sample line must have become a sample (or
    // one bucket of a histogram).
    let read: usize = scrape
        .samples
        .iter()
        .map(|s| match &s.value {
            Value::Histogram(buckets) => buckets.len(),
            _ => 1,
        })
        .sum();
    let sample_lines = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(read, sample_lines, "lines the parser skipped in:\n{text}");
    let scalar = |metric: &str, labels: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .and_then(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
                _ => None,
            })
    };
    // Every stage counter as the API shows it. The records are all through, but an idle loop
    // still counts its waiting time: the scrape's figure lies between the API's before and after.
    let after = engine.pipeline_status();
    for stage in &status.stages {
        for (name, value) in &stage.counters {
            let labels = [("stage", stage.id.as_str()), ("counter", name.as_str())];
            let gauge = [("stage", stage.id.as_str()), ("name", name.as_str())];
            let exported = scalar("pipebook_stage_events_total", &labels)
                .or_else(|| scalar("pipebook_stage_gauge", &gauge))
                .unwrap_or_else(|| panic!("{} {name} not exported", stage.id));
            let later = after.counter(&stage.id, name);
            let (low, high) = (*value.min(&later) as f64, *value.max(&later) as f64);
            assert!(
                (low..=high).contains(&exported),
                "{} {name}: {exported} not within the API's {value}..{later}",
                stage.id
            );
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    for (metric, stage, counter) in [
        (
            "pipebook_sentiment_review_latency_seconds",
            "sentiment",
            "produced",
        ),
        ("pipebook_indexer_bulk_duration_seconds", "indexer", "bulks"),
        ("pipebook_producer_ack_latency_seconds", "producer", "acked"),
    ] {
        assert!(scrape.docs.contains_key(metric), "{metric} has no HELP");
        let buckets = scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && s.labels.get("stage") == Some(stage))
            .and_then(|s| match &s.value {
                Value::Histogram(buckets) => Some(buckets.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{metric} is not a histogram of {stage}"));
        assert!(buckets.len() >= 2, "{metric}: {buckets:?}");
        assert!(
            buckets
                .windows(2)
                .all(|w| w[0].less_than < w[1].less_than && w[0].count <= w[1].count),
            "{metric}: bounds ascending, counts cumulative: {buckets:?}"
        );
        let last = buckets.last().expect("a bucket");
        assert_eq!(last.less_than, f64::INFINITY, "{metric}: +Inf last");
        let labels = [("stage", stage)];
        let count = scalar(&format!("{metric}_count"), &labels).expect("_count");
        let sum = scalar(&format!("{metric}_sum"), &labels).expect("_sum");
        assert_eq!(last.count, count, "{metric}: +Inf = _count");
        let api = status.counter(stage, counter) as f64;
        assert!(api > 0.0, "{stage} {counter}");
        assert_eq!(count, api, "{metric}_count = the API's {stage} {counter}");
        // In seconds: something was measured, and no latency outlasts the test itself.
        assert!(
            sum > 0.0 && sum / count <= elapsed,
            "{metric}: sum {sum}, count {count}"
        );
    }
    // Every review's latency counted once: as many labelled as produced into `reviews`.
    assert_eq!(status.counter("sentiment", "produced"), REVIEWS);
    engine.shutdown().await;
}

/// The metric names (`pipebook_…`) a PromQL expression reads.
fn metric_names(expr: &str) -> Vec<String> {
    expr.match_indices("pipebook_")
        .map(|(at, _)| {
            expr[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// The values a selector of `metric` matches for `label` (`label="a"` or `label=~"a|b"`).
fn selected_values(expr: &str, metric: &str, label: &str) -> Vec<String> {
    let mut values = Vec::new();
    for (at, _) in expr.match_indices(&format!("{metric}{{")) {
        let rest = &expr[at + metric.len() + 1..];
        let selector = rest.split('}').next().unwrap_or_default();
        for matcher in selector.split(',') {
            let matcher = matcher.trim();
            let value = matcher
                .strip_prefix(&format!("{label}=~"))
                .or_else(|| matcher.strip_prefix(&format!("{label}=")));
            if let Some(value) = value {
                values.extend(value.trim_matches('"').split('|').map(str::to_owned));
            }
        }
    }
    values
}
