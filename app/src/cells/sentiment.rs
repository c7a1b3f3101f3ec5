//! Cell 3 · Sentiment: a consumer group of workers labelling reviews. Shows the workers with their
//! partitions, group lag per partition as a live chart, the rebalance timeline, the latest
//! labelled reviews and how labels line up with stars.

use leptos::prelude::*;

use crate::session::Controls;

use super::lag::GroupLagChart;
use super::lesson::FaultButton;
use super::{Cell, ErrorLine, LiveStage, StatePill, choice, thousands, typed};
use crate::api::{
    FaultRequest, LIVE_LATEST_REVIEWS, LIVE_REBALANCES, MemberState, MemberView, Sentiment,
    SentimentConfig, SentimentView,
};
use crate::live::Live;
use crate::requests::Posts;

#[component]
pub fn SentimentCell() -> impl IntoView {
    let live = Live::use_context();
    let stage = LiveStage::new(live, "sentiment");
    let state = stage.state;
    let view_data =
        Memo::new(move |_| live.snapshot.get().map(|s| s.sentiment).unwrap_or_default());
    let workers = RwSignal::new("2".to_owned());
    let classifier = RwSignal::new("lexicon".to_owned());

    let posts = Posts::new();
    let start = move |_| {
        let Ok(n) = workers.get().trim().parse::<u8>() else {
            return posts.refuse("workers: enter a whole number 1–8".to_owned());
        };
        let classifier = match choice("classifier", classifier.get()) {
            Ok(classifier) => classifier,
            Err(message) => return posts.refuse(message),
        };
        let config = SentimentConfig {
            workers: n,
            classifier,
            ..SentimentConfig::default()
        };
        posts.send("/api/stages/sentiment/start", typed(config));
    };
    let running = move || stage.running();
    let group_name = move || view_data.with(|v| v.group.clone());
    let total_lag = move || {
        live.snapshot
            .get()
            .and_then(|s| {
                let name = s.sentiment.group;
                s.groups.into_iter().find(|g| g.group == name)
            })
            .map_or(0, |g| g.total_lag())
    };

    let dataset = super::streamed_dataset();
    let records = move || dataset.get().records_noun();
    view! {
        <Cell number=3 title="Sentiment">
            <p class="explain">
                "Workers in one " <em>"consumer group"</em> " ("<code>{group_name}</code>
                ") share the partitions of " <code>"reviews"</code>
                {move || match dataset.get().text_field() {
                    Some(text) => format!(
                        ": each partition is read by exactly one worker. Each worker labels {} POSITIVE, NEGATIVE or NEUTRAL from their {text} and writes them to ",
                        records(),
                    ),
                    None => format!(
                        ": each partition is read by exactly one worker. {} have no text to label: each worker writes them on unlabelled, saying why, to ",
                        super::capitalized(records()),
                    ),
                }}
                <code>"reviews.sentiment"</code> ". It " <em>"commits"</em>
                " its offsets only after Kafka acknowledged the output — at-least-once: kill a worker and its partitions move to the others (a "
                <em>"rebalance"</em>
                {move || format!("), which re-read from the last commit, so nothing is lost and a few {} may be processed twice. ", records())}
                <em>"Lag"</em> " is how far the group is behind the end of the log."
            </p>
            <Controls>
            <form class="controls" on:submit=|ev| ev.prevent_default()>
                <label>
                    "Workers"
                    <input type="number" min="1" max="8" name="workers" bind:value=workers />
                </label>
                <label>
                    "Classifier"
                    <select name="classifier" on:change=move |ev| classifier.set(event_target_value(&ev))>
                        <option value="lexicon" selected>"lexicon (VADER, offline)"</option>
                        <option value="textblob">"TextBlob (pattern lexicon, offline)"</option>
                        <option value="llm">"LLM (PIPEBOOK_LLM_*)"</option>
                    </select>
                </label>
                <div class="buttons">
                    <button class="btn btn-primary" data-primary data-testid="sentiment-start" on:click=start disabled=move || running() || posts.pending()>
                        "Start"
                    </button>
                    <button
                        class="btn"
                        data-testid="sentiment-add"
                        on:click=move |_| posts.send("/api/stages/sentiment/workers", serde_json::Value::Null)
                        disabled=move || !running() || posts.pending()
                    >
                        "Add worker"
                    </button>
                    <button
                        class="btn"
                        data-testid="sentiment-stop"
                        on:click=move |_| posts.send("/api/stages/sentiment/stop", serde_json::Value::Null)
                        disabled=move || !running() || posts.pending()
                    >
                        "Stop"
                    </button>
                </div>
                <div class="buttons faults">
                    <FaultButton
                        label="Flood 100 malformed records"
                        path="/api/faults/malformed"
                        body=typed(FaultRequest { count: 100 })
                        testid="fault-malformed"
                        title="Write 100 broken records into reviews: the workers send each to reviews.dlq with its reason and go on"
                    />
                    <FaultButton
                        label="Restart stage"
                        path="/api/stages/sentiment/restart"
                        testid="sentiment-restart"
                        title="Stop the group and start it again with the same settings: it resumes from the committed offsets"
                    />
                </div>
            </form>
            </Controls>
            <ErrorLine error=posts />
            <div class="stats">
                <div class="stat">
                    <span class="stat-label">"Stage " <StatePill state /></span>
                    <span class="stat-value" data-testid="sentiment-produced">
                        {move || {
                            // `produced` also counts the records written on unlabelled.
                            let labelled = stage.counter("produced")()
                                .saturating_sub(stage.counter("skipped")());
                            thousands(i64::try_from(labelled).unwrap_or(i64::MAX))
                        }}
                    </span>
                    <span class="stat-unit">{move || format!("labelled {} written", records())}</span>
                </div>
                <div class="stat">
                    <span class="stat-label">"Group lag"</span>
                    <span class="stat-value" data-testid="sentiment-lag">{move || thousands(total_lag())}</span>
                    <span class="stat-unit">"records not yet committed"</span>
                </div>
            </div>
            {move || {
                let skipped = stage.counter("skipped")();
                (skipped > 0).then(|| view! {
                    <p class="explain" data-testid="sentiment-skipped">
                        {format!(
                            "{} company records skipped: a company has no text to classify, so each goes on to reviews.sentiment unlabelled, where cell 4 counts it by country and industry.",
                            thousands(i64::try_from(skipped).unwrap_or(i64::MAX)),
                        )}
                    </p>
                })
            }}
            <super::load::StageLoadPanel stage="sentiment" default_group="pipebook-sentiment" />
            <div class="two-col">
                <div>
                    <h3>"Workers"</h3>
                    <WorkerTable view_data=view_data.into() posts />
                </div>
                <div>
                    <h3>"Lag per partition (last minute)"</h3>
                    <GroupLagChart
                        group=Signal::derive(move || view_data.with(|v| v.group.clone()))
                        topic="reviews"
                        testid="lag-chart"
                    />
                </div>
            </div>
            <h3>"Group members (heartbeats on " <code>"pipebook.workers"</code> ")"</h3>
            <p class="explain">
                "Every member of the group, in this server or in a " <code>"pipebook worker"</code>
                " process on any machine: each heartbeats its figures once a second to a compacted Kafka topic, and one silent for more than 5 s is shown "
                <em>"gone"</em> " (a " <code>"kill -9"</code> "); one stopped with Ctrl-C "
                <em>"left"</em> " after committing its work. Its partitions move to the others either way."
            </p>
            <MembersTable
                members=stage.members()
                now=Signal::derive(move || live.snapshot.get().map_or(0, |s| s.at))
                stage="sentiment"
                topic="reviews"
            />
            <div class="two-col">
                <div>
                    <h3>"Rebalance timeline"</h3>
                    <Timeline view_data=view_data.into() />
                </div>
                <div>
                    <h3>"Labels vs stars"</h3>
                    {move || (!dataset.get().has_stars()).then(|| view! {
                        <p class="muted" data-testid="confusion-no-stars">
                            {format!("{} carry no stars: there is nothing to check a label against, so only reviews fill this table.", super::capitalized(records()))}
                        </p>
                    })}
                    <Confusion view_data=view_data.into() />
                </div>
            </div>
            <h3>{move || format!("Latest labelled {}", records())}</h3>
            <LatestTable view_data=view_data.into() />
            <super::compare::ClassifierCompare />
        </Cell>
    }
}

