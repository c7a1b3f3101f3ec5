//! `pipebook bench`: throughput of the pipeline on the embedded defaults, measured end to end with
//! the real broker (or, with `--broker-cmd`, a broker process of another make: the bake-off).
//! Results are written up in `docs/benchmarks.md`; nothing here is asserted.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::api::{Sentiment, TOPIC_REVIEWS, TOPIC_SENTIMENT};
use serde::Serialize;

use crate::index::embedded::EmbeddedIndex;
use crate::index::indexer::percentile;
use crate::index::query::Search;
use crate::index::{SearchBackend, SearchDoc, SearchError};
use crate::pipeline::{Engine, EngineError, EngineSettings};
use crate::sentiment::lexicon::{LexiconClassifier, Thresholds};
use crate::streamer::generator::ReviewGenerator;

pub mod baseline;
pub mod broker_process;
pub mod viewers;
pub mod worker_processes;

use broker_process::{BrokerCommand, BrokerProcess};

#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub metric: String,
    /// Pipebook's figure.
    pub value: f64,
    pub unit: String,
    pub n: u64,
    /// The same measurement of the Python baseline (or the broker's ceiling), same run.
    pub baseline: Option<f64>,
    pub baseline_name: Option<String>,
    /// `value / baseline` (for latencies, `baseline / value`): above 1 = Pipebook is better.
    pub ratio: Option<f64>,
}

impl Measurement {
    pub fn new(metric: &str, value: f64, unit: &str, n: u64) -> Self {
        Self {
            metric: metric.to_owned(),
            value,
            unit: unit.to_owned(),
            n,
            baseline: None,
            baseline_name: None,
            ratio: None,
        }
    }

    /// Sets the baseline this figure is compared with (higher is better for both).
    pub fn against(mut self, name: &str, baseline: Option<f64>) -> Self {
        if let Some(baseline) = baseline.filter(|b| *b > 0.0) {
            self.baseline = Some(baseline);
            self.baseline_name = Some(name.to_owned());
            self.ratio = Some(self.value / baseline);
        }
        self
    }
}

/// What to measure, and how big.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Reviews per pipeline measurement.
    pub n: u64,
    /// Events in the windowed-aggregate measurement.
    pub window_events: usize,
    /// Offered loads (reviews/s) and how long each runs, for the latency measurement.
    pub latency_loads: Vec<(u32, u64)>,
    /// The Python baselines' interpreter and scripts; `None` = Pipebook's figures only.
    pub python: Option<baseline::Python>,
    /// `None` = the embedded broker; otherwise every measurement's fresh broker is a process this
    /// command starts (see [`broker_process`]).
    pub broker: Option<BrokerCommand>,
}

/// Runs every measurement; files the baselines read are written under `data_dir`.
pub async fn run(data_dir: &Path, options: &BenchOptions) -> Result<Vec<Measurement>, EngineError> {
    let n = options.n;
    let python = options.python.as_ref();
    let mut results = vec![lexicon_against_python(data_dir, n, python)];

    let broker = options.broker.as_ref();
    let fresh = fresh_engine(data_dir, "broker", broker).await?;
    let engine = fresh.engine.clone();
    let (idle, _) = memory_mib();
    results.push(Measurement::new(
        if broker.is_some() {
            "RSS idle: server process (engine only, the broker is external), no stage running"
        } else {
            "RSS idle: server process (engine + embedded broker), no stage running"
        },
        idle,
        "MiB",
        0,
    ));
    if let Some(process) = &fresh.broker {
        results.push(Measurement::new(
            "RSS idle: broker process, no stage running",
            process.memory_mib().0,
            "MiB",
            0,
        ));
    }
    let ceiling = broker_ceiling(&engine, n).await?;
    let consume_ceiling = ceiling.get(1).map(|m| m.value);
    results.extend(ceiling);
    let python_pipeline = python.and_then(|py| python_pipeline(py, &engine, data_dir, n));
    let from_python = |key: &str| {
        python_pipeline
            .as_ref()
            .and_then(|v| baseline::figure(v, key))
    };
    results.push(stream_to_broker(&engine, n).await?.against(
        "Python socket + confluent-kafka",
        from_python("socket_to_kafka_per_s"),
    ));
    for workers in [1u8, 2, 4] {
        let measured = sentiment_stage(&engine, workers).await?;
        results.push(if workers == 1 {
            measured.against(
                "Python consumer + vaderSentiment, 1 process",
                from_python("sentiment_per_s"),
            )
        } else {
            measured
        });
    }
    results.push(indexer_stage(&engine).await?);
    results.push(aggregate_stage(&engine).await?);
    drop(engine);
    results.extend(fresh.shutdown("stage measurements").await);

    let (labelled, indexed, broker_peak) = end_to_end(data_dir, n, broker).await?;
    results.push(labelled.clone().against(
        "Python pipeline, same stages",
        from_python("end_to_end_per_s"),
    ));
    results.push(Measurement {
        metric: format!(
            "{} — share of the broker's consume-only ceiling",
            labelled.metric
        ),
        ..labelled.against("rdkafka consume-only", consume_ceiling)
    });
    results.push(indexed);
    results.extend(broker_peak);
    for &(rate, seconds) in &options.latency_loads {
        results.extend(latency_at(data_dir, rate, seconds, broker).await?);
    }
    let (_, peak) = memory_mib();
    results.push(Measurement::new(
        "RSS peak: server process after every pipeline measurement",
        peak,
        "MiB",
        0,
    ));
    results.extend(embedded_search(&data_dir.join("bench-search"), n).await?);
    results.push(window_against_pandas(
        data_dir,
        options.window_events,
        python,
    ));
    Ok(results)
}

