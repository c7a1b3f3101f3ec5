//! Topic administration through the Kafka Admin API. tansu does not auto-create topics, so
//! Pipebook creates every topic it uses, explicitly, before any stage runs.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
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
    /// heartbeats of `pipebook.workers`, the aggregate changelog), not a time window.
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

/// The replication factor Pipebook gives its topics on a cluster of `brokers` brokers: three
/// copies where there are three brokers to hold them (hosted clusters refuse anything else), as
/// many as there are brokers below that (one on the embedded broker).
pub fn replication_for(brokers: usize) -> i32 {
    brokers.clamp(1, 3) as i32
}

/// How many brokers the cluster has, from a metadata request about one topic (`probe`): a
/// listing of all topics costs the broker a query per topic, and one topic's answer names every
/// broker. The request blocks inside librdkafka, so it runs (and its client is dropped) on a
/// blocking thread, never on a runtime worker.
async fn broker_count(settings: &KafkaSettings, probe: &str) -> Result<usize, AdminError> {
    let config = settings.client_config();
    let probe = probe.to_owned();
    tokio::task::spawn_blocking(move || {
        let client: BaseConsumer = config.create().map_err(AdminError::Client)?;
        let metadata = client
            .fetch_metadata(Some(&probe), ADMIN_TIMEOUT)
            .map_err(AdminError::Request)?;
        Ok(metadata.brokers().len())
    })
    .await
    .unwrap_or(Ok(1))
}

/// Creates the topics that do not exist yet; existing topics are left as they are.
pub async fn ensure_topics(
    settings: &KafkaSettings,
    topics: &[TopicSpec],
) -> Result<(), AdminError> {
    let Some(probe) = topics.first() else {
        return Ok(());
    };
    let replication = replication_for(broker_count(settings, &probe.name).await?);
    let admin = admin_client(settings)?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            let topic = NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(replication));
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

#[cfg(test)]
mod tests {
    use super::replication_for;

    #[test]
    fn topics_get_three_copies_only_where_three_brokers_can_hold_them() {
        assert_eq!(replication_for(0), 1);
        assert_eq!(replication_for(1), 1);
        assert_eq!(replication_for(2), 2);
        assert_eq!(replication_for(3), 3);
        assert_eq!(replication_for(12), 3);
    }
}
