//! JSON types of Pipebook's control API, shared by the server (which produces them) and the
//! browser (which draws them). Field names are the wire format documented in `docs/api.md`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Topic the producer stage writes raw reviews to.
pub const TOPIC_REVIEWS: &str = "reviews";
/// Topic malformed records are parked in, each with the reason it was refused.
pub const TOPIC_DLQ: &str = "reviews.dlq";
/// Topic the sentiment stage writes enriched reviews to.
pub const TOPIC_SENTIMENT: &str = "reviews.sentiment";
/// Topic the aggregate stage writes window results to (key = window type, bounds and key).
pub const TOPIC_AGGREGATES: &str = "reviews.aggregates";
/// Topic the aggregate stage sends records behind the watermark to, when told to keep them.
pub const TOPIC_LATE: &str = "reviews.late";
/// Consumer group of the aggregate stage, unless its config names another.
pub const GROUP_AGGREGATE: &str = "pipebook-aggregate";
/// Consumer group of the indexer stage, unless its config names another.
pub const GROUP_INDEXER: &str = "pipebook-indexer";

/// A Yelp-style review, the record that flows through the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub review_id: String,
    pub user_id: String,
    pub business_id: String,
    pub stars: u8,
    #[serde(default)]
    pub useful: u32,
    #[serde(default)]
    pub funny: u32,
    #[serde(default)]
    pub cool: u32,
    pub text: String,
    /// Event time as the Yelp dataset writes it: `YYYY-MM-DD HH:MM:SS`.
    pub date: String,
}

/// The label a classifier gives a review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Sentiment {
    Positive,
    Negative,
    Neutral,
}

impl Sentiment {
    /// What a review's stars say, the usual reading: 4–5 positive, 1–2 negative, 3 neutral.
    pub fn from_stars(stars: u8) -> Sentiment {
        match stars {
            4.. => Sentiment::Positive,
            3 => Sentiment::Neutral,
            _ => Sentiment::Negative,
        }
    }

    /// Position in [`Sentiment::ALL`].
    pub fn index(self) -> usize {
        match self {
            Sentiment::Positive => 0,
            Sentiment::Negative => 1,
            Sentiment::Neutral => 2,
        }
    }

    pub const ALL: [Sentiment; 3] = [Sentiment::Positive, Sentiment::Negative, Sentiment::Neutral];

    pub fn as_str(self) -> &'static str {
        match self {
            Sentiment::Positive => "POSITIVE",
            Sentiment::Negative => "NEGATIVE",
            Sentiment::Neutral => "NEUTRAL",
        }
    }
}

/// Lifecycle state of a stage (or of the embedded broker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StageState {
    #[default]
    Stopped,
    Running,
    Paused,
    Failed,
}

impl StageState {
    pub fn as_str(self) -> &'static str {
        match self {
            StageState::Stopped => "stopped",
            StageState::Running => "running",
            StageState::Paused => "paused",
            StageState::Failed => "failed",
        }
    }
}

/// One stage as `GET /api/pipeline` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StageStatus {
    pub id: String,
    pub state: StageState,
    /// Monotonic counters (records sent, acknowledged, refused …) since the stage last started.
    pub counters: BTreeMap<String, u64>,
    /// Human-readable detail of what the stage is doing now (e.g. "listening on 127.0.0.1:41234").
    #[serde(default)]
    pub detail: Option<String>,
    pub last_error: Option<String>,
    /// The configuration the stage runs with, as JSON.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
}

/// `GET /api/pipeline`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PipelineStatus {
    pub kafka: KafkaStatus,
    pub stages: Vec<StageStatus>,
    /// Whether the operator lets the streamer listen on, and the producer connect to, addresses
    /// other than loopback (`PIPEBOOK_ALLOW_NETWORK_SOCKETS`); cell 1 shows it.
    #[serde(default)]
    pub network_sockets_allowed: bool,
}

impl PipelineStatus {
    pub fn stage(&self, id: &str) -> Option<&StageStatus> {
        self.stages.iter().find(|stage| stage.id == id)
    }

    /// One counter of one stage; 0 when either is unknown.
    pub fn counter(&self, stage: &str, name: &str) -> u64 {
        self.stage(stage)
            .and_then(|s| s.counters.get(name).copied())
            .unwrap_or(0)
    }
}

/// Where the Kafka cluster is and whether it answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct KafkaStatus {
    /// `embedded` (started by Pipebook) or `external`.
    pub mode: String,
    pub bootstrap_servers: String,
    pub state: StageState,
    pub last_error: Option<String>,
}

/// Configuration of the socket streamer stage (`POST /api/stages/streamer/start`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamerConfig {
    /// Reviews per second; 0 means as fast as the client reads.
    #[serde(default = "default_rate")]
    pub rate: u32,
    /// Reviews sent together in one write.
    #[serde(default = "default_chunk_size")]
    pub chunk_size: u32,
    /// `generator` for built-in reviews, or the name of a Yelp-format JSON-lines file in the
    /// datasets folder (`GET /api/datasets`); never a path.
    #[serde(default = "default_source")]
    pub source: String,
    /// Seed of the built-in generator: the same seed gives the same reviews.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Stop after this many reviews (for the generator; a file ends on its own).
    #[serde(default)]
    pub limit: Option<u64>,
    /// TCP address the streamer listens on; port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Event time of each review: the moment it is sent (`live`), or the source's own dates
    /// (`replay`: the generator spaces reviews 10 s apart from 2024-01-01 09:00).
    #[serde(default)]
    pub clock: EventClock,
    /// Share of reviews (0–1) sent late: their event time is moved back by `late_by_secs`, so
    /// they arrive out of order, behind the watermark when the delay exceeds the lateness allowed.
    #[serde(default)]
    pub late_share: f64,
    #[serde(default = "default_late_by")]
    pub late_by_secs: u32,
}