/// The lexicon on one core; with Python, vaderSentiment on the first 20,000 of the same texts.
fn lexicon_against_python(
    data_dir: &Path,
    n: u64,
    python: Option<&baseline::Python>,
) -> Measurement {
    let measured = lexicon_one_core(n);
    let texts = data_dir.join("texts.txt");
    let vader = python.and_then(|py| {
        write_texts(&texts, n).ok()?;
        let args = [texts.display().to_string(), n.min(20_000).to_string()];
        report(py.run("bench_vader.py", &args))
    });
    measured.against(
        "Python vaderSentiment 3.3.2, one core",
        vader.as_ref().and_then(|v| baseline::figure(v, "value")),
    )
}

/// Polars on the window aggregate; with Python, pandas on the same events.
fn window_against_pandas(
    data_dir: &Path,
    events: usize,
    python: Option<&baseline::Python>,
) -> Measurement {
    let events = window_events(events);
    let measured = polars_window_aggregate(&events);
    let csv = data_dir.join("events.csv");
    let pandas = python.and_then(|py| {
        write_window_events(&csv, &events).ok()?;
        report(py.run("bench_pandas.py", &[csv.display().to_string()]))
    });
    measured.against(
        "pandas, same events",
        pandas
            .as_ref()
            .and_then(|v| baseline::figure(v, "events_per_s")),
    )
}

/// The seeds' pipeline in Python on this engine's broker, over the same reviews.
fn python_pipeline(
    python: &baseline::Python,
    engine: &Engine,
    data_dir: &Path,
    n: u64,
) -> Option<serde_json::Value> {
    let reviews = data_dir.join("reviews.jsonl");
    baseline::write_reviews(&reviews, 1, n).ok()?;
    let args = [
        engine.kafka().bootstrap_servers.clone(),
        reviews.display().to_string(),
        n.to_string(),
    ];
    report(python.run("bench_pipeline.py", &args))
}

/// Keeps a baseline's answer, or says on stderr why there is none.
fn report(answer: Result<serde_json::Value, String>) -> Option<serde_json::Value> {
    answer
        .map_err(|error| tracing::warn!(%error, "baseline not measured"))
        .ok()
}

/// Events in the windowed-aggregate benchmark (the 1,000,000; smoke runs use fewer).
pub const WINDOW_EVENTS: usize = 1_000_000;

/// Synthetic events for the window benchmark: one every 10 ms of event time (~2.8 hours), three
/// sentiments, five stars values, 250 businesses. The same rows go to `events.csv` for pandas.
pub fn window_events(n: usize) -> Vec<crate::aggregate::windows::Event> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let start = 1_704_067_200_000_i64; // 2024-01-01T00:00:00Z
    (0..n)
        .map(|i| {
            let stars: u8 = rng.random_range(1..=5);
            crate::aggregate::windows::Event {
                review_id: i.to_string(),
                time: start + i as i64 * 10 + rng.random_range(0..10),
                sentiment: Some(Sentiment::ALL[rng.random_range(0..3)]),
                score: rng.random_range(-1.0..1.0),
                stars,
                business_id: format!("b{}", rng.random_range(0..250)),
                dataset: app::api::DatasetKind::Yelp,
                hashtags: Vec::new(),
                country: None,
                industry: None,
            }
        })
        .collect()
}

