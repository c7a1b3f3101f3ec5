//! `pipebook bench`: throughput of the pipeline on the embedded defaults, measured end to end with
//! the real broker. Results are written up in `docs/benchmarks.md`; nothing here is asserted.

use std::path::Path;
use std::time::{Duration, Instant};

use app::api::TOPIC_REVIEWS;
use serde::Serialize;

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
    engine.shutdown().await;
    Ok(results)
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
        out.push_str(&format!(
            "| {} | {:.0} | {} | {} |\n",
            m.metric, m.value, m.unit, m.n
        ));
    }
    out
}
