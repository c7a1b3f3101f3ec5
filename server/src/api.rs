//! The JSON control API (documented in `docs/api.md`): a thin layer over [`Engine`].

use std::sync::Arc;

use app::api::{Role, Sentiment, WindowKind};
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ConfigError};
use crate::index::query::DEFAULT_INTERVAL;
use crate::kafka::inspect::MAX_BROWSE;
use crate::lesson::Action;
use crate::pipeline::Engine;
use crate::streamer::datasets::DatasetError;

pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/pipeline", get(pipeline))
        .route("/api/stages/{id}/start", post(start_stage))
        .route("/api/stages/{id}/stop", post(stop_stage))
        .route("/api/stages/{id}/pause", post(pause_stage))
        .route("/api/stages/{id}/resume", post(resume_stage))
        .route("/api/stages/sentiment/workers", post(add_worker))
        .route(
            "/api/stages/sentiment/workers/{worker}/kill",
            post(kill_worker),
        )
        .route("/api/sentiment", get(sentiment_view))
        .route("/api/sentiment/compare", post(compare_classifiers))
        .route("/api/workers", get(workers))
        .route("/api/kafka/topics", get(topics))
        .route("/api/kafka/groups", get(groups))
        .route("/api/kafka/topics/{topic}/messages", get(messages))
        .route("/api/aggregates", get(aggregates))
        .route("/api/stages/{id}/crash", post(crash_stage))
        .route("/api/search", get(search))
        .route("/api/search/aggregations", get(search_aggregations))
        .route("/api/stages/{id}/restart", post(restart_stage))
        .route("/api/pipeline/start-all", post(start_all))
        .route("/api/pipeline/stop-all", post(stop_all))
        .route("/api/lesson", get(lesson))
        .route("/api/lesson/reset", post(reset_lesson))
        .route("/api/lesson/steps/{id}/prediction", post(predict))
        .route("/api/faults/malformed", post(flood_malformed))
        .route("/api/faults/resend", post(resend_newest))
        .route("/api/faults/search-outage", post(search_outage))
        .route(
            "/api/lab/delivery",
            get(delivery_lab).post(start_delivery_lab),
        )
        .merge(crate::incidents::api::routes())
        .route("/api/trace", get(trace))
        .route("/api/trace/next", get(trace_next))
        .route("/api/events", get(events))
        .route("/api/datasets", get(list_datasets))
        .route(
            "/api/datasets/{name}",
            // The upload is streamed and counted against PIPEBOOK_MAX_UPLOAD_BYTES by the
            // handler, so axum's default body limit (and any smaller global one) is lifted here.
            put(upload_dataset)
                .delete(delete_dataset)
                .route_layer(DefaultBodyLimit::disable()),
        )
        .merge(crate::ops::routes())
        .with_state(engine)
}

type ApiResult<T> = Result<Json<T>, ApiError>;

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn pipeline(State(engine): State<Arc<Engine>>) -> Json<app::api::PipelineStatus> {
    Json(engine.pipeline_status())
}

/// A JSON request body. An empty body (or `null`) is `{}`: a button that posts nothing asks for
/// the defaults; anything else must parse, and the refusal names the field in the API's error shape.
/// The access guard has already required `Content-Type: application/json` for state changes.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
        let blank = bytes.trim_ascii();
        let text: &[u8] = if blank.is_empty() || blank == b"null" {
            b"{}"
        } else {
            &bytes
        };
        let mut json = serde_json::Deserializer::from_slice(text);
        let value = serde_path_to_error::deserialize(&mut json).map_err(ConfigError::from_serde)?;
        json.end()
            .map_err(|e| ConfigError::new("config", e.to_string()))?;
        Ok(JsonBody(value))
    }
}

/// A query string, refused in the API's error shape (axum's own rejection is plain text).
fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(value)| value)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// Whether this request is the operator's: a viewer's searches and browses must not tick the
/// operator's lesson steps. (No role at all: the API router without the guard, as in tests.)
fn is_operator(role: Option<Extension<Role>>) -> bool {
    role.is_none_or(|Extension(role)| role == Role::Operator)
}

async fn start_stage(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    JsonBody(config): JsonBody<serde_json::Value>,
) -> ApiResult<app::api::PipelineStatus> {
    engine.start_stage(&id, config).await?;
    Ok(Json(engine.pipeline_status()))
}

