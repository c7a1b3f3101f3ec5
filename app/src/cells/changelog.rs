//! Cell 4 · the changelog of `reviews.aggregates`: the newest results the windows stage wrote,
//! each marked as Flink's SQL client marks them — `+I` a window's first result, `−U` / `+U` an
//! update that replaces an earlier one (update mode), a plain row for complete mode (the whole
//! table again every trigger) — so the three output modes are seen to differ.

use leptos::prelude::*;

use super::ErrorLine;
use crate::api::{Message, TOPIC_AGGREGATES};
use crate::live::Live;
use crate::requests::Read;

/// Results read at once: the newest ones.
const READ: i64 = 30;

/// One line of the changelog, read off a result's JSON.
#[derive(Debug, Clone, PartialEq)]
struct Change {
    offset: i64,
    marker: &'static str,
    window: String,
    counts: String,
    mode: String,
}

#[component]
pub fn ChangelogView() -> impl IntoView {
    let live = Live::use_context();
    let asked = RwSignal::new(None::<String>);
    let results = Read::<Vec<Message>>::new(move || asked.get());
    let read = move |_| {
        let high = live
            .snapshot
            .get_untracked()
            .and_then(|s| s.topic(TOPIC_AGGREGATES).map(|t| t.high_sum()))
            .unwrap_or(0);
        asked.set(Some(format!(
            "/api/kafka/topics/{TOPIC_AGGREGATES}/messages?partition=0&offset={}&limit={READ}",
            (high - READ).max(0)
        )));
    };
    view! {
        <p class="muted">
            "Each result the job writes to " <code>"reviews.aggregates"</code>
            " is one change to a table of windows. " <strong>"append"</strong>
            ": one final " <code>"+I"</code> " per window, once the watermark closes it. "
            <strong>"update"</strong> ": " <code>"+I"</code> " for a window's first result, then "
            <code>"−U"</code> " (the old result withdrawn) and " <code>"+U"</code>
            " (the new one) each time it changes. " <strong>"complete"</strong>
            ": every window again every trigger, as plain rows."
        </p>
        <div class="buttons">
            <button class="btn" data-testid="changelog-read" on:click=read>
                "Read the newest 30 results"
            </button>
        </div>
        <ErrorLine error=results />
        <div class="changelog-box">
        <table class="messages changelog" data-testid="changelog">
            <thead>
                <tr><th>"Offset"</th><th>"Change"</th><th>"Window"</th><th>"Counts"</th><th>"Mode"</th></tr>
            </thead>
            <tbody>
                {move || {
                    results
                        .answer()
                        .unwrap_or_default()
                        .iter()
                        .rev()
                        .flat_map(changes)
                        .map(|c| {
                            view! {
                                <tr class=format!("change change-{}", marker_class(c.marker))>
                                    <td class="offset">{c.offset}</td>
                                    <td class="marker"><code>{c.marker}</code></td>
                                    <td>{c.window}</td>
                                    <td>{c.counts}</td>
                                    <td class="muted">{c.mode}</td>
                                </tr>
                            }
                        })
                        .collect_view()
                }}
            </tbody>
        </table>
        </div>
    }
}

fn marker_class(marker: &str) -> &'static str {
    match marker {
        "+I" => "insert",
        "−U" | "−D" => "retract",
        "+U" => "update",
        _ => "row",
    }
}

/// The changelog lines of one result, newest first: `+U` comes after its `−U`, so it is listed
/// above it.
fn changes(message: &Message) -> Vec<Change> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&message.value) else {
        return Vec::new();
    };
    let text = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
    let window = {
        let (start, end) = (value["start"].as_i64(), value["end"].as_i64());
        let span = match (start, end) {
            (Some(start), Some(end)) => {
                format!(
                    "{}–{}",
                    super::aggregate::clock(start),
                    super::aggregate::clock(end)
                )
            }
            _ => String::new(),
        };
        let key = value["key"]
            .as_str()
            .map(|k| format!(" {k}"))
            .unwrap_or_default();
        let partition = value["partition"]
            .as_i64()
            .map(|p| format!(" · p{p}"))
            .unwrap_or_default();
        format!("{} {span}{key}{partition}", text("kind"))
    };
    let line = |marker, counts: &serde_json::Value| Change {
        offset: message.offset,
        marker,
        window: window.clone(),
        counts: counts_text(counts),
        mode: text("mode"),
    };
    // Results written before the marker existed count as rows.
    match text("change").as_str() {
        "+I" => vec![line("+I", &value["counts"])],
        // A session merged into another: its result is withdrawn.
        "-D" => vec![line("−D", &value["counts"])],
        "+U" => vec![
            line("+U", &value["counts"]),
            line("−U", &value["previous"]["counts"]),
        ],
        _ => vec![line("row", &value["counts"])],
    }
}

/// `{"POSITIVE": 3, "NEGATIVE": 1, "NEUTRAL": 0}` → "4 · +3 −1 ~0".
fn counts_text(counts: &serde_json::Value) -> String {
    let of = |k: &str| counts[k].as_u64().unwrap_or(0);
    let (p, n, u) = (of("POSITIVE"), of("NEGATIVE"), of("NEUTRAL"));
    format!("{} · +{p} −{n} ~{u}", p + n + u)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(offset: i64, value: serde_json::Value) -> Message {
        Message {
            partition: 0,
            offset,
            timestamp: None,
            key: None,
            value: value.to_string(),
            headers: Default::default(),
        }
    }

    #[test]
    fn an_update_is_a_retraction_and_an_insertion() {
        let counts = |p: u64| serde_json::json!({"POSITIVE": p, "NEGATIVE": 1, "NEUTRAL": 0});
        let update = message(
            7,
            serde_json::json!({"kind": "tumbling", "start": 0, "end": 60_000, "key": null,
                "counts": counts(3), "mode": "update", "change": "+U", "partition": 1,
                "previous": {"counts": counts(2), "total": 3}}),
        );
        let lines = changes(&update);
        let markers: Vec<_> = lines
            .iter()
            .map(|c| (c.marker, c.counts.as_str()))
            .collect();
        assert_eq!(markers, [("+U", "4 · +3 −1 ~0"), ("−U", "3 · +2 −1 ~0")]);
        assert_eq!(
            lines[0].window,
            "tumbling 01-01 00:00:00–01-01 00:01:00 · p1"
        );

        let insert = message(
            8,
            serde_json::json!({"kind": "tumbling", "counts": counts(1), "change": "+I"}),
        );
        assert_eq!(changes(&insert)[0].marker, "+I");
        let row = message(
            9,
            serde_json::json!({"kind": "tumbling", "counts": counts(1), "mode": "complete", "change": "row"}),
        );
        assert_eq!(changes(&row)[0].marker, "row");
        let withdrawn = message(
            11,
            serde_json::json!({"kind": "session", "key": "b1", "counts": counts(2), "change": "-D"}),
        );
        assert_eq!(changes(&withdrawn)[0].marker, "−D");
        assert_eq!(marker_class(changes(&withdrawn)[0].marker), "retract");
        assert!(
            changes(&message(10, serde_json::json!(null)))
                .iter()
                .all(|c| c.marker == "row")
        );
    }
}
