//! Trace a record: follow one record — a review, a tweet, a company — through the pipeline, hop
//! by hop — the streamer's socket chunk, its partition and offset in `reviews`, the sentiment
//! worker and its record in `reviews.sentiment`, the windows it was counted in, and its document
//! in the search engine — with the time it reached each hop and the latency from the hop before.
//! A record is followed by the id field its dataset's description names (`review_id`,
//! `tweet_id`, `company_id`), and a hop a dataset passes by (a company has no text: sentiment
//! forwards it unlabelled, the indexer leaves it out) is shown as skipped, with the reason.
//!
//! Everything is read from where it really is: the topics are scanned with the broker-side
//! reader of [`crate::kafka::inspect`] (bounded: a topic can hold millions of records), the
//! search engine is asked for the document by id, and the stages' small memories of their recent
//! batches ([`recent`]) say which chunk, trigger or bulk a review was in and when.

pub mod path;
pub mod recent;

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use app::api::{
    AggregateConfig, DatasetKind, Message, Review, Sentiment, StageState, StageStatus,
    TOPIC_REVIEWS, TOPIC_SENTIMENT, TimeDomain, Trace, TraceFact, TraceHop, TraceHopKind,
    TraceHopState, TraceWindow, WindowKind,
};
use chrono::NaiveDateTime;
use serde::Deserialize;

use crate::aggregate::AggregateMetrics;
use crate::index::{Backend, SearchBackend, SearchError};
use crate::kafka::inspect::{
    InspectError, Inspector, SCAN_TIMEOUT, ScanFrom, ScanOutcome, ScanRequest,
};
use crate::records::{DATE_FORMAT, dimension_values, parse_dataset_record};
use crate::sync::LockExt;
use recent::{KEPT_IDS, RecentBatches};

/// Most records one search for a record reads, over all partitions of a topic.
pub const SCAN_LIMIT: u64 = 200_000;
/// How long "trace the next record" waits for one to be produced.
pub const NEXT_WAIT: Duration = Duration::from_secs(10);
/// Longest id accepted.
const MAX_REVIEW_ID: usize = 200;
/// Copies of one record a scan keeps (a replayed seed writes the same ids again).
const MAX_MATCHES: usize = 16;
/// Records located in `reviews` remembered, so a trace polled every second does not scan again.
const LOCATED_KEPT: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("review_id: {0}")]
    BadReviewId(String),
    #[error(
        "no record with id {review_id:?} (a review_id, tweet_id or company_id) in `reviews`: {searched}"
    )]
    NotFound { review_id: String, searched: String },
    #[error(
        "no record was produced to `reviews` within {0} s: start the streamer and the producer (cell 1)"
    )]
    NoNextReview(u64),
    /// What the next record of `reviews` held was none of the datasets' records (a fault button
    /// floods such records): nothing the caller asked was wrong.
    #[error("the next record of `reviews` is not a review, a tweet or a company ({0}); try again")]
    NextNotAReview(String),
    #[error(transparent)]
    Inspect(#[from] InspectError),
}

/// What a trace reads: the broker, the search engine, and each stage's state and memory.
pub struct Pipeline<'a> {
    pub inspector: &'a Inspector,
    pub search: &'a Backend,
    pub streamer: StageStatus,
    pub chunks: &'a RecentBatches,
    pub producer: StageStatus,
    pub sentiment: StageStatus,
    /// The running (or last) sentiment run's group, as the stage holds it.
    pub sentiment_group: String,
    pub aggregate: StageStatus,
    pub aggregate_metrics: &'a AggregateMetrics,
    pub indexer: StageStatus,
    pub bulks: &'a RecentBatches,
}

/// Where recently traced records are in `reviews`.
#[derive(Default)]
pub struct Tracer {
    located: Mutex<VecDeque<(String, i32, i64)>>,
}

/// How a record was found in `reviews`, and what finding it cost.
struct Located {
    record: Message,
    traced: Traced,
    scanned: u64,
    scan_ms: u64,
}

/// The record being traced, whatever its dataset: what its description names.
#[derive(Debug, Clone, PartialEq)]
struct Traced {
    dataset: DatasetKind,
    /// The value of its dataset's id field.
    id: String,
    /// The value of its dataset's key field (a review's business, a tweet's user): its Kafka
    /// key, and the key of its sessions.
    key: String,
    /// The value of its dataset's event-time field, `YYYY-MM-DD HH:MM:SS`.
    event_time: String,
    /// Its dimensions other than the key (a review's stars, a tweet's hashtags, a company's
    /// country and industry): what the `reviews` hop lists about it.
    dimensions: Vec<TraceFact>,
}

