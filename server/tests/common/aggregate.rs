//! The aggregate stage's run loop started in the test's own process, as `pipebook worker --stage
//! aggregate` would start it, and the comparison of two stages' windows.

use std::sync::Arc;
use std::time::Duration;

use app::api::{AggregateConfig, AggregateView, StageState};
use pipebook::aggregate::AggregateMetrics;
use pipebook::aggregate::run::{AggregateSetup, run};
use pipebook::pipeline::Engine;
use pipebook::stage::Lifecycle;
use serde_json::json;

/// Starts the aggregate run loop as a process of its own would (`pipebook worker --stage
/// aggregate`): its own consumer in `config.group`, its own producers and metrics.
pub fn member(
    engine: &Engine,
    name: &str,
    config: &AggregateConfig,
) -> (Arc<Lifecycle>, Arc<AggregateMetrics>) {
    let spec = pipebook::aggregate::validate(config).expect("valid config");
    let metrics = Arc::new(AggregateMetrics::default());
    let life = Lifecycle::new(name, false, true);
    let setup = AggregateSetup {
        config: config.clone(),
        spec,
        kafka: engine.kafka().clone(),
        metrics: metrics.clone(),
        member: name.to_owned(),
        registry: None,
    };
    life.launch(json!({}), move |ctx| run(setup, ctx))
        .expect("launch");
    (life, metrics)
}

/// Same windows: the same kinds, bounds, keys, counts per sentiment and per star, top
/// businesses and closed flags; averages equal up to float rounding (sums are added in another
/// order when triggers cut the stream elsewhere).
pub fn assert_same_windows(got: &AggregateView, want: &AggregateView) {
    assert_eq!(got.windows.len(), want.windows.len(), "window count");
    for (g, w) in got.windows.iter().zip(&want.windows) {
        assert_eq!(
            (
                g.kind,
                g.start,
                g.end,
                &g.key,
                &g.counts,
                g.stars,
                &g.top_businesses,
                g.closed
            ),
            (
                w.kind,
                w.start,
                w.end,
                &w.key,
                &w.counts,
                w.stars,
                &w.top_businesses,
                w.closed
            ),
        );
        let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() < 1e-9,
            (a, b) => a == b,
        };
        assert!(close(g.avg_score, w.avg_score), "{g:?} vs {w:?}");
        assert!(close(g.avg_stars, w.avg_stars), "{g:?} vs {w:?}");
    }
}

/// Streams `n` reviews at 1,000/s, a tenth of them 10 minutes late (beyond the default 30 s
/// lateness): the input the crash tests split between members and compare with one alone.
pub async fn stream_with_late_tenth(engine: &Engine, n: u64) {
    engine
        .start_stage(
            "streamer",
            json!({"rate": 1000, "chunk_size": 100, "limit": n, "seed": 64,
                   "late_share": 0.1, "late_by_secs": 600}),
        )
        .await
        .expect("streamer");
}

/// The windows one member alone (group `single`) makes of everything in `reviews.sentiment`, in
/// one go, with `config`'s window settings.
pub async fn one_member_alone(engine: &Engine, config: &AggregateConfig) -> AggregateView {
    let single = AggregateConfig {
        group: "single".into(),
        trigger_ms: 0,
        ..config.clone()
    };
    let (one, metrics) = member(engine, "single", &single);
    super::eventually(
        "the single member done",
        Duration::from_secs(180),
        || async { (one.state() != StageState::Running).then_some(()) },
    )
    .await;
    assert_eq!(
        one.state(),
        StageState::Stopped,
        "{:?}",
        one.status(Default::default())
    );
    metrics.view()
}

/// `got` counted as one member alone did (`reference`): the same records counted, late and
/// skipped as duplicates, and the same windows.
pub fn assert_counted_as_one(got: &AggregateView, reference: &AggregateView) {
    assert!(reference.late_records > 0, "the test needs late records");
    assert_eq!(
        (got.counted, got.late_records, got.duplicates),
        (
            reference.counted,
            reference.late_records,
            reference.duplicates
        ),
        "counted, late, duplicates"
    );
    assert_same_windows(got, reference);
}
