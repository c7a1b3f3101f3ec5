//! Cell 3's A/B view: two classifiers on the same newest reviews, side by side — how often they
//! agree (the agreement matrix), how often each agrees with the stars, how fast each is and, for
//! the LLM, how long a label takes (`POST /api/sentiment/compare`).

use leptos::prelude::*;
use serde_json::json;

use super::ErrorLine;
use crate::api::{ClassifierComparison, ClassifierScore, Sentiment};
use crate::client;
use crate::session::Controls;

/// Reviews a comparison reads.
const LIMIT: usize = 200;

const CHOICES: [(&str, &str); 3] = [
    ("lexicon", "VADER (lexicon)"),
    ("textblob", "TextBlob"),
    ("llm", "LLM"),
];

#[component]
fn ChoiceSelect(name: &'static str, choice: RwSignal<String>) -> impl IntoView {
    view! {
        <select
            name=name
            data-testid=format!("compare-{name}")
            prop:value=move || choice.get()
            on:change=move |ev| choice.set(event_target_value(&ev))
        >
            {CHOICES
                .iter()
                .map(|(value, label)| view! { <option value=*value>{*label}</option> })
                .collect_view()}
        </select>
    }
}

#[component]
pub fn ClassifierCompare() -> impl IntoView {
    let a = RwSignal::new("lexicon".to_owned());
    let b = RwSignal::new("textblob".to_owned());
    let error = RwSignal::new(None::<String>);
    let result = RwSignal::new(None::<ClassifierComparison>);
    let busy = RwSignal::new(false);
    let run = move |_| {
        error.set(None);
        busy.set(true);
        leptos::task::spawn_local(async move {
            let body = json!({"a": a.get_untracked(), "b": b.get_untracked(), "limit": LIMIT});
            match client::post_json::<ClassifierComparison>("/api/sentiment/compare", body).await {
                Ok(comparison) => result.set(Some(comparison)),
                Err(message) => error.set(Some(message)),
            }
            busy.set(false);
        });
    };
    view! {
        <h3>"Compare two classifiers"</h3>
        <p class="explain">
            "Label the same newest " {LIMIT} " reviews of " <code>"reviews"</code>
            " with two classifiers: where they disagree, how often each agrees with the stars (4–5★ POSITIVE, 3★ NEUTRAL, 1–2★ NEGATIVE) and how fast each is. The workers are not disturbed: the records are read like the message browser reads them."
        </p>
        <Controls>
            <form class="controls" on:submit=|ev| ev.prevent_default()>
                <label>"A" <ChoiceSelect name="a" choice=a /></label>
                <label>"B" <ChoiceSelect name="b" choice=b /></label>
                <div class="buttons">
                    <button class="btn" data-testid="compare-run" on:click=run disabled=move || busy.get()>
                        {move || if busy.get() { "Comparing…" } else { "Compare" }}
                    </button>
                </div>
            </form>
        </Controls>
        <ErrorLine error />
        {move || result.get().map(|c| view! { <ComparisonView c /> })}
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".to_owned()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

fn score_row(name: &'static str, s: ClassifierScore, with_stars: u64) -> impl IntoView {
    let classifier = match &s.model {
        Some(model) => format!("{} ({model})", s.classifier),
        None => s.classifier.clone(),
    };
    view! {
        <tr>
            <th>{name}</th>
            <td>{classifier}</td>
            <td>{format!("{} / {with_stars} ({})", s.correct_vs_stars, percent(s.correct_vs_stars, with_stars))}</td>
            <td>{format!("{:.0}", s.reviews_per_s)}</td>
            <td>{s.mean_latency_ms.map_or("–".to_owned(), |ms| format!("{ms:.0} ms"))}</td>
            <td>{s.fallbacks}</td>
        </tr>
    }
}

#[component]
fn ComparisonView(c: ClassifierComparison) -> impl IntoView {
    let (a_name, b_name) = (c.a.classifier.clone(), c.b.classifier.clone());
    view! {
        <div data-testid="compare-result">
            <p>
                <strong data-testid="compare-agree">{format!("A and B agree on {} of {} reviews ({})", c.agree, c.n, percent(c.agree, c.n))}</strong>
                {format!("; {} have stars.", c.with_stars)}
            </p>
            <div class="two-col">
                <div>
                    <table class="compare-scores" data-testid="compare-scores">
                        <thead>
                            <tr><th></th><th>"Classifier"</th><th>"Agrees with stars"</th><th>"Reviews/s"</th><th>"Latency"</th><th>"Fallbacks"</th></tr>
                        </thead>
                        <tbody>
                            {score_row("A", c.a.clone(), c.with_stars)}
                            {score_row("B", c.b.clone(), c.with_stars)}
                        </tbody>
                    </table>
                </div>
                <div>
                    <table class="confusion" data-testid="compare-matrix">
                        <thead>
                            <tr>
                                <th>{format!("A: {a_name} \\ B: {b_name}")}</th>
                                {Sentiment::ALL.iter().map(|s| view! { <th>{s.as_str()}</th> }).collect_view()}
                            </tr>
                        </thead>
                        <tbody>
                            {Sentiment::ALL.iter().enumerate().map(|(r, s)| view! {
                                <tr>
                                    <th>{s.as_str()}</th>
                                    {(0..3).map(|col| view! {
                                        <td class=if r == col { "agree" } else { "" }>{c.agreement[r][col]}</td>
                                    }).collect_view()}
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            </div>
            <table class="latest" data-testid="compare-rows">
                <thead>
                    <tr><th>"Review"</th><th>"Stars"</th><th>"A"</th><th>"B"</th></tr>
                </thead>
                <tbody>
                    {c.rows.into_iter().map(|r| view! {
                        <tr class=if r.a == r.b { "" } else { "disagree" }>
                            <td class="excerpt">{r.excerpt}"…"</td>
                            <td>{"★".repeat(usize::from(r.stars))}</td>
                            <td><span class=format!("label label-{}", r.a.as_str().to_lowercase())>{r.a.as_str()}</span>{format!(" {:+.3}", r.a_score)}</td>
                            <td><span class=format!("label label-{}", r.b.as_str().to_lowercase())>{r.b.as_str()}</span>{format!(" {:+.3}", r.b_score)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}
