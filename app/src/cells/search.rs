//! Cell 5 · Search & dashboards: the indexer (a consumer group on `reviews.sentiment` that
//! bulk-indexes into a search engine), full-text search with filters, and the search engine's own
//! aggregations charted.

use leptos::prelude::*;

use crate::session::Controls;

use super::charts::{Bar, BarChart, sentiment_class};
use super::lesson::FaultButton;
use super::{Cell, ErrorLine, LiveStage, StatePill, thousands, typed};
use crate::api::{
    DatasetKind, GROUP_INDEXER, IndexerConfig, SearchAggregations, SearchOutageRequest,
    SearchResults, Sentiment,
};
use crate::live::Live;
use crate::requests::{Posts, Read};

/// Histogram intervals a learner can pick.
const INTERVALS: [&str; 5] = ["15m", "1h", "6h", "1d", "7d"];

#[component]
pub fn SearchCell() -> impl IntoView {
    let live = Live::use_context();
    let stage = LiveStage::new(live, "indexer");
    let state = stage.state;
    let status = Memo::new(move |_| live.snapshot.get().map(|s| s.search).unwrap_or_default());
    let counter = move |name: &'static str| stage.counter(name);
    let group = RwSignal::new(GROUP_INDEXER.to_owned());
    let posts = Posts::new();
    let running = move || stage.running();
    // The running config's group (a run may name its own); the default before any run.
    let running_group = move || {
        stage
            .status
            .get()
            .and_then(|s| s.config)
            .and_then(|c| serde_json::from_value::<IndexerConfig>(c).ok())
            .map_or_else(|| GROUP_INDEXER.to_owned(), |config| config.group)
    };
    let lag = move || {
        let group = running_group();
        live.snapshot
            .get()
            .and_then(|s| s.groups.into_iter().find(|g| g.group == group))
            .map_or(0, |g| g.total_lag())
    };
    let start = move |_| {
        posts.send(
            "/api/stages/indexer/start",
            typed(IndexerConfig {
                group: group.get().trim().to_owned(),
                ..IndexerConfig::default()
            }),
        );
    };
    let stop = move |_| posts.send("/api/stages/indexer/stop", serde_json::Value::Null);
    let problem = move || {
        stage
            .status
            .get()
            .and_then(|s| s.last_error)
            .or_else(|| status.get().last_error)
    };

    let dataset = super::streamed_dataset();
    let (record, records) = (
        move || dataset.get().record_noun(),
        move || dataset.get().records_noun(),
    );
    view! {
        <Cell number=5 title="Search & dashboards">
            <p class="explain">
                "The " <em>"indexer"</em> " is one more consumer group, on " <code>"reviews.sentiment"</code>
                {move || format!(". It sends {} to a search engine in ", records())} <em>"bulk"</em>
                " requests and commits its offsets only after the engine accepted them. Each document's id is its "
                <code>{move || dataset.get().id_field()}</code>
                {move || format!(", so a {} delivered twice overwrites itself: at-least-once delivery plus an ", record())}
                <em>"idempotent sink"</em>
                {move || format!(" gives each {} exactly once in the index. Start a second pass in a new group and watch the count stay put.", record())}
            </p>
            {move || dataset.get().text_field().is_none().then(|| view! {
                <p class="note" data-testid="search-no-text">
                    {format!(
                        "Streaming {}: they have no text to search and no label to filter by, so the indexer skips them (counted as skipped) and commits past them; the index keeps the reviews and tweets streamed before.",
                        records(),
                    )}
                </p>
            })}
            <Controls>
            <form class="controls" on:submit=|ev| ev.prevent_default()>
                <label>
                    "Consumer group"
                    <input type="text" name="group" bind:value=group />
                </label>
                <div class="buttons">
                    <button class="btn btn-primary" data-primary data-testid="indexer-start" on:click=start disabled=move || running() || posts.pending()>
                        "Start indexer"
                    </button>
                    <button class="btn" data-testid="indexer-stop" on:click=stop disabled=move || !running() || posts.pending()>
                        "Stop"
                    </button>
                    <OutageToggle paused=Signal::derive(move || status.get().paused) />
                </div>
            </form>
            </Controls>
            <ErrorLine error=posts />
            {move || problem().map(|p| view! { <p class="warning" role="status" data-testid="indexer-problem">{p}</p> })}
            <div class="stats">
                <div class="stat">
                    <span class="stat-label">"Indexer " <StatePill state /></span>
                    <span class="stat-value" data-testid="indexer-indexed">
                        {move || thousands(i64::try_from(counter("indexed")()).unwrap_or(i64::MAX))}
                    </span>
                    <span class="stat-unit">"documents sent and accepted"</span>
                    <span class="stat-detail">
                        {move || format!(
                            "lag {} · {} bulks · p50 {} ms · p99 {} ms · retries {} · DLQ {}",
                            thousands(lag()), counter("bulks")(), counter("bulk_ms_p50")(),
                            counter("bulk_ms_p99")(), counter("retries")(), counter("dlq")(),
                        )}
                    </span>
                </div>
                <div class="stat">
                    <span class="stat-label">
                        {move || format!("Index · {}", status.get().backend)}
                    </span>
                    <span class="stat-value" data-testid="search-documents">
                        {move || status.get().documents.map_or("–".to_owned(), |d| thousands(i64::try_from(d).unwrap_or(i64::MAX)))}
                    </span>
                    <span class="stat-unit">"documents searchable"</span>
                    <span class="stat-detail">{move || status.get().location}</span>
                </div>
            </div>
            <h3>"Indexer lag per partition (last minute)"</h3>
            <super::lag::GroupLagChart
                group=Signal::derive(running_group)
                topic="reviews.sentiment"
                testid="indexer-lag-chart"
            />
            <super::load::StageLoadPanel stage="indexer" default_group="pipebook-indexer" />
            <super::sentiment::StageMembers
                members=stage.members()
                stage="indexer"
                topic="reviews.sentiment"
                holds="each bulk-indexes the partitions listed into the same search engine (Elasticsearch, for processes on other machines). Kill one and its partitions move to the others, which index again what it had not committed: documents are keyed by review_id, so nothing is counted twice."
            />
            <Dashboards documents=Signal::derive(move || status.get().documents.unwrap_or(0)) />
            <SearchBox />
        </Cell>
    }
}

