//! `pipebook bench`: throughput of the pipeline on the embedded defaults, measured end to end with
//! the real broker. Results are written up in `docs/benchmarks.md`; nothing here is asserted.

use std::path::Path;
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

#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub metric: String,
    pub value: f64,
    pub unit: String,
    pub n: u64,
}

/// Runs every measurement with `n` reviews (the lexicon one with `n` texts on one core).
pub async fn run(data_dir: &Path, n: u64) -> Result<Vec<Measurement>, EngineError> {
    let mut results = vec![lexicon_one_core(n)];
    let engine = Engine::start(EngineSettings::embedded(data_dir)).await?;
    results.push(stream_to_broker(&engine, n).await?);
    for workers in [1u8, 2, 4] {
        results.push(sentiment_stage(&engine, workers).await?);
    }
    results.push(indexer_stage(&engine).await?);
    results.push(aggregate_stage(&engine).await?);
    engine.shutdown().await;
    results.extend(embedded_search(&data_dir.join("bench-search"), n).await?);
    Ok(results)
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
                sentiment: Sentiment::ALL[rng.random_range(0..3)],
                score: rng.random_range(-1.0..1.0),
                stars,
                business_id: format!("b{}", rng.random_range(0..250)),
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
    Measurement {
        metric: "windowed aggregate (1-min tumbling, 10 aggregates), Polars".to_owned(),
        value: events.len() as f64 / best.as_secs_f64(),
        unit: "events/s".to_owned(),
        n: events.len() as u64,
    }
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
            e.sentiment.index(),
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
    Ok(Measurement {
        metric: "aggregate stage (dedup, 3 window types, checkpoint), reviews.sentiment".to_owned(),
        value: consumed as f64 / elapsed.as_secs_f64(),
        unit: "records/s".to_owned(),
        n: consumed,
    })
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
                business_id: review.business_id,
                user_id: review.user_id,
                stars: review.stars,
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
    let mut results = vec![Measurement {
        metric: format!("embedded index, bulks of {BENCH_BULK} documents"),
        value: rate,
        unit: "docs/s".to_owned(),
        n,
    }];
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
        .map(|(name, q)| Measurement {
            metric: format!("{what}, {name} over {} queries", durations.len()),
            value: percentile(&micros, q) as f64 / 1000.0,
            unit: "ms".to_owned(),
            n,
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
    Ok(Measurement {
        metric: "indexer stage, reviews.sentiment → embedded index".to_owned(),
        value: indexed as f64 / elapsed.as_secs_f64(),
        unit: "docs/s".to_owned(),
        n: indexed,
    })
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
    Measurement {
        metric: format!("lexicon classifier, one core, {mean_chars}-char reviews"),
        value: n as f64 / elapsed.as_secs_f64(),
        unit: "reviews/s".to_owned(),
        n,
    }
}

async fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn counter(engine: &Engine, stage: &str, name: &str) -> u64 {
    engine.pipeline_status().counter(stage, name)
}

async fn stream_to_broker(engine: &Engine, n: u64) -> Result<Measurement, EngineError> {
    let started = Instant::now();
    engine
        .start_stage(
            "streamer",
            serde_json::json!({"rate": 0, "chunk_size": 1000, "limit": n, "seed": 1}),
        )
        .await?;
    engine
        .start_stage("producer", serde_json::Value::Null)
        .await?;
    wait_until(Duration::from_secs(600), || {
        counter(engine, "producer", "acked") >= n
    })
    .await;
    let elapsed = started.elapsed();
    engine.stop_stage("producer").await?;
    Ok(Measurement {
        metric: "socket streamer → producer → broker (acknowledged)".to_owned(),
        value: counter(engine, "producer", "acked") as f64 / elapsed.as_secs_f64(),
        unit: "reviews/s".to_owned(),
        n,
    })
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
    engine.start_sentiment_in_group(workers, &group)?;
    wait_until(Duration::from_secs(600), || {
        counter(engine, "sentiment", "produced") >= total
    })
    .await;
    let elapsed = started.elapsed();
    let produced = counter(engine, "sentiment", "produced");
    engine.stop_stage("sentiment").await?;
    Ok(Measurement {
        metric: format!("sentiment stage, {workers} worker(s), reviews → reviews.sentiment"),
        value: produced as f64 / elapsed.as_secs_f64(),
        unit: "reviews/s".to_owned(),
        n: produced,
    })
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
    let mut out = String::from("| metric | value | unit | n |\n| --- | ---: | --- | ---: |\n");
    for m in results {
        // Whole numbers for rates; a decimal for milliseconds.
        let precision = usize::from(m.value < 100.0);
        out.push_str(&format!(
            "| {} | {:.precision$} | {} | {} |\n",
            m.metric, m.value, m.unit, m.n
        ));
    }
    out
}
