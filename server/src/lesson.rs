//! The lesson: "Try this" steps, one or more per cell, each checked against what the pipeline
//! really did. Every second the engine shows the lesson the newest snapshot; a step's parts must
//! come true in order (e.g. "lag above 1,000", then "lag back to 0"), and a finished step stays
//! finished. Progress is kept in `<data dir>/lesson.json`, so a reload or a restart shows the same.
//!
//! Each step also asks one multiple-choice prediction before its task ("predict, observe,
//! explain"). Its figures are read from the live state when the learner answers (or when the
//! step is first watched), their highest value while the task runs, and their value when the
//! step is done; a function over those figures says which choice really happened.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use app::api::{
    DeliveryMode, FigureReading, GROUP_INDEXER, LessonStep, LessonView, Outcome, Snapshot,
    StageState, StepPrediction, TOPIC_DLQ, TOPIC_REVIEWS, TOPIC_SENTIMENT, WindowKind,
};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::stage::StageId;

/// What a learner did that no snapshot shows (reading records, searching, starting a stage).
/// Kept until **Start over**, which clears them with the progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    BrowsedMessages,
    Searched,
    TracedRecord,
    FloodedMalformed,
    ResentReviews,
    /// Executed (not a dry run) an offset reset of the sentiment stage's group.
    ResetSentimentGroup,
    /// Started (or restarted) this stage; for the sentiment stage also added a worker. A step
    /// that asks to start a stage needs this: a stage left running from before Start over
    /// shows the same state, and would tick the step without the learner doing anything.
    Started(StageId),
}

/// What a step's check looks at.
pub struct Observed<'a> {
    pub snapshot: &'a Snapshot,
    pub actions: &'a BTreeSet<Action>,
    /// The step's cumulative figures when it began (see [`Tally`]).
    pub baseline: &'a Baseline,
}

/// A cumulative figure that a step counts ("100 reviews acknowledged"). Counters keep growing
/// over the pipeline's life, so after **Start over** on a pipeline that already ran, a check
/// against the raw counter would be true at once; a step counts from its baseline instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tally {
    Acked,
    DeadLettered,
    Counted,
    Late,
    Emitted,
    Duplicates,
    IndexerRetries,
    Labelled,
}

impl Tally {
    const ALL: [Tally; 8] = [
        Tally::Acked,
        Tally::DeadLettered,
        Tally::Counted,
        Tally::Late,
        Tally::Emitted,
        Tally::Duplicates,
        Tally::IndexerRetries,
        Tally::Labelled,
    ];

    fn read(self, snapshot: &Snapshot) -> u64 {
        let counter = |id, name| snapshot.pipeline.counter(id, name);
        match self {
            Tally::Acked => counter("producer", "acked"),
            Tally::DeadLettered => counter("sentiment", "dlq"),
            Tally::Counted => snapshot.aggregate.counted,
            Tally::Late => snapshot.aggregate.late_records,
            Tally::Emitted => counter("aggregate", "emitted"),
            Tally::Duplicates => snapshot.aggregate.duplicates,
            Tally::IndexerRetries => counter("indexer", "retries"),
            Tally::Labelled => counter("sentiment", "produced"),
        }
    }
}

/// Each [`Tally`] as it stood when a step began: taken the first time the step is watched
/// (a fresh lesson, or just after Start over) and kept in lesson.json with the progress. With
/// it, when that was and the delivery lab's run then: a rebalance or a lab run from before
/// belongs to an earlier go at the lesson.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    counts: BTreeMap<Tally, u64>,
    /// When it was taken (ms since the epoch, the snapshot's clock).
    #[serde(default)]
    at: i64,
    #[serde(default)]
    lab_run: Option<String>,
}

impl Baseline {
    fn taken(snapshot: &Snapshot) -> Self {
        Self {
            counts: Tally::ALL.iter().map(|t| (*t, t.read(snapshot))).collect(),
            at: snapshot.at,
            lab_run: snapshot.lab.run.clone(),
        }
    }

    /// Lowers every figure that now reads below its baseline: its counter restarted with its
    /// stage (or with the server), and the new run counts from the lowest value seen, so a
    /// restart never makes a step wait for more than it asked. Returns whether any moved.
    fn lower_to(&mut self, snapshot: &Snapshot) -> bool {
        let mut lowered = false;
        for (tally, base) in &mut self.counts {
            let now = tally.read(snapshot);
            if now < *base {
                *base = now;
                lowered = true;
            }
        }
        lowered
    }

    fn get(&self, tally: Tally) -> u64 {
        self.counts.get(&tally).copied().unwrap_or(0)
    }
}

/// Whether the learner started `stage` since Start over (see [`Action::Started`]).
fn started(o: &Observed, stage: StageId) -> bool {
    o.actions.contains(&Action::Started(stage))
}

/// How much `tally` grew since the step began.
fn since(o: &Observed, tally: Tally) -> u64 {
    tally.read(o.snapshot).saturating_sub(o.baseline.get(tally))
}

type Part = fn(&Observed) -> bool;

struct Step {
    id: &'static str,
    cell: u8,
    concepts: &'static [&'static str],
    task: &'static str,
    /// Conditions that must become true one after the other.
    parts: &'static [Part],
    predict: Prediction,
}

/// The streaming concepts seed 004 (tweets → Kafka → Spark Structured Streaming) teaches, in
/// its words. Each has at least one prediction (a test checks). Left out, because Pipebook has
/// nothing of them to observe: ZooKeeper and leader election (one embedded broker), zero copy
/// (inside the kernel), and InfluxDB buckets and Grafana set-up (tools, not concepts).
pub const SEED_004_CONCEPTS: &[&str] = &[
    "event",
    "topic",
    "producer",
    "consumer",
    "broker",
    "partition",
    "append-only log",
    "offset",
    "log-end offset",
    "lag",
    "consumer group",
    "delivery semantics",
    "at-most-once",
    "at-least-once",
    "exactly-once",
    "idempotent processing",
    "event time",
    "processing time",
    "late data",
    "watermark",
    "output mode",
    "tumbling window",
    "sliding window",
    "session window",
    "trigger",
    "deduplication",
    "checkpoint",
    "sentiment polarity",
];

/// A step's multiple-choice question, the figures that tell what happened, and which choice
/// they show.
struct Prediction {
    question: &'static str,
    choices: &'static [&'static str],
    /// Entries of [`SEED_004_CONCEPTS`] the prediction is about (read by the coverage test).
    #[cfg_attr(not(test), allow(dead_code))]
    seed: &'static [&'static str],
    figures: &'static [Figure],
    /// Which choice happened, from the figures (indexed as `figures`).
    outcome: fn(&Readings) -> usize,
    /// Seconds to keep watching after the step is done before reading the outcome (a rebalance
    /// or a re-send shows itself over a few samples).
    settle_secs: i64,
    explanation: &'static str,
}

struct Figure {
    label: &'static str,
    read: fn(&Observed) -> i64,
}

/// A prediction's figures: when it was answered, their highest since, and when the step was done.
pub struct Readings<'a> {
    pub before: &'a [i64],
    pub peak: &'a [i64],
    pub after: &'a [i64],
}

impl Readings<'_> {
    fn before(&self, i: usize) -> i64 {
        self.before.get(i).copied().unwrap_or(0)
    }
    fn peak(&self, i: usize) -> i64 {
        self.peak.get(i).copied().unwrap_or(0)
    }
    fn after(&self, i: usize) -> i64 {
        self.after.get(i).copied().unwrap_or(0)
    }
    /// How much figure `i` grew from the answer to the end.
    fn grew(&self, i: usize) -> i64 {
        self.after(i) - self.before(i)
    }
}

