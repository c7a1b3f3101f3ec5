//! A consumer stage's health, compactly, in its own cell: where its loop spends each second
//! (busy / idle / back-pressured, a stacked bar that adds up to 1,000 ms), its input rate
//! against its processing rate, the queue in front of it (its group's lag: Kafka is the queue),
//! and for the windows stage its watermark's lag, its last checkpoints and its state's size —
//! what Flink's and Spark's UIs show per operator.

use leptos::prelude::*;

use super::charts::{TimeChart, TimeLine, TimeLines};
use super::thousands;
use crate::live::Live;
use crate::ops::{RATE_POINTS, StageLoad, StageRates, min_avg_max};

#[component]
pub fn StageLoadPanel(stage: &'static str, default_group: &'static str) -> impl IntoView {
    let live = Live::use_context();
    let figures = Memo::new(move |_| {
        let snapshot = live.snapshot.get()?;
        let status = snapshot.pipeline.stage(stage)?;
        let load = status.load.clone()?;
        let group = status
            .config
            .as_ref()
            .and_then(|c| c.get("group"))
            .and_then(|g| g.as_str())
            .unwrap_or(default_group)
            .to_owned();
        let group = snapshot.groups.iter().find(|g| g.group == group);
        let input = group.map(|g| (g.lag.produce_rate, g.total_lag()));
        let watermark_lag = snapshot
            .aggregate
            .watermark
            .filter(|_| stage == "aggregate")
            .map(|w| snapshot.at - w);
        Some((load, input, watermark_lag, status.rates.clone()))
    });
    move || {
        figures.get().map(|(load, input, watermark_lag, history)| {
            view! {
                <div class="stage-load" data-testid=format!("{stage}-load")>
                    <LoadBar load=load.clone() />
                    {history.map(|history| view! { <RatesSparkline stage history /> })}
                    <p class="muted">
                        {rates(&load, input)}
                        {watermark_lag.map(|ms| format!(" · watermark {} behind wall time", span(ms)))}
                    </p>
                    {load.operator.map(|op| {
                        let checkpoints = match (
                            min_avg_max(op.checkpoints.iter().map(|c| c.ms)),
                            min_avg_max(op.checkpoints.iter().map(|c| c.bytes)),
                        ) {
                            (Some((t0, t, t1)), Some((b0, b, b1))) => format!(
                                "last {} checkpoints: {t0} / {t:.0} / {t1} ms, {} / {} / {} (min / avg / max)",
                                op.checkpoints.len(),
                                bytes(b0 as f64),
                                bytes(b),
                                bytes(b1 as f64),
                            ),
                            _ => "no checkpoint yet".to_owned(),
                        };
                        view! {
                            <p class="muted" data-testid="operator-state">
                                {format!(
                                    "State: {} windows, {} sessions, {} dedup ids · {checkpoints}",
                                    thousands(op.open_windows as i64),
                                    thousands(op.sessions as i64),
                                    thousands(op.dedup_ids as i64),
                                )}
                            </p>
                        }
                    })}
                </div>
            }
        })
    }
}

/// The second as a stacked bar: busy, back-pressured, idle.
#[component]
fn LoadBar(load: StageLoad) -> impl IntoView {
    let parts = [
        ("busy", load.busy_ms),
        ("backpressured", load.backpressured_ms),
        ("idle", load.idle_ms),
    ];
    let total = parts.iter().map(|(_, ms)| ms).sum::<f64>().max(1.0);
    let label = format!(
        "Each second{}: busy {:.0} ms · back-pressured {:.0} ms · idle {:.0} ms",
        if load.loops > 1 { " (per worker)" } else { "" },
        load.busy_ms,
        load.backpressured_ms,
        load.idle_ms
    );
    view! {
        <div class="load-bar" role="img" aria-label=label.clone() title=label.clone()>
            {parts
                .into_iter()
                .map(|(class, ms)| {
                    view! { <span class=format!("load-{class}") style=format!("width:{:.1}%", ms / total * 100.0)></span> }
                })
                .collect_view()}
        </div>
        <p class="load-legend">{label}</p>
    }
}

