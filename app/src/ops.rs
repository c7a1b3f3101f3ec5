//! API types of the operator's views of consumer groups: lag in records and in seconds with its
//! history and trend (`GET /api/kafka/groups/{group}/lag`), and offset resets
//! (`POST /api/kafka/groups/{group}/reset`). Shared by the server and the cells.

use serde::{Deserialize, Serialize};

/// Whether a group's lag is growing, shrinking or steady over the last
/// [`TREND_WINDOW_SECS`] seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LagTrend {
    Growing,
    Shrinking,
    #[default]
    Steady,
}

impl LagTrend {
    pub fn as_str(self) -> &'static str {
        match self {
            LagTrend::Growing => "growing",
            LagTrend::Shrinking => "shrinking",
            LagTrend::Steady => "steady",
        }
    }
}

/// Seconds of history the trend and the rates are computed over.
pub const TREND_WINDOW_SECS: i64 = 30;

/// A group's lag now, summed over its partitions (in the live snapshot's `groups`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct GroupLag {
    /// Records behind, over all partitions.
    pub records: i64,
    /// The largest partition's lag in seconds: now − the timestamp of the next record the group
    /// will read; 0 when caught up. Partitions whose seconds are not known are left out.
    pub seconds: f64,
    pub trend: LagTrend,
    /// Records/s the group commits (consumes), over the trend window.
    pub consume_rate: f64,
    /// Records/s appended to its partitions, over the trend window.
    pub produce_rate: f64,
    /// Seconds until caught up at the current net rate (consume − produce); 0 when caught up,
    /// `None` when the lag is not shrinking.
    pub catch_up_secs: Option<f64>,
}

/// One sample of one partition's lag.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LagPoint {
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    /// Records behind.
    pub lag: i64,
    /// Seconds behind (the age of the next record the group will read); `None` when that
    /// record's timestamp could not be read for this sample and the group had moved.
    pub lag_seconds: Option<f32>,
    /// The next offset the group reads (its committed offset, or the low watermark).
    pub position: i64,
}

/// One partition's lag now and its history, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub committed: Option<i64>,
    pub high: i64,
    pub lag: i64,
    /// `None`: not known at the latest sample (see [`LagPoint::lag_seconds`]).
    pub lag_seconds: Option<f64>,
    pub history: Vec<LagPoint>,
}

/// `GET /api/kafka/groups/{group}/lag`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupLagHistory {
    pub group: String,
    /// When the latest sample was taken (ms since the epoch).
    pub at: i64,
    pub now: GroupLag,
    /// Seconds between the recent points (the last 15 minutes) and between the older,
    /// downsampled ones (the hour before).
    pub fine_step_secs: u32,
    pub coarse_step_secs: u32,
    pub partitions: Vec<PartitionLag>,
}

/// Where `POST /api/kafka/groups/{group}/reset` moves the group's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetTo {
    Earliest,
    Latest,
    Offset,
    Timestamp,
    Shift,
}

/// The body of `POST /api/kafka/groups/{group}/reset`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub to: ResetTo,
    /// With `"to": "offset"`: the offset every chosen partition moves to (clamped to the log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// With `"to": "timestamp"`: ms since the epoch; the first record stamped at or after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
    /// With `"to": "shift"`: records to move by, negative = back (re-read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<i64>,
    /// Partition ids; all of the group's partitions when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<Vec<i32>>,
    /// True (the default) only shows what would change.
    #[serde(default = "default_dry_run")]
    pub dry_run: bool,
}

fn default_dry_run() -> bool {
    true
}

/// One partition of a reset: before → after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResetPartition {
    pub topic: String,
    pub partition: i32,
    pub low: i64,
    pub high: i64,
    /// The committed offset before; `None` when the group had committed nothing (it would
    /// start at `low`).
    pub before: Option<i64>,
    pub after: i64,
    /// Records the group will read again (moving back).
    pub reread: i64,
    /// Records the group will never read (moving forward).
    pub skipped: i64,
}

/// The answer of `POST /api/kafka/groups/{group}/reset`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResetOutcome {
    pub group: String,
    pub to: ResetTo,
    pub dry_run: bool,
    /// Whether the new offsets were committed.
    pub executed: bool,
    pub partitions: Vec<ResetPartition>,
    pub reread: i64,
    pub skipped: i64,
}

/// `GET /api/kafka/topics/{topic}/schema`: the shape of a topic's records, inferred from the
/// newest ones, and for the dead-letter topic its reasons grouped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TopicSchema {
    pub topic: String,
    /// Records read (the newest of each partition, in all at most the request's `sample`).
    pub sampled: u32,
    /// Of those, values that were not a JSON object.
    pub not_objects: u32,
    /// One entry per field path (`a.b` for nested objects, `a[]` for array items), in order of
    /// first appearance.
    pub fields: Vec<FieldSchema>,
    /// Only for the dead-letter topic: refusals grouped by stage and reason, most frequent first.
    pub dead_letters: Vec<DeadLetterReason>,
}

