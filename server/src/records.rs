//! The records that flow between stages: parsing a raw review line, and the dead-letter record a
//! stage writes when it refuses one.

use app::api::{Review, TOPIC_DLQ};
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
