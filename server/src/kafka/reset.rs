//! Resetting a consumer group's committed offsets, as Kafka's `kafka-consumer-groups
//! --reset-offsets` does: to the earliest or latest record, a given offset, the first record at
//! or after a time, or shifted by ±N; for all or some partitions; a dry run shows what would
//! change, and executing is refused while the group has members (their next commit would
//! overwrite the reset, and a real broker refuses a commit from outside a live group).
//!
//! The new offsets are committed by a consumer with the group's id that never subscribes (so
//! never joins the group): it assigns the partitions and commits them, then closes.

use std::collections::HashMap;
use std::time::Duration;

use app::api::{GroupInfo, TopicInfo};
use app::ops::{ResetOutcome, ResetPartition, ResetRequest, ResetTo};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaSettings;
use super::inspect::{InspectError, Inspector};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// A bad request value; the message starts with the field's name.
    #[error("{0}")]
    BadRequest(String),
    #[error(
        "no consumer group {0:?}: Pipebook lists the groups its stages use (and, on external Kafka, the broker's)"
    )]
    UnknownGroup(String),
    #[error(
        "group {group:?} has {} active member(s) ({}): offsets can only be reset while the group is inactive (Kafka's tool refuses too); stop the stage that consumes with it first",
        .members.len(),
        .members.join(", ")
    )]
    Active { group: String, members: Vec<String> },
    #[error(transparent)]
    Inspect(#[from] InspectError),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("reset task failed: {0}")]
    Join(String),
}

/// Checks the request's fields against its `to`; the message names the field.
pub fn validate(request: &ResetRequest) -> Result<(), String> {
    let needs = |field: &str, present: bool, wanted: ResetTo| -> Result<(), String> {
        let to = to_name(wanted);
        match (present, request.to == wanted) {
            (false, true) => Err(format!("{field}: required when \"to\" is \"{to}\"")),
            (true, false) => Err(format!(
                "{field}: only with \"to\": \"{to}\" (\"to\" is \"{}\")",
                to_name(request.to)
            )),
            _ => Ok(()),
        }
    };
    needs("offset", request.offset.is_some(), ResetTo::Offset)?;
    needs(
        "timestamp_ms",
        request.timestamp_ms.is_some(),
        ResetTo::Timestamp,
    )?;
    needs("shift", request.shift.is_some(), ResetTo::Shift)?;
    if let Some(offset) = request.offset
        && offset < 0
    {
        return Err(format!("offset: must be 0 or more, got {offset}"));
    }
    if let Some(at) = request.timestamp_ms
        && at < 0
    {
        return Err(format!(
            "timestamp_ms: must be ms since the Unix epoch (0 or more), got {at}"
        ));
    }
    if let Some(partitions) = &request.partitions {
        if partitions.is_empty() {
            return Err(
                "partitions: must name at least one partition (leave it out for all)".into(),
            );
        }
        let mut seen = partitions.clone();
        seen.sort_unstable();
        if let Some(pair) = seen.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("partitions: {} is named twice", pair[0]));
        }
    }
    Ok(())
}

fn to_name(to: ResetTo) -> &'static str {
    match to {
        ResetTo::Earliest => "earliest",
        ResetTo::Latest => "latest",
        ResetTo::Offset => "offset",
        ResetTo::Timestamp => "timestamp",
        ResetTo::Shift => "shift",
    }
}

/// One partition of the group as it is now.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionNow {
    pub topic: String,
    pub partition: i32,
    pub low: i64,
    pub high: i64,
    pub committed: Option<i64>,
}

/// The partitions of `group` a reset touches (all, or those named), with their watermarks.
pub fn partitions_to_reset(
    group: &GroupInfo,
    topics: &[TopicInfo],
    chosen: Option<&[i32]>,
) -> Result<Vec<PartitionNow>, String> {
    let all: Vec<PartitionNow> = group
        .partitions
        .iter()
        .map(|p| {
            let low = topics
                .iter()
                .find(|t| t.name == p.topic)
                .and_then(|t| t.partitions.iter().find(|i| i.id == p.partition))
                .map_or(0, |i| i.low);
            PartitionNow {
                topic: p.topic.clone(),
                partition: p.partition,
                low,
                high: p.high,
                committed: p.committed,
            }
        })
        .collect();
    let Some(chosen) = chosen else {
        return Ok(all);
    };
    if let Some(missing) = chosen
        .iter()
        .find(|id| !all.iter().any(|p| p.partition == **id))
    {
        let ids: Vec<String> = all.iter().map(|p| p.partition.to_string()).collect();
        return Err(format!(
            "partitions: the group reads no partition {missing} (its partitions: {})",
            ids.join(", ")
        ));
    }
    Ok(all
        .into_iter()
        .filter(|p| chosen.contains(&p.partition))
        .collect())
}

