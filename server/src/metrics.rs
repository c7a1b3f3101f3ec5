//! `GET /metrics`: the pipeline in Prometheus' text exposition format (version 0.0.4), written
//! by hand — a few dozen lines of text do not need a metrics registry, and everything exported
//! is already measured: the stages' counters as `GET /api/pipeline` shows them (read live), the
//! partitions' watermarks and the groups' lag as the once-a-second snapshot holds them; and the
//! stages' latency histograms ([`crate::histogram`]), which they observe per record or request.
//!
//! [`parse`] reads the format back strictly; the tests use it to check what is served.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use app::api::{PipelineStatus, Snapshot, StageState};

use crate::histogram::StageLatency;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Stage counters that go up and down (clients, workers, sizes, durations): exported as gauges,
/// every other counter as a Prometheus counter.
fn is_gauge(counter: &str) -> bool {
    matches!(
        counter,
        "clients"
            | "workers"
            | "last_batch"
            | "files_on_disk"
            | "rows_on_disk"
            | "checkpoint_bytes"
            | "open_windows"
            | "sessions"
            | "dedup_ids"
    ) || counter.ends_with("_ms")
        || counter.contains("_ms_")
}

const STATES: [(StageState, &str); 4] = [
    (StageState::Stopped, "stopped"),
    (StageState::Running, "running"),
    (StageState::Paused, "paused"),
    (StageState::Failed, "failed"),
];