/// Reads a record of `reviews` (or its output in `reviews.sentiment`) as the dataset it is: a
/// record tagged with another dataset is checked against that description; an untagged one must
/// be a Yelp review. The error says why it is none of them.
fn traced_record(payload: &str) -> Result<Traced, String> {
    use serde_json::Value;
    let (dataset, fields) = match parse_dataset_record(payload.as_bytes()) {
        Some(Ok((description, record))) => (description.name, record.fields),
        Some(Err(reason)) => return Err(reason),
        None => {
            serde_json::from_str::<Review>(payload).map_err(|e| format!("not a review: {e}"))?;
            match serde_json::from_str::<Value>(payload) {
                Ok(Value::Object(fields)) => (DatasetKind::Yelp, fields),
                _ => return Err("not a JSON object".to_owned()),
            }
        }
    };
    let text = |field: &str| match fields.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let dimensions = dataset
        .description()
        .dimensions
        .iter()
        .filter(|d| d.as_str() != dataset.key_field())
        .map(|d| fact(d, listed(&dimension_values(fields.get(d)))))
        .collect();
    Ok(Traced {
        dataset,
        id: text(dataset.id_field()),
        key: text(dataset.key_field()),
        event_time: text(dataset.time_field()),
        dimensions,
    })
}

/// A dimension's values for a fact: `#kafka #rust`, or `none`.
fn listed(values: &[String]) -> String {
    if values.is_empty() {
        "none".to_owned()
    } else {
        values.join(" ")
    }
}

/// What a sentiment worker wrote to `reviews.sentiment`: the label fields every dataset's output
/// shares, or, for a record without text, why it has none.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct SentimentOutput {
    #[serde(default)]
    sentiment: Option<Sentiment>,
    #[serde(default)]
    score: f64,
    #[serde(default)]
    classifier: String,
    #[serde(default)]
    processed_at: String,
    #[serde(default)]
    worker: String,
    /// Set instead of a label when the record has no text (a company).
    #[serde(default)]
    skipped: Option<String>,
}

impl Tracer {
    /// Traces the record with this id (a review's `review_id`, a tweet's `tweet_id`, a
    /// company's `company_id`): 404-style [`TraceError::NotFound`] when it is not among the
    /// newest [`SCAN_LIMIT`] records of `reviews`.
    pub async fn trace(
        &self,
        pipeline: &Pipeline<'_>,
        review_id: &str,
    ) -> Result<Trace, TraceError> {
        check_review_id(review_id)?;
        let located = self.locate(pipeline.inspector, review_id).await?;
        Ok(trace_located(pipeline, located).await)
    }

    /// Waits (up to [`NEXT_WAIT`]) for the next record produced to `reviews`, and traces it.
    pub async fn trace_next(&self, pipeline: &Pipeline<'_>) -> Result<Trace, TraceError> {
        let next = pipeline
            .inspector
            .next_record(TOPIC_REVIEWS, NEXT_WAIT)
            .await?
            .ok_or(TraceError::NoNextReview(NEXT_WAIT.as_secs()))?;
        let traced = traced_record(&next.value).map_err(|e| {
            TraceError::NextNotAReview(format!(
                "offset {} of partition {}: {e}",
                next.offset, next.partition
            ))
        })?;
        self.remember(&traced.id, next.partition, next.offset);
        let located = Located {
            record: next,
            traced,
            scanned: 1,
            scan_ms: 0,
        };
        Ok(trace_located(pipeline, located).await)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, i32, i64)>> {
        self.located.lock_or_recover()
    }

    fn remember(&self, review_id: &str, partition: i32, offset: i64) {
        let mut located = self.lock();
        located.retain(|(id, _, _)| id != review_id);
        if located.len() >= LOCATED_KEPT {
            located.pop_front();
        }
        located.push_back((review_id.to_owned(), partition, offset));
    }

    fn remembered(&self, review_id: &str) -> Option<(i32, i64)> {
        self.lock()
            .iter()
            .find(|(id, _, _)| id == review_id)
            .map(|(_, partition, offset)| (*partition, *offset))
    }

    /// Finds the record in `reviews`: where a recent trace found it, or by a bounded scan of the
    /// newest records for the id in any dataset's id field (the newest copy wins: a replayed
    /// seed writes the same ids again).
    async fn locate(&self, inspector: &Inspector, review_id: &str) -> Result<Located, TraceError> {
        if let Some((partition, offset)) = self.remembered(review_id) {
            let again = inspector
                .messages(TOPIC_REVIEWS, partition, offset, 1)
                .await?;
            if let Some((record, traced)) = again
                .into_iter()
                .find_map(|m| traced_with_id(&m, review_id).map(|r| (m, r)))
            {
                return Ok(Located {
                    record,
                    traced,
                    scanned: 1,
                    scan_ms: 0,
                });
            }
        }
        let outcome = scan_for(
            inspector,
            TOPIC_REVIEWS,
            path::id_needles(review_id),
            ScanFrom::Newest,
            None,
            MAX_MATCHES,
        )
        .await?;
        tracing::debug!(
            review_id,
            scanned = outcome.scanned,
            took_ms = outcome.took_ms,
            "scanned reviews"
        );
        let found = outcome
            .matches
            .iter()
            .filter_map(|m| traced_with_id(m, review_id).map(|r| (m, r)))
            .max_by_key(|(m, _)| m.timestamp);
        let Some((record, traced)) = found else {
            return Err(TraceError::NotFound {
                review_id: review_id.to_owned(),
                searched: searched(&outcome),
            });
        };
        self.remember(review_id, record.partition, record.offset);
        Ok(Located {
            record: record.clone(),
            traced,
            scanned: outcome.scanned,
            scan_ms: outcome.took_ms,
        })
    }
}

