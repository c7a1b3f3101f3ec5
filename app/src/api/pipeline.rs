//! The pipeline as a whole: the records and topics, each stage's status, Kafka's topics and
//! groups, the live snapshot and its feed, errors and sessions.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{AggregateView, DeliveryLabView, LessonView, SearchStatus, SentimentView};

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
    /// Where a consumer stage's loop spends its time, and its rate; `None` for the others and
    /// until a stage has run a second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<crate::ops::StageLoad>,
    /// A consumer stage's input and processing rate, a minute of them, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rates: Option<crate::ops::StageRates>,
    /// The members of the stage's groups, in this server or in `pipebook worker` processes,
    /// from their heartbeats on `pipebook.workers` (filled by the server; none for stages that
    /// are no group's member).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<super::MemberView>,
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
    /// Seconds behind: now − the timestamp of the next record the group will read; 0 when
    /// caught up; `None` until the lag sampler (`server/src/kafka/lag.rs`) has read that
    /// record's timestamp — never a made-up 0 for a group that is behind.
    #[serde(default)]
    pub lag_seconds: Option<f64>,
}

/// A group member and the partitions assigned to it, as the broker's DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMember {
    /// The member id the coordinator gave it.
    pub member: String,
    /// The client's `client.id`.
    #[serde(default)]
    pub client_id: String,
    /// The client's address as the broker saw it at JoinGroup, `/<ip>` (Kafka's form, and the
    /// embedded broker's); empty when the broker does not say.
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
    /// Lag now, its trend and the time to catch up (filled in by the lag sampler).
    #[serde(default)]
    pub lag: crate::ops::GroupLag,
    /// The states the broker reported for the group, oldest first, changes only (the last 8).
    #[serde(default)]
    pub state_history: Vec<GroupStateChange>,
}

/// A group's state as the broker reported it, from `at` (ms since the epoch) on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupStateChange {
    pub at: i64,
    pub state: String,
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
        if let Some(lesson) = parts.lesson {
            self.lesson = lesson;
        }
        if let Some(lab) = parts.lab {
            self.lab = lab;
        }
    }
}

// The live feed (`GET /api/events`): a full snapshot on connect, then the parts that changed.

/// The parts of a [`Snapshot`] the live feed sends on their own (every field but `at`), named
/// as in its JSON.
pub const SNAPSHOT_PARTS: [&str; 8] = [
    "pipeline",
    "topics",
    "groups",
    "sentiment",
    "search",
    "aggregate",
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
    pub lesson: Option<LessonView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<DeliveryLabView>,
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
