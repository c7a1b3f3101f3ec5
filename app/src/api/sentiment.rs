//! Stage 3 · sentiment: its config, workers, rebalances and labelled reviews.

use serde::{Deserialize, Serialize};

use super::{DatasetKind, Review};

/// The label a classifier gives a review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Sentiment {
    Positive,
    Negative,
    Neutral,
}

impl Sentiment {
    /// What a review's stars say, the usual reading: 4–5 positive, 1–2 negative, 3 neutral.
    pub fn from_stars(stars: u8) -> Sentiment {
        match stars {
            4.. => Sentiment::Positive,
            3 => Sentiment::Neutral,
            _ => Sentiment::Negative,
        }
    }

    /// Position in [`Sentiment::ALL`].
    pub fn index(self) -> usize {
        match self {
            Sentiment::Positive => 0,
            Sentiment::Negative => 1,
            Sentiment::Neutral => 2,
        }
    }

    pub const ALL: [Sentiment; 3] = [Sentiment::Positive, Sentiment::Negative, Sentiment::Neutral];

    pub fn as_str(self) -> &'static str {
        match self {
            Sentiment::Positive => "POSITIVE",
            Sentiment::Negative => "NEGATIVE",
            Sentiment::Neutral => "NEUTRAL",
        }
    }
}

/// Which classifier the sentiment workers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClassifierChoice {
    /// The offline VADER lexicon: no network, ~150k reviews/s per core.
    #[default]
    Lexicon,
    /// An OpenAI-compatible chat-completions endpoint (PIPEBOOK_LLM_* settings).
    Llm,
    /// TextBlob's pattern lexicon (a port of Python TextBlob's PatternAnalyzer), offline.
    #[serde(rename = "textblob")]
    TextBlob,
}

/// Configuration of the sentiment stage (`POST /api/stages/sentiment/start`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentimentConfig {
    /// Consumers in the group `pipebook-sentiment`, 1..=8.
    #[serde(default = "default_workers")]
    pub workers: u8,
    #[serde(default)]
    pub classifier: ClassifierChoice,
    /// Score (VADER compound, TextBlob polarity) at or above which a review is POSITIVE.
    #[serde(default = "default_positive")]
    pub positive_threshold: f64,
    /// Score at or below which a review is NEGATIVE.
    #[serde(default = "default_negative")]
    pub negative_threshold: f64,
    /// Consumer group; a new group starts from the beginning of `reviews` with its own offsets.
    #[serde(default = "default_group")]
    pub group: String,
    /// Extra work per review in milliseconds (0–1000): a slow consumer, for the incidents.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub slow_ms: u32,
    /// Attempts at a review that fails to classify before it goes to `reviews.dlq`; 0 retries
    /// for ever, which stalls its partition behind it (the poison-pill incident).
    #[serde(default = "default_dead_letter_after")]
    pub dead_letter_after: u8,
}

fn default_dead_letter_after() -> u8 {
    3
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

fn default_group() -> String {
    "pipebook-sentiment".to_owned()
}

fn default_workers() -> u8 {
    2
}

fn default_positive() -> f64 {
    0.05
}

fn default_negative() -> f64 {
    -0.05
}

impl Default for SentimentConfig {
    fn default() -> Self {
        Self {
            workers: default_workers(),
            classifier: ClassifierChoice::default(),
            positive_threshold: default_positive(),
            negative_threshold: default_negative(),
            group: default_group(),
            slow_ms: 0,
            dead_letter_after: default_dead_letter_after(),
        }
    }
}

/// A review with its sentiment: the records of `reviews.sentiment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrichedReview {
    #[serde(flatten)]
    pub review: Review,
    pub sentiment: Sentiment,
    /// VADER compound score or TextBlob polarity, −1 (most negative) … 1 (most positive); 0 when an
    /// LLM labelled it.
    pub score: f64,
    /// `lexicon`, `textblob` or `llm`.
    pub classifier: String,
    pub model: Option<String>,
    /// RFC 3339 processing time.
    pub processed_at: String,
    pub worker: String,
}

/// One sentiment worker as the cell shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    pub id: String,
    /// `running`, `stopped`, `failed` (its loop failed: see `last_error`) or `killed`.
    pub state: String,
    pub partitions: Vec<i32>,
    pub processed: u64,
    /// Reviews per second over the last sampling interval.
    pub rate: f64,
    /// Why a `failed` worker failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A partition assignment change seen by a worker, or a worker joining / being killed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebalanceEvent {
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub worker: String,
    /// `assigned`, `revoked`, `started`, `stopped` or `killed`.
    pub kind: String,
    pub partitions: Vec<i32>,
}