#[component]
fn WorkerTable(view_data: Signal<SentimentView>, posts: Posts) -> impl IntoView {
    view! {
        <table class="workers" data-testid="workers">
            <thead>
                <tr><th>"Worker"</th><th>"State"</th><th>"Partitions"</th><th>"Processed"</th><th>"Rate/s"</th><th></th></tr>
            </thead>
            <tbody>
                // Keyed by worker id, so a row (and its Kill button) stays the same element while
                // its numbers change every second.
                <For
                    each=move || view_data.get().workers
                    key=|w| w.id.clone()
                    children=move |w| view! { <WorkerRow id=w.id view_data posts /> }
                />
            </tbody>
        </table>
    }
}

#[component]
fn WorkerRow(id: String, view_data: Signal<SentimentView>, posts: Posts) -> impl IntoView {
    let current = {
        let id = id.clone();
        Memo::new(move |_| view_data.get().workers.into_iter().find(|w| w.id == id))
    };
    let field = move |f: fn(&crate::api::WorkerView) -> String| {
        move || current.get().as_ref().map(f).unwrap_or_default()
    };
    let state = field(|w| w.state.clone());
    let alive = move || current.get().is_some_and(|w| w.state == "running");
    let kill_path = format!("/api/stages/sentiment/workers/{id}/kill");
    view! {
        <tr class=move || format!("worker-{}", state())>
            <td>{id.clone()}</td>
            <td>{state}</td>
            <td class="partitions-cell">
                {field(|w| {
                    if w.partitions.is_empty() {
                        "–".to_owned()
                    } else {
                        w.partitions.iter().map(|p| format!("reviews-{p}")).collect::<Vec<_>>().join(", ")
                    }
                })}
            </td>
            <td>{field(|w| thousands(i64::try_from(w.processed).unwrap_or(i64::MAX)))}</td>
            <td>{field(|w| format!("{:.0}", w.rate))}</td>
            <td>
                <Show when=alive>
                    <button
                        class="btn btn-small btn-danger"
                        data-testid="kill-worker"
                        disabled={
                            let read_only = crate::session::read_only();
                            move || read_only || posts.pending()
                        }
                        on:click={
                            let path = kill_path.clone();
                            move |_| posts.send(path.clone(), serde_json::Value::Null)
                        }
                    >
                        "Kill"
                    </button>
                </Show>
            </td>
        </tr>
    }
}

