//! The incidents: what each writes (a seeded burst), what trouble it starts, the figures that
//! tell its story, the hints, the question, the parts of the fix and what happened.

use app::api::{Review, TOPIC_DLQ, TOPIC_LATE, TOPIC_REVIEWS, TOPIC_SENTIMENT};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::live::{Baseline, BurstRecord, Live, Step};
use crate::streamer::generator::ReviewGenerator;
use crate::trace::path::partition_for_key;

type Part = fn(&Live) -> bool;

/// A figure of an incident's before / now / Δ table.
pub enum Figure {
    One(&'static str, fn(&Live) -> i64),
    /// One row per partition of `reviews` (as many as the topic really has), named the prefix
    /// followed by the partition.
    PerPartition(&'static str, fn(&Live, usize) -> i64),
}

/// A figure's row, once the partition count is known.
pub struct Row {
    pub name: String,
    figure: &'static Figure,
    partition: usize,
}

impl Row {
    pub fn read(&self, o: &Live) -> i64 {
        match self.figure {
            Figure::One(_, read) => read(o),
            Figure::PerPartition(_, read) => read(o, self.partition),
        }
    }
}

/// A diagnosis question, answered with one of its choices.
pub struct Question {
    pub text: &'static str,
    pub choices: fn(&Baseline) -> Vec<String>,
    /// Whether `choice` is right, checked against live state.
    pub right: fn(&Live, &str) -> bool,
}

pub struct Def {
    pub id: &'static str,
    pub title: &'static str,
    pub cell: u8,
    pub symptom: &'static str,
    /// Revealed one at a time, vaguest first.
    pub hints: &'static [&'static str],
    pub write_up: &'static str,
    pub question: Option<Question>,
    /// The seeded records written before the before-figures are taken.
    pub burst: fn(u64, &Baseline) -> Vec<BurstRecord>,
    /// What runs once the before-figures are taken.
    pub trouble: &'static [Step],
    pub figures: &'static [Figure],
    /// Conditions of the fix that must come true one after the other.
    pub parts: &'static [Part],
}

impl Def {
    /// The figures' rows for the partitions the incident started with.
    pub fn rows(&self, base: &Baseline) -> Vec<Row> {
        self.figures
            .iter()
            .flat_map(|figure| match figure {
                Figure::One(name, _) => vec![Row {
                    name: (*name).to_owned(),
                    figure,
                    partition: 0,
                }],
                Figure::PerPartition(prefix, _) => (0..base.review_partitions())
                    .map(|partition| Row {
                        name: format!("{prefix}{partition}"),
                        figure,
                        partition,
                    })
                    .collect(),
            })
            .collect()
    }
}

/// How many reviews a burst writes: enough to see, few enough to replay in a second.
const BURST: usize = 200;
/// The slow consumer's extra work per review (ms): one worker handles ~40 reviews/s.
const SLOW_MS: u64 = 25;
/// How fast the slow consumer's streamer sends: more than one worker handles, less than three.
const SLOW_RATE: u64 = 60;
/// How far the late-data incident moves a share of reviews back, in seconds.
const LATE_BY_SECS: i64 = 300;
/// The allowed lateness the late-data incident starts the windows with.
const LATENESS_SECS: u64 = 30;
/// Share of the hot key's reviews in its burst.
const HOT_SHARE: f64 = 0.7;
/// Reviews sent twice by the retry storm.
const RESENT: usize = 100;

/// The seed's reviews, as the generator (replay clock) makes them.
fn reviews(seed: u64, n: usize) -> Vec<Review> {
    ReviewGenerator::new(seed).take(n).collect()
}

fn keyed(review: &Review) -> BurstRecord {
    BurstRecord {
        partition: None,
        key: review.business_id.clone(),
        value: serde_json::to_string(review).unwrap_or_default(),
        fault: None,
    }
}

/// A plain burst: the seed's reviews, keyed by business.
fn plain(seed: u64, _: &Baseline) -> Vec<BurstRecord> {
    reviews(seed, BURST).iter().map(keyed).collect()
}

/// One business writes most of the reviews: its key's hash sends them all to one partition.
fn hot(seed: u64, _: &Baseline) -> Vec<BurstRecord> {
    let mut reviews = reviews(seed, BURST);
    let business = reviews
        .first()
        .map(|r| r.business_id.clone())
        .unwrap_or_default();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x407);
    for review in &mut reviews {
        if rng.random_bool(HOT_SHARE) {
            review.business_id.clone_from(&business);
        }
    }
    reviews.iter().map(keyed).collect()
}