/// An id must be a short printable string.
fn check_review_id(review_id: &str) -> Result<(), TraceError> {
    if review_id.trim().is_empty() {
        return Err(TraceError::BadReviewId("must not be empty".into()));
    }
    if review_id.len() > MAX_REVIEW_ID {
        return Err(TraceError::BadReviewId(format!(
            "at most {MAX_REVIEW_ID} bytes, got {}",
            review_id.len()
        )));
    }
    if review_id.chars().any(char::is_control) {
        return Err(TraceError::BadReviewId(
            "must not contain control characters".into(),
        ));
    }
    Ok(())
}

/// How much a scan read, in words, for a "not found" message.
fn searched(outcome: &ScanOutcome) -> String {
    if outcome.from_start && outcome.complete {
        format!(
            "read all {} of its records in {} ms",
            outcome.scanned, outcome.took_ms
        )
    } else {
        format!(
            "not among the newest {} records, read in {} ms; the search gives up there (it \
             reads at most {SCAN_LIMIT} records, for at most {} s)",
            outcome.scanned,
            outcome.took_ms,
            SCAN_TIMEOUT.as_secs()
        )
    }
}

/// Scans `topic` for records holding any of `needles` (an id in an id field), within
/// [`SCAN_LIMIT`].
async fn scan_for(
    inspector: &Inspector,
    topic: &str,
    needles: Vec<Vec<u8>>,
    from: ScanFrom,
    partitions: Option<Vec<i32>>,
    max_matches: usize,
) -> Result<ScanOutcome, InspectError> {
    let request = ScanRequest {
        topic: topic.to_owned(),
        partitions,
        from,
        newest: SCAN_LIMIT as i64,
        budget: SCAN_LIMIT,
        max_matches,
    };
    inspector
        .scan(request, move |payload| {
            needles.iter().any(|needle| path::contains(payload, needle))
        })
        .await
}

/// The record in a `reviews` message, if it is the one with this id.
fn traced_with_id(record: &Message, id: &str) -> Option<Traced> {
    traced_record(&record.value).ok().filter(|t| t.id == id)
}

/// The sentiment output in a `reviews.sentiment` message, if it is that of this record: the
/// same dataset and id, labelled or skipped.
fn output_with_id(record: &Message, traced: &Traced) -> Option<SentimentOutput> {
    let same = traced_record(&record.value)
        .ok()
        .is_some_and(|t| t.dataset == traced.dataset && t.id == traced.id);
    serde_json::from_str::<SentimentOutput>(&record.value)
        .ok()
        .filter(|out| same && (out.sentiment.is_some() || out.skipped.is_some()))
}

async fn trace_located(pipeline: &Pipeline<'_>, located: Located) -> Trace {
    let review_id = located.traced.id.clone();
    let dataset = located.traced.dataset;
    let mut scanned = located.scanned;
    let mut scan_ms = located.scan_ms;
    let partitions = pipeline
        .inspector
        .partition_count(TOPIC_REVIEWS)
        .await
        .unwrap_or(0);
    // A replayed dataset writes the same ids again: each stage's memory is read for the batch
    // of this copy, the one produced at this time.
    let produced_at = located.record.timestamp;
    let socket = socket_hop(pipeline, &located.traced, produced_at);
    let reviews = reviews_hop(&located, partitions);
    let (sentiment, sentiment_record) = sentiment_hop(pipeline, &located, partitions).await;
    if let Some(outcome) = &sentiment_record.outcome {
        scanned += outcome.scanned;
        scan_ms += outcome.took_ms;
    }
    let window = window_hop(
        pipeline,
        &located.traced,
        produced_at,
        sentiment_record.found.as_ref(),
    )
    .await;
    let search = search_hop(
        pipeline,
        &located.traced,
        produced_at,
        sentiment_record.found.as_ref(),
    )
    .await;
    let mut hops = vec![socket, reviews, sentiment, window, search];
    path::fill_latencies(&mut hops);
    Trace {
        complete: hops.iter().all(|h| h.state != TraceHopState::NotYet),
        review_id,
        dataset,
        hops,
        scanned,
        scan_ms,
        traced_at: chrono::Utc::now().timestamp_millis(),
    }
}

fn hop(kind: TraceHopKind, state: TraceHopState, detail: impl Into<String>) -> TraceHop {
    TraceHop {
        hop: kind,
        state,
        topic: None,
        partition: None,
        offset: None,
        at_ms: None,
        latency_ms: None,
        detail: detail.into(),
        facts: Vec::new(),
        windows: Vec::new(),
    }
}

