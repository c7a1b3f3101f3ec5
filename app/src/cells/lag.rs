//! A consumer group's lag per partition over the last minute, as a live chart: the server's
//! history first (it samples every group every second, so a reload keeps the chart), then each
//! live snapshot's. Cell 3 shows the sentiment group's, cell 5 the indexer's.

use std::collections::VecDeque;

use leptos::prelude::*;

use super::charts::{TimeChart, TimeLine, TimeLines};
use super::thousands;
use crate::live::Live;
use crate::ops::{GroupLagHistory, PartitionLag};
use crate::requests::Read;

/// Samples kept for the lag chart (about a minute at one per second).
const LAG_HISTORY: usize = 60;
/// The time the lag chart spans, ending at its newest sample.
const LAG_WINDOW_MS: i64 = 60_000;

/// The lag chart of `group`, whose partitions are `topic`'s.
#[component]
pub fn GroupLagChart(
    /// The group as the running stage reports it (a run may name its own).
    group: Signal<String>,
    topic: &'static str,
    testid: &'static str,
) -> impl IntoView {
    let live = Live::use_context();
    // Only a new name asks the server again, not every snapshot the name is read from.
    let group = Memo::new(move |_| group.get());
    // The server keeps a history only of groups it has sampled (others answer 404): ask once the
    // group is in the snapshot, and again if it leaves and comes back.
    let sampled = Memo::new(move |_| {
        let name = group.get();
        live.snapshot.with(|s| {
            s.as_ref()
                .is_some_and(|s| s.groups.iter().any(|g| g.group == name))
        })
    });
    let history = RwSignal::new(VecDeque::<LagSample>::new());
    let server_lag = Read::<GroupLagHistory>::new(move || {
        sampled
            .get()
            .then(|| format!("/api/kafka/groups/{}/lag", group.get()))
    });
    Effect::new(move |_| {
        // No history yet (the group was never sampled, the read refused): the chart starts from
        // the feed.
        let Some(found) = server_lag.answer() else {
            return;
        };
        let seeded = server_history(&found, LAG_HISTORY);
        history.update(|history| {
            if seeded.len() > history.len() {
                *history = seeded;
            }
        });
    });
    Effect::new(move |previous: Option<String>| {
        let name = group.get();
        if previous.as_ref().is_some_and(|p| *p != name) {
            // Another group: the samples of the last one are not its history.
            history.update(VecDeque::clear);
        }
        let Some(snapshot) = live.snapshot.get() else {
            return name;
        };
        let Some(found) = snapshot.groups.iter().find(|g| g.group == name) else {
            return name;
        };
        let mut partitions = found.partitions.clone();
        partitions.sort_by_key(|p| p.partition);
        let lags: Vec<i64> = partitions.iter().map(|p| p.lag).collect();
        history.update(|history| {
            history.push_back(LagSample {
                at: snapshot.at,
                lags,
            });
            while history.len() > LAG_HISTORY {
                history.pop_front();
            }
        });
        name
    });
    view! { <LagChart history=history.into() topic testid /> }
}

/// One sample of the lag chart: when it was taken (ms since the epoch) and the lag of each
/// partition, in partition order.
#[derive(Debug, Clone, PartialEq)]
struct LagSample {
    at: i64,
    lags: Vec<i64>,
}

/// The last `n` samples of the server's lag history, one lag per partition each, oldest first
/// (the partitions' histories aligned at their newest point; the time is the first one's).
fn server_history(found: &GroupLagHistory, n: usize) -> VecDeque<LagSample> {
    let mut partitions: Vec<&PartitionLag> = found.partitions.iter().collect();
    partitions.sort_by_key(|p| p.partition);
    let len = partitions
        .iter()
        .map(|p| p.history.len())
        .min()
        .unwrap_or(0);
    (len.saturating_sub(n)..len)
        .map(|i| {
            let point = |p: &PartitionLag| p.history[p.history.len() - len + i];
            LagSample {
                at: partitions.first().map_or(0, |p| point(p).at),
                lags: partitions.iter().map(|p| point(p).lag).collect(),
            }
        })
        .collect()
}

/// Lag per partition over the last minute: a line per partition on a time axis, with the
/// records behind on the value axis and each second's figures in its tooltip.
#[component]
fn LagChart(
    history: Signal<VecDeque<LagSample>>,
    topic: &'static str,
    testid: &'static str,
) -> impl IntoView {
    let data = Signal::derive(move || {
        history.with(|history| {
            let partitions = history.back().map_or(0, |s| s.lags.len());
            TimeLines {
                times: history.iter().map(|s| s.at).collect(),
                lines: (0..partitions)
                    .map(|p| TimeLine {
                        name: format!("{topic}-{p}"),
                        class: format!("lag-line series-{}", p % 8),
                        values: history
                            .iter()
                            .map(|s| s.lags.get(p).map(|&lag| lag as f64))
                            .collect(),
                    })
                    .collect(),
            }
        })
    });
    let label = Signal::derive(move || {
        let max = history.with(|h| h.iter().flat_map(|s| s.lags.iter()).copied().max());
        format!(
            "Lag per partition over the last minute, in records (max {})",
            thousands(max.unwrap_or(0))
        )
    });
    view! {
        <TimeChart data window_ms=LAG_WINDOW_MS unit="records behind" label testid />
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{GroupLag, LagPoint};

    #[test]
    fn the_server_history_is_aligned_at_the_newest_point() {
        let partition = |id: i32, lags: &[i64]| PartitionLag {
            topic: "reviews".into(),
            partition: id,
            committed: None,
            high: 0,
            lag: *lags.last().unwrap_or(&0),
            lag_seconds: None,
            history: lags
                .iter()
                .enumerate()
                .map(|(i, &lag)| LagPoint {
                    at: 1_000 * i as i64,
                    lag,
                    lag_seconds: None,
                    position: 0,
                })
                .collect(),
        };
        let found = GroupLagHistory {
            group: "g".into(),
            at: 0,
            now: GroupLag::default(),
            fine_step_secs: 1,
            coarse_step_secs: 10,
            partitions: vec![partition(1, &[7, 8, 9]), partition(0, &[1, 2, 3, 4])],
        };
        // Partition 0 is sorted first; its newest points carry the times.
        assert_eq!(
            server_history(&found, 2),
            VecDeque::from([
                LagSample {
                    at: 2_000,
                    lags: vec![3, 8]
                },
                LagSample {
                    at: 3_000,
                    lags: vec![4, 9]
                },
            ])
        );
        assert_eq!(server_history(&found, 60).len(), 3);
    }
}
