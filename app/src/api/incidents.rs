//! Incidents: seeded, replayable troubles a learner diagnoses and fixes (`/api/incidents`).

use serde::{Deserialize, Serialize};

/// One incident of the catalogue, as the list shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct IncidentSummary {
    pub id: String,
    pub title: String,
    /// The cell whose views tell the story (1-based, as numbered on the page).
    pub cell: u8,
    /// What the learner sees when it starts, in one or two sentences.
    pub symptom: String,
}

/// One figure of the before / now / Δ table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct IncidentFigure {
    pub name: String,
    /// When the trouble began: the same for the same seed.
    pub before: i64,
    /// From the latest snapshot; `None` until the trouble runs.
    pub now: Option<i64>,
}

impl IncidentFigure {
    pub fn delta(&self) -> Option<i64> {
        self.now.map(|now| now - self.before)
    }
}

/// A diagnosis question, answered with one of its choices and checked against live state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct IncidentQuestion {
    pub text: String,
    pub choices: Vec<String>,
    /// Whether the latest answer was right (`None`: not answered yet).
    pub answered_right: Option<bool>,
}

/// Where the running incident stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IncidentPhase {
    /// Stages stopped, the seeded records being written.
    #[default]
    SettingUp,
    /// The trouble runs: diagnose and fix it.
    Running,
    Solved,
    /// The set-up failed (see `error`).
    Failed,
}

/// The incident being worked on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ActiveIncident {
    pub id: String,
    pub title: String,
    pub seed: u64,
    pub symptom: String,
    pub phase: IncidentPhase,
    pub error: Option<String>,
    pub started_at: i64,
    pub figures: Vec<IncidentFigure>,
    /// The hints revealed so far, in order …
    pub hints: Vec<String>,
    /// … of this many.
    pub hints_total: usize,
    pub question: Option<IncidentQuestion>,
    /// Parts of the fix seen so far, of `parts` (e.g. "the workers own every partition", then
    /// "the lag is back down").
    pub reached: usize,
    pub parts: usize,
    pub solved_at: Option<i64>,
    /// What happened, shown once solved.
    pub write_up: Option<String>,
}

/// `GET /api/incidents`: the catalogue and the incident being worked on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct IncidentsView {
    pub incidents: Vec<IncidentSummary>,
    pub active: Option<ActiveIncident>,
}

/// Body of `POST /api/incidents/{id}/start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IncidentStart {
    /// The same seed gives the same incident (records, keys, event times, before-figures).
    #[serde(default = "default_incident_seed")]
    pub seed: u64,
}

fn default_incident_seed() -> u64 {
    17
}

/// Body of `POST /api/incidents/answer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct IncidentAnswer {
    pub choice: String,
}
