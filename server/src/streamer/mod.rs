//! Stage 1 · the socket streamer: a TCP server on 127.0.0.1 that writes review JSON lines in
//! chunks at a chosen rate, from a Yelp-format file in the datasets folder ([`datasets`]) or the
//! built-in generator. It plays the part of seed 000's socket source; the producer stage is its
//! client.

pub mod datasets;
pub mod generator;
pub mod seeds;

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use app::api::{DatasetKind, EventClock, StreamerConfig};
use chrono::NaiveDateTime;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::fs::File;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::error::ConfigError;
use crate::records::DATE_FORMAT;
use crate::stage::StageContext;
use crate::sync::LockExt;
use crate::trace::recent::{BatchIds, BatchMark, RecentBatches};
use generator::ReviewGenerator;

pub const MAX_RATE: u32 = 1_000_000;
pub const MAX_CHUNK: u32 = 10_000;
/// Longest delay a late review can be given: one day.
pub const MAX_LATE_BY_SECS: u32 = 86_400;

#[derive(Debug, thiserror::Error)]
pub enum StreamerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// Checks a config before anything starts; errors name the offending field.
pub fn validate(config: &StreamerConfig) -> Result<(), ConfigError> {
    let bad = |field, message: String| Err(ConfigError::new(field, message));
    if config.rate > MAX_RATE {
        return bad(
            "rate",
            format!("must be 0..={MAX_RATE} reviews/s, got {}", config.rate),
        );
    }
    if !(1..=MAX_CHUNK).contains(&config.chunk_size) {
        return bad(
            "chunk_size",
            format!("must be 1..={MAX_CHUNK}, got {}", config.chunk_size),
        );
    }
    if config.listen.parse::<SocketAddr>().is_err() {
        return bad(
            "listen",
            format!("not a socket address: {:?}", config.listen),
        );
    }
    if !(0.0..=1.0).contains(&config.late_share) {
        return bad(
            "late_share",
            format!(
                "must be 0..=1 (a share of reviews), got {}",
                config.late_share
            ),
        );
    }
    if config.late_by_secs > MAX_LATE_BY_SECS {
        return bad(
            "late_by_secs",
            format!(
                "must be 0..={MAX_LATE_BY_SECS}, got {}",
                config.late_by_secs
            ),
        );
    }
    // Only the form of the name here; the datasets folder resolves it (Datasets::open_source).
    if let Err(datasets::DatasetError::Source(message)) =
        datasets::check_source_name(&config.source)
    {
        return bad("source", message);
    }
    Ok(())
}

/// What the streamer reads: the generator, or a dataset already opened (and checked to be inside
/// the datasets folder) before the stage starts.
pub enum SourceInput {
    Generator,
    File(std::fs::File),
}

crate::counters! {
    /// Counters of the streamer, shown in its cell.
    pub struct StreamerMetrics {
        counters { sent, chunks, bytes, clients }
        /// Where the streamer listens, once bound.
        pub listening: Mutex<Option<SocketAddr>>,
        /// Which chunk each recent review was sent in, and when (for tracing a record).
        pub chunks_sent: RecentBatches,
        /// The dataset of the current (or last) run: what the producer reads and sentiment
        /// expects. Kept when the streamer stops, so stages started later still know.
        pub dataset: Mutex<DatasetKind>,
    }
}

impl StreamerMetrics {
    pub fn reset(&self) {
        self.reset_counters();
        self.set_listening(None);
        self.chunks_sent.clear();
    }

    pub fn listening(&self) -> Option<SocketAddr> {
        *self.listening.lock_or_recover()
    }

    fn set_listening(&self, addr: Option<SocketAddr>) {
        *self.listening.lock_or_recover() = addr;
    }

    pub fn dataset(&self) -> DatasetKind {
        *self.dataset.lock_or_recover()
    }

    pub fn set_dataset(&self, dataset: DatasetKind) {
        *self.dataset.lock_or_recover() = dataset;
    }
}

/// A generator of another dataset's records, as JSON objects.
type Records = Box<dyn Iterator<Item = serde_json::Map<String, serde_json::Value>> + Send>;

