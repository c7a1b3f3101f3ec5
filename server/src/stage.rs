//! The lifecycle every stage shares: start a run loop in a task, pause, resume, stop it, and keep
//! its state, detail line and last error for the API. Each stage module supplies its own config,
//! run loop and metrics; this module only runs them.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use app::api::{StageState, StageStatus};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long `stop` waits for a run loop to wind down before aborting it.
const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StageError {
    #[error("stage {0} is already running; stop it first")]
    AlreadyRunning(&'static str),
    #[error("stage {0} is not running")]
    NotRunning(&'static str),
    #[error("stage {0} cannot be paused")]
    PauseUnsupported(&'static str),
}

struct Run {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Inner {
    state: StageState,
    detail: Option<String>,
    last_error: Option<String>,
    config: Option<serde_json::Value>,
    run: Option<Run>,
}

/// One stage's lifecycle.
pub struct Stage {
    id: &'static str,
    pausable: bool,
    paused: watch::Sender<bool>,
    inner: Mutex<Inner>,
}

/// What a run loop is handed: its cancellation signal and a way to report progress.
#[derive(Clone)]
pub struct StageContext {
    pub cancel: CancellationToken,
    stage: Arc<Stage>,
}

impl StageContext {
    pub fn set_detail(&self, detail: impl Into<String>) {
        self.stage.lock().detail = Some(detail.into());
    }

    /// Records a problem the loop is working around (a retry, a reconnect) without stopping.
    pub fn report_error(&self, error: impl Into<String>) {
        self.stage.lock().last_error = Some(error.into());
    }

    pub fn clear_error(&self) {
        self.stage.lock().last_error = None;
    }

    /// Waits while the stage is paused; returns false when cancelled meanwhile.
    pub async fn wait_while_paused(&self) -> bool {
        let mut paused = self.stage.paused.subscribe();
        loop {
            if !*paused.borrow_and_update() {
                return !self.cancel.is_cancelled();
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return false,
                changed = paused.changed() => if changed.is_err() { return false },
            }
        }
    }
}

impl Stage {
    pub fn new(id: &'static str, pausable: bool) -> Arc<Self> {
        Arc::new(Self {
            id,
            pausable,
            paused: watch::Sender::new(false),
            inner: Mutex::new(Inner::default()),
        })
    }

    pub fn id(&self) -> &'static str {
        self.id
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn state(&self) -> StageState {
        self.lock().state
    }

    pub fn is_active(&self) -> bool {
        matches!(self.state(), StageState::Running | StageState::Paused)
    }

    /// Starts `run` in a task. When it returns Ok the stage is `stopped` (it finished its work);
    /// when it returns Err the stage is `failed` with the error shown.
    pub fn launch<F, Fut, E>(
        self: &Arc<Self>,
        config: serde_json::Value,
        run: F,
    ) -> Result<(), StageError>
    where
        F: FnOnce(StageContext) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let mut inner = self.lock();
        if inner.run.as_ref().is_some_and(|r| !r.task.is_finished()) {
            return Err(StageError::AlreadyRunning(self.id));
        }
        self.paused.send_replace(false);
        let cancel = CancellationToken::new();
        let context = StageContext {
            cancel: cancel.clone(),
            stage: self.clone(),
        };
        let future = run(context);
        let stage = self.clone();
        let task = tokio::spawn(async move {
            let result = future.await;
            let mut inner = stage.lock();
            match result {
                Ok(()) => inner.state = StageState::Stopped,
                Err(error) => {
                    tracing::error!(stage = stage.id, %error, "stage failed");
                    inner.state = StageState::Failed;
                    inner.last_error = Some(error.to_string());
                }
            }
        });
        *inner = Inner {
            state: StageState::Running,
            detail: None,
            last_error: None,
            config: Some(config),
            run: Some(Run { cancel, task }),
        };
        Ok(())
    }

    /// Asks the run loop to stop and waits for it (aborting it after a grace period).
    pub async fn stop(&self) -> Result<(), StageError> {
        let run = self.lock().run.take();
        let Some(mut run) = run else {
            return Err(StageError::NotRunning(self.id));
        };
        run.cancel.cancel();
        if tokio::time::timeout(STOP_GRACE, &mut run.task)
            .await
            .is_err()
        {
            tracing::warn!(stage = self.id, "stage did not stop in time; aborting");
            run.task.abort();
        }
        let mut inner = self.lock();
        if inner.state != StageState::Failed {
            inner.state = StageState::Stopped;
        }
        Ok(())
    }

    /// Kills the run loop at once, as a crash would: no final commit, no checkpoint, no
    /// goodbye. The stage is `failed` with "crashed" as its error.
    pub fn crash(&self) -> Result<(), StageError> {
        let mut inner = self.lock();
        let Some(run) = inner.run.take() else {
            return Err(StageError::NotRunning(self.id));
        };
        run.task.abort();
        inner.state = StageState::Failed;
        inner.last_error = Some("crashed (killed on purpose); start it again to recover".into());
        Ok(())
    }

    pub fn pause(&self, paused: bool) -> Result<(), StageError> {
        if !self.pausable {
            return Err(StageError::PauseUnsupported(self.id));
        }
        let mut inner = self.lock();
        if !matches!(inner.state, StageState::Running | StageState::Paused) {
            return Err(StageError::NotRunning(self.id));
        }
        inner.state = if paused {
            StageState::Paused
        } else {
            StageState::Running
        };
        self.paused.send_replace(paused);
        Ok(())
    }

    pub fn status(&self, counters: BTreeMap<String, u64>) -> StageStatus {
        let inner = self.lock();
        StageStatus {
            id: self.id.to_owned(),
            state: inner.state,
            counters,
            detail: inner.detail.clone(),
            last_error: inner.last_error.clone(),
            config: inner.config.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_finished_run_is_stopped_and_a_failed_one_shows_its_error() {
        let stage = Stage::new("t", false);
        stage
            .launch(serde_json::json!({}), |_| async { Ok::<_, String>(()) })
            .expect("launch");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(stage.state(), StageState::Stopped);

        stage
            .launch(serde_json::json!({}), |_| async { Err::<(), _>("boom") })
            .expect("launch");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let status = stage.status(BTreeMap::new());
        assert_eq!(status.state, StageState::Failed);
        assert_eq!(status.last_error.as_deref(), Some("boom"));
    }

    #[tokio::test]
    async fn stop_cancels_and_a_second_start_is_refused_while_running() {
        let stage = Stage::new("t", true);
        let run = |ctx: StageContext| async move {
            ctx.cancel.cancelled().await;
            Ok::<_, String>(())
        };
        stage.launch(serde_json::json!({}), run).expect("launch");
        let again = stage.launch(serde_json::json!({}), run);
        assert_eq!(again, Err(StageError::AlreadyRunning("t")));
        stage.pause(true).expect("pause");
        assert_eq!(stage.state(), StageState::Paused);
        stage.stop().await.expect("stop");
        assert_eq!(stage.state(), StageState::Stopped);
        assert_eq!(stage.stop().await, Err(StageError::NotRunning("t")));
    }
}
