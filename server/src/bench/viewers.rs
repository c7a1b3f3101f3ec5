//! `pipebook bench --viewers N`: a room watching one pipeline through the live feed.
//!
//! Starts a server (this binary, or `--server`) as a child process on 127.0.0.1, on ports it
//! picks, with a temporary data dir; runs every stage with the streamer at 1,000 reviews/s; then,
//! in three phases of the same length — no viewer, N viewers on `/api/events`, no viewer again —
//! measures the pipeline's throughput (from `GET /api/pipeline`), the server's CPU time and RSS
//! (from `/proc/<pid>`), and the bytes each viewer receives on its TCP socket (HTTP head, chunk
//! framing and compressed events: everything above TCP). Last it replays the events one viewer
//! decoded under other encodings, to show what each choice of the feed's design buys. Bounded in
//! time, stops by itself, kills only the server it started. Nothing is asserted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use app::api::{PipelineStatus, SNAPSHOT_PARTS, Snapshot, SnapshotDelta};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// What to run.
#[derive(Debug, Clone)]
pub struct ViewerOptions {
    pub viewers: usize,
    /// Length of each phase.
    pub secs: u64,
    /// How long the pipeline runs before the first phase (windows and sessions pile up).
    pub warmup_secs: u64,
    /// The `pipebook` binary to serve with (another build's, to measure it the same way).
    pub server: PathBuf,
    /// Send `Accept-Encoding: gzip`, as browsers do.
    pub gzip: bool,
    /// Streamer rate, reviews/s.
    pub rate: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ViewerBenchError {
    #[error("cannot run the server {path}: {source}")]
    Spawn {
        path: String,
        source: std::io::Error,
    },
    #[error("the server did not say where it serves within 60 s (is {0} a pipebook binary?)")]
    NoAddress(String),
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("{what}: HTTP {status}: {body}")]
    Refused {
        what: String,
        status: u16,
        body: String,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Pipeline figures of one phase.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub label: String,
    pub viewers: usize,
    pub secs: f64,
    /// Reviews per second acknowledged by Kafka (producer), labelled (sentiment), counted in
    /// windows (aggregate) and indexed (indexer).
    pub acked_per_s: f64,
    pub labelled_per_s: f64,
    pub counted_per_s: f64,
    pub indexed_per_s: f64,
    /// Server CPU time over the phase, in % of one core.
    pub cpu_percent: f64,
    pub rss_mean_mib: f64,
    pub rss_max_mib: f64,
    /// Bytes per viewer per second on the wire: mean, min, max over the viewers.
    pub wire_per_viewer: Option<(f64, f64, f64)>,
    /// Bytes a viewer received in its first 500 ms: response head and first (whole) snapshot.
    pub on_connect_bytes: Option<f64>,
}

/// What one viewer's decoded events show.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub content_encoding: Option<String>,
    pub events: usize,
    pub snapshot_events: usize,
    pub parts_events: usize,
    /// Data bytes of the first (whole) snapshot event.
    pub first_snapshot_bytes: usize,
    /// Uncompressed event-stream bytes per second.
    pub decoded_per_s: f64,
    /// How often each part was sent, of the parts events.
    pub part_counts: Vec<(String, usize)>,
    /// Size of each part in the last snapshot rebuilt, bytes of JSON.
    pub part_sizes: Vec<(String, usize)>,
}