/// The exposition: `live` is the pipeline status now (stage counters), `latencies` the stages'
/// histograms by stage id, `snapshot` the latest sample (topics, groups, search); `broker_up`
/// whether the cluster answered that sample.
pub fn render(
    live: &PipelineStatus,
    latencies: &[(String, StageLatency)],
    snapshot: &Snapshot,
    broker_up: bool,
) -> String {
    let mut out = Exposition::default();
    out.family(
        "pipebook_broker_up",
        "gauge",
        "Whether the Kafka cluster (embedded or external) answered the latest sample.",
    );
    out.sample("pipebook_broker_up", &[], f64::from(u8::from(broker_up)));

    out.family(
        "pipebook_stage_state",
        "gauge",
        "1 for the state each stage is in (stopped, running, paused, failed), 0 for the others.",
    );
    for stage in &live.stages {
        for (state, name) in STATES {
            let value = f64::from(u8::from(stage.state == state));
            out.sample(
                "pipebook_stage_state",
                &[("stage", &stage.id), ("state", name)],
                value,
            );
        }
    }
    out.family(
        "pipebook_stage_events_total",
        "counter",
        "A stage's counters as GET /api/pipeline shows them (since the stage last started).",
    );
    for stage in &live.stages {
        for (name, value) in stage.counters.iter().filter(|(n, _)| !is_gauge(n)) {
            out.sample(
                "pipebook_stage_events_total",
                &[("stage", &stage.id), ("counter", name)],
                *value as f64,
            );
        }
    }
    out.family(
        "pipebook_stage_gauge",
        "gauge",
        "A stage's figures that go up and down (clients, workers, files, durations in ms).",
    );
    for stage in &live.stages {
        for (name, value) in stage.counters.iter().filter(|(n, _)| is_gauge(n)) {
            out.sample(
                "pipebook_stage_gauge",
                &[("stage", &stage.id), ("name", name)],
                *value as f64,
            );
        }
    }

    for (stage, latency) in latencies {
        out.histogram(stage, latency);
    }

    out.family(
        "pipebook_stage_load_ms_per_second",
        "gauge",
        "Milliseconds of each second a consumer stage's loop spends busy, idle (waiting for input) or back-pressured (waiting on its output), over the last 5 s.",
    );
    out.family(
        "pipebook_stage_processing_rate",
        "gauge",
        "Records per second a consumer stage processed, over the last 5 s.",
    );
    for stage in &live.stages {
        let Some(load) = &stage.load else { continue };
        for (phase, ms) in [
            ("busy", load.busy_ms),
            ("idle", load.idle_ms),
            ("backpressured", load.backpressured_ms),
        ] {
            let labels = [("stage", stage.id.as_str()), ("phase", phase)];
            out.sample("pipebook_stage_load_ms_per_second", &labels, ms);
        }
        let labels = [("stage", stage.id.as_str())];
        out.sample(
            "pipebook_stage_processing_rate",
            &labels,
            load.processing_rate,
        );
    }
    if let Some(watermark) = snapshot.aggregate.watermark {
        out.family(
            "pipebook_aggregate_watermark_lag_seconds",
            "gauge",
            "How far the windows stage's watermark trails the wall clock at the latest sample.",
        );
        let lag = (snapshot.at - watermark) as f64 / 1000.0;
        out.sample("pipebook_aggregate_watermark_lag_seconds", &[], lag);
    }

    out.family(
        "pipebook_topic_high_watermark",
        "gauge",
        "The offset the next record appended to a partition will get.",
    );
    out.family(
        "pipebook_topic_low_watermark",
        "gauge",
        "The oldest offset a partition still holds.",
    );
    out.family(
        "pipebook_topic_records_per_second",
        "gauge",
        "Records appended per second, between the last two samples.",
    );
    for topic in &snapshot.topics {
        for p in &topic.partitions {
            let partition = p.id.to_string();
            let labels = [("topic", topic.name.as_str()), ("partition", &partition)];
            out.sample("pipebook_topic_high_watermark", &labels, p.high as f64);
            out.sample("pipebook_topic_low_watermark", &labels, p.low as f64);
            out.sample("pipebook_topic_records_per_second", &labels, p.rate);
        }
    }

    out.family(
        "pipebook_consumer_group_lag",
        "gauge",
        "Records a group has still to read in a partition.",
    );
    out.family(
        "pipebook_consumer_group_lag_seconds",
        "gauge",
        "Age of the next record a group will read in a partition (0 when caught up).",
    );
    out.family(
        "pipebook_consumer_group_committed_offset",
        "gauge",
        "A group's committed offset in a partition (absent when it committed nothing).",
    );
    out.family(
        "pipebook_consumer_group_members",
        "gauge",
        "Members of a group.",
    );
    out.family(
        "pipebook_consumer_group_consume_rate",
        "gauge",
        "Records per second a group committed over the last 30 s.",
    );
    for group in &snapshot.groups {
        for p in &group.partitions {
            let partition = p.partition.to_string();
            let labels = [
                ("group", group.group.as_str()),
                ("topic", &p.topic),
                ("partition", &partition),
            ];
            out.sample("pipebook_consumer_group_lag", &labels, p.lag as f64);
            // Not known at this sample: no series, rather than a made-up 0.
            if let Some(seconds) = p.lag_seconds {
                out.sample("pipebook_consumer_group_lag_seconds", &labels, seconds);
            }
            if let Some(committed) = p.committed {
                out.sample(
                    "pipebook_consumer_group_committed_offset",
                    &labels,
                    committed as f64,
                );
            }
        }
        let labels = [("group", group.group.as_str())];
        out.sample(
            "pipebook_consumer_group_members",
            &labels,
            group.members.len() as f64,
        );
        out.sample(
            "pipebook_consumer_group_consume_rate",
            &labels,
            group.lag.consume_rate,
        );
    }

    if let Some(documents) = snapshot.search.documents {
        out.family(
            "pipebook_search_documents",
            "gauge",
            "Documents in the search index.",
        );
        out.sample("pipebook_search_documents", &[], documents as f64);
    }
    out.family(
        "pipebook_tails_open",
        "gauge",
        "Live tails (GET /api/kafka/topics/{topic}/tail) open now, over every viewer.",
    );
    out.sample(
        "pipebook_tails_open",
        &[],
        crate::kafka::tail::open_count() as f64,
    );
    out.family(
        "pipebook_sample_timestamp_seconds",
        "gauge",
        "When the sample the topic and group figures come from was taken.",
    );
    out.sample(
        "pipebook_sample_timestamp_seconds",
        &[],
        snapshot.at as f64 / 1000.0,
    );
    out.finish()
}

