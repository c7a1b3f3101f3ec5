//! Cell 2 · live tail: a topic's records as they arrive (`GET /api/kafka/topics/{topic}/tail`,
//! server-sent events), newest first, filtered on the server by key, value text, header and time
//! range; "from N minutes ago" or "from <a local date and time>" jumps back in time (the server
//! finds the offsets with ListOffsets by timestamp). Pause closes the stream, so the server's consumer is freed; resume opens it
//! again from the moment of the pause, so nothing written meanwhile is missed.

use leptos::prelude::*;

use super::{ErrorLine, TopicSelect, time_ms};
use crate::api::{Message, TOPIC_REVIEWS, TopicInfo};
use crate::live::Live;

/// Records kept on screen: the newest ones.
const SHOWN: usize = 50;

#[derive(Clone, Copy, PartialEq)]
enum Tail {
    Off,
    Live,
    /// Paused at this time (ms since the epoch, the server's clock).
    Paused(i64),
}

#[component]
pub fn TopicTail(topics: Signal<Vec<TopicInfo>>) -> impl IntoView {
    let live = Live::use_context();
    let topic = RwSignal::new(TOPIC_REVIEWS.to_owned());
    let key = RwSignal::new(String::new());
    let contains = RwSignal::new(String::new());
    let header = RwSignal::new(String::new());
    let from_min = RwSignal::new(String::new());
    let until_min = RwSignal::new(String::new());
    let from_at = RwSignal::new(String::new());
    let until_at = RwSignal::new(String::new());
    let records = RwSignal::new(Vec::<Message>::new());
    let received = RwSignal::new(0u64);
    let state = RwSignal::new(Tail::Off);
    let error = RwSignal::new(None::<String>);
    // Each opened stream carries the generation it was opened in; a newer one ends it.
    let generation = StoredValue::new(0u64);
    let now = move || live.snapshot.get_untracked().map_or(0, |s| s.at);

    let open = move |from_ms: Option<i64>| {
        // A bound is minutes ago or a local date and time, not both.
        let bound = |field: &str, minutes: RwSignal<String>, at: RwSignal<String>| match (
            minutes.get_untracked().trim(),
            at.get_untracked().trim(),
        ) {
            ("", "") => Ok(None),
            (text, "") => text
                .parse::<f64>()
                .map(|m| Some(now() - (m * 60_000.0) as i64))
                .map_err(|_| format!("{field} (min ago): not a number: {text}")),
            ("", text) => local_ms(text)
                .map(Some)
                .ok_or_else(|| format!("{field}: not a date and time: {text}")),
            _ => Err(format!("{field}: minutes ago or a time, not both")),
        };
        let from = match from_ms {
            Some(at) => Ok(Some(at)),
            None => bound("from", from_min, from_at),
        };
        let (from, until) = match (from, bound("until", until_min, until_at)) {
            (Ok(Some(from)), Ok(Some(until))) if until < from => {
                return error.set(Some("until: before from".into()));
            }
            (Ok(from), Ok(until)) => (from, until),
            (Err(e), _) | (_, Err(e)) => return error.set(Some(e)),
        };
        let mut query = Vec::new();
        for (name, field) in [("key", key), ("contains", contains), ("header", header)] {
            let value = field.get_untracked();
            if !value.is_empty() {
                query.push(format!("{name}={}", encode(&value)));
            }
        }
        query.extend(from.map(|at| format!("from_ms={at}")));
        query.extend(until.map(|at| format!("until_ms={at}")));
        let url = tail_url(&topic.get_untracked(), &query.join("&"));
        generation.update_value(|g| *g += 1);
        error.set(None);
        state.set(Tail::Live);
        stream(url, generation, records, received, state, error);
    };
    let start = move |_| {
        records.set(Vec::new());
        received.set(0);
        open(None);
    };
    let stop = move |_| {
        generation.update_value(|g| *g += 1);
        state.set(Tail::Off);
    };
    let pause = move |_| match state.get_untracked() {
        Tail::Live => {
            generation.update_value(|g| *g += 1);
            state.set(Tail::Paused(now()));
        }
        Tail::Paused(at) => open(Some(at)),
        Tail::Off => {}
    };
    let status = move || match state.get() {
        Tail::Off => "off".to_owned(),
        Tail::Live => format!("live · {} received", received.get()),
        Tail::Paused(at) => format!(
            "paused at {} · {} received; resume reads on from there",
            time_ms(at),
            received.get()
        ),
    };
    let field = |label: &'static str, name: &'static str, value: RwSignal<String>, hint| {
        view! {
            <label>
                {label}
                <input type="text" name=name placeholder=hint bind:value=value />
            </label>
        }
    };
    view! {
        <div class="tail-view" data-testid="tail-view">
        <form class="controls" on:submit=|ev| ev.prevent_default()>
            <TopicSelect topics topic name="tail-topic" />
            {field("Key is", "tail-key", key, "exact key")}
            {field("Value contains", "tail-contains", contains, "text")}
            {field("Header", "tail-header", header, "name or name=value")}
            <label>
                "From (min ago)"
                <input type="number" min="0" step="any" name="tail-from" placeholder="new only" bind:value=from_min />
            </label>
            <label>
                "Until (min ago)"
                <input type="number" min="0" step="any" name="tail-until" placeholder="no end" bind:value=until_min />
            </label>
            <label>
                "or from"
                <input type="datetime-local" step="1" name="tail-from-at" bind:value=from_at />
            </label>
            <label>
                "until"
                <input type="datetime-local" step="1" name="tail-until-at" bind:value=until_at />
            </label>
            <div class="buttons">
                <button class="btn" data-primary data-testid="tail-start" on:click=start>
                    {move || if state.get() == Tail::Off { "Tail" } else { "Tail again" }}
                </button>
                <button class="btn" data-testid="tail-pause" on:click=pause disabled=move || state.get() == Tail::Off>
                    {move || if matches!(state.get(), Tail::Paused(_)) { "Resume" } else { "Pause" }}
                </button>
                <button class="btn" data-testid="tail-stop" on:click=stop disabled=move || state.get() == Tail::Off>
                    "Stop"
                </button>
            </div>
        </form>
        <p class="muted" data-testid="tail-status">
            {status}
            " · filters run on the server, at most 20 records/s reach this page; the newest "
            {SHOWN}
            " are kept."
        </p>
        <ErrorLine error />
        <div class="tail-box">
        <table class="messages tail" data-testid="tail-rows">
            <tbody>
                {move || {
                    records
                        .get()
                        .into_iter()
                        .map(|m| {
                            let excerpt: String = m.value.chars().take(160).collect();
                            let headers = m
                                .headers
                                .iter()
                                .map(|(k, v)| view! { <span class="chip">{format!("{k}={v}")}</span> })
                                .collect_view();
                            view! {
                                <tr>
                                    <td class="offset">{format!("{}@{}", m.partition, m.offset)}</td>
                                    <td class="offset">{m.timestamp.map(time_ms).unwrap_or_default()}</td>
                                    <td class="key">{m.key.unwrap_or_default()}</td>
                                    <td class="value">{headers}<code>{excerpt}</code></td>
                                </tr>
                            }
                        })
                        .collect_view()
                }}
            </tbody>
        </table>
        </div>
        </div>
    }
}

