//! The stage's state kept per input partition, as Kafka Streams keeps a task's state per
//! partition: each partition of `reviews.sentiment` has its own windows, sessions, dedup set and
//! watermark, moves with the partition when the group rebalances, and is checkpointed with the
//! partition's offset ([`super::checkpoint`]).
//!
//! Tumbling and sliding windows span partitions: each partition counts its own share and the
//! shares are merged where they are read ([`merged_view`]): counts, sums and star totals add up,
//! averages come from the merged sums. Sessions are per business and a business's reviews are
//! all in one partition (the records are keyed by `business_id`), so a session is never split.
//! The operator's watermark is the minimum of its partitions' watermarks, as in Flink: a
//! partition that has seen nothing holds it back.

use std::collections::BTreeMap;

use app::api::{AggregateView, PartitionProgress, WindowKind};
use serde::{Deserialize, Serialize};

use super::windows::{Agg, BatchOutcome, Event, Partials, Spec, WindowId, WindowState, row};

/// One input partition's state and the next offset to read: restoring both together is what
/// makes a restart or a rebalance count every record once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Next offset of the partition to read; every record before it is in `state`.
    pub offset: i64,
    /// Triggers that changed this partition so far.
    pub triggers: u64,
    pub state: WindowState,
    /// Where the partition's count began: 0, or where the group was last moved to from outside
    /// (an incident's clean slate). A changed query starts over from here, not from offset 0;
    /// absent from older checkpoints.
    #[serde(default)]
    pub start: i64,
}

/// The partitions a process holds now, by partition id.
pub type Partitions = BTreeMap<i32, PartitionState>;

/// A record reduced to its event, with where it came from; `None` for a record that is not a
/// review (sent to the dead-letter topic), which still moves the partition's offset.
#[derive(Debug, Clone, PartialEq)]
pub struct Positioned {
    pub partition: i32,
    pub offset: i64,
    pub event: Option<Event>,
}

/// What one trigger did in one partition.
#[derive(Debug, Default)]
pub struct PartitionOutcome {
    pub partition: i32,
    pub outcome: BatchOutcome,
}

/// Folds one trigger's events into their partitions' states, each partition in offset order and
/// on its own watermark. Records below a partition's offset are already counted in its state
/// (read again after a rebalance) and are skipped; records of a partition not held are ignored.
/// Returns the partitions that changed.
pub fn process<E>(
    partitions: &mut Partitions,
    spec: &Spec,
    events: Vec<Positioned>,
    mut partials: impl FnMut(&[Event]) -> Result<Partials, E>,
) -> Result<Vec<PartitionOutcome>, E> {
    let mut by_partition: BTreeMap<i32, Vec<(i64, Option<Event>)>> = BTreeMap::new();
    for positioned in events {
        by_partition
            .entry(positioned.partition)
            .or_default()
            .push((positioned.offset, positioned.event));
    }
    let mut outcomes = Vec::new();
    for (partition, mut records) in by_partition {
        let Some(held) = partitions.get_mut(&partition) else {
            tracing::debug!(partition, "records of a partition not held; skipped");
            continue;
        };
        records.sort_by_key(|(offset, _)| *offset);
        let from = held.offset;
        let Some(last) = records.iter().map(|(offset, _)| *offset).max() else {
            continue;
        };
        if last < from {
            continue;
        }
        let fresh: Vec<Event> = records
            .into_iter()
            .filter(|(offset, _)| *offset >= from)
            .filter_map(|(_, event)| event)
            .collect();
        let outcome = held.state.process(spec, fresh, &mut partials)?;
        held.offset = last + 1;
        held.triggers += 1;
        outcomes.push(PartitionOutcome { partition, outcome });
    }
    Ok(outcomes)
}

/// The operator's watermark: the least of its partitions' (none while any partition has none).
pub fn watermark<'a>(states: impl IntoIterator<Item = &'a WindowState>) -> Option<i64> {
    let mut least: Option<i64> = None;
    for state in states {
        let w = state.watermark?;
        least = Some(least.map_or(w, |l| l.min(w)));
    }
    least
}