/// Tumbling one-minute windows over the events: counts per sentiment and stars, score and
/// stars sums — Polars `group_by_dynamic`, timed without building the frame. Best of 3.
pub fn polars_window_aggregate(events: &[crate::aggregate::windows::Event]) -> Measurement {
    use crate::aggregate::frame::{events_frame, window_counts};
    let mut best = Duration::MAX;
    let mut windows = 0;
    for _ in 0..3 {
        let Ok(frame) = events_frame(events).and_then(|f| f.collect()) else {
            break;
        };
        let started = Instant::now();
        if let Ok(result) = window_counts(polars::prelude::IntoLazy::lazy(frame), 60_000, 60_000) {
            windows = result.height();
        }
        best = best.min(started.elapsed());
    }
    tracing::debug!(windows, "polars window benchmark");
    Measurement::new(
        "windowed aggregate (1-min tumbling, 10 aggregates), Polars",
        events.len() as f64 / best.as_secs_f64(),
        "events/s",
        events.len() as u64,
    )
}

/// Writes the window benchmark's events as CSV (`time_ms,sentiment,score,stars,business`).
pub fn write_window_events(
    path: &Path,
    events: &[crate::aggregate::windows::Event],
) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(file, "time_ms,sentiment,score,stars,business")?;
    for e in events {
        writeln!(
            file,
            "{},{},{},{},{}",
            e.time,
            // Empty (a CSV null) for a record without a label.
            e.sentiment
                .map(|s| s.index().to_string())
                .unwrap_or_default(),
            e.score,
            e.stars,
            e.business_id
        )?;
    }
    file.flush()
}

/// The aggregate stage reading all of `reviews.sentiment` once (trigger "once").
async fn aggregate_stage(engine: &Engine) -> Result<Measurement, EngineError> {
    let started = Instant::now();
    engine
        .start_stage(
            "aggregate",
            serde_json::json!({"group": "bench-aggregate", "trigger_ms": 0}),
        )
        .await?;
    wait_until(Duration::from_secs(600), || {
        engine.pipeline_status().stage("aggregate").map(|s| s.state)
            != Some(app::api::StageState::Running)
    })
    .await;
    let elapsed = started.elapsed();
    let consumed = counter(engine, "aggregate", "consumed");
    Ok(Measurement::new(
        "aggregate stage (dedup, 3 window types, checkpoint), reviews.sentiment",
        consumed as f64 / elapsed.as_secs_f64(),
        "records/s",
        consumed,
    ))
}

/// Documents per bulk in the search benchmark (the indexer's default).
const BENCH_BULK: usize = 1_000;
/// Searches timed for the latency percentiles.
const BENCH_QUERIES: usize = 300;

/// Generated reviews as search documents, labelled by the lexicon.
fn search_docs(n: u64) -> Vec<SearchDoc> {
    let classifier = LexiconClassifier::new(Thresholds::default());
    ReviewGenerator::new(11)
        .take(n as usize)
        .map(|review| {
            let verdict = classifier.classify(&review.text);
            let date =
                chrono::NaiveDateTime::parse_from_str(&review.date, crate::records::DATE_FORMAT)
                    .map(|d| {
                        d.and_utc()
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    })
                    .unwrap_or_default();
            SearchDoc {
                review_id: review.review_id,
                dataset: app::api::DatasetKind::Yelp,
                business_id: Some(review.business_id),
                user_id: review.user_id,
                stars: Some(review.stars),
                hashtags: Vec::new(),
                text: review.text,
                sentiment: verdict.sentiment,
                score: verdict.score,
                classifier: "lexicon".to_owned(),
                date,
                processed_at: "2026-11-23T00:00:00.000Z".to_owned(),
            }
        })
        .collect()
}

