//! The notebook page and its cells, one per pipeline stage, in the order data flows.

mod aggregate;
mod changelog;
mod charts;
mod compare;
mod deferred;
mod groups;
mod incidents;
mod kafka;
mod lab;
mod lag;
mod lesson;
mod load;
mod schema;
mod search;
mod sentiment;
mod streamer;
mod strip;
mod tail;
mod trace;

use leptos::prelude::*;

use crate::api::{DatasetKind, StageState, StageStatus};
use crate::live::Live;
use crate::requests::Posts;
use deferred::{Deferred, DeferredCell};

/// The whole lesson: a header with the cluster's state, then the cells.
#[component]
pub fn Notebook() -> impl IntoView {
    // The cells after the first hydrate when their code has loaded (see `deferred`); the live feed
    // waits for them.
    let deferred = deferred::Pending::provide();
    let live = Live::provide(Signal::derive(move || deferred.any()));
    let viewer = crate::session::provide() == crate::api::Role::Viewer;
    // The server renders the page from the live snapshot, so it looks ready before the wasm has
    // hydrated it; until then its buttons would do nothing (or submit a form the old way).
    // Effects run only in the browser, after hydration.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let waiting = move || !hydrated.get() || deferred.any();
    view! {
        <header class="topbar" class:viewer=viewer>
            <h1>"Pipebook"</h1>
            <p class="tagline">"A live streaming pipeline, one stage per cell."</p>
            <lesson::ViewToggles />
            <fieldset class="control-set" disabled=waiting>
                <ClusterBadge live />
                <lesson::LessonBar />
            </fieldset>
            {viewer.then(|| view! {
                <p class="viewer-banner" role="status" data-testid="viewer-banner">
                    <strong>"Read-only view"</strong>
                    " · you are watching this workbench's live pipeline; its controls belong to the operator. Search, browse and trace work."
                </p>
            })}
        </header>
        <main class="notebook">
            <strip::PipelineStrip />
            <fieldset class="control-set" disabled=waiting>
                <streamer::StreamerCell />
                <Deferred cell=DeferredCell::Kafka />
                <Deferred cell=DeferredCell::Sentiment />
                <Deferred cell=DeferredCell::Aggregate />
                <Deferred cell=DeferredCell::Search />
                <Deferred cell=DeferredCell::Lab />
                <Deferred cell=DeferredCell::Trace />
                <Deferred cell=DeferredCell::Incidents />
            </fieldset>
        </main>
    }
}

/// Stops or starts the embedded broker (a fault button: the stages wait and retry).
#[component]
fn BrokerToggle(testid: &'static str) -> impl IntoView {
    let live = Live::use_context();
    let kafka = move || live.snapshot.get().map(|s| s.pipeline.kafka);
    let running = move || kafka().is_some_and(|k| k.state == StageState::Running);
    // The POST's refusal (the broker could not start, …) is shown, not dropped.
    let posts = Posts::new();
    let read_only = crate::session::read_only();
    let toggle = move |_| {
        let path = if running() {
            "/api/stages/broker/stop"
        } else {
            "/api/stages/broker/start"
        };
        posts.send(path, serde_json::Value::Null);
    };
    move || {
        kafka().filter(|k| k.mode == "embedded").map(|_| {
            view! {
                <button class="btn btn-small" data-testid=testid on:click=toggle disabled=move || read_only || posts.pending()>
                    {if running() { "Stop broker" } else { "Start broker" }}
                </button>
                {move || posts.error().map(|e| view! { <span class="error" role="alert">{e}</span> })}
            }
        })
    }
}

/// Where Kafka is and whether it answers, with the embedded broker's stop/start button.
#[component]
fn ClusterBadge(live: Live) -> impl IntoView {
    let kafka = move || live.snapshot.get().map(|s| s.pipeline.kafka);
    view! {
        <div class="cluster" data-testid="cluster">
            {move || match kafka() {
                None => {
                    view! {
                        <span class="pill pill-stopped">
                            {move || if live.connected.get() { "waiting…" } else { "connecting…" }}
                        </span>
                    }
                        .into_any()
                }
                Some(k) => {
                    let state = k.state;
                    view! {
                        <span class=format!("pill pill-{}", state.as_str())>
                            {format!("Kafka {} · {} · {}", k.mode, k.bootstrap_servers, state.as_str())}
                        </span>
                        <BrokerToggle testid="broker-toggle" />
                        {k.last_error.map(|e| view! { <span class="error">{e}</span> })}
                    }
                        .into_any()
                }
            }}
        </div>
    }
}