/// Where a review's event time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EventClock {
    #[default]
    Live,
    Replay,
}

fn default_late_by() -> u32 {
    120
}

fn default_rate() -> u32 {
    500
}
fn default_chunk_size() -> u32 {
    50
}
fn default_source() -> String {
    "generator".to_owned()
}
fn default_seed() -> u64 {
    42
}
fn default_listen() -> String {
    "127.0.0.1:0".to_owned()
}

impl Default for StreamerConfig {
    fn default() -> Self {
        Self {
            rate: default_rate(),
            chunk_size: default_chunk_size(),
            source: default_source(),
            seed: default_seed(),
            limit: None,
            listen: default_listen(),
            clock: EventClock::default(),
            late_share: 0.0,
            late_by_secs: default_late_by(),
        }
    }
}

/// Configuration of the producer stage (`POST /api/stages/producer/start`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProducerConfig {
    /// Socket to read review lines from; defaults to the running streamer's address. Unless the
    /// operator allows network sockets, only that address is accepted.
    #[serde(default)]
    pub socket: Option<String>,
}

/// Which classifier the sentiment workers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClassifierChoice {
    /// The offline VADER lexicon: no network, ~150k reviews/s per core.
    #[default]
    Lexicon,
    /// An OpenAI-compatible chat-completions endpoint (PIPEBOOK_LLM_* settings).
    Llm,
}

/// Configuration of the sentiment stage (`POST /api/stages/sentiment/start`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentimentConfig {
    /// Consumers in the group `pipebook-sentiment`, 1..=8.
    #[serde(default = "default_workers")]
    pub workers: u8,
    #[serde(default)]
    pub classifier: ClassifierChoice,
    /// Compound score at or above which a review is POSITIVE.
    #[serde(default = "default_positive")]
    pub positive_threshold: f64,
    /// Compound score at or below which a review is NEGATIVE.
    #[serde(default = "default_negative")]
    pub negative_threshold: f64,
    /// Consumer group; a new group starts from the beginning of `reviews` with its own offsets.
    #[serde(default = "default_group")]
    pub group: String,
}

fn default_group() -> String {
    "pipebook-sentiment".to_owned()
}

fn default_workers() -> u8 {
    2
}
fn default_positive() -> f64 {
    0.05
}
fn default_negative() -> f64 {
    -0.05
}

impl Default for SentimentConfig {
    fn default() -> Self {
        Self {
            workers: default_workers(),
            classifier: ClassifierChoice::default(),
            positive_threshold: default_positive(),
            negative_threshold: default_negative(),
            group: default_group(),
        }
    }
}

/// A review with its sentiment: the records of `reviews.sentiment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrichedReview {
    #[serde(flatten)]
    pub review: Review,
    pub sentiment: Sentiment,
    /// Compound score, −1 (most negative) … 1 (most positive); 0 when an LLM labelled it.
    pub score: f64,
    /// `lexicon` or `llm`.
    pub classifier: String,
    pub model: Option<String>,
    /// RFC 3339 processing time.
    pub processed_at: String,
    pub worker: String,
}

/// One sentiment worker as the cell shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    pub id: String,
    /// `running`, `stopped` or `killed`.
    pub state: String,
    pub partitions: Vec<i32>,
    pub processed: u64,
    /// Reviews per second over the last sampling interval.
    pub rate: f64,
}

/// A partition assignment change seen by a worker, or a worker joining / being killed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebalanceEvent {
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub worker: String,
    /// `assigned`, `revoked`, `started`, `stopped` or `killed`.
    pub kind: String,
    pub partitions: Vec<i32>,
}

/// A recently classified review, for the live table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatestReview {
    pub review_id: String,
    pub excerpt: String,
    pub stars: u8,
    pub sentiment: Sentiment,
    pub score: f64,
    pub classifier: String,
    pub worker: String,
    pub partition: i32,
    pub offset: i64,
}

/// The sentiment stage's live view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SentimentView {
    pub workers: Vec<WorkerView>,
    pub rebalances: Vec<RebalanceEvent>,
    pub latest: Vec<LatestReview>,
    /// Label vs stars: `confusion[row][col]`, rows = stars read as POSITIVE (≥4), NEGATIVE (≤2),
    /// NEUTRAL (3); columns = predicted POSITIVE, NEGATIVE, NEUTRAL.
    pub confusion: [[u64; 3]; 3],
}

/// Low and high watermark of one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionInfo {
    pub id: i32,
    pub low: i64,
    pub high: i64,
    /// Records appended per second over the last sampling interval (SSE only; 0 on a one-off query).
    #[serde(default)]
    pub rate: f64,
}

/// `GET /api/kafka/topics` returns a list of these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    /// Records ever appended, summed over partitions.
    pub fn high_sum(&self) -> i64 {
        self.partitions.iter().map(|p| p.high).sum()
    }
}

/// Committed offset and lag of one partition for one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupPartition {
    pub topic: String,
    pub partition: i32,
    /// Next offset the group will read; `None` when the group has committed nothing yet.
    pub committed: Option<i64>,
    pub high: i64,
    pub lag: i64,
}