/// Bulk-indexing rate into a fresh embedded index, then query latency percentiles on it.
async fn embedded_search(dir: &Path, n: u64) -> Result<Vec<Measurement>, SearchError> {
    let _ = std::fs::remove_dir_all(dir);
    let index = EmbeddedIndex::open(dir)?;
    let docs = search_docs(n);
    let started = Instant::now();
    for chunk in docs.chunks(BENCH_BULK) {
        index.bulk(chunk.to_vec()).await?;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let words = [
        "service",
        "tacos",
        "friendly staff",
        "cold food",
        "waited",
        "delicious",
    ];
    let mut searches = Vec::with_capacity(BENCH_QUERIES);
    for i in 0..BENCH_QUERIES {
        let search = Search {
            text: words[i % words.len()].to_owned(),
            sentiment: (i % 2 == 0).then_some(Sentiment::Negative),
            stars_min: None,
            limit: 20,
        };
        let started = Instant::now();
        index.search(search).await?;
        searches.push(started.elapsed());
    }
    let mut aggregations = Vec::with_capacity(BENCH_QUERIES / 10);
    for _ in 0..BENCH_QUERIES / 10 {
        let started = Instant::now();
        index.aggregations("1h".to_owned()).await?;
        aggregations.push(started.elapsed());
    }
    let mut results = vec![Measurement::new(
        &format!("embedded index, bulks of {BENCH_BULK} documents"),
        rate,
        "docs/s",
        n,
    )];
    results.extend(latency(
        "embedded search, match + sentiment filter, top 20",
        &searches,
        n,
    ));
    results.extend(latency(
        "embedded aggregations (5, with date_histogram 1h)",
        &aggregations,
        n,
    ));
    Ok(results)
}

/// p50 and p99 of `durations`, in milliseconds.
fn latency(what: &str, durations: &[Duration], n: u64) -> Vec<Measurement> {
    let mut micros: Vec<u64> = durations
        .iter()
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .collect();
    micros.sort_unstable();
    [("p50", 0.50), ("p99", 0.99)]
        .into_iter()
        .map(|(name, q)| {
            Measurement::new(
                &format!("{what}, {name} over {} queries", durations.len()),
                percentile(&micros, q) as f64 / 1000.0,
                "ms",
                n,
            )
        })
        .collect()
}

/// The indexer stage reading all of `reviews.sentiment` into the engine's embedded index.
async fn indexer_stage(engine: &Engine) -> Result<Measurement, EngineError> {
    let total = engine
        .topics()
        .await?
        .iter()
        .find(|t| t.name == TOPIC_SENTIMENT)
        .map_or(0, |t| t.high_sum()) as u64;
    let started = Instant::now();
    engine
        .start_stage("indexer", serde_json::json!({"group": "bench-indexer"}))
        .await?;
    wait_until(Duration::from_secs(600), || {
        counter(engine, "indexer", "consumed") >= total
            && counter(engine, "indexer", "indexed") + counter(engine, "indexer", "dlq") >= total
    })
    .await;
    let elapsed = started.elapsed();
    let indexed = counter(engine, "indexer", "indexed");
    engine.stop_stage("indexer").await?;
    Ok(Measurement::new(
        "indexer stage, reviews.sentiment → embedded index",
        indexed as f64 / elapsed.as_secs_f64(),
        "docs/s",
        indexed,
    ))
}

fn lexicon_one_core(n: u64) -> Measurement {
    let texts: Vec<String> = ReviewGenerator::new(7)
        .take(n as usize)
        .map(|r| r.text)
        .collect();
    let mean_chars = texts.iter().map(String::len).sum::<usize>() / texts.len().max(1);
    let classifier = LexiconClassifier::new(Thresholds::default());
    let started = Instant::now();
    let mut positive = 0u64;
    for text in &texts {
        if classifier.classify(text).score > 0.0 {
            positive += 1;
        }
    }
    let elapsed = started.elapsed();
    tracing::debug!(positive, "lexicon bench done");
    Measurement::new(
        &format!("lexicon classifier, one core, {mean_chars}-char reviews"),
        n as f64 / elapsed.as_secs_f64(),
        "reviews/s",
        n,
    )
}

/// Streams `n` generated reviews (seed 1) at full speed into `reviews`.
async fn start_source(engine: &Engine, n: u64) -> Result<(), EngineError> {
    engine
        .start_stage(
            "streamer",
            serde_json::json!({"rate": 0, "chunk_size": 1000, "limit": n, "seed": 1}),
        )
        .await?;
    engine
        .start_stage("producer", serde_json::Value::Null)
        .await
}

async fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Records ever appended to `topic`, summed over its partitions (0 before it exists).
async fn high_sum(engine: &Engine, topic: &str) -> Result<i64, EngineError> {
    let topics = engine.topics().await?;
    Ok(topics
        .iter()
        .find(|t| t.name == topic)
        .map_or(0, app::api::TopicInfo::high_sum))
}

fn counter(engine: &Engine, stage: &str, name: &str) -> u64 {
    engine.pipeline_status().counter(stage, name)
}

async fn stream_to_broker(engine: &Engine, n: u64) -> Result<Measurement, EngineError> {
    let started = Instant::now();
    start_source(engine, n).await?;
    wait_until(Duration::from_secs(600), || {
        counter(engine, "producer", "acked") >= n
    })
    .await;
    let elapsed = started.elapsed();
    engine.stop_stage("producer").await?;
    Ok(Measurement::new(
        "socket streamer → producer → broker (acknowledged)",
        counter(engine, "producer", "acked") as f64 / elapsed.as_secs_f64(),
        "reviews/s",
        n,
    ))
}

/// Re-reads all of `reviews` with a fresh group each time: the stage starts from offset 0.
async fn sentiment_stage(engine: &Engine, workers: u8) -> Result<Measurement, EngineError> {
    let total = engine
        .topics()
        .await?
        .iter()
        .find(|t| t.name == TOPIC_REVIEWS)
        .map_or(0, |t| t.high_sum()) as u64;
    let group = format!("bench-{workers}-{}", chrono::Utc::now().timestamp_millis());
    let started = Instant::now();
    engine.start_sentiment_in_group(workers, &group).await?;
    wait_until(Duration::from_secs(600), || {
        counter(engine, "sentiment", "produced") >= total
    })
    .await;
    let elapsed = started.elapsed();
    let produced = counter(engine, "sentiment", "produced");
    engine.stop_stage("sentiment").await?;
    Ok(Measurement::new(
        &format!("sentiment stage, {workers} worker(s), reviews → reviews.sentiment"),
        produced as f64 / elapsed.as_secs_f64(),
        "reviews/s",
        produced,
    ))
}

/// Writes the review texts the lexicon benchmark uses, one per line, for the Python baseline.
pub fn write_texts(path: &Path, n: u64) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for review in ReviewGenerator::new(7).take(n as usize) {
        writeln!(file, "{}", review.text.replace('\n', " "))?;
    }
    file.flush()
}

