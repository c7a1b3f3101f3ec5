//! Stages 1 and 2 · the streamer (and the datasets it reads) and the producer.

use serde::{Deserialize, Serialize};

/// Configuration of the socket streamer stage (`POST /api/stages/streamer/start`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamerConfig {
    /// Reviews per second; 0 means as fast as the client reads.
    #[serde(default = "default_rate")]
    pub rate: u32,
    /// Reviews sent together in one write.
    #[serde(default = "default_chunk_size")]
    pub chunk_size: u32,
    /// `generator` for built-in reviews, or the name of a Yelp-format JSON-lines file in the
    /// datasets folder (`GET /api/datasets`); never a path.
    #[serde(default = "default_source")]
    pub source: String,
    /// Seed of the built-in generator: the same seed gives the same reviews.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Stop after this many reviews (for the generator; a file ends on its own).
    #[serde(default)]
    pub limit: Option<u64>,
    /// TCP address the streamer listens on; port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Event time of each review: the moment it is sent (`live`), or the source's own dates
    /// (`replay`: the generator spaces reviews 10 s apart from 2024-01-01 09:00).
    #[serde(default)]
    pub clock: EventClock,
    /// Share of reviews (0–1) sent late: their event time is moved back by `late_by_secs`, so
    /// they arrive out of order, behind the watermark when the delay exceeds the lateness allowed.
    #[serde(default)]
    pub late_share: f64,
    #[serde(default = "default_late_by")]
    pub late_by_secs: u32,
    /// What the records are (`yelp`, `tweets`, `companies`): the generator that makes them, or
    /// how a file's lines are read and keyed (see [`DatasetDescription`]).
    #[serde(default)]
    pub dataset: DatasetKind,
}

/// Where a review's event time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EventClock {
    #[default]
    Live,
    Replay,
}

fn default_late_by() -> u32 {
    120
}

fn default_rate() -> u32 {
    500
}

fn default_chunk_size() -> u32 {
    50
}

fn default_source() -> String {
    "generator".to_owned()
}

fn default_seed() -> u64 {
    42
}

fn default_listen() -> String {
    "127.0.0.1:0".to_owned()
}

impl Default for StreamerConfig {
    fn default() -> Self {
        Self {
            rate: default_rate(),
            chunk_size: default_chunk_size(),
            source: default_source(),
            seed: default_seed(),
            limit: None,
            listen: default_listen(),
            clock: EventClock::default(),
            late_share: 0.0,
            late_by_secs: default_late_by(),
            dataset: DatasetKind::default(),
        }
    }
}

/// Configuration of the producer stage (`POST /api/stages/producer/start`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProducerConfig {
    /// Socket to read review lines from; defaults to the running streamer's address. Unless the
    /// operator allows network sockets, only that address is accepted.
    #[serde(default)]
    pub socket: Option<String>,
}

/// `StreamerConfig::source` that means the built-in generator rather than a dataset.
pub const SOURCE_GENERATOR: &str = "generator";

/// The only content type `PUT /api/datasets/{name}` accepts: a cross-site form cannot send it.
pub const DATASET_CONTENT_TYPE: &str = "application/x-ndjson";

/// Longest dataset name accepted for an upload.
pub const DATASET_NAME_MAX_CHARS: usize = 100;

/// A file in the datasets folder the streamer can read (`GET /api/datasets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// File name in the datasets folder: what `StreamerConfig::source` takes.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Lines that are not blank (what the streamer sends); `null` while still being counted.
    #[serde(default)]
    pub lines: Option<u64>,
}

/// `GET /api/datasets`: the files in the datasets folder, by name. The built-in generator is not
/// a file and is not listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DatasetList {
    pub datasets: Vec<DatasetInfo>,
    /// The kinds of record the pipeline knows (issue 17): each one's key, text, event-time and
    /// dimension fields, and what changes for a learner. Built in, the same on every server.
    #[serde(default)]
    pub kinds: Vec<DatasetDescription>,
    /// Largest upload the server accepts (`PIPEBOOK_MAX_UPLOAD_BYTES`).
    pub max_upload_bytes: u64,
}