/// Where review lines come from: one pass over a file, or a generator up to a limit.
enum Source {
    Generator {
        generator: Box<ReviewGenerator>,
        remaining: Option<u64>,
    },
    /// Tweets or companies: stamped on their own time field, identified by their id field.
    Records {
        records: Records,
        remaining: Option<u64>,
        time_field: String,
        id_field: String,
    },
    File {
        lines: Lines<BufReader<File>>,
        /// The dataset's id field: what the chunk log remembers of each line, for the trace.
        id_field: &'static str,
    },
}

/// A serialisable record as a JSON object (the generators' records always are).
fn as_object<T: serde::Serialize>(record: T) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(record) {
        Ok(serde_json::Value::Object(fields)) => fields,
        _ => serde_json::Map::new(),
    }
}

/// Sets each review's event time: now (live clock) or its own, moved back for late ones.
struct EventTimes {
    clock: EventClock,
    /// The dataset's event-time field (`date` for Yelp reviews).
    time_field: String,
    late_share: f64,
    late_by: chrono::Duration,
    rng: ChaCha8Rng,
}

impl EventTimes {
    fn new(config: &StreamerConfig) -> Self {
        Self {
            clock: config.clock,
            time_field: config.dataset.description().time_field,
            late_share: config.late_share,
            late_by: chrono::Duration::seconds(i64::from(config.late_by_secs)),
            // Its own stream of randomness, so the late knob does not change the reviews.
            rng: ChaCha8Rng::seed_from_u64(config.seed ^ 0x1a7e),
        }
    }

    /// The event time to write, given the source's own (`YYYY-MM-DD HH:MM:SS`). `None` when
    /// the source's date is not a date: the record is sent as it is, so the producer refuses it
    /// to the dead-letter topic with the reason instead of the clock hiding the problem.
    fn stamp(&mut self, original: &str) -> Option<String> {
        let own = NaiveDateTime::parse_from_str(original, DATE_FORMAT).ok()?;
        let base = match self.clock {
            EventClock::Live => chrono::Utc::now().naive_utc(),
            EventClock::Replay => own,
        };
        let late = self.late_share > 0.0 && self.rng.random_bool(self.late_share);
        let time = if late { base - self.late_by } else { base };
        Some(time.format(DATE_FORMAT).to_string())
    }

    /// Whether lines are sent as they are.
    fn untouched(&self) -> bool {
        self.clock == EventClock::Replay && self.late_share == 0.0
    }

    /// A file line with its `date` re-stamped; lines that are not review objects pass as they
    /// are (the producer sends those to the dead-letter topic).
    fn restamp_line(&mut self, line: String) -> String {
        if self.untouched() {
            return line;
        }
        let Ok(serde_json::Value::Object(mut review)) = serde_json::from_str(&line) else {
            return line;
        };
        let original = review
            .get(&self.time_field)
            .and_then(|d| d.as_str())
            .unwrap_or_default()
            .to_owned();
        match self.stamp(&original) {
            Some(date) => {
                review.insert(self.time_field.clone(), serde_json::Value::String(date));
                serde_json::Value::Object(review).to_string()
            }
            None => line,
        }
    }
}

/// One line to send, and the review id in it when there is one (for the chunk log).
struct SourceLine {
    text: String,
    review_id: Option<String>,
}

/// The id of a file line (the dataset's `id_field`), for the chunk log. A review's is read
/// without parsing the rest of it (Yelp files are the large ones); another dataset's line is
/// parsed as an object.
fn id_of(line: &str, id_field: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(borrow)]
        review_id: std::borrow::Cow<'a, str>,
    }
    if id_field == DatasetKind::Yelp.id_field() {
        return serde_json::from_str::<Id<'_>>(line)
            .ok()
            .map(|id| id.review_id.into_owned());
    }
    match serde_json::from_str::<serde_json::Value>(line).ok()? {
        serde_json::Value::Object(mut fields) => match fields.remove(id_field)? {
            serde_json::Value::String(id) => Some(id),
            _ => None,
        },
        _ => None,
    }
}

