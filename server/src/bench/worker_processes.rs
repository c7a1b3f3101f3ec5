//! `pipebook bench --worker-processes 1,2,3`: the sentiment stage run as K `pipebook worker`
//! processes (no in-server worker), each K on a fresh embedded broker. Two figures per K:
//!
//! - **throughput**: the K processes join a group and settle (Stable with K members), then N
//!   reviews are streamed at full speed; reviews/s while `reviews.sentiment` goes from 10 % to
//!   90 % of N, so joining is outside it;
//! - **latency**: with the group settled and caught up, the streamer sends `rate` reviews/s for
//!   `secs`; for each of those reviews the time from its record in `reviews` to its record in
//!   `reviews.sentiment` (broker timestamps), p50 / p99.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use app::api::TOPIC_SENTIMENT;

use super::{Measurement, fresh_engine, percentile, start_source, wait_until};
use crate::pipeline::{Engine, EngineError};

/// The consumer group of the worker processes.
const GROUP: &str = "bench-worker-processes";

/// What `--worker-processes` measures.
#[derive(Debug, Clone)]
pub struct WorkerBenchOptions {
    /// The numbers of processes to try, e.g. `[1, 2, 3]`.
    pub processes: Vec<u8>,
    /// Reviews in the backlog the throughput is measured on.
    pub n: u64,
    /// Offered load of the latency phase, reviews/s, and its length.
    pub rate: u32,
    pub secs: u64,
    /// The `pipebook` binary the workers run (default: this one).
    pub binary: PathBuf,
}

/// Every K in turn; nothing is asserted.
pub async fn run(
    root: &Path,
    options: &WorkerBenchOptions,
) -> Result<Vec<Measurement>, EngineError> {
    let mut results = Vec::new();
    for &k in &options.processes {
        results.extend(with_processes(root, k, options).await?);
    }
    Ok(results)
}

async fn with_processes(
    root: &Path,
    k: u8,
    options: &WorkerBenchOptions,
) -> Result<Vec<Measurement>, EngineError> {
    let fresh = fresh_engine(root, &format!("workers-{k}"), None).await?;
    let engine = fresh.engine.clone();
    let n = options.n;
    // The group settles first, so no rebalance falls inside the measured span; the backlog then
    // builds up faster than K workers label it (the producer is the quicker stage).
    let workers = Workers::spawn(&options.binary, &engine.kafka().bootstrap_servers, k)?;
    settled(&engine, usize::from(k)).await?;
    start_source(&engine, n).await?;
    let rate = labelled_rate(&engine, n).await?;
    let latency = latency(&engine, n, options.rate, options.secs).await?;
    drop(workers);
    drop(engine);
    fresh.shutdown("worker processes").await;

    let label = |what: &str| format!("sentiment as {k} `pipebook worker` process(es), {what}");
    let mut out = vec![Measurement::new(
        &label("reviews/s (backlog, 10 %–90 %)"),
        rate,
        "reviews/s",
        n,
    )];
    let measured = latency.len() as u64;
    for (name, q) in [("p50", 0.50), ("p99", 0.99)] {
        out.push(Measurement::new(
            &label(&format!(
                "latency reviews → reviews.sentiment at {} reviews/s, {name}",
                options.rate
            )),
            percentile(&latency, q) as f64,
            "ms",
            measured,
        ));
    }
    Ok(out)
}

/// Waits until the group is Stable with its `k` members.
async fn settled(engine: &Engine, k: usize) -> Result<(), EngineError> {
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        let groups = engine.groups().await?;
        if groups
            .iter()
            .any(|g| g.group == GROUP && g.state == "Stable" && g.members.len() == k)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(EngineError::BadRequest(format!(
        "group {GROUP} did not settle with {k} members in 3 minutes"
    )))
}

/// Reviews/s while `reviews.sentiment` goes from 10 % to 90 % of `n`: from the last sample
/// below 10 % to the first at or above 90 % (with a small `n` both may fall between two
/// samples; the span then starts where the labelling did, at 0).
async fn labelled_rate(engine: &Engine, n: u64) -> Result<f64, EngineError> {
    let (low, high) = (n / 10, n * 9 / 10);
    let mut below_low = (Instant::now(), 0);
    let deadline = Instant::now() + Duration::from_secs(900);
    while Instant::now() < deadline {
        let labelled = u64::try_from(super::high_sum(engine, TOPIC_SENTIMENT).await?).unwrap_or(0);
        let (at, start) = below_low;
        if labelled >= high {
            return Ok((labelled - start) as f64 / at.elapsed().as_secs_f64());
        }
        if labelled < low {
            below_low = (Instant::now(), labelled);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(EngineError::BadRequest(format!(
        "the worker processes did not label {high} of {n} reviews in 15 minutes"
    )))
}

/// Streams `rate`/s for `secs` once the backlog is labelled; the latency of each new review, ms.
async fn latency(engine: &Engine, n: u64, rate: u32, secs: u64) -> Result<Vec<u64>, EngineError> {
    let live = u64::from(rate) * secs;
    wait_until(Duration::from_secs(600), || {
        super::counter(engine, "streamer", "sent") >= n
    })
    .await;
    let since = chrono::Utc::now().timestamp_millis();
    engine
        .start_stage(
            "streamer",
            serde_json::json!({"rate": rate, "chunk_size": (rate / 20).max(1), "limit": live, "seed": 2}),
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(secs * 4 + 120);
    while super::high_sum(engine, TOPIC_SENTIMENT).await? < (n + live) as i64
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    super::hop_millis(engine, since).await
}

/// The K worker processes; killed and reaped when dropped.
struct Workers(Vec<std::process::Child>);

impl Workers {
    fn spawn(binary: &Path, brokers: &str, k: u8) -> Result<Self, EngineError> {
        let mut children = Vec::new();
        for _ in 0..k {
            let child = std::process::Command::new(binary)
                .args(["worker", "--stage", "sentiment", "--brokers", brokers])
                .args(["--group", GROUP])
                .env("RUST_LOG", "warn,librdkafka=off,rdkafka::client=off")
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| {
                    EngineError::BadRequest(format!("cannot start {}: {e}", binary.display()))
                })?;
            children.push(child);
        }
        Ok(Self(children))
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
