//! Stage 5, the indexer: enriched reviews from `reviews.sentiment` into a search engine, and the
//! searches and aggregations cell 5 draws.
//!
//! Two backends answer the same queries ([`query`]): an embedded tantivy index under the data
//! directory (the default, no network), and Elasticsearch 8 ([`elastic`]) when
//! `PIPEBOOK_ELASTICSEARCH_URL` is set. Documents are keyed by `review_id`, so re-delivery
//! overwrites instead of duplicating; offsets are committed only after a bulk is indexed
//! ([`indexer`]): at-least-once delivery plus idempotent writes = each review indexed once.

pub mod elastic;
pub mod embedded;
pub mod indexer;
pub mod query;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use app::api::{EnrichedReview, SearchAggregations, SearchResults, Sentiment};
use chrono::{NaiveDateTime, SecondsFormat};
use serde::Serialize;

use crate::records::DATE_FORMAT;
use elastic::{ElasticIndex, ElasticSettings};
use embedded::EmbeddedIndex;
use query::Search;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// A setting is wrong (bad certificate, bad URL): retrying will not help.
    #[error("search backend settings: {0}")]
    Config(String),
    /// The backend did not answer, or answered 429/5xx: worth retrying.
    #[error("search backend unavailable: {0}")]
    Unavailable(String),
    /// The backend refused the request (4xx): retrying the same request will not help.
    #[error("search backend refused the request ({status}): {reason}")]
    Rejected { status: u16, reason: String },
    #[error("search backend answered something unexpected: {0}")]
    BadResponse(String),
    #[error("embedded index: {0}")]
    Embedded(String),
}

impl SearchError {
    /// Whether trying the same request again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SearchError::Unavailable(_))
    }
}

/// Which search engine to use (`PIPEBOOK_ELASTICSEARCH_URL` unset = embedded).
#[derive(Debug, Clone)]
pub enum SearchSettings {
    Embedded,
    Elastic(ElasticSettings),
}

/// A review as it is indexed: the mapping both backends declare.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchDoc {
    pub review_id: String,
    pub business_id: String,
    pub user_id: String,
    pub stars: u8,
    pub text: String,
    pub sentiment: Sentiment,
    pub score: f64,
    pub classifier: String,
    /// Event time, RFC 3339 UTC (`2024-03-01T10:15:00Z`).
    pub date: String,
    /// When the sentiment stage classified it, RFC 3339.
    pub processed_at: String,
}

impl SearchDoc {
    /// Builds the document; the error is the reason for the dead-letter topic.
    pub fn from_enriched(enriched: EnrichedReview) -> Result<Self, String> {
        let review = enriched.review;
        let date = NaiveDateTime::parse_from_str(&review.date, DATE_FORMAT)
            .map_err(|e| format!("date {:?} is not {DATE_FORMAT}: {e}", review.date))?
            .and_utc()
            .to_rfc3339_opts(SecondsFormat::Secs, true);
        chrono::DateTime::parse_from_rfc3339(&enriched.processed_at).map_err(|e| {
            format!(
                "processed_at {:?} is not RFC 3339: {e}",
                enriched.processed_at
            )
        })?;
        Ok(Self {
            review_id: review.review_id,
            business_id: review.business_id,
            user_id: review.user_id,
            stars: review.stars,
            text: review.text,
            sentiment: enriched.sentiment,
            score: enriched.score,
            classifier: enriched.classifier,
            date,
            processed_at: enriched.processed_at,
        })
    }

    /// Rough size on the wire, for batching by bytes.
    pub fn approximate_bytes(&self) -> usize {
        self.text.len() + self.review_id.len() + self.business_id.len() + 200
    }
}

/// What one bulk request did, by position in the batch sent.
#[derive(Debug, Default, PartialEq)]
pub struct BulkOutcome {
    pub indexed: usize,
    /// Refused for a reason a retry cannot fix: these go to the dead-letter topic.
    pub rejected: Vec<(usize, String)>,
    /// Refused for now (overload): send these again.
    pub retry: Vec<usize>,
}

