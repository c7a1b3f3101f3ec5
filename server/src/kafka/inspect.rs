//! Read-only views of the cluster, all answered by the broker: topics with low/high watermarks,
//! consumer groups with committed offsets and lag, and a message browser.
//!
//! Group states and members come from the broker's ListGroups + DescribeGroups, on the embedded
//! broker (tansu with the patch in `vendor/`) as on external Kafka, so a consumer in another
//! process shows too. The stages still declare their groups and topics in a [`GroupRegistry`]:
//! that is what lists a group with no member yet, and which topics its lag is counted on.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use app::api::{GroupInfo, GroupMember, GroupPartition, Message, PartitionInfo, TopicInfo};
use lru::LruCache;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::KafkaSettings;
use super::group_states::{StateLog, WATCH_FOR, WATCH_STEP};
use crate::bounds::{MAX_BROWSES, MAX_TRACES};
use crate::clock::now_ms;
use crate::sync::LockExt;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Most records the message browser returns at once.
pub const MAX_BROWSE: usize = 500;
/// Longest a bounded scan reads before it gives up.
pub const SCAN_TIMEOUT: Duration = Duration::from_secs(20);
/// Records per partition a newest-first scan reads in its first step back; each next step
/// reads twice as many, up to the last: recent records are found at once, old ones in few rounds.
const SCAN_FIRST_STEP: i64 = 1_000;
const SCAN_LAST_STEP: i64 = 16_000;
/// Groups whose committed offsets are read through a cached consumer (one librdkafka client
/// each, with its threads): the least recently used beyond this are closed. Pipebook's own
/// groups are at most a handful at a time; the [`GroupRegistry`] forgets idle groups past the
/// same bound, so the once-a-second sampler does not churn through the cache on the embedded
/// broker.
pub const OFFSET_READERS_KEPT: usize = 32;
/// Groups the [`GroupRegistry`] lists at most: every stage start may name a new group, and each
/// listed group costs an OffsetFetch a second. Groups with members are never forgotten.
pub const REGISTERED_GROUPS_KEPT: usize = OFFSET_READERS_KEPT;
/// Queued events drained from a pooled reader before it is reused (a bound, not a target:
/// after `unassign` there is normally nothing left).
const DRAIN_LIMIT: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("topic {topic:?} has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("the broker gave no watermark for {topic}-{partition}")]
    NoWatermark { topic: String, partition: i32 },
    #[error("inspection task failed: {0}")]
    Join(String),
}

/// A group as the broker's DescribeGroups reports it.
#[derive(Debug, Clone)]
struct DescribedGroup {
    state: String,
    members: Vec<GroupMember>,
}

/// The partitions in a consumer-protocol assignment (the bytes a member's SyncGroup gave it:
/// version i16, then topics as [name: i16-length string, partitions: [i32]], then user data).
/// Bytes that do not parse give what parsed before them.
fn decode_assignment(bytes: &[u8]) -> Vec<(String, i32)> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = bytes.split_at_checked(n)?;
        *bytes = rest;
        Some(head)
    }
    fn i16_of(bytes: &mut &[u8]) -> Option<i16> {
        take(bytes, 2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32_of(bytes: &mut &[u8]) -> Option<i32> {
        take(bytes, 4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    let mut out = Vec::new();
    let mut rest = bytes;
    let _version = i16_of(&mut rest);
    let topics = i32_of(&mut rest).unwrap_or(0);
    for _ in 0..topics.max(0) {
        let Some(name) = i16_of(&mut rest)
            .and_then(|len| usize::try_from(len).ok())
            .and_then(|len| take(&mut rest, len))
            .map(|b| String::from_utf8_lossy(b).into_owned())
        else {
            break;
        };
        let partitions = i32_of(&mut rest).unwrap_or(0);
        for _ in 0..partitions.max(0) {
            let Some(partition) = i32_of(&mut rest) else {
                return out;
            };
            out.push((name.clone(), partition));
        }
    }
    out
}

/// Members of Pipebook's own consumer groups, as their rebalance callbacks report them.
#[derive(Debug, Default)]
pub struct GroupRegistry {
    groups: Mutex<BTreeMap<String, RegisteredGroup>>,
}

#[derive(Debug, Default, Clone)]
struct RegisteredGroup {
    topics: Vec<String>,
    /// member name → assigned "topic-partition" labels
    members: BTreeMap<String, Vec<(String, i32)>>,
    /// When it was last declared or assigned (a counter): the oldest idle group is forgotten
    /// first.
    touched: u64,
}

impl GroupRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, RegisteredGroup>> {
        self.groups.lock_or_recover()
    }

    /// Declares a group and the topics it consumes, so it is listed even with no member.
    /// Past [`REGISTERED_GROUPS_KEPT`] groups, the least recently used one without members is
    /// forgotten (it is no longer listed; its offsets stay in Kafka).
    pub fn declare(&self, group: &str, topics: &[&str]) {
        let mut groups = self.lock();
        let touched = next_touch(&groups);
        let entry = groups.entry(group.to_owned()).or_default();
        entry.topics = topics.iter().map(|t| (*t).to_owned()).collect();
        entry.touched = touched;
        forget_idle_groups(&mut groups, REGISTERED_GROUPS_KEPT);
    }

    pub fn set_assignment(&self, group: &str, member: &str, partitions: Vec<(String, i32)>) {
        let mut groups = self.lock();
        let touched = next_touch(&groups);
        let entry = groups.entry(group.to_owned()).or_default();
        entry.members.insert(member.to_owned(), partitions);
        entry.touched = touched;
        forget_idle_groups(&mut groups, REGISTERED_GROUPS_KEPT);
    }

    /// How many groups are listed.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The partitions `member` of `group` holds, as its rebalance callbacks reported them.
    pub fn partitions_of(&self, group: &str, member: &str) -> Vec<i32> {
        self.lock()
            .get(group)
            .and_then(|g| g.members.get(member))
            .map(|labels| labels.iter().map(|(_, partition)| *partition).collect())
            .unwrap_or_default()
    }

    pub fn remove_member(&self, group: &str, member: &str) {
        if let Some(entry) = self.lock().get_mut(group) {
            entry.members.remove(member);
        }
    }

    fn snapshot(&self) -> BTreeMap<String, RegisteredGroup> {
        self.lock().clone()
    }
}

fn next_touch(groups: &BTreeMap<String, RegisteredGroup>) -> u64 {
    groups
        .values()
        .map(|g| g.touched)
        .max()
        .map_or(0, |t| t + 1)
}

/// Forgets the least recently touched groups without members until at most `keep` are left.
fn forget_idle_groups(groups: &mut BTreeMap<String, RegisteredGroup>, keep: usize) {
    while groups.len() > keep {
        let oldest_idle = groups
            .iter()
            .filter(|(_, g)| g.members.is_empty())
            .min_by_key(|(_, g)| g.touched)
            .map(|(name, _)| name.clone());
        match oldest_idle {
            Some(name) => groups.remove(&name),
            None => return,
        };
    }
}

/// A consumer context that reports its member's assignment to the [`GroupRegistry`]: a group
/// with members is never forgotten by it. (What cell 2 shows of members is the broker's.)
pub struct RegisteringContext {
    pub registry: Arc<GroupRegistry>,
    pub group: String,
    pub member: String,
}

impl rdkafka::ClientContext for RegisteringContext {}

impl rdkafka::consumer::ConsumerContext for RegisteringContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &rdkafka::consumer::Rebalance<'_>) {
        match rebalance {
            rdkafka::consumer::Rebalance::Assign(tpl) => {
                let assigned = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect();
                self.registry
                    .set_assignment(&self.group, &self.member, assigned);
            }
            rdkafka::consumer::Rebalance::Revoke(_) => {
                self.registry
                    .set_assignment(&self.group, &self.member, Vec::new());
            }
            rdkafka::consumer::Rebalance::Error(error) => {
                tracing::warn!(group = %self.group, %error, "rebalance error");
            }
        }
    }
}

