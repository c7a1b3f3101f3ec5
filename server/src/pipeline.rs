//! The engine: owns the Kafka connection (embedded broker or external cluster), the stages, and
//! the once-a-second snapshot that the UI draws. The HTTP API is a thin layer over this.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;

use app::api::{
    AggregateView, DeliveryLabView, GroupInfo, KafkaStatus, Message, PipelineStatus,
    SearchAggregations, SearchRequest, SearchResults, SearchStatus, Snapshot, StageState,
    StageStatus, TOPIC_AGGREGATES, TOPIC_DLQ, TOPIC_LATE, TOPIC_REVIEWS, TOPIC_SENTIMENT,
    TOPIC_WORKERS, TopicInfo, WindowKind,
};
use tokio::sync::watch;

use crate::aggregate::AggregateMetrics;
use crate::aggregate::parquet::ParquetMetrics;
use crate::bounds::{Bounded, Bounds};
use crate::config::ServeArgs;
use crate::error::ConfigError;
use crate::faults::{self, FaultError};
use crate::feed::Frame;
use crate::index::indexer::IndexerMetrics;
use crate::index::query::{Search, check_interval};
use crate::index::{Backend, SearchBackend, SearchError, SearchSettings};
use crate::kafka::KafkaSettings;
use crate::kafka::admin::{AdminError, TopicSpec, ensure_topics};
use crate::kafka::broker::{BrokerError, EmbeddedBroker};
use crate::kafka::inspect::{GroupRegistry, InspectError, Inspector};
use crate::kafka::lag::LagBook;
use crate::lab::{DeliveryLab, LabError};
use crate::last_config::LastStreamerConfig;
use crate::lesson::{Action, Lesson};
use crate::members::{self, Identity, MemberBook};
use crate::producer::ProducerMetrics;
use crate::rates::RateBook;
use crate::reach::NetworkReach;
use crate::sentiment::{SentimentError, SentimentRuntime};
use crate::stage::{StageError, StageId};
use crate::stage_config::parse_lab_request;
use crate::stages::{
    AggregateStage, BrokerControl, Control, IndexerStage, ParquetStage, ProducerStage,
    SentimentStage, Slot, StreamerStage,
};
use crate::streamer::StreamerMetrics;
use crate::streamer::datasets::{DatasetError, Datasets};
use crate::sync::LockExt;
use crate::trace::{self as tracing_a_record, TraceError, Tracer};

/// How often the snapshot behind `/api/events` is refreshed.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(1);
/// How long the snapshot waits for the search backend's document count.
const SEARCH_STATUS_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A request the caller can fix: bad config, unknown stage, wrong state.
    #[error("{0}")]
    BadRequest(String),
    #[error("no stage called {0:?}")]
    UnknownStage(String),
    /// Too many reads of one kind already running (see [`crate::bounds`]): 429, try again.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Stage(#[from] StageError),
    /// A setting that cannot be used, named by its field (400).
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Inspect(#[from] InspectError),
    #[error(transparent)]
    Sentiment(#[from] SentimentError),
    #[error(transparent)]
    Search(#[from] SearchError),
    #[error(transparent)]
    Fault(#[from] FaultError),
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
}

/// Settings the engine starts from (the server's flags, or a test's choices).
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub data_dir: PathBuf,
    pub broker_addr: std::net::SocketAddr,
    /// `None` = embed a broker.
    pub external_kafka: Option<KafkaSettings>,
    pub topic_partitions: i32,
    pub search: SearchSettings,
    /// The only folder the streamer reads files from; uploads land here.
    pub datasets_dir: PathBuf,
    pub max_upload_bytes: u64,
    /// Whether the stages' sockets may reach beyond loopback.
    pub reach: NetworkReach,
}

impl EngineSettings {
    pub fn from_args(args: &ServeArgs) -> Result<Self, ConfigError> {
        Ok(Self {
            data_dir: args.data_dir.clone(),
            broker_addr: args.broker_addr,
            external_kafka: args.kafka.external()?,
            topic_partitions: args.kafka.topic_partitions,
            search: args.search.settings()?,
            datasets_dir: args.datasets_dir(),
            max_upload_bytes: args.max_upload_bytes()?,
            reach: NetworkReach {
                allow_network: args.allow_network_sockets,
            },
        })
    }

    /// Embedded broker on a free port under `data_dir`: what tests use.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            datasets_dir: data_dir.join("datasets"),
            data_dir,
            broker_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            external_kafka: None,
            topic_partitions: 3,
            search: SearchSettings::Embedded,
            max_upload_bytes: crate::streamer::datasets::DEFAULT_MAX_UPLOAD_BYTES,
            reach: NetworkReach::default(),
        }
    }
}

