//! Cell 2's consumer groups as an operator reads them: lag in records and in seconds with its
//! trend and time to catch up, sortable by lag (figures from the server's lag sampler); and
//! the offset reset form (`POST /api/kafka/groups/{group}/reset`), dry run first.

use leptos::prelude::*;

use super::{ErrorLine, thousands};
use crate::api::{GroupInfo, GroupMember, group_state_explanation};
use crate::live::Live;
use crate::ops::{LagTrend, ResetOutcome};
use crate::requests::Posts;

/// How the group table is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Most records behind first.
    Records,
    /// Most seconds behind first.
    Seconds,
    Name,
}

/// The groups in the chosen order (ties by name, so the table does not jump).
pub fn sort_groups(mut groups: Vec<GroupInfo>, by: SortBy) -> Vec<GroupInfo> {
    groups.sort_by(|a, b| {
        let first = match by {
            SortBy::Records => b.total_lag().cmp(&a.total_lag()),
            SortBy::Seconds => b.lag.seconds.total_cmp(&a.lag.seconds),
            SortBy::Name => std::cmp::Ordering::Equal,
        };
        first.then_with(|| a.group.cmp(&b.group))
    });
    groups
}

/// "12.5 s", "3 min 20 s", "1 h 05 min".
pub fn duration_text(seconds: f64) -> String {
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let whole = seconds.round() as u64;
    if whole < 3600 {
        return format!("{} min {:02} s", whole / 60, whole % 60);
    }
    format!("{} h {:02} min", whole / 3600, (whole % 3600) / 60)
}

/// "was: Stable → PreparingRebalance → CompletingRebalance": the states before the current one,
/// oldest first (the last four).
fn state_history_text(history: &[crate::api::GroupStateChange]) -> String {
    let Some((_, before)) = history.split_last() else {
        return String::new();
    };
    let shown = &before[before.len().saturating_sub(4)..];
    if shown.is_empty() {
        return String::new();
    }
    let states: Vec<&str> = shown.iter().map(|c| c.state.as_str()).collect();
    format!("before: {}", states.join(" → "))
}

fn trend_text(trend: LagTrend) -> &'static str {
    match trend {
        LagTrend::Growing => "↑ growing",
        LagTrend::Shrinking => "↓ shrinking",
        LagTrend::Steady => "→ steady",
    }
}

#[component]
pub fn GroupLagTable(groups: Signal<Vec<GroupInfo>>) -> impl IntoView {
    let sort = RwSignal::new(SortBy::Records);
    let sorted = Memo::new(move |_| sort_groups(groups.get(), sort.get()));
    let header = move |label: &'static str, by: SortBy| {
        view! {
            <th aria-sort=move || if sort.get() == by { "descending" } else { "none" }>
                <button class="sort" type="button" on:click=move |_| sort.set(by)>
                    {label}
                </button>
            </th>
        }
    };
    view! {
        <p class="explain">
            <em>"Lag"</em>
            " is how far a group is behind: in records (high watermark − committed offset) and in "
            <em>"seconds"</em>
            " (how old the next record it will read is; 0 when caught up). The server samples it every second and keeps an hour and a quarter of history."
        </p>
        <Show
            when=move || !groups.get().is_empty()
            fallback=|| view! { <p class="muted">"No consumer group yet: the sentiment stage will create one."</p> }
        >
            <table class="groups" data-testid="groups">
                <thead>
                    <tr>
                        {header("Group", SortBy::Name)}
                        <th>"State"</th>
                        <th>"Members"</th>
                        <th>"Partition"</th>
                        <th>"Committed"</th>
                        <th>"High"</th>
                        {header("Lag", SortBy::Records)}
                        {header("Lag (s)", SortBy::Seconds)}
                        <th>"Trend"</th>
                    </tr>
                </thead>
                <tbody>
                    {move || sorted.get().into_iter().map(group_rows).collect_view()}
                </tbody>
            </table>
        </Show>
    }
}

