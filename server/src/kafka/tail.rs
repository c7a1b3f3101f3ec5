//! Live tail of a topic: new records as they arrive (or from a time on), filtered on the server
//! by key, value substring and header, sent to one viewer at most [`MAX_TAIL_RATE`] a second.
//!
//! Each tail is one librdkafka consumer of its own (it lives as long as the viewer watches, so
//! it is not taken from the pools meant for short reads) on a blocking thread, assigned every
//! partition — never joining a group nor committing. At most [`MAX_TAILS`] run at once; one more
//! is refused with 429. The reader never runs ahead of the viewer: past the rate, or while the
//! viewer's channel is full, it waits, so a slow or throttled viewer falls behind the topic
//! rather than growing a queue on the server.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use app::api::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::KafkaSettings;
use super::inspect::{is_connection_event, to_message};

/// Tails at once, over every viewer: each holds a consumer (its threads and up to 4 MB read
/// ahead) and a blocking thread for as long as it is open.
pub const MAX_TAILS: usize = 4;
/// Records a second a tail sends by default, and at most.
pub const DEFAULT_TAIL_RATE: u32 = 20;
pub const MAX_TAIL_RATE: u32 = 200;
/// Longest filter text accepted.
const MAX_FILTER_CHARS: usize = 200;
/// How far past the server's clock a time bound may lie: a day covers any client's clock skew
/// and time zone mistake worth honouring; beyond that the value is a typo (a year, seconds
/// taken for ms), refused rather than silently tailing nothing.
const MAX_AHEAD_MS: i64 = 24 * 3600 * 1000;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The query of `GET /api/kafka/topics/{topic}/tail`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailQuery {
    /// Only records whose key is exactly this.
    pub key: Option<String>,
    /// Only records whose value contains this text (case-sensitive).
    pub contains: Option<String>,
    /// Only records with this header: `name` (any value) or `name=value`.
    pub header: Option<String>,
    /// Start at the first record stamped at or after this time (ms); new records only when
    /// left out.
    pub from_ms: Option<i64>,
    /// Skip records stamped after this time (ms).
    pub until_ms: Option<i64>,
    /// Records a second sent at most (1..=200, default 20).
    pub rate: Option<u32>,
}

/// What a record must match, checked on the server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TailFilter {
    pub key: Option<String>,
    pub contains: Option<String>,
    pub header: Option<(String, Option<String>)>,
    pub from_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

/// A checked tail request.
#[derive(Debug, Clone, PartialEq)]
pub struct TailPlan {
    pub filter: TailFilter,
    pub rate: u32,
}

impl TailQuery {
    /// Checks the values against the server's clock `now_ms`; the message names the field.
    pub fn plan(self, now_ms: i64) -> Result<TailPlan, String> {
        for (field, value) in [
            ("key", &self.key),
            ("contains", &self.contains),
            ("header", &self.header),
        ] {
            if let Some(value) = value {
                let chars = value.chars().count();
                if chars == 0 || chars > MAX_FILTER_CHARS {
                    return Err(format!(
                        "{field}: 1..={MAX_FILTER_CHARS} characters, got {chars}"
                    ));
                }
            }
        }
        let rate = self.rate.unwrap_or(DEFAULT_TAIL_RATE);
        if !(1..=MAX_TAIL_RATE).contains(&rate) {
            return Err(format!("rate: must be 1..={MAX_TAIL_RATE}, got {rate}"));
        }
        let latest = now_ms.saturating_add(MAX_AHEAD_MS);
        for (field, value) in [("from_ms", self.from_ms), ("until_ms", self.until_ms)] {
            if let Some(at) = value
                && !(0..=latest).contains(&at)
            {
                return Err(format!(
                    "{field}: ms since the epoch, 0..={latest} (at most a day ahead of the server's clock), got {at}"
                ));
            }
        }
        if let (Some(from), Some(until)) = (self.from_ms, self.until_ms)
            && until < from
        {
            return Err(format!("until_ms: before from_ms ({until} < {from})"));
        }
        let header = self.header.map(|h| match h.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (h, None),
        });
        Ok(TailPlan {
            filter: TailFilter {
                key: self.key,
                contains: self.contains,
                header,
                from_ms: self.from_ms,
                until_ms: self.until_ms,
            },
            rate,
        })
    }
}

