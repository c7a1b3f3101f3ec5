//! Cell 4 · Windows & aggregates: a micro-batch job with a trigger, a watermark and an output
//! mode, counting labelled reviews in tumbling, sliding and session windows side by side.

use leptos::prelude::*;

use crate::session::Controls;

use super::charts::{Bar, BarChart, sentiment_class};
use super::lesson::FaultButton;
use super::{
    Cell, ErrorLine, LiveStage, StatePill, choice, form_from_running_config, set_field, thousands,
    typed,
};
use crate::api::{
    AggregateConfig, AggregateView, FaultRequest, LIVE_SESSIONS, LIVE_WINDOWS_PER_KIND,
    ParquetConfig, Sentiment, TermCount, WindowKind, WindowRow,
};
use crate::live::Live;
use crate::requests::Posts;

/// Windows drawn per chart (the latest ones); the live feed sends no more.
const BARS: usize = LIVE_WINDOWS_PER_KIND;

#[component]
pub fn AggregateCell() -> impl IntoView {
    let live = Live::use_context();
    let stage = LiveStage::new(live, "aggregate");
    let state = stage.state;
    let view = Memo::new(move |_| live.snapshot.get().map(|s| s.aggregate).unwrap_or_default());
    let counter = move |name: &'static str| stage.counter(name);
    let form = AggregateForm::new();
    form_from_running_config(stage.status, move |config| form.restore(config));
    let posts = Posts::new();
    let running = move || stage.running();
    let start = move |_| posts.send_checked("/api/stages/aggregate/start", form.body());
    let act = move |path: &'static str| move |_| posts.send(path, serde_json::Value::Null);

    let dataset = super::streamed_dataset();
    let (record, records) = (
        move || dataset.get().record_noun(),
        move || dataset.get().records_noun(),
    );
    view! {
        <Cell number=4 title="Windows & aggregates">
            <p class="explain">
                "A " <em>"micro-batch"</em> " job reads " <code>"reviews.sentiment"</code>
                " every " <em>"trigger"</em> {move || format!(" and counts {} per window with Polars. ", records())} <em>"Event time"</em>
                {move || format!(" is when a {} was written (its ", record())} <code>{move || dataset.get().time_field()}</code> "); " <em>"processing time"</em>
                " is when the job reads it. The " <em>"watermark"</em>
                {move || format!(" trails the latest event time by the allowed lateness: a window closes when the watermark passes its end, and a {} older than the watermark is ", record())}
                <em>"late"</em> " — counted apart, dropped or kept in " <code>"reviews.late"</code>
                ". Duplicates (same " <code>{move || dataset.get().id_field()}</code> ") are skipped: streaming again with a seed used before sends the same ids, which count as duplicates. The state is kept per partition of "
                <code>"reviews.sentiment"</code> ", as in Kafka Streams: after every trigger each partition's windows and the offset they cover are "
                <em>"checkpointed"</em> " together, as one record of the compacted topic " <code>"pipebook.aggregate.changelog"</code>
                {move || format!(". Crash the job, start it again — or run more members in its group — and whoever is assigned a partition resumes it without losing or double-counting a {}.", record())}
                " Streaming tweets instead, each window also counts their "
                <em>"hashtags"</em> " (a tweet with three counts once for each) and lists its top five; partitions' counts add up, as the sentiment counts do. Companies have no text, so sentiment writes them on unlabelled: a window counts them by "
                <em>"country"</em> " and by " <em>"industry"</em> " (the top six of each, drawn in the accent colour) and its sentiment counts stay at zero."
            </p>
            <Controls>
            <AggregateControls form />
            <div class="buttons">
                <button class="btn btn-primary" data-primary data-testid="aggregate-start" on:click=start disabled=move || running() || posts.pending()>
                    "Start"
                </button>
                <button class="btn" data-testid="aggregate-stop" on:click=act("/api/stages/aggregate/stop") disabled=move || !running() || posts.pending()>
                    "Stop"
                </button>
                <button
                    class="btn btn-danger"
                    data-testid="aggregate-crash"
                    title="Kill the job without a final checkpoint, as a crash would"
                    on:click=act("/api/stages/aggregate/crash")
                    disabled=move || !running() || posts.pending()
                >
                    "Crash"
                </button>
                <FaultButton
                    label="Restart"
                    path="/api/stages/aggregate/restart"
                    testid="aggregate-restart"
                    title="Start the job again with the settings it ran with: it resumes from its checkpoint"
                />
                <FaultButton
                    label="Send newest 100 again"
                    path="/api/faults/resend"
                    body=typed(FaultRequest { count: 100 })
                    testid="fault-resend"
                    title="Write the newest 100 records (reviews, tweets or companies) to reviews a second time, as a producer retry would: the windows must skip them as duplicates"
                />
            </div>
            </Controls>
            <ErrorLine error=posts />
            {move || stage.status.get().and_then(|s| s.detail).map(|d| view! { <p class="muted">{d}</p> })}
            <div class="stats">
                <div class="stat">
                    <span class="stat-label">"Job " <StatePill state /></span>
                    <span class="stat-value" data-testid="aggregate-counted">
                        {move || thousands(i64::try_from(view.get().counted).unwrap_or(i64::MAX))}
                    </span>
                    <span class="stat-unit">{move || format!("{} counted in windows", records())}</span>
                    <span class="stat-detail">
                        {move || format!(
                            "{} triggers · last batch {} · {} ms · checkpoint {} ms · {} results written",
                            counter("triggers")(), counter("last_batch")(), counter("batch_ms")(),
                            counter("checkpoint_ms")(), counter("emitted")(),
                        )}
                    </span>
                </div>
                <div class="stat">
                    <span class="stat-label">"Late · behind the watermark"</span>
                    <span class="stat-value" data-testid="aggregate-late">
                        {move || thousands(i64::try_from(view.get().late_records).unwrap_or(i64::MAX))}
                    </span>
                    <span class="stat-unit">{move || format!("late · {} duplicates skipped", view.get().duplicates)}</span>
                    <Watermark view=view.into() />
                </div>
            </div>
            <super::load::StageLoadPanel stage="aggregate" default_group="pipebook-aggregate" />
            <PartitionWatermarks view=view.into() />
            <super::sentiment::StageMembers
                members=stage.members()
                stage="aggregate"
                topic="reviews.sentiment"
                holds="each holds the partitions listed, restored from the changelog. Kill one and its partitions, with their windows, move to the others."
            />
            <div class="two-col">
                <div>
                    <h4>"Tumbling " <span class="muted">{move || format!("· {} s", form.tumbling.get())}</span></h4>
                    <WindowChart view=view.into() kind=WindowKind::Tumbling testid="chart-tumbling" />
                </div>
                <div>
                    <h4>"Sliding " <span class="muted">{move || format!("· {} s every {} s", form.sliding.get(), form.slide.get())}</span></h4>
                    <WindowChart view=view.into() kind=WindowKind::Sliding testid="chart-sliding" />
                </div>
            </div>
            <p class="legend-row">
                <span class="legend legend-positive">"■ positive"</span>
                <span class="legend legend-negative">"■ negative"</span>
                <span class="legend legend-neutral">"■ neutral"</span>
                <span class="legend legend-unlabelled">"■ unlabelled (companies)"</span>
                <span class="muted">"faded = window still open (its count can change)"</span>
            </p>
            <TopTerms view=view.into() title="Top hashtags" testid="top-hashtags" terms=|w| &w.top_hashtags />
            <div class="two-col">
                <TopTerms view=view.into() title="Top countries" testid="top-countries" terms=|w| &w.top_countries />
                <TopTerms view=view.into() title="Top industries" testid="top-industries" terms=|w| &w.top_industries />
            </div>
            <div class="two-col">
                <div>
                    <h4>"Average score per stars value " <span class="muted">"· tumbling windows shown"</span></h4>
                    <ScoreByStars view=view.into() />
                </div>
                <div>
                    <h4>"Sessions per key " <span class="muted">{move || format!("· per {} ({}) · gap {} s", dataset.get().key_owner(), dataset.get().key_field(), form.gap.get())}</span></h4>
                    <SessionTable view=view.into() />
                </div>
            </div>
            <h4>"Changelog of " <code>"reviews.aggregates"</code></h4>
            <super::changelog::ChangelogView />
            <ParquetSink />

        </Cell>
    }
}