/// Every member of a stage's group from the heartbeats: where it runs, what it holds, its
/// figures (cells 3 and 4). `now`: the snapshot's time, so "last seen" counts by the server's
/// clock; `stage`: the `--stage` of the hint shown while there are none; `topic`: the input
/// topic whose partitions they hold.
#[component]
pub(crate) fn MembersTable(
    members: Signal<Vec<MemberView>>,
    now: Signal<i64>,
    stage: &'static str,
    topic: &'static str,
) -> impl IntoView {
    view! {
        <table class="members" data-testid=format!("{stage}-members")>
            <thead>
                <tr>
                    <th>"Name"</th><th>"Host"</th><th>"PID"</th><th>"Where"</th><th>"Partitions"</th>
                    <th>"Processed"</th><th>"Rate/s"</th><th>"Errors"</th><th>"Last seen"</th><th>"State"</th>
                </tr>
            </thead>
            <tbody>
                {move || {
                    let now = now.get();
                    let members = members.get();
                    if members.is_empty() {
                        return view! {
                            <tr><td colspan="10" class="muted">"No heartbeats yet: start the stage, or run "
                                <code>{format!("pipebook worker --stage {stage} --brokers …")}</code>" on any machine."</td></tr>
                        }.into_any();
                    }
                    members.into_iter().map(|m| {
                        let partitions = if m.partitions.is_empty() {
                            "–".to_owned()
                        } else {
                            m.partitions.iter().map(|p| format!("{topic}-{p}")).collect::<Vec<_>>().join(", ")
                        };
                        let ago = (now - m.last_seen).max(0) as f64 / 1000.0;
                        let state = m.state.as_str();
                        let place = if m.in_server { "in-server" } else { "remote" };
                        let output = m.output.map(|output| view! { <MemberFiles output topic /> });
                        view! {
                            <tr class=format!("member-{state} member-{place}") data-testid="member">
                                <td>{m.name}</td>
                                <td>{m.host}</td>
                                <td>{m.pid}</td>
                                <td>{place}</td>
                                <td class="partitions-cell">{partitions}</td>
                                <td>{thousands(i64::try_from(m.processed).unwrap_or(i64::MAX))}</td>
                                <td>{format!("{:.0}", m.rate)}</td>
                                <td>{thousands(i64::try_from(m.errors).unwrap_or(i64::MAX))}</td>
                                <td class="muted">{format!("{ago:.1} s ago")}</td>
                                <td>
                                    <span class=if m.state == MemberState::Alive { "pill pill-running" } else { "pill pill-stopped" }>
                                        {state}
                                    </span>
                                </td>
                            </tr>
                            {output}
                        }
                    }).collect_view().into_any()
                }}
            </tbody>
        </table>
    }
}

