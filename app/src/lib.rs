//! Pipebook's notebook UI: one cell per pipeline stage, drawn on the server (SSR) and brought to
//! life in the browser (hydration) by a server-sent-events feed of the pipeline's state.

#![recursion_limit = "256"]

pub mod api;
mod cells;
mod client;
pub mod health;
mod live;
pub mod ops;
mod requests;
mod session;

pub use live::InitialSnapshot;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};

/// The HTML document around the app, rendered by the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    // Written for the browser to read back before hydrating (see session::page_role).
    let role = session::page_role().as_str();
    view! {
        <!DOCTYPE html>
        <html lang="en" data-role=role>
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                // Named here, or the browser asks for /favicon.ico and logs its 404.
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                // Theme, font size and keyboard: before the first paint, and before hydration.
                <script src="/notebook.js"></script>
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
                <live::InitialSnapshotScript />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The notebook is the app's one page, so there is no client-side router: leptos_router type-erases
/// each route's view into an `AnyView`, which compiles a second (async) hydration path for the
/// whole page into the wasm — 455 KB of 2.7 MB before wasm-opt, measured with `twiggy`.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/pipebook.css" />
        <Title text="Pipebook · a live streaming pipeline" />
        <cells::Notebook />
    }
}

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}
