//! The pipeline's stages, each implementing the [`Stage`] contract: what it is configured with,
//! how that is checked, what it counts, and what one run needs from the engine. The engine
//! ([`crate::pipeline`]) holds them in a map keyed by [`StageId`] and runs them all the same way
//! ([`Slot`]); the embedded broker's toggle goes through the same [`Control`] interface.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use app::api::{
    AggregateConfig, IndexerConfig, ParquetConfig, ProducerConfig, SentimentConfig, StageState,
    StageStatus, StreamerConfig,
};
use futures::future::BoxFuture;

use crate::aggregate::parquet::{self as parquet_sink, ParquetMetrics, ParquetSetup};
use crate::aggregate::run::AggregateSetup;
use crate::aggregate::{self, AggregateMetrics};
use crate::error::ConfigError;
use crate::histogram::StageLatency;
use crate::index::Backend;
use crate::index::indexer::{self, IndexerMetrics, IndexerSetup};
use crate::kafka::KafkaSettings;
use crate::kafka::broker::EmbeddedBroker;
use crate::kafka::inspect::GroupRegistry;
use crate::members::{Ended, MemberFigures, MemberReport};
use crate::pipeline::EngineError;
use crate::producer::{self, ProducerMetrics, SocketSource};
use crate::reach::NetworkReach;
use crate::sentiment::{self, SentimentRuntime, lexicon::Thresholds};
use crate::stage::{Lifecycle, RunLoop, Stage, StageError, StageId, checked, run_loop};
use crate::streamer::datasets::Datasets;
use crate::streamer::{self, SourceInput, StreamerMetrics};
use crate::sync::LockExt;

/// How long starting the streamer waits for its socket before reporting.
const STREAMER_BIND_WAIT: Duration = Duration::from_secs(5);

/// What the engine does with any stage: the same for all of them.
pub trait Control: Send + Sync {
    fn id(&self) -> StageId;
    /// Parses and checks `body` (see [`crate::stage_config`]), prepares and launches a run.
    fn start(&self, body: serde_json::Value) -> BoxFuture<'_, Result<(), EngineError>>;
    fn stop(&self) -> BoxFuture<'_, Result<(), EngineError>>;
    fn pause(&self, paused: bool) -> Result<(), EngineError>;
    fn crash(&self) -> Result<(), EngineError>;
    fn is_active(&self) -> bool;
    /// The config of the current (or last) run, as started.
    fn config(&self) -> Option<serde_json::Value>;
    /// Takes the config of the last run before a restart (see [`crate::last_config`]).
    fn restore_config(&self, _config: serde_json::Value) {}
    /// `None` for the broker, whose state is shown as Kafka's.
    fn status(&self) -> Option<StageStatus>;
    /// Waits for a crashed run loop to finish closing (shutdown).
    fn settle(&self) -> BoxFuture<'_, ()>;
    /// The group members it runs, for their heartbeats ([`Stage::member_reports`]).
    fn member_reports(&self) -> Vec<MemberReport> {
        Vec::new()
    }
    /// Its latency histograms ([`Stage::latencies`]).
    fn latencies(&self) -> Vec<StageLatency> {
        Vec::new()
    }
}

/// A stage and its lifecycle.
pub struct Slot<S: Stage> {
    stage: S,
    life: Arc<Lifecycle>,
}

impl<S: Stage> Slot<S> {
    pub fn new(stage: S) -> Self {
        Self {
            stage,
            life: Lifecycle::of::<S>(),
        }
    }

    pub fn boxed(stage: S) -> Box<dyn Control> {
        Box::new(Self::new(stage))
    }
}

impl<S: Stage> Control for Slot<S> {
    fn id(&self) -> StageId {
        S::ID
    }

    fn start(&self, body: serde_json::Value) -> BoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async move {
            let (config, checked) = checked::<S>(body)?;
            if self.life.is_active() {
                return Err(StageError::AlreadyRunning(S::ID.to_string()).into());
            }
            // A crashed loop may still be closing its clients: let it finish first.
            self.life.wait().await;
            let json = serde_json::to_value(&config).unwrap_or_default();
            let run = self.stage.prepare(config, checked)?;
            self.life.launch(json, run)?;
            self.stage.started(&self.life).await;
            Ok(())
        })
    }

    fn stop(&self) -> BoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async move { Ok(self.life.stop().await?) })
    }

    fn pause(&self, paused: bool) -> Result<(), EngineError> {
        Ok(self.life.pause(paused)?)
    }

    fn crash(&self) -> Result<(), EngineError> {
        Ok(self.life.crash()?)
    }

    fn is_active(&self) -> bool {
        self.life.is_active()
    }

    fn config(&self) -> Option<serde_json::Value> {
        self.life.config()
    }

    fn restore_config(&self, config: serde_json::Value) {
        self.life.restore_config(config);
    }

    fn status(&self) -> Option<StageStatus> {
        let mut status = self.life.status(self.stage.counters());
        // Read every time, so the meter's window follows the run; shown only while it runs.
        let load = self.stage.load();
        status.load = self.life.is_active().then_some(load).flatten();
        if status.last_error.is_none() {
            status.last_error = self.stage.last_error();
        }
        Some(status)
    }

    fn settle(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.life.wait())
    }

    fn member_reports(&self) -> Vec<MemberReport> {
        self.stage.member_reports(&self.life)
    }

    fn latencies(&self) -> Vec<StageLatency> {
        self.stage.latencies()
    }
}

