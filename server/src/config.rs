//! Server settings: flags, each with an environment variable of the same meaning.
//!
//! Defaults run everything embedded on 127.0.0.1 with no network and no accounts.
//!
//! Secrets (passwords, API keys, tokens) are held as [`Secret`], so `Debug` of any settings
//! struct never shows them. Each can be given three ways: a flag (visible to every user of the
//! machine in `ps`, so documented as the last resort), an environment variable, or a file named
//! by the variable's `_FILE` form, as container secrets are mounted ([`read_secret`]).

use clap::Args;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::access::{AccessError, AccessSettings, Token, parse_public_names};
use crate::index::SearchSettings;
use crate::index::elastic::{ElasticAuth, ElasticSettings};
use crate::kafka::{KafkaSecurity, KafkaSettings, SaslCredentials};
use crate::secret::Secret;

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
    pub token: Option<Secret>,

    /// A file holding the operator's token (as container secrets are mounted).
    #[arg(long = "token-file", env = "PIPEBOOK_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// The read-only viewers' token; generated when the operator's is in force and this is unset.
    #[arg(
        long = "viewer-token",
        env = "PIPEBOOK_VIEWER_TOKEN",
        hide_env_values = true
    )]
    pub viewer_token: Option<Secret>,

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
        let token = |value: &Option<Secret>, file: &Option<PathBuf>, var: SecretVar| {
            let raw = read_secret(value.clone(), file.as_deref(), var)?;
            let token = raw
                .map(|raw| Token::parse(var.var, raw.expose()))
                .transpose()?;
            Ok::<_, ConfigError>(token)
        };
        Ok(AccessSettings {
            bind,
            operator_token: token(&self.token, &self.token_file, TOKEN)?,
            viewer_token: token(&self.viewer_token, &self.viewer_token_file, VIEWER_TOKEN)?,
            public_names: parse_public_names(&self.public_names)?,
        })
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

    /// Password for the username. A flag is visible to other users of the machine in `ps`:
    /// prefer the variable, or PIPEBOOK_ELASTICSEARCH_PASSWORD_FILE.
    #[arg(
        long = "elasticsearch-password",
        env = "PIPEBOOK_ELASTICSEARCH_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<Secret>,

    /// A file holding the password (a container secret); one trailing newline is ignored.
    #[arg(
        long = "elasticsearch-password-file",
        env = "PIPEBOOK_ELASTICSEARCH_PASSWORD_FILE"
    )]
    pub password_file: Option<PathBuf>,

    /// An encoded API key (the `encoded` value Elasticsearch prints); instead of a password.
    /// A flag is visible to other users of the machine in `ps`: prefer the variable, or
    /// PIPEBOOK_ELASTICSEARCH_API_KEY_FILE.
    #[arg(
        long = "elasticsearch-api-key",
        env = "PIPEBOOK_ELASTICSEARCH_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<Secret>,

    /// A file holding the encoded API key (a container secret).
    #[arg(
        long = "elasticsearch-api-key-file",
        env = "PIPEBOOK_ELASTICSEARCH_API_KEY_FILE"
    )]
    pub api_key_file: Option<PathBuf>,

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
                    "expected http(s)://host:port, e.g. http://localhost:9200 (the value is not repeated: it may hold a password)",
                )
            })?;
        // A password in the URL would be printed wherever the URL is (errors, logs, `ps`).
        if url.password().is_some() {
            return Err(invalid(
                "PIPEBOOK_ELASTICSEARCH_URL",
                "must not carry a password: use PIPEBOOK_ELASTICSEARCH_USERNAME and \
                 PIPEBOOK_ELASTICSEARCH_PASSWORD (or its _FILE form)",
            ));
        }
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
        let password = read_secret(
            self.password.clone(),
            self.password_file.as_deref(),
            ELASTICSEARCH_PASSWORD,
        )?;
        let api_key = read_secret(
            self.api_key.clone(),
            self.api_key_file.as_deref(),
            ELASTICSEARCH_API_KEY,
        )?;
        let auth = match (&self.username, password, api_key) {
            (None, None, None) => ElasticAuth::None,
            (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
                return Err(invalid(
                    "PIPEBOOK_ELASTICSEARCH_API_KEY",
                    "set either an API key or a username and password, not both",
                ));
            }
            (None, None, Some(key)) => ElasticAuth::ApiKey(key),
            (Some(username), Some(password), None) => ElasticAuth::Basic {
                username: username.clone(),
                password,
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
    #[arg(
        long = "kafka-brokers",
        visible_alias = "brokers",
        env = "PIPEBOOK_KAFKA_BROKERS"
    )]
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

    /// SASL password. A flag is visible to other users of the machine in `ps` (and stays in
    /// shell history): prefer the variable, or PIPEBOOK_KAFKA_SASL_PASSWORD_FILE.
    #[arg(
        long = "kafka-sasl-password",
        env = "PIPEBOOK_KAFKA_SASL_PASSWORD",
        hide_env_values = true
    )]
    pub sasl_password: Option<Secret>,

    /// A file holding the SASL password (a container secret); one trailing newline is ignored.
    #[arg(
        long = "kafka-sasl-password-file",
        env = "PIPEBOOK_KAFKA_SASL_PASSWORD_FILE"
    )]
    pub sasl_password_file: Option<PathBuf>,

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

