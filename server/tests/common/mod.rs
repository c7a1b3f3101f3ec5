//! Shared helpers of the integration tests: a real engine with an embedded broker on a free port
//! and a fresh data dir, and polling with a deadline.

#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pipebook::pipeline::{Engine, EngineSettings};
use tempfile::TempDir;

pub struct TestEngine {
    pub engine: Arc<Engine>,
    pub dir: TempDir,
}

pub async fn start_engine() -> TestEngine {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = Engine::start(EngineSettings::embedded(dir.path()))
        .await
        .expect("engine starts with an embedded broker");
    TestEngine { engine, dir }
}

/// Polls `check` until it yields Some, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn counter(engine: &Engine, stage: &str, name: &str) -> u64 {
    engine
        .pipeline_status()
        .stage(stage)
        .and_then(|s| s.counters.get(name).copied())
        .unwrap_or(0)
}

pub async fn high_sum(engine: &Engine, topic: &str) -> i64 {
    engine
        .topics()
        .await
        .expect("topics")
        .iter()
        .find(|t| t.name == topic)
        .map_or(0, |t| t.high_sum())
}

/// Generated reviews as Yelp-format JSON lines.
pub fn review_lines(seed: u64, n: usize) -> Vec<String> {
    pipebook::streamer::generator::ReviewGenerator::new(seed)
        .take(n)
        .map(|r| serde_json::to_string(&r).expect("serialise"))
        .collect()
}
