//! The pipeline strip above the cells: every stage left to right, coloured by whether it keeps up,
//! and the bottleneck — the front-most stage that falls behind — marked, with a sentence saying
//! why (`crate::health`).

use leptos::prelude::*;

use crate::health::pipeline_health;
use crate::live::Live;

#[component]
pub fn PipelineStrip() -> impl IntoView {
    let live = Live::use_context();
    let health = Memo::new(move |_| {
        live.snapshot
            .get()
            .map(|s| pipeline_health(&s))
            .unwrap_or_default()
    });
    let stages = move || {
        let health = health.get();
        let bottleneck = health.bottleneck.as_ref().map(|(i, _)| *i);
        health
            .stages
            .into_iter()
            .enumerate()
            .map(|(i, stage)| {
                let marked = bottleneck == Some(i);
                view! {
                    <li
                        class=format!("strip-stage strip-{}", stage.health.class())
                        class:bottleneck=marked
                        data-stage=stage.id
                        title=stage.detail.clone()
                    >
                        <span class="strip-label">{stage.label}</span>
                        <span class="strip-health">{stage.health.as_str()}</span>
                        {marked.then(|| view! { <span class="strip-mark">"bottleneck"</span> })}
                    </li>
                }
            })
            .collect_view()
    };
    let why = move || health.get().bottleneck.map(|(_, why)| why);
    view! {
        <nav class="pipeline-strip" aria-label="Pipeline health" data-testid="pipeline-strip">
            <ol>{stages}</ol>
            <p class="strip-why" data-testid="bottleneck-why">{why}</p>
        </nav>
    }
}
