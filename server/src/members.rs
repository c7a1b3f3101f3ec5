//! Kafka as the control plane: every worker — the server's own and every `pipebook worker`
//! process — publishes a heartbeat once a second to the compacted topic `pipebook.workers`, keyed
//! by who it is (stage, group, host, pid, name). The server follows the topic and keeps the
//! members view cell 3 draws; a member silent for more than [`GONE_AFTER`] is `gone`. There is no
//! RPC of our own: a worker needs only the brokers' address.
//!
//! - [`Heartbeat`] and [`member_key`]: the record's value (JSON) and key.
//! - [`publish`]: the loop a process runs to heartbeat for its workers ([`MemberReport`]s), and
//!   to say goodbye (a tombstone) for those that stopped cleanly. A crashed worker simply falls
//!   silent.
//! - [`MemberBook`]: the bounded view the server builds from what it reads ([`follow`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::api::{MEMBER_FILES, MemberOutput, MemberState, MemberView, TOPIC_WORKERS};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::kafka::KafkaSettings;
use crate::stage::StageId;
use crate::sync::LockExt;

/// How often a worker heartbeats.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// A member with no heartbeat for longer than this is shown `gone` (five missed beats: a busy
/// broker may delay one or two).
pub const GONE_AFTER: Duration = Duration::from_secs(5);
/// A member gone or left this long is dropped from the view.
pub const FORGET_AFTER: Duration = Duration::from_secs(120);
/// Most members the view keeps (a topic anyone can write to must not grow the server's memory);
/// past it the longest silent one is dropped.
pub const MAX_MEMBERS: usize = 256;
/// Partitions of `pipebook.workers`: one, so the server follows it with a single assignment.
pub const WORKERS_PARTITIONS: i32 = 1;
/// Largest heartbeat the server decodes; anything larger is not one of ours.
const MAX_HEARTBEAT_BYTES: usize = 16 * 1024;

/// One heartbeat: the value of a `pipebook.workers` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub stage: StageId,
    pub group: String,
    /// The worker's name, its Kafka client id.
    pub worker: String,
    pub host: String,
    pub pid: u32,
    pub in_server: bool,
    pub processed: u64,
    /// Records per second since the previous heartbeat.
    pub rate: f64,
    pub partitions: Vec<i32>,
    pub errors: u64,
    /// Milliseconds since the Unix epoch, by the sender's clock.
    pub started_at: i64,
    pub sent_at: i64,
    /// A Parquet sink's folder and newest files (at most [`MEMBER_FILES`]); absent for the
    /// other stages and from older senders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<MemberOutput>,
}

#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    #[error("heartbeat of {0} bytes is larger than {MAX_HEARTBEAT_BYTES}")]
    TooLarge(usize),
    #[error("not a heartbeat: {0}")]
    Json(#[from] serde_json::Error),
}

impl Heartbeat {
    pub fn key(&self) -> String {
        member_key(self.stage, &self.group, &self.host, self.pid, &self.worker)
    }

    pub fn encode(&self) -> String {
        // A struct of strings and numbers always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, HeartbeatError> {
        if bytes.len() > MAX_HEARTBEAT_BYTES {
            return Err(HeartbeatError::TooLarge(bytes.len()));
        }
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// The record key of a member: a JSON array, so no name can make two members' keys collide
/// (a group may contain `/`).
pub fn member_key(stage: StageId, group: &str, host: &str, pid: u32, worker: &str) -> String {
    serde_json::json!([stage.as_str(), group, host, pid, worker]).to_string()
}

/// This machine's name, as heartbeats carry it.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Who the publishing process is.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub host: String,
    pub pid: u32,
    pub in_server: bool,
}

impl Identity {
    /// This process.
    pub fn this_process(in_server: bool) -> Self {
        Self {
            host: host_name(),
            pid: std::process::id(),
            in_server,
        }
    }
}

/// How a worker of a run ended, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Stopped cleanly: says goodbye (a tombstone).
    Left,
    /// Crashed or failed: falls silent, and is shown gone.
    Crashed,
}