/// A group member and the partitions assigned to it, as the broker's DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMember {
    /// The member id the coordinator gave it.
    pub member: String,
    /// The client's `client.id`.
    #[serde(default)]
    pub client_id: String,
    /// The client's address as the broker saw it; empty when the broker does not say (the
    /// embedded broker does not).
    #[serde(default)]
    pub host: String,
    /// "topic-partition" labels.
    pub assignment: Vec<String>,
}

/// One line on what a consumer group state (as Kafka's DescribeGroups names them) means.
pub fn group_state_explanation(state: &str) -> &'static str {
    match state {
        "Empty" => "no member: committed offsets are kept for when one joins",
        "PreparingRebalance" => "a member joined or left: everyone must rejoin before work resumes",
        "CompletingRebalance" => "all joined; waiting for the leader's partition assignment",
        "Stable" => "every member has its partitions and is consuming",
        "Dead" => "the broker has no record of this group (no member, no metadata)",
        _ => "a state this page does not know",
    }
}

/// `GET /api/kafka/groups` returns a list of these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub group: String,
    pub state: String,
    pub members: Vec<GroupMember>,
    pub partitions: Vec<GroupPartition>,
}

impl GroupInfo {
    pub fn total_lag(&self) -> i64 {
        self.partitions.iter().map(|p| p.lag).sum()
    }
}

/// One record read by the message browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the Unix epoch, as the broker stamped it.
    pub timestamp: Option<i64>,
    pub key: Option<String>,
    pub value: String,
    pub headers: BTreeMap<String, String>,
}

/// What `GET /api/events` pushes about once a second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Snapshot {
    /// Milliseconds since the Unix epoch when the snapshot was taken.
    pub at: i64,
    pub pipeline: PipelineStatus,
    pub topics: Vec<TopicInfo>,
    pub groups: Vec<GroupInfo>,
    #[serde(default)]
    pub sentiment: SentimentView,
    #[serde(default)]
    pub search: SearchStatus,
    #[serde(default)]
    pub aggregate: AggregateView,
    /// The newest Parquet files, newest first.
    #[serde(default)]
    pub parquet: Vec<ParquetFile>,
    #[serde(default)]
    pub lesson: LessonView,
    /// The delivery-semantics lab's latest run.
    #[serde(default)]
    pub lab: DeliveryLabView,
}

impl Snapshot {
    pub fn topic(&self, name: &str) -> Option<&TopicInfo> {
        self.topics.iter().find(|topic| topic.name == name)
    }

    /// Brings the snapshot up to date with an `event: parts` of the live feed: the parts it
    /// carries replace the ones held, the others stay as they are.
    pub fn apply(&mut self, delta: SnapshotDelta) {
        let parts = delta.parts;
        self.at = delta.at;
        if let Some(pipeline) = parts.pipeline {
            self.pipeline = pipeline;
        }
        if let Some(topics) = parts.topics {
            self.topics = topics;
        }
        if let Some(groups) = parts.groups {
            self.groups = groups;
        }
        if let Some(sentiment) = parts.sentiment {
            self.sentiment = sentiment;
        }
        if let Some(search) = parts.search {
            self.search = search;
        }
        if let Some(aggregate) = parts.aggregate {
            self.aggregate = aggregate;
        }
        if let Some(parquet) = parts.parquet {
            self.parquet = parquet;
        }
        if let Some(lesson) = parts.lesson {
            self.lesson = lesson;
        }
        if let Some(lab) = parts.lab {
            self.lab = lab;
        }
    }
}

// ─────────────────────────────────────────────────────────────────────────────────────────────
// The live feed (`GET /api/events`): a full snapshot on connect, then the parts that changed.
// ─────────────────────────────────────────────────────────────────────────────────────────────

/// The parts of a [`Snapshot`] the live feed sends on their own (every field but `at`), named
/// as in its JSON.
pub const SNAPSHOT_PARTS: [&str; 9] = [
    "pipeline",
    "topics",
    "groups",
    "sentiment",
    "search",
    "aggregate",
    "parquet",
    "lesson",
    "lab",
];

/// Windows of each kind (tumbling, sliding) the live feed sends and the window charts draw:
/// the latest ones.
pub const LIVE_WINDOWS_PER_KIND: usize = 24;
/// Session windows the live feed sends and the sessions table shows: the latest-ending ones.
pub const LIVE_SESSIONS: usize = 8;
/// Rebalance events the timeline lists, newest first (the feed also sends the oldest one kept,
/// from which the timeline counts its seconds).
pub const LIVE_REBALANCES: usize = 12;
/// Labelled reviews the live table shows, newest first.
pub const LIVE_LATEST_REVIEWS: usize = 8;

/// `event: parts` of the live feed: the snapshot's time and the parts that changed since the
/// event before it on the same connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SnapshotDelta {
    pub at: i64,
    pub parts: SnapshotParts,
}

/// Parts of a snapshot, each present only when it changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SnapshotParts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<TopicInfo>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<GroupInfo>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentiment: Option<SentimentView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<AggregateView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parquet: Option<Vec<ParquetFile>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lesson: Option<LessonView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<DeliveryLabView>,
}

/// Configuration of the indexer stage (`POST /api/stages/indexer/start`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexerConfig {
    /// Consumer group on `reviews.sentiment`; a new group re-reads the topic from offset 0
    /// (documents keep their ids, so the index does not grow).
    #[serde(default = "default_indexer_group")]
    pub group: String,
    /// Most documents in one bulk request.
    #[serde(default = "default_batch_docs")]
    pub batch_docs: u32,
    /// Most bytes of documents in one bulk request.
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: u32,
}