/// The Parquet sink: start/stop, roll settings, and the files it wrote.
#[component]
fn ParquetSink() -> impl IntoView {
    let live = Live::use_context();
    let stage = LiveStage::new(live, "parquet");
    let state = stage.state;
    let running = move || stage.running();
    let rows = RwSignal::new("10000".to_owned());
    let secs = RwSignal::new("10".to_owned());
    let posts = Posts::new();
    let start = move |_| {
        let (Ok(roll_rows), Ok(roll_secs)) = (
            rows.get().trim().parse::<u32>(),
            secs.get().trim().parse::<u32>(),
        ) else {
            return posts.refuse("roll: enter whole numbers".to_owned());
        };
        posts.send(
            "/api/stages/parquet/start",
            typed(ParquetConfig {
                roll_rows,
                roll_secs,
                ..ParquetConfig::default()
            }),
        );
    };
    let stop = move |_| posts.send("/api/stages/parquet/stop", serde_json::Value::Null);
    let counter = move |name: &'static str| stage.counter(name);
    view! {
        <h4>"Parquet sink " <StatePill state /></h4>
        <p class="muted">
            "Labelled records written by Polars as Parquet files — reviews under " <code>"parquet/"</code>
            ", tweets under " <code>"parquet/tweets/"</code> ", company records skipped (no label) — one folder per event date ("
            <code>"date=YYYY-MM-DD"</code> "), a new file per roll — the seed tutorials' "
            <code>"writeStream.format(\"parquet\")"</code> "."
        </p>
        <Controls>
        <form class="controls" on:submit=|ev| ev.prevent_default()>
            <label>"Roll after (rows)" <input type="number" min="1" name="roll_rows" bind:value=rows /></label>
            <label>"or after (s)" <input type="number" min="1" name="roll_secs" bind:value=secs /></label>
            <div class="buttons">
                <button class="btn" data-testid="parquet-start" on:click=start disabled=move || running() || posts.pending()>"Start sink"</button>
                <button class="btn" data-testid="parquet-stop" on:click=stop disabled=move || !running() || posts.pending()>"Stop"</button>
            </div>
        </form>
        </Controls>
        <ErrorLine error=posts />
        <super::load::StageLoadPanel stage="parquet" default_group="pipebook-parquet" />
        <super::sentiment::StageMembers
            members=stage.members()
            stage="parquet"
            topic="reviews.sentiment"
            holds="each writes the records of the partitions listed to files on its own disk; under each member, its folder on its host and its newest files, from its heartbeat. Kill one and its partitions move to the others, which write again what it had not committed."
        />
        // The files themselves are listed under the sink's member above (its heartbeat's
        // newest files, with the partitions they came from); this line counts all of them.
        <p class="muted" data-testid="parquet-summary">
            {move || format!("{} files · {} rows on disk under <data dir>/parquet", counter("files_on_disk")(), thousands(i64::try_from(counter("rows_on_disk")()).unwrap_or(i64::MAX)))}
        </p>
    }
}

