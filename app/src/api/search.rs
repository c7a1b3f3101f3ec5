//! Stage 5 · the indexer and search.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::{DatasetKind, Sentiment};

/// Consumer group of the indexer stage, unless its config names another.
pub const GROUP_INDEXER: &str = "pipebook-indexer";

/// Configuration of the indexer stage (`POST /api/stages/indexer/start`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexerConfig {
    /// Consumer group on `reviews.sentiment`; a new group re-reads the topic from offset 0
    /// (documents keep their ids, so the index does not grow).
    #[serde(default = "default_indexer_group")]
    pub group: String,
    /// Most documents in one bulk request.
    #[serde(default = "default_batch_docs")]
    pub batch_docs: u32,
    /// Most bytes of documents in one bulk request.
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: u32,
}

fn default_indexer_group() -> String {
    GROUP_INDEXER.to_owned()
}

fn default_batch_docs() -> u32 {
    1_000
}

fn default_batch_bytes() -> u32 {
    5 * 1024 * 1024
}

impl Default for IndexerConfig {
    fn default() -> Self {
        Self {
            group: default_indexer_group(),
            batch_docs: default_batch_docs(),
            batch_bytes: default_batch_bytes(),
        }
    }
}

/// Which search engine holds the index, and how it is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SearchStatus {
    /// `embedded` (tantivy, in-process) or `elasticsearch`.
    pub backend: String,
    /// Where: the index directory, or the cluster URL (without credentials).
    pub location: String,
    /// Documents searchable now; `None` when the backend did not answer.
    pub documents: Option<u64>,
    pub last_error: Option<String>,
    /// A simulated outage is on (the "pause search" fault button).
    #[serde(default)]
    pub paused: bool,
}

/// `GET /api/search` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SearchRequest {
    /// Full-text query on the text (reviews' and tweets'); empty = every document, newest first.
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub sentiment: Option<Sentiment>,
    #[serde(default)]
    pub stars_min: Option<u8>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One search result: a review or a tweet (the index holds both).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// What the document is; a review's document names none.
    #[serde(default)]
    pub dataset: DatasetKind,
    /// The record's id: a review's `review_id`, a tweet's `tweet_id`.
    pub review_id: String,
    pub text: String,
    /// 1–5 for a review; 0 for a tweet, which has no stars.
    #[serde(default)]
    pub stars: u8,
    /// A tweet's hashtags; empty for a review.
    #[serde(default)]
    pub hashtags: Vec<String>,
    pub sentiment: Sentiment,
    pub score: f64,
    /// Event time, RFC 3339 (UTC).
    pub date: String,
}

/// `GET /api/search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SearchResults {
    /// Every matching document, not only the ones returned.
    pub total: u64,
    pub hits: Vec<SearchHit>,
    /// Time the search engine took, in milliseconds.
    pub took_ms: f64,
}

/// A bucket of a `terms` aggregation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TermCount {
    pub key: String,
    pub count: u64,
}

/// Reviews with one stars value, and their average sentiment score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StarsBucket {
    pub stars: u8,
    pub count: u64,
    pub avg_score: Option<f64>,
}

/// One `date_histogram` bucket split by sentiment (counts in [`Sentiment::ALL`] order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeBucket {
    /// Bucket start, milliseconds since the Unix epoch.
    pub start: i64,
    pub count: u64,
    pub by_sentiment: [u64; 3],
}

/// `GET /api/search/aggregations`: what the search engine's own aggregations say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SearchAggregations {
    pub total: u64,
    pub by_sentiment: Vec<TermCount>,
    pub by_stars: Vec<StarsBucket>,
    /// `fixed_interval` of the histogram, e.g. `1h`.
    pub interval: String,
    pub over_time: Vec<TimeBucket>,
    pub top_businesses: Vec<TermCount>,
    /// Percentiles of the sentiment score, keyed `"50.0"`, `"90.0"`, `"99.0"`.
    pub score_percentiles: BTreeMap<String, f64>,
    pub took_ms: f64,
}