fn default_indexer_group() -> String {
    GROUP_INDEXER.to_owned()
}
fn default_batch_docs() -> u32 {
    1_000
}
fn default_batch_bytes() -> u32 {
    5 * 1024 * 1024
}

impl Default for IndexerConfig {
    fn default() -> Self {
        Self {
            group: default_indexer_group(),
            batch_docs: default_batch_docs(),
            batch_bytes: default_batch_bytes(),
        }
    }
}

/// Which clock windows are computed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TimeDomain {
    /// The review's own `date`: results do not depend on when records arrive.
    #[default]
    Event,
    /// When the aggregate stage reads the record: simple, but a replay gives other results.
    Processing,
}

/// When a window's result is written to `reviews.aggregates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutputMode {
    /// Once, when the watermark passes the window's end (final; needs a watermark).
    #[default]
    Append,
    /// Every trigger, the windows that changed.
    Update,
    /// Every trigger, every window kept (state is never evicted).
    Complete,
}

/// What happens to records behind the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LatePolicy {
    /// Counted, then dropped.
    #[default]
    Drop,
    /// Counted and written to `reviews.late`.
    Topic,
}

/// Configuration of the aggregate stage (`POST /api/stages/aggregate/start`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateConfig {
    #[serde(default = "default_aggregate_group")]
    pub group: String,
    /// Micro-batch trigger interval in milliseconds; 0 = "once": process what is there, stop.
    #[serde(default = "default_trigger_ms")]
    pub trigger_ms: u64,
    #[serde(default)]
    pub time: TimeDomain,
    #[serde(default = "default_tumbling_secs")]
    pub tumbling_secs: u64,
    #[serde(default = "default_sliding_secs")]
    pub sliding_secs: u64,
    /// How far a sliding window moves each time; must divide `sliding_secs`.
    #[serde(default = "default_slide_secs")]
    pub slide_secs: u64,
    /// A business's session ends after this long without a review.
    #[serde(default = "default_session_gap_secs")]
    pub session_gap_secs: u64,
    /// Watermark = latest event time seen − this.
    #[serde(default = "default_lateness_secs")]
    pub allowed_lateness_secs: u64,
    #[serde(default)]
    pub late_policy: LatePolicy,
    #[serde(default)]
    pub output_mode: OutputMode,
}

fn default_aggregate_group() -> String {
    GROUP_AGGREGATE.to_owned()
}
fn default_trigger_ms() -> u64 {
    1_000
}
fn default_tumbling_secs() -> u64 {
    60
}
fn default_sliding_secs() -> u64 {
    60
}
fn default_slide_secs() -> u64 {
    15
}
fn default_session_gap_secs() -> u64 {
    30
}
fn default_lateness_secs() -> u64 {
    30
}

impl Default for AggregateConfig {
    fn default() -> Self {
        Self {
            group: default_aggregate_group(),
            trigger_ms: default_trigger_ms(),
            time: TimeDomain::default(),
            tumbling_secs: default_tumbling_secs(),
            sliding_secs: default_sliding_secs(),
            slide_secs: default_slide_secs(),
            session_gap_secs: default_session_gap_secs(),
            allowed_lateness_secs: default_lateness_secs(),
            late_policy: LatePolicy::default(),
            output_mode: OutputMode::default(),
        }
    }
}

/// Configuration of the Parquet sink (`POST /api/stages/parquet/start`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetConfig {
    #[serde(default = "default_parquet_group")]
    pub group: String,
    /// Start a new file after this many reviews…
    #[serde(default = "default_roll_rows")]
    pub roll_rows: u32,
    /// …or after this many seconds, whichever comes first.
    #[serde(default = "default_roll_secs")]
    pub roll_secs: u32,
}

fn default_parquet_group() -> String {
    "pipebook-parquet".to_owned()
}
fn default_roll_rows() -> u32 {
    10_000
}
fn default_roll_secs() -> u32 {
    30
}

impl Default for ParquetConfig {
    fn default() -> Self {
        Self {
            group: default_parquet_group(),
            roll_rows: default_roll_rows(),
            roll_secs: default_roll_secs(),
        }
    }
}

/// One file the Parquet sink wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParquetFile {
    /// Relative to `<data dir>/parquet`, e.g. `date=2024-01-01/part-1732363200000-0.parquet`.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
}

/// Tumbling, sliding or session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    Tumbling,
    Sliding,
    Session,
}

impl WindowKind {
    pub const ALL: [WindowKind; 3] = [
        WindowKind::Tumbling,
        WindowKind::Sliding,
        WindowKind::Session,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WindowKind::Tumbling => "tumbling",
            WindowKind::Sliding => "sliding",
            WindowKind::Session => "session",
        }
    }
}

/// Counts per sentiment, keyed like the API: `{"POSITIVE": 3, "NEGATIVE": 1, "NEUTRAL": 0}`.
pub type SentimentCounts = BTreeMap<Sentiment, u64>;

/// One window's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowRow {
    pub kind: WindowKind,
    /// Window start and end (exclusive), milliseconds since the Unix epoch.
    pub start: i64,
    pub end: i64,
    /// The business a session window belongs to; `None` for tumbling and sliding windows.
    pub key: Option<String>,
    pub counts: SentimentCounts,
    pub avg_score: Option<f64>,
    pub avg_stars: Option<f64>,
    /// Reviews per stars value, 1★ … 5★.
    pub stars: [u64; 5],
    /// Average sentiment score per stars value, 1★ … 5★ (`None` where there is no review).
    #[serde(default)]
    pub avg_score_by_stars: [Option<f64>; 5],
    /// Up to three businesses with the most reviews in the window.
    pub top_businesses: Vec<TermCount>,
    /// Whether the watermark has passed the end: the result will not change any more.
    pub closed: bool,
}