pub struct Engine {
    kafka: KafkaSettings,
    broker: Option<Arc<EmbeddedBroker>>,
    inspector: Inspector,
    /// Every stage (the broker's toggle too), in the order data flows.
    stages: BTreeMap<StageId, Box<dyn Control>>,
    /// Every group's lag history, recorded by the sampler (`kafka/lag.rs`).
    lag: LagBook,
    /// Every consumer stage's input and processing rate history, recorded by the sampler
    /// (`crate::rates`).
    rates: RateBook,
    // What the API, the snapshot and the trace read of the stages besides their status.
    streamer_metrics: Arc<StreamerMetrics>,
    sentiment_runtime: Arc<SentimentRuntime>,
    aggregate_metrics: Arc<AggregateMetrics>,
    data_dir: PathBuf,
    /// The streamer's last config, kept over restarts (the dataset the cells word).
    last_streamer: LastStreamerConfig,
    parquet_metrics: Arc<ParquetMetrics>,
    indexer_metrics: Arc<IndexerMetrics>,
    search: Arc<Backend>,
    datasets: Arc<Datasets>,
    reach: NetworkReach,
    lab: Arc<DeliveryLab>,
    snapshot: watch::Sender<Snapshot>,
    /// The live feed: each snapshot cut down and serialised once, for every viewer.
    feed: watch::Sender<Arc<Frame>>,
    lesson: Lesson,
    /// The incident being worked on (`crate::incidents`).
    incidents: crate::incidents::Incidents,
    tracer: Tracer,
    /// How many browses, traces, searches and listings may run at once.
    bounds: Bounds,
    /// Cancelled when the server shuts down, so long-lived responses (SSE) can end.
    closing: tokio_util::sync::CancellationToken,
    /// Every member of the stages' groups, from the heartbeats on `pipebook.workers`.
    members: Arc<MemberBook>,
    /// Ends the heartbeat publisher and the members follower (shutdown, or the engine dropped).
    background: tokio_util::sync::CancellationToken,
    /// The in-server workers' heartbeat publisher, awaited on shutdown so their goodbyes go
    /// out before the embedded broker stops.
    heartbeats: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Wakes the group-state watch (`Inspector::watch_group_states`): every change that makes a
    /// group rebalance — stages started, stopped, crashed or restarted, in-server workers added or
    /// killed, members joining or leaving on `pipebook.workers` — whoever made it.
    group_watch: Arc<tokio::sync::Notify>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.background.cancel();
    }
}