async fn stop_stage(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
) -> ApiResult<app::api::PipelineStatus> {
    engine.stop_stage(&id).await?;
    Ok(Json(engine.pipeline_status()))
}

async fn pause_stage(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
) -> ApiResult<app::api::PipelineStatus> {
    engine.pause_stage(&id, true)?;
    Ok(Json(engine.pipeline_status()))
}

async fn resume_stage(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
) -> ApiResult<app::api::PipelineStatus> {
    engine.pause_stage(&id, false)?;
    Ok(Json(engine.pipeline_status()))
}

async fn add_worker(State(engine): State<Arc<Engine>>) -> ApiResult<serde_json::Value> {
    let id = engine.add_sentiment_worker()?;
    Ok(Json(serde_json::json!({ "worker": id })))
}

async fn kill_worker(
    State(engine): State<Arc<Engine>>,
    Path(worker): Path<String>,
) -> ApiResult<serde_json::Value> {
    engine.kill_sentiment_worker(&worker)?;
    Ok(Json(serde_json::json!({ "killed": worker })))
}

/// The latest sampled sentiment view (workers, rebalances, latest reviews, confusion).
async fn sentiment_view(State(engine): State<Arc<Engine>>) -> Json<app::api::SentimentView> {
    Json(engine.subscribe().borrow().sentiment.clone())
}

/// Cell 3's A/B view: two classifiers on the same newest reviews.
async fn compare_classifiers(
    State(engine): State<Arc<Engine>>,
    JsonBody(request): JsonBody<app::api::CompareRequest>,
) -> ApiResult<app::api::ClassifierComparison> {
    Ok(Json(
        crate::sentiment::compare::compare(&engine, &request).await?,
    ))
}

/// Every member of every stage's group, in-server or remote, from their heartbeats.
async fn workers(State(engine): State<Arc<Engine>>) -> Json<Vec<app::api::MemberView>> {
    Json(engine.members())
}

async fn topics(State(engine): State<Arc<Engine>>) -> ApiResult<Vec<app::api::TopicInfo>> {
    Ok(Json(engine.topics().await?))
}

