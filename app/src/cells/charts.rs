//! The notebook's charts, in one small module: [`TimeChart`] (lines over the last seconds or
//! minutes: the lag per partition, a stage's rates) and [`BarChart`] (windows, aggregations).
//!
//! The marks are SVG and the text is HTML: the SVG is stretched to its box
//! (`preserveAspectRatio="none"`, strokes that do not scale), and the tick labels, notes and
//! legend are spans placed at the same percentages beside it. So text is never stretched, it
//! follows the page's font size (the large-font mode) and both themes' colours (CSS variables),
//! and a chart is as readable 390 px wide as 1280. Everything renders on the server and hydrates
//! as is. A tooltip is the SVG `<title>` of a bar or of a hover column; a touch screen never
//! shows those, so a tap (or a hover) on a column or bar also writes its values into a readout
//! line under the chart: one pointer handler per chart, reading the column's `data-i`. The
//! chart itself takes the keyboard focus, and ← → Home End step the readout through its
//! columns or bars; the readout is an `aria-live` region, so a screen reader speaks each value
//! (the SVG is hidden from it; the figure's `aria-label` names the chart).
//!
//! A maintained library was measured first (leptos-chartistry 0.2.3; docs/benchmarks.md,
//! "Charts"): it renders nothing on the server ("Loading..." until the browser measured the
//! chart), which the notebook's server-rendered first paint cannot take.

use leptos::prelude::*;

/// The SVG's own coordinates; stretched to the plot's box by CSS.
const W: f64 = 1000.0;
const H: f64 = 100.0;

/// Round steps for a value axis from 0: the top (at least `max`, at least 1) and the ticks,
/// 0 included, `step` = 1, 2 or 5 × 10ⁿ (never below 1: the charts count things), at most
/// `count` steps.
pub fn value_ticks(max: f64, count: u32) -> (f64, Vec<f64>) {
    let max = if max.is_finite() { max.max(0.0) } else { 0.0 };
    let raw = (max / f64::from(count.max(1))).max(1.0);
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude);
    let steps = (max / step).ceil().max(1.0) as u32;
    let ticks = (0..=steps).map(|i| f64::from(i) * step).collect();
    (f64::from(steps) * step, ticks)
}

/// A tick's label: "950", "1.5k", "15k", "2.5M".
pub fn short_number(value: f64) -> String {
    let trim = |v: f64, unit: &str| {
        if v < 10.0 && v.fract().abs() >= 0.05 {
            format!("{v:.1}{unit}")
        } else {
            format!("{v:.0}{unit}")
        }
    };
    match value.abs() {
        v if v < 1_000.0 => format!("{value:.0}"),
        v if v < 1_000_000.0 => trim(value / 1_000.0, "k"),
        _ => trim(value / 1_000_000.0, "M"),
    }
}

/// The time axis' ticks: milliseconds before the newest point, 0 ("now") first, a round step
/// (1 s … 1 h) giving at most four steps across `window_ms`.
pub fn time_ticks(window_ms: i64) -> Vec<i64> {
    const STEPS_S: [i64; 13] = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1_800, 3_600];
    let window_ms = window_ms.max(1_000);
    let step = STEPS_S
        .into_iter()
        .map(|s| s * 1_000)
        .find(|step| window_ms / step <= 4)
        .unwrap_or(3_600_000);
    (0..=window_ms / step).map(|i| i * step).collect()
}

/// "now", "−15 s", "−2 min".
pub fn ago_label(ms: i64) -> String {
    match ms / 1_000 {
        0 => "now".to_owned(),
        s if s < 120 => format!("−{s} s"),
        s if s % 60 == 0 => format!("−{} min", s / 60),
        s => format!("−{:.1} min", s as f64 / 60.0),
    }
}

/// A point in time as the tooltips show it: "17:32:05 UTC" (UTC: the server renders the chart
/// and the browser hydrates it, so both must write the same text).
fn clock(at_ms: i64) -> String {
    let second = at_ms.div_euclid(1_000).rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02} UTC",
        second / 3_600,
        second / 60 % 60,
        second % 60
    )
}

/// One line of a [`TimeChart`]: a name for the legend and the tooltips, a CSS class (its colour
/// and dashes) and a value per time of [`TimeLines::times`] (`None` breaks the line).
#[derive(Debug, Clone, PartialEq)]
pub struct TimeLine {
    pub name: String,
    pub class: String,
    pub values: Vec<Option<f64>>,
}