/// The windows of all `partitions` merged, with the operator's watermark and each partition's.
pub fn merged_view(partitions: &Partitions) -> AggregateView {
    let states = partitions.values().map(|p| &p.state);
    let watermark = watermark(states.clone());
    // A tumbling or sliding window some partition has already forgotten (it keeps only the
    // latest closed ones) would show only the other partitions' share: leave it out.
    let mut forgotten: BTreeMap<WindowKind, i64> = BTreeMap::new();
    for state in states.clone() {
        for (kind, through) in &state.forgotten_through {
            let entry = forgotten.entry(*kind).or_insert(*through);
            *entry = (*entry).max(*through);
        }
    }
    let mut merged: BTreeMap<WindowId, Agg> = BTreeMap::new();
    for state in states.clone() {
        for (window, agg) in state.windows() {
            merged.entry(window).or_default().merge(agg);
        }
    }
    let mut windows: Vec<_> = merged
        .iter()
        .filter(|(w, _)| {
            w.kind == WindowKind::Session || forgotten.get(&w.kind).is_none_or(|f| w.start > *f)
        })
        .map(|(w, agg)| row(w, agg, watermark.is_some_and(|wm| w.end <= wm)))
        .collect();
    windows.sort_by(|a, b| (a.kind, a.start, &a.key).cmp(&(b.kind, b.start, &b.key)));
    AggregateView {
        watermark,
        max_event_time: states.clone().filter_map(|s| s.max_event_time).max(),
        late_records: states.clone().map(|s| s.late).sum(),
        duplicates: states.clone().map(|s| s.duplicates).sum(),
        counted: states.map(|s| s.counted).sum(),
        windows,
        totals: None,
        partitions: partitions
            .iter()
            .map(|(partition, held)| PartitionProgress {
                partition: *partition,
                offset: held.offset,
                watermark: held.state.watermark,
                max_event_time: held.state.max_event_time,
                counted: held.state.counted,
                late_records: held.state.late,
                duplicates: held.state.duplicates,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::api::{OutputMode, Sentiment};

    const MIN: i64 = 60_000;

    fn event(id: &str, minute: i64, business: &str) -> Event {
        Event {
            review_id: id.into(),
            time: minute * MIN,
            sentiment: Some(Sentiment::Positive),
            score: 0.5,
            stars: 4,
            business_id: business.into(),
            dataset: app::api::DatasetKind::Yelp,
            hashtags: Vec::new(),
            country: None,
            industry: None,
        }
    }

    fn spec() -> Spec {
        Spec {
            tumbling_ms: 10 * MIN,
            sliding_ms: 10 * MIN,
            slide_ms: 5 * MIN,
            gap_ms: MIN,
            lateness_ms: 5 * MIN,
            mode: OutputMode::Update,
        }
    }

    fn at(partition: i32, offset: i64, event: Event) -> Positioned {
        Positioned {
            partition,
            offset,
            event: Some(event),
        }
    }

    fn run(partitions: &mut Partitions, events: Vec<Positioned>) -> Vec<PartitionOutcome> {
        let spec = spec();
        process(partitions, &spec, events, |kept| {
            Ok::<_, ()>(super::super::windows::reference_partials(kept, &spec))
        })
        .expect("process")
    }

    #[test]
    fn an_idle_partition_holds_the_operator_watermark_back() {
        let mut partitions: Partitions = (0..2).map(|p| (p, PartitionState::default())).collect();
        run(&mut partitions, vec![at(0, 0, event("a", 30, "b1"))]);
        let view = merged_view(&partitions);
        assert_eq!(view.partitions[0].watermark, Some(25 * MIN));
        assert_eq!(view.partitions[1].watermark, None);
        assert_eq!(view.watermark, None, "partition 1 has seen nothing");
        assert!(view.windows.iter().all(|w| !w.closed));
        run(&mut partitions, vec![at(1, 0, event("b", 12, "b2"))]);
        let view = merged_view(&partitions);
        assert_eq!(view.watermark, Some(7 * MIN), "the slower partition's");
    }

    #[test]
    fn shares_of_one_window_add_up_and_records_before_the_offset_are_skipped() {
        let mut partitions: Partitions = (0..2).map(|p| (p, PartitionState::default())).collect();
        run(
            &mut partitions,
            vec![
                at(0, 0, event("a", 1, "b1")),
                at(1, 0, event("b", 2, "b2")),
                at(1, 1, event("c", 3, "b2")),
            ],
        );
        // Read again after a rebalance: already in the state.
        let again = run(&mut partitions, vec![at(1, 1, event("c", 3, "b2"))]);
        assert!(again.is_empty());
        let view = merged_view(&partitions);
        assert_eq!(view.counted, 3);
        let first = view
            .windows
            .iter()
            .find(|w| w.kind == WindowKind::Tumbling && w.start == 0)
            .expect("window [0, 10)");
        assert_eq!(first.total(), 3);
        assert_eq!(first.avg_stars, Some(4.0));
        assert_eq!(partitions[&1].offset, 2);
    }

    mod properties {
        use super::*;
        use crate::aggregate::windows::reference_partials;
        use proptest::prelude::*;

        /// One generated record: business, seconds from the start (out of order by up to ±5
        /// minutes), sentiment (3: none, a company), stars, score in quarters (exact sums in
        /// any order), and hashtags (a bit set of four; a record with any is a tweet, keyed by
        /// its "business" as by user). A company (sentiment 3, no hashtags) is keyed by its
        /// "business" as by company id; its country and industry come from its time and score,
        /// so one country's companies are in several partitions.
        type Raw = (u8, i64, u8, u8, i8, u8);

        const TAGS: [&str; 4] = ["#kafka", "#rust", "#polars", "#flink"];
        const COUNTRIES: [&str; 3] = ["Chile", "France", "Japan"];
        const INDUSTRIES: [&str; 2] = ["Energy", "Retail"];

        fn raw() -> impl Strategy<Value = Vec<Raw>> {
            prop::collection::vec(
                (0u8..7, -300i64..300, 0u8..4, 1u8..=5, -4i8..=4, 0u8..16),
                1..80,
            )
        }

        /// The stream: review `i` at about `i × 20 s`; `repeats` re-sends some earlier reviews
        /// (the same review_id, time and business, as an at-least-once stage does).
        fn stream(raw: &[Raw], repeats: &[usize]) -> Vec<Event> {
            let mut events: Vec<Event> = raw
                .iter()
                .enumerate()
                .map(
                    |(i, (business, jitter, sentiment, stars, quarters, tags))| {
                        let company = *sentiment == 3 && *tags == 0;
                        let pick = |values: &[&str], n: i64| {
                            company.then(|| {
                                values[n.rem_euclid(values.len() as i64) as usize].to_owned()
                            })
                        };
                        Event {
                            review_id: format!("r{i}"),
                            time: (i as i64 * 20 + jitter) * 1000,
                            sentiment: (!company)
                                .then_some(Sentiment::ALL[usize::from(*sentiment % 3)]),
                            score: if company {
                                0.0
                            } else {
                                f64::from(*quarters) / 4.0
                            },
                            stars: if *tags > 0 || company { 0 } else { *stars },
                            business_id: format!("b{business}"),
                            dataset: if *tags > 0 {
                                app::api::DatasetKind::Tweets
                            } else if company {
                                app::api::DatasetKind::Companies
                            } else {
                                app::api::DatasetKind::Yelp
                            },
                            hashtags: TAGS
                                .iter()
                                .enumerate()
                                .filter(|(bit, _)| tags & (1 << bit) != 0)
                                .map(|(_, tag)| (*tag).to_owned())
                                .collect(),
                            country: pick(&COUNTRIES, *jitter),
                            industry: pick(&INDUSTRIES, i64::from(*quarters)),
                        }
                    },
                )
                .collect();
            for (n, at) in repeats.iter().enumerate() {
                let original = events[at % raw.len()].clone();
                let position = (at + n * 7) % events.len();
                events.insert(position.max(at % raw.len() + 1).min(events.len()), original);
            }
            events
        }

        fn spec(lateness_secs: i64) -> Spec {
            Spec {
                tumbling_ms: 5 * MIN,
                sliding_ms: 6 * MIN,
                slide_ms: 2 * MIN,
                gap_ms: 2 * MIN,
                lateness_ms: lateness_secs * 1000,
                mode: OutputMode::Update,
            }
        }

        /// The producer's partitioner, as far as the windows care: one business, one partition.
        fn partition_of(event: &Event, partitions: i32) -> i32 {
            let business: i32 = event.business_id[1..].parse().unwrap_or_default();
            business % partitions
        }

        /// Runs `events` through `partitions` partitions the way the run loop does: triggers of
        /// the sizes in `cuts` (records of every partition in each), and after the triggers
        /// flagged in `moves`, every partition written to its changelog record and read back
        /// (it moved to another process).
        fn partitioned(
            events: &[Event],
            partitions: i32,
            spec: &Spec,
            cuts: &[usize],
            moves: &[bool],
        ) -> Partitions {
            let mut held: Partitions = (0..partitions)
                .map(|p| (p, PartitionState::default()))
                .collect();
            let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
            let positioned: Vec<Positioned> = events
                .iter()
                .map(|event| {
                    let partition = partition_of(event, partitions);
                    let offset = offsets.entry(partition).or_default();
                    *offset += 1;
                    Positioned {
                        partition,
                        offset: *offset - 1,
                        event: Some(event.clone()),
                    }
                })
                .collect();
            let mut rest = positioned.as_slice();
            let mut trigger = 0;
            while !rest.is_empty() {
                let size = cuts
                    .get(trigger)
                    .copied()
                    .unwrap_or(rest.len())
                    .clamp(1, rest.len());
                let (now, later) = rest.split_at(size);
                process(&mut held, spec, now.to_vec(), |kept| {
                    Ok::<_, ()>(reference_partials(kept, spec))
                })
                .expect("process");
                if moves.get(trigger).copied().unwrap_or(false) {
                    let json = serde_json::to_vec(&held).expect("encode");
                    held = serde_json::from_slice(&json).expect("decode");
                }
                rest = later;
                trigger += 1;
            }
            held
        }

        proptest! {
            /// With a lateness wider than the stream's spread nothing is late, and the merged
            /// windows of 1–4 partitions, cut into any triggers and moved between processes at
            /// any point, are the windows of one partition reading the whole stream in one
            /// trigger: every window (tumbling, sliding, session) with the same counts, star
            /// counts, sums and averages, top businesses, top hashtags, countries and industries
            /// (a hashtag's tweets, a country's companies, are in several partitions: their
            /// counts add up), unlabelled counts and closed flag; and the same counted,
            /// duplicate and late totals.
            #[test]
            fn merged_partitions_give_the_one_partition_windows(
                raw in raw(),
                repeats in prop::collection::vec(0usize..80, 0..10),
                partitions in 1i32..=4,
                cuts in prop::collection::vec(1usize..20, 0..20),
                moves in prop::collection::vec(any::<bool>(), 0..20),
            ) {
                let events = stream(&raw, &repeats);
                let spec = spec(3 * 24 * 3600);
                let reference = partitioned(&events, 1, &spec, &[], &[]);
                let merged = partitioned(&events, partitions, &spec, &cuts, &moves);
                let (one, many) = (merged_view(&reference), merged_view(&merged));
                prop_assert_eq!(one.late_records, 0);
                prop_assert_eq!(&one.windows, &many.windows);
                prop_assert_eq!(
                    (one.counted, one.duplicates, one.late_records),
                    (many.counted, many.duplicates, many.late_records)
                );
                prop_assert_eq!(one.counted, raw.len() as u64);
            }

            /// With a small lateness, some records are late. Each partition decides on its own
            /// watermark, record by record, so its late records are exactly those a single
            /// reader of that partition alone finds late in one trigger, however the stream is
            /// cut into triggers and moved; the merged windows are those of the per-partition
            /// readers merged; and every record is counted, late or a duplicate, once.
            #[test]
            fn late_records_are_decided_per_partition_whatever_the_triggers(
                raw in raw(),
                repeats in prop::collection::vec(0usize..80, 0..10),
                lateness_secs in 0i64..400,
                partitions in 1i32..=4,
                cuts in prop::collection::vec(1usize..20, 0..20),
                moves in prop::collection::vec(any::<bool>(), 0..20),
            ) {
                let events = stream(&raw, &repeats);
                let spec = spec(lateness_secs);
                let merged = partitioned(&events, partitions, &spec, &cuts, &moves);
                let mut alone = Partitions::new();
                for partition in 0..partitions {
                    let mine: Vec<Event> = events
                        .iter()
                        .filter(|e| partition_of(e, partitions) == partition)
                        .cloned()
                        .collect();
                    let single = partitioned(&mine, 1, &spec, &[], &[]);
                    let state = single.into_values().next().expect("one partition");
                    prop_assert_eq!(
                        merged[&partition].state.late,
                        state.state.late,
                        "partition {}", partition
                    );
                    alone.insert(partition, state);
                }
                let (many, each) = (merged_view(&merged), merged_view(&alone));
                prop_assert_eq!(&many.windows, &each.windows);
                prop_assert_eq!(&many.partitions, &each.partitions);
                prop_assert_eq!(
                    many.counted + many.late_records + many.duplicates,
                    events.len() as u64
                );
            }
        }
    }
}
