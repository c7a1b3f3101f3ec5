//! Cell 1 · Socket streamer: start a TCP source of reviews and the producer that reads it into
//! Kafka; pause it, resume it, stop it, and watch the counters. The source is the built-in
//! generator or a dataset in the server's datasets folder, which the learner can upload to.

use leptos::prelude::*;

use crate::session::Controls;

use super::{
    Cell, ErrorLine, StatePill, choice, dataset_of, form_from_running_config, set_field, thousands,
    typed, whole_number,
};
use crate::api::{
    DatasetInfo, DatasetKind, DatasetList, ProducerConfig, SOURCE_GENERATOR, StageState,
    StageStatus, StreamerConfig, human_bytes,
};
use crate::live::Live;
use crate::requests::{Posts, Read};

fn counter(stage: &Option<StageStatus>, name: &str) -> i64 {
    stage
        .as_ref()
        .and_then(|s| s.counters.get(name))
        .map_or(0, |v| i64::try_from(*v).unwrap_or(i64::MAX))
}

/// Reads a whole number from a form field, naming the field when it is not one.
#[component]
pub fn StreamerCell() -> impl IntoView {
    let live = Live::use_context();
    let stage = move |id: &'static str| {
        live.snapshot
            .get()
            .and_then(|s| s.pipeline.stage(id).cloned())
    };
    let streamer = Memo::new(move |_| stage("streamer"));
    let producer = Memo::new(move |_| stage("producer"));
    let state = Signal::derive(move || streamer.get().map(|s| s.state).unwrap_or_default());
    let producer_state =
        Signal::derive(move || producer.get().map(|s| s.state).unwrap_or_default());

    let rate = RwSignal::new("500".to_owned());
    let chunk = RwSignal::new("50".to_owned());
    let source = RwSignal::new(SOURCE_GENERATOR.to_owned());
    let dataset = RwSignal::new(DatasetKind::Yelp.as_str().to_owned());
    let seed = RwSignal::new("42".to_owned());
    // Empty = keep streaming until stopped.
    let limit = RwSignal::new(String::new());
    let clock = RwSignal::new("live".to_owned());
    let late_percent = RwSignal::new("0".to_owned());
    let late_by = RwSignal::new("120".to_owned());
    let posts = Posts::new();
    form_from_running_config(streamer, move |config| {
        set_field(rate, &config["rate"]);
        set_field(chunk, &config["chunk_size"]);
        set_field(source, &config["source"]);
        set_field(dataset, &config["dataset"]);
        set_field(seed, &config["seed"]);
        set_field(limit, &config["limit"]);
        set_field(clock, &config["clock"]);
        let share = config["late_share"].as_f64().unwrap_or(0.0);
        late_percent.set(format!("{}", (share * 100.0).round()));
        set_field(late_by, &config["late_by_secs"]);
    });

    let start = move |_| {
        let body = (|| -> Result<serde_json::Value, String> {
            Ok(typed(StreamerConfig {
                rate: whole_number("rate", &rate.get())?,
                chunk_size: whole_number("chunk size", &chunk.get())?,
                source: source.get().trim().to_owned(),
                dataset: choice("dataset", dataset.get())?,
                seed: whole_number("seed", &seed.get())?,
                limit: match limit.get().trim() {
                    "" => None,
                    value => Some(whole_number("stop after", value)?),
                },
                clock: choice("clock", clock.get())?,
                late_share: f64::from(whole_number::<u32>("late %", &late_percent.get())?) / 100.0,
                late_by_secs: whole_number("late by", &late_by.get())?,
                ..StreamerConfig::default()
            }))
        })();
        let body = match body {
            Ok(body) => body,
            Err(message) => return posts.refuse(message),
        };
        let producer_running = matches!(
            producer_state.get_untracked(),
            StageState::Running | StageState::Paused
        );
        let mut requests = vec![("/api/stages/streamer/start".to_owned(), body)];
        if !producer_running {
            requests.push((
                "/api/stages/producer/start".to_owned(),
                typed(ProducerConfig::default()),
            ));
        }
        posts.send_all(requests);
    };
    let act = move |path: &'static str| move |_| posts.send(path, serde_json::Value::Null);
    let active = move || matches!(state.get(), StageState::Running | StageState::Paused);

    let datasets = Datasets::fetch();
    // The dataset chosen in the form: the words of this cell's form follow it before it starts.
    let chosen = move || DatasetKind::parse(&dataset.get()).unwrap_or_default();
    view! {
        <Cell number=1 title="Socket streamer">
            <p class="explain">
                {move || format!("A TCP server sends {} as JSON lines, ", chosen().records_noun())}
                <em>"in chunks"</em>
                {move || format!(", at the rate you choose — the way seed tutorials feed Spark from a socket. A producer connects as its client and writes each {} to the Kafka topic ", chosen().record_noun())}
                <code>"reviews"</code> ", keyed by " <code>{move || chosen().key_field()}</code>
                {move || format!(
                    " (so one {owner}'s {records} share a partition, in order). Lines that are not valid {records} go to ",
                    owner = chosen().key_owner(),
                    records = chosen().records_noun(),
                )}
                <code>"reviews.dlq"</code>
                " with the reason: nothing is dropped. The source is a seeded generator or a "
                <em>"dataset"</em>
                ": a JSON-lines file of the chosen dataset's records in the server's datasets folder — upload your own below."
            </p>
            <Controls>
            <form class="controls" on:submit=|ev| ev.prevent_default()>
                <label>
                    {move || format!("Rate ({}/s)", chosen().records_noun())}
                    <input type="number" min="0" name="rate" bind:value=rate />
                </label>
                <label>
                    "Chunk size"
                    <input type="number" min="1" name="chunk_size" bind:value=chunk />
                </label>
                <label title="what the records are: the generator makes them, a file is read as them">
                    "Dataset"
                    <select name="dataset" data-testid="streamer-dataset" prop:value=move || dataset.get() on:change=move |ev| dataset.set(event_target_value(&ev))>
                        // Static options: an array of views here broke hydration (no marker in
                        // the server's HTML where the browser expected one).
                        <option value="yelp" selected>"yelp (reviews)"</option>
                        <option value="tweets">"tweets"</option>
                        <option value="companies">"companies"</option>
                    </select>
                </label>
                <SourcePicker source datasets dataset=Signal::derive(chosen) />
                <label>
                    "Stop after"
                    <input type="number" min="1" name="limit" placeholder="never" bind:value=limit />
                </label>
                <label title="the same seed sends the same records with the same ids: stream it again and the windows stage skips them as duplicates; another seed sends new ones">
                    "Seed"
                    <input type="number" min="0" name="seed" bind:value=seed />
                </label>
                <label title="live: the moment a review is sent; replay: the source's own dates (the generator's are 10 s apart)">
                    "Event time"
                    <select name="clock" data-testid="streamer-clock" prop:value=move || clock.get() on:change=move |ev| clock.set(event_target_value(&ev))>
                        <option value="live" selected>"live (now)"</option>
                        <option value="replay">"replay (source dates)"</option>
                    </select>
                </label>
                <label title="share of reviews whose event time is moved back: they arrive out of order">
                    "Late %"
                    <input type="number" min="0" max="100" name="late_share" bind:value=late_percent />
                </label>
                <label>
                    "Late by (s)"
                    <input type="number" min="0" name="late_by_secs" bind:value=late_by />
                </label>
                <div class="buttons">
                    <button
                        class="btn btn-primary"
                        data-primary
                        data-testid="streamer-start"
                        on:click=start
                        disabled=move || active() || posts.pending()
                    >
                        "Start"
                    </button>
                    <Show
                        when=move || state.get() == StageState::Paused
                        fallback=move || {
                            view! {
                                <button
                                    class="btn"
                                    data-testid="streamer-pause"
                                    on:click=act("/api/stages/streamer/pause")
                                    disabled=move || state.get() != StageState::Running || posts.pending()
                                >
                                    "Pause"
                                </button>
                            }
                        }
                    >
                        <button
                            class="btn"
                            data-testid="streamer-resume"
                            on:click=act("/api/stages/streamer/resume")
                            disabled=move || posts.pending()
                        >
                            "Resume"
                        </button>
                    </Show>
                    <button
                        class="btn"
                        data-testid="streamer-stop"
                        on:click=act("/api/stages/streamer/stop")
                        disabled=move || !active() || posts.pending()
                    >
                        "Stop"
                    </button>
                </div>
            </form>
            </Controls>
            <p class="explain" data-testid="dataset-explanation">
                {move || DatasetKind::parse(&dataset.get()).map(|kind| kind.description().explanation)}
            </p>
            <Controls>
                <DatasetUpload source datasets dataset=Signal::derive(chosen) />
            </Controls>
            <SocketsNote />
            <ErrorLine error=posts />
            <LimitProgress streamer />
            <div class="stats">
                <div class="stat">
                    <span class="stat-label">"Streamer " <StatePill state /></span>
                    <span class="stat-value" data-testid="streamer-sent">
                        {move || thousands(counter(&streamer.get(), "sent"))}
                    </span>
                    <span class="stat-unit">{move || format!("{} sent", dataset_of(streamer.get().as_ref()).records_noun())}</span>
                    <span class="stat-detail">
                        {move || streamer.get().and_then(|s| s.detail).unwrap_or_default()}
                    </span>
                </div>
                <div class="stat">
                    <span class="stat-label">"Producer " <StatePill state=producer_state /></span>
                    <span class="stat-value" data-testid="producer-acked">
                        {move || thousands(counter(&producer.get(), "acked"))}
                    </span>
                    <span class="stat-unit">"acknowledged by Kafka"</span>
                    <span class="stat-detail">
                        {move || {
                            let p = producer.get();
                            format!(
                                "{} lines read · {} in flight · {} to DLQ",
                                thousands(counter(&p, "lines")),
                                thousands(counter(&p, "produced") - counter(&p, "acked")),
                                thousands(counter(&p, "dlq")),
                            )
                        }}
                    </span>
                </div>
            </div>
            {move || {
                [streamer.get(), producer.get()]
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.last_error.map(|e| format!("{}: {e}", s.id)))
                    .map(|e| view! { <p class="warning">{e}</p> })
                    .collect_view()
            }}
        </Cell>
    }
}