impl Engine {
    /// Starts the embedded broker (unless external Kafka is configured), creates the topics and
    /// starts the snapshot sampler.
    pub async fn start(settings: EngineSettings) -> Result<Arc<Self>, EngineError> {
        let datasets = Datasets::open(&settings.datasets_dir, settings.max_upload_bytes)?;
        let seeding = std::time::Instant::now();
        if let Some(sample) = datasets.seed_if_empty()? {
            tracing::info!(
                name = %sample.name,
                elapsed_ms = seeding.elapsed().as_millis(),
                "wrote a sample dataset into the empty datasets folder"
            );
        }
        tracing::info!(folder = %datasets.dir().display(), "the streamer reads datasets from this folder only");
        let search = Backend::open(&settings.search, &settings.data_dir)?;
        let (kafka, broker) = match settings.external_kafka.clone() {
            Some(kafka) => (kafka, None),
            None => {
                let broker = EmbeddedBroker::new(&settings.data_dir, settings.broker_addr)?;
                broker.start().await?;
                let kafka =
                    KafkaSettings::plaintext(broker.bootstrap_servers(), settings.topic_partitions);
                (kafka, Some(Arc::new(broker)))
            }
        };
        ensure_topics(&kafka, &topic_specs(kafka.topic_partitions)).await?;
        let registry = Arc::new(GroupRegistry::default());
        let inspector = Inspector::new(kafka.clone(), registry.clone())?;
        let datasets = Arc::new(datasets);
        let streamer_metrics = Arc::<StreamerMetrics>::default();
        let sentiment_runtime = SentimentRuntime::new(registry.clone());
        let aggregate_metrics = Arc::<AggregateMetrics>::default();
        let parquet_metrics = Arc::<ParquetMetrics>::default();
        let indexer_metrics = Arc::<IndexerMetrics>::default();
        let stages: Vec<Box<dyn Control>> = vec![
            Box::new(BrokerControl {
                broker: broker.clone(),
            }),
            Slot::boxed(StreamerStage {
                metrics: streamer_metrics.clone(),
                datasets: datasets.clone(),
                reach: settings.reach,
            }),
            Slot::boxed(ProducerStage {
                kafka: kafka.clone(),
                metrics: Arc::<ProducerMetrics>::default(),
                streamer: streamer_metrics.clone(),
                reach: settings.reach,
            }),
            Slot::boxed(SentimentStage {
                kafka: kafka.clone(),
                runtime: sentiment_runtime.clone(),
            }),
            Slot::boxed(AggregateStage {
                kafka: kafka.clone(),
                registry: registry.clone(),
                metrics: aggregate_metrics.clone(),
                member: crate::aggregate::run::MEMBER.to_owned(),
            }),
            Slot::boxed(ParquetStage {
                kafka: kafka.clone(),
                root: settings.data_dir.join("parquet"),
                registry: registry.clone(),
                metrics: parquet_metrics.clone(),
                member: crate::aggregate::parquet::MEMBER.to_owned(),
            }),
            Slot::boxed(IndexerStage {
                kafka: kafka.clone(),
                registry,
                backend: search.clone(),
                metrics: indexer_metrics.clone(),
                member: crate::index::indexer::MEMBER.to_owned(),
            }),
        ];
        let group_watch = Arc::new(tokio::sync::Notify::new());
        let engine = Arc::new(Self {
            kafka,
            broker,
            inspector,
            stages: stages
                .into_iter()
                .map(|stage| (stage.id(), stage))
                .collect(),
            lag: LagBook::default(),
            rates: RateBook::default(),
            streamer_metrics,
            sentiment_runtime,
            aggregate_metrics,
            data_dir: settings.data_dir.clone(),
            last_streamer: LastStreamerConfig::new(&settings.data_dir),
            parquet_metrics,
            indexer_metrics,
            search,
            datasets,
            reach: settings.reach,
            lab: Arc::default(),
            snapshot: watch::Sender::new(Snapshot::default()),
            feed: watch::Sender::new(Arc::new(Frame::first(&Snapshot::default()))),
            lesson: Lesson::open(&settings.data_dir),
            incidents: crate::incidents::Incidents::open(&settings.data_dir),
            tracer: Tracer::default(),
            bounds: Bounds::default(),
            closing: tokio_util::sync::CancellationToken::new(),
            members: Arc::new(MemberBook::waking(group_watch.clone())),
            background: tokio_util::sync::CancellationToken::new(),
            heartbeats: std::sync::Mutex::new(None),
            group_watch,
        });
        engine.parquet_metrics.scan(&engine.parquet_root());
        if let (Some(config), Some(streamer)) = (
            engine.last_streamer.load(),
            engine.stages.get(&StageId::Streamer),
        ) {
            streamer.restore_config(config);
        }
        engine.start_heartbeats();
        // Ended with the other background tasks (shutdown, or the engine dropped).
        tokio::spawn(
            engine
                .inspector
                .clone()
                .watch_group_states(engine.group_watch.clone(), engine.background.clone()),
        );
        tokio::spawn(sample_forever(Arc::downgrade(&engine)));
        crate::incidents::resume(&engine);
        Ok(engine)
    }

    pub fn kafka(&self) -> &KafkaSettings {
        &self.kafka
    }

