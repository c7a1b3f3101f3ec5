//! Cells whose browser code is not in the page's first wasm (issue 13, page weight).
//!
//! The server renders a deferred cell in full, inside `<div class="deferred-cell">`, so the page
//! looks the same as before. In the browser the notebook hydrates without the cells' code: their
//! components live in a separate wasm module (the `deferred_cells` split points below, cut out of
//! the wasm by `scripts/site`), which is fetched once the page has hydrated; each cell's
//! `<section>` is then hydrated in place, like a Leptos island, under the notebook's reactive
//! owner (so the cell reads the same `Live` feed and session contexts). The notebook's controls stay
//! disabled until every deferred cell has hydrated ([`Pending`]).
//!
//! One module for all the deferred cells, not one per cell: they are all fetched at once anyway,
//! and one module per cell made 7 modules plus 50 shared chunks that weighed 121 KB more gzipped
//! in total (code the optimiser can no longer inline or merge across modules).

use leptos::prelude::*;

/// The cells loaded after the page hydrates: every cell after the first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DeferredCell {
    Kafka,
    Sentiment,
    Aggregate,
    Search,
    Lab,
    Trace,
    Incidents,
}

/// How many deferred cells have not hydrated yet: their buttons do nothing until then, so the
/// notebook keeps its controls disabled while this is above zero.
#[derive(Clone, Copy)]
pub(super) struct Pending(RwSignal<usize>);

impl Pending {
    pub(super) fn provide() -> Self {
        let pending = Self(RwSignal::new(0));
        provide_context(pending);
        pending
    }

    pub(super) fn any(self) -> bool {
        self.0.get() > 0
    }
}

/// The server's side: the cell rendered in full, as HTML inside the wrapper the browser hydrates.
#[cfg(not(feature = "hydrate"))]
#[component]
pub(super) fn Deferred(cell: DeferredCell) -> impl IntoView {
    use super::{aggregate, incidents, kafka, lab, search, sentiment, trace};
    // Rendered under this component's owner, so the cell sees the notebook's contexts.
    let html = match cell {
        DeferredCell::Kafka => view! { <kafka::KafkaCell /> }.to_html(),
        DeferredCell::Sentiment => view! { <sentiment::SentimentCell /> }.to_html(),
        DeferredCell::Aggregate => view! { <aggregate::AggregateCell /> }.to_html(),
        DeferredCell::Search => view! { <search::SearchCell /> }.to_html(),
        DeferredCell::Lab => view! { <lab::LabCell /> }.to_html(),
        DeferredCell::Trace => view! { <trace::TraceCell /> }.to_html(),
        DeferredCell::Incidents => view! { <incidents::IncidentsCell /> }.to_html(),
    };
    view! { <div class="deferred-cell" inner_html=html></div> }
}

/// The browser's side: hydration leaves the server's HTML of the cell as it is (an `inner_html`
/// is not rewritten when hydrating), then, once the page has hydrated, the deferred cells' wasm
/// module is fetched and hydrates the cell's `<section>`. If it does not load, the error is
/// logged and the cell stays as the server drew it.
#[cfg(feature = "hydrate")]
#[component]
pub(super) fn Deferred(cell: DeferredCell) -> impl IntoView {
    use leptos::html::Div;
    use leptos::reactive::owner::Owner;

    let pending = expect_context::<Pending>();
    pending.0.update(|n| *n += 1);
    let wrapper = NodeRef::<Div>::new();
    let owner = Owner::current().unwrap_or_default();
    // Effects run after hydration, when the wrapper's node is known.
    Effect::new(move |_| {
        let Some(wrapper) = wrapper.get() else {
            return;
        };
        let owner = owner.clone();
        leptos::task::spawn_local(async move {
            match wrapper.first_element_child() {
                Some(section) => {
                    let hydrated = owner.with(|| {
                        leptos::reactive::computed::ScopedFuture::new(client::hydrate(
                            cell, section,
                        ))
                    });
                    if let Err(error) = hydrated.await {
                        leptos::logging::error!("cell {cell:?}: its code did not load: {error}");
                    }
                }
                None => leptos::logging::error!("cell {cell:?}: the server sent no HTML"),
            }
            pending.0.update(|n| *n = n.saturating_sub(1));
        });
    });
    view! { <div class="deferred-cell" node_ref=wrapper inner_html=""></div> }
}

