//! The delivery-semantics lab (`/api/lab/delivery`, cell 6).

use serde::{Deserialize, Serialize};

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
