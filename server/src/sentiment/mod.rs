//! Stage 3 · sentiment: a consumer group (`pipebook-sentiment`) of 1–8 workers that read
//! `reviews`, label each review POSITIVE / NEGATIVE / NEUTRAL and write the enriched review to
//! `reviews.sentiment`, committing offsets only after the broker acknowledged the output
//! (at-least-once). Workers can be added and killed while it runs, to watch the group rebalance.
//!
//! Classifiers: [`lexicon`] (VADER, offline, the default), [`textblob`] (TextBlob's pattern
//! lexicon, offline) and [`llm`] (any OpenAI-compatible chat-completions endpoint, falling back
//! to the lexicon when it cannot answer).

pub mod compare;
pub mod eval;
pub mod lexicon;
pub mod llm;
pub mod llm_batch;
pub mod textblob;
pub mod vader;
mod worker;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use app::api::Sentiment;
use app::api::{
    ClassifierChoice, LatestReview, RebalanceEvent, SentimentConfig, SentimentView, TOPIC_REVIEWS,
    WorkerView,
};
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::error::ConfigError;
use crate::kafka::KafkaSettings;
use crate::kafka::inspect::GroupRegistry;
use crate::members::{Ended, MemberReport};
use crate::stage::{Lifecycle, StageContext, StageId};
use crate::sync::LockExt;
use lexicon::{Classification, ClassifierKind, LexiconClassifier, Thresholds};
use llm::{LlmClassifier, LlmConfig};
use llm_batch::LlmBatcher;
use textblob::TextBlobClassifier;

/// The consumer group the sentiment workers join unless configured otherwise.
pub const GROUP: &str = "pipebook-sentiment";
pub const MAX_WORKERS: u8 = 8;
const KEEP_EVENTS: usize = 50;
const KEEP_LATEST: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum SentimentError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the sentiment stage is not running")]
    NotRunning,
    #[error("no running worker called {0:?}")]
    UnknownWorker(String),
}

/// Longest text the classifiers take; a longer one fails to classify (an LLM's context and
/// VADER's per-sentence cost both grow with it). The failure is not told apart from a transient
/// one, so the worker retries it up to `dead_letter_after` times: the poison-pill incident.
pub const MAX_TEXT_CHARS: usize = 20_000;

/// Why a review's text cannot be classified, if it cannot.
pub fn unclassifiable(text: &str) -> Option<String> {
    let chars = text.chars().count();
    (chars > MAX_TEXT_CHARS).then(|| {
        format!("the classifier failed: text of {chars} characters (at most {MAX_TEXT_CHARS})")
    })
}

/// Most extra work per review a slow consumer may be given (`slow_ms`).
pub const MAX_SLOW_MS: u32 = 1_000;

/// Why a record of a dataset without text (a company) is forwarded unlabelled: the `skipped`
/// field of its output on `reviews.sentiment`.
pub fn skipped_reason(dataset: app::api::DatasetKind) -> String {
    format!(
        "{} has no text field: nothing to classify",
        dataset.as_str()
    )
}

/// Checks a config before anything starts; errors name the field.
pub fn validate(config: &SentimentConfig) -> Result<Thresholds, ConfigError> {
    if !(1..=MAX_WORKERS).contains(&config.workers) {
        return Err(ConfigError::new(
            "workers",
            format!("must be 1..={MAX_WORKERS}, got {}", config.workers),
        ));
    }
    crate::kafka::check_group_name(&config.group)
        .map_err(|message| ConfigError::new("group", message))?;
    if config.slow_ms > MAX_SLOW_MS {
        return Err(ConfigError::new(
            "slow_ms",
            format!(
                "must be 0..={MAX_SLOW_MS} ms per review, got {}",
                config.slow_ms
            ),
        ));
    }
    let thresholds = Thresholds {
        positive: config.positive_threshold,
        negative: config.negative_threshold,
    };
    // Named as the request names them (`positive_threshold`), not as the lexicon does.
    thresholds.validate().map_err(|e| {
        let field = match e.field {
            "negative" => "negative_threshold",
            _ => "positive_threshold",
        };
        ConfigError::new(field, e.message)
    })?;
    Ok(thresholds)
}

/// The classifier the workers share.
pub enum Classifier {
    Lexicon(LexiconClassifier),
    TextBlob(TextBlobClassifier),
    Llm {
        llm: LlmBatcher,
        fallback: LexiconClassifier,
    },
}

