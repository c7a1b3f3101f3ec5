//! Sentiment classification through any OpenAI-compatible chat-completions
//! endpoint (OpenAI, Groq, Ollama, vLLM, ...).
//!
//! The classifier sends `POST {base_url}/chat/completions` with a system
//! message asking for exactly one word (POSITIVE, NEGATIVE or NEUTRAL) and the
//! review as the user message, then parses `choices[0].message.content` with
//! [`parse_label`].
//!
//! Reliability rules:
//! - At most `max_concurrency` HTTP requests are in flight at once, across all
//!   clones of one [`LlmClassifier`] (one shared tokio semaphore). A permit is
//!   held only while a request is in flight, never while backing off.
//! - 429, 500, 502, 503, 504, timeouts and connection/transport errors are
//!   retried up to `max_retries` times (so at most `max_retries + 1` attempts)
//!   with exponential backoff and full jitter, or after the server's
//!   `Retry-After` (seconds or HTTP-date; also OpenAI's `retry-after-ms`),
//!   always capped by `max_backoff`.
//! - Any other non-success status (400, 401, 403, 404, ...) fails at once with
//!   the server's error message.
//! - A well-formed reply whose label cannot be parsed fails at once with
//!   [`LlmError::Unparseable`]: asking again at temperature 0 would most likely
//!   give the same answer and only cost money.
//! - A model that refuses a parameter — reasoning models (OpenAI's o-series,
//!   gpt-5) answer 400 "Unsupported parameter: 'max_tokens' … Use
//!   'max_completion_tokens' instead" or "Unsupported value: 'temperature' …"
//!   — is asked again at once without it (not counted as a retry), and the
//!   classifier remembers: every later request, from every clone, leaves it
//!   out. Requests are built only once they hold their concurrency permit, so
//!   at most the `max_concurrency` requests already in flight get the 400. The token limit is then dropped rather than renamed: a reasoning
//!   model spends `max_completion_tokens` on hidden reasoning first, so a
//!   limit sized for a one-word answer would leave the answer empty.
//!
//! Several reviews per request: [`LlmClassifier::classify_many`] (in
//! `llm_batch.rs`) asks for one JSON object with a label per review id.
//!
//! The API key is only ever placed in the `Authorization` header (marked
//! sensitive); `Debug`/`Display` of [`ApiKey`] print `***`, and any server text
//! copied into an error has the key replaced by `***`.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use rand::Rng;
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::Sentiment;
use crate::config::{ConfigError, LLM_API_KEY, read_secret};
use crate::secret::Secret;

/// Default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Default number of requests in flight at once.
pub const DEFAULT_MAX_CONCURRENCY: usize = 4;
/// Largest accepted `max_concurrency`.
pub const MAX_CONCURRENCY_LIMIT: usize = 64;
/// Default number of retries after the first attempt.
pub const DEFAULT_MAX_RETRIES: u32 = 4;
/// Default backoff before the first retry (upper bound of the jitter window).
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Default cap on any single backoff, including a server's `Retry-After`.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Environment variable holding the endpoint base URL (required).
pub const ENV_BASE_URL: &str = "PIPEBOOK_LLM_BASE_URL";
/// Environment variable holding the model name (required).
pub const ENV_MODEL: &str = "PIPEBOOK_LLM_MODEL";
/// Environment variable holding the API key (optional).
pub const ENV_API_KEY: &str = "PIPEBOOK_LLM_API_KEY";
/// Environment variable naming a file that holds the API key (a container secret); instead of
/// `PIPEBOOK_LLM_API_KEY`.
pub const ENV_API_KEY_FILE: &str = "PIPEBOOK_LLM_API_KEY_FILE";
/// Fallback environment variable for the API key.
pub const ENV_OPENAI_API_KEY: &str = "OPENAI_API_KEY";
/// Environment variable holding the per-request timeout in milliseconds.
pub const ENV_TIMEOUT_MS: &str = "PIPEBOOK_LLM_TIMEOUT_MS";
/// Environment variable holding `max_concurrency`.
pub const ENV_MAX_CONCURRENCY: &str = "PIPEBOOK_LLM_MAX_CONCURRENCY";
/// Environment variable holding `max_retries`.
pub const ENV_MAX_RETRIES: &str = "PIPEBOOK_LLM_MAX_RETRIES";
/// Environment variable holding `batch_size`.
pub const ENV_BATCH_SIZE: &str = "PIPEBOOK_LLM_BATCH_SIZE";
/// Default reviews per request.
pub const DEFAULT_BATCH_SIZE: usize = 8;
/// Largest accepted `batch_size`.
pub const MAX_BATCH_SIZE: usize = 64;

/// System prompt sent with every request.
pub const SYSTEM_PROMPT: &str = "You are a sentiment classifier. Classify the sentiment of the \
review given by the user as POSITIVE, NEGATIVE or NEUTRAL. Answer with exactly one word: \
POSITIVE, NEGATIVE or NEUTRAL.";

/// `max_tokens` sent with every request: one word needs very few tokens.
const MAX_TOKENS: u32 = 5;

/// Malformed JSON (or JSON without `choices[0].message.content`) on a 2xx is
/// retried at most this many times, within the overall retry budget.
///
/// Why exactly one retry: a garbled or truncated 2xx body is usually transient
/// (a proxy or load balancer cutting the connection, an overloaded server
/// answering with an HTML page but status 200), so one more try is cheap and
/// often succeeds. But a server that keeps answering 200 with something that
/// is not a chat completion is almost always misconfigured (wrong `base_url`,
/// not an OpenAI-compatible API); spending the whole retry budget with
/// exponential backoff on it would only delay a configuration error by tens
/// of seconds.
const MAX_MALFORMED_RETRIES: u32 = 1;

/// Largest response body read into memory; anything longer is cut off (and a
/// cut-off 2xx body then fails to parse as malformed JSON).
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Longest piece of server text (error message, raw answer) kept in an error.
const MAX_ERROR_TEXT_CHARS: usize = 300;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// An API key. `Debug` and `Display` print `***`; it is not `Serialize`.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key. Surrounding whitespace (e.g. a trailing newline from a
    /// secrets file) is removed.
    pub fn new(key: impl Into<String>) -> Self {
        let key: String = key.into();
        ApiKey(key.trim().to_string())
    }

    /// The key itself. Only for building the `Authorization` header.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Settings for [`LlmClassifier`]. `Debug` is safe to log: the key prints as
/// `***`.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// Endpoint base, e.g. `https://api.openai.com/v1` or
    /// `http://127.0.0.1:11434/v1`; `/chat/completions` is appended.
    pub base_url: String,
    /// Model name, e.g. `gpt-4o-mini` or `llama3.1`.
    pub model: String,
    /// Bearer token; `None` for servers that need none (Ollama, vLLM).
    pub api_key: Option<ApiKey>,
    /// Timeout of one HTTP request (connect + send + read the whole body).
    pub timeout: Duration,
    /// Requests in flight at once across all clones of the classifier
    /// (1..=64).
    pub max_concurrency: usize,
    /// Retries after the first attempt; at most `max_retries + 1` attempts.
    pub max_retries: u32,
    /// Backoff window before the first retry; doubles for every further retry.
    pub initial_backoff: Duration,
    /// Cap on any single wait between attempts (including `Retry-After`).
    pub max_backoff: Duration,
    /// Sampling temperature (0.0..=2.0).
    pub temperature: f32,
    /// Reviews sent in one request (1..=64); 1 sends each review alone.
    pub batch_size: usize,
}

