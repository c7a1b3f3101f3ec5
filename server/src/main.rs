//! `pipebook`: serves the notebook UI and the control API, and runs the pipeline engine.

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use leptos::config::get_configuration;
use pipebook::access::Access;
use pipebook::config::ServeArgs;
use pipebook::pipeline::{Engine, EngineSettings};
use pipebook::sentiment::eval::{EvalClassifier, evaluate};
use pipebook::sentiment::lexicon::{LexiconClassifier, Thresholds};
use pipebook::sentiment::llm::{LlmClassifier, LlmConfig};
use pipebook::sentiment::textblob::TextBlobClassifier;
use pipebook::worker::{WorkerArgs, stop_signal};

#[derive(Debug, Parser)]
#[command(
    name = "pipebook",
    version,
    about = "A notebook that runs a real streaming pipeline"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the notebook (the default).
    Serve(Box<ServeArgs>),
    /// Score a sentiment classifier on a labelled file (one `text TAB 0|1` a line).
    Eval(EvalArgs),
    /// Measure pipeline throughput on an embedded broker (see docs/benchmarks.md).
    Bench(BenchArgs),
    /// Run one stage's workers in this process, joining its consumer group on any Kafka
    /// (docs/architecture.md, "Worker processes").
    Worker(Box<WorkerArgs>),
}