/// A group's summary row, then one row per partition.
fn group_rows(g: GroupInfo) -> impl IntoView {
    let catch_up = match g.lag.catch_up_secs {
        Some(secs) if secs <= 0.0 => "caught up".to_owned(),
        Some(secs) => format!("caught up in ~{}", duration_text(secs)),
        None if g.lag.records > 0 => "not catching up".to_owned(),
        None => String::new(),
    };
    let summary = view! {
        <tr class="group-row" data-group=g.group.clone()>
            <td><strong>{g.group.clone()}</strong></td>
            <td data-testid="group-state">
                {g.state.clone()}
                <div class="muted small">{group_state_explanation(&g.state)}</div>
                <div class="muted small state-history" data-testid="group-state-history">
                    {state_history_text(&g.state_history)}
                </div>
            </td>
            <td data-testid="group-members">{member_list(&g.members)}</td>
            <td class="muted">"all"</td>
            <td></td>
            <td></td>
            <td class="lag" data-testid="group-lag">{thousands(g.total_lag())}</td>
            <td class="lag-seconds" data-testid="group-lag-seconds">{duration_text(g.lag.seconds)}</td>
            <td class=format!("trend trend-{}", g.lag.trend.as_str())
                title=format!("consumes {:.0}/s, {:.0}/s appended", g.lag.consume_rate, g.lag.produce_rate)>
                {trend_text(g.lag.trend)} " " <span class="muted">{catch_up}</span>
            </td>
        </tr>
    };
    let partitions = g
        .partitions
        .into_iter()
        .map(|p| {
            view! {
                <tr class="partition-row">
                    <td></td>
                    <td></td>
                    <td></td>
                    <td>{format!("{}-{}", p.topic, p.partition)}</td>
                    <td>{p.committed.map_or("–".to_owned(), thousands)}</td>
                    <td>{thousands(p.high)}</td>
                    <td class="lag">{thousands(p.lag)}</td>
                    <td class="lag-seconds">{p.lag_seconds.map_or("–".to_owned(), duration_text)}</td>
                    <td></td>
                </tr>
            }
        })
        .collect_view();
    view! { {summary} {partitions} }
}

/// The reset form: a group, where to move it, dry run or execute, and the before → after table.
#[component]
pub fn OffsetReset(groups: Signal<Vec<GroupInfo>>) -> impl IntoView {
    let live = Live::use_context();
    let group = RwSignal::new(String::new());
    let to = RwSignal::new("earliest".to_owned());
    let value = RwSignal::new(String::new());
    // "A time" is minutes ago or a local date and time (to the second), not both.
    let at = RwSignal::new(String::new());
    let partitions = RwSignal::new(String::new());
    // A refused reset clears the last outcome: it no longer says where the offsets are.
    let posts = Posts::<ResetOutcome>::answered();
    let read_only = crate::session::read_only();
    let chosen_group = move || {
        let named = group.get();
        if named.is_empty() {
            groups
                .get()
                .first()
                .map(|g| g.group.clone())
                .unwrap_or_default()
        } else {
            named
        }
    };
    let send = move |dry_run: bool| {
        let now = live
            .snapshot
            .with_untracked(|s| s.as_ref().map_or(0, |s| s.at));
        let at_text = at.get_untracked();
        let at_ms = match at_text.trim() {
            "" => None,
            text => match super::tail::local_ms(text) {
                Some(ms) => Some(ms),
                None => return posts.refuse(format!("time: not a date and time: {text}")),
            },
        };
        let body = match reset_body(
            &to.get_untracked(),
            &value.get_untracked(),
            at_ms,
            &partitions.get_untracked(),
            dry_run,
            now,
        ) {
            Ok(body) => body,
            Err(message) => return posts.refuse(message),
        };
        posts.send(
            format!("/api/kafka/groups/{}/reset", encode(&chosen_group())),
            body,
        );
    };
    let value_label = move || match to.get().as_str() {
        "offset" => "Offset",
        "timestamp" => "Minutes ago",
        "shift" => "Shift by (±N)",
        _ => "—",
    };
    view! {
        <h3>"Reset a group's offsets"</h3>
        <p class="explain">
            "A group resumes from its " <em>"committed offsets"</em>
            ". Moving them back makes it read records again (duplicates downstream unless the sink absorbs them); moving them forward skips records. Kafka only allows it while the group has no members: stop its stage first. Try a dry run."
        </p>
        <form class="controls" data-testid="reset-form" on:submit=|ev| ev.prevent_default()>
            <label>
                "Group"
                <select name="reset-group" on:change=move |ev| group.set(event_target_value(&ev))>
                    {move || {
                        let current = chosen_group();
                        groups
                            .get()
                            .into_iter()
                            .map(|g| {
                                let selected = g.group == current;
                                view! { <option value=g.group.clone() selected=selected>{g.group.clone()}</option> }
                            })
                            .collect_view()
                    }}
                </select>
            </label>
            <label>
                "To"
                <select name="reset-to" prop:value=move || to.get() on:change=move |ev| to.set(event_target_value(&ev))>
                    <option value="earliest">"earliest"</option>
                    <option value="latest">"latest"</option>
                    <option value="offset">"an offset"</option>
                    <option value="timestamp">"a time"</option>
                    <option value="shift">"shift by ±N"</option>
                </select>
            </label>
            <label>
                {value_label}
                <input
                    type="number"
                    step="any"
                    name="reset-value"
                    bind:value=value
                    disabled=move || matches!(to.get().as_str(), "earliest" | "latest")
                />
            </label>
            <label>
                "or at (local time)"
                <input
                    type="datetime-local"
                    step="1"
                    name="reset-at"
                    bind:value=at
                    disabled=move || to.get() != "timestamp"
                />
            </label>
            <label>
                "Partitions"
                <input type="text" name="reset-partitions" placeholder="all" bind:value=partitions />
            </label>
            <div class="buttons">
                <button class="btn" type="button" data-testid="reset-dry-run"
                    disabled=move || posts.pending() || groups.get().is_empty()
                    on:click=move |_| send(true)>
                    "Dry run"
                </button>
                <button class="btn" data-primary type="button" data-testid="reset-execute"
                    disabled=move || read_only || posts.pending() || groups.get().is_empty()
                    on:click=move |_| send(false)>
                    "Reset"
                </button>
            </div>
        </form>
        <ErrorLine error=posts />
        {move || posts.answer().map(|o| view! { <ResetTable outcome=o /> })}
    }
}

