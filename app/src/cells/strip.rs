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
    // Each stage's share of time waiting on what comes after it (its loop's own measure).
    let pressed = move |id: &str| {
        live.snapshot.with(|s| {
            s.as_ref()
                .and_then(|s| s.pipeline.stage(id))
                .and_then(|s| s.load.as_ref())
                .map(|l| l.backpressure_share())
        })
    };
    let stages = move || {
        let health = health.get();
        let bottleneck = health.bottleneck.as_ref().map(|(i, _)| *i);
        health
            .stages
            .into_iter()
            .enumerate()
            .map(|(i, stage)| {
                let marked = bottleneck == Some(i);
                // Shaded by back-pressure: the darker, the more of its time it waits downstream.
                let share = pressed(stage.id).unwrap_or(0.0);
                let shade = format!("--bp:{:.0}%", share * 40.0);
                view! {
                    <li
                        class=format!("strip-stage strip-{}", stage.health.class())
                        class:bottleneck=marked
                        data-stage=stage.id
                        style=shade
                        title=stage.detail.clone()
                    >
                        <span class="strip-label">{stage.label}</span>
                        <span class="strip-health">{stage.health.as_str()}</span>
                        {(share >= 0.2).then(|| view! {
                            <span class="strip-bp">{format!("{:.0} % waiting downstream", share * 100.0)}</span>
                        })}
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
