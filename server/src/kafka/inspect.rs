//! Read-only views of the cluster, all answered by the broker: topics with low/high watermarks,
//! consumer groups with committed offsets and lag, and a message browser.
//!
//! Group *members* are the one thing not asked of the broker on the embedded path: tansu 0.6's
//! DescribeGroups breaks the connection, so the stages report their members and assignments from
//! their own rebalance callbacks into a [`GroupRegistry`]. On external Kafka the broker's
//! DescribeGroups answer is used.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::api::{GroupInfo, GroupMember, GroupPartition, Message, PartitionInfo, TopicInfo};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message as _};
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaSettings;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Most records the message browser returns at once.
pub const MAX_BROWSE: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("topic {topic:?} has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("inspection task failed: {0}")]
    Join(String),
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
}

impl GroupRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, RegisteredGroup>> {
        match self.groups.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Declares a group and the topics it consumes, so it is listed even with no member.
    pub fn declare(&self, group: &str, topics: &[&str]) {
        let mut groups = self.lock();
        let entry = groups.entry(group.to_owned()).or_default();
        entry.topics = topics.iter().map(|t| (*t).to_owned()).collect();
    }

    pub fn set_assignment(&self, group: &str, member: &str, partitions: Vec<(String, i32)>) {
        let mut groups = self.lock();
        let entry = groups.entry(group.to_owned()).or_default();
        entry.members.insert(member.to_owned(), partitions);
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

/// A consumer context that reports its member's assignment to the [`GroupRegistry`], so the
/// groups table shows who owns which partition (the embedded broker's DescribeGroups cannot).
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

/// Answers inspection queries; cheap to clone.
#[derive(Clone)]
pub struct Inspector {
    settings: KafkaSettings,
    embedded: bool,
    registry: Arc<GroupRegistry>,
    metadata: Arc<BaseConsumer>,
    /// One idle consumer per group, used only for OffsetFetch (committed offsets).
    offset_readers: Arc<Mutex<HashMap<String, Arc<BaseConsumer>>>>,
}

impl Inspector {
    pub fn new(
        settings: KafkaSettings,
        embedded: bool,
        registry: Arc<GroupRegistry>,
    ) -> Result<Self, InspectError> {
        let metadata = idle_consumer(&settings, "pipebook-inspector")?;
        Ok(Self {
            settings,
            embedded,
            registry,
            metadata: Arc::new(metadata),
            offset_readers: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    pub fn registry(&self) -> &Arc<GroupRegistry> {
        &self.registry
    }

    /// Topics with per-partition watermarks, internal topics left out, sorted by name.
    pub async fn topics(&self) -> Result<Vec<TopicInfo>, InspectError> {
        let this = self.clone();
        blocking(move || this.topics_blocking()).await
    }

    fn topics_blocking(&self) -> Result<Vec<TopicInfo>, InspectError> {
        let metadata = self.metadata.fetch_metadata(None, REQUEST_TIMEOUT)?;
        let mut topics = Vec::new();
        for topic in metadata.topics() {
            if topic.name().starts_with("__") {
                continue;
            }
            let mut partitions = Vec::new();
            for partition in topic.partitions() {
                let (low, high) = self.metadata.fetch_watermarks(
                    topic.name(),
                    partition.id(),
                    REQUEST_TIMEOUT,
                )?;
                partitions.push(PartitionInfo {
                    id: partition.id(),
                    low,
                    high,
                    rate: 0.0,
                });
            }
            partitions.sort_by_key(|p| p.id);
            topics.push(TopicInfo {
                name: topic.name().to_owned(),
                partitions,
            });
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
        let mut registered = self.registry.snapshot();
        let mut states = BTreeMap::new();
        if !self.embedded {
            self.add_broker_groups(&mut registered, &mut states)?;
        }
        let mut groups = Vec::new();
        for (name, group) in registered {
            let partitions = self.group_partitions(&name, &group.topics, topics)?;
            let state = states.remove(&name).unwrap_or_else(|| {
                if group.members.is_empty() {
                    "Empty"
                } else {
                    "Stable"
                }
                .to_owned()
            });
            let members = group
                .members
                .into_iter()
                .map(|(member, assigned)| GroupMember {
                    member,
                    assignment: assigned.iter().map(|(t, p)| format!("{t}-{p}")).collect(),
                })
                .collect();
            groups.push(GroupInfo {
                group: name,
                state,
                members,
                partitions,
            });
        }
        Ok(groups)
    }

    /// External Kafka answers ListGroups + DescribeGroups correctly; add what it knows.
    fn add_broker_groups(
        &self,
        registered: &mut BTreeMap<String, RegisteredGroup>,
        states: &mut BTreeMap<String, String>,
    ) -> Result<(), InspectError> {
        let list = self.metadata.fetch_group_list(None, REQUEST_TIMEOUT)?;
        for group in list.groups() {
            if group.protocol_type() != "consumer" && !group.protocol_type().is_empty() {
                continue;
            }
            states.insert(group.name().to_owned(), group.state().to_owned());
            let entry = registered.entry(group.name().to_owned()).or_default();
            for member in group.members() {
                entry
                    .members
                    .entry(member.client_id().to_owned())
                    .or_default();
            }
        }
        Ok(())
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
            });
        }
        Ok(partitions)
    }

    fn offset_reader(&self, group: &str) -> Result<Arc<BaseConsumer>, InspectError> {
        let mut readers = match self.offset_readers.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(reader) = readers.get(group) {
            return Ok(reader.clone());
        }
        let reader = Arc::new(idle_consumer(&self.settings, group)?);
        readers.insert(group.to_owned(), reader.clone());
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
        let metadata = self.metadata.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
        let Some(meta) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err(InspectError::UnknownTopic(topic.to_owned()));
        };
        if meta.error().is_some() || meta.partitions().is_empty() {
            return Err(InspectError::UnknownTopic(topic.to_owned()));
        }
        if !meta.partitions().iter().any(|p| p.id() == partition) {
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
        let browser = idle_consumer(&self.settings, "pipebook-browser")?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(start))?;
        browser.assign(&tpl)?;
        let mut out = Vec::with_capacity(wanted);
        let deadline = std::time::Instant::now() + REQUEST_TIMEOUT;
        while out.len() < wanted && std::time::Instant::now() < deadline {
            match browser.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => out.push(to_message(&message)),
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(error)) => return Err(error.into()),
                None => {}
            }
        }
        Ok(out)
    }
}

fn to_message(message: &rdkafka::message::BorrowedMessage<'_>) -> Message {
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

async fn blocking<T, F>(f: F) -> Result<T, InspectError>
where
    F: FnOnce() -> Result<T, InspectError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| InspectError::Join(e.to_string()))?
}
