//! The pipeline's health at a glance, read off a snapshot: each stage left to right with whether
//! it keeps up, and the front-most stage that falls behind marked as the bottleneck, with why.
//! A consumer stage falls behind when its group's lag grows (it reads slower than its input is
//! written); the first such stage in the flow is where the pipeline is held up — the stages after
//! it only see less input — as Flink's and RisingWave's UIs mark the front-most back-pressured
//! operator.

use crate::api::{GroupInfo, Snapshot, StageState, StageStatus};
use crate::ops::LagTrend;

/// How one stage is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Stopped,
    Paused,
    Failed,
    /// Running, nothing waiting for it.
    KeepingUp,
    /// Running and behind, the lag not growing (catching up, or steady).
    Behind,
    /// Running and its lag grows: it is slower than its input.
    FallingBehind,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Stopped => "stopped",
            Health::Paused => "paused",
            Health::Failed => "failed",
            Health::KeepingUp => "keeping up",
            Health::Behind => "behind",
            Health::FallingBehind => "falling behind",
        }
    }

    /// The CSS class suffix.
    pub fn class(self) -> &'static str {
        match self {
            Health::Stopped => "stopped",
            Health::Paused => "paused",
            Health::Failed => "failed",
            Health::KeepingUp => "ok",
            Health::Behind => "behind",
            Health::FallingBehind => "falling",
        }
    }
}

/// One stage in the strip.
#[derive(Debug, Clone, PartialEq)]
pub struct StageHealth {
    pub id: &'static str,
    pub label: &'static str,
    pub health: Health,
    /// "3,200 behind (12 s), growing", or the failure.
    pub detail: String,
}

/// The strip: the stages in flow order, and the bottleneck's index with the sentence saying why.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PipelineHealth {
    pub stages: Vec<StageHealth>,
    pub bottleneck: Option<(usize, String)>,
}

/// Seconds behind under which a growing lag is a stage warming up or a batch in flight, not a
/// stage slower than its input: at startup a group's lag rises from 0 to its steady level.
pub const BOTTLENECK_SECS: f64 = 5.0;

/// The stages in the order data flows, with the group each consumer stage reads in by default.
const FLOW: [(&str, &str, Option<&str>); 5] = [
    ("streamer", "socket streamer", None),
    ("producer", "producer", None),
    ("sentiment", "sentiment", Some("pipebook-sentiment")),
    ("aggregate", "windows", Some("pipebook-aggregate")),
    ("indexer", "search index", Some("pipebook-indexer")),
];

pub fn pipeline_health(snapshot: &Snapshot) -> PipelineHealth {
    let stages: Vec<StageHealth> = FLOW
        .iter()
        .map(|&(id, label, default_group)| {
            let status = snapshot.pipeline.stage(id);
            let group = default_group.and_then(|default| {
                let name = status
                    .and_then(|s| s.config.as_ref())
                    .and_then(|c| c.get("group"))
                    .and_then(|g| g.as_str())
                    .unwrap_or(default);
                snapshot.groups.iter().find(|g| g.group == name)
            });
            let (health, detail) = stage_health(status, group);
            StageHealth {
                id,
                label,
                health,
                detail,
            }
        })
        .collect();
    let bottleneck = stages
        .iter()
        .position(|s| s.health == Health::FallingBehind)
        .map(|i| {
            let stage = &stages[i];
            let why = format!(
                "Bottleneck: {} — its consumer group is {}: it reads slower than its input is written, so records queue up in Kafka in front of it, and the stages after it see less input.",
                stage.label, stage.detail
            );
            (i, why)
        });
    PipelineHealth { stages, bottleneck }
}