impl Classifier {
    /// Builds the configured classifier; the LLM one reads `PIPEBOOK_LLM_*`.
    pub fn from_config(
        choice: ClassifierChoice,
        thresholds: Thresholds,
    ) -> Result<Self, SentimentError> {
        let lexicon = LexiconClassifier::new(thresholds);
        match choice {
            ClassifierChoice::Lexicon => Ok(Classifier::Lexicon(lexicon)),
            ClassifierChoice::TextBlob => {
                Ok(Classifier::TextBlob(TextBlobClassifier::new(thresholds)))
            }
            ClassifierChoice::Llm => {
                let llm = LlmConfig::from_env()
                    .and_then(LlmClassifier::new)
                    .map_err(|e| {
                        ConfigError::new(
                            "classifier",
                            format!("llm needs PIPEBOOK_LLM_* settings: {e}"),
                        )
                    })?;
                Ok(Classifier::Llm {
                    llm: LlmBatcher::new(llm),
                    fallback: lexicon,
                })
            }
        }
    }

    /// Labels one text. The LLM path falls back to the lexicon when the endpoint fails after its
    /// retries or answers something that is not a label, and says so in `note`.
    pub async fn classify(&self, text: &str) -> Classification {
        match self {
            Classifier::Lexicon(lexicon) => lexicon.classify(text),
            Classifier::TextBlob(textblob) => textblob.classify(text),
            Classifier::Llm { llm, fallback } => match llm.classify(text).await {
                Ok(label) => Classification {
                    sentiment: label.sentiment,
                    score: 0.0,
                    classifier: ClassifierKind::Llm,
                    model: Some(label.model),
                    note: None,
                },
                Err(error) => {
                    let mut classification = fallback.classify(text);
                    classification.note = Some(format!("LLM fell back to the lexicon: {error}"));
                    classification
                }
            },
        }
    }
}

crate::counters! {
    /// Counters of one worker.
    pub struct WorkerMetrics {
        counters {
            consumed, produced, dlq, fallbacks, commits,
            /// Records written on unlabelled (a company: no text), also counted in `produced`.
            skipped,
            /// Microseconds classifying / waiting on poll / waiting for the broker's acks.
            busy_us, idle_us, backpressured_us,
        }
        /// From a review's timestamp in `reviews` to the acknowledgement of its output in
        /// `reviews.sentiment`, one per `produced`.
        pub latency: crate::histogram::LatencyHistogram,
    }
}

struct WorkerEntry {
    /// Each worker runs under the same lifecycle as a stage: a loop that fails shows `failed`
    /// with its error, a killed one `killed`.
    life: Arc<Lifecycle>,
    partitions: Vec<i32>,
    metrics: Arc<WorkerMetrics>,
    /// `processed` at the previous sample, for the rate.
    sampled: u64,
    /// Milliseconds since the Unix epoch.
    started_at: i64,
}

impl WorkerEntry {
    fn running(&self) -> bool {
        self.life.is_active()
    }

    /// `running`, `stopped`, `failed`, or `killed` (crashed on purpose).
    fn state(&self) -> &'static str {
        if self.life.crashed() {
            "killed"
        } else {
            self.life.state().as_str()
        }
    }
}

/// What the workers of one run share.
struct RunContext {
    kafka: KafkaSettings,
    classifier: Arc<Classifier>,
    /// Extra work per review (`slow_ms`), for every worker of the run.
    slow: std::time::Duration,
    /// Attempts before a review that fails to classify is dead-lettered (0: never).
    dead_letter_after: u8,
    cancel: CancellationToken,
    next_id: u32,
}

/// Live state of the stage, shared by the workers, the API and the snapshot sampler.
pub struct SentimentRuntime {
    registry: Arc<GroupRegistry>,
    workers: Mutex<BTreeMap<String, WorkerEntry>>,
    events: Mutex<VecDeque<RebalanceEvent>>,
    latest: Mutex<VecDeque<LatestReview>>,
    confusion: Mutex<[[u64; 3]; 3]>,
    run: Mutex<Option<RunContext>>,
    /// The group of the current (or last) run.
    group: Mutex<String>,
    /// What worker names start with: `worker-` in the server, `p<pid>-worker-` in a
    /// `pipebook worker` process (so every review's `worker` says which process labelled it).
    name_prefix: String,
    meter: crate::stage::LoadMeter,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock_or_recover()
}

