//! `/api/incidents`: the catalogue, starting one with a seed, hints and answers.

use std::sync::Arc;

use app::api::{IncidentAnswer, IncidentStart, IncidentsView};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::api::JsonBody;
use crate::error::ApiError;
use crate::pipeline::Engine;

pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/api/incidents", get(list))
        .route("/api/incidents/{id}/start", post(start))
        .route("/api/incidents/hint", post(hint))
        .route("/api/incidents/answer", post(answer))
}

async fn list(State(engine): State<Arc<Engine>>) -> Json<IncidentsView> {
    Json(engine.incidents().view())
}

/// 202: the set-up (stop the stages, write the seeded burst, take the before-figures, start the
/// trouble) runs in the background; the phase says when it is done.
async fn start(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<IncidentStart>,
) -> Result<(StatusCode, Json<IncidentsView>), ApiError> {
    super::start(&engine, &id, body.seed)?;
    Ok((StatusCode::ACCEPTED, Json(engine.incidents().view())))
}

async fn hint(State(engine): State<Arc<Engine>>) -> Result<Json<IncidentsView>, ApiError> {
    engine.incidents().reveal_hint()?;
    Ok(Json(engine.incidents().view()))
}

async fn answer(
    State(engine): State<Arc<Engine>>,
    JsonBody(body): JsonBody<IncidentAnswer>,
) -> Result<Json<IncidentsView>, ApiError> {
    let snapshot = engine.subscribe().borrow().clone();
    engine.incidents().answer(&body.choice, &snapshot)?;
    Ok(Json(engine.incidents().view()))
}
