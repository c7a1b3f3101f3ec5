//! Shared helpers of the integration tests: a real engine with an embedded broker on a free port
//! and a fresh data dir, and polling with a deadline.

#![allow(dead_code)]

pub mod aggregate;
pub mod elastic;

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
    start_engine_with(|_| {}).await
}

/// Like [`start_engine`], with settings changed by `adjust` first (e.g. another search backend).
pub async fn start_engine_with(adjust: impl FnOnce(&mut EngineSettings)) -> TestEngine {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = EngineSettings::embedded(dir.path());
    adjust(&mut settings);
    let engine = Engine::start(settings)
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
    engine.pipeline_status().counter(stage, name)
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

/// Reads every record of a topic (all partitions, from the start to the high watermark).
pub async fn read_all(engine: &pipebook::pipeline::Engine, topic: &str) -> Vec<app::api::Message> {
    let topics = engine.topics().await.expect("topics");
    let info = topics
        .iter()
        .find(|t| t.name == topic)
        .expect("topic exists");
    let mut out = Vec::new();
    for partition in &info.partitions {
        let mut offset = partition.low;
        while offset < partition.high {
            let page = engine
                .messages(topic, partition.id, offset, 500)
                .await
                .expect("read page");
            let Some(last) = page.last() else { break };
            offset = last.offset + 1;
            out.extend(page);
        }
    }
    out
}

/// Streams `n` generated reviews into `reviews` through the streamer and producer stages.
pub async fn stream_reviews(engine: &pipebook::pipeline::Engine, n: u64, seed: u64) {
    engine
        .start_stage(
            "streamer",
            serde_json::json!({"rate": 0, "chunk_size": 500, "limit": n, "seed": seed}),
        )
        .await
        .expect("streamer starts");
    engine
        .start_stage("producer", serde_json::json!({}))
        .await
        .expect("producer starts");
    eventually("reviews acknowledged", Duration::from_secs(120), || async {
        (counter(engine, "producer", "acked") >= n).then_some(())
    })
    .await;
}

/// Starts what labels reviews: the producer (socket → `reviews`) and the sentiment stage with
/// `workers` workers (`reviews` → `reviews.sentiment`).
pub async fn start_labelling(engine: &pipebook::pipeline::Engine, workers: u32) {
    engine
        .start_stage("producer", serde_json::json!({}))
        .await
        .expect("producer");
    engine
        .start_stage("sentiment", serde_json::json!({ "workers": workers }))
        .await
        .expect("sentiment");
}

pub async fn group_lag(engine: &pipebook::pipeline::Engine, group: &str) -> Option<i64> {
    let groups = engine.groups().await.ok()?;
    let group = groups.iter().find(|g| g.group == group)?;
    if group
        .partitions
        .iter()
        .any(|p| p.committed.is_none() && p.high > 0)
    {
        return None;
    }
    Some(group.total_lag())
}

/// The API router of an engine served on 127.0.0.1 at a free port; stopped when dropped.
pub struct Served {
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve(engine: Arc<Engine>) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let router = pipebook::api::router(engine);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Served { base, task }
}

/// The whole router `pipebook serve` runs (guard, API, server-rendered notebook) for an engine,
/// on 127.0.0.1 at a free port, as a loopback workbench; stopped when dropped.
pub async fn serve_page(t: &TestEngine) -> Served {
    use pipebook::access::{Access, AccessSettings};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let local = listener.local_addr().expect("addr");
    let access = Arc::new(Access::new(AccessSettings::local(local)));
    let options = leptos::config::LeptosOptions::builder()
        .output_name("pipebook")
        .site_root(t.dir.path().join("site").display().to_string())
        .build();
    let router = pipebook::web::router(t.engine.clone(), access, options);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Served {
        base: format!("http://{local}"),
        task,
    }
}

/// The group as the latest once-a-second sample shows it.
pub fn sampled(engine: &Engine, group: &str) -> Option<app::api::GroupInfo> {
    engine
        .subscribe()
        .borrow()
        .groups
        .iter()
        .find(|g| g.group == group)
        .cloned()
}
