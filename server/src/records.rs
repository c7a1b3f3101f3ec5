//! The records that flow between stages: parsing a raw review line, and the dead-letter record a
//! stage writes when it refuses one.

use app::api::{DatasetDescription, DatasetKind, EnrichedReview, Review, TOPIC_DLQ};
use chrono::NaiveDateTime;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// The timestamp format of the Yelp dataset's `date` field.
pub const DATE_FORMAT: &str = "%Y-%m-%d %H:%M:%S";
/// Longest raw record kept verbatim in a dead letter; longer ones are cut (and say so).
const MAX_RAW_IN_DEAD_LETTER: usize = 64 * 1024;

/// A review as it may arrive: Yelp writes stars as a float (`5.0`).
#[derive(Deserialize)]
struct IncomingReview {
    review_id: String,
    user_id: String,
    business_id: String,
    stars: f64,
    #[serde(default)]
    useful: u32,
    #[serde(default)]
    funny: u32,
    #[serde(default)]
    cool: u32,
    text: String,
    date: String,
}

/// Parses and checks one review; the error says what is wrong, for the dead-letter topic.
pub fn parse_review(raw: &[u8]) -> Result<Review, String> {
    let incoming: IncomingReview =
        serde_json::from_slice(raw).map_err(|e| format!("not a review JSON object: {e}"))?;
    if incoming.review_id.trim().is_empty() {
        return Err("review_id is empty".to_owned());
    }
    if incoming.business_id.trim().is_empty() {
        return Err("business_id is empty".to_owned());
    }
    if !(1.0..=5.0).contains(&incoming.stars) || incoming.stars.fract() != 0.0 {
        return Err(format!(
            "stars must be a whole number 1..=5, got {}",
            incoming.stars
        ));
    }
    if NaiveDateTime::parse_from_str(&incoming.date, DATE_FORMAT).is_err() {
        return Err(format!(
            "date must look like 2024-01-31 18:05:00, got {:?}",
            incoming.date
        ));
    }
    Ok(Review {
        review_id: incoming.review_id,
        user_id: incoming.user_id,
        business_id: incoming.business_id,
        stars: incoming.stars as u8,
        useful: incoming.useful,
        funny: incoming.funny,
        cool: incoming.cool,
        text: incoming.text,
        date: incoming.date,
    })
}

/// The field the producer adds to a non-Yelp record so later stages know what they read (a
/// Yelp review carries none: records written before datasets existed read as they did).
pub const DATASET_FIELD: &str = "dataset";

/// A record of a non-Yelp dataset, checked against its description.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedRecord {
    /// The value of the description's key field: the Kafka key.
    pub key: String,
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl CheckedRecord {
    /// The text to classify, when the dataset has a text field.
    pub fn text<'a>(&'a self, description: &DatasetDescription) -> Option<&'a str> {
        let field = description.text_field.as_deref()?;
        self.fields.get(field).and_then(|v| v.as_str())
    }
}

/// Checks one raw record against a dataset's description: a JSON object whose key and id
/// fields are non-empty strings, whose event time is a `YYYY-MM-DD HH:MM:SS` string, whose text
/// (if the dataset has one) is a string, and whose dimensions are strings, numbers or lists of
/// strings. The error names the field, for the dead-letter topic.
pub fn check_record(description: &DatasetDescription, raw: &[u8]) -> Result<CheckedRecord, String> {
    use serde_json::Value;
    let name = description.name.as_str();
    let fields = match serde_json::from_slice::<Value>(raw) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => return Err(format!("not a {name} record: expected a JSON object")),
        Err(e) => return Err(format!("not a {name} record JSON object: {e}")),
    };
    let string = |field: &str| match fields.get(field) {
        None => Err(format!("{field} is missing (a {name} record needs it)")),
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(other) => Err(format!("{field} must be a string, got {other}")),
    };
    let non_empty = |field: &str| {
        string(field).and_then(|s| {
            if s.trim().is_empty() {
                Err(format!("{field} is empty"))
            } else {
                Ok(s)
            }
        })
    };
    let key = non_empty(&description.key_field)?.to_owned();
    non_empty(&description.id_field)?;
    let time = string(&description.time_field)?;
    if NaiveDateTime::parse_from_str(time, DATE_FORMAT).is_err() {
        return Err(format!(
            "{} must look like 2024-01-31 18:05:00, got {time:?}",
            description.time_field
        ));
    }
    if let Some(text) = &description.text_field {
        string(text)?;
    }
    for dimension in &description.dimensions {
        let ok = match fields.get(dimension) {
            Some(Value::String(_) | Value::Number(_)) => true,
            Some(Value::Array(items)) => items.iter().all(Value::is_string),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "{dimension} must be a string, a number or a list of strings"
            ));
        }
    }
    Ok(CheckedRecord { key, fields })
}