impl WindowRow {
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// `GET /api/aggregates?window=…` and the aggregate part of the live snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AggregateView {
    /// Milliseconds since the Unix epoch; `None` before the first record.
    pub watermark: Option<i64>,
    pub max_event_time: Option<i64>,
    /// Records that arrived behind the watermark (dropped or sent to `reviews.late`).
    pub late_records: u64,
    /// Records skipped because their `review_id` was already counted.
    pub duplicates: u64,
    /// Records counted in windows since the stage's state began.
    pub counted: u64,
    /// Open windows and the latest closed ones, by kind and start. The live feed sends only the
    /// ones the cell draws (see [`LIVE_WINDOWS_PER_KIND`], [`LIVE_SESSIONS`]) and `totals`.
    pub windows: Vec<WindowRow>,
    /// What the cell shows about every window, for a view whose `windows` were cut down to the
    /// ones drawn (the live feed's); absent when `windows` are all there (`GET /api/aggregates`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals: Option<WindowTotals>,
}

/// How many windows of one kind there are, and how many of them are open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WindowCount {
    pub windows: u64,
    pub open: u64,
}

/// Figures over all windows of an [`AggregateView`], kept when its list is cut down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct WindowTotals {
    pub tumbling: WindowCount,
    pub sliding: WindowCount,
    pub session: WindowCount,
    /// Over the tumbling windows: reviews per stars value, 1★ … 5★ …
    pub tumbling_stars: [u64; 5],
    /// … and the sum of their sentiment scores (average per window × its count, added up).
    pub tumbling_score_sums: [f64; 5],
}

impl AggregateView {
    /// Windows of `kind`, and open ones among them: from `totals` when the list was cut down.
    pub fn count_of(&self, kind: WindowKind) -> WindowCount {
        if let Some(totals) = &self.totals {
            return match kind {
                WindowKind::Tumbling => totals.tumbling,
                WindowKind::Sliding => totals.sliding,
                WindowKind::Session => totals.session,
            };
        }
        let of_kind = self.windows.iter().filter(|w| w.kind == kind);
        let (windows, open) = of_kind.fold((0, 0), |(all, open), w| {
            (all + 1, open + u64::from(!w.closed))
        });
        WindowCount { windows, open }
    }

    /// Over all tumbling windows: reviews per stars value and the sum of their scores.
    pub fn tumbling_stars(&self) -> ([u64; 5], [f64; 5]) {
        if let Some(totals) = &self.totals {
            return (totals.tumbling_stars, totals.tumbling_score_sums);
        }
        let mut counts = [0u64; 5];
        let mut sums = [0f64; 5];
        for window in self
            .windows
            .iter()
            .filter(|w| w.kind == WindowKind::Tumbling)
        {
            for i in 0..5 {
                counts[i] += window.stars[i];
                sums[i] += window.avg_score_by_stars[i].unwrap_or(0.0) * window.stars[i] as f64;
            }
        }
        (counts, sums)
    }

    /// The latest `n` windows of `kind` in list order, oldest first: the bars of a window chart.
    pub fn latest_windows(&self, kind: WindowKind, n: usize) -> Vec<&WindowRow> {
        let of_kind: Vec<&WindowRow> = self.windows.iter().filter(|w| w.kind == kind).collect();
        let skip = of_kind.len().saturating_sub(n);
        of_kind.into_iter().skip(skip).collect()
    }

    /// The `n` session windows that end last, latest first (ties in list order): the sessions
    /// table.
    pub fn latest_sessions(&self, n: usize) -> Vec<&WindowRow> {
        let mut sessions: Vec<&WindowRow> = self
            .windows
            .iter()
            .filter(|w| w.kind == WindowKind::Session)
            .collect();
        sessions.sort_by_key(|w| std::cmp::Reverse(w.end));
        sessions.truncate(n);
        sessions
    }

    /// The totals of this view's windows, as [`AggregateView::totals`] keeps them.
    pub fn totals(&self) -> WindowTotals {
        let (tumbling_stars, tumbling_score_sums) = self.tumbling_stars();
        WindowTotals {
            tumbling: self.count_of(WindowKind::Tumbling),
            sliding: self.count_of(WindowKind::Sliding),
            session: self.count_of(WindowKind::Session),
            tumbling_stars,
            tumbling_score_sums,
        }
    }
}

/// Which search engine holds the index, and how it is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SearchStatus {
    /// `embedded` (tantivy, in-process) or `elasticsearch`.
    pub backend: String,
    /// Where: the index directory, or the cluster URL (without credentials).
    pub location: String,
    /// Documents searchable now; `None` when the backend did not answer.
    pub documents: Option<u64>,
    pub last_error: Option<String>,
    /// A simulated outage is on (the "pause search" fault button).
    #[serde(default)]
    pub paused: bool,
}

/// `GET /api/search` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SearchRequest {
    /// Full-text query on the review text; empty = every review, newest first.
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub sentiment: Option<Sentiment>,
    #[serde(default)]
    pub stars_min: Option<u8>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    pub review_id: String,
    pub text: String,
    pub stars: u8,
    pub sentiment: Sentiment,
    pub score: f64,
    /// Event time, RFC 3339 (UTC).
    pub date: String,
}