/// Reading consumers kept between requests, so a browse or a scan does not build a new
/// librdkafka client (its threads, connection and buffers) every time. Each request takes one
/// (or makes one when none is idle: how many run at once is bounded by the API's semaphores,
/// see [`crate::bounds`]) and gives it back unassigned; at most `keep` idle ones are kept.
///
/// Nothing of one request reaches the next: a reader never joins its group nor commits, every
/// request assigns its own partitions at explicit offsets (`assign` replaces the assignment),
/// and a returned reader is unassigned and its queue drained. A reader whose request failed is
/// closed rather than reused.
///
/// Use only on blocking threads: closing a librdkafka consumer blocks.
struct ReaderPool {
    idle: Mutex<Vec<BaseConsumer>>,
    keep: usize,
    make: fn(&KafkaSettings) -> Result<BaseConsumer, KafkaError>,
    created: AtomicU64,
}

impl ReaderPool {
    fn new(keep: usize, make: fn(&KafkaSettings) -> Result<BaseConsumer, KafkaError>) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            keep,
            make,
            created: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<BaseConsumer>> {
        self.idle.lock_or_recover()
    }

    /// Runs `read` with a pooled reader.
    fn with<T>(
        &self,
        settings: &KafkaSettings,
        read: impl FnOnce(&BaseConsumer) -> Result<T, InspectError>,
    ) -> Result<T, InspectError> {
        let pooled = self.lock().pop();
        let reader = match pooled {
            Some(reader) => reader,
            None => {
                self.created.fetch_add(1, Ordering::Relaxed);
                (self.make)(settings)?
            }
        };
        let result = read(&reader);
        if result.is_ok() {
            self.give_back(reader);
        }
        result
    }

    fn give_back(&self, reader: BaseConsumer) {
        // Stop fetching (an idle reader must not keep reading its last partition into memory)
        // and drop whatever the last request left queued.
        if reader.unassign().is_err() {
            return;
        }
        for _ in 0..DRAIN_LIMIT {
            if reader.poll(Duration::ZERO).is_none() {
                break;
            }
        }
        let extra = {
            let mut idle = self.lock();
            if idle.len() < self.keep {
                idle.push(reader);
                None
            } else {
                Some(reader)
            }
        };
        // Closed here, outside the lock, on the caller's blocking thread.
        drop(extra);
    }

    fn idle(&self) -> usize {
        self.lock().len()
    }
}

