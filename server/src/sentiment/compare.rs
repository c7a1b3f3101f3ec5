//! The A/B view of cell 3: two classifiers on the same newest records of `reviews`, side by
//! side — their agreement matrix, each one's accuracy against the stars, their throughput and,
//! for the LLM, how long a label takes (`POST /api/sentiment/compare`).
//!
//! A record's text is its dataset's `text_field` (a review's, a tweet's `text`); only reviews
//! carry stars, so on tweets the accuracy is `None` while agreement and throughput still count;
//! a dataset without text (companies) is read and counted but has nothing to compare.
//!
//! The records are read with the message browser (newest first, spread over the partitions),
//! so a comparison neither joins nor disturbs the sentiment group. Offline classifiers label
//! them one after another on the request's task (their reviews/s is single-core, like
//! `pipebook eval`); the LLM labels them concurrently through the same [`Classifier`] the stage
//! uses — several reviews per request, VADER where it cannot answer.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use app::api::{
    ClassifierChoice, ClassifierComparison, ClassifierScore, CompareRequest, CompareRow,
    DatasetCount, DatasetKind, Review, TOPIC_REVIEWS,
};
use futures::StreamExt;
use tokio::sync::Semaphore;

use super::lexicon::{Classification, Thresholds};
use super::{Classifier, Sentiment};
use crate::error::ConfigError;
use crate::pipeline::{Engine, EngineError};
use crate::records::parse_dataset_record;

/// Largest `limit`.
pub const MAX_COMPARE: usize = 500;
/// Rows returned with the figures.
const ROWS: usize = 20;
/// LLM labels asked for at once (the LLM client bounds its requests in flight itself).
const LLM_IN_FLIGHT: usize = 64;

/// One comparison at a time: an LLM comparison can take a while and cost money.
static RUNNING: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(1));

/// Checks the request; errors name the field.
pub fn validate(request: &CompareRequest) -> Result<(), ConfigError> {
    if !(1..=MAX_COMPARE).contains(&request.limit) {
        return Err(ConfigError::new(
            "limit",
            format!("must be 1..={MAX_COMPARE}, got {}", request.limit),
        ));
    }
    Ok(())
}

/// Reads the newest `limit` records and compares the two classifiers on those with text.
pub async fn compare(
    engine: &Engine,
    request: &CompareRequest,
) -> Result<ClassifierComparison, EngineError> {
    validate(request)?;
    let build = |field: &'static str, choice: ClassifierChoice| {
        Classifier::from_config(choice, Thresholds::default())
            .map_err(|e| ConfigError::new(field, e.to_string()))
    };
    let a = build("a", request.a)?;
    let b = build("b", request.b)?;
    let Ok(_permit) = RUNNING.try_acquire() else {
        return Err(EngineError::Busy(
            "a comparison is already running; try again when it is done".to_owned(),
        ));
    };
    let newest = newest_records(engine, request.limit).await?;
    let compared: Vec<Compared> = newest.iter().filter_map(Readable::compared).collect();
    let mut comparison = compare_on(&a, &b, &compared).await;
    comparison.datasets = dataset_counts(&newest);
    Ok(comparison)
}

/// One record both classifiers label: its id, its text and its stars (0 when it has none).
#[derive(Debug, Clone, PartialEq)]
pub struct Compared {
    pub id: String,
    pub stars: u8,
    pub text: String,
}

impl From<Review> for Compared {
    fn from(review: Review) -> Self {
        Self {
            id: review.review_id,
            stars: review.stars,
            text: review.text,
        }
    }
}

/// What the A/B view makes of one record of `reviews`.
#[derive(Debug, Clone, PartialEq)]
pub enum Readable {
    /// A record with text, of this dataset.
    Text(DatasetKind, Compared),
    /// A record of a dataset without text (a company): nothing to classify.
    NoText(DatasetKind),
    /// No dataset's record (a fault button's malformed line): left out.
    Unreadable,
}