/// Full-text search with a sentiment filter and a minimum of stars.
#[component]
fn SearchBox() -> impl IntoView {
    let q = RwSignal::new(String::new());
    let sentiment = RwSignal::new(String::new());
    let stars_min = RwSignal::new(String::new());
    // The words and the path of the search asked last; the words mark the hits.
    let asked = RwSignal::new(None::<(String, String)>);
    let results = Read::<SearchResults>::new(move || asked.get().map(|(_, path)| path));
    let search = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let path = format!(
            "/api/search?q={}&sentiment={}&stars_min={}&limit=20",
            query_component(&q.get()),
            sentiment.get(),
            stars_min.get()
        );
        asked.set(Some((q.get(), path)));
    };
    view! {
        <h3>"Search"</h3>
        <form class="controls" on:submit=search data-testid="search-form">
            <label class="wide">
                "Words in the text"
                <input type="search" name="q" placeholder="e.g. service" bind:value=q data-testid="search-q" />
            </label>
            <label>
                "Sentiment"
                <select name="sentiment" data-testid="search-sentiment" on:change=move |ev| sentiment.set(event_target_value(&ev))>
                    <option value="">"any"</option>
                    {Sentiment::ALL.iter().map(|s| view! { <option value=s.as_str()>{s.as_str()}</option> }).collect_view()}
                </select>
            </label>
            <label>
                "Stars at least"
                <select name="stars_min" on:change=move |ev| stars_min.set(event_target_value(&ev))>
                    <option value="">"any"</option>
                    {(1..=5).map(|s| view! { <option value=s.to_string()>{format!("{s}★")}</option> }).collect_view()}
                </select>
            </label>
            <div class="buttons">
                <button class="btn btn-primary" type="submit" data-testid="search-submit">"Search"</button>
            </div>
        </form>
        // A refused search shows the refusal alone, not the hits of the search before it.
        {move || match (results.error(), results.answer()) {
            (Some(message), _) => Some(view! { <p class="error" role="alert">{message}</p> }.into_any()),
            (None, Some(found)) => {
                let words = asked.with(|a| a.as_ref().map(|(words, _)| words.clone()).unwrap_or_default());
                Some(view! { <SearchHits words found /> }.into_any())
            }
            (None, None) => None,
        }}
    }
}