/// Reads the stream at `url` into `records` until `generation` moves on or the server ends it.
#[cfg(feature = "hydrate")]
fn stream(
    url: String,
    generation: StoredValue<u64>,
    records: RwSignal<Vec<Message>>,
    received: RwSignal<u64>,
    state: RwSignal<Tail>,
    error: RwSignal<Option<String>>,
) {
    use crate::live::source::{Message as Event, Source};
    use futures::StreamExt;
    use futures::future::{Either, select};
    let mine = generation.get_value();
    leptos::task::spawn_local(async move {
        let Some(mut source) = Source::open(&url, &["record"]) else {
            error.set(Some("the browser could not open the stream".into()));
            state.set(Tail::Off);
            return;
        };
        loop {
            // A pause leaves no message to wake on: look at the generation twice a second.
            let tick = gloo_timers::future::TimeoutFuture::new(500);
            let event = match select(source.messages.next(), tick).await {
                Either::Left((Some(event), _)) => event,
                Either::Left((None, _)) => break,
                Either::Right(_) => {
                    if generation.get_value() != mine {
                        break;
                    }
                    continue;
                }
            };
            if generation.get_value() != mine {
                break;
            }
            match event {
                Event::Event(event) => {
                    // Through a `Value`, as everywhere in the browser: one text parser for all
                    // types instead of one more per type (see docs/benchmarks.md).
                    let parsed = serde_json::from_str::<serde_json::Value>(&event.data)
                        .and_then(serde_json::from_value::<Message>);
                    let Ok(message) = parsed else {
                        continue;
                    };
                    received.update(|n| *n += 1);
                    records.update(|shown| {
                        if !shown
                            .iter()
                            .any(|m| (m.partition, m.offset) == (message.partition, message.offset))
                        {
                            shown.insert(0, message);
                            shown.truncate(SHOWN);
                        }
                    });
                }
                Event::Reconnecting => {}
                Event::Closed => {
                    // Refused (400, 404, 429) or the server went. The EventSource cannot read
                    // the refusal's body: ask the server's check once for its reason.
                    drop(source);
                    let reason = crate::client::get_ok(&check_url(&url)).await;
                    if generation.get_value() == mine {
                        error.set(Some(closed_message(reason)));
                        state.set(Tail::Off);
                    }
                    break;
                }
            }
        }
    });
}

