//! Cell 3's A/B view: two classifiers on the same newest records, side by side — how often they
//! agree (the agreement matrix), how often each agrees with the stars, how fast each is and, for
//! the LLM, how long a label takes (`POST /api/sentiment/compare`). On tweets (no stars) the
//! accuracy reads "n/a" while agreement and throughput stay; on companies (no text) it says there
//! is nothing to compare.

use leptos::prelude::*;
use serde_json::json;

use super::{ErrorLine, capitalized, streamed_dataset};
use crate::api::{ClassifierComparison, ClassifierScore, DatasetKind, Sentiment};
use crate::requests::Posts;
use crate::session::Controls;

/// Records a comparison reads.
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
    let posts = Posts::<ClassifierComparison>::answered();
    let dataset = streamed_dataset();
    let run = move |_| {
        let body = json!({"a": a.get_untracked(), "b": b.get_untracked(), "limit": LIMIT});
        posts.send("/api/sentiment/compare", body);
    };
    let busy = move || posts.pending();
    view! {
        <div class="compare-panel" data-testid="compare-panel">
        <h3>"Compare two classifiers"</h3>
        <p class="explain" data-testid="compare-explain">
            {move || format!("Label the same newest {LIMIT} {} of ", dataset.get().records_noun())}
            <code>"reviews"</code>
            {move || format!(
                " with two classifiers, reading their {}: where they disagree, {}, and how fast each is. The workers are not disturbed: the records are read like the message browser reads them.",
                dataset.get().text_field().unwrap_or("text"),
                stars_reading(dataset.get()),
            )}
        </p>
        {move || no_text(dataset.get(), None).map(|why| view! { <p class="note" data-testid="compare-no-text">{why}</p> })}
        <Controls>
            <form class="controls" on:submit=|ev| ev.prevent_default()>
                <label>"A" <ChoiceSelect name="a" choice=a /></label>
                <label>"B" <ChoiceSelect name="b" choice=b /></label>
                <div class="buttons">
                    <button class="btn" data-testid="compare-run" on:click=run disabled=busy>
                        {move || if busy() { "Comparing…" } else { "Compare" }}
                    </button>
                </div>
            </form>
        </Controls>
        <ErrorLine error=posts />
        {move || posts.answer().map(|c| view! { <ComparisonView c /> })}
        </div>
    }
}

/// How the view checks labels against stars, for this dataset.
fn stars_reading(dataset: DatasetKind) -> String {
    if dataset.has_stars() {
        "how often each agrees with the stars (4–5★ POSITIVE, 3★ NEUTRAL, 1–2★ NEGATIVE)".to_owned()
    } else {
        format!(
            "how often they agree with each other ({} carry no stars, so there is no accuracy to measure)",
            dataset.records_noun()
        )
    }
}

/// Why there is nothing to compare, for a dataset without text: streaming it (`read` = None), or
/// having read `read` of its records and none with text.
fn no_text(dataset: DatasetKind, read: Option<u64>) -> Option<String> {
    if dataset.text_field().is_some() {
        return None;
    }
    let newest = match read {
        Some(n) => format!(
            "The newest {n} records of reviews are {}: ",
            dataset.records_noun()
        ),
        None => format!("Streaming {}: ", dataset.records_noun()),
    };
    Some(format!(
        "{newest}they have no text field, so there is nothing for a classifier to read and nothing to compare. Stream reviews or tweets in cell 1 to compare classifiers."
    ))
}