/// Answers inspection queries; cheap to clone.
#[derive(Clone)]
pub struct Inspector {
    settings: KafkaSettings,
    registry: Arc<GroupRegistry>,
    metadata: Arc<BaseConsumer>,
    /// One idle consumer per group, used only for OffsetFetch (committed offsets); the least
    /// recently used beyond [`OFFSET_READERS_KEPT`] are closed.
    offset_readers: Arc<Mutex<LruCache<String, Arc<BaseConsumer>>>>,
    /// Readers for the message browser and "the next record".
    browsers: Arc<ReaderPool>,
    /// Readers for bounded scans (tracing a record).
    scanners: Arc<ReaderPool>,
    /// The lag sampler's reader of next-record timestamps (one at a time: the sampler).
    lag_readers: Arc<ReaderPool>,
    /// The states each group went through.
    states: Arc<StateLog>,
}

/// How many librdkafka clients the inspector holds or has made (for tests and benchmarks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderCounts {
    pub offset_readers: usize,
    pub idle_browsers: usize,
    pub browsers_created: u64,
    pub idle_scanners: usize,
    pub scanners_created: u64,
}

impl Inspector {
    pub fn new(
        settings: KafkaSettings,
        registry: Arc<GroupRegistry>,
    ) -> Result<Self, InspectError> {
        let metadata = idle_consumer(&settings, "pipebook-inspector")?;
        Ok(Self {
            settings,
            registry,
            metadata: Arc::new(metadata),
            offset_readers: Arc::new(Mutex::new(LruCache::new(
                NonZeroUsize::new(OFFSET_READERS_KEPT).unwrap_or(NonZeroUsize::MIN),
            ))),
            browsers: Arc::new(ReaderPool::new(MAX_BROWSES, browse_consumer)),
            scanners: Arc::new(ReaderPool::new(MAX_TRACES, scan_consumer)),
            lag_readers: Arc::new(ReaderPool::new(1, lag_consumer)),
            states: Arc::default(),
        })
    }

    pub fn reader_counts(&self) -> ReaderCounts {
        ReaderCounts {
            offset_readers: self.lock_offset_readers().len(),
            idle_browsers: self.browsers.idle(),
            browsers_created: self.browsers.created.load(Ordering::Relaxed),
            idle_scanners: self.scanners.idle(),
            scanners_created: self.scanners.created.load(Ordering::Relaxed),
        }
    }