/// `GET /api/search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SearchResults {
    /// Every matching document, not only the ones returned.
    pub total: u64,
    pub hits: Vec<SearchHit>,
    /// Time the search engine took, in milliseconds.
    pub took_ms: f64,
}

/// A bucket of a `terms` aggregation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TermCount {
    pub key: String,
    pub count: u64,
}

/// Reviews with one stars value, and their average sentiment score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StarsBucket {
    pub stars: u8,
    pub count: u64,
    pub avg_score: Option<f64>,
}

/// One `date_histogram` bucket split by sentiment (counts in [`Sentiment::ALL`] order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeBucket {
    /// Bucket start, milliseconds since the Unix epoch.
    pub start: i64,
    pub count: u64,
    pub by_sentiment: [u64; 3],
}

/// `GET /api/search/aggregations`: what the search engine's own aggregations say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SearchAggregations {
    pub total: u64,
    pub by_sentiment: Vec<TermCount>,
    pub by_stars: Vec<StarsBucket>,
    /// `fixed_interval` of the histogram, e.g. `1h`.
    pub interval: String,
    pub over_time: Vec<TimeBucket>,
    pub top_businesses: Vec<TermCount>,
    /// Percentiles of the sentiment score, keyed `"50.0"`, `"90.0"`, `"99.0"`.
    pub score_percentiles: BTreeMap<String, f64>,
    pub took_ms: f64,
}

/// One "Try this" step of the lesson, as the notebook shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LessonStep {
    pub id: String,
    /// The cell the step belongs to (1-based, as numbered on the page).
    pub cell: u8,
    /// The streaming concepts the step makes visible.
    pub concepts: Vec<String>,
    /// What to do, in one sentence.
    pub task: String,
    /// Parts of the task done so far, of `parts` (e.g. "lag above 1,000" then "back to 0").
    pub reached: usize,
    pub parts: usize,
    /// When the step turned green, milliseconds since the Unix epoch.
    pub done_at: Option<i64>,
}

impl LessonStep {
    pub fn done(&self) -> bool {
        self.done_at.is_some()
    }
}

/// Progress through the lesson; the server keeps it, so a reload shows the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LessonView {
    pub steps: Vec<LessonStep>,
}

impl LessonView {
    pub fn done(&self) -> usize {
        self.steps.iter().filter(|step| step.done()).count()
    }

    pub fn for_cell(&self, cell: u8) -> impl Iterator<Item = &LessonStep> {
        self.steps.iter().filter(move |step| step.cell == cell)
    }
}

/// Body of `POST /api/faults/malformed` and `POST /api/faults/resend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    #[serde(default = "default_fault_count")]
    pub count: u32,
}

fn default_fault_count() -> u32 {
    100
}

impl Default for FaultRequest {
    fn default() -> Self {
        Self {
            count: default_fault_count(),
        }
    }
}

/// `StreamerConfig::source` that means the built-in generator rather than a dataset.
pub const SOURCE_GENERATOR: &str = "generator";
/// The only content type `PUT /api/datasets/{name}` accepts: a cross-site form cannot send it.
pub const DATASET_CONTENT_TYPE: &str = "application/x-ndjson";
/// Longest dataset name accepted for an upload.
pub const DATASET_NAME_MAX_CHARS: usize = 100;

/// A file in the datasets folder the streamer can read (`GET /api/datasets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// File name in the datasets folder: what `StreamerConfig::source` takes.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Lines that are not blank (what the streamer sends); `null` while still being counted.
    #[serde(default)]
    pub lines: Option<u64>,
}

/// `GET /api/datasets`: the files in the datasets folder, by name. The built-in generator is not
/// a file and is not listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DatasetList {
    pub datasets: Vec<DatasetInfo>,
    /// Largest upload the server accepts (`PIPEBOOK_MAX_UPLOAD_BYTES`).
    pub max_upload_bytes: u64,
}

/// The rule for a name a dataset is uploaded (or deleted) under: 1–100 of `A-Z a-z 0-9 . _ -`,
/// not starting with `.`, ending in `.jsonl` or `.json`. Shared by the server and the upload
/// control, so the browser can say so before sending the file. The error names `name`.
pub fn check_dataset_name(name: &str) -> Result<(), String> {
    let length = name.chars().count();
    if !(1..=DATASET_NAME_MAX_CHARS).contains(&length) {
        return Err(format!(
            "name: must be 1..={DATASET_NAME_MAX_CHARS} characters, got {length}"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "name: only letters, digits, '.', '_' and '-' are allowed, got {bad:?} in {name:?}"
        ));
    }
    if name.starts_with('.') {
        return Err(format!("name: must not start with '.', got {name:?}"));
    }
    if !(name.ends_with(".jsonl") || name.ends_with(".json")) {
        return Err(format!(
            "name: must end in .jsonl or .json (one review per line), got {name:?}"
        ));
    }
    Ok(())
}

/// A size as people write it, in binary units: 104857600 → "100 MiB", 1536 → "1.5 KiB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Body of every 4xx/5xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

/// What the person at this browser may do: the operator changes the pipeline; a viewer (the
/// read-only link a teacher hands a room) watches it live and can search and trace, nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Operator,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    pub fn from_name(name: &str) -> Self {
        if name == "viewer" {
            Role::Viewer
        } else {
            Role::Operator
        }
    }
}