/// A server setting that cannot be used, named by its variable: the same type as a request's.
pub use crate::error::ConfigError;

impl From<AccessError> for ConfigError {
    fn from(error: AccessError) -> Self {
        match error {
            AccessError::Invalid { variable, message } => invalid(variable, message),
        }
    }
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
    ConfigError::new(field, message)
}

/// Largest secret file read: a password, key or token is at most a few hundred bytes, so a
/// bigger file is the wrong file (and is not read into memory whole).
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// An environment variable that holds a secret, and its `_FILE` form (a file holding it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretVar {
    pub var: &'static str,
    pub file_var: &'static str,
}

pub const KAFKA_SASL_PASSWORD: SecretVar = SecretVar {
    var: "PIPEBOOK_KAFKA_SASL_PASSWORD",
    file_var: "PIPEBOOK_KAFKA_SASL_PASSWORD_FILE",
};
pub const ELASTICSEARCH_PASSWORD: SecretVar = SecretVar {
    var: "PIPEBOOK_ELASTICSEARCH_PASSWORD",
    file_var: "PIPEBOOK_ELASTICSEARCH_PASSWORD_FILE",
};
pub const ELASTICSEARCH_API_KEY: SecretVar = SecretVar {
    var: "PIPEBOOK_ELASTICSEARCH_API_KEY",
    file_var: "PIPEBOOK_ELASTICSEARCH_API_KEY_FILE",
};
pub const LLM_API_KEY: SecretVar = SecretVar {
    var: "PIPEBOOK_LLM_API_KEY",
    file_var: "PIPEBOOK_LLM_API_KEY_FILE",
};
/// The operator's access token (used by the access-control layer).
pub const TOKEN: SecretVar = SecretVar {
    var: "PIPEBOOK_TOKEN",
    file_var: "PIPEBOOK_TOKEN_FILE",
};
/// The read-only viewers' token (used by the access-control layer).
pub const VIEWER_TOKEN: SecretVar = SecretVar {
    var: "PIPEBOOK_VIEWER_TOKEN",
    file_var: "PIPEBOOK_VIEWER_TOKEN_FILE",
};

/// A secret given as a value (flag or variable) or as a file (`var.file_var`), or neither.
/// An empty value counts as unset. Both set is an error naming `var.var`; a file that cannot be
/// read, is empty, is not UTF-8 or is over [`MAX_SECRET_FILE_BYTES`] is an error naming
/// `var.file_var`. One trailing newline (`\n` or `\r\n`) of the file is dropped, as `echo`
/// and editors add one; any other whitespace is part of the secret.
pub fn read_secret(
    value: Option<Secret>,
    file: Option<&Path>,
    var: SecretVar,
) -> Result<Option<Secret>, ConfigError> {
    match (value.filter(|v| !v.is_empty()), file) {
        (Some(_), Some(_)) => Err(invalid(
            var.var,
            format!("set either {} or {}, not both", var.var, var.file_var),
        )),
        (Some(value), None) => Ok(Some(value)),
        (None, Some(path)) => read_secret_file(path, var.file_var).map(Some),
        (None, None) => Ok(None),
    }
}

