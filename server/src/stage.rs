//! The contract every stage shares.
//!
//! - [`StageId`]: which stage, in the order data flows.
//! - [`Stage`]: what a stage supplies — its typed `Config` (`Default` = the documented defaults),
//!   its pure `validate`, its counters, and how to prepare a run loop given the engine's
//!   resources. The run loop is handed a [`StageContext`]: cancel (stop gracefully), kill (crash:
//!   drop the work in hand uncommitted), pause, and a way to report detail and errors.
//! - [`Lifecycle`]: the one state machine that starts, pauses, stops and crashes a run loop and
//!   keeps its state, detail line and last error. The engine holds one per stage in a map; each
//!   sentiment worker has its own.
//! - [`counters!`](crate::counters): a stage's metrics struct with its counters named once.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use app::api::{StageState, StageStatus};
use app::ops::StageLoad;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::ConfigError;
use crate::pipeline::EngineError;
use crate::sync::LockExt;

/// How long `stop` waits for a run loop to wind down before aborting it.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// What a crashed stage shows as its error.
pub const CRASHED: &str = "crashed (killed on purpose); start it again to recover";

/// The stages, in the order data flows through them (the embedded broker first).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum StageId {
    Broker,
    Streamer,
    Producer,
    Sentiment,
    Aggregate,
    Parquet,
    Indexer,
}

impl StageId {
    pub const ALL: [StageId; 7] = [
        StageId::Broker,
        StageId::Streamer,
        StageId::Producer,
        StageId::Sentiment,
        StageId::Aggregate,
        StageId::Parquet,
        StageId::Indexer,
    ];

    /// The id in URLs, status and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            StageId::Broker => "broker",
            StageId::Streamer => "streamer",
            StageId::Producer => "producer",
            StageId::Sentiment => "sentiment",
            StageId::Aggregate => "aggregate",
            StageId::Parquet => "parquet",
            StageId::Indexer => "indexer",
        }
    }
}

impl std::fmt::Display for StageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for StageId {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StageId::ALL
            .into_iter()
            .find(|id| id.as_str() == s)
            .ok_or_else(|| EngineError::UnknownStage(s.to_owned()))
    }
}

/// A run loop, ready to be launched: it gets its context and reports failure as text.
pub type RunLoop = Box<dyn FnOnce(StageContext) -> BoxFuture<'static, Result<(), String>> + Send>;

/// Boxes a run function whose error is displayable.
pub fn run_loop<F, Fut, E>(run: F) -> RunLoop
where
    F: FnOnce(StageContext) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    Box::new(move |ctx| {
        let future = run(ctx);
        Box::pin(async move { future.await.map_err(|e| e.to_string()) })
    })
}

/// What a stage implements (see the module docs). `Self` holds what its runs need from the
/// engine (Kafka settings, metrics, the search backend, …).
pub trait Stage: Send + Sync + 'static {
    const ID: StageId;
    /// Whether pause / resume apply.
    const PAUSABLE: bool = false;
    /// Whether the run loop leaves on [`StageContext::kill`] by itself. Those that hold group
    /// consumers must (closing one on a runtime thread can deadlock the group); the others are
    /// aborted on a crash.
    const CLOSES_ON_KILL: bool = false;

    /// The request body of `POST /api/stages/{id}/start`; `Default` gives the documented defaults.
    type Config: Serialize + DeserializeOwned + Default + Send + 'static;
    /// What validation derives from a config besides accepting it (a window spec, thresholds).
    type Checked: Send + 'static;

    /// Pure checks, before anything starts; the error names the field.
    fn validate(config: &Self::Config) -> Result<Self::Checked, ConfigError>;

    /// Counters shown in the stage's status.
    fn counters(&self) -> BTreeMap<String, u64>;

    /// Where the run loop spends its time and how fast it works (consumer stages).
    fn load(&self) -> Option<app::ops::StageLoad> {
        None
    }

    /// A problem the metrics know of, shown when the run loop reported none.
    fn last_error(&self) -> Option<String> {
        None
    }

    /// The latency histograms it keeps (`GET /metrics`), reset with its counters.
    fn latencies(&self) -> Vec<crate::histogram::StageLatency> {
        Vec::new()
    }

    /// Checks that need the engine (sockets, files, LLM settings), resets the metrics and
    /// returns the run loop. Called only while the stage is not running.
    fn prepare(&self, config: Self::Config, checked: Self::Checked)
    -> Result<RunLoop, EngineError>;

    /// The group members this stage runs, for their heartbeats (`crate::members`); `life` is
    /// the stage's lifecycle. Stages that are not consumer groups of their own have none.
    fn member_reports(&self, life: &Lifecycle) -> Vec<crate::members::MemberReport> {
        let _ = life;
        Vec::new()
    }

    /// After the run loop is launched (`life` is its lifecycle): the streamer waits here for
    /// its socket.
    fn started(&self, life: &Lifecycle) -> impl Future<Output = ()> + Send {
        let _ = life;
        async {}
    }
}