/// The text being written: each family's `# HELP` and `# TYPE`, then its samples. Families are
/// declared up front and written in declaration order with their samples grouped, as the format
/// requires.
#[derive(Default)]
struct Exposition {
    order: Vec<String>,
    heads: BTreeMap<String, String>,
    samples: BTreeMap<String, String>,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        if self.heads.contains_key(name) {
            return;
        }
        self.order.push(name.to_owned());
        self.heads.insert(
            name.to_owned(),
            format!(
                "# HELP {name} {}\n# TYPE {name} {kind}\n",
                escape_help(help)
            ),
        );
    }

    /// A histogram family: its cumulative `_bucket` series (`le` ascending, `+Inf` last, equal
    /// to `_count`), `_sum` in seconds and `_count`, labelled with the stage.
    fn histogram(&mut self, stage: &str, latency: &StageLatency) {
        let family = latency.metric;
        self.family(family, "histogram", latency.help);
        let bucket = format!("{family}_bucket");
        for (le, count) in latency.histogram.cumulative() {
            let le = format_value(le);
            let labels = [("stage", stage), ("le", le.as_str())];
            self.series(family, &bucket, &labels, count as f64);
        }
        let labels = [("stage", stage)];
        let sum = latency.histogram.sum_seconds();
        self.series(family, &format!("{family}_sum"), &labels, sum);
        let count = latency.histogram.count() as f64;
        self.series(family, &format!("{family}_count"), &labels, count);
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.series(name, name, labels, value);
    }

    /// A sample of `family` (a histogram's series are named apart from their family).
    fn series(&mut self, family: &str, name: &str, labels: &[(&str, &str)], value: f64) {
        let line = self.samples.entry(family.to_owned()).or_default();
        line.push_str(name);
        if !labels.is_empty() {
            line.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                let _ = write!(line, "{key}=\"{}\"", escape_label(value));
            }
            line.push('}');
        }
        let _ = writeln!(line, " {}", format_value(value));
    }

    fn finish(self) -> String {
        let mut out = String::new();
        for name in &self.order {
            if let Some(samples) = self.samples.get(name) {
                out.push_str(&self.heads[name]);
                out.push_str(samples);
            }
        }
        out
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\n', "\\n")
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        value.to_string()
    }
}

/// One sample read back by [`parse`].
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The value of the sample named `name` carrying every one of `labels` (it may carry more).
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// Reads the text format strictly: every sample belongs to a family declared by a `# TYPE`
/// line before it (a histogram's `_bucket`, `_sum` and `_count` to the histogram), families are
/// not interleaved, names and label names are valid, label values are quoted and escaped,
/// values are numbers, and no series appears twice.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut seen = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let at = |m: &str| format!("line {}: {m}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !valid_name(name) {
                        return Err(at("bad metric name"));
                    }
                    if !matches!(
                        kind,
                        "counter" | "gauge" | "histogram" | "summary" | "untyped"
                    ) {
                        return Err(at("unknown type"));
                    }
                    if typed.insert(name.to_owned(), kind.to_owned()).is_some() {
                        return Err(at("family typed twice"));
                    }
                    if let Some(previous) = current.replace(name.to_owned()) {
                        finished.insert(previous);
                    }
                }
                (Some("HELP"), Some(name), _) if valid_name(name) => {}
                _ => return Err(at("unknown comment")),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| at("no value"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other.parse().map_err(|_| at("value is not a number"))?,
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .ok_or_else(|| at("unclosed labels"))?;
                (name, parse_labels(body).map_err(|m| at(&m))?)
            }
            None => (series, BTreeMap::new()),
        };
        if !valid_name(name) {
            return Err(at("bad metric name"));
        }
        let of_current = current.as_deref().is_some_and(|family| {
            family == name
                || (matches!(
                    typed.get(family).map(String::as_str),
                    Some("histogram" | "summary")
                ) && name
                    .strip_prefix(family)
                    .is_some_and(|suffix| matches!(suffix, "_bucket" | "_sum" | "_count")))
        });
        if !of_current {
            return Err(at(if finished.contains(name) {
                "family interleaved with another"
            } else {
                "sample without a # TYPE line before it"
            }));
        }
        if !seen.insert((name.to_owned(), labels.clone())) {
            return Err(at("series repeated"));
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(samples)
}

