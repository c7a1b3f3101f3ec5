//! Server settings: flags, each with an environment variable of the same meaning.
//!
//! Defaults run everything embedded on 127.0.0.1 with no network and no accounts.

use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::access::{AccessError, AccessSettings, Token, parse_public_names};
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

    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub search: SearchArgs,

    #[command(flatten)]
    pub access: AccessArgs,
}

/// Who may use the workbench (docs/security.md). On loopback nothing is needed; bound to any
/// other address, a token is generated at start unless one is set, and printed in the links.
#[derive(Debug, Clone, Args, Default)]
pub struct AccessArgs {
    /// The operator's token (16+ URL-safe characters). A flag is visible to other users of this
    /// machine in `ps`: prefer the variable or PIPEBOOK_TOKEN_FILE.
    #[arg(long = "token", env = "PIPEBOOK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// A file holding the operator's token (as container secrets are mounted).
    #[arg(long = "token-file", env = "PIPEBOOK_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// The read-only viewers' token; generated when the operator's is in force and this is unset.
    #[arg(
        long = "viewer-token",
        env = "PIPEBOOK_VIEWER_TOKEN",
        hide_env_values = true
    )]
    pub viewer_token: Option<String>,

    /// A file holding the viewers' token.
    #[arg(long = "viewer-token-file", env = "PIPEBOOK_VIEWER_TOKEN_FILE")]
    pub viewer_token_file: Option<PathBuf>,

    /// Host names learners use to reach this machine (comma-separated, no ports), besides IP
    /// addresses, `localhost` and the machine's own name; other names are refused (DNS rebinding).
    #[arg(
        long = "public-names",
        env = "PIPEBOOK_PUBLIC_NAMES",
        default_value = ""
    )]
    pub public_names: String,
}

impl AccessArgs {
    /// Checks the settings for a server bound to `bind`; errors name the variable.
    pub fn settings(&self, bind: SocketAddr) -> Result<AccessSettings, ConfigError> {
        let token = |value: &Option<String>, file: &Option<PathBuf>, variable, file_variable| {
            let raw = secret_value(value, file, variable, file_variable)?;
            let token = raw.map(|raw| Token::parse(variable, &raw)).transpose()?;
            Ok::<_, ConfigError>(token)
        };
        Ok(AccessSettings {
            bind,
            operator_token: token(
                &self.token,
                &self.token_file,
                "PIPEBOOK_TOKEN",
                "PIPEBOOK_TOKEN_FILE",
            )?,
            viewer_token: token(
                &self.viewer_token,
                &self.viewer_token_file,
                "PIPEBOOK_VIEWER_TOKEN",
                "PIPEBOOK_VIEWER_TOKEN_FILE",
            )?,
            public_names: parse_public_names(&self.public_names)?,
        })
    }
}

/// A secret given directly or in a file (whose trailing newline is dropped); not both.
fn secret_value(
    value: &Option<String>,
    file: &Option<PathBuf>,
    variable: &'static str,
    file_variable: &'static str,
) -> Result<Option<String>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(invalid(
            variable,
            format!("set either {variable} or {file_variable}, not both"),
        )),
        (Some(value), None) => Ok(Some(value.clone())),
        (None, None) => Ok(None),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                invalid(
                    file_variable,
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            let text = text.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                return Err(invalid(
                    file_variable,
                    format!("{} is empty", path.display()),
                ));
            }
            Ok(Some(text.to_owned()))
        }
    }
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

impl From<AccessError> for ConfigError {
    fn from(error: AccessError) -> Self {
        match error {
            AccessError::Invalid { variable, message } => invalid(variable, message),
        }
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

    #[test]
    fn access_tokens_come_from_a_value_or_a_file_not_both() {
        let bind: SocketAddr = "0.0.0.0:3000".parse().expect("addr");
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("token");
        std::fs::write(&file, "file-token-0123456789\n").expect("write");
        let from_file = AccessArgs {
            token_file: Some(file.clone()),
            ..AccessArgs::default()
        };
        let settings = from_file.settings(bind).expect("valid");
        let token = settings.operator_token.expect("token");
        assert_eq!(token.expose(), "file-token-0123456789", "newline trimmed");
        let both = AccessArgs {
            token: Some("value-token-0123456789".into()),
            token_file: Some(file),
            ..AccessArgs::default()
        };
        let err = both.settings(bind).expect_err("both");
        assert!(err.to_string().starts_with("PIPEBOOK_TOKEN:"), "{err}");
        let missing = AccessArgs {
            viewer_token_file: Some(dir.path().join("nope")),
            ..AccessArgs::default()
        };
        let err = missing.settings(bind).expect_err("missing file");
        assert!(
            err.to_string().starts_with("PIPEBOOK_VIEWER_TOKEN_FILE"),
            "{err}"
        );
        let short = AccessArgs {
            token: Some("short".into()),
            ..AccessArgs::default()
        };
        let err = short.settings(bind).expect_err("short");
        assert!(err.to_string().starts_with("PIPEBOOK_TOKEN"), "{err}");
        let names = AccessArgs {
            public_names: "ok.lan,bad/name".into(),
            ..AccessArgs::default()
        };
        let err = names.settings(bind).expect_err("bad name");
        assert!(
            err.to_string().starts_with("PIPEBOOK_PUBLIC_NAMES"),
            "{err}"
        );
        let configured = AccessArgs {
            token: Some("debug-token-0123456789".into()),
            ..AccessArgs::default()
        };
        let settings = configured.settings(bind).expect("valid");
        assert!(
            !format!("{settings:?}").contains("0123456789"),
            "token in Debug"
        );
    }
}
