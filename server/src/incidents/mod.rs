//! Incidents: seeded, replayable troubles a learner diagnoses and fixes with the notebook's own
//! views (issue 17, part 2). Starting one stops the stages, moves the sentiment and indexer
//! groups to the end of their inputs, writes a seeded burst of records (the same seed writes
//! the same records to the same partitions), takes the *before* figures from the first snapshot
//! that holds the burst, and only then starts the trouble. From then on, every snapshot (once a
//! second, as for the lesson) updates the *now* figures and moves the fix's parts on, in order;
//! when the last holds, the incident is solved and its write-up is shown.
//!
//! The incident being worked on is kept in `<data dir>/incident.json` (id, seed, phase, the
//! baseline and before-figures, hints shown, the answer, the parts reached), so a restart of the
//! server resumes it: a running incident's trouble is started again (the restart stopped its
//! stages), its figures still count from the same baseline. Its fault (a stopped broker, the
//! search backend down) is made again only while no part of the fix was reached.

pub mod api;
mod catalogue;
mod live;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::api::{
    ActiveIncident, IncidentFigure, IncidentPhase, IncidentQuestion, IncidentSummary,
    IncidentsView, Snapshot,
};

pub use catalogue::{Def, Figure, INCIDENTS, Row};
pub use live::{Baseline, BurstRecord, Live, Step};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::ConfigError;
use crate::pipeline::{Engine, EngineError};
use crate::sync::LockExt;

/// An incident restored as running, whose trouble starts again after a restart.
struct Resume {
    def: &'static Def,
    seed: u64,
    run: u64,
    /// The first part of the fix was reached before the restart.
    fixed: bool,
}

/// How long the set-up waits for a snapshot that holds the burst.
const BEFORE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the engine's shutdown waits for an incident's set-up to stop at its next step.
const WIND_DOWN: Duration = Duration::from_secs(30);

/// The incident being worked on, as the server keeps it.
struct Running {
    def: &'static Def,
    seed: u64,
    started_at: i64,
    phase: IncidentPhase,
    error: Option<String>,
    base: Baseline,
    before: Vec<i64>,
    now: Option<Vec<i64>>,
    hints: usize,
    /// The learner's latest answer, checked again against every snapshot.
    answer: Option<String>,
    answered_right: Option<bool>,
    reached: usize,
    solved_at: Option<i64>,
    /// Bumped on every start, so a set-up that a newer start replaced does not write its result.
    run: u64,
    /// Restored as running after a restart, its trouble not started again yet: the fix's parts
    /// wait (an outage that the restart ended is not a fix).
    resuming: bool,
}

#[derive(Default)]
pub struct Incidents {
    /// Where the incident is kept (`None`: in memory only).
    path: Option<PathBuf>,
    active: Mutex<Option<Running>>,
    runs: std::sync::atomic::AtomicU64,
    /// The set-up and resume tasks: the engine's shutdown waits for them before it stops the
    /// broker (a commit under way with the broker gone held a blocking thread, and with it the
    /// runtime's shutdown, for 40 s and more).
    tasks: TaskTracker,
    /// Told to the tasks at shutdown: they stop at their next step.
    closing: CancellationToken,
}

/// The incident as `incident.json` keeps it (the definition by its id).
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    id: String,
    seed: u64,
    started_at: i64,
    phase: IncidentPhase,
    error: Option<String>,
    base: Baseline,
    before: Vec<i64>,
    hints: usize,
    answer: Option<String>,
    answered_right: Option<bool>,
    reached: usize,
    solved_at: Option<i64>,
}

impl Saved {
    fn from(running: &Running) -> Self {
        Self {
            id: running.def.id.to_owned(),
            seed: running.seed,
            started_at: running.started_at,
            phase: running.phase,
            error: running.error.clone(),
            base: running.base.clone(),
            before: running.before.clone(),
            hints: running.hints,
            answer: running.answer.clone(),
            answered_right: running.answered_right,
            reached: running.reached,
            solved_at: running.solved_at,
        }
    }

    /// The incident again; `None` for an id no longer in the catalogue. One that was still
    /// being set up when the server stopped is failed: its burst may be half written.
    fn restore(self) -> Option<Running> {
        let def = INCIDENTS.iter().find(|d| d.id == self.id)?;
        let (phase, error) = match self.phase {
            IncidentPhase::SettingUp => (
                IncidentPhase::Failed,
                Some(
                    "the server restarted while the incident was being set up: start it again"
                        .to_owned(),
                ),
            ),
            phase => (phase, self.error),
        };
        Some(Running {
            def,
            seed: self.seed,
            started_at: self.started_at,
            phase,
            error,
            base: self.base,
            before: self.before,
            now: None,
            hints: self.hints.min(def.hints.len()),
            answer: self.answer,
            answered_right: self.answered_right,
            reached: self.reached.min(def.parts.len()),
            solved_at: self.solved_at,
            run: 0,
            resuming: phase == IncidentPhase::Running,
        })
    }
}