/// The split points: the functions below, and the code only they reach (the cells' components,
/// views and API types), go into one wasm module; the first call fetches it, later calls wait for
/// the same fetch.
#[cfg(feature = "hydrate")]
mod client {
    use leptos::prelude::*;
    use leptos::tachys::hydration::Cursor;
    use leptos::tachys::view::{Position, PositionState, RenderHtml};
    use leptos::wasm_split::{SplitLoaderError, wasm_split};
    use web_sys::Element;

    use super::super::{aggregate, incidents, kafka, lab, search, sentiment, trace};
    use super::DeferredCell;

    pub(super) async fn hydrate(
        cell: DeferredCell,
        section: Element,
    ) -> Result<(), SplitLoaderError> {
        match cell {
            DeferredCell::Kafka => kafka_cell(section).await,
            DeferredCell::Sentiment => sentiment_cell(section).await,
            DeferredCell::Aggregate => aggregate_cell(section).await,
            DeferredCell::Search => search_cell(section).await,
            DeferredCell::Lab => lab_cell(section).await,
            DeferredCell::Trace => trace_cell(section).await,
            DeferredCell::Incidents => incidents_cell(section).await,
        }
    }

    /// Hydrates `section` (the cell's root element, as the server rendered it) with `view`. The
    /// view's state is kept by the current owner (the notebook's), which lives as long as the page.
    fn hydrate_section(section: Element, view: impl IntoView + 'static) {
        let cursor = Cursor::new(section);
        let position = PositionState::new(Position::Current);
        let state = view.into_view().hydrate::<true>(&cursor, &position);
        StoredValue::new_local(state);
    }

    #[wasm_split(deferred_cells, wasm_split_path = ::leptos::wasm_split, fallible)]
    fn kafka_cell(section: Element) -> Result<(), SplitLoaderError> {
        hydrate_section(section, view! { <kafka::KafkaCell /> });
        Ok(())
    }

    #[wasm_split(deferred_cells, wasm_split_path = ::leptos::wasm_split, fallible)]
    fn sentiment_cell(section: Element) -> Result<(), SplitLoaderError> {
        hydrate_section(section, view! { <sentiment::SentimentCell /> });
        Ok(())
    }

    #[wasm_split(deferred_cells, wasm_split_path = ::leptos::wasm_split, fallible)]
    fn aggregate_cell(section: Element) -> Result<(), SplitLoaderError> {
        hydrate_section(section, view! { <aggregate::AggregateCell /> });
        Ok(())
    }

    #[wasm_split(deferred_cells, wasm_split_path = ::leptos::wasm_split, fallible)]
    fn search_cell(section: Element) -> Result<(), SplitLoaderError> {
        hydrate_section(section, view! { <search::SearchCell /> });
        Ok(())
    }

    #[wasm_split(deferred_cells, wasm_split_path = ::leptos::wasm_split, fallible)]
    fn lab_cell(section: Element) -> Result<(), SplitLoaderError> {
        hydrate_section(section, view! { <lab::LabCell /> });
        Ok(())
    }

    #[wasm_split(deferred_cells, wasm_split_path = ::leptos::wasm_split, fallible)]
    fn trace_cell(section: Element) -> Result<(), SplitLoaderError> {
        hydrate_section(section, view! { <trace::TraceCell /> });
        Ok(())
    }

    #[wasm_split(deferred_cells, wasm_split_path = ::leptos::wasm_split, fallible)]
    fn incidents_cell(section: Element) -> Result<(), SplitLoaderError> {
        hydrate_section(section, view! { <incidents::IncidentsCell /> });
        Ok(())
    }
}
