//! What an incident reads and does: the baseline taken at its start, the live figures it reads
//! from a snapshot relative to that baseline, and the set-up steps (clean slate, burst, trouble).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use app::api::{
    GROUP_AGGREGATE, GROUP_INDEXER, Snapshot, StageState, TOPIC_AGGREGATE_CHANGELOG, TOPIC_REVIEWS,
    TOPIC_SENTIMENT,
};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::{Offset, TopicPartitionList};

use crate::aggregate::checkpoint;
use crate::index::SearchBackend;
use crate::pipeline::{Engine, EngineError};

/// The sentiment stage's default group (the one the notebook's forms start it in).
use crate::sentiment::GROUP as GROUP_SENTIMENT;

/// High watermarks of every topic's partitions when the incident started.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Baseline {
    pub highs: BTreeMap<String, Vec<i64>>,
    /// Documents in the search index.
    pub documents: i64,
}

impl Baseline {
    /// Partitions of `reviews` (3 unless the server was started with another count).
    pub fn review_partitions(&self) -> usize {
        self.highs.get(TOPIC_REVIEWS).map_or(3, Vec::len).max(1)
    }
}

/// One record of an incident's seeded burst into `reviews`.
#[derive(Debug, Clone, PartialEq)]
pub struct BurstRecord {
    /// `None`: the key's hash picks the partition, as for the producer stage.
    pub partition: Option<i32>,
    pub key: String,
    pub value: String,
    /// What the record is in the story (`pipebook.fault` header), e.g. `resent`.
    pub fault: Option<&'static str>,
}

/// One thing an incident's trouble does after the before-figures are taken.
pub enum Step {
    /// Starts a stage with the config built from the seed.
    Start(&'static str, fn(u64) -> serde_json::Value),
    /// The search backend fails every call.
    SearchDown,
    /// The embedded broker stops (the producer keeps its records and retries).
    StopBroker,
}

impl Step {
    /// A fault the learner undoes as the fix (the stages started are the scene, not the fault).
    pub fn is_fault(&self) -> bool {
        matches!(self, Step::SearchDown | Step::StopBroker)
    }
}

/// A snapshot read against the incident's baseline.
pub struct Live<'a> {
    pub snapshot: &'a Snapshot,
    pub base: &'a Baseline,
    /// The learner answered the incident's question right.
    pub answered_right: bool,
}

impl Live<'_> {
    /// Records written to `topic` since the incident started.
    pub fn since(&self, topic: &str) -> i64 {
        (0..self.partitions(topic))
            .map(|p| self.partition_since(topic, p))
            .sum()
    }

    fn partitions(&self, topic: &str) -> usize {
        self.snapshot.topic(topic).map_or(0, |t| t.partitions.len())
    }

    /// Partitions of `reviews` when the incident started, as a count to compare with.
    pub fn review_partitions(&self) -> i64 {
        i64::try_from(self.base.review_partitions()).unwrap_or(i64::MAX)
    }

    /// Records written to one partition of `topic` since the incident started.
    pub fn partition_since(&self, topic: &str, partition: usize) -> i64 {
        let high = self
            .snapshot
            .topic(topic)
            .and_then(|t| t.partitions.iter().find(|p| p.id as usize == partition))
            .map_or(0, |p| p.high);
        let base = self
            .base
            .highs
            .get(topic)
            .and_then(|highs| highs.get(partition))
            .copied()
            .unwrap_or(0);
        (high - base).max(0)
    }

    pub fn state(&self, stage: &str) -> StageState {
        self.snapshot
            .pipeline
            .stage(stage)
            .map(|s| s.state)
            .unwrap_or_default()
    }

    pub fn running(&self, stage: &str) -> bool {
        self.state(stage) == StageState::Running
    }

    /// A counter of a running stage (0 otherwise: a stopped stage's counters are an earlier run's).
    pub fn counter(&self, stage: &str, name: &str) -> i64 {
        if !self.running(stage) {
            return 0;
        }
        i64::try_from(self.snapshot.pipeline.counter(stage, name)).unwrap_or(i64::MAX)
    }

    /// A setting of a stage's running config.
    pub fn config(&self, stage: &str, key: &str) -> Option<serde_json::Value> {
        let status = self.snapshot.pipeline.stage(stage)?;
        status.config.as_ref()?.get(key).cloned()
    }

    /// Lag of `group` when the broker reports it; else what was written to its input since the
    /// start (the set-up committed the group at the end of its input, so that is its lag).
    pub fn lag(&self, group: &str, input: &str) -> i64 {
        self.snapshot
            .groups
            .iter()
            .find(|g| g.group == group && !g.partitions.is_empty())
            .map_or_else(|| self.since(input), |g| g.total_lag())
    }

    pub fn sentiment_lag(&self) -> i64 {
        self.lag(GROUP_SENTIMENT, TOPIC_REVIEWS)
    }

    pub fn indexer_lag(&self) -> i64 {
        self.lag(GROUP_INDEXER, TOPIC_SENTIMENT)
    }

    /// Sentiment workers running, and of those how many own no partition.
    pub fn workers(&self) -> (i64, i64) {
        if !self.running("sentiment") {
            return (0, 0);
        }
        let running: Vec<_> = self
            .snapshot
            .sentiment
            .workers
            .iter()
            .filter(|w| w.state == "running")
            .collect();
        let idle = running.iter().filter(|w| w.partitions.is_empty()).count();
        (running.len() as i64, idle as i64)
    }

    /// Documents added to the search index since the start (a copy overwrites its original).
    pub fn new_documents(&self) -> i64 {
        let now = self.snapshot.search.documents.unwrap_or(0);
        (i64::try_from(now).unwrap_or(i64::MAX) - self.base.documents).max(0)
    }

    /// The aggregate stage's view, when it runs (a stopped stage's view is an earlier run's).
    pub fn aggregate(&self) -> Option<&app::api::AggregateView> {
        self.running("aggregate")
            .then_some(&self.snapshot.aggregate)
    }
}