#[component]
fn ResetTable(outcome: ResetOutcome) -> impl IntoView {
    let counts = format!(
        "{} to read again, {} skipped",
        thousands(outcome.reread),
        thousands(outcome.skipped)
    );
    let headline = if outcome.executed {
        format!("Reset {}: {counts}", outcome.group)
    } else {
        format!("Dry run for {}, nothing committed: {counts}", outcome.group)
    };
    view! {
        <p class="headline" data-testid="reset-headline">{headline}</p>
        <table class="reset" data-testid="reset-table">
            <thead>
                <tr>
                    <th>"Partition"</th>
                    <th>"Before → after"</th>
                    <th>"Re-read"</th>
                    <th>"Skipped"</th>
                </tr>
            </thead>
            <tbody>
                {outcome
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let before = p.before.map_or(format!("– ({})", thousands(p.low)), thousands);
                        view! {
                            <tr>
                                <td>{format!("{}-{}", p.topic, p.partition)}</td>
                                <td>{format!("{before} → {}", thousands(p.after))}</td>
                                <td>{thousands(p.reread)}</td>
                                <td>{thousands(p.skipped)}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

/// The request body for the form's values; `at_ms` is the local date and time field (already
/// read as ms since the epoch), `now_ms` the server's time (the live feed's) for "minutes ago".
/// The server checks the values again and names the field it refuses.
pub fn reset_body(
    to: &str,
    value: &str,
    at_ms: Option<i64>,
    partitions: &str,
    dry_run: bool,
    now_ms: i64,
) -> Result<serde_json::Value, String> {
    let mut body = serde_json::json!({"to": to, "dry_run": dry_run});
    let number = || {
        value
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("{}: a whole number, please", value_name(to)))
    };
    match to {
        "offset" => body["offset"] = number()?.into(),
        "shift" => body["shift"] = number()?.into(),
        "timestamp" => {
            body["timestamp_ms"] = match (value.trim(), at_ms) {
                (_, None) => {
                    // Fractions too: "0.5" is half a minute ago.
                    let minutes = value.trim().parse::<f64>().ok().filter(|m| m.is_finite());
                    let minutes =
                        minutes.ok_or_else(|| "minutes ago: a number, please".to_owned())?;
                    (now_ms - (minutes * 60_000.0) as i64).into()
                }
                ("", Some(at)) => at.into(),
                (_, Some(_)) => return Err("time: minutes ago or a time, not both".into()),
            };
        }
        _ => {}
    }
    let chosen: Result<Vec<i32>, String> = partitions
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<i32>()
                .map_err(|_| format!("partitions: {s:?} is not a partition number"))
        })
        .collect();
    let chosen = chosen?;
    if !chosen.is_empty() {
        body["partitions"] = chosen.into();
    }
    Ok(body)
}

fn value_name(to: &str) -> &'static str {
    match to {
        "offset" => "offset",
        "shift" => "shift",
        _ => "minutes ago",
    }
}