/// The form's fields, as text the learner edits.
#[derive(Clone, Copy)]
struct AggregateForm {
    time: RwSignal<String>,
    trigger: RwSignal<String>,
    tumbling: RwSignal<String>,
    sliding: RwSignal<String>,
    slide: RwSignal<String>,
    gap: RwSignal<String>,
    lateness: RwSignal<String>,
    late_policy: RwSignal<String>,
    mode: RwSignal<String>,
}

impl AggregateForm {
    fn new() -> Self {
        let text = |s: &str| RwSignal::new(s.to_owned());
        Self {
            time: text("event"),
            trigger: text("1000"),
            tumbling: text("60"),
            sliding: text("60"),
            slide: text("15"),
            gap: text("30"),
            lateness: text("30"),
            late_policy: text("drop"),
            mode: text("append"),
        }
    }

    /// Fills the fields from a running stage's configuration.
    fn restore(&self, config: &serde_json::Value) {
        set_field(self.time, &config["time"]);
        set_field(self.trigger, &config["trigger_ms"]);
        set_field(self.tumbling, &config["tumbling_secs"]);
        set_field(self.sliding, &config["sliding_secs"]);
        set_field(self.slide, &config["slide_secs"]);
        set_field(self.gap, &config["session_gap_secs"]);
        set_field(self.lateness, &config["allowed_lateness_secs"]);
        set_field(self.late_policy, &config["late_policy"]);
        set_field(self.mode, &config["output_mode"]);
    }

