//! Server settings: flags, each with an environment variable of the same meaning.
//!
//! Defaults run everything embedded on 127.0.0.1 with no network and no accounts.

use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::index::SearchSettings;
use crate::index::elastic::{ElasticAuth, ElasticSettings};
use crate::kafka::{KafkaSecurity, KafkaSettings};

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address the web UI and the HTTP API listen on.
    #[arg(long, env = "PIPEBOOK_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Where the embedded broker keeps its data and stages keep their state.
    #[arg(long, env = "PIPEBOOK_DATA_DIR", default_value = "pipebook-data")]
    pub data_dir: PathBuf,

    /// Address of the embedded broker; port 0 picks a free port at start.
    #[arg(long, env = "PIPEBOOK_BROKER_ADDR", default_value = "127.0.0.1:9092")]
    pub broker_addr: SocketAddr,

    /// The only folder the streamer reads files from (and uploads go to); created at start.
    /// Default: `<data dir>/datasets`.
    #[arg(long, env = "PIPEBOOK_DATASETS_DIR")]
    pub datasets_dir: Option<PathBuf>,

    /// Largest dataset upload accepted, in bytes (default 100 MiB).
    #[arg(long, env = "PIPEBOOK_MAX_UPLOAD_BYTES", default_value_t = crate::streamer::datasets::DEFAULT_MAX_UPLOAD_BYTES)]
    pub max_upload_bytes: u64,

    /// Let the streamer listen on, and the producer connect to, addresses other than loopback
    /// (by default the streamer listens on 127.0.0.0/8 or ::1 only and the producer reads only
    /// from it).
    #[arg(
        long,
        env = "PIPEBOOK_ALLOW_NETWORK_SOCKETS",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_network_sockets: bool,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub search: SearchArgs,
}

/// Settings for Elasticsearch; when `url` is unset Pipebook uses its embedded search index.
#[derive(Debug, Clone, Args, Default)]
pub struct SearchArgs {
    /// Elasticsearch 8 URL (e.g. http://localhost:9200); unset = embedded index.
    #[arg(long = "elasticsearch-url", env = "PIPEBOOK_ELASTICSEARCH_URL")]
    pub url: Option<String>,

    /// Index the indexer writes to and searches read from.
    #[arg(
        long = "elasticsearch-index",
        env = "PIPEBOOK_ELASTICSEARCH_INDEX",
        default_value = "reviews"
    )]
    pub index: String,

    #[arg(
        long = "elasticsearch-username",
        env = "PIPEBOOK_ELASTICSEARCH_USERNAME"
    )]
    pub username: Option<String>,

    #[arg(
        long = "elasticsearch-password",
        env = "PIPEBOOK_ELASTICSEARCH_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,

    /// An encoded API key (the `encoded` value Elasticsearch prints); instead of a password.
    #[arg(
        long = "elasticsearch-api-key",
        env = "PIPEBOOK_ELASTICSEARCH_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,

    /// CA certificate (PEM) to trust, e.g. the http_ca.crt of a self-signed cluster.
    #[arg(long = "elasticsearch-ca-cert", env = "PIPEBOOK_ELASTICSEARCH_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