#[component]
fn SearchHits(words: String, found: SearchResults) -> impl IntoView {
    let words: Vec<String> = words
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let summary = format!(
        "{} matching documents · showing {} · {:.1} ms",
        thousands(i64::try_from(found.total).unwrap_or(i64::MAX)),
        found.hits.len(),
        found.took_ms
    );
    view! {
        <p class="muted" data-testid="search-total">{summary}</p>
        <table class="latest" data-testid="search-results">
            <thead>
                <tr><th>"Review"</th><th>"Stars"</th><th>"Label"</th><th>"Score"</th><th>"Date"</th></tr>
            </thead>
            <tbody>
                {found.hits.into_iter().map(|hit| view! {
                    <tr data-testid="search-hit">
                        <td class="excerpt" title=hit.text.clone()>
                            {snippet(&hit.text, &words).into_iter().map(|(text, matched)| {
                                if matched { view! { <mark>{text}</mark> }.into_any() } else { text.into_any() }
                            }).collect_view()}
                        </td>
                        // A tweet has no stars: its hashtags stand in the column.
                        <td>{if hit.dataset == DatasetKind::Tweets {
                            format!("tweet {}", hit.hashtags.join(" "))
                        } else {
                            "★".repeat(usize::from(hit.stars))
                        }}</td>
                        <td><span class=format!("label label-{}", hit.sentiment.as_str().to_lowercase()) data-testid="hit-sentiment">{hit.sentiment.as_str()}</span></td>
                        <td>{format!("{:+.3}", hit.score)}</td>
                        <td class="muted">{hit.date.replace('T', " ").trim_end_matches('Z').to_owned()}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

/// The search engine's aggregations, fetched again whenever the document count changes.
#[component]
fn Dashboards(documents: Signal<u64>) -> impl IntoView {
    let interval = RwSignal::new("1h".to_owned());
    let read = Read::<SearchAggregations>::new(move || {
        documents.track();
        Some(format!(
            "/api/search/aggregations?interval={}",
            interval.get()
        ))
    });
    let aggregations = Signal::derive(move || read.answer().unwrap_or_default());
    let by_sentiment = Signal::derive(move || {
        let aggs = aggregations.get();
        Sentiment::ALL
            .iter()
            .map(|s| {
                let count = aggs
                    .by_sentiment
                    .iter()
                    .find(|t| t.key == s.as_str())
                    .map_or(0, |t| t.count);
                Bar {
                    label: s.as_str().to_owned(),
                    segments: vec![(count, sentiment_class(s.index()))],
                    note: Some(thousands(i64::try_from(count).unwrap_or(i64::MAX))),
                    faded: false,
                }
            })
            .collect()
    });
    let by_stars = Signal::derive(move || {
        aggregations
            .get()
            .by_stars
            .into_iter()
            .map(|b| Bar {
                label: format!("{}★", b.stars),
                segments: vec![(b.count, "seg-count")],
                note: b.avg_score.map(|v| format!("{v:+.2}")),
                faded: false,
            })
            .collect()
    });
    let over_time = Signal::derive(move || {
        aggregations
            .get()
            .over_time
            .into_iter()
            .map(|b| Bar {
                label: String::new(),
                segments: (0..3)
                    .map(|i| (b.by_sentiment[i], sentiment_class(i)))
                    .collect(),
                note: None,
                faded: false,
            })
            .collect()
    });
    let time_caption = Signal::derive(move || {
        let aggs = aggregations.get();
        let span = match (aggs.over_time.first(), aggs.over_time.last()) {
            (Some(first), Some(last)) => {
                format!("{} → {}", day_hour(first.start), day_hour(last.start))
            }
            _ => "no documents yet".to_owned(),
        };
        let buckets = aggs.over_time.len();
        let plural = if buckets == 1 { "" } else { "s" };
        format!(
            "{buckets} bucket{plural} of {} (event time) · {span}",
            aggs.interval
        )
    });
    // Tweets carry no stars: say whose documents the stars chart counts, so an empty chart
    // beside a full sentiment chart reads as "no reviews", not as a fault.
    let stars_caption = Signal::derive(move || {
        let aggs = aggregations.get();
        let reviews: u64 = aggs.by_stars.iter().map(|b| b.count).sum();
        let others = aggs.total.saturating_sub(reviews);
        let count = |n: u64| thousands(i64::try_from(n).unwrap_or(i64::MAX));
        match (reviews, others) {
            (0, 0) => "no documents yet".to_owned(),
            (_, 0) => format!("{} reviews", count(reviews)),
            (_, _) => format!(
                "{} reviews · {} documents without stars (tweets)",
                count(reviews),
                count(others)
            ),
        }
    });
    let percentiles = move || {
        let aggs = aggregations.get();
        let values: Vec<String> = aggs
            .score_percentiles
            .iter()
            .map(|(p, v)| format!("p{} {v:+.2}", p.trim_end_matches(".0")))
            .collect();
        format!(
            "Score percentiles: {} · aggregations took {:.1} ms",
            if values.is_empty() {
                "–".to_owned()
            } else {
                values.join(" · ")
            },
            aggs.took_ms
        )
    };
    view! {
        <div class="dash-head">
            <h3>"What the search engine aggregates"</h3>
            <label class="inline">
                "Histogram interval "
                <select name="interval" on:change=move |ev| interval.set(event_target_value(&ev))>
                    {INTERVALS.iter().map(|i| view! { <option value=*i selected=*i == "1h">{*i}</option> }).collect_view()}
                </select>
            </label>
        </div>
        {move || read.error().map(|f| view! { <p class="warning">{f}</p> })}
        <div class="three-col">
            <div>
                <h4>"By sentiment " <span class="muted">"· terms"</span></h4>
                <BarChart bars=by_sentiment label="reviews by sentiment" testid="chart-sentiment" />
            </div>
            <div>
                <h4>"By stars, avg score " <span class="muted">"· terms + avg"</span></h4>
                <BarChart bars=by_stars label="reviews per stars" testid="chart-stars" caption=stars_caption />
            </div>
            <div>
                <h4>"Over time " <span class="muted">"· date_histogram × terms"</span></h4>
                <BarChart bars=over_time label="sentiment over time" testid="chart-time" caption=time_caption />
                <p class="legend-row">
                    <span class="legend legend-positive">"■ positive"</span>
                    <span class="legend legend-negative">"■ negative"</span>
                    <span class="legend legend-neutral">"■ neutral"</span>
                </p>
            </div>
        </div>
        <p class="muted" data-testid="percentiles">{percentiles}</p>
    }
}

/// Characters of context kept on each side of the first matching word.
const SNIPPET_CONTEXT: usize = 90;

/// The part of `text` around the first of `words` it contains, split into pieces marked as
/// matching a word or not (for `<mark>`). Without words: the start of the text.
fn snippet(text: &str, words: &[String]) -> Vec<(String, bool)> {
    let tokens = word_spans(text);
    let first = tokens
        .iter()
        .position(|&(start, end)| words.contains(&text[start..end].to_lowercase()));
    let (from, to) = match first {
        Some(i) => (
            tokens[i].0.saturating_sub(SNIPPET_CONTEXT),
            tokens[i].1 + SNIPPET_CONTEXT,
        ),
        None => (0, 2 * SNIPPET_CONTEXT),
    };
    // Widen to whole words so no word is cut.
    let from = tokens
        .iter()
        .map(|t| t.0)
        .filter(|&s| s <= from)
        .max()
        .unwrap_or(0);
    let to = tokens
        .iter()
        .map(|t| t.1)
        .filter(|&e| e >= to.min(text.len()))
        .min()
        .unwrap_or(text.len());
    let mut pieces = Vec::new();
    if from > 0 {
        pieces.push(("…".to_owned(), false));
    }
    let mut cursor = from;
    for &(start, end) in tokens.iter().filter(|t| t.0 >= from && t.1 <= to) {
        if words.contains(&text[start..end].to_lowercase()) {
            pieces.push((text[cursor..start].to_owned(), false));
            pieces.push((text[start..end].to_owned(), true));
            cursor = end;
        }
    }
    pieces.push((text[cursor..to].to_owned(), false));
    if to < text.len() {
        pieces.push(("…".to_owned(), false));
    }
    pieces
}

/// Byte ranges of the alphanumeric words of `text`.
fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    spans
}

/// `MM-DD HH:MM` (UTC) of a bucket start in epoch milliseconds.
fn day_hour(epoch_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(epoch_ms)
        .map(|t| t.format("%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// Percent-encodes a query-string value (RFC 3986 unreserved characters stay as they are).
pub(super) fn query_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{query_component, snippet};

    fn joined(pieces: &[(String, bool)]) -> String {
        pieces
            .iter()
            .map(|(t, m)| if *m { format!("[{t}]") } else { t.clone() })
            .collect()
    }

    #[test]
    fn snippets_centre_on_the_first_match_and_mark_every_match() {
        let text = format!(
            "{} The Service was slow, service! {}",
            "a ".repeat(100),
            "b ".repeat(100)
        );
        let pieces = snippet(&text, &["service".to_owned()]);
        let shown = joined(&pieces);
        assert!(shown.starts_with('…') && shown.ends_with('…'), "{shown}");
        assert!(
            shown.contains("The [Service] was slow, [service]!"),
            "{shown}"
        );
        assert!(shown.len() < 260, "{}", shown.len());
        let short = snippet("Great tacos", &[]);
        assert_eq!(joined(&short), "Great tacos");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(query_component("service"), "service");
        assert_eq!(query_component("cold & slow"), "cold%20%26%20slow");
        assert_eq!(query_component("café"), "caf%C3%A9");
    }
}

/// Pauses the search backend (every call fails, as if the cluster were down) or resumes it.
#[component]
fn OutageToggle(paused: Signal<bool>) -> impl IntoView {
    move || {
        let (label, down, testid, title) = if paused.get() {
            (
                "Resume search backend",
                false,
                "search-resume",
                "End the simulated outage: the indexer's next retry succeeds and it catches up",
            )
        } else {
            (
                "Pause search backend",
                true,
                "search-pause",
                "Simulate an outage: every call to the search backend fails until you resume it",
            )
        };
        view! {
            <FaultButton
                label
                path="/api/faults/search-outage"
                body=typed(SearchOutageRequest { down })
                testid
                title
            />
        }
    }
}
