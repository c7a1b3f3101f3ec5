//! Cell 8 · Incidents: seeded troubles to diagnose and fix with the other cells' views. The
//! server keeps the incident (`/api/incidents`); this cell lists the catalogue, starts one with
//! a seed, and shows its before / now / Δ table, the hints asked for, its question and, once
//! the fix holds, what happened.

use leptos::prelude::*;
use serde_json::json;

use super::{Cell, ErrorLine, streamed_dataset, thousands};
use crate::api::{ActiveIncident, DatasetKind, IncidentPhase, IncidentsView};
use crate::live::Live;
use crate::requests::{Posts, Read};
use crate::session::Controls;

#[component]
pub fn IncidentsCell() -> impl IntoView {
    let live = Live::use_context();
    let posts = Posts::new();
    let seed = RwSignal::new("17".to_owned());
    // The server moves the incident on once a second, with each snapshot: read it as often, and
    // at once after each change this cell asked for.
    let incidents = Read::<IncidentsView>::new(move || {
        live.snapshot.track();
        posts.done();
        Some("/api/incidents".to_owned())
    });
    let start = move |id: String| match seed.get().trim().parse::<u64>() {
        Ok(seed) => posts.send(
            format!("/api/incidents/{id}/start"),
            json!({ "seed": seed }),
        ),
        Err(_) => posts.refuse(format!("seed: enter a whole number, got {:?}", seed.get())),
    };
    let error = Signal::derive(move || posts.error().or_else(|| incidents.error()));
    let catalogue = move || incidents.answer().map(|v| v.incidents).unwrap_or_default();
    let active = Memo::new(move |_| incidents.answer().and_then(|v| v.active));
    let dataset = streamed_dataset();

    view! {
        <Cell number=8 title="Incidents">
            <p class="explain">
                "Something goes wrong on purpose: start an incident, find what happened with the cells above, and fix it. "
                "The same seed gives the same incident, so a class can work on the same one. The table compares the figures that tell the story "
                <em>"before"</em> " the trouble with " <em>"now"</em> "; ask for hints one at a time."
            </p>
            {move || yelp_only(dataset.get()).map(|note| view! {
                <p class="note" data-testid="incidents-dataset-note">{note}</p>
            })}
            <Controls>
                <form class="controls" on:submit=|ev| ev.prevent_default()>
                    <label>"Seed" <input type="number" min="0" name="incident_seed" bind:value=seed /></label>
                </form>
                <ul class="incident-list" data-testid="incident-list">
                    <For each=catalogue key=|i| i.id.clone() let:incident>
                        {
                            let id = incident.id.clone();
                            view! {
                                <li>
                                    <button class="btn btn-small" data-testid=format!("incident-start-{}", incident.id)
                                        disabled=move || posts.pending()
                                        on:click=move |_| start(id.clone())>"Start"</button>
                                    <strong>{incident.title}</strong>
                                    <span class="muted">{format!(" · cell {} · ", incident.cell)}</span>
                                    {incident.symptom}
                                </li>
                            }
                        }
                    </For>
                </ul>
            </Controls>
            <ErrorLine error />
            {move || active.get().map(|a| view! { <Active incident=a posts /> })}
        </Cell>
    }
}

#[component]
fn Active(incident: ActiveIncident, posts: Posts) -> impl IntoView {
    let phase = match incident.phase {
        IncidentPhase::SettingUp => "setting up",
        IncidentPhase::Running => "running",
        IncidentPhase::Solved => "solved",
        IncidentPhase::Failed => "failed",
    };
    let pill = match incident.phase {
        IncidentPhase::Solved => "pill pill-running",
        IncidentPhase::Failed => "pill pill-failed",
        _ => "pill pill-paused",
    };
    let more_hints = incident.hints.len() < incident.hints_total;
    let hint_label = format!(
        "Hint {} of {}",
        (incident.hints.len() + 1).min(incident.hints_total),
        incident.hints_total
    );
    let hint = move |_| posts.send("/api/incidents/hint", json!({}));
    let rows = incident
        .figures
        .iter()
        .map(|f| {
            let delta = f.delta().map_or("–".to_owned(), |d| {
                if d > 0 {
                    format!("+{}", thousands(d))
                } else {
                    thousands(d)
                }
            });
            view! {
                <tr>
                    <td>{f.name.clone()}</td>
                    <td>{thousands(f.before)}</td>
                    <td>{f.now.map_or("–".to_owned(), thousands)}</td>
                    <td>{delta}</td>
                </tr>
            }
        })
        .collect_view();
    let question = incident.question.map(|q| {
        let verdict = q.answered_right.map(|right| {
            if right {
                "Right."
            } else {
                "Not that — look again."
            }
        });
        let choices = q
            .choices
            .into_iter()
            .enumerate()
            .map(|(i, choice)| {
                let body = json!({ "choice": choice.clone() });
                view! {
                    <button class="btn btn-small" data-testid=format!("incident-choice-{i}")
                        disabled=move || posts.pending()
                        on:click=move |_| posts.send("/api/incidents/answer", body.clone())>
                        {choice}
                    </button>
                }
            })
            .collect_view();
        view! {
            <div class="incident-question">
                <p><strong>{q.text}</strong></p>
                <Controls><div class="buttons">{choices}</div></Controls>
                {verdict.map(|v| view! { <p data-testid="incident-verdict">{v}</p> })}
            </div>
        }
    });
    view! {
        <div class="incident" data-testid="incident-active" data-phase=phase>
            <h3>
                {incident.title} <span class="muted">{format!(" · seed {} ", incident.seed)}</span>
                <span class=pill data-testid="incident-phase">{phase}</span>
            </h3>
            <p>{incident.symptom}</p>
            {incident.error.map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <table class="incident-figures" data-testid="incident-figures">
                <thead><tr><th>"Figure"</th><th>"Before"</th><th>"Now"</th><th>"Δ"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
            <p class="muted" data-testid="incident-progress">
                {format!("Fix: {} of {} checks hold", incident.reached, incident.parts)}
            </p>
            {question}
            <ol class="incident-hints" data-testid="incident-hints">
                {incident.hints.into_iter().map(|h| view! { <li>{h}</li> }).collect_view()}
            </ol>
            <Controls>
                <button class="btn btn-small" data-testid="incident-hint" on:click=hint disabled=move || !more_hints || posts.pending()>
                    {hint_label}
                </button>
            </Controls>
            {incident.write_up.map(|w| view! {
                <div class="incident-writeup" data-testid="incident-writeup">
                    <h4>"What happened"</h4>
                    <p>{w}</p>
                </div>
            })}
        </div>
    }
}

/// Said in place when the pipeline streams another dataset: incidents replay Yelp reviews (their
/// figures, hints and checks are about reviews), so starting one switches the streamer back.
fn yelp_only(dataset: DatasetKind) -> Option<String> {
    (dataset != DatasetKind::Yelp).then(|| {
        format!(
            "Incidents replay Yelp reviews: starting one stops every stage (the streamer of {records} too) and writes its seeded reviews to reviews; an incident that streams starts the streamer again on Yelp reviews. The {records} already in the topics stay behind: each consumer group starts from the end, so the figures count only the incident's reviews.",
            records = dataset.records_noun(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incidents_say_they_replay_yelp_only_when_another_dataset_streams() {
        assert_eq!(yelp_only(DatasetKind::Yelp), None);
        let note = yelp_only(DatasetKind::Tweets).expect("tweets");
        assert!(note.starts_with("Incidents replay Yelp reviews"), "{note}");
        assert!(note.contains("streamer of tweets"), "{note}");
    }
}
