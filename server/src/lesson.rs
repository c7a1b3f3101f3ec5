//! The lesson: "Try this" steps, one or more per cell, each checked against what the pipeline
//! really did. Every second the engine shows the lesson the newest snapshot; a step's parts must
//! come true in order (e.g. "lag above 1,000", then "lag back to 0"), and a finished step stays
//! finished. Progress is kept in `<data dir>/lesson.json`, so a reload or a restart shows the same.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use app::api::{DeliveryMode, LessonStep, LessonView, Snapshot, StageState, TOPIC_SENTIMENT};
use serde::{Deserialize, Serialize};

/// What a learner did that no snapshot shows (reading records, searching).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    BrowsedMessages,
    Searched,
    TracedRecord,
    FloodedMalformed,
    ResentReviews,
}

/// What a step's check looks at.
pub struct Observed<'a> {
    pub snapshot: &'a Snapshot,
    pub actions: &'a BTreeSet<Action>,
}

type Part = fn(&Observed) -> bool;

struct Step {
    id: &'static str,
    cell: u8,
    concepts: &'static [&'static str],
    task: &'static str,
    /// Conditions that must become true one after the other.
    parts: &'static [Part],
}

const STEPS: &[Step] = &[
    Step {
        id: "stream",
        cell: 1,
        concepts: &["producer", "acknowledgement"],
        task: "Start the streamer and watch Kafka acknowledge 100 reviews.",
        parts: &[|o| counter(o, "producer", "acked") >= 100],
    },
    Step {
        id: "offsets",
        cell: 2,
        concepts: &["partition", "offset"],
        task: "Read records of one partition in the message browser: every record has the next offset.",
        parts: &[|o| o.actions.contains(&Action::BrowsedMessages)],
    },
    Step {
        id: "broker-restart",
        cell: 2,
        concepts: &["durability", "retries"],
        task: "Stop the broker, then start it again: the producer waits and retries, nothing is lost.",
        parts: &[
            |o| o.snapshot.pipeline.kafka.state == StageState::Stopped,
            |o| {
                o.snapshot.pipeline.kafka.state == StageState::Running
                    && o.snapshot.pipeline.kafka.last_error.is_none()
            },
        ],
    },
    Step {
        id: "group",
        cell: 3,
        concepts: &["consumer group"],
        task: "Run the sentiment group with 2 or more workers: they share the partitions.",
        parts: &[|o| {
            let sharing = o.snapshot.sentiment.workers.iter();
            sharing
                .filter(|w| w.state == "running" && !w.partitions.is_empty())
                .count()
                >= 2
        }],
    },
    Step {
        id: "rebalance",
        cell: 3,
        concepts: &["rebalance"],
        task: "Kill a worker (or add one): watch its partitions move to the others.",
        parts: &[rebalanced],
    },
    Step {
        id: "lag",
        cell: 3,
        concepts: &["lag"],
        task: "Make the group's lag exceed 1,000 (stop the stage, or stream fast), then bring it back to 0.",
        parts: &[
            |o| sentiment_lag(o).is_some_and(|lag| lag > 1_000),
            |o| sentiment_lag(o) == Some(0) && running(o, "sentiment"),
        ],
    },
    Step {
        id: "dead-letter",
        cell: 3,
        concepts: &["dead-letter topic"],
        task: "Flood 100 malformed records into reviews: each lands in reviews.dlq with its reason while the stage keeps running.",
        parts: &[|o| {
            o.actions.contains(&Action::FloodedMalformed)
                && counter(o, "sentiment", "dlq") >= 100
                && running(o, "sentiment")
        }],
    },
    Step {
        id: "windows",
        cell: 4,
        concepts: &[
            "tumbling window",
            "sliding window",
            "session window",
            "trigger",
        ],
        task: "Start the aggregate stage: the same reviews fill tumbling, sliding and session windows each trigger.",
        parts: &[|o| running(o, "aggregate") && o.snapshot.aggregate.counted >= 100],
    },
    Step {
        id: "late",
        cell: 4,
        concepts: &["event time", "late data", "watermark"],
        task: "Restart the streamer with Late % above 0: reviews behind the watermark are counted late.",
        parts: &[|o| o.snapshot.aggregate.late_records >= 1],
    },
    Step {
        id: "output-mode",
        cell: 4,
        concepts: &["output mode"],
        task: "Restart the aggregate stage in update or complete mode and watch it emit to reviews.aggregates.",
        parts: &[|o| {
            let mode = config_str(o, "aggregate", "output_mode");
            running(o, "aggregate")
                && matches!(mode.as_deref(), Some("update" | "complete"))
                && counter(o, "aggregate", "emitted") >= 1
        }],
    },
    Step {
        id: "checkpoint",
        cell: 4,
        concepts: &["checkpoint"],
        task: "Crash the aggregate stage, then start it again: it resumes from its checkpoint.",
        parts: &[
            |o| state(o, "aggregate") == StageState::Failed,
            |o| {
                running(o, "aggregate")
                    && detail(o, "aggregate").contains("resumed from checkpoint")
            },
        ],
    },
    Step {
        id: "dedup",
        cell: 4,
        concepts: &["dedup", "at-least-once"],
        task: "Send the newest 100 reviews again (a producer retry): the windows drop them as duplicates.",
        parts: &[|o| {
            o.actions.contains(&Action::ResentReviews) && o.snapshot.aggregate.duplicates >= 1
        }],
    },
    Step {
        id: "search",
        cell: 5,
        concepts: &["full-text search"],
        task: "Start the indexer and search for a word with a sentiment filter.",
        parts: &[|o| o.actions.contains(&Action::Searched) && running(o, "indexer")],
    },
    Step {
        id: "idempotent-sink",
        cell: 5,
        concepts: &["idempotent sink"],
        task: "After the re-send, let the indexer catch up: the index holds fewer documents than reviews.sentiment holds records — same id, overwritten.",
        parts: &[
            |o| o.actions.contains(&Action::ResentReviews),
            |o| {
                let documents = o.snapshot.search.documents.unwrap_or(0);
                let records = o
                    .snapshot
                    .topic(TOPIC_SENTIMENT)
                    .map_or(0, |t| u64::try_from(t.high_sum()).unwrap_or(0));
                running(o, "indexer")
                    && group_lag(o, "indexer", "pipebook-indexer") == Some(0)
                    && documents > 0
                    && documents < records
            },
        ],
    },
    Step {
        id: "search-outage",
        cell: 5,
        concepts: &["retry with backoff", "back-pressure"],
        task: "Pause the search backend: the indexer retries and its lag grows. Resume it: the lag returns to 0.",
        parts: &[
            |o| o.snapshot.search.paused && counter(o, "indexer", "retries") >= 1,
            |o| !o.snapshot.search.paused && group_lag(o, "indexer", "pipebook-indexer") == Some(0),
        ],
    },
    Step {
        id: "delivery",
        cell: 6,
        concepts: &[
            "delivery semantics",
            "at-most-once",
            "at-least-once",
            "exactly-once",
        ],
        task: "Run the lab: the same records, the same crash — count what at-most-once loses and at-least-once duplicates.",
        parts: &[|o| {
            let lab = &o.snapshot.lab;
            let lost = lab.result(DeliveryMode::AtMostOnce).map_or(0, |r| r.lost);
            let duplicated = lab
                .result(DeliveryMode::AtLeastOnce)
                .map_or(0, |r| r.duplicated);
            !lab.running && lost > 0 && duplicated > 0
        }],
    },
    Step {
        id: "trace",
        cell: 7,
        concepts: &["key → partition", "offset", "latency per hop"],
        task: "Trace the next review until every hop is found: its chunk, its partition (the key's hash chose it), its worker, its windows, its document.",
        parts: &[|o| o.actions.contains(&Action::TracedRecord)],
    },
];