fn fact(name: &str, value: impl ToString) -> TraceFact {
    TraceFact {
        name: name.to_owned(),
        value: value.to_string(),
    }
}

fn is_active(stage: &StageStatus) -> bool {
    matches!(stage.state, StageState::Running | StageState::Paused)
}

/// Hop 1: which chunk the streamer sent it in, from the streamer's memory of its chunks.
fn socket_hop(pipeline: &Pipeline<'_>, traced: &Traced, produced_at: Option<i64>) -> TraceHop {
    let kind = TraceHopKind::Socket;
    if let Some(mark) = pipeline.chunks.find_until(&traced.id, produced_at) {
        let mut found = hop(
            kind,
            TraceHopState::Found,
            format!(
                "The streamer wrote it to its TCP socket in chunk {} (one write of several JSON \
                 lines); the producer reads the socket line by line.",
                mark.number
            ),
        );
        found.at_ms = Some(mark.at_ms);
        found.facts.push(fact("chunk", mark.number));
        return found;
    }
    let fixed_socket = pipeline
        .producer
        .config
        .as_ref()
        .and_then(|c| c["socket"].as_str().map(str::to_owned));
    let detail = match fixed_socket {
        Some(addr) => format!(
            "The producer reads from {addr}, not from Pipebook's streamer: its chunks are not known."
        ),
        None => format!(
            "Sent before what the streamer remembers: it keeps the chunks of its last {KEPT_IDS} \
             records since it last started."
        ),
    };
    hop(kind, TraceHopState::Unknown, detail)
}

/// Hop 2: its record in `reviews`, and why it is in that partition.
fn reviews_hop(located: &Located, partitions: i32) -> TraceHop {
    let record = &located.record;
    let dataset = located.traced.dataset;
    let key_field = dataset.key_field();
    let key = record.key.clone().unwrap_or_default();
    let predicted = path::partition_for_key(key.as_bytes(), partitions);
    let hash = path::key_hash(key.as_bytes());
    let why = match predicted {
        Some(p) if p == record.partition => format!(
            "Keyed by {key_field} {key:?}: the producer's partitioner hashes the key (CRC-32 \
             {hash:#010x}) modulo {partitions} partitions = {p}, so every {record_noun} of this \
             {owner} lands in partition {p}, in order.",
            record_noun = dataset.record_noun(),
            owner = dataset.key_owner(),
        ),
        Some(p) => format!(
            "Keyed by {key_field} {key:?}, whose hash picks partition {p} of {partitions}; this \
             record is in partition {} (written by a producer with another partitioner, or \
             before the topic had {partitions} partitions).",
            record.partition
        ),
        None => format!("Keyed by {key_field} {key:?}."),
    };
    let mut found = hop(
        TraceHopKind::Reviews,
        TraceHopState::Found,
        format!(
            "{why} It got offset {} there: its position in that partition's log. The time is \
             the record's timestamp (set by the producer when it sent it).",
            record.offset
        ),
    );
    found.topic = Some(TOPIC_REVIEWS.to_owned());
    found.partition = Some(record.partition);
    found.offset = Some(record.offset);
    found.at_ms = record.timestamp;
    found.facts = vec![
        fact("dataset", dataset.as_str()),
        fact(&format!("key ({key_field})"), &key),
        fact("key hash (CRC-32)", format!("{hash:#010x}")),
        fact("partitions", partitions),
        fact(
            &format!("event time ({})", dataset.time_field()),
            &located.traced.event_time,
        ),
    ];
    found
        .facts
        .extend(located.traced.dimensions.iter().cloned());
    found
}

/// The output of a record in `reviews.sentiment`, and the scan that looked for it.
#[derive(Default)]
struct SentimentRecord {
    found: Option<(Message, SentimentOutput)>,
    outcome: Option<ScanOutcome>,
}

/// Where to look for the sentiment output: it keeps the review's key, so when the key's hash
/// explains the review's partition in `reviews`, the output is in the same-numbered partition
/// of `reviews.sentiment` (same partitioner, same partition count), and its first copy there is
/// the one. Otherwise every partition, keeping the copies to pick the earliest.
fn sentiment_partitions(located: &Located, partitions: i32) -> (Option<Vec<i32>>, usize) {
    let key = located.record.key.as_deref().unwrap_or_default();
    match path::partition_for_key(key.as_bytes(), partitions) {
        Some(p) if p == located.record.partition => (Some(vec![p]), 1),
        _ => (None, MAX_MATCHES),
    }
}

