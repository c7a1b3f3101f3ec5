//! Incidents on the real embedded broker and search index: each replays from its seed to the
//! same before-figures, is not solved by doing nothing, and is solved by its reference fix.

mod common;

use std::time::Duration;

use app::api::{ActiveIncident, IncidentPhase, TOPIC_REVIEWS};
use common::{eventually, start_engine};
use pipebook::incidents;
use pipebook::pipeline::Engine;
use serde_json::json;
use std::sync::Arc;

const SEED: u64 = 1717;

fn active(engine: &Engine) -> Option<ActiveIncident> {
    engine.incidents().view().active
}

/// Starts `id` with `seed` and waits until its trouble runs; returns its before-figures.
async fn start(engine: &Arc<Engine>, id: &str, seed: u64) -> Vec<(String, i64)> {
    incidents::start(engine, id, seed).expect("incident starts");
    let running = eventually(
        &format!("{id} running"),
        Duration::from_secs(90),
        || async {
            let incident = active(engine)?;
            assert_ne!(
                incident.phase,
                IncidentPhase::Failed,
                "{id}: {:?}",
                incident.error
            );
            (incident.phase == IncidentPhase::Running).then_some(incident)
        },
    )
    .await;
    running
        .figures
        .into_iter()
        .map(|f| (f.name, f.before))
        .collect()
}

/// Lets a few snapshots go by (each moves an incident on at most one part).
async fn snapshots(engine: &Engine, n: usize) {
    let mut receiver = engine.subscribe();
    for _ in 0..n {
        receiver.changed().await.expect("snapshots go on");
    }
}

async fn solved(engine: &Engine, id: &str) -> ActiveIncident {
    eventually(
        &format!("{id} solved"),
        Duration::from_secs(120),
        || async { active(engine).filter(|a| a.phase == IncidentPhase::Solved) },
    )
    .await
}

/// The before-figures of two runs with the same seed are the same, and doing nothing for a few
/// seconds solves nothing. The second run is left running for the fix.
async fn replay_and_wait(engine: &Arc<Engine>, id: &str) -> Vec<(String, i64)> {
    let first = start(engine, id, SEED).await;
    snapshots(engine, 4).await;
    let idle = active(engine).expect("active");
    assert_eq!(
        idle.reached, 0,
        "{id}: nothing done, yet a part of the fix held"
    );
    assert_ne!(idle.phase, IncidentPhase::Solved);
    assert!(idle.write_up.is_none());
    let again = start(engine, id, SEED).await;
    assert_eq!(
        first, again,
        "{id}: the same seed gave other before-figures"
    );
    first
}

fn answer(engine: &Engine, choice: &str) {
    let snapshot = engine.subscribe().borrow().clone();
    engine
        .incidents()
        .answer(choice, &snapshot)
        .expect("a valid choice");
}

/// Stops the windows stage and starts it again with `config` (the fixes that change it).
async fn restart_aggregate(engine: &Engine, config: serde_json::Value) {
    engine.stop_stage("aggregate").await.expect("stop");
    engine
        .start_stage("aggregate", config.clone())
        .await
        .unwrap_or_else(|e| panic!("aggregate restarts with {config}: {e}"));
}