/// What a [`TimeChart`] draws: the sample times (ms since the epoch, oldest first) and the
/// lines' values at those times.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TimeLines {
    pub times: Vec<i64>,
    pub lines: Vec<TimeLine>,
}

impl TimeLines {
    /// `slots` values a second apart, the newest at `newest_ms` (series without their own
    /// times, such as a stage's rates).
    pub fn per_second(newest_ms: i64, slots: usize, lines: Vec<TimeLine>) -> Self {
        let times = (0..slots)
            .map(|i| newest_ms - 1_000 * (slots - 1 - i) as i64)
            .collect();
        Self { times, lines }
    }

    fn max(&self) -> f64 {
        self.lines
            .iter()
            .flat_map(|line| line.values.iter().flatten())
            .copied()
            .fold(0.0, f64::max)
    }
}

/// Where a time falls across the plot, 0 at the left edge (`window_ms` before `newest`) to `W`.
fn x_of(at: i64, newest: i64, window_ms: i64) -> f64 {
    W - (newest - at) as f64 / window_ms.max(1) as f64 * W
}

/// A line's path: one subpath (`M` … `L` …) per run of known values inside the window, so an
/// unknown value leaves a gap. Each point is "x,y".
fn line_path(times: &[i64], values: &[Option<f64>], window_ms: i64, top: f64) -> String {
    use std::fmt::Write as _;
    let newest = times.last().copied().unwrap_or(0);
    let mut path = String::new();
    let mut in_run = false;
    for (at, value) in times.iter().zip(values) {
        let x = x_of(*at, newest, window_ms);
        let Some(v) = value.filter(|_| x >= -0.05) else {
            in_run = false;
            continue;
        };
        let y = H - v / top.max(1.0) * H;
        let command = if in_run { 'L' } else { 'M' };
        let space = if path.is_empty() { "" } else { " " };
        let _ = write!(path, "{space}{command}{x:.1},{y:.1}");
        in_run = true;
    }
    path
}

/// The tooltip of the hover column at `times[i]`: its time, then each line's value.
fn column_title(lines: &TimeLines, i: usize, newest: i64, unit: &str) -> String {
    let at = lines.times[i];
    let mut title = format!("{} ({})", clock(at), ago_label(newest - at));
    for line in &lines.lines {
        let value = line.values.get(i).copied().flatten();
        let value = value.map_or("–".to_owned(), |v| super::thousands(v.round() as i64));
        title.push_str(&format!("\n{}: {value} {unit}", line.name));
    }
    title
}

/// The index a hover column or bar carries in its `data-i`, for the element a pointer is over
/// (`None` over anything else: an axis, the plot's background).
fn pointed_index(ev: &leptos::ev::PointerEvent) -> Option<usize> {
    event_target::<leptos::web_sys::Element>(ev)
        .get_attribute("data-i")?
        .parse()
        .ok()
}

/// The column or bar a key moves the readout to, of `len`: ← / → one step (from the newest
/// when none is picked yet), Home / End the first / the last; `None` for any other key, which
/// the chart leaves to the page (Tab moves on).
fn stepped(key: &str, current: Option<usize>, len: usize) -> Option<usize> {
    let last = len.checked_sub(1)?;
    match key {
        "ArrowLeft" => Some(current.map_or(last, |i| i.saturating_sub(1))),
        "ArrowRight" => Some(current.map_or(last, |i| (i + 1).min(last))),
        "Home" => Some(0),
        "End" => Some(last),
        _ => None,
    }
}

/// A tooltip as one line, for the readout under a chart.
fn one_line(title: &str) -> String {
    title.replace('\n', " · ")
}

/// The hover columns of a time chart: for each sample inside the window, its index and the
/// column's left edge and width, from halfway to the previous sample to halfway to the next.
fn columns(times: &[i64], window_ms: i64) -> Vec<(usize, f64, f64)> {
    let newest = times.last().copied().unwrap_or(0);
    let xs: Vec<f64> = times
        .iter()
        .map(|at| x_of(*at, newest, window_ms))
        .collect();
    (0..xs.len())
        .filter(|&i| xs[i] >= 0.0)
        .map(|i| {
            let left = if i == 0 {
                xs[i]
            } else {
                (xs[i - 1] + xs[i]) / 2.0
            };
            let right = xs.get(i + 1).map_or(W, |next| (xs[i] + next) / 2.0);
            let left = left.max(0.0);
            (i, left, (right - left).max(1.0))
        })
        .collect()
}