/// An incident's id that is not in the catalogue.
pub fn find(id: &str) -> Result<&'static Def, ConfigError> {
    INCIDENTS.iter().find(|d| d.id == id).ok_or_else(|| {
        let known: Vec<&str> = INCIDENTS.iter().map(|d| d.id).collect();
        ConfigError::new(
            "id",
            format!("no incident {id:?}; known: {}", known.join(", ")),
        )
    })
}

impl Incidents {
    /// The incident kept under `data_dir`, if any; an unreadable file is logged and ignored
    /// (it holds no pipeline data).
    pub fn open(data_dir: &Path) -> Self {
        let path = data_dir.join("incident.json");
        let active = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Saved>(&bytes) {
                Ok(saved) => {
                    let id = saved.id.clone();
                    let restored = saved.restore();
                    if restored.is_none() {
                        tracing::warn!(incident = %id, "kept incident is not in the catalogue; ignored");
                    }
                    restored
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "kept incident unreadable; ignored");
                    None
                }
            },
            Err(_) => None,
        };
        Self {
            path: Some(path),
            active: Mutex::new(active),
            runs: Default::default(),
            tasks: TaskTracker::new(),
            closing: CancellationToken::new(),
        }
    }

    /// Writes the incident atomically (temp file, then rename); a failure is logged, not fatal.
    fn save(&self, running: &Running) {
        let Some(path) = &self.path else {
            return;
        };
        crate::saved::save_json(path, &Saved::from(running), "the incident");
    }

    /// The trouble of an incident restored as running, to start again (a restart stopped
    /// its stages and ended any outage): `(definition, seed, run)`.
    fn to_resume(&self) -> Option<Resume> {
        let mut active = self.active.lock_or_recover();
        let running = active.as_mut()?;
        if !running.resuming {
            return None;
        }
        running.run = self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        Some(Resume {
            def: running.def,
            seed: running.seed,
            run: running.run,
            fixed: running.reached > 0,
        })
    }

    /// The catalogue and the incident being worked on (`GET /api/incidents`).
    pub fn view(&self) -> IncidentsView {
        let incidents = INCIDENTS
            .iter()
            .map(|d| IncidentSummary {
                id: d.id.to_owned(),
                title: d.title.to_owned(),
                cell: d.cell,
                symptom: d.symptom.to_owned(),
            })
            .collect();
        let active = self.active.lock_or_recover().as_ref().map(active_view);
        IncidentsView { incidents, active }
    }

    /// Reveals the next hint of the running incident; refused when none runs.
    pub fn reveal_hint(&self) -> Result<(), ConfigError> {
        let mut active = self.active.lock_or_recover();
        let running = active
            .as_mut()
            .ok_or_else(|| ConfigError::new("incident", "no incident is running: start one"))?;
        running.hints = (running.hints + 1).min(running.def.hints.len());
        self.save(running);
        Ok(())
    }

    /// Checks an answer to the running incident's question against the latest snapshot.
    pub fn answer(&self, choice: &str, snapshot: &Snapshot) -> Result<bool, ConfigError> {
        let mut active = self.active.lock_or_recover();
        let running = active
            .as_mut()
            .ok_or_else(|| ConfigError::new("incident", "no incident is running: start one"))?;
        let Some(question) = &running.def.question else {
            return Err(ConfigError::new(
                "choice",
                format!("incident {:?} asks no question", running.def.id),
            ));
        };
        let choices = (question.choices)(&running.base);
        if !choices.iter().any(|c| c == choice) {
            return Err(ConfigError::new(
                "choice",
                format!("expected one of {}, got {choice:?}", choices.join(" | ")),
            ));
        }
        let live = Live {
            snapshot,
            base: &running.base,
            answered_right: false,
        };
        let right = (question.right)(&live, choice);
        running.answer = Some(choice.to_owned());
        running.answered_right = Some(right);
        self.save(running);
        Ok(right)
    }

    /// Moves the running incident on with the newest snapshot (called once a second).
    pub fn observe(&self, snapshot: &Snapshot) {
        let mut active = self.active.lock_or_recover();
        let Some(running) = active.as_mut() else {
            return;
        };
        if running.resuming
            || !matches!(
                running.phase,
                IncidentPhase::Running | IncidentPhase::Solved
            )
        {
            return;
        }
        // An answer is right against live state ("the busiest partition", "copies were dropped"),
        // so it is checked again as the state moves on.
        let kept = (running.answered_right, running.reached);
        if let (Some(question), Some(choice)) = (&running.def.question, &running.answer) {
            let live = Live {
                snapshot,
                base: &running.base,
                answered_right: false,
            };
            running.answered_right = Some((question.right)(&live, choice));
        }
        let live = Live {
            snapshot,
            base: &running.base,
            answered_right: running.answered_right == Some(true),
        };
        let rows = running.def.rows(&running.base);
        running.now = Some(rows.iter().map(|row| row.read(&live)).collect());
        if running.phase == IncidentPhase::Solved {
            if kept.0 != running.answered_right {
                self.save(running);
            }
            return;
        }
        // One part per sample, as the lesson's steps: "lag above" then "lag below" needs two moments.
        if running
            .def
            .parts
            .get(running.reached)
            .is_some_and(|part| part(&live))
        {
            running.reached += 1;
        }
        if running.reached == running.def.parts.len() {
            running.phase = IncidentPhase::Solved;
            running.solved_at = Some(snapshot.at);
            tracing::info!(
                incident = running.def.id,
                seed = running.seed,
                "incident solved"
            );
        }
        if kept != (running.answered_right, running.reached) {
            self.save(running);
        }
    }

    /// A restored incident's trouble is still being started again (see [`resume`]).
    pub fn resuming(&self) -> bool {
        self.active
            .lock_or_recover()
            .as_ref()
            .is_some_and(|running| running.resuming)
    }

    /// `Err` once the engine is shutting down: a set-up stops at its next step.
    fn still_open(&self) -> Result<(), EngineError> {
        if self.closing.is_cancelled() {
            return Err(EngineError::BadRequest(
                "the engine is shutting down".to_owned(),
            ));
        }
        Ok(())
    }

    /// On shutdown, before any stage stops: tells the set-up and resume tasks to stop and waits
    /// for them (each step is short while the broker is up) for at most [`WIND_DOWN`].
    pub async fn wind_down(&self) {
        self.closing.cancel();
        self.tasks.close();
        if tokio::time::timeout(WIND_DOWN, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("an incident's set-up was still running after {WIND_DOWN:?}");
        }
    }

    /// Makes `def` the incident being worked on; refused while another is being set up (two
    /// set-ups would stop and start the same stages under each other).
    fn begin(&self, def: &'static Def, seed: u64) -> Result<u64, ConfigError> {
        let mut active = self.active.lock_or_recover();
        if let Some(running) = active.as_ref()
            && running.phase == IncidentPhase::SettingUp
        {
            return Err(ConfigError::new(
                "incident",
                format!(
                    "{:?} is still being set up: wait a few seconds",
                    running.def.id
                ),
            ));
        }
        let run = self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let running = active.insert(Running {
            def,
            seed,
            started_at: chrono::Utc::now().timestamp_millis(),
            phase: IncidentPhase::SettingUp,
            error: None,
            base: Baseline::default(),
            before: Vec::new(),
            now: None,
            hints: 0,
            answer: None,
            answered_right: None,
            reached: 0,
            solved_at: None,
            run,
            resuming: false,
        });
        self.save(running);
        Ok(run)
    }

    /// Applies `change` to the running incident if it is still run `run`.
    fn update(&self, run: u64, change: impl FnOnce(&mut Running)) {
        if let Some(running) = self.active.lock_or_recover().as_mut()
            && running.run == run
        {
            change(running);
            self.save(running);
        }
    }
}