#[derive(Debug, clap::Args)]
struct EvalArgs {
    /// Labelled file, e.g. ../shared/data/yelp_labelled.txt (1 = positive, 0 = negative).
    file: std::path::PathBuf,
    /// Classifier to score; `llm` reads the PIPEBOOK_LLM_* environment variables.
    #[arg(long, value_enum, default_value_t = EvalClassifierArg::Lexicon)]
    classifier: EvalClassifierArg,
    /// Score (VADER compound or TextBlob polarity) at or above which a text is POSITIVE.
    #[arg(long, default_value_t = pipebook::sentiment::lexicon::DEFAULT_POSITIVE, allow_negative_numbers = true)]
    positive_threshold: f64,
    /// Score at or below which a text is NEGATIVE.
    #[arg(long, default_value_t = pipebook::sentiment::lexicon::DEFAULT_NEGATIVE, allow_negative_numbers = true)]
    negative_threshold: f64,
    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum EvalClassifierArg {
    /// VADER's compound score cut by the thresholds, offline.
    Lexicon,
    /// TextBlob's polarity (pattern lexicon) cut by the thresholds, offline.
    Textblob,
    /// An OpenAI-compatible endpoint; reviews it fails on fall back to the lexicon.
    Llm,
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Reviews per measurement.
    #[arg(long, default_value_t = 100_000)]
    n: u64,
    /// Tiny sizes, to check the harness works (CI).
    #[arg(long)]
    smoke: bool,
    /// Write results.md and results.json here.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Python interpreter with vaderSentiment, confluent-kafka and pandas: runs the baselines
    /// (scripts/bench sets up .tools/bench-venv and passes it).
    #[arg(long)]
    python: Option<std::path::PathBuf>,
    /// Where the baseline scripts are.
    #[arg(long, default_value = "scripts")]
    scripts: std::path::PathBuf,
    /// Instead: the live feed shared by this many viewers (a server of its own, every stage
    /// running; see docs/benchmarks.md, "Live feed for a room").
    #[arg(long)]
    viewers: Option<usize>,
    /// --viewers: length of each phase (no viewer, viewers, no viewer), seconds;
    /// --worker-processes: length of the latency phase.
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// --viewers: how long every stage runs before the first phase, seconds.
    #[arg(long, default_value_t = 60)]
    warmup: u64,
    /// --viewers, --worker-processes: the pipebook binary to run (default: this one).
    #[arg(long)]
    server: Option<std::path::PathBuf>,
    /// --viewers: viewers do not accept gzip.
    #[arg(long)]
    no_gzip: bool,
    /// --viewers, --worker-processes: streamer rate, reviews/s.
    #[arg(long, default_value_t = 1_000)]
    rate: u32,
    /// Instead of the embedded broker, a broker process of another make for every measurement
    /// that needs a fresh broker: a command line run by `sh -c`, with `{addr}` and `{data}`
    /// standing for a free 127.0.0.1 port and a new data dir (the broker bake-off in
    /// docs/benchmarks.md).
    #[arg(long)]
    broker_cmd: Option<String>,
    /// Instead: the sentiment stage as this many `pipebook worker` processes, each count on a
    /// fresh embedded broker, e.g. `1,2,3`: reviews/s over a backlog of `--n`, then p50 / p99
    /// latency at `--rate` reviews/s for `--secs` (docs/benchmarks.md).
    #[arg(long, value_delimiter = ',')]
    worker_processes: Vec<u8>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // librdkafka reports every refused reconnect at ERROR; the UI shows the cluster's
                // state instead, and RUST_LOG=librdkafka=debug brings them back.
                .unwrap_or_else(|_| {
                    "info,tansu=warn,libsql=warn,librdkafka=off,rdkafka::client=off".into()
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Serve(args)) => serve(*args).await,
        Some(Command::Bench(args)) => bench(args).await,
        Some(Command::Eval(args)) => eval(args).await,
        Some(Command::Worker(args)) => Ok(pipebook::worker::run(*args, stop_signal()).await?),
        None => serve(cli.serve).await,
    }
}

/// `pipebook eval FILE [--classifier lexicon|textblob|llm] [--json]`.
async fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let thresholds = Thresholds {
        positive: args.positive_threshold,
        negative: args.negative_threshold,
    };
    thresholds
        .validate()
        .map_err(|e| anyhow::anyhow!("--{}-threshold: {}", e.field, e.message))?;
    let classifier = match args.classifier {
        EvalClassifierArg::Lexicon => EvalClassifier::Lexicon(LexiconClassifier::new(thresholds)),
        EvalClassifierArg::Textblob => {
            EvalClassifier::TextBlob(TextBlobClassifier::new(thresholds))
        }
        EvalClassifierArg::Llm => {
            let config = LlmConfig::from_env()
                .context("--classifier llm needs the PIPEBOOK_LLM_* settings")?;
            EvalClassifier::Llm(LlmClassifier::new(config).context("invalid LLM settings")?)
        }
    };
    let report = evaluate(&args.file, &classifier).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(viewers) = args.viewers {
        return bench_viewers(viewers, args).await;
    }
    if !args.worker_processes.is_empty() {
        return bench_worker_processes(args).await;
    }
    let python = args
        .python
        .map(|interpreter| pipebook::bench::baseline::Python {
            interpreter,
            scripts: args.scripts.clone(),
        });
    let broker = args
        .broker_cmd
        .map(pipebook::bench::broker_process::BrokerCommand);
    let options = if args.smoke {
        pipebook::bench::BenchOptions {
            n: 2_000,
            window_events: 20_000,
            latency_loads: vec![(1_000, 2)],
            python,
            broker,
        }
    } else {
        pipebook::bench::BenchOptions {
            n: args.n,
            window_events: pipebook::bench::WINDOW_EVENTS,
            latency_loads: vec![(1_000, 20), (10_000, 10)],
            python,
            broker,
        }
    };
    let dir = tempfile::tempdir().context("cannot create a temporary data dir")?;
    let results = pipebook::bench::run(dir.path(), &options)
        .await
        .context("benchmark failed")?;
    let table = pipebook::bench::to_markdown(&results);
    write_results(&table, &results, args.out.as_deref(), "results")
}

/// `pipebook bench --worker-processes 1,2,3`: the sentiment stage as separate processes.
async fn bench_worker_processes(args: BenchArgs) -> anyhow::Result<()> {
    let options = pipebook::bench::worker_processes::WorkerBenchOptions {
        processes: args.worker_processes,
        n: args.n,
        rate: args.rate,
        secs: args.secs,
        binary: server_binary(args.server)?,
    };
    let dir = tempfile::tempdir().context("cannot create a temporary data dir")?;
    let results = pipebook::bench::worker_processes::run(dir.path(), &options)
        .await
        .context("worker benchmark failed")?;
    let table = pipebook::bench::to_markdown(&results);
    write_results(&table, &results, args.out.as_deref(), "workers")
}