impl Readable {
    /// Reads a record as its dataset describes it: an untagged one as a Yelp review, a tagged
    /// one by its description's id and text fields.
    pub fn of(payload: &str) -> Self {
        match parse_dataset_record(payload.as_bytes()) {
            None => serde_json::from_str::<Review>(payload).map_or(Readable::Unreadable, |r| {
                Readable::Text(DatasetKind::Yelp, r.into())
            }),
            Some(Err(_)) => Readable::Unreadable,
            Some(Ok((description, record))) => {
                let kind = description.name;
                let Some(text) = record.text(&description) else {
                    return Readable::NoText(kind);
                };
                let id = record
                    .fields
                    .get(&description.id_field)
                    .and_then(|id| id.as_str())
                    .unwrap_or_default();
                Readable::Text(
                    kind,
                    Compared {
                        id: id.to_owned(),
                        // Only a review has stars to check a label against.
                        stars: 0,
                        text: text.to_owned(),
                    },
                )
            }
        }
    }

    fn compared(&self) -> Option<Compared> {
        match self {
            Readable::Text(_, compared) => Some(compared.clone()),
            Readable::NoText(_) | Readable::Unreadable => None,
        }
    }

    fn dataset(&self) -> Option<DatasetKind> {
        match self {
            Readable::Text(kind, _) | Readable::NoText(kind) => Some(*kind),
            Readable::Unreadable => None,
        }
    }
}

/// The records read, counted by dataset, most first (ties in the datasets' own order).
pub fn dataset_counts(read: &[Readable]) -> Vec<DatasetCount> {
    let mut counts: Vec<DatasetCount> = DatasetKind::ALL
        .iter()
        .map(|&dataset| DatasetCount {
            dataset,
            records: read.iter().filter(|r| r.dataset() == Some(dataset)).count() as u64,
        })
        .filter(|c| c.records > 0)
        .collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.records));
    counts
}

/// Up to `limit` records, the newest of each partition of `reviews`, each read as its dataset
/// describes it.
async fn newest_records(engine: &Engine, limit: usize) -> Result<Vec<Readable>, EngineError> {
    let topics = engine.topics().await?;
    let Some(topic) = topics.iter().find(|t| t.name == TOPIC_REVIEWS) else {
        return Ok(Vec::new());
    };
    let per_partition = limit.div_ceil(topic.partitions.len().max(1));
    let mut reviews = Vec::new();
    for partition in &topic.partitions {
        let available = usize::try_from(partition.high - partition.low).unwrap_or(0);
        let take = per_partition.min(available);
        if take == 0 {
            continue;
        }
        let start = partition.high - i64::try_from(take).unwrap_or(0);
        let messages = engine
            .messages(TOPIC_REVIEWS, partition.id, start, take)
            .await?;
        reviews.extend(messages.iter().map(|m| Readable::of(&m.value)));
    }
    reviews.truncate(limit);
    Ok(reviews)
}

/// What one classifier gave every review, and how fast.
struct Labelled {
    labels: Vec<Classification>,
    elapsed: Duration,
    mean_latency: Option<Duration>,
}

async fn label_all(classifier: &Classifier, reviews: &[Compared]) -> Labelled {
    let started = Instant::now();
    if let Classifier::Llm { .. } = classifier {
        // Owned texts: a stream of futures borrowing its items is not `Send` for axum.
        let texts: Vec<String> = reviews.iter().map(|r| r.text.clone()).collect();
        let timed: Vec<(Classification, Duration)> = futures::stream::iter(texts)
            .map(|text| async move {
                let asked = Instant::now();
                let label = classifier.classify(&text).await;
                (label, asked.elapsed())
            })
            .buffered(LLM_IN_FLIGHT)
            .collect()
            .await;
        let total: Duration = timed.iter().map(|(_, took)| *took).sum();
        let mean_latency = u32::try_from(timed.len())
            .ok()
            .filter(|n| *n > 0)
            .map(|n| total / n);
        return Labelled {
            labels: timed.into_iter().map(|(label, _)| label).collect(),
            elapsed: started.elapsed(),
            mean_latency,
        };
    }
    let mut labels = Vec::with_capacity(reviews.len());
    for review in reviews {
        labels.push(classifier.classify(&review.text).await);
    }
    Labelled {
        labels,
        elapsed: started.elapsed(),
        mean_latency: None,
    }
}

fn has_stars(review: &Compared) -> bool {
    (1..=5).contains(&review.stars)
}