/// One field of a topic's records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldSchema {
    pub path: String,
    /// JSON types seen (`string`, `integer`, `number`, `boolean`, `object`, `array`), with counts,
    /// most frequent first; `null` is counted apart in `nulls`.
    pub types: Vec<(String, u32)>,
    /// Records (or array items) that had the field, `null` included.
    pub present: u32,
    pub nulls: u32,
    /// Share of the sampled records that had the field (0–1): below 1, the field is optional.
    pub presence: f64,
    /// The first non-null value seen, cut to 80 characters.
    pub example: String,
}

/// Dead letters with the same stage and reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterReason {
    pub stage: String,
    /// The reason without its particulars (what follows `: ` or `, got `), so that "stars must
    /// be a whole number 1..=5, got 9" and "…, got 0" are one reason.
    pub reason: String,
    pub count: u32,
    /// The full reason and the raw record of the newest one.
    pub example_reason: String,
    pub example_raw: String,
}

/// Where a consumer stage's run loop spends each second, and how fast it works (in its
/// [`crate::api::StageStatus`]); measured in the loop, over the last 5 seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StageLoad {
    /// Milliseconds of each second spent processing (classifying, windowing, building
    /// documents), per loop.
    pub busy_ms: f64,
    /// … waiting for input (polling an empty topic, waiting for the trigger).
    pub idle_ms: f64,
    /// … waiting on what comes after it: the broker's acknowledgements of its output, the
    /// search engine's bulk answer (retries included), the checkpoint. The three add up to
    /// about 1,000.
    pub backpressured_ms: f64,
    /// Records a second the stage read and processed.
    pub processing_rate: f64,
    /// Run loops measured (a sentiment stage has one per worker; the figures are their average).
    pub loops: u32,
    /// The windows stage's own state: checkpoints and what it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<OperatorState>,
}

impl StageLoad {
    /// The share of the measured time spent waiting on downstream (0–1).
    pub fn backpressure_share(&self) -> f64 {
        let total = self.busy_ms + self.idle_ms + self.backpressured_ms;
        if total <= 0.0 {
            0.0
        } else {
            self.backpressured_ms / total
        }
    }
}

/// Points of a stage's rate history the snapshot carries: about a minute, one per sample.
pub const RATE_POINTS: usize = 60;

/// A consumer stage's input rate against its processing rate over the last [`RATE_POINTS`]
/// samples of the engine (one a second), oldest first, in whole records/s (in its
/// [`crate::api::StageStatus`] while it runs). Sampled on the server (`server/src/rates.rs`),
/// so a reload keeps the sparkline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StageRates {
    /// When the newest sample was taken, ms since the epoch.
    pub at: i64,
    /// Records/s appended to the stage's input topic; `null` for a second the broker was not
    /// read.
    pub input: Vec<Option<u32>>,
    /// Records/s the stage processed; `null` for a second its counter went back (a worker
    /// removed, a restart).
    pub processed: Vec<Option<u32>>,
}

impl StageRates {
    /// The newest known `(input, processed)`.
    pub fn latest(&self) -> (Option<u32>, Option<u32>) {
        (
            self.input.last().copied().flatten(),
            self.processed.last().copied().flatten(),
        )
    }
}

/// The windows stage's state and its latest checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct OperatorState {
    /// The last [`CHECKPOINTS_KEPT`] checkpoints, oldest first.
    pub checkpoints: Vec<CheckpointStat>,
    /// Tumbling and sliding windows held (open, or all of them in complete mode).
    pub open_windows: u64,
    /// Session windows held.
    pub sessions: u64,
    /// `review_id`s remembered to skip duplicates (those not yet behind the watermark).
    pub dedup_ids: u64,
}

/// Checkpoints the health panel keeps.
pub const CHECKPOINTS_KEPT: usize = 10;

/// One checkpoint: the changed partitions' states written to the changelog topic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct CheckpointStat {
    /// When it finished, ms since the epoch.
    pub at: i64,
    /// How long until the broker acknowledged every record of it.
    pub ms: u64,
    /// The records' bytes.
    pub bytes: u64,
}

/// Least, mean and largest of some figures: `(min, avg, max)`; `None` when there are none.
pub fn min_avg_max(values: impl IntoIterator<Item = u64>) -> Option<(u64, f64, u64)> {
    let (mut n, mut sum, mut min, mut max) = (0u64, 0f64, u64::MAX, 0u64);
    for value in values {
        n += 1;
        sum += value as f64;
        min = min.min(value);
        max = max.max(value);
    }
    (n > 0).then(|| (min, sum / n as f64, max))
}

#[cfg(test)]
mod load_tests {
    use super::*;

    #[test]
    fn min_avg_max_of_checkpoints() {
        assert_eq!(min_avg_max([]), None);
        assert_eq!(min_avg_max([4, 2, 9]), Some((2, 5.0, 9)));
    }

    #[test]
    fn backpressure_share_of_a_second() {
        let load = StageLoad {
            busy_ms: 200.0,
            idle_ms: 50.0,
            backpressured_ms: 750.0,
            ..StageLoad::default()
        };
        assert!((load.backpressure_share() - 0.75).abs() < 1e-9);
        assert_eq!(StageLoad::default().backpressure_share(), 0.0);
    }
}