const STEPS: &[Step] = &[
    Step {
        id: "stream",
        cell: 1,
        concepts: &["producer", "acknowledgement"],
        task: "Start the streamer and watch Kafka acknowledge 100 reviews.",
        parts: &[|o| started(o, StageId::Streamer) && since(o, Tally::Acked) >= 100],
        predict: Prediction {
            question: "You start the streamer. When Kafka has acknowledged 100 reviews, where are they?",
            choices: &[
                "Still in the producer's memory: an acknowledgement only means they were sent",
                "Stored in topic reviews, spread over its partitions by their key",
                "Stored in topic reviews, all in partition 0 until it fills up",
            ],
            seed: &["event", "topic", "producer", "partition"],
            figures: &[
                Figure {
                    label: "reviews acknowledged",
                    read: |o| count(counter(o, "producer", "acked")),
                },
                Figure {
                    label: "records in reviews",
                    read: |o| records(o, TOPIC_REVIEWS),
                },
                Figure {
                    label: "partitions of reviews holding records",
                    read: |o| filled_partitions(o, TOPIC_REVIEWS),
                },
            ],
            outcome: |r| {
                if r.grew(1) < r.grew(0).min(100) {
                    0
                } else if r.after(2) > 1 {
                    1
                } else {
                    2
                }
            },
            settle_secs: 0,
            explanation: "The broker acknowledges a record only once it is written to the topic's log, so an acknowledged review is stored, not in flight. The producer picks each record's partition by hashing its key (the business), so the reviews spread over every partition. A topic is a name for those partitions; each is an ordered log of its own.",
        },
    },
    Step {
        id: "offsets",
        cell: 2,
        concepts: &["partition", "offset"],
        task: "Read records of one partition in the message browser: every record has the next offset.",
        parts: &[|o| o.actions.contains(&Action::BrowsedMessages)],
        predict: Prediction {
            question: "You read the records of one partition in the message browser. How are their offsets numbered?",
            choices: &[
                "0, 1, 2, … in that partition: each record gets the next number of its own log",
                "One counter shared by all partitions, so each partition shows gaps",
                "Random ids, sorted by time",
            ],
            seed: &["offset", "append-only log"],
            figures: &[
                Figure {
                    label: "partitions of reviews",
                    read: |o| partitions(o, TOPIC_REVIEWS),
                },
                Figure {
                    label: "records in reviews",
                    read: |o| records(o, TOPIC_REVIEWS),
                },
                Figure {
                    label: "log-end offset of partition 0",
                    read: |o| log_end(o, TOPIC_REVIEWS, 0),
                },
            ],
            // Kafka numbers each partition's log on its own: not something a run can change.
            outcome: |_| 0,
            settle_secs: 0,
            explanation: "A partition is an append-only log: the first record gets offset 0, the next 1, and so on, with no gaps from other partitions. The records of all partitions add up to the topic's total, while each partition's log-end offset counts only its own. A consumer's position is just such a number per partition, which is why it can stop and resume exactly there.",
        },
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
        predict: Prediction {
            question: "You stop the broker while reviews stream, then start it again. What happens to the reviews sent while it was down?",
            choices: &[
                "They are lost: the producer had nowhere to write them",
                "The producer holds them and retries; they are written once the broker is back",
                "The streamer stops and must be restarted by hand",
            ],
            seed: &["broker", "producer"],
            figures: &[
                Figure {
                    label: "deliveries failed",
                    read: |o| count(counter(o, "producer", "delivery_failed")),
                },
                Figure {
                    label: "reviews acknowledged",
                    read: |o| count(counter(o, "producer", "acked")),
                },
                Figure {
                    label: "producer reconnects",
                    read: |o| count(counter(o, "producer", "reconnects")),
                },
                Figure {
                    label: "records in reviews",
                    read: |o| records(o, TOPIC_REVIEWS),
                },
            ],
            outcome: |r| {
                if r.grew(0) > 0 {
                    0
                } else if r.after(1) > 0 && !(r.grew(1) == 0 && r.grew(3) == 0 && r.before(1) > 0) {
                    1
                } else {
                    2
                }
            },
            settle_secs: 5,
            explanation: "While the broker is down the producer keeps unacknowledged records in its buffer and retries them. When the broker is back they are written, so the acknowledged count carries on and no delivery fails. The broker kept its logs on disk, so every record written before the stop is still there.",
        },
    },
    Step {
        id: "group",
        cell: 3,
        concepts: &["consumer group"],
        task: "Start the sentiment group with 2 or more workers (or add one to a running group): they share the partitions.",
        parts: &[|o| {
            let sharing = o.snapshot.sentiment.workers.iter();
            started(o, StageId::Sentiment)
                && sharing
                    .filter(|w| w.state == "running" && !w.partitions.is_empty())
                    .count()
                    >= 2
        }],
        predict: Prediction {
            question: "You run the sentiment stage with 2 workers in one consumer group. How do they share the partitions of reviews?",
            choices: &[
                "Each worker reads every partition, so every review is classified twice",
                "Each partition goes to exactly one worker; the partitions are split between them",
                "One worker reads everything; the other waits as a standby",
            ],
            seed: &["consumer", "consumer group"],
            figures: &[
                Figure {
                    label: "workers running",
                    read: |o| {
                        count(
                            o.snapshot
                                .sentiment
                                .workers
                                .iter()
                                .filter(|w| w.state == "running")
                                .count(),
                        )
                    },
                },
                Figure {
                    label: "partitions of reviews",
                    read: |o| partitions(o, TOPIC_REVIEWS),
                },
                Figure {
                    label: "workers holding partitions",
                    read: |o| {
                        count(
                            o.snapshot
                                .sentiment
                                .workers
                                .iter()
                                .filter(|w| w.state == "running" && !w.partitions.is_empty())
                                .count(),
                        )
                    },
                },
                Figure {
                    label: "partitions held by two workers",
                    read: shared_partitions,
                },
            ],
            outcome: |r| {
                if r.after(3) > 0 {
                    0
                } else if r.after(2) >= 2 {
                    1
                } else {
                    2
                }
            },
            settle_secs: 0,
            explanation: "A consumer group divides a topic's partitions among its members: each partition is read by exactly one of them. So two workers each take part of the partitions and each review is classified once. A third group (another name) would read every record again, with offsets of its own.",
        },
    },
    Step {
        id: "rebalance",
        cell: 3,
        concepts: &["rebalance"],
        task: "Kill a worker (or add one): watch its partitions move to the others.",
        parts: &[rebalanced],
        predict: Prediction {
            question: "You kill one of the workers. What happens to the partitions it held?",
            choices: &[
                "Nobody reads them until that worker is restarted",
                "The group rebalances: the other workers take them over from the committed offsets",
                "The other workers take them over and read them again from offset 0",
            ],
            seed: &["consumer group", "offset"],
            figures: &[
                Figure {
                    label: "partitions the killed worker held",
                    read: |o| killed_held(o).len().try_into().unwrap_or(0),
                },
                Figure {
                    label: "partitions assigned to others since",
                    read: |o| moved_since_change(o).len().try_into().unwrap_or(0),
                },
                Figure {
                    label: "workers running",
                    read: |o| {
                        count(
                            o.snapshot
                                .sentiment
                                .workers
                                .iter()
                                .filter(|w| w.state == "running")
                                .count(),
                        )
                    },
                },
                Figure {
                    label: "sentiment group lag",
                    read: |o| sentiment_lag(o).unwrap_or(0),
                },
            ],
            // The highest, not the last: a stop right after the step clears the events.
            outcome: |r| if r.peak(1) > 0 { 1 } else { 0 },
            settle_secs: 0,
            explanation: "When a member leaves, the group coordinator revokes the assignment and hands every partition out again among the members still alive. They resume from the offsets the group committed, not from 0, so at most the last uncommitted batch is read twice. That re-read is why the sentiment stage is at-least-once.",
        },
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
        predict: Prediction {
            question: "You stop the sentiment stage while reviews keep streaming in. What does the group's lag do?",
            choices: &[
                "Stays at 0: lag only counts records that failed",
                "Grows with every review written, then drains to 0 as the restarted stage reads the backlog",
                "Grows, then drops to 0 at once on restart because the backlog is skipped",
            ],
            seed: &["lag", "log-end offset", "offset"],
            figures: &[
                Figure {
                    label: "sentiment group lag",
                    read: |o| sentiment_lag(o).unwrap_or(0),
                },
                Figure {
                    label: "log-end offsets of reviews (sum)",
                    read: |o| records(o, TOPIC_REVIEWS),
                },
                Figure {
                    label: "committed offsets (sum)",
                    read: |o| committed(o, &o.snapshot.sentiment.group),
                },
                Figure {
                    label: "records in reviews.sentiment + dlq",
                    read: |o| records(o, TOPIC_SENTIMENT) + records(o, TOPIC_DLQ),
                },
            ],
            // "Stays at 0" only if it did; a lag that was up already when answered and drained
            // is judged, like one that grew, by whether the outputs grew with the commits.
            outcome: |r| {
                if r.peak(0) <= 0 {
                    0
                } else if 2 * r.grew(3) >= r.grew(2) {
                    1
                } else {
                    2
                }
            },
            settle_secs: 0,
            explanation: "Lag is the log-end offset minus the group's committed offset, added up over the partitions: the records written but not yet processed. While nobody consumes, every new review adds one. A restarted group resumes from its committed offsets and reads the backlog, so the outputs grow by about what the commits moved.",
        },
    },
    Step {
        id: "dead-letter",
        cell: 3,
        concepts: &["dead-letter topic"],
        task: "Flood 100 malformed records into reviews: each lands in reviews.dlq with its reason while the stage keeps running.",
        parts: &[|o| {
            o.actions.contains(&Action::FloodedMalformed)
                && since(o, Tally::DeadLettered) >= 100
                && running(o, "sentiment")
        }],
        predict: Prediction {
            question: "You flood 100 malformed records into reviews. What does the sentiment stage do?",
            choices: &[
                "It fails on the first one and stops",
                "It skips them without a trace",
                "It sends each one to reviews.dlq with its reason and keeps going",
                "It retries them forever and that partition stalls",
            ],
            seed: &["consumer"],
            figures: &[
                Figure {
                    label: "records in reviews.dlq",
                    read: |o| records(o, TOPIC_DLQ),
                },
                Figure {
                    label: "sentiment workers running",
                    read: |o| {
                        count(
                            o.snapshot
                                .sentiment
                                .workers
                                .iter()
                                .filter(|w| w.state == "running")
                                .count(),
                        )
                    },
                },
                Figure {
                    label: "sentiment group lag",
                    read: |o| sentiment_lag(o).unwrap_or(0),
                },
            ],
            outcome: |r| {
                if r.after(1) == 0 {
                    0
                } else if r.grew(0) >= 100 {
                    2
                } else if r.after(2) == 0 {
                    1
                } else {
                    3
                }
            },
            settle_secs: 0,
            explanation: "A record that can never be parsed would fail on every retry, so retrying would stall its partition for good. The stage writes it to the dead-letter topic with the reason in a header, commits past it and carries on. The bad records stay inspectable in reviews.dlq instead of vanishing.",
        },
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
        parts: &[|o| {
            started(o, StageId::Aggregate)
                && running(o, "aggregate")
                && since(o, Tally::Counted) >= 100
        }],
        predict: Prediction {
            question: "The aggregate stage counts each review in tumbling (60 s), sliding (60 s every 15 s) and session windows. In how many sliding windows is one review counted?",
            choices: &[
                "In one, like a tumbling window",
                "In every sliding window that covers its event time: size ÷ slide of them",
                "In none until its window closes",
            ],
            seed: &["tumbling window", "sliding window", "session window"],
            figures: &[
                Figure {
                    label: "reviews counted",
                    read: |o| count(o.snapshot.aggregate.counted),
                },
                Figure {
                    label: "tumbling windows",
                    read: |o| count(o.snapshot.aggregate.count_of(WindowKind::Tumbling).windows),
                },
                Figure {
                    label: "sliding windows",
                    read: |o| count(o.snapshot.aggregate.count_of(WindowKind::Sliding).windows),
                },
                Figure {
                    label: "session windows",
                    read: |o| count(o.snapshot.aggregate.count_of(WindowKind::Session).windows),
                },
                Figure {
                    label: "sliding windows per review (size ÷ slide)",
                    read: sliding_per_review,
                },
            ],
            outcome: |r| if r.after(4) > 1 { 1 } else { 0 },
            settle_secs: 0,
            explanation: "Tumbling windows do not overlap, so a review falls in exactly one. Sliding windows start every slide and last their size, so a review lands in size ÷ slide of them and there are that many more of them. Session windows have no fixed size: they close after a gap without reviews, so their count follows the traffic.",
        },
    },
    Step {
        id: "late",
        cell: 4,
        concepts: &["event time", "late data", "watermark"],
        task: "Restart the streamer with Late % above 0: reviews behind the watermark are counted late.",
        parts: &[|o| started(o, StageId::Streamer) && since(o, Tally::Late) >= 1],
        predict: Prediction {
            question: "You restart the streamer with Late % above 0: those reviews carry an event time minutes in the past. What happens to the ones behind the watermark?",
            choices: &[
                "They are counted in the window of their event time, as if on time",
                "They are counted as late: dropped or sent to reviews.late, and their window is not changed",
                "They are counted in the window of their arrival (processing) time",
            ],
            seed: &["event time", "processing time", "late data", "watermark"],
            figures: &[
                Figure {
                    label: "late reviews",
                    read: |o| count(o.snapshot.aggregate.late_records),
                },
                Figure {
                    label: "reviews counted",
                    read: |o| count(o.snapshot.aggregate.counted),
                },
                Figure {
                    label: "watermark behind the newest event (s)",
                    read: |o| {
                        let a = &o.snapshot.aggregate;
                        a.max_event_time
                            .zip(a.watermark)
                            .map_or(0, |(max, wm)| (max - wm) / 1_000)
                    },
                },
                Figure {
                    label: "records in reviews.late",
                    read: |o| records(o, app::api::TOPIC_LATE),
                },
            ],
            outcome: |r| if r.grew(0) > 0 { 1 } else { 0 },
            settle_secs: 0,
            explanation: "Windows are kept by event time, when the review was written, not processing time, when it arrived. The watermark trails the newest event time by the allowed lateness; a window closes when the watermark passes its end. A review older than the watermark finds its window closed, so it is counted as late instead of changing a result already emitted.",
        },
    },
    Step {
        id: "output-mode",
        cell: 4,
        concepts: &["output mode"],
        task: "Restart the aggregate stage in update or complete mode and watch it emit to reviews.aggregates.",
        parts: &[|o| {
            let mode = config_str(o, "aggregate", "output_mode");
            started(o, StageId::Aggregate)
                && running(o, "aggregate")
                && matches!(mode.as_deref(), Some("update" | "complete"))
                && since(o, Tally::Emitted) >= 1
        }],
        predict: Prediction {
            question: "You restart the aggregate stage in update mode. How many rows does each trigger write to reviews.aggregates?",
            choices: &[
                "One per window held, every trigger",
                "Only the windows that changed since the last trigger",
                "None until a window closes",
            ],
            seed: &["output mode", "trigger"],
            figures: &[
                Figure {
                    label: "triggers",
                    read: |o| count(counter(o, "aggregate", "triggers")),
                },
                Figure {
                    label: "rows emitted",
                    read: |o| count(counter(o, "aggregate", "emitted")),
                },
                Figure {
                    label: "rows per trigger",
                    read: |o| {
                        count(
                            counter(o, "aggregate", "emitted")
                                / counter(o, "aggregate", "triggers").max(1),
                        )
                    },
                },
                Figure {
                    label: "windows held",
                    read: |o| {
                        let a = &o.snapshot.aggregate;
                        count(
                            [
                                WindowKind::Tumbling,
                                WindowKind::Sliding,
                                WindowKind::Session,
                            ]
                            .iter()
                            .map(|k| a.count_of(*k).windows)
                            .sum::<u64>(),
                        )
                    },
                },
            ],
            // Counters restart with the stage, so the figures at the end are this run's own.
            outcome: |r| {
                if r.after(1) == 0 {
                    2
                } else if 10 * r.after(2) >= 9 * r.after(3) {
                    0
                } else {
                    1
                }
            },
            settle_secs: 3,
            explanation: "A trigger is the moment the stage writes its results, once a second here. In update mode it writes only the windows that changed since the previous trigger; complete writes every window each time, append only windows that have closed. The choice trades how many rows a sink receives against whether it must merge updates.",
        },
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
        predict: Prediction {
            question: "You crash the aggregate stage and start it again. What do its windows hold afterwards?",
            choices: &[
                "Nothing: windows lived in memory and start empty",
                "What they held at the last checkpoint; the records after its offsets are read again",
                "Everything, rebuilt by re-reading reviews.sentiment from offset 0",
            ],
            seed: &["checkpoint"],
            figures: &[
                Figure {
                    label: "reviews counted",
                    read: |o| count(o.snapshot.aggregate.counted),
                },
                Figure {
                    label: "records read since the restart",
                    read: |o| count(counter(o, "aggregate", "consumed")),
                },
                Figure {
                    label: "resumed from a checkpoint (1 = yes)",
                    read: |o| i64::from(detail(o, "aggregate").contains("resumed from checkpoint")),
                },
            ],
            outcome: |r| {
                if r.after(2) == 1 {
                    1
                } else if r.after(0) < r.peak(0) / 2 {
                    0
                } else {
                    2
                }
            },
            settle_secs: 0,
            explanation: "Every trigger the stage saves its windows together with the input offsets they include: a checkpoint. After a crash it loads the last checkpoint and seeks to those offsets, so nothing is counted twice and nothing is missed. Only the records after the checkpoint are read again.",
        },
    },
    Step {
        id: "dedup",
        cell: 4,
        concepts: &["dedup", "at-least-once"],
        task: "Send the newest 100 reviews again (a producer retry): the windows drop them as duplicates.",
        parts: &[|o| {
            o.actions.contains(&Action::ResentReviews) && since(o, Tally::Duplicates) >= 1
        }],
        predict: Prediction {
            question: "You send the newest 100 reviews again, as a producer retry would. What happens to the window counts?",
            choices: &[
                "They go up by 100: the copies are new records to Kafka",
                "They stay: the windows skip a review_id they already counted",
                "Kafka refuses the copies",
            ],
            seed: &["deduplication", "at-least-once"],
            figures: &[
                Figure {
                    label: "duplicates skipped",
                    read: |o| count(o.snapshot.aggregate.duplicates),
                },
                Figure {
                    label: "records in reviews",
                    read: |o| records(o, TOPIC_REVIEWS),
                },
                Figure {
                    label: "reviews counted",
                    read: |o| count(o.snapshot.aggregate.counted),
                },
            ],
            outcome: |r| {
                if r.grew(1) < 100 && r.grew(0) == 0 {
                    2
                } else if r.grew(0) > 0 {
                    1
                } else {
                    0
                }
            },
            settle_secs: 5,
            explanation: "Kafka stores the copies like any record: the topic grows by 100. Retries make a pipeline at-least-once, so the windows remember the review ids they counted and skip a repeat. The count stays right even though the log holds a review twice.",
        },
    },
    Step {
        id: "search",
        cell: 5,
        concepts: &["full-text search"],
        task: "Start the indexer and search for a word with a sentiment filter.",
        parts: &[|o| o.actions.contains(&Action::Searched) && running(o, "indexer")],
        predict: Prediction {
            question: "You filter a search by NEGATIVE. Where does a review's NEGATIVE label come from?",
            choices: &[
                "From the stars the reviewer gave",
                "From the sentiment stage's classifier, which scored the text's polarity and stored the label with the record",
                "The search engine guesses it from the words at query time",
            ],
            seed: &["sentiment polarity"],
            figures: &[
                Figure {
                    label: "documents searchable",
                    read: |o| count(o.snapshot.search.documents.unwrap_or(0)),
                },
                Figure {
                    label: "labels that agree with the stars",
                    read: |o| {
                        count(
                            (0..3)
                                .map(|i| o.snapshot.sentiment.confusion[i][i])
                                .sum::<u64>(),
                        )
                    },
                },
                Figure {
                    label: "labels that disagree with the stars",
                    read: |o| {
                        let c = &o.snapshot.sentiment.confusion;
                        count(
                            c.iter().flatten().sum::<u64>() - (0..3).map(|i| c[i][i]).sum::<u64>(),
                        )
                    },
                },
                Figure {
                    label: "indexer lag",
                    read: |o| group_lag(o, "indexer", GROUP_INDEXER).unwrap_or(0),
                },
            ],
            // Where the label is made is the pipeline's design, not something a run varies.
            outcome: |_| 1,
            settle_secs: 0,
            explanation: "The sentiment stage scores each review's text for polarity and writes the label into reviews.sentiment. The indexer copies that record, label included, into the index, so the filter is a plain field match. The disagreements with the stars show the label is the classifier's reading of the words, not the reviewer's rating.",
        },
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
        predict: Prediction {
            question: "The 100 re-sent reviews reach the index too. Once the indexer has caught up, how do documents compare with records in reviews.sentiment?",
            choices: &[
                "Equal: one document per record",
                "Fewer documents: a copy overwrites the document of the same review id",
                "More documents than records",
            ],
            seed: &["idempotent processing", "at-least-once"],
            figures: &[
                Figure {
                    label: "documents in the index",
                    read: |o| count(o.snapshot.search.documents.unwrap_or(0)),
                },
                Figure {
                    label: "records in reviews.sentiment",
                    read: |o| records(o, TOPIC_SENTIMENT),
                },
                Figure {
                    label: "indexer lag",
                    read: |o| group_lag(o, "indexer", GROUP_INDEXER).unwrap_or(0),
                },
            ],
            outcome: |r| match r.after(0).cmp(&r.after(1)) {
                std::cmp::Ordering::Less => 1,
                std::cmp::Ordering::Equal => 0,
                std::cmp::Ordering::Greater => 2,
            },
            settle_secs: 0,
            explanation: "The indexer writes each review under its review id, so writing it again replaces the same document. An at-least-once pipeline delivers some records twice; an idempotent sink makes the second write harmless. That is why the index holds fewer documents than the topic holds records.",
        },
    },
    Step {
        id: "search-outage",
        cell: 5,
        concepts: &["retry with backoff", "back-pressure"],
        task: "Pause the search backend: the indexer retries and its lag grows. Resume it: the lag returns to 0.",
        parts: &[
            |o| o.snapshot.search.paused && since(o, Tally::IndexerRetries) >= 1,
            |o| !o.snapshot.search.paused && group_lag(o, "indexer", "pipebook-indexer") == Some(0),
        ],
        predict: Prediction {
            question: "You pause the search backend while reviews keep coming. What happens to the indexer?",
            choices: &[
                "It commits its offsets anyway; those reviews are never indexed",
                "It retries and holds its offsets back: its lag grows, then drains when search returns",
                "It crashes and must be restarted by hand",
            ],
            seed: &["lag", "at-least-once"],
            figures: &[
                Figure {
                    label: "indexer lag",
                    read: |o| group_lag(o, "indexer", GROUP_INDEXER).unwrap_or(0),
                },
                Figure {
                    label: "indexer retries",
                    read: |o| count(counter(o, "indexer", "retries")),
                },
                Figure {
                    label: "indexer running (1 = yes)",
                    read: |o| i64::from(running(o, "indexer")),
                },
                Figure {
                    label: "documents in the index",
                    read: |o| count(o.snapshot.search.documents.unwrap_or(0)),
                },
            ],
            // Retries are the sign it held its batch: an indexer that skipped would have no
            // reason to retry. Its lag need not grow past the answer's: a learner who answers
            // while the indexer still works off a backlog sees that backlog wait, not grow.
            outcome: |r| {
                if r.after(2) == 0 {
                    2
                } else if r.grew(1) > 0 && r.after(0) == 0 && r.grew(3) > 0 {
                    1
                } else {
                    0
                }
            },
            settle_secs: 0,
            explanation: "The indexer commits a batch's offsets only after the search engine accepted it. While search is down it backs off and retries the same batch, so the committed offsets stand still and the lag grows. When search returns, the batch goes through and the backlog drains: nothing is skipped.",
        },
    },
    Step {
        id: "replay",
        cell: 2,
        concepts: &["offset reset", "replay"],
        task: "Stop the sentiment stage, move its group (pipebook-sentiment) back in cell 2 — to a time ten minutes ago, or by a shift of a few hundred records; a dry run first, then Reset — and start the stage again: it labels those reviews a second time, and once the indexer has caught up the index holds no more documents than before.",
        parts: &[
            |o| o.actions.contains(&Action::ResetSentimentGroup),
            // The reset is refused while the group has members, so a running stage here was
            // started after it.
            |o| {
                running(o, "sentiment")
                    && sentiment_lag(o) == Some(0)
                    && since(o, Tally::Labelled) > 0
            },
            |o| {
                running(o, "indexer")
                    && group_lag(o, "indexer", GROUP_INDEXER) == Some(0)
                    && o.snapshot
                        .search
                        .documents
                        .is_some_and(|d| count(d) < records(o, TOPIC_SENTIMENT))
            },
        ],
        predict: Prediction {
            question: "You move the sentiment group's offsets back and start it again. What happens to reviews.sentiment and to the index?",
            choices: &[
                "Nothing: a group's committed offsets only move forward",
                "reviews.sentiment gets the re-read reviews a second time; the index keeps one document per review",
                "Both grow: the index gets a second document for each re-read review",
            ],
            seed: &["offset", "at-least-once", "idempotent processing"],
            figures: &[
                Figure {
                    label: "records in reviews.sentiment",
                    read: |o| records(o, TOPIC_SENTIMENT),
                },
                Figure {
                    label: "documents in the index",
                    read: |o| count(o.snapshot.search.documents.unwrap_or(0)),
                },
                Figure {
                    label: "sentiment lag",
                    read: |o| sentiment_lag(o).unwrap_or(0),
                },
            ],
            outcome: |r| {
                if r.grew(0) <= 0 {
                    0
                } else if r.grew(1) < r.grew(0) {
                    1
                } else {
                    2
                }
            },
            settle_secs: 0,
            explanation: "A consumer group resumes from its committed offsets, and an operator may move them anywhere while the group has no members — back to re-read, forward to skip. Moving them back makes the stage label those reviews again, so reviews.sentiment holds them twice: replay is at-least-once delivery on purpose. The indexer writes each review under its id, so the copies overwrite their own documents and the index does not grow.",
        },
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
        // A run since the step began: the results of one from before Start over stay on show.
        parts: &[|o| {
            let lab = &o.snapshot.lab;
            let since = lab.run.is_some() && lab.run != o.baseline.lab_run;
            let lost = lab.result(DeliveryMode::AtMostOnce).map_or(0, |r| r.lost);
            let duplicated = lab
                .result(DeliveryMode::AtLeastOnce)
                .map_or(0, |r| r.duplicated);
            since && !lab.running && lost > 0 && duplicated > 0
        }],
        predict: Prediction {
            question: "The lab copies the same records three ways and crashes each copy job halfway. Which mode loses records?",
            choices: &[
                "at-most-once",
                "at-least-once",
                "exactly-once",
                "none of them",
            ],
            seed: &[
                "delivery semantics",
                "at-most-once",
                "at-least-once",
                "exactly-once",
            ],
            figures: &[
                Figure {
                    label: "at-most-once: lost",
                    read: |o| lab(o, DeliveryMode::AtMostOnce, false),
                },
                Figure {
                    label: "at-least-once: lost",
                    read: |o| lab(o, DeliveryMode::AtLeastOnce, false),
                },
                Figure {
                    label: "exactly-once: lost",
                    read: |o| lab(o, DeliveryMode::ExactlyOnce, false),
                },
                Figure {
                    label: "at-most-once: duplicated",
                    read: |o| lab(o, DeliveryMode::AtMostOnce, true),
                },
                Figure {
                    label: "at-least-once: duplicated",
                    read: |o| lab(o, DeliveryMode::AtLeastOnce, true),
                },
                Figure {
                    label: "exactly-once: duplicated",
                    read: |o| lab(o, DeliveryMode::ExactlyOnce, true),
                },
            ],
            outcome: |r| (0..3).find(|&i| r.after(i) > 0).unwrap_or(3),
            settle_secs: 0,
            explanation: "At-most-once commits the input before writing the output, so the batch in flight at the crash is lost. At-least-once commits after the output is acknowledged, so that batch is written again: duplicates, no loss. Exactly-once writes and commits in one transaction, which the crash aborts as a whole.",
        },
    },
    Step {
        id: "trace",
        cell: 7,
        concepts: &["key → partition", "offset", "latency per hop"],
        task: "Trace the next review until every hop is found: its chunk, its partition (the key's hash chose it), its worker, its windows, its document.",
        parts: &[|o| o.actions.contains(&Action::TracedRecord)],
        predict: Prediction {
            question: "You trace the next review. How is its partition of reviews chosen?",
            choices: &[
                "Always partition 0 first",
                "By its key's hash: the same business always lands in the same partition",
                "At random, record by record",
            ],
            seed: &["event", "partition"],
            figures: &[
                Figure {
                    label: "partitions of reviews",
                    read: |o| partitions(o, TOPIC_REVIEWS),
                },
                Figure {
                    label: "records in reviews",
                    read: |o| records(o, TOPIC_REVIEWS),
                },
                Figure {
                    label: "partitions of reviews holding records",
                    read: |o| filled_partitions(o, TOPIC_REVIEWS),
                },
            ],
            // The partitioner is the producer's code: the same on every run.
            outcome: |_| 1,
            settle_secs: 0,
            explanation: "The producer hashes each record's key and takes it modulo the partition count. So every review of one business goes to the same partition and stays in order there, while different businesses spread over all of them. The trace shows the hop: the key, the partition it chose and the offset it got.",
        },
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
/// assigned again afterwards; the kill or the new worker since the step began (one from before
/// Start over belongs to an earlier go).
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
        .filter(|e| e.at >= o.baseline.at)
        .filter(|e| e.kind == "killed" || (e.kind == "started" && e.at > first))
        .map(|e| e.at)
        .min();
    change.is_some_and(|at| events.iter().any(|e| e.kind == "assigned" && e.at >= at))
}

/// A count as a figure (figures are signed: lags and differences can be negative).
fn count<T: TryInto<i64>>(n: T) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// Records written to a topic: its log-end offsets added up.
fn records(o: &Observed, topic: &str) -> i64 {
    o.snapshot
        .topic(topic)
        .map_or(0, app::api::TopicInfo::high_sum)
}

fn partitions(o: &Observed, topic: &str) -> i64 {
    o.snapshot
        .topic(topic)
        .map_or(0, |t| count(t.partitions.len()))
}

fn filled_partitions(o: &Observed, topic: &str) -> i64 {
    o.snapshot.topic(topic).map_or(0, |t| {
        count(t.partitions.iter().filter(|p| p.high > p.low).count())
    })
}

fn log_end(o: &Observed, topic: &str, partition: i32) -> i64 {
    o.snapshot
        .topic(topic)
        .and_then(|t| t.partitions.iter().find(|p| p.id == partition))
        .map_or(0, |p| p.high)
}

/// A group's committed offsets added up.
fn committed(o: &Observed, group: &str) -> i64 {
    o.snapshot
        .groups
        .iter()
        .find(|g| g.group == group)
        .map_or(0, |g| g.partitions.iter().filter_map(|p| p.committed).sum())
}

/// Partitions that two running sentiment workers claim at once (a group never does that).
fn shared_partitions(o: &Observed) -> i64 {
    let mut seen = BTreeSet::new();
    let mut shared = BTreeSet::new();
    let running = o
        .snapshot
        .sentiment
        .workers
        .iter()
        .filter(|w| w.state == "running");
    for partition in running.flat_map(|w| &w.partitions) {
        if !seen.insert(partition) {
            shared.insert(partition);
        }
    }
    count(shared.len())
}

/// The partitions the most recently killed worker held when it was killed, replayed from the
/// rebalance events (newest first; assigned and revoked carry the partitions that changed).
fn killed_held(o: &Observed) -> BTreeSet<i32> {
    let events = &o.snapshot.sentiment.rebalances;
    let Some(kill) = events.iter().find(|e| e.kind == "killed") else {
        return BTreeSet::new();
    };
    let mut held = BTreeSet::new();
    let before_kill = events
        .iter()
        .rev()
        .filter(|e| e.worker == kill.worker && e.at <= kill.at);
    for event in before_kill {
        match event.kind.as_str() {
            "assigned" => held.extend(&event.partitions),
            "revoked" => held.retain(|p| !event.partitions.contains(p)),
            _ => {}
        }
    }
    held
}

/// Partitions assigned to other workers since the latest kill (or the latest worker added).
fn moved_since_change(o: &Observed) -> BTreeSet<i32> {
    let events = &o.snapshot.sentiment.rebalances;
    let Some(change) = events
        .iter()
        .find(|e| e.kind == "killed" || e.kind == "started")
    else {
        return BTreeSet::new();
    };
    events
        .iter()
        .filter(|e| e.kind == "assigned" && e.at >= change.at && e.worker != change.worker)
        .flat_map(|e| e.partitions.iter().copied())
        .collect()
}

/// How many sliding windows one review falls in, from the running stage's config.
fn sliding_per_review(o: &Observed) -> i64 {
    let size = config_u64(o, "aggregate", "sliding_secs").unwrap_or(60);
    let slide = config_u64(o, "aggregate", "slide_secs")
        .unwrap_or(15)
        .max(1);
    count(size.div_ceil(slide))
}

fn config_u64(o: &Observed, id: &str, key: &str) -> Option<u64> {
    stage(o, id)?.config.as_ref()?.get(key)?.as_u64()
}

/// A delivery-lab mode's lost (or duplicated) records in the latest run.
fn lab(o: &Observed, mode: DeliveryMode, duplicated: bool) -> i64 {
    o.snapshot
        .lab
        .result(mode)
        .map_or(0, |r| count(if duplicated { r.duplicated } else { r.lost }))
}

/// What the learner has done so far.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Progress {
    /// Parts reached per step not yet done.
    reached: BTreeMap<String, usize>,
    done_at: BTreeMap<String, i64>,
    actions: BTreeSet<Action>,
    /// Each step's prediction and figures (absent from files written before predictions).
    #[serde(default)]
    watches: BTreeMap<String, Watch>,
    /// Each unfinished step's baseline (absent from older files: taken when next watched).
    #[serde(default)]
    baselines: BTreeMap<String, Baseline>,
}