/// The last minute of input against processing, one point a second: the newest second's values
/// (which swing more than the smoothed figures under the bar) and the minute's means.
#[component]
fn RatesSparkline(stage: &'static str, history: StageRates) -> impl IntoView {
    let (input, processed) = history.latest();
    let now = |rate: Option<u32>| rate.map_or("–".to_owned(), |r| thousands(i64::from(r)));
    let mean = |rates: &[Option<u32>]| {
        let known: Vec<u32> = rates.iter().flatten().copied().collect();
        let sum: u64 = known.iter().map(|r| u64::from(*r)).sum();
        thousands((sum / known.len().max(1) as u64) as i64)
    };
    let peak = |rates: &[Option<u32>]| {
        thousands(i64::from(
            rates.iter().flatten().max().copied().unwrap_or(0),
        ))
    };
    let (input_mean, processed_mean) = (mean(&history.input), mean(&history.processed));
    let label = format!(
        "{stage}, records/s over the last {} samples (one a second): in {} now (mean {input_mean}, max {}), processed {} now (mean {processed_mean}, max {})",
        history.input.len(),
        now(input),
        peak(&history.input),
        now(processed),
        peak(&history.processed),
    );
    // Input drawn in front: its dashes stay visible where the two lines coincide.
    let slots = history.input.len().max(history.processed.len());
    let line = |name: &str, class: &str, values: &[Option<u32>]| TimeLine {
        name: name.to_owned(),
        class: class.to_owned(),
        // Aligned at the newest second: a shorter series starts later.
        values: std::iter::repeat_n(None, slots - values.len())
            .chain(values.iter().map(|v| v.map(f64::from)))
            .collect(),
    };
    let data = TimeLines::per_second(
        history.at,
        slots,
        vec![
            line("processed", "spark-processed", &history.processed),
            line("in", "spark-input", &history.input),
        ],
    );
    view! {
        <div class="rates-spark">
            <TimeChart
                data=Signal::stored(data)
                window_ms=(RATE_POINTS as i64 - 1) * 1_000
                unit="records/s"
                label
                testid="rates-sparkline"
                compact=true
            />
            <p>
                <span class="spark-key-input">{format!("in {}/s", now(input))}</span>
                " · "
                <span class="spark-key-processed">{format!("processed {}/s", now(processed))}</span>
                <span class="muted">
                    {format!(" this second (last minute's mean {input_mean} / {processed_mean})")}
                </span>
            </p>
        </div>
    }
}

fn rates(load: &StageLoad, input: Option<(f64, i64)>) -> String {
    match input {
        Some((rate, queue)) => format!(
            "In {rate:.0}/s · processed {:.0}/s · queue (its group's lag) {} records",
            load.processing_rate,
            thousands(queue)
        ),
        None => format!("Processed {:.0}/s", load.processing_rate),
    }
}

/// "850 ms", "12 s", "3 min", "5 h", "2 d".
fn span(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..120_000 => format!("{} s", ms / 1_000),
        120_000..7_200_000 => format!("{} min", ms / 60_000),
        7_200_000..172_800_000 => format!("{} h", ms / 3_600_000),
        _ => format!("{} d", ms / 86_400_000),
    }
}

fn bytes(n: f64) -> String {
    if n < 1_024.0 {
        format!("{n:.0} B")
    } else if n < 1_048_576.0 {
        format!("{:.1} KB", n / 1_024.0)
    } else {
        format!("{:.1} MB", n / 1_048_576.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_sizes_read_short() {
        assert_eq!(span(850), "850 ms");
        assert_eq!(span(12_400), "12 s");
        assert_eq!(span(600_000), "10 min");
        assert_eq!(span(3 * 86_400_000), "3 d");
        assert_eq!(bytes(900.0), "900 B");
        assert_eq!(bytes(2_150.0), "2.1 KB");
    }
}