    fn lock_offset_readers(&self) -> MutexGuard<'_, LruCache<String, Arc<BaseConsumer>>> {
        self.offset_readers.lock_or_recover()
    }

    pub fn registry(&self) -> &Arc<GroupRegistry> {
        &self.registry
    }

    /// Runs `read` with the lag sampler's pooled reader (see [`ReaderPool`] for its contract:
    /// assign explicit offsets, never join the group nor commit). Blocking threads only.
    pub(crate) fn with_lag_reader<T>(
        &self,
        read: impl FnOnce(&BaseConsumer) -> Result<T, InspectError>,
    ) -> Result<T, InspectError> {
        self.lag_readers.with(&self.settings, read)
    }

    /// Watches the groups' states closely (see [`super::group_states`]) for [`WATCH_FOR`] after
    /// each wake-up of `wake` (a change that makes a group rebalance; one during a watch extends
    /// it), until `cancel`. The engine runs one, woken by its own stage and worker changes and by
    /// members joining or leaving on `pipebook.workers`; the HTTP handlers only read.
    pub async fn watch_group_states(self, wake: Arc<Notify>, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = wake.notified() => {}
            }
            let mut until = tokio::time::Instant::now() + WATCH_FOR;
            while tokio::time::Instant::now() < until {
                let reader = self.clone();
                if let Ok(groups) = blocking(move || reader.broker_groups(None)).await {
                    let at = now_ms();
                    for (name, group) in groups {
                        self.states.record(&name, &group.state, at);
                    }
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = wake.notified() => until = tokio::time::Instant::now() + WATCH_FOR,
                    _ = tokio::time::sleep(WATCH_STEP) => {}
                }
            }
        }
    }

    /// The states `group` went through, as recorded so far (oldest first); reads only.
    pub fn state_history(&self, group: &str) -> Vec<app::api::GroupStateChange> {
        self.states.history(group)
    }

    /// Topics with per-partition watermarks, internal topics left out, sorted by name.
    pub async fn topics(&self) -> Result<Vec<TopicInfo>, InspectError> {
        let this = self.clone();
        blocking(move || this.topics_blocking()).await
    }

    fn topics_blocking(&self) -> Result<Vec<TopicInfo>, InspectError> {
        let metadata = self.metadata.fetch_metadata(None, REQUEST_TIMEOUT)?;
        let mut all = TopicPartitionList::new();
        for topic in metadata.topics() {
            if topic.name().starts_with("__") {
                continue;
            }
            for partition in topic.partitions() {
                all.add_partition(topic.name(), partition.id());
            }
        }
        let watermarks = watermarks(&self.metadata, &all)?;
        let mut topics: Vec<TopicInfo> = Vec::new();
        for ((name, id), (low, high)) in watermarks {
            let partition = PartitionInfo {
                id,
                low,
                high,
                rate: 0.0,
            };
            match topics.last_mut() {
                Some(topic) if topic.name == name => topic.partitions.push(partition),
                _ => topics.push(TopicInfo {
                    name,
                    partitions: vec![partition],
                }),
            }
        }
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// Pipebook's groups (and, on external Kafka, every group the broker lists) with committed
    /// offsets and lag per partition.
    pub async fn groups(&self, topics: &[TopicInfo]) -> Result<Vec<GroupInfo>, InspectError> {
        let this = self.clone();
        let topics = topics.to_vec();
        blocking(move || this.groups_blocking(&topics)).await
    }

    fn groups_blocking(&self, topics: &[TopicInfo]) -> Result<Vec<GroupInfo>, InspectError> {
        let registered = self.registry.snapshot();
        let mut described = self.broker_groups(None)?;
        // ListGroups leaves out groups that only have committed offsets (and groups that do not
        // exist yet): ask for the declared ones by name.
        let unlisted: Vec<&String> = registered
            .keys()
            .filter(|name| !described.contains_key(*name))
            .collect();
        for found in in_parallel(&unlisted, |name| self.broker_groups(Some(name))) {
            described.extend(found?);
        }
        let mut names: Vec<&String> = registered.keys().chain(described.keys()).collect();
        names.sort();
        names.dedup();
        let partitions = in_parallel(&names, |name| {
            let group_topics = self.group_topics(name, &registered, &described, topics);
            self.group_partitions(name, &group_topics, topics)
        });
        let mut groups = Vec::new();
        for (name, partitions) in names.into_iter().zip(partitions) {
            // A group the broker has no record of is what Kafka calls Dead.
            let (state, members) = described
                .get(name)
                .map(|g| (g.state.clone(), g.members.clone()))
                .unwrap_or_else(|| ("Dead".to_owned(), Vec::new()));
            self.states.record(name, &state, now_ms());
            groups.push(GroupInfo {
                group: name.clone(),
                state,
                members,
                partitions: partitions?,
                lag: Default::default(),
                state_history: self.states.history(name),
            });
        }
        Ok(groups)
    }

    /// The topics a group's lag is counted on: what the stage declared, else what its members
    /// are assigned.
    fn group_topics(
        &self,
        name: &str,
        registered: &BTreeMap<String, RegisteredGroup>,
        described: &BTreeMap<String, DescribedGroup>,
        topics: &[TopicInfo],
    ) -> Vec<String> {
        if let Some(group) = registered.get(name) {
            return group.topics.clone();
        }
        let mut assigned: Vec<String> = topics
            .iter()
            .filter(|t| {
                described.get(name).is_some_and(|g| {
                    g.members.iter().any(|m| {
                        m.assignment.iter().any(|label| {
                            label
                                .rsplit_once('-')
                                .is_some_and(|(topic, _)| topic == t.name)
                        })
                    })
                })
            })
            .map(|t| t.name.clone())
            .collect();
        assigned.dedup();
        assigned
    }

    /// Consumer groups as the broker describes them: every group it lists (`None`), or one
    /// group by name.
    fn broker_groups(
        &self,
        group: Option<&str>,
    ) -> Result<BTreeMap<String, DescribedGroup>, InspectError> {
        let list = self.metadata.fetch_group_list(group, REQUEST_TIMEOUT)?;
        let mut described = BTreeMap::new();
        for info in list.groups() {
            if info.protocol_type() != "consumer" && !info.protocol_type().is_empty() {
                continue;
            }
            // Kafka answers "Dead" for a group it has no record of; tansu answers an error,
            // which librdkafka passes on as the state "Unknown". Neither is a group to show.
            if matches!(info.state(), "Dead" | "Unknown" | "") && info.members().is_empty() {
                continue;
            }
            let members = info
                .members()
                .iter()
                .map(|member| GroupMember {
                    member: member.id().to_owned(),
                    client_id: member.client_id().to_owned(),
                    host: member.client_host().to_owned(),
                    assignment: member
                        .assignment()
                        .map(decode_assignment)
                        .unwrap_or_default()
                        .iter()
                        .map(|(t, p)| format!("{t}-{p}"))
                        .collect(),
                })
                .collect();
            described.insert(
                info.name().to_owned(),
                DescribedGroup {
                    state: info.state().to_owned(),
                    members,
                },
            );
        }
        Ok(described)
    }

    fn group_partitions(
        &self,
        group: &str,
        group_topics: &[String],
        topics: &[TopicInfo],
    ) -> Result<Vec<GroupPartition>, InspectError> {
        let mut tpl = TopicPartitionList::new();
        for topic in topics.iter().filter(|t| group_topics.contains(&t.name)) {
            for partition in &topic.partitions {
                tpl.add_partition(&topic.name, partition.id);
            }
        }
        if tpl.count() == 0 {
            return Ok(Vec::new());
        }
        let reader = self.offset_reader(group)?;
        let committed = reader.committed_offsets(tpl, REQUEST_TIMEOUT)?;
        let mut partitions = Vec::new();
        for element in committed.elements() {
            let Some(info) = topics
                .iter()
                .find(|t| t.name == element.topic())
                .and_then(|t| t.partitions.iter().find(|p| p.id == element.partition()))
            else {
                continue;
            };
            let committed = match element.offset() {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            };
            // With nothing committed the group starts from the earliest record.
            let lag = info.high - committed.unwrap_or(info.low);
            partitions.push(GroupPartition {
                topic: element.topic().to_owned(),
                partition: element.partition(),
                committed,
                high: info.high,
                lag: lag.max(0),
                lag_seconds: None,
            });
        }
        Ok(partitions)
    }

    /// The cached OffsetFetch consumer of `group` (made when missing). Runs on a blocking
    /// thread: a consumer evicted from the cache is closed here.
    fn offset_reader(&self, group: &str) -> Result<Arc<BaseConsumer>, InspectError> {
        if let Some(reader) = self.lock_offset_readers().get(group) {
            return Ok(reader.clone());
        }
        // Made outside the lock: creating a client takes a while, and other groups' reads
        // should not wait for it.
        let reader = Arc::new(idle_consumer(&self.settings, group)?);
        let evicted = self
            .lock_offset_readers()
            .push(group.to_owned(), reader.clone());
        drop(evicted);
        Ok(reader)
    }

    /// Reads up to `limit` records of one partition starting at `offset`.
    pub async fn messages(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        limit: usize,
    ) -> Result<Vec<Message>, InspectError> {
        let this = self.clone();
        let topic = topic.to_owned();
        blocking(move || this.messages_blocking(&topic, partition, offset, limit)).await
    }

    fn messages_blocking(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        limit: usize,
    ) -> Result<Vec<Message>, InspectError> {
        let limit = limit.min(MAX_BROWSE);
        if !self.partitions_of(topic)?.contains(&partition) {
            return Err(InspectError::UnknownPartition {
                topic: topic.to_owned(),
                partition,
            });
        }
        let (low, high) = self
            .metadata
            .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)?;
        let start = offset.clamp(low, high);
        let wanted = usize::try_from(high - start).unwrap_or(0).min(limit);
        if wanted == 0 {
            return Ok(Vec::new());
        }
        self.browsers.with(&self.settings, |browser| {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, partition, Offset::Offset(start))?;
            browser.assign(&tpl)?;
            let mut out = Vec::with_capacity(wanted);
            let deadline = std::time::Instant::now() + REQUEST_TIMEOUT;
            while out.len() < wanted && std::time::Instant::now() < deadline {
                match browser.poll(Duration::from_millis(200)) {
                    // Only this request's partition, from its start on: a pooled reader must
                    // never hand over anything a previous request asked for.
                    Some(Ok(message))
                        if message.topic() == topic
                            && message.partition() == partition
                            && message.offset() >= start =>
                    {
                        out.push(to_message(&message));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(KafkaError::PartitionEOF(p))) if p == partition => break,
                    Some(Err(KafkaError::PartitionEOF(_))) => {}
                    Some(Err(error)) if is_connection_event(&error) => {}
                    Some(Err(error)) => return Err(error.into()),
                    None => {}
                }
            }
            Ok(out)
        })
    }

    /// The partition ids of `topic`, sorted; an unknown topic is an error.
    fn partitions_of(&self, topic: &str) -> Result<Vec<i32>, InspectError> {
        // librdkafka refuses a name with a NUL as a client error; no broker has such a topic.
        if !super::is_topic_name(topic) {
            return Err(InspectError::UnknownTopic(topic.to_owned()));
        }
        let metadata = self.metadata.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
        let Some(meta) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err(InspectError::UnknownTopic(topic.to_owned()));
        };
        if meta.error().is_some() || meta.partitions().is_empty() {
            return Err(InspectError::UnknownTopic(topic.to_owned()));
        }
        let mut ids: Vec<i32> = meta.partitions().iter().map(|p| p.id()).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// The next offset `group` will read in one partition; `None` when it committed nothing.
    pub async fn committed(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, InspectError> {
        let this = self.clone();
        let (group, topic) = (group.to_owned(), topic.to_owned());
        blocking(move || {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&topic, partition);
            let committed = this
                .offset_reader(&group)?
                .committed_offsets(tpl, REQUEST_TIMEOUT)?;
            Ok(committed.elements().first().and_then(|e| match e.offset() {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            }))
        })
        .await
    }

    /// Reads records of `topic` looking for those whose payload `matches`, within the bounds
    /// of `request`: a topic can hold millions of records, so a search reads only the newest
    /// (or those since a time), at most `budget` in all, and says whether it read to the end.
    pub async fn scan<F>(
        &self,
        request: ScanRequest,
        matches: F,
    ) -> Result<ScanOutcome, InspectError>
    where
        F: Fn(&[u8]) -> bool + Send + 'static,
    {
        let this = self.clone();
        blocking(move || this.scan_blocking(&request, &matches)).await
    }

    fn scan_blocking(
        &self,
        request: &ScanRequest,
        matches: &dyn Fn(&[u8]) -> bool,
    ) -> Result<ScanOutcome, InspectError> {
        self.scanners.with(&self.settings, |reader| {
            self.scan_with(reader, request, matches)
        })
    }

    fn scan_with(
        &self,
        reader: &BaseConsumer,
        request: &ScanRequest,
        matches: &dyn Fn(&[u8]) -> bool,
    ) -> Result<ScanOutcome, InspectError> {
        let started = Instant::now();
        let topic = request.topic.as_str();
        let partitions: Vec<i32> = self
            .partitions_of(topic)?
            .into_iter()
            .filter(|p| request.partitions.as_ref().is_none_or(|w| w.contains(p)))
            .collect();
        let mut outcome = ScanOutcome {
            from_start: true,
            complete: true,
            ..ScanOutcome::default()
        };
        // The newest records, split evenly over the partitions read.
        let newest = request.newest / i64::try_from(partitions.len().max(1)).unwrap_or(1);
        // partition → (oldest offset the scan may read, end of what is left to read)
        let mut left = BTreeMap::new();
        for partition in partitions {
            let (low, high) = self
                .metadata
                .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)?;
            let oldest =
                self.scan_start(reader, request, partition, (high - newest).max(low), high);
            outcome.from_start &= oldest <= low;
            left.insert(partition, (oldest, high));
        }
        // Newest first, a step at a time, so the newest records are read even when time runs
        // out on a big topic; from a time on, in one forward pass (the earliest copy first).
        let mut step = match request.from {
            ScanFrom::Newest => SCAN_FIRST_STEP,
            ScanFrom::Time(_) => i64::MAX,
        };
        let deadline = started + SCAN_TIMEOUT;
        loop {
            let round: BTreeMap<i32, (i64, i64)> = left
                .iter()
                .filter(|(_, (oldest, end))| end > oldest)
                .map(|(p, (oldest, end))| (*p, (end.saturating_sub(step).max(*oldest), *end)))
                .collect();
            if round.is_empty() {
                break;
            }
            let found_before = outcome.matches.len();
            let finished = read_round(reader, request, &round, matches, deadline, &mut outcome)?;
            for (partition, (start, _)) in &round {
                if let Some(span) = left.get_mut(partition) {
                    span.1 = *start;
                }
            }
            if !finished {
                outcome.complete = false;
                break;
            }
            step = step.saturating_mul(2).min(SCAN_LAST_STEP.max(step));
            // Newest first: what an older round would find is an older copy.
            if request.from == ScanFrom::Newest && outcome.matches.len() > found_before {
                outcome.complete = left.values().all(|(oldest, end)| end <= oldest);
                break;
            }
        }
        outcome.took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(outcome)
    }

    /// Where a scan starts reading one partition: at `newest` (the oldest offset it may read),
    /// or later when it reads from a time on.
    fn scan_start(
        &self,
        reader: &BaseConsumer,
        request: &ScanRequest,
        partition: i32,
        newest: i64,
        high: i64,
    ) -> i64 {
        let ScanFrom::Time(at_ms) = request.from else {
            return newest;
        };
        // ListOffsets by timestamp: the first record stamped at or after `at_ms`.
        let mut tpl = TopicPartitionList::new();
        if tpl
            .add_partition_offset(&request.topic, partition, Offset::Offset(at_ms))
            .is_err()
        {
            return newest;
        }
        match reader.offsets_for_times(tpl, REQUEST_TIMEOUT) {
            Ok(found) => match found.elements().first().map(|e| e.offset()) {
                Some(Offset::Offset(offset)) => offset.clamp(newest, high),
                // No record that new yet.
                Some(Offset::End) => high,
                _ => newest,
            },
            Err(error) => {
                tracing::debug!(%error, "offsets by time failed; scanning the newest records");
                newest
            }
        }
    }

    /// How many partitions `topic` has.
    pub async fn partition_count(&self, topic: &str) -> Result<i32, InspectError> {
        let this = self.clone();
        let topic = topic.to_owned();
        blocking(move || {
            let count = this.partitions_of(&topic)?.len();
            Ok(i32::try_from(count).unwrap_or(i32::MAX))
        })
        .await
    }

    /// Waits up to `wait` for the next record appended to `topic` (any partition) after now.
    pub async fn next_record(
        &self,
        topic: &str,
        wait: Duration,
    ) -> Result<Option<Message>, InspectError> {
        let this = self.clone();
        let topic = topic.to_owned();
        blocking(move || {
            let mut tpl = TopicPartitionList::new();
            for partition in this.partitions_of(&topic)? {
                let (_, high) =
                    this.metadata
                        .fetch_watermarks(&topic, partition, REQUEST_TIMEOUT)?;
                tpl.add_partition_offset(&topic, partition, Offset::Offset(high))?;
            }
            this.browsers.with(&this.settings, |reader| {
                reader.assign(&tpl)?;
                let deadline = Instant::now() + wait;
                while Instant::now() < deadline {
                    match reader.poll(Duration::from_millis(100)) {
                        Some(Ok(message)) if message.topic() == topic => {
                            return Ok(Some(to_message(&message)));
                        }
                        Some(Ok(_)) | Some(Err(KafkaError::PartitionEOF(_))) | None => {}
                        Some(Err(error)) if is_connection_event(&error) => {}
                        Some(Err(error)) => return Err(error.into()),
                    }
                }
                Ok(None)
            })
        })
        .await
    }
}