impl SentimentRuntime {
    pub fn new(registry: Arc<GroupRegistry>) -> Arc<Self> {
        Self::with_name_prefix(registry, "worker-")
    }

    /// A runtime whose workers are called `<prefix>1`, `<prefix>2`, …
    pub fn with_name_prefix(registry: Arc<GroupRegistry>, prefix: &str) -> Arc<Self> {
        registry.declare(GROUP, &[TOPIC_REVIEWS]);
        Arc::new(Self {
            registry,
            workers: Mutex::new(BTreeMap::new()),
            events: Mutex::new(VecDeque::new()),
            latest: Mutex::new(VecDeque::new()),
            confusion: Mutex::new([[0; 3]; 3]),
            run: Mutex::new(None),
            group: Mutex::new(GROUP.to_owned()),
            name_prefix: prefix.to_owned(),
            meter: Default::default(),
        })
    }

    /// Where the workers spend their time, averaged over the running ones.
    pub fn load(&self) -> Option<app::ops::StageLoad> {
        let workers = lock(&self.workers);
        let mut totals = crate::stage::LoadTotals::default();
        for entry in workers.values() {
            let m = &entry.metrics;
            totals.busy_us += m.busy_us.load(Ordering::Relaxed);
            totals.idle_us += m.idle_us.load(Ordering::Relaxed);
            totals.backpressured_us += m.backpressured_us.load(Ordering::Relaxed);
            totals.processed += m.consumed.load(Ordering::Relaxed);
            totals.loops += u32::from(entry.running());
        }
        drop(workers);
        self.meter.read(totals)
    }

    /// The stage's run loop: start the workers, wait until stopped (then stop them gracefully)
    /// or crashed (then kill them: each drops its batch uncommitted and closes its clients off
    /// the runtime threads, so none goes on consuming as an orphan).
    /// `config` has been validated and `classifier` built from it by the caller.
    pub async fn run(
        self: Arc<Self>,
        config: SentimentConfig,
        classifier: Arc<Classifier>,
        kafka: KafkaSettings,
        ctx: StageContext,
    ) -> Result<(), SentimentError> {
        if ctx.cancel.is_cancelled() {
            return Ok(());
        }
        self.registry.declare(&config.group, &[TOPIC_REVIEWS]);
        *lock(&self.group) = config.group.clone();
        *lock(&self.run) = Some(RunContext {
            kafka,
            classifier,
            slow: std::time::Duration::from_millis(u64::from(config.slow_ms)),
            dead_letter_after: config.dead_letter_after,
            cancel: ctx.cancel.clone(),
            next_id: 1,
        });
        for _ in 0..config.workers {
            self.add_worker()?;
        }
        ctx.set_detail(format!(
            "{} workers in group {}",
            config.workers, config.group
        ));
        let killed = tokio::select! {
            _ = ctx.cancel.cancelled() => false,
            _ = ctx.kill.cancelled() => true,
        };
        *lock(&self.run) = None;
        if killed {
            self.kill_all().await;
        } else {
            self.stop_all().await;
        }
        Ok(())
    }

    /// Clears the previous run's workers, events and counters; called before a run starts, so
    /// nobody reads the old run's totals as the new one's.
    pub fn reset(&self) {
        lock(&self.workers).clear();
        lock(&self.events).clear();
        lock(&self.latest).clear();
        *lock(&self.confusion) = [[0; 3]; 3];
    }