fn active_view(running: &Running) -> ActiveIncident {
    let def = running.def;
    let figures = def
        .rows(&running.base)
        .into_iter()
        .enumerate()
        .map(|(i, row)| IncidentFigure {
            name: row.name,
            before: running.before.get(i).copied().unwrap_or(0),
            now: running.now.as_ref().and_then(|now| now.get(i).copied()),
        })
        .collect();
    let question = def.question.as_ref().map(|q| IncidentQuestion {
        text: q.text.to_owned(),
        choices: (q.choices)(&running.base),
        answered_right: running.answered_right,
    });
    let solved = running.phase == IncidentPhase::Solved;
    ActiveIncident {
        id: def.id.to_owned(),
        title: def.title.to_owned(),
        seed: running.seed,
        symptom: def.symptom.to_owned(),
        phase: running.phase,
        error: running.error.clone(),
        started_at: running.started_at,
        figures: if running.before.is_empty() {
            Vec::new()
        } else {
            figures
        },
        hints: def.hints[..running.hints]
            .iter()
            .map(|h| (*h).to_owned())
            .collect(),
        hints_total: def.hints.len(),
        question,
        reached: running.reached,
        parts: def.parts.len(),
        solved_at: running.solved_at,
        write_up: solved.then(|| def.write_up.to_owned()),
    }
}

