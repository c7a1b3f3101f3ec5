//! Stage 4, windowed aggregates: a micro-batch job on `reviews.sentiment`, like a Spark
//! Structured Streaming query with a trigger, a watermark and an output mode, whose state is
//! kept per input partition as in Kafka Streams.
//!
//! Each trigger reads what arrived, and in each input partition ([`partitions`]) drops (or sets
//! aside) records behind that partition's watermark and records already counted, computes
//! tumbling and sliding windows with Polars ([`frame`]), merges them and the per-business
//! sessions into the partition's state ([`windows`]), writes what the output mode emits to
//! `reviews.aggregates`, and checkpoints each changed partition's state with its offset to the
//! changelog topic ([`checkpoint`]) before committing. Whichever process of the group is
//! assigned a partition resumes it from its changelog record ([`run`]).

pub mod checkpoint;
pub mod frame;
pub mod parquet;
pub mod partitions;
pub mod run;
pub mod windows;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use app::api::{AggregateConfig, AggregateView, WindowKind};
use app::ops::{CHECKPOINTS_KEPT, CheckpointStat, OperatorState, StageLoad};

use crate::error::ConfigError;
use crate::members::MemberFigures;
use crate::sync::LockExt;
use crate::trace::recent::RecentBatches;
use partitions::Partitions;
use windows::Spec;

/// Most windows one event may fall into (sliding size ÷ slide).
const MAX_WINDOWS_PER_EVENT: u64 = 60;
/// Longest window, gap or lateness: one week, in seconds.
const MAX_SPAN_SECS: u64 = 7 * 24 * 3600;

/// Checks a config; the message names the field.
pub fn validate(config: &AggregateConfig) -> Result<Spec, ConfigError> {
    let span = |name: &str, value: u64| -> Result<i64, ConfigError> {
        if (1..=MAX_SPAN_SECS).contains(&value) {
            Ok(value as i64 * 1000)
        } else {
            Err(ConfigError::new(
                name,
                format!("must be 1..={MAX_SPAN_SECS} seconds, got {value}"),
            ))
        }
    };
    let tumbling_ms = span("tumbling_secs", config.tumbling_secs)?;
    let sliding_ms = span("sliding_secs", config.sliding_secs)?;
    let slide_ms = span("slide_secs", config.slide_secs)?;
    let gap_ms = span("session_gap_secs", config.session_gap_secs)?;
    if config.allowed_lateness_secs > MAX_SPAN_SECS {
        return Err(ConfigError::new(
            "allowed_lateness_secs",
            format!(
                "must be 0..={MAX_SPAN_SECS}, got {}",
                config.allowed_lateness_secs
            ),
        ));
    }
    if config.slide_secs > config.sliding_secs
        || !config.sliding_secs.is_multiple_of(config.slide_secs)
    {
        return Err(ConfigError::new(
            "slide_secs",
            format!(
                "must divide sliding_secs ({}), got {}",
                config.sliding_secs, config.slide_secs
            ),
        ));
    }
    if config.sliding_secs / config.slide_secs > MAX_WINDOWS_PER_EVENT {
        return Err(ConfigError::new(
            "slide_secs",
            format!(
                "a review would fall into {} sliding windows; at most {MAX_WINDOWS_PER_EVENT}",
                config.sliding_secs / config.slide_secs
            ),
        ));
    }
    if config.trigger_ms != 0 && !(100..=60_000).contains(&config.trigger_ms) {
        return Err(ConfigError::new(
            "trigger_ms",
            format!("must be 0 (once) or 100..=60000, got {}", config.trigger_ms),
        ));
    }
    crate::kafka::check_group_name(&config.group).map_err(|e| ConfigError::new("group", e))?;
    Ok(Spec {
        tumbling_ms,
        sliding_ms,
        slide_ms,
        gap_ms,
        lateness_ms: config.allowed_lateness_secs as i64 * 1000,
        mode: config.output_mode,
    })
}

crate::counters! {
    /// Counters of the stage since it last started, and the latest view of its windows.
    pub struct AggregateMetrics {
        counters {
            consumed, late_to_topic, dlq, emitted, triggers, batch_ms, checkpoint_ms, last_batch,
            /// The last checkpoint's bytes, and the state held: windows, sessions, dedup ids.
            checkpoint_bytes, open_windows, sessions, dedup_ids,
            /// Zombie fencing (`checkpoint`): changelog records of an older group generation
            /// ignored on restore; assignments refused because the partition was already
            /// checkpointed in a newer generation.
            fenced_records, fenced_assignments,
            /// Microseconds windowing / waiting for the trigger and input / waiting on the
            /// broker's acks of outputs and checkpoints.
            busy_us, idle_us, backpressured_us,
        }
        view: Mutex<AggregateView>,
        meter: crate::stage::LoadMeter,
        /// The latest checkpoints, oldest first.
        checkpoints: Mutex<VecDeque<CheckpointStat>>,
        /// The reviews each recent trigger read, and those of them behind the watermark (for
        /// tracing a record).
        pub triggers_read: RecentBatches,
        pub late_read: RecentBatches,
        /// When the current run started (ms since the Unix epoch), for its heartbeat.
        started_at: AtomicI64,
    }
}