impl LlmConfig {
    /// A config for `base_url` and `model` with every other field at its
    /// default and no API key.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        LlmConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            timeout: DEFAULT_TIMEOUT,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            max_retries: DEFAULT_MAX_RETRIES,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            temperature: 0.0,
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }

    /// Reads the `PIPEBOOK_LLM_*` environment variables (see the `ENV_*`
    /// constants) and validates the result. `PIPEBOOK_LLM_BASE_URL` and
    /// `PIPEBOOK_LLM_MODEL` are required; the key is `PIPEBOOK_LLM_API_KEY`, or
    /// read from the file `PIPEBOOK_LLM_API_KEY_FILE` names (not both), and
    /// falls back to `OPENAI_API_KEY`. A variable set to an empty string counts
    /// as unset.
    pub fn from_env() -> Result<Self, LlmConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`LlmConfig::from_env`], but reads variables through `lookup`
    /// (used by tests, which must not modify the process environment).
    pub fn from_lookup<F>(lookup: F) -> Result<Self, LlmConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let get = |name: &str| -> Option<String> {
            lookup(name)
                .map(|value| value.trim().to_string())
                .filter(|value| !value.is_empty())
        };

        let base_url = get(ENV_BASE_URL).ok_or(LlmConfigError::MissingEnv { var: ENV_BASE_URL })?;
        let model = get(ENV_MODEL).ok_or(LlmConfigError::MissingEnv { var: ENV_MODEL })?;
        let mut config = LlmConfig::new(base_url, model);

        let key_file = get(ENV_API_KEY_FILE).map(std::path::PathBuf::from);
        let key = read_secret(
            get(ENV_API_KEY).map(Secret::new),
            key_file.as_deref(),
            LLM_API_KEY,
        )?;
        config.api_key = key
            .map(|key| ApiKey::new(key.expose()))
            .or_else(|| get(ENV_OPENAI_API_KEY).map(ApiKey::new));

        if let Some(value) = get(ENV_TIMEOUT_MS) {
            let millis: u64 = parse_env_number(ENV_TIMEOUT_MS, &value)?;
            config.timeout = Duration::from_millis(millis);
        }
        if let Some(value) = get(ENV_MAX_CONCURRENCY) {
            config.max_concurrency = parse_env_number(ENV_MAX_CONCURRENCY, &value)?;
        }
        if let Some(value) = get(ENV_MAX_RETRIES) {
            config.max_retries = parse_env_number(ENV_MAX_RETRIES, &value)?;
        }
        if let Some(value) = get(ENV_BATCH_SIZE) {
            config.batch_size = parse_env_number(ENV_BATCH_SIZE, &value)?;
        }

        config.validate()?;
        Ok(config)
    }

    /// Checks every field; the error names the offending one.
    pub fn validate(&self) -> Result<(), LlmConfigError> {
        chat_completions_url(&self.base_url)?;
        if self.model.trim().is_empty() {
            return Err(LlmConfigError::InvalidField {
                field: "model",
                reason: "must not be empty".to_string(),
            });
        }
        if let Some(key) = &self.api_key {
            authorization_header(key)?;
        }
        if self.timeout.is_zero() {
            return Err(LlmConfigError::InvalidField {
                field: "timeout",
                reason: "must be greater than zero".to_string(),
            });
        }
        if self.max_concurrency == 0 || self.max_concurrency > MAX_CONCURRENCY_LIMIT {
            return Err(LlmConfigError::InvalidField {
                field: "max_concurrency",
                reason: format!(
                    "must be between 1 and {MAX_CONCURRENCY_LIMIT}, got {}",
                    self.max_concurrency
                ),
            });
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_SIZE {
            return Err(LlmConfigError::InvalidField {
                field: "batch_size",
                reason: format!(
                    "must be between 1 and {MAX_BATCH_SIZE}, got {}",
                    self.batch_size
                ),
            });
        }
        if self.max_backoff.is_zero() {
            return Err(LlmConfigError::InvalidField {
                field: "max_backoff",
                reason: "must be greater than zero".to_string(),
            });
        }
        if self.initial_backoff > self.max_backoff {
            return Err(LlmConfigError::InvalidField {
                field: "initial_backoff",
                reason: format!(
                    "must not exceed max_backoff ({:?}), got {:?}",
                    self.max_backoff, self.initial_backoff
                ),
            });
        }
        if !self.temperature.is_finite() || !(0.0..=2.0).contains(&self.temperature) {
            return Err(LlmConfigError::InvalidField {
                field: "temperature",
                reason: format!("must be between 0.0 and 2.0, got {}", self.temperature),
            });
        }
        Ok(())
    }
}

fn parse_env_number<T>(var: &'static str, value: &str) -> Result<T, LlmConfigError>
where
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    value
        .parse::<T>()
        .map_err(|err| LlmConfigError::InvalidEnv {
            var,
            value: value.to_string(),
            reason: err.to_string(),
        })
}

/// `{base_url}/chat/completions`, keeping any query string of the base.
fn chat_completions_url(base_url: &str) -> Result<Url, LlmConfigError> {
    let invalid = |reason: String| LlmConfigError::InvalidField {
        field: "base_url",
        reason: format!("{base_url:?} {reason}"),
    };
    let mut url =
        Url::parse(base_url.trim()).map_err(|err| invalid(format!("is not a URL: {err}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid(format!(
            "must use http or https, not {:?}",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host".to_string()));
    }
    // Not repeated in the message: it would print the password.
    if url.password().is_some() {
        return Err(LlmConfigError::InvalidField {
            field: "base_url",
            reason: "must not carry a password: use PIPEBOOK_LLM_API_KEY (or its _FILE form)"
                .to_string(),
        });
    }
    match url.path_segments_mut() {
        Ok(mut segments) => {
            segments.pop_if_empty().push("chat").push("completions");
        }
        Err(()) => return Err(invalid("cannot be used as a base URL".to_string())),
    }
    Ok(url)
}

fn authorization_header(key: &ApiKey) -> Result<HeaderValue, LlmConfigError> {
    let invalid = |reason: &str| LlmConfigError::InvalidField {
        field: "api_key",
        reason: reason.to_string(),
    };
    if key.expose_secret().is_empty() {
        return Err(invalid("must not be empty when set"));
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
        .map_err(|_| invalid("contains characters not allowed in an HTTP header"))?;
    value.set_sensitive(true);
    Ok(value)
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// Invalid [`LlmConfig`]. Messages name the field or environment variable and
/// never contain the API key.
#[derive(Debug, thiserror::Error)]
pub enum LlmConfigError {
    #[error("environment variable {var} is required but not set")]
    MissingEnv { var: &'static str },
    #[error("environment variable {var}={value:?} is invalid: {reason}")]
    InvalidEnv {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("LLM config field `{field}` is invalid: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("could not build the HTTP client: {0}")]
    HttpClient(String),
    /// The key's variable and its `_FILE` form both set, or the file unreadable.
    #[error(transparent)]
    KeyFile(#[from] ConfigError),
}

// ---------------------------------------------------------------------------
// Errors and results
// ---------------------------------------------------------------------------

/// Why one attempt failed in a way that may be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptFailure {
    /// A retryable HTTP status (429, 500, 502, 503, 504) and the server's
    /// error message.
    Status { status: u16, message: String },
    /// No complete response within the configured timeout.
    Timeout { after: Duration },
    /// The connection could not be established.
    Connect(String),
    /// Another transport error (connection reset, body read failure, ...).
    Transport(String),
    /// A 2xx response whose body is not a chat completion.
    Malformed(String),
}

impl fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptFailure::Status { status, message } => write!(f, "HTTP {status}: {message}"),
            AttemptFailure::Timeout { after } => write!(f, "timed out after {after:?}"),
            AttemptFailure::Connect(detail) => write!(f, "connection error: {detail}"),
            AttemptFailure::Transport(detail) => write!(f, "transport error: {detail}"),
            AttemptFailure::Malformed(detail) => write!(f, "malformed response body: {detail}"),
        }
    }
}

/// Failure of [`LlmClassifier::classify`]. Never contains the API key.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// Every attempt failed with a retryable error.
    #[error("LLM request failed after {attempts} attempt(s); last failure: {last}")]
    RetriesExhausted { attempts: u32, last: AttemptFailure },
    /// The model answered, but not with exactly one known label.
    #[error("LLM answer is not one of POSITIVE, NEGATIVE, NEUTRAL: {raw:?}")]
    Unparseable {
        /// The answer, cut to a few hundred characters.
        raw: String,
        attempts: u32,
    },
    /// A status that retrying cannot fix (400, 401, 403, 404, ...).
    #[error("LLM endpoint answered HTTP {status}: {message}")]
    Http { status: u16, message: String },
    /// A 2xx response whose body is not a chat completion, also on the retry.
    #[error("LLM endpoint sent a malformed response after {attempts} attempt(s): {detail}")]
    MalformedResponse { detail: String, attempts: u32 },
    /// The request could not be built or sent at all (not retried).
    #[error("could not send the LLM request: {0}")]
    Request(String),
    /// The request for a batch of reviews failed as a whole (the error of that request).
    #[error("LLM batch request failed: {0}")]
    Batch(String),
}

/// A successful classification.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmLabel {
    pub sentiment: Sentiment,
    /// `choices[0].message.content` exactly as received.
    pub raw_answer: String,
    /// HTTP attempts made, including the successful one.
    pub attempts: u32,
    /// The configured model name.
    pub model: String,
}

// ---------------------------------------------------------------------------
// Label parsing
// ---------------------------------------------------------------------------

/// Reads a label out of a model answer.
///
/// Case, whitespace, punctuation, quotes and markdown around the word are
/// ignored, and other words may surround it ("**Positive**.", "positive!",
/// "Sentiment: NEGATIVE"). Returns `None` when the answer names no label, two
/// different labels ("positive or negative"), or negates one ("not positive").
pub fn parse_label(answer: &str) -> Option<Sentiment> {
    let mut found: Option<Sentiment> = None;
    for word in answer
        .split(|c: char| !c.is_alphabetic())
        .filter(|word| !word.is_empty())
    {
        let upper = word.to_uppercase();
        let label = match upper.as_str() {
            "POSITIVE" => Sentiment::Positive,
            "NEGATIVE" => Sentiment::Negative,
            "NEUTRAL" => Sentiment::Neutral,
            "NOT" => return None,
            _ => continue,
        };
        match found {
            Some(previous) if previous != label => return None,
            _ => found = Some(label),
        }
    }
    found
}

// ---------------------------------------------------------------------------
// Backoff
// ---------------------------------------------------------------------------

/// Upper bound of the wait before retry number `retry` (0-based):
/// `initial * 2^retry`, capped by `max`.
fn backoff_ceiling(initial: Duration, max: Duration, retry: u32) -> Duration {
    let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
    initial.checked_mul(factor).unwrap_or(max).min(max)
}

/// "Full jitter": a uniformly random wait in `0..=ceiling`.
fn full_jitter<R: Rng + ?Sized>(ceiling: Duration, rng: &mut R) -> Duration {
    let ceiling_nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.random_range(0..=ceiling_nanos))
}

/// Wait requested by a `retry-after-ms` or `Retry-After` header, if any.
fn retry_after_from_headers(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    // OpenAI sends `retry-after-ms` next to `Retry-After`; it is more precise.
    let millis = headers
        .get("retry-after-ms")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<f64>().ok())
        .and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok());
    if millis.is_some() {
        return millis;
    }
    headers
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, SystemTime::now()))
}