/// One step's prediction and the figures read for it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Watch {
    choice: Option<usize>,
    before: Vec<i64>,
    peak: Vec<i64>,
    after: Vec<i64>,
    /// The choice the figures showed, once the step was done (and settled).
    happened: Option<usize>,
}

impl Watch {
    fn from(figures: Vec<i64>) -> Self {
        Self {
            peak: figures.clone(),
            before: figures,
            ..Self::default()
        }
    }

    fn raise_peak(&mut self, figures: &[i64]) {
        if self.peak.len() != figures.len() {
            self.peak = figures.to_vec();
        }
        for (peak, now) in self.peak.iter_mut().zip(figures) {
            *peak = (*peak).max(*now);
        }
    }

    fn resolve(&mut self, prediction: &Prediction, figures: Vec<i64>) {
        self.raise_peak(&figures);
        self.after = figures;
        let readings = Readings {
            before: &self.before,
            peak: &self.peak,
            after: &self.after,
        };
        let last = prediction.choices.len().saturating_sub(1);
        self.happened = Some((prediction.outcome)(&readings).min(last));
    }
}

fn read_figures(prediction: &Prediction, observed: &Observed) -> Vec<i64> {
    prediction
        .figures
        .iter()
        .map(|f| (f.read)(observed))
        .collect()
}