impl AggregateMetrics {
    pub fn reset(&self) {
        self.reset_counters();
        self.started_at
            .store(crate::clock::now_ms(), Ordering::Relaxed);
        self.checkpoints.lock_or_recover().clear();
        self.triggers_read.clear();
        self.late_read.clear();
    }

    /// The counters, and the counts of the current view.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let view = self.view();
        let mut counters = self.counter_values();
        counters.insert("counted".into(), view.counted);
        counters.insert("late".into(), view.late_records);
        counters.insert("duplicates".into(), view.duplicates);
        counters
    }

    /// Its member's figures, for its heartbeat (`crate::members`).
    pub fn figures(&self) -> MemberFigures {
        MemberFigures {
            processed: self.consumed.load(Ordering::Relaxed),
            errors: self.dlq.load(Ordering::Relaxed),
            started_at: self.started_at.load(Ordering::Relaxed),
        }
    }

    /// The windows and watermark as of the last trigger.
    pub fn view(&self) -> AggregateView {
        self.view.lock_or_recover().clone()
    }

    /// The view with only one kind of window.
    pub fn view_of(&self, kind: WindowKind) -> AggregateView {
        let mut view = self.view();
        view.windows.retain(|w| w.kind == kind);
        view
    }

    /// Shows the merged windows of the partitions this process holds, and the state's size.
    pub fn publish(&self, partitions: &Partitions) {
        let states = || partitions.values().map(|p| &p.state);
        let open = states().map(|s| s.open.len()).sum::<usize>();
        let sessions = states()
            .flat_map(|s| s.sessions.values())
            .map(Vec::len)
            .sum::<usize>();
        let seen = states().map(|s| s.seen.len()).sum::<usize>();
        for (gauge, value) in [
            (&self.open_windows, open),
            (&self.sessions, sessions),
            (&self.dedup_ids, seen),
        ] {
            gauge.store(value as u64, Ordering::Relaxed);
        }
        *self.view.lock_or_recover() = partitions::merged_view(partitions);
    }

    /// A checkpoint written: kept among the last [`CHECKPOINTS_KEPT`].
    pub fn record_checkpoint(&self, took: std::time::Duration, bytes: u64) {
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        self.checkpoint_ms.store(ms, Ordering::Relaxed);
        self.checkpoint_bytes.store(bytes, Ordering::Relaxed);
        let mut kept = self.checkpoints.lock_or_recover();
        if kept.len() == CHECKPOINTS_KEPT {
            kept.pop_front();
        }
        kept.push_back(CheckpointStat {
            at: crate::clock::now_ms(),
            ms,
            bytes,
        });
    }

    /// Where the loop spends its time, its checkpoints and its state's size.
    pub fn load(&self) -> Option<StageLoad> {
        let mut load = self.meter.read(crate::stage::LoadTotals {
            busy_us: self.busy_us.load(Ordering::Relaxed),
            idle_us: self.idle_us.load(Ordering::Relaxed),
            backpressured_us: self.backpressured_us.load(Ordering::Relaxed),
            processed: self.consumed.load(Ordering::Relaxed),
            loops: 1,
        })?;
        load.operator = Some(OperatorState {
            checkpoints: self.checkpoints.lock_or_recover().iter().copied().collect(),
            open_windows: self.open_windows.load(Ordering::Relaxed),
            sessions: self.sessions.load(Ordering::Relaxed),
            dedup_ids: self.dedup_ids.load(Ordering::Relaxed),
        });
        Some(load)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_checked_and_errors_name_the_field() {
        let spec = validate(&AggregateConfig::default()).expect("defaults");
        assert_eq!(
            (spec.tumbling_ms, spec.sliding_ms, spec.slide_ms),
            (60_000, 60_000, 15_000)
        );
        let bad = |config: AggregateConfig, field: &str| {
            let err = validate(&config).expect_err(field);
            assert_eq!(err.field, field, "{err}");
        };
        bad(
            AggregateConfig {
                slide_secs: 7,
                ..AggregateConfig::default()
            },
            "slide_secs",
        );
        bad(
            AggregateConfig {
                tumbling_secs: 0,
                ..AggregateConfig::default()
            },
            "tumbling_secs",
        );
        bad(
            AggregateConfig {
                trigger_ms: 5,
                ..AggregateConfig::default()
            },
            "trigger_ms",
        );
        bad(
            AggregateConfig {
                sliding_secs: 3600,
                slide_secs: 1,
                ..AggregateConfig::default()
            },
            "slide_secs",
        );
    }
}