/// The classifier's name as records and the API spell it.
fn kind_name(classifier: &Classifier) -> &'static str {
    match classifier {
        Classifier::Lexicon(_) => "lexicon",
        Classifier::TextBlob(_) => "textblob",
        Classifier::Llm { .. } => "llm",
    }
}

fn score(classifier: &Classifier, labelled: &Labelled, reviews: &[Compared]) -> ClassifierScore {
    let with_stars = reviews.iter().filter(|r| has_stars(r)).count() as u64;
    let correct = reviews
        .iter()
        .zip(&labelled.labels)
        .filter(|(review, label)| {
            has_stars(review) && Sentiment::from_stars(review.stars) == label.sentiment
        })
        .count() as u64;
    let seconds = labelled.elapsed.as_secs_f64();
    ClassifierScore {
        // Not the labels' own: an LLM label that fell back says `lexicon`.
        classifier: kind_name(classifier).to_owned(),
        model: labelled.labels.iter().find_map(|l| l.model.clone()),
        correct_vs_stars: correct,
        accuracy_vs_stars: (with_stars > 0).then(|| correct as f64 / with_stars as f64),
        reviews_per_s: if seconds > 0.0 {
            reviews.len() as f64 / seconds
        } else {
            0.0
        },
        elapsed_ms: seconds * 1000.0,
        mean_latency_ms: labelled.mean_latency.map(|d| d.as_secs_f64() * 1000.0),
        fallbacks: labelled.labels.iter().filter(|l| l.note.is_some()).count() as u64,
    }
}

