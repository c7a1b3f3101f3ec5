//! `pipebook worker --stage sentiment|indexer|parquet|aggregate`: one stage's run loop in a process of its own, on
//! any machine that reaches the brokers, joining the same consumer group as the server's
//! in-process workers. Kafka spreads the partitions over every member, wherever it runs, and
//! moves a dead member's partitions to the survivors: no coordinator of our own.
//!
//! The loop is the server's own ([`Slot`] over the same [`SentimentStage`], [`IndexerStage`], …:
//! the same validation, the same workers, the same commit-after-acknowledgement), so what the
//! server's workers promise (at-least-once, nothing lost on `kill -9`) holds here too. The process heartbeats its
//! workers on `pipebook.workers` ([`crate::members`]), which is how the notebook lists it.
//! Ctrl-C or SIGTERM stops it cleanly: each worker finishes its batch, commits, leaves the group,
//! and the process says goodbye.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use app::api::{
    AggregateConfig, ClassifierChoice, GROUP_INDEXER, IndexerConfig, ParquetConfig, SentimentConfig,
};
use tokio_util::sync::CancellationToken;

use crate::aggregate::{self, parquet};
use crate::config::{ConfigError, KafkaArgs, SearchArgs};
use crate::index::indexer;
use crate::index::{Backend, SearchError, SearchSettings};
use crate::kafka::KafkaSettings;
use crate::kafka::admin::ensure_topics;
use crate::kafka::inspect::Inspector;
use crate::members::{self, Identity};
use crate::pipeline::{EngineError, topic_specs};
use crate::sentiment::{self, SentimentRuntime};
use crate::stages::{AggregateStage, Control, IndexerStage, ParquetStage, SentimentStage, Slot};

/// How often the process checks that its workers still run, and logs its progress.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
const PROGRESS_EVERY: u32 = 10;

