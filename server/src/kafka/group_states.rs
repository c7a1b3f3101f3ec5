//! The states each consumer group went through, as the broker's DescribeGroups reported them
//! (cell 2: "Stable ← CompletingRebalance ← PreparingRebalance ← Stable"). The once-a-second
//! sample records what it sees; a rebalance on the embedded broker can be over within a second,
//! so after a change that makes one (a worker added or killed, a stage started, stopped, crashed
//! or restarted — by a button, the lesson or an incident — or a worker process joining or
//! leaving) the engine's one watch task (`Inspector::watch_group_states`) also describes the
//! groups every [`WATCH_STEP`] for [`WATCH_FOR`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use app::api::GroupStateChange;

use crate::sync::LockExt;

/// State changes kept per group (the newest).
pub const KEEP: usize = 8;
/// Groups with a history; the least recently changed are forgotten beyond it.
const MAX_GROUPS: usize = 64;
pub const WATCH_STEP: Duration = Duration::from_millis(100);
pub const WATCH_FOR: Duration = Duration::from_secs(20);

#[derive(Default)]
pub struct StateLog {
    groups: Mutex<BTreeMap<String, VecDeque<GroupStateChange>>>,
}

impl StateLog {
    /// Notes that `group` was in `state` at `at` (ms); only a change is kept.
    pub fn record(&self, group: &str, state: &str, at: i64) {
        let mut groups = self.groups.lock_or_recover();
        if !groups.contains_key(group) && groups.len() >= MAX_GROUPS {
            let stalest = groups
                .iter()
                .min_by_key(|(_, changes)| changes.back().map_or(i64::MIN, |c| c.at))
                .map(|(name, _)| name.clone());
            if let Some(name) = stalest {
                groups.remove(&name);
            }
        }
        let changes = groups.entry(group.to_owned()).or_default();
        if changes.back().is_some_and(|last| last.state == state) {
            return;
        }
        if changes.len() >= KEEP {
            changes.pop_front();
        }
        changes.push_back(GroupStateChange {
            at,
            state: state.to_owned(),
        });
    }

    /// The group's changes, oldest first.
    pub fn history(&self, group: &str) -> Vec<GroupStateChange> {
        self.groups
            .lock_or_recover()
            .get(group)
            .map(|changes| changes.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states(log: &StateLog, group: &str) -> Vec<String> {
        log.history(group).into_iter().map(|c| c.state).collect()
    }

    #[test]
    fn only_changes_are_kept_and_only_the_newest() {
        let log = StateLog::default();
        for (at, state) in [
            (1, "Stable"),
            (2, "Stable"),
            (3, "PreparingRebalance"),
            (4, "CompletingRebalance"),
            (5, "Stable"),
        ] {
            log.record("g", state, at);
        }
        assert_eq!(
            states(&log, "g"),
            [
                "Stable",
                "PreparingRebalance",
                "CompletingRebalance",
                "Stable"
            ]
        );
        assert_eq!(log.history("g")[1].at, 3);
        for at in 10..30 {
            log.record("g", if at % 2 == 0 { "Empty" } else { "Stable" }, at);
        }
        assert_eq!(log.history("g").len(), KEEP);
        assert_eq!(log.history("g").last().map(|c| c.at), Some(29));
        assert!(log.history("other").is_empty());
    }

    #[test]
    fn the_number_of_groups_is_bounded() {
        let log = StateLog::default();
        for i in 0..(MAX_GROUPS as i64 + 10) {
            log.record(&format!("g{i}"), "Empty", i);
        }
        assert!(log.history("g0").is_empty(), "the stalest is forgotten");
        assert_eq!(log.history(&format!("g{}", MAX_GROUPS + 9)).len(), 1);
    }
}
