//! Calls to the JSON API from the browser. On the server these are never called (event handlers,
//! actions and local resources run only after hydration), so the SSR build gets stubs. The cells
//! reach them through [`crate::requests`].

use crate::api::{ApiError, DatasetInfo};
use serde::de::DeserializeOwned;

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

/// POSTs a JSON body and decodes the JSON answer; on a 4xx/5xx returns the server's error
/// message.
#[cfg(feature = "hydrate")]
pub async fn post_json<T: DeserializeOwned>(
    path: &str,
    body: serde_json::Value,
) -> Result<T, String> {
    let request = gloo_net::http::Request::post(path)
        .json(&body)
        .map_err(|e| e.to_string())?;
    let response = request.send().await.map_err(|e| e.to_string())?;
    json_answer(response).await
}

/// GETs and decodes JSON; on a 4xx/5xx returns the server's error message.
#[cfg(feature = "hydrate")]
pub async fn get<T: DeserializeOwned>(path: &str) -> Result<T, String> {
    let response = gloo_net::http::Request::get(path)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    json_answer(response).await
}

/// GETs `path` for its status alone: Ok on a 2xx, else the server's error message.
#[cfg(feature = "hydrate")]
pub async fn get_ok(path: &str) -> Result<(), String> {
    let response = gloo_net::http::Request::get(path)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.ok() {
        return Ok(());
    }
    Err(error_text(response).await)
}

/// A response's JSON body, or on a 4xx/5xx the server's error message.
#[cfg(feature = "hydrate")]
async fn json_answer<T: DeserializeOwned>(response: gloo_net::http::Response) -> Result<T, String> {
    if !response.ok() {
        return Err(error_text(response).await);
    }
    let value = response
        .json::<serde_json::Value>()
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// PUTs a blob (a file the learner chose) as the raw body with `content_type`, and decodes the
/// JSON answer; on a 4xx/5xx returns the server's error message. The browser streams the blob
/// from disk: it is never copied into the wasm memory, whatever its size.
#[cfg(feature = "hydrate")]
pub async fn put_blob<T: DeserializeOwned>(
    path: &str,
    blob: &web_sys::Blob,
    content_type: &str,
) -> Result<T, String> {
    let response = gloo_net::http::Request::put(path)
        .header("Content-Type", content_type)
        .body(blob.clone())
        .map_err(|e| e.to_string())?
        .send()
        .await
        .map_err(|e| e.to_string())?;
    json_answer(response).await
}

/// Uploads the file chosen in `input` as a dataset named after it (`PUT /api/datasets/{name}`).
/// The name rule and the size limit are checked here first, so a learner hears at once; the
/// server checks both again.
#[cfg(feature = "hydrate")]
pub async fn upload_dataset(
    input: leptos::prelude::NodeRef<leptos::html::Input>,
    replace: bool,
    max_upload_bytes: u64,
) -> Result<DatasetInfo, String> {
    use leptos::prelude::GetUntracked;
    let file = input
        .get_untracked()
        .and_then(|input| input.files())
        .and_then(|files| files.get(0))
        .ok_or_else(|| "choose a .jsonl file first".to_owned())?;
    let name = file.name();
    crate::api::check_dataset_name(&name)?;
    let size = file.size() as u64;
    if max_upload_bytes > 0 && size > max_upload_bytes {
        return Err(format!(
            "body: {name} is {}, larger than the upload limit of {}",
            crate::api::human_bytes(size),
            crate::api::human_bytes(max_upload_bytes)
        ));
    }
    let query = if replace { "?replace=true" } else { "" };
    put_blob(
        &format!("/api/datasets/{name}{query}"),
        &file,
        crate::api::DATASET_CONTENT_TYPE,
    )
    .await
}

#[cfg(feature = "hydrate")]
async fn error_text(response: gloo_net::http::Response) -> String {
    let status = response.status();
    match response
        .json::<serde_json::Value>()
        .await
        .ok()
        .and_then(|v| serde_json::from_value::<ApiError>(v).ok())
    {
        Some(error) => error.error,
        None => format!("HTTP {status}"),
    }
}

#[cfg(not(feature = "hydrate"))]
pub async fn post(_path: &str, _body: serde_json::Value) -> Result<(), String> {
    Err(not_in_browser())
}

#[cfg(not(feature = "hydrate"))]
pub async fn post_json<T: DeserializeOwned>(
    _path: &str,
    _body: serde_json::Value,
) -> Result<T, String> {
    Err(not_in_browser())
}

#[cfg(not(feature = "hydrate"))]
pub async fn get<T: DeserializeOwned>(_path: &str) -> Result<T, String> {
    Err(not_in_browser())
}

#[cfg(not(feature = "hydrate"))]
pub async fn upload_dataset(
    _input: leptos::prelude::NodeRef<leptos::html::Input>,
    _replace: bool,
    _max_upload_bytes: u64,
) -> Result<DatasetInfo, String> {
    Err(not_in_browser())
}

#[cfg(not(feature = "hydrate"))]
fn not_in_browser() -> String {
    let _ = std::marker::PhantomData::<ApiError>;
    "the API client runs in the browser only".to_owned()
}