fn stage<'a>(o: &'a Observed, id: &str) -> Option<&'a app::api::StageStatus> {
    o.snapshot.pipeline.stage(id)
}

fn state(o: &Observed, id: &str) -> StageState {
    stage(o, id).map(|s| s.state).unwrap_or_default()
}

fn running(o: &Observed, id: &str) -> bool {
    state(o, id) == StageState::Running
}

fn counter(o: &Observed, id: &str, name: &str) -> u64 {
    o.snapshot.pipeline.counter(id, name)
}

fn detail(o: &Observed, id: &str) -> String {
    stage(o, id)
        .and_then(|s| s.detail.clone())
        .unwrap_or_default()
}

fn config_str(o: &Observed, id: &str, key: &str) -> Option<String> {
    let config = stage(o, id)?.config.as_ref()?;
    config.get(key)?.as_str().map(str::to_owned)
}

/// Total lag of the group a stage runs in (its configured `group`, or `default`).
fn group_lag(o: &Observed, id: &str, default: &str) -> Option<i64> {
    let group = config_str(o, id, "group").unwrap_or_else(|| default.to_owned());
    let info = o.snapshot.groups.iter().find(|g| g.group == group)?;
    (!info.partitions.is_empty()).then(|| info.total_lag())
}

/// Total lag of the sentiment stage's group: the one its running config names, as the stage
/// reports it (not the default's name: a run in another group is read in that group).
fn sentiment_lag(o: &Observed) -> Option<i64> {
    let group = &o.snapshot.sentiment.group;
    let info = o.snapshot.groups.iter().find(|g| &g.group == group)?;
    (!info.partitions.is_empty()).then(|| info.total_lag())
}