/// A recently classified review, for the live table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatestReview {
    pub review_id: String,
    pub excerpt: String,
    /// 0 for a record without stars (a tweet): there is no expected label to compare with.
    pub stars: u8,
    pub sentiment: Sentiment,
    pub score: f64,
    pub classifier: String,
    pub worker: String,
    pub partition: i32,
    pub offset: i64,
}

/// The sentiment stage's live view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SentimentView {
    /// The consumer group of the running (or last) run: what the lag chart and the lesson read.
    #[serde(default)]
    pub group: String,
    pub workers: Vec<WorkerView>,
    pub rebalances: Vec<RebalanceEvent>,
    pub latest: Vec<LatestReview>,
    /// Label vs stars: `confusion[row][col]`, rows = stars read as POSITIVE (≥4), NEGATIVE (≤2),
    /// NEUTRAL (3); columns = predicted POSITIVE, NEGATIVE, NEUTRAL.
    pub confusion: [[u64; 3]; 3],
}

/// `POST /api/sentiment/compare`: two classifiers on the same newest records of `reviews` — a
/// review's or a tweet's text (its dataset's `text_field`); records without text are counted,
/// not compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareRequest {
    pub a: ClassifierChoice,
    pub b: ClassifierChoice,
    /// Newest records to compare on, 1..=500 (spread over the partitions).
    #[serde(default = "default_compare_limit")]
    pub limit: usize,
}

fn default_compare_limit() -> usize {
    200
}

/// How one classifier did in a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierScore {
    /// `lexicon`, `textblob` or `llm`.
    pub classifier: String,
    pub model: Option<String>,
    /// Reviews whose label agrees with their stars' reading (4–5 POSITIVE, 3 NEUTRAL, 1–2
    /// NEGATIVE), among those with stars 1–5.
    pub correct_vs_stars: u64,
    /// `correct_vs_stars` over the reviews with stars; `None` when none has stars (tweets
    /// carry none: there is nothing to be accurate against).
    pub accuracy_vs_stars: Option<f64>,
    /// Reviews labelled per second (offline: one after another on one core; LLM: concurrently,
    /// several per request).
    pub reviews_per_s: f64,
    /// Wall time of labelling all of them.
    pub elapsed_ms: f64,
    /// LLM only: mean time from asking for a label to having it (batching wait included).
    pub mean_latency_ms: Option<f64>,
    /// LLM only: reviews the LLM could not label, labelled by VADER instead.
    pub fallbacks: u64,
}

/// One record as both classifiers labelled it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareRow {
    /// The record's id (a review's `review_id`, a tweet's `tweet_id`).
    pub review_id: String,
    /// 0 for a record without stars (a tweet).
    pub stars: u8,
    /// The first 120 characters.
    pub excerpt: String,
    pub a: Sentiment,
    pub b: Sentiment,
    pub a_score: f64,
    pub b_score: f64,
}

/// The answer of `POST /api/sentiment/compare`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierComparison {
    pub a: ClassifierScore,
    pub b: ClassifierScore,
    /// Records compared (those with text).
    pub n: u64,
    /// Reviews with stars 1–5 (the accuracies' denominator).
    pub with_stars: u64,
    /// `agreement[i][j]`: reviews A labelled `Sentiment::ALL[i]` and B `Sentiment::ALL[j]`.
    pub agreement: [[u64; 3]; 3],
    /// Reviews both labelled the same (the matrix's diagonal).
    pub agree: u64,
    /// Up to 20 records, those the two disagree on first.
    pub rows: Vec<CompareRow>,
    /// The records read, by dataset, most first: those of a dataset without text (companies)
    /// were read but not compared.
    #[serde(default)]
    pub datasets: Vec<DatasetCount>,
}

/// How many records of one dataset a comparison read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetCount {
    pub dataset: DatasetKind,
    pub records: u64,
}

impl ClassifierComparison {
    /// The dataset most of the compared records belong to (Yelp when nothing was read): what
    /// the view calls them.
    pub fn dataset(&self) -> DatasetKind {
        self.datasets
            .iter()
            .find(|d| d.dataset.text_field().is_some())
            .or(self.datasets.first())
            .map(|d| d.dataset)
            .unwrap_or_default()
    }

    /// Records read that have no text to classify (companies), and so were not compared.
    pub fn without_text(&self) -> u64 {
        self.datasets
            .iter()
            .filter(|d| d.dataset.text_field().is_none())
            .map(|d| d.records)
            .sum()
    }
}
