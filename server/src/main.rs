//! `pipebook`: serves the notebook UI and the control API, and runs the pipeline engine.

use std::sync::Arc;

use anyhow::Context;
use app::{App, shell};
use axum::Router;
use clap::{Parser, Subcommand};
use leptos::config::get_configuration;
use leptos_axum::{LeptosRoutes, generate_route_list};
use pipebook::config::ServeArgs;
use pipebook::pipeline::{Engine, EngineSettings};
use tower_http::compression::CompressionLayer;

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
    Serve(ServeArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tansu=warn,libsql=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Serve(args)) => serve(args).await,
        None => serve(cli.serve).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = EngineSettings::from_args(&args).context("invalid configuration")?;
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
    let routes = generate_route_list(App);
    let ui = Router::new()
        .leptos_routes(&leptos_options, routes, {
            let options = leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler(shell))
        .with_state(leptos_options);
    let router = pipebook::api::router(engine.clone())
        .merge(ui)
        .layer(CompressionLayer::new());

    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {} (set PIPEBOOK_ADDR)", args.addr))?;
    tracing::info!("Pipebook is serving http://{}", listener.local_addr()?);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal(engine.clone()))
        .await
        .context("server failed")?;
    engine.shutdown().await;
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM, then ends the live feeds so the server can drain.
async fn shutdown_signal(engine: Arc<Engine>) {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return ctrl_c.await.unwrap_or(()),
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    engine.closing().cancel();
}
