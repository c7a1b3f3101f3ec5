//! The live feed: one EventSource on `/api/events`, whose snapshot every cell reads from context.
//! The server sends the whole snapshot when the feed (re)connects, then only the parts that
//! changed; they are applied to the snapshot held here, in place.
//!
//! The page itself is rendered from the snapshot of the moment ([`InitialSnapshot`]): the server
//! renders the cells with it and writes its JSON into the page's `<head>`, and the browser reads
//! that JSON back before hydrating, so the first paint shows the real state (no "connecting…"
//! then a jump) and both sides render the same tree.

use std::sync::Arc;

use crate::api::{Snapshot, SnapshotDelta};
use leptos::prelude::*;

/// Id of the `<script type="application/json">` that carries the initial snapshot.
pub const INITIAL_SNAPSHOT_ID: &str = "pipebook-snapshot";

/// The live feed's snapshot JSON at the time the page is rendered, provided by the server as
/// context for server-side rendering (`leptos_routes_with_context`).
#[derive(Clone, Debug)]
pub struct InitialSnapshot(pub Arc<str>);

impl InitialSnapshot {
    /// The JSON as it can stand inside a `<script>` element: `<` is written `\u003c`, which JSON
    /// reads as the same character, so no text in a review can close the element.
    pub fn script_text(&self) -> String {
        self.0.replace('<', "\\u003c")
    }
}

/// The snapshot the page was rendered from: the server's context during SSR, the page's embedded
/// JSON in the browser. None when there is none (an error page) or it does not parse.
fn initial_snapshot() -> Option<Snapshot> {
    let json = initial_json()?;
    serde_json::from_str::<serde_json::Value>(&json)
        .and_then(serde_json::from_value)
        .ok()
}

#[cfg(not(feature = "hydrate"))]
fn initial_json() -> Option<String> {
    use_context::<InitialSnapshot>().map(|s| s.0.to_string())
}

#[cfg(feature = "hydrate")]
fn initial_json() -> Option<String> {
    leptos::prelude::document()
        .get_element_by_id(INITIAL_SNAPSHOT_ID)?
        .text_content()
}

/// The `<script>` that carries the initial snapshot to the browser (in the shell's `<head>`,
/// outside the hydrated body); nothing when the server provided none.
#[component]
pub fn InitialSnapshotScript() -> impl IntoView {
    use_context::<InitialSnapshot>().map(|snapshot| {
        view! {
            <script type="application/json" id=INITIAL_SNAPSHOT_ID inner_html=snapshot.script_text()></script>
        }
    })
}

/// The latest snapshot (None until the first one arrives) and whether the feed is connected.
#[derive(Clone, Copy)]
pub struct Live {
    pub snapshot: RwSignal<Option<Snapshot>>,
    pub connected: RwSignal<bool>,
}

impl Live {
    /// `hold`: the feed does not start while it is true. The cells that hydrate after the page
    /// (`cells::deferred`) must hydrate from the snapshot the server rendered them with: a newer
    /// one (other rows, a stage now running) would not match their HTML.
    pub fn provide(hold: Signal<bool>) -> Self {
        let live = Live {
            snapshot: RwSignal::new(initial_snapshot()),
            connected: RwSignal::new(false),
        };
        provide_context(live);
        // Effects run only in the browser, after hydration. Once subscribed, it reads no signal,
        // so it does not run again.
        Effect::new(move |subscribed: Option<bool>| {
            if subscribed == Some(true) {
                return true;
            }
            if hold.get() {
                return false;
            }
            live.subscribe();
            true
        });
        live
    }

    pub fn use_context() -> Self {
        expect_context::<Live>()
    }

    #[cfg(feature = "hydrate")]
    fn subscribe(self) {
        use futures::StreamExt;
        leptos::task::spawn_local(async move {
            loop {
                if let Some(mut source) =
                    source::Source::open("/api/events", &["snapshot", "parts"])
                {
                    while let Some(message) = source.messages.next().await {
                        let event = match message {
                            source::Message::Event(event) => event,
                            // The browser reconnects by itself and starts with a snapshot again.
                            source::Message::Reconnecting => {
                                self.connected.set(false);
                                continue;
                            }
                            source::Message::Closed => break,
                        };
                        let mut applied = Ok(());
                        self.snapshot
                            .update(|snapshot| applied = apply_event(snapshot, &event));
                        if applied.is_err() {
                            // A part could not be read: start again from a whole snapshot.
                            break;
                        }
                        self.connected.set(true);
                    }
                }
                self.connected.set(false);
                gloo_timers::future::TimeoutFuture::new(1_000).await;
            }
        });
    }

    #[cfg(not(feature = "hydrate"))]
    fn subscribe(self) {}
}

/// One event of the feed: its type (`snapshot` or `parts`) and its data.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FeedEvent {
    pub kind: String,
    pub data: String,
}

/// Brings `current` up to date with one event, in the order the server sent them: a snapshot
/// replaces it, parts are applied to it (none can come before the first snapshot of a
/// connection). An event that does not parse leaves it unchanged and is an error.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub(crate) fn apply_event(
    current: &mut Option<Snapshot>,
    event: &FeedEvent,
) -> Result<(), serde_json::Error> {
    match event.kind.as_str() {
        "snapshot" => {
            let value: serde_json::Value = serde_json::from_str(&event.data)?;
            *current = Some(serde_json::from_value(value)?)
        }
        "parts" => {
            let value: serde_json::Value = serde_json::from_str(&event.data)?;
            let delta: SnapshotDelta = serde_json::from_value(value)?;
            if let Some(snapshot) = current {
                snapshot.apply(delta);
            }
        }
        _ => {}
    }
    Ok(())
}