/// Reads one round of a scan: each partition of `round` from its start to its end. False when
/// the scan's budget, time or matches ran out first.
fn read_round(
    reader: &BaseConsumer,
    request: &ScanRequest,
    round: &BTreeMap<i32, (i64, i64)>,
    matches: &dyn Fn(&[u8]) -> bool,
    deadline: Instant,
    outcome: &mut ScanOutcome,
) -> Result<bool, InspectError> {
    let mut tpl = TopicPartitionList::new();
    for (partition, (start, _)) in round {
        tpl.add_partition_offset(&request.topic, *partition, Offset::Offset(*start))?;
    }
    reader.assign(&tpl)?;
    let mut open: BTreeMap<i32, i64> = round.iter().map(|(p, (_, end))| (*p, *end)).collect();
    while !open.is_empty() {
        if outcome.scanned >= request.budget
            || outcome.matches.len() >= request.max_matches
            || Instant::now() >= deadline
        {
            return Ok(false);
        }
        match reader.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let partition = message.partition();
                let Some(end) = open.get(&partition).copied() else {
                    continue;
                };
                if message.topic() != request.topic {
                    continue;
                }
                if message.offset() >= end {
                    // Past this round's end: the next (newer) round already read it.
                    open.remove(&partition);
                    continue;
                }
                outcome.scanned += 1;
                if request.from.admits(message.timestamp().to_millis())
                    && message.payload().is_some_and(matches)
                {
                    outcome.matches.push(to_message(&message));
                }
                if message.offset() + 1 >= end {
                    open.remove(&partition);
                }
            }
            Some(Err(error)) if is_connection_event(&error) => {}
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                open.remove(&partition);
            }
            Some(Err(error)) => return Err(error.into()),
            None => {}
        }
    }
    Ok(true)
}