/// A group name in a URL path (group names may hold any printable character).
fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// "client-id (host): topic-0, topic-1" per member, as the broker reports them.
fn member_list(members: &[GroupMember]) -> String {
    if members.is_empty() {
        return "none".to_owned();
    }
    members
        .iter()
        .map(|m| {
            let who = if m.client_id.is_empty() {
                &m.member
            } else {
                &m.client_id
            };
            let host = if m.host.is_empty() {
                String::new()
            } else {
                format!(" ({})", m.host)
            };
            let assigned = if m.assignment.is_empty() {
                "nothing assigned".to_owned()
            } else {
                m.assignment.join(", ")
            };
            format!("{who}{host}: {assigned}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, lag: i64, seconds: f64) -> GroupInfo {
        GroupInfo {
            group: name.into(),
            state: "Empty".into(),
            members: vec![],
            partitions: vec![crate::api::GroupPartition {
                topic: "reviews".into(),
                partition: 0,
                committed: Some(0),
                high: lag,
                lag,
                lag_seconds: Some(seconds),
            }],
            lag: crate::ops::GroupLag {
                records: lag,
                seconds,
                ..Default::default()
            },
            state_history: Vec::new(),
        }
    }

    #[test]
    fn groups_sort_by_lag_in_records_or_seconds_then_name() {
        let groups = vec![
            group("b", 10, 50.0),
            group("a", 10, 1.0),
            group("c", 99, 2.0),
        ];
        let names = |by| {
            sort_groups(groups.clone(), by)
                .into_iter()
                .map(|g| g.group)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(SortBy::Records), ["c", "a", "b"]);
        assert_eq!(names(SortBy::Seconds), ["b", "c", "a"]);
        assert_eq!(names(SortBy::Name), ["a", "b", "c"]);
    }

    #[test]
    fn the_form_becomes_the_request_body() {
        let body = reset_body("timestamp", "10", None, "0, 2", false, 1_000_000).expect("body");
        assert_eq!(
            body,
            serde_json::json!({"to": "timestamp", "timestamp_ms": 400_000, "partitions": [0, 2], "dry_run": false})
        );
        let body = reset_body("timestamp", "0.5", None, "", true, 100_000).expect("body");
        assert_eq!(body["timestamp_ms"], 70_000);
        // A local date and time is sent as it is, whatever the clock says.
        let body = reset_body("timestamp", "", Some(1_234_567), "", true, 9_999_999).expect("body");
        assert_eq!(body["timestamp_ms"], 1_234_567);
        assert!(
            reset_body("timestamp", "3", Some(1), "", true, 0)
                .is_err_and(|e| e.ends_with("not both"))
        );
        let body = reset_body("earliest", "ignored", None, "", true, 0).expect("body");
        assert_eq!(body, serde_json::json!({"to": "earliest", "dry_run": true}));
        assert!(
            reset_body("shift", "-x", None, "", true, 0).is_err_and(|e| e.starts_with("shift"))
        );
        assert!(
            reset_body("latest", "", None, "1,a", true, 0)
                .is_err_and(|e| e.starts_with("partitions"))
        );
        assert_eq!(encode("pipebook sentiment/1"), "pipebook%20sentiment%2F1");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration_text(0.0), "0.0 s");
        assert_eq!(duration_text(12.46), "12.5 s");
        assert_eq!(duration_text(200.0), "3 min 20 s");
        assert_eq!(duration_text(3_900.0), "1 h 05 min");
    }
}
