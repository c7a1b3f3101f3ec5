//! The lesson around the cells: progress at the top with run-all / stop-all, each cell's
//! "Try this" steps that turn green when the pipeline shows they were done, the fault buttons,
//! and the view toggles (theme, large font) that `public/notebook.js` applies.

use leptos::prelude::*;

use crate::session::Controls;

use super::{ErrorLine, thousands};
use crate::api::{LessonStep, StepPrediction};
use crate::live::Live;
use crate::requests::Posts;

/// Progress through the lesson, with run-all, stop-all and start-over.
#[component]
pub fn LessonBar() -> impl IntoView {
    let live = Live::use_context();
    let lesson = Memo::new(move |_| live.snapshot.get().map(|s| s.lesson).unwrap_or_default());
    let done = move || lesson.get().done();
    let total = move || lesson.get().steps.len();
    let right = move || {
        let (right, judged) = lesson.get().predictions_right();
        format!("{right} / {judged}")
    };
    let posts = Posts::new();
    let act = move |path: &'static str| move |_| posts.send(path, serde_json::Value::Null);
    view! {
        <div class="lesson-bar" data-testid="lesson-progress">
            <span class="lesson-count">
                "Lesson " <strong data-testid="lesson-done">{done}</strong> " / " {total}
            </span>
            <progress
                max=move || total().max(1)
                value=done
                aria-label="steps of the lesson done"
            ></progress>
            <span class="lesson-count" title="Predictions that held, of those whose step is done">
                "predictions right: " <strong data-testid="predictions-right">{right}</strong>
            </span>
            <Controls>
            <button class="btn btn-small" data-testid="run-all" disabled=move || posts.pending() on:click=act("/api/pipeline/start-all")
                title="Start every stage that is not running, with its defaults">
                "Run all"
            </button>
            <button class="btn btn-small" data-testid="stop-all" disabled=move || posts.pending() on:click=act("/api/pipeline/stop-all")>
                "Stop all"
            </button>
            <button class="btn btn-small" data-testid="lesson-reset" disabled=move || posts.pending() on:click=act("/api/lesson/reset")
                title="Mark every step as not done">
                "Start over"
            </button>
            </Controls>
            <ErrorLine error=posts />
        </div>
    }
}

/// Theme and font-size toggles and the keyboard hint; `notebook.js` does the switching, so it
/// also works before the page has hydrated.
#[component]
pub fn ViewToggles() -> impl IntoView {
    view! {
        <div class="view-toggles">
            <button class="btn btn-small" data-toggle="theme" data-testid="toggle-theme"
                title="Switch light / dark (follows the OS until you choose)">
                "◐ Theme"
            </button>
            <button class="btn btn-small" data-toggle="size" data-testid="toggle-size"
                title="Large font, for a projector">
                "A+ Large"
            </button>
            <span class="muted keys-hint" title="Shift+Enter runs the focused cell; J / K or Alt+↓ / Alt+↑ move between cells">
                "⇧⏎ run · J/K move"
            </span>
        </div>
    }
}

