//! The two error types every caller sees: [`ConfigError`], a setting that cannot be used (named
//! by its field), and [`ApiError`], what an HTTP request answers when it fails. Which status a
//! failure gets is decided here and nowhere else (`impl From<EngineError> for ApiError`); the
//! access guard and the JSON body extractor refuse with the same type, so every refusal has the
//! one JSON shape `{"error": "…"}` ([`app::api::ApiError`]).

use std::fmt;

use app::api::ApiError as ErrorBody;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::faults::FaultError;
use crate::kafka::inspect::InspectError;
use crate::lab::LabError;
use crate::pipeline::EngineError;
use crate::sentiment::SentimentError;
use crate::stage::StageError;
use crate::streamer::datasets::DatasetError;
use crate::trace::TraceError;

/// A setting that cannot be used: which one, and why. Shown as `field: message`, so a learner
/// (or a test) reads first which field to fix. `config` names a body that is not an object of
/// settings at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A serde error with the path of the value it is about (from `serde_path_to_error`); a
    /// problem with the body as a whole (bad JSON syntax) is `config`'s.
    pub fn from_serde<E: fmt::Display>(error: serde_path_to_error::Error<E>) -> Self {
        let path = error.path().to_string();
        let field = if path.is_empty() || path == "." {
            "config".to_owned()
        } else {
            path
        };
        Self::new(field, error.inner().to_string())
    }
}

/// A failed request: the status and the message of its `{"error": …}` body.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            // A bound is released as soon as a read ends: a second is plenty.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<ConfigError> for ApiError {
    fn from(error: ConfigError) -> Self {
        Self::bad_request(error.to_string())
    }
}

/// The operator routes' failures (`ops.rs`): the engine's keep the engine's mapping.
impl From<crate::ops::OpsError> for ApiError {
    fn from(error: crate::ops::OpsError) -> Self {
        use crate::kafka::inspect::InspectError;
        use crate::kafka::reset::ResetError;
        use crate::ops::OpsError;
        use StatusCode as S;
        let status = match &error {
            OpsError::Engine(_) => None,
            OpsError::NoHistory(_) => Some(S::NOT_FOUND),
            OpsError::Reset(reset) => Some(match reset {
                ResetError::BadRequest(_) => S::BAD_REQUEST,
                ResetError::UnknownGroup(_) => S::NOT_FOUND,
                ResetError::Active { .. } => S::CONFLICT,
                ResetError::Inspect(
                    InspectError::UnknownTopic(_) | InspectError::UnknownPartition { .. },
                ) => S::NOT_FOUND,
                ResetError::Inspect(_) | ResetError::Kafka(_) => S::SERVICE_UNAVAILABLE,
                ResetError::Join(_) => S::INTERNAL_SERVER_ERROR,
            }),
        };
        match (status, error) {
            (None, OpsError::Engine(engine)) => Self::from(engine),
            (status, error) => Self::new(
                status.unwrap_or(S::INTERNAL_SERVER_ERROR),
                error.to_string(),
            ),
        }
    }
}

/// The one place a failure gets its status: 400 the caller's mistake, 404 no such thing, 409
/// not in this state, 429 too many at once, 503 a service behind the engine, 500 ours.
impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        use StatusCode as S;
        let status = match &error {
            EngineError::BadRequest(_)
            | EngineError::Invalid(_)
            | EngineError::Sentiment(SentimentError::Config(_))
            | EngineError::Stage(StageError::PauseUnsupported(_) | StageError::External(_))
            | EngineError::Fault(FaultError::Invalid(_))
            | EngineError::Trace(TraceError::BadReviewId(_)) => S::BAD_REQUEST,
            EngineError::UnknownStage(_)
            | EngineError::Sentiment(SentimentError::UnknownWorker(_))
            | EngineError::Trace(TraceError::NotFound { .. } | TraceError::NoNextReview(_))
            | EngineError::Inspect(
                InspectError::UnknownTopic(_) | InspectError::UnknownPartition { .. },
            )
            | EngineError::Trace(TraceError::Inspect(
                InspectError::UnknownTopic(_) | InspectError::UnknownPartition { .. },
            )) => S::NOT_FOUND,
            EngineError::Stage(_)
            | EngineError::Sentiment(SentimentError::NotRunning)
            | EngineError::Lab(LabError::Busy) => S::CONFLICT,
            EngineError::Busy(_) => S::TOO_MANY_REQUESTS,
            // The next record of `reviews` was not a review: the caller asked nothing wrong.
            EngineError::Trace(TraceError::NextNotAReview(_)) => S::SERVICE_UNAVAILABLE,
            EngineError::Broker(_)
            | EngineError::Admin(_)
            | EngineError::Inspect(_)
            | EngineError::Search(_)
            | EngineError::Fault(_)
            | EngineError::Trace(TraceError::Inspect(_)) => S::SERVICE_UNAVAILABLE,
            EngineError::Dataset(error) => dataset_status(error),
        };
        Self::new(status, error.to_string())
    }
}

fn dataset_status(error: &DatasetError) -> StatusCode {
    match error {
        DatasetError::Source(_)
        | DatasetError::Name(_)
        | DatasetError::Content(_)
        | DatasetError::Body(_) => StatusCode::BAD_REQUEST,
        DatasetError::ContentType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        DatasetError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        DatasetError::Exists(_) => StatusCode::CONFLICT,
        DatasetError::NotFound(_) => StatusCode::NOT_FOUND,
        DatasetError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => {
            StatusCode::INSUFFICIENT_STORAGE
        }
        DatasetError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<DatasetError> for ApiError {
    fn from(error: DatasetError) -> Self {
        EngineError::from(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_error_names_its_field_first_and_is_a_400() {
        let error = ConfigError::new("rate", "must be ≤ 100000, got 7");
        assert_eq!(error.to_string(), "rate: must be ≤ 100000, got 7");
        let api = ApiError::from(EngineError::from(error));
        assert_eq!(api.status, StatusCode::BAD_REQUEST);
        assert_eq!(api.message, "rate: must be ≤ 100000, got 7");
    }

    #[test]
    fn a_busy_answer_says_when_to_come_back() {
        let response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "busy").into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
