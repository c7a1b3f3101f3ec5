//! Who is looking: the operator, who may change the pipeline, or a viewer on the read-only link.
//! The server decides (its access guard puts the role in the request) and refuses a viewer's
//! changes; the page only mirrors it, so its controls are disabled rather than failing on click.

use leptos::prelude::*;

use crate::api::Role;

/// The role this page was rendered for. On the server it comes from the request; in the browser
/// from `<html data-role>`, which the server wrote, so hydration sees the same value.
pub fn page_role() -> Role {
    #[cfg(feature = "ssr")]
    {
        use_context::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Role>().copied())
            .unwrap_or_default()
    }
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        web_sys::window()
            .and_then(|window| window.document())
            .and_then(|document| document.document_element())
            .and_then(|html| html.get_attribute("data-role"))
            .map_or(Role::Operator, |name| Role::from_name(&name))
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        Role::Operator
    }
}

/// Puts the page's role in context for every cell.
pub fn provide() -> Role {
    let role = page_role();
    provide_context(role);
    role
}

/// Whether this page may only watch.
pub fn read_only() -> bool {
    use_context::<Role>() == Some(Role::Viewer)
}

/// Controls that change the pipeline: disabled on a viewer's page. A `<fieldset>` disables every
/// button and input inside it; `display: contents` (style/main.css) keeps the layout as it was.
///
/// `TypedChildren`, not `Children`: `Children` type-erases into an `AnyView`, which compiles an
/// extra (async) hydration path for everything inside into the wasm.
#[component]
pub fn Controls<C: IntoView + 'static>(children: TypedChildren<C>) -> impl IntoView {
    let children = children.into_inner();
    view! {
        <fieldset class="control-set" disabled=read_only()>
            {children()}
        </fieldset>
    }
}
