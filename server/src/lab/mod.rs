//! The delivery-semantics lab: the same records copied from one topic to another by a consumer →
//! producer job configured at-most-once, at-least-once and exactly-once, with a crash injected,
//! and what was lost or duplicated counted from the output topic ([`delivery`]).
//!
//! One run at a time; its latest state is what `GET /api/lab/delivery` and the live snapshot
//! show, so a page reload finds the same run.

pub mod delivery;

use std::sync::{Arc, Mutex, MutexGuard};

use app::api::{
    DeliveryLabRequest, DeliveryLabView, DeliveryMode, DeliveryResult, LAB_MAX_RECORDS, LabState,
};
use tokio_util::sync::CancellationToken;

use crate::error::ConfigError;
use crate::kafka::KafkaSettings;
use crate::stage::Lifecycle;
use crate::sync::LockExt;

/// Input records a job handles between two commits (or in one transaction). The crash always
/// hits the batch that starts at the crash point, so a whole batch is what a crash can lose or
/// duplicate.
pub const BATCH_RECORDS: u64 = 500;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum LabError {
    #[error("a delivery-semantics lab run is already running")]
    Busy,
}

/// A checked request: which modes, how many records, where the crash hits.
#[derive(Debug, Clone, PartialEq)]
pub struct LabPlan {
    pub modes: Vec<DeliveryMode>,
    pub records: u64,
    /// Input offset of the first record of the batch the crash hits.
    pub crash_after: u64,
}

/// Checks a request; an unset crash point means half-way.
pub fn validate(request: &DeliveryLabRequest) -> Result<LabPlan, ConfigError> {
    let records = request.records;
    if !(1..=LAB_MAX_RECORDS).contains(&records) {
        return Err(ConfigError::new(
            "records",
            format!("must be 1..={LAB_MAX_RECORDS}, got {records}"),
        ));
    }
    let crash_after = request.crash_after.unwrap_or(records / 2);
    if crash_after >= records {
        return Err(ConfigError::new(
            "crash_after",
            format!(
                "must be 0..{records} (fewer than records, so the crash hits a record), got {crash_after}"
            ),
        ));
    }
    Ok(LabPlan {
        modes: request.mode.modes(),
        records,
        crash_after,
    })
}

/// The lab: the latest run's view, and the run under the same [`Lifecycle`] as a stage (one
/// at a time; stopped on shutdown).
pub struct DeliveryLab {
    view: Mutex<DeliveryLabView>,
    life: Arc<Lifecycle>,
    /// The current run's cancel signal, read between batches.
    cancel: Mutex<CancellationToken>,
}

impl Default for DeliveryLab {
    fn default() -> Self {
        Self {
            view: Mutex::new(DeliveryLabView::default()),
            life: Lifecycle::new("lab", false, false),
            cancel: Mutex::new(CancellationToken::new()),
        }
    }
}