/// Where a bounded scan starts in each partition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScanFrom {
    /// The newest `newest` records.
    Newest,
    /// The first record stamped at or after this time (ms since the epoch), but no further
    /// back than the newest `newest`.
    Time(i64),
}

impl ScanFrom {
    /// Whether a record stamped `timestamp` may match. From a time on, an older record never
    /// does, even when the scan had to start further back (the broker did not answer the
    /// lookup by time in time): a replayed dataset writes the same review ids again, and an
    /// earlier copy is not the one asked for.
    fn admits(self, timestamp: Option<i64>) -> bool {
        match (self, timestamp) {
            (ScanFrom::Time(at_ms), Some(stamped)) => stamped >= at_ms,
            _ => true,
        }
    }
}

/// What to scan, and how much at most.
#[derive(Debug, Clone)]
pub struct ScanRequest {
    pub topic: String,
    /// Only these partitions; all when `None`.
    pub partitions: Option<Vec<i32>>,
    pub from: ScanFrom,
    /// How far back the scan may start, in records over all partitions read (split evenly).
    pub newest: i64,
    /// Most records read in all.
    pub budget: u64,
    /// Stop after this many matches.
    pub max_matches: usize,
}

/// What a bounded scan found.
#[derive(Debug, Clone, Default)]
pub struct ScanOutcome {
    /// Matching records in the order read (by offset within a partition).
    pub matches: Vec<Message>,
    pub scanned: u64,
    /// Whether everything the request allowed was read (false: budget, time or matches ran
    /// out, or a newest-first scan stopped at its newest match).
    pub complete: bool,
    /// Whether every partition was read from its oldest record (the whole topic was searched).
    pub from_start: bool,
    pub took_ms: u64,
}