/// Starts the trouble of an incident restored as running (after a restart of the server) again,
/// in the background: no clean slate and no burst (both are in the broker already), so its
/// figures go on from the same baseline.
pub fn resume(engine: &Arc<Engine>) {
    let Some(Resume {
        def,
        seed,
        run,
        fixed,
    }) = engine.incidents().to_resume()
    else {
        return;
    };
    tracing::info!(
        incident = def.id,
        seed,
        "resuming the incident kept from before the restart"
    );
    let engine = engine.clone();
    let tasks = engine.incidents().tasks.clone();
    // Once the learner made the first part of the fix (started the broker again, say), the fault
    // is not made again: a restart must not undo the learner's fix.
    let steps = def
        .trouble
        .iter()
        .filter(move |step| !(fixed && step.is_fault()));
    tasks.spawn(async move {
        for step in steps {
            let applied = match engine.incidents().still_open() {
                Ok(()) => live::apply(&engine, step, seed).await,
                Err(closing) => Err(closing),
            };
            if let Err(error) = applied {
                tracing::warn!(incident = def.id, %error, "resuming the incident's trouble failed");
                engine.incidents().update(run, |r| {
                    r.phase = IncidentPhase::Failed;
                    r.error = Some(format!("resuming after a restart: {error}"));
                });
                return;
            }
        }
        engine.incidents().update(run, |r| r.resuming = false);
    });
}

/// Starts incident `id` with `seed`: checked at once, set up in the background (a learner
/// watches the phase go from `setting_up` to `running`).
pub fn start(engine: &Arc<Engine>, id: &str, seed: u64) -> Result<(), EngineError> {
    let def = find(id)?;
    let run = engine.incidents().begin(def, seed)?;
    let engine = engine.clone();
    let tasks = engine.incidents().tasks.clone();
    tasks.spawn(async move {
        let outcome = set_up(&engine, def, seed, run).await;
        let incidents = engine.incidents();
        match outcome {
            Ok(()) => incidents.update(run, |r| r.phase = IncidentPhase::Running),
            Err(error) => {
                tracing::warn!(incident = def.id, %error, "incident set-up failed");
                incidents.update(run, |r| {
                    r.phase = IncidentPhase::Failed;
                    r.error = Some(error.to_string());
                });
            }
        }
    });
    Ok(())
}

async fn set_up(
    engine: &Arc<Engine>,
    def: &'static Def,
    seed: u64,
    run: u64,
) -> Result<(), EngineError> {
    let incidents = engine.incidents();
    let base = live::clean_slate(engine).await?;
    incidents.update(run, |r| r.base = base.clone());
    incidents.still_open()?;
    let burst = (def.burst)(seed, &base);
    live::write_burst(engine, burst).await?;
    incidents.still_open()?;
    let written = chrono::Utc::now().timestamp_millis();
    // The first snapshot sampled after the burst was acknowledged holds all of it.
    let mut snapshots = engine.subscribe();
    let before = tokio::time::timeout(BEFORE_TIMEOUT, async {
        loop {
            {
                let snapshot = snapshots.borrow_and_update();
                if snapshot.at > written {
                    let live = Live {
                        snapshot: &snapshot,
                        base: &base,
                        answered_right: false,
                    };
                    let rows = def.rows(&base);
                    return rows.iter().map(|row| row.read(&live)).collect::<Vec<_>>();
                }
            }
            let changed = tokio::select! {
                changed = snapshots.changed() => changed.is_ok(),
                () = engine.incidents().closing.cancelled() => false,
            };
            if !changed {
                return Vec::new();
            }
        }
    })
    .await
    .map_err(|_| EngineError::BadRequest("no snapshot of the burst within 30 s".into()))?;
    incidents.update(run, |r| r.before = before);
    for step in def.trouble {
        incidents.still_open()?;
        live::apply(engine, step, seed).await?;
    }
    Ok(())
}