impl Source {
    fn open(config: &StreamerConfig, input: SourceInput) -> Self {
        let records = |records: Records| {
            let description = config.dataset.description();
            Source::Records {
                records,
                remaining: config.limit,
                time_field: description.time_field,
                id_field: description.id_field,
            }
        };
        match (input, config.dataset) {
            (SourceInput::Generator, DatasetKind::Yelp) => Source::Generator {
                generator: Box::new(ReviewGenerator::new(config.seed)),
                remaining: config.limit,
            },
            (SourceInput::Generator, DatasetKind::Tweets) => records(Box::new(
                seeds::TweetGenerator::new(config.seed).map(as_object),
            )),
            (SourceInput::Generator, DatasetKind::Companies) => records(Box::new(
                seeds::CompanyGenerator::new(config.seed).map(as_object),
            )),
            (SourceInput::File(file), dataset) => Source::File {
                lines: BufReader::new(File::from_std(file)).lines(),
                id_field: dataset.id_field(),
            },
        }
    }

    /// The next line to send, without its newline; `None` at the end.
    async fn next_line(
        &mut self,
        times: &mut EventTimes,
    ) -> Result<Option<SourceLine>, std::io::Error> {
        match self {
            Source::Generator {
                generator,
                remaining,
            } => {
                if *remaining == Some(0) {
                    return Ok(None);
                }
                if let Some(left) = remaining {
                    *left -= 1;
                }
                let Some(mut review) = generator.next() else {
                    return Ok(None);
                };
                if let Some(date) = times.stamp(&review.date) {
                    review.date = date;
                }
                Ok(serde_json::to_string(&review).ok().map(|text| SourceLine {
                    text,
                    review_id: Some(review.review_id),
                }))
            }
            Source::Records {
                records,
                remaining,
                time_field,
                id_field,
            } => {
                if *remaining == Some(0) {
                    return Ok(None);
                }
                if let Some(left) = remaining {
                    *left -= 1;
                }
                let Some(mut record) = records.next() else {
                    return Ok(None);
                };
                let own = record.get(time_field.as_str()).and_then(|t| t.as_str());
                if let Some(time) = own.and_then(|t| times.stamp(t)) {
                    record.insert(time_field.clone(), serde_json::Value::String(time));
                }
                let id = record
                    .get(id_field.as_str())
                    .and_then(|id| id.as_str())
                    .map(str::to_owned);
                Ok(Some(SourceLine {
                    text: serde_json::Value::Object(record).to_string(),
                    review_id: id,
                }))
            }
            Source::File { lines, id_field } => loop {
                match lines.next_line().await? {
                    Some(line) if line.trim().is_empty() => continue,
                    other => {
                        return Ok(other.map(|line| {
                            let text = times.restamp_line(line);
                            let review_id = id_of(&text, id_field);
                            SourceLine { text, review_id }
                        }));
                    }
                }
            },
        }
    }
}

/// The run loop: listen, serve one client at a time from one shared cursor over the source (a
/// client that reconnects continues where the last one stopped), until the source ends or the
/// stage is stopped.
pub async fn run(
    config: StreamerConfig,
    input: SourceInput,
    metrics: std::sync::Arc<StreamerMetrics>,
    ctx: StageContext,
) -> Result<(), StreamerError> {
    metrics.reset();
    let listener =
        TcpListener::bind(&config.listen)
            .await
            .map_err(|source| StreamerError::Bind {
                addr: config.listen.clone(),
                source,
            })?;
    let addr = listener
        .local_addr()
        .map_err(|source| StreamerError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
    metrics.set_listening(Some(addr));
    let mut source = Source::open(&config, input);
    let mut times = EventTimes::new(&config);
    ctx.set_detail(format!("listening on {addr}, waiting for a client"));
    loop {
        let accepted = tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                ctx.report_error(format!("accept failed: {error}"));
                continue;
            }
        };
        metrics.clients.fetch_add(1, Ordering::Relaxed);
        ctx.set_detail(format!("streaming to {peer} from {addr}"));
        match serve_client(socket, &config, &mut source, &mut times, &metrics, &ctx).await {
            Ok(Served::SourceEnded) => {
                ctx.set_detail(format!(
                    "finished: sent {} {}",
                    metrics.sent.load(Ordering::Relaxed),
                    config.dataset.records_noun()
                ));
                break;
            }
            Ok(Served::Cancelled) => break,
            Err(error) => {
                // The client went away; keep the cursor and wait for it to come back.
                ctx.report_error(format!("client {peer} disconnected: {error}"));
                ctx.set_detail(format!("listening on {addr}, waiting for a client"));
            }
        }
    }
    metrics.set_listening(None);
    Ok(())
}

