//! Stage 2 · the producer: connects to the streamer's socket as a client, parses each line, and
//! produces good reviews to `reviews` keyed by business_id (so one business's reviews stay in one
//! partition, in order) and refused lines to `reviews.dlq` with the reason. Another dataset's
//! records (the streamer's `dataset`) are checked against its description, keyed by its key field
//! and tagged with a `dataset` field so later stages know what they read. Deliveries are counted
//! from the broker's acknowledgements, not from what was handed to the client.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::api::{DatasetDescription, DatasetKind, TOPIC_DLQ, TOPIC_REVIEWS};
use futures::StreamExt;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use tokio::net::TcpStream;
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, FramedRead};

use crate::histogram::{LatencyHistogram, StageLatency};
use crate::kafka::KafkaSettings;
use crate::records::{DATASET_FIELD, DeadLetter, check_record, parse_review};
use crate::stage::StageContext;
use crate::streamer::StreamerMetrics;
use crate::sync::LockExt;

/// Longest line accepted from the socket; longer ones go to the DLQ (cut).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(2);
const FLUSH_TIMEOUT: Duration = Duration::from_secs(15);
const STAGE: &str = "producer";

#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error("cannot create Kafka producer: {0}")]
    Client(#[source] KafkaError),
}

/// Where the producer finds its socket: a fixed address, or whatever the streamer listens on now
/// (which may change when the streamer is restarted).
#[derive(Clone)]
pub enum SocketSource {
    Fixed(String),
    Streamer(Arc<StreamerMetrics>),
}

impl SocketSource {
    fn current(&self) -> Option<String> {
        match self {
            SocketSource::Fixed(addr) => Some(addr.clone()),
            SocketSource::Streamer(metrics) => metrics.listening().map(|a| a.to_string()),
        }
    }
}

crate::counters! {
    /// Counters of the producer, shown in its cell.
    pub struct ProducerMetrics {
        counters { lines, produced, acked, dlq, dlq_acked, delivery_failed, reconnects }
        pub last_delivery_error: Mutex<Option<String>>,
        /// From a review's hand-over to the client (its create timestamp) to the broker's
        /// acknowledgement, one per `acked`.
        ack_latency: LatencyHistogram,
    }
}

impl ProducerMetrics {
    pub fn reset(&self) {
        self.reset_counters();
        self.ack_latency.reset();
    }

    pub fn ack_latency(&self) -> StageLatency {
        StageLatency {
            metric: "pipebook_producer_ack_latency_seconds",
            help: "From a record's hand-over to the Kafka client (its create timestamp) to the broker's acknowledgement, per record acknowledged in reviews (count = the producer's acked).",
            counter: "acked",
            histogram: self.ack_latency.snapshot(),
        }
    }

    /// Counts a record the Kafka client refused outright (too large, …): never silently.
    fn refused(&self, what: &str) {
        self.delivery_failed.fetch_add(1, Ordering::Relaxed);
        *self.last_delivery_error.lock_or_recover() = Some(format!(
            "the Kafka client refused {what}; see the server log"
        ));
    }
}

/// Counts broker acknowledgements as they arrive on librdkafka's delivery thread.
struct DeliveryCounter {
    metrics: Arc<ProducerMetrics>,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(message) if message.topic() == TOPIC_DLQ => {
                self.metrics.dlq_acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(message) => {
                self.metrics.acked.fetch_add(1, Ordering::Relaxed);
                // librdkafka stamps each record with the wall clock when it is handed over
                // (the producer sets no timestamp of its own), ms.
                let sent = message.timestamp().to_millis().unwrap_or_default();
                let now = chrono::Utc::now().timestamp_millis();
                self.metrics.ack_latency.observe_between_ms(sent, now);
            }
            Err((error, message)) => {
                self.metrics.delivery_failed.fetch_add(1, Ordering::Relaxed);
                let text = format!("delivery to {} failed: {error}", message.topic());
                tracing::warn!("{text}");
                *self.metrics.last_delivery_error.lock_or_recover() = Some(text);
            }
        }
    }
}

type ReviewProducer = ThreadedProducer<DeliveryCounter>;

fn create_producer(
    kafka: &KafkaSettings,
    metrics: Arc<ProducerMetrics>,
) -> Result<ReviewProducer, ProducerError> {
    kafka
        .client_config()
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        // 0 = retry until delivered: a paused broker delays records, it never loses them.
        .set("message.timeout.ms", "0")
        .set("queue.buffering.max.messages", "200000")
        .create_with_context(DeliveryCounter { metrics })
        .map_err(ProducerError::Client)
}