fn read_secret_file(path: &Path, file_var: &'static str) -> Result<Secret, ConfigError> {
    let unreadable =
        |e: std::io::Error| invalid(file_var, format!("cannot read {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(invalid(
            file_var,
            format!(
                "{} is larger than {} KiB: not a secret file",
                path.display(),
                MAX_SECRET_FILE_BYTES / 1024
            ),
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| invalid(file_var, format!("{} is not UTF-8 text", path.display())))?;
    let secret = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if secret.is_empty() {
        return Err(invalid(file_var, format!("{} is empty", path.display())));
    }
    Ok(Secret::new(secret))
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
            let password = read_secret(
                self.sasl_password.clone(),
                self.sasl_password_file.as_deref(),
                KAFKA_SASL_PASSWORD,
            )?
            .ok_or_else(|| {
                invalid(
                    "PIPEBOOK_KAFKA_SASL_PASSWORD",
                    format!("required with {protocol} (or PIPEBOOK_KAFKA_SASL_PASSWORD_FILE)"),
                )
            })?;
            Some(SaslCredentials {
                mechanism,
                username,
                password,
            })
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
        a.sasl_password = Some(Secret::new("secret"));
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
        half.password = Some(Secret::new("secret"));
        assert!(matches!(half.settings(), Ok(SearchSettings::Elastic(_))));
        half.api_key = Some(Secret::new("a2V5"));
        let err = half.settings().expect_err("both");
        assert!(
            err.to_string()
                .starts_with("PIPEBOOK_ELASTICSEARCH_API_KEY"),
            "{err}"
        );
    }

    const KNOWN: &str = "pw-KNOWN-7f3a";

    fn secret_file(dir: &tempfile::TempDir, name: &str, contents: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).expect("write secret file");
        path
    }

    #[test]
    fn read_secret_takes_the_value_or_the_file_not_both() {
        let dir = tempfile::tempdir().expect("dir");
        let file = secret_file(&dir, "pw", b"from-file\n");
        assert_eq!(read_secret(None, None, TOKEN), Ok(None));
        assert_eq!(
            read_secret(Some(Secret::new("v")), None, TOKEN),
            Ok(Some(Secret::new("v")))
        );
        assert_eq!(
            read_secret(None, Some(&file), TOKEN),
            Ok(Some(Secret::new("from-file")))
        );
        // An empty value counts as unset, so the file is used.
        assert_eq!(
            read_secret(Some(Secret::new("")), Some(&file), TOKEN),
            Ok(Some(Secret::new("from-file")))
        );
        let err =
            read_secret(Some(Secret::new(KNOWN)), Some(&file), VIEWER_TOKEN).expect_err("both set");
        let message = err.to_string();
        assert!(message.starts_with("PIPEBOOK_VIEWER_TOKEN:"), "{message}");
        assert!(message.contains("PIPEBOOK_VIEWER_TOKEN_FILE"), "{message}");
        assert!(!message.contains(KNOWN), "{message}");
    }

    #[test]
    fn read_secret_trims_one_trailing_newline_only() {
        let dir = tempfile::tempdir().expect("dir");
        for (contents, expected) in [
            (&b"abc\n"[..], "abc"),
            (b"abc\r\n", "abc"),
            (b"abc", "abc"),
            (b" abc \n\n", " abc \n"),
        ] {
            let file = secret_file(&dir, "s", contents);
            assert_eq!(
                read_secret(None, Some(&file), KAFKA_SASL_PASSWORD)
                    .expect("read")
                    .expect("some")
                    .expose(),
                expected
            );
        }
    }

    #[test]
    fn bad_secret_files_are_refused_naming_the_file_variable() {
        let dir = tempfile::tempdir().expect("dir");
        let empty = secret_file(&dir, "empty", b"\n");
        let big = secret_file(&dir, "big", &vec![b'x'; 64 * 1024 + 1]);
        let binary = secret_file(&dir, "binary", &[0xff, 0xfe, 0x00]);
        let missing = dir.path().join("missing");
        for (path, why) in [
            (&empty, "is empty"),
            (&big, "larger than 64 KiB"),
            (&binary, "not UTF-8"),
            (&missing, "cannot read"),
            (&dir.path().to_path_buf(), "cannot read"),
        ] {
            let err = read_secret(None, Some(path), ELASTICSEARCH_API_KEY).expect_err(why);
            let message = err.to_string();
            assert!(
                message.starts_with("PIPEBOOK_ELASTICSEARCH_API_KEY_FILE:"),
                "{message}"
            );
            assert!(message.contains(why), "{message}");
        }
        // Exactly at the cap is still read.
        let at_cap = secret_file(&dir, "cap", &vec![b'y'; 64 * 1024]);
        assert!(read_secret(None, Some(&at_cap), ELASTICSEARCH_API_KEY).is_ok());
    }

    #[test]
    fn kafka_sasl_password_can_come_from_a_file() {
        let dir = tempfile::tempdir().expect("dir");
        let file = secret_file(&dir, "sasl", format!("{KNOWN}\n").as_bytes());
        let mut a = args("pkc.example:9092");
        a.security_protocol = Some("SASL_SSL".into());
        a.sasl_username = Some("learner".into());
        a.sasl_password_file = Some(file);
        let settings = a.external().expect("valid").expect("external");
        let sasl = settings.security.sasl.expect("sasl");
        assert_eq!(sasl.password.expose(), KNOWN);
        a.sasl_password = Some(Secret::new("also"));
        let err = a.external().expect_err("both");
        assert!(
            err.to_string().starts_with("PIPEBOOK_KAFKA_SASL_PASSWORD:"),
            "{err}"
        );
        a.sasl_password = None;
        a.sasl_password_file = Some(dir.path().join("missing"));
        let err = a.external().expect_err("missing file");
        assert!(
            err.to_string()
                .starts_with("PIPEBOOK_KAFKA_SASL_PASSWORD_FILE:"),
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
    fn elasticsearch_secrets_can_come_from_files() {
        let dir = tempfile::tempdir().expect("dir");
        let mut basic = search("https://es:9200");
        basic.username = Some("elastic".into());
        basic.password_file = Some(secret_file(&dir, "es_pw", b"es-pw\n"));
        match basic.settings() {
            Ok(SearchSettings::Elastic(ElasticSettings {
                auth: ElasticAuth::Basic { password, .. },
                ..
            })) => assert_eq!(password.expose(), "es-pw"),
            other => panic!("expected basic auth, got {other:?}"),
        }
        let mut keyed = search("https://es:9200");
        keyed.api_key_file = Some(secret_file(&dir, "es_key", b"a2V5\n"));
        match keyed.settings() {
            Ok(SearchSettings::Elastic(ElasticSettings {
                auth: ElasticAuth::ApiKey(key),
                ..
            })) => assert_eq!(key.expose(), "a2V5"),
            other => panic!("expected an API key, got {other:?}"),
        }
        keyed.api_key = Some(Secret::new("a2V5"));
        let err = keyed.settings().expect_err("both");
        assert!(
            err.to_string()
                .starts_with("PIPEBOOK_ELASTICSEARCH_API_KEY:"),
            "{err}"
        );
    }

    #[test]
    fn a_password_in_the_elasticsearch_url_is_refused_without_repeating_it() {
        let err = search(&format!("https://elastic:{KNOWN}@es:9200"))
            .settings()
            .expect_err("password in URL");
        assert!(
            err.to_string().starts_with("PIPEBOOK_ELASTICSEARCH_URL"),
            "{err}"
        );
        assert!(!err.to_string().contains(KNOWN), "{err}");
    }

    /// Every settings struct that holds a secret, printed with `{:?}` and `{:#?}`.
    #[test]
    fn debug_of_every_settings_struct_hides_the_secrets() {
        let kafka = KafkaArgs {
            brokers: Some("pkc.example:9092".into()),
            security_protocol: Some("SASL_SSL".into()),
            sasl_username: Some("learner".into()),
            sasl_password: Some(Secret::new(KNOWN)),
            topic_partitions: 3,
            ..KafkaArgs::default()
        };
        let basic = SearchArgs {
            username: Some("elastic".into()),
            password: Some(Secret::new(KNOWN)),
            ..search("https://es:9200")
        };
        let keyed = SearchArgs {
            api_key: Some(Secret::new(KNOWN)),
            ..search("https://es:9200")
        };
        let serve = ServeArgs {
            addr: "127.0.0.1:3000".parse().expect("addr"),
            data_dir: "data".into(),
            broker_addr: "127.0.0.1:9092".parse().expect("addr"),
            kafka: kafka.clone(),
            search: basic.clone(),
            datasets_dir: None,
            max_upload_bytes: 100 * 1024 * 1024,
            allow_network_sockets: false,
            access: AccessArgs {
                token: Some(Secret::new(format!("token-{KNOWN}-0123456789"))),
                viewer_token: Some(Secret::new(format!("viewer-{KNOWN}-0123456789"))),
                ..AccessArgs::default()
            },
        };
        let engine = crate::pipeline::EngineSettings::from_args(&serve).expect("valid");
        let access = serve.access.settings(serve.addr).expect("valid");
        let keyed_settings = keyed.settings().expect("valid");
        let printed = [
            format!("{kafka:?}"),
            format!("{basic:?}"),
            format!("{keyed:?}"),
            format!("{serve:?}"),
            format!("{serve:#?}"),
            format!("{engine:?}"),
            format!("{engine:#?}"),
            format!("{:?}", engine.external_kafka),
            format!("{:?}", engine.search),
            format!("{keyed_settings:?}"),
            format!("{access:?}"),
        ];
        for text in printed {
            assert!(!text.contains(KNOWN), "secret in {text}");
        }
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