/// How far a streamer with a "stop after" limit has got, as a progress bar.
#[component]
fn LimitProgress(streamer: Memo<Option<StageStatus>>) -> impl IntoView {
    let limit = move || {
        streamer
            .get()
            .filter(|s| s.state == StageState::Running)
            .and_then(|s| s.config)
            .and_then(|c| c["limit"].as_i64())
    };
    move || {
        limit().map(|limit| {
            let sent = counter(&streamer.get(), "sent");
            view! {
                <p class="progress-line" data-testid="streamer-progress">
                    <progress max=limit value=sent></progress>
                    <span class="muted">
                        {format!(
                            "{} of {} {} sent",
                            thousands(sent),
                            thousands(limit),
                            dataset_of(streamer.get().as_ref()).records_noun(),
                        )}
                    </span>
                </p>
            }
        })
    }
}

/// The datasets folder as last listed, and a way to list it again.
#[derive(Clone, Copy)]
struct Datasets {
    list: Read<DatasetList>,
    /// Bumped to list again (after an upload, or while lines are still being counted).
    refresh: RwSignal<u32>,
}

impl Datasets {
    /// Lists the folder once hydrated, and again whenever `refresh` changes. Lines still being
    /// counted on the server (`null`) are asked for again two seconds later.
    fn fetch() -> Self {
        let refresh = RwSignal::new(0_u32);
        let list = Read::new(move || {
            refresh.track();
            Some("/api/datasets".to_owned())
        });
        let datasets = Self { list, refresh };
        Effect::new(move |_| {
            let counting = list
                .answer()
                .is_some_and(|l| l.datasets.iter().any(|d| d.lines.is_none()));
            if counting {
                set_timeout(move || datasets.reload(), std::time::Duration::from_secs(2));
            }
        });
        datasets
    }

