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