/// The kinds of record the pipeline can carry. The streamer's `dataset` picks one; the producer
/// keys and checks records by its description, and stamps non-Yelp records with a `dataset` field
/// so later stages know what they read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// Yelp reviews (seed 000): today's default.
    #[default]
    Yelp,
    /// Tweets like seeds 001, 003 and 004 stream.
    Tweets,
    /// Companies like seed 002's faker source: no text.
    Companies,
}

impl DatasetKind {
    pub const ALL: [DatasetKind; 3] = [
        DatasetKind::Yelp,
        DatasetKind::Tweets,
        DatasetKind::Companies,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DatasetKind::Yelp => "yelp",
            DatasetKind::Tweets => "tweets",
            DatasetKind::Companies => "companies",
        }
    }

    pub fn parse(name: &str) -> Option<DatasetKind> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// What its records are called in the cells' counters.
    pub fn records_noun(self) -> &'static str {
        match self {
            DatasetKind::Yelp => "reviews",
            DatasetKind::Tweets => "tweets",
            DatasetKind::Companies => "company records",
        }
    }

    /// One record, as the cells' sentences name it ("a review", "a tweet").
    pub fn record_noun(self) -> &'static str {
        match self {
            DatasetKind::Yelp => "review",
            DatasetKind::Tweets => "tweet",
            DatasetKind::Companies => "company record",
        }
    }

    /// Whose records one key groups: the same key, the same partition, in order.
    pub fn key_owner(self) -> &'static str {
        match self {
            DatasetKind::Yelp => "business",
            DatasetKind::Tweets => "user",
            DatasetKind::Companies => "company",
        }
    }

    /// The field whose value is the Kafka key (the description's `key_field`).
    pub fn key_field(self) -> &'static str {
        match self {
            DatasetKind::Yelp => "business_id",
            DatasetKind::Tweets => "user",
            DatasetKind::Companies => "company_id",
        }
    }

    /// The field that identifies one record (the description's `id_field`): what the trace
    /// follows and the search document's id.
    pub fn id_field(self) -> &'static str {
        match self {
            DatasetKind::Yelp => "review_id",
            DatasetKind::Tweets => "tweet_id",
            DatasetKind::Companies => "company_id",
        }
    }

    /// The field holding text to classify, if any (the description's `text_field`).
    pub fn text_field(self) -> Option<&'static str> {
        match self {
            DatasetKind::Yelp | DatasetKind::Tweets => Some("text"),
            DatasetKind::Companies => None,
        }
    }

    /// The event-time field (the description's `time_field`).
    pub fn time_field(self) -> &'static str {
        match self {
            DatasetKind::Yelp => "date",
            DatasetKind::Tweets | DatasetKind::Companies => "created_at",
        }
    }

    /// The fields a window can group its records by (the description's `dimensions`).
    pub fn dimensions(self) -> &'static [&'static str] {
        match self {
            DatasetKind::Yelp => &["business_id", "stars"],
            DatasetKind::Tweets => &["hashtags"],
            DatasetKind::Companies => &["country", "industry"],
        }
    }

    /// The fields every record of a file of this kind must have (what the producer checks;
    /// other fields pass through): the upload form names them.
    pub fn required_fields(self) -> Vec<&'static str> {
        if self == DatasetKind::Yelp {
            // A Yelp line is read as a review (the server's `records::parse_review`): its
            // fields without a default.
            return vec![
                "review_id",
                "user_id",
                "business_id",
                "stars",
                "text",
                "date",
            ];
        }
        let mut fields = vec![self.id_field(), self.key_field()];
        fields.extend(self.text_field());
        fields.push(self.time_field());
        for dimension in self.dimensions() {
            if !fields.contains(dimension) {
                fields.push(dimension);
            }
        }
        fields
    }

    /// Whether its records carry stars a label can be checked against (Yelp reviews only).
    pub fn has_stars(self) -> bool {
        self == DatasetKind::Yelp
    }

    /// The built-in description of this kind.
    pub fn description(self) -> DatasetDescription {
        let fields = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
        let described = |explanation: &str| DatasetDescription {
            name: self,
            key_field: self.key_field().to_owned(),
            id_field: self.id_field().to_owned(),
            text_field: self.text_field().map(str::to_owned),
            time_field: self.time_field().to_owned(),
            dimensions: fields(self.dimensions()),
            explanation: explanation.to_owned(),
        };
        match self {
            DatasetKind::Yelp => described(
                "Yelp reviews, as seed 000 streams them: each review is keyed by \
                    its business, so one business's reviews stay in one partition, in order. \
                    Sentiment reads the text and can be checked against the stars the reviewer \
                    gave; windows count reviews by sentiment.",
            ),
            DatasetKind::Tweets => described(
                "Tweets, as seeds 001, 003 and 004 stream them: keyed by user, so \
                    one user's tweets stay in order in one partition and a chatty user makes a \
                    hot partition. Sentiment reads the short text, but there are no stars to \
                    check it against: the accuracy matrix stays empty, and cell 3's A/B view \
                    compares two classifiers with each other only (accuracy n/a). The trace \
                    follows a tweet by its tweet_id. The windows count tweets \
                    by sentiment, sessions per user, and list each window's top five hashtags \
                    (a list, so one tweet counts in several groups; partitions' counts add up). \
                    The Parquet sink \
                    writes them to a table of their own (parquet/tweets/, hashtags as a list) \
                    and the search index holds them beside reviews, without stars.",
            ),
            DatasetKind::Companies => described(
                "Companies, as seed 002's faker source makes them: records with \
                    no text at all, keyed by company id. There is nothing for sentiment to \
                    classify, so cell 3 skips them: each goes on to reviews.sentiment unlabelled \
                    and is counted as skipped. The windows count them by country and by industry \
                    (as seed 002 does; partitions' counts add up) instead of by sentiment, with \
                    sessions per company; the Parquet sink and the indexer skip them. The \
                    trace follows a company by its company_id through the hops it takes, and \
                    the A/B view has no text to compare.",
            ),
        }
    }
}

