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

    pub fn for_cell(&self, cell: u8) -> impl Iterator<Item = &LessonStep> {
        self.steps.iter().filter(move |step| step.cell == cell)
    }
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