/// Bytes per second one viewer would get under one encoding, replayed from the probe.
#[derive(Debug, Clone, Serialize)]
pub struct Encoding {
    pub name: String,
    pub raw_per_s: f64,
    pub gzip1_per_s: f64,
    pub gzip6_per_s: f64,
    /// CPU time of gzip level 1 for one viewer, microseconds per second of feed.
    pub gzip1_us_per_s: f64,
    pub gzip6_us_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ViewerReport {
    pub server: String,
    pub viewers: usize,
    pub rate: u32,
    pub gzip: bool,
    pub warmup_secs: u64,
    pub phases: Vec<Phase>,
    pub probe: Option<Probe>,
    pub encodings: Vec<Encoding>,
}

pub async fn run(options: &ViewerOptions) -> Result<ViewerReport, ViewerBenchError> {
    let dir = tempfile::tempdir()?;
    let mut server = Server::start(&options.server, dir.path()).await?;
    let result = measure(&server, options).await;
    server.stop().await;
    result
}

async fn measure(
    server: &Server,
    options: &ViewerOptions,
) -> Result<ViewerReport, ViewerBenchError> {
    let http = reqwest::Client::new();
    server.wait_healthy(&http).await?;
    let rate = options.rate;
    server
        .post(&http, "/api/stages/streamer/start", json!({"rate": rate}))
        .await?;
    // Every other stage of the lesson with its defaults, and the Parquet sink.
    server
        .post(&http, "/api/pipeline/start-all", json!({}))
        .await?;
    server
        .post(&http, "/api/stages/parquet/start", json!({}))
        .await?;
    eprintln!(
        "[bench] every stage running at {rate} reviews/s; warming up {} s",
        options.warmup_secs
    );
    tokio::time::sleep(Duration::from_secs(options.warmup_secs)).await;

    let secs = Duration::from_secs(options.secs);
    let mut phases = Vec::new();
    let mut probe_bytes = None;
    for (label, viewers) in [
        ("no viewer", 0),
        ("viewers", options.viewers),
        ("no viewer, after", 0),
    ] {
        eprintln!("[bench] {label}: {viewers} viewers for {} s", options.secs);
        let (phase, probe) = server
            .phase(&http, label, viewers, secs, options.gzip)
            .await?;
        phases.push(phase);
        probe_bytes = probe_bytes.or(probe);
    }
    let decoded = probe_bytes.map(|bytes| decode(&bytes));
    let probe = decoded.as_ref().map(|d| d.probe(options.secs as f64));
    let encodings = decoded
        .map(|d| replay(&d.snapshots, options.secs as f64))
        .unwrap_or_default();
    Ok(ViewerReport {
        server: options.server.display().to_string(),
        viewers: options.viewers,
        rate,
        gzip: options.gzip,
        warmup_secs: options.warmup_secs,
        phases,
        probe,
        encodings,
    })
}

/// The server under test: a child process, and where it serves.
struct Server {
    child: tokio::process::Child,
    pid: u32,
    addr: SocketAddr,
}

impl Server {
    async fn start(bin: &Path, data_dir: &Path) -> Result<Server, ViewerBenchError> {
        let spawn_error = |source| ViewerBenchError::Spawn {
            path: bin.display().to_string(),
            source,
        };
        let mut child = tokio::process::Command::new(bin)
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--broker-addr",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_error)?;
        let no_address = || ViewerBenchError::NoAddress(bin.display().to_string());
        let pid = child.id().ok_or_else(no_address)?;
        let stderr = child.stderr.take().ok_or_else(no_address)?;
        let mut lines = BufReader::new(stderr).lines();
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = serving_addr(&line) {
                    return Some(addr);
                }
            }
            None
        })
        .await;
        let Ok(Some(addr)) = found else {
            let _ = child.kill().await;
            return Err(no_address());
        };
        // Keep reading its log, so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server { child, pid, addr })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn wait_healthy(&self, http: &reqwest::Client) -> Result<(), ViewerBenchError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match http.get(self.url("/api/health")).send().await {
                Ok(response) if response.status().is_success() => return Ok(()),
                Err(error) if Instant::now() > deadline => return Err(error.into()),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    async fn post(
        &self,
        http: &reqwest::Client,
        path: &str,
        body: Value,
    ) -> Result<(), ViewerBenchError> {
        let response = http.post(self.url(path)).json(&body).send().await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        Err(ViewerBenchError::Refused {
            what: format!("POST {path}"),
            status: status.as_u16(),
            body: response.text().await.unwrap_or_default(),
        })
    }

    async fn pipeline(&self, http: &reqwest::Client) -> Result<PipelineStatus, ViewerBenchError> {
        Ok(http
            .get(self.url("/api/pipeline"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// One phase: `viewers` connections held for `length`; the first one's bytes are kept.
    async fn phase(
        &self,
        http: &reqwest::Client,
        label: &str,
        viewers: usize,
        length: Duration,
        gzip: bool,
    ) -> Result<(Phase, Option<Vec<u8>>), ViewerBenchError> {
        let before = self.pipeline(http).await?;
        let cpu_before = cpu_seconds(self.pid);
        let started = Instant::now();
        let until = started + length;
        let connections: Vec<_> = (0..viewers)
            .map(|i| tokio::spawn(watch(self.addr, until, gzip, i == 0)))
            .collect();
        let mut rss = Vec::new();
        while Instant::now() < until {
            rss.extend(rss_mib(self.pid));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let mut received = Vec::new();
        for connection in connections {
            if let Ok(Ok(bytes)) = connection.await {
                received.push(bytes);
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let after = self.pipeline(http).await?;
        let cpu = cpu_seconds(self.pid).zip(cpu_before).map(|(a, b)| a - b);
        let per_s = |stage: &str, counter: &str| {
            after
                .counter(stage, counter)
                .saturating_sub(before.counter(stage, counter)) as f64
                / secs
        };
        let wire: Vec<f64> = received.iter().map(|r| r.total as f64 / secs).collect();
        let wire_per_viewer = (!wire.is_empty()).then(|| {
            let mean = wire.iter().sum::<f64>() / wire.len() as f64;
            let min = wire.iter().copied().fold(f64::INFINITY, f64::min);
            let max = wire.iter().copied().fold(0.0, f64::max);
            (mean, min, max)
        });
        let on_connect_bytes = (!received.is_empty()).then(|| {
            received.iter().map(|r| r.on_connect as f64).sum::<f64>() / received.len() as f64
        });
        if viewers > 0 && received.len() < viewers {
            eprintln!(
                "[bench] only {} of {viewers} viewers stayed connected",
                received.len()
            );
        }
        let phase = Phase {
            label: label.to_owned(),
            viewers,
            secs,
            acked_per_s: per_s("producer", "acked"),
            labelled_per_s: per_s("sentiment", "produced"),
            counted_per_s: per_s("aggregate", "counted"),
            indexed_per_s: per_s("indexer", "indexed"),
            cpu_percent: cpu.map_or(0.0, |c| c / secs * 100.0),
            rss_mean_mib: rss.iter().sum::<f64>() / rss.len().max(1) as f64,
            rss_max_mib: rss.iter().copied().fold(0.0, f64::max),
            wire_per_viewer,
            on_connect_bytes,
        };
        let probe = received.into_iter().find_map(|r| r.kept);
        Ok((phase, probe))
    }

    /// Kills the server this bench started (its PID only).
    async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// `…serving http://127.0.0.1:41234…` in the server's log → the address.
fn serving_addr(line: &str) -> Option<SocketAddr> {
    const MARK: &str = "serving http://";
    let rest = &line[line.find(MARK)? + MARK.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Resident memory of a process, MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse::<f64>()
        .ok()?;
    Some(kib / 1024.0)
}

/// User + system CPU time of a process, seconds (`/proc/<pid>/stat` counts in USER_HZ, which
/// is 100 on Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// What one viewer's socket received.
struct Received {
    total: usize,
    on_connect: usize,
    /// Every byte, for the viewer whose events are decoded afterwards.
    kept: Option<Vec<u8>>,
}

/// One viewer: a raw HTTP/1.1 request on its own TCP connection, bytes counted as they come.
async fn watch(
    addr: SocketAddr,
    until: Instant,
    gzip: bool,
    keep: bool,
) -> std::io::Result<Received> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await?;
    let encoding = if gzip {
        "Accept-Encoding: gzip, deflate\r\n"
    } else {
        ""
    };
    let request = format!(
        "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{encoding}\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut received = Received {
        total: 0,
        on_connect: 0,
        kept: keep.then(Vec::new),
    };
    loop {
        let read = tokio::time::timeout_at(until.into(), stream.read(&mut buffer)).await;
        let Ok(read) = read else { break };
        let n = read?;
        if n == 0 {
            break;
        }
        received.total += n;
        if started.elapsed() < Duration::from_millis(500) {
            received.on_connect += n;
        }
        if let Some(kept) = &mut received.kept {
            kept.extend_from_slice(&buffer[..n]);
        }
    }
    Ok(received)
}

/// A viewer's events, decoded: the snapshots it held after each.
struct Decoded {
    content_encoding: Option<String>,
    events: Vec<(String, String)>,
    decoded_bytes: usize,
    snapshots: Vec<Snapshot>,
}

/// HTTP head, chunked framing and gzip undone; events read and applied as a browser would.
fn decode(wire: &[u8]) -> Decoded {
    let head_end = wire
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(wire.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&wire[..head_end]).to_ascii_lowercase();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    let content_encoding = header("content-encoding:");
    let body = &wire[head_end..];
    let body = if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        dechunk(body)
    } else {
        body.to_vec()
    };
    let text = if content_encoding.as_deref() == Some("gzip") {
        let mut decoder = flate2::write::GzDecoder::new(Vec::new());
        use std::io::Write;
        let _ = decoder.write_all(&body);
        let _ = decoder.flush();
        String::from_utf8_lossy(decoder.get_ref()).into_owned()
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    let mut events = Vec::new();
    for block in text.split("\n\n") {
        let field = |name: &str| block.lines().find_map(|l| l.strip_prefix(name));
        if let (Some(kind), Some(data)) = (field("event: "), field("data: ")) {
            events.push((kind.to_owned(), data.to_owned()));
        }
    }
    let mut snapshots: Vec<Snapshot> = Vec::new();
    for (kind, data) in &events {
        let next = match (kind.as_str(), snapshots.last()) {
            ("snapshot", _) => serde_json::from_str(data).ok(),
            ("parts", Some(last)) => serde_json::from_str::<SnapshotDelta>(data).ok().map(|d| {
                let mut next = last.clone();
                next.apply(d);
                next
            }),
            _ => None,
        };
        snapshots.extend(next);
    }
    Decoded {
        content_encoding,
        decoded_bytes: text.len(),
        events,
        snapshots,
    }
}

/// The data of an HTTP/1.1 chunked body (a last, cut chunk kept as far as it goes).
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&body[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok());
        let Some(size) = size.filter(|s| *s > 0) else {
            break;
        };
        let data = &body[line_end + 2..];
        let take = size.min(data.len());
        out.extend_from_slice(&data[..take]);
        body = data.get(size + 2..).unwrap_or_default();
    }
    out
}

impl Decoded {
    fn probe(&self, secs: f64) -> Probe {
        let count = |kind: &str| self.events.iter().filter(|(k, _)| k == kind).count();
        let mut part_counts: Vec<(String, usize)> =
            SNAPSHOT_PARTS.iter().map(|p| (p.to_string(), 0)).collect();
        for (kind, data) in &self.events {
            let Ok(value) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            if kind != "parts" {
                continue;
            }
            for (name, n) in &mut part_counts {
                if value["parts"].get(name.as_str()).is_some() {
                    *n += 1;
                }
            }
        }
        let part_sizes = self
            .snapshots
            .last()
            .and_then(|s| serde_json::to_value(s).ok())
            .map(|value| {
                SNAPSHOT_PARTS
                    .iter()
                    .map(|p| (p.to_string(), value[*p].to_string().len()))
                    .collect()
            })
            .unwrap_or_default();
        Probe {
            content_encoding: self.content_encoding.clone(),
            events: self.events.len(),
            snapshot_events: count("snapshot"),
            parts_events: count("parts"),
            first_snapshot_bytes: self
                .events
                .iter()
                .find(|(k, _)| k == "snapshot")
                .map_or(0, |(_, d)| d.len()),
            decoded_per_s: self.decoded_bytes as f64 / secs,
            part_counts,
            part_sizes,
        }
    }
}

/// The snapshots one viewer held, sent again under each encoding the feed could use.
fn replay(snapshots: &[Snapshot], secs: f64) -> Vec<Encoding> {
    let values: Vec<Value> = snapshots
        .iter()
        .filter_map(|s| serde_json::to_value(s).ok())
        .collect();
    let Some(first) = values.first() else {
        return vec![];
    };
    let event = |kind: &str, data: &Value| format!("event: {kind}\ndata: {data}\n\n");
    let mut whole = vec![event("snapshot", first)];
    let mut parts = vec![event("snapshot", first)];
    let mut patches = vec![event("snapshot", first)];
    for pair in values.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        whole.push(event("snapshot", after));
        let mut changed = serde_json::Map::new();
        let mut patched = serde_json::Map::new();
        for part in SNAPSHOT_PARTS {
            if before[part] != after[part] {
                changed.insert(part.to_owned(), after[part].clone());
                patched.insert(part.to_owned(), merge_patch(&before[part], &after[part]));
            }
        }
        let at = after["at"].clone();
        parts.push(event("parts", &json!({"at": at, "parts": changed})));
        patches.push(event("patch", &json!({"at": at, "parts": patched})));
    }
    [
        ("whole snapshot every second", whole),
        ("changed parts (the feed)", parts),
        ("changed parts as JSON merge patches", patches),
    ]
    .into_iter()
    .map(|(name, events)| encoding(name, &events, secs))
    .collect()
}

fn encoding(name: &str, events: &[String], secs: f64) -> Encoding {
    let raw: usize = events.iter().map(String::len).sum();
    let (gzip1, time1) = gzip_stream(events, 1);
    let (gzip6, time6) = gzip_stream(events, 6);
    Encoding {
        name: name.to_owned(),
        raw_per_s: raw as f64 / secs,
        gzip1_per_s: gzip1 as f64 / secs,
        gzip6_per_s: gzip6 as f64 / secs,
        gzip1_us_per_s: time1.as_secs_f64() * 1e6 / secs,
        gzip6_us_per_s: time6.as_secs_f64() * 1e6 / secs,
    }
}

/// Compressed size of events sent through one gzip stream with a flush after each, and the
/// time that took.
fn gzip_stream(events: &[String], level: u32) -> (usize, Duration) {
    use std::io::Write;
    let started = Instant::now();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    let mut size = 0;
    for event in events {
        let _ = encoder.write_all(event.as_bytes());
        let _ = encoder.flush();
        size += std::mem::take(encoder.get_mut()).len();
    }
    (size, started.elapsed())
}

/// An RFC 7386 merge patch that turns `before` into `after` (objects field by field; anything
/// else whole; a removed field is `null`).
fn merge_patch(before: &Value, after: &Value) -> Value {
    match (before, after) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = serde_json::Map::new();
            for (key, value) in new {
                match old.get(key) {
                    Some(was) if was == value => {}
                    Some(was) => {
                        patch.insert(key.clone(), merge_patch(was, value));
                    }
                    None => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            for key in old.keys().filter(|k| !new.contains_key(*k)) {
                patch.insert(key.clone(), Value::Null);
            }
            Value::Object(patch)
        }
        _ => after.clone(),
    }
}

impl ViewerReport {
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "Server `{}`, streamer at {} reviews/s, every stage running, warmed up {} s; \
             viewers {} gzip.\n\n",
            self.server,
            self.rate,
            self.warmup_secs,
            if self.gzip { "accept" } else { "refuse" },
        );
        out.push_str(
            "| phase | viewers | s | acked/s | labelled/s | counted/s | indexed/s | server CPU % | RSS mean MiB | RSS max MiB | wire B/s per viewer: mean (min–max) | on connect B |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |\n",
        );
        for p in &self.phases {
            let wire = p
                .wire_per_viewer
                .map_or("—".to_owned(), |(mean, min, max)| {
                    format!("{mean:.0} ({min:.0}–{max:.0})")
                });
            let connect = p
                .on_connect_bytes
                .map_or("—".to_owned(), |b| format!("{b:.0}"));
            out.push_str(&format!(
                "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {wire} | {connect} |\n",
                p.label, p.viewers, p.secs, p.acked_per_s, p.labelled_per_s, p.counted_per_s,
                p.indexed_per_s, p.cpu_percent, p.rss_mean_mib, p.rss_max_mib,
            ));
        }
        if let Some(probe) = &self.probe {
            out.push_str(&format!(
                "\nOne viewer's events: {} ({} snapshot, {} parts), content-encoding {}, first \
                 snapshot {} B of JSON, {:.0} B/s decoded.\n",
                probe.events,
                probe.snapshot_events,
                probe.parts_events,
                probe.content_encoding.as_deref().unwrap_or("none"),
                probe.first_snapshot_bytes,
                probe.decoded_per_s,
            ));
            let list = |pairs: &[(String, usize)]| {
                pairs
                    .iter()
                    .map(|(name, n)| format!("{name} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push_str(&format!(
                "Parts events carrying each part: {}.\nPart sizes in the last snapshot (B of JSON): {}.\n",
                list(&probe.part_counts),
                list(&probe.part_sizes),
            ));
        }
        if !self.encodings.is_empty() {
            out.push_str(
                "\n| encoding of the same snapshots | raw B/s | gzip -1 B/s | gzip -6 B/s | gzip -1 CPU µs/s | gzip -6 CPU µs/s |\n\
                 | --- | ---: | ---: | ---: | ---: | ---: |\n",
            );
            for e in &self.encodings {
                out.push_str(&format!(
                    "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |\n",
                    e.name,
                    e.raw_per_s,
                    e.gzip1_per_s,
                    e.gzip6_per_s,
                    e.gzip1_us_per_s,
                    e.gzip6_us_per_s,
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_address_is_read_from_its_log() {
        let line =
            "2026-01-01T00:00:00Z  INFO pipebook: Pipebook is serving http://127.0.0.1:41234";
        assert_eq!(serving_addr(line), "127.0.0.1:41234".parse().ok());
        assert_eq!(serving_addr("INFO starting"), None);
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
        assert_eq!(dechunk(b"5\r\nab"), b"ab", "a cut chunk keeps what came");
    }

    #[test]
    fn a_merge_patch_holds_what_changed() {
        let before = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2], "gone": true});
        let after = json!({"a": 1, "b": {"c": 2, "d": 4}, "e": [1, 2, 3]});
        assert_eq!(
            merge_patch(&before, &after),
            json!({"b": {"d": 4}, "e": [1, 2, 3], "gone": null})
        );
    }
}