/// Hop 3: the sentiment worker's output record, read from `reviews.sentiment` from the time the
/// record was produced on (the output can only be newer). A record without text (a company) is
/// forwarded there unlabelled: the hop is `skipped`, with where it went and why.
async fn sentiment_hop(
    pipeline: &Pipeline<'_>,
    located: &Located,
    partitions: i32,
) -> (TraceHop, SentimentRecord) {
    let kind = TraceHopKind::Sentiment;
    let traced = &located.traced;
    let dataset = traced.dataset;
    let noun = dataset.record_noun();
    let from = located
        .record
        .timestamp
        .map_or(ScanFrom::Newest, ScanFrom::Time);
    let (only, max_matches) = sentiment_partitions(located, partitions);
    let scanned = scan_for(
        pipeline.inspector,
        TOPIC_SENTIMENT,
        vec![path::id_needle(dataset.id_field(), &traced.id)],
        from,
        only,
        max_matches,
    )
    .await;
    let outcome = match scanned {
        Ok(outcome) => outcome,
        Err(error) => {
            // A read that failed (a broker too busy to answer in time) is not an answer:
            // the next look may succeed, so the trace keeps following.
            let detail = format!("Could not read {TOPIC_SENTIMENT} ({error}); looking again.");
            return (
                hop(kind, TraceHopState::NotYet, detail),
                SentimentRecord::default(),
            );
        }
    };
    // The first output after the record was produced: a second copy (at-least-once, or a new
    // group re-reading the topic) came later.
    let found = outcome
        .matches
        .iter()
        .filter_map(|m| output_with_id(m, traced).map(|out| (m.clone(), out)))
        .min_by_key(|(m, _)| m.timestamp);
    let copies = outcome.matches.len();
    let Some((record, output)) = found else {
        let hop = if !outcome.complete {
            hop(
                kind,
                TraceHopState::Unknown,
                format!(
                    "Not among the {} records of {TOPIC_SENTIMENT} read in {} ms; the search \
                     gives up there.",
                    outcome.scanned, outcome.took_ms
                ),
            )
        } else if is_active(&pipeline.sentiment) {
            hop(
                kind,
                TraceHopState::NotYet,
                "Waiting in `reviews` for a sentiment worker to read it: the group's lag.",
            )
        } else {
            let unlabelled = if dataset.text_field().is_some() {
                ""
            } else {
                ", unlabelled: it has no text"
            };
            hop(
                kind,
                TraceHopState::NotRunning,
                format!(
                    "Sentiment stage not running: start it in cell 3 and the {noun} moves \
                     on{unlabelled}."
                ),
            )
        };
        let record = SentimentRecord {
            found: None,
            outcome: Some(outcome),
        };
        return (hop, record);
    };
    let group = pipeline.sentiment_group.clone();
    let dup = if copies > 1 {
        format!(
            " {copies} copies were found (a re-read batch or a second group); this is the first."
        )
    } else {
        String::new()
    };
    let read = format!(
        "{worker}, the member of consumer group {group} that owned partition {p} of `reviews`, \
         read it",
        worker = output.worker,
        p = located.record.partition,
    );
    let mut found = match (&output.sentiment, &output.skipped) {
        (Some(label), _) => hop(
            kind,
            TraceHopState::Found,
            format!(
                "{read}, labelled it {label} (score {score:.3}) and wrote it to \
                 {TOPIC_SENTIMENT} with the same key — so the same partition number. It committed \
                 the offset only after the broker acknowledged this output (at-least-once).{dup}",
                label = label.as_str(),
                score = output.score,
            ),
        ),
        (None, reason) => hop(
            kind,
            TraceHopState::Skipped,
            format!(
                "{read} and found no text to classify ({reason}): a {noun} is not labelled. It \
                 wrote it on to {TOPIC_SENTIMENT} unlabelled, with the same key \
                 and a `skipped` field saying why, so the windows still count it; it committed \
                 the offset only after the broker acknowledged this output.{dup}",
                reason = reason.as_deref().unwrap_or("no label"),
            ),
        ),
    };
    found.topic = Some(TOPIC_SENTIMENT.to_owned());
    found.partition = Some(record.partition);
    found.offset = Some(record.offset);
    found.at_ms = record.timestamp;
    found.facts = vec![fact("worker", &output.worker), fact("group", &group)];
    match (&output.sentiment, &output.skipped) {
        (Some(label), _) => found.facts.extend([
            fact("label", label.as_str()),
            fact("score", format!("{:.3}", output.score)),
            fact("classifier", &output.classifier),
        ]),
        (None, reason) => found
            .facts
            .push(fact("skipped", reason.as_deref().unwrap_or("no label"))),
    }
    found.facts.push(fact("processed at", &output.processed_at));
    let record = SentimentRecord {
        found: Some((record, output)),
        outcome: Some(outcome),
    };
    (found, record)
}

