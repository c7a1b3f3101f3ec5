//! Cell 2 · what a topic carries: the fields of its newest records with their types, how often
//! each is present or null and an example (inferred, as a schema registry would list them), and
//! for the dead-letter topic why its records were refused, grouped.

use leptos::prelude::*;

use super::ErrorLine;
use crate::ops::TopicSchema;
use crate::requests::Read;

/// The schema of the topic `topic` names, read when the learner asks.
#[component]
pub fn TopicSchemaView(topic: RwSignal<String>) -> impl IntoView {
    let asked = RwSignal::new(None::<String>);
    let schema = Read::<TopicSchema>::new(move || asked.get());
    let read = move |_| {
        asked.set(Some(format!(
            "/api/kafka/topics/{}/schema?sample=200",
            topic.get()
        )));
    };
    view! {
        <div class="buttons">
            <button class="btn" data-testid="schema" on:click=read>
                "Infer the schema (newest 200)"
            </button>
        </div>
        <ErrorLine error=schema />
        {move || schema.answer().map(|s| view! { <SchemaTables schema=s /> })}
    }
}

#[component]
fn SchemaTables(schema: TopicSchema) -> impl IntoView {
    let summary = format!(
        "{} records read from {}; {} were not JSON objects.",
        schema.sampled, schema.topic, schema.not_objects
    );
    let fields = schema
        .fields
        .into_iter()
        .map(|f| {
            let types = f
                .types
                .iter()
                .map(|(name, n)| format!("{name} ×{n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let optional = f.presence < 1.0;
            view! {
                <tr class:optional=optional>
                    <td><code>{f.path}</code></td>
                    <td>{types}</td>
                    <td>{format!("{:.0} %", f.presence * 100.0)}</td>
                    <td>{f.nulls}</td>
                    <td class="value"><code>{f.example}</code></td>
                </tr>
            }
        })
        .collect_view();
    let letters = (!schema.dead_letters.is_empty()).then(|| {
        let rows = schema
            .dead_letters
            .into_iter()
            .map(|r| {
                view! {
                    <tr>
                        <td>{r.stage}</td>
                        <td>{r.reason}</td>
                        <td class="count">{r.count}</td>
                        <td class="value"><code>{r.example_raw}</code></td>
                    </tr>
                }
            })
            .collect_view();
        view! {
            <h4>"Why records were refused"</h4>
            <table class="dead-letters" data-testid="dead-letter-reasons">
                <thead>
                    <tr><th>"Stage"</th><th>"Rule broken"</th><th>"Count"</th><th>"Newest record"</th></tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        }
    });
    view! {
        <p class="muted">
            {summary}
            " Kafka itself stores bytes: the shape below is read off the records, so a field that is missing in some is optional, and a field with two types is a contract someone broke."
        </p>
        <table class="schema" data-testid="schema-fields">
                <thead>
                    <tr><th>"Field"</th><th>"Types seen"</th><th>"Present"</th><th>"Nulls"</th><th>"Example"</th></tr>
                </thead>
                <tbody>{fields}</tbody>
        </table>
        {letters}
    }
}
