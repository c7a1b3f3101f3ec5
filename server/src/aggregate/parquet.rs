//! The Parquet sink (seed 001's `writeStream.format("parquet")`): labelled records written by
//! Polars as Parquet files partitioned by event date, a new file per roll (rows or seconds).
//! Reviews go to `<data dir>/parquet/date=YYYY-MM-DD/`, tweets to
//! `<data dir>/parquet/tweets/date=YYYY-MM-DD/` (see [`Table`]). Offsets are committed after the
//! files are on disk: a crash in between writes those records again in a new file
//! (at-least-once).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use app::api::{
    EnrichedReview, MEMBER_FILES, MemberOutput, ParquetConfig, ParquetFile, TOPIC_SENTIMENT,
};
use polars::prelude::*;
// Parquet through polars-io directly: polars' own `parquet` feature also compiles its streaming
// engine (polars-stream), which the sink never uses.
use polars_io::SerReader;
use polars_io::prelude::{ParquetCompression, ParquetReader, ParquetWriter};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;

use crate::error::ConfigError;
use crate::kafka::KafkaSettings;
use crate::kafka::batch::{self, Record, close_off_runtime};
use crate::kafka::inspect::{GroupRegistry, RegisteringContext};
use crate::members::MemberFigures;
use crate::records::{DeadLetter, Labelled, LabelledTweet, deliver_dead_letter, parse_labelled};
use crate::stage::{PhaseClock, StageContext};
use crate::sync::LockExt;

const STAGE: &str = "parquet";
/// The server's sink's name in its group (a `pipebook worker` process's is `p<pid>-parquet`).
pub const MEMBER: &str = "parquet-1";