/// The frame every cell shares: number (a deep link, `/#cell-3`), title, the cell's "Try this"
/// steps, then its body. Focusable, so the keyboard can move between cells. Typed children keep
/// each cell's body out of an `AnyView` (see [`crate::session::Controls`]).
#[component]
fn Cell<C: IntoView + 'static>(
    number: u8,
    title: &'static str,
    children: TypedChildren<C>,
) -> impl IntoView {
    let children = children.into_inner();
    view! {
        <section class="cell" id=format!("cell-{number}") tabindex="-1" aria-label=title>
            <header class="cell-head">
                <a class="cell-no" href=format!("#cell-{number}")>
                    {number}
                </a>
                <h2>{title}</h2>
            </header>
            <lesson::TryThis cell=number />
            {children()}
        </section>
    }
}

/// One stage's live status from the snapshot feed, as the cells read it.
#[derive(Clone, Copy)]
struct LiveStage {
    status: Memo<Option<crate::api::StageStatus>>,
    state: Signal<StageState>,
}

impl LiveStage {
    fn new(live: Live, id: &'static str) -> Self {
        let status = Memo::new(move |_| {
            live.snapshot
                .get()
                .and_then(|s| s.pipeline.stage(id).cloned())
        });
        let state = Signal::derive(move || status.get().map(|s| s.state).unwrap_or_default());
        Self { status, state }
    }

    /// A counter of the stage; 0 before the first snapshot.
    fn counter(self, name: &'static str) -> impl Fn() -> u64 + Copy + Send + Sync + 'static {
        move || {
            self.status
                .get()
                .and_then(|s| s.counters.get(name).copied())
                .unwrap_or(0)
        }
    }

    fn running(self) -> bool {
        matches!(self.state.get(), StageState::Running)
    }

    /// The members of the stage's groups, from their heartbeats.
    fn members(self) -> Signal<Vec<crate::api::MemberView>> {
        Signal::derive(move || self.status.get().map(|s| s.members).unwrap_or_default())
    }
}

/// The dataset the pipeline carries: the streamer's running (or last) run's — also one from
/// before a server restart, which the server keeps in `<data dir>/streamer.json` — Yelp before it
/// ever ran. The one place every cell's wording reads it from (with [`DatasetKind`]'s nouns and
/// fields), so the cells' sentences change together when the dataset is switched.
fn streamed_dataset() -> Memo<DatasetKind> {
    let live = Live::use_context();
    Memo::new(move |_| {
        live.snapshot
            .with(|s| dataset_of(s.as_ref().and_then(|s| s.pipeline.stage("streamer"))))
    })
}

/// The dataset of a streamer's config (see [`streamed_dataset`]).
fn dataset_of(streamer: Option<&StageStatus>) -> DatasetKind {
    streamer
        .and_then(|s| s.config.as_ref())
        .and_then(|c| c["dataset"].as_str())
        .and_then(DatasetKind::parse)
        .unwrap_or_default()
}

/// A noun at the start of a sentence or a heading: "tweets" → "Tweets".
fn capitalized(words: &str) -> String {
    let mut chars = words.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// Fills a cell's form, as the cell is made, from the configuration its stage is running with
/// in the snapshot the page was rendered from (the server is the source of truth), so a reload
/// mid-stream shows the same settings in the first paint. The server renders the form from the
/// same snapshot the browser hydrates from, so both make the same fields. A stage that is not
/// running leaves the form at its defaults; later edits are never overwritten.
fn form_from_running_config(
    status: Memo<Option<crate::api::StageStatus>>,
    apply: impl Fn(&serde_json::Value),
) {
    let Some(status) = status.get_untracked() else {
        return;
    };
    let active = matches!(status.state, StageState::Running | StageState::Paused);
    if let Some(config) = status.config.filter(|_| active) {
        apply(&config);
    }
}

/// A form's text field as a whole number of the config field's type.
fn whole_number<T: std::str::FromStr>(field: &str, value: &str) -> Result<T, String> {
    value
        .trim()
        .parse::<T>()
        .map_err(|_| format!("{field}: enter a whole number, got {value:?}"))
}

/// A form's choice (a `<select>`'s value) as the config's enum, by the enum's own wire name.
fn choice<T: serde::de::DeserializeOwned>(field: &str, value: String) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(value.clone()))
        .map_err(|_| format!("{field}: {value:?} is not one of the choices"))
}