/// The run loop: (re)connect, read lines, produce, until stopped; then flush what is in flight.
/// `streamer`: whose dataset the lines are, read at each connection (a streamer restarted with
/// another dataset listens on a new socket, so the producer reconnects).
pub async fn run(
    socket: SocketSource,
    streamer: Arc<StreamerMetrics>,
    kafka: KafkaSettings,
    metrics: Arc<ProducerMetrics>,
    ctx: StageContext,
) -> Result<(), ProducerError> {
    metrics.reset();
    let producer = create_producer(&kafka, metrics.clone())?;
    let mut backoff = RECONNECT_MIN;
    while !ctx.cancel.is_cancelled() {
        let Some(addr) = socket.current() else {
            ctx.set_detail("waiting for the streamer to listen");
            if sleep_or_cancel(&ctx, backoff).await {
                break;
            }
            continue;
        };
        let stream = tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            stream = TcpStream::connect(&addr) => stream,
        };
        match stream {
            Ok(stream) => {
                backoff = RECONNECT_MIN;
                ctx.clear_error();
                let dataset = streamer.dataset();
                ctx.set_detail(format!("reading {} from {addr}", dataset.as_str()));
                read_lines(stream, dataset, &producer, &metrics, &ctx).await;
                if !ctx.cancel.is_cancelled() {
                    ctx.set_detail(format!("{addr} closed; reconnecting"));
                }
            }
            Err(error) => {
                metrics.reconnects.fetch_add(1, Ordering::Relaxed);
                ctx.report_error(format!(
                    "cannot connect to streamer at {addr}: {error}; retrying"
                ));
                if sleep_or_cancel(&ctx, backoff).await {
                    break;
                }
                backoff = (backoff * 2).min(RECONNECT_MAX);
            }
        }
    }
    ctx.set_detail("flushing records in flight");
    let flushed = tokio::task::spawn_blocking(move || producer.flush(FLUSH_TIMEOUT)).await;
    if let Ok(Err(error)) = flushed {
        ctx.report_error(format!("flush on stop: {error}"));
    }
    ctx.set_detail("stopped");
    Ok(())
}

/// Sleeps, returning true when the stage was cancelled meanwhile.
async fn sleep_or_cancel(ctx: &StageContext, duration: Duration) -> bool {
    tokio::select! {
        _ = ctx.cancel.cancelled() => true,
        _ = tokio::time::sleep(duration) => false,
    }
}

async fn read_lines(
    stream: TcpStream,
    dataset: DatasetKind,
    producer: &ReviewProducer,
    metrics: &ProducerMetrics,
    ctx: &StageContext,
) {
    let codec = AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), Vec::new(), MAX_LINE_BYTES);
    let mut lines = FramedRead::new(stream, codec);
    let description = (dataset != DatasetKind::Yelp).then(|| dataset.description());
    loop {
        let next = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            next = lines.next() => next,
        };
        match next {
            None => return,
            Some(Ok(line)) => {
                let line = line.strip_suffix(b"\r").unwrap_or(&line);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                metrics.lines.fetch_add(1, Ordering::Relaxed);
                match &description {
                    None => handle_line(line, producer, metrics).await,
                    Some(description) => handle_record(line, description, producer, metrics).await,
                }
            }
            Some(Err(AnyDelimiterCodecError::MaxChunkLengthExceeded)) => {
                metrics.lines.fetch_add(1, Ordering::Relaxed);
                let reason = format!("line longer than {MAX_LINE_BYTES} bytes");
                send_dead_letter(producer, metrics, DeadLetter::new(STAGE, reason, b"", None))
                    .await;
            }
            Some(Err(AnyDelimiterCodecError::Io(error))) => {
                ctx.report_error(format!("socket read failed: {error}"));
                return;
            }
        }
    }
}

async fn handle_line(line: &[u8], producer: &ReviewProducer, metrics: &ProducerMetrics) {
    match parse_review(line) {
        Ok(review) => {
            let payload = serde_json::to_vec(&review).unwrap_or_else(|_| line.to_vec());
            let record = BaseRecord::to(TOPIC_REVIEWS)
                .key(review.business_id.as_bytes())
                .payload(&payload);
            if send_with_backpressure(producer, record).await {
                metrics.produced.fetch_add(1, Ordering::Relaxed);
            } else {
                metrics.refused(&review.review_id);
            }
        }
        Err(reason) => {
            send_dead_letter(
                producer,
                metrics,
                DeadLetter::new(STAGE, reason, line, None),
            )
            .await;
        }
    }
}

/// A line of another dataset: checked against its description, tagged with its dataset, keyed
/// by its key field; refused to the dead-letter topic with the field at fault.
async fn handle_record(
    line: &[u8],
    description: &DatasetDescription,
    producer: &ReviewProducer,
    metrics: &ProducerMetrics,
) {
    let mut record = match check_record(description, line) {
        Ok(record) => record,
        Err(reason) => {
            let letter = DeadLetter::new(STAGE, reason, line, None);
            return send_dead_letter(producer, metrics, letter).await;
        }
    };
    record.fields.insert(
        DATASET_FIELD.to_owned(),
        serde_json::Value::String(description.name.as_str().to_owned()),
    );
    let payload = serde_json::Value::Object(record.fields).to_string();
    let sent = BaseRecord::to(TOPIC_REVIEWS)
        .key(record.key.as_bytes())
        .payload(&payload);
    if send_with_backpressure(producer, sent).await {
        metrics.produced.fetch_add(1, Ordering::Relaxed);
    } else {
        metrics.refused(&record.key);
    }
}

async fn send_dead_letter(
    producer: &ReviewProducer,
    metrics: &ProducerMetrics,
    letter: DeadLetter,
) {
    let payload = letter.to_json();
    let record = BaseRecord::<(), _>::to(TOPIC_DLQ)
        .payload(&payload)
        .headers(letter.headers());
    if send_with_backpressure(producer, record).await {
        metrics.dlq.fetch_add(1, Ordering::Relaxed);
    } else {
        metrics.refused("a dead letter");
    }
}

/// Hands a record to the client, waiting while its queue is full (back-pressure reaches the
/// socket, and from there the streamer). Returns false only on a non-retryable error.
async fn send_with_backpressure<K, P>(
    producer: &ReviewProducer,
    mut record: BaseRecord<'_, K, P, ()>,
) -> bool
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return true,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                record = returned;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((error, _)) => {
                tracing::error!(%error, "record refused by the Kafka client");
                return false;
            }
        }
    }
}
