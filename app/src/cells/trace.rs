//! Cell 7 · Trace a record: pick a record — a review, a tweet, a company — by its id (the id
//! field its dataset names), or the next one produced, and watch it move hop by hop — socket
//! chunk, `reviews`, sentiment worker, windows, search document — with the time it reached each
//! hop and the latency from the hop it came from. A hop its dataset passes by (a company has no
//! text to label or index) says so instead of waiting.

use leptos::prelude::*;

use super::aggregate::clock;
use super::search::query_component;
use super::{Cell, ErrorLine, capitalized, streamed_dataset, thousands, time_ms};
use crate::api::{DatasetKind, Trace, TraceHop, TraceHopKind, TraceHopState, TraceWindow};
use crate::client;

/// How often an unfinished trace is asked again, and for how long at most.
const POLL_MS: u32 = 1_000;
const MAX_POLLS: u32 = 60;

#[component]
pub fn TraceCell() -> impl IntoView {
    let review_id = RwSignal::new(String::new());
    // The trace as last read: a follow updates it each time it asks again.
    let trace = RwSignal::new(None::<Trace>);
    // One follow at a time: its buttons are disabled while it is pending.
    let follow = Action::new_unsync(move |path: &String| {
        follow_until_complete(path.clone(), trace, review_id)
    });
    let (following, outcome) = (follow.pending(), follow.value());
    let error = Signal::derive(move || {
        if following.get() {
            return None;
        }
        outcome.get().and_then(Result::err)
    });
    let follow = move |path: String| {
        trace.set(None);
        follow.dispatch(path);
    };
    let by_id = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let id = review_id.get_untracked();
        follow(format!(
            "/api/trace?review_id={}",
            query_component(id.trim())
        ));
    };
    let next = move |_| follow("/api/trace/next".to_owned());
    let dataset = streamed_dataset();

    view! {
        <Cell number=7 title="Trace a record">
            <p class="explain" data-testid="trace-explain">
                {move || format!("Follow one {} through the whole pipeline. Type its ", dataset.get().record_noun())}
                <code>{move || dataset.get().id_field()}</code>
                {move || format!(
                    " (copy one from the sentiment cell's table or the message browser), or take the next {} the producer writes, and watch it move: the time it reached each hop, and how long it waited since the hop it came from. A record is followed by the id field its dataset names — a review's review_id, a tweet's tweet_id, a company's company_id.",
                    dataset.get().record_noun(),
                )}
            </p>
            <form class="controls" on:submit=by_id data-testid="trace-form">
                <label class="wide">
                    {move || dataset.get().id_field()}
                    <input type="text" name="review_id" placeholder="an id from cell 2 or 3" bind:value=review_id data-testid="trace-id" />
                </label>
                <div class="buttons">
                    <button class="btn" type="submit" data-testid="trace-submit" disabled=move || following.get()>
                        "Trace"
                    </button>
                    <button class="btn btn-primary" type="button" data-primary data-testid="trace-next" on:click=next disabled=move || following.get()>
                        {move || format!("Trace the next {}", dataset.get().record_noun())}
                    </button>
                </div>
            </form>
            <ErrorLine error />
            {move || following.get().then(|| view! {
                <p class="muted" data-testid="trace-following">
                    {move || if trace.get().is_some() { "Following it: asking again every second…".to_owned() } else { format!("Waiting for a {}…", dataset.get().record_noun()) }}
                </p>
            })}
            {move || trace.get().map(|t| view! { <Timeline trace=t /> })}
        </Cell>
    }
}

/// Asks for the trace at `path`, then again every second until no hop is waiting any more,
/// showing each answer in `trace`; a refusal ends the follow.
async fn follow_until_complete(
    path: String,
    trace: RwSignal<Option<Trace>>,
    review_id: RwSignal<String>,
) -> Result<(), String> {
    let first = client::get::<Trace>(&path).await?;
    let again = format!("/api/trace?review_id={}", query_component(&first.review_id));
    review_id.set(first.review_id.clone());
    let mut complete = first.complete;
    trace.set(Some(first));
    for _ in 0..MAX_POLLS {
        if complete {
            break;
        }
        pause(POLL_MS).await;
        let next = client::get::<Trace>(&again).await?;
        complete = next.complete;
        trace.set(Some(next));
    }
    Ok(())
}

