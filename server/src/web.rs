//! The whole HTTP surface in one router: the control API, the server-rendered notebook and its
//! static files, behind the access guard ([`crate::access`]) and gzip.

use std::sync::Arc;

use app::api::{Role, SessionInfo};
use app::{App, InitialSnapshot, shell};
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tower_http::compression::CompressionLayer;

use crate::access::{self, Access, MAX_JSON_BODY};
use crate::pipeline::Engine;

/// The router `pipebook serve` runs; tests build the same one to play the attacker against it.
pub fn router(engine: Arc<Engine>, access: Arc<Access>, leptos_options: LeptosOptions) -> Router {
    let routes = generate_route_list(App);
    // Every page is rendered from the live feed's latest snapshot, so its first paint shows the
    // pipeline as it is (and the browser hydrates from the same JSON, embedded in the page).
    let feed = engine.feed();
    let ui = Router::new()
        .leptos_routes_with_context(
            &leptos_options,
            routes,
            move || provide_context(InitialSnapshot(feed.borrow().snapshot_shared())),
            {
                let options = leptos_options.clone();
                move || shell(options.clone())
            },
        )
        .fallback(leptos_axum::file_and_error_handler(shell))
        .with_state(leptos_options);
    let session = Router::new()
        .route("/api/session", get(session))
        .with_state(access.clone());
    crate::api::router(engine)
        .merge(session)
        .merge(ui)
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(axum::middleware::from_fn_with_state(access, access::guard))
        .layer(CompressionLayer::new())
}

/// `GET /api/session`: the caller's role (set by the guard) and how the workbench is exposed.
async fn session(
    State(access): State<Arc<Access>>,
    Extension(role): Extension<Role>,
) -> Json<SessionInfo> {
    Json(SessionInfo {
        role,
        token_required: access.token_required(),
        exposed: access.exposed(),
    })
}