/// The value axis's labels, one per tick, placed by their share of the axis's top.
fn value_labels((top, ticks): (f64, Vec<f64>)) -> impl IntoView {
    ticks
        .into_iter()
        .map(|v| {
            let style = format!("bottom:{:.2}%", v / top * 100.0);
            view! { <span style=style>{short_number(v)}</span> }
        })
        .collect_view()
}

/// A horizontal grid line at every tick but the axis itself.
fn grid_lines((top, ticks): (f64, Vec<f64>)) -> impl IntoView {
    ticks
        .into_iter()
        .skip(1)
        .map(|v| {
            let y = format!("{:.1}", H - v / top * H);
            view! { <line class="grid" x1="0" x2=W y1=y.clone() y2=y /> }
        })
        .collect_view()
}

/// Lines over time with a value axis (round ticks, grid lines), a time axis ("−30 s" … "now",
/// the newest point at the right edge), a legend, and a tooltip per sample: hovering a column
/// highlights it and shows the time and every line's value there; tapping or hovering it also
/// reads them out under the chart.
#[component]
pub fn TimeChart(
    data: Signal<TimeLines>,
    /// How much time the plot spans, ending at the newest sample.
    window_ms: i64,
    /// The values' unit, in the tooltips ("records", "records/s").
    unit: &'static str,
    /// The accessible name (and what a screen reader reads instead of the plot).
    #[prop(into)]
    label: Signal<String>,
    testid: &'static str,
    /// A short chart (a panel's inline rates): fewer ticks, smaller text.
    #[prop(optional)]
    compact: bool,
) -> impl IntoView {
    let ticks = move || value_ticks(data.with(TimeLines::max), if compact { 2 } else { 4 });
    let y_ticks = move || value_labels(ticks());
    let grid = move || grid_lines(ticks());
    // The time axis is relative to the newest sample, so its ticks never change.
    let x_ticks = time_ticks(window_ms)
        .into_iter()
        .map(|ago| {
            let pct = (1.0 - ago as f64 / window_ms.max(1) as f64) * 100.0;
            let edge = match ago {
                0 => "end",
                _ if pct < 4.0 => "start",
                _ => "",
            };
            view! { <span class=edge style=format!("left:{pct:.2}%")>{ago_label(ago)}</span> }
        })
        .collect_view();
    let lines = move || {
        let (top, _) = ticks();
        data.with(|d| {
            d.lines
                .iter()
                .map(|line| {
                    let path = line_path(&d.times, &line.values, window_ms, top);
                    view! { <path class=line.class.clone() d=path /> }
                })
                .collect_view()
        })
    };
    // One column per sample; its `data-i` tells the pointer handler which sample it is.
    let hover = move || {
        data.with(|d| {
            let newest = d.times.last().copied().unwrap_or(0);
            columns(&d.times, window_ms)
                .into_iter()
                .map(|(i, left, width)| {
                    view! {
                        <rect class="hover" data-i=i x=format!("{left:.1}") y="0"
                            width=format!("{width:.1}") height=H>
                            <title>{column_title(d, i, newest, unit)}</title>
                        </rect>
                    }
                })
                .collect_view()
        })
    };
    // The sample tapped or hovered last, by its time: the readout stays on that second while
    // newer samples arrive, until it leaves the window.
    let picked = RwSignal::new(None::<i64>);
    let pick = move |ev: leptos::ev::PointerEvent| {
        if let Some(i) = pointed_index(&ev) {
            picked.set(data.with_untracked(|d| d.times.get(i).copied()));
        }
    };
    let picked_index = move || {
        let at = picked.get()?;
        data.with(|d| d.times.iter().position(|t| *t == at))
    };
    // A keyboard (or a screen reader's) user focuses the chart and steps through its seconds.
    let step = move |ev: leptos::ev::KeyboardEvent| {
        data.with_untracked(|d| {
            let current = picked
                .get_untracked()
                .and_then(|at| d.times.iter().position(|t| *t == at));
            if let Some(i) = stepped(&ev.key(), current, d.times.len()) {
                ev.prevent_default();
                picked.set(d.times.get(i).copied());
            }
        });
    };
    let highlight = move || {
        let i = picked_index()?;
        data.with(|d| {
            let (_, left, width) = columns(&d.times, window_ms)
                .into_iter()
                .find(|(column, _, _)| *column == i)?;
            Some(view! {
                <rect class="picked" x=format!("{left:.1}") y="0" width=format!("{width:.1}") height=H />
            })
        })
    };
    // `None` (nothing at all, not an empty text) hydrates as the server rendered it.
    let readout = move || match picked_index() {
        Some(i) => Some(data.with(|d| {
            let newest = d.times.last().copied().unwrap_or(0);
            one_line(&column_title(d, i, newest, unit))
        })),
        // A compact chart's panel has no room for the hint: its readout appears on a tap.
        None if compact => None,
        None => Some(
            "Tap or hover the chart (or focus it and press ← →) to read a second's values here."
                .to_owned(),
        ),
    };
    let legend = move || {
        data.with(|d| {
            d.lines
                .iter()
                .map(|line| {
                    view! {
                        <span class="key">
                            // A span, not a path: the chart's own paths are what tests and
                            // styles look up by the line's class.
                            <span class=format!("swatch {}", line.class) aria-hidden="true"></span>
                            {line.name.clone()}
                        </span>
                    }
                })
                .collect_view()
        })
    };
    view! {
        <figure class="chart time-chart" class:compact=compact data-testid=testid aria-label=label
            tabindex="0" on:keydown=step>
            <div class="plot">
                <div class="y-ticks" aria-hidden="true">{y_ticks}</div>
                <svg viewBox=format!("0 0 {W} {H}") preserveAspectRatio="none" aria-hidden="true"
                    on:pointerover=pick on:pointerdown=pick>
                    {grid}
                    <line class="axis" x1="0" y1=H x2=W y2=H />
                    <line class="axis" x1="0" y1="0" x2="0" y2=H />
                    {lines}
                    {highlight}
                    {hover}
                </svg>
                <div class="x-ticks" aria-hidden="true">{x_ticks}</div>
            </div>
            <p class="chart-readout" data-testid="chart-readout" aria-live="polite">{readout}</p>
            <figcaption class="chart-legend">{legend}</figcaption>
        </figure>
    }
}