/// Where each partition moves. `by_time` holds, for `"to": "timestamp"`, the offset of the first
/// record at or after the time (the high watermark when there is none). Offsets outside the log
/// are clamped to it, as Kafka's tool does.
pub fn plan(
    request: &ResetRequest,
    partitions: &[PartitionNow],
    by_time: &HashMap<(String, i32), i64>,
) -> Vec<ResetPartition> {
    partitions
        .iter()
        .map(|p| {
            let current = p.committed.unwrap_or(p.low);
            let wanted = match request.to {
                ResetTo::Earliest => p.low,
                ResetTo::Latest => p.high,
                ResetTo::Offset => request.offset.unwrap_or(current),
                ResetTo::Timestamp => by_time
                    .get(&(p.topic.clone(), p.partition))
                    .copied()
                    .unwrap_or(p.high),
                ResetTo::Shift => current.saturating_add(request.shift.unwrap_or(0)),
            };
            let after = wanted.clamp(p.low, p.high.max(p.low));
            ResetPartition {
                topic: p.topic.clone(),
                partition: p.partition,
                low: p.low,
                high: p.high,
                before: p.committed,
                after,
                reread: (current - after).max(0),
                skipped: (after - current).max(0),
            }
        })
        .collect()
}

/// Plans (and, unless `dry_run`, executes) a reset of `group`'s offsets.
pub async fn reset(
    kafka: &KafkaSettings,
    inspector: &Inspector,
    group: &str,
    request: ResetRequest,
) -> Result<ResetOutcome, ResetError> {
    validate(&request).map_err(ResetError::BadRequest)?;
    let topics = inspector.topics().await?;
    let groups = inspector.groups(&topics).await?;
    let info = groups
        .into_iter()
        .find(|g| g.group == group)
        .ok_or_else(|| ResetError::UnknownGroup(group.to_owned()))?;
    let partitions = partitions_to_reset(&info, &topics, request.partitions.as_deref())
        .map_err(ResetError::BadRequest)?;
    if !request.dry_run && !info.members.is_empty() {
        return Err(ResetError::Active {
            group: group.to_owned(),
            members: info.members.iter().map(|m| m.member.clone()).collect(),
        });
    }
    let kafka = kafka.clone();
    let group_name = group.to_owned();
    let outcome = tokio::task::spawn_blocking(move || {
        let consumer = reset_consumer(&kafka, &group_name)?;
        let by_time = match request.timestamp_ms {
            Some(at) if request.to == ResetTo::Timestamp => {
                offsets_at_time(&consumer, &partitions, at)?
            }
            _ => HashMap::new(),
        };
        let planned = plan(&request, &partitions, &by_time);
        let executed = !request.dry_run;
        if executed {
            commit(&consumer, &planned)?;
            tracing::info!(group = %group_name, to = to_name(request.to), partitions = planned.len(), "consumer group offsets reset");
        }
        Ok::<_, ResetError>(ResetOutcome {
            group: group_name,
            to: request.to,
            dry_run: request.dry_run,
            executed,
            reread: planned.iter().map(|p| p.reread).sum(),
            skipped: planned.iter().map(|p| p.skipped).sum(),
            partitions: planned,
        })
    })
    .await
    .map_err(|e| ResetError::Join(e.to_string()))??;
    Ok(outcome)
}

/// A consumer with the group's id that never subscribes: it does not join the group, it only
/// looks offsets up and commits the reset.
fn reset_consumer(kafka: &KafkaSettings, group: &str) -> Result<BaseConsumer, KafkaError> {
    kafka
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
}

/// ListOffsets by timestamp: per partition, the first record stamped at or after `at_ms`
/// (the high watermark when no record is that new).
fn offsets_at_time(
    consumer: &BaseConsumer,
    partitions: &[PartitionNow],
    at_ms: i64,
) -> Result<HashMap<(String, i32), i64>, ResetError> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(at_ms))?;
    }
    let found = consumer.offsets_for_times(tpl, REQUEST_TIMEOUT)?;
    let mut out = HashMap::new();
    for element in found.elements() {
        let Some(p) = partitions
            .iter()
            .find(|p| p.topic == element.topic() && p.partition == element.partition())
        else {
            continue;
        };
        let offset = match element.offset() {
            Offset::Offset(offset) => offset,
            _ => p.high,
        };
        out.insert((p.topic.clone(), p.partition), offset);
    }
    Ok(out)
}