/// The accuracy column: "n/a" when no compared record has stars (the sentence above the table
/// says why in full; the cell stays short so the table fits a phone).
fn accuracy(s: &ClassifierScore, with_stars: u64) -> String {
    match s.accuracy_vs_stars {
        Some(_) if with_stars > 0 => format!(
            "{} / {with_stars} ({})",
            s.correct_vs_stars,
            percent(s.correct_vs_stars, with_stars)
        ),
        _ => "n/a — no stars".to_owned(),
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".to_owned()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

/// The scores table, A and B side by side, one row per figure: two columns of values fit a
/// phone's width, where a column per figure made the table scroll sideways.
fn score_table(
    (a, b): (ClassifierScore, ClassifierScore),
    with_stars: u64,
    dataset: DatasetKind,
) -> impl IntoView {
    let name = |s: &ClassifierScore| match &s.model {
        Some(model) => format!("{} ({model})", s.classifier),
        None => s.classifier.clone(),
    };
    let latency = |s: &ClassifierScore| {
        s.mean_latency_ms
            .map_or("–".to_owned(), |ms| format!("{ms:.0} ms"))
    };
    let no_stars = (with_stars == 0).then(|| {
        format!(
            "{} carry no stars to check a label against",
            dataset.records_noun()
        )
    });
    let row = |figure: String, a: String, b: String| {
        view! { <tr><th scope="row">{figure}</th><td>{a}</td><td>{b}</td></tr> }
    };
    let (a, b) = (&a, &b);
    view! {
        <table class="compare-scores" data-testid="compare-scores">
            <thead>
                <tr><th></th><th scope="col">"A"</th><th scope="col">"B"</th></tr>
            </thead>
            <tbody>
                {row("Classifier".to_owned(), name(a), name(b))}
                <tr>
                    <th scope="row">"Agrees with stars"</th>
                    <td data-testid="compare-accuracy" title=no_stars.clone()>{accuracy(a, with_stars)}</td>
                    <td data-testid="compare-accuracy" title=no_stars>{accuracy(b, with_stars)}</td>
                </tr>
                {row(format!("{}/s", capitalized(dataset.records_noun())), format!("{:.0}", a.reviews_per_s), format!("{:.0}", b.reviews_per_s))}
                {row("Latency".to_owned(), latency(a), latency(b))}
                {row("Fallbacks".to_owned(), a.fallbacks.to_string(), b.fallbacks.to_string())}
            </tbody>
        </table>
    }
}

#[component]
fn ComparisonView(c: ClassifierComparison) -> impl IntoView {
    let dataset = c.dataset();
    let without_text = c.without_text();
    if c.n == 0 {
        let why = no_text(dataset, Some(without_text)).unwrap_or_else(|| {
            "There were no records with text in reviews to compare: stream some in cell 1."
                .to_owned()
        });
        return view! {
            <div data-testid="compare-result">
                <p class="note" data-testid="compare-no-text">{why}</p>
            </div>
        }
        .into_any();
    }
    let records = dataset.records_noun();
    let (a_name, b_name) = (c.a.classifier.clone(), c.b.classifier.clone());
    let stars = if c.with_stars == 0 {
        format!("; accuracy against stars: n/a — {records} carry no stars.")
    } else {
        format!("; {} have stars.", c.with_stars)
    };
    let left_out = (without_text > 0).then(|| {
        format!(
            "{without_text} of the newest records had no text (company records) and were left out."
        )
    });
    view! {
        <div data-testid="compare-result">
            <p>
                <strong data-testid="compare-agree">{format!("A and B agree on {} of {} {records} ({})", c.agree, c.n, percent(c.agree, c.n))}</strong>
                <span data-testid="compare-stars">{stars}</span>
            </p>
            {left_out.map(|note| view! { <p class="muted">{note}</p> })}
            <div class="two-col">
                <div>
                    {score_table((c.a.clone(), c.b.clone()), c.with_stars, dataset)}
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
                    <tr><th>{capitalized(dataset.record_noun())}</th><th>"Stars"</th><th>"A"</th><th>"B"</th></tr>
                </thead>
                <tbody>
                    {c.rows.into_iter().map(|r| view! {
                        <tr class=if r.a == r.b { "" } else { "disagree" }>
                            <td class="excerpt">{r.excerpt}"…"</td>
                            <td>{if r.stars == 0 { "n/a".to_owned() } else { "★".repeat(usize::from(r.stars)) }}</td>
                            <td><span class=format!("label label-{}", r.a.as_str().to_lowercase())>{r.a.as_str()}</span>{format!(" {:+.3}", r.a_score)}</td>
                            <td><span class=format!("label label-{}", r.b.as_str().to_lowercase())>{r.b.as_str()}</span>{format!(" {:+.3}", r.b_score)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(correct: u64, accuracy: Option<f64>) -> ClassifierScore {
        ClassifierScore {
            classifier: "lexicon".into(),
            model: None,
            correct_vs_stars: correct,
            accuracy_vs_stars: accuracy,
            reviews_per_s: 1000.0,
            elapsed_ms: 1.0,
            mean_latency_ms: None,
            fallbacks: 0,
        }
    }

    #[test]
    fn tweets_read_n_a_for_accuracy_and_companies_have_nothing_to_compare() {
        assert_eq!(accuracy(&score(0, None), 0), "n/a — no stars");
        assert_eq!(accuracy(&score(3, Some(0.75)), 4), "3 / 4 (75.0%)");
        assert!(stars_reading(DatasetKind::Tweets).contains("tweets carry no stars"));
        assert_eq!(no_text(DatasetKind::Tweets, None), None);
        let why = no_text(DatasetKind::Companies, Some(200)).expect("companies");
        assert!(
            why.starts_with("The newest 200 records of reviews are company records"),
            "{why}"
        );
        assert!(why.contains("nothing to compare"));
    }
}