    /// Starts one more worker in the group (a rebalance follows).
    pub fn add_worker(self: &Arc<Self>) -> Result<String, SentimentError> {
        let mut run = lock(&self.run);
        let Some(context) = run.as_mut().filter(|c| !c.cancel.is_cancelled()) else {
            return Err(SentimentError::NotRunning);
        };
        let alive = lock(&self.workers).values().filter(|w| w.running()).count();
        if alive >= usize::from(MAX_WORKERS) {
            return Err(
                ConfigError::new("workers", format!("at most {MAX_WORKERS} workers")).into(),
            );
        }
        let id = format!("{}{}", self.name_prefix, context.next_id);
        context.next_id += 1;
        let metrics = Arc::new(WorkerMetrics::default());
        let setup = worker::WorkerSetup {
            id: id.clone(),
            group: self.group(),
            kafka: context.kafka.clone(),
            classifier: context.classifier.clone(),
            slow: context.slow,
            dead_letter_after: context.dead_letter_after,
            runtime: self.clone(),
            metrics: metrics.clone(),
        };
        drop(run);
        // Kill-aware: a killed worker closes its Kafka clients itself, off the runtime threads.
        let life = Lifecycle::new(id.clone(), false, true);
        // Inserted before the loop starts, so its first rebalance callback finds it.
        let mut workers = lock(&self.workers);
        if let Err(error) = life.launch(serde_json::Value::Null, |ctx| worker::run(setup, ctx)) {
            tracing::error!(worker = %id, %error, "worker did not start");
        }
        workers.insert(
            id.clone(),
            WorkerEntry {
                life,
                partitions: Vec::new(),
                metrics,
                sampled: 0,
                started_at: now_ms(),
            },
        );
        drop(workers);
        self.event(&id, "started", Vec::new());
        Ok(id)
    }

    pub fn group(&self) -> String {
        lock(&self.group).clone()
    }

    /// Kills a worker abruptly, as a crash would: the batch it was working on is neither
    /// committed nor finished, so its partitions are re-read by the others (duplicates, not loss).
    pub fn kill_worker(&self, id: &str) -> Result<(), SentimentError> {
        let mut workers = lock(&self.workers);
        let Some(entry) = workers.get_mut(id).filter(|w| w.running()) else {
            return Err(SentimentError::UnknownWorker(id.to_owned()));
        };
        // Not `abort()`: the worker must close its Kafka clients off the runtime threads.
        let _ = entry.life.crash();
        entry.partitions.clear();
        drop(workers);
        self.registry.remove_member(&self.group(), id);
        self.event(id, "killed", Vec::new());
        Ok(())
    }

    /// The lifecycles of the workers still running.
    fn running(&self) -> Vec<(String, Arc<Lifecycle>)> {
        lock(&self.workers)
            .iter()
            .filter(|(_, w)| w.running())
            .map(|(id, w)| (id.clone(), w.life.clone()))
            .collect()
    }

    /// Stops every running worker at once (each finishes its batch, commits and leaves).
    async fn stop_all(&self) {
        let running = self.running();
        futures::future::join_all(running.iter().map(|(_, life)| life.stop())).await;
        for (id, _) in running {
            if let Some(entry) = lock(&self.workers).get_mut(&id) {
                entry.partitions.clear();
            }
            self.registry.remove_member(&self.group(), &id);
            self.event(&id, "stopped", Vec::new());
        }
    }

    /// Kills every running worker (the stage crashed) and waits until they have closed.
    async fn kill_all(&self) {
        let running = self.running();
        for (id, _) in &running {
            let _ = self.kill_worker(id);
        }
        futures::future::join_all(running.iter().map(|(_, life)| life.wait())).await;
    }

    /// Called by a worker whose loop failed: it holds no partitions any more.
    fn worker_failed(&self, id: &str) {
        if let Some(entry) = lock(&self.workers).get_mut(id) {
            entry.partitions.clear();
        }
        self.registry.remove_member(&self.group(), id);
        self.event(id, "failed", Vec::new());
    }

    fn event(&self, worker: &str, kind: &str, partitions: Vec<i32>) {
        let mut events = lock(&self.events);
        events.push_back(RebalanceEvent {
            at: now_ms(),
            worker: worker.to_owned(),
            kind: kind.to_owned(),
            partitions,
        });
        while events.len() > KEEP_EVENTS {
            events.pop_front();
        }
    }

    /// Called from a worker's rebalance callback.
    fn assignment_changed(&self, worker: &str, assigned: bool, partitions: Vec<i32>) {
        let mut workers = lock(&self.workers);
        // A killed worker's client may still report its last callbacks while it closes.
        let Some(entry) = workers.get_mut(worker).filter(|w| w.running()) else {
            return;
        };
        if assigned {
            entry.partitions.extend(&partitions);
            entry.partitions.sort_unstable();
            entry.partitions.dedup();
        } else {
            entry.partitions.retain(|p| !partitions.contains(p));
        }
        let labels = entry
            .partitions
            .iter()
            .map(|p| (TOPIC_REVIEWS.to_owned(), *p))
            .collect();
        self.registry.set_assignment(&self.group(), worker, labels);
        drop(workers);
        let kind = if assigned { "assigned" } else { "revoked" };
        self.event(worker, kind, partitions);
    }