/// What a process knows of one of its workers, for its heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberReport {
    pub stage: StageId,
    pub group: String,
    pub worker: String,
    pub partitions: Vec<i32>,
    pub processed: u64,
    pub errors: u64,
    pub started_at: i64,
    /// `None` while it runs.
    pub ended: Option<Ended>,
    /// The files it wrote (the Parquet sink), for its heartbeat.
    pub output: Option<MemberOutput>,
}

/// What a one-member stage (the aggregate, the indexer, the Parquet sink) heartbeats of its run:
/// the records it read, those it dead-lettered, and when the run started (ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemberFigures {
    pub processed: u64,
    pub errors: u64,
    pub started_at: i64,
}

/// Where a process's workers are listed each second.
pub type ReportSource = Arc<dyn Fn() -> Vec<MemberReport> + Send + Sync>;

/// What to send for one tick: heartbeats for running workers, tombstones for those that left
/// (or vanished) since the last tick. Remembers what it sent, for the rates and the goodbyes.
#[derive(Debug)]
pub struct Beats {
    identity: Identity,
    /// Key → (processed, when) at the previous heartbeat.
    sent: HashMap<String, (u64, Instant)>,
}

/// One record to send: a heartbeat, or a tombstone (`None`) for a member that left.
pub type Beat = (String, Option<Heartbeat>);

impl Beats {
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            sent: HashMap::new(),
        }
    }

    pub fn tick(&mut self, reports: &[MemberReport], now: Instant) -> Vec<Beat> {
        let mut beats = Vec::new();
        let mut present = BTreeSet::new();
        for report in reports {
            let key = member_key(
                report.stage,
                &report.group,
                &self.identity.host,
                self.identity.pid,
                &report.worker,
            );
            present.insert(key.clone());
            match report.ended {
                None => {
                    let rate = match self.sent.get(&key) {
                        Some((before, at)) => {
                            let seconds = now.duration_since(*at).as_secs_f64().max(0.001);
                            (report.processed.saturating_sub(*before) as f64 / seconds).round()
                        }
                        None => 0.0,
                    };
                    self.sent.insert(key.clone(), (report.processed, now));
                    beats.push((
                        key,
                        Some(Heartbeat {
                            stage: report.stage,
                            group: report.group.clone(),
                            worker: report.worker.clone(),
                            host: self.identity.host.clone(),
                            pid: self.identity.pid,
                            in_server: self.identity.in_server,
                            processed: report.processed,
                            rate,
                            partitions: report.partitions.clone(),
                            errors: report.errors,
                            started_at: report.started_at,
                            sent_at: now_ms(),
                            output: report.output.clone().map(bounded),
                        }),
                    ));
                }
                Some(Ended::Left) => {
                    if self.sent.remove(&key).is_some() {
                        beats.push((key, None));
                    }
                }
                // Silence: the view shows it gone after GONE_AFTER, as it would a real crash.
                Some(Ended::Crashed) => {
                    self.sent.remove(&key);
                }
            }
        }
        // Workers no longer listed at all (a new run cleared the old ones): they left.
        let vanished: Vec<String> = self
            .sent
            .keys()
            .filter(|key| !present.contains(*key))
            .cloned()
            .collect();
        for key in vanished {
            self.sent.remove(&key);
            beats.push((key, None));
        }
        beats
    }

    /// Tombstones for every member still heartbeating: the process is leaving.
    pub fn goodbye(&mut self) -> Vec<Beat> {
        self.sent.drain().map(|(key, _)| (key, None)).collect()
    }
}

/// Longest folder or file path a heartbeat carries; a longer one is cut (with `…`).
const MAX_PATH_CHARS: usize = 240;

