//! Stage 4 · aggregate: windows, watermark, and the Parquet sink.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{Sentiment, TermCount};

/// Consumer group of the aggregate stage, unless its config names another.
pub const GROUP_AGGREGATE: &str = "pipebook-aggregate";

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

/// Consumer group of the Parquet sink, unless its config names another.
pub const GROUP_PARQUET: &str = "pipebook-parquet";

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
    GROUP_PARQUET.to_owned()
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
    /// The partitions of `reviews.sentiment` its rows came from; empty for a file found on disk
    /// at start (Parquet does not record it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<i32>,
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
    /// Records counted without a sentiment label: companies, which sentiment skips (no text).
    /// Not in `counts`, nor in `avg_score`'s average.
    #[serde(default)]
    pub unlabelled: u64,
    pub avg_score: Option<f64>,
    pub avg_stars: Option<f64>,
    /// Reviews per stars value, 1★ … 5★.
    pub stars: [u64; 5],
    /// Average sentiment score per stars value, 1★ … 5★ (`None` where there is no review).
    #[serde(default)]
    pub avg_score_by_stars: [Option<f64>; 5],
    /// Up to three businesses with the most reviews in the window (none for tweets).
    pub top_businesses: Vec<TermCount>,
    /// Up to five hashtags with the most tweets in the window (none for reviews): a tweet with
    /// several hashtags counts once for each.
    #[serde(default)]
    pub top_hashtags: Vec<TermCount>,
    /// Up to six countries and six industries with the most companies in the window, most
    /// first, ties by name (none for reviews and tweets); partitions' counts add up.
    #[serde(default)]
    pub top_countries: Vec<TermCount>,
    #[serde(default)]
    pub top_industries: Vec<TermCount>,
    /// Whether the watermark has passed the end: the result will not change any more.
    pub closed: bool,
}

impl WindowRow {
    /// Every record the window counted, labelled or not.
    pub fn total(&self) -> u64 {
        self.counts.values().sum::<u64>() + self.unlabelled
    }
}

/// The compacted topic the aggregate stage checkpoints each input partition's state to, keyed
/// `<group>/<partition>`, together with the partition's next offset.
pub const TOPIC_AGGREGATE_CHANGELOG: &str = "pipebook.aggregate.changelog";

/// One input partition of the aggregate stage: where it has read to and its own watermark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PartitionProgress {
    /// Partition of `reviews.sentiment`.
    pub partition: i32,
    /// Next offset to read; every record before it is counted in the partition's state.
    pub offset: i64,
    /// The partition's watermark: its latest event time − the allowed lateness; `None` before
    /// its first record.
    pub watermark: Option<i64>,
    pub max_event_time: Option<i64>,
    pub counted: u64,
    pub late_records: u64,
    pub duplicates: u64,
}

/// `GET /api/aggregates?window=…` and the aggregate part of the live snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AggregateView {
    /// The operator's watermark: the least of the partitions' watermarks (as in Flink), so a
    /// partition that has seen nothing holds it back. Milliseconds since the Unix epoch; `None`
    /// while any partition held has no record yet.
    pub watermark: Option<i64>,
    pub max_event_time: Option<i64>,
    /// Records that arrived behind their partition's watermark (dropped or sent to `reviews.late`).
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
    /// The input partitions this process holds, each with its own watermark and counts (the
    /// figures above add them up).
    #[serde(default)]
    pub partitions: Vec<PartitionProgress>,
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