    fn record_classified(&self, review: LatestReview) {
        // Stars 0: a record without stars (a tweet) has no expected label to count against.
        if review.stars > 0 {
            let expected = Sentiment::from_stars(review.stars).index();
            lock(&self.confusion)[expected][review.sentiment.index()] += 1;
        }
        let mut latest = lock(&self.latest);
        latest.push_front(review);
        latest.truncate(KEEP_LATEST);
    }

    /// Stage totals over all workers of the run, killed ones included (entries are kept until the
    /// next start, so totals never go backwards).
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let workers = lock(&self.workers);
        let alive = workers.values().filter(|w| w.running()).count() as u64;
        let mut totals: BTreeMap<String, u64> = WorkerMetrics::COUNTERS
            .iter()
            .map(|name| ((*name).to_owned(), 0))
            .collect();
        for entry in workers.values() {
            for (name, value) in entry.metrics.counter_values() {
                *totals.entry(name).or_default() += value;
            }
        }
        totals.insert("workers".to_owned(), alive);
        totals
    }

    /// The stage's per-review latency over the same workers as [`Self::counters`], so its count
    /// equals their `produced`.
    pub fn review_latency(&self) -> crate::histogram::StageLatency {
        let mut histogram = crate::histogram::HistogramSnapshot::default();
        for entry in lock(&self.workers).values() {
            histogram.add(&entry.metrics.latency.snapshot());
        }
        crate::histogram::StageLatency {
            metric: "pipebook_sentiment_review_latency_seconds",
            help: "From a review's timestamp in reviews (when the producer handed it over) to the broker's acknowledgement of its labelled record in reviews.sentiment: time waiting in the topic included (count = the sentiment stage's produced).",
            counter: "produced",
            histogram,
        }
    }

    /// The live view for the snapshot; rates are per second over `elapsed`.
    pub fn view(&self, elapsed: Duration) -> SentimentView {
        let seconds = elapsed.as_secs_f64().max(0.001);
        let mut workers = lock(&self.workers);
        let views = workers
            .iter_mut()
            .map(|(id, entry)| {
                let processed = entry.metrics.consumed.load(Ordering::Relaxed);
                let rate = (processed.saturating_sub(entry.sampled)) as f64 / seconds;
                entry.sampled = processed;
                let last_error = match entry.state() {
                    "failed" => entry.life.status(BTreeMap::new()).last_error,
                    _ => None,
                };
                WorkerView {
                    id: id.clone(),
                    state: entry.state().to_owned(),
                    partitions: entry.partitions.clone(),
                    processed,
                    rate: rate.round(),
                    last_error,
                }
            })
            .collect();
        drop(workers);
        SentimentView {
            group: self.group(),
            workers: views,
            rebalances: lock(&self.events).iter().rev().cloned().collect(),
            latest: lock(&self.latest).iter().cloned().collect(),
            confusion: *lock(&self.confusion),
        }
    }

    /// Every worker of the current run, for its heartbeat (`crate::members`): running ones
    /// heartbeat, stopped ones say goodbye, failed and killed ones fall silent as a crash does.
    pub fn reports(&self) -> Vec<MemberReport> {
        let group = self.group();
        lock(&self.workers)
            .iter()
            .map(|(id, entry)| MemberReport {
                stage: StageId::Sentiment,
                group: group.clone(),
                worker: id.clone(),
                partitions: entry.partitions.clone(),
                processed: entry.metrics.consumed.load(Ordering::Relaxed),
                errors: entry.metrics.dlq.load(Ordering::Relaxed),
                started_at: entry.started_at,
                ended: match entry.state() {
                    "running" | "paused" => None,
                    "stopped" => Some(Ended::Left),
                    _ => Some(Ended::Crashed),
                },
                output: None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_validated_naming_the_field() {
        let mut config = SentimentConfig::default();
        assert!(validate(&config).is_ok());
        config.workers = 9;
        let err = validate(&config).expect_err("too many");
        assert!(err.to_string().starts_with("workers"), "{err}");
        config.workers = 2;
        config.positive_threshold = -0.5;
        let err = validate(&config).expect_err("thresholds crossed");
        assert!(err.to_string().starts_with("positive_threshold:"), "{err}");
        config.positive_threshold = 0.05;
        config.negative_threshold = -2.0;
        let err = validate(&config).expect_err("out of range");
        assert!(err.to_string().starts_with("negative_threshold:"), "{err}");
        config.negative_threshold = -0.05;
        config.group = "a\u{0}b".to_owned();
        let err = validate(&config).expect_err("NUL in group");
        assert!(err.to_string().starts_with("group:"), "{err}");
        config.group = GROUP.to_owned();
        config.slow_ms = MAX_SLOW_MS + 1;
        let err = validate(&config).expect_err("too slow");
        assert!(err.to_string().starts_with("slow_ms:"), "{err}");
    }

    #[test]
    fn only_a_text_beyond_the_limit_fails_to_classify() {
        assert!(unclassifiable(&"a".repeat(MAX_TEXT_CHARS)).is_none());
        let reason = unclassifiable(&"é".repeat(MAX_TEXT_CHARS + 1)).expect("too long");
        assert!(reason.contains("20001 characters"), "{reason}");
    }

    #[tokio::test]
    async fn lexicon_classifier_labels_clear_cases() {
        let classifier = Classifier::from_config(ClassifierChoice::Lexicon, Thresholds::default())
            .expect("lexicon");
        let good = classifier
            .classify("The food was absolutely delicious!")
            .await;
        assert_eq!(good.sentiment, Sentiment::Positive);
        let bad = classifier
            .classify("Rude staff and cold, bland food.")
            .await;
        assert_eq!(bad.sentiment, Sentiment::Negative);
        assert_eq!(bad.classifier, ClassifierKind::Lexicon);
    }

    /// A lifecycle whose loop runs until stopped.
    fn running_lifecycle() -> Arc<Lifecycle> {
        let life = Lifecycle::new("worker-1", false, true);
        life.launch(serde_json::Value::Null, |ctx: StageContext| async move {
            ctx.cancel.cancelled().await;
            Ok::<_, String>(())
        })
        .expect("launch");
        life
    }

    /// A worker whose loop fails (here: its Kafka client cannot even be created) used to log
    /// and stay `running`; it is `failed`, with its error, and holds no partitions.
    #[tokio::test]
    async fn a_worker_whose_loop_fails_shows_failed_with_its_error() {
        let runtime = SentimentRuntime::new(Arc::default());
        let kafka = KafkaSettings {
            bootstrap_servers: "127.0.0.1:9".into(),
            security: crate::kafka::KafkaSecurity {
                protocol: "NOT_A_PROTOCOL".into(),
                ..Default::default()
            },
            topic_partitions: 1,
        };
        let classifier = Arc::new(
            Classifier::from_config(ClassifierChoice::Lexicon, Thresholds::default())
                .expect("lexicon"),
        );
        let stage = Lifecycle::new("sentiment", false, true);
        let run = runtime.clone();
        stage
            .launch(serde_json::Value::Null, move |ctx| {
                run.run(SentimentConfig::default(), classifier, kafka, ctx)
            })
            .expect("launch");
        let mut view = runtime.view(Duration::from_secs(1));
        for _ in 0..500 {
            view = runtime.view(Duration::from_secs(1));
            if view.workers.first().is_some_and(|w| w.state != "running") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let worker = view.workers.first().expect("one worker");
        assert_eq!(worker.state, "failed");
        let error = worker.last_error.as_deref().unwrap_or_default();
        assert!(error.contains("security.protocol"), "{error}");
        assert!(view.rebalances.iter().any(|e| e.kind == "failed"));
        assert_eq!(runtime.counters()["workers"], 0);
        stage.stop().await.expect("stop");
    }

    #[tokio::test]
    async fn assignments_feed_the_registry_and_the_timeline() {
        let registry = Arc::new(GroupRegistry::default());
        let runtime = SentimentRuntime::new(registry);
        lock(&runtime.workers).insert(
            "worker-1".into(),
            WorkerEntry {
                life: running_lifecycle(),
                partitions: Vec::new(),
                metrics: Arc::default(),
                sampled: 0,
                started_at: 0,
            },
        );
        runtime.assignment_changed("worker-1", true, vec![2, 0]);
        runtime.assignment_changed("worker-1", false, vec![2]);
        let view = runtime.view(Duration::from_secs(1));
        assert_eq!(view.workers[0].partitions, vec![0]);
        let kinds: Vec<&str> = view.rebalances.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["revoked", "assigned"]);
    }
}