fn figure(before: &[(String, i64)], name: &str) -> i64 {
    before
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("figure {name:?} in {before:?}"))
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_fixed_by_workers_up_to_the_partition_count() {
    let t = start_engine().await;
    let engine = &t.engine;
    let before = replay_and_wait(engine, "slow-consumer").await;
    assert_eq!(figure(&before, "sentiment lag (reviews waiting)"), 200);
    for _ in 0..3 {
        engine.add_sentiment_worker().expect("worker added");
    }
    let done = solved(engine, "slow-consumer").await;
    assert!(
        done.write_up
            .is_some_and(|w| w.contains("got no partition"))
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_pill_is_fixed_by_dead_lettering_it() {
    let t = start_engine().await;
    let engine = &t.engine;
    replay_and_wait(engine, "poison-pill").await;
    let stuck = eventually("one partition stuck", Duration::from_secs(60), || async {
        let lag = active(engine)?.figures.first()?.now?;
        (lag > 0 && lag < 200).then_some(lag)
    })
    .await;
    assert!(stuck > 0);
    // Cell 3's form leaves dead_letter_after at its default (3 attempts).
    engine.stop_stage("sentiment").await.expect("stop");
    engine
        .start_stage("sentiment", json!({"workers": 1}))
        .await
        .expect("sentiment with the defaults");
    let done = solved(engine, "poison-pill").await;
    assert!(done.write_up.is_some());
    let dead = common::read_all(engine, app::api::TOPIC_DLQ).await;
    assert!(
        dead.iter()
            .any(|m| m.value.contains("gave up after 3 attempts")),
        "the poison review reached the dead-letter topic with its reason"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_key_is_found_in_the_partitions() {
    let t = start_engine().await;
    let engine = &t.engine;
    let before = replay_and_wait(engine, "hot-key").await;
    assert!(
        figure(&before, "busiest partition's share (%)") >= 60,
        "{before:?}"
    );
    // Which partition is hot depends on the key's hash: read it as a learner does, in cell 2.
    let partitions = before
        .iter()
        .filter(|(name, _)| name.starts_with("records in reviews-"))
        .count();
    assert_eq!(partitions, 3, "{before:?}");
    let hot = (0..partitions)
        .max_by_key(|p| figure(&before, &format!("records in reviews-{p}")))
        .expect("partitions");
    let cold = (hot + 1) % partitions;
    answer(engine, &format!("{TOPIC_REVIEWS}-{cold}"));
    snapshots(engine, 2).await;
    assert_eq!(
        active(engine).expect("active").reached,
        0,
        "a wrong answer solved it"
    );
    answer(engine, &format!("{TOPIC_REVIEWS}-{hot}"));
    solved(engine, "hot-key").await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_partition_is_fixed_by_feeding_it() {
    let t = start_engine().await;
    let engine = &t.engine;
    let before = replay_and_wait(engine, "idle-partition").await;
    assert_eq!(figure(&before, "records in the idle partition"), 0);
    engine
        .start_stage("streamer", json!({"rate": 200, "limit": 300, "seed": 5}))
        .await
        .expect("streamer");
    solved(engine, "idle-partition").await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_data_is_fixed_by_allowing_more_lateness() {
    let t = start_engine().await;
    let engine = &t.engine;
    replay_and_wait(engine, "late-data").await;
    restart_aggregate(engine, json!({"allowed_lateness_secs": 900})).await;
    solved(engine, "late-data").await;
    engine.shutdown().await;
}

/// The incident's other reference fix: keep the lateness, but send the late reviews to
/// `reviews.late` instead of dropping them; they then show up in that topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_data_is_fixed_by_keeping_late_reviews_in_their_topic() {
    let t = start_engine().await;
    let engine = &t.engine;
    replay_and_wait(engine, "late-data").await;
    restart_aggregate(engine, json!({"late_policy": "topic"})).await;
    solved(engine, "late-data").await;
    eventually(
        "late reviews in reviews.late",
        Duration::from_secs(60),
        || async {
            let incident = active(engine)?;
            let kept = incident
                .figures
                .iter()
                .find(|f| f.name == "records in reviews.late")?
                .now?;
            (kept > 0).then_some(())
        },
    )
    .await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_is_fixed_by_starting_the_broker_and_loses_nothing() {
    let t = start_engine().await;
    let engine = &t.engine;
    replay_and_wait(engine, "broker-outage").await;
    engine
        .start_stage("broker", serde_json::Value::Null)
        .await
        .expect("broker starts");
    answer(
        engine,
        "In the producer: sent again until the broker acknowledged them",
    );
    solved(engine, "broker-outage").await;
    engine.shutdown().await;
}

/// A restart after the learner started the broker again does not stop it again: the fix stays,
/// and the answer still solves the incident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_the_fix_keeps_the_broker_running() {
    let t = start_engine().await;
    replay_and_wait(&t.engine, "broker-outage").await;
    t.engine
        .start_stage("broker", serde_json::Value::Null)
        .await
        .expect("broker starts");
    eventually(
        "the first part of the fix",
        Duration::from_secs(60),
        || async { active(&t.engine).filter(|a| a.reached >= 1) },
    )
    .await;
    let t = restart(t).await;
    let engine = &t.engine;
    eventually("the trouble resumed", Duration::from_secs(60), || async {
        (!engine.incidents().resuming()).then_some(())
    })
    .await;
    assert_eq!(
        engine.pipeline_status().kafka.state,
        app::api::StageState::Running,
        "the resumed incident stopped the broker the learner had started"
    );
    answer(
        engine,
        "In the producer: sent again until the broker acknowledged them",
    );
    solved(engine, "broker-outage").await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_found_in_the_sinks() {
    let t = start_engine().await;
    let engine = &t.engine;
    let before = replay_and_wait(engine, "duplicates").await;
    assert_eq!(figure(&before, "records in reviews"), 300);
    eventually(
        "the windows drop copies",
        Duration::from_secs(60),
        || async { (engine.aggregates(None).duplicates >= 1).then_some(()) },
    )
    .await;
    answer(
        engine,
        "In the sinks: the windows drop ids they counted, the index overwrites by id",
    );
    solved(engine, "duplicates").await;
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_outage_holds_offsets_back_until_it_returns() {
    let t = start_engine().await;
    let engine = &t.engine;
    let before = replay_and_wait(engine, "search-outage").await;
    // Before: the moment the trouble began, the backend still up.
    assert_eq!(figure(&before, "search down (1 = yes)"), 0);
    engine.set_search_outage(false);
    let done = solved(engine, "search-outage").await;
    assert!(done.figures.iter().all(|f| f.now.is_some()));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_incidents_and_choices_are_refused_by_name() {
    let t = start_engine().await;
    let engine = &t.engine;
    let err = incidents::start(engine, "nope", 1).expect_err("unknown id");
    assert!(err.to_string().starts_with("id:"), "{err}");
    let snapshot = engine.subscribe().borrow().clone();
    let err = engine
        .incidents()
        .answer("x", &snapshot)
        .expect_err("none running");
    assert!(err.to_string().starts_with("incident:"), "{err}");
    // A second start while the first is being set up would stop its stages under it.
    incidents::start(engine, "hot-key", 1).expect("first start");
    let err = incidents::start(engine, "hot-key", 2).expect_err("set-up under way");
    assert!(err.to_string().starts_with("incident:"), "{err}");
    let err = engine
        .incidents()
        .answer("reviews-9", &snapshot)
        .expect_err("not a choice");
    assert!(err.to_string().starts_with("choice:"), "{err}");
    assert_eq!(engine.incidents().view().incidents.len(), 8);
    engine.shutdown().await;
}

/// On a topic of 4 partitions, the hot key's figures and choices name all 4 (they were written
/// for 3), and the busiest of them is the right answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_key_reads_the_real_partition_count() {
    let t = common::start_engine_with(|s| s.topic_partitions = 4).await;
    let engine = &t.engine;
    let before = start(engine, "hot-key", SEED).await;
    let names: Vec<&str> = before.iter().map(|(n, _)| n.as_str()).collect();
    for p in 0..4 {
        assert!(
            names.contains(&format!("records in reviews-{p}").as_str()),
            "{names:?}"
        );
    }
    let total: i64 = (0..4)
        .map(|p| figure(&before, &format!("records in reviews-{p}")))
        .sum();
    assert_eq!(total, 200, "{before:?}");
    let question = active(engine).and_then(|a| a.question).expect("a question");
    assert_eq!(
        question.choices,
        (0..4)
            .map(|p| format!("{TOPIC_REVIEWS}-{p}"))
            .collect::<Vec<_>>()
    );
    let hot = (0..4)
        .max_by_key(|p| figure(&before, &format!("records in reviews-{p}")))
        .expect("partitions");
    answer(engine, &format!("{TOPIC_REVIEWS}-{hot}"));
    solved(engine, "hot-key").await;
    engine.shutdown().await;
}

/// The aggregate's group is reset like the others: after an earlier run counted other reviews
/// (a checkpoint of the same query exists), the incident's windows hold only its own burst, and
/// a restart with another query starts over from the incident's start, not from offset 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aggregate_counts_only_the_incidents_records() {
    let t = start_engine().await;
    let engine = &t.engine;
    common::stream_reviews(engine, 150, 3).await;
    engine
        .start_stage("sentiment", json!({"workers": 1}))
        .await
        .expect("sentiment");
    engine
        .start_stage("aggregate", json!({}))
        .await
        .expect("aggregate");
    eventually(
        "the earlier run counted",
        Duration::from_secs(90),
        || async { (common::counter(engine, "aggregate", "consumed") >= 150).then_some(()) },
    )
    .await;
    // Its checkpoint is written before its commit: wait until it committed everything.
    eventually(
        "the earlier run committed",
        Duration::from_secs(60),
        || async {
            (common::group_lag(engine, "pipebook-aggregate").await == Some(0)).then_some(())
        },
    )
    .await;
    assert!(engine.aggregates(None).counted >= 100);

    // idle-partition: 200 reviews, the aggregate started with the same (default) query.
    start(engine, "idle-partition", SEED).await;
    let consumed = || common::counter(engine, "aggregate", "consumed");
    eventually("the burst counted", Duration::from_secs(90), || async {
        (consumed() >= 200).then_some(())
    })
    .await;
    snapshots(engine, 3).await;
    assert_eq!(consumed(), 200, "the aggregate read earlier input");
    let counted = engine.aggregates(None).counted;
    assert!(
        counted <= 200,
        "windows restored from earlier input: {counted}"
    );
    let figures = active(engine).expect("active").figures;
    let now = figures
        .iter()
        .find(|f| f.name == "reviews counted")
        .and_then(|f| f.now)
        .expect("reviews counted");
    assert!(now <= 200, "{figures:?}");

    // Another query starts over — from the incident's start.
    restart_aggregate(engine, json!({"allowed_lateness_secs": 900})).await;
    eventually(
        "the burst counted again",
        Duration::from_secs(90),
        || async { (consumed() >= 200).then_some(()) },
    )
    .await;
    snapshots(engine, 3).await;
    assert_eq!(consumed(), 200, "started over from offset 0");
    engine.shutdown().await;
}

/// A restart of the server keeps the incident being worked on: id, seed, phase, before-figures,
/// hints shown and the answer; its fix still works afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_in_progress_survives_a_restart() {
    let t = start_engine().await;
    let before = start(&t.engine, "hot-key", SEED).await;
    t.engine.incidents().reveal_hint().expect("hint");
    let hot = (0..3)
        .max_by_key(|p| figure(&before, &format!("records in reviews-{p}")))
        .expect("partitions");
    answer(&t.engine, &format!("{TOPIC_REVIEWS}-{}", (hot + 1) % 3));
    let kept = active(&t.engine).expect("active");
    assert_eq!(
        kept.question.as_ref().and_then(|q| q.answered_right),
        Some(false)
    );

    let t = restart(t).await;
    let engine = &t.engine;
    let restored = active(engine).expect("the incident is back");
    assert_eq!(restored.id, "hot-key");
    assert_eq!(restored.seed, SEED);
    assert_eq!(restored.phase, IncidentPhase::Running);
    assert_eq!(restored.started_at, kept.started_at);
    assert_eq!(restored.hints, kept.hints);
    assert_eq!(restored.hints.len(), 1);
    assert_eq!(
        restored.question.as_ref().and_then(|q| q.answered_right),
        Some(false)
    );
    let restored_before: Vec<(String, i64)> = restored
        .figures
        .iter()
        .map(|f| (f.name.clone(), f.before))
        .collect();
    assert_eq!(restored_before, before);
    // The figures go on from the saved baseline, and the fix still solves it.
    let now = eventually(
        "figures after the restart",
        Duration::from_secs(60),
        || async { active(engine).filter(|a| a.figures.iter().all(|f| f.now.is_some())) },
    )
    .await;
    assert_eq!(now.reached, 0);
    assert_eq!(
        now.figures
            .iter()
            .find(|f| f.name == format!("records in reviews-{hot}"))
            .and_then(|f| f.now),
        Some(figure(&before, &format!("records in reviews-{hot}")))
    );
    answer(engine, &format!("{TOPIC_REVIEWS}-{hot}"));
    solved(engine, "hot-key").await;
    engine.shutdown().await;
}

/// Shuts the engine down and starts a new one on the same data dir, as a server restart does.
async fn restart(t: common::TestEngine) -> common::TestEngine {
    t.engine.shutdown().await;
    let common::TestEngine { engine, dir } = t;
    drop(engine);
    let engine = Engine::start(pipebook::pipeline::EngineSettings::embedded(dir.path()))
        .await
        .expect("restarted on the same data dir");
    common::TestEngine { engine, dir }
}