/// Prints the table; with `--out`, writes it as `NAME.md` and `results` as `NAME.json` there too.
fn write_results(
    table: &str,
    results: &impl serde::Serialize,
    out: Option<&std::path::Path>,
    name: &str,
) -> anyhow::Result<()> {
    println!("{table}");
    if let Some(out) = out {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        std::fs::write(out.join(format!("{name}.md")), table)?;
        std::fs::write(
            out.join(format!("{name}.json")),
            serde_json::to_string_pretty(results)?,
        )?;
    }
    Ok(())
}

/// The `pipebook` binary `--server` names, or this one.
fn server_binary(server: Option<std::path::PathBuf>) -> anyhow::Result<std::path::PathBuf> {
    match server {
        Some(binary) => Ok(binary),
        None => std::env::current_exe().context("cannot find this binary"),
    }
}

/// `pipebook bench --viewers N`: the live feed shared by a room.
async fn bench_viewers(viewers: usize, args: BenchArgs) -> anyhow::Result<()> {
    let server = server_binary(args.server)?;
    let options = pipebook::bench::viewers::ViewerOptions {
        viewers,
        secs: args.secs,
        warmup_secs: args.warmup,
        server,
        gzip: !args.no_gzip,
        rate: args.rate,
    };
    let report = pipebook::bench::viewers::run(&options)
        .await
        .context("viewer benchmark failed")?;
    write_results(
        &report.to_markdown(),
        &report,
        args.out.as_deref(),
        "viewers",
    )
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = EngineSettings::from_args(&args).context("invalid configuration")?;
    // Checked before anything starts, so a bad token is refused without touching the broker.
    args.access
        .settings(args.addr)
        .context("invalid configuration")?;
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("cannot create data dir {}", settings.data_dir.display()))?;
    let engine = Engine::start(settings)
        .await
        .context("cannot start the pipeline engine")?;

    let mut leptos_options = get_configuration(None)
        .context("cannot read Leptos settings")?
        .leptos_options;
    if leptos_options.output_name.is_empty() {
        leptos_options.output_name = Arc::from("pipebook");
    }
    leptos_options.site_addr = args.addr;

    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {} (set PIPEBOOK_ADDR)", args.addr))?;
    let bound = listener.local_addr()?;
    let access = Arc::new(Access::new(
        args.access
            .settings(bound)
            .context("invalid configuration")?,
    ));
    announce(&access, bound);
    let router = pipebook::web::router(engine.clone(), access, leptos_options);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal(engine.clone()))
        .await
        .context("server failed")?;
    engine.shutdown().await;
    Ok(())
}

/// Says where to open the notebook. Links with tokens go to the terminal (stdout), never to the
/// log: whoever can read the terminal started the server; logs are shipped and kept.
fn announce(access: &Access, bound: std::net::SocketAddr) {
    if access.exposed() {
        tracing::warn!(
            "Pipebook listens on {bound}, reachable from other machines: every request needs a \
             token (the links are printed on standard output)"
        );
    }
    match access.links() {
        Some((operator, viewer)) => {
            println!("\nPipebook is serving {bound}. Open the notebook with:\n");
            println!("    operator (can change the pipeline): {operator}");
            println!("    viewer   (read-only, for a room):   {viewer}\n");
        }
        None => {
            println!("\nPipebook is serving: open http://{bound}/\n");
            tracing::info!("Pipebook is serving http://{bound}");
        }
    }
}

/// Waits for Ctrl-C or SIGTERM, then ends the live feeds so the server can drain.
async fn shutdown_signal(engine: Arc<Engine>) {
    stop_signal().await;
    tracing::info!("shutting down");
    engine.closing().cancel();
}
