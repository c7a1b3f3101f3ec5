//! The sentiment stage with the LLM classifier on the embedded broker, against a local
//! chat-completions double that behaves like a reasoning model: it refuses `max_tokens` (HTTP
//! 400, as OpenAI answers) and labels several reviews per request. The stage must get one 400 per
//! request in flight when the first came back (≤ max_concurrency), not one per review, and carry
//! several reviews per request.
//!
//! Its own test binary: the LLM is configured through `PIPEBOOK_LLM_*`, which this sets.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use app::api::{EnrichedReview, TOPIC_SENTIMENT};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::{counter, eventually, group_lag, read_all, start_engine, stream_reviews};
use pipebook::sentiment::GROUP;
use serde_json::json;

#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    refused: AtomicUsize,
    batches: AtomicUsize,
    reviews_in_batches: AtomicUsize,
}

/// A reasoning model: refuses `max_tokens`; labels every review POSITIVE, as one JSON object
/// for a batch.
async fn chat(State(seen): State<Arc<Seen>>, Json(body): Json<serde_json::Value>) -> Response {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    if body.get("max_tokens").is_some() {
        seen.refused.fetch_add(1, Ordering::SeqCst);
        let error = json!({"error": {
            "message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
            "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}});
        return (StatusCode::BAD_REQUEST, Json(error)).into_response();
    }
    let user = body["messages"][1]["content"].as_str().unwrap_or_default();
    let content = match serde_json::from_str::<Vec<serde_json::Value>>(user) {
        Ok(reviews) => {
            seen.batches.fetch_add(1, Ordering::SeqCst);
            seen.reviews_in_batches
                .fetch_add(reviews.len(), Ordering::SeqCst);
            let labels: serde_json::Map<String, serde_json::Value> = reviews
                .iter()
                .filter_map(|r| r["id"].as_str())
                .map(|id| (id.to_owned(), "POSITIVE".into()))
                .collect();
            serde_json::Value::Object(labels).to_string()
        }
        Err(_) => "POSITIVE".to_owned(),
    };
    Json(json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}))
        .into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reasoning_model_gets_a_few_400s_not_one_per_review_and_batched_requests() {
    let seen = Arc::new(Seen::default());
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(chat))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    // SAFETY: set once, before anything in this test binary (its only test) reads the
    // environment from another thread.
    unsafe {
        std::env::set_var("PIPEBOOK_LLM_BASE_URL", format!("http://{addr}/v1"));
        std::env::set_var("PIPEBOOK_LLM_MODEL", "o-test");
        std::env::set_var("PIPEBOOK_LLM_BATCH_SIZE", "8");
    }

    let t = start_engine().await;
    let engine = &t.engine;
    stream_reviews(engine, 300, 9).await;
    engine
        .start_stage("sentiment", json!({"workers": 1, "classifier": "llm"}))
        .await
        .expect("sentiment starts with the llm");
    eventually("group lag 0", Duration::from_secs(180), || async {
        (group_lag(engine, GROUP).await == Some(0)).then_some(())
    })
    .await;

    let labelled = read_all(engine, TOPIC_SENTIMENT).await;
    assert!(labelled.len() >= 300, "{} labelled", labelled.len());
    for message in &labelled {
        let enriched: EnrichedReview = serde_json::from_str(&message.value).expect("enriched");
        assert_eq!(
            enriched.classifier, "llm",
            "no review fell back to the lexicon"
        );
        assert_eq!(enriched.model.as_deref(), Some("o-test"));
    }
    assert_eq!(counter(engine, "sentiment", "fallbacks"), 0);

    let requests = seen.requests.load(Ordering::SeqCst);
    let refused = seen.refused.load(Ordering::SeqCst);
    let batches = seen.batches.load(Ordering::SeqCst);
    let in_batches = seen.reviews_in_batches.load(Ordering::SeqCst);
    // Requests in flight when the first refusal came back may each get one: never one a review.
    assert!((1..=4).contains(&refused), "{refused} refusals");
    assert!(
        batches > 0 && in_batches >= 2 * batches,
        "{in_batches} reviews in {batches} batches"
    );
    assert!(
        requests - refused <= 300 / 2,
        "{requests} requests for 300 reviews ({batches} batches)"
    );
    eprintln!(
        "{requests} requests ({refused} refused, {batches} batches) for {} labels",
        labelled.len()
    );
    engine.shutdown().await;
    server.abort();
}
