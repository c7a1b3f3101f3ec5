//! Gzip for an event stream. tower-http's `CompressionLayer` leaves `text/event-stream` alone:
//! its encoder holds data back until it has a block's worth, so a browser would get each event
//! late, or never. Here each event is compressed and sync-flushed at once (a flush ends the
//! deflate block on a byte boundary, so the browser can decode everything sent so far), while
//! the compressor keeps its window across events: a part sent again with a few numbers changed
//! costs little more than those numbers.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use flate2::Compression;
use flate2::write::GzEncoder;
use futures::Stream;

/// Deflate level 1, the fastest: on the live feed's events it compresses almost as well as the
/// default level 6 (the repeats it finds are whole parts sent a second earlier) for a fraction
/// of the CPU, which every viewer costs (docs/benchmarks.md, "Live feed for a room").
pub const LEVEL: u32 = 1;

/// Whether the client takes gzip (`Accept-Encoding: gzip`, or `*`, with a q-value above 0).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| {
            let mut params = item.split(';').map(str::trim);
            let coding = params.next().unwrap_or_default();
            let q = params
                .find_map(|p| p.strip_prefix("q="))
                .map_or(Some(1.0), |q| q.parse::<f32>().ok());
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && q.is_some_and(|q| q > 0.0)
        })
}

/// The same response, its body gzip-compressed chunk by chunk, each chunk flushed.
pub fn compress_events(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    parts
        .headers
        .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    parts
        .headers
        .append(header::VARY, HeaderValue::from_static("accept-encoding"));
    let body = FlushingGzip {
        chunks: body.into_data_stream(),
        encoder: Some(GzEncoder::new(Vec::new(), Compression::new(LEVEL))),
    };
    Response::from_parts(parts, Body::from_stream(body))
}

/// Compresses each chunk of `chunks` into one output chunk; writes the gzip trailer at the end.
struct FlushingGzip<S> {
    chunks: S,
    /// `None` once the trailer is written.
    encoder: Option<GzEncoder<Vec<u8>>>,
}

impl<S> Stream for FlushingGzip<S>
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(encoder) = this.encoder.as_mut() else {
            return Poll::Ready(None);
        };
        let chunk = match Pin::new(&mut this.chunks).poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
            Poll::Ready(Some(Ok(chunk))) => chunk,
            Poll::Ready(None) => {
                let finished = this.encoder.take().map(GzEncoder::finish);
                return Poll::Ready(finished.map(|r| r.map(Bytes::from).map_err(axum::Error::new)));
            }
        };
        let written = encoder.write_all(&chunk).and_then(|()| encoder.flush());
        // The compressed bytes are handed on at once; the encoder keeps its window, not them.
        let out = std::mem::take(encoder.get_mut());
        Poll::Ready(Some(
            written.map(|()| Bytes::from(out)).map_err(axum::Error::new),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::io::Read;

    fn headers(accept: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(accept).expect("header"),
        );
        headers
    }

    #[test]
    fn gzip_is_used_when_the_client_takes_it() {
        assert!(accepts_gzip(&headers("gzip, deflate, br")));
        assert!(accepts_gzip(&headers("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&headers("*")));
        assert!(!accepts_gzip(&headers("gzip;q=0")));
        assert!(!accepts_gzip(&headers("br, identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[tokio::test]
    async fn every_chunk_decodes_on_its_own_and_the_stream_ends_as_gzip() {
        let events: Vec<Result<Bytes, axum::Error>> = (0..3)
            .map(|i| {
                Ok(Bytes::from(format!(
                    "event: parts\ndata: {{\"at\":{i}}}\n\n"
                )))
            })
            .collect();
        let mut compressed = FlushingGzip {
            chunks: futures::stream::iter(events),
            encoder: Some(GzEncoder::new(Vec::new(), Compression::new(LEVEL))),
        };
        let mut wire = Vec::new();
        for i in 0..3 {
            let chunk = compressed.next().await.expect("chunk").expect("bytes");
            wire.extend_from_slice(&chunk);
            // What arrived so far decodes to every event so far, without waiting for more.
            let mut decoded = Vec::new();
            let _ = flate2::read::GzDecoder::new(&wire[..]).read_to_end(&mut decoded);
            let text = String::from_utf8(decoded).expect("utf-8");
            assert!(text.ends_with(&format!("{{\"at\":{i}}}\n\n")), "{text:?}");
        }
        let trailer = compressed.next().await.expect("trailer").expect("bytes");
        wire.extend_from_slice(&trailer);
        assert!(compressed.next().await.is_none());
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(&wire[..])
            .read_to_string(&mut decoded)
            .expect("a complete gzip stream");
        assert_eq!(decoded.matches("event: parts").count(), 3);
    }
}