/// The steps of one cell, each with a check that turns green when it has been done.
#[component]
pub fn TryThis(cell: u8) -> impl IntoView {
    let live = Live::use_context();
    let dataset = super::streamed_dataset();
    let steps = Memo::new(move |_| {
        live.snapshot
            .get()
            .map(|s| s.lesson.for_cell(cell).cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    });
    move || {
        let steps = steps.get();
        // Only the newest outcome is open: a cell's finished steps would make the box very tall.
        let newest = steps
            .iter()
            .filter_map(|s| Some((s.done_at?, s.id.clone())))
            .max();
        let newest = newest.map(|(_, id)| id);
        let note = written_for_yelp(dataset.get());
        (!steps.is_empty()).then(|| {
            view! {
                <aside class="try-this" aria-label="Try this">
                    <h3>"Try this"</h3>
                    // Read in the box's own closure, not a closure nested in it: a nested
                    // closure's empty output did not hydrate (it expected the <ol> after it).
                    {note.map(|note| view! {
                        <p class="muted" data-testid="lesson-dataset-note">{note}</p>
                    })}
                    <ol>{steps.into_iter().map(|step| {
                        let open = newest.as_ref() == Some(&step.id);
                        view! { <StepItem step open /> }
                    }).collect_view()}</ol>
                </aside>
            }
        })
    }
}

#[component]
fn StepItem(step: LessonStep, open: bool) -> impl IntoView {
    let done = step.done();
    let progress =
        (!done && step.parts > 1).then(|| format!(" ({} of {} parts)", step.reached, step.parts));
    let id = step.id.clone();
    // The question comes before the task; what happened, after it.
    let (ask, observed) = match step.prediction {
        Some(p) if done => (None, Some(view! { <Observed id p open /> })),
        Some(p) => (Some(view! { <Predict id p /> }), None),
        None => (None, None),
    };
    view! {
        <li
            class=if done { "step step-done" } else { "step" }
            data-testid=format!("step-{}", step.id)
            data-done=if done { "true" } else { "false" }
        >
            <span class="check" aria-hidden="true">{if done { "✓" } else { "○" }}</span>
            <span>
                {ask.map(|ask| view! { {ask} <strong>"Then: "</strong> })}
                {step.task}
                {progress}
                <span class="concepts">
                    {step.concepts.into_iter().map(|c| view! { <span class="concept">{c}</span> }).collect_view()}
                </span>
                {observed}
            </span>
        </li>
    }
}

/// The question and its choices, before (and while) the task is done. The answer shows at once;
/// the server's copy arrives with the next snapshot.
#[component]
fn Predict(id: String, p: StepPrediction) -> impl IntoView {
    let picked = RwSignal::new(p.choice);
    let posts = Posts::new();
    let read_only = crate::session::read_only();
    let choices = p.choices.into_iter().enumerate().map(|(i, text)| {
        let path = format!("/api/lesson/steps/{id}/prediction");
        let pick = move |_| {
            picked.set(Some(i));
            posts.send(path.clone(), serde_json::json!({ "choice": i }));
        };
        view! {
            <button class="btn btn-small choice" data-testid=format!("predict-{id}-{i}")
                aria-pressed=move || (picked.get() == Some(i)).to_string() on:click=pick disabled=move || read_only || posts.pending()>
                {text}
            </button>
        }
    });
    view! {
        <div class="predict" data-testid=format!("predict-{id}")>
            <p><strong>"Predict first: "</strong>{p.question}</p>
            <div class="choices" role="group" aria-label="your prediction">{choices.collect_view()}</div>
            <ErrorLine error=posts />
        </div>
    }
}

/// What happened: the live figures, whether the prediction held, and why.
#[component]
fn Observed(id: String, p: StepPrediction, open: bool) -> impl IntoView {
    let held = p.held();
    let Some(outcome) = p.outcome else {
        let note = if p.choice.is_some() {
            "Observing the outcome…"
        } else {
            ""
        };
        return view! { <p class="muted">{note}</p> }.into_any();
    };
    let verdict = match held {
        Some(true) => "✓ Your prediction held.",
        Some(false) => "✗ Your prediction did not hold.",
        None => "No prediction was made.",
    };
    let happened = p.choices.get(outcome.happened).cloned().unwrap_or_default();
    let rows = outcome.figures.into_iter().map(|f| {
        view! {
            <tr><td>{f.label}</td><td>{thousands(f.before)}</td><td>{thousands(f.peak)}</td><td>{thousands(f.after)}</td></tr>
        }
    });
    let class = match held {
        Some(true) => "verdict",
        Some(false) => "verdict bad",
        None => "muted",
    };
    view! {
        <details class="outcome" open=open data-testid=format!("outcome-{id}")
            data-held=held.map_or("none", |h| if h { "true" } else { "false" })>
            <summary><strong class=class>{verdict}</strong> " What happened: " {happened}</summary>
            <table class="figures">
                <thead><tr>
                    <th>"Live figure"</th>
                    <th title="When you answered (or the step was first watched)">"before"</th>
                    <th>"highest"</th><th title="When the step was done">"done"</th>
                </tr></thead>
                <tbody>{rows.collect_view()}</tbody>
            </table>
            <p>{outcome.explanation}</p>
        </details>
    }
    .into_any()
}

/// A button that breaks something on purpose (or repairs it), reporting the server's answer.
#[component]
pub fn FaultButton(
    label: &'static str,
    path: &'static str,
    #[prop(optional)] body: Option<serde_json::Value>,
    testid: &'static str,
    title: &'static str,
    #[prop(optional, into)] disabled: Option<Signal<bool>>,
) -> impl IntoView {
    let posts = Posts::new();
    let click = move |_| posts.send(path, body.clone().unwrap_or(serde_json::Value::Null));
    let read_only = crate::session::read_only();
    let disabled = move || read_only || posts.pending() || disabled.is_some_and(|d| d.get());
    view! {
        <button class="btn btn-fault" data-testid=testid title=title on:click=click disabled=disabled>
            "⚡ " {label}
        </button>
        <ErrorLine error=posts />
    }
}

/// Said in every "Try this" box while another dataset streams: the lesson's steps, predictions
/// and explanations are written for Yelp reviews, and what that means for this dataset.
fn written_for_yelp(dataset: crate::api::DatasetKind) -> Option<&'static str> {
    use crate::api::DatasetKind;
    match dataset {
        DatasetKind::Yelp => None,
        DatasetKind::Tweets => Some(
            "Written for Yelp reviews: streaming tweets, these steps still tick (a tweet is keyed, labelled, windowed, re-sent and indexed like a review), but figures about stars stay at 0.",
        ),
        DatasetKind::Companies => Some(
            "Written for Yelp reviews: company records have no text, so the steps about labels and search documents see only what was streamed before. Choose yelp in cell 1 to follow the lesson as written.",
        ),
    }
}