    fn body(&self) -> Result<serde_json::Value, String> {
        let number = |field: &str, value: RwSignal<String>| {
            let value = value.get();
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("{field}: enter a whole number, got {value:?}"))
        };
        Ok(typed(AggregateConfig {
            time: choice("time", self.time.get())?,
            trigger_ms: number("trigger", self.trigger)?,
            tumbling_secs: number("tumbling", self.tumbling)?,
            sliding_secs: number("sliding", self.sliding)?,
            slide_secs: number("slide", self.slide)?,
            session_gap_secs: number("session gap", self.gap)?,
            allowed_lateness_secs: number("allowed lateness", self.lateness)?,
            late_policy: choice("late policy", self.late_policy.get())?,
            output_mode: choice("output mode", self.mode.get())?,
            ..AggregateConfig::default()
        }))
    }
}

#[component]
fn AggregateControls(form: AggregateForm) -> impl IntoView {
    let select = |signal: RwSignal<String>| move |ev| signal.set(event_target_value(&ev));
    view! {
        <form class="controls" on:submit=|ev| ev.prevent_default()>
            <label>
                "Time"
                <select name="time" prop:value=move || form.time.get() on:change=select(form.time)>
                    <option value="event" selected>"event time"</option>
                    <option value="processing">"processing time"</option>
                </select>
            </label>
            <label>"Tumbling (s)" <input type="number" min="1" name="tumbling_secs" bind:value=form.tumbling /></label>
            <label>"Sliding (s)" <input type="number" min="1" name="sliding_secs" bind:value=form.sliding /></label>
            <label>"Slide (s)" <input type="number" min="1" name="slide_secs" bind:value=form.slide /></label>
            <label>"Session gap (s)" <input type="number" min="1" name="session_gap_secs" bind:value=form.gap /></label>
            <label>"Allowed lateness (s)" <input type="number" min="0" name="allowed_lateness_secs" bind:value=form.lateness /></label>
            <label>
                "Late records"
                <select name="late_policy" prop:value=move || form.late_policy.get() on:change=select(form.late_policy)>
                    <option value="drop" selected>"count and drop"</option>
                    <option value="topic">"count, keep in reviews.late"</option>
                </select>
            </label>
            <label>
                "Output mode"
                <select name="output_mode" prop:value=move || form.mode.get() on:change=select(form.mode)>
                    <option value="append" selected>"append (closed windows, once)"</option>
                    <option value="update">"update (changed windows)"</option>
                    <option value="complete">"complete (every window)"</option>
                </select>
            </label>
            <label>"Trigger (ms, 0 = once)" <input type="number" min="0" name="trigger_ms" bind:value=form.trigger /></label>
        </form>
    }
}

/// The watermark against the latest event time.
#[component]
fn Watermark(view: Signal<AggregateView>) -> impl IntoView {
    let text = move || {
        let v = view.get();
        match (v.watermark, v.max_event_time) {
            (Some(watermark), Some(max)) => format!(
                "watermark {} (least of the partitions') · latest event {} · {:.0} s behind",
                clock(watermark),
                clock(max),
                (max - watermark) as f64 / 1000.0
            ),
            _ => "no watermark yet: it starts when every partition has a record".to_owned(),
        }
    };
    view! { <span class="stat-detail" data-testid="aggregate-watermark">{text}</span> }
}