enum Served {
    SourceEnded,
    Cancelled,
}

async fn serve_client(
    mut socket: TcpStream,
    config: &StreamerConfig,
    source: &mut Source,
    times: &mut EventTimes,
    metrics: &StreamerMetrics,
    ctx: &StageContext,
) -> Result<Served, std::io::Error> {
    let chunk_size = config.chunk_size as usize;
    let chunk_period = (config.rate > 0)
        .then(|| Duration::from_secs_f64(f64::from(config.chunk_size) / f64::from(config.rate)));
    let mut next_chunk_at = Instant::now();
    let mut buffer = String::with_capacity(chunk_size * 700);
    loop {
        if !ctx.wait_while_paused().await {
            return Ok(Served::Cancelled);
        }
        if let Some(period) = chunk_period {
            tokio::select! {
                _ = ctx.cancel.cancelled() => return Ok(Served::Cancelled),
                _ = tokio::time::sleep_until(next_chunk_at) => {}
            }
            // After a pause, do not burst to catch up on the time spent paused.
            next_chunk_at = (next_chunk_at + period).max(Instant::now());
        } else if ctx.cancel.is_cancelled() {
            return Ok(Served::Cancelled);
        }
        buffer.clear();
        let mut ids = BatchIds::default();
        let mut in_chunk = 0u64;
        let mut ended = false;
        while (in_chunk as usize) < chunk_size {
            match source.next_line(times).await? {
                Some(line) => {
                    buffer.push_str(&line.text);
                    buffer.push('\n');
                    if let Some(id) = &line.review_id {
                        ids.push(id);
                    }
                    in_chunk += 1;
                }
                None => {
                    ended = true;
                    break;
                }
            }
        }
        if in_chunk > 0 {
            // Stamped before the write: the producer may read the first lines while the rest of
            // a large chunk is still being written.
            let at_ms = chrono::Utc::now().timestamp_millis();
            socket.write_all(buffer.as_bytes()).await?;
            metrics.sent.fetch_add(in_chunk, Ordering::Relaxed);
            let number = metrics.chunks.fetch_add(1, Ordering::Relaxed) + 1;
            metrics.chunks_sent.record(BatchMark { number, at_ms }, ids);
            metrics
                .bytes
                .fetch_add(buffer.len() as u64, Ordering::Relaxed);
        }
        if ended {
            socket.shutdown().await?;
            return Ok(Served::SourceEnded);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_reviews_are_moved_back_by_the_delay_and_replay_keeps_dates() {
        let config = StreamerConfig {
            clock: EventClock::Replay,
            late_share: 0.25,
            late_by_secs: 600,
            ..StreamerConfig::default()
        };
        let mut times = EventTimes::new(&config);
        let original = "2024-01-01 10:00:00";
        let stamped: Vec<String> = (0..4000).filter_map(|_| times.stamp(original)).collect();
        let late = stamped
            .iter()
            .filter(|d| *d == "2024-01-01 09:50:00")
            .count();
        let on_time = stamped.iter().filter(|d| *d == original).count();
        assert_eq!(late + on_time, 4000);
        assert!((900..1100).contains(&late), "{late} of 4000 late at 25%");

        let live = StreamerConfig::default();
        let mut times = EventTimes::new(&live);
        let now = chrono::Utc::now().naive_utc();
        let stamped = times.stamp(original).expect("stamp");
        let stamped = NaiveDateTime::parse_from_str(&stamped, DATE_FORMAT).expect("date");
        assert!(
            (stamped - now).num_seconds().abs() <= 1,
            "live clock stamps now"
        );
    }

    #[tokio::test]
    async fn the_streamer_sends_the_chosen_datasets_records_stamped_on_their_own_time() {
        for dataset in [DatasetKind::Tweets, DatasetKind::Companies] {
            let config = StreamerConfig {
                dataset,
                clock: EventClock::Replay,
                limit: Some(3),
                ..StreamerConfig::default()
            };
            let mut source = Source::open(&config, SourceInput::Generator);
            let mut times = EventTimes::new(&config);
            let description = dataset.description();
            let mut sent = 0;
            while let Some(line) = source.next_line(&mut times).await.expect("line") {
                crate::records::check_record(&description, line.text.as_bytes())
                    .expect("a valid record");
                assert!(line.review_id.is_some(), "its id is logged");
                sent += 1;
            }
            assert_eq!(sent, 3, "{dataset:?} stops at the limit");
        }
        // A file's tweet is re-stamped on created_at, not on a `date` it does not have.
        let mut times = EventTimes::new(&StreamerConfig {
            dataset: DatasetKind::Tweets,
            ..StreamerConfig::default()
        });
        let line = r#"{"tweet_id":"1","created_at":"2018-07-07 22:09:11"}"#.to_owned();
        assert!(!times.restamp_line(line).contains("2018-07-07"));
    }

    #[test]
    fn a_file_lines_id_is_read_from_its_datasets_id_field() {
        let review = r#"{"review_id":"r1","business_id":"b","date":"2018-07-07 22:09:11"}"#;
        let tweet = r#"{"tweet_id":"t1","user":"ana","created_at":"2018-07-07 22:09:11"}"#;
        let company = r#"{"company_id":"c1","name":"Blue Labs"}"#;
        assert_eq!(id_of(review, "review_id").as_deref(), Some("r1"));
        assert_eq!(id_of(tweet, "tweet_id").as_deref(), Some("t1"));
        assert_eq!(id_of(company, "company_id").as_deref(), Some("c1"));
        // The chunk log remembers no id it cannot name: a tweet has no review_id.
        assert_eq!(id_of(tweet, "review_id"), None);
        assert_eq!(id_of(r#"{"tweet_id":7}"#, "tweet_id"), None);
        assert_eq!(id_of("not json", "tweet_id"), None);
    }

    #[test]
    fn file_lines_are_restamped_only_when_they_are_review_objects() {
        let mut times = EventTimes::new(&StreamerConfig::default());
        let line = r#"{"review_id":"r","date":"2018-07-07 22:09:11"}"#.to_owned();
        assert!(!times.restamp_line(line).contains("2018-07-07"));
        assert_eq!(times.restamp_line("not json".to_owned()), "not json");
        // A bad date stays bad, for the producer to refuse with its reason.
        let bad = r#"{"review_id":"r","date":"someday 2018-07-07"}"#.to_owned();
        assert_eq!(times.restamp_line(bad.clone()), bad);
    }

    #[test]
    fn validate_names_the_bad_field() {
        let mut config = StreamerConfig::default();
        assert!(validate(&config).is_ok());
        config.chunk_size = 0;
        let err = validate(&config).expect_err("chunk 0");
        assert!(err.to_string().starts_with("chunk_size"), "{err}");
        for path in ["/no/such/file.json", "../../etc/passwd", "/etc/passwd", ""] {
            config = StreamerConfig {
                source: path.into(),
                ..StreamerConfig::default()
            };
            let err = validate(&config).expect_err("a path");
            assert!(err.to_string().starts_with("source: "), "{err}");
        }
        config.source = "sample-yelp.jsonl".into();
        assert!(validate(&config).is_ok(), "a name is resolved later");
        let err = crate::stage_config::parse_config::<StreamerConfig>(
            serde_json::json!({"dataset": "films"}),
        )
        .expect_err("unknown dataset");
        assert!(err.to_string().starts_with("dataset"), "{err}");
        let tweets: StreamerConfig =
            crate::stage_config::parse_config(serde_json::json!({"dataset": "tweets"}))
                .expect("tweets");
        assert_eq!(tweets.dataset, DatasetKind::Tweets);
        config = StreamerConfig {
            late_share: 1.5,
            ..StreamerConfig::default()
        };
        let err = validate(&config).expect_err("late share");
        assert!(err.to_string().starts_with("late_share"), "{err}");
        config = StreamerConfig {
            listen: "nowhere".into(),
            ..StreamerConfig::default()
        };
        assert!(
            validate(&config)
                .expect_err("bad addr")
                .to_string()
                .starts_with("listen")
        );
    }
}