    fn reload(self) {
        self.refresh.update(|n| *n = n.wrapping_add(1));
    }

    fn max_upload_bytes(self) -> u64 {
        untrack(|| self.list.answer().map_or(0, |l| l.max_upload_bytes))
    }

    /// Why the folder could not be listed.
    fn error(self) -> Option<String> {
        self.list
            .error()
            .map(|message| format!("datasets: {message}"))
    }
}

/// "sample-yelp.jsonl · 1.3 MiB · 2,000 lines".
fn dataset_label(dataset: &DatasetInfo) -> String {
    let lines = match dataset.lines {
        Some(lines) => format!(
            "{} lines",
            thousands(i64::try_from(lines).unwrap_or(i64::MAX))
        ),
        None => "counting lines…".to_owned(),
    };
    format!(
        "{} · {} · {lines}",
        dataset.name,
        human_bytes(dataset.bytes)
    )
}

/// The source: the built-in generator, or one of the datasets on the server.
#[component]
fn SourcePicker(
    source: RwSignal<String>,
    datasets: Datasets,
    dataset: Signal<DatasetKind>,
) -> impl IntoView {
    let options = move || {
        let listed = datasets
            .list
            .answer()
            .map(|l| l.datasets)
            .unwrap_or_default();
        let chosen = source.get();
        // A source the folder no longer has (a stage restored from its config) stays visible.
        let missing = (chosen != SOURCE_GENERATOR && !listed.iter().any(|d| d.name == chosen))
            .then(|| format!("{chosen} · not in the datasets folder"));
        let listed = listed
            .into_iter()
            .map(|d| (d.name.clone(), dataset_label(&d)));
        missing
            .map(|label| (chosen.clone(), label))
            .into_iter()
            .chain(listed)
            .map(|(name, label)| {
                let selected = name == chosen;
                view! { <option value=name selected=selected>{label}</option> }
            })
            .collect_view()
    };
    view! {
        <label class="wide">
            "Source"
            <select
                name="source"
                data-testid="streamer-source"
                title=move || format!(
                    "the built-in generator, or a JSON-lines file of {} in the server's datasets folder",
                    dataset.get().records_noun(),
                )
                prop:value=move || source.get()
                on:change=move |ev| source.set(event_target_value(&ev))
            >
                <option value=SOURCE_GENERATOR selected=move || source.get() == SOURCE_GENERATOR>
                    "Built-in generator (seeded)"
                </option>
                {options}
            </select>
        </label>
    }
}