/// A record on `reviews` that is not a Yelp review: its `dataset` field names its kind, and it
/// must still pass that kind's check. `None` when it names no known kind other than Yelp (the
/// caller then reports why it is not a review).
pub fn parse_dataset_record(
    raw: &[u8],
) -> Option<Result<(DatasetDescription, CheckedRecord), String>> {
    #[derive(Deserialize)]
    struct Tagged {
        dataset: DatasetKind,
    }
    let kind = serde_json::from_slice::<Tagged>(raw).ok()?.dataset;
    if kind == DatasetKind::Yelp {
        return None;
    }
    let description = kind.description();
    Some(check_record(&description, raw).map(|record| (description, record)))
}

/// A tweet as the sentiment stage labelled it on `reviews.sentiment`: the tweet's own fields
/// (checked by the producer against the tweets description) and the label fields an enriched
/// review has.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LabelledTweet {
    pub tweet_id: String,
    pub user: String,
    pub text: String,
    /// The description lets a file give one hashtag as a plain string (or leave none): read as
    /// a list either way.
    #[serde(default, deserialize_with = "one_or_many")]
    pub hashtags: Vec<String>,
    /// Event time, `YYYY-MM-DD HH:MM:SS`.
    pub created_at: String,
    pub sentiment: app::api::Sentiment,
    pub score: f64,
    pub classifier: String,
    #[serde(default)]
    pub model: Option<String>,
    /// RFC 3339 processing time.
    pub processed_at: String,
}

/// A list of strings, or a single string or number standing for a list of one.
fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(dimension_values(value.as_ref()))
}

/// A dimension's values as a list (a tweet's hashtags): [`check_record`] lets a record give a
/// list of strings, or one string or number standing for a list of one; none when absent.
pub fn dimension_values(value: Option<&serde_json::Value>) -> Vec<String> {
    use serde_json::Value;
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(item)) => vec![item.clone()],
        Some(Value::Number(number)) => vec![number.to_string()],
        _ => Vec::new(),
    }
}

/// The field the sentiment stage adds, instead of a label, to a record it forwards unlabelled
/// (a company: no text), saying why.
pub const SKIPPED_FIELD: &str = "skipped";

/// A record of `reviews.sentiment`, by dataset: what the sinks after sentiment (Parquet, the
/// indexer) read.
#[derive(Debug, Clone, PartialEq)]
pub enum Labelled {
    Review(EnrichedReview),
    Tweet(LabelledTweet),
    /// A record of a dataset without text (companies): sentiment forwarded it without a label.
    /// The sinks skip it, the windows count it by its dimensions.
    Unlabelled(DatasetKind),
}

/// Reads one record of `reviews.sentiment`: an enriched review (untagged, as before datasets
/// existed), or a labelled record tagged with its dataset. The error is the reason for the
/// dead-letter topic, naming what is missing.
pub fn parse_labelled(payload: &[u8]) -> Result<Labelled, String> {
    let not_a_review = match serde_json::from_slice::<EnrichedReview>(payload) {
        Ok(review) => return Ok(Labelled::Review(review)),
        Err(error) => format!("not an enriched review JSON object: {error}"),
    };
    let (description, _) = match parse_dataset_record(payload) {
        None => return Err(not_a_review),
        Some(checked) => checked?,
    };
    if description.text_field.is_none() {
        return Ok(Labelled::Unlabelled(description.name));
    }
    match description.name {
        DatasetKind::Tweets => serde_json::from_slice::<LabelledTweet>(payload)
            .map(Labelled::Tweet)
            .map_err(|e| format!("a tweets record without its sentiment label: {e}")),
        other => Err(format!(
            "{} records are not stored by this stage",
            other.as_str()
        )),
    }
}

/// What goes to `reviews.dlq`: the raw record, why it was refused, and by whom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub stage: String,
    pub reason: String,
    pub raw: String,
    /// Where the record came from, when it came from Kafka (`topic/partition@offset`).
    pub origin: Option<String>,
    pub raw_truncated: bool,
}

impl DeadLetter {
    pub fn new(stage: &str, reason: impl Into<String>, raw: &[u8], origin: Option<String>) -> Self {
        let cut = raw.len() > MAX_RAW_IN_DEAD_LETTER;
        let kept = &raw[..raw.len().min(MAX_RAW_IN_DEAD_LETTER)];
        Self {
            stage: stage.to_owned(),
            reason: reason.into(),
            raw: String::from_utf8_lossy(kept).into_owned(),
            origin,
            raw_truncated: cut,
        }
    }

