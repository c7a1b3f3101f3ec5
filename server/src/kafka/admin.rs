//! Topic administration through the Kafka Admin API. tansu does not auto-create topics, so
//! Pipebook creates every topic it uses, explicitly, before any stage runs.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::KafkaSettings;

const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot create admin client: {0}")]
    Client(#[source] KafkaError),
    #[error("admin request failed: {0}")]
    Request(#[source] KafkaError),
    #[error("topic {topic}: {code}")]
    Topic {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// A topic Pipebook needs, with its partition count.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    /// `cleanup.policy=compact`: the broker keeps the newest record of each key (the
    /// heartbeats of `pipebook.workers`), not a time window.
    pub compact: bool,
}

fn admin_client(settings: &KafkaSettings) -> Result<AdminClient<DefaultClientContext>, AdminError> {
    settings
        .client_config()
        .create()
        .map_err(AdminError::Client)
}

fn options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(ADMIN_TIMEOUT))
        .operation_timeout(Some(ADMIN_TIMEOUT))
}

/// Creates the topics that do not exist yet; existing topics are left as they are.
pub async fn ensure_topics(
    settings: &KafkaSettings,
    topics: &[TopicSpec],
) -> Result<(), AdminError> {
    let admin = admin_client(settings)?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            let topic = NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(1));
            if t.compact {
                topic.set("cleanup.policy", "compact")
            } else {
                topic
            }
        })
        .collect();
    let results = admin
        .create_topics(new_topics.iter(), &options())
        .await
        .map_err(AdminError::Request)?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(%topic, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(AdminError::Topic { topic, code }),
        }
    }
    Ok(())
}

/// Deletes topics (used by tests and by "reset the lesson"); missing topics are not an error.
pub async fn delete_topics(settings: &KafkaSettings, names: &[&str]) -> Result<(), AdminError> {
    let admin = admin_client(settings)?;
    let results = admin
        .delete_topics(names, &options())
        .await
        .map_err(AdminError::Request)?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((topic, code)) => return Err(AdminError::Topic { topic, code }),
        }
    }
    Ok(())
}