#[cfg(not(feature = "hydrate"))]
fn stream(
    _url: String,
    _generation: StoredValue<u64>,
    _records: RwSignal<Vec<Message>>,
    _received: RwSignal<u64>,
    _state: RwSignal<Tail>,
    _error: RwSignal<Option<String>>,
) {
}

/// The tail's URL for `topic` with `query` (already encoded).
fn tail_url(topic: &str, query: &str) -> String {
    format!("/api/kafka/topics/{}/tail?{query}", encode(topic))
}

/// The URL that runs the same checks as the tail at `tail` without opening one
/// (`…/tail/check`: 204, or the error JSON the tail was refused with).
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))] // called by the browser's stream only
fn check_url(tail: &str) -> String {
    match tail.split_once('?') {
        Some((path, query)) => format!("{path}/check?{query}"),
        None => format!("{tail}/check"),
    }
}

/// What the learner reads when the stream closed: the server's reason when its check refuses
/// the same request (it names the field), else that the stream ended.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))] // called by the browser's stream only
fn closed_message(check: Result<(), String>) -> String {
    match check {
        Err(reason) => format!("tail refused: {reason}"),
        Ok(()) => {
            "the tail ended: the server closed the stream (it may have restarted, or a place \
                   was taken and freed meanwhile); press Tail again"
                .into()
        }
    }
}

/// A query value with everything but the unreserved characters percent-encoded.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A `datetime-local` value ("2026-12-07T06:30:15") as ms since the epoch, read in the browser's
/// time zone (an ISO date-time without an offset is local time to `Date.parse`).
pub(crate) fn local_ms(text: &str) -> Option<i64> {
    #[cfg(feature = "hydrate")]
    {
        let ms = date_parse(text);
        ms.is_finite().then_some(ms as i64)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = text;
        None
    }
}

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = Date, js_name = parse)]
    fn date_parse(text: &str) -> f64;
}

#[cfg(test)]
mod tests {
    use super::{check_url, closed_message, encode, tail_url};

    #[test]
    fn a_refused_tail_is_checked_at_the_same_query() {
        let tail = tail_url("reviews.dlq", "key=a%20b&from_ms=5");
        assert_eq!(
            tail,
            "/api/kafka/topics/reviews.dlq/tail?key=a%20b&from_ms=5"
        );
        assert_eq!(
            check_url(&tail),
            "/api/kafka/topics/reviews.dlq/tail/check?key=a%20b&from_ms=5"
        );
        assert_eq!(
            check_url(&tail_url("a b", "")),
            "/api/kafka/topics/a%20b/tail/check?"
        );
    }

    #[test]
    fn the_servers_reason_is_shown_as_it_is() {
        let reason = "from_ms: ms since the epoch, 0..=9 (at most a day ahead of the server's clock), got 99";
        assert_eq!(
            closed_message(Err(reason.into())),
            format!("tail refused: {reason}")
        );
        // The check accepts the request now: the stream ended for another reason.
        assert!(closed_message(Ok(())).starts_with("the tail ended"));
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("reviews.dlq"), "reviews.dlq");
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