/// One bar: segments stacked bottom-up, each `(value, css class)`, a label under it and an
/// optional note above it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub segments: Vec<(u64, &'static str)>,
    pub note: Option<String>,
    /// Drawn lighter: a value that can still change (an open window).
    pub faded: bool,
}

impl Bar {
    fn total(&self) -> u64 {
        self.segments.iter().map(|(value, _)| value).sum()
    }
}

/// CSS class of a sentiment's segments.
pub fn sentiment_class(index: usize) -> &'static str {
    ["seg-positive", "seg-negative", "seg-neutral"][index.min(2)]
}

/// What a segment's class names in its tooltip: "seg-positive" → "positive".
fn segment_name(class: &str) -> &str {
    match class.strip_prefix("seg-") {
        Some("count") => "count",
        Some(name) => name,
        None => class,
    }
}

/// A bar's tooltip: its label, its total and each segment's share.
fn bar_title(bar: &Bar) -> String {
    let total = bar.total();
    let mut title = if bar.label.is_empty() {
        super::thousands(total as i64)
    } else {
        format!("{}: {}", bar.label, super::thousands(total as i64))
    };
    let shown: Vec<&(u64, &str)> = bar.segments.iter().filter(|(v, _)| *v > 0).collect();
    if shown.len() > 1 {
        for (value, class) in shown {
            let pct = *value as f64 / total.max(1) as f64 * 100.0;
            title.push_str(&format!(
                "\n{}: {} ({pct:.0} %)",
                segment_name(class),
                super::thousands(*value as i64)
            ));
        }
    }
    if let Some(note) = &bar.note {
        title.push_str(&format!("\n{note}"));
    }
    title
}

/// How many bar labels fit under a chart 390 px wide: fewer, the longer they are.
fn labels_that_fit(bars: &[Bar]) -> usize {
    match bars
        .iter()
        .map(|b| b.label.chars().count())
        .max()
        .unwrap_or(0)
    {
        0..=3 => 12,
        4..=6 => 7,
        // A clock time: four, so the first one, moved inside the plot's left edge (see
        // [`bar_label_anchor`]), still clears the next (five overlapped, 390 px wide).
        _ => 4,
    }
}

