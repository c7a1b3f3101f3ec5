//! The lesson's steps and the fault buttons.

use serde::{Deserialize, Serialize};

/// One "Try this" step of the lesson, as the notebook shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LessonStep {
    pub id: String,
    /// The cell the step belongs to (1-based, as numbered on the page).
    pub cell: u8,
    /// The streaming concepts the step makes visible.
    pub concepts: Vec<String>,
    /// What to do, in one sentence.
    pub task: String,
    /// Parts of the task done so far, of `parts` (e.g. "lag above 1,000" then "back to 0").
    pub reached: usize,
    pub parts: usize,
    /// When the step turned green, milliseconds since the Unix epoch.
    pub done_at: Option<i64>,
    /// The question the learner answers before doing the task (absent from older servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<StepPrediction>,
}

/// A multiple-choice prediction, and once the step is done, what the live state showed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StepPrediction {
    pub question: String,
    pub choices: Vec<String>,
    /// The learner's answer (an index into `choices`), if any.
    pub choice: Option<usize>,
    /// Set once the step is done and its figures were read.
    pub outcome: Option<Outcome>,
}

impl StepPrediction {
    /// Whether the answer matched what happened; None while unanswered or not yet observed.
    pub fn held(&self) -> Option<bool> {
        Some(self.choice? == self.outcome.as_ref()?.happened)
    }
}

/// What really happened in a step, read from the live state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Outcome {
    /// The choice the figures show happened.
    pub happened: usize,
    pub figures: Vec<FigureReading>,
    /// Three sentences on why.
    pub explanation: String,
}

/// One figure of the live state: when the prediction was made (or the step was first
/// watched), the highest seen while the task ran, and when the step was done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FigureReading {
    pub label: String,
    pub before: i64,
    pub peak: i64,
    pub after: i64,
}

/// Body of `POST /api/lesson/steps/{id}/prediction`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictionRequest {
    pub choice: usize,
}

impl LessonStep {
    pub fn done(&self) -> bool {
        self.done_at.is_some()
    }
}

/// Progress through the lesson; the server keeps it, so a reload shows the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LessonView {
    pub steps: Vec<LessonStep>,
}

impl LessonView {
    pub fn done(&self) -> usize {
        self.steps.iter().filter(|step| step.done()).count()
    }

    /// Predictions that held, of those answered whose outcome is known.
    pub fn predictions_right(&self) -> (usize, usize) {
        let held = self
            .steps
            .iter()
            .filter_map(|s| s.prediction.as_ref()?.held());
        held.fold((0, 0), |(right, all), held| {
            (right + usize::from(held), all + 1)
        })
    }

    pub fn for_cell(&self, cell: u8) -> impl Iterator<Item = &LessonStep> {
        self.steps.iter().filter(move |step| step.cell == cell)
    }
}

/// Body of `POST /api/faults/search-outage`: the search engine refuses every bulk while `down`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchOutageRequest {
    pub down: bool,
}

/// Body of `POST /api/faults/malformed` and `POST /api/faults/resend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    #[serde(default = "default_fault_count")]
    pub count: u32,
}

fn default_fault_count() -> u32 {
    100
}

impl Default for FaultRequest {
    fn default() -> Self {
        Self {
            count: default_fault_count(),
        }
    }
}