/// Each partition's own watermark, and the operator's: the least of them.
#[component]
fn PartitionWatermarks(view: Signal<AggregateView>) -> impl IntoView {
    let rows = move || {
        let view = view.get();
        let least = view.watermark;
        view.partitions
            .iter()
            .map(|p| {
                // The partition the operator's watermark waits for: none yet, or the least
                // while another is ahead (`None` sorts first).
                let holds = p.watermark.is_none()
                    || (p.watermark == least
                        && view.partitions.iter().any(|o| o.watermark > p.watermark));
                let (event, watermark) = match (p.max_event_time, p.watermark) {
                    (Some(max), Some(watermark)) => (clock(max), clock(watermark)),
                    _ => ("—".to_owned(), "none yet".to_owned()),
                };
                view! {
                    <tr class:holds-back=holds>
                        <td>{p.partition}</td>
                        <td>{thousands(p.offset)}</td>
                        <td>{event}</td>
                        <td>{watermark}</td>
                        <td>{thousands(i64::try_from(p.counted).unwrap_or(i64::MAX))}</td>
                        <td>{thousands(i64::try_from(p.late_records).unwrap_or(i64::MAX))}</td>
                        <td class="muted">{if holds && view.partitions.len() > 1 { "holds the watermark back" } else { "" }}</td>
                    </tr>
                }
            })
            .collect_view()
    };
    let operator = move || match view.get().watermark {
        Some(watermark) => format!(
            "operator watermark (least of the partitions') {}",
            clock(watermark)
        ),
        None => {
            "operator watermark: none while a partition has none (it waits for every partition)"
                .to_owned()
        }
    };
    view! {
        <h4>"Watermark per partition"</h4>
        <p class="explain">
            "Each partition has its own watermark (its latest event time − the allowed lateness) and decides alone, record by record, which of its records are "
            <em>"late"</em> ": a review is late only if it is behind its own partition's watermark, however far other partitions have gone — so a review that one job reading everything in arrival order would have dropped can still count here, and the result does not depend on how many processes share the partitions. "
            "The operator's watermark, which closes windows, is the " <em>"least"</em> " of the partitions' (as in Flink): one idle or slow partition holds every window open. Pipebook does not mark idle partitions (Flink's "
            <code>"withIdleness"</code> "); the stall is shown as it is."
        </p>
        <table class="latest" data-testid="aggregate-partitions">
            <thead>
                <tr><th>"Partition"</th><th>"Next offset"</th><th>"Latest event"</th><th>"Watermark"</th><th>"Counted"</th><th>"Late"</th><th></th></tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
        <p class="muted" data-testid="aggregate-operator-watermark">{operator}</p>
    }
}

/// The latest windows of one kind as bars stacked by sentiment; open windows faded.
#[component]
fn WindowChart(
    view: Signal<AggregateView>,
    kind: WindowKind,
    testid: &'static str,
) -> impl IntoView {
    let bars = Signal::derive(move || {
        let view = view.get();
        view.latest_windows(kind, BARS)
            .into_iter()
            .map(|w| Bar {
                label: time_of_day(w.start),
                segments: Sentiment::ALL
                    .iter()
                    .map(|s| {
                        (
                            w.counts.get(s).copied().unwrap_or(0),
                            sentiment_class(s.index()),
                        )
                    })
                    // Companies: counted without a label.
                    .chain([(w.unlabelled, "seg-count")])
                    .collect(),
                note: None,
                faded: !w.closed,
            })
            .collect::<Vec<_>>()
    });
    // Counted over every window of the kind, not only the ones drawn (nor sent by the feed).
    let caption = Signal::derive(move || {
        let count = view.get().count_of(kind);
        format!("{} windows ({} open)", count.windows, count.open)
    });
    view! { <BarChart bars label=format!("{} windows", kind.as_str()) testid caption /> }
}