/// What every search backend offers. Both implementations answer the same [`query`] bodies.
pub trait SearchBackend: Send + Sync {
    /// `(backend, location)` for the UI, without credentials.
    fn describe(&self) -> (String, String);
    /// Creates the index with its mapping if it does not exist.
    fn prepare(&self) -> impl Future<Output = Result<(), SearchError>> + Send;
    /// Indexes (or overwrites, by `review_id`) the documents.
    fn bulk(
        &self,
        docs: Vec<SearchDoc>,
    ) -> impl Future<Output = Result<BulkOutcome, SearchError>> + Send;
    /// Makes everything indexed so far searchable.
    fn refresh(&self) -> impl Future<Output = Result<(), SearchError>> + Send;
    /// Documents searchable now.
    fn count(&self) -> impl Future<Output = Result<u64, SearchError>> + Send;
    /// The indexed fields of the document whose id is `review_id`, if it is searchable.
    fn get(
        &self,
        review_id: String,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, SearchError>> + Send;
    fn search(
        &self,
        search: Search,
    ) -> impl Future<Output = Result<SearchResults, SearchError>> + Send;
    fn aggregations(
        &self,
        interval: String,
    ) -> impl Future<Output = Result<SearchAggregations, SearchError>> + Send;
}

/// The configured backend, with the lesson's outage switch in front of it.
pub struct Backend {
    kind: BackendKind,
    /// Set by the "pause the search backend" fault button: every call fails as if the
    /// backend were down, so the learner sees the indexer retry and then catch up.
    outage: AtomicBool,
}

enum BackendKind {
    Embedded(EmbeddedIndex),
    Elastic(ElasticIndex),
}

impl Backend {
    /// Opens the embedded index under `data_dir/search`, or builds the Elasticsearch client
    /// (which contacts the cluster only when first used).
    pub fn open(settings: &SearchSettings, data_dir: &Path) -> Result<Arc<Self>, SearchError> {
        let kind = match settings {
            SearchSettings::Embedded => {
                BackendKind::Embedded(EmbeddedIndex::open(&data_dir.join("search"))?)
            }
            SearchSettings::Elastic(settings) => BackendKind::Elastic(ElasticIndex::new(settings)?),
        };
        Ok(Arc::new(Backend {
            kind,
            outage: AtomicBool::new(false),
        }))
    }

    /// Simulates the backend going down (`true`) or coming back (`false`).
    pub fn set_outage(&self, down: bool) {
        self.outage.store(down, Ordering::Relaxed);
    }

    pub fn in_outage(&self) -> bool {
        self.outage.load(Ordering::Relaxed)
    }

    fn available(&self) -> Result<(), SearchError> {
        if self.in_outage() {
            return Err(SearchError::Unavailable(
                "paused with the fault button (a simulated outage)".to_owned(),
            ));
        }
        Ok(())
    }
}

/// Forwards each call to the configured backend, unless a simulated outage is on.
macro_rules! dispatch {
    ($self:ident, $backend:ident => $call:expr) => {{
        $self.available()?;
        match &$self.kind {
            BackendKind::Embedded($backend) => $call,
            BackendKind::Elastic($backend) => $call,
        }
    }};
}

impl SearchBackend for Backend {
    fn describe(&self) -> (String, String) {
        match &self.kind {
            BackendKind::Embedded(b) => b.describe(),
            BackendKind::Elastic(b) => b.describe(),
        }
    }
    async fn prepare(&self) -> Result<(), SearchError> {
        dispatch!(self, b => b.prepare().await)
    }
    async fn bulk(&self, docs: Vec<SearchDoc>) -> Result<BulkOutcome, SearchError> {
        dispatch!(self, b => b.bulk(docs).await)
    }
    async fn refresh(&self) -> Result<(), SearchError> {
        dispatch!(self, b => b.refresh().await)
    }
    async fn count(&self) -> Result<u64, SearchError> {
        dispatch!(self, b => b.count().await)
    }
    async fn get(&self, review_id: String) -> Result<Option<serde_json::Value>, SearchError> {
        dispatch!(self, b => b.get(review_id).await)
    }
    async fn search(&self, search: Search) -> Result<SearchResults, SearchError> {
        dispatch!(self, b => b.search(search).await)
    }
    async fn aggregations(&self, interval: String) -> Result<SearchAggregations, SearchError> {
        dispatch!(self, b => b.aggregations(interval).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::api::Review;

    pub(crate) fn enriched(id: &str, date: &str) -> EnrichedReview {
        EnrichedReview {
            review: Review {
                review_id: id.into(),
                user_id: "u1".into(),
                business_id: "b1".into(),
                stars: 2,
                useful: 0,
                funny: 0,
                cool: 0,
                text: "Slow service and cold food".into(),
                date: date.into(),
            },
            sentiment: Sentiment::Negative,
            score: -0.6,
            classifier: "lexicon".into(),
            model: None,
            processed_at: "2026-11-23T10:00:00.123Z".into(),
            worker: "w1".into(),
        }
    }

    #[test]
    fn documents_carry_rfc3339_event_time_and_refuse_bad_dates() {
        let doc = SearchDoc::from_enriched(enriched("r1", "2024-03-01 10:15:00")).expect("doc");
        assert_eq!(doc.date, "2024-03-01T10:15:00Z");
        assert_eq!(doc.review_id, "r1");
        let reason = SearchDoc::from_enriched(enriched("r2", "yesterday")).expect_err("bad date");
        assert!(reason.contains("date"), "{reason}");
    }
}