/// Commits the planned offsets (assign, then a synchronous commit of exactly those).
fn commit(consumer: &BaseConsumer, planned: &[ResetPartition]) -> Result<(), ResetError> {
    let mut tpl = TopicPartitionList::new();
    for p in planned {
        tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.after))?;
    }
    consumer.assign(&tpl)?;
    consumer.commit(&tpl, CommitMode::Sync)?;
    consumer.unassign()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(to: ResetTo) -> ResetRequest {
        ResetRequest {
            to,
            offset: None,
            timestamp_ms: None,
            shift: None,
            partitions: None,
            dry_run: true,
        }
    }

    fn parts() -> Vec<PartitionNow> {
        vec![
            PartitionNow {
                topic: "t".into(),
                partition: 0,
                low: 10,
                high: 100,
                committed: Some(60),
            },
            PartitionNow {
                topic: "t".into(),
                partition: 1,
                low: 0,
                high: 50,
                committed: None,
            },
        ]
    }

    #[test]
    fn each_target_moves_every_partition_and_counts_rereads_and_skips() {
        let none = HashMap::new();
        let earliest = plan(&request(ResetTo::Earliest), &parts(), &none);
        assert_eq!(
            earliest.iter().map(|p| p.after).collect::<Vec<_>>(),
            [10, 0]
        );
        assert_eq!(earliest[0].reread, 50);
        assert_eq!(earliest[1].reread, 0, "nothing committed: it starts at low");
        let latest = plan(&request(ResetTo::Latest), &parts(), &none);
        assert_eq!(
            latest.iter().map(|p| p.skipped).collect::<Vec<_>>(),
            [40, 50]
        );
        let mut shift = request(ResetTo::Shift);
        shift.shift = Some(-55);
        let shifted = plan(&shift, &parts(), &none);
        assert_eq!(
            shifted.iter().map(|p| p.after).collect::<Vec<_>>(),
            [10, 0],
            "clamped to low"
        );
        shift.shift = Some(1_000);
        let shifted = plan(&shift, &parts(), &none);
        assert_eq!(
            shifted.iter().map(|p| p.after).collect::<Vec<_>>(),
            [100, 50],
            "clamped to high"
        );
        let mut offset = request(ResetTo::Offset);
        offset.offset = Some(20);
        let moved = plan(&offset, &parts(), &none);
        assert_eq!(moved.iter().map(|p| p.after).collect::<Vec<_>>(), [20, 20]);
        assert_eq!((moved[0].reread, moved[1].skipped), (40, 20));
        let mut at = request(ResetTo::Timestamp);
        at.timestamp_ms = Some(5);
        let by_time = HashMap::from([(("t".to_owned(), 0), 70)]);
        let timed = plan(&at, &parts(), &by_time);
        assert_eq!(
            timed.iter().map(|p| p.after).collect::<Vec<_>>(),
            [70, 50],
            "no record that new: the end"
        );
    }

    #[test]
    fn values_are_checked_against_the_target_and_named() {
        let first_word = |r: &ResetRequest| {
            validate(r)
                .expect_err("refused")
                .split(':')
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(first_word(&request(ResetTo::Offset)), "offset");
        assert_eq!(first_word(&request(ResetTo::Timestamp)), "timestamp_ms");
        assert_eq!(first_word(&request(ResetTo::Shift)), "shift");
        let mut stray = request(ResetTo::Earliest);
        stray.shift = Some(3);
        assert_eq!(first_word(&stray), "shift");
        let mut negative = request(ResetTo::Offset);
        negative.offset = Some(-1);
        assert_eq!(first_word(&negative), "offset");
        let mut twice = request(ResetTo::Earliest);
        twice.partitions = Some(vec![1, 1]);
        assert_eq!(first_word(&twice), "partitions");
        twice.partitions = Some(vec![]);
        assert_eq!(first_word(&twice), "partitions");
        assert!(validate(&request(ResetTo::Latest)).is_ok());
    }

    #[test]
    fn a_request_parses_with_dry_run_on_by_default_and_refuses_unknown_fields() {
        let parsed: ResetRequest =
            serde_json::from_str(r#"{"to": "shift", "shift": -10, "partitions": [0]}"#)
                .expect("parses");
        assert!(parsed.dry_run);
        assert_eq!(parsed.shift, Some(-10));
        assert!(
            serde_json::from_str::<ResetRequest>(r#"{"to": "earliest", "force": true}"#).is_err()
        );
        assert!(serde_json::from_str::<ResetRequest>(r#"{"to": "sideways"}"#).is_err());
    }

    #[test]
    fn named_partitions_must_be_the_groups() {
        let group = GroupInfo {
            group: "g".into(),
            state: "Empty".into(),
            members: vec![],
            partitions: vec![app::api::GroupPartition {
                topic: "t".into(),
                partition: 0,
                committed: Some(1),
                high: 5,
                lag: 4,
                lag_seconds: None,
            }],
            lag: Default::default(),
            state_history: Vec::new(),
        };
        assert_eq!(
            partitions_to_reset(&group, &[], Some(&[0])).map(|p| p.len()),
            Ok(1)
        );
        let refused = partitions_to_reset(&group, &[], Some(&[3])).expect_err("unknown");
        assert!(refused.starts_with("partitions: "), "{refused}");
    }
}