/// A worker was killed or added after partitions had been assigned, and partitions were
/// assigned again afterwards.
fn rebalanced(o: &Observed) -> bool {
    let events = &o.snapshot.sentiment.rebalances;
    let first_assignment = events
        .iter()
        .filter(|e| e.kind == "assigned")
        .map(|e| e.at)
        .min();
    let Some(first) = first_assignment else {
        return false;
    };
    let change = events
        .iter()
        .filter(|e| e.kind == "killed" || (e.kind == "started" && e.at > first))
        .map(|e| e.at)
        .min();
    change.is_some_and(|at| events.iter().any(|e| e.kind == "assigned" && e.at >= at))
}

/// What the learner has done so far.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Progress {
    /// Parts reached per step not yet done.
    reached: BTreeMap<String, usize>,
    done_at: BTreeMap<String, i64>,
    actions: BTreeSet<Action>,
}

pub struct Lesson {
    path: PathBuf,
    progress: Mutex<Progress>,
}

impl Lesson {
    /// Loads the progress saved under `data_dir`; a missing or unreadable file starts afresh
    /// (and says why in the log: it is only lesson progress, nothing of the pipeline's data).
    pub fn open(data_dir: &Path) -> Self {
        let path = data_dir.join("lesson.json");
        let progress = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                tracing::warn!(path = %path.display(), %error, "lesson progress unreadable; starting afresh");
                Progress::default()
            }),
            Err(_) => Progress::default(),
        };
        Self {
            path,
            progress: Mutex::new(progress),
        }
    }

    pub fn record(&self, action: Action) {
        let changed = self.lock().actions.insert(action);
        if changed {
            self.save();
        }
    }

    /// Starts the lesson over.
    pub fn reset(&self) {
        *self.lock() = Progress::default();
        self.save();
    }

    /// Advances every step with the newest snapshot and returns the lesson as it stands.
    pub fn observe(&self, snapshot: &Snapshot) -> LessonView {
        let now = snapshot.at;
        let (view, changed) = {
            let mut progress = self.lock();
            let changed = advance(&mut progress, snapshot, now);
            (view(&progress), changed)
        };
        if changed {
            self.save();
        }
        view
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes the progress atomically (temp file, then rename); a failure is logged, not fatal.
    fn save(&self) {
        let json = match serde_json::to_vec_pretty(&*self.lock()) {
            Ok(json) => json,
            Err(error) => return tracing::warn!(%error, "cannot serialise lesson progress"),
        };
        let tmp = self.path.with_extension("json.tmp");
        let written = std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(error) = written {
            tracing::warn!(path = %self.path.display(), %error, "cannot save lesson progress");
        }
    }
}

/// Moves each unfinished step past every part that holds now, in order. Returns whether
/// anything changed.
fn advance(progress: &mut Progress, snapshot: &Snapshot, now: i64) -> bool {
    let mut changed = false;
    for step in STEPS {
        if progress.done_at.contains_key(step.id) {
            continue;
        }
        let observed = Observed {
            snapshot,
            actions: &progress.actions,
        };
        let mut reached = progress.reached.get(step.id).copied().unwrap_or(0);
        let before = reached;
        // One part per sample: "above 1,000 then 0" needs two different moments.
        if step.parts.get(reached).is_some_and(|part| part(&observed)) {
            reached += 1;
        }
        if reached == step.parts.len() {
            progress.done_at.insert(step.id.to_owned(), now);
            progress.reached.remove(step.id);
            changed = true;
        } else if reached != before {
            progress.reached.insert(step.id.to_owned(), reached);
            changed = true;
        }
    }
    changed
}