impl TailFilter {
    pub fn matches(&self, message: &Message) -> bool {
        if let Some(key) = &self.key
            && message.key.as_deref() != Some(key.as_str())
        {
            return false;
        }
        if let Some(text) = &self.contains
            && !message.value.contains(text.as_str())
        {
            return false;
        }
        if let Some((name, value)) = &self.header {
            match (message.headers.get(name), value) {
                (None, _) => return false,
                (Some(found), Some(wanted)) if found != wanted => return false,
                _ => {}
            }
        }
        if let (Some(at), Some(from)) = (message.timestamp, self.from_ms)
            && at < from
        {
            return false;
        }
        if let (Some(at), Some(until)) = (message.timestamp, self.until_ms)
            && at > until
        {
            return false;
        }
        true
    }
}

/// The tails' bound, shared by the process (a tail outlives its request's handler, so the
/// permit must be owned).
fn tails() -> Arc<Semaphore> {
    static TAILS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    TAILS
        .get_or_init(|| Arc::new(Semaphore::new(MAX_TAILS)))
        .clone()
}

/// Tails open now, over every viewer (for `/metrics`).
pub fn open_count() -> usize {
    MAX_TAILS.saturating_sub(tails().available_permits())
}

/// A permit to open one more tail, or the 429 message.
pub fn try_open() -> Result<OwnedSemaphorePermit, String> {
    tails().try_acquire_owned().map_err(|_| busy())
}

/// Whether one more tail could open now (without taking the place), or the 429 message.
pub fn has_room() -> Result<(), String> {
    if tails().available_permits() > 0 {
        Ok(())
    } else {
        Err(busy())
    }
}

fn busy() -> String {
    format!(
        "busy: {MAX_TAILS} live tails are already open (the most at once); try again in a second"
    )
}

/// Token bucket: `rate` a second, bursts of one second's worth.
struct Pace {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Pace {
    fn new(rate: u32) -> Self {
        Self {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            last: Instant::now(),
        }
    }

