//! The pure parts of a trace: which partition a key hashes to, which windows an event time falls
//! into, and the latency between hops.

use app::api::{DatasetKind, TraceHop, TraceHopKind, WindowKind};

use crate::aggregate::windows::Spec;

/// The partition librdkafka's default partitioner (`consistent_random`) picks for a key: the
/// CRC-32 of the key bytes modulo the number of partitions. (Java clients use murmur2 instead,
/// so the same key may land elsewhere when a Java producer writes it.)
pub fn partition_for_key(key: &[u8], partitions: i32) -> Option<i32> {
    let count = u32::try_from(partitions).ok().filter(|n| *n > 0)?;
    i32::try_from(crc32fast::hash(key) % count).ok()
}

/// The CRC-32 of a key, as the partitioner computes it.
pub fn key_hash(key: &[u8]) -> u32 {
    crc32fast::hash(key)
}

/// The tumbling window and every sliding window holding `time` (ms): windows are aligned to
/// multiples of their step from the epoch, start inclusive, end exclusive — as Polars'
/// `group_by_dynamic` computes them in the aggregate stage.
pub fn windows_containing(spec: &Spec, time: i64) -> Vec<(WindowKind, i64, i64)> {
    let mut windows = Vec::new();
    if spec.tumbling_ms > 0 {
        let start = time.div_euclid(spec.tumbling_ms) * spec.tumbling_ms;
        windows.push((WindowKind::Tumbling, start, start + spec.tumbling_ms));
    }
    if spec.slide_ms > 0 && spec.sliding_ms >= spec.slide_ms {
        let last = time.div_euclid(spec.slide_ms) * spec.slide_ms;
        let mut start = last - spec.sliding_ms + spec.slide_ms;
        while start <= last {
            windows.push((WindowKind::Sliding, start, start + spec.sliding_ms));
            start += spec.slide_ms;
        }
    }
    windows
}

/// Which hop a hop's latency is measured from: the one whose output it reads. The window and
/// search hops both read `reviews.sentiment`, side by side, so both count from the sentiment hop.
pub fn upstream(hop: TraceHopKind) -> Option<TraceHopKind> {
    match hop {
        TraceHopKind::Socket => None,
        TraceHopKind::Reviews => Some(TraceHopKind::Socket),
        TraceHopKind::Sentiment => Some(TraceHopKind::Reviews),
        TraceHopKind::Window | TraceHopKind::Search => Some(TraceHopKind::Sentiment),
    }
}

/// Fills each hop's `latency_ms`: its time minus its upstream hop's, when both are known.
pub fn fill_latencies(hops: &mut [TraceHop]) {
    let times: Vec<(TraceHopKind, Option<i64>)> = hops.iter().map(|h| (h.hop, h.at_ms)).collect();
    for hop in hops.iter_mut() {
        let from = upstream(hop.hop).and_then(|up| {
            times
                .iter()
                .find(|(kind, _)| *kind == up)
                .and_then(|(_, at)| *at)
        });
        hop.latency_ms = match (hop.at_ms, from) {
            (Some(at), Some(from)) => Some(at - from),
            _ => None,
        };
    }
}

/// The bytes a record's JSON payload holds when its `field` is `id`: the producer and the
/// sentiment workers write `{"review_id":"…",…}` with serde_json, without spaces.
pub fn id_needle(field: &str, id: &str) -> Vec<u8> {
    let quoted = serde_json::to_string(id).unwrap_or_default();
    format!("\"{field}\":{quoted}").into_bytes()
}

/// The needles of a record with this id in any dataset: a review's `review_id`, a tweet's
/// `tweet_id`, a company's `company_id` (each dataset's `id_field`).
pub fn id_needles(id: &str) -> Vec<Vec<u8>> {
    DatasetKind::ALL
        .iter()
        .map(|kind| id_needle(kind.id_field(), id))
        .collect()
}