fn view(progress: &Progress) -> LessonView {
    let steps = STEPS
        .iter()
        .map(|step| {
            let done_at = progress.done_at.get(step.id).copied();
            LessonStep {
                id: step.id.to_owned(),
                cell: step.cell,
                concepts: step.concepts.iter().map(|c| (*c).to_owned()).collect(),
                task: step.task.to_owned(),
                reached: if done_at.is_some() {
                    step.parts.len()
                } else {
                    progress.reached.get(step.id).copied().unwrap_or(0)
                },
                parts: step.parts.len(),
                done_at,
            }
        })
        .collect();
    LessonView { steps }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::api::{GroupInfo, GroupPartition, PipelineStatus, StageStatus};

    fn snapshot_with_lag(at: i64, lag: i64) -> Snapshot {
        snapshot_in_group(at, lag, "pipebook-sentiment")
    }

    /// The sentiment stage running in `group`, whose lag is `lag`.
    fn snapshot_in_group(at: i64, lag: i64, group: &str) -> Snapshot {
        Snapshot {
            sentiment: app::api::SentimentView {
                group: group.into(),
                ..Default::default()
            },
            at,
            pipeline: PipelineStatus {
                stages: vec![StageStatus {
                    id: "sentiment".into(),
                    state: StageState::Running,
                    ..StageStatus::default()
                }],
                ..PipelineStatus::default()
            },
            groups: vec![GroupInfo {
                group: group.into(),
                state: "Stable".into(),
                members: Vec::new(),
                partitions: vec![GroupPartition {
                    topic: "reviews".into(),
                    partition: 0,
                    committed: Some(0),
                    high: lag,
                    lag,
                    lag_seconds: None,
                }],
                lag: Default::default(),
                state_history: Vec::new(),
            }],
            ..Snapshot::default()
        }
    }

    /// The lag checks read the running config's group: a run in a group of its own was read
    /// as "no lag" (the default group's) before.
    #[test]
    fn sentiment_lag_is_read_in_the_running_group() {
        let actions = BTreeSet::new();
        let mine = snapshot_in_group(1, 5_000, "my-group");
        let observed = Observed {
            snapshot: &mine,
            actions: &actions,
        };
        assert_eq!(sentiment_lag(&observed), Some(5_000));
        let mut elsewhere = snapshot_in_group(1, 5_000, "my-group");
        elsewhere.sentiment.group = "pipebook-sentiment".into();
        let observed = Observed {
            snapshot: &elsewhere,
            actions: &actions,
        };
        assert_eq!(sentiment_lag(&observed), None);
    }

    fn step<'a>(view: &'a LessonView, id: &str) -> &'a LessonStep {
        view.steps.iter().find(|s| s.id == id).expect("step")
    }

    #[test]
    fn a_two_part_step_needs_its_parts_in_order_and_stays_done() {
        let dir = tempfile::tempdir().expect("dir");
        let lesson = Lesson::open(dir.path());
        // Lag 0 first does nothing: the step wants "above 1,000" before "back to 0".
        let view = lesson.observe(&snapshot_with_lag(1, 0));
        assert_eq!(step(&view, "lag").reached, 0);
        let view = lesson.observe(&snapshot_with_lag(2, 1_500));
        assert_eq!(step(&view, "lag").reached, 1);
        assert!(!step(&view, "lag").done());
        let view = lesson.observe(&snapshot_with_lag(3, 0));
        assert_eq!(step(&view, "lag").done_at, Some(3));
        // Done stays done, whatever happens next.
        let view = lesson.observe(&snapshot_with_lag(4, 5_000));
        assert_eq!(step(&view, "lag").done_at, Some(3));
        assert_eq!(view.done(), 1);
    }

    #[test]
    fn progress_and_actions_survive_a_restart_and_reset_clears_them() {
        let dir = tempfile::tempdir().expect("dir");
        let lesson = Lesson::open(dir.path());
        lesson.record(Action::BrowsedMessages);
        let view = lesson.observe(&Snapshot::default());
        assert!(step(&view, "offsets").done());

        let reopened = Lesson::open(dir.path());
        let view = reopened.observe(&Snapshot::default());
        assert!(step(&view, "offsets").done());

        reopened.reset();
        let view = Lesson::open(dir.path()).observe(&Snapshot::default());
        assert_eq!(view.done(), 0);
    }

    #[test]
    fn an_unreadable_progress_file_starts_afresh() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("lesson.json"), b"{not json").expect("write");
        let view = Lesson::open(dir.path()).observe(&Snapshot::default());
        assert_eq!(view.done(), 0);
        assert_eq!(view.steps.len(), STEPS.len());
    }

    #[test]
    fn every_step_names_an_existing_cell_and_a_unique_id() {
        let ids: BTreeSet<&str> = STEPS.iter().map(|s| s.id).collect();
        assert_eq!(ids.len(), STEPS.len());
        assert!(
            STEPS
                .iter()
                .all(|s| (1..=7).contains(&s.cell) && !s.parts.is_empty())
        );
    }
}