#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// The stage whose run loop this process runs.
    #[arg(long, value_enum)]
    pub stage: WorkerStage,

    /// Consumer group to join; default: the stage's, the one the server's workers are in.
    #[arg(long, env = "PIPEBOOK_WORKER_GROUP")]
    pub group: Option<String>,

    /// Group members this process runs (each a consumer of its own), 1..=8.
    #[arg(long, default_value_t = 1)]
    pub workers: u8,

    /// sentiment: the classifier; `llm` reads the PIPEBOOK_LLM_* variables.
    #[arg(long, value_enum, default_value_t = ClassifierArg::Lexicon)]
    pub classifier: ClassifierArg,

    /// sentiment: compound score at or above which a review is POSITIVE.
    #[arg(long, default_value_t = 0.05, allow_negative_numbers = true)]
    pub positive_threshold: f64,

    /// sentiment: compound score at or below which a review is NEGATIVE.
    #[arg(long, default_value_t = -0.05, allow_negative_numbers = true)]
    pub negative_threshold: f64,

    /// The brokers (`--brokers host:port`, or PIPEBOOK_KAFKA_BROKERS) and their security
    /// settings, as for `pipebook serve` with an external cluster.
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// indexer: the Elasticsearch the server searches (`--elasticsearch-url`, …); required, as
    /// the embedded index lives in the server's data dir.
    #[command(flatten)]
    pub search: SearchArgs,

    /// parquet: where this process writes its files (`date=…/`, `tweets/date=…/`), on its own
    /// disk: each member writes the records of the partitions it holds.
    #[arg(long, default_value = "parquet")]
    pub parquet_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkerStage {
    Sentiment,
    Indexer,
    Parquet,
    Aggregate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClassifierArg {
    /// VADER, offline.
    Lexicon,
    /// An OpenAI-compatible endpoint (PIPEBOOK_LLM_*), falling back to the lexicon.
    Llm,
    /// TextBlob's pattern lexicon, offline.
    Textblob,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Search(#[from] SearchError),
    #[error("every worker of this process failed: {0}")]
    Failed(String),
}

impl WorkerArgs {
    /// The brokers, checked; required here (a worker has no embedded broker of its own).
    pub fn kafka(&self) -> Result<KafkaSettings, ConfigError> {
        self.kafka.external()?.ok_or_else(|| {
            ConfigError::new(
                "PIPEBOOK_KAFKA_BROKERS",
                "required: --brokers host:port (the workbench shows its broker's address in \
                 cell 2)",
            )
        })
    }

    /// The sentiment stage's config these flags say; checked by the stage's own validation.
    pub fn sentiment_config(&self) -> SentimentConfig {
        SentimentConfig {
            workers: self.workers,
            classifier: match self.classifier {
                ClassifierArg::Lexicon => ClassifierChoice::Lexicon,
                ClassifierArg::Llm => ClassifierChoice::Llm,
                ClassifierArg::Textblob => ClassifierChoice::TextBlob,
            },
            positive_threshold: self.positive_threshold,
            negative_threshold: self.negative_threshold,
            group: self
                .group
                .clone()
                .unwrap_or_else(|| sentiment::GROUP.to_owned()),
            slow_ms: 0,
            dead_letter_after: SentimentConfig::default().dead_letter_after,
        }
    }
}

/// Runs the worker until `shutdown` resolves (or every worker of the process failed).
pub async fn run(
    args: WorkerArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), WorkerError> {
    let (stage, body) = match args.stage {
        WorkerStage::Sentiment => sentiment_stage(&args)?,
        WorkerStage::Indexer => indexer_stage(&args)?,
        WorkerStage::Parquet => parquet_stage(&args)?,
        WorkerStage::Aggregate => aggregate_stage(&args)?,
    };
    run_stage(stage, body, args.kafka()?, shutdown).await
}

/// The sentiment stage as the server runs it, its workers named `p<pid>-worker-N`.
fn sentiment_stage(
    args: &WorkerArgs,
) -> Result<(Box<dyn Control>, serde_json::Value), WorkerError> {
    let config = args.sentiment_config();
    sentiment::validate(&config)?;
    let runtime = SentimentRuntime::with_name_prefix(
        Arc::default(),
        &format!("p{}-worker-", std::process::id()),
    );
    let stage = Slot::boxed(SentimentStage {
        kafka: args.kafka()?,
        runtime,
    });
    Ok((stage, serde_json::to_value(&config).unwrap_or_default()))
}

/// The group of a stage that runs one member per process (`--group`, else `default`); refuses
/// `--workers` other than 1.
fn one_member_group(args: &WorkerArgs, stage: &str, default: &str) -> Result<String, ConfigError> {
    if args.workers != 1 {
        return Err(ConfigError::new(
            "workers",
            format!("{stage} runs one member per process"),
        ));
    }
    Ok(args.group.clone().unwrap_or_else(|| default.to_owned()))
}

/// The indexer as the server runs it, writing to the Elasticsearch the server searches.
fn indexer_stage(args: &WorkerArgs) -> Result<(Box<dyn Control>, serde_json::Value), WorkerError> {
    let config = IndexerConfig {
        group: one_member_group(args, "the indexer", GROUP_INDEXER)?,
        ..IndexerConfig::default()
    };
    indexer::validate(&config)?;
    let search = args.search.settings()?;
    if matches!(search, SearchSettings::Embedded) {
        return Err(ConfigError::new(
            "PIPEBOOK_ELASTICSEARCH_URL",
            "required for --stage indexer: the embedded index lives in the server's data dir, so \
             the server and its indexer processes must share one Elasticsearch",
        )
        .into());
    }
    let backend = Backend::open(&search, Path::new("."))?;
    let stage = Slot::boxed(IndexerStage {
        kafka: args.kafka()?,
        registry: Arc::default(),
        backend,
        metrics: Arc::default(),
        member: format!("p{}-indexer", std::process::id()),
    });
    Ok((stage, serde_json::to_value(&config).unwrap_or_default()))
}

/// The Parquet sink as the server runs it, writing under `--parquet-dir` on this machine.
fn parquet_stage(args: &WorkerArgs) -> Result<(Box<dyn Control>, serde_json::Value), WorkerError> {
    let mut config = ParquetConfig::default();
    config.group = one_member_group(args, "the Parquet sink", &config.group)?;
    parquet::validate(&config)?;
    let stage = Slot::boxed(ParquetStage {
        kafka: args.kafka()?,
        root: args.parquet_dir.clone(),
        registry: Arc::default(),
        metrics: Arc::default(),
        member: format!("p{}-parquet", std::process::id()),
    });
    Ok((stage, serde_json::to_value(&config).unwrap_or_default()))
}

/// The aggregate stage as the server runs it, with the default window settings (a member must
/// count as every other member of its group does: the changelog's state records carry the
/// settings, and a partition restored under other settings starts over). Its window state
/// lives per input partition in `pipebook.aggregate.changelog`, so the partitions this process
/// is assigned are restored from there, and handed on from there when it leaves or dies.
fn aggregate_stage(
    args: &WorkerArgs,
) -> Result<(Box<dyn Control>, serde_json::Value), WorkerError> {
    let mut config = AggregateConfig::default();
    config.group = one_member_group(args, "the aggregate stage", &config.group)?;
    aggregate::validate(&config)?;
    let stage = Slot::boxed(AggregateStage {
        kafka: args.kafka()?,
        registry: Arc::default(),
        metrics: Arc::default(),
        member: format!("p{}-aggregate", std::process::id()),
    });
    Ok((stage, serde_json::to_value(&config).unwrap_or_default()))
}

/// Starts `stage`, heartbeats for its workers, and stops it cleanly on `shutdown`.
async fn run_stage(
    stage: Box<dyn Control>,
    body: serde_json::Value,
    kafka: KafkaSettings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), WorkerError> {
    create_missing_topics(&kafka).await;
    stage.start(body).await?;
    let stage: Arc<dyn Control> = Arc::from(stage);
    tracing::info!(
        stage = %stage.id(),
        brokers = %kafka.bootstrap_servers,
        pid = std::process::id(),
        "worker process started"
    );
    let heartbeats = CancellationToken::new();
    let reports = stage.clone();
    let publisher = tokio::spawn(members::publish(
        kafka,
        Identity::this_process(false),
        Arc::new(move || reports.member_reports()),
        heartbeats.clone(),
    ));

    let outcome = tokio::select! {
        _ = shutdown => Ok(()),
        failed = all_ended(stage.as_ref()) => Err(WorkerError::Failed(failed)),
    };
    // Each worker finishes its batch, commits what it delivered and leaves the group; then the
    // goodbyes go out.
    tracing::info!("leaving the group");
    if let Err(error) = stage.stop().await {
        tracing::debug!(%error, "stopping the stage");
    }
    heartbeats.cancel();
    let _ = publisher.await;
    if let Some(status) = stage.status() {
        tracing::info!(counters = ?status.counters, "worker process stopped");
    }
    outcome
}

/// The topics exist when the workbench made them; on a cluster of one's own this makes the ones
/// missing (asking for existing ones would make the broker log an error per topic). Refused (a
/// hosted cluster's ACLs) or unlistable is not fatal: whoever owns the cluster made them.
async fn create_missing_topics(kafka: &KafkaSettings) {
    let existing: Vec<String> = match Inspector::new(kafka.clone(), Arc::default()) {
        Ok(inspector) => match inspector.topics().await {
            Ok(topics) => topics.into_iter().map(|t| t.name).collect(),
            Err(error) => {
                tracing::warn!(%error, "cannot list the topics; using them as they are");
                return;
            }
        },
        Err(error) => {
            tracing::warn!(%error, "cannot list the topics; using them as they are");
            return;
        }
    };
    let missing: Vec<_> = topic_specs(kafka.topic_partitions)
        .into_iter()
        .filter(|spec| !existing.contains(&spec.name))
        .collect();
    if missing.is_empty() {
        return;
    }
    if let Err(error) = ensure_topics(kafka, &missing).await {
        tracing::warn!(%error, "cannot create Pipebook's topics; using them as they are");
    }
}

/// Resolves once none of the stage's workers runs any more (each failed), with why; logs the
/// members' figures every [`PROGRESS_EVERY`] seconds meanwhile.
async fn all_ended(stage: &dyn Control) -> String {
    let mut ticks = 0u32;
    loop {
        tokio::time::sleep(WATCH_INTERVAL).await;
        let reports = stage.member_reports();
        let ended = !reports.is_empty() && reports.iter().all(|r| r.ended.is_some());
        if ended || !stage.is_active() {
            return stage
                .status()
                .and_then(|s| s.last_error)
                .unwrap_or_else(|| "every worker stopped (see the errors above)".to_owned());
        }
        ticks += 1;
        if ticks.is_multiple_of(PROGRESS_EVERY) {
            for report in &reports {
                tracing::info!(
                    worker = %report.worker,
                    partitions = ?report.partitions,
                    processed = report.processed,
                    "progress"
                );
            }
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return ctrl_c.await.unwrap_or(()),
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        worker: WorkerArgs,
    }

    fn parse(args: &[&str]) -> Result<WorkerArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("worker").chain(args.iter().copied()))
            .map(|cli| cli.worker)
    }

    #[test]
    fn defaults_join_the_servers_group_with_the_lexicon() {
        let args = parse(&["--stage", "sentiment", "--brokers", "127.0.0.1:9092"]).expect("ok");
        let config = args.sentiment_config();
        assert_eq!(config.group, sentiment::GROUP);
        assert_eq!(config.classifier, ClassifierChoice::Lexicon);
        assert_eq!(config.workers, 1);
        assert_eq!(
            args.kafka().expect("brokers").bootstrap_servers,
            "127.0.0.1:9092"
        );
    }

    #[tokio::test]
    async fn bad_settings_are_refused_naming_the_field() {
        let args =
            parse(&["--stage", "sentiment", "--workers", "9", "--brokers", "h:1"]).expect("parses");
        let error = run(args, std::future::pending())
            .await
            .expect_err("9 workers");
        assert!(error.to_string().starts_with("workers:"), "{error}");

        let args = parse(&[
            "--stage",
            "sentiment",
            "--positive-threshold",
            "-0.5",
            "--brokers",
            "h:1",
        ])
        .expect("parses");
        let error = run(args, std::future::pending())
            .await
            .expect_err("crossed");
        assert!(
            error.to_string().starts_with("positive_threshold:"),
            "{error}"
        );

        let args = parse(&["--stage", "sentiment", "--brokers", "no-port"]).expect("parses");
        let error = run(args, std::future::pending())
            .await
            .expect_err("no port");
        assert!(
            error.to_string().starts_with("PIPEBOOK_KAFKA_BROKERS:"),
            "{error}"
        );

        let args = parse(&["--stage", "indexer", "--brokers", "h:1"]).expect("parses");
        let error = run(args, std::future::pending()).await.expect_err("no ES");
        assert!(
            error.to_string().starts_with("PIPEBOOK_ELASTICSEARCH_URL:"),
            "{error}"
        );

        let args =
            parse(&["--stage", "aggregate", "--brokers", "h:1", "--workers", "2"]).expect("parses");
        let error = run(args, std::future::pending()).await.expect_err("one");
        assert!(error.to_string().starts_with("workers:"), "{error}");

        let args =
            parse(&["--stage", "parquet", "--brokers", "h:1", "--workers", "3"]).expect("parses");
        let error = run(args, std::future::pending()).await.expect_err("one");
        assert!(error.to_string().starts_with("workers:"), "{error}");
        assert!(parse(&["--stage", "nope"]).is_err());
    }
}
