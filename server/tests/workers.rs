//! `pipebook worker` processes in the server's consumer group, on the embedded broker: three
//! child processes and the server's own worker share `reviews`; one child is `kill -9`ed mid-way
//! and the group recovers with nothing lost; the members view (from the heartbeats on
//! `pipebook.workers`) shows who is alive, who is gone and who left cleanly. An aggregate, an
//! indexer and a Parquet worker process, each beside the server's own member of its stage,
//! share the partitions and show as members; a `kill -9`ed one is shown gone and the server's
//! takes its partitions. Two aggregate worker processes, one `kill -9`ed, give the windows of
//! one member over the same input.

mod common;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use app::api::{
    AggregateConfig, EnrichedReview, GROUP_AGGREGATE, GROUP_INDEXER, GROUP_PARQUET, MemberState,
    MemberView, TOPIC_SENTIMENT,
};
use common::aggregate::{assert_counted_as_one, one_member_alone, stream_with_late_tenth};
use common::elastic::TestElasticsearch;
use common::{
    TestEngine, eventually, group_lag, high_sum, read_all, start_engine, start_engine_with,
    start_labelling, stream_reviews,
};
use pipebook::aggregate::checkpoint;
use pipebook::aggregate::partitions::{Partitions, merged_view};
use pipebook::index::SearchSettings;
use pipebook::pipeline::{Engine, EngineSettings};
use pipebook::sentiment::GROUP;
use serde_json::json;

const REVIEWS: u64 = 20_000;

/// The worker processes this test started; killed (SIGKILL) when dropped, so a failing test
/// leaves none behind.
struct Workers(Vec<Child>);

impl Workers {
    fn spawn(stage: &str, brokers: &str, n: usize) -> Self {
        Self::spawn_with(stage, brokers, n, &[])
    }