fn stage_health(status: Option<&StageStatus>, group: Option<&GroupInfo>) -> (Health, String) {
    let Some(status) = status else {
        return (Health::Stopped, String::new());
    };
    match status.state {
        StageState::Stopped => return (Health::Stopped, String::new()),
        StageState::Failed => {
            return (
                Health::Failed,
                status.last_error.clone().unwrap_or_default(),
            );
        }
        StageState::Paused => return (Health::Paused, String::new()),
        StageState::Running => {}
    }
    let Some(group) = group else {
        return (Health::KeepingUp, String::new());
    };
    let lag = group.lag.records.max(group.total_lag());
    if lag <= 0 {
        return (Health::KeepingUp, "caught up".to_owned());
    }
    let behind = format!(
        "{} behind ({:.0} s)",
        crate::cells::thousands(lag),
        group.lag.seconds
    );
    match group.lag.trend {
        LagTrend::Growing if group.lag.seconds >= BOTTLENECK_SECS => {
            (Health::FallingBehind, format!("{behind}, growing"))
        }
        LagTrend::Growing => (Health::Behind, format!("{behind}, growing")),
        LagTrend::Shrinking => (Health::Behind, format!("{behind}, catching up")),
        LagTrend::Steady => (Health::Behind, behind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{GroupPartition, PipelineStatus};
    use crate::ops::GroupLag;

    fn running(id: &str) -> StageStatus {
        StageStatus {
            id: id.to_owned(),
            state: StageState::Running,
            counters: Default::default(),
            detail: None,
            last_error: None,
            config: None,
            load: None,
            rates: None,
            members: Vec::new(),
        }
    }

    fn group(name: &str, lag: i64, trend: LagTrend) -> GroupInfo {
        GroupInfo {
            group: name.to_owned(),
            state: "Stable".into(),
            members: vec![],
            partitions: vec![GroupPartition {
                topic: "t".into(),
                partition: 0,
                committed: Some(0),
                high: lag,
                lag,
                lag_seconds: Some(1.0),
            }],
            lag: GroupLag {
                records: lag,
                seconds: 30.0,
                trend,
                ..Default::default()
            },
            state_history: vec![],
        }
    }

    fn snapshot(groups: Vec<GroupInfo>) -> Snapshot {
        Snapshot {
            pipeline: PipelineStatus {
                stages: ["streamer", "producer", "sentiment", "aggregate", "indexer"]
                    .map(running)
                    .to_vec(),
                ..Default::default()
            },
            groups,
            ..Default::default()
        }
    }

    #[test]
    fn the_front_most_stage_whose_lag_grows_is_the_bottleneck() {
        let health = pipeline_health(&snapshot(vec![
            group("pipebook-sentiment", 0, LagTrend::Steady),
            group("pipebook-aggregate", 500, LagTrend::Growing),
            group("pipebook-indexer", 9_000, LagTrend::Growing),
        ]));
        let states: Vec<Health> = health.stages.iter().map(|s| s.health).collect();
        assert_eq!(
            states,
            [
                Health::KeepingUp,
                Health::KeepingUp,
                Health::KeepingUp,
                Health::FallingBehind,
                Health::FallingBehind
            ]
        );
        let (at, why) = health.bottleneck.expect("a bottleneck");
        assert_eq!(health.stages[at].id, "aggregate");
        assert!(why.contains("500 behind"), "{why}");
    }

    #[test]
    fn a_lag_growing_by_a_few_seconds_is_not_yet_a_bottleneck() {
        let mut warming = group("pipebook-indexer", 300, LagTrend::Growing);
        warming.lag.seconds = 2.0;
        let health = pipeline_health(&snapshot(vec![warming]));
        assert_eq!(health.stages[4].health, Health::Behind);
        assert_eq!(health.bottleneck, None);
    }

    #[test]
    fn lag_that_shrinks_is_behind_not_a_bottleneck() {
        let health = pipeline_health(&snapshot(vec![group(
            "pipebook-indexer",
            4_000,
            LagTrend::Shrinking,
        )]));
        assert_eq!(health.stages[4].health, Health::Behind);
        assert!(health.stages[4].detail.ends_with("catching up"));
        assert_eq!(health.bottleneck, None);
    }

    #[test]
    fn a_stage_reading_another_group_is_judged_by_that_group() {
        let mut s = snapshot(vec![
            group("pipebook-sentiment", 0, LagTrend::Steady),
            group("mine", 70, LagTrend::Growing),
        ]);
        s.pipeline.stages[2].config = Some(serde_json::json!({"group": "mine"}));
        assert_eq!(pipeline_health(&s).stages[2].health, Health::FallingBehind);
    }
}