/// Hop 4: the windows of the running aggregate stage the review falls into, and whether a
/// trigger counted it or found it late.
async fn window_hop(
    pipeline: &Pipeline<'_>,
    traced: &Traced,
    produced_at: Option<i64>,
    sentiment: Option<&(Message, SentimentOutput)>,
) -> TraceHop {
    let noun = traced.dataset.record_noun();
    let kind = TraceHopKind::Window;
    let stage = &pipeline.aggregate;
    let config: Option<AggregateConfig> = stage
        .config
        .clone()
        .and_then(|c| serde_json::from_value(c).ok());
    let (Some(config), true) = (config, is_active(stage)) else {
        return hop(
            kind,
            TraceHopState::NotRunning,
            format!(
                "Aggregate stage not running: start it in cell 4 to see which windows this {noun} \
                 falls into."
            ),
        );
    };
    let Ok(spec) = crate::aggregate::validate(&config) else {
        return hop(
            kind,
            TraceHopState::Unknown,
            "The aggregate stage's config is not valid.",
        );
    };
    let metrics = pipeline.aggregate_metrics;
    // The copy the sentiment hop found, by its place in reviews.sentiment; by id and time
    // while that record is not found yet.
    let place = sentiment.map(|(record, _)| (record.partition, record.offset));
    let find = |batches: &RecentBatches| match place {
        Some((partition, offset)) => batches.find_at(&traced.id, partition, offset),
        None => batches.find_from(&traced.id, produced_at),
    };
    let read = find(&metrics.triggers_read);
    let late = find(&metrics.late_read).is_some();
    let event_time = NaiveDateTime::parse_from_str(&traced.event_time, DATE_FORMAT)
        .ok()
        .map(|t| t.and_utc().timestamp_millis());
    // Processing time is the moment the trigger read it; event time is the record's own.
    let time = match config.time {
        TimeDomain::Event => event_time,
        TimeDomain::Processing => read.map(|mark| mark.at_ms),
    };
    let mut result = match (read, sentiment) {
        (Some(mark), _) => {
            let what = if late {
                format!(
                    "arrived behind its partition's watermark: late, not counted ({})",
                    match config.late_policy {
                        app::api::LatePolicy::Drop => "dropped".to_owned(),
                        app::api::LatePolicy::Topic => format!("kept in {}", app::api::TOPIC_LATE),
                    }
                )
            } else {
                format!(
                    "counted in the windows below, {}",
                    counted_by(traced.dataset)
                )
            };
            let mut found = hop(
                kind,
                TraceHopState::Found,
                format!(
                    "Read by trigger {} of the aggregate stage: {what}.",
                    mark.number
                ),
            );
            found.at_ms = Some(mark.at_ms);
            found.facts.push(fact("trigger", mark.number));
            found
                .facts
                .push(fact("late", if late { "yes" } else { "no" }));
            found
        }
        (None, None) => hop(
            kind,
            TraceHopState::NotYet,
            "Not in reviews.sentiment yet, so not in a window yet.",
        ),
        (None, Some((record, _))) => {
            let committed = pipeline
                .inspector
                .committed(&config.group, TOPIC_SENTIMENT, record.partition)
                .await
                .ok()
                .flatten();
            if committed.is_some_and(|c| c > record.offset) {
                hop(
                    kind,
                    TraceHopState::Unknown,
                    format!(
                        "Read by the aggregate stage (group {} is past offset {}) before it last \
                         started: which trigger, and whether it was late, is not remembered.",
                        config.group, record.offset
                    ),
                )
            } else {
                hop(
                    kind,
                    TraceHopState::NotYet,
                    "Waiting for the next trigger of the aggregate stage to read it.",
                )
            }
        }
    };
    result.facts.push(fact(
        "time",
        match config.time {
            TimeDomain::Event => {
                format!("event time (the {noun}'s {})", traced.dataset.time_field())
            }
            TimeDomain::Processing => "processing time (when the trigger read it)".to_owned(),
        },
    ));
    if let Some(time) = time {
        result.windows = traced_windows(pipeline, &spec, time, &traced.key);
    }
    result
}

/// What a window counts a dataset's record by, as the aggregate stage does.
fn counted_by(dataset: DatasetKind) -> &'static str {
    match dataset {
        DatasetKind::Yelp => "by its sentiment label",
        DatasetKind::Tweets => "by its sentiment label and each of its hashtags",
        DatasetKind::Companies => "without a label (it has none), by its country and industry",
    }
}

/// The windows holding `time`, with what the aggregate stage shows of each now.
fn traced_windows(
    pipeline: &Pipeline<'_>,
    spec: &crate::aggregate::windows::Spec,
    time: i64,
    key: &str,
) -> Vec<TraceWindow> {
    let view = pipeline.aggregate_metrics.view();
    let shown = |kind: WindowKind, start: i64, end: i64| {
        view.windows
            .iter()
            .find(|w| w.kind == kind && w.start == start && w.end == end)
    };
    let mut windows: Vec<TraceWindow> = path::windows_containing(spec, time)
        .into_iter()
        .map(|(kind, start, end)| {
            let row = shown(kind, start, end);
            TraceWindow {
                kind,
                start,
                end,
                count: row.map(|w| w.total()),
                closed: row.is_some_and(|w| w.closed),
            }
        })
        .collect();
    // Sessions depend on the key's other records (a business's reviews, a user's tweets): the
    // one the stage shows holding it.
    if let Some(session) = view.windows.iter().find(|w| {
        w.kind == WindowKind::Session
            && w.key.as_deref() == Some(key)
            && w.start <= time
            && time < w.end
    }) {
        windows.push(TraceWindow {
            kind: WindowKind::Session,
            start: session.start,
            end: session.end,
            count: Some(session.total()),
            closed: session.closed,
        });
    }
    windows
}