/// Only businesses whose key hashes to a partition other than the last: the last partition of
/// `reviews` gets nothing, and neither does that of `reviews.sentiment` (same key, same hash).
fn idle(seed: u64, base: &Baseline) -> Vec<BurstRecord> {
    let partitions = i32::try_from(base.review_partitions()).unwrap_or(3);
    ReviewGenerator::new(seed)
        .filter(|r| partition_for_key(r.business_id.as_bytes(), partitions) != Some(partitions - 1))
        .take(BURST)
        .map(|r| keyed(&r))
        .collect()
}

/// Where in the burst the poison review is.
const POISON_AT: usize = 40;

/// One review whose text is too long to classify: it fails every time it is tried.
fn poison(seed: u64, base: &Baseline) -> Vec<BurstRecord> {
    let mut reviews = reviews(seed, BURST);
    if let Some(review) = reviews.get_mut(POISON_AT) {
        let sentence = "The food here is good and the staff are kind. ";
        let times = crate::sentiment::MAX_TEXT_CHARS / sentence.len() + 1;
        review.text = sentence.repeat(times);
    }
    let _ = base;
    reviews.iter().map(keyed).collect()
}

/// A quarter of the reviews moved back by five minutes: behind the watermark.
fn late(seed: u64, _: &Baseline) -> Vec<BurstRecord> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1a7e);
    let mut reviews = reviews(seed, BURST);
    for review in &mut reviews {
        if rng.random_bool(0.25)
            && let Ok(time) = chrono::NaiveDateTime::parse_from_str(&review.date, DATE)
        {
            let moved = time - chrono::Duration::seconds(LATE_BY_SECS);
            review.date = moved.format(DATE).to_string();
        }
    }
    reviews.iter().map(keyed).collect()
}

const DATE: &str = "%Y-%m-%d %H:%M:%S";

/// The burst, then its newest reviews written again: what a retry storm without idempotence does.
fn storm(seed: u64, base: &Baseline) -> Vec<BurstRecord> {
    let mut burst = plain(seed, base);
    let again: Vec<BurstRecord> = burst[BURST - RESENT..]
        .iter()
        .map(|r| BurstRecord {
            fault: Some("resent"),
            ..r.clone()
        })
        .collect();
    burst.extend(again);
    burst
}

// Incidents replay Yelp reviews whatever the learner streamed last (their figures, hints and
// checks are about reviews): the dataset is named, not left to a default.
fn streamer(seed: u64) -> serde_json::Value {
    json!({"seed": seed, "rate": SLOW_RATE, "dataset": "yelp"})
}

fn late_streamer(seed: u64) -> serde_json::Value {
    json!({"seed": seed, "rate": 50, "late_share": 0.25, "late_by_secs": LATE_BY_SECS, "dataset": "yelp"})
}

fn none(_: u64) -> serde_json::Value {
    json!({})
}

fn one_worker(_: u64) -> serde_json::Value {
    json!({"workers": 1})
}

fn slow_worker(_: u64) -> serde_json::Value {
    json!({"workers": 1, "slow_ms": SLOW_MS})
}

fn retry_for_ever(_: u64) -> serde_json::Value {
    json!({"workers": 1, "dead_letter_after": 0})
}

fn tight_windows(_: u64) -> serde_json::Value {
    json!({"allowed_lateness_secs": LATENESS_SECS})
}

/// An hour of lateness keeps every id of the burst in the windows' dedup horizon (a copy
/// behind the watermark would be dropped as late, not as a duplicate).
fn dedup_windows(_: u64) -> serde_json::Value {
    json!({"allowed_lateness_secs": 3600})
}

fn partition_names(base: &Baseline) -> Vec<String> {
    (0..base.review_partitions())
        .map(|p| format!("{TOPIC_REVIEWS}-{p}"))
        .collect()
}