fn parse_labels(body: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if !valid_name(&key) || key.contains(':') {
            return Err(format!("bad label name {key:?}"));
        }
        if chars.next() != Some('"') {
            return Err(format!("label {key} is not quoted"));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    _ => return Err(format!("label {key}: bad escape")),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => return Err(format!("label {key}: unterminated")),
            }
        }
        if labels.insert(key.clone(), value).is_some() {
            return Err(format!("label {key} twice"));
        }
        match chars.next() {
            Some(',') | None => {}
            Some(c) => return Err(format!("unexpected {c:?} after label {key}")),
        }
    }
    Ok(labels)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::api::{GroupInfo, GroupPartition, StageStatus};

    fn status() -> PipelineStatus {
        PipelineStatus {
            stages: vec![StageStatus {
                id: "producer".into(),
                state: StageState::Running,
                counters: BTreeMap::from([("acked".into(), 42), ("bulk_ms_p99".into(), 7)]),
                ..StageStatus::default()
            }],
            ..PipelineStatus::default()
        }
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            at: 1_500,
            groups: vec![GroupInfo {
                group: "we\"ird\\group\nname".into(),
                state: "Empty".into(),
                members: vec![],
                partitions: vec![GroupPartition {
                    topic: "reviews".into(),
                    partition: 2,
                    committed: None,
                    high: 10,
                    lag: 10,
                    lag_seconds: Some(2.5),
                }],
                lag: Default::default(),
                state_history: Vec::new(),
            }],
            ..Snapshot::default()
        }
    }

    #[test]
    fn what_is_rendered_parses_back_to_the_same_figures() {
        let histogram = crate::histogram::LatencyHistogram::default();
        histogram.observe(std::time::Duration::from_millis(3));
        histogram.observe(std::time::Duration::from_secs(2));
        let latency = StageLatency {
            metric: "pipebook_producer_ack_latency_seconds",
            help: "Ack latency.",
            counter: "acked",
            histogram: histogram.snapshot(),
        };
        let text = render(
            &status(),
            &[("producer".into(), latency)],
            &snapshot(),
            true,
        );
        let samples = parse(&text).expect("valid exposition");
        // The histogram: cumulative buckets with `le` as Prometheus writes it, `_sum`, `_count`.
        let ack = "pipebook_producer_ack_latency_seconds";
        let bucket = |le: &str| value(&samples, &format!("{ack}_bucket"), &[("le", le)]);
        assert_eq!(bucket("0.0025"), Some(0.0));
        assert_eq!(bucket("0.005"), Some(1.0));
        assert_eq!(bucket("1"), Some(1.0));
        assert_eq!(bucket("2.5"), Some(2.0));
        assert_eq!(bucket("+Inf"), Some(2.0));
        let count = value(&samples, &format!("{ack}_count"), &[("stage", "producer")]);
        assert_eq!(count, Some(2.0));
        let sum = value(&samples, &format!("{ack}_sum"), &[]).expect("sum");
        assert!((sum - 2.003).abs() < 1e-9, "{sum}");
        assert!(text.contains(&format!("# TYPE {ack} histogram\n")));
        let find = |name: &str, label: (&str, &str)| value(&samples, name, &[label]);
        assert_eq!(
            find("pipebook_stage_events_total", ("counter", "acked")),
            Some(42.0)
        );
        assert_eq!(
            find("pipebook_stage_gauge", ("name", "bulk_ms_p99")),
            Some(7.0)
        );
        assert_eq!(
            find("pipebook_stage_state", ("state", "running")),
            Some(1.0)
        );
        assert_eq!(find("pipebook_stage_state", ("state", "failed")), Some(0.0));
        // Label values are escaped and come back as they were.
        let group = "we\"ird\\group\nname";
        assert_eq!(
            find("pipebook_consumer_group_lag_seconds", ("group", group)),
            Some(2.5)
        );
        assert_eq!(
            find("pipebook_consumer_group_lag", ("group", group)),
            Some(10.0)
        );
        assert_eq!(
            find("pipebook_consumer_group_committed_offset", ("group", group)),
            None
        );
        assert!(
            samples
                .iter()
                .any(|s| s.name == "pipebook_sample_timestamp_seconds" && s.value == 1.5)
        );
        assert!(
            samples
                .iter()
                .any(|s| s.name == "pipebook_broker_up" && s.value == 1.0)
        );
    }

    #[test]
    fn the_parser_refuses_what_prometheus_would() {
        for bad in [
            "x 1\n",
            "# TYPE x gauge\nx{a=b} 1\n",
            "# TYPE x gauge\nx one\n",
            "# TYPE x gauge\nx 1\nx 2\n",
            "# TYPE x gauge\n# TYPE y gauge\ny 1\nx 1\n",
            "# TYPE x gauge\nx{a=\"1\\q\"} 1\n",
            "# TYPE 1x gauge\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse("# HELP x a\n# TYPE x counter\nx{a=\"1\",b=\"\"} 2.5\nx 3\n").is_ok());
        // A histogram's series carry its name with a suffix; another family's do not.
        let histogram = "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n";
        assert!(parse(histogram).is_ok());
        assert!(parse("# TYPE g gauge\ng_count 1\n").is_err());
    }
}