#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    #[error("Kafka client: {0}")]
    Kafka(#[from] KafkaError),
    #[error("Polars: {0}")]
    Polars(#[from] PolarsError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Task(String),
}

pub fn validate(config: &ParquetConfig) -> Result<(), ConfigError> {
    if !(1..=1_000_000).contains(&config.roll_rows) {
        return Err(ConfigError::new(
            "roll_rows",
            format!("must be 1..=1000000, got {}", config.roll_rows),
        ));
    }
    if !(1..=3600).contains(&config.roll_secs) {
        return Err(ConfigError::new(
            "roll_secs",
            format!("must be 1..=3600, got {}", config.roll_secs),
        ));
    }
    crate::kafka::check_group_name(&config.group).map_err(|e| ConfigError::new("group", e))?;
    Ok(())
}

crate::counters! {
    /// Counters, and the files written (or found on disk at start).
    pub struct ParquetMetrics {
        counters {
            rows, files, dlq,
            /// Records without a label (companies: no text) left out: there is no table for
            /// them, and a window counts them instead.
            skipped,
            /// Microseconds writing files and dead letters / waiting for records / (nothing
            /// downstream holds the sink back: it writes to local disk).
            busy_us, idle_us, backpressured_us,
        }
        written: Mutex<BTreeMap<String, ParquetFile>>,
        meter: crate::stage::LoadMeter,
        /// When the current run started, ms since the epoch (for its heartbeat).
        started_at: AtomicI64,
    }
}

impl ParquetMetrics {
    /// Marks a run's start, for its heartbeat (the counters go on from the previous run's, as
    /// the files on disk do).
    pub fn started(&self) {
        self.started_at
            .store(crate::clock::now_ms(), Ordering::Relaxed);
    }

    /// Its member's figures, for its heartbeat (`crate::members`): the sink reads a record into
    /// a file or to the dead-letter topic, so what it read is the rows written and dead letters.
    pub fn figures(&self) -> MemberFigures {
        let errors = self.dlq.load(Ordering::Relaxed);
        MemberFigures {
            processed: self.rows.load(Ordering::Relaxed) + errors,
            errors,
            started_at: self.started_at.load(Ordering::Relaxed),
        }
    }

    /// The counters, and what is on disk.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let mut counters = self.counter_values();
        let on_disk = self.lock();
        counters.insert("files_on_disk".to_owned(), on_disk.len() as u64);
        counters.insert(
            "rows_on_disk".to_owned(),
            on_disk.values().map(|f| f.rows).sum(),
        );
        counters
    }

    /// Where the loop spends its time; records processed = rows written.
    pub fn load(&self) -> Option<app::ops::StageLoad> {
        self.meter.read(crate::stage::LoadTotals {
            busy_us: self.busy_us.load(Ordering::Relaxed),
            idle_us: self.idle_us.load(Ordering::Relaxed),
            backpressured_us: self.backpressured_us.load(Ordering::Relaxed),
            processed: self.rows.load(Ordering::Relaxed),
            loops: 1,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ParquetFile>> {
        self.written.lock_or_recover()
    }

    /// What this sink's heartbeat says of its files (`crate::members`): the folder, as an
    /// absolute path on this machine, its newest [`MEMBER_FILES`] files and the totals. A
    /// worker process writes on its own disk, which the server cannot list.
    pub fn output(&self, root: &Path) -> MemberOutput {
        let dir = std::path::absolute(root).unwrap_or_else(|_| root.to_owned());
        let (total_files, total_rows) = {
            let on_disk = self.lock();
            (on_disk.len() as u64, on_disk.values().map(|f| f.rows).sum())
        };
        MemberOutput {
            dir: dir.to_string_lossy().into_owned(),
            files: self.newest_n(MEMBER_FILES),
            total_files,
            total_rows,
        }
    }

    /// The newest `n` files, newest first (names start with the time they were written).
    fn newest_n(&self, n: usize) -> Vec<ParquetFile> {
        let mut files: Vec<ParquetFile> = self.lock().values().cloned().collect();
        let written_at = |f: &ParquetFile| {
            f.path
                .rsplit('/')
                .next()
                .and_then(|name| name.strip_prefix("part-"))
                .and_then(|rest| rest.split('-').next())
                .and_then(|ms| ms.parse::<i64>().ok())
                .unwrap_or(0)
        };
        files.sort_by_key(|f| std::cmp::Reverse((written_at(f), f.path.clone())));
        files.truncate(n);
        files
    }

    /// Lists the Parquet files already under `root` (every table's) with their row counts.
    pub fn scan(&self, root: &Path) {
        let mut found = BTreeMap::new();
        for table in Table::ALL {
            let Ok(dates) = std::fs::read_dir(root.join(table.dir())) else {
                continue;
            };
            for date in dates.flatten() {
                // Only the `date=` partitions: at the root, the tweets table is a folder too.
                if !date.file_name().to_string_lossy().starts_with("date=") {
                    continue;
                }
                let Ok(files) = std::fs::read_dir(date.path()) else {
                    continue;
                };
                for file in files.flatten() {
                    let path = file.path();
                    if path.extension().is_none_or(|e| e != "parquet") {
                        continue;
                    }
                    if let Some(listed) = describe(root, &path) {
                        found.insert(listed.path.clone(), listed);
                    }
                }
            }
        }
        *self.lock() = found;
    }
}

/// The tables the sink writes, one per dataset. Reviews and tweets have different columns, so
/// each is its own table, in its own folder, as Spark writes each query to its own path: a
/// learner reading `parquet/date=*/*.parquet` gets reviews only, `parquet/tweets/date=*/*.parquet`
/// tweets only, each with every column filled, rather than one schema whose review columns are
/// null on every tweet (and the other way round). Reviews stay at the root, where they were
/// written before there were other datasets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Table {
    Reviews,
    Tweets,
}

impl Table {
    const ALL: [Table; 2] = [Table::Reviews, Table::Tweets];

    /// The table's folder under the sink's root ("" = the root itself).
    pub fn dir(self) -> &'static str {
        match self {
            Table::Reviews => "",
            Table::Tweets => "tweets",
        }
    }

    /// A file's path under the root: `[tweets/]date=YYYY-MM-DD/part-<ms>-<n>.parquet`.
    fn file_name(self, day: &str, written_at: i64, sequence: usize) -> String {
        let file = format!("date={day}/part-{written_at}-{sequence}.parquet");
        match self.dir() {
            "" => file,
            dir => format!("{dir}/{file}"),
        }
    }
}

/// The rows of one file.
enum Rows {
    Reviews(Vec<EnrichedReview>),
    Tweets(Vec<LabelledTweet>),
}

impl Rows {
    fn len(&self) -> usize {
        match self {
            Rows::Reviews(rows) => rows.len(),
            Rows::Tweets(rows) => rows.len(),
        }
    }

    fn frame(&self) -> PolarsResult<DataFrame> {
        match self {
            Rows::Reviews(rows) => reviews_frame(rows),
            Rows::Tweets(rows) => tweets_frame(rows),
        }
    }
}

fn describe(root: &Path, path: &Path) -> Option<ParquetFile> {
    let bytes = std::fs::metadata(path).ok()?.len();
    let rows = std::fs::File::open(path)
        .ok()
        .and_then(|file| ParquetReader::new(file).num_rows().ok())? as u64;
    let relative = path
        .strip_prefix(root)
        .ok()?
        .to_string_lossy()
        .replace('\\', "/");
    Some(ParquetFile {
        path: relative,
        rows,
        bytes,
        partitions: Vec::new(),
    })
}

pub struct ParquetSetup {
    pub config: ParquetConfig,
    pub kafka: KafkaSettings,
    pub root: PathBuf,
    pub registry: std::sync::Arc<GroupRegistry>,
    pub metrics: std::sync::Arc<ParquetMetrics>,
    /// Its name in the group (`client.id`): [`MEMBER`] in the server, `p<pid>-parquet` in a
    /// worker process.
    pub member: String,
}

type SinkConsumer = StreamConsumer<RegisteringContext>;

pub async fn run(setup: ParquetSetup, ctx: StageContext) -> Result<(), ParquetError> {
    let group = setup.config.group.clone();
    setup.registry.declare(&group, &[TOPIC_SENTIMENT]);
    let consumer: SinkConsumer = setup
        .kafka
        .client_config()
        .set("group.id", &group)
        .set("client.id", &setup.member)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create_with_context(RegisteringContext {
            registry: setup.registry.clone(),
            group: group.clone(),
            member: setup.member.clone(),
        })?;
    let producer = setup.kafka.reliable_producer()?;
    consumer.subscribe(&[TOPIC_SENTIMENT])?;
    ctx.set_detail(format!("writing {}", setup.root.display()));
    // Killed (a crash): the rows in hand are dropped unwritten and uncommitted, and the consumer
    // is still closed below, off the runtime threads.
    let outcome = tokio::select! {
        _ = ctx.kill.cancelled() => Ok(()),
        outcome = sink_until_stopped(&setup, &consumer, &producer, &ctx) => outcome,
    };
    close_off_runtime(consumer, producer).await;
    setup.registry.remove_member(&group, &setup.member);
    outcome
}

async fn sink_until_stopped(
    setup: &ParquetSetup,
    consumer: &SinkConsumer,
    producer: &FutureProducer,
    ctx: &StageContext,
) -> Result<(), ParquetError> {
    let roll_rows = setup.config.roll_rows as usize;
    let roll_every = Duration::from_secs(u64::from(setup.config.roll_secs));
    let mut buffer: Vec<Record> = Vec::new();
    let mut deadline = tokio::time::Instant::now() + roll_every;
    let mut clock = PhaseClock::new();
    loop {
        // One record at a time: a `recv` cut short by the deadline has taken nothing, whereas
        // a half-gathered batch dropped by it would lose records whose offsets are committed
        // with the next roll.
        let stop = tokio::select! {
            _ = ctx.cancel.cancelled() => true,
            received = tokio::time::timeout_at(deadline, consumer.recv()) => {
                match received {
                    Ok(Ok(message)) => buffer.push(batch::copy(&message)),
                    Ok(Err(error)) => ctx.report_error(format!("consume failed, retrying: {error}")),
                    Err(_) => {}
                }
                false
            }
        };
        clock.mark(&setup.metrics.idle_us);
        let due = buffer.len() >= roll_rows || tokio::time::Instant::now() >= deadline || stop;
        if due && !buffer.is_empty() {
            write_files(setup, producer, ctx, &buffer).await?;
            if let Err(error) = batch::commit(consumer, TOPIC_SENTIMENT, &buffer) {
                tracing::debug!(%error, "parquet commit refused");
            }
            buffer.clear();
            clock.mark(&setup.metrics.busy_us);
        }
        if due {
            deadline = tokio::time::Instant::now() + roll_every;
        }
        if stop {
            return Ok(());
        }
    }
}

/// One roll: a file per table and event date present in the buffer.
async fn write_files(
    setup: &ParquetSetup,
    producer: &FutureProducer,
    ctx: &StageContext,
    buffer: &[Record],
) -> Result<(), ParquetError> {
    // Per table and day: the rows, and the input partitions they came from.
    let mut reviews: BTreeMap<String, (Vec<EnrichedReview>, BTreeSet<i32>)> = BTreeMap::new();
    let mut tweets: BTreeMap<String, (Vec<LabelledTweet>, BTreeSet<i32>)> = BTreeMap::new();
    let day_of = |time: &str| time.get(..10).unwrap_or("unknown").to_owned();
    for record in buffer {
        match parse_labelled(&record.payload) {
            Ok(Labelled::Review(review)) => {
                let (rows, partitions) = reviews.entry(day_of(&review.review.date)).or_default();
                rows.push(review);
                partitions.insert(record.partition);
            }
            Ok(Labelled::Tweet(tweet)) => {
                let (rows, partitions) = tweets.entry(day_of(&tweet.created_at)).or_default();
                rows.push(tweet);
                partitions.insert(record.partition);
            }
            Ok(Labelled::Unlabelled(_)) => {
                setup.metrics.skipped.fetch_add(1, Ordering::Relaxed);
            }
            Err(reason) => {
                let origin = format!("{TOPIC_SENTIMENT}/{}@{}", record.partition, record.offset);
                let letter = DeadLetter::new(STAGE, reason, &record.payload, Some(origin));
                if deliver_dead_letter(producer, &letter, &ctx.cancel).await {
                    setup.metrics.dlq.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    let files = reviews
        .into_iter()
        .map(|(day, (rows, from))| (Table::Reviews, day, Rows::Reviews(rows), from))
        .chain(
            tweets
                .into_iter()
                .map(|(day, (rows, from))| (Table::Tweets, day, Rows::Tweets(rows), from)),
        );
    let written_at = chrono::Utc::now().timestamp_millis();
    for (sequence, (table, day, rows, from)) in files.enumerate() {
        let root = setup.root.clone();
        let name = table.file_name(&day, written_at, sequence);
        let count = rows.len() as u64;
        let mut listed = tokio::task::spawn_blocking(move || write_file(&root, &name, &rows))
            .await
            .map_err(|e| ParquetError::Task(e.to_string()))??;
        listed.partitions = from.into_iter().collect();
        setup.metrics.rows.fetch_add(count, Ordering::Relaxed);
        setup.metrics.files.fetch_add(1, Ordering::Relaxed);
        setup.metrics.lock().insert(listed.path.clone(), listed);
    }
    Ok(())
}

/// The rows as a DataFrame, written to a temporary file and renamed into place, so a reader
/// never sees half a file.
fn write_file(root: &Path, name: &str, rows: &Rows) -> Result<ParquetFile, ParquetError> {
    let path = root.join(name);
    let io = |source| ParquetError::Io {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut frame = rows.frame()?;
    let temporary = path.with_extension("parquet.tmp");
    let file = std::fs::File::create(&temporary).map_err(io)?;
    ParquetWriter::new(file)
        .with_compression(ParquetCompression::Snappy)
        .finish(&mut frame)?;
    std::fs::rename(&temporary, &path).map_err(io)?;
    describe(root, &path).ok_or_else(|| io(std::io::Error::other("written file is unreadable")))
}

/// Milliseconds of a `YYYY-MM-DD HH:MM:SS` event time; `None` (a null cell) if it is not one.
fn event_ms(time: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(time, crate::records::DATE_FORMAT)
        .ok()
        .map(|d| d.and_utc().timestamp_millis())
}

pub fn reviews_frame(reviews: &[EnrichedReview]) -> PolarsResult<DataFrame> {
    let text = |f: fn(&EnrichedReview) -> &str| reviews.iter().map(f).collect::<Vec<&str>>();
    // Event time as a real timestamp column, so readers can filter and window on it.
    let event_ms: Vec<Option<i64>> = reviews.iter().map(|r| event_ms(&r.review.date)).collect();
    df!(
        "review_id" => text(|r| &r.review.review_id),
        "business_id" => text(|r| &r.review.business_id),
        "user_id" => text(|r| &r.review.user_id),
        "stars" => reviews.iter().map(|r| u32::from(r.review.stars)).collect::<Vec<_>>(),
        "text" => text(|r| &r.review.text),
        "date" => event_ms,
        "sentiment" => text(|r| r.sentiment.as_str()),
        "score" => reviews.iter().map(|r| r.score).collect::<Vec<_>>(),
        "classifier" => text(|r| &r.classifier),
        "processed_at" => text(|r| &r.processed_at),
    )?
    .lazy()
    .with_column(col("date").cast(DataType::Datetime(TimeUnit::Milliseconds, None)))
    .collect()
}

/// Tweets with the tweet's own column names (what seed 001's Spark job writes), `hashtags` as a
/// list of strings (empty when the tweet has none) and `created_at` as a timestamp column.
pub fn tweets_frame(tweets: &[LabelledTweet]) -> PolarsResult<DataFrame> {
    let text = |f: fn(&LabelledTweet) -> &str| tweets.iter().map(f).collect::<Vec<&str>>();
    let created_ms: Vec<Option<i64>> = tweets.iter().map(|t| event_ms(&t.created_at)).collect();
    let hashtags: Vec<Series> = tweets
        .iter()
        .map(|t| Series::new(PlSmallStr::EMPTY, &t.hashtags))
        .collect();
    df!(
        "tweet_id" => text(|t| &t.tweet_id),
        "user" => text(|t| &t.user),
        "text" => text(|t| &t.text),
        "hashtags" => hashtags,
        "created_at" => created_ms,
        "sentiment" => text(|t| t.sentiment.as_str()),
        "score" => tweets.iter().map(|t| t.score).collect::<Vec<_>>(),
        "classifier" => text(|t| &t.classifier),
        "processed_at" => text(|t| &t.processed_at),
    )?
    .lazy()
    .with_column(col("created_at").cast(DataType::Datetime(TimeUnit::Milliseconds, None)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::api::{Review, Sentiment};

    fn review(id: &str, date: &str) -> EnrichedReview {
        EnrichedReview {
            review: Review {
                review_id: id.into(),
                user_id: "u".into(),
                business_id: "b".into(),
                stars: 4,
                useful: 0,
                funny: 0,
                cool: 0,
                text: "Great tacos".into(),
                date: date.into(),
            },
            sentiment: Sentiment::Positive,
            score: 0.6,
            classifier: "lexicon".into(),
            model: None,
            processed_at: "2026-11-23T10:00:00.000Z".into(),
            worker: "w".into(),
        }
    }

    #[test]
    fn files_hold_every_row_with_a_timestamp_column_and_are_listed() {
        let dir = tempfile::tempdir().expect("dir");
        let reviews = [
            review("a", "2024-01-01 09:00:00"),
            review("b", "2024-01-01 10:30:00"),
        ];
        let listed = write_file(
            dir.path(),
            "date=2024-01-01/part-1-0.parquet",
            &Rows::Reviews(reviews.to_vec()),
        )
        .expect("write");
        assert_eq!(listed.rows, 2);
        assert_eq!(listed.path, "date=2024-01-01/part-1-0.parquet");
        let file = std::fs::File::open(dir.path().join(&listed.path)).expect("open");
        let frame = ParquetReader::new(file).finish().expect("read");
        assert_eq!(frame.height(), 2);
        assert!(matches!(
            frame.column("date").expect("date").dtype(),
            DataType::Datetime(_, _)
        ));
        let metrics = ParquetMetrics::default();
        metrics.scan(dir.path());
        assert_eq!(metrics.counters()["rows_on_disk"], 2);
        assert_eq!(metrics.output(dir.path()).files[0].path, listed.path);
    }

    #[test]
    fn tweets_are_a_table_of_their_own_with_a_hashtags_list_and_are_listed() {
        let dir = tempfile::tempdir().expect("dir");
        let tweet = |id: &str, hashtags: &[&str]| LabelledTweet {
            tweet_id: id.into(),
            user: "ana".into(),
            text: "love it".into(),
            hashtags: hashtags.iter().map(|h| (*h).to_owned()).collect(),
            created_at: "2024-01-01 09:00:00".into(),
            sentiment: Sentiment::Positive,
            score: 0.6,
            classifier: "lexicon".into(),
            model: None,
            processed_at: "2026-11-23T10:00:00.000Z".into(),
        };
        let name = Table::Tweets.file_name("2024-01-01", 1, 0);
        assert_eq!(name, "tweets/date=2024-01-01/part-1-0.parquet");
        let rows = Rows::Tweets(vec![tweet("t1", &["#kafka", "#rust"]), tweet("t2", &[])]);
        write_file(dir.path(), &name, &rows).expect("write");
        write_file(
            dir.path(),
            &Table::Reviews.file_name("2024-01-01", 1, 1),
            &Rows::Reviews(vec![review("a", "2024-01-01 09:00:00")]),
        )
        .expect("write");
        let file = std::fs::File::open(dir.path().join(&name)).expect("open");
        let frame = ParquetReader::new(file).finish().expect("read");
        let columns: Vec<&str> = frame
            .get_column_names()
            .iter()
            .map(|c| c.as_str())
            .collect();
        assert_eq!(
            columns,
            [
                "tweet_id",
                "user",
                "text",
                "hashtags",
                "created_at",
                "sentiment",
                "score",
                "classifier",
                "processed_at"
            ]
        );
        let tags = frame
            .column("hashtags")
            .expect("hashtags")
            .list()
            .expect("a list");
        assert_eq!(
            tags.lst_lengths().into_no_null_iter().collect::<Vec<_>>(),
            [2, 0]
        );
        assert!(matches!(
            frame.column("created_at").expect("created_at").dtype(),
            DataType::Datetime(_, _)
        ));
        // Both tables are found again on disk, the tweets under their folder.
        let metrics = ParquetMetrics::default();
        metrics.scan(dir.path());
        assert_eq!(metrics.counters()["files_on_disk"], 2);
        assert_eq!(metrics.counters()["rows_on_disk"], 3);
    }

    #[test]
    fn the_heartbeat_lists_the_newest_files_bounded_with_the_absolute_folder() {
        let dir = tempfile::tempdir().expect("dir");
        let metrics = ParquetMetrics::default();
        for n in 0..(MEMBER_FILES as i64 + 5) {
            let mut listed = write_file(
                dir.path(),
                &Table::Reviews.file_name("2024-01-01", 1_000 + n, 0),
                &Rows::Reviews(vec![review(&format!("r{n}"), "2024-01-01 09:00:00")]),
            )
            .expect("write");
            listed.partitions = vec![i32::try_from(n % 3).unwrap_or_default()];
            metrics.lock().insert(listed.path.clone(), listed);
        }
        let output = metrics.output(dir.path());
        assert_eq!(output.files.len(), MEMBER_FILES, "bounded");
        assert_eq!(output.total_files, MEMBER_FILES as u64 + 5);
        assert_eq!(output.total_rows, MEMBER_FILES as u64 + 5);
        assert_eq!(
            output.files[0].path,
            format!(
                "date=2024-01-01/part-{}-0.parquet",
                1_000 + MEMBER_FILES as i64 + 4
            ),
            "newest first"
        );
        assert_eq!(output.files[0].partitions, [(MEMBER_FILES as i32 + 4) % 3]);
        assert!(Path::new(&output.dir).is_absolute());
        // A relative --parquet-dir is made absolute: the teacher must find it on that machine.
        let relative = metrics.output(Path::new("parquet"));
        assert!(Path::new(&relative.dir).is_absolute(), "{}", relative.dir);
    }

    #[test]
    fn roll_settings_are_checked() {
        let bad = ParquetConfig {
            roll_rows: 0,
            ..ParquetConfig::default()
        };
        assert!(validate(&bad).expect_err("0 rows").field == "roll_rows");
        validate(&ParquetConfig::default()).expect("defaults");
    }
}