    /// How long to wait before the next record may go.
    fn wait(&mut self) -> Duration {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

/// Runs a tail on the calling (blocking) thread until the viewer goes (`out` closed) or
/// `cancel` fires. `partitions` are the topic's partition ids.
pub fn run(
    settings: &KafkaSettings,
    topic: &str,
    partitions: &[i32],
    plan: &TailPlan,
    out: &mpsc::Sender<Message>,
    cancel: &CancellationToken,
    _permit: OwnedSemaphorePermit,
) -> Result<(), KafkaError> {
    let consumer: BaseConsumer = settings
        .client_config()
        .set("group.id", "pipebook-tail")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", "100")
        .set("queued.min.messages", "1000")
        .set("queued.max.messages.kbytes", "4096")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for partition in partitions {
        let start = match plan.filter.from_ms {
            Some(at) => Offset::Offset(at),
            None => Offset::End,
        };
        tpl.add_partition_offset(topic, *partition, start)?;
    }
    if plan.filter.from_ms.is_some() {
        // ListOffsets by timestamp: the first record at or after the time, per partition.
        tpl = consumer.offsets_for_times(tpl, REQUEST_TIMEOUT)?;
    }
    consumer.assign(&tpl)?;
    let mut pace = Pace::new(plan.rate);
    while !out.is_closed() && !cancel.is_cancelled() {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(record)) => {
                if record.topic() != topic {
                    continue;
                }
                let message = to_message(&record);
                if !plan.filter.matches(&message) {
                    continue;
                }
                loop {
                    let wait = pace.wait();
                    if wait.is_zero() {
                        break;
                    }
                    std::thread::sleep(wait.min(Duration::from_millis(200)));
                    if out.is_closed() || cancel.is_cancelled() {
                        return Ok(());
                    }
                }
                // Waits while the viewer's channel is full: the reader never runs ahead.
                if out.blocking_send(message).is_err() {
                    return Ok(());
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(error)) if is_connection_event(&error) => {}
            Some(Err(error)) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(key: &str, value: &str, at: i64, headers: &[(&str, &str)]) -> Message {
        Message {
            partition: 0,
            offset: 0,
            timestamp: Some(at),
            key: Some(key.into()),
            value: value.into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    const NOW: i64 = 1_800_000_000_000;

    fn plan(query: &str) -> TailPlan {
        let query: TailQuery = serde_json::from_str(query).expect("query");
        query.plan(NOW).expect("valid")
    }

    #[test]
    fn filters_combine_key_text_header_and_time() {
        let records = [
            message("a", "great food", 10, &[("pipebook.reason", "bad json")]),
            message("a", "awful", 20, &[]),
            message("b", "great view", 30, &[("pipebook.reason", "stars")]),
        ];
        let kept = |q: &str| {
            let plan = plan(q);
            records
                .iter()
                .filter(|m| plan.filter.matches(m))
                .map(|m| m.timestamp.unwrap_or_default())
                .collect::<Vec<_>>()
        };
        assert_eq!(kept("{}"), [10, 20, 30]);
        assert_eq!(kept(r#"{"key": "a"}"#), [10, 20]);
        assert_eq!(kept(r#"{"contains": "great"}"#), [10, 30]);
        assert_eq!(kept(r#"{"key": "a", "contains": "great"}"#), [10]);
        assert_eq!(kept(r#"{"header": "pipebook.reason"}"#), [10, 30]);
        assert_eq!(kept(r#"{"header": "pipebook.reason=stars"}"#), [30]);
        assert_eq!(kept(r#"{"from_ms": 15, "until_ms": 30}"#), [20, 30]);
    }

    #[test]
    fn bad_values_are_refused_naming_the_field() {
        let refused = |q: &str| {
            let query: TailQuery = serde_json::from_str(q).expect("query");
            query.plan(NOW).expect_err("refused")
        };
        assert!(refused(r#"{"rate": 0}"#).starts_with("rate"));
        assert!(refused(r#"{"rate": 1000}"#).starts_with("rate"));
        assert!(refused(r#"{"contains": ""}"#).starts_with("contains"));
        assert!(refused(r#"{"from_ms": 5, "until_ms": 1}"#).starts_with("until_ms"));
        // Time bounds: not before the epoch, at most a day past the server's clock.
        assert!(refused(r#"{"from_ms": -1}"#).starts_with("from_ms"));
        let ahead = NOW + MAX_AHEAD_MS + 1;
        assert!(refused(&format!(r#"{{"until_ms": {ahead}}}"#)).starts_with("until_ms"));
        assert!(refused(&format!(r#"{{"from_ms": {ahead}}}"#)).starts_with("from_ms"));
        let seconds_as_ms = NOW * 1000;
        assert!(refused(&format!(r#"{{"from_ms": {seconds_as_ms}}}"#)).starts_with("from_ms"));
        let day = format!(
            r#"{{"from_ms": {}, "until_ms": {}}}"#,
            NOW - 3_600_000,
            NOW + 60_000
        );
        assert_eq!(plan(&day).filter.until_ms, Some(NOW + 60_000));
        assert_eq!(plan("{}").rate, DEFAULT_TAIL_RATE);
    }

    #[test]
    fn the_pace_lets_a_seconds_worth_through_then_spaces_records() {
        let mut pace = Pace::new(5);
        for _ in 0..5 {
            assert_eq!(pace.wait(), Duration::ZERO);
        }
        let wait = pace.wait();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
    }
}