    /// Headers that let a reader filter dead letters without parsing them.
    pub fn headers(&self) -> OwnedHeaders {
        OwnedHeaders::new()
            .insert(Header {
                key: "pipebook.stage",
                value: Some(self.stage.as_str()),
            })
            .insert(Header {
                key: "pipebook.reason",
                value: Some(self.reason.as_str()),
            })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| format!("{{\"reason\":{:?}}}", self.reason))
    }
}

/// How long to wait before producing a dead letter again after the broker refused it.
const DEAD_LETTER_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// Produces a dead letter and waits for the broker's acknowledgement, retrying until it lands.
/// Returns false only when `cancel` fires first.
pub async fn deliver_dead_letter(
    producer: &FutureProducer,
    letter: &DeadLetter,
    cancel: &CancellationToken,
) -> bool {
    let payload = letter.to_json();
    loop {
        let record = FutureRecord::<(), str>::to(TOPIC_DLQ)
            .payload(&payload)
            .headers(letter.headers());
        match producer.send(record, Timeout::Never).await {
            Ok(_) => return true,
            Err(_) if cancel.is_cancelled() => return false,
            Err((error, _)) => {
                tracing::warn!(stage = %letter.stage, %error, "dead letter not delivered; retrying");
                tokio::time::sleep(DEAD_LETTER_RETRY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"review_id":"r1","user_id":"u1","business_id":"b1","stars":4.0,"useful":1,"funny":0,"cool":0,"text":"Great tacos","date":"2018-07-07 22:09:11"}"#;

    #[test]
    fn accepts_yelp_format_with_float_stars() {
        let review = parse_review(GOOD.as_bytes()).expect("valid");
        assert_eq!(review.stars, 4);
        assert_eq!(review.business_id, "b1");
    }

    #[test]
    fn refuses_with_a_reason_naming_the_problem() {
        let cases = [
            ("not json", "not a review JSON object"),
            (r#"{"review_id":"r1"}"#, "missing field"),
            (&GOOD.replace("4.0", "7"), "stars"),
            (&GOOD.replace("4.0", "3.5"), "stars"),
            (&GOOD.replace("2018-07-07 22:09:11", "yesterday"), "date"),
            (&GOOD.replace("\"b1\"", "\"\""), "business_id"),
        ];
        for (raw, expected) in cases {
            let reason = parse_review(raw.as_bytes()).expect_err(raw);
            assert!(reason.contains(expected), "{raw}: {reason}");
        }
    }

    #[test]
    fn records_are_checked_against_their_description_naming_the_field() {
        let tweets = DatasetKind::Tweets.description();
        let good = serde_json::json!({"tweet_id": "1", "user": "ana", "text": "great",
            "hashtags": ["#kafka"], "created_at": "2024-01-01 09:00:00"});
        let record = check_record(&tweets, good.to_string().as_bytes()).expect("valid");
        assert_eq!(record.key, "ana");
        assert_eq!(record.text(&tweets), Some("great"));
        let broken = |field: &str, value: serde_json::Value| {
            let mut bad = good.clone();
            bad[field] = value;
            check_record(&tweets, bad.to_string().as_bytes()).expect_err(field)
        };
        assert!(broken("user", "".into()).starts_with("user is empty"));
        assert!(broken("user", 5.into()).starts_with("user must be a string"));
        assert!(broken("created_at", "today".into()).starts_with("created_at must look like"));
        assert!(broken("text", serde_json::json!(["a"])).starts_with("text must be a string"));
        assert!(broken("hashtags", serde_json::json!([1])).starts_with("hashtags must be"));
        let missing = check_record(&tweets, br#"{"tweet_id":"1"}"#).expect_err("missing");
        assert!(missing.starts_with("user is missing"), "{missing}");
        assert!(check_record(&tweets, b"[1]").is_err());
        // Companies have no text: a record without one is fine.
        let companies = DatasetKind::Companies.description();
        let company = br#"{"company_id":"c1","name":"A","country":"France","industry":"Retail","employees":3,"founded":1999,"created_at":"2024-01-01 09:00:00"}"#;
        assert_eq!(check_record(&companies, company).expect("valid").key, "c1");
    }

    #[test]
    fn the_fields_the_upload_form_names_are_exactly_the_ones_a_record_needs() {
        use serde_json::Value;
        let value = |field: &str| match field {
            "date" | "created_at" => Value::from("2024-01-01 09:00:00"),
            "stars" => Value::from(4),
            "hashtags" => serde_json::json!(["#kafka"]),
            other => Value::from(format!("{other}-1")),
        };
        let check = |kind: DatasetKind, record: &serde_json::Map<String, Value>| {
            let raw = Value::Object(record.clone()).to_string();
            match kind {
                DatasetKind::Yelp => parse_review(raw.as_bytes()).map(|_| ()),
                _ => check_record(&kind.description(), raw.as_bytes()).map(|_| ()),
            }
        };
        for kind in DatasetKind::ALL {
            let fields = kind.required_fields();
            let full: serde_json::Map<String, Value> =
                fields.iter().map(|f| ((*f).to_owned(), value(f))).collect();
            assert_eq!(check(kind, &full), Ok(()), "{kind:?} with {fields:?}");
            for field in &fields {
                let mut without = full.clone();
                without.remove(*field);
                assert!(check(kind, &without).is_err(), "{kind:?} without {field}");
            }
        }
    }

    #[test]
    fn tagged_records_name_their_dataset_and_reviews_are_not_tagged() {
        assert!(parse_dataset_record(GOOD.as_bytes()).is_none());
        assert!(parse_dataset_record(br#"{"dataset":"yelp"}"#).is_none());
        assert!(parse_dataset_record(br#"{"dataset":"films"}"#).is_none());
        let bad = parse_dataset_record(br#"{"dataset":"tweets"}"#).expect("tagged");
        assert!(bad.expect_err("no fields").contains("missing"));
    }

    #[test]
    fn labelled_records_are_read_by_dataset_and_refused_naming_the_field() {
        let tweet = serde_json::json!({"dataset": "tweets", "tweet_id": "t1", "user": "ana",
            "text": "love it #kafka", "hashtags": "#kafka", "created_at": "2024-01-01 09:00:00",
            "sentiment": "POSITIVE", "score": 0.6, "classifier": "lexicon", "model": null,
            "processed_at": "2026-11-23T10:00:00.000Z", "worker": "w1"});
        let Ok(Labelled::Tweet(read)) = parse_labelled(tweet.to_string().as_bytes()) else {
            panic!("a labelled tweet");
        };
        assert_eq!(
            (read.user.as_str(), read.hashtags.as_slice()),
            ("ana", &["#kafka".to_owned()][..])
        );
        let mut unlabelled = tweet.clone();
        unlabelled
            .as_object_mut()
            .expect("object")
            .remove("sentiment");
        let reason = parse_labelled(unlabelled.to_string().as_bytes()).expect_err("no label");
        assert!(
            reason.starts_with("a tweets record without its sentiment label"),
            "{reason}"
        );
        let mut no_user = tweet;
        no_user.as_object_mut().expect("object").remove("user");
        let reason = parse_labelled(no_user.to_string().as_bytes()).expect_err("no user");
        assert!(reason.starts_with("user is missing"), "{reason}");
        let reason = parse_labelled(b"{\"review_id\": 1}").expect_err("untagged");
        assert!(reason.starts_with("not an enriched review"), "{reason}");
        // A company as sentiment forwards it (no text, no label): read as unlabelled, not
        // refused; a broken one still is, naming the field.
        let company = serde_json::json!({"dataset": "companies", "company_id": "c1",
            "name": "A", "country": "France", "industry": "Retail", "employees": 3,
            "founded": 1999, "created_at": "2024-01-01 09:00:00",
            "skipped": "no text to classify", "processed_at": "2026-11-23T10:00:00.000Z"});
        assert_eq!(
            parse_labelled(company.to_string().as_bytes()),
            Ok(Labelled::Unlabelled(DatasetKind::Companies))
        );
        let mut no_country = company;
        no_country["country"] = serde_json::json!({"a": 1});
        let reason = parse_labelled(no_country.to_string().as_bytes()).expect_err("country");
        assert!(reason.starts_with("country must be"), "{reason}");
    }

    #[test]
    fn dead_letter_keeps_raw_and_marks_truncation() {
        let letter = DeadLetter::new("producer", "bad", b"{oops", None);
        assert_eq!(letter.raw, "{oops");
        assert!(!letter.raw_truncated);
        let big = vec![b'x'; MAX_RAW_IN_DEAD_LETTER + 10];
        let letter = DeadLetter::new("producer", "too long", &big, None);
        assert!(letter.raw_truncated);
        assert_eq!(letter.raw.len(), MAX_RAW_IN_DEAD_LETTER);
    }
}