// ---- 1 · streamer ----

pub struct StreamerStage {
    pub metrics: Arc<StreamerMetrics>,
    pub datasets: Arc<Datasets>,
    pub reach: NetworkReach,
}

impl Stage for StreamerStage {
    const ID: StageId = StageId::Streamer;
    const PAUSABLE: bool = true;
    type Config = StreamerConfig;
    type Checked = ();

    fn validate(config: &StreamerConfig) -> Result<(), ConfigError> {
        streamer::validate(config)
    }

    fn counters(&self) -> BTreeMap<String, u64> {
        self.metrics.counter_values()
    }

    fn prepare(&self, config: StreamerConfig, (): ()) -> Result<RunLoop, EngineError> {
        let listen = config.listen.parse().map_err(|_| {
            ConfigError::new(
                "listen",
                format!("not a socket address: {:?}", config.listen),
            )
        })?;
        self.reach
            .check_listen(listen)
            .map_err(EngineError::BadRequest)?;
        let input = match config.source.as_str() {
            app::api::SOURCE_GENERATOR => SourceInput::Generator,
            name => SourceInput::File(self.datasets.open_source(name)?),
        };
        // Reset here, not in the loop, so the wait in `started` sees this run's socket only.
        self.metrics.reset();
        self.metrics.set_dataset(config.dataset);
        let metrics = self.metrics.clone();
        Ok(run_loop(move |ctx| {
            streamer::run(config, input, metrics, ctx)
        }))
    }

