//! Stage 5, the indexer: labelled reviews and tweets from `reviews.sentiment` into a search
//! engine (one index, see [`SearchDoc`]), and the
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

use app::api::{DatasetKind, EnrichedReview, SearchAggregations, SearchResults, Sentiment};
use chrono::{NaiveDateTime, SecondsFormat};
use serde::Serialize;

use crate::records::{DATE_FORMAT, Labelled, LabelledTweet};
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

/// A labelled record as it is indexed: the mapping both backends declare.
///
/// Reviews and tweets share one index, so cell 5's searches and charts cover both: the fields
/// they have in common (id, author, text, label, event time) keep one name, and a field only one
/// dataset has is left out of the other's documents rather than filled with a stand-in (a tweet
/// has no stars, so the stars chart counts reviews only, and no 0★ bar appears). `dataset`
/// tells them apart; a review carries none, as before there were other datasets, so an index
/// made by an older Pipebook still takes reviews unchanged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchDoc {
    #[serde(skip_serializing_if = "is_yelp")]
    pub dataset: DatasetKind,
    /// The record's id and the document's: a review's `review_id`, a tweet's `tweet_id`.
    pub review_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_id: Option<String>,
    /// Who wrote it: a review's `user_id`, a tweet's `user`.
    pub user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stars: Option<u8>,
    /// A tweet's hashtags (none for a review).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hashtags: Vec<String>,
    pub text: String,
    pub sentiment: Sentiment,
    pub score: f64,
    pub classifier: String,
    /// Event time, RFC 3339 UTC (`2024-03-01T10:15:00Z`).
    pub date: String,
    /// When the sentiment stage classified it, RFC 3339.
    pub processed_at: String,
}

fn is_yelp(dataset: &DatasetKind) -> bool {
    *dataset == DatasetKind::Yelp
}

/// `YYYY-MM-DD HH:MM:SS` as RFC 3339 UTC; the error names `field`.
fn event_time(field: &str, value: &str) -> Result<String, String> {
    Ok(NaiveDateTime::parse_from_str(value, DATE_FORMAT)
        .map_err(|e| format!("{field} {value:?} is not {DATE_FORMAT}: {e}"))?
        .and_utc()
        .to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn check_processed_at(processed_at: &str) -> Result<(), String> {
    chrono::DateTime::parse_from_rfc3339(processed_at)
        .map(|_| ())
        .map_err(|e| format!("processed_at {processed_at:?} is not RFC 3339: {e}"))
}

impl SearchDoc {
    /// The document of a record of `reviews.sentiment`; the error is the reason for the
    /// dead-letter topic.
    pub fn from_labelled(labelled: Labelled) -> Result<Self, String> {
        match labelled {
            Labelled::Review(review) => Self::from_enriched(review),
            Labelled::Tweet(tweet) => Self::from_tweet(tweet),
            Labelled::Unlabelled(dataset) => Err(format!(
                "{} records have no text and no label to search",
                dataset.as_str()
            )),
        }
    }

    /// Builds the document; the error is the reason for the dead-letter topic.
    pub fn from_enriched(enriched: EnrichedReview) -> Result<Self, String> {
        let review = enriched.review;
        let date = event_time("date", &review.date)?;
        check_processed_at(&enriched.processed_at)?;
        Ok(Self {
            dataset: DatasetKind::Yelp,
            review_id: review.review_id,
            business_id: Some(review.business_id),
            user_id: review.user_id,
            stars: Some(review.stars),
            hashtags: Vec::new(),
            text: review.text,
            sentiment: enriched.sentiment,
            score: enriched.score,
            classifier: enriched.classifier,
            date,
            processed_at: enriched.processed_at,
        })
    }

    /// A labelled tweet's document: its id, user, text and hashtags; no business, no stars.
    pub fn from_tweet(tweet: LabelledTweet) -> Result<Self, String> {
        let date = event_time("created_at", &tweet.created_at)?;
        check_processed_at(&tweet.processed_at)?;
        Ok(Self {
            dataset: DatasetKind::Tweets,
            review_id: tweet.tweet_id,
            business_id: None,
            user_id: tweet.user,
            stars: None,
            hashtags: tweet.hashtags,
            text: tweet.text,
            sentiment: tweet.sentiment,
            score: tweet.score,
            classifier: tweet.classifier,
            date,
            processed_at: tweet.processed_at,
        })
    }

    /// Rough size on the wire, for batching by bytes.
    pub fn approximate_bytes(&self) -> usize {
        let hashtags: usize = self.hashtags.iter().map(|h| h.len() + 3).sum();
        let business = self.business_id.as_ref().map_or(0, String::len);
        self.text.len() + self.review_id.len() + business + hashtags + 200
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

    #[test]
    fn a_tweet_document_has_its_fields_and_no_stars_or_business() {
        let tweet = LabelledTweet {
            tweet_id: "t1".into(),
            user: "ana".into(),
            text: "Love it #kafka".into(),
            hashtags: vec!["#kafka".into()],
            created_at: "2024-01-01 09:00:10".into(),
            sentiment: Sentiment::Positive,
            score: 0.6,
            classifier: "lexicon".into(),
            model: None,
            processed_at: "2026-11-23T10:00:00.123Z".into(),
        };
        let doc = SearchDoc::from_labelled(Labelled::Tweet(tweet)).expect("doc");
        assert_eq!(doc.date, "2024-01-01T09:00:10Z");
        let json = serde_json::to_value(&doc).expect("json");
        assert_eq!(json["dataset"], "tweets");
        assert_eq!(
            (&json["review_id"], &json["user_id"]),
            (&"t1".into(), &"ana".into())
        );
        assert_eq!(json["hashtags"], serde_json::json!(["#kafka"]));
        assert!(
            json.get("stars").is_none() && json.get("business_id").is_none(),
            "{json}"
        );
        // A review's document is as it was before tweets: no dataset, no hashtags.
        let review = serde_json::to_value(
            SearchDoc::from_enriched(enriched("r1", "2024-03-01 10:15:00")).expect("doc"),
        )
        .expect("json");
        assert!(review.get("dataset").is_none() && review.get("hashtags").is_none());
        assert_eq!(review["stars"], 2);
    }
}