/// Compares `a` and `b` on `reviews` (any records with text). `datasets` is left for the
/// caller, which knows what it read.
pub async fn compare_on(
    a: &Classifier,
    b: &Classifier,
    reviews: &[Compared],
) -> ClassifierComparison {
    let la = label_all(a, reviews).await;
    let lb = label_all(b, reviews).await;
    let mut agreement = [[0u64; 3]; 3];
    let mut rows: Vec<CompareRow> = Vec::new();
    for ((review, x), y) in reviews.iter().zip(&la.labels).zip(&lb.labels) {
        agreement[x.sentiment.index()][y.sentiment.index()] += 1;
        rows.push(CompareRow {
            review_id: review.id.clone(),
            stars: review.stars,
            excerpt: review.text.chars().take(120).collect(),
            a: x.sentiment,
            b: y.sentiment,
            a_score: x.score,
            b_score: y.score,
        });
    }
    // Disagreements first (stable, so in record order within each group).
    rows.sort_by_key(|row| row.a == row.b);
    rows.truncate(ROWS);
    ClassifierComparison {
        a: score(a, &la, reviews),
        b: score(b, &lb, reviews),
        n: reviews.len() as u64,
        with_stars: reviews.iter().filter(|r| has_stars(r)).count() as u64,
        agree: (0..3).map(|i| agreement[i][i]).sum(),
        agreement,
        rows,
        datasets: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(id: &str, stars: u8, text: &str) -> Compared {
        Compared {
            id: id.to_owned(),
            stars,
            text: text.to_owned(),
        }
    }

    #[tokio::test]
    async fn compares_two_offline_classifiers_on_the_same_reviews() {
        let vader = Classifier::from_config(ClassifierChoice::Lexicon, Thresholds::default())
            .expect("vader");
        let textblob = Classifier::from_config(ClassifierChoice::TextBlob, Thresholds::default())
            .expect("textblob");
        let reviews = [
            review("r1", 5, "The food was great!"),
            review("r2", 1, "The food was not great."),
            // VADER: "recommend" is positive; TextBlob's lexicon (adjectives) lacks it.
            review("r3", 3, "I recommend it"),
            review("r4", 0, "Terrible, awful service."),
        ];
        let c = compare_on(&vader, &textblob, &reviews).await;
        assert_eq!((c.n, c.with_stars), (4, 3));
        assert_eq!(
            (c.a.classifier.as_str(), c.b.classifier.as_str()),
            ("lexicon", "textblob")
        );
        let (pos, neg, neu) = (
            Sentiment::Positive.index(),
            Sentiment::Negative.index(),
            Sentiment::Neutral.index(),
        );
        assert_eq!(c.agreement[pos][pos], 1);
        assert_eq!(c.agreement[neg][neg], 2);
        assert_eq!(c.agreement[pos][neu], 1, "VADER POSITIVE, TextBlob NEUTRAL");
        assert_eq!(c.agree, 3);
        assert_eq!(c.agreement.iter().flatten().sum::<u64>(), 4);
        // Against the stars (r4 has none): VADER gets r1 and r2, TextBlob also r3 (NEUTRAL, 3★).
        assert_eq!((c.a.correct_vs_stars, c.b.correct_vs_stars), (2, 3));
        assert!((c.b.accuracy_vs_stars.expect("some have stars") - 1.0).abs() < 1e-12);
        assert_eq!(c.rows[0].review_id, "r3", "disagreements first");
        assert_eq!(c.rows.len(), 4);
        assert!(c.a.mean_latency_ms.is_none() && c.a.fallbacks == 0);
    }

    #[tokio::test]
    async fn tweets_are_compared_on_their_text_without_stars_and_companies_not_at_all() {
        let read = [
            r#"{"review_id":"r1","user_id":"u","business_id":"b","stars":5,"text":"Great!","date":"2024-01-01 00:00:00"}"#,
            r##"{"dataset":"tweets","tweet_id":"t1","user":"ana","text":"Love how fast it is! #rust","hashtags":["#rust"],"created_at":"2024-01-01 00:00:00"}"##,
            r#"{"dataset":"tweets","tweet_id":"t2","user":"bo","text":"So frustrating, it crashed again.","hashtags":[],"created_at":"2024-01-01 00:00:10"}"#,
            r#"{"dataset":"companies","company_id":"c1","name":"Blue Labs","country":"France","industry":"Retail","created_at":"2024-01-01 00:00:00"}"#,
            "not a record",
        ]
        .map(Readable::of);
        assert!(
            matches!(&read[1], Readable::Text(DatasetKind::Tweets, c) if c.id == "t1" && c.stars == 0)
        );
        assert_eq!(read[3], Readable::NoText(DatasetKind::Companies));
        assert_eq!(read[4], Readable::Unreadable);
        assert_eq!(
            dataset_counts(&read),
            vec![
                DatasetCount {
                    dataset: DatasetKind::Tweets,
                    records: 2
                },
                DatasetCount {
                    dataset: DatasetKind::Yelp,
                    records: 1
                },
                DatasetCount {
                    dataset: DatasetKind::Companies,
                    records: 1
                },
            ]
        );

        // Tweets alone: agreement and throughput, no accuracy (there are no stars).
        let tweets: Vec<Compared> = read[1..3].iter().filter_map(Readable::compared).collect();
        let vader = Classifier::from_config(ClassifierChoice::Lexicon, Thresholds::default())
            .expect("vader");
        let textblob = Classifier::from_config(ClassifierChoice::TextBlob, Thresholds::default())
            .expect("textblob");
        let mut c = compare_on(&vader, &textblob, &tweets).await;
        c.datasets = dataset_counts(&read[1..3]);
        assert_eq!((c.n, c.with_stars), (2, 0));
        assert_eq!((c.a.accuracy_vs_stars, c.b.accuracy_vs_stars), (None, None));
        assert_eq!(c.agreement.iter().flatten().sum::<u64>(), 2);
        assert!(c.a.reviews_per_s > 0.0 && c.b.reviews_per_s > 0.0);
        assert_eq!(c.dataset(), DatasetKind::Tweets);
        assert_eq!(c.without_text(), 0);
        assert!(
            c.rows
                .iter()
                .all(|r| r.stars == 0 && r.review_id.starts_with('t'))
        );

        // Companies alone: nothing compared, and the view can say why.
        let companies = [read[3].clone()];
        let mut c = compare_on(&vader, &textblob, &[]).await;
        c.datasets = dataset_counts(&companies);
        assert_eq!(c.n, 0);
        assert_eq!(c.dataset(), DatasetKind::Companies);
        assert_eq!(c.without_text(), 1);
    }

    #[test]
    fn the_limit_is_checked() {
        let mut request = CompareRequest {
            a: ClassifierChoice::Lexicon,
            b: ClassifierChoice::TextBlob,
            limit: 0,
        };
        assert_eq!(validate(&request).expect_err("0").field, "limit");
        request.limit = MAX_COMPARE + 1;
        assert!(validate(&request).is_err());
        request.limit = 200;
        assert!(validate(&request).is_ok());
    }
}