    /// Publishes the in-server workers' heartbeats and follows everyone's (`crate::members`).
    fn start_heartbeats(self: &Arc<Self>) {
        tokio::spawn(members::follow(
            self.kafka.clone(),
            self.members.clone(),
            self.background.clone(),
        ));
        // Weak: the publisher must not keep the engine alive (its drop ends the publisher).
        let engine = Arc::downgrade(self);
        let publisher = tokio::spawn(members::publish(
            self.kafka.clone(),
            Identity::this_process(true),
            Arc::new(move || {
                engine
                    .upgrade()
                    .map(|engine| engine.member_reports())
                    .unwrap_or_default()
            }),
            self.background.clone(),
        ));
        *self.heartbeats.lock_or_recover() = Some(publisher);
    }

    /// The in-server workers of every stage, for their heartbeats.
    fn member_reports(&self) -> Vec<members::MemberReport> {
        self.stages
            .values()
            .flat_map(|stage| stage.member_reports())
            .collect()
    }

    /// Every member of the stages' groups, in-server or remote (`GET /api/workers`).
    pub fn members(&self) -> Vec<app::api::MemberView> {
        self.members.view(None, std::time::Instant::now())
    }

    pub fn inspector(&self) -> &Inspector {
        &self.inspector
    }

    pub fn lag_book(&self) -> &LagBook {
        &self.lag
    }

    pub fn closing(&self) -> &tokio_util::sync::CancellationToken {
        &self.closing
    }

