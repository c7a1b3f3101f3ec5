//! Pipebook's notebook UI: one cell per pipeline stage, drawn on the server (SSR) and brought to
//! life in the browser (hydration) by a server-sent-events feed of the pipeline's state.

#![recursion_limit = "256"]

pub mod api;
mod cells;
mod client;
mod live;
pub mod ops;
mod session;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

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
                // Theme, font size and keyboard: before the first paint, and before hydration.
                <script src="/notebook.js"></script>
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/pipebook.css" />
        <Title text="Pipebook · a live streaming pipeline" />
        <Router>
            <Routes fallback=|| "Page not found.".into_view()>
                <Route path=path!("") view=cells::Notebook />
            </Routes>
        </Router>
    }
}

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}