/// Where the label under bar `i` of `n` goes, as a share of the plot's width, and how it is
/// anchored: centred under its bar, except near an edge, where a centred label would stick out
/// of the plot (the first of 14 windows' times did, 390 px wide): it then starts at its bar's
/// left edge, or ends at the last bar's right edge.
fn bar_label_anchor(i: usize, n: usize) -> (&'static str, f64) {
    /// Half a clock time's width ("17:32:10") in a plot 390 px wide, in per cent.
    const EDGE_PCT: f64 = 8.0;
    let slot = 100.0 / n.max(1) as f64;
    let centre = (i as f64 + 0.5) * slot;
    if centre < EDGE_PCT {
        ("start", i as f64 * slot)
    } else if centre > 100.0 - EDGE_PCT {
        ("end", (i as f64 + 1.0) * slot)
    } else {
        ("", centre)
    }
}

/// Stacked bars with a value axis (round ticks, grid lines) from 0; labels under the bars when
/// there is room for them (every few bars when there is not), notes above them, and a tooltip
/// per bar with its segments.
#[component]
pub fn BarChart(
    bars: Signal<Vec<Bar>>,
    #[prop(into)] label: String,
    testid: &'static str,
    #[prop(optional, into)] caption: Option<Signal<String>>,
) -> impl IntoView {
    let ticks = move || {
        let max = bars.with(|bars| bars.iter().map(Bar::total).max().unwrap_or(0));
        value_ticks(max as f64, 4)
    };
    let y_ticks = move || value_labels(ticks());
    let grid = move || grid_lines(ticks());
    let slot = move || W / bars.with(Vec::len).max(1) as f64;
    let drawn = move || {
        let (top, _) = ticks();
        let slot = slot();
        let width = (slot * 0.8).max(1.0);
        bars.get()
            .into_iter()
            .enumerate()
            .map(|(i, bar)| {
                let x = i as f64 * slot + (slot - width) / 2.0;
                let mut bottom = H;
                let segments = bar
                    .segments
                    .iter()
                    .filter(|(value, _)| *value > 0)
                    .map(|&(value, class)| {
                        // At least a sliver: a count that is not zero stays visible.
                        let height = (value as f64 / top * H).max(0.6);
                        bottom -= height;
                        view! {
                            <rect
                                class=format!("bar-seg {class}")
                                x=format!("{x:.1}")
                                y=format!("{bottom:.1}")
                                width=format!("{width:.1}")
                                height=format!("{height:.1}")
                                data-value=value
                            />
                        }
                    })
                    .collect_view();
                // The tooltip covers the whole slot, up to the top: short bars are easy to hover
                // and to tap.
                view! {
                    <g class:faded=bar.faded>
                        {segments}
                        <rect class="hover" data-i=i x=format!("{:.1}", i as f64 * slot) y="0"
                            width=format!("{slot:.1}") height=H>
                            <title>{bar_title(&bar)}</title>
                        </rect>
                    </g>
                }
            })
            .collect_view()
    };
    // The bar tapped or hovered last, by its label: windows move left as new ones open, and
    // the readout follows its bar until it is gone.
    let picked = RwSignal::new(None::<String>);
    let pick = move |ev: leptos::ev::PointerEvent| {
        if let Some(i) = pointed_index(&ev) {
            picked.set(bars.with_untracked(|bars| bars.get(i).map(|b| b.label.clone())));
        }
    };
    let picked_index = move || {
        let label = picked.get()?;
        bars.with(|bars| bars.iter().position(|b| b.label == label))
    };
    let step = move |ev: leptos::ev::KeyboardEvent| {
        bars.with_untracked(|bars| {
            let current = picked
                .with_untracked(|label| bars.iter().position(|b| Some(&b.label) == label.as_ref()));
            if let Some(i) = stepped(&ev.key(), current, bars.len()) {
                ev.prevent_default();
                picked.set(bars.get(i).map(|b| b.label.clone()));
            }
        });
    };
    let highlight = move || {
        let i = picked_index()?;
        let slot = slot();
        Some(view! {
            <rect class="picked" x=format!("{:.1}", i as f64 * slot) y="0" width=format!("{slot:.1}") height=H />
        })
    };
    let readout = move || {
        picked_index()
            .and_then(|i| bars.with(|bars| bars.get(i).map(|bar| one_line(&bar_title(bar)))))
            .unwrap_or_else(|| {
                "Tap or hover a bar (or focus the chart and press ← →) to read its values here."
                    .to_owned()
            })
    };
    // Labels under the bars: as many as fit a phone's width, every n-th bar's beyond that.
    let x_labels = move || {
        let bars = bars.get();
        let every = bars.len().div_ceil(labels_that_fit(&bars)).max(1);
        bars.iter()
            .enumerate()
            .filter(|(i, _)| i % every == 0)
            .map(|(i, bar)| {
                let (edge, left) = bar_label_anchor(i, bars.len());
                view! { <span class=edge style=format!("left:{left:.2}%")>{bar.label.clone()}</span> }
            })
            .collect_view()
    };
    let notes = move || {
        let (top, _) = ticks();
        let bars = bars.get();
        let pct = 100.0 / bars.len().max(1) as f64;
        bars.iter()
            .enumerate()
            .filter_map(|(i, bar)| {
                let note = bar.note.clone()?;
                let style = format!(
                    "left:{:.2}%;bottom:{:.2}%",
                    (i as f64 + 0.5) * pct,
                    bar.total() as f64 / top * 100.0
                );
                Some(view! { <span class="bar-note" style=style>{note}</span> })
            })
            .collect_view()
    };
    view! {
        <figure class="chart bar-chart" data-testid=testid aria-label=label tabindex="0"
            on:keydown=step>
            <div class="plot">
                <div class="y-ticks" aria-hidden="true">{y_ticks}</div>
                <div class="marks">
                    <svg viewBox=format!("0 0 {W} {H}") preserveAspectRatio="none" aria-hidden="true"
                        on:pointerover=pick on:pointerdown=pick>
                        {grid}
                        <line class="axis" x1="0" y1=H x2=W y2=H />
                        <line class="axis" x1="0" y1="0" x2="0" y2=H />
                        {highlight}
                        {drawn}
                    </svg>
                    <div class="notes" aria-hidden="true">{notes}</div>
                </div>
                <div class="x-ticks bar-labels" aria-hidden="true">{x_labels}</div>
            </div>
            <p class="chart-readout" data-testid="chart-readout" aria-live="polite">{readout}</p>
            {caption.map(|caption| view! { <figcaption>{caption}</figcaption> })}
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_ticks_are_round_steps_from_zero_to_at_least_the_max() {
        assert_eq!(value_ticks(0.0, 4), (1.0, vec![0.0, 1.0]));
        assert_eq!(value_ticks(3.0, 4), (3.0, vec![0.0, 1.0, 2.0, 3.0]));
        assert_eq!(value_ticks(95.0, 4), (100.0, vec![0.0, 50.0, 100.0]));
        assert_eq!(
            value_ticks(1_234.0, 4),
            (1_500.0, vec![0.0, 500.0, 1_000.0, 1_500.0])
        );
        assert_eq!(value_ticks(f64::NAN, 4), (1.0, vec![0.0, 1.0]));
        let (top, ticks) = value_ticks(123_456.0, 2);
        assert!(top >= 123_456.0 && ticks.len() <= 3);
    }

    #[test]
    fn tick_labels_read_short() {
        assert_eq!(short_number(950.0), "950");
        assert_eq!(short_number(1_500.0), "1.5k");
        assert_eq!(short_number(15_000.0), "15k");
        assert_eq!(short_number(2_000_000.0), "2M");
        assert_eq!(short_number(2_500_000.0), "2.5M");
    }

    #[test]
    fn the_time_axis_counts_back_from_now_in_round_steps() {
        assert_eq!(time_ticks(60_000), vec![0, 15_000, 30_000, 45_000, 60_000]);
        assert_eq!(time_ticks(900_000), vec![0, 300_000, 600_000, 900_000]);
        let labels: Vec<String> = [0, 15_000, 60_000, 300_000, 90_000]
            .into_iter()
            .map(ago_label)
            .collect();
        assert_eq!(labels, ["now", "−15 s", "−60 s", "−5 min", "−90 s"]);
    }

    #[test]
    fn a_line_is_placed_by_time_scaled_to_the_top_and_broken_at_gaps() {
        // Newest at the right edge (1000), a 4 s window: 2 s before it is the middle.
        let times = [0, 2_000, 3_000, 4_000];
        assert_eq!(
            line_path(
                &times,
                &[Some(0.0), Some(10.0), None, Some(5.0)],
                4_000,
                10.0
            ),
            "M0.0,100.0 L500.0,0.0 M1000.0,50.0"
        );
        // Points older than the window are left out.
        assert_eq!(
            line_path(&[0, 10_000], &[Some(1.0), Some(1.0)], 5_000, 1.0),
            "M1000.0,0.0"
        );
        assert_eq!(line_path(&[], &[], 60_000, 1.0), "");
    }

    #[test]
    fn each_sample_in_the_window_gets_a_column_between_its_neighbours() {
        // A 4 s window: 0 s is the left edge, 2 s the middle, 4 s the right edge; a sample
        // older than the window has no column, and the first one in it starts at the edge.
        let columns = columns(&[-1_000, 0, 2_000, 4_000], 4_000);
        assert_eq!(
            columns,
            [(1, 0.0, 250.0), (2, 250.0, 500.0), (3, 750.0, 250.0)]
        );
        assert_eq!(one_line("a\nb: 1\nc: 2"), "a · b: 1 · c: 2");
    }

    #[test]
    fn bar_labels_near_an_edge_are_anchored_inside_the_plot() {
        // 14 windows: the first bar's centre is 3.6 % from the left edge.
        assert_eq!(bar_label_anchor(0, 14), ("start", 0.0));
        assert_eq!(bar_label_anchor(13, 14), ("end", 100.0));
        let (edge, left) = bar_label_anchor(6, 14);
        assert_eq!(edge, "");
        assert!((left - 46.43).abs() < 0.01, "{left}");
        // Three bars: each label centred under its bar.
        assert_eq!(bar_label_anchor(0, 3).0, "");
        assert_eq!(bar_label_anchor(2, 3).0, "");
    }

    #[test]
    fn long_bar_labels_are_thinned_out() {
        let bars = |n: usize, label: &str| -> Vec<Bar> {
            (0..n)
                .map(|_| Bar {
                    label: label.into(),
                    segments: Vec::new(),
                    note: None,
                    faded: false,
                })
                .collect()
        };
        assert_eq!(labels_that_fit(&bars(5, "5★")), 12);
        assert_eq!(labels_that_fit(&bars(20, "17:32:10")), 4);
    }

    #[test]
    fn arrow_keys_step_through_the_columns_and_stop_at_the_ends() {
        assert_eq!(
            stepped("ArrowLeft", None, 5),
            Some(4),
            "starts at the newest"
        );
        assert_eq!(stepped("ArrowRight", None, 5), Some(4));
        assert_eq!(stepped("ArrowLeft", Some(2), 5), Some(1));
        assert_eq!(stepped("ArrowLeft", Some(0), 5), Some(0));
        assert_eq!(stepped("ArrowRight", Some(4), 5), Some(4));
        assert_eq!(stepped("Home", Some(3), 5), Some(0));
        assert_eq!(stepped("End", None, 5), Some(4));
        assert_eq!(
            stepped("Tab", Some(1), 5),
            None,
            "other keys are the page's"
        );
        assert_eq!(stepped("ArrowLeft", None, 0), None, "an empty chart");
    }

    #[test]
    fn tooltip_times_are_utc_clock_times() {
        assert_eq!(clock(0), "00:00:00 UTC");
        assert_eq!(clock(63_005_999), "17:30:05 UTC");
        assert_eq!(clock(-1_000), "23:59:59 UTC");
    }

    #[test]
    fn per_second_series_end_at_the_newest_time() {
        let lines = TimeLines::per_second(10_000, 3, Vec::new());
        assert_eq!(lines.times, [8_000, 9_000, 10_000]);
    }

    #[test]
    fn tooltips_name_the_time_and_every_value() {
        let lines = TimeLines {
            times: vec![0, 1_000],
            lines: vec![
                TimeLine {
                    name: "reviews-0".into(),
                    class: "lag-line".into(),
                    values: vec![Some(1_200.0), Some(3.0)],
                },
                TimeLine {
                    name: "reviews-1".into(),
                    class: "lag-line".into(),
                    values: vec![None, Some(4.0)],
                },
            ],
        };
        assert_eq!(
            column_title(&lines, 0, 1_000, "records"),
            "00:00:00 UTC (−1 s)\nreviews-0: 1,200 records\nreviews-1: – records"
        );
        let bar = Bar {
            label: "4★".into(),
            segments: vec![(3, "seg-positive"), (1, "seg-negative"), (0, "seg-neutral")],
            note: None,
            faded: false,
        };
        assert_eq!(
            bar_title(&bar),
            "4★: 4\npositive: 3 (75 %)\nnegative: 1 (25 %)"
        );
    }
}