/// At most [`MEMBER_FILES`] files, and paths no longer than [`MAX_PATH_CHARS`]: a heartbeat of
/// ten files stays around 1.5 KB, far below [`MAX_HEARTBEAT_BYTES`], whatever the folder's name.
/// Applied when sending and again when reading (anyone can write to the topic).
fn bounded(mut output: MemberOutput) -> MemberOutput {
    fn cut(path: &mut String) {
        if let Some((at, _)) = path.char_indices().nth(MAX_PATH_CHARS) {
            path.truncate(at);
            path.push('…');
        }
    }
    cut(&mut output.dir);
    output.files.truncate(MEMBER_FILES);
    for file in &mut output.files {
        cut(&mut file.path);
    }
    output
}

/// The producer heartbeats go out with: nothing waits for them, and one not delivered within a
/// few seconds is dropped (the next one says the same, newer).
fn heartbeat_producer(kafka: &KafkaSettings) -> Result<FutureProducer, rdkafka::error::KafkaError> {
    kafka
        .client_config()
        .set("message.timeout.ms", "4000")
        .set("linger.ms", "0")
        .set("queue.buffering.max.messages", "10000")
        .create()
}

fn send(producer: &FutureProducer, (key, heartbeat): &Beat) {
    let value = heartbeat.as_ref().map(Heartbeat::encode);
    let mut record = FutureRecord::<str, str>::to(TOPIC_WORKERS).key(key);
    if let Some(value) = &value {
        record = record.payload(value);
    }
    // The delivery future is dropped: a lost heartbeat is replaced by the next one.
    if let Err((error, _)) = producer.send_result(record) {
        tracing::debug!(%error, "heartbeat not queued");
    }
}

/// Heartbeats once a second for the workers `source` lists, until `cancel`; then says goodbye
/// for those still running and flushes (off the runtime threads).
pub async fn publish(
    kafka: KafkaSettings,
    identity: Identity,
    source: ReportSource,
    cancel: CancellationToken,
) {
    let producer = match heartbeat_producer(&kafka) {
        Ok(producer) => producer,
        Err(error) => {
            tracing::warn!(%error, "cannot create the heartbeat producer; no heartbeats");
            return;
        }
    };
    let mut beats = Beats::new(identity);
    let mut ticker = tokio::time::interval(HEARTBEAT_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        for beat in beats.tick(&source(), Instant::now()) {
            send(&producer, &beat);
        }
    }
    // The last reports: workers that stopped just now say goodbye rather than going silent.
    for beat in beats.tick(&source(), Instant::now()) {
        send(&producer, &beat);
    }
    for beat in beats.goodbye() {
        send(&producer, &beat);
    }
    let flushed = tokio::task::spawn_blocking(move || {
        if let Err(error) = producer.flush(Duration::from_secs(3)) {
            tracing::debug!(%error, "goodbye heartbeats not flushed");
        }
    });
    let _ = flushed.await;
}

struct Entry {
    heartbeat: Heartbeat,
    /// When the server received the last heartbeat (monotonic: decides alive / gone).
    seen: Instant,
    /// The same, as wall-clock milliseconds for the view.
    seen_ms: i64,
    left: bool,
    /// Its going silent was already told to [`MemberBook::waking`]'s watcher.
    noted_gone: bool,
}

/// The state a member is in, `since` its last heartbeat.
pub fn state_of(left: bool, since: Duration) -> MemberState {
    if left {
        MemberState::Left
    } else if since > GONE_AFTER {
        MemberState::Gone
    } else {
        MemberState::Alive
    }
}

/// The members the server has heard from, bounded by [`MAX_MEMBERS`] and [`FORGET_AFTER`].
#[derive(Default)]
pub struct MemberBook {
    members: Mutex<BTreeMap<String, Entry>>,
    /// Told when a member joins, leaves or goes silent: its group rebalances (the engine's
    /// group-state watch).
    changed: Option<Arc<Notify>>,
}

impl MemberBook {
    /// A book that wakes `changed` when a member joins, leaves or is first seen gone.
    pub fn waking(changed: Arc<Notify>) -> Self {
        Self {
            members: Mutex::default(),
            changed: Some(changed),
        }
    }