/// Parses a body into a stage's config and validates it.
pub fn checked<S: Stage>(body: serde_json::Value) -> Result<(S::Config, S::Checked), ConfigError> {
    let config: S::Config = crate::stage_config::parse_config(body)?;
    let checked = S::validate(&config)?;
    Ok((config, checked))
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StageError {
    #[error("stage {0} is already running; stop it first")]
    AlreadyRunning(String),
    #[error("stage {0} is not running")]
    NotRunning(String),
    #[error("stage {0} cannot be paused")]
    PauseUnsupported(String),
    #[error("{0}")]
    External(&'static str),
}

struct Run {
    cancel: CancellationToken,
    kill: CancellationToken,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Inner {
    state: StageState,
    detail: Option<String>,
    last_error: Option<String>,
    config: Option<serde_json::Value>,
    /// Ended by [`Lifecycle::crash`], not by itself.
    crashed: bool,
    run: Option<Run>,
}

/// One run loop's lifecycle: a stage's, or one sentiment worker's.
pub struct Lifecycle {
    name: String,
    pausable: bool,
    closes_on_kill: bool,
    paused: watch::Sender<bool>,
    inner: Mutex<Inner>,
}

/// What a run loop is handed: its cancellation signals and a way to report progress.
#[derive(Clone)]
pub struct StageContext {
    /// Stop gracefully: finish or put back the work in hand, commit, leave.
    pub cancel: CancellationToken,
    /// Crash: leave at once without committing; close Kafka clients off the runtime threads.
    pub kill: CancellationToken,
    life: Arc<Lifecycle>,
}

impl StageContext {
    pub fn set_detail(&self, detail: impl Into<String>) {
        self.life.lock().detail = Some(detail.into());
    }

    /// Records a problem the loop is working around (a retry, a reconnect) without stopping.
    pub fn report_error(&self, error: impl Into<String>) {
        self.life.lock().last_error = Some(error.into());
    }

    pub fn clear_error(&self) {
        self.life.lock().last_error = None;
    }

    /// Waits while the stage is paused; returns false when cancelled meanwhile.
    pub async fn wait_while_paused(&self) -> bool {
        let mut paused = self.life.paused.subscribe();
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

impl Lifecycle {
    pub fn new(name: impl Into<String>, pausable: bool, closes_on_kill: bool) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            pausable,
            closes_on_kill,
            paused: watch::Sender::new(false),
            inner: Mutex::new(Inner::default()),
        })
    }

    /// The lifecycle of stage `S`.
    pub fn of<S: Stage>() -> Arc<Self> {
        Self::new(S::ID.as_str(), S::PAUSABLE, S::CLOSES_ON_KILL)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock_or_recover()
    }

    pub fn state(&self) -> StageState {
        self.lock().state
    }

    pub fn is_active(&self) -> bool {
        matches!(self.state(), StageState::Running | StageState::Paused)
    }

    /// Whether the last run ended by [`Lifecycle::crash`].
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// The config of the current (or last) run.
    pub fn config(&self) -> Option<serde_json::Value> {
        self.lock().config.clone()
    }

    /// Takes the config of a run before this process started, so the status words the stage as
    /// it last ran (`crate::last_config`); ignored once a run started here.
    pub fn restore_config(&self, config: serde_json::Value) {
        let mut inner = self.lock();
        if inner.run.is_none() && inner.config.is_none() {
            inner.config = Some(config);
        }
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
            return Err(StageError::AlreadyRunning(self.name.clone()));
        }
        self.paused.send_replace(false);
        let (cancel, kill) = (CancellationToken::new(), CancellationToken::new());
        let context = StageContext {
            cancel: cancel.clone(),
            kill: kill.clone(),
            life: self.clone(),
        };
        let future = run(context);
        let life = self.clone();
        let task = tokio::spawn(async move {
            let result = future.await;
            let mut inner = life.lock();
            if inner.crashed {
                return; // already `failed` with the crash as its error
            }
            match result {
                Ok(()) => inner.state = StageState::Stopped,
                Err(error) => {
                    tracing::error!(stage = %life.name, %error, "stage failed");
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
            crashed: false,
            run: Some(Run { cancel, kill, task }),
        };
        Ok(())
    }

    /// Asks the run loop to stop and waits for it (aborting it after a grace period).
    pub async fn stop(&self) -> Result<(), StageError> {
        if self.crashed() {
            // Crashed: nothing to stop, but its loop may still be closing its clients.
            self.wait().await;
            return Err(StageError::NotRunning(self.name.clone()));
        }
        let run = self.lock().run.take();
        let Some(mut run) = run else {
            return Err(StageError::NotRunning(self.name.clone()));
        };
        run.cancel.cancel();
        if tokio::time::timeout(STOP_GRACE, &mut run.task)
            .await
            .is_err()
        {
            tracing::warn!(stage = %self.name, "stage did not stop in time; aborting");
            run.task.abort();
        }
        let mut inner = self.lock();
        if inner.state != StageState::Failed {
            inner.state = StageState::Stopped;
        }
        Ok(())
    }

    /// Ends the run loop at once, as a crash would: no final commit, no checkpoint, no goodbye.
    /// A loop that holds group consumers is told by its kill token (it drops its work and closes
    /// its clients off the runtime threads; [`Lifecycle::wait`] waits for that); any other is
    /// aborted. The stage is `failed` with "crashed" as its error.
    pub fn crash(&self) -> Result<(), StageError> {
        let mut inner = self.lock();
        let Some(run) = inner.run.as_ref().filter(|_| !inner.crashed) else {
            return Err(StageError::NotRunning(self.name.clone()));
        };
        run.kill.cancel();
        if !self.closes_on_kill {
            run.task.abort();
        }
        inner.state = StageState::Failed;
        inner.last_error = Some(CRASHED.into());
        inner.crashed = true;
        Ok(())
    }

    /// Waits until the run loop's task has ended (after a stop or a crash), aborting it after
    /// the grace period.
    pub async fn wait(&self) {
        let run = self.lock().run.take();
        if let Some(mut run) = run
            && tokio::time::timeout(STOP_GRACE, &mut run.task)
                .await
                .is_err()
        {
            tracing::warn!(stage = %self.name, "run loop did not end in time; aborting");
            run.task.abort();
        }
    }

    pub fn pause(&self, paused: bool) -> Result<(), StageError> {
        if !self.pausable {
            return Err(StageError::PauseUnsupported(self.name.clone()));
        }
        let mut inner = self.lock();
        if !matches!(inner.state, StageState::Running | StageState::Paused) {
            return Err(StageError::NotRunning(self.name.clone()));
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
            id: self.name.clone(),
            state: inner.state,
            counters,
            detail: inner.detail.clone(),
            last_error: inner.last_error.clone(),
            config: inner.config.clone(),
            load: None,
            rates: None,
            members: Vec::new(),
        }
    }
}

/// Attributes a run loop's time to its phases: each [`PhaseClock::mark`] adds the time since the
/// previous mark to one phase's counter (microseconds), so the phases always add up to the loop's
/// wall time — nothing is left unaccounted, nothing counted twice.
pub struct PhaseClock {
    since: Instant,
}

impl PhaseClock {
    pub fn new() -> Self {
        Self {
            since: Instant::now(),
        }
    }

    /// The time since the last mark was spent in `phase`.
    pub fn mark(&mut self, phase: &AtomicU64) {
        let now = Instant::now();
        let micros = now.duration_since(self.since).as_micros();
        phase.fetch_add(u64::try_from(micros).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.since = now;
    }
}

impl Default for PhaseClock {
    fn default() -> Self {
        Self::new()
    }
}

/// A stage's cumulative phase times (µs, summed over its loops) and records processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadTotals {
    pub busy_us: u64,
    pub idle_us: u64,
    pub backpressured_us: u64,
    pub processed: u64,
    /// Loops running now (their times are averaged).
    pub loops: u32,
}

impl LoadTotals {
    /// The per-second figures between two readings `elapsed` apart; `None` when nothing ran,
    /// or the counters went back (a restart).
    pub fn per_second(&self, later: &LoadTotals, elapsed: Duration) -> Option<StageLoad> {
        let seconds = elapsed.as_secs_f64();
        let loops = later.loops.max(1);
        if seconds <= 0.0 || later.loops == 0 {
            return None;
        }
        let delta = |a: u64, b: u64| b.checked_sub(a);
        let busy = delta(self.busy_us, later.busy_us)?;
        let idle = delta(self.idle_us, later.idle_us)?;
        let pressed = delta(self.backpressured_us, later.backpressured_us)?;
        let processed = delta(self.processed, later.processed)?;
        let per_loop_ms = |micros: u64| micros as f64 / 1_000.0 / seconds / f64::from(loops);
        Some(StageLoad {
            busy_ms: per_loop_ms(busy),
            idle_ms: per_loop_ms(idle),
            backpressured_ms: per_loop_ms(pressed),
            processing_rate: processed as f64 / seconds,
            loops: later.loops,
            operator: None,
        })
    }
}

/// Turns a stage's cumulative phase times into per-second figures. The status is read by the
/// live feed, `/api/pipeline` and `/metrics` at their own pace: a reading is kept only once
/// [`LOAD_STEP`] has passed since the one before, and the figures span the kept readings of the
/// last [`LOAD_SPAN`] — long enough to hold whole loop iterations (a windows trigger is a second
/// by default), so the phases add up to about 1,000 ms however a read falls within an iteration.
#[derive(Default)]
pub struct LoadMeter {
    state: Mutex<MeterState>,
}

#[derive(Default)]
struct MeterState {
    readings: VecDeque<(Instant, LoadTotals)>,
    figures: Option<StageLoad>,
}

/// The least time between two kept readings.
pub const LOAD_STEP: Duration = Duration::from_secs(1);
/// The longest span the figures are computed over.
pub const LOAD_SPAN: Duration = Duration::from_secs(5);

impl LoadMeter {
    /// The figures as of the latest kept reading, given the totals now.
    pub fn read(&self, totals: LoadTotals) -> Option<StageLoad> {
        let now = Instant::now();
        let mut state = self.state.lock_or_recover();
        let restarted = state.readings.back().is_some_and(|(_, last)| {
            totals.busy_us < last.busy_us || totals.processed < last.processed
        });
        if restarted || totals.loops == 0 {
            *state = MeterState::default();
        }
        let due = state
            .readings
            .back()
            .is_none_or(|(at, _)| now.duration_since(*at) >= LOAD_STEP);
        if due {
            state.readings.push_back((now, totals));
            // Two readings are kept whatever their age: a status read seldom (a scrape every
            // 15 s) still has a span.
            while state.readings.len() > 2
                && state
                    .readings
                    .front()
                    .is_some_and(|(at, _)| now.duration_since(*at) > LOAD_SPAN)
            {
                state.readings.pop_front();
            }
            state.figures = match (state.readings.front(), state.readings.back()) {
                (Some((from, first)), Some((to, last))) if from < to => {
                    first.per_second(last, to.duration_since(*from))
                }
                _ => None,
            };
        }
        state.figures.clone()
    }
}

/// Declares a metrics struct whose atomic counters are named once: the struct, `reset_counters`
/// and `counter_values` (the snapshot shown in the stage's status) come from the one list. Other
/// fields (views, recent batches) follow the counters and are declared as usual.
///
/// ```ignore
/// counters! {
///     pub struct StreamerMetrics {
///         counters { sent, chunks }
///         pub listening: Mutex<Option<SocketAddr>>,
///     }
/// }
/// ```
#[macro_export]
macro_rules! counters {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            counters { $($(#[$cmeta:meta])* $counter:ident),+ $(,)? }
            $($(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Default)]
        $vis struct $name {
            $($(#[$cmeta])* pub $counter: ::std::sync::atomic::AtomicU64,)+
            $($(#[$fmeta])* $fvis $field: $ty,)*
        }

        impl $name {
            /// The counters' names, in declaration order.
            #[allow(dead_code)]
            pub const COUNTERS: &'static [&'static str] = &[$(stringify!($counter)),+];

            /// Sets every counter to zero (a new run).
            #[allow(dead_code)]
            pub fn reset_counters(&self) {
                $(self.$counter.store(0, ::std::sync::atomic::Ordering::Relaxed);)+
            }

            /// Every counter by name.
            pub fn counter_values(&self) -> ::std::collections::BTreeMap<String, u64> {
                ::std::collections::BTreeMap::from([$((
                    stringify!($counter).to_owned(),
                    self.$counter.load(::std::sync::atomic::Ordering::Relaxed),
                )),+])
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::counters! {
        /// Two counters and a field that is not one.
        struct Example {
            counters { first, second }
            note: Mutex<String>,
        }
    }

    #[test]
    fn counters_are_named_once_and_reset_together() {
        use std::sync::atomic::Ordering;
        let metrics = Example::default();
        metrics.first.fetch_add(3, Ordering::Relaxed);
        metrics.second.fetch_add(4, Ordering::Relaxed);
        *metrics.note.lock_or_recover() = "kept".into();
        assert_eq!(Example::COUNTERS, ["first", "second"]);
        assert_eq!(
            metrics.counter_values(),
            BTreeMap::from([("first".into(), 3), ("second".into(), 4)])
        );
        metrics.reset_counters();
        assert!(metrics.counter_values().values().all(|v| *v == 0));
        assert_eq!(*metrics.note.lock_or_recover(), "kept");
    }

    #[test]
    fn phase_marks_add_up_to_the_loop_time() {
        let (busy, idle, pressed) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
        let started = Instant::now();
        let mut clock = PhaseClock::new();
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(2));
            clock.mark(&idle);
            std::thread::sleep(Duration::from_millis(1));
            clock.mark(&busy);
            std::thread::sleep(Duration::from_millis(1));
            clock.mark(&pressed);
        }
        let wall = started.elapsed().as_micros() as u64;
        let sum = [&busy, &idle, &pressed]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>();
        // Every microsecond between the first and last mark is in exactly one phase.
        assert!(sum <= wall, "{sum} > {wall}");
        assert!(idle.load(Ordering::Relaxed) >= 6_000);
        assert!(busy.load(Ordering::Relaxed) >= 3_000);
        assert!(pressed.load(Ordering::Relaxed) >= 3_000);
    }

    #[test]
    fn per_second_figures_are_per_loop_and_add_up_to_a_second() {
        let before = LoadTotals {
            loops: 2,
            ..LoadTotals::default()
        };
        // Two loops over two seconds: 4 s of loop time, of which 1 s busy, 0.5 s waiting on
        // downstream, the rest idle; 300 records.
        let after = LoadTotals {
            busy_us: 1_000_000,
            idle_us: 2_500_000,
            backpressured_us: 500_000,
            processed: 300,
            loops: 2,
        };
        let load = before
            .per_second(&after, Duration::from_secs(2))
            .expect("figures");
        assert_eq!(
            (load.busy_ms, load.idle_ms, load.backpressured_ms),
            (250.0, 625.0, 125.0)
        );
        assert_eq!(load.busy_ms + load.idle_ms + load.backpressured_ms, 1_000.0);
        assert_eq!(load.processing_rate, 150.0);
        // Counters that went back (a new run) give nothing rather than a negative rate.
        assert_eq!(after.per_second(&before, Duration::from_secs(1)), None);
        // No loop running: nothing to say.
        let stopped = LoadTotals { loops: 0, ..after };
        assert_eq!(before.per_second(&stopped, Duration::from_secs(1)), None);
    }

    #[test]
    fn the_meter_rolls_its_window_only_after_a_second() {
        let meter = LoadMeter::default();
        let totals = |busy_us| LoadTotals {
            busy_us,
            loops: 1,
            ..LoadTotals::default()
        };
        assert_eq!(meter.read(totals(0)), None);
        // Read again at once: the window is too short to say anything yet.
        assert_eq!(meter.read(totals(10)), None);
        std::thread::sleep(LOAD_STEP);
        let load = meter.read(totals(500_000)).expect("a window");
        assert!(load.busy_ms > 0.0 && load.busy_ms <= 500.0, "{load:?}");
        // A quick second read keeps the same figures.
        assert_eq!(meter.read(totals(600_000)), Some(load));
    }

    #[test]
    fn stage_ids_round_trip_and_flow_in_order() {
        for id in StageId::ALL {
            assert_eq!(id.as_str().parse::<StageId>().ok(), Some(id));
            assert_eq!(
                serde_json::to_value(id).ok(),
                Some(serde_json::json!(id.as_str()))
            );
        }
        assert!(StageId::ALL.windows(2).all(|w| w[0] < w[1]));
        assert!(matches!(
            "nope".parse::<StageId>(),
            Err(EngineError::UnknownStage(_))
        ));
    }

    #[tokio::test]
    async fn a_finished_run_is_stopped_and_a_failed_one_shows_its_error() {
        let stage = Lifecycle::new("t", false, false);
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
        let stage = Lifecycle::new("t", true, false);
        let run = |ctx: StageContext| async move {
            ctx.cancel.cancelled().await;
            Ok::<_, String>(())
        };
        stage.launch(serde_json::json!({}), run).expect("launch");
        let again = stage.launch(serde_json::json!({}), run);
        assert_eq!(again, Err(StageError::AlreadyRunning("t".into())));
        stage.pause(true).expect("pause");
        assert_eq!(stage.state(), StageState::Paused);
        stage.stop().await.expect("stop");
        assert_eq!(stage.state(), StageState::Stopped);
        assert_eq!(stage.stop().await, Err(StageError::NotRunning("t".into())));
    }

    /// A loop that closes on kill is not aborted: it gets to run its own ending (where the
    /// Kafka clients are closed off the runtime threads), and stays `failed` as crashed.
    #[tokio::test]
    async fn a_crash_tells_a_loop_that_closes_on_kill_and_it_ends_itself() {
        let stage = Lifecycle::new("t", false, true);
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
        stage
            .launch(serde_json::json!({}), move |ctx: StageContext| async move {
                ctx.kill.cancelled().await;
                let _ = closed_tx.send(());
                Ok::<_, String>(())
            })
            .expect("launch");
        stage.crash().expect("crash");
        closed_rx.await.expect("the loop ran its own ending");
        stage.wait().await;
        let status = stage.status(BTreeMap::new());
        assert_eq!(status.state, StageState::Failed);
        assert_eq!(status.last_error.as_deref(), Some(CRASHED));
        assert!(stage.crashed());
    }
}