/// Reviews per stars value across the tumbling windows, each bar noted with its average score.
#[component]
fn ScoreByStars(view: Signal<AggregateView>) -> impl IntoView {
    let bars = Signal::derive(move || {
        // Over every tumbling window, also those the live feed leaves out.
        let (counts, sums) = view.get().tumbling_stars();
        (0..5)
            .map(|i| Bar {
                label: format!("{}★", i + 1),
                segments: vec![(counts[i], "seg-count")],
                note: (counts[i] > 0).then(|| format!("{:+.2}", sums[i] / counts[i] as f64)),
                faded: false,
            })
            .collect::<Vec<_>>()
    });
    view! { <BarChart bars label="average score per stars value" testid="chart-score-by-stars" /> }
}

/// The top terms of the latest tumbling windows — a tweet's hashtags, a company's country or
/// industry, as `terms` picks them: shown once such records have been counted.
#[component]
fn TopTerms(
    view: Signal<AggregateView>,
    title: &'static str,
    testid: &'static str,
    terms: fn(&WindowRow) -> &Vec<TermCount>,
) -> impl IntoView {
    const SHOWN: usize = 4;
    let lines = Signal::derive(move || {
        let view = view.get();
        let mut windows = view.latest_windows(WindowKind::Tumbling, BARS);
        windows.retain(|w| !terms(w).is_empty());
        let skip = windows.len().saturating_sub(SHOWN);
        windows
            .into_iter()
            .skip(skip)
            .map(|w| {
                let tags = terms(w)
                    .iter()
                    .map(|t| format!("{} {}", t.key, t.count))
                    .collect::<Vec<_>>()
                    .join(" · ");
                (
                    format!("{}–{}", time_of_day(w.start), time_of_day(w.end)),
                    tags,
                    w.closed,
                )
            })
            .collect::<Vec<_>>()
    });
    move || {
        let lines = lines.get();
        (!lines.is_empty()).then(|| {
            view! {
                <div>
                    <h4>{title} " " <span class="muted">"· latest tumbling windows"</span></h4>
                    <ul class="latest" data-testid=testid>
                        {lines.into_iter().map(|(span, tags, closed)| view! {
                            <li>
                                <span class="muted">{span}</span> " " {tags}
                                {(!closed).then(|| view! { <span class="muted">" (open)"</span> })}
                            </li>
                        }).collect_view()}
                    </ul>
                </div>
            }
        })
    }
}

#[component]
fn SessionTable(view: Signal<AggregateView>) -> impl IntoView {
    view! {
        <table class="latest" data-testid="sessions">
            <thead>
                <tr><th>"Key"</th><th>"From"</th><th>"To"</th><th>"Records"</th><th>"Avg score"</th><th>"State"</th></tr>
            </thead>
            <tbody>
                {move || {
                    let view = view.get();
                    view.latest_sessions(LIVE_SESSIONS).into_iter().map(|w| view! {
                        <tr>
                            <td><code>{w.key.clone().unwrap_or_default().chars().take(10).collect::<String>()}</code></td>
                            <td>{time_of_day(w.start)}</td>
                            <td>{time_of_day(w.end)}</td>
                            <td>{w.total()}</td>
                            <td>{w.avg_score.map(|s| format!("{s:+.2}")).unwrap_or_default()}</td>
                            <td class="muted">{if w.closed { "closed" } else { "open" }}</td>
                        </tr>
                    }).collect_view()
                }}
            </tbody>
        </table>
    }
}

/// `HH:MM:SS` (UTC) of epoch milliseconds: short enough to sit under a bar.
fn time_of_day(epoch_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(epoch_ms)
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_default()
}

/// `MM-DD HH:MM:SS` (UTC) of epoch milliseconds.
pub(super) fn clock(epoch_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(epoch_ms)
        .map(|t| t.format("%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}