    /// The latest snapshot, whole: every window, event and review the engine keeps.
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.snapshot.subscribe()
    }

    /// The live feed's latest frame: the same snapshot as viewers get it (see [`crate::feed`]).
    pub fn feed(&self) -> watch::Receiver<Arc<Frame>> {
        self.feed.subscribe()
    }

    pub fn kafka_status(&self) -> KafkaStatus {
        let (mode, (state, last_error)) = match &self.broker {
            Some(broker) => ("embedded", broker.status()),
            None => ("external", (StageState::Running, None)),
        };
        KafkaStatus {
            mode: mode.to_owned(),
            bootstrap_servers: self.kafka.bootstrap_servers.clone(),
            state,
            last_error,
        }
    }

    /// Every stage's latency histograms (`GET /metrics`), by stage id. Read a moment after
    /// [`Self::pipeline_status`], so a histogram's count equals its counter once the stage is idle.
    pub fn latencies(&self) -> Vec<(String, crate::histogram::StageLatency)> {
        self.stages
            .iter()
            .flat_map(|(id, stage)| {
                let id = id.to_string();
                stage.latencies().into_iter().map(move |l| (id.clone(), l))
            })
            .collect()
    }

    /// Each stage with its group's members as their heartbeats show them (cells 5 and the
    /// Parquet sink draw them from here) and, while it runs, its rate history.
    pub fn pipeline_status(&self) -> PipelineStatus {
        let mut status = self.pipeline_status_without_rates();
        self.rates.annotate(&mut status.stages);
        status
    }

    /// [`Self::pipeline_status`] before the rate histories are added: the sampler records this
    /// second's rates from it first.
    fn pipeline_status_without_rates(&self) -> PipelineStatus {
        let now = std::time::Instant::now();
        PipelineStatus {
            kafka: self.kafka_status(),
            stages: self
                .stages
                .iter()
                .filter_map(|(id, stage)| {
                    let status = stage.status()?;
                    Some(StageStatus {
                        members: self.members.view(Some(*id), now),
                        ..status
                    })
                })
                .collect(),
            network_sockets_allowed: self.reach.allow_network,
        }
    }

    /// The stage called `id` (any of [`StageId::ALL`]); 404 for anything else.
    fn stage(&self, id: &str) -> Result<&dyn Control, EngineError> {
        let id: StageId = id.parse()?;
        self.stages
            .get(&id)
            .map(|stage| stage.as_ref())
            .ok_or_else(|| EngineError::UnknownStage(id.to_string()))
    }

    /// A stage's status without its counters' cost mattering (trace, lesson).
    fn status_of(&self, id: StageId) -> StageStatus {
        self.stages
            .get(&id)
            .and_then(|stage| stage.status())
            .unwrap_or_default()
    }

    /// Starts a stage with the settings in `body` (checked first: see [`crate::stage_config`]).
    pub async fn start_stage(&self, id: &str, body: serde_json::Value) -> Result<(), EngineError> {
        self.start_slot(self.stage(id)?, body).await
    }

    /// Every start (Start, restart, Run all): the lesson's steps that ask for a start see it,
    /// and a consumer stage joining its group makes the group rebalance: watch it happen.
    async fn start_slot(
        &self,
        stage: &dyn Control,
        body: serde_json::Value,
    ) -> Result<(), EngineError> {
        stage.start(body).await?;
        if stage.id() == StageId::Streamer
            && let Some(config) = stage.config()
        {
            self.last_streamer.save(&config);
        }
        self.lesson.record(Action::Started(stage.id()));
        self.rebalancing();
        Ok(())
    }

    pub async fn stop_stage(&self, id: &str) -> Result<(), EngineError> {
        self.stage(id)?.stop().await?;
        self.rebalancing();
        Ok(())
    }

    /// A change that makes a group rebalance happened: the group-state watch records it.
    fn rebalancing(&self) {
        self.group_watch.notify_one();
    }

    pub fn pause_stage(&self, id: &str, paused: bool) -> Result<(), EngineError> {
        self.stage(id)?.pause(paused)
    }

    /// Kills a stage's run loop at once, as a crash would (fault buttons, recovery tests).
    pub fn crash_stage(&self, id: &str) -> Result<(), EngineError> {
        self.stage(id)?.crash()?;
        self.rebalancing();
        Ok(())
    }

    /// Stops a stage and starts it again with the configuration it ran with: consumers resume
    /// from their committed offsets (or checkpoint).
    pub async fn restart_stage(&self, id: &str) -> Result<(), EngineError> {
        let stage = self.stage(id)?;
        if stage.is_active() {
            stage.stop().await?;
            self.rebalancing();
        }
        self.start_slot(stage, stage.config().unwrap_or_default())
            .await
    }

    /// Run all: every stage of the lesson that is not running yet, with its defaults (the
    /// sentiment group with two workers, so the partitions are shared).
    pub async fn start_all(&self) -> Result<(), EngineError> {
        let defaults = [
            (StageId::Producer, serde_json::json!({})),
            (StageId::Streamer, serde_json::json!({})),
            (StageId::Sentiment, serde_json::json!({"workers": 2})),
            (StageId::Aggregate, serde_json::json!({})),
            (StageId::Indexer, serde_json::json!({})),
        ];
        for (id, config) in defaults {
            let stage = self.stage(id.as_str())?;
            if !stage.is_active() {
                self.start_slot(stage, config).await?;
            }
        }
        Ok(())
    }

    /// Stop all: every stage, source first so the consumers can drain; the broker stays up.
    pub async fn stop_all(&self) -> Result<(), EngineError> {
        let stages = self.stages.values().filter(|s| s.id() != StageId::Broker);
        for stage in stages {
            if stage.is_active() {
                stage.stop().await?;
                self.rebalancing();
            }
        }
        Ok(())
    }

    /// Stops every stage, the last in the flow first, then the embedded broker: on shutdown.
    pub async fn shutdown(&self) {
        self.incidents.wind_down().await;
        self.lab.stop().await;
        for stage in self.stages.values().rev() {
            if stage.id() == StageId::Broker {
                // The workers have stopped: their goodbyes go out while the broker is still up.
                self.background.cancel();
                let publisher = self.heartbeats.lock_or_recover().take();
                if let Some(publisher) = publisher {
                    let _ = tokio::time::timeout(Duration::from_secs(5), publisher).await;
                }
            }
            if stage.is_active() {
                let _ = stage.stop().await;
            }
            stage.settle().await;
        }
    }

    /// Where the streamer listens now (`None` when it is not running).
    pub fn streamer_listening(&self) -> Option<std::net::SocketAddr> {
        self.streamer_metrics.listening()
    }

    /// The datasets folder: what the streamer may read, and where uploads go.
    pub fn datasets(&self) -> &Arc<Datasets> {
        &self.datasets
    }

    /// `GET /api/datasets`: the folder is read on a blocking thread.
    pub async fn list_datasets(&self) -> Result<app::api::DatasetList, EngineError> {
        let datasets = self.datasets.clone();
        let listed = tokio::task::spawn_blocking(move || datasets.list())
            .await
            .map_err(|e| DatasetError::Io {
                path: self.datasets.dir().to_owned(),
                source: std::io::Error::other(e),
            })?;
        Ok(listed?)
    }

    /// Where the Parquet sink writes: `<data dir>/parquet`.
    pub fn parquet_root(&self) -> PathBuf {
        self.data_dir.join("parquet")
    }

    /// The aggregate stage's windows of one kind (all kinds when `None`). Its group's members
    /// are in the stage's status (`GET /api/pipeline`), not here.
    pub fn aggregates(&self, kind: Option<WindowKind>) -> AggregateView {
        match kind {
            Some(kind) => self.aggregate_metrics.view_of(kind),
            None => self.aggregate_metrics.view(),
        }
    }

    /// The search backend (for tests and benchmarks that query it directly).
    pub fn search_backend(&self) -> &Arc<Backend> {
        &self.search
    }

    pub async fn search(&self, request: &SearchRequest) -> Result<SearchResults, EngineError> {
        let search = Search::from_request(request)?;
        let _permit = self.bounds.try_acquire(Bounded::Search)?;
        Ok(self.search.search(search).await?)
    }

    pub async fn search_aggregations(
        &self,
        interval: &str,
    ) -> Result<SearchAggregations, EngineError> {
        check_interval(interval)?;
        let _permit = self.bounds.try_acquire(Bounded::Search)?;
        Ok(self.search.aggregations(interval.to_owned()).await?)
    }

    async fn search_status(&self) -> SearchStatus {
        let (backend, location) = self.search.describe();
        let count = tokio::time::timeout(SEARCH_STATUS_TIMEOUT, self.search.count()).await;
        let (documents, last_error) = match count {
            Ok(Ok(documents)) => (Some(documents), None),
            Ok(Err(error)) => (None, Some(error.to_string())),
            Err(_) => (
                None,
                Some("search backend did not answer within 2 s".to_owned()),
            ),
        };
        SearchStatus {
            backend,
            location,
            documents,
            last_error,
            paused: self.search.in_outage(),
        }
    }

    /// Starts the sentiment stage with `workers` workers in a group of its own (benchmarks).
    pub async fn start_sentiment_in_group(
        &self,
        workers: u8,
        group: &str,
    ) -> Result<(), EngineError> {
        let config = serde_json::json!({"workers": workers, "group": group});
        self.start_stage(StageId::Sentiment.as_str(), config).await
    }

    /// Adds a worker to the running sentiment group; returns its id.
    pub fn add_sentiment_worker(&self) -> Result<String, EngineError> {
        let id = self.sentiment_runtime.add_worker()?;
        self.lesson.record(Action::Started(StageId::Sentiment));
        self.rebalancing();
        Ok(id)
    }

    /// Kills a sentiment worker abruptly (a simulated crash).
    pub fn kill_sentiment_worker(&self, id: &str) -> Result<(), EngineError> {
        self.sentiment_runtime.kill_worker(id)?;
        self.rebalancing();
        Ok(())
    }

    pub async fn topics(&self) -> Result<Vec<TopicInfo>, EngineError> {
        let _permit = self.bounds.try_acquire(Bounded::Listing)?;
        Ok(self.inspector.topics().await?)
    }

    /// A topic's partition count from the broker's metadata (a tail and its check look it up
    /// before a tail's place is taken, so it is bounded like a listing).
    pub async fn partition_count(&self, topic: &str) -> Result<i32, EngineError> {
        let _permit = self.bounds.try_acquire(Bounded::Listing)?;
        Ok(self.inspector.partition_count(topic).await?)
    }

    pub async fn groups(&self) -> Result<Vec<GroupInfo>, EngineError> {
        let _permit = self.bounds.try_acquire(Bounded::Listing)?;
        let topics = self.inspector.topics().await?;
        let mut groups = self.inspector.groups(&topics).await?;
        self.lag.annotate(&mut groups);
        Ok(groups)
    }

    pub async fn messages(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        limit: usize,
    ) -> Result<Vec<Message>, EngineError> {
        let _permit = self.bounds.try_acquire(Bounded::Browse)?;
        Ok(self
            .inspector
            .messages(topic, partition, offset, limit)
            .await?)
    }

    /// The inferred schema of `topic` from its newest `sample` records, spread over its
    /// partitions (`GET /api/kafka/topics/{topic}/schema`); the dead-letter topic's answer also
    /// groups its reasons.
    pub async fn topic_schema(
        &self,
        topic: &str,
        sample: usize,
    ) -> Result<app::ops::TopicSchema, EngineError> {
        let _permit = self.bounds.try_acquire(Bounded::Browse)?;
        let topics = self.inspector.topics().await?;
        let info = topics
            .iter()
            .find(|t| t.name == topic)
            .ok_or_else(|| InspectError::UnknownTopic(topic.to_owned()))?;
        let partitions = info.partitions.len().max(1);
        let each = sample.div_ceil(partitions).max(1);
        let mut records = Vec::with_capacity(sample);
        for partition in &info.partitions {
            let start = (partition.high - each as i64).max(partition.low);
            let read = self
                .inspector
                .messages(topic, partition.id, start, each)
                .await?;
            records.extend(read);
        }
        records.truncate(sample);
        let dead_letters = topic == app::api::TOPIC_DLQ;
        Ok(crate::kafka::schema::infer(topic, &records, dead_letters))
    }

    /// Notes something the learner did that the lesson checks (reading records, searching).
    pub fn record_action(&self, action: Action) {
        self.lesson.record(action);
    }

    pub fn incidents(&self) -> &crate::incidents::Incidents {
        &self.incidents
    }

    pub fn reset_lesson(&self) {
        self.lesson.reset();
    }

    /// The learner's prediction for a lesson step, its "before" figures read from the newest
    /// snapshot.
    pub fn predict(
        &self,
        step: &str,
        choice: usize,
    ) -> Result<app::api::LessonView, crate::lesson::PredictError> {
        let snapshot = self.subscribe().borrow().clone();
        self.lesson.predict(step, choice, &snapshot)
    }

    /// Fault button: `count` malformed records into `reviews`.
    pub async fn flood_malformed(&self, count: u32) -> Result<u32, EngineError> {
        let written = faults::flood_malformed(&self.kafka, count).await?;
        self.lesson.record(Action::FloodedMalformed);
        Ok(written)
    }

    /// Fault button: the newest `count` reviews sent again.
    pub async fn resend_newest(&self, count: u32) -> Result<u32, EngineError> {
        let sent = faults::resend_newest(&self.kafka, &self.inspector, count).await?;
        self.lesson.record(Action::ResentReviews);
        Ok(sent)
    }

    /// Fault button: the search backend fails every call until resumed.
    pub fn set_search_outage(&self, down: bool) {
        self.search.set_outage(down);
    }

    /// Starts a delivery-semantics lab run in the background (`POST /api/lab/delivery`).
    pub fn start_delivery_lab(&self, body: serde_json::Value) -> Result<(), EngineError> {
        let plan = parse_lab_request(body)?;
        self.lab.start(plan, self.kafka.clone())?;
        Ok(())
    }

    /// The delivery-semantics lab's latest run.
    pub fn delivery_lab(&self) -> DeliveryLabView {
        self.lab.view()
    }

    /// Follows one review through the pipeline (`GET /api/trace`).
    pub async fn trace(&self, review_id: &str) -> Result<app::api::Trace, EngineError> {
        let _permit = self.bounds.try_acquire(Bounded::Trace)?;
        Ok(self.tracer.trace(&self.trace_pipeline(), review_id).await?)
    }

    /// Waits for the next review produced to `reviews` and traces it (`GET /api/trace/next`).
    pub async fn trace_next(&self) -> Result<app::api::Trace, EngineError> {
        let _permit = self.bounds.try_acquire(Bounded::Trace)?;
        Ok(self.tracer.trace_next(&self.trace_pipeline()).await?)
    }

    fn trace_pipeline(&self) -> tracing_a_record::Pipeline<'_> {
        tracing_a_record::Pipeline {
            inspector: &self.inspector,
            search: &self.search,
            streamer: self.status_of(StageId::Streamer),
            chunks: &self.streamer_metrics.chunks_sent,
            producer: self.status_of(StageId::Producer),
            sentiment: self.status_of(StageId::Sentiment),
            sentiment_group: self.sentiment_runtime.group(),
            aggregate: self.status_of(StageId::Aggregate),
            aggregate_metrics: &self.aggregate_metrics,
            indexer: self.status_of(StageId::Indexer),
            bulks: &self.indexer_metrics.bulks_indexed,
        }
    }

    async fn sample(&self, previous: &Snapshot) -> Snapshot {
        let at = chrono::Utc::now().timestamp_millis();
        let mut pipeline = self.pipeline_status_without_rates();
        let (topics, groups, fresh) = match self.inspector.topics().await {
            Ok(mut topics) => {
                add_rates(&mut topics, previous, at);
                let groups = match self.inspector.groups(&topics).await {
                    Ok(mut groups) => {
                        self.lag
                            .observe(&self.inspector, &topics, &mut groups, at)
                            .await;
                        groups
                    }
                    Err(error) => {
                        tracing::debug!(%error, "group sample failed");
                        previous.groups.clone()
                    }
                };
                (topics, groups, true)
            }
            Err(error) => {
                pipeline.kafka.last_error = Some(format!("cannot reach Kafka: {error}"));
                (previous.topics.clone(), previous.groups.clone(), false)
            }
        };
        // The previous sample's topics would read as a second with nothing appended.
        let read = fresh.then_some(topics.as_slice());
        self.rates.record(at, &pipeline.stages, read);
        self.rates.annotate(&mut pipeline.stages);
        let elapsed = Duration::from_millis(u64::try_from(at - previous.at).unwrap_or(1000));
        let mut snapshot = Snapshot {
            at,
            pipeline,
            topics,
            groups,
            // The stages' group members are in `pipeline.stages[].members` only.
            sentiment: self.sentiment_runtime.view(elapsed),
            search: self.search_status().await,
            aggregate: self.aggregate_metrics.view(),
            lab: self.lab.view(),
            lesson: Default::default(),
        };
        snapshot.lesson = self.lesson.observe(&snapshot);
        self.incidents.observe(&snapshot);
        snapshot
    }
}

