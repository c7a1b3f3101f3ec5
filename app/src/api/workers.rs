//! The members of the stages' consumer groups, in the server or in `pipebook worker` processes,
//! as their heartbeats on `pipebook.workers` show them.

use serde::{Deserialize, Serialize};

/// The compacted topic every worker heartbeats on, keyed by member (Kafka as the control plane).
pub const TOPIC_WORKERS: &str = "pipebook.workers";

/// What the server makes of a member's heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// A heartbeat arrived within the last 5 s.
    #[default]
    Alive,
    /// No heartbeat for more than 5 s: the process crashed, hangs or lost the broker.
    Gone,
    /// It said goodbye: stopped cleanly (Ctrl-C, stop), after committing its work.
    Left,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Gone => "gone",
            MemberState::Left => "left",
        }
    }
}

/// One member of a stage's group, in-server or remote, with its latest figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberView {
    /// `sentiment`, `indexer`, …
    pub stage: String,
    pub group: String,
    /// The worker's name (its Kafka client id), e.g. `worker-1` or `p4242-worker-1`.
    pub name: String,
    pub host: String,
    pub pid: u32,
    /// A worker of the server's own stage (`true`) or of a `pipebook worker` process.
    pub in_server: bool,
    /// Partitions of the input topic assigned to it.
    pub partitions: Vec<i32>,
    /// Records consumed since it started.
    pub processed: u64,
    /// Records per second, over its last second.
    pub rate: f64,
    /// Records it could not handle (sent to the dead-letter topic).
    pub errors: u64,
    /// Milliseconds since the Unix epoch, by the member's clock.
    pub started_at: i64,
    /// When the server last heard from it: milliseconds since the Unix epoch, by the server's
    /// clock (so a remote machine's clock does not decide who is gone).
    pub last_seen: i64,
    pub state: MemberState,
    /// Where a member that writes files (the Parquet sink) writes them, and its newest files:
    /// they are on that member's machine, which the notebook cannot read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<MemberOutput>,
}

/// Most files a member's heartbeat lists (its newest).
pub const MEMBER_FILES: usize = 10;

/// The files a member wrote, as its heartbeat carries them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MemberOutput {
    /// The folder the files are under, on the member's host (absolute).
    pub dir: String,
    /// Its newest files (at most [`MEMBER_FILES`]), newest first; paths relative to `dir`.
    pub files: Vec<super::ParquetFile>,
    /// Files and rows it knows of under `dir`, listed or not.
    pub total_files: u64,
    pub total_rows: u64,
}