/// `GET /api/session`: who this request is, and how the workbench is exposed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub role: Role,
    /// Whether every request needs a token (server bound to the network, or a token set).
    pub token_required: bool,
    /// Whether the server listens on a non-loopback address.
    pub exposed: bool,
}

// ─────────────────────────────────────────────────────────────────────────────────────────────
// Delivery-semantics lab (`/api/lab/delivery`, cell 6). Kept together at the end of the file.
// ─────────────────────────────────────────────────────────────────────────────────────────────

/// Most records one lab run may copy.
pub const LAB_MAX_RECORDS: u64 = 100_000;
/// Records a lab run copies unless asked otherwise.
pub const LAB_DEFAULT_RECORDS: u64 = 10_000;

/// Where a copy job commits its input offsets relative to writing its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryMode {
    /// Commit, then write: a crash in between loses the batch.
    AtMostOnce,
    /// Write, wait for the acks, then commit: a crash in between writes the batch twice.
    AtLeastOnce,
    /// Write and commit in one transaction: a crash aborts both.
    ExactlyOnce,
}

impl DeliveryMode {
    pub const ALL: [DeliveryMode; 3] = [
        DeliveryMode::AtMostOnce,
        DeliveryMode::AtLeastOnce,
        DeliveryMode::ExactlyOnce,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryMode::AtMostOnce => "at_most_once",
            DeliveryMode::AtLeastOnce => "at_least_once",
            DeliveryMode::ExactlyOnce => "exactly_once",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            DeliveryMode::AtMostOnce => "at-most-once",
            DeliveryMode::AtLeastOnce => "at-least-once",
            DeliveryMode::ExactlyOnce => "exactly-once",
        }
    }

    /// When the input offsets are committed, in the words the lab's table uses.
    pub fn commit_point(self) -> &'static str {
        match self {
            DeliveryMode::AtMostOnce => "before the output is written",
            DeliveryMode::AtLeastOnce => "after the output is acknowledged",
            DeliveryMode::ExactlyOnce => "in the same transaction as the output",
        }
    }
}

/// Which modes one lab run covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryChoice {
    AtMostOnce,
    AtLeastOnce,
    ExactlyOnce,
    /// The three, one after the other.
    #[default]
    All,
}

impl DeliveryChoice {
    pub fn modes(self) -> Vec<DeliveryMode> {
        match self {
            DeliveryChoice::AtMostOnce => vec![DeliveryMode::AtMostOnce],
            DeliveryChoice::AtLeastOnce => vec![DeliveryMode::AtLeastOnce],
            DeliveryChoice::ExactlyOnce => vec![DeliveryMode::ExactlyOnce],
            DeliveryChoice::All => DeliveryMode::ALL.to_vec(),
        }
    }
}

/// `POST /api/lab/delivery`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryLabRequest {
    #[serde(default)]
    pub mode: DeliveryChoice,
    /// Input records, 1..=100,000.
    #[serde(default = "default_lab_records")]
    pub records: u64,
    /// Records processed normally before the crash, 0..records; unset = half of `records`.
    #[serde(default)]
    pub crash_after: Option<u64>,
}

impl Default for DeliveryLabRequest {
    fn default() -> Self {
        Self {
            mode: DeliveryChoice::All,
            records: LAB_DEFAULT_RECORDS,
            crash_after: None,
        }
    }
}

fn default_lab_records() -> u64 {
    LAB_DEFAULT_RECORDS
}

/// Where one mode of a lab run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LabState {
    /// Queued behind another mode of the same run.
    #[default]
    Waiting,
    Running,
    Done,
    Failed,
    /// The cluster cannot give this mode's guarantee; `note` says what failed.
    Unsupported,
}

impl LabState {
    pub fn as_str(self) -> &'static str {
        match self {
            LabState::Waiting => "waiting",
            LabState::Running => "running",
            LabState::Done => "done",
            LabState::Failed => "failed",
            LabState::Unsupported => "unsupported",
        }
    }
}

/// One mode's result, counted from its output topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryResult {
    pub mode: DeliveryMode,
    pub state: LabState,
    pub input_topic: String,
    pub output_topic: String,
    /// Records in the input topic (its high watermark).
    pub produced_in: u64,
    /// Records read back from the output topic (read_committed).
    pub read_out: u64,
    /// Distinct input ids among them.
    pub distinct: u64,
    /// Input ids never seen in the output.
    pub lost: u64,
    /// Extra copies: `read_out - distinct`.
    pub duplicated: u64,
    /// Input offset of the first record of the batch the job was in when it crashed.
    pub crash_at_offset: Option<u64>,
    /// Input records this mode's job handled so far, re-reads included.
    pub processed: u64,
    /// What happened, in words (or what failed).
    pub note: Option<String>,
}

/// `GET /api/lab/delivery`, and `lab` in the live snapshot: the latest run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DeliveryLabView {
    pub running: bool,
    /// The run's id (part of its topic names); None before the first run.
    pub run: Option<String>,
    pub records: u64,
    pub crash_after: u64,
    /// Input records handled by the run so far, over all its modes (for the progress bar).
    pub processed: u64,
    /// What `processed` reaches when the run is done.
    pub total: u64,
    pub results: Vec<DeliveryResult>,
}

impl DeliveryLabView {
    pub fn result(&self, mode: DeliveryMode) -> Option<&DeliveryResult> {
        self.results.iter().find(|r| r.mode == mode)
    }
}

// ─────────────────────────────────────────────────────────────────────────────────────────────
// Trace a record (`GET /api/trace`, `GET /api/trace/next`): one review followed hop by hop.
// ─────────────────────────────────────────────────────────────────────────────────────────────

