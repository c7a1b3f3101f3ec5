//! Trace a record (`GET /api/trace`, `GET /api/trace/next`): one record — a review, a tweet, a
//! company — followed hop by hop, by the id field its dataset's description names.

use serde::{Deserialize, Serialize};

use super::{DatasetKind, WindowKind};

/// The places a record passes through, in pipeline order.
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
    /// The stage passes this record by, by design: a company has no text, so sentiment
    /// forwards it unlabelled and the indexer leaves it out. `detail` says why.
    Skipped,
}

impl TraceHopState {
    pub fn as_str(self) -> &'static str {
        match self {
            TraceHopState::Found => "found",
            TraceHopState::NotYet => "not yet",
            TraceHopState::NotRunning => "stage not running",
            TraceHopState::Unknown => "unknown",
            TraceHopState::Skipped => "skipped",
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
    /// Records the window holds now, when the aggregate stage still shows it.
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
    /// When the record got here, milliseconds since the Unix epoch.
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

impl TraceHop {
    /// What the hop's state pill says: a skipped hop says what was not done and why.
    pub fn state_label(&self) -> &'static str {
        match (self.state, self.hop) {
            (TraceHopState::Skipped, TraceHopKind::Sentiment) => "not labelled: no text",
            (TraceHopState::Skipped, TraceHopKind::Search) => "not indexed: no text",
            (state, _) => state.as_str(),
        }
    }
}

/// `GET /api/trace?review_id=…`: a record's path through the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The traced record's id: a review's `review_id`, a tweet's `tweet_id`, a company's
    /// `company_id` (its dataset's `id_field`).
    pub review_id: String,
    /// What the record is: its dataset names its key, id and event-time fields.
    #[serde(default)]
    pub dataset: DatasetKind,
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