/// The browser's EventSource, with the events of every type in one channel so they are handled
/// in the order they arrived (a parts event must never be applied before the snapshot it
/// follows; one channel per type, as gloo's `subscribe` gives, does not promise that).
#[cfg(feature = "hydrate")]
pub(crate) mod source {
    use super::FeedEvent;
    use futures::channel::mpsc;
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;

    pub enum Message {
        Event(FeedEvent),
        /// The connection dropped; the browser is opening it again.
        Reconnecting,
        /// The browser gave up (e.g. the server answered with an error status).
        Closed,
    }

    type Listener = Closure<dyn FnMut(web_sys::Event)>;

    pub struct Source {
        source: web_sys::EventSource,
        listeners: Vec<(&'static str, Listener)>,
        pub messages: mpsc::UnboundedReceiver<Message>,
    }

    impl Source {
        /// Opens `url`, listening for the events named `kinds` (and the connection's errors).
        pub fn open(url: &str, kinds: &[&'static str]) -> Option<Source> {
            let source = web_sys::EventSource::new(url).ok()?;
            let (sender, messages) = mpsc::unbounded();
            let mut listeners = Vec::new();
            for &kind in kinds.iter().chain(&["error"]) {
                let sender = sender.clone();
                let listener: Listener = Closure::wrap(Box::new(move |event: web_sys::Event| {
                    let _ = sender.unbounded_send(message(kind, &event));
                }));
                source
                    .add_event_listener_with_callback(kind, listener.as_ref().unchecked_ref())
                    .ok()?;
                listeners.push((kind, listener));
            }
            Some(Source {
                source,
                listeners,
                messages,
            })
        }
    }

    fn message(kind: &str, event: &web_sys::Event) -> Message {
        if kind == "error" {
            let reconnecting = event
                .current_target()
                .and_then(|target| target.dyn_into::<web_sys::EventSource>().ok())
                .is_some_and(|s| s.ready_state() == web_sys::EventSource::CONNECTING);
            return if reconnecting {
                Message::Reconnecting
            } else {
                Message::Closed
            };
        }
        let data = event
            .dyn_ref::<web_sys::MessageEvent>()
            .and_then(|m| m.data().as_string())
            .unwrap_or_default();
        Message::Event(FeedEvent {
            kind: kind.to_owned(),
            data,
        })
    }

    impl Drop for Source {
        fn drop(&mut self) {
            self.source.close();
            // Before the closures go, so the browser can never call a dropped one.
            for (kind, listener) in &self.listeners {
                let _ = self
                    .source
                    .remove_event_listener_with_callback(kind, listener.as_ref().unchecked_ref());
            }
        }
    }
}

#[cfg(test)]
mod initial_tests {
    use super::InitialSnapshot;

    #[test]
    fn script_text_cannot_close_its_element_and_reads_back_the_same() {
        let json = r#"{"text":"</script><script>alert(1)</script> <!-- a < b"}"#;
        let text = InitialSnapshot(json.into()).script_text();
        assert!(!text.contains('<'));
        let back: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let original: serde_json::Value = serde_json::from_str(json).expect("JSON");
        assert_eq!(back, original);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{SearchStatus, SnapshotParts};

    fn event(kind: &str, data: impl serde::Serialize) -> FeedEvent {
        FeedEvent {
            kind: kind.to_owned(),
            data: serde_json::to_string(&data).expect("serialise"),
        }
    }

    #[test]
    fn parts_update_the_snapshot_they_follow() {
        let first = Snapshot {
            at: 1,
            ..Snapshot::default()
        };
        let search = SearchStatus {
            documents: Some(5),
            ..SearchStatus::default()
        };
        let delta = SnapshotDelta {
            at: 2,
            parts: SnapshotParts {
                search: Some(search.clone()),
                ..SnapshotParts::default()
            },
        };
        let mut held = None;
        // Parts before any snapshot have nothing to apply to.
        apply_event(&mut held, &event("parts", &delta)).expect("parts");
        assert_eq!(held, None);

        apply_event(&mut held, &event("snapshot", &first)).expect("snapshot");
        apply_event(&mut held, &event("parts", &delta)).expect("parts");
        let expected = Snapshot {
            at: 2,
            search,
            ..first.clone()
        };
        assert_eq!(held.as_ref(), Some(&expected));

        // A new snapshot (a reconnect) replaces everything.
        apply_event(&mut held, &event("snapshot", &first)).expect("snapshot");
        assert_eq!(held, Some(first));
    }

    #[test]
    fn an_unreadable_event_is_an_error_and_changes_nothing() {
        let mut held = Some(Snapshot::default());
        let broken = FeedEvent {
            kind: "parts".into(),
            data: r#"{"at": 3, "parts": {"search": 7}}"#.into(),
        };
        assert!(apply_event(&mut held, &broken).is_err());
        assert_eq!(held, Some(Snapshot::default()));
    }
}