/// Why a prediction was not taken.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error("step {0} is already done: a prediction is made before its task")]
    Done(String),
    #[error("step {0} is under way: its prediction can no longer change")]
    Begun(String),
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

    /// Takes the learner's prediction for step `id` (an index into its choices) and reads its
    /// figures from `snapshot` as the "before". A prediction can change until the step's first
    /// part is reached; once the step is done it is refused.
    pub fn predict(
        &self,
        id: &str,
        choice: usize,
        snapshot: &Snapshot,
    ) -> Result<LessonView, PredictError> {
        let step = STEPS.iter().find(|s| s.id == id).ok_or_else(|| {
            let ids: Vec<&str> = STEPS.iter().map(|s| s.id).collect();
            ConfigError::new(
                "id",
                format!("no lesson step {id:?}; the steps are {}", ids.join(", ")),
            )
        })?;
        let choices = step.predict.choices.len();
        if choice >= choices {
            let message = format!(
                "{choice} is not one of the step's choices 0 to {}",
                choices - 1
            );
            return Err(ConfigError::new("choice", message).into());
        }
        let view = {
            let mut progress = self.lock();
            if progress.done_at.contains_key(id) {
                return Err(PredictError::Done(id.to_owned()));
            }
            let begun = progress.reached.get(id).is_some_and(|&r| r > 0);
            let answered = progress.watches.get(id).is_some_and(|w| w.choice.is_some());
            if begun && answered {
                return Err(PredictError::Begun(id.to_owned()));
            }
            let empty = Baseline::default();
            let observed = Observed {
                snapshot,
                actions: &progress.actions,
                baseline: progress.baselines.get(id).unwrap_or(&empty),
            };
            let mut watch = Watch::from(read_figures(&step.predict, &observed));
            watch.choice = Some(choice);
            progress.watches.insert(id.to_owned(), watch);
            view(&progress)
        };
        self.save();
        Ok(view)
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
        crate::saved::save_json(&self.path, &*self.lock(), "lesson progress");
    }
}

