//! Cell 6 · Delivery semantics lab: the same records copied three ways with a crash half-way,
//! and what the crash cost each way, counted from the output topics.

use leptos::prelude::*;

use crate::session::Controls;

use super::{Cell, ErrorLine, thousands, typed, whole_number};
use crate::api::{
    DeliveryChoice, DeliveryLabRequest, DeliveryLabView, DeliveryMode, DeliveryResult,
    LAB_DEFAULT_RECORDS, LabState,
};
use crate::live::Live;
use crate::requests::Posts;

fn count(value: u64) -> String {
    thousands(i64::try_from(value).unwrap_or(i64::MAX))
}

#[component]
pub fn LabCell() -> impl IntoView {
    let live = Live::use_context();
    let lab = Memo::new(move |_| live.snapshot.get().map(|s| s.lab).unwrap_or_default());
    let records = RwSignal::new(LAB_DEFAULT_RECORDS.to_string());
    let crash_after = RwSignal::new((LAB_DEFAULT_RECORDS / 2).to_string());
    let posts = Posts::new();
    let running = move || lab.get().running;

    let run = move |_| {
        let body = (|| -> Result<serde_json::Value, String> {
            Ok(typed(DeliveryLabRequest {
                mode: DeliveryChoice::All,
                records: whole_number("records", &records.get())?,
                crash_after: Some(whole_number("crash after", &crash_after.get())?),
            }))
        })();
        posts.send_checked("/api/lab/delivery", body);
    };

    view! {
        <Cell number=6 title="Delivery semantics lab">
            <p class="explain">
                "A job reads records from one topic and copies them to another. What a crash costs depends on when it "
                <em>"commits"</em> " its input offsets. " <strong>"At-most-once"</strong>
                " commits before writing the output: a crash in between loses the batch. "
                <strong>"At-least-once"</strong>
                " writes, waits for Kafka's acks, then commits: a crash in between writes the batch twice. "
                <strong>"Exactly-once"</strong>
                " writes the output and commits the offsets in one " <em>"transaction"</em>
                ": a crash aborts both, and readers with " <code>"isolation.level=read_committed"</code>
                " never see the aborted copies. Each run copies the same records three ways, crashes each job at the same record, restarts it, and counts the output."
            </p>
            <Controls>
            <form class="controls" on:submit=|ev| ev.prevent_default()>
                <label>
                    "Records"
                    <input type="number" min="1" max="100000" name="records" bind:value=records />
                </label>
                <label>
                    "Crash after (records)"
                    <input type="number" min="0" name="crash_after" bind:value=crash_after />
                </label>
                <div class="buttons">
                    <button class="btn btn-primary" data-primary data-testid="lab-run" on:click=run disabled=move || running() || posts.pending()>
                        "Run all three"
                    </button>
                </div>
            </form>
            </Controls>
            <ErrorLine error=posts />
            <Progress lab=lab.into() />
            <ResultTable lab=lab.into() />
        </Cell>
    }
}

/// A bar of the records handled so far, while a run is under way.
#[component]
fn Progress(lab: Signal<DeliveryLabView>) -> impl IntoView {
    move || {
        let view = lab.get();
        view.running.then(|| {
            let percent = if view.total == 0 {
                0.0
            } else {
                view.processed as f64 * 100.0 / view.total as f64
            };
            let current = view
                .results
                .iter()
                .find(|r| r.state == LabState::Running)
                .map_or("starting", |r| r.mode.label());
            view! {
                <div class="lab-progress" data-testid="lab-progress">
                    <div class="bar" role="progressbar" aria-valuenow=format!("{percent:.0}") aria-valuemin="0" aria-valuemax="100">
                        <div class="bar-fill" style=format!("width:{percent:.1}%")></div>
                    </div>
                    <span class="muted">
                        {format!("{current}: {} of {} records copied", count(view.processed), count(view.total))}
                    </span>
                </div>
            }
        })
    }
}

#[component]
fn ResultTable(lab: Signal<DeliveryLabView>) -> impl IntoView {
    view! {
        <table class="lab" data-testid="lab-table">
            <thead>
                <tr>
                    <th>"Mode"</th>
                    <th>"Commit happens…"</th>
                    <th>"Output records"</th>
                    <th>"Lost"</th>
                    <th>"Duplicated"</th>
                </tr>
            </thead>
            <tbody>
                {DeliveryMode::ALL
                    .into_iter()
                    .map(|mode| {
                        let result = Signal::derive(move || lab.get().result(mode).cloned());
                        view! { <ResultRow mode result /> }
                    })
                    .collect_view()}
            </tbody>
        </table>
        <ul class="lab-notes">
            {move || {
                lab.get()
                    .results
                    .into_iter()
                    .filter_map(|r| r.note.map(|note| (r.mode, note)))
                    .map(|(mode, note)| {
                        view! {
                            <li data-testid=format!("lab-note-{}", mode.as_str())>
                                <strong>{mode.label()}</strong> ": " {note}
                            </li>
                        }
                    })
                    .collect_view()
            }}
        </ul>
    }
}

#[component]
fn ResultRow(mode: DeliveryMode, result: Signal<Option<DeliveryResult>>) -> impl IntoView {
    let id = mode.as_str();
    let numbers = move || {
        match result.get() {
        None => view! { <td colspan="3" class="muted" data-testid=format!("lab-state-{id}")>"not run yet"</td> }
            .into_any(),
        Some(r) if r.state == LabState::Unsupported => view! {
            <td colspan="3" class="lab-unsupported" data-testid=format!("lab-state-{id}")>
                "unsupported: this cluster does not support transactions (see below)"
            </td>
        }
            .into_any(),
        Some(r) if r.state != LabState::Done => view! {
            <td colspan="3" class=format!("lab-{}", r.state.as_str()) data-testid=format!("lab-state-{id}")>
                {r.state.as_str()}
                {(r.state == LabState::Running).then(|| format!(" · {} records copied", count(r.processed)))}
            </td>
        }
            .into_any(),
        Some(r) => view! {
            <td data-testid=format!("lab-out-{id}")>{count(r.read_out)}</td>
            <td class:lab-bad={r.lost > 0} data-testid=format!("lab-lost-{id}")>{count(r.lost)}</td>
            <td class:lab-bad={r.duplicated > 0} data-testid=format!("lab-dup-{id}")>{count(r.duplicated)}</td>
        }
            .into_any(),
    }
    };
    view! {
        <tr data-testid=format!("lab-row-{id}")>
            <td>{mode.label()}</td>
            <td>{mode.commit_point()}</td>
            {numbers}
        </tr>
    }
}