async fn groups(State(engine): State<Arc<Engine>>) -> ApiResult<Vec<app::api::GroupInfo>> {
    Ok(Json(engine.groups().await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BrowseQuery {
    #[serde(default)]
    partition: i32,
    #[serde(default)]
    offset: i64,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    20
}

async fn messages(
    State(engine): State<Arc<Engine>>,
    role: Option<Extension<Role>>,
    Path(topic): Path<String>,
    browse: Result<Query<BrowseQuery>, QueryRejection>,
) -> ApiResult<Vec<app::api::Message>> {
    let query = query(browse)?;
    if query.limit == 0 || query.limit > MAX_BROWSE {
        let message = format!("must be 1..={MAX_BROWSE}, got {}", query.limit);
        return Err(ConfigError::new("limit", message).into());
    }
    if query.offset < 0 {
        let message = format!("must be ≥ 0, got {}", query.offset);
        return Err(ConfigError::new("offset", message).into());
    }
    let messages = engine
        .messages(&topic, query.partition, query.offset, query.limit)
        .await?;
    if is_operator(role) {
        engine.record_action(Action::BrowsedMessages);
    }
    Ok(Json(messages))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AggregatesQuery {
    #[serde(default)]
    window: Option<WindowKind>,
}

/// The aggregate stage's watermark, late count and windows (of one kind, or all).
async fn aggregates(
    State(engine): State<Arc<Engine>>,
    query: Result<Query<AggregatesQuery>, QueryRejection>,
) -> ApiResult<app::api::AggregateView> {
    let Query(query) = query.map_err(|e| {
        ConfigError::new(
            "window",
            format!("tumbling, sliding or session ({})", e.body_text()),
        )
    })?;
    Ok(Json(engine.aggregates(query.window)))
}

/// Kills a stage's run loop at once, as a crash would.
async fn crash_stage(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
) -> ApiResult<app::api::PipelineStatus> {
    engine.crash_stage(&id)?;
    Ok(Json(engine.pipeline_status()))
}

/// `GET /api/search` parameters as they arrive: empty values mean "no filter".
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    sentiment: String,
    #[serde(default)]
    stars_min: String,
    #[serde(default)]
    limit: String,
}

impl SearchQuery {
    fn request(self) -> Result<app::api::SearchRequest, ConfigError> {
        let sentiment = match self.sentiment.trim() {
            "" => None,
            label => Some(
                Sentiment::ALL
                    .into_iter()
                    .find(|s| s.as_str().eq_ignore_ascii_case(label))
                    .ok_or_else(|| {
                        ConfigError::new(
                            "sentiment",
                            format!("expected POSITIVE, NEGATIVE or NEUTRAL, got {label:?}"),
                        )
                    })?,
            ),
        };
        Ok(app::api::SearchRequest {
            q: self.q,
            sentiment,
            stars_min: number("stars_min", &self.stars_min)?,
            limit: number("limit", &self.limit)?,
        })
    }
}

/// An optional whole-number parameter; the error names it.
fn number<T: std::str::FromStr>(name: &str, raw: &str) -> Result<Option<T>, ConfigError> {
    match raw.trim() {
        "" => Ok(None),
        value => value
            .parse()
            .map(Some)
            .map_err(|_| ConfigError::new(name, format!("expected a whole number, got {value:?}"))),
    }
}

async fn search(
    State(engine): State<Arc<Engine>>,
    role: Option<Extension<Role>>,
    search: Result<Query<SearchQuery>, QueryRejection>,
) -> ApiResult<app::api::SearchResults> {
    let request = query(search)?.request()?;
    let results = engine.search(&request).await?;
    if is_operator(role) && !request.q.trim().is_empty() && request.sentiment.is_some() {
        engine.record_action(Action::Searched);
    }
    Ok(Json(results))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AggregationsQuery {
    #[serde(default = "default_interval")]
    interval: String,
}

fn default_interval() -> String {
    DEFAULT_INTERVAL.to_owned()
}

async fn search_aggregations(
    State(engine): State<Arc<Engine>>,
    aggregations: Result<Query<AggregationsQuery>, QueryRejection>,
) -> ApiResult<app::api::SearchAggregations> {
    let interval = query(aggregations)?.interval;
    Ok(Json(engine.search_aggregations(&interval).await?))
}

/// Starts a delivery-semantics lab run; 202 with the run's first view.
async fn start_delivery_lab(
    State(engine): State<Arc<Engine>>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<(StatusCode, Json<app::api::DeliveryLabView>), ApiError> {
    engine.start_delivery_lab(body)?;
    Ok((StatusCode::ACCEPTED, Json(engine.delivery_lab())))
}

/// The lab's latest run: per mode its state and counts, and the progress of a running one.
async fn delivery_lab(State(engine): State<Arc<Engine>>) -> Json<app::api::DeliveryLabView> {
    Json(engine.delivery_lab())
}

/// A trace that reached every hop completes the lesson's tracing step.
fn noted(
    engine: &Engine,
    role: Option<Extension<Role>>,
    trace: app::api::Trace,
) -> app::api::Trace {
    if trace.complete && is_operator(role) {
        engine.record_action(Action::TracedRecord);
    }
    trace
}

/// `GET /api/trace` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceQuery {
    #[serde(default)]
    review_id: Option<String>,
}

/// Follows one review hop by hop (the next one produced: `GET /api/trace/next`).
async fn trace(
    State(engine): State<Arc<Engine>>,
    role: Option<Extension<Role>>,
    trace: Result<Query<TraceQuery>, QueryRejection>,
) -> ApiResult<app::api::Trace> {
    let Some(review_id) = query(trace)?.review_id else {
        let message = "required: a review's id (the next review: GET /api/trace/next)";
        return Err(ConfigError::new("review_id", message).into());
    };
    let trace = engine.trace(&review_id).await?;
    Ok(Json(noted(&engine, role, trace)))
}

async fn trace_next(
    State(engine): State<Arc<Engine>>,
    role: Option<Extension<Role>>,
) -> ApiResult<app::api::Trace> {
    let trace = engine.trace_next().await?;
    Ok(Json(noted(&engine, role, trace)))
}

/// Server-sent events: the current snapshot at once, then about once a second the parts of it
/// that changed (see [`crate::feed`]); gzip-compressed when the client takes it.
async fn events(State(engine): State<Arc<Engine>>, headers: HeaderMap) -> Response {
    let gzip = crate::feed::gzip::accepts_gzip(&headers);
    crate::feed::response(engine.feed(), engine.closing().clone(), gzip)
}

// ---- The lesson: run all / stop all, restart, progress, fault buttons ----

async fn restart_stage(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
) -> ApiResult<app::api::PipelineStatus> {
    engine.restart_stage(&id).await?;
    Ok(Json(engine.pipeline_status()))
}

async fn start_all(State(engine): State<Arc<Engine>>) -> ApiResult<app::api::PipelineStatus> {
    engine.start_all().await?;
    Ok(Json(engine.pipeline_status()))
}

async fn stop_all(State(engine): State<Arc<Engine>>) -> ApiResult<app::api::PipelineStatus> {
    engine.stop_all().await?;
    Ok(Json(engine.pipeline_status()))
}

/// The lesson as of the latest snapshot.
async fn lesson(State(engine): State<Arc<Engine>>) -> Json<app::api::LessonView> {
    Json(engine.subscribe().borrow().lesson.clone())
}

async fn reset_lesson(State(engine): State<Arc<Engine>>) -> Json<serde_json::Value> {
    engine.reset_lesson();
    Json(serde_json::json!({"reset": true}))
}

/// The learner's prediction for a step, made before its task.
async fn predict(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<app::api::PredictionRequest>,
) -> ApiResult<app::api::LessonView> {
    use crate::lesson::PredictError;
    engine
        .predict(&id, request.choice)
        .map(Json)
        .map_err(|e| match e {
            PredictError::Invalid(invalid) => invalid.into(),
            refused @ (PredictError::Done(_) | PredictError::Begun(_)) => {
                ApiError::new(StatusCode::CONFLICT, refused.to_string())
            }
        })
}

async fn flood_malformed(
    State(engine): State<Arc<Engine>>,
    JsonBody(request): JsonBody<app::api::FaultRequest>,
) -> ApiResult<serde_json::Value> {
    let written = engine.flood_malformed(request.count).await?;
    Ok(Json(serde_json::json!({ "written": written })))
}

async fn resend_newest(
    State(engine): State<Arc<Engine>>,
    JsonBody(request): JsonBody<app::api::FaultRequest>,
) -> ApiResult<serde_json::Value> {
    let sent = engine.resend_newest(request.count).await?;
    Ok(Json(serde_json::json!({ "resent": sent })))
}

async fn search_outage(
    State(engine): State<Arc<Engine>>,
    JsonBody(request): JsonBody<app::api::SearchOutageRequest>,
) -> ApiResult<serde_json::Value> {
    engine.set_search_outage(request.down);
    Ok(Json(serde_json::json!({ "down": request.down })))
}

// ---- Datasets: the files the streamer may read ----

async fn list_datasets(State(engine): State<Arc<Engine>>) -> ApiResult<app::api::DatasetList> {
    Ok(Json(engine.list_datasets().await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    #[serde(default)]
    replace: bool,
}

/// `PUT /api/datasets/{name}`: the raw JSON-lines file as the body, with
/// `Content-Type: application/x-ndjson` (which a cross-site form cannot send). 201 with the
/// dataset's size and line count.
async fn upload_dataset(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<app::api::DatasetInfo>), ApiError> {
    let Query(query) = query
        .map_err(|e| ConfigError::new("replace", format!("true or false ({})", e.body_text())))?;
    check_upload_content_type(&headers)?;
    let datasets = engine.datasets();
    // Refused before a byte is read when the client says how much it will send.
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|length| length > datasets.max_upload_bytes()) {
        return Err(DatasetError::TooLarge {
            limit: datasets.max_upload_bytes(),
        }
        .into());
    }
    let info = datasets
        .upload(&name, query.replace, body.into_data_stream())
        .await?;
    tracing::info!(name = %info.name, bytes = info.bytes, lines = ?info.lines, "dataset uploaded");
    Ok((StatusCode::CREATED, Json(info)))
}

/// Exactly `application/x-ndjson` (parameters such as `charset` aside), else 415.
fn check_upload_content_type(headers: &HeaderMap) -> Result<(), DatasetError> {
    let got = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let essence = got.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case(app::api::DATASET_CONTENT_TYPE) {
        Ok(())
    } else {
        Err(DatasetError::ContentType { got })
    }
}

async fn delete_dataset(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    engine.datasets().delete(&name)?;
    Ok(StatusCode::NO_CONTENT)
}