/// Under a member that writes files (a Parquet sink): where they are on its host and its newest
/// ones, from its heartbeat — a worker process's files are on its own disk.
#[component]
fn MemberFiles(output: crate::api::MemberOutput, topic: &'static str) -> impl IntoView {
    let summary = format!(
        "{} files · {} rows under ",
        thousands(i64::try_from(output.total_files).unwrap_or(i64::MAX)),
        thousands(i64::try_from(output.total_rows).unwrap_or(i64::MAX)),
    );
    let files = output
        .files
        .into_iter()
        .map(|f| {
            let from = if f.partitions.is_empty() {
                String::new()
            } else {
                let list: Vec<String> = f.partitions.iter().map(|p| format!("{topic}-{p}")).collect();
                format!(" · from {}", list.join(", "))
            };
            view! {
                <li>
                    <code>{f.path}</code>
                    {format!(" · {} rows · {:.1} KB{from}", thousands(i64::try_from(f.rows).unwrap_or(i64::MAX)), f.bytes as f64 / 1024.0)}
                </li>
            }
        })
        .collect_view();
    view! {
        <tr class="member-files" data-testid="member-files">
            <td colspan="10">
                <span class="muted">{summary}</span>
                <code data-testid="member-files-dir">{output.dir}</code>
                <ul class="member-file-list">{files}</ul>
            </td>
        </tr>
    }
}

/// The group members of a stage that runs one member per process (the aggregate, the indexer,
/// the Parquet sink): who they are, then [`MembersTable`]. `holds`: what a member holds and what
/// happens when one dies.
#[component]
pub(crate) fn StageMembers(
    members: Signal<Vec<MemberView>>,
    stage: &'static str,
    topic: &'static str,
    holds: &'static str,
) -> impl IntoView {
    let live = Live::use_context();
    view! {
        <h4>"Group members " <span class="muted">"· heartbeats on " <code>"pipebook.workers"</code></span></h4>
        <p class="explain">
            "This server's member and every " <code>{format!("pipebook worker --stage {stage}")}</code>
            " process in its group, each silent for more than 5 s shown " <em>"gone"</em> ": " {holds}
        </p>
        <MembersTable
            members
            now=Signal::derive(move || live.snapshot.get().map_or(0, |s| s.at))
            stage
            topic
        />
    }
}

#[component]
fn Timeline(view_data: Signal<SentimentView>) -> impl IntoView {
    view! {
        <ol class="timeline" data-testid="rebalances">
            {move || {
                let events = view_data.get().rebalances;
                // Seconds are counted from the oldest event kept (the feed sends it too).
                let start = events.last().map_or(0, |e| e.at);
                events.into_iter().take(LIVE_REBALANCES).map(|e| {
                    let partitions = if e.partitions.is_empty() {
                        String::new()
                    } else {
                        format!(" reviews-{}", e.partitions.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
                    };
                    let class = format!("event-{}", e.kind);
                    view! {
                        <li class=class>
                            <span class="muted">{format!("+{:.1}s ", (e.at - start) as f64 / 1000.0)}</span>
                            <strong>{e.worker}</strong>" "{e.kind}{partitions}
                        </li>
                    }
                }).collect_view()
            }}
        </ol>
    }
}

#[component]
fn Confusion(view_data: Signal<SentimentView>) -> impl IntoView {
    let rows = ["4–5★", "1–2★", "3★"];
    view! {
        <table class="confusion" data-testid="confusion">
            <thead>
                <tr>
                    <th>"Stars \\ label"</th>
                    {Sentiment::ALL.iter().map(|s| view! { <th>{s.as_str()}</th> }).collect_view()}
                </tr>
            </thead>
            <tbody>
                {move || {
                    let matrix = view_data.get().confusion;
                    rows.iter().enumerate().map(|(r, label)| view! {
                        <tr>
                            <th>{*label}</th>
                            {(0..3).map(|c| view! {
                                <td class=if r == c { "agree" } else { "" }>
                                    {thousands(i64::try_from(matrix[r][c]).unwrap_or(i64::MAX))}
                                </td>
                            }).collect_view()}
                        </tr>
                    }).collect_view()
                }}
            </tbody>
        </table>
    }
}

#[component]
fn LatestTable(view_data: Signal<SentimentView>) -> impl IntoView {
    view! {
        <table class="latest" data-testid="latest-reviews">
            <thead>
                <tr><th>"Text"</th><th>"Stars"</th><th>"Label"</th><th>"Score"</th><th>"By"</th></tr>
            </thead>
            <tbody>
                {move || {
                    view_data.get().latest.into_iter().take(LIVE_LATEST_REVIEWS).map(|r| view! {
                        <tr>
                            <td class="excerpt">{r.excerpt}"…"</td>
                            // A tweet has no stars (0): a dash, not an empty cell.
                            <td>{if r.stars == 0 { "–".to_owned() } else { "★".repeat(usize::from(r.stars)) }}</td>
                            <td><span class=format!("label label-{}", r.sentiment.as_str().to_lowercase())>{r.sentiment.as_str()}</span></td>
                            <td>{format!("{:+.3}", r.score)}</td>
                            <td class="muted">{format!("{} · {}", r.classifier, r.worker)}</td>
                        </tr>
                    }).collect_view()
                }}
            </tbody>
        </table>
    }
}