    /// With more flags (`--elasticsearch-url …`, `--parquet-dir …`).
    fn spawn_with(stage: &str, brokers: &str, n: usize, flags: &[&str]) -> Self {
        let children = (0..n)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_pipebook"))
                    .args(["worker", "--stage", stage, "--brokers", brokers])
                    .args(flags)
                    .env_remove("PIPEBOOK_KAFKA_BROKERS")
                    .env_remove("PIPEBOOK_WORKER_GROUP")
                    .env_remove("PIPEBOOK_ELASTICSEARCH_URL")
                    .env_remove("PIPEBOOK_ELASTICSEARCH_INDEX")
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .expect("spawn pipebook worker")
            })
            .collect();
        Self(children)
    }

    fn pids(&self) -> Vec<u32> {
        self.0.iter().map(Child::id).collect()
    }

    /// `kill -9` of the child with this pid.
    fn kill_9(&mut self, pid: u32) {
        let child = self
            .0
            .iter_mut()
            .find(|c| c.id() == pid)
            .expect("our child");
        child.kill().expect("SIGKILL");
        let _ = child.wait();
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

fn members(engine: &Engine) -> Vec<MemberView> {
    engine
        .subscribe()
        .borrow()
        .pipeline
        .stage("sentiment")
        .map(|stage| stage.members.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.group == GROUP)
        .collect()
}

fn count(members: &[MemberView], state: MemberState) -> usize {
    members.iter().filter(|m| m.state == state).count()
}

/// Waits (generously: the machine may be shared) for the group to catch up; on timeout, says
/// what the group and its members looked like.
async fn wait_for_lag_zero(engine: &Engine) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while tokio::time::Instant::now() < deadline {
        if group_lag(engine, GROUP).await == Some(0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let groups = engine.groups().await.unwrap_or_default();
    let group = groups.iter().find(|g| g.group == GROUP);
    panic!(
        "group lag not 0 after 300 s: group {group:#?}\nmembers {:#?}\ntimeline {:#?}",
        members(engine),
        engine.subscribe().borrow().sentiment.rebalances
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_and_the_servers_worker_survive_a_kill_9() {
    let t = start_engine().await;
    let engine = &t.engine;
    let brokers = engine.kafka().bootstrap_servers.clone();
    engine
        .start_stage("sentiment", json!({"workers": 1}))
        .await
        .expect("the server's own worker starts");
    let mut workers = Workers::spawn("sentiment", &brokers, 3);
    let pids = workers.pids();

    // Four members, one in the server, three remote with their pids; the partitions settled.
    let settled = eventually("4 members alive", Duration::from_secs(90), || async {
        let members = members(engine);
        let held: usize = members.iter().map(|m| m.partitions.len()).sum();
        (count(&members, MemberState::Alive) == 4 && held == 3).then_some(members)
    })
    .await;
    assert_eq!(settled.iter().filter(|m| m.in_server).count(), 1);
    for pid in &pids {
        let member = settled
            .iter()
            .find(|m| m.pid == *pid)
            .expect("every child is a member");
        assert!(!member.in_server && !member.host.is_empty(), "{member:?}");
        assert_eq!(member.name, format!("p{pid}-worker-1"));
    }

    // 20,000 reviews; once a share is labelled, the child holding most partitions is killed.
    let killed_at = std::sync::Mutex::new(None);
    let kill_mid_way = async {
        eventually("work under way", Duration::from_secs(120), || async {
            (high_sum(engine, TOPIC_SENTIMENT).await >= 3_000).then_some(())
        })
        .await;
        // Between a rebalance's revoke and assign nobody holds anything: wait for an owner.
        let victim = eventually(
            "a child holding partitions",
            Duration::from_secs(60),
            || async {
                members(engine)
                    .into_iter()
                    .filter(|m| !m.in_server && m.state == MemberState::Alive)
                    .filter(|m| !m.partitions.is_empty())
                    .max_by_key(|m| m.partitions.len())
            },
        )
        .await;
        *killed_at.lock().expect("lock") = Some(chrono::Utc::now().timestamp_millis());
        workers.kill_9(victim.pid);
        victim
    };
    let ((), victim) = tokio::join!(stream_reviews(engine, REVIEWS, 31), kill_mid_way);
    let killed_at = killed_at.into_inner().expect("lock").expect("killed");
    let labelled_before_the_end = high_sum(engine, TOPIC_SENTIMENT).await;
    println!(
        "killed {} at {labelled_before_the_end} labelled",
        victim.name
    );

    wait_for_lag_zero(engine).await;
    let ids: HashSet<String> = read_all(engine, TOPIC_SENTIMENT)
        .await
        .iter()
        .map(|m| {
            let enriched: EnrichedReview = serde_json::from_str(&m.value).expect("JSON");
            enriched.review.review_id
        })
        .collect();
    assert_eq!(
        ids.len() as u64,
        REVIEWS,
        "every review labelled, none lost"
    );

    // 3 alive, the killed one gone.
    let after = eventually("3 alive, 1 gone", Duration::from_secs(60), || async {
        let members = members(engine);
        (count(&members, MemberState::Alive) == 3 && count(&members, MemberState::Gone) == 1)
            .then_some(members)
    })
    .await;
    let gone = after
        .iter()
        .find(|m| m.state == MemberState::Gone)
        .expect("gone");
    assert_eq!(gone.pid, victim.pid);
    assert!(gone.partitions.is_empty());

    // The in-server worker saw the group rebalance after the kill (its partitions moved).
    let events = engine.subscribe().borrow().sentiment.rebalances.clone();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "assigned" && e.at >= killed_at),
        "no rebalance on the timeline after the kill: {events:?}"
    );

    // Ctrl-C (SIGTERM here) leaves cleanly: the process exits 0 and the member says goodbye.
    let leaver = *pids.iter().find(|p| **p != victim.pid).expect("a survivor");
    let child = workers
        .0
        .iter_mut()
        .find(|c| c.id() == leaver)
        .expect("child");
    // SAFETY: a plain kill(2) of a child this test spawned and has not reaped.
    let sent = unsafe { libc::kill(leaver as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let status = child.wait().expect("exits");
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    eventually("the leaver left", Duration::from_secs(30), || async {
        members(engine)
            .iter()
            .any(|m| m.pid == leaver && m.state == MemberState::Left)
            .then_some(())
    })
    .await;
    // `GET /api/workers` lists the same members (all stages).
    let all = engine.members();
    assert!(
        all.iter()
            .any(|m| m.pid == victim.pid && m.state == MemberState::Gone)
    );
    assert!(all.iter().all(|m| m.stage == "sentiment"), "{all:?}");
    drop(workers);
    engine.shutdown().await;
}

/// The members of `group` of the stage `stage`, as the snapshot's `pipeline.stages` carries them.
fn stage_members(engine: &Engine, stage: &str, group: &str) -> Vec<MemberView> {
    engine
        .subscribe()
        .borrow()
        .pipeline
        .stage(stage)
        .map(|status| {
            status
                .members
                .iter()
                .filter(|m| m.group == group)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// An engine (its settings changed by `adjust`) running `stage` with its defaults.
async fn engine_running(stage: &str, adjust: impl FnOnce(&mut EngineSettings)) -> TestEngine {
    let t = start_engine_with(adjust).await;
    t.engine
        .start_stage(stage, json!({}))
        .await
        .unwrap_or_else(|error| panic!("the server's {stage} starts: {error}"));
    t
}

fn brokers(engine: &Engine) -> String {
    engine.kafka().bootstrap_servers.clone()
}

/// A stage that runs one member per process, started in the server (named `server_member`)
/// with `workers` holding one `pipebook worker` process of it: both members alive with the
/// partitions of `reviews.sentiment` split between them, each once; then `kill -9` of the
/// process: it is shown gone, holding nothing, and the server's member holds every partition.
/// Returns the members as they settled, before the kill.
async fn one_worker_process_shares_and_survives_a_kill_9(
    engine: &Engine,
    stage: &str,
    group: &str,
    server_member: &str,
    mut workers: Workers,
) -> Vec<MemberView> {
    let pid = workers.pids()[0];
    let partitions = engine.kafka().topic_partitions as usize;
    assert!(
        partitions >= 2,
        "the group can split {partitions} partitions"
    );
    let settled = eventually(
        &format!("2 {stage} members sharing the partitions"),
        Duration::from_secs(120),
        || async {
            let members = stage_members(engine, stage, group);
            let held: usize = members.iter().map(|m| m.partitions.len()).sum();
            (count(&members, MemberState::Alive) == 2
                && held == partitions
                && members.iter().all(|m| !m.partitions.is_empty()))
            .then_some(members)
        },
    )
    .await;
    let server = settled.iter().find(|m| m.in_server).expect("in-server");
    assert_eq!(server.name, server_member);
    assert_eq!(server.stage, stage);
    let remote = settled.iter().find(|m| m.pid == pid).expect("the child");
    assert!(!remote.in_server && !remote.host.is_empty(), "{remote:?}");
    assert_eq!(remote.name, format!("p{pid}-{stage}"));
    assert_eq!(remote.stage, stage);
    let mut all: Vec<i32> = settled.iter().flat_map(|m| m.partitions.clone()).collect();
    all.sort_unstable();
    assert_eq!(all, (0..partitions as i32).collect::<Vec<_>>(), "each once");

    // kill -9: the child falls silent and is shown gone, holding nothing; once the group's
    // session times out, the server's member holds every partition.
    workers.kill_9(pid);
    eventually(
        &format!("the killed {stage} child gone, the server holding everything"),
        Duration::from_secs(180),
        || async {
            let members = stage_members(engine, stage, group);
            let gone = members
                .iter()
                .any(|m| m.pid == pid && m.state == MemberState::Gone && m.partitions.is_empty());
            let server_holds_all = members.iter().any(|m| {
                m.in_server && m.state == MemberState::Alive && m.partitions.len() == partitions
            });
            (gone && server_holds_all).then_some(())
        },
    )
    .await;
    settled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregate_worker_process_and_the_servers_aggregate_are_members() {
    let t = engine_running("aggregate", |_| {}).await;
    let engine = &t.engine;
    let workers = Workers::spawn("aggregate", &brokers(engine), 1);
    let pid = workers.pids()[0];
    let settled = one_worker_process_shares_and_survives_a_kill_9(
        engine,
        "aggregate",
        GROUP_AGGREGATE,
        "aggregate",
        workers,
    )
    .await;
    // The members are in the stage's status only (`pipeline.stages[].members`), which is
    // where `settled` was read; the aggregate view carries none of its own.
    assert!(settled.iter().any(|m| m.pid == pid));
    let view = serde_json::to_value(engine.aggregates(None)).expect("JSON");
    assert!(view.get("members").is_none(), "{view}");
    engine.shutdown().await;
}

/// The indexers share one search engine: an Elasticsearch-API server both write to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indexer_worker_process_and_the_servers_indexer_are_members() {
    let Some(search) = TestElasticsearch::start() else {
        return;
    };
    let elastic = search.settings("members");
    let index = elastic.index.clone();
    let t = engine_running("indexer", |s| s.search = SearchSettings::Elastic(elastic)).await;
    let engine = &t.engine;
    let workers = Workers::spawn_with(
        "indexer",
        &brokers(engine),
        1,
        &[
            "--elasticsearch-url",
            &search.url,
            "--elasticsearch-index",
            &index,
        ],
    );
    one_worker_process_shares_and_survives_a_kill_9(
        engine,
        "indexer",
        GROUP_INDEXER,
        "indexer-1",
        workers,
    )
    .await;
    engine.shutdown().await;
}

/// A Parquet worker process writes to a folder of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parquet_worker_process_and_the_servers_sink_are_members() {
    let t = engine_running("parquet", |_| {}).await;
    let engine = &t.engine;
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let dir = elsewhere.path().to_string_lossy().into_owned();
    let workers = Workers::spawn_with("parquet", &brokers(engine), 1, &["--parquet-dir", &dir]);
    let settled = one_worker_process_shares_and_survives_a_kill_9(
        engine,
        "parquet",
        GROUP_PARQUET,
        "parquet-1",
        workers,
    )
    .await;
    // Each sink's heartbeat says where its files are: the process's folder on its own disk,
    // the server's under its data dir.
    let output = |in_server: bool| {
        settled
            .iter()
            .find(|m| m.in_server == in_server)
            .and_then(|m| m.output.clone())
            .unwrap_or_else(|| panic!("a sink's heartbeat carries its files: {settled:?}"))
    };
    assert_eq!(std::path::Path::new(&output(false).dir), elsewhere.path());
    assert_eq!(
        std::path::Path::new(&output(true).dir),
        t.dir.path().join("parquet")
    );
    engine.shutdown().await;
}

/// Two `pipebook worker --stage aggregate` processes in one group share the 3 partitions of
/// `reviews.sentiment`; one is `kill -9`ed mid-way, with no last checkpoint and no commit, and
/// the other takes its partitions over from the changelog. The windows merged from the group's
/// changelog (each partition's latest state, as whoever is assigned it restores it) equal those
/// of one member over the same input: the same counts, nothing counted twice, the same late
/// records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_aggregate_processes_one_killed_give_the_windows_of_one() {
    const PAIR: &str = "aggregate-processes";
    const N: u64 = 6_000;
    let t = start_engine().await;
    let engine = &t.engine;
    let partitions = engine.kafka().topic_partitions;
    assert_eq!(partitions, 3, "the test splits 3 partitions");
    start_labelling(engine, 2).await;
    let mut workers = Workers::spawn_with("aggregate", &brokers(engine), 2, &["--group", PAIR]);
    let pair_members = || {
        engine
            .members()
            .into_iter()
            .filter(|m| m.stage == "aggregate" && m.group == PAIR)
            .collect::<Vec<_>>()
    };
    eventually(
        "both processes holding partitions",
        Duration::from_secs(120),
        || async {
            let members = pair_members();
            (count(&members, MemberState::Alive) == 2
                && members.iter().all(|m| !m.partitions.is_empty()))
            .then_some(())
        },
    )
    .await;
    stream_with_late_tenth(engine, N).await;
    eventually("a third labelled", Duration::from_secs(120), || async {
        (high_sum(engine, TOPIC_SENTIMENT).await >= (N / 3) as i64).then_some(())
    })
    .await;
    let victim = pair_members()
        .into_iter()
        .find(|m| m.state == MemberState::Alive && !m.partitions.is_empty())
        .expect("a process holding partitions");
    workers.kill_9(victim.pid);
    eventually("all labelled", Duration::from_secs(300), || async {
        (group_lag(engine, GROUP).await == Some(0)
            && high_sum(engine, TOPIC_SENTIMENT).await >= N as i64)
            .then_some(())
    })
    .await;
    let records = high_sum(engine, TOPIC_SENTIMENT).await as u64;

    // The survivor holds every partition once the group's session of the killed one ends, and
    // checkpoints each after reading it to its end.
    let kafka = engine.kafka().clone();
    let merged = eventually(
        "the pair's changelog covering every record",
        Duration::from_secs(240),
        || {
            let kafka = kafka.clone();
            async move {
                let all: Vec<i32> = (0..partitions).collect();
                let restored = tokio::task::spawn_blocking(move || {
                    checkpoint::restore(&kafka, PAIR, &all, None)
                })
                .await
                .expect("restore task")
                .ok()?;
                let held: Partitions = restored
                    .records
                    .into_iter()
                    .map(|(partition, record)| (partition, record.held))
                    .collect();
                let view = merged_view(&held);
                (held.len() == partitions as usize
                    && view.counted + view.late_records + view.duplicates == records)
                    .then_some(view)
            }
        },
    )
    .await;
    let survivor = pair_members()
        .into_iter()
        .find(|m| m.pid != victim.pid)
        .expect("the survivor");
    assert_eq!(survivor.state, MemberState::Alive, "{survivor:?}");

    // One member alone, in this process, over the same input in one go.
    let reference = one_member_alone(engine, &AggregateConfig::default()).await;
    assert_counted_as_one(&merged, &reference);
    assert!(merged.counted <= N, "nothing counted twice");
    drop(workers);
    engine.shutdown().await;
}
