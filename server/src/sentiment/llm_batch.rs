//! Several reviews per LLM request.
//!
//! [`LlmClassifier::classify_many`] sends the reviews as a JSON array of `{"id", "text"}` (ids
//! `"1"`, `"2"`, … — positions, so no review data is needed to map answers back) and asks for one
//! JSON object mapping every id to its label. The answer is read leniently: a code fence or prose
//! around the object, `{"labels": {...}}`, or an array of `{"id", "sentiment"|"label"}` are all
//! accepted, and each label goes through [`parse_label`]. Per review:
//!
//! - a valid label → that label;
//! - a missing or invalid one → that review is asked alone ([`LlmClassifier::classify`]), so one
//!   bad entry costs one extra request, not the batch;
//! - the batch request failing as a whole (after its retries) → [`LlmError::Batch`] for every
//!   review, which the stage answers with its lexicon fallback: asking each alone would send the
//!   same failing endpoint n more requests.
//!
//! A model that does not follow the JSON instruction at all would cost n + 1 requests per batch,
//! so after [`UNUSABLE_BATCHES_LIMIT`] batches in a row without a single usable label the
//! classifier stops batching and logs why.
//!
//! [`LlmBatcher`] gathers the reviews a sentiment worker classifies concurrently (each review of
//! a fetched Kafka batch is classified in its own future) into such requests, so the worker loop
//! does not change: a review waits at most [`LINGER`] for others to join it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::Sentiment;
use super::llm::{LlmClassifier, LlmError, LlmLabel, parse_label};
use crate::sync::LockExt;

/// System prompt of a batch request.
pub const BATCH_SYSTEM_PROMPT: &str = "You are a sentiment classifier. The user sends a JSON \
array of reviews, each an object with an \"id\" and a \"text\". Classify the sentiment of every \
review as POSITIVE, NEGATIVE or NEUTRAL. Answer with only one JSON object that maps every id to \
its label, for example {\"1\": \"POSITIVE\", \"2\": \"NEGATIVE\", \"3\": \"NEUTRAL\"}.";

/// Batches in a row with no usable label after which batching is switched off.
pub const UNUSABLE_BATCHES_LIMIT: u32 = 3;

/// How long a review waits for others to share its request.
pub const LINGER: Duration = Duration::from_millis(10);

/// `max_tokens` of a batch request: about `"12": "NEGATIVE", ` per review, and the braces.
fn batch_max_tokens(n: usize) -> u32 {
    u32::try_from(16 + 12 * n).unwrap_or(u32::MAX)
}

/// The labels an answer gives ids `1..=n` (index 0 = id "1"); `None` where it gives none.
pub fn parse_batch_answer(answer: &str, n: usize) -> Vec<Option<Sentiment>> {
    let mut labels = vec![None; n];
    let Some(value) = first_json(answer) else {
        return labels;
    };
    let mut set = |id: &serde_json::Value, label: &serde_json::Value| {
        let id = match id {
            serde_json::Value::String(s) => s.trim().parse::<usize>().ok(),
            serde_json::Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
            _ => None,
        };
        if let (Some(id), Some(label)) = (id, label.as_str())
            && (1..=n).contains(&id)
        {
            labels[id - 1] = parse_label(label);
        }
    };
    // {"labels": …} / {"results": …} around the real answer.
    let value = match &value {
        serde_json::Value::Object(map) if map.len() == 1 => match map.values().next() {
            Some(inner @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) => {
                inner.clone()
            }
            _ => value,
        },
        _ => value,
    };
    match &value {
        serde_json::Value::Object(map) => {
            for (id, label) in map {
                set(&serde_json::Value::String(id.clone()), label);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                let label = item.get("sentiment").or_else(|| item.get("label"));
                if let (Some(id), Some(label)) = (item.get("id"), label) {
                    set(id, label);
                }
            }
        }
        _ => {}
    }
    labels
}

/// The first JSON object or array in `text` (models like to wrap it in a code fence or a
/// sentence).
fn first_json(text: &str) -> Option<serde_json::Value> {
    for (start, c) in text.char_indices() {
        if c != '{' && c != '[' {
            continue;
        }
        let mut stream =
            serde_json::Deserializer::from_str(&text[start..]).into_iter::<serde_json::Value>();
        if let Some(Ok(value)) = stream.next() {
            return Some(value);
        }
    }
    None
}

impl LlmClassifier {
    /// Labels `texts` with as few requests as possible (see the module documentation); one
    /// result per text, in order.
    pub async fn classify_many(&self, texts: &[&str]) -> Vec<Result<LlmLabel, LlmError>> {
        if texts.len() <= 1 || !self.batching() {
            let mut out = Vec::with_capacity(texts.len());
            for text in texts {
                out.push(self.classify(text).await);
            }
            return out;
        }
        let reviews: Vec<serde_json::Value> = texts
            .iter()
            .enumerate()
            .map(|(i, text)| serde_json::json!({"id": (i + 1).to_string(), "text": text}))
            .collect();
        let user = serde_json::Value::Array(reviews).to_string();
        let (answer, attempts) = match self
            .complete(BATCH_SYSTEM_PROMPT, &user, batch_max_tokens(texts.len()))
            .await
        {
            Ok(reply) => reply,
            Err(error) => {
                let message = error.to_string();
                return texts
                    .iter()
                    .map(|_| Err(LlmError::Batch(message.clone())))
                    .collect();
            }
        };
        let labels = parse_batch_answer(&answer, texts.len());
        self.note_batch_answer(labels.iter().any(Option::is_some));
        let mut out = Vec::with_capacity(texts.len());
        for (label, text) in labels.into_iter().zip(texts) {
            out.push(match label {
                Some(sentiment) => Ok(LlmLabel {
                    sentiment,
                    raw_answer: sentiment.as_str().to_owned(),
                    attempts,
                    model: self.model().to_owned(),
                }),
                // Per-review fallback: this review alone.
                None => self.classify(text).await,
            });
        }
        out
    }

