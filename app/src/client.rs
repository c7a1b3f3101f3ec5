//! Calls to the JSON API from the browser. On the server these are never called (event handlers
//! and effects run only after hydration), so the SSR build gets stubs.

use crate::api::ApiError;
use serde::de::DeserializeOwned;

/// Fires a POST from an event handler and shows its error (or clears it) in `error`.
pub fn post_reporting(
    error: leptos::prelude::RwSignal<Option<String>>,
    path: String,
    body: serde_json::Value,
) {
    use leptos::prelude::Set;
    error.set(None);
    leptos::task::spawn_local(async move {
        if let Err(message) = post(&path, body).await {
            error.set(Some(message));
        }
    });
}

/// POSTs a JSON body; on a 4xx/5xx returns the server's error message.
#[cfg(feature = "hydrate")]
pub async fn post(path: &str, body: serde_json::Value) -> Result<(), String> {
    let request = gloo_net::http::Request::post(path)
        .json(&body)
        .map_err(|e| e.to_string())?;
    let response = request.send().await.map_err(|e| e.to_string())?;
    if response.ok() {
        return Ok(());
    }
    Err(error_text(response).await)
}

/// GETs and decodes JSON; on a 4xx/5xx returns the server's error message.
#[cfg(feature = "hydrate")]
pub async fn get<T: DeserializeOwned>(path: &str) -> Result<T, String> {
    let response = gloo_net::http::Request::get(path)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.ok() {
        return Err(error_text(response).await);
    }
    response.json::<T>().await.map_err(|e| e.to_string())
}

#[cfg(feature = "hydrate")]
async fn error_text(response: gloo_net::http::Response) -> String {
    let status = response.status();
    match response.json::<ApiError>().await {
        Ok(error) => error.error,
        Err(_) => format!("HTTP {status}"),
    }
}

#[cfg(not(feature = "hydrate"))]
pub async fn post(_path: &str, _body: serde_json::Value) -> Result<(), String> {
    Err(not_in_browser())
}

#[cfg(not(feature = "hydrate"))]
pub async fn get<T: DeserializeOwned>(_path: &str) -> Result<T, String> {
    Err(not_in_browser())
}

#[cfg(not(feature = "hydrate"))]
fn not_in_browser() -> String {
    let _ = std::marker::PhantomData::<ApiError>;
    "the API client runs in the browser only".to_owned()
}
