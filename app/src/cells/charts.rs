//! Small SVG bar charts shared by the cells: plain `<rect>`s, styled by CSS classes, so they
//! render on the server, work offline and stay readable in both themes.

use leptos::prelude::*;

const W: f64 = 360.0;
const H: f64 = 150.0;
/// Room under the bars for their labels.
const LABEL_SPACE: f64 = 16.0;
/// Room above the tallest bar for its note.
const NOTE_SPACE: f64 = 14.0;

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

/// Stacked bars scaled to the tallest; labels are drawn when there is room for them.
#[component]
pub fn BarChart(
    bars: Signal<Vec<Bar>>,
    #[prop(into)] label: String,
    testid: &'static str,
    #[prop(optional, into)] caption: Option<Signal<String>>,
) -> impl IntoView {
    let drawn = move || {
        let bars = bars.get();
        let max = bars.iter().map(Bar::total).max().unwrap_or(0).max(1) as f64;
        let slot = W / bars.len().max(1) as f64;
        let width = (slot * 0.8).max(1.0);
        let show_labels = bars.len() <= 12;
        let plot = H - LABEL_SPACE - NOTE_SPACE;
        bars.into_iter()
            .enumerate()
            .map(|(i, bar)| {
                let x = i as f64 * slot + (slot - width) / 2.0;
                let mut bottom = H - LABEL_SPACE;
                let segments = bar
                    .segments
                    .iter()
                    .filter(|(value, _)| *value > 0)
                    .map(|&(value, class)| {
                        // At least one unit tall: a count that is not zero stays visible.
                        let height = (value as f64 / max * plot).max(1.0);
                        bottom -= height;
                        view! {
                            <rect
                                class=format!("bar-seg {class}")
                                x=format!("{x:.1}")
                                y=format!("{bottom:.1}")
                                width=format!("{width:.1}")
                                height=format!("{height:.1}")
                                data-value=value
                            >
                                <title>{format!("{}: {value}", bar.label)}</title>
                            </rect>
                        }
                    })
                    .collect_view();
                let centre = x + width / 2.0;
                let label = show_labels.then(|| {
                    view! {
                        <text class="bar-label" x=format!("{centre:.1}") y=format!("{:.1}", H - 4.0)>
                            {bar.label.clone()}
                        </text>
                    }
                });
                let note = bar.note.clone().map(|note| {
                    view! {
                        <text class="bar-note" x=format!("{centre:.1}") y=format!("{:.1}", bottom - 3.0)>
                            {note}
                        </text>
                    }
                });
                view! { <g class:faded=bar.faded>{segments}{label}{note}</g> }
            })
            .collect_view()
    };
    view! {
        <figure class="chart" data-testid=testid>
            <svg viewBox=format!("0 0 {W} {H}") role="img" aria-label=label>
                <line x1="0" y1=H - LABEL_SPACE x2=W y2=H - LABEL_SPACE class="axis" />
                {drawn}
            </svg>
            {caption.map(|caption| view! { <figcaption>{caption}</figcaption> })}
        </figure>
    }
}

/// One line of a [`sparkline`]: values oldest first (`None` breaks the line), a CSS class.
#[derive(Debug, Clone, PartialEq)]
pub struct SparkSeries {
    pub class: &'static str,
    pub values: Vec<Option<u32>>,
}

const SPARK_W: f64 = 120.0;
const SPARK_H: f64 = 28.0;

/// A small inline line chart of two lines, `front` drawn over `back`: `slots` points across with
/// the newest at the right edge, both scaled to the largest value of either. Each line is one
/// `<path>` (a gap starts a new subpath), so the view has a fixed shape: no list to hydrate.
/// `label` is its accessible name and tooltip.
pub fn sparkline(
    back: SparkSeries,
    front: SparkSeries,
    slots: usize,
    label: String,
    testid: &'static str,
) -> impl IntoView {
    let max = back
        .values
        .iter()
        .chain(&front.values)
        .flatten()
        .copied()
        .max()
        .unwrap_or(0);
    let title = label.clone();
    view! {
        <svg
            class="sparkline"
            data-testid=testid
            viewBox=format!("0 0 {SPARK_W} {SPARK_H}")
            preserveAspectRatio="none"
            role="img"
            aria-label=label
        >
            <title>{title}</title>
            <line x1="0" y1=SPARK_H x2=SPARK_W y2=SPARK_H class="axis" />
            <path class=back.class d=spark_path(&back.values, slots, max) />
            <path class=front.class d=spark_path(&front.values, slots, max) />
        </svg>
    }
}

/// A path through `values`, placed in `slots` steps across (the last value at the right edge)
/// and scaled so that `max` touches the top (1 unit of margin); each run of known values is a
/// subpath of its own (`M` … `L` …), so an unknown second leaves a gap.
fn spark_path(values: &[Option<u32>], slots: usize, max: u32) -> String {
    use std::fmt::Write as _;
    let step = SPARK_W / slots.saturating_sub(1).max(1) as f64;
    let first_slot = slots.saturating_sub(values.len());
    let mut path = String::new();
    let mut in_run = false;
    for (i, value) in values.iter().enumerate() {
        let Some(v) = value else {
            in_run = false;
            continue;
        };
        let x = (first_slot + i) as f64 * step;
        let y = SPARK_H - 1.0 - f64::from(*v) / f64::from(max.max(1)) * (SPARK_H - 2.0);
        let command = if in_run { 'L' } else { 'M' };
        let space = if path.is_empty() { "" } else { " " };
        let _ = write!(path, "{space}{command}{x:.1},{y:.1}");
        in_run = true;
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparkline_is_right_aligned_scaled_to_the_top_and_broken_at_gaps() {
        // Three values of five slots: they take the right-most three.
        assert_eq!(
            spark_path(&[Some(0), Some(10), Some(5)], 5, 10),
            "M60.0,27.0 L90.0,1.0 L120.0,14.0"
        );
        // An unknown second starts a new subpath.
        assert_eq!(
            spark_path(&[Some(1), None, Some(1), Some(1)], 4, 1),
            "M0.0,1.0 M80.0,1.0 L120.0,1.0"
        );
        assert_eq!(spark_path(&[None, None], 60, 1), "");
    }
}