/// Hop 5: the record's document in the search engine (document id = its id). A record without
/// text (a company) is never indexed: the hop is `skipped`, saying why.
async fn search_hop(
    pipeline: &Pipeline<'_>,
    traced: &Traced,
    produced_at: Option<i64>,
    sentiment: Option<&(Message, SentimentOutput)>,
) -> TraceHop {
    let kind = TraceHopKind::Search;
    let dataset = traced.dataset;
    let noun = dataset.record_noun();
    let id_field = dataset.id_field();
    if dataset.text_field().is_none() {
        return hop(
            kind,
            TraceHopState::Skipped,
            format!(
                "The indexer leaves {records} out: they have no text to search and no label to \
                 filter by, so it counts them as skipped and commits past them. This {noun}'s \
                 path ends at the windows (the Parquet sink skips it too).",
                records = dataset.records_noun(),
            ),
        );
    }
    let review_id = traced.id.as_str();
    let doc = match pipeline.search.get(review_id.to_owned()).await {
        Ok(doc) => doc,
        Err(error) => return search_error(kind, &error),
    };
    let Some(doc) = doc else {
        return if is_active(&pipeline.indexer) {
            hop(
                kind,
                TraceHopState::NotYet,
                "Not indexed yet: waiting for the indexer's next bulk request.",
            )
        } else {
            hop(
                kind,
                TraceHopState::NotRunning,
                format!("Indexer not running: start it in cell 5 to index this {noun}."),
            )
        };
    };
    // The bulk of the copy the sentiment hop found, by its place in reviews.sentiment.
    let bulk = match sentiment {
        Some((record, _)) => pipeline
            .bulks
            .find_at(review_id, record.partition, record.offset),
        None => pipeline.bulks.find_from(review_id, produced_at),
    };
    if bulk.is_none() && pipeline.bulks.find(review_id).is_some() && is_active(&pipeline.indexer) {
        // The document there is an earlier copy's (same id, same document): this copy's bulk
        // is still to come.
        return hop(
            kind,
            TraceHopState::NotYet,
            format!(
                "An earlier copy of this {id_field} is indexed; this copy waits for the indexer's \
                 next bulk request, which will overwrite it."
            ),
        );
    }
    let when = match bulk {
        Some(mark) => format!("Indexed in bulk {} of the indexer.", mark.number),
        None => "Indexed before the indexer last started (when is not remembered).".to_owned(),
    };
    let mut found = hop(
        kind,
        TraceHopState::Found,
        format!(
            "{when} Its document id is its {id_field}, so indexing it again (a re-read batch, \
             a second pass) overwrites it instead of adding a copy: the sink is idempotent."
        ),
    );
    found.at_ms = bulk.map(|mark| mark.at_ms);
    found.facts.push(fact("document id", review_id));
    if let Some(mark) = bulk {
        found.facts.push(fact("bulk", mark.number));
    }
    // The document's own fields: a review's stars and business, a tweet's user and hashtags
    // (a field one dataset lacks is absent from its documents, so it is simply not listed).
    for field in [
        "sentiment",
        "score",
        "stars",
        "business_id",
        "user_id",
        "hashtags",
        "date",
        "processed_at",
    ] {
        if field == "user_id" && dataset == DatasetKind::Yelp {
            continue;
        }
        if let Some(value) = doc.get(field) {
            let text = match value {
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Array(_) => listed(&dimension_values(Some(value))),
                other => other.to_string(),
            };
            found.facts.push(fact(field, text));
        }
    }
    found
}