/// Pipebook's topics; `pipebook.workers` (the heartbeats) is compacted.
pub fn topic_specs(partitions: i32) -> Vec<TopicSpec> {
    [
        (TOPIC_REVIEWS, partitions, false),
        (TOPIC_DLQ, 1, false),
        (TOPIC_SENTIMENT, partitions, false),
        (TOPIC_LATE, partitions, false),
        (TOPIC_AGGREGATES, 1, false),
        (TOPIC_WORKERS, members::WORKERS_PARTITIONS, true),
    ]
    .into_iter()
    .map(|(name, partitions, compact)| TopicSpec {
        name: name.to_owned(),
        partitions,
        compact,
    })
    .chain([crate::aggregate::checkpoint::topic_spec(partitions)])
    .collect()
}

/// Records appended per second since the previous sample, per partition.
fn add_rates(topics: &mut [TopicInfo], previous: &Snapshot, now_ms: i64) {
    let elapsed = (now_ms - previous.at) as f64 / 1000.0;
    if previous.at == 0 || elapsed <= 0.0 {
        return;
    }
    for topic in topics {
        let Some(before) = previous.topic(&topic.name) else {
            continue;
        };
        for partition in &mut topic.partitions {
            if let Some(old) = before.partitions.iter().find(|p| p.id == partition.id) {
                partition.rate = ((partition.high - old.high).max(0) as f64 / elapsed).round();
            }
        }
    }
}

async fn sample_forever(engine: std::sync::Weak<Engine>) {
    let mut ticker = tokio::time::interval(SNAPSHOT_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let previous = engine.snapshot.borrow().clone();
        let next = engine.sample(&previous).await;
        let frame = engine.feed.borrow().next(&next);
        engine.snapshot.send_replace(next);
        engine.feed.send_replace(Arc::new(frame));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::api::PartitionInfo;

    fn topic(high: i64) -> TopicInfo {
        TopicInfo {
            name: "reviews".into(),
            partitions: vec![PartitionInfo {
                id: 0,
                low: 0,
                high,
                rate: 0.0,
            }],
        }
    }

    #[test]
    fn rates_are_high_watermark_growth_per_second() {
        let previous = Snapshot {
            at: 10_000,
            topics: vec![topic(100)],
            ..Snapshot::default()
        };
        let mut now = vec![topic(600)];
        add_rates(&mut now, &previous, 12_000);
        assert_eq!(now[0].partitions[0].rate, 250.0);
    }
}