/// What a file of the chosen dataset must hold, for the upload's label: "a .jsonl file of
/// tweets: one JSON object a line with tweet_id, user, text, created_at and hashtags".
fn upload_format(dataset: DatasetKind) -> String {
    let fields = dataset.required_fields();
    let listed = match fields.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    };
    format!(
        "a .jsonl file of {}: one JSON object a line with {listed}",
        dataset.records_noun()
    )
}

/// Upload a JSON-lines file into the datasets folder; on success it becomes the source. Its
/// label names the fields the dataset chosen in the form needs.
#[component]
fn DatasetUpload(
    source: RwSignal<String>,
    datasets: Datasets,
    dataset: Signal<DatasetKind>,
) -> impl IntoView {
    let file_input = NodeRef::<leptos::html::Input>::new();
    let replace = RwSignal::new(false);
    // The upload reads the chosen file from the input itself: its input is only the limits.
    let upload = Action::new_unsync(move |&(replace, max): &(bool, u64)| {
        crate::client::upload_dataset(file_input, replace, max)
    });
    let (uploading, uploaded) = (upload.pending(), upload.value());
    // A new file chosen: the last upload's answer no longer applies.
    let chosen = RwSignal::new(false);
    Effect::new(move |_| {
        if let Some(Ok(info)) = uploaded.get() {
            source.set(info.name.clone());
            datasets.reload();
        }
    });
    let done = move || match uploaded.get() {
        Some(Ok(info)) if !chosen.get() && !uploading.get() => Some(format!(
            "Uploaded {} — now the selected source.",
            dataset_label(&info)
        )),
        _ => None,
    };
    let error = Signal::derive(move || {
        let refused = match uploaded.get() {
            Some(Err(message)) if !chosen.get() && !uploading.get() => Some(message),
            _ => None,
        };
        refused.or_else(|| datasets.error())
    });
    let start_upload = move |_| {
        chosen.set(false);
        upload.dispatch((replace.get_untracked(), datasets.max_upload_bytes()));
    };
    let limit = move || {
        datasets
            .list
            .answer()
            .map(|l| format!(" (up to {})", human_bytes(l.max_upload_bytes)))
            .unwrap_or_default()
    };
    view! {
        <form class="controls dataset-upload" on:submit=|ev| ev.prevent_default()>
            <label class="wide">
                <span data-testid="dataset-upload-format">
                    {move || format!("Add a dataset: {}{}", upload_format(dataset.get()), limit())}
                </span>
                <input
                    type="file"
                    name="dataset"
                    accept=".jsonl,.json,application/x-ndjson"
                    data-testid="dataset-file"
                    node_ref=file_input
                    on:change=move |_| chosen.set(true)
                />
            </label>
            <label class="check" title="replace a dataset of the same name">
                <input type="checkbox" name="replace" bind:checked=replace />
                "Replace"
            </label>
            <button
                type="submit"
                class="btn"
                data-testid="dataset-upload"
                on:click=start_upload
                disabled=move || uploading.get()
            >
                {move || if uploading.get() { "Uploading…" } else { "Upload" }}
            </button>
        </form>
        <ErrorLine error />
        {move || {
            done().map(|note| view! { <p class="note" data-testid="dataset-uploaded">{note}</p> })
        }}
    }
}

/// Whether the stages' sockets stay on this machine (the operator's setting).
#[component]
fn SocketsNote() -> impl IntoView {
    let live = Live::use_context();
    let allowed = move || {
        live.snapshot
            .get()
            .is_some_and(|s| s.pipeline.network_sockets_allowed)
    };
    view! {
        <p class="muted sockets-note" data-testid="sockets-note">
            {move || {
                if allowed() {
                    "Sockets: network addresses allowed by the operator — the streamer may listen, and the producer connect, beyond this machine."
                } else {
                    "Sockets: loopback only — the streamer listens on 127.0.0.1 and the producer reads only from it."
                }
            }}
        </p>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upload_label_names_the_chosen_datasets_fields() {
        assert_eq!(
            upload_format(DatasetKind::Tweets),
            "a .jsonl file of tweets: one JSON object a line with tweet_id, user, text, created_at and hashtags"
        );
        assert!(upload_format(DatasetKind::Yelp).starts_with("a .jsonl file of reviews: "));
        assert!(
            upload_format(DatasetKind::Companies)
                .contains("company_id, created_at, country and industry")
        );
    }
}