/// A record as the API shows it: text fields read leniently (invalid UTF-8 replaced).
pub(crate) fn to_message(message: &rdkafka::message::BorrowedMessage<'_>) -> Message {
    let mut headers = BTreeMap::new();
    if let Some(hs) = message.headers() {
        for header in hs.iter() {
            let value = header
                .value
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            headers.insert(header.key.to_owned(), value);
        }
    }
    Message {
        partition: message.partition(),
        offset: message.offset(),
        timestamp: message.timestamp().to_millis(),
        key: message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned()),
        value: message
            .payload()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default(),
        headers,
    }
}

/// A consumer that never subscribes (so never joins its group) and never commits: safe to use for
/// metadata, watermarks, OffsetFetch and assigned reads.
fn idle_consumer(settings: &KafkaSettings, group: &str) -> Result<BaseConsumer, KafkaError> {
    settings
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .create()
}

/// A pooled reader for the message browser and "the next record": an idle consumer whose
/// read-ahead is bounded (librdkafka's default prefetches up to 100,000 records or 64 MB per
/// partition; a browse reads at most [`MAX_BROWSE`]).
fn browse_consumer(settings: &KafkaSettings) -> Result<BaseConsumer, KafkaError> {
    settings
        .client_config()
        .set("group.id", "pipebook-browser")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("queued.min.messages", "1000")
        .set("queued.max.messages.kbytes", "4096")
        .create()
}

/// An idle consumer for bounded scans. The embedded broker answers a fetch only when its wait
/// expires, so librdkafka's default 500 ms wait would make every round of a scan take half a
/// second; 10 ms keeps a scan reading.
fn scan_consumer(settings: &KafkaSettings) -> Result<BaseConsumer, KafkaError> {
    settings
        .client_config()
        .set("group.id", "pipebook-trace")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "10")
        .create()
}

/// The lag sampler's reader: it wants one record per partition and position, every second, so
/// it fetches little at a time (64 KiB per partition, at most 1 MiB queued) and, like
/// the scanners, waits only 10 ms for a fetch (the embedded broker answers when the wait ends).
fn lag_consumer(settings: &KafkaSettings) -> Result<BaseConsumer, KafkaError> {
    settings
        .client_config()
        .set("group.id", "pipebook-lag")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "10")
        .set("fetch.message.max.bytes", "65536")
        .set("queued.min.messages", "100")
        .set("queued.max.messages.kbytes", "1024")
        .create()
}

/// A topic's name and a partition number.
type TopicPartition = (String, i32);

/// Requests to the broker one listing sends at once, each from its own thread.
const PARALLEL_REQUESTS: usize = 8;