/// Whether `payload` contains `needle` (a cheap filter before parsing the few candidates).
pub fn contains(payload: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && payload.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::api::{OutputMode, TraceHopState};

    fn spec(tumbling_ms: i64, sliding_ms: i64, slide_ms: i64) -> Spec {
        Spec {
            tumbling_ms,
            sliding_ms,
            slide_ms,
            gap_ms: 30_000,
            lateness_ms: 30_000,
            mode: OutputMode::Append,
        }
    }

    #[test]
    fn keys_hash_to_partitions_like_librdkafka() {
        // zlib's CRC-32 check value: librdkafka's rd_crc32 is the same function.
        assert_eq!(key_hash(b"123456789"), 0xCBF4_3926);
        assert_eq!(
            partition_for_key(b"123456789", 3),
            Some(2),
            "3421780262 % 3"
        );
        assert_eq!(partition_for_key(b"b_17", 1), Some(0));
        assert_eq!(partition_for_key(b"b_17", 0), None);
        let p = partition_for_key(b"b_17", 3).expect("partition");
        assert!((0..3).contains(&p));
    }

    #[test]
    fn an_event_falls_into_one_tumbling_and_size_over_slide_sliding_windows() {
        let t = 10 * 60_000 + 20_000; // 00:10:20
        let windows = windows_containing(&spec(60_000, 60_000, 15_000), t);
        assert_eq!(windows[0], (WindowKind::Tumbling, 600_000, 660_000));
        let sliding: Vec<_> = windows[1..].iter().map(|w| (w.1, w.2)).collect();
        assert_eq!(
            sliding,
            vec![
                (570_000, 630_000),
                (585_000, 645_000),
                (600_000, 660_000),
                (615_000, 675_000)
            ]
        );
        for (_, start, end) in &windows {
            assert!(*start <= t && t < *end);
        }
        // On a boundary the window starting there holds it, the one ending there does not.
        let windows = windows_containing(&spec(60_000, 60_000, 60_000), 120_000);
        assert_eq!(
            windows,
            vec![
                (WindowKind::Tumbling, 120_000, 180_000),
                (WindowKind::Sliding, 120_000, 180_000)
            ]
        );
        // Before the epoch too (div_euclid, not truncation).
        let windows = windows_containing(&spec(60_000, 60_000, 60_000), -1);
        assert_eq!(windows[0], (WindowKind::Tumbling, -60_000, 0));
    }

    fn hop(kind: TraceHopKind, at_ms: Option<i64>) -> TraceHop {
        TraceHop {
            hop: kind,
            state: TraceHopState::Found,
            topic: None,
            partition: None,
            offset: None,
            at_ms,
            latency_ms: None,
            detail: String::new(),
            facts: Vec::new(),
            windows: Vec::new(),
        }
    }

    #[test]
    fn latency_counts_from_the_hop_read_from() {
        let mut hops = vec![
            hop(TraceHopKind::Socket, Some(1_000)),
            hop(TraceHopKind::Reviews, Some(1_004)),
            hop(TraceHopKind::Sentiment, Some(1_130)),
            hop(TraceHopKind::Window, Some(1_900)),
            hop(TraceHopKind::Search, Some(1_400)),
        ];
        fill_latencies(&mut hops);
        let latencies: Vec<_> = hops.iter().map(|h| h.latency_ms).collect();
        assert_eq!(
            latencies,
            vec![None, Some(4), Some(126), Some(770), Some(270)]
        );
        hops[0].at_ms = None;
        fill_latencies(&mut hops);
        assert_eq!(hops[1].latency_ms, None, "no time upstream, no latency");
    }

    #[test]
    fn the_needle_matches_serde_json_output_only_for_that_id() {
        let payload =
            serde_json::to_vec(&serde_json::json!({"review_id": "r\"1", "x": 1})).expect("json");
        assert!(contains(&payload, &id_needle("review_id", "r\"1")));
        assert!(!contains(&payload, &id_needle("review_id", "r")));
        assert!(!contains(b"", &id_needle("review_id", "r")));
    }

    #[test]
    fn a_tweet_and_a_company_are_found_by_their_own_id_fields() {
        let tweet = serde_json::to_vec(&serde_json::json!({
            "dataset": "tweets", "tweet_id": "t-9", "user": "ana", "text": "review_id"
        }))
        .expect("json");
        let company =
            serde_json::to_vec(&serde_json::json!({"company_id": "c-9", "name": "Blue Labs"}))
                .expect("json");
        let found = |payload: &[u8], id: &str| id_needles(id).iter().any(|n| contains(payload, n));
        assert!(found(&tweet, "t-9"));
        assert!(found(&company, "c-9"));
        assert!(!found(&tweet, "ana"), "a key is not an id");
        assert!(!found(&company, "t-9"));
        assert_eq!(id_needles("x").len(), DatasetKind::ALL.len());
    }
}