    fn membership_changed(&self) {
        if let Some(changed) = &self.changed {
            changed.notify_one();
        }
    }

    /// Takes in one record of `pipebook.workers`: a heartbeat, or a tombstone (`None`).
    pub fn observe(&self, key: &str, value: Option<&[u8]>, now: Instant) {
        let mut members = self.members.lock_or_recover();
        let Some(value) = value else {
            if let Some(entry) = members.get_mut(key) {
                if !entry.left {
                    self.membership_changed();
                }
                entry.left = true;
                entry.seen = now;
                entry.seen_ms = now_ms();
                entry.heartbeat.partitions.clear();
                entry.heartbeat.rate = 0.0;
            }
            return;
        };
        let heartbeat = match Heartbeat::decode(value) {
            Ok(heartbeat) if heartbeat.key() == key => heartbeat,
            Ok(_) => {
                tracing::debug!(key, "heartbeat whose key is not its member's; ignored");
                return;
            }
            Err(error) => {
                tracing::debug!(key, %error, "not a heartbeat; ignored");
                return;
            }
        };
        if !members.contains_key(key) && members.len() >= MAX_MEMBERS {
            let oldest = members
                .iter()
                .min_by_key(|(_, entry)| entry.seen)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                members.remove(&oldest);
            }
        }
        // New, back after leaving, or back after going silent: its group rebalances.
        let joined = members.get(key).is_none_or(|entry| {
            entry.left || now.saturating_duration_since(entry.seen) > GONE_AFTER
        });
        if joined {
            self.membership_changed();
        }
        members.insert(
            key.to_owned(),
            Entry {
                heartbeat,
                seen: now,
                seen_ms: now_ms(),
                left: false,
                noted_gone: false,
            },
        );
    }

    /// Every member of `stage` (all stages when `None`) at `now`, forgetting long-gone ones;
    /// ordered by group, in-server first, then host, pid and name.
    pub fn view(&self, stage: Option<StageId>, now: Instant) -> Vec<MemberView> {
        let mut members = self.members.lock_or_recover();
        members.retain(|_, entry| now.saturating_duration_since(entry.seen) <= FORGET_AFTER);
        let mut newly_gone = false;
        for entry in members.values_mut() {
            let since = now.saturating_duration_since(entry.seen);
            if state_of(entry.left, since) == MemberState::Gone && !entry.noted_gone {
                entry.noted_gone = true;
                newly_gone = true;
            }
        }
        if newly_gone {
            self.membership_changed();
        }
        let mut views: Vec<MemberView> = members
            .values()
            .filter(|entry| stage.is_none_or(|stage| entry.heartbeat.stage == stage))
            .map(|entry| {
                let beat = &entry.heartbeat;
                let state = state_of(entry.left, now.saturating_duration_since(entry.seen));
                let alive = state == MemberState::Alive;
                MemberView {
                    stage: beat.stage.as_str().to_owned(),
                    group: beat.group.clone(),
                    name: beat.worker.clone(),
                    host: beat.host.clone(),
                    pid: beat.pid,
                    in_server: beat.in_server,
                    // A member that is not alive holds nothing any more (its partitions moved).
                    partitions: if alive {
                        beat.partitions.clone()
                    } else {
                        Vec::new()
                    },
                    processed: beat.processed,
                    rate: if alive { beat.rate } else { 0.0 },
                    errors: beat.errors,
                    started_at: beat.started_at,
                    last_seen: entry.seen_ms,
                    state,
                    // Kept when it is gone: the files are where it left them.
                    output: beat.output.clone().map(bounded),
                }
            })
            .collect();
        views.sort_by(|a, b| {
            (&a.group, !a.in_server, &a.host, a.pid, &a.name).cmp(&(
                &b.group,
                !b.in_server,
                &b.host,
                b.pid,
                &b.name,
            ))
        });
        views
    }
}