/// What a dataset's records look like to the pipeline: which field keys a record (its
/// partition), which one holds text to classify, which one is its event time (always
/// `YYYY-MM-DD HH:MM:SS`), and which ones a window can be grouped by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetDescription {
    pub name: DatasetKind,
    /// The Kafka key: records with the same value go to the same partition, in order.
    pub key_field: String,
    /// Identifies one record (what the trace and the browser show).
    pub id_field: String,
    /// A string to classify; `None` when the records have no text (companies).
    pub text_field: Option<String>,
    /// Event time, `YYYY-MM-DD HH:MM:SS`.
    pub time_field: String,
    /// Fields to group by: strings, numbers or lists of strings.
    pub dimensions: Vec<String>,
    /// One paragraph: what changes for a learner with this dataset.
    pub explanation: String,
}

/// The rule for a name a dataset is uploaded (or deleted) under: 1–100 of `A-Z a-z 0-9 . _ -`,
/// not starting with `.`, ending in `.jsonl` or `.json`. Shared by the server and the upload
/// control, so the browser can say so before sending the file. The error names `name`.
pub fn check_dataset_name(name: &str) -> Result<(), String> {
    let length = name.chars().count();
    if !(1..=DATASET_NAME_MAX_CHARS).contains(&length) {
        return Err(format!(
            "name: must be 1..={DATASET_NAME_MAX_CHARS} characters, got {length}"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "name: only letters, digits, '.', '_' and '-' are allowed, got {bad:?} in {name:?}"
        ));
    }
    if name.starts_with('.') {
        return Err(format!("name: must not start with '.', got {name:?}"));
    }
    if !(name.ends_with(".jsonl") || name.ends_with(".json")) {
        return Err(format!(
            "name: must end in .jsonl or .json (one review per line), got {name:?}"
        ));
    }
    Ok(())
}

/// A size as people write it, in binary units: 104857600 → "100 MiB", 1536 → "1.5 KiB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