/// Ends a search outage, starts the broker if it is down, stops every stage, and moves the
/// sentiment, indexer and aggregate groups to the end of their inputs (so lag and the windows
/// count only the incident's records). Returns the high watermarks from then.
pub async fn clean_slate(engine: &Arc<Engine>) -> Result<Baseline, EngineError> {
    // The broker first: a producer waiting for acknowledgements stops only once it has them.
    engine.set_search_outage(false);
    if engine.pipeline_status().kafka.state != StageState::Running {
        engine
            .start_stage(
                crate::stage::StageId::Broker.as_str(),
                serde_json::Value::Null,
            )
            .await?;
    }
    engine.stop_all().await?;
    let topics = engine.inspector().topics().await?;
    let highs: BTreeMap<String, Vec<i64>> = topics
        .iter()
        .map(|t| {
            let mut partitions = t.partitions.clone();
            partitions.sort_by_key(|p| p.id);
            (t.name.clone(), partitions.iter().map(|p| p.high).collect())
        })
        .collect();
    let documents = engine.search_backend().count().await.unwrap_or(0);
    let base = Baseline {
        highs,
        documents: i64::try_from(documents).unwrap_or(i64::MAX),
    };
    for (group, topic) in [
        (GROUP_SENTIMENT, TOPIC_REVIEWS),
        (GROUP_INDEXER, TOPIC_SENTIMENT),
        (GROUP_AGGREGATE, TOPIC_SENTIMENT),
    ] {
        let offsets = base.highs.get(topic).cloned().unwrap_or_default();
        commit_at(engine, group, topic, offsets).await?;
    }
    // The aggregate stage resumes from its checkpoints, not from committed offsets: without a
    // start marker it would restore windows of earlier input (or re-read it from offset 0),
    // and the incident's aggregate figures would include it.
    let offsets = base.highs.get(TOPIC_SENTIMENT).cloned().unwrap_or_default();
    let changelog = base
        .highs
        .get(TOPIC_AGGREGATE_CHANGELOG)
        .map_or(0, Vec::len);
    let changelog = i32::try_from(changelog).unwrap_or(i32::MAX);
    if changelog == 0 {
        return Err(EngineError::BadRequest(format!(
            "topic {TOPIC_AGGREGATE_CHANGELOG} has no partitions"
        )));
    }
    let marking = checkpoint::mark_start(engine.kafka(), GROUP_AGGREGATE, &offsets, changelog);
    tokio::time::timeout(MARK_TIMEOUT, marking)
        .await
        .map_err(|_| {
            EngineError::BadRequest(format!(
                "the aggregate's start marker was not written to {TOPIC_AGGREGATE_CHANGELOG} within 30 s"
            ))
        })?
        .map_err(|e| EngineError::BadRequest(format!("writing the aggregate's start marker: {e}")))?;
    Ok(base)
}

/// How long the clean slate waits for the aggregate's start marker to be written.
const MARK_TIMEOUT: Duration = Duration::from_secs(30);

/// Commits `offsets` for `group` on `topic` from outside the group (it has no members: every
/// stage is stopped), as `kafka-consumer-groups --reset-offsets --to-latest` does.
async fn commit_at(
    engine: &Engine,
    group: &str,
    topic: &str,
    offsets: Vec<i64>,
) -> Result<(), EngineError> {
    let consumer: BaseConsumer = engine
        .kafka()
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| EngineError::BadRequest(format!("cannot create a consumer: {e}")))?;
    let mut list = TopicPartitionList::new();
    for (partition, offset) in offsets.iter().enumerate() {
        let partition = i32::try_from(partition).unwrap_or(i32::MAX);
        list.add_partition_offset(topic, partition, Offset::Offset(*offset))
            .map_err(|e| EngineError::BadRequest(e.to_string()))?;
    }
    let group = group.to_owned();
    tokio::task::spawn_blocking(move || consumer.commit(&list, CommitMode::Sync))
        .await
        .map_err(|e| EngineError::BadRequest(e.to_string()))?
        .map_err(|e| EngineError::BadRequest(format!("committing {group}'s offsets: {e}")))
}

/// Writes the burst to `reviews` and waits until the broker acknowledged all of it.
pub async fn write_burst(engine: &Engine, burst: Vec<BurstRecord>) -> Result<(), EngineError> {
    let records = burst
        .into_iter()
        .map(|r| {
            let headers = OwnedHeaders::new().insert(Header {
                key: "pipebook.incident",
                value: Some(r.fault.unwrap_or("seeded")),
            });
            (r.partition, Some(r.key), r.value, headers)
        })
        .collect();
    crate::faults::produce_all(engine.kafka(), records).await?;
    Ok(())
}

/// How long the trouble waits for the broker to go down.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn apply(engine: &Arc<Engine>, step: &Step, seed: u64) -> Result<(), EngineError> {
    match step {
        Step::Start(stage, config) => engine.start_stage(stage, config(seed)).await,
        Step::SearchDown => {
            engine.set_search_outage(true);
            Ok(())
        }
        Step::StopBroker => {
            let stop = engine.stop_stage(crate::stage::StageId::Broker.as_str());
            tokio::time::timeout(STOP_TIMEOUT, stop)
                .await
                .map_err(|_| {
                    EngineError::BadRequest("the broker did not stop within 30 s".into())
                })?
        }
    }
}
