//! Everything that talks to Kafka: client settings, the embedded broker, topic administration and
//! the read-only inspection behind cell 2 (watermarks, groups, the message browser).

pub mod admin;
pub mod batch;
pub mod broker;
pub mod generation;
pub mod group_states;
pub mod inspect;
pub mod lag;
pub mod reset;
pub mod schema;
pub mod tail;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use std::path::PathBuf;

use crate::secret::Secret;

/// How to reach the cluster, embedded or external. `Debug` never shows the SASL password.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSettings {
    pub bootstrap_servers: String,
    pub security: KafkaSecurity,
    /// Partitions of the topics Pipebook creates.
    pub topic_partitions: i32,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct KafkaSecurity {
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub protocol: String,
    pub sasl: Option<SaslCredentials>,
    pub ssl_ca_location: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SaslCredentials {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    pub username: String,
    pub password: Secret,
}

/// Longest consumer group name a stage accepts (Kafka's own limit for topic names; a group
/// name has none of its own, but every listed group costs a client and a row in cell 2).
pub const MAX_GROUP_NAME: usize = 249;

/// A consumer group name a stage may use: not blank, at most [`MAX_GROUP_NAME`] characters, no
/// control characters (librdkafka cannot take a NUL). The message is for after "group: ".
pub fn check_group_name(group: &str) -> Result<(), String> {
    if group.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    let length = group.chars().count();
    if length > MAX_GROUP_NAME {
        return Err(format!("at most {MAX_GROUP_NAME} characters, got {length}"));
    }
    if group.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(())
}

/// Whether `name` can be a Kafka topic: 1..=249 of `[A-Za-z0-9._-]`. Anything else is not a
/// topic the broker can have, and is answered "unknown topic" without asking it.
pub fn is_topic_name(name: &str) -> bool {
    (1..=249).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl KafkaSettings {
    pub fn plaintext(bootstrap_servers: impl Into<String>, topic_partitions: i32) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            security: KafkaSecurity {
                protocol: "PLAINTEXT".to_owned(),
                ..KafkaSecurity::default()
            },
            topic_partitions,
        }
    }

    /// A client configuration with the connection and security settings filled in; callers add
    /// their role's settings (group id, idempotence …) on top.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("security.protocol", &self.security.protocol)
            // Reconnect quickly after a broker restart: learners press "stop broker" on purpose.
            .set("reconnect.backoff.max.ms", "1000")
            .set("log_level", "4");
        if let Some(sasl) = &self.security.sasl {
            // rdkafka's ClientConfig derives Debug with every value: never log a client config.
            config
                .set("sasl.mechanisms", &sasl.mechanism)
                .set("sasl.username", &sasl.username)
                .set("sasl.password", sasl.password.expose());
        }
        if let Some(ca) = &self.security.ssl_ca_location {
            config.set("ssl.ca.location", ca.display().to_string());
        }
        config
    }

    /// The producer every consuming stage writes its outputs with: idempotent (a retried send
    /// is not a duplicate) and with no delivery timeout (a stopped broker delays records, it
    /// never drops them), batching for 5 ms.
    pub fn reliable_producer(&self) -> Result<FutureProducer, KafkaError> {
        self.client_config()
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "0")
            .create()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_and_topic_names_are_checked() {
        assert!(check_group_name("pipebook-sentiment").is_ok());
        assert!(check_group_name("  ").is_err());
        assert!(check_group_name("a\u{0}b").is_err());
        assert!(check_group_name(&"g".repeat(MAX_GROUP_NAME)).is_ok());
        assert!(check_group_name(&"g".repeat(MAX_GROUP_NAME + 1)).is_err());
        assert!(is_topic_name("reviews.dlq"));
        assert!(!is_topic_name(""));
        assert!(!is_topic_name("a\u{0}b"));
        assert!(!is_topic_name("../x"));
        assert!(!is_topic_name(&"t".repeat(250)));
    }

    #[test]
    fn debug_of_the_settings_hides_the_sasl_password() {
        let mut settings = KafkaSettings::plaintext("kafka.example:9092", 3);
        settings.security = KafkaSecurity {
            protocol: "SASL_SSL".to_owned(),
            sasl: Some(SaslCredentials {
                mechanism: "PLAIN".to_owned(),
                username: "learner".to_owned(),
                password: Secret::new("pw-KNOWN-sasl-9c1f"),
            }),
            ssl_ca_location: None,
        };
        for printed in [
            format!("{settings:?}"),
            format!("{settings:#?}"),
            format!("{:?}", settings.security),
        ] {
            assert!(!printed.contains("pw-KNOWN-sasl-9c1f"), "{printed}");
            assert!(printed.contains("learner"), "{printed}");
        }
        // The client still gets it.
        assert_eq!(
            settings.client_config().get("sasl.password"),
            Some("pw-KNOWN-sasl-9c1f")
        );
    }
}