/// A stage's typed config as the body of its start request: every field named, the defaults
/// from the config's own `Default` rather than copied into the cell.
fn typed(config: impl serde::Serialize) -> serde_json::Value {
    // A config is strings and numbers: it always serialises.
    serde_json::to_value(config).unwrap_or_default()
}

/// Sets a text field from a config value (numbers and strings as they are; null = empty).
fn set_field(field: RwSignal<String>, value: &serde_json::Value) {
    let text = match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    field.set(text);
}

/// The last error of a cell's action or read, if any (a [`Posts`] or a [`crate::requests::Read`]
/// converts into the signal).
#[component]
fn ErrorLine(#[prop(into)] error: Signal<Option<String>>) -> impl IntoView {
    move || {
        error
            .get()
            .map(|e| view! { <p class="error" role="alert">{e}</p> })
    }
}

/// A stage's state as a coloured pill.
#[component]
fn StatePill(#[prop(into)] state: Signal<StageState>) -> impl IntoView {
    view! {
        <span class=move || format!("pill pill-{}", state.get().as_str())>
            {move || state.get().as_str()}
        </span>
    }
}

/// `HH:MM:SS.mmm` (UTC) of a Kafka timestamp: records and hops are milliseconds apart.
pub(crate) fn time_ms(epoch_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(epoch_ms)
        .map(|t| t.format("%H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

/// A "Topic" select over the cluster's topics, bound to `topic`; `name` is the form field's.
#[component]
fn TopicSelect(
    topics: Signal<Vec<crate::api::TopicInfo>>,
    topic: RwSignal<String>,
    name: &'static str,
) -> impl IntoView {
    view! {
        <label>
            "Topic"
            <select name=name on:change=move |ev| topic.set(event_target_value(&ev))>
                {move || {
                    topics
                        .get()
                        .into_iter()
                        .map(|t| {
                            let selected = t.name == topic.get_untracked();
                            view! { <option value=t.name.clone() selected=selected>{t.name.clone()}</option> }
                        })
                        .collect_view()
                }}
            </select>
        </label>
    }
}

/// Formats a count with thousands separators: 20000 → "20,000".
pub(crate) fn thousands(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0 {
        out.push('-');
    }
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{
        DatasetKind, StageStatus, capitalized, choice, dataset_of, thousands, typed, whole_number,
    };
    use crate::api::{AggregateConfig, OutputMode, StreamerConfig};

    #[test]
    fn the_cells_word_the_dataset_the_streamer_last_ran() {
        assert_eq!(dataset_of(None), DatasetKind::Yelp, "before any run");
        let streamer = |config: serde_json::Value| StageStatus {
            config: Some(config),
            ..StageStatus::default()
        };
        let tweets = streamer(serde_json::json!({"dataset": "tweets", "rate": 5}));
        assert_eq!(dataset_of(Some(&tweets)), DatasetKind::Tweets);
        let old = streamer(serde_json::json!({"rate": 5}));
        assert_eq!(dataset_of(Some(&old)), DatasetKind::Yelp, "no field: Yelp");
        assert_eq!(
            capitalized(DatasetKind::Companies.records_noun()),
            "Company records"
        );
        assert_eq!(capitalized(""), "");
    }

    #[test]
    fn form_fields_become_a_typed_config_or_a_message_naming_the_field() {
        assert_eq!(whole_number::<u32>("rate", " 250 "), Ok(250));
        assert_eq!(
            whole_number::<u32>("rate", "-1"),
            Err("rate: enter a whole number, got \"-1\"".to_owned())
        );
        assert_eq!(
            choice::<OutputMode>("output mode", "update".into()),
            Ok(OutputMode::Update)
        );
        assert_eq!(
            choice::<OutputMode>("output mode", "upsert".into()),
            Err("output mode: \"upsert\" is not one of the choices".to_owned())
        );
        // A body names every field, with the config's own defaults where the form has none.
        let body = typed(AggregateConfig {
            output_mode: OutputMode::Update,
            ..AggregateConfig::default()
        });
        assert_eq!(body["group"], AggregateConfig::default().group.as_str());
        assert_eq!(body["output_mode"], "update");
        let streamer = typed(StreamerConfig::default());
        assert_eq!(
            streamer["listen"],
            StreamerConfig::default().listen.as_str()
        );
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(20_000), "20,000");
        assert_eq!(thousands(-1_234_567), "-1,234,567");
    }
}