/// Parses a `Retry-After` value: delay-seconds (a fraction is tolerated) or an
/// HTTP-date (a date in the past means "now").
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

// ---------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: [ChatMessage<'a>; 2],
    /// Left out once the model refused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    /// Left out once the model refused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
}

/// A request parameter some models refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedParam {
    Temperature,
    MaxTokens,
}

impl RefusedParam {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusedParam::Temperature => "temperature",
            RefusedParam::MaxTokens => "max_tokens",
        }
    }
}

/// Which parameter a 400 body says the model refuses: OpenAI names it in `error.param`
/// (`"max_tokens"`, `"temperature"`) and in the message ("Unsupported parameter: 'max_tokens'
/// is not supported with this model. Use 'max_completion_tokens' instead.", "Unsupported value:
/// 'temperature' does not support 0 with this model."); other servers only in the message.
fn refused_param(body: &[u8]) -> Option<RefusedParam> {
    let named = |text: &str| {
        if text.contains("max_tokens") {
            Some(RefusedParam::MaxTokens)
        } else if text.contains("temperature") {
            Some(RefusedParam::Temperature)
        } else {
            None
        }
    };
    let envelope = serde_json::from_slice::<ErrorEnvelope>(body).ok();
    if let Some(ErrorEnvelope {
        error: Some(ErrorDetail::Object {
            param: Some(param), ..
        }),
        ..
    }) = &envelope
        && let found @ Some(_) = named(param)
    {
        return found;
    }
    let message = server_error_message(body).to_lowercase();
    let refusal = [
        "unsupported",
        "not supported",
        "does not support",
        "not allowed",
    ]
    .iter()
    .any(|phrase| message.contains(phrase));
    if refusal { named(&message) } else { None }
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<ChatChoice>,
}

#[derive(Deserialize)]
struct ChatChoice {
    message: ChatChoiceMessage,
}

#[derive(Deserialize)]
struct ChatChoiceMessage {
    content: Option<String>,
}

