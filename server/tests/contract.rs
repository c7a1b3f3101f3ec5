//! The one stage contract on the embedded broker: crash and restart behave the same for every
//! stage, and a crashed stage leaves nothing of itself running.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use app::api::{GROUP_AGGREGATE, GROUP_INDEXER, SentimentView};
use common::{eventually, start_engine};
use pipebook::pipeline::Engine;
use pipebook::stage::StageId;
use serde_json::json;

fn sentiment(engine: &Engine) -> SentimentView {
    engine.subscribe().borrow().sentiment.clone()
}

/// Partitions of `reviews` held by running workers, once every worker holds some.
fn held_partitions(view: &SentimentView) -> BTreeSet<i32> {
    view.workers
        .iter()
        .filter(|w| w.state == "running")
        .flat_map(|w| w.partitions.iter().copied())
        .collect()
}

async fn members(engine: &Engine, group: &str) -> Option<Vec<String>> {
    let groups = engine.groups().await.ok()?;
    let group = groups.into_iter().find(|g| g.group == group)?;
    Some(group.members.into_iter().map(|m| m.member).collect())
}

/// Crashing the sentiment stage used to abort its run task only: its workers went on consuming
/// as orphans (still `running`, still holding partitions), and a restart added new workers
/// beside them, so the new run never held every partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_sentiment_stage_kills_its_workers_and_a_restart_owns_every_partition() {
    let t = start_engine().await;
    let engine = &t.engine;
    engine
        .start_stage("sentiment", json!({"workers": 2}))
        .await
        .expect("sentiment starts");
    let all: BTreeSet<i32> = [0, 1, 2].into();
    eventually(
        "the partitions assigned",
        Duration::from_secs(60),
        || async { (held_partitions(&sentiment(engine)) == all).then_some(()) },
    )
    .await;

    engine.crash_stage("sentiment").expect("crash");
    eventually("every worker killed", Duration::from_secs(30), || async {
        let view = sentiment(engine);
        let states: Vec<String> = view.workers.iter().map(|w| w.state.clone()).collect();
        (states.len() == 2 && states.iter().all(|s| s == "killed")).then_some(())
    })
    .await;
    let status = engine.pipeline_status();
    let stage = status
        .stages
        .iter()
        .find(|s| s.id == "sentiment")
        .expect("stage");
    assert_eq!(stage.state, app::api::StageState::Failed);

    engine.restart_stage("sentiment").await.expect("restart");
    eventually(
        "the new workers hold every partition",
        Duration::from_secs(60),
        || async {
            let view = sentiment(engine);
            let ids: Vec<&str> = view.workers.iter().map(|w| w.id.as_str()).collect();
            (ids == ["worker-1", "worker-2"] && held_partitions(&view) == all).then_some(())
        },
    )
    .await;
    engine.shutdown().await;
}

/// Crashing the indexer or the Parquet sink used to abort them, dropping their group consumers
/// on a runtime thread without running their ending: the member stayed registered for good. Now
/// the crash tells them, they close off the runtime threads and leave; a restart works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_group_consumers_close_and_leave_and_start_again() {
    let t = start_engine().await;
    let engine = &t.engine;
    for (stage, group) in [("indexer", GROUP_INDEXER), ("parquet", "pipebook-parquet")] {
        engine
            .start_stage(stage, json!({}))
            .await
            .unwrap_or_else(|e| panic!("{stage} starts: {e}"));
        eventually(
            &format!("{stage} joins"),
            Duration::from_secs(60),
            || async {
                members(engine, group)
                    .await
                    .filter(|m| !m.is_empty())
                    .map(|_| ())
            },
        )
        .await;
        engine.crash_stage(stage).expect("crash");
        eventually(
            &format!("{stage} leaves"),
            Duration::from_secs(30),
            || async {
                members(engine, group)
                    .await
                    .filter(|m| m.is_empty())
                    .map(|_| ())
            },
        )
        .await;
        engine
            .start_stage(stage, json!({}))
            .await
            .unwrap_or_else(|e| panic!("{stage} starts again: {e}"));
        let status = engine.pipeline_status();
        let state = status
            .stages
            .iter()
            .find(|s| s.id == stage)
            .map(|s| s.state);
        assert_eq!(state, Some(app::api::StageState::Running), "{stage}");
    }
    engine.shutdown().await;
}

/// The aggregate stage assigns its partitions itself, so the embedded broker never listed its
/// group, though it commits there and `docs/api.md` says cell 2 shows its lag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aggregate_group_is_listed_on_the_embedded_broker() {
    let t = start_engine().await;
    let engine = &t.engine;
    engine
        .start_stage("aggregate", json!({"trigger_ms": 200}))
        .await
        .expect("aggregate starts");
    eventually(
        "the aggregate group listed",
        Duration::from_secs(30),
        || async { members(engine, GROUP_AGGREGATE).await.map(|_| ()) },
    )
    .await;
    engine.shutdown().await;
}

/// Every stage id starts, refuses a second start, stops, and answers the same errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stage_runs_through_the_same_lifecycle() {
    let t = start_engine().await;
    let engine = &t.engine;
    // Every stage but the broker's toggle (stopping it would stop the others' broker).
    for stage in StageId::ALL
        .into_iter()
        .filter(|id| *id != StageId::Broker)
        .map(StageId::as_str)
    {
        engine
            .start_stage(stage, json!({}))
            .await
            .unwrap_or_else(|e| panic!("{stage} starts: {e}"));
        let again = engine.start_stage(stage, json!({})).await;
        assert!(
            matches!(
                again,
                Err(pipebook::pipeline::EngineError::Stage(
                    pipebook::stage::StageError::AlreadyRunning(_)
                ))
            ),
            "{stage}: {again:?}"
        );
    }
    engine.stop_all().await.expect("stop all");
    let status = engine.pipeline_status();
    assert_eq!(status.stages.len(), 6);
    for stage in &status.stages {
        assert_ne!(stage.state, app::api::StageState::Running, "{}", stage.id);
        let stopped = engine.stop_stage(&stage.id).await;
        assert!(
            matches!(
                stopped,
                Err(pipebook::pipeline::EngineError::Stage(
                    pipebook::stage::StageError::NotRunning(_)
                ))
            ),
            "{}: {stopped:?}",
            stage.id
        );
    }
    assert!(matches!(
        engine.start_stage("nope", json!({})).await,
        Err(pipebook::pipeline::EngineError::UnknownStage(_))
    ));
    engine.shutdown().await;
}