/// Markdown table of the results.
pub fn to_markdown(results: &[Measurement]) -> String {
    let mut out = String::from(
        "| metric | Pipebook | baseline | ratio | unit | n |\n| --- | ---: | ---: | ---: | --- | ---: |\n",
    );
    // Whole numbers for rates; a decimal for milliseconds and MiB.
    let number = |v: f64| {
        let precision = usize::from(v < 100.0);
        format!("{v:.precision$}")
    };
    for m in results {
        let baseline = match (&m.baseline, &m.baseline_name) {
            (Some(value), Some(name)) => format!("{} ({name})", number(*value)),
            _ => "—".to_owned(),
        };
        let ratio = m.ratio.map_or("—".to_owned(), |r| format!("{r:.2}×"));
        out.push_str(&format!(
            "| {} | {} | {baseline} | {ratio} | {} | {} |\n",
            m.metric,
            number(m.value),
            m.unit,
            m.n
        ));
    }
    out
}

/// The embedded broker's own ceiling: produce-only and consume-only with rdkafka, records the
/// size of a review, on a topic of their own. Every stage can be read as a share of these.
async fn broker_ceiling(engine: &Engine, n: u64) -> Result<Vec<Measurement>, EngineError> {
    let kafka = engine.kafka().clone();
    let topic = format!("bench.raw.{}", chrono::Utc::now().timestamp_millis());
    crate::kafka::admin::ensure_topics(
        &kafka,
        &[crate::kafka::admin::TopicSpec {
            name: topic.clone(),
            partitions: kafka.topic_partitions,
            compact: false,
        }],
    )
    .await?;
    let payload: Vec<u8> = serde_json::to_vec(
        &ReviewGenerator::new(1)
            .next()
            .map(|r| r.text)
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    let measured =
        tokio::task::spawn_blocking(move || raw_produce_consume(&kafka, &topic, &payload, n))
            .await
            .map_err(|e| EngineError::BadRequest(format!("benchmark task failed: {e}")))?;
    let (produce, consume) = measured.map_err(|e| EngineError::BadRequest(e.to_string()))?;
    Ok(vec![
        Measurement::new(
            "broker ceiling: rdkafka produce-only, acknowledged",
            n as f64 / produce.as_secs_f64(),
            "records/s",
            n,
        ),
        Measurement::new(
            "broker ceiling: rdkafka consume-only, from offset 0",
            n as f64 / consume.as_secs_f64(),
            "records/s",
            n,
        ),
    ])
}

fn raw_produce_consume(
    kafka: &crate::kafka::KafkaSettings,
    topic: &str,
    payload: &[u8],
    n: u64,
) -> Result<(Duration, Duration), rdkafka::error::KafkaError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = kafka
        .client_config()
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()?;
    let started = Instant::now();
    for i in 0..n {
        let key = (i % 250).to_string();
        let mut record = BaseRecord::to(topic).key(&key).payload(payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, returned)) => {
                    record = returned;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(300))?;
    let produce = started.elapsed();

    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", format!("{topic}-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let started = Instant::now();
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    while read < n && Instant::now() < deadline {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            read += 1;
        }
    }
    Ok((produce, started.elapsed()))
}