/// The search engine did not answer (down, or the outage fault): the indexer retries, so the
/// document may still come; the trace keeps looking.
fn search_error(kind: TraceHopKind, error: &SearchError) -> TraceHop {
    hop(
        kind,
        TraceHopState::NotYet,
        format!("Could not ask the search engine ({error}); looking again."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_ids_are_checked_and_the_error_names_the_field() {
        assert!(check_review_id("abc-123_XYZ").is_ok());
        for bad in ["", "  ", "a\nb", &"x".repeat(MAX_REVIEW_ID + 1)] {
            let err = check_review_id(bad).expect_err(bad);
            assert!(err.to_string().starts_with("review_id: "), "{err}");
        }
    }

    #[test]
    fn not_found_says_how_far_the_search_went() {
        let all = ScanOutcome {
            scanned: 500,
            complete: true,
            from_start: true,
            took_ms: 12,
            ..ScanOutcome::default()
        };
        assert!(searched(&all).contains("all 500"), "{}", searched(&all));
        let bounded = ScanOutcome {
            from_start: false,
            ..all
        };
        assert!(searched(&bounded).contains("gives up"));
    }

    #[test]
    fn a_record_is_read_as_its_dataset_names_it() {
        let review = r#"{"review_id":"r1","user_id":"u","business_id":"b_7","stars":4,"text":"ok","date":"2024-01-01 09:00:00"}"#;
        let traced = traced_record(review).expect("a review");
        assert_eq!(traced.dataset, DatasetKind::Yelp);
        assert_eq!((traced.id.as_str(), traced.key.as_str()), ("r1", "b_7"));
        assert_eq!(traced.event_time, "2024-01-01 09:00:00");
        assert_eq!(traced.dimensions, vec![fact("stars", "4")]);

        let tweet = r##"{"dataset":"tweets","tweet_id":"t1","user":"ana","text":"love #rust","hashtags":["#rust","#kafka"],"created_at":"2024-01-01 09:00:10"}"##;
        let traced = traced_record(tweet).expect("a tweet");
        assert_eq!(traced.dataset, DatasetKind::Tweets);
        assert_eq!((traced.id.as_str(), traced.key.as_str()), ("t1", "ana"));
        assert_eq!(traced.event_time, "2024-01-01 09:00:10");
        assert_eq!(traced.dimensions, vec![fact("hashtags", "#rust #kafka")]);

        let company = r#"{"dataset":"companies","company_id":"c1","name":"Blue Labs","country":"France","industry":"Retail","employees":12,"founded":1999,"created_at":"2024-01-01 09:00:20"}"#;
        let traced = traced_record(company).expect("a company");
        assert_eq!(traced.dataset, DatasetKind::Companies);
        assert_eq!((traced.id.as_str(), traced.key.as_str()), ("c1", "c1"));
        assert_eq!(
            traced.dimensions,
            vec![fact("country", "France"), fact("industry", "Retail")]
        );

        // A tweet without its user, or a line that is nothing: the reason, not a guess.
        let broken =
            r#"{"dataset":"tweets","tweet_id":"t2","text":"x","created_at":"2024-01-01 09:00:00"}"#;
        assert!(traced_record(broken).expect_err("no user").contains("user"));
        assert!(traced_record("{}").is_err());
    }

    #[test]
    fn a_sentiment_output_is_labelled_or_skipped_and_matched_by_dataset_and_id() {
        let message = |value: &str| Message {
            partition: 0,
            offset: 0,
            key: None,
            value: value.to_owned(),
            timestamp: None,
            headers: Default::default(),
        };
        let tweet = traced_record(
            r#"{"dataset":"tweets","tweet_id":"t1","user":"ana","text":"x","hashtags":[],"created_at":"2024-01-01 09:00:00"}"#,
        )
        .expect("tweet");
        let labelled = message(
            r#"{"dataset":"tweets","tweet_id":"t1","user":"ana","text":"x","hashtags":[],"created_at":"2024-01-01 09:00:00","sentiment":"POSITIVE","score":0.5,"classifier":"lexicon","model":null,"processed_at":"2024-01-01T09:00:01.000Z","worker":"worker-1"}"#,
        );
        let out = output_with_id(&labelled, &tweet).expect("its output");
        assert_eq!(out.sentiment, Some(Sentiment::Positive));
        assert_eq!(out.worker, "worker-1");
        // The same id in another dataset is another record.
        let review = message(
            r#"{"review_id":"t1","user_id":"u","business_id":"b","stars":5,"text":"x","date":"2024-01-01 09:00:00","sentiment":"POSITIVE","score":0.5,"classifier":"lexicon","model":null,"processed_at":"p","worker":"w"}"#,
        );
        assert_eq!(output_with_id(&review, &tweet), None);

        let company = traced_record(
            r#"{"dataset":"companies","company_id":"c1","name":"n","country":"France","industry":"Retail","created_at":"2024-01-01 09:00:00"}"#,
        )
        .expect("company");
        let skipped = message(
            r#"{"dataset":"companies","company_id":"c1","name":"n","country":"France","industry":"Retail","created_at":"2024-01-01 09:00:00","skipped":"companies has no text field: nothing to classify","processed_at":"p","worker":"worker-2"}"#,
        );
        let out = output_with_id(&skipped, &company).expect("forwarded unlabelled");
        assert_eq!(out.sentiment, None);
        assert_eq!(
            out.skipped.as_deref(),
            Some("companies has no text field: nothing to classify")
        );
    }

    #[test]
    fn the_tracer_remembers_a_bounded_number_of_locations() {
        let tracer = Tracer::default();
        for i in 0..(LOCATED_KEPT + 5) {
            tracer.remember(&format!("r{i}"), 1, i as i64);
        }
        assert_eq!(tracer.remembered("r0"), None);
        assert_eq!(tracer.remembered("r260"), Some((1, 260)));
        tracer.remember("r260", 2, 7);
        assert_eq!(tracer.remembered("r260"), Some((2, 7)));
        assert_eq!(tracer.lock().len(), LOCATED_KEPT);
    }
}