/// `read` of every item, up to [`PARALLEL_REQUESTS`] at a time, in the items' order.
///
/// A group listing asks the broker one OffsetFetch per group; one after the other, they add up
/// to several seconds when every round trip queues behind a loaded broker's writes. librdkafka's
/// calls block, so each runs on a scoped thread of its own.
fn in_parallel<T: Sync, R: Send>(items: &[T], read: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let read = &read;
    let mut results = Vec::with_capacity(items.len());
    for chunk in items.chunks(PARALLEL_REQUESTS) {
        std::thread::scope(|scope| {
            let running: Vec<_> = chunk
                .iter()
                .map(|item| scope.spawn(move || read(item)))
                .collect();
            for thread in running {
                match thread.join() {
                    Ok(result) => results.push(result),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        });
    }
    results
}

/// Low and high watermarks of every partition in `partitions`, sorted by topic and partition.
///
/// Two ListOffsets requests per broker for the whole list (earliest, then latest), where
/// `fetch_watermarks` costs two per partition: the once-a-second sampler and `GET
/// /api/kafka/groups` read ~20 partitions, and under load every round trip queues behind the
/// broker's writes.
fn watermarks(
    reader: &BaseConsumer,
    partitions: &TopicPartitionList,
) -> Result<BTreeMap<TopicPartition, (i64, i64)>, InspectError> {
    let mut found = BTreeMap::new();
    if partitions.count() == 0 {
        return Ok(found);
    }
    let ends = |end: Offset| -> Result<BTreeMap<TopicPartition, i64>, InspectError> {
        let mut asked = TopicPartitionList::new();
        for element in partitions.elements() {
            asked.add_partition_offset(element.topic(), element.partition(), end)?;
        }
        let answered = reader.offsets_for_times(asked, REQUEST_TIMEOUT)?;
        let mut offsets = BTreeMap::new();
        for element in answered.elements() {
            element.error()?;
            let Offset::Offset(offset) = element.offset() else {
                return Err(InspectError::NoWatermark {
                    topic: element.topic().to_owned(),
                    partition: element.partition(),
                });
            };
            offsets.insert((element.topic().to_owned(), element.partition()), offset);
        }
        Ok(offsets)
    };
    let lows = ends(Offset::Beginning)?;
    for (at, high) in ends(Offset::End)? {
        let low = lows.get(&at).copied().unwrap_or(high);
        found.insert(at, (low, high));
    }
    Ok(found)
}

async fn blocking<T, F>(f: F) -> Result<T, InspectError>
where
    F: FnOnce() -> Result<T, InspectError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| InspectError::Join(e.to_string()))?
}

/// Whether a consumer error only reports the connection to the brokers: a pooled reader keeps
/// such an event queued from a broker that stopped and started again while it sat idle, and the
/// read it surfaces in can go on (every read loop is bounded by its deadline).
pub(crate) fn is_connection_event(error: &KafkaError) -> bool {
    use rdkafka::error::RDKafkaErrorCode;
    matches!(
        error,
        KafkaError::MessageConsumption(
            RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_reads_answer_in_the_items_order_and_at_most_a_chunk_at_once() {
        let running = AtomicU64::new(0);
        let most = AtomicU64::new(0);
        let items: Vec<u64> = (0..20).collect();
        let answers = in_parallel(&items, |item| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20 - item));
            running.fetch_sub(1, Ordering::SeqCst);
            item * 10
        });
        assert_eq!(answers, items.iter().map(|i| i * 10).collect::<Vec<_>>());
        assert!(most.load(Ordering::SeqCst) <= PARALLEL_REQUESTS as u64);
    }

    #[test]
    fn a_scan_from_a_time_never_matches_an_older_record() {
        let from = ScanFrom::Time(1_000);
        assert!(!from.admits(Some(999)));
        assert!(from.admits(Some(1_000)));
        assert!(from.admits(Some(1_001)));
        // No timestamp (a broker without them): the scan's start is all it has.
        assert!(from.admits(None));
        assert!(ScanFrom::Newest.admits(Some(0)));
    }

    #[test]
    fn assignments_decode_from_the_consumer_protocol() {
        let mut bytes = vec![0, 1, 0, 0, 0, 2];
        for (topic, partitions) in [("reviews", vec![0_i32, 2]), ("x", vec![7])] {
            bytes.extend((topic.len() as i16).to_be_bytes());
            bytes.extend(topic.as_bytes());
            bytes.extend((partitions.len() as i32).to_be_bytes());
            for p in partitions {
                bytes.extend(p.to_be_bytes());
            }
        }
        bytes.extend([0xff, 0xff, 0xff, 0xff]); // no user data
        assert_eq!(
            decode_assignment(&bytes),
            vec![
                ("reviews".to_owned(), 0),
                ("reviews".to_owned(), 2),
                ("x".to_owned(), 7)
            ]
        );
        // Truncated or empty bytes give what parsed, never a panic.
        assert_eq!(
            decode_assignment(&bytes[..25]),
            vec![("reviews".to_owned(), 0)]
        );
        assert!(decode_assignment(&[]).is_empty());
        assert!(decode_assignment(&[0, 1, 0x7f, 0xff, 0xff, 0xff]).is_empty());
    }

    #[test]
    fn the_registry_forgets_the_oldest_idle_groups_past_its_bound() {
        let registry = GroupRegistry::default();
        registry.declare("busy", &["reviews"]);
        registry.set_assignment("busy", "worker-1", vec![("reviews".to_owned(), 0)]);
        for i in 0..100 {
            registry.declare(&format!("g-{i}"), &["reviews"]);
        }
        assert_eq!(registry.len(), REGISTERED_GROUPS_KEPT);
        let groups = registry.snapshot();
        assert!(groups.contains_key("busy"), "a group with members stays");
        assert!(groups.contains_key("g-99"), "the newest stays");
        assert!(!groups.contains_key("g-0"), "the oldest idle one goes");
        // Declaring an old group again makes it the newest.
        registry.declare("g-70", &["reviews"]);
        registry.declare("new", &["reviews"]);
        let groups = registry.snapshot();
        assert!(groups.contains_key("g-70"));
        assert!(!groups.contains_key("g-69"));
    }
}