/// Resident memory of this process (`VmRSS`) and its peak (`VmHWM`), in MiB, from /proc.
pub fn memory_mib() -> (f64, f64) {
    memory_in("/proc/self/status")
}

/// `VmRSS` and `VmHWM` in MiB from a /proc status file (0 where unreadable).
fn memory_in(status_file: &str) -> (f64, f64) {
    let status = std::fs::read_to_string(status_file).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// An engine on a fresh broker: embedded, or with `--broker-cmd` a broker process of its own.
struct Fresh {
    engine: Arc<Engine>,
    broker: Option<BrokerProcess>,
}

impl Fresh {
    /// Shuts the engine down, then its broker process (if any): that broker's peak memory over
    /// the measurement `what`.
    async fn shutdown(self, what: &str) -> Option<Measurement> {
        self.engine.shutdown().await;
        let broker = self.broker?;
        Some(Measurement::new(
            &format!("RSS peak: broker process, {what}"),
            broker.memory_mib().1,
            "MiB",
            0,
        ))
    }
}

/// A fresh engine (and broker) for one measurement, so no earlier record is counted.
async fn fresh_engine(
    root: &Path,
    name: &str,
    broker: Option<&BrokerCommand>,
) -> Result<Fresh, EngineError> {
    let dir = root.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let mut settings = EngineSettings::embedded(&dir);
    let process = match broker.cloned() {
        Some(command) => {
            let data = dir.join("external-broker");
            let process = tokio::task::spawn_blocking(move || command.start(&data))
                .await
                .map_err(|e| EngineError::BadRequest(format!("starting the broker: {e}")))??;
            settings.external_kafka = Some(crate::kafka::KafkaSettings::plaintext(
                process.bootstrap_servers(),
                settings.topic_partitions,
            ));
            Some(process)
        }
        None => None,
    };
    Ok(Fresh {
        engine: Engine::start(settings).await?,
        broker: process,
    })
}

/// Socket → producer → `reviews` → sentiment (2 workers) → `reviews.sentiment` → indexer, all
/// running at once on a fresh broker: reviews/s until the last one is labelled, and indexed.
async fn end_to_end(
    root: &Path,
    n: u64,
    broker: Option<&BrokerCommand>,
) -> Result<(Measurement, Measurement, Option<Measurement>), EngineError> {
    let fresh = fresh_engine(root, "e2e", broker).await?;
    let engine = fresh.engine.clone();
    let started = Instant::now();
    engine
        .start_stage("indexer", serde_json::Value::Null)
        .await?;
    engine
        .start_sentiment_in_group(2, "pipebook-sentiment")
        .await?;
    start_source(&engine, n).await?;
    wait_until(Duration::from_secs(900), || {
        counter(&engine, "sentiment", "produced") >= n
    })
    .await;
    let labelled_in = started.elapsed();
    let labelled = counter(&engine, "sentiment", "produced");
    wait_until(Duration::from_secs(900), || {
        counter(&engine, "indexer", "indexed") >= n
    })
    .await;
    let indexed_in = started.elapsed();
    let indexed = counter(&engine, "indexer", "indexed");
    drop(engine);
    let broker_peak = fresh.shutdown("end to end").await;
    Ok((
        Measurement::new(
            "end to end: socket → reviews → sentiment (2 workers) → reviews.sentiment",
            labelled as f64 / labelled_in.as_secs_f64(),
            "reviews/s",
            labelled,
        ),
        Measurement::new(
            "end to end, the same run, until indexed (embedded search)",
            indexed as f64 / indexed_in.as_secs_f64(),
            "reviews/s",
            indexed,
        ),
        broker_peak,
    ))
}

/// Latency at a fixed offered load: the streamer sends `rate` reviews/s (live clock) for
/// `seconds`; for each review, the time from its record in `reviews` to its enriched record in
/// `reviews.sentiment` (both broker timestamps, ms). p50/p95/p99 over every review.
async fn latency_at(
    root: &Path,
    rate: u32,
    seconds: u64,
    broker: Option<&BrokerCommand>,
) -> Result<Vec<Measurement>, EngineError> {
    let fresh = fresh_engine(root, &format!("latency-{rate}"), broker).await?;
    let engine = fresh.engine.clone();
    let n = u64::from(rate) * seconds;
    engine
        .start_sentiment_in_group(2, "pipebook-sentiment")
        .await?;
    // Measure the steady state: wait until the group has shared out every partition (the first
    // join takes seconds on the embedded broker), then start the source.
    let partitions = engine.kafka().topic_partitions as usize;
    let snapshots = engine.subscribe();
    wait_until(Duration::from_secs(60), || {
        let view = &snapshots.borrow().sentiment;
        view.workers
            .iter()
            .map(|w| w.partitions.len())
            .sum::<usize>()
            >= partitions
    })
    .await;
    engine
        .start_stage(
            "streamer",
            serde_json::json!({"rate": rate, "chunk_size": (rate / 20).max(1), "limit": n, "seed": 2}),
        )
        .await?;
    engine
        .start_stage("producer", serde_json::Value::Null)
        .await?;
    wait_until(Duration::from_secs(seconds * 4 + 120), || {
        counter(&engine, "sentiment", "produced") >= n
    })
    .await;
    let millis = hop_millis(&engine, i64::MIN).await?;
    drop(engine);
    let broker_peak = fresh
        .shutdown(&format!("latency at {rate} reviews/s"))
        .await;
    Ok([("p50", 0.50), ("p95", 0.95), ("p99", 0.99)]
        .into_iter()
        .map(|(name, q)| {
            Measurement::new(
                &format!("latency reviews → reviews.sentiment at {rate} reviews/s, {name}"),
                percentile(&millis, q) as f64,
                "ms",
                millis.len() as u64,
            )
        })
        .chain(broker_peak)
        .collect())
}

/// For every review labelled in `reviews.sentiment` whose record in `reviews` is stamped at or
/// after `since` (ms since the epoch), the time between its two records' broker timestamps, in
/// ms, sorted.
async fn hop_millis(engine: &Engine, since: i64) -> Result<Vec<u64>, EngineError> {
    let sent = timestamps(engine, TOPIC_REVIEWS).await?;
    let labelled = timestamps(engine, TOPIC_SENTIMENT).await?;
    let mut millis: Vec<u64> = labelled
        .iter()
        .filter_map(|(id, out)| {
            let at = *sent.get(id)?;
            (at >= since).then(|| u64::try_from(out - at).unwrap_or(0))
        })
        .collect();
    millis.sort_unstable();
    Ok(millis)
}

/// review_id → broker timestamp (ms) of every record of `topic`.
async fn timestamps(
    engine: &Engine,
    topic: &str,
) -> Result<std::collections::HashMap<String, i64>, EngineError> {
    let mut out = std::collections::HashMap::new();
    let topics = engine.topics().await?;
    let Some(info) = topics.iter().find(|t| t.name == topic) else {
        return Ok(out);
    };
    for partition in &info.partitions {
        let mut offset = partition.low;
        while offset < partition.high {
            let page = engine.messages(topic, partition.id, offset, 500).await?;
            let Some(last) = page.last() else { break };
            offset = last.offset + 1;
            for message in page {
                let id = serde_json::from_str::<serde_json::Value>(&message.value)
                    .ok()
                    .and_then(|v| v["review_id"].as_str().map(str::to_owned));
                if let (Some(id), Some(at)) = (id, message.timestamp) {
                    out.insert(id, at);
                }
            }
        }
    }
    Ok(out)
}