/// OpenAI-style `{"error": {"message": ...}}`, or `{"error": "..."}`, or
/// `{"message": "..."}`.
#[derive(Deserialize)]
struct ErrorEnvelope {
    error: Option<ErrorDetail>,
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorDetail {
    Object {
        message: Option<String>,
        /// The offending request parameter (OpenAI).
        #[serde(default)]
        param: Option<String>,
    },
    Text(String),
}

fn server_error_message(body: &[u8]) -> String {
    if let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(body) {
        let message = match envelope.error {
            Some(ErrorDetail::Object {
                message: Some(m), ..
            }) => Some(m),
            Some(ErrorDetail::Text(m)) => Some(m),
            _ => envelope.message,
        };
        if let Some(message) = message {
            return message;
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(empty response body)".to_string()
    } else {
        text.to_string()
    }
}

fn truncate_chars(text: &str, max_chars: usize) -> String {
    let mut chars = text.chars();
    let kept: String = chars.by_ref().take(max_chars).collect();
    if chars.next().is_some() {
        format!("{kept}…")
    } else {
        kept
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn read_body_limited(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY_BYTES.saturating_sub(body.len());
        if chunk.len() >= room {
            body.extend_from_slice(chunk.get(..room).unwrap_or(&[]));
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

// ---------------------------------------------------------------------------
// Classifier
// ---------------------------------------------------------------------------

/// Classifies reviews through an OpenAI-compatible endpoint. Cheap to clone;
/// all clones share one HTTP connection pool and one concurrency limit.
#[derive(Clone)]
pub struct LlmClassifier {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    endpoint: Url,
    /// `Bearer <key>`, marked sensitive.
    authorization: Option<HeaderValue>,
    config: LlmConfig,
    semaphore: Semaphore,
    /// Parameters the model refused; never sent again.
    refused_temperature: AtomicBool,
    refused_max_tokens: AtomicBool,
    /// Batches whose answer held no usable label, in a row (see `llm_batch.rs`).
    unusable_batches: AtomicU32,
}

impl fmt::Debug for LlmClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmClassifier")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Outcome of one HTTP attempt.
enum Attempt {
    /// `choices[0].message.content`.
    Answer(String),
    /// Worth another try, after `retry_after` if the server asked for it.
    Retry {
        failure: AttemptFailure,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help.
    Fatal(LlmError),
    /// 400: the model refuses this parameter.
    Refused {
        param: RefusedParam,
        message: String,
    },
}

impl LlmClassifier {
    /// Validates `config` and builds the HTTP client.
    pub fn new(config: LlmConfig) -> Result<Self, LlmConfigError> {
        config.validate()?;
        let endpoint = chat_completions_url(&config.base_url)?;
        let authorization = match &config.api_key {
            Some(key) => Some(authorization_header(key)?),
            None => None,
        };

        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            // An API endpoint has no business redirecting, and following a
            // redirect would turn the POST into a GET.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pipebook/", env!("CARGO_PKG_VERSION")));
        if is_loopback_host(&endpoint) {
            // A local Ollama/vLLM must never be reached through HTTP_PROXY.
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|err| LlmConfigError::HttpClient(error_chain(&err)))?;

        let semaphore = Semaphore::new(config.max_concurrency);
        Ok(LlmClassifier {
            inner: Arc::new(Inner {
                http,
                endpoint,
                authorization,
                config,
                semaphore,
                refused_temperature: AtomicBool::new(false),
                refused_max_tokens: AtomicBool::new(false),
                unusable_batches: AtomicU32::new(0),
            }),
        })
    }

    /// The configured model name.
    pub fn model(&self) -> &str {
        &self.inner.config.model
    }

    /// Asks the model for the sentiment of `text`, retrying transient failures.
    pub async fn classify(&self, text: &str) -> Result<LlmLabel, LlmError> {
        let config = &self.inner.config;
        let (answer, attempts) = self.complete(SYSTEM_PROMPT, text, MAX_TOKENS).await?;
        match parse_label(&answer) {
            Some(sentiment) => Ok(LlmLabel {
                sentiment,
                raw_answer: answer,
                attempts,
                model: config.model.clone(),
            }),
            None => {
                let raw = truncate_chars(&self.redact(&answer), MAX_ERROR_TEXT_CHARS);
                tracing::warn!(
                    model = %config.model,
                    attempts,
                    raw_answer = %raw,
                    "LLM answer names no single sentiment label"
                );
                Err(LlmError::Unparseable { raw, attempts })
            }
        }
    }

    /// Reviews per request, as configured.
    pub fn batch_size(&self) -> usize {
        self.inner.config.batch_size
    }

    pub(super) fn unusable_batches(&self) -> &AtomicU32 {
        &self.inner.unusable_batches
    }

    /// Whether the model refused `param` (so requests leave it out).
    pub fn refuses(&self, param: RefusedParam) -> bool {
        self.refused_flag(param).load(Ordering::Relaxed)
    }

    fn refused_flag(&self, param: RefusedParam) -> &AtomicBool {
        match param {
            RefusedParam::Temperature => &self.inner.refused_temperature,
            RefusedParam::MaxTokens => &self.inner.refused_max_tokens,
        }
    }

    /// One chat completion (`system`, then `user`), retrying transient failures; returns
    /// `choices[0].message.content` and the attempts it took. A parameter the model refuses is
    /// left out from then on and the request sent again at once (see the module documentation).
    pub(super) async fn complete(
        &self,
        system: &str,
        user: &str,
        max_tokens: u32,
    ) -> Result<(String, u32), LlmError> {
        let config = &self.inner.config;
        let max_attempts = config.max_retries.saturating_add(1);
        let mut malformed_count: u32 = 0;
        let mut attempt: u32 = 0;

        loop {
            attempt += 1;
            // The permit first, then the request: a request that waited for its turn must see
            // a refusal another one got meanwhile, not repeat it.
            let Ok(permit) = self.inner.semaphore.acquire().await else {
                // The semaphore is never closed; handled anyway instead of panicking.
                return Err(LlmError::Request(
                    "concurrency limiter was closed".to_string(),
                ));
            };
            let request = ChatRequest {
                model: &config.model,
                messages: [
                    ChatMessage {
                        role: "system",
                        content: system,
                    },
                    ChatMessage {
                        role: "user",
                        content: user,
                    },
                ],
                temperature: (!self.refuses(RefusedParam::Temperature))
                    .then_some(config.temperature),
                max_tokens: (!self.refuses(RefusedParam::MaxTokens)).then_some(max_tokens),
            };
            tracing::debug!(
                model = %config.model,
                attempt,
                text_chars = user.chars().count(),
                "sending chat-completions request"
            );

            let outcome = self.attempt_once(&request).await;
            // Never held while backing off.
            drop(permit);
            let (failure, retry_after) = match outcome {
                Attempt::Answer(answer) => return Ok((answer, attempt)),
                Attempt::Refused { param, message } => {
                    let sent = match param {
                        RefusedParam::Temperature => request.temperature.is_some(),
                        RefusedParam::MaxTokens => request.max_tokens.is_some(),
                    };
                    if !sent {
                        // Refused although it was not sent: not something leaving it out fixes.
                        return Err(LlmError::Http {
                            status: 400,
                            message,
                        });
                    }
                    if !self.refused_flag(param).swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            model = %config.model,
                            param = param.as_str(),
                            %message,
                            "the model refuses this parameter; requests leave it out from now on"
                        );
                    }
                    // Not a failure of the endpoint: does not count against the retry budget.
                    attempt -= 1;
                    continue;
                }
                Attempt::Fatal(err) => {
                    tracing::warn!(model = %config.model, attempt, error = %err, "LLM request failed");
                    return Err(err);
                }
                Attempt::Retry {
                    failure,
                    retry_after,
                } => (failure, retry_after),
            };

            if let AttemptFailure::Malformed(detail) = &failure {
                malformed_count += 1;
                if malformed_count > MAX_MALFORMED_RETRIES || attempt >= max_attempts {
                    tracing::warn!(model = %config.model, attempt, %detail, "LLM response malformed; giving up");
                    return Err(LlmError::MalformedResponse {
                        detail: detail.clone(),
                        attempts: attempt,
                    });
                }
            }
            if attempt >= max_attempts {
                tracing::warn!(model = %config.model, attempt, last = %failure, "LLM retry budget exhausted");
                return Err(LlmError::RetriesExhausted {
                    attempts: attempt,
                    last: failure,
                });
            }

            let delay = match retry_after {
                Some(wait) => wait.min(config.max_backoff),
                None => {
                    let ceiling =
                        backoff_ceiling(config.initial_backoff, config.max_backoff, attempt - 1);
                    full_jitter(ceiling, &mut rand::rng())
                }
            };
            tracing::warn!(
                model = %config.model,
                attempt,
                failure = %failure,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "LLM request failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One HTTP request; the caller holds a concurrency permit while it is in flight.
    async fn attempt_once(&self, request: &ChatRequest<'_>) -> Attempt {
        let inner = &self.inner;
        let mut builder = inner.http.post(inner.endpoint.clone()).json(request);
        if let Some(authorization) = &inner.authorization {
            builder = builder.header(AUTHORIZATION, authorization.clone());
        }

        let response = match builder.send().await {
            Ok(response) => response,
            Err(err) => return self.transport_failure(&err),
        };
        let status = response.status();
        let retry_after = retry_after_from_headers(response.headers());
        let body = match read_body_limited(response).await {
            Ok(body) => body,
            Err(err) => return self.transport_failure(&err),
        };

        if status.is_success() {
            return match serde_json::from_slice::<ChatResponse>(&body) {
                Ok(parsed) => match parsed.choices.into_iter().next() {
                    Some(ChatChoice {
                        message:
                            ChatChoiceMessage {
                                content: Some(content),
                            },
                    }) => Attempt::Answer(content),
                    Some(_) => self.malformed("choices[0].message.content is missing or null"),
                    None => self.malformed("`choices` is empty"),
                },
                Err(err) => {
                    let snippet = String::from_utf8_lossy(&body);
                    self.malformed(&format!(
                        "{err}; body starts with {:?}",
                        truncate_chars(&snippet, 100)
                    ))
                }
            };
        }

        let message = truncate_chars(
            &self.redact(&server_error_message(&body)),
            MAX_ERROR_TEXT_CHARS,
        );
        if status.as_u16() == 400
            && let Some(param) = refused_param(&body)
        {
            return Attempt::Refused { param, message };
        }
        match status.as_u16() {
            429 | 500 | 502 | 503 | 504 => Attempt::Retry {
                failure: AttemptFailure::Status {
                    status: status.as_u16(),
                    message,
                },
                retry_after,
            },
            other => Attempt::Fatal(LlmError::Http {
                status: other,
                message,
            }),
        }
    }

    fn malformed(&self, detail: &str) -> Attempt {
        Attempt::Retry {
            failure: AttemptFailure::Malformed(self.redact(detail)),
            retry_after: None,
        }
    }

    fn transport_failure(&self, err: &reqwest::Error) -> Attempt {
        let detail = self.redact(&error_chain(err));
        let failure = if err.is_timeout() {
            AttemptFailure::Timeout {
                after: self.inner.config.timeout,
            }
        } else if err.is_builder() {
            return Attempt::Fatal(LlmError::Request(detail));
        } else if err.is_connect() {
            AttemptFailure::Connect(detail)
        } else {
            AttemptFailure::Transport(detail)
        };
        Attempt::Retry {
            failure,
            retry_after: None,
        }
    }

    /// Replaces the API key, should a server echo it, by `***`.
    fn redact(&self, text: &str) -> String {
        match &self.inner.config.api_key {
            Some(key) if !key.expose_secret().is_empty() => {
                text.replace(key.expose_secret(), "***")
            }
            _ => text.to_string(),
        }
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use axum::Json;
    use axum::Router;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    // ----- unit tests: parse_label ------------------------------------------

    #[test]
    fn parse_label_accepts_one_label_in_any_dress() {
        let cases = [
            ("POSITIVE", Sentiment::Positive),
            ("Positive.", Sentiment::Positive),
            ("positive!", Sentiment::Positive),
            ("**Positive**.", Sentiment::Positive),
            ("  \"positive\"\n", Sentiment::Positive),
            ("`NEUTRAL`", Sentiment::Neutral),
            ("Sentiment: NEGATIVE", Sentiment::Negative),
            ("negative", Sentiment::Negative),
            ("'Neutral'", Sentiment::Neutral),
            ("The review is positive.", Sentiment::Positive),
            ("Positive. POSITIVE", Sentiment::Positive),
            ("NEUTRAL\n\n", Sentiment::Neutral),
        ];
        for (answer, expected) in cases {
            assert_eq!(parse_label(answer), Some(expected), "answer {answer:?}");
        }
    }

    #[test]
    fn parse_label_rejects_no_label_two_labels_or_negation() {
        let cases = [
            "",
            "   ",
            "I think it is mixed",
            "Mixed",
            "positively",
            "POS",
            "positive or negative",
            "POSITIVE/NEGATIVE",
            "Neutral, leaning negative",
            "not positive",
        ];
        for answer in cases {
            assert_eq!(parse_label(answer), None, "answer {answer:?}");
        }
    }

    // ----- unit tests: backoff -----------------------------------------------

    #[test]
    fn backoff_ceiling_doubles_then_caps() {
        let initial = Duration::from_millis(500);
        let max = Duration::from_secs(10);
        let ceilings: Vec<Duration> = (0..7).map(|r| backoff_ceiling(initial, max, r)).collect();
        assert_eq!(
            ceilings,
            vec![
                Duration::from_millis(500),
                Duration::from_millis(1000),
                Duration::from_millis(2000),
                Duration::from_millis(4000),
                Duration::from_millis(8000),
                Duration::from_secs(10),
                Duration::from_secs(10),
            ]
        );
        // Huge retry numbers neither overflow nor panic.
        assert_eq!(backoff_ceiling(initial, max, 40), max);
        assert_eq!(backoff_ceiling(initial, max, u32::MAX), max);
        assert_eq!(
            backoff_ceiling(Duration::ZERO, max, 3),
            Duration::ZERO,
            "zero initial backoff stays zero"
        );
    }

    #[test]
    fn full_jitter_stays_within_ceiling_and_varies() {
        let mut rng = StdRng::seed_from_u64(7);
        let ceiling = Duration::from_millis(800);
        let samples: Vec<Duration> = (0..200).map(|_| full_jitter(ceiling, &mut rng)).collect();
        assert!(samples.iter().all(|d| *d <= ceiling));
        assert!(samples.iter().any(|d| *d < ceiling / 2));
        assert!(samples.iter().any(|d| *d > ceiling / 2));
        assert_eq!(full_jitter(Duration::ZERO, &mut rng), Duration::ZERO);
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 30 ", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    // ----- unit tests: config ------------------------------------------------

    fn valid_config() -> LlmConfig {
        LlmConfig::new("https://api.openai.com/v1", "gpt-4o-mini")
    }

    fn invalid_field(config: &LlmConfig) -> &'static str {
        match config.validate() {
            Err(LlmConfigError::InvalidField { field, .. }) => field,
            other => panic!("expected InvalidField, got {other:?}"),
        }
    }

    #[test]
    fn config_defaults_are_valid_and_as_documented() {
        let config = valid_config();
        config.validate().unwrap();
        assert_eq!(config.timeout, Duration::from_secs(20));
        assert_eq!(config.max_concurrency, 4);
        assert_eq!(config.max_retries, 4);
        assert_eq!(config.initial_backoff, Duration::from_millis(500));
        assert_eq!(config.max_backoff, Duration::from_secs(10));
        assert_eq!(config.temperature, 0.0);
        assert!(config.api_key.is_none());
        LlmConfig::new("http://127.0.0.1:11434/v1", "llama3.1")
            .validate()
            .unwrap();
    }

    #[test]
    fn config_validation_names_the_offending_field() {
        for bad_url in [
            "",
            "not a url",
            "api.openai.com/v1",
            "ftp://example.com/v1",
            "file:///tmp/x",
            "http://",
        ] {
            let mut config = valid_config();
            config.base_url = bad_url.to_string();
            assert_eq!(invalid_field(&config), "base_url", "base_url {bad_url:?}");
            let message = config.validate().unwrap_err().to_string();
            assert!(message.contains("base_url"), "{message}");
        }

        let mut config = valid_config();
        config.model = "  ".to_string();
        assert_eq!(invalid_field(&config), "model");

        for concurrency in [0, 65, 1000] {
            let mut config = valid_config();
            config.max_concurrency = concurrency;
            assert_eq!(invalid_field(&config), "max_concurrency");
        }
        for concurrency in [1, 64] {
            let mut config = valid_config();
            config.max_concurrency = concurrency;
            config.validate().unwrap();
        }

        let mut config = valid_config();
        config.timeout = Duration::ZERO;
        assert_eq!(invalid_field(&config), "timeout");

        let mut config = valid_config();
        config.initial_backoff = Duration::from_secs(11);
        assert_eq!(invalid_field(&config), "initial_backoff");

        let mut config = valid_config();
        config.max_backoff = Duration::ZERO;
        config.initial_backoff = Duration::ZERO;
        assert_eq!(invalid_field(&config), "max_backoff");

        for temperature in [f32::NAN, -0.1, 2.5, f32::INFINITY] {
            let mut config = valid_config();
            config.temperature = temperature;
            assert_eq!(invalid_field(&config), "temperature");
        }

        let mut config = valid_config();
        config.api_key = Some(ApiKey::new("   "));
        assert_eq!(invalid_field(&config), "api_key");

        let mut config = valid_config();
        config.api_key = Some(ApiKey::new("sk-bad\u{7f}key-SECRET"));
        assert_eq!(invalid_field(&config), "api_key");
        let message = config.validate().unwrap_err().to_string();
        assert!(!message.contains("SECRET"), "{message}");

        assert!(LlmClassifier::new(LlmConfig::new("nope", "m")).is_err());
    }

    #[test]
    fn endpoint_is_base_url_plus_chat_completions() {
        let cases = [
            (
                "https://api.openai.com/v1",
                "https://api.openai.com/v1/chat/completions",
            ),
            (
                "http://127.0.0.1:11434/v1/",
                "http://127.0.0.1:11434/v1/chat/completions",
            ),
            (
                "http://localhost:8000",
                "http://localhost:8000/chat/completions",
            ),
            (
                "https://example.com/openai/v1?api-version=1",
                "https://example.com/openai/v1/chat/completions?api-version=1",
            ),
        ];
        for (base, expected) in cases {
            assert_eq!(chat_completions_url(base).unwrap().as_str(), expected);
        }
    }

    fn lookup_in(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn config_from_env_reads_all_variables() {
        let config = LlmConfig::from_lookup(lookup_in(&[
            (ENV_BASE_URL, "http://127.0.0.1:11434/v1"),
            (ENV_MODEL, "llama3.1"),
            (ENV_API_KEY, "sk-primary\n"),
            (ENV_OPENAI_API_KEY, "sk-fallback"),
            (ENV_TIMEOUT_MS, "1500"),
            (ENV_MAX_CONCURRENCY, "8"),
            (ENV_MAX_RETRIES, "2"),
        ]))
        .unwrap();
        assert_eq!(config.base_url, "http://127.0.0.1:11434/v1");
        assert_eq!(config.model, "llama3.1");
        assert_eq!(
            config.api_key.as_ref().map(ApiKey::expose_secret),
            Some("sk-primary")
        );
        assert_eq!(config.timeout, Duration::from_millis(1500));
        assert_eq!(config.max_concurrency, 8);
        assert_eq!(config.max_retries, 2);
        assert_eq!(config.initial_backoff, DEFAULT_INITIAL_BACKOFF);
    }

    #[test]
    fn config_from_env_key_falls_back_to_openai_api_key() {
        let base = [
            (ENV_BASE_URL, "https://api.openai.com/v1"),
            (ENV_MODEL, "m"),
        ];

        let config = LlmConfig::from_lookup(lookup_in(
            &[&base[..], &[(ENV_OPENAI_API_KEY, "sk-fallback")]].concat(),
        ))
        .unwrap();
        assert_eq!(
            config.api_key.as_ref().map(ApiKey::expose_secret),
            Some("sk-fallback")
        );

        // An empty PIPEBOOK_LLM_API_KEY counts as unset.
        let config = LlmConfig::from_lookup(lookup_in(
            &[
                &base[..],
                &[(ENV_API_KEY, ""), (ENV_OPENAI_API_KEY, "sk-fallback")],
            ]
            .concat(),
        ))
        .unwrap();
        assert_eq!(
            config.api_key.as_ref().map(ApiKey::expose_secret),
            Some("sk-fallback")
        );

        let config = LlmConfig::from_lookup(lookup_in(&base)).unwrap();
        assert!(config.api_key.is_none());
        assert_eq!(config.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn config_from_env_errors_name_the_variable() {
        let err = LlmConfig::from_lookup(lookup_in(&[(ENV_MODEL, "m")])).unwrap_err();
        assert!(
            matches!(err, LlmConfigError::MissingEnv { var } if var == ENV_BASE_URL),
            "{err:?}"
        );
        assert!(err.to_string().contains("PIPEBOOK_LLM_BASE_URL"));

        let err = LlmConfig::from_lookup(lookup_in(&[(ENV_BASE_URL, "http://x")])).unwrap_err();
        assert!(err.to_string().contains("PIPEBOOK_LLM_MODEL"), "{err}");

        let base = [(ENV_BASE_URL, "http://localhost:1/v1"), (ENV_MODEL, "m")];
        for (var, value) in [
            (ENV_TIMEOUT_MS, "soon"),
            (ENV_MAX_CONCURRENCY, "-1"),
            (ENV_MAX_RETRIES, "4.5"),
        ] {
            let err = LlmConfig::from_lookup(lookup_in(&[&base[..], &[(var, value)]].concat()))
                .unwrap_err();
            assert!(
                matches!(&err, LlmConfigError::InvalidEnv { var: v, .. } if *v == var),
                "{err:?}"
            );
            assert!(err.to_string().contains(var), "{err}");
        }

        // Parsed fine but out of range: reported by validate() with the field.
        let err = LlmConfig::from_lookup(lookup_in(
            &[&base[..], &[(ENV_MAX_CONCURRENCY, "0")]].concat(),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("max_concurrency"), "{err}");

        let err = LlmConfig::from_lookup(lookup_in(&[
            (ENV_BASE_URL, "localhost:11434"),
            (ENV_MODEL, "m"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("base_url"), "{err}");
    }

    #[test]
    fn config_from_env_reads_the_key_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("llm_key");
        std::fs::write(&path, "sk-from-file\n").unwrap();
        let path_text = path.display().to_string();
        let base = [
            (ENV_BASE_URL, "http://127.0.0.1:11434/v1"),
            (ENV_MODEL, "m"),
        ];
        let config = LlmConfig::from_lookup(lookup_in(
            &[&base[..], &[(ENV_API_KEY_FILE, path_text.as_str())]].concat(),
        ))
        .unwrap();
        assert_eq!(
            config.api_key.as_ref().map(ApiKey::expose_secret),
            Some("sk-from-file")
        );

        // Both forms: refused, naming the variable.
        let err = LlmConfig::from_lookup(lookup_in(
            &[
                &base[..],
                &[
                    (ENV_API_KEY_FILE, path_text.as_str()),
                    (ENV_API_KEY, "sk-x"),
                ],
            ]
            .concat(),
        ))
        .unwrap_err();
        assert!(err.to_string().starts_with(ENV_API_KEY), "{err}");
        assert!(!err.to_string().contains("sk-x"), "{err}");

        // A missing file: refused, naming the _FILE variable.
        let missing = dir.path().join("nope").display().to_string();
        let err = LlmConfig::from_lookup(lookup_in(
            &[&base[..], &[(ENV_API_KEY_FILE, missing.as_str())]].concat(),
        ))
        .unwrap_err();
        assert!(err.to_string().starts_with(ENV_API_KEY_FILE), "{err}");
    }

    #[test]
    fn a_password_in_the_base_url_is_refused_without_repeating_it() {
        let err = LlmConfig::from_lookup(lookup_in(&[
            (ENV_BASE_URL, "https://user:url-SECRET@llm.example/v1"),
            (ENV_MODEL, "m"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("base_url"), "{err}");
        assert!(!err.to_string().contains("url-SECRET"), "{err}");
    }

    #[test]
    fn api_key_never_shows_in_debug_or_display() {
        let secret = "sk-live-VERY-SECRET-123";
        let key = ApiKey::new(secret);
        assert_eq!(format!("{key:?}"), "***");
        assert_eq!(format!("{key}"), "***");
        assert_eq!(key.expose_secret(), secret);

        let mut config = valid_config();
        config.api_key = Some(key);
        let debug = format!("{config:?}");
        let pretty = format!("{config:#?}");
        assert!(
            !debug.contains(secret) && !pretty.contains(secret),
            "{pretty}"
        );
        assert!(debug.contains("***"), "{debug}");

        let classifier = LlmClassifier::new(config).unwrap();
        let debug = format!("{classifier:?}");
        assert!(!debug.contains(secret), "{debug}");
    }

    #[test]
    fn server_error_messages_are_extracted() {
        assert_eq!(
            server_error_message(br#"{"error":{"message":"bad key","type":"auth"}}"#),
            "bad key"
        );
        assert_eq!(
            server_error_message(br#"{"error":"model not found"}"#),
            "model not found"
        );
        assert_eq!(
            server_error_message(br#"{"message":"slow down"}"#),
            "slow down"
        );
        assert_eq!(server_error_message(b"  Bad Gateway \n"), "Bad Gateway");
        assert_eq!(server_error_message(b""), "(empty response body)");
        assert_eq!(truncate_chars("héllo", 2), "hé…");
        assert_eq!(truncate_chars("hé", 2), "hé");
    }

    // ----- integration tests: scripted local chat-completions server ---------

    /// One scripted reply of the fake server.
    #[derive(Clone)]
    struct Reply {
        delay: Duration,
        status: u16,
        retry_after: Option<&'static str>,
        body: String,
    }

    impl Reply {
        /// A normal chat completion whose content is `content`.
        fn answer(content: &str) -> Self {
            let body = serde_json::json!({
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": "test-model",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop"
                }],
                "usage": {"prompt_tokens": 30, "completion_tokens": 2, "total_tokens": 32}
            });
            Reply {
                delay: Duration::ZERO,
                status: 200,
                retry_after: None,
                body: body.to_string(),
            }
        }

        /// An OpenAI-style error body with `status`.
        fn error(status: u16, message: &str) -> Self {
            let body = serde_json::json!({
                "error": {"message": message, "type": "test_error", "param": null, "code": null}
            });
            Reply {
                delay: Duration::ZERO,
                status,
                retry_after: None,
                body: body.to_string(),
            }
        }

        /// A body sent verbatim as `application/json`.
        fn raw(status: u16, body: &str) -> Self {
            Reply {
                delay: Duration::ZERO,
                status,
                retry_after: None,
                body: body.to_string(),
            }
        }

        fn with_retry_after(mut self, value: &'static str) -> Self {
            self.retry_after = Some(value);
            self
        }

        fn with_delay(mut self, delay: Duration) -> Self {
            self.delay = delay;
            self
        }
    }

    /// What the fake server saw.
    #[derive(Default)]
    struct Seen {
        requests: AtomicUsize,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
        authorization: Mutex<Vec<Option<String>>>,
        bodies: Mutex<Vec<serde_json::Value>>,
    }

    struct ServerState {
        /// Request `i` (0-based) gets `script[min(i, len - 1)]`.
        script: Vec<Reply>,
        seen: Arc<Seen>,
    }

    /// Decrements the in-flight counter even when the handler is cancelled.
    struct InFlight<'a>(&'a AtomicUsize);

    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    async fn chat_completions(
        State(state): State<Arc<ServerState>>,
        headers: HeaderMap,
        Json(body): Json<serde_json::Value>,
    ) -> Response {
        let seen = &state.seen;
        let index = seen.requests.fetch_add(1, Ordering::SeqCst);
        let now_in_flight = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let _guard = InFlight(&seen.in_flight);
        seen.max_in_flight
            .fetch_max(now_in_flight, Ordering::SeqCst);
        seen.authorization.lock().unwrap().push(
            headers
                .get(header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_string()),
        );
        seen.bodies.lock().unwrap().push(body);

        let reply = state.script[index.min(state.script.len() - 1)].clone();
        tokio::time::sleep(reply.delay).await;

        let mut response = (
            StatusCode::from_u16(reply.status).unwrap(),
            [(header::CONTENT_TYPE, "application/json")],
            reply.body,
        )
            .into_response();
        if let Some(value) = reply.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, value.parse().unwrap());
        }
        response
    }

    /// A fake chat-completions server on 127.0.0.1 (port chosen by the OS),
    /// stopped when dropped.
    struct TestServer {
        base_url: String,
        seen: Arc<Seen>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl TestServer {
        fn requests(&self) -> usize {
            self.seen.requests.load(Ordering::SeqCst)
        }
    }

    async fn spawn_server(script: Vec<Reply>) -> TestServer {
        assert!(!script.is_empty());
        let seen = Arc::new(Seen::default());
        let state = Arc::new(ServerState {
            script,
            seen: Arc::clone(&seen),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TestServer {
            base_url: format!("http://{addr}/v1"),
            seen,
            task,
        }
    }

    /// Short timeouts and backoffs so the suite stays fast; max_backoff stays
    /// above 1 s so a `Retry-After: 1` is honoured in full.
    fn test_config(base_url: &str) -> LlmConfig {
        LlmConfig {
            timeout: Duration::from_secs(5),
            max_retries: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_secs(2),
            ..LlmConfig::new(base_url, "test-model")
        }
    }

    fn classifier(config: LlmConfig) -> LlmClassifier {
        LlmClassifier::new(config).unwrap()
    }

    #[tokio::test]
    async fn classifies_a_normal_answer_and_sends_the_wire_format() {
        let server = spawn_server(vec![Reply::answer("Positive.")]).await;
        let llm = classifier(test_config(&server.base_url));
        assert_eq!(llm.model(), "test-model");

        let label = llm.classify("Loved every page of it.").await.unwrap();
        assert_eq!(
            label,
            LlmLabel {
                sentiment: Sentiment::Positive,
                raw_answer: "Positive.".to_string(),
                attempts: 1,
                model: "test-model".to_string(),
            }
        );
        assert_eq!(server.requests(), 1);

        let bodies = server.seen.bodies.lock().unwrap();
        let body = &bodies[0];
        assert_eq!(body["model"], "test-model");
        assert_eq!(body["max_tokens"], 5);
        assert_eq!(body["temperature"], 0.0);
        assert_eq!(body["messages"][0]["role"], "system");
        let system = body["messages"][0]["content"].as_str().unwrap();
        for word in ["POSITIVE", "NEGATIVE", "NEUTRAL", "one word"] {
            assert!(
                system.contains(word),
                "system prompt lacks {word}: {system}"
            );
        }
        assert_eq!(body["messages"][1]["role"], "user");
        assert_eq!(body["messages"][1]["content"], "Loved every page of it.");
        assert_eq!(body["messages"].as_array().unwrap().len(), 2);
        // No key configured: no Authorization header at all.
        assert_eq!(*server.seen.authorization.lock().unwrap(), vec![None]);
    }

    #[tokio::test]
    async fn authorization_header_carries_the_key_but_formatting_does_not() {
        let secret = "sk-test-SECRET-4242";
        let server = spawn_server(vec![Reply::answer("NEGATIVE")]).await;
        let mut config = test_config(&server.base_url);
        config.api_key = Some(ApiKey::new(secret));
        assert!(!format!("{config:?}").contains(secret));
        assert!(!format!("{config:#?}").contains(secret));
        let llm = classifier(config);
        assert!(!format!("{llm:?}").contains(secret));

        let label = llm.classify("Dull and too long.").await.unwrap();
        assert_eq!(label.sentiment, Sentiment::Negative);
        assert!(!format!("{label:?}").contains(secret));
        assert_eq!(
            *server.seen.authorization.lock().unwrap(),
            vec![Some(format!("Bearer {secret}"))]
        );
        // The key travels only in the header, never in the JSON body.
        let body = server.seen.bodies.lock().unwrap()[0].to_string();
        assert!(!body.contains(secret));
    }

    #[tokio::test]
    async fn rate_limit_honours_retry_after_then_succeeds() {
        let server = spawn_server(vec![
            Reply::error(429, "Rate limit reached").with_retry_after("1"),
            Reply::answer("neutral"),
        ])
        .await;
        // initial_backoff is 1 ms: only Retry-After can explain a 1 s wait.
        let llm = classifier(test_config(&server.base_url));

        let started = Instant::now();
        let label = llm.classify("It is a book.").await.unwrap();
        let waited = started.elapsed();

        assert_eq!(label.sentiment, Sentiment::Neutral);
        assert_eq!(label.attempts, 2);
        assert_eq!(server.requests(), 2);
        assert!(
            waited >= Duration::from_secs(1),
            "waited only {waited:?} despite Retry-After: 1"
        );
    }

    #[tokio::test]
    async fn retry_after_is_capped_by_max_backoff() {
        let server = spawn_server(vec![
            Reply::error(503, "busy").with_retry_after("3600"),
            Reply::answer("Positive"),
        ])
        .await;
        let mut config = test_config(&server.base_url);
        config.max_backoff = Duration::from_millis(20);
        let llm = classifier(config);

        // Guard only: an uncapped Retry-After would hang for an hour.
        let label = tokio::time::timeout(Duration::from_secs(10), llm.classify("ok"))
            .await
            .expect("Retry-After was not capped by max_backoff")
            .unwrap();
        assert_eq!(label.sentiment, Sentiment::Positive);
        assert_eq!(label.attempts, 2);
    }

    #[tokio::test]
    async fn transient_gateway_errors_are_retried() {
        let server = spawn_server(vec![
            Reply::error(502, "bad gateway"),
            Reply::error(503, "unavailable"),
            Reply::raw(504, "<html>gateway timeout</html>"),
            Reply::answer("**Negative**."),
        ])
        .await;
        let llm = classifier(test_config(&server.base_url));

        let label = llm.classify("Broken on arrival.").await.unwrap();
        assert_eq!(label.sentiment, Sentiment::Negative);
        assert_eq!(label.attempts, 4);
        assert_eq!(server.requests(), 4);
    }

    #[tokio::test]
    async fn server_errors_exhaust_the_retry_budget() {
        let server = spawn_server(vec![Reply::error(500, "The server had an error")]).await;
        let mut config = test_config(&server.base_url);
        config.max_retries = 2;
        let llm = classifier(config);

        let err = llm.classify("anything").await.unwrap_err();
        match &err {
            LlmError::RetriesExhausted {
                attempts,
                last: AttemptFailure::Status { status, message },
            } => {
                assert_eq!(*attempts, 3);
                assert_eq!(*status, 500);
                assert_eq!(message, "The server had an error");
            }
            other => panic!("expected RetriesExhausted with a 500, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("3 attempt") && text.contains("500"), "{text}");
        assert_eq!(server.requests(), 3);
    }

    #[tokio::test]
    async fn malformed_json_is_retried_once_then_reported() {
        let server = spawn_server(vec![Reply::raw(200, r#"{"choices": [{"mess"#)]).await;
        let llm = classifier(test_config(&server.base_url));

        let err = llm.classify("anything").await.unwrap_err();
        assert!(
            matches!(err, LlmError::MalformedResponse { attempts: 2, .. }),
            "{err:?}"
        );
        assert_eq!(
            server.requests(),
            2,
            "exactly one retry for a malformed body"
        );
    }

    #[tokio::test]
    async fn malformed_json_once_then_success() {
        let server = spawn_server(vec![
            Reply::raw(200, "<html>upstream hiccup</html>"),
            Reply::answer("positive!"),
        ])
        .await;
        let llm = classifier(test_config(&server.base_url));

        let label = llm.classify("Great.").await.unwrap();
        assert_eq!(label.sentiment, Sentiment::Positive);
        assert_eq!(label.attempts, 2);
    }

    #[tokio::test]
    async fn valid_json_without_content_counts_as_malformed() {
        let server = spawn_server(vec![Reply::raw(200, r#"{"choices": []}"#)]).await;
        let llm = classifier(test_config(&server.base_url));

        let err = llm.classify("anything").await.unwrap_err();
        match err {
            LlmError::MalformedResponse { detail, attempts } => {
                assert_eq!(attempts, 2);
                assert!(detail.contains("choices"), "{detail}");
            }
            other => panic!("expected MalformedResponse, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn unparseable_answer_fails_at_once() {
        let server = spawn_server(vec![Reply::answer("I think it is mixed")]).await;
        let llm = classifier(test_config(&server.base_url));

        let err = llm.classify("Good plot, awful ending.").await.unwrap_err();
        match &err {
            LlmError::Unparseable { raw, attempts } => {
                assert_eq!(raw, "I think it is mixed");
                assert_eq!(*attempts, 1);
            }
            other => panic!("expected Unparseable, got {other:?}"),
        }
        assert!(err.to_string().contains("I think it is mixed"));
        assert_eq!(server.requests(), 1, "an unparseable answer is not retried");
    }

    #[tokio::test]
    async fn long_unparseable_answer_is_truncated_in_the_error() {
        let long = "blah ".repeat(500);
        let server = spawn_server(vec![Reply::answer(&long)]).await;
        let llm = classifier(test_config(&server.base_url));

        match llm.classify("x").await.unwrap_err() {
            LlmError::Unparseable { raw, .. } => {
                assert!(
                    raw.chars().count() <= MAX_ERROR_TEXT_CHARS + 1,
                    "{}",
                    raw.len()
                );
                assert!(raw.ends_with('…'));
            }
            other => panic!("expected Unparseable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn unauthorized_is_not_retried_and_never_echoes_the_key() {
        let secret = "sk-wrong-SECRET-0001";
        let server = spawn_server(vec![Reply::error(
            401,
            &format!("Incorrect API key provided: {secret}."),
        )])
        .await;
        let mut config = test_config(&server.base_url);
        config.api_key = Some(ApiKey::new(secret));
        let llm = classifier(config);

        let err = llm.classify("anything").await.unwrap_err();
        match &err {
            LlmError::Http { status, message } => {
                assert_eq!(*status, 401);
                assert_eq!(message, "Incorrect API key provided: ***.");
            }
            other => panic!("expected Http 401, got {other:?}"),
        }
        assert!(!err.to_string().contains(secret));
        assert!(!format!("{err:?}").contains(secret));
        assert_eq!(server.requests(), 1, "a 401 must not be retried");
    }

    #[tokio::test]
    async fn client_errors_are_not_retried() {
        for status in [400u16, 403, 404] {
            let server = spawn_server(vec![Reply::error(status, "nope")]).await;
            let llm = classifier(test_config(&server.base_url));

            let err = llm.classify("anything").await.unwrap_err();
            assert!(
                matches!(&err, LlmError::Http { status: s, message } if *s == status && message == "nope"),
                "status {status}: {err:?}"
            );
            assert_eq!(server.requests(), 1, "status {status} must not be retried");
        }
    }

    #[tokio::test]
    async fn slow_reply_times_out_and_is_retried_until_the_budget_ends() {
        let server = spawn_server(vec![
            Reply::answer("Positive").with_delay(Duration::from_secs(30)),
        ])
        .await;
        let mut config = test_config(&server.base_url);
        config.timeout = Duration::from_millis(200);
        config.max_retries = 1;
        let llm = classifier(config);

        let err = llm.classify("anything").await.unwrap_err();
        match &err {
            LlmError::RetriesExhausted {
                attempts,
                last: AttemptFailure::Timeout { after },
            } => {
                assert_eq!(*attempts, 2);
                assert_eq!(*after, Duration::from_millis(200));
            }
            other => panic!("expected RetriesExhausted with a timeout, got {other:?}"),
        }
        assert!(err.to_string().contains("timed out"), "{err}");
        assert_eq!(server.requests(), 2);
    }

    #[tokio::test]
    async fn connection_refused_is_retried_then_reported() {
        // Bind and release a port so nothing listens on it.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let mut config = test_config(&format!("http://{addr}/v1"));
        config.max_retries = 2;
        let llm = classifier(config);

        let err = llm.classify("anything").await.unwrap_err();
        assert!(
            matches!(
                err,
                LlmError::RetriesExhausted {
                    attempts: 3,
                    last: AttemptFailure::Connect(_)
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrency_is_bounded_across_clones() {
        let server = spawn_server(vec![
            Reply::answer("Neutral").with_delay(Duration::from_millis(40)),
        ])
        .await;
        let mut config = test_config(&server.base_url);
        config.max_concurrency = 3;
        let llm = classifier(config);

        let mut tasks = Vec::new();
        for i in 0..20 {
            let llm = llm.clone();
            tasks.push(tokio::spawn(async move {
                llm.classify(&format!("review {i}")).await
            }));
        }
        for task in tasks {
            let label = task.await.unwrap().unwrap();
            assert_eq!(label.sentiment, Sentiment::Neutral);
            assert_eq!(label.attempts, 1);
        }

        let max_in_flight = server.seen.max_in_flight.load(Ordering::SeqCst);
        assert_eq!(server.requests(), 20);
        assert!(max_in_flight >= 1);
        assert!(
            max_in_flight <= 3,
            "server saw {max_in_flight} simultaneous requests with max_concurrency 3"
        );
    }

    #[test]
    fn classifier_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<LlmClassifier>();
    }

    /// Records every span field and event field, at every level, as text.
    struct CaptureAll(Arc<Mutex<String>>);

    struct FieldsToText<'a>(&'a mut String);

    impl tracing::field::Visit for FieldsToText<'_> {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
            self.0.push_str(&format!("{}={:?} ", field.name(), value));
        }
    }

    impl tracing::Subscriber for CaptureAll {
        fn enabled(&self, _metadata: &tracing::Metadata<'_>) -> bool {
            true
        }

        fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            span.record(&mut FieldsToText(&mut self.0.lock().unwrap()));
            tracing::span::Id::from_u64(1)
        }

        fn record(&self, _span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
            values.record(&mut FieldsToText(&mut self.0.lock().unwrap()));
        }

        fn record_follows_from(&self, _span: &tracing::span::Id, _follows: &tracing::span::Id) {}

        fn event(&self, event: &tracing::Event<'_>) {
            let mut text = self.0.lock().unwrap();
            text.push_str(event.metadata().level().as_str());
            text.push(' ');
            event.record(&mut FieldsToText(&mut text));
            text.push('\n');
        }

        fn enter(&self, _span: &tracing::span::Id) {}

        fn exit(&self, _span: &tracing::span::Id) {}
    }

    #[tokio::test]
    async fn tracing_output_never_contains_the_key() {
        let secret = "sk-log-SECRET-7777";
        let logs = Arc::new(Mutex::new(String::new()));
        // Current-thread test runtime: everything below runs on this thread.
        let _guard = tracing::subscriber::set_default(CaptureAll(Arc::clone(&logs)));

        let server = spawn_server(vec![
            Reply::error(429, &format!("slow down, {secret}")).with_retry_after("0"),
            Reply::answer(&format!("unsure ({secret})")),
        ])
        .await;
        let mut config = test_config(&server.base_url);
        config.api_key = Some(ApiKey::new(secret));
        let llm = classifier(config.clone());
        tracing::info!(config = ?config, classifier = ?llm, "configured");
        // Another test's thread (no subscriber) may have registered the retry's log line while
        // ours was being set as default, and cached it as never wanted: tracing's interest cache
        // races with `set_default` (1 run in 20 lost the "retrying" line). Rebuilding it now,
        // with our subscriber registered, makes every line of this thread reach the capture.
        tracing::callsite::rebuild_interest_cache();

        let err = llm.classify("meh").await.unwrap_err();
        assert!(
            matches!(err, LlmError::Unparseable { attempts: 2, .. }),
            "{err:?}"
        );

        let logs = logs.lock().unwrap().clone();
        // The capture works: the retry and the unparseable answer were logged.
        assert!(logs.contains("retrying"), "{logs}");
        assert!(logs.contains("unsure (***)"), "{logs}");
        assert!(
            !logs.contains(secret),
            "key leaked into tracing output:\n{logs}"
        );
    }

    // ----- refused parameters (reasoning models) -------------------------------

    impl Reply {
        /// OpenAI's 400 for a parameter the model does not take.
        fn refusal(param: &str, message: &str) -> Self {
            let body = serde_json::json!({
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": param,
                    "code": "unsupported_parameter"
                }
            });
            Reply::raw(400, &body.to_string())
        }
    }

    const NO_MAX_TOKENS: &str = "Unsupported parameter: 'max_tokens' is not supported with this \
        model. Use 'max_completion_tokens' instead.";
    const NO_TEMPERATURE: &str = "Unsupported value: 'temperature' does not support 0 with this \
        model. Only the default (1) value is supported.";

    #[tokio::test]
    async fn a_refused_max_tokens_is_left_out_at_once_and_from_then_on() {
        let server = spawn_server(vec![
            Reply::refusal("max_tokens", NO_MAX_TOKENS),
            Reply::answer("POSITIVE"),
            Reply::answer("NEGATIVE"),
        ])
        .await;
        let mut config = test_config(&server.base_url);
        config.max_retries = 0; // the refusal must not need the retry budget
        let llm = classifier(config);

        let first = llm
            .classify("Great.")
            .await
            .expect("asked again without max_tokens");
        assert_eq!((first.sentiment, first.attempts), (Sentiment::Positive, 1));
        assert!(llm.refuses(RefusedParam::MaxTokens));
        let second = llm.clone().classify("Awful.").await.expect("second");
        assert_eq!(second.sentiment, Sentiment::Negative);
        assert_eq!(server.requests(), 3, "one refusal, then no more 400s");

        let bodies = server.seen.bodies.lock().unwrap();
        assert_eq!(bodies[0]["max_tokens"], 5);
        for body in &bodies[1..] {
            assert!(body.get("max_tokens").is_none(), "{body}");
            assert!(body.get("max_completion_tokens").is_none(), "{body}");
            assert_eq!(body["temperature"], 0.0, "temperature was not refused");
        }
    }

    #[tokio::test]
    async fn a_reasoning_model_refusing_both_parameters_gets_neither() {
        // Only the message names the parameter here (some servers send no `param`).
        let server = spawn_server(vec![
            Reply::refusal("max_tokens", NO_MAX_TOKENS),
            Reply::error(400, NO_TEMPERATURE),
            Reply::answer("NEUTRAL"),
        ])
        .await;
        let llm = classifier(test_config(&server.base_url));
        let label = llm
            .classify("It is a chair.")
            .await
            .expect("third request answers");
        assert_eq!(label.sentiment, Sentiment::Neutral);
        assert_eq!(server.requests(), 3);
        assert!(llm.refuses(RefusedParam::MaxTokens) && llm.refuses(RefusedParam::Temperature));
        let bodies = server.seen.bodies.lock().unwrap();
        assert!(bodies[1].get("max_tokens").is_none() && bodies[1]["temperature"] == 0.0);
        assert!(bodies[2].get("max_tokens").is_none() && bodies[2].get("temperature").is_none());
    }

    #[tokio::test]
    async fn a_refusal_of_a_parameter_not_sent_is_an_error_not_a_loop() {
        let server = spawn_server(vec![Reply::refusal("max_tokens", NO_MAX_TOKENS)]).await;
        let llm = classifier(test_config(&server.base_url));
        let err = llm.classify("x").await.unwrap_err();
        assert!(
            matches!(&err, LlmError::Http { status: 400, message } if message.contains("max_tokens")),
            "{err:?}"
        );
        assert_eq!(server.requests(), 2, "left out once, then given up");
        // Other 400s are still not retried and change nothing.
        let server = spawn_server(vec![Reply::error(400, "model not found")]).await;
        let llm = classifier(test_config(&server.base_url));
        assert!(llm.classify("x").await.is_err());
        assert_eq!(server.requests(), 1);
        assert!(!llm.refuses(RefusedParam::MaxTokens) && !llm.refuses(RefusedParam::Temperature));
    }

    // ----- several reviews per request ------------------------------------------

    /// The reviews a batch request carried, by id.
    fn batch_reviews(body: &serde_json::Value) -> Vec<(String, String)> {
        let user = body["messages"][1]["content"]
            .as_str()
            .expect("user content");
        let reviews: Vec<serde_json::Value> = serde_json::from_str(user).expect("a JSON array");
        reviews
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().expect("id").to_owned(),
                    r["text"].as_str().expect("text").to_owned(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn several_reviews_share_one_request_and_one_json_answer() {
        let server = spawn_server(vec![Reply::answer(
            "```json\n{\"1\": \"POSITIVE\", \"2\": \"NEGATIVE\", \"3\": \"NEUTRAL\"}\n```",
        )])
        .await;
        let llm = classifier(test_config(&server.base_url));
        let results = llm
            .classify_many(&["Loved it.", "Hated it, \"really\".", "It exists."])
            .await;
        let labels: Vec<Sentiment> = results.into_iter().map(|r| r.unwrap().sentiment).collect();
        assert_eq!(
            labels,
            [Sentiment::Positive, Sentiment::Negative, Sentiment::Neutral]
        );
        assert_eq!(server.requests(), 1);
        let body = &server.seen.bodies.lock().unwrap()[0];
        assert_eq!(
            batch_reviews(body),
            [
                ("1".to_owned(), "Loved it.".to_owned()),
                ("2".to_owned(), "Hated it, \"really\".".to_owned()),
                ("3".to_owned(), "It exists.".to_owned())
            ]
        );
        assert_eq!(
            body["messages"][0]["content"],
            super::super::llm_batch::BATCH_SYSTEM_PROMPT
        );
        assert_eq!(body["max_tokens"], 52);
    }

    #[tokio::test]
    async fn a_review_missing_or_invalid_in_the_answer_is_asked_alone() {
        let server = spawn_server(vec![
            Reply::answer(r#"{"1": "POSITIVE", "3": "somewhat"}"#),
            Reply::answer("NEGATIVE"),
            Reply::answer("NEUTRAL"),
        ])
        .await;
        let llm = classifier(test_config(&server.base_url));
        let results = llm.classify_many(&["a", "b", "c"]).await;
        let labels: Vec<Sentiment> = results.into_iter().map(|r| r.unwrap().sentiment).collect();
        assert_eq!(
            labels,
            [Sentiment::Positive, Sentiment::Negative, Sentiment::Neutral]
        );
        assert_eq!(server.requests(), 3, "one batch, then b and c alone");
        let bodies = server.seen.bodies.lock().unwrap();
        assert_eq!(bodies[1]["messages"][0]["content"], SYSTEM_PROMPT);
        assert_eq!(bodies[1]["messages"][1]["content"], "b");
        assert_eq!(bodies[2]["messages"][1]["content"], "c");
    }

    #[tokio::test]
    async fn a_failed_batch_request_fails_every_review_without_asking_each() {
        let server = spawn_server(vec![Reply::error(401, "bad key")]).await;
        let llm = classifier(test_config(&server.base_url));
        let results = llm.classify_many(&["a", "b"]).await;
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(LlmError::Batch(m)) if m.contains("bad key"))),
            "{results:?}"
        );
        assert_eq!(server.requests(), 1);
    }

    #[tokio::test]
    async fn batching_stops_when_the_model_never_answers_json() {
        let server = spawn_server(vec![Reply::answer("POSITIVE")]).await;
        let llm = classifier(test_config(&server.base_url));
        for _ in 0..super::super::llm_batch::UNUSABLE_BATCHES_LIMIT {
            assert!(llm.batching());
            let results = llm.classify_many(&["a", "b"]).await;
            assert!(
                results
                    .iter()
                    .all(|r| r.as_ref().is_ok_and(|l| l.sentiment == Sentiment::Positive))
            );
        }
        assert!(!llm.batching(), "switched off after unusable answers");
        assert_eq!(server.requests(), 9, "3 batches of 1 + 2 alone");
        llm.classify_many(&["a", "b"]).await;
        assert_eq!(server.requests(), 11, "now one request per review");
    }

    #[tokio::test]
    async fn the_batcher_gathers_concurrent_reviews_into_one_request() {
        let server = spawn_server(vec![Reply::answer(
            r#"{"1": "POSITIVE", "2": "NEGATIVE", "3": "NEUTRAL", "4": "NEGATIVE"}"#,
        )])
        .await;
        let mut config = test_config(&server.base_url);
        config.batch_size = 4;
        let batcher = super::super::llm_batch::LlmBatcher::new(classifier(config));
        let texts = ["one", "two", "three", "four"];
        let results =
            futures::future::join_all(texts.iter().map(|text| batcher.classify(text))).await;
        assert_eq!(server.requests(), 1, "four reviews, one request");
        let by_id: HashMap<String, Sentiment> = [
            ("1", Sentiment::Positive),
            ("2", Sentiment::Negative),
            ("3", Sentiment::Neutral),
            ("4", Sentiment::Negative),
        ]
        .into_iter()
        .map(|(id, s)| (id.to_owned(), s))
        .collect();
        let sent = batch_reviews(&server.seen.bodies.lock().unwrap()[0]);
        for (text, result) in texts.iter().zip(results) {
            let id = &sent.iter().find(|(_, t)| t == text).expect("sent").0;
            assert_eq!(result.expect("labelled").sentiment, by_id[id], "{text}");
        }
    }
}