impl SearchArgs {
    /// Checks the Elasticsearch settings; the embedded index when no URL is set.
    pub fn settings(&self) -> Result<SearchSettings, ConfigError> {
        let Some(raw) = self.url.as_deref().map(str::trim) else {
            return Ok(SearchSettings::Embedded);
        };
        let url = url::Url::parse(raw)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| {
                invalid(
                    "PIPEBOOK_ELASTICSEARCH_URL",
                    format!("expected http(s)://host:port, got {raw:?}"),
                )
            })?;
        let index = self.index.trim();
        if index.is_empty()
            || index != index.to_ascii_lowercase()
            || index.starts_with(['_', '-', '+'])
            || index.contains([' ', '/', '\\', '*', '?', '"', '<', '>', '|', ',', '#'])
        {
            return Err(invalid(
                "PIPEBOOK_ELASTICSEARCH_INDEX",
                format!(
                    "not a valid index name (lower case, no spaces or /\\*?\"<>|,#): {index:?}"
                ),
            ));
        }
        let auth = match (&self.username, &self.password, &self.api_key) {
            (None, None, None) => ElasticAuth::None,
            (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
                return Err(invalid(
                    "PIPEBOOK_ELASTICSEARCH_API_KEY",
                    "set either an API key or a username and password, not both",
                ));
            }
            (None, None, Some(key)) => ElasticAuth::ApiKey(key.clone()),
            (Some(username), Some(password), None) => ElasticAuth::Basic {
                username: username.clone(),
                password: password.clone(),
            },
            (Some(_), None, None) => {
                return Err(invalid(
                    "PIPEBOOK_ELASTICSEARCH_PASSWORD",
                    "required with PIPEBOOK_ELASTICSEARCH_USERNAME",
                ));
            }
            (None, Some(_), None) => {
                return Err(invalid(
                    "PIPEBOOK_ELASTICSEARCH_USERNAME",
                    "required with PIPEBOOK_ELASTICSEARCH_PASSWORD",
                ));
            }
        };
        let ca_cert = match &self.ca_cert {
            None => None,
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                invalid(
                    "PIPEBOOK_ELASTICSEARCH_CA_CERT",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?),
        };
        Ok(SearchSettings::Elastic(ElasticSettings {
            url,
            index: index.to_owned(),
            auth,
            ca_cert,
        }))
    }
}

/// Settings for an external Kafka cluster; when `brokers` is unset Pipebook embeds its own.
#[derive(Debug, Clone, Args, Default)]
pub struct KafkaArgs {
    /// Bootstrap servers of an external cluster (host:port,…); unset = embedded broker.
    #[arg(long = "kafka-brokers", env = "PIPEBOOK_KAFKA_BROKERS")]
    pub brokers: Option<String>,

    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    #[arg(
        long = "kafka-security-protocol",
        env = "PIPEBOOK_KAFKA_SECURITY_PROTOCOL"
    )]
    pub security_protocol: Option<String>,

    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long = "kafka-sasl-mechanism", env = "PIPEBOOK_KAFKA_SASL_MECHANISM")]
    pub sasl_mechanism: Option<String>,

    #[arg(long = "kafka-sasl-username", env = "PIPEBOOK_KAFKA_SASL_USERNAME")]
    pub sasl_username: Option<String>,

    /// Read from the environment rather than a flag, so it stays out of shell history.
    #[arg(
        long = "kafka-sasl-password",
        env = "PIPEBOOK_KAFKA_SASL_PASSWORD",
        hide_env_values = true
    )]
    pub sasl_password: Option<String>,

    /// CA certificate file (PEM) for SSL / SASL_SSL.
    #[arg(long = "kafka-ssl-ca-location", env = "PIPEBOOK_KAFKA_SSL_CA_LOCATION")]
    pub ssl_ca_location: Option<PathBuf>,

    /// Partitions of the topics Pipebook creates.
    #[arg(
        long = "topic-partitions",
        env = "PIPEBOOK_TOPIC_PARTITIONS",
        default_value_t = 3
    )]
    pub topic_partitions: i32,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

/// Largest `PIPEBOOK_MAX_UPLOAD_BYTES` accepted: 1 TiB.
pub const MAX_UPLOAD_LIMIT: u64 = 1 << 40;