/// The places a review passes through, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceHopKind {
    /// Sent by the streamer in a chunk on its TCP socket.
    Socket,
    /// Produced to `reviews`.
    Reviews,
    /// Labelled by a sentiment worker and written to `reviews.sentiment`.
    Sentiment,
    /// Counted in the aggregate stage's windows.
    Window,
    /// Indexed in the search engine.
    Search,
}

impl TraceHopKind {
    pub const ALL: [TraceHopKind; 5] = [
        TraceHopKind::Socket,
        TraceHopKind::Reviews,
        TraceHopKind::Sentiment,
        TraceHopKind::Window,
        TraceHopKind::Search,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TraceHopKind::Socket => "socket",
            TraceHopKind::Reviews => "reviews",
            TraceHopKind::Sentiment => "sentiment",
            TraceHopKind::Window => "window",
            TraceHopKind::Search => "search",
        }
    }
}

/// Whether a review has reached a hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceHopState {
    /// It is there; the hop says where and when.
    Found,
    /// Not there yet, and the stage that would bring it is running: look again soon.
    NotYet,
    /// Not there, and the stage that would bring it is not running.
    NotRunning,
    /// Cannot tell (e.g. older than what is remembered or scanned); `detail` says why.
    Unknown,
}

impl TraceHopState {
    pub fn as_str(self) -> &'static str {
        match self {
            TraceHopState::Found => "found",
            TraceHopState::NotYet => "not yet",
            TraceHopState::NotRunning => "stage not running",
            TraceHopState::Unknown => "unknown",
        }
    }
}

/// One labelled fact of a hop (`key` → `b_17`, `worker` → `worker-2` …), in display order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceFact {
    pub name: String,
    pub value: String,
}

/// A window a review fell into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceWindow {
    pub kind: WindowKind,
    /// Start (inclusive) and end (exclusive), milliseconds since the Unix epoch.
    pub start: i64,
    pub end: i64,
    /// Reviews the window holds now, when the aggregate stage still shows it.
    pub count: Option<u64>,
    pub closed: bool,
}

/// One hop of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceHop {
    pub hop: TraceHopKind,
    pub state: TraceHopState,
    pub topic: Option<String>,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    /// When the review got here, milliseconds since the Unix epoch.
    pub at_ms: Option<i64>,
    /// Milliseconds since the previous hop with a time.
    pub latency_ms: Option<i64>,
    /// What happened here, in a sentence.
    pub detail: String,
    #[serde(default)]
    pub facts: Vec<TraceFact>,
    /// The windows it fell into (window hop only).
    #[serde(default)]
    pub windows: Vec<TraceWindow>,
}

/// `GET /api/trace?review_id=…`: a review's path through the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub review_id: String,
    /// In pipeline order: socket, reviews, sentiment, window, search.
    pub hops: Vec<TraceHop>,
    /// No hop is `not_yet`: tracing again will not show more.
    pub complete: bool,
    /// Records read from the topics to find it, and how long that took.
    pub scanned: u64,
    pub scan_ms: u64,
    /// Milliseconds since the Unix epoch when the trace was taken.
    pub traced_at: i64,
}

impl Trace {
    pub fn hop(&self, kind: TraceHopKind) -> Option<&TraceHop> {
        self.hops.iter().find(|h| h.hop == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamer_config_fills_defaults_and_refuses_unknown_fields() {
        let config: StreamerConfig = serde_json::from_str(r#"{"rate": 10}"#).expect("valid");
        assert_eq!(config.rate, 10);
        assert_eq!(config.chunk_size, 50);
        assert_eq!(config.source, "generator");
        let err = serde_json::from_str::<StreamerConfig>(r#"{"rat": 10}"#).expect_err("typo");
        assert!(err.to_string().contains("rat"), "{err}");
    }

    #[test]
    fn dataset_names_follow_one_rule_and_errors_name_the_field() {
        for good in [
            "sample-yelp.jsonl",
            "a.json",
            "Yelp_2019.v2.jsonl",
            &("x".repeat(94) + ".jsonl"),
        ] {
            assert_eq!(check_dataset_name(good), Ok(()), "{good}");
        }
        let too_long = "x".repeat(95) + ".jsonl";
        for bad in [
            "",
            ".hidden.jsonl",
            ".jsonl",
            "../etc/passwd.jsonl",
            "/etc/passwd.json",
            "a b.jsonl",
            "a\0.jsonl",
            "reviews.csv",
            "reviews",
            "réviews.jsonl",
            too_long.as_str(),
        ] {
            let err = check_dataset_name(bad).expect_err(bad);
            assert!(err.starts_with("name: "), "{bad:?}: {err}");
        }
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(100 * 1024 * 1024), "100 MiB");
        assert_eq!(human_bytes(1024), "1 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1_300_000), "1.2 MiB");
        assert_eq!(human_bytes(999), "999 bytes");
    }

    #[test]
    fn pipeline_status_without_the_sockets_flag_reads_as_loopback_only() {
        let status: PipelineStatus =
            serde_json::from_str(r#"{"kafka": {"mode": "embedded", "bootstrap_servers": "x", "state": "running", "last_error": null}, "stages": []}"#)
                .expect("older status");
        assert!(!status.network_sockets_allowed);
    }

    #[test]
    fn sentiment_serialises_upper_case() {
        let json = serde_json::to_string(&Sentiment::Negative).expect("serialise");
        assert_eq!(json, r#""NEGATIVE""#);
    }
}