/// Moves each unfinished step past every part that holds now, in order, and reads the figures
/// of its prediction (the highest so far, and the outcome once done and settled). Returns
/// whether anything worth saving changed (a new peak alone is not: it is re-read after a restart).
fn advance(progress: &mut Progress, snapshot: &Snapshot, now: i64) -> bool {
    let Progress {
        reached: reached_parts,
        done_at,
        actions,
        watches,
        baselines,
    } = progress;
    let empty = Baseline::default();
    let mut changed = false;
    for step in STEPS {
        let prediction = &step.predict;
        if let Some(&done) = done_at.get(step.id) {
            let observed = Observed {
                snapshot,
                actions,
                baseline: &empty,
            };
            // A step done before predictions existed has nothing to resolve.
            let Some(watch) = watches.get_mut(step.id).filter(|w| w.happened.is_none()) else {
                continue;
            };
            let figures = read_figures(prediction, &observed);
            if now >= done + prediction.settle_secs * 1_000 {
                watch.resolve(prediction, figures);
                changed = true;
            } else {
                watch.raise_peak(&figures);
            }
            continue;
        }
        let baseline = match baselines.entry(step.id.to_owned()) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                changed = true;
                entry.insert(Baseline::taken(snapshot))
            }
        };
        changed |= baseline.lower_to(snapshot);
        let observed = Observed {
            snapshot,
            actions,
            baseline,
        };
        let figures = read_figures(prediction, &observed);
        match watches.get_mut(step.id) {
            Some(watch) => watch.raise_peak(&figures),
            None => {
                watches.insert(step.id.to_owned(), Watch::from(figures.clone()));
            }
        }
        let mut reached = reached_parts.get(step.id).copied().unwrap_or(0);
        let before = reached;
        // One part per sample: "above 1,000 then 0" needs two different moments.
        if step.parts.get(reached).is_some_and(|part| part(&observed)) {
            reached += 1;
        }
        if reached == step.parts.len() {
            done_at.insert(step.id.to_owned(), now);
            reached_parts.remove(step.id);
            baselines.remove(step.id);
            if prediction.settle_secs == 0
                && let Some(watch) = watches.get_mut(step.id)
            {
                watch.resolve(prediction, figures);
            }
            changed = true;
        } else if reached != before {
            reached_parts.insert(step.id.to_owned(), reached);
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
                prediction: Some(prediction_view(step, progress.watches.get(step.id))),
            }
        })
        .collect();
    LessonView { steps }
}