    /// Whether requests carry several reviews (configured, and not switched off).
    pub fn batching(&self) -> bool {
        self.batch_size() > 1
            && self.unusable_batches().load(Ordering::Relaxed) < UNUSABLE_BATCHES_LIMIT
    }

    fn note_batch_answer(&self, usable: bool) {
        let counter = self.unusable_batches();
        if usable {
            if counter.load(Ordering::Relaxed) < UNUSABLE_BATCHES_LIMIT {
                counter.store(0, Ordering::Relaxed);
            }
        } else if counter.fetch_add(1, Ordering::Relaxed) + 1 == UNUSABLE_BATCHES_LIMIT {
            tracing::warn!(
                model = %self.model(),
                "{UNUSABLE_BATCHES_LIMIT} batch answers in a row held no label: the model does not \
                 follow the JSON instruction, so reviews are sent one per request from now on"
            );
        }
    }
}

/// One review waiting for its batch.
struct Job {
    text: String,
    reply: oneshot::Sender<Result<LlmLabel, LlmError>>,
}

/// Gathers concurrent [`LlmBatcher::classify`] calls into [`LlmClassifier::classify_many`]
/// requests of up to `batch_size` reviews.
pub struct LlmBatcher {
    llm: LlmClassifier,
    queue: Arc<Mutex<Vec<Job>>>,
}

impl LlmBatcher {
    pub fn new(llm: LlmClassifier) -> Self {
        LlmBatcher {
            llm,
            queue: Arc::default(),
        }
    }

    pub fn llm(&self) -> &LlmClassifier {
        &self.llm
    }

    /// Labels one review, in a request shared with the reviews classified at the same time.
    /// Must run inside a tokio runtime (the request is sent from a task of its own, so a
    /// caller that gives up does not cancel the other reviews of its batch).
    pub async fn classify(&self, text: &str) -> Result<LlmLabel, LlmError> {
        if !self.llm.batching() {
            return self.llm.classify(text).await;
        }
        let (reply, answer) = oneshot::channel();
        let batch_size = self.llm.batch_size();
        let full = {
            let mut queue = self.queue.lock_or_recover();
            queue.push(Job {
                text: text.to_owned(),
                reply,
            });
            if queue.len() == 1 {
                // The first of a new batch sends whatever has gathered after the linger.
                let queue = Arc::clone(&self.queue);
                let llm = self.llm.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(LINGER).await;
                    let jobs: Vec<Job> = {
                        let mut queue = queue.lock_or_recover();
                        let n = queue.len().min(batch_size);
                        queue.drain(..n).collect()
                    };
                    send(llm, jobs).await;
                });
                None
            } else if queue.len() >= batch_size {
                Some(queue.drain(..batch_size).collect::<Vec<Job>>())
            } else {
                None
            }
        };
        if let Some(jobs) = full {
            tokio::spawn(send(self.llm.clone(), jobs));
        }
        answer.await.unwrap_or_else(|_| {
            Err(LlmError::Request(
                "the batch this review was in was dropped".to_owned(),
            ))
        })
    }
}

/// Sends one batch and hands every review its result. (A full batch empties the queue, and the
/// next review to arrive starts a new linger task, so no review is left behind.)
async fn send(llm: LlmClassifier, jobs: Vec<Job>) {
    if jobs.is_empty() {
        return;
    }
    let texts: Vec<&str> = jobs.iter().map(|job| job.text.as_str()).collect();
    let results = llm.classify_many(&texts).await;
    for (job, result) in jobs.into_iter().zip(results) {
        // The caller may have given up (a killed worker); nothing to do then.
        let _ = job.reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_answers_are_read_leniently() {
        use Sentiment::*;
        assert_eq!(
            parse_batch_answer(r#"{"1": "POSITIVE", "2": "negative", "3": "NEUTRAL"}"#, 3),
            [Some(Positive), Some(Negative), Some(Neutral)]
        );
        assert_eq!(
            parse_batch_answer(
                "Here you go:\n```json\n{\"labels\": {\"2\": \"Negative.\", \"1\": \"POSITIVE\"}}\n```",
                2
            ),
            [Some(Positive), Some(Negative)]
        );
        assert_eq!(
            parse_batch_answer(
                r#"[{"id": 1, "sentiment": "POSITIVE"}, {"id": "2", "label": "mixed"}]"#,
                3
            ),
            [Some(Positive), None, None]
        );
        // Ids out of range, labels that are no label, no JSON at all.
        assert_eq!(
            parse_batch_answer(r#"{"0": "POSITIVE", "4": "NEGATIVE", "2": 5}"#, 3),
            [None, None, None]
        );
        assert_eq!(parse_batch_answer("POSITIVE", 2), [None, None]);
    }

    #[test]
    fn batch_token_budget_grows_with_the_batch() {
        assert_eq!(batch_max_tokens(1), 28);
        assert_eq!(batch_max_tokens(8), 112);
    }
}