#[cfg(feature = "hydrate")]
async fn pause(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

/// The server never polls (effects and handlers run in the browser only).
#[cfg(not(feature = "hydrate"))]
async fn pause(_ms: u32) {}

#[component]
fn Timeline(trace: Trace) -> impl IntoView {
    let dataset = trace.dataset;
    let summary = format!(
        "{} {} = {} · {} · searched {} records in {} ms",
        capitalized(dataset.record_noun()),
        dataset.id_field(),
        trace.review_id,
        if trace.complete {
            "nothing more to wait for"
        } else {
            "still moving"
        },
        thousands(i64::try_from(trace.scanned).unwrap_or(i64::MAX)),
        trace.scan_ms
    );
    view! {
        <p class="muted" data-testid="trace-summary">{summary}</p>
        <ol class="hop-timeline" data-testid="trace-timeline">
            {trace.hops.into_iter().map(|hop| view! { <HopItem hop dataset /> }).collect_view()}
        </ol>
    }
}

#[component]
fn HopItem(hop: TraceHop, dataset: DatasetKind) -> impl IntoView {
    let state = hop.state;
    let label = hop.state_label();
    let place = place(&hop);
    let time = hop.at_ms.map(time_ms);
    // A negative latency is two clocks' rounding: shown as it is, with one sign.
    let latency = hop.latency_ms.map(|ms| {
        let sign = if ms < 0 { "" } else { "+" };
        format!("{sign}{} ms", thousands(ms))
    });
    let facts = hop.facts;
    let windows = hop.windows;
    view! {
        <li
            class=format!("hop hop-{}", state_class(state))
            data-testid=format!("trace-hop-{}", hop.hop.as_str())
            data-state=state_class(state)
        >
            <div class="hop-head">
                <strong>{title(hop.hop)}</strong>
                <span class=format!("pill hop-state-{}", state_class(state)) data-testid="hop-state">
                    {label}
                </span>
                {place.map(|p| view! { <code data-testid="hop-place">{p}</code> })}
                {time.map(|t| view! { <span class="muted">{t}</span> })}
                {latency.map(|l| view! { <span class="hop-latency" data-testid="hop-latency">{l}</span> })}
            </div>
            <p class="hop-detail">{hop.detail}</p>
            {(!facts.is_empty()).then(|| view! {
                <dl class="hop-facts">
                    {facts.into_iter().map(|f| view! { <dt>{f.name}</dt><dd>{f.value}</dd> }).collect_view()}
                </dl>
            })}
            {(!windows.is_empty()).then(|| view! { <WindowList windows /> })}
            <p class="hop-notice">{notice(hop.hop, dataset)}</p>
        </li>
    }
}

#[component]
fn WindowList(windows: Vec<TraceWindow>) -> impl IntoView {
    view! {
        <ul class="hop-windows" data-testid="hop-windows">
            {windows.into_iter().map(|w| {
                let count = w.count.map_or(String::new(), |c| {
                    let noun = if c == 1 { "record" } else { "records" };
                    format!(" · {} {noun} now", thousands(i64::try_from(c).unwrap_or(i64::MAX)))
                });
                let closed = if w.closed { " · closed" } else { "" };
                view! {
                    <li>{format!("{} {} → {}{count}{closed}", w.kind.as_str(), clock(w.start), clock(w.end))}</li>
                }
            }).collect_view()}
        </ul>
    }
}

fn title(hop: TraceHopKind) -> &'static str {
    match hop {
        TraceHopKind::Socket => "1 · Socket chunk",
        TraceHopKind::Reviews => "2 · reviews",
        TraceHopKind::Sentiment => "3 · Sentiment → reviews.sentiment",
        TraceHopKind::Window => "4 · Window",
        TraceHopKind::Search => "5 · Search document",
    }
}