/// The partition of `reviews` that received the most records since the start.
fn busiest(o: &Live) -> Option<usize> {
    (0..o.base.review_partitions()).max_by_key(|p| o.partition_since(TOPIC_REVIEWS, *p))
}

fn share_percent(part: i64, whole: i64) -> i64 {
    if whole == 0 { 0 } else { part * 100 / whole }
}

fn closed_windows(o: &Live) -> i64 {
    o.aggregate()
        .map_or(0, |a| a.windows.iter().filter(|w| w.closed).count() as i64)
}

fn lateness(o: &Live) -> i64 {
    if !o.running("aggregate") {
        return 0;
    }
    o.config("aggregate", "allowed_lateness_secs")
        .and_then(|v| v.as_i64())
        .unwrap_or(0)
}

fn late_to_topic(o: &Live) -> bool {
    o.config("aggregate", "late_policy")
        .and_then(|v| v.as_str().map(str::to_owned))
        == Some("topic".to_owned())
}

fn choices(list: &'static [&'static str]) -> Vec<String> {
    list.iter().map(|c| (*c).to_owned()).collect()
}

const BROKER_CHOICES: &[&str] = &[
    "Nowhere: they were lost",
    "In the producer: sent again until the broker acknowledged them",
    "In the dead-letter topic",
];

const STORM_CHOICES: &[&str] = &[
    "Nowhere: every count holds them twice",
    "In the sentiment stage: it skips ids it has seen",
    "In the sinks: the windows drop ids they counted, the index overwrites by id",
];

