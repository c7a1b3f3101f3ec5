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
    /// `generator` for built-in reviews, or the path of a Yelp-format JSON-lines file.
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
        }
    }
}

/// Configuration of the producer stage (`POST /api/stages/producer/start`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProducerConfig {
    /// Socket to read review lines from; defaults to the running streamer's address.
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

/// A group member and the partitions assigned to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMember {
    pub member: String,
    pub assignment: Vec<String>,
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
}

impl Snapshot {
    pub fn topic(&self, name: &str) -> Option<&TopicInfo> {
        self.topics.iter().find(|topic| topic.name == name)
    }
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

/// Body of every 4xx/5xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
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
    fn sentiment_serialises_upper_case() {
        let json = serde_json::to_string(&Sentiment::Negative).expect("serialise");
        assert_eq!(json, r#""NEGATIVE""#);
    }
}