/// What the learner should notice at each hop, in the words of the traced record's dataset.
fn notice(hop: TraceHopKind, dataset: DatasetKind) -> String {
    let (record, records) = (dataset.record_noun(), dataset.records_noun());
    let has_text = dataset.text_field().is_some();
    match hop {
        TraceHopKind::Socket => format!(
            "A socket carries bytes, not records: the streamer writes chunks of lines, and the producer splits them back into {records}."
        ),
        TraceHopKind::Reviews => {
            let (owner, key) = (dataset.key_owner(), dataset.key_field());
            // "the same business (business_id)", but "the same user", not "user (user)".
            let named = if owner == key {
                owner.to_owned()
            } else {
                format!("{owner} ({key})")
            };
            format!(
                "Key → partition: the same {named} always hashes to the same partition, so its {records} stay in order. The offset is the {record}'s address in that partition's log."
            )
        }
        TraceHopKind::Sentiment if !has_text => format!(
            "A {record} has no text: the worker writes it on unlabelled instead of failing or dead-lettering it, so the stages after it still see it. Which worker did depends on who owned that partition at the time."
        ),
        TraceHopKind::Sentiment => {
            "Which worker of the consumer group handled it depends on who owned that partition at the time: kill a worker and its partitions move to another.".to_owned()
        }
        TraceHopKind::Window => format!(
            "Windows follow the {record}'s event time ({time}), not when it arrived: a {record} behind the watermark is late and not counted.",
            time = dataset.time_field(),
        ),
        TraceHopKind::Search if !has_text => format!(
            "A sink keeps only what it can use: with no text to search and no label to filter by, {records} are skipped and counted, and the indexer commits past them."
        ),
        TraceHopKind::Search => format!(
            "Document id = {id} makes the sink idempotent: indexing the same {record} twice overwrites it instead of counting it twice.",
            id = dataset.id_field(),
        ),
    }
}

/// `topic[partition]@offset`, when the hop is a record in a topic.
fn place(hop: &TraceHop) -> Option<String> {
    let topic = hop.topic.as_ref()?;
    Some(match (hop.partition, hop.offset) {
        (Some(p), Some(o)) => format!("{topic}[{p}]@{o}"),
        _ => topic.clone(),
    })
}

fn state_class(state: TraceHopState) -> &'static str {
    match state {
        TraceHopState::Found => "found",
        TraceHopState::NotYet => "not_yet",
        TraceHopState::NotRunning => "not_running",
        TraceHopState::Unknown => "unknown",
        TraceHopState::Skipped => "skipped",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_and_times_read_as_the_learner_expects() {
        let hop = TraceHop {
            hop: TraceHopKind::Reviews,
            state: TraceHopState::Found,
            topic: Some("reviews".into()),
            partition: Some(2),
            offset: Some(41),
            at_ms: None,
            latency_ms: None,
            detail: String::new(),
            facts: Vec::new(),
            windows: Vec::new(),
        };
        assert_eq!(place(&hop).as_deref(), Some("reviews[2]@41"));
        assert_eq!(time_ms(1_704_099_600_123), "09:00:00.123");
        assert_eq!(state_class(TraceHopState::NotYet), "not_yet");
    }

    #[test]
    fn a_companys_skipped_hops_say_so_in_its_own_words() {
        let skipped = |kind| TraceHop {
            hop: kind,
            state: TraceHopState::Skipped,
            topic: None,
            partition: None,
            offset: None,
            at_ms: None,
            latency_ms: None,
            detail: String::new(),
            facts: Vec::new(),
            windows: Vec::new(),
        };
        assert_eq!(
            skipped(TraceHopKind::Sentiment).state_label(),
            "not labelled: no text"
        );
        assert_eq!(
            skipped(TraceHopKind::Search).state_label(),
            "not indexed: no text"
        );
        assert_eq!(state_class(TraceHopState::Skipped), "skipped");
        let company = DatasetKind::Companies;
        assert!(notice(TraceHopKind::Sentiment, company).contains("unlabelled"));
        assert!(notice(TraceHopKind::Search, company).contains("company records are skipped"));
        let tweets = DatasetKind::Tweets;
        assert!(notice(TraceHopKind::Reviews, tweets).contains("the same user always"));
        assert!(
            notice(TraceHopKind::Reviews, DatasetKind::Yelp).contains("business (business_id)")
        );
        assert!(notice(TraceHopKind::Search, tweets).contains("tweet_id"));
        assert!(!notice(TraceHopKind::Window, tweets).contains("review"));
    }
}
