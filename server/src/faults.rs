//! Fault buttons: things a learner does to the running pipeline on purpose, to watch it cope.
//! Stopping the broker, killing a worker and crashing a stage live with their stages; this
//! module holds the faults that write records: a flood of malformed reviews, and the newest
//! reviews sent again (what a producer retry without idempotence does).

use std::time::Duration;

use app::api::{Message, TOPIC_REVIEWS};
use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;

use crate::error::ConfigError;
use crate::kafka::KafkaSettings;
use crate::kafka::inspect::{InspectError, Inspector, MAX_BROWSE};
use crate::records::{parse_dataset_record, parse_review};

/// How long a fault press waits for the broker to acknowledge its records.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// Most records one fault press writes.
pub const MAX_FAULT_RECORDS: u32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error("cannot create a producer: {0}")]
    Producer(#[from] rdkafka::error::KafkaError),
    #[error("{failed} of {total} records were not delivered: {first}")]
    Delivery {
        failed: usize,
        total: usize,
        first: String,
    },
    #[error("the broker did not acknowledge the records within {0} s (is it stopped?)")]
    NotAcknowledged(u64),
    #[error(transparent)]
    Inspect(#[from] InspectError),
}

/// Refuses a count of 0 or more than [`MAX_FAULT_RECORDS`].
pub fn check_count(count: u32) -> Result<(), ConfigError> {
    if !(1..=MAX_FAULT_RECORDS).contains(&count) {
        return Err(ConfigError::new(
            "count",
            format!("must be 1..={MAX_FAULT_RECORDS}, got {count}"),
        ));
    }
    Ok(())
}

/// The ways a record can be wrong, one after the other, so the dead-letter topic shows each reason.
fn malformed_record(n: u32) -> String {
    match n % 4 {
        0 => format!("this line is not JSON at all ({n})"),
        1 => format!(r#"{{"review_id":"bad-{n}","text":"no stars, no date, no business"}}"#),
        2 => format!(
            r#"{{"review_id":"bad-{n}","user_id":"u","business_id":"b","stars":7,"text":"seven stars","date":"2024-01-31 18:05:00"}}"#
        ),
        _ => format!(
            r#"{{"review_id":"bad-{n}","user_id":"u","business_id":"b","stars":3,"text":"a date that is not one","date":"yesterday"}}"#
        ),
    }
}

/// Writes `count` malformed records to `reviews`; the sentiment stage must send each to the
/// dead-letter topic with its reason and go on. Returns how many were written.
pub async fn flood_malformed(kafka: &KafkaSettings, count: u32) -> Result<u32, FaultError> {
    check_count(count)?;
    let records: Vec<(Option<i32>, Option<String>, String, OwnedHeaders)> = (0..count)
        .map(|n| {
            let headers = OwnedHeaders::new().insert(Header {
                key: "pipebook.fault",
                value: Some("malformed"),
            });
            (
                None,
                Some(format!("malformed-{n}")),
                malformed_record(n),
                headers,
            )
        })
        .collect();
    produce_all(kafka, records).await?;
    Ok(count)
}

/// Sends the newest `count` records of `reviews` again, to the partitions they came from, as a
/// producer retrying without idempotence would: the windows' dedup must drop them and the search
/// index must still hold one document per review. Returns how many were sent.
pub async fn resend_newest(
    kafka: &KafkaSettings,
    inspector: &Inspector,
    count: u32,
) -> Result<u32, FaultError> {
    check_count(count)?;
    let newest = newest_records(inspector, count as usize).await?;
    let sent = u32::try_from(newest.len()).unwrap_or(u32::MAX);
    let records = newest
        .into_iter()
        .map(|message| {
            let headers = message.headers.iter().fold(
                OwnedHeaders::new().insert(Header {
                    key: "pipebook.fault",
                    value: Some("resent"),
                }),
                |headers, (key, value)| {
                    headers.insert(Header {
                        key,
                        value: Some(value),
                    })
                },
            );
            (Some(message.partition), message.key, message.value, headers)
        })
        .collect();
    produce_all(kafka, records).await?;
    Ok(sent)
}

/// The newest valid records of `reviews` — reviews, tweets, companies — about `count` in all,
/// taken evenly from its partitions (records of no dataset, such as a malformed flood, are
/// passed over).
async fn newest_records(inspector: &Inspector, count: usize) -> Result<Vec<Message>, FaultError> {
    let topics = inspector.topics().await?;
    let Some(reviews) = topics.iter().find(|t| t.name == TOPIC_REVIEWS) else {
        return Err(InspectError::UnknownTopic(TOPIC_REVIEWS.to_owned()).into());
    };
    let per_partition = count.div_ceil(reviews.partitions.len().max(1));
    let mut newest = Vec::with_capacity(count);
    for partition in &reviews.partitions {
        // Look back further than needed, so a few hundred malformed records do not hide the
        // reviews before them; one browse reads at most MAX_BROWSE records (`clamp` would
        // panic when a large count makes per_partition exceed it).
        let window = (per_partition * 4).min(MAX_BROWSE);
        let from = (partition.high - window as i64).max(partition.low);
        let messages = inspector
            .messages(TOPIC_REVIEWS, partition.id, from, window)
            .await?;
        let valid: Vec<Message> = messages
            .into_iter()
            .filter(|m| is_a_datasets_record(m.value.as_bytes()))
            .collect();
        let skip = valid.len().saturating_sub(per_partition);
        newest.extend(valid.into_iter().skip(skip));
    }
    newest.truncate(count);
    Ok(newest)
}

/// A Yelp review, or a record of another dataset that passes its description's check: what a
/// producer retry could send again.
fn is_a_datasets_record(payload: &[u8]) -> bool {
    parse_review(payload).is_ok() || matches!(parse_dataset_record(payload), Some(Ok(_)))
}

/// Produces every record (partition, key, value, headers) to `reviews` and waits for all acks.
pub(crate) async fn produce_all(
    kafka: &KafkaSettings,
    records: Vec<(Option<i32>, Option<String>, String, OwnedHeaders)>,
) -> Result<(), FaultError> {
    let producer = kafka.reliable_producer()?;
    let total = records.len();
    let sends = records.iter().map(|(partition, key, value, headers)| {
        let mut record = FutureRecord::<str, str>::to(TOPIC_REVIEWS)
            .payload(value.as_str())
            .headers(headers.clone());
        if let Some(key) = key {
            record = record.key(key.as_str());
        }
        if let Some(partition) = partition {
            record = record.partition(*partition);
        }
        producer.send(record, Timeout::After(ACK_TIMEOUT))
    });
    let acks = tokio::time::timeout(ACK_TIMEOUT, join_all(sends))
        .await
        .map_err(|_| FaultError::NotAcknowledged(ACK_TIMEOUT.as_secs()))?;
    let failures: Vec<String> = acks
        .into_iter()
        .filter_map(|result| result.err().map(|(error, _)| error.to_string()))
        .collect();
    match failures.first() {
        None => Ok(()),
        Some(first) => Err(FaultError::Delivery {
            failed: failures.len(),
            total,
            first: first.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_malformed_record_is_refused_with_a_reason() {
        let reasons: Vec<String> = (0..4)
            .map(|n| parse_review(malformed_record(n).as_bytes()).expect_err("malformed"))
            .collect();
        assert!(
            reasons[0].starts_with("not a review JSON object"),
            "{reasons:?}"
        );
        assert!(reasons[1].contains("missing field"), "{reasons:?}");
        assert!(reasons[2].starts_with("stars must be"), "{reasons:?}");
        assert!(reasons[3].starts_with("date must look like"), "{reasons:?}");
    }

    #[test]
    fn a_retry_resends_any_datasets_records_but_no_malformed_one() {
        let tweet = br#"{"dataset":"tweets","tweet_id":"t1","user":"ana","text":"x","hashtags":[],"created_at":"2024-01-01 09:00:00"}"#;
        let company = br#"{"dataset":"companies","company_id":"c1","name":"n","country":"France","industry":"Retail","created_at":"2024-01-01 09:00:00"}"#;
        let review = br#"{"review_id":"r1","user_id":"u","business_id":"b","stars":5,"text":"x","date":"2024-01-01 09:00:00"}"#;
        assert!(is_a_datasets_record(tweet));
        assert!(is_a_datasets_record(company));
        assert!(is_a_datasets_record(review));
        for n in 0..4 {
            assert!(!is_a_datasets_record(malformed_record(n).as_bytes()), "{n}");
        }
        let untagged_tweet =
            br#"{"tweet_id":"t1","user":"ana","text":"x","created_at":"2024-01-01 09:00:00"}"#;
        assert!(
            !is_a_datasets_record(untagged_tweet),
            "the producer tags what it checked"
        );
    }

    #[test]
    fn counts_outside_the_range_are_refused_by_name() {
        assert!(
            check_count(0)
                .unwrap_err()
                .to_string()
                .starts_with("count:")
        );
        assert!(check_count(MAX_FAULT_RECORDS + 1).is_err());
        assert!(check_count(100).is_ok());
    }
}