fn prediction_view(step: &Step, watch: Option<&Watch>) -> StepPrediction {
    let p = &step.predict;
    let outcome = watch.and_then(|w| {
        let figures = p.figures.iter().enumerate().map(|(i, f)| FigureReading {
            label: f.label.to_owned(),
            before: w.before.get(i).copied().unwrap_or(0),
            peak: w.peak.get(i).copied().unwrap_or(0),
            after: w.after.get(i).copied().unwrap_or(0),
        });
        Some(Outcome {
            happened: w.happened?,
            figures: figures.collect(),
            explanation: p.explanation.to_owned(),
        })
    });
    StepPrediction {
        question: p.question.to_owned(),
        choices: p.choices.iter().map(|c| (*c).to_owned()).collect(),
        choice: watch.and_then(|w| w.choice),
        outcome,
    }
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
            baseline: &Baseline::default(),
        };
        assert_eq!(sentiment_lag(&observed), Some(5_000));
        let mut elsewhere = snapshot_in_group(1, 5_000, "my-group");
        elsewhere.sentiment.group = "pipebook-sentiment".into();
        let observed = Observed {
            snapshot: &elsewhere,
            actions: &actions,
            baseline: &Baseline::default(),
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

    fn acked(at: i64, acked: u64) -> Snapshot {
        Snapshot {
            at,
            pipeline: PipelineStatus {
                stages: vec![StageStatus {
                    id: "producer".into(),
                    state: StageState::Running,
                    counters: BTreeMap::from([("acked".to_owned(), acked)]),
                    ..StageStatus::default()
                }],
                ..PipelineStatus::default()
            },
            ..Snapshot::default()
        }
    }

    /// Start over on a pipeline that already acknowledged 500 reviews: the stream step counts
    /// from 500, across a restart of the lesson; a producer counter that restarts from 0 counts
    /// from its lowest value. (The learner starts the streamer each time: the step asks for it.)
    #[test]
    fn a_count_step_counts_from_its_baseline_after_start_over_and_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let lesson = Lesson::open(dir.path());
        lesson.record(Action::Started(StageId::Streamer));
        assert!(
            step(&lesson.observe(&acked(1, 0)), "stream")
                .done_at
                .is_none()
        );
        assert_eq!(
            step(&lesson.observe(&acked(2, 500)), "stream").done_at,
            Some(2)
        );

        lesson.reset();
        lesson.record(Action::Started(StageId::Streamer));
        assert!(
            step(&lesson.observe(&acked(3, 500)), "stream")
                .done_at
                .is_none()
        );
        assert!(
            step(&lesson.observe(&acked(4, 599)), "stream")
                .done_at
                .is_none()
        );
        let reopened = Lesson::open(dir.path());
        assert!(
            step(&reopened.observe(&acked(5, 599)), "stream")
                .done_at
                .is_none()
        );
        assert_eq!(
            step(&reopened.observe(&acked(6, 600)), "stream").done_at,
            Some(6)
        );

        reopened.reset();
        reopened.record(Action::Started(StageId::Streamer));
        assert!(
            step(&reopened.observe(&acked(7, 600)), "stream")
                .done_at
                .is_none()
        );
        // The producer restarted: its counter starts again from 0.
        assert!(
            step(&reopened.observe(&acked(8, 40)), "stream")
                .done_at
                .is_none()
        );
        assert!(
            step(&reopened.observe(&acked(9, 139)), "stream")
                .done_at
                .is_none()
        );
        assert_eq!(
            step(&reopened.observe(&acked(10, 140)), "stream").done_at,
            Some(10)
        );
    }

    /// The sentiment stage running with two workers that share the partitions, and the
    /// streamer's producer acknowledging `acked` reviews.
    fn sharing(at: i64, acked: u64) -> Snapshot {
        let worker = |id: &str, partitions: Vec<i32>| app::api::WorkerView {
            id: id.into(),
            state: "running".into(),
            partitions,
            processed: 0,
            rate: 0.0,
            last_error: None,
        };
        let mut snapshot = snapshot_with_lag(at, 0);
        snapshot.sentiment.workers = vec![worker("w1", vec![0, 1]), worker("w2", vec![2, 3])];
        snapshot.pipeline.stages.push(StageStatus {
            id: "producer".into(),
            state: StageState::Running,
            counters: [("acked".to_owned(), acked)].into(),
            ..StageStatus::default()
        });
        snapshot
    }

    /// Start over on a running pipeline: the steps that ask to start a stage see its state
    /// already true, and wait until the learner starts it (stops and starts it, or adds a
    /// worker) — a start remembered across a restart of the server.
    #[test]
    fn a_step_that_asks_for_a_start_waits_for_one_after_start_over() {
        let dir = tempfile::tempdir().expect("dir");
        let lesson = Lesson::open(dir.path());
        // A fresh lesson: the learner starts the stages, and the steps tick.
        lesson.observe(&Snapshot::default());
        lesson.record(Action::Started(StageId::Sentiment));
        lesson.record(Action::Started(StageId::Streamer));
        let view = lesson.observe(&sharing(1, 500));
        assert!(step(&view, "group").done() && step(&view, "stream").done());

        // Start over with both still running and the reviews still flowing: nothing ticks.
        lesson.reset();
        for (at, acked) in [(2, 500), (3, 900), (4, 1_500)] {
            let view = lesson.observe(&sharing(at, acked));
            assert!(!step(&view, "group").done(), "group at {at}");
            assert!(!step(&view, "stream").done(), "stream at {at}");
        }

        // The learner stops and starts the sentiment stage (or adds a worker): its step ticks;
        // the stream step still waits for a start of the streamer.
        lesson.record(Action::Started(StageId::Sentiment));
        let reopened = Lesson::open(dir.path());
        let view = reopened.observe(&sharing(5, 1_600));
        assert!(step(&view, "group").done());
        assert!(!step(&view, "stream").done());
        reopened.record(Action::Started(StageId::Streamer));
        assert!(step(&reopened.observe(&sharing(6, 1_700)), "stream").done());
    }

    fn lab_run(at: i64, run: &str) -> Snapshot {
        let result = |mode, lost, duplicated| app::api::DeliveryResult {
            mode,
            state: app::api::LabState::Done,
            input_topic: String::new(),
            output_topic: String::new(),
            produced_in: 100,
            read_out: 100,
            distinct: 100,
            lost,
            duplicated,
            crash_at_offset: None,
            processed: 100,
            note: None,
        };
        let mut snapshot = Snapshot {
            at,
            ..Snapshot::default()
        };
        snapshot.lab.run = Some(run.into());
        snapshot.lab.results = vec![
            result(DeliveryMode::AtMostOnce, 7, 0),
            result(DeliveryMode::AtLeastOnce, 0, 5),
        ];
        snapshot
    }

    /// A lab run or a rebalance from before Start over is an earlier go: the steps wait for a
    /// new one.
    #[test]
    fn a_lab_run_or_a_rebalance_from_before_start_over_does_not_count() {
        let dir = tempfile::tempdir().expect("dir");
        let lesson = Lesson::open(dir.path());
        let event = |at, worker: &str, kind: &str| app::api::RebalanceEvent {
            at,
            worker: worker.into(),
            kind: kind.into(),
            partitions: vec![0],
        };
        let mut before = lab_run(10, "run-1");
        before.sentiment.rebalances = vec![
            event(5, "w2", "assigned"),
            event(4, "w1", "killed"),
            event(1, "w1", "assigned"),
        ];
        // The steps began before any of it (a fresh server observes at once).
        lesson.observe(&Snapshot::default());
        let view = lesson.observe(&before);
        assert!(step(&view, "delivery").done() && step(&view, "rebalance").done());

        lesson.reset();
        let mut again = before.clone();
        again.at = 20;
        let view = lesson.observe(&again);
        assert!(!step(&view, "delivery").done() && !step(&view, "rebalance").done());

        let mut later = lab_run(30, "run-2");
        later.sentiment.rebalances = vec![
            event(26, "w1", "assigned"),
            event(25, "w2", "killed"),
            event(5, "w2", "assigned"),
            event(4, "w1", "killed"),
            event(1, "w1", "assigned"),
        ];
        let view = lesson.observe(&later);
        assert!(step(&view, "delivery").done() && step(&view, "rebalance").done());
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

    /// `snapshot_with_lag`, with the sentiment stage's output topic holding `out` records.
    fn with_output(mut snapshot: Snapshot, out: i64) -> Snapshot {
        snapshot.topics = vec![app::api::TopicInfo {
            name: TOPIC_SENTIMENT.into(),
            partitions: vec![app::api::PartitionInfo {
                id: 0,
                low: 0,
                high: out,
                rate: 0.0,
            }],
        }];
        snapshot.groups[0].partitions[0].committed = Some(out);
        snapshot
    }

    fn prediction<'a>(view: &'a LessonView, id: &str) -> &'a StepPrediction {
        step(view, id)
            .prediction
            .as_ref()
            .expect("every step has a prediction")
    }

    #[test]
    fn every_seed_004_concept_has_a_prediction_and_every_named_concept_is_one() {
        let covered: BTreeSet<&str> = STEPS.iter().flat_map(|s| s.predict.seed).copied().collect();
        let missing: Vec<&&str> = SEED_004_CONCEPTS
            .iter()
            .filter(|c| !covered.contains(**c))
            .collect();
        assert!(missing.is_empty(), "no prediction for {missing:?}");
        let unknown: Vec<&&str> = covered
            .iter()
            .filter(|c| !SEED_004_CONCEPTS.contains(c))
            .collect();
        assert!(unknown.is_empty(), "not seed-004 concepts: {unknown:?}");
    }

    #[test]
    fn every_prediction_has_three_or_four_choices_figures_and_three_sentences() {
        for step in STEPS {
            let p = &step.predict;
            assert!((3..=4).contains(&p.choices.len()), "{}: choices", step.id);
            assert!(!p.figures.is_empty(), "{}: figures", step.id);
            let sentences = p.explanation.matches(". ").count() + 1;
            assert!(p.explanation.ends_with('.'), "{}", step.id);
            assert_eq!(sentences, 3, "{}: {}", step.id, p.explanation);
            // The outcome of all-zero figures is still one of the choices.
            let zeros = vec![0; p.figures.len()];
            let readings = Readings {
                before: &zeros,
                peak: &zeros,
                after: &zeros,
            };
            assert!((p.outcome)(&readings) < p.choices.len(), "{}", step.id);
        }
    }

    #[test]
    fn the_search_outage_is_judged_by_the_retries_not_by_a_lag_that_grew() {
        let step = STEPS
            .iter()
            .find(|s| s.id == "search-outage")
            .expect("step");
        let judge = |before: [i64; 4], peak: [i64; 4], after: [i64; 4]| {
            (step.predict.outcome)(&Readings {
                before: &before,
                peak: &peak,
                after: &after,
            })
        };
        // Seen in the Playwright lesson: answered with a backlog of 11,070 still to index; the
        // outage held it (5 retries), then it drained and the documents grew.
        assert_eq!(
            judge(
                [11_070, 0, 1, 5_914],
                [11_070, 5, 1, 10_450],
                [0, 5, 1, 10_450]
            ),
            1
        );
        // No retries and nothing indexed, yet the lag went to 0: the reviews were skipped.
        assert_eq!(judge([100, 0, 1, 500], [100, 0, 1, 500], [0, 0, 1, 500]), 0);
        // The indexer stopped.
        assert_eq!(
            judge([100, 0, 1, 500], [300, 2, 1, 500], [300, 2, 0, 500]),
            2
        );
    }

    #[test]
    fn the_lag_prediction_is_judged_from_the_figures_observed() {
        let dir = tempfile::tempdir().expect("dir");
        let lesson = Lesson::open(dir.path());
        lesson.observe(&with_output(snapshot_with_lag(1, 0), 500));
        // The learner bets on "drains as the backlog is read"; lag rises, the outputs grow by
        // what the commits moved, lag is back to 0.
        let view = lesson
            .predict("lag", 1, &with_output(snapshot_with_lag(2, 0), 500))
            .expect("prediction taken");
        assert_eq!(prediction(&view, "lag").choice, Some(1));
        assert!(prediction(&view, "lag").outcome.is_none());
        lesson.observe(&with_output(snapshot_with_lag(3, 2_000), 500));
        let view = lesson.observe(&with_output(snapshot_with_lag(4, 0), 2_500));
        let lag = prediction(&view, "lag");
        let outcome = lag.outcome.as_ref().expect("observed when done");
        assert_eq!(outcome.happened, 1);
        assert_eq!(lag.held(), Some(true));
        let figure = &outcome.figures[0];
        assert_eq!((figure.before, figure.peak, figure.after), (0, 2_000, 0));
        assert_eq!(view.predictions_right(), (1, 1));
        // Answering after the step is done is refused.
        let refused = lesson.predict("lag", 0, &Snapshot::default());
        assert!(matches!(refused, Err(PredictError::Done(_))));
    }

    #[test]
    fn a_skipped_backlog_is_what_happened_however_the_learner_bet() {
        let dir = tempfile::tempdir().expect("dir");
        let lesson = Lesson::open(dir.path());
        lesson
            .predict("lag", 1, &with_output(snapshot_with_lag(1, 0), 500))
            .expect("prediction taken");
        lesson.observe(&with_output(snapshot_with_lag(2, 2_000), 500));
        // Committed offsets jumped by 2,000 but hardly anything was written: skipped.
        let mut skipped = with_output(snapshot_with_lag(3, 0), 520);
        skipped.groups[0].partitions[0].committed = Some(2_500);
        let view = lesson.observe(&skipped);
        let lag = prediction(&view, "lag");
        assert_eq!(lag.outcome.as_ref().map(|o| o.happened), Some(2));
        assert_eq!(lag.held(), Some(false));
        assert_eq!(view.predictions_right(), (0, 1));
    }

    /// Seen in the Playwright lesson: the kill had left a backlog, so the lag was up when the
    /// learner answered and only drained; that is the backlog being read, not "stays at 0".
    #[test]
    fn a_lag_already_up_when_answered_that_drains_by_reading_is_the_backlog_read() {
        let dir = tempfile::tempdir().expect("dir");
        let lesson = Lesson::open(dir.path());
        lesson
            .predict("lag", 1, &with_output(snapshot_with_lag(1, 2_278), 500))
            .expect("prediction taken");
        lesson.observe(&with_output(snapshot_with_lag(2, 2_278), 500));
        let view = lesson.observe(&with_output(snapshot_with_lag(3, 0), 2_778));
        assert_eq!(prediction(&view, "lag").held(), Some(true));
    }

    #[test]
    fn the_killed_workers_partitions_and_where_they_went_are_read_from_the_events() {
        let event = |at, worker: &str, kind: &str, partitions: &[i32]| app::api::RebalanceEvent {
            at,
            worker: worker.into(),
            kind: kind.into(),
            partitions: partitions.to_vec(),
        };
        let mut snapshot = Snapshot::default();
        // Newest first, as the stage reports them.
        snapshot.sentiment.rebalances = vec![
            event(6, "w2", "assigned", &[0, 1, 2]),
            event(6, "w2", "revoked", &[2]),
            event(5, "w1", "killed", &[]),
            event(2, "w1", "revoked", &[2]),
            event(1, "w2", "assigned", &[2]),
            event(1, "w1", "assigned", &[0, 1, 2]),
        ];
        let actions = BTreeSet::new();
        let observed = Observed {
            snapshot: &snapshot,
            actions: &actions,
            baseline: &Baseline::default(),
        };
        assert_eq!(killed_held(&observed), BTreeSet::from([0, 1]));
        assert_eq!(moved_since_change(&observed), BTreeSet::from([0, 1, 2]));
    }

    #[test]
    fn a_bad_step_or_choice_is_refused_naming_the_field() {
        let dir = tempfile::tempdir().expect("dir");
        let lesson = Lesson::open(dir.path());
        let field = |result: Result<LessonView, PredictError>| match result {
            Err(PredictError::Invalid(e)) => e.field,
            other => panic!("not refused as invalid: {other:?}"),
        };
        assert_eq!(field(lesson.predict("nope", 0, &Snapshot::default())), "id");
        assert_eq!(
            field(lesson.predict("lag", 3, &Snapshot::default())),
            "choice"
        );
    }

    #[test]
    fn a_prediction_is_locked_once_its_task_is_under_way() {
        let dir = tempfile::tempdir().expect("dir");
        let lesson = Lesson::open(dir.path());
        lesson
            .predict("lag", 0, &Snapshot::default())
            .expect("first answer");
        lesson
            .predict("lag", 1, &Snapshot::default())
            .expect("changed before the task");
        lesson.observe(&snapshot_with_lag(1, 1_500));
        let refused = lesson.predict("lag", 2, &Snapshot::default());
        assert!(matches!(refused, Err(PredictError::Begun(_))));
    }

    #[test]
    fn predictions_and_outcomes_survive_a_restart_and_old_files_still_read() {
        let dir = tempfile::tempdir().expect("dir");
        let lesson = Lesson::open(dir.path());
        lesson
            .predict("offsets", 2, &Snapshot::default())
            .expect("taken");
        lesson.record(Action::BrowsedMessages);
        lesson.observe(&Snapshot::default());
        let view = Lesson::open(dir.path()).observe(&Snapshot::default());
        let offsets = prediction(&view, "offsets");
        assert_eq!(offsets.choice, Some(2));
        assert_eq!(offsets.outcome.as_ref().map(|o| o.happened), Some(0));
        assert_eq!(view.predictions_right(), (0, 1));

        // A file from before predictions: its done step shows no outcome, the rest work.
        let old = r#"{"reached": {}, "done_at": {"offsets": 5}, "actions": ["browsed_messages"]}"#;
        std::fs::write(dir.path().join("lesson.json"), old).expect("write");
        let view = Lesson::open(dir.path()).observe(&Snapshot::default());
        assert!(step(&view, "offsets").done());
        assert!(prediction(&view, "offsets").outcome.is_none());
        assert_eq!(view.predictions_right(), (0, 0));
    }
}
