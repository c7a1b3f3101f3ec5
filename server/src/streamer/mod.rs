//! Stage 1 · the socket streamer: a TCP server on 127.0.0.1 that writes review JSON lines in
//! chunks at a chosen rate, from a Yelp-format file or the built-in generator. It plays the part of
//! seed 000's socket source; the producer stage is its client.

pub mod generator;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use app::api::StreamerConfig;
use tokio::fs::File;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::stage::StageContext;
use generator::ReviewGenerator;

pub const MAX_RATE: u32 = 1_000_000;
pub const MAX_CHUNK: u32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum StreamerError {
    #[error("{field}: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Source {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Checks a config before anything starts; errors name the offending field.
pub fn validate(config: &StreamerConfig) -> Result<(), StreamerError> {
    let bad = |field, message: String| Err(StreamerError::Config { field, message });
    if config.rate > MAX_RATE {
        return bad(
            "rate",
            format!("must be 0..={MAX_RATE} reviews/s, got {}", config.rate),
        );
    }
    if !(1..=MAX_CHUNK).contains(&config.chunk_size) {
        return bad(
            "chunk_size",
            format!("must be 1..={MAX_CHUNK}, got {}", config.chunk_size),
        );
    }
    if config.listen.parse::<SocketAddr>().is_err() {
        return bad(
            "listen",
            format!("not a socket address: {:?}", config.listen),
        );
    }
    if config.source != "generator" && !PathBuf::from(&config.source).is_file() {
        return bad(
            "source",
            format!(
                "expected \"generator\" or a readable file, got {:?}",
                config.source
            ),
        );
    }
    Ok(())
}

/// Counters of the streamer, shown in its cell.
#[derive(Debug, Default)]
pub struct StreamerMetrics {
    pub sent: AtomicU64,
    pub chunks: AtomicU64,
    pub bytes: AtomicU64,
    pub clients: AtomicU64,
    /// Where the streamer listens, once bound.
    pub listening: Mutex<Option<SocketAddr>>,
}

impl StreamerMetrics {
    pub fn reset(&self) {
        for counter in [&self.sent, &self.chunks, &self.bytes, &self.clients] {
            counter.store(0, Ordering::Relaxed);
        }
        self.set_listening(None);
    }

    pub fn counters(&self) -> BTreeMap<String, u64> {
        BTreeMap::from([
            ("sent".to_owned(), self.sent.load(Ordering::Relaxed)),
            ("chunks".to_owned(), self.chunks.load(Ordering::Relaxed)),
            ("bytes".to_owned(), self.bytes.load(Ordering::Relaxed)),
            ("clients".to_owned(), self.clients.load(Ordering::Relaxed)),
        ])
    }

    pub fn listening(&self) -> Option<SocketAddr> {
        match self.listening.lock() {
            Ok(addr) => *addr,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    fn set_listening(&self, addr: Option<SocketAddr>) {
        match self.listening.lock() {
            Ok(mut slot) => *slot = addr,
            Err(poisoned) => *poisoned.into_inner() = addr,
        }
    }
}

/// Where review lines come from: one pass over a file, or the generator up to a limit.
enum Source {
    Generator {
        generator: Box<ReviewGenerator>,
        remaining: Option<u64>,
    },
    File(Lines<BufReader<File>>),
}

impl Source {
    async fn open(config: &StreamerConfig) -> Result<Self, StreamerError> {
        if config.source == "generator" {
            return Ok(Source::Generator {
                generator: Box::new(ReviewGenerator::new(config.seed)),
                remaining: config.limit,
            });
        }
        let path = PathBuf::from(&config.source);
        let file = File::open(&path)
            .await
            .map_err(|source| StreamerError::Source { path, source })?;
        Ok(Source::File(BufReader::new(file).lines()))
    }

    /// The next line to send, without its newline; `None` at the end.
    async fn next_line(&mut self) -> Result<Option<String>, std::io::Error> {
        match self {
            Source::Generator {
                generator,
                remaining,
            } => {
                if *remaining == Some(0) {
                    return Ok(None);
                }
                if let Some(left) = remaining {
                    *left -= 1;
                }
                let review = generator.next();
                Ok(review.and_then(|r| serde_json::to_string(&r).ok()))
            }
            Source::File(lines) => loop {
                match lines.next_line().await? {
                    Some(line) if line.trim().is_empty() => continue,
                    other => return Ok(other),
                }
            },
        }
    }
}

/// The run loop: listen, serve one client at a time from one shared cursor over the source (a
/// client that reconnects continues where the last one stopped), until the source ends or the
/// stage is stopped.
pub async fn run(
    config: StreamerConfig,
    metrics: std::sync::Arc<StreamerMetrics>,
    ctx: StageContext,
) -> Result<(), StreamerError> {
    metrics.reset();
    let listener =
        TcpListener::bind(&config.listen)
            .await
            .map_err(|source| StreamerError::Bind {
                addr: config.listen.clone(),
                source,
            })?;
    let addr = listener
        .local_addr()
        .map_err(|source| StreamerError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
    metrics.set_listening(Some(addr));
    let mut source = Source::open(&config).await?;
    ctx.set_detail(format!("listening on {addr}, waiting for a client"));
    loop {
        let accepted = tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                ctx.report_error(format!("accept failed: {error}"));
                continue;
            }
        };
        metrics.clients.fetch_add(1, Ordering::Relaxed);
        ctx.set_detail(format!("streaming to {peer} from {addr}"));
        match serve_client(socket, &config, &mut source, &metrics, &ctx).await {
            Ok(Served::SourceEnded) => {
                ctx.set_detail(format!(
                    "finished: sent {} reviews",
                    metrics.sent.load(Ordering::Relaxed)
                ));
                break;
            }
            Ok(Served::Cancelled) => break,
            Err(error) => {
                // The client went away; keep the cursor and wait for it to come back.
                ctx.report_error(format!("client {peer} disconnected: {error}"));
                ctx.set_detail(format!("listening on {addr}, waiting for a client"));
            }
        }
    }
    metrics.set_listening(None);
    Ok(())
}

enum Served {
    SourceEnded,
    Cancelled,
}

async fn serve_client(
    mut socket: TcpStream,
    config: &StreamerConfig,
    source: &mut Source,
    metrics: &StreamerMetrics,
    ctx: &StageContext,
) -> Result<Served, std::io::Error> {
    let chunk_size = config.chunk_size as usize;
    let chunk_period = (config.rate > 0)
        .then(|| Duration::from_secs_f64(f64::from(config.chunk_size) / f64::from(config.rate)));
    let mut next_chunk_at = Instant::now();
    let mut buffer = String::with_capacity(chunk_size * 700);
    loop {
        if !ctx.wait_while_paused().await {
            return Ok(Served::Cancelled);
        }
        if let Some(period) = chunk_period {
            tokio::select! {
                _ = ctx.cancel.cancelled() => return Ok(Served::Cancelled),
                _ = tokio::time::sleep_until(next_chunk_at) => {}
            }
            // After a pause, do not burst to catch up on the time spent paused.
            next_chunk_at = (next_chunk_at + period).max(Instant::now());
        } else if ctx.cancel.is_cancelled() {
            return Ok(Served::Cancelled);
        }
        buffer.clear();
        let mut in_chunk = 0u64;
        let mut ended = false;
        while (in_chunk as usize) < chunk_size {
            match source.next_line().await? {
                Some(line) => {
                    buffer.push_str(&line);
                    buffer.push('\n');
                    in_chunk += 1;
                }
                None => {
                    ended = true;
                    break;
                }
            }
        }
        if in_chunk > 0 {
            socket.write_all(buffer.as_bytes()).await?;
            metrics.sent.fetch_add(in_chunk, Ordering::Relaxed);
            metrics.chunks.fetch_add(1, Ordering::Relaxed);
            metrics
                .bytes
                .fetch_add(buffer.len() as u64, Ordering::Relaxed);
        }
        if ended {
            socket.shutdown().await?;
            return Ok(Served::SourceEnded);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_the_bad_field() {
        let mut config = StreamerConfig::default();
        assert!(validate(&config).is_ok());
        config.chunk_size = 0;
        let err = validate(&config).expect_err("chunk 0");
        assert!(err.to_string().starts_with("chunk_size"), "{err}");
        config = StreamerConfig {
            source: "/no/such/file.json".into(),
            ..StreamerConfig::default()
        };
        let err = validate(&config).expect_err("missing file");
        assert!(err.to_string().starts_with("source"), "{err}");
        config = StreamerConfig {
            listen: "nowhere".into(),
            ..StreamerConfig::default()
        };
        assert!(
            validate(&config)
                .expect_err("bad addr")
                .to_string()
                .starts_with("listen")
        );
    }
}