impl ServeArgs {
    /// The datasets folder: the flag, or `<data dir>/datasets`.
    pub fn datasets_dir(&self) -> PathBuf {
        self.datasets_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("datasets"))
    }

    /// `PIPEBOOK_MAX_UPLOAD_BYTES`, checked: 1 byte to 1 TiB.
    pub fn max_upload_bytes(&self) -> Result<u64, ConfigError> {
        if !(1..=MAX_UPLOAD_LIMIT).contains(&self.max_upload_bytes) {
            return Err(invalid(
                "PIPEBOOK_MAX_UPLOAD_BYTES",
                format!(
                    "must be 1..={MAX_UPLOAD_LIMIT} bytes, got {}",
                    self.max_upload_bytes
                ),
            ));
        }
        Ok(self.max_upload_bytes)
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

impl KafkaArgs {
    /// Checks the external-cluster settings and turns them into client settings.
    /// Returns `None` for the embedded default.
    pub fn external(&self) -> Result<Option<KafkaSettings>, ConfigError> {
        if !(1..=64).contains(&self.topic_partitions) {
            return Err(invalid(
                "PIPEBOOK_TOPIC_PARTITIONS",
                format!("must be 1..=64, got {}", self.topic_partitions),
            ));
        }
        let Some(brokers) = self.brokers.as_deref().map(str::trim) else {
            return Ok(None);
        };
        if brokers.is_empty() || brokers.split(',').any(|b| !b.contains(':')) {
            return Err(invalid(
                "PIPEBOOK_KAFKA_BROKERS",
                format!("expected host:port[,host:port…], got {brokers:?}"),
            ));
        }
        let security = self.security()?;
        Ok(Some(KafkaSettings {
            bootstrap_servers: brokers.to_owned(),
            security,
            topic_partitions: self.topic_partitions,
        }))
    }

    fn security(&self) -> Result<KafkaSecurity, ConfigError> {
        let protocol = self
            .security_protocol
            .as_deref()
            .unwrap_or("PLAINTEXT")
            .to_ascii_uppercase();
        let uses_sasl = match protocol.as_str() {
            "PLAINTEXT" | "SSL" => false,
            "SASL_PLAINTEXT" | "SASL_SSL" => true,
            other => {
                return Err(invalid(
                    "PIPEBOOK_KAFKA_SECURITY_PROTOCOL",
                    format!("expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, got {other:?}"),
                ));
            }
        };
        let sasl = if uses_sasl {
            let mechanism = self
                .sasl_mechanism
                .as_deref()
                .unwrap_or("PLAIN")
                .to_ascii_uppercase();
            if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&mechanism.as_str()) {
                return Err(invalid(
                    "PIPEBOOK_KAFKA_SASL_MECHANISM",
                    format!("expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got {mechanism:?}"),
                ));
            }
            let username = self.sasl_username.clone().ok_or_else(|| {
                invalid(
                    "PIPEBOOK_KAFKA_SASL_USERNAME",
                    format!("required with {protocol}"),
                )
            })?;
            let password = self.sasl_password.clone().ok_or_else(|| {
                invalid(
                    "PIPEBOOK_KAFKA_SASL_PASSWORD",
                    format!("required with {protocol}"),
                )
            })?;
            Some((mechanism, username, password))
        } else {
            None
        };
        if let Some(path) = &self.ssl_ca_location
            && !path.is_file()
        {
            return Err(invalid(
                "PIPEBOOK_KAFKA_SSL_CA_LOCATION",
                format!("no such file: {}", path.display()),
            ));
        }
        Ok(KafkaSecurity {
            protocol,
            sasl,
            ssl_ca_location: self.ssl_ca_location.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(brokers: &str) -> KafkaArgs {
        KafkaArgs {
            brokers: Some(brokers.to_owned()),
            topic_partitions: 3,
            ..KafkaArgs::default()
        }
    }

    #[test]
    fn no_brokers_means_embedded() {
        let args = KafkaArgs {
            topic_partitions: 3,
            ..KafkaArgs::default()
        };
        assert_eq!(args.external(), Ok(None));
    }

    #[test]
    fn broker_list_without_port_is_refused_naming_the_variable() {
        let err = args("kafka.example").external().expect_err("no port");
        assert!(
            err.to_string().starts_with("PIPEBOOK_KAFKA_BROKERS"),
            "{err}"
        );
    }

    #[test]
    fn sasl_ssl_needs_credentials() {
        let mut a = args("pkc.example:9092");
        a.security_protocol = Some("sasl_ssl".into());
        let err = a.external().expect_err("no username");
        assert!(
            err.to_string().starts_with("PIPEBOOK_KAFKA_SASL_USERNAME"),
            "{err}"
        );
        a.sasl_username = Some("key".into());
        a.sasl_password = Some("secret".into());
        let settings = a.external().expect("valid").expect("external");
        assert_eq!(settings.security.protocol, "SASL_SSL");
    }

    fn search(url: &str) -> SearchArgs {
        SearchArgs {
            url: Some(url.to_owned()),
            index: "reviews".into(),
            ..SearchArgs::default()
        }
    }

    #[test]
    fn elasticsearch_settings_are_checked_and_named() {
        assert!(matches!(
            SearchArgs::default().settings(),
            Ok(SearchSettings::Embedded)
        ));
        let err = search("localhost:9200").settings().expect_err("no scheme");
        assert!(
            err.to_string().starts_with("PIPEBOOK_ELASTICSEARCH_URL"),
            "{err}"
        );
        let mut upper = search("http://localhost:9200");
        upper.index = "Reviews".into();
        let err = upper.settings().expect_err("upper case");
        assert!(
            err.to_string().starts_with("PIPEBOOK_ELASTICSEARCH_INDEX"),
            "{err}"
        );
        let mut half = search("https://es:9200");
        half.username = Some("elastic".into());
        let err = half.settings().expect_err("no password");
        assert!(
            err.to_string()
                .starts_with("PIPEBOOK_ELASTICSEARCH_PASSWORD"),
            "{err}"
        );
        half.password = Some("secret".into());
        assert!(matches!(half.settings(), Ok(SearchSettings::Elastic(_))));
        half.api_key = Some("a2V5".into());
        let err = half.settings().expect_err("both");
        assert!(
            err.to_string()
                .starts_with("PIPEBOOK_ELASTICSEARCH_API_KEY"),
            "{err}"
        );
    }

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn serve_args(args: &[&str]) -> ServeArgs {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("pipebook").chain(args.iter().copied()))
            .expect("parses")
            .serve
    }

    #[test]
    fn datasets_and_sockets_settings_have_safe_defaults() {
        let defaults = serve_args(&["--data-dir", "/srv/pb"]);
        assert_eq!(defaults.datasets_dir(), PathBuf::from("/srv/pb/datasets"));
        assert_eq!(defaults.max_upload_bytes(), Ok(100 * 1024 * 1024));
        assert!(!defaults.allow_network_sockets);

        let set = serve_args(&[
            "--datasets-dir",
            "/data/yelp",
            "--max-upload-bytes",
            "1000",
            "--allow-network-sockets",
        ]);
        assert_eq!(set.datasets_dir(), PathBuf::from("/data/yelp"));
        assert_eq!(set.max_upload_bytes(), Ok(1000));
        assert!(set.allow_network_sockets);

        let zero = serve_args(&["--max-upload-bytes", "0"]);
        let err = zero.max_upload_bytes().expect_err("zero");
        assert!(
            err.to_string().starts_with("PIPEBOOK_MAX_UPLOAD_BYTES"),
            "{err}"
        );
    }

    #[test]
    fn unknown_protocol_and_partitions_are_refused() {
        let mut a = args("localhost:9092");
        a.security_protocol = Some("TLS".into());
        let err = a.external().expect_err("bad protocol");
        assert!(err.to_string().contains("PIPEBOOK_KAFKA_SECURITY_PROTOCOL"));
        let mut b = args("localhost:9092");
        b.topic_partitions = 0;
        let err = b.external().expect_err("bad partitions");
        assert!(err.to_string().contains("PIPEBOOK_TOPIC_PARTITIONS"));
    }
}