    /// Waits until the socket is bound, so a producer started right after finds it.
    async fn started(&self, life: &Lifecycle) {
        let deadline = tokio::time::Instant::now() + STREAMER_BIND_WAIT;
        while self.metrics.listening().is_none()
            && life.state() == StageState::Running
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

// ---- 2 · producer ----

pub struct ProducerStage {
    pub kafka: KafkaSettings,
    pub metrics: Arc<ProducerMetrics>,
    pub streamer: Arc<StreamerMetrics>,
    pub reach: NetworkReach,
}

impl Stage for ProducerStage {
    const ID: StageId = StageId::Producer;
    type Config = ProducerConfig;
    type Checked = Option<std::net::SocketAddr>;

    fn validate(config: &ProducerConfig) -> Result<Self::Checked, ConfigError> {
        config
            .socket
            .as_deref()
            .map(|addr| {
                addr.parse::<std::net::SocketAddr>().map_err(|_| {
                    ConfigError::new("socket", format!("not a socket address: {addr:?}"))
                })
            })
            .transpose()
    }

    fn counters(&self) -> BTreeMap<String, u64> {
        self.metrics.counter_values()
    }

    /// A delivery that failed (the broker refused a record, or it timed out).
    fn last_error(&self) -> Option<String> {
        self.metrics.last_delivery_error.lock_or_recover().clone()
    }

    fn latencies(&self) -> Vec<StageLatency> {
        vec![self.metrics.ack_latency()]
    }

    fn prepare(
        &self,
        config: ProducerConfig,
        socket: Option<std::net::SocketAddr>,
    ) -> Result<RunLoop, EngineError> {
        let socket = match (socket, config.socket) {
            (Some(parsed), Some(addr)) => {
                self.reach
                    .check_producer_socket(parsed, self.streamer.listening())
                    .map_err(EngineError::BadRequest)?;
                SocketSource::Fixed(addr)
            }
            _ => SocketSource::Streamer(self.streamer.clone()),
        };
        let (kafka, metrics) = (self.kafka.clone(), self.metrics.clone());
        let streamer = self.streamer.clone();
        Ok(run_loop(move |ctx| {
            producer::run(socket, streamer, kafka, metrics, ctx)
        }))
    }
}

// ---- 3 · sentiment ----

pub struct SentimentStage {
    pub kafka: KafkaSettings,
    pub runtime: Arc<SentimentRuntime>,
}

impl Stage for SentimentStage {
    const ID: StageId = StageId::Sentiment;
    /// Its workers hold group consumers: a crash kills each one, which closes its own.
    const CLOSES_ON_KILL: bool = true;
    type Config = SentimentConfig;
    type Checked = Thresholds;

    fn validate(config: &SentimentConfig) -> Result<Thresholds, ConfigError> {
        sentiment::validate(config)
    }

    fn counters(&self) -> BTreeMap<String, u64> {
        self.runtime.counters()
    }

    fn latencies(&self) -> Vec<StageLatency> {
        vec![self.runtime.review_latency()]
    }

    fn load(&self) -> Option<app::ops::StageLoad> {
        self.runtime.load()
    }

    fn prepare(
        &self,
        config: SentimentConfig,
        thresholds: Thresholds,
    ) -> Result<RunLoop, EngineError> {
        // Built before launching, so a missing LLM setting is a 400, not a failed stage.
        let classifier = Arc::new(sentiment::Classifier::from_config(
            config.classifier,
            thresholds,
        )?);
        self.runtime.reset();
        let (runtime, kafka) = (self.runtime.clone(), self.kafka.clone());
        Ok(run_loop(move |ctx| {
            runtime.run(config, classifier, kafka, ctx)
        }))
    }

    /// Each worker is a member of its own.
    fn member_reports(&self, _: &Lifecycle) -> Vec<MemberReport> {
        self.runtime.reports()
    }
}

// ---- 4 · aggregate ----

pub struct AggregateStage {
    pub kafka: KafkaSettings,
    pub registry: Arc<GroupRegistry>,
    pub metrics: Arc<AggregateMetrics>,
    /// Its name in the group (`client.id`): `aggregate` in the server, `p<pid>-aggregate` in a
    /// worker process.
    pub member: String,
}

impl Stage for AggregateStage {
    const ID: StageId = StageId::Aggregate;
    // A group member: closing its consumer on a runtime thread could deadlock the group.
    const CLOSES_ON_KILL: bool = true;
    type Config = AggregateConfig;
    type Checked = aggregate::windows::Spec;

    fn validate(config: &AggregateConfig) -> Result<Self::Checked, ConfigError> {
        aggregate::validate(config)
    }

    fn counters(&self) -> BTreeMap<String, u64> {
        self.metrics.counters()
    }

    fn load(&self) -> Option<app::ops::StageLoad> {
        self.metrics.load()
    }

    fn prepare(
        &self,
        config: AggregateConfig,
        spec: Self::Checked,
    ) -> Result<RunLoop, EngineError> {
        self.metrics.reset();
        let setup = AggregateSetup {
            config,
            spec,
            kafka: self.kafka.clone(),
            metrics: self.metrics.clone(),
            member: self.member.clone(),
            registry: Some(self.registry.clone()),
        };
        Ok(run_loop(move |ctx| aggregate::run::run(setup, ctx)))
    }

    fn member_reports(&self, life: &Lifecycle) -> Vec<MemberReport> {
        let figures = self.metrics.figures();
        one_member(Self::ID, life, &self.registry, &self.member, figures)
    }
}

// ---- 5 · Parquet sink ----

pub struct ParquetStage {
    pub kafka: KafkaSettings,
    pub root: PathBuf,
    pub registry: Arc<GroupRegistry>,
    pub metrics: Arc<ParquetMetrics>,
    /// Its name in the group: `parquet-1` in the server, `p<pid>-parquet` in a worker process.
    pub member: String,
}

impl Stage for ParquetStage {
    const ID: StageId = StageId::Parquet;
    const CLOSES_ON_KILL: bool = true;
    type Config = ParquetConfig;
    type Checked = ();

    fn validate(config: &ParquetConfig) -> Result<(), ConfigError> {
        parquet_sink::validate(config)
    }

    fn counters(&self) -> BTreeMap<String, u64> {
        self.metrics.counters()
    }

    fn load(&self) -> Option<app::ops::StageLoad> {
        self.metrics.load()
    }

    fn prepare(&self, config: ParquetConfig, (): ()) -> Result<RunLoop, EngineError> {
        self.metrics.scan(&self.root);
        self.metrics.started();
        let setup = ParquetSetup {
            config,
            kafka: self.kafka.clone(),
            root: self.root.clone(),
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
            member: self.member.clone(),
        };
        Ok(run_loop(move |ctx| parquet_sink::run(setup, ctx)))
    }

    /// With the files it wrote: a worker process's are on its own disk, so its heartbeat is
    /// how the notebook learns where they went.
    fn member_reports(&self, life: &Lifecycle) -> Vec<MemberReport> {
        let figures = self.metrics.figures();
        let mut reports = one_member(Self::ID, life, &self.registry, &self.member, figures);
        for report in &mut reports {
            report.output = Some(self.metrics.output(&self.root));
        }
        reports
    }
}

// ---- 6 · search indexer ----

pub struct IndexerStage {
    pub kafka: KafkaSettings,
    pub registry: Arc<GroupRegistry>,
    pub backend: Arc<Backend>,
    pub metrics: Arc<IndexerMetrics>,
    /// Its name in the group: `indexer-1` in the server, `p<pid>-indexer` in a worker process.
    pub member: String,
}

impl Stage for IndexerStage {
    const ID: StageId = StageId::Indexer;
    const CLOSES_ON_KILL: bool = true;
    type Config = IndexerConfig;
    type Checked = ();

    fn validate(config: &IndexerConfig) -> Result<(), ConfigError> {
        indexer::validate(config)
    }

    fn counters(&self) -> BTreeMap<String, u64> {
        self.metrics.counters()
    }

    fn load(&self) -> Option<app::ops::StageLoad> {
        self.metrics.load()
    }

    fn latencies(&self) -> Vec<StageLatency> {
        vec![self.metrics.bulk_duration()]
    }

    fn prepare(&self, config: IndexerConfig, (): ()) -> Result<RunLoop, EngineError> {
        self.metrics.reset();
        let setup = IndexerSetup {
            config,
            registry: self.registry.clone(),
            backend: self.backend.clone(),
            kafka: self.kafka.clone(),
            metrics: self.metrics.clone(),
            member: self.member.clone(),
        };
        Ok(run_loop(move |ctx| indexer::run(setup, ctx)))
    }

    fn member_reports(&self, life: &Lifecycle) -> Vec<MemberReport> {
        let figures = self.metrics.figures();
        one_member(Self::ID, life, &self.registry, &self.member, figures)
    }
}

/// The member of a stage that is one member of its group (the aggregate, the Parquet sink, the
/// indexer): `member` in the group its config names, with the partitions the group assigned it
/// and its figures; none before its first run.
fn one_member(
    stage: StageId,
    life: &Lifecycle,
    registry: &GroupRegistry,
    member: &str,
    figures: MemberFigures,
) -> Vec<MemberReport> {
    /// The one setting read here, which each of these stages' configs has.
    #[derive(serde::Deserialize)]
    struct Group {
        group: String,
    }
    let Some(Group { group }) = life.config().and_then(|c| serde_json::from_value(c).ok()) else {
        return Vec::new();
    };
    vec![MemberReport {
        stage,
        partitions: registry.partitions_of(&group, member),
        group,
        worker: member.to_owned(),
        processed: figures.processed,
        errors: figures.errors,
        started_at: figures.started_at,
        ended: member_ended(life),
        output: None,
    }]
}

/// How a one-member stage's run ended, for its heartbeat: crashed or failed ones fall silent,
/// stopped ones say goodbye.
fn member_ended(life: &Lifecycle) -> Option<Ended> {
    if life.crashed() || life.state() == StageState::Failed {
        Some(Ended::Crashed)
    } else if life.is_active() {
        None
    } else {
        Some(Ended::Left)
    }
}

// ---- the embedded broker's toggle ----

/// The broker: started and stopped like a stage (its body is ignored), never paused or crashed
/// from here; with external Kafka there is nothing to start or stop.
pub struct BrokerControl {
    pub broker: Option<Arc<EmbeddedBroker>>,
}

const EXTERNAL: &str = "the broker is external; Pipebook cannot start or stop it";

impl BrokerControl {
    fn embedded(&self) -> Result<&Arc<EmbeddedBroker>, EngineError> {
        self.broker
            .as_ref()
            .ok_or(EngineError::Stage(StageError::External(EXTERNAL)))
    }
}

impl Control for BrokerControl {
    fn id(&self) -> StageId {
        StageId::Broker
    }

    fn start(&self, _body: serde_json::Value) -> BoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async move { Ok(self.embedded()?.start().await?) })
    }

    fn stop(&self) -> BoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async move {
            self.embedded()?.stop().await;
            Ok(())
        })
    }

    fn pause(&self, _paused: bool) -> Result<(), EngineError> {
        Err(StageError::PauseUnsupported(StageId::Broker.to_string()).into())
    }

    fn crash(&self) -> Result<(), EngineError> {
        // Stopping the broker is the fault the lesson shows; a crash of it is not offered.
        Err(EngineError::UnknownStage(StageId::Broker.to_string()))
    }

    fn is_active(&self) -> bool {
        self.broker
            .as_ref()
            .is_some_and(|b| b.status().0 == StageState::Running)
    }

    fn config(&self) -> Option<serde_json::Value> {
        None
    }

    fn status(&self) -> Option<StageStatus> {
        None
    }

    fn settle(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
