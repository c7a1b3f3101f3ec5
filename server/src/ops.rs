//! The operator's routes (documented in `docs/api.md`): a group's lag history, offset resets,
//! a topic's live tail and `/metrics`. Kept apart from `api.rs` so the two change independently; `api::router`
//! merges [`routes`].

use std::sync::Arc;
use std::time::Duration;

use app::api::StageState;
use app::ops::{GroupLagHistory, ResetOutcome, ResetRequest, TopicSchema};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::api::JsonBody;
use crate::error::ConfigError;
use crate::kafka::reset::{self, ResetError};
use crate::kafka::schema;
use crate::kafka::tail::{self, TailPlan, TailQuery};
use crate::pipeline::{Engine, EngineError};
use futures::StreamExt;

pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/api/kafka/groups/{group}/lag", get(group_lag))
        .route("/api/kafka/groups/{group}/reset", post(reset_group))
        .route("/api/kafka/topics/{topic}/tail", get(tail_topic))
        .route("/api/kafka/topics/{topic}/tail/check", get(check_tail))
        .route("/api/kafka/topics/{topic}/schema", get(topic_schema))
        .route("/metrics", get(metrics))
}

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(
        "no lag history for group {0:?}: it is sampled once a second while the group is listed"
    )]
    NoHistory(String),
    #[error(transparent)]
    Reset(#[from] ResetError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl IntoResponse for OpsError {
    fn into_response(self) -> Response {
        crate::error::ApiError::from(self).into_response()
    }
}

/// `GET /api/kafka/groups/{group}/lag`: lag now, per partition in records and seconds, and the
/// history the server kept.
async fn group_lag(
    State(engine): State<Arc<Engine>>,
    Path(group): Path<String>,
) -> Result<Json<GroupLagHistory>, OpsError> {
    engine
        .lag_book()
        .history(&group)
        .map(Json)
        .ok_or(OpsError::NoHistory(group))
}

/// `POST /api/kafka/groups/{group}/reset`: dry run or execution of an offset reset.
async fn reset_group(
    State(engine): State<Arc<Engine>>,
    Path(group): Path<String>,
    JsonBody(request): JsonBody<ResetRequest>,
) -> Result<Json<ResetOutcome>, OpsError> {
    let outcome = reset::reset(engine.kafka(), engine.inspector(), &group, request).await?;
    let sentiment_group = engine.subscribe().borrow().sentiment.group.clone();
    if outcome.executed && group == sentiment_group {
        engine.record_action(crate::lesson::Action::ResetSentimentGroup);
    }
    Ok(Json(outcome))
}

/// `GET /metrics`: Prometheus' text format. Stage counters are read now; topics and groups come
/// from the latest once-a-second sample (so a scrape costs no broker request).
async fn metrics(State(engine): State<Arc<Engine>>) -> Response {
    let live = engine.pipeline_status();
    let snapshot = engine.subscribe().borrow().clone();
    let broker_up =
        live.kafka.state == StageState::Running && snapshot.pipeline.kafka.last_error.is_none();
    let latencies = engine.latencies();
    let text = crate::metrics::render(&live, &latencies, &snapshot, broker_up);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

/// The checks every tail request passes, in order: the query's values (400 naming the field),
/// the topic (404); then the plan and the topic's partitions. Shared by [`tail_topic`] and
/// [`check_tail`], so the server stays the one place that judges a tail request.
async fn checked_tail(
    engine: &Engine,
    topic: &str,
    query: Result<Query<TailQuery>, QueryRejection>,
) -> Result<(TailPlan, Vec<i32>), OpsError> {
    let Query(query) = query.map_err(|e| EngineError::BadRequest(e.body_text()))?;
    let now = chrono::Utc::now().timestamp_millis();
    let plan = query.plan(now).map_err(EngineError::BadRequest)?;
    let count = engine.partition_count(topic).await?;
    Ok((plan, (0..count).collect()))
}

/// `GET /api/kafka/topics/{topic}/tail/check`: 204 when the same query to `…/tail` would open a
/// tail now, else the error it would get. A browser's `EventSource` cannot read a refusal's
/// body, so cell 2 asks here once after a refused stream to show the learner the reason.
async fn check_tail(
    State(engine): State<Arc<Engine>>,
    Path(topic): Path<String>,
    query: Result<Query<TailQuery>, QueryRejection>,
) -> Result<StatusCode, OpsError> {
    checked_tail(&engine, &topic, query).await?;
    tail::has_room().map_err(EngineError::Busy)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/kafka/topics/{topic}/tail`: new records as server-sent events (`event: record`),
/// filtered on the server and paced per viewer; 429 past [`tail::MAX_TAILS`] open tails.
async fn tail_topic(
    State(engine): State<Arc<Engine>>,
    Path(topic): Path<String>,
    query: Result<Query<TailQuery>, QueryRejection>,
) -> Result<Response, OpsError> {
    let (plan, partitions) = checked_tail(&engine, &topic, query).await?;
    let permit = tail::try_open().map_err(EngineError::Busy)?;
    // A small channel: the reader waits for the viewer instead of queueing for it.
    let (sender, receiver) = tokio::sync::mpsc::channel(32);
    let kafka = engine.kafka().clone();
    let cancel = engine.closing().child_token();
    let stop = cancel.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(error) = tail::run(&kafka, &topic, &partitions, &plan, &sender, &cancel, permit)
        {
            tracing::debug!(%error, topic, "tail ended");
        }
    });
    let events = tokio_stream::wrappers::ReceiverStream::new(receiver)
        .map(|message| {
            let json = serde_json::to_string(&message).unwrap_or_default();
            Ok::<_, std::convert::Infallible>(Event::default().event("record").data(json))
        })
        .take_until(stop.cancelled_owned());
    // A viewer that left is noticed at the next write: a keep-alive every 5 s frees its place
    // (and its consumer) within seconds on a quiet topic.
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(5)))
        .into_response())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaQuery {
    #[serde(default = "default_sample")]
    sample: usize,
}

fn default_sample() -> usize {
    schema::DEFAULT_SAMPLE
}

/// `GET /api/kafka/topics/{topic}/schema?sample=N`: the fields of the topic's newest N records
/// (1..=500, default 200), and for `reviews.dlq` its reasons grouped.
async fn topic_schema(
    State(engine): State<Arc<Engine>>,
    Path(topic): Path<String>,
    query: Result<Query<SchemaQuery>, QueryRejection>,
) -> Result<Json<TopicSchema>, OpsError> {
    let Query(query) = query.map_err(|e| EngineError::BadRequest(e.body_text()))?;
    if !(1..=schema::MAX_SAMPLE).contains(&query.sample) {
        let message = format!("must be 1..={}, got {}", schema::MAX_SAMPLE, query.sample);
        return Err(EngineError::from(ConfigError::new("sample", message)).into());
    }
    Ok(Json(engine.topic_schema(&topic, query.sample).await?))
}