impl DeliveryLab {
    pub fn view(&self) -> DeliveryLabView {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, DeliveryLabView> {
        self.view.lock_or_recover()
    }

    /// Starts a run in the background; refused while one runs.
    pub fn start(self: &Arc<Self>, plan: LabPlan, kafka: KafkaSettings) -> Result<(), LabError> {
        let run = chrono::Utc::now().timestamp_millis().to_string();
        let mut view = self.lock();
        if view.running || self.life.is_active() {
            return Err(LabError::Busy);
        }
        let previous = std::mem::replace(&mut *view, fresh_view(&plan, &run));
        let config = serde_json::json!({
            "modes": plan.modes.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
            "records": plan.records,
            "crash_after": plan.crash_after,
        });
        let lab = self.clone();
        let launched = self.life.launch(config, move |ctx| {
            *lab.cancel.lock_or_recover() = ctx.cancel.clone();
            async move {
                delivery::remove_topics(&kafka, &previous).await;
                for mode in plan.modes.clone() {
                    lab.update(mode, |result| result.state = LabState::Running);
                    let result = delivery::run_mode(&lab, &kafka, &plan, &run, mode).await;
                    lab.update(mode, |slot| *slot = result);
                }
                lab.lock().running = false;
                tracing::info!(run, "delivery lab run finished");
                Ok::<(), String>(())
            }
        });
        if launched.is_err() {
            *view = DeliveryLabView::default();
            return Err(LabError::Busy);
        }
        Ok(())
    }

    /// Stops a running lab at its next batch and waits for it (server shutdown).
    pub async fn stop(&self) {
        // Not running: nothing to stop.
        let _ = self.life.stop().await;
    }

    fn cancelled(&self) -> bool {
        self.cancel.lock_or_recover().is_cancelled()
    }

    fn update(&self, mode: DeliveryMode, change: impl FnOnce(&mut DeliveryResult)) {
        let mut view = self.lock();
        if let Some(result) = view.results.iter_mut().find(|r| r.mode == mode) {
            change(result);
        }
    }

    /// Counts input records a mode's job has handled (its output written).
    fn add_processed(&self, mode: DeliveryMode, records: u64) {
        let mut view = self.lock();
        view.processed = (view.processed + records).min(view.total);
        if let Some(result) = view.results.iter_mut().find(|r| r.mode == mode) {
            result.processed += records;
        }
    }
}

fn fresh_view(plan: &LabPlan, run: &str) -> DeliveryLabView {
    DeliveryLabView {
        running: true,
        run: Some(run.to_owned()),
        records: plan.records,
        crash_after: plan.crash_after,
        processed: 0,
        // Re-read batches are not counted in the total: the bar fills at the last mode's end.
        total: plan.records * plan.modes.len() as u64,
        results: plan
            .modes
            .iter()
            .map(|&mode| {
                let topics = delivery::Topics::new(mode, run);
                delivery::empty_result(mode, &topics, LabState::Waiting)
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::api::DeliveryChoice;

    fn request(records: u64, crash_after: Option<u64>) -> DeliveryLabRequest {
        DeliveryLabRequest {
            mode: DeliveryChoice::All,
            records,
            crash_after,
        }
    }

    fn field_of(error: ConfigError) -> String {
        error.field
    }

    #[test]
    fn defaults_run_all_three_modes_crashing_half_way() {
        let plan = validate(&DeliveryLabRequest::default()).expect("defaults are valid");
        assert_eq!(plan.modes, DeliveryMode::ALL.to_vec());
        assert_eq!((plan.records, plan.crash_after), (10_000, 5_000));
    }

    #[test]
    fn records_must_be_1_to_100_000() {
        for records in [0, LAB_MAX_RECORDS + 1] {
            let error = validate(&request(records, Some(0))).expect_err("out of range");
            assert_eq!(field_of(error.clone()), "records");
            assert!(error.to_string().starts_with("records: "), "{error}");
        }
        assert!(validate(&request(1, None)).is_ok());
        assert!(validate(&request(LAB_MAX_RECORDS, None)).is_ok());
    }

    #[test]
    fn crash_point_must_fall_on_a_record() {
        let error = validate(&request(100, Some(100))).expect_err("past the end");
        assert_eq!(field_of(error), "crash_after");
        assert_eq!(
            validate(&request(100, Some(99))).map(|p| p.crash_after),
            Ok(99)
        );
        assert_eq!(
            validate(&request(100, Some(0))).map(|p| p.crash_after),
            Ok(0)
        );
    }

    #[test]
    fn unknown_modes_and_fields_are_refused_by_name() {
        let error = serde_json::from_value::<DeliveryLabRequest>(
            serde_json::json!({"mode": "twice", "records": 10}),
        )
        .expect_err("unknown mode");
        assert!(error.to_string().contains("twice"), "{error}");
        let error = serde_json::from_value::<DeliveryLabRequest>(serde_json::json!({"record": 10}))
            .expect_err("typo");
        assert!(error.to_string().contains("record"), "{error}");
        let one: DeliveryLabRequest =
            serde_json::from_value(serde_json::json!({"mode": "exactly_once"})).expect("valid");
        assert_eq!(
            validate(&one).map(|p| p.modes),
            Ok(vec![DeliveryMode::ExactlyOnce])
        );
    }

    #[test]
    fn a_second_run_is_refused_while_one_runs() {
        let lab = DeliveryLab::default();
        *lab.lock() = DeliveryLabView {
            running: true,
            ..DeliveryLabView::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let lab = Arc::new(lab);
        let plan = validate(&DeliveryLabRequest::default()).expect("valid");
        let kafka = KafkaSettings::plaintext("127.0.0.1:1", 1);
        let refused = runtime.block_on(async { lab.start(plan, kafka) });
        assert_eq!(refused, Err(LabError::Busy));
    }
}