/// Follows `pipebook.workers` from its end into `book` until `cancel`, on a blocking thread (a
/// plain consumer, assigned the partition, never joining a group nor committing).
pub async fn follow(kafka: KafkaSettings, book: Arc<MemberBook>, cancel: CancellationToken) {
    let followed = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = match kafka
            .client_config()
            .set("group.id", "pipebook-members")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("fetch.wait.max.ms", "100")
            .set("queued.max.messages.kbytes", "1024")
            .create()
        {
            Ok(consumer) => consumer,
            Err(error) => {
                tracing::warn!(%error, "cannot follow {TOPIC_WORKERS}; no members view");
                return;
            }
        };
        let mut tpl = TopicPartitionList::new();
        for partition in 0..WORKERS_PARTITIONS {
            // From the end: members heartbeat every second, so the view fills at once, and
            // old records' times (other machines' clocks) never decide who is alive.
            if let Err(error) = tpl.add_partition_offset(TOPIC_WORKERS, partition, Offset::End) {
                tracing::warn!(%error, "cannot follow {TOPIC_WORKERS}");
                return;
            }
        }
        if let Err(error) = consumer.assign(&tpl) {
            tracing::warn!(%error, "cannot follow {TOPIC_WORKERS}");
            return;
        }
        while !cancel.is_cancelled() {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => {
                    let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                        continue;
                    };
                    book.observe(key, message.payload(), Instant::now());
                }
                Some(Err(error)) => {
                    tracing::debug!(%error, "following {TOPIC_WORKERS}");
                    std::thread::sleep(Duration::from_millis(200));
                }
                None => {}
            }
        }
    });
    if let Err(error) = followed.await {
        tracing::warn!(%error, "the members follower ended badly");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(worker: &str, processed: u64, ended: Option<Ended>) -> MemberReport {
        MemberReport {
            stage: StageId::Sentiment,
            group: "pipebook-sentiment".into(),
            worker: worker.into(),
            partitions: vec![0, 2],
            processed,
            errors: 1,
            started_at: 1_000,
            ended,
            output: None,
        }
    }

    fn identity() -> Identity {
        Identity {
            host: "laptop-3".into(),
            pid: 4242,
            in_server: false,
        }
    }

    #[test]
    fn a_heartbeat_round_trips_and_its_key_names_the_member() {
        let mut beats = Beats::new(identity());
        let sent = beats.tick(&[report("p4242-worker-1", 10, None)], Instant::now());
        let (key, Some(heartbeat)) = &sent[0] else {
            panic!("a heartbeat: {sent:?}")
        };
        let decoded = Heartbeat::decode(heartbeat.encode().as_bytes()).expect("decodes");
        assert_eq!(&decoded, heartbeat);
        assert_eq!(decoded.key(), *key);
        assert_eq!(
            key,
            r#"["sentiment","pipebook-sentiment","laptop-3",4242,"p4242-worker-1"]"#
        );
        let json: serde_json::Value = serde_json::from_str(&heartbeat.encode()).expect("JSON");
        for field in [
            "stage",
            "group",
            "worker",
            "host",
            "pid",
            "in_server",
            "processed",
            "rate",
            "partitions",
            "errors",
            "started_at",
            "sent_at",
        ] {
            assert!(json.get(field).is_some(), "{field} missing: {json}");
        }
        assert_eq!(json["stage"], "sentiment");
    }

    #[test]
    fn a_sinks_files_travel_in_its_heartbeat_bounded_and_stay_when_it_is_gone() {
        let file = |n: usize| app::api::ParquetFile {
            path: format!("date=2024-01-01/part-{n}-0.parquet"),
            rows: 10,
            bytes: 2_048,
            partitions: vec![1, 2],
        };
        let output = MemberOutput {
            dir: format!("/data/{}", "x".repeat(1_000)),
            files: (0..MEMBER_FILES + 20).map(file).collect(),
            total_files: 30,
            total_rows: 300,
        };
        let mut sink = report("p4242-parquet", 300, None);
        sink.stage = StageId::Parquet;
        sink.output = Some(output);
        let mut beats = Beats::new(identity());
        let start = Instant::now();
        let sent = beats.tick(&[sink], start);
        let (key, Some(heartbeat)) = &sent[0] else {
            panic!("a heartbeat: {sent:?}")
        };
        let encoded = heartbeat.encode();
        assert!(encoded.len() < 4 * 1024, "{} bytes", encoded.len());
        let book = MemberBook::default();
        book.observe(key, Some(encoded.as_bytes()), start);
        let gone = start + GONE_AFTER + Duration::from_secs(1);
        let view = book.view(Some(StageId::Parquet), gone);
        assert_eq!(view[0].state, MemberState::Gone);
        let listed = view[0].output.as_ref().expect("its files");
        assert_eq!(listed.files.len(), MEMBER_FILES);
        assert_eq!(listed.files[0], file(0));
        assert_eq!((listed.total_files, listed.total_rows), (30, 300));
        assert_eq!(
            listed.dir.chars().count(),
            MAX_PATH_CHARS + 1,
            "cut, with …"
        );
        // A heartbeat from another sender with 100 files is cut when read as well.
        let mut loud = heartbeat.clone();
        loud.output = Some(MemberOutput {
            files: (0..100).map(file).collect(),
            ..MemberOutput::default()
        });
        book.observe(key, Some(loud.encode().as_bytes()), gone);
        let view = book.view(None, gone);
        assert_eq!(
            view[0].output.as_ref().map(|o| o.files.len()),
            Some(MEMBER_FILES)
        );
        // Other stages carry none.
        assert!(!encoded.is_empty());
        let sentiment = beats.tick(&[report("w", 1, None)], gone);
        assert!(
            sentiment
                .iter()
                .filter_map(|(_, h)| h.as_ref())
                .all(|h| h.output.is_none() && !h.encode().contains("output"))
        );
    }

    #[test]
    fn keys_cannot_collide_through_separators() {
        let a = member_key(StageId::Sentiment, "g/h", "x", 1, "w");
        let b = member_key(StageId::Sentiment, "g", "h/x", 1, "w");
        assert_ne!(a, b);
    }

    #[test]
    fn garbage_is_refused_not_a_panic() {
        assert!(Heartbeat::decode(b"not json").is_err());
        assert!(Heartbeat::decode(br#"{"stage":"nope"}"#).is_err());
        assert!(Heartbeat::decode(&vec![b' '; MAX_HEARTBEAT_BYTES + 1]).is_err());
        let book = MemberBook::default();
        book.observe("k", Some(b"{}"), Instant::now());
        assert!(book.view(None, Instant::now()).is_empty());
    }

    #[test]
    fn rates_goodbyes_and_silence() {
        let mut beats = Beats::new(identity());
        let start = Instant::now();
        beats.tick(
            &[
                report("a", 0, None),
                report("b", 0, None),
                report("c", 0, None),
            ],
            start,
        );
        let next = beats.tick(
            &[
                report("a", 500, None),
                report("b", 7, Some(Ended::Left)),
                report("c", 9, Some(Ended::Crashed)),
            ],
            start + Duration::from_millis(500),
        );
        assert_eq!(next.len(), 2, "a heartbeats, b says goodbye, c is silent");
        assert_eq!(next[0].1.as_ref().map(|h| h.rate), Some(1_000.0));
        assert!(next[1].0.contains("\"b\"") && next[1].1.is_none());
        // A worker no longer listed says goodbye too; the process leaving says it for the rest.
        let later = beats.tick(&[], start + Duration::from_secs(1));
        assert_eq!(later.len(), 1);
        assert!(later[0].1.is_none());
        assert!(beats.goodbye().is_empty());
    }

    #[test]
    fn the_gone_rule() {
        assert_eq!(state_of(false, Duration::ZERO), MemberState::Alive);
        assert_eq!(state_of(false, GONE_AFTER), MemberState::Alive);
        assert_eq!(
            state_of(false, GONE_AFTER + Duration::from_millis(1)),
            MemberState::Gone
        );
        assert_eq!(state_of(true, Duration::ZERO), MemberState::Left);
    }

    #[test]
    fn the_book_shows_alive_gone_and_left_and_forgets() {
        let book = MemberBook::default();
        let start = Instant::now();
        let mut beats = Beats::new(identity());
        for (key, heartbeat) in beats.tick(&[report("a", 1, None), report("b", 2, None)], start) {
            let value = heartbeat.map(|h| h.encode());
            book.observe(&key, value.as_deref().map(str::as_bytes), start);
        }
        let later = start + Duration::from_secs(3);
        for (key, heartbeat) in beats.tick(&[report("a", 5, None)], later) {
            let value = heartbeat.map(|h| h.encode());
            book.observe(&key, value.as_deref().map(str::as_bytes), later);
        }
        let states = |at| -> Vec<(String, MemberState)> {
            book.view(Some(StageId::Sentiment), at)
                .into_iter()
                .map(|m| (m.name, m.state))
                .collect()
        };
        assert_eq!(
            states(later),
            [
                ("a".to_owned(), MemberState::Alive),
                ("b".to_owned(), MemberState::Left)
            ]
        );
        let silent = later + GONE_AFTER + Duration::from_secs(1);
        let view = book.view(None, silent);
        assert_eq!(view[0].state, MemberState::Gone);
        assert!(view[0].partitions.is_empty(), "a gone member holds nothing");
        assert_eq!(view[0].processed, 5, "its last figures stay");
        assert!(book.view(Some(StageId::Indexer), silent).is_empty());
        assert!(book.view(None, later + FORGET_AFTER * 2).is_empty());
    }

    #[test]
    fn the_book_wakes_its_watcher_on_joins_leaves_and_silence_only() {
        let changed = Arc::new(Notify::new());
        let book = MemberBook::waking(changed.clone());
        // `notify_one` with nobody waiting keeps one permit: take it if there is one.
        let woken = || futures::FutureExt::now_or_never(changed.notified()).is_some();
        let start = Instant::now();
        let mut beats = Beats::new(identity());
        let mut deliver = |reports: &[MemberReport], at: Instant| {
            for (key, heartbeat) in beats.tick(reports, at) {
                let value = heartbeat.map(|h| h.encode());
                book.observe(&key, value.as_deref().map(str::as_bytes), at);
            }
        };
        deliver(&[report("a", 1, None)], start);
        assert!(woken(), "a member joined");
        deliver(&[report("a", 2, None)], start + Duration::from_secs(1));
        assert!(!woken(), "a heartbeat of a known member changes nothing");
        let silent = start + Duration::from_secs(1) + GONE_AFTER + Duration::from_secs(1);
        book.view(None, silent);
        assert!(woken(), "it went silent");
        book.view(None, silent + Duration::from_secs(1));
        assert!(!woken(), "told once");
        deliver(&[report("a", 3, None)], silent + Duration::from_secs(2));
        assert!(woken(), "back after going silent");
        deliver(
            &[report("a", 3, Some(Ended::Left))],
            silent + Duration::from_secs(3),
        );
        assert!(woken(), "it left");
    }

    #[test]
    fn the_book_is_bounded() {
        let book = MemberBook::default();
        let start = Instant::now();
        let mut beats = Beats::new(identity());
        let reports: Vec<MemberReport> = (0..MAX_MEMBERS + 10)
            .map(|n| report(&format!("w{n}"), 0, None))
            .collect();
        for (n, (key, heartbeat)) in beats.tick(&reports, start).into_iter().enumerate() {
            let value = heartbeat.map(|h| h.encode());
            let at = start + Duration::from_millis(n as u64);
            book.observe(&key, value.as_deref().map(str::as_bytes), at);
        }
        let view = book.view(None, start + Duration::from_secs(1));
        assert_eq!(view.len(), MAX_MEMBERS);
        assert!(
            !view.iter().any(|m| m.name == "w0"),
            "the oldest went first"
        );
    }
}