pub const INCIDENTS: &[Def] = &[
    Def {
        id: "slow-consumer",
        title: "A slow consumer",
        cell: 3,
        symptom: "One sentiment worker reads every partition and classifies slowly: the group's lag grows by the second.",
        hints: &[
            "Cell 3: how many workers does the group have, and how many partitions does each own?",
            "A consumer group shares partitions among its members: more workers, more reviews per second — up to one per partition.",
            "Add workers until every partition has its own (cell 2 shows how many partitions reviews has), then add one more and see what it gets.",
        ],
        write_up: "Each worker handled about 40 reviews a second while the streamer sent 60: the lag grew by the difference. Adding workers made the group rebalance and share the partitions, so one worker per partition handled that many times as much and the backlog drained. One worker more than partitions got no partition: within a group, one partition is read by one member, so the partition count caps a group's parallelism.",
        question: None,
        burst: plain,
        trouble: &[
            Step::Start("sentiment", slow_worker),
            Step::Start("producer", none),
            Step::Start("streamer", streamer),
        ],
        figures: &[
            Figure::One("sentiment lag (reviews waiting)", |o| o.sentiment_lag()),
            Figure::One("workers running", |o| o.workers().0),
            Figure::One("workers with no partition", |o| o.workers().1),
            Figure::One("reviews classified", |o| o.since(TOPIC_SENTIMENT)),
        ],
        parts: &[
            |o| {
                let (running, idle) = o.workers();
                running - idle >= o.review_partitions()
            },
            |o| {
                let (running, idle) = o.workers();
                running - idle >= o.review_partitions() && o.sentiment_lag() < SLOW_RATE as i64
            },
            |o| {
                let (running, idle) = o.workers();
                running > o.review_partitions() && idle >= 1
            },
        ],
    },
    Def {
        id: "poison-pill",
        title: "A poison pill",
        cell: 3,
        symptom: "The sentiment stage runs and most of the lag is gone, but one partition's lag never moves.",
        hints: &[
            "Cell 3 and cell 2: which partition's lag is stuck? Read that partition in the message browser from the group's committed offset.",
            "The worker retries a review that fails every time: nothing behind it in its partition is committed (a poison pill).",
            "Stop the sentiment stage and start it again from cell 3's form: its default gives up after 3 attempts and sends the review to reviews.dlq.",
        ],
        write_up: "One review could not be classified (its text is longer than the classifier takes), and the failure looked like any other, so the worker retried it for ever (dead_letter_after 0) and never committed past it: its partition stalled while the others flowed. Bounding the attempts and sending the review to the dead-letter topic, with its reason and origin, let the partition move on without losing the review: it waits in reviews.dlq to be fixed and replayed.",
        question: None,
        burst: poison,
        trouble: &[Step::Start("sentiment", retry_for_ever)],
        figures: &[
            Figure::One("sentiment lag (reviews waiting)", |o| o.sentiment_lag()),
            Figure::One("records in reviews.dlq", |o| o.since(TOPIC_DLQ)),
            Figure::One("reviews classified", |o| o.since(TOPIC_SENTIMENT)),
            Figure::One("attempts before the dead-letter topic (0 = never)", |o| {
                if o.running("sentiment") {
                    o.config("sentiment", "dead_letter_after")
                        .and_then(|v| v.as_i64())
                        .unwrap_or(0)
                } else {
                    0
                }
            }),
        ],
        parts: &[
            |o| o.since(TOPIC_DLQ) >= 1,
            |o| o.running("sentiment") && o.sentiment_lag() == 0,
        ],
    },
    Def {
        id: "hot-key",
        title: "A hot key",
        cell: 2,
        symptom: "One business writes most of the reviews. Something in the topic is lopsided.",
        hints: &[
            "Cell 2: compare the partitions of reviews — their high watermarks.",
            "The producer picks a partition from the key's hash; the key is the business id.",
            "The partition that holds far more than its share is where the hot business's reviews all go.",
        ],
        write_up: "Records with the same key always go to the same partition (the key's hash picks it), which keeps one business's reviews in order. A business that writes most of the reviews therefore floods one partition: its consumer does most of the work while the others idle, and adding workers does not help. Remedies: a key with more spread (business plus day), or salting the hot key.",
        question: Some(Question {
            text: "Which partition does the hot business flood?",
            choices: partition_names,
            right: |o, choice| busiest(o).is_some_and(|p| choice == format!("{TOPIC_REVIEWS}-{p}")),
        }),
        burst: hot,
        trouble: &[Step::Start("producer", none)],
        figures: &[
            Figure::PerPartition("records in reviews-", |o, p| {
                o.partition_since(TOPIC_REVIEWS, p)
            }),
            Figure::One("busiest partition's share (%)", |o| {
                let top = busiest(o).map_or(0, |p| o.partition_since(TOPIC_REVIEWS, p));
                share_percent(top, o.since(TOPIC_REVIEWS))
            }),
        ],
        parts: &[|o| o.answered_right],
    },
    Def {
        id: "idle-partition",
        title: "An idle partition holds the watermark back",
        cell: 4,
        symptom: "Reviews are counted, yet no window ever closes.",
        hints: &[
            "Cell 4: what is the watermark? Look at each partition's own.",
            "The operator's watermark is the least of its partitions' watermarks; a partition that never saw a record has none.",
            "Give the idle partition records: start the streamer in cell 1 (its reviews spread over every partition).",
        ],
        write_up: "The aggregate stage's watermark is the minimum over the partitions it reads, as in Flink: that way no partition's records are declared late because another partition ran ahead. A partition that receives nothing has no watermark, so the minimum does not exist and no window closes. Records on every partition let the watermark move; a real job would also mark a source idle after a timeout (Flink's withIdleness).",
        question: None,
        burst: idle,
        trouble: &[
            Step::Start("sentiment", one_worker),
            Step::Start("aggregate", none),
            Step::Start("producer", none),
        ],
        figures: &[
            Figure::One("records in the idle partition", |o| {
                let last = o.base.review_partitions().saturating_sub(1);
                o.partition_since(TOPIC_REVIEWS, last)
            }),
            Figure::One("watermark set (1 = yes)", |o| {
                i64::from(o.aggregate().is_some_and(|a| a.watermark.is_some()))
            }),
            Figure::One("closed windows", closed_windows),
            Figure::One("reviews counted", |o| {
                o.aggregate().map_or(0, |a| a.counted as i64)
            }),
        ],
        parts: &[|o| {
            o.aggregate().is_some_and(|a| a.watermark.is_some()) && closed_windows(o) >= 1
        }],
    },
    Def {
        id: "late-data",
        title: "Late data beyond the allowed lateness",
        cell: 4,
        symptom: "The windows count fewer reviews than the topic holds.",
        hints: &[
            "Cell 4: what does the late counter say?",
            "A quarter of the reviews arrive five minutes behind; the windows allow 30 s.",
            "Restart the aggregate stage with an allowed lateness of 10 minutes (600 s) — or with late policy 'topic', so the late ones are kept in reviews.late.",
        ],
        write_up: "The watermark trails the newest event time by the allowed lateness; a review behind it belongs to a window that may already have been emitted, so it is dropped and counted late. Five-minute-late reviews against 30 s of lateness were lost to the counts. A larger allowed lateness keeps windows open longer (later results, more state); the late topic keeps the records for a correction job instead.",
        question: None,
        burst: late,
        trouble: &[
            Step::Start("sentiment", one_worker),
            Step::Start("aggregate", tight_windows),
            Step::Start("producer", none),
            Step::Start("streamer", late_streamer),
        ],
        figures: &[
            Figure::One("late records", |o| {
                o.aggregate().map_or(0, |a| a.late_records as i64)
            }),
            Figure::One("reviews counted", |o| {
                o.aggregate().map_or(0, |a| a.counted as i64)
            }),
            Figure::One("records in reviews.late", |o| o.since(TOPIC_LATE)),
            Figure::One("allowed lateness (s)", lateness),
        ],
        parts: &[
            |o| o.running("aggregate") && (lateness(o) >= 2 * LATE_BY_SECS || late_to_topic(o)),
            |o| o.counter("aggregate", "consumed") >= 30,
        ],
    },
    Def {
        id: "broker-outage",
        title: "A broker outage during produce",
        cell: 2,
        symptom: "The broker went down while the streamer was sending.",
        hints: &[
            "Cell 2: is the broker running? Start it again.",
            "Cell 1: compare what the producer sent with what Kafka acknowledged while the broker was down.",
            "The producer keeps every unacknowledged record and sends it again; nothing is written to the dead-letter topic.",
        ],
        write_up: "While the broker was down the producer could not get acknowledgements, so it held its records and retried them (an idempotent producer with unlimited delivery time). When the broker came back, the records were sent again and acknowledged: reviews in the topic match what the streamer sent, nothing lost and — idempotence — nothing written twice.",
        question: Some(Question {
            text: "While the broker was down, where did the reviews wait?",
            choices: |_| choices(BROKER_CHOICES),
            right: |_, choice| choice == BROKER_CHOICES[1],
        }),
        burst: plain,
        trouble: &[
            Step::Start("producer", none),
            Step::Start("streamer", streamer),
            Step::StopBroker,
        ],
        figures: &[
            Figure::One("broker running (1 = yes)", |o| {
                i64::from(o.snapshot.pipeline.kafka.state == app::api::StageState::Running)
            }),
            Figure::One("reviews written since the start", |o| {
                o.since(TOPIC_REVIEWS)
            }),
            Figure::One("producer: sent, not yet acknowledged", |o| {
                (o.counter("producer", "produced") - o.counter("producer", "acked")).max(0)
            }),
            Figure::One("producer: delivery failures", |o| {
                o.counter("producer", "delivery_failed")
            }),
        ],
        parts: &[
            |o| {
                o.snapshot.pipeline.kafka.state == app::api::StageState::Running
                    && o.counter("producer", "acked") > 0
                    && o.counter("producer", "delivery_failed") == 0
            },
            |o| o.answered_right,
        ],
    },
    Def {
        id: "duplicates",
        title: "Duplicates after a retry storm",
        cell: 5,
        symptom: "A producer retried without idempotence: 100 reviews were written twice.",
        hints: &[
            "Cell 2: reviews holds more records than there are reviews.",
            "Cell 4: what does the windows' duplicates figure say? Cell 5: compare documents with records in reviews.sentiment.",
            "The sentiment stage passes copies on; the windows skip ids they counted, the index overwrites a document with the same id.",
        ],
        write_up: "At-least-once delivery means copies: the retry storm wrote 100 reviews twice and the sentiment stage, which keeps no memory of ids, enriched both. The sinks absorbed them: the windows keep the ids they counted and skip a second one (dedup), and the search index uses the review id as document id, so a copy overwrites the same document (an idempotent sink). End to end, every review counts once.",
        question: Some(Question {
            text: "Where are the copies absorbed?",
            choices: |_| choices(STORM_CHOICES),
            right: |o, choice| {
                choice == STORM_CHOICES[2] && o.aggregate().is_some_and(|a| a.duplicates >= 1)
            },
        }),
        burst: storm,
        trouble: &[
            Step::Start("sentiment", one_worker),
            Step::Start("aggregate", dedup_windows),
            Step::Start("indexer", none),
        ],
        figures: &[
            Figure::One("records in reviews", |o| o.since(TOPIC_REVIEWS)),
            Figure::One("records in reviews.sentiment", |o| o.since(TOPIC_SENTIMENT)),
            Figure::One("duplicates dropped by the windows", |o| {
                o.aggregate().map_or(0, |a| a.duplicates as i64)
            }),
            Figure::One("documents added to the index", |o| o.new_documents()),
        ],
        parts: &[|o| o.answered_right],
    },
    Def {
        id: "search-outage",
        title: "A search outage",
        cell: 5,
        symptom: "Reviews are enriched, but the index does not grow.",
        hints: &[
            "Cell 5: what does the indexer's retry counter say, and the search backend's state?",
            "The indexer commits a batch's offsets only after the backend accepted it: its lag is the work held back.",
            "Resume the search backend in cell 5 and watch the lag return to 0.",
        ],
        write_up: "The search backend failed every call. The indexer retried with backoff and did not commit its offsets, so its lag grew instead of reviews being skipped: the offsets held the work back. When the backend returned, the indexer wrote the held batches and committed them, and the lag went back to 0 — back-pressure without loss.",
        question: None,
        burst: plain,
        trouble: &[
            Step::SearchDown,
            Step::Start("sentiment", one_worker),
            Step::Start("indexer", none),
        ],
        figures: &[
            Figure::One("search down (1 = yes)", |o| {
                i64::from(o.snapshot.search.paused)
            }),
            Figure::One("indexer lag", |o| o.indexer_lag()),
            Figure::One("indexer retries", |o| o.counter("indexer", "retries")),
            Figure::One("reviews indexed", |o| o.counter("indexer", "indexed")),
        ],
        parts: &[
            |o| !o.snapshot.search.paused,
            |o| {
                o.running("indexer")
                    && o.indexer_lag() == 0
                    && o.counter("indexer", "indexed") >= BURST as i64
            },
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Baseline {
        Baseline {
            highs: [(TOPIC_REVIEWS.to_owned(), vec![0, 0, 0])].into(),
            documents: 0,
        }
    }

    #[test]
    fn every_burst_is_the_same_for_the_same_seed_and_differs_for_another() {
        for def in INCIDENTS {
            let first = (def.burst)(7, &base());
            assert_eq!(first, (def.burst)(7, &base()), "{}", def.id);
            assert_ne!(first, (def.burst)(8, &base()), "{}", def.id);
            assert!(!first.is_empty());
        }
    }

    #[test]
    fn ids_are_unique_and_every_incident_has_hints_figures_and_a_fix() {
        let ids: std::collections::BTreeSet<&str> = INCIDENTS.iter().map(|d| d.id).collect();
        assert_eq!(ids.len(), INCIDENTS.len());
        for def in INCIDENTS {
            assert!(def.hints.len() >= 3, "{}", def.id);
            assert!(
                !def.figures.is_empty() && !def.parts.is_empty(),
                "{}",
                def.id
            );
            assert!((1..=7).contains(&def.cell), "{}", def.id);
        }
    }

    #[test]
    fn the_idle_partition_gets_nothing_and_the_storm_resends_the_newest() {
        let burst = idle(3, &base());
        assert_eq!(burst.len(), BURST);
        assert!(
            burst
                .iter()
                .all(|r| partition_for_key(r.key.as_bytes(), 3) != Some(2))
        );
        let storm = storm(3, &base());
        assert_eq!(storm.len(), BURST + RESENT);
        assert_eq!(storm[BURST].value, storm[BURST - RESENT].value);
    }

    #[test]
    fn the_hot_key_writes_most_reviews_under_one_business() {
        let burst = hot(5, &base());
        let first = &burst[0].key;
        let same = burst.iter().filter(|r| &r.key == first).count();
        assert!(same * 10 >= burst.len() * 6, "{same} of {}", burst.len());
    }
}
