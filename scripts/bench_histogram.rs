//! Cost of observing one latency in Pipebook's histogram (`server/src/histogram.rs`, compiled in
//! as it is), optimised without a release build of the workspace (docs/benchmarks.md):
//!     rustc -O --edition 2024 scripts/bench_histogram.rs -o /tmp/bench_histogram
//!     /tmp/bench_histogram 20000000
#[allow(dead_code)]
#[path = "../server/src/histogram.rs"]
mod histogram;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use histogram::LatencyHistogram;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000_000);
    // Latencies spread over every bucket, so the bucket search is not always the same.
    let latencies: Vec<Duration> = (0..1024u64)
        .map(|i| Duration::from_micros((i * 7_919 * 4_099) % 400_000_000))
        .collect();
    let one = LatencyHistogram::default();
    let started = Instant::now();
    for i in 0..n {
        one.observe(black_box(latencies[(i % 1024) as usize]));
    }
    let per = started.elapsed().as_nanos() as f64 / n as f64;
    println!("observe, one thread:           {per:.1} ns");

    // What the sentiment worker and the producer add per record: reading the wall clock.
    let started = Instant::now();
    for _ in 0..n {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        one.observe_between_ms(
            black_box(now.as_millis() as i64 - 40),
            now.as_millis() as i64,
        );
    }
    let per = started.elapsed().as_nanos() as f64 / n as f64;
    println!("clock read + observe_between:  {per:.1} ns");

    // Two threads on one histogram (two sentiment workers share none, but the worst case).
    let shared = Arc::new(LatencyHistogram::default());
    let latencies = Arc::new(latencies);
    let started = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (shared, latencies) = (shared.clone(), latencies.clone());
            std::thread::spawn(move || {
                for i in 0..n {
                    shared.observe(black_box(latencies[(i % 1024) as usize]));
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    let per = started.elapsed().as_nanos() as f64 / n as f64;
    println!("observe, two threads, shared:  {per:.1} ns per observation pair");
    println!("count {} (expected {})", shared.snapshot().count(), 2 * n);
}
