//! Consumer lag the way an operator reads it: per group and partition, in records and in
//! seconds, with a bounded history kept on the server (so a reload keeps it), a trend and the
//! time to catch up.
//!
//! The engine's once-a-second sampler already asks the broker for every group's committed
//! offsets and every partition's high watermark; [`LagBook::observe`] adds, for each partition
//! that is behind, the timestamp of the next record the group will read (one assigned read for
//! all of them, through the inspector's pooled lag reader (small fetches, 10 ms wait), bounded by [`TIMESTAMP_READ_WAIT`]
//! and cached by offset so a stopped group costs nothing after its first sample), then records
//! one point per partition.
//!
//! History per partition: the last [`FINE_SPAN_MS`] at one point per sample, and before that
//! [`COARSE_SPAN_MS`] downsampled to one point per [`COARSE_STEP_MS`] (the bucket's *largest*
//! lag, so a spike stays visible, and its last position).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use app::api::{GroupInfo, TopicInfo};
use app::ops::{GroupLag, GroupLagHistory, LagPoint, LagTrend, PartitionLag, TREND_WINDOW_SECS};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};

use super::inspect::{InspectError, Inspector, is_connection_event};

/// The recent history kept at full resolution: 15 minutes.
pub const FINE_SPAN_MS: i64 = 15 * 60 * 1000;
/// The sampling step the fine history is drawn at (the engine samples once a second).
pub const FINE_STEP_MS: i64 = 1000;
/// The older history: one point per 10 s…
pub const COARSE_STEP_MS: i64 = 10_000;
/// …for the hour before the fine history.
pub const COARSE_SPAN_MS: i64 = 60 * 60 * 1000;
/// Most points per series, whatever the clock does (a sampler that ran faster than once a
/// second must not grow the history past its bound).
const FINE_MAX_POINTS: usize = (FINE_SPAN_MS / FINE_STEP_MS) as usize;
const COARSE_MAX_POINTS: usize = (COARSE_SPAN_MS / COARSE_STEP_MS) as usize;
/// Groups whose history is kept: the group registry lists at most 32; a group no longer
/// listed keeps its history until it is older than the whole span, and the oldest go first
/// past this bound.
pub const GROUPS_KEPT: usize = 64;
/// Records a timestamp read goes on reading past a wanted offset to reach the next one in the
/// same round: a few of the lag reader's 64 KiB fetches, cheaper than a new assignment.
const READ_THROUGH: i64 = 500;
/// Longest the sampler waits for the timestamps of the next records to read.
pub const TIMESTAMP_READ_WAIT: Duration = Duration::from_millis(500);
/// A lag change over the trend window smaller than this share of the mean lag (or than
/// [`TREND_MIN_RECORDS`]) is steady: a group consuming in batches wobbles by a batch.
const TREND_RELATIVE: f64 = 0.05;
const TREND_MIN_RECORDS: f64 = 2.0;

type PartitionKey = (String, i32);
/// (topic, partition, offset) → the timestamp (ms) of the record there.
type Timestamps = HashMap<(String, i32, i64), i64>;
/// Per partition, the offsets whose record timestamps are wanted.
type Wanted = BTreeMap<PartitionKey, Vec<i64>>;

/// A point a [`Series`] holds: stamped with its time (ms), and folded into its coarse bucket
/// when it leaves the fine history.
pub trait SeriesPoint: Copy {
    fn at(&self) -> i64;
    /// Folds `later`, the `n`th point of the same coarse bucket (from 2 on), into this one.
    fn merge(&mut self, later: Self, n: u32);
}

/// A lag point's bucket keeps the *largest* lag (so a spike stays visible) and the last position.
impl SeriesPoint for LagPoint {
    fn at(&self) -> i64 {
        self.at
    }

    fn merge(&mut self, later: Self, _n: u32) {
        self.lag = self.lag.max(later.lag);
        self.lag_seconds = match (self.lag_seconds, later.lag_seconds) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.position = later.position;
        self.at = later.at;
    }
}

/// One series of points: full resolution for the recent span, downsampled before it. The lag
/// history's and the stages' rate history's ring (`crate::rates`).
#[derive(Debug, Clone)]
pub struct Series<P> {
    fine: VecDeque<P>,
    coarse: VecDeque<P>,
    /// The coarse bucket being filled from points leaving the fine history: (bucket, point,
    /// points merged into it).
    pending: Option<(i64, P, u32)>,
}

/// One partition's lag history.
pub type LagSeries = Series<LagPoint>;

impl<P> Default for Series<P> {
    fn default() -> Self {
        Self {
            fine: VecDeque::with_capacity(FINE_MAX_POINTS),
            coarse: VecDeque::with_capacity(COARSE_MAX_POINTS),
            pending: None,
        }
    }
}

impl<P: SeriesPoint> Series<P> {
    /// Adds the newest point; points older than the fine span move into the coarse history.
    /// A point not newer than the last one is ignored (time only moves forward here).
    pub fn push(&mut self, point: P) {
        if self.fine.back().is_some_and(|last| last.at() >= point.at()) {
            return;
        }
        // Make room first: the buffers keep their first allocation.
        while let Some(oldest) = self.fine.front().copied() {
            let too_old = oldest.at() <= point.at() - FINE_SPAN_MS;
            if !too_old && self.fine.len() < FINE_MAX_POINTS {
                break;
            }
            self.fine.pop_front();
            self.downsample(oldest);
        }
        self.fine.push_back(point);
        let horizon = point.at() - FINE_SPAN_MS - COARSE_SPAN_MS;
        while self.coarse.front().is_some_and(|p| p.at() <= horizon) {
            self.coarse.pop_front();
        }
    }

    fn downsample(&mut self, point: P) {
        let bucket = point.at().div_euclid(COARSE_STEP_MS);
        match &mut self.pending {
            Some((current, merged, n)) if *current == bucket => {
                *n += 1;
                merged.merge(point, *n);
            }
            _ => {
                if let Some((_, done, _)) = self.pending.replace((bucket, point, 1)) {
                    if self.coarse.len() >= COARSE_MAX_POINTS {
                        self.coarse.pop_front();
                    }
                    self.coarse.push_back(done);
                }
            }
        }
    }

    /// Every point kept, oldest first: the coarse history, the bucket being filled, the fine.
    pub fn points(&self) -> Vec<P> {
        let mut out = Vec::with_capacity(self.len());
        out.extend(self.coarse.iter().copied());
        out.extend(self.pending.map(|(_, p, _)| p));
        out.extend(self.fine.iter().copied());
        out
    }

    /// The newest `n` points at full resolution, oldest first.
    pub fn newest(&self, n: usize) -> impl Iterator<Item = &P> {
        self.fine.iter().skip(self.fine.len().saturating_sub(n))
    }

    pub fn len(&self) -> usize {
        self.coarse.len() + usize::from(self.pending.is_some()) + self.fine.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn latest(&self) -> Option<P> {
        self.fine.back().copied()
    }

    /// Bytes the series holds in its buffers (for the memory figure in docs/benchmarks.md).
    pub fn heap_bytes(&self) -> usize {
        (self.fine.capacity() + self.coarse.capacity()) * std::mem::size_of::<P>()
    }

    /// The fine points at or after `since` (ms), newest first.
    fn recent(&self, since: i64) -> impl Iterator<Item = &P> {
        // From the newest back: a few dozen points, not the whole 15 minutes.
        self.fine.iter().rev().take_while(move |p| p.at() >= since)
    }
}

/// A group's lag series, by partition.
#[derive(Debug, Clone, Default)]
struct GroupHistory {
    partitions: BTreeMap<PartitionKey, LagSeries>,
    /// Committed offset per partition at the latest sample (`None`: nothing committed).
    committed: BTreeMap<PartitionKey, Option<i64>>,
    last_seen: i64,
    now: GroupLag,
}

#[derive(Debug, Default)]
struct BookState {
    groups: BTreeMap<String, GroupHistory>,
    /// (topic, partition, offset) → the record's timestamp (ms): last sample's reads, so a
    /// group that did not move is not read again.
    timestamps: HashMap<(String, i32, i64), i64>,
    at: i64,
}

/// Every group's lag history (see the module docs).
#[derive(Debug, Default)]
pub struct LagBook {
    state: Mutex<BookState>,
}

/// What one sample cost (for the benchmark figures).
#[derive(Debug, Clone, Copy, Default)]
pub struct SampleCost {
    pub partitions: usize,
    pub timestamps_read: usize,
    pub read: Duration,
    pub record: Duration,
}

impl LagBook {
    fn lock(&self) -> MutexGuard<'_, BookState> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Reads the timestamps the lag in seconds needs, records the sample, and fills in each
    /// group's `lag` and its partitions' `lag_seconds`. A failed timestamp read is logged and
    /// leaves those partitions' seconds at their last value.
    pub async fn observe(
        &self,
        inspector: &Inspector,
        topics: &[TopicInfo],
        groups: &mut [GroupInfo],
        at: i64,
    ) -> SampleCost {
        let lows = low_watermarks(topics);
        let (wanted, mut known) = {
            let state = self.lock();
            wanted_timestamps(groups, &lows, &state.timestamps)
        };
        let started = Instant::now();
        let asked = wanted.values().map(Vec::len).sum();
        if !wanted.is_empty() {
            let inspector = inspector.clone();
            let read = tokio::task::spawn_blocking(move || {
                inspector.with_lag_reader(|reader| {
                    read_timestamps(reader, &wanted, Instant::now() + TIMESTAMP_READ_WAIT)
                })
            })
            .await;
            match read {
                Ok(Ok(found)) => known.extend(found),
                Ok(Err(error)) => tracing::debug!(%error, "lag timestamps not read"),
                Err(error) => tracing::debug!(%error, "lag timestamp task failed"),
            }
        }
        let read = started.elapsed();
        let started = Instant::now();
        self.record(at, groups, &lows, known);
        SampleCost {
            partitions: groups.iter().map(|g| g.partitions.len()).sum(),
            timestamps_read: asked,
            read,
            record: started.elapsed(),
        }
    }

    /// Records one sample taken at `at` (ms): the groups' offsets and the timestamps of the
    /// records at their positions; fills in the groups' lag figures.
    pub fn record(
        &self,
        at: i64,
        groups: &mut [GroupInfo],
        lows: &HashMap<PartitionKey, i64>,
        timestamps: HashMap<(String, i32, i64), i64>,
    ) {
        let mut state = self.lock();
        let previous_at = state.at;
        for group in groups.iter_mut() {
            let history = state.groups.entry(group.group.clone()).or_default();
            history.last_seen = at;
            for partition in &mut group.partitions {
                let key = (partition.topic.clone(), partition.partition);
                let low = lows.get(&key).copied().unwrap_or(0);
                let position = partition.committed.unwrap_or(low);
                let series = history.partitions.entry(key.clone()).or_default();
                let seconds = if partition.lag <= 0 {
                    Some(0.0)
                } else if let Some(stamp) = timestamps.get(&(key.0.clone(), key.1, position)) {
                    Some((at - stamp).max(0) as f64 / 1000.0)
                } else {
                    // Not read this time (broker slow): the same record is older by the time
                    // since the last sample, if the group did not move; if it moved, the
                    // record it waits on now is another one, of unknown age.
                    match series.latest() {
                        Some(last) if last.position == position && last.lag > 0 => last
                            .lag_seconds
                            .map(|s| f64::from(s) + (at - last.at).max(0) as f64 / 1000.0),
                        _ => None,
                    }
                };
                partition.lag_seconds = seconds.map(round_tenth);
                series.push(LagPoint {
                    at,
                    lag: partition.lag,
                    lag_seconds: partition.lag_seconds.map(|s| s as f32),
                    position,
                });
                history.committed.insert(key, partition.committed);
            }
            history.now = summarise(history, at);
            group.lag = history.now.clone();
        }
        forget_old_groups(&mut state.groups, at);
        state.timestamps = timestamps;
        state.at = at.max(previous_at);
    }

    /// One group's lag now and its history (`GET /api/kafka/groups/{group}/lag`).
    pub fn history(&self, group: &str) -> Option<GroupLagHistory> {
        let state = self.lock();
        let history = state.groups.get(group)?;
        let partitions = history
            .partitions
            .iter()
            .map(|((topic, partition), series)| {
                let latest = series.latest();
                let committed = history
                    .committed
                    .get(&(topic.clone(), *partition))
                    .copied()
                    .flatten();
                PartitionLag {
                    topic: topic.clone(),
                    partition: *partition,
                    committed,
                    high: latest.map_or(0, |p| p.position + p.lag),
                    lag: latest.map_or(0, |p| p.lag),
                    lag_seconds: latest.and_then(|p| p.lag_seconds).map(f64::from),
                    history: series.points(),
                }
            })
            .collect();
        Some(GroupLagHistory {
            group: group.to_owned(),
            at: history.last_seen,
            now: history.now.clone(),
            fine_step_secs: (FINE_STEP_MS / 1000) as u32,
            coarse_step_secs: (COARSE_STEP_MS / 1000) as u32,
            partitions,
        })
    }

    /// Fills in the latest sample's figures on groups read afresh (`GET /api/kafka/groups`),
    /// without recording them: a partition's seconds are the sample's while the group is at
    /// the same position, 0 when caught up, otherwise unknown until the next sample.
    pub fn annotate(&self, groups: &mut [GroupInfo]) {
        let state = self.lock();
        for group in groups.iter_mut() {
            let Some(history) = state.groups.get(&group.group) else {
                continue;
            };
            group.lag = history.now.clone();
            group.lag.records = group.total_lag();
            for partition in &mut group.partitions {
                let key = (partition.topic.clone(), partition.partition);
                let latest = history.partitions.get(&key).and_then(LagSeries::latest);
                let same_position = history.committed.get(&key) == Some(&partition.committed);
                partition.lag_seconds = match latest {
                    _ if partition.lag <= 0 => Some(0.0),
                    Some(point) if same_position => point.lag_seconds.map(f64::from),
                    _ => None,
                };
            }
        }
    }

    /// The groups with a history, by name.
    pub fn groups(&self) -> Vec<String> {
        self.lock().groups.keys().cloned().collect()
    }

    /// Bytes the histories hold (for the memory figure).
    pub fn heap_bytes(&self) -> usize {
        self.lock()
            .groups
            .values()
            .flat_map(|g| g.partitions.values())
            .map(LagSeries::heap_bytes)
            .sum()
    }
}

fn round_tenth(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// Low watermark per partition (where a group with nothing committed starts).
pub fn low_watermarks(topics: &[TopicInfo]) -> HashMap<PartitionKey, i64> {
    topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| ((t.name.clone(), p.id), p.low)))
        .collect()
}

/// The positions whose record timestamps the sample needs (partitions behind), split into
/// those to read and those already known from the last sample.
fn wanted_timestamps(
    groups: &[GroupInfo],
    lows: &HashMap<PartitionKey, i64>,
    cache: &HashMap<(String, i32, i64), i64>,
) -> (Wanted, Timestamps) {
    let mut wanted: BTreeMap<PartitionKey, Vec<i64>> = BTreeMap::new();
    let mut known = HashMap::new();
    for group in groups {
        for partition in group.partitions.iter().filter(|p| p.lag > 0) {
            let key = (partition.topic.clone(), partition.partition);
            let position = partition
                .committed
                .unwrap_or_else(|| lows.get(&key).copied().unwrap_or(0));
            let id = (key.0.clone(), key.1, position);
            if let Some(stamp) = cache.get(&id) {
                known.insert(id, *stamp);
            } else {
                let offsets = wanted.entry(key).or_default();
                if !offsets.contains(&position) {
                    offsets.push(position);
                }
            }
        }
    }
    (wanted, known)
}

/// Reads the timestamp of the record at each wanted offset. Each round assigns every partition
/// at its lowest offset still wanted and reads forward, picking up on the way every wanted offset
/// within [`READ_THROUGH`] records (groups at nearby positions cost one read); offsets further on
/// wait for the next round. Stops at `deadline`, with what it found.
pub fn read_timestamps(
    reader: &BaseConsumer,
    wanted: &Wanted,
    deadline: Instant,
) -> Result<Timestamps, InspectError> {
    let mut left: BTreeMap<PartitionKey, Vec<i64>> = wanted
        .iter()
        .map(|(k, offsets)| {
            let mut sorted = offsets.clone();
            sorted.sort_unstable();
            sorted.dedup();
            (k.clone(), sorted)
        })
        .collect();
    let mut found = HashMap::new();
    while !left.is_empty() && Instant::now() < deadline {
        let mut tpl = TopicPartitionList::new();
        // partition → (where this round starts, the offsets it looks for, ascending)
        let mut open: BTreeMap<PartitionKey, (i64, Vec<i64>)> = BTreeMap::new();
        for (key, offsets) in &left {
            let Some(first) = offsets.first().copied() else {
                continue;
            };
            tpl.add_partition_offset(&key.0, key.1, Offset::Offset(first))?;
            let near = offsets
                .iter()
                .copied()
                .take_while(|o| *o < first + READ_THROUGH)
                .collect();
            open.insert(key.clone(), (first, near));
        }
        reader.assign(&tpl)?;
        while !open.is_empty() && Instant::now() < deadline {
            match reader.poll(Duration::from_millis(50)) {
                Some(Ok(message)) => {
                    let key = (message.topic().to_owned(), message.partition());
                    let Some((start, looking)) = open.get_mut(&key) else {
                        continue;
                    };
                    let offset = message.offset();
                    if offset < *start {
                        // Left over from an earlier assignment.
                        continue;
                    }
                    // Every wanted offset up to this record reads this record next (the one
                    // at the offset itself, or the first after it when it was deleted).
                    let reached = looking.iter().take_while(|o| **o <= offset).count();
                    for wanted in looking.drain(..reached) {
                        if let Some(stamp) = message.timestamp().to_millis() {
                            found.insert((key.0.clone(), key.1, wanted), stamp);
                        }
                        if let Some(offsets) = left.get_mut(&key) {
                            offsets.retain(|o| *o != wanted);
                        }
                    }
                    if looking.is_empty() {
                        open.remove(&key);
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) | None => {}
                Some(Err(error)) if is_connection_event(&error) => {}
                Some(Err(error)) => return Err(error.into()),
            }
        }
        left.retain(|_, offsets| !offsets.is_empty());
    }
    Ok(found)
}

/// A group's figures now, from its partitions' latest points and the trend window.
fn summarise(history: &GroupHistory, at: i64) -> GroupLag {
    let mut records = 0;
    let mut seconds: f64 = 0.0;
    // at → (lag, position) summed over the partitions sampled then.
    let mut totals: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    let since = at - TREND_WINDOW_SECS * 1000;
    for series in history.partitions.values() {
        let Some(latest) = series.latest() else {
            continue;
        };
        if latest.at != at {
            // A partition the group no longer reads.
            continue;
        }
        records += latest.lag;
        if let Some(partition_seconds) = latest.lag_seconds {
            seconds = seconds.max(f64::from(partition_seconds));
        }
        for point in series.recent(since) {
            let total = totals.entry(point.at).or_default();
            total.0 += point.lag;
            total.1 += point.position;
        }
    }
    let window: Vec<TotalPoint> = totals
        .into_iter()
        .map(|(at, (lag, position))| TotalPoint { at, lag, position })
        .collect();
    let trend = trend_of(&window);
    let (consume_rate, produce_rate) = rates_of(&window);
    let catch_up_secs = if records == 0 {
        Some(0.0)
    } else if trend != LagTrend::Growing && consume_rate > produce_rate {
        Some(round_tenth(records as f64 / (consume_rate - produce_rate)))
    } else {
        None
    };
    GroupLag {
        records,
        seconds: round_tenth(seconds),
        trend,
        consume_rate: round_tenth(consume_rate),
        produce_rate: round_tenth(produce_rate),
        catch_up_secs,
    }
}

/// A group's total over its partitions at one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TotalPoint {
    pub at: i64,
    pub lag: i64,
    pub position: i64,
}

/// Growing, shrinking or steady: the least-squares slope of the lag over the window, times the
/// window's length, against a threshold of 5 % of the mean lag (at least 2 records).
pub fn trend_of(window: &[TotalPoint]) -> LagTrend {
    if window.len() < 2 {
        return LagTrend::Steady;
    }
    let n = window.len() as f64;
    let t0 = window[0].at;
    let xs: Vec<f64> = window.iter().map(|p| (p.at - t0) as f64 / 1000.0).collect();
    let ys: Vec<f64> = window.iter().map(|p| p.lag as f64).collect();
    let mean_x = xs.iter().sum::<f64>() / n;
    let mean_y = ys.iter().sum::<f64>() / n;
    let var_x: f64 = xs.iter().map(|x| (x - mean_x).powi(2)).sum();
    if var_x <= 0.0 {
        return LagTrend::Steady;
    }
    let cov: f64 = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    let slope = cov / var_x;
    let span = xs.last().copied().unwrap_or(0.0);
    let change = slope * span;
    let threshold = (mean_y * TREND_RELATIVE).max(TREND_MIN_RECORDS);
    if change > threshold {
        LagTrend::Growing
    } else if change < -threshold {
        LagTrend::Shrinking
    } else {
        LagTrend::Steady
    }
}

/// Records/s consumed (position growth) and produced (high watermark growth) over the window.
pub fn rates_of(window: &[TotalPoint]) -> (f64, f64) {
    let (Some(first), Some(last)) = (window.first(), window.last()) else {
        return (0.0, 0.0);
    };
    let secs = (last.at - first.at) as f64 / 1000.0;
    if secs <= 0.0 {
        return (0.0, 0.0);
    }
    let consumed = (last.position - first.position) as f64 / secs;
    let high = |p: &TotalPoint| p.position + p.lag;
    let produced = (high(last) - high(first)) as f64 / secs;
    (consumed.max(0.0), produced.max(0.0))
}

/// Drops groups not sampled for longer than the whole history span, then the least recently
/// seen past [`GROUPS_KEPT`].
fn forget_old_groups(groups: &mut BTreeMap<String, GroupHistory>, at: i64) {
    groups.retain(|_, g| g.last_seen > at - FINE_SPAN_MS - COARSE_SPAN_MS);
    while groups.len() > GROUPS_KEPT {
        let oldest = groups
            .iter()
            .min_by_key(|(_, g)| g.last_seen)
            .map(|(name, _)| name.clone());
        match oldest {
            Some(name) => groups.remove(&name),
            None => return,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::api::{GroupPartition, PartitionInfo};

    fn point(at: i64, lag: i64) -> LagPoint {
        LagPoint {
            at,
            lag,
            lag_seconds: Some(lag as f32 / 10.0),
            position: 1_000 - lag,
        }
    }

    #[test]
    fn the_recent_history_is_kept_per_second_and_older_points_per_ten_seconds() {
        let mut series = LagSeries::default();
        // 20 minutes at one point a second.
        for s in 0..1200 {
            series.push(point(s * 1000, s));
        }
        let points = series.points();
        // The last 15 minutes at 1 s: (t-900 s, t]; the 5 minutes before at 10 s.
        let fine: Vec<_> = points.iter().filter(|p| p.at > 299_000).collect();
        assert_eq!(fine.len(), 900);
        let coarse: Vec<_> = points.iter().filter(|p| p.at <= 299_000).collect();
        assert_eq!(coarse.len(), 30, "300 s at one point per 10 s");
        // Each coarse point holds its bucket's largest lag and is stamped with its last second.
        assert_eq!(coarse[0].at, 9_000);
        assert_eq!(coarse[0].lag, 9);
        assert_eq!(coarse[29].at, 299_000);
        assert_eq!(coarse[29].lag, 299);
        assert_eq!(coarse[29].position, 1_000 - 299);
        // Oldest first, strictly increasing.
        assert!(points.windows(2).all(|w| w[0].at < w[1].at));
    }

    #[test]
    fn a_spike_survives_downsampling_as_its_buckets_maximum() {
        let mut series = LagSeries::default();
        for s in 0..1000 {
            let lag = if s == 43 { 5_000 } else { 10 };
            series.push(point(s * 1000, lag));
        }
        let coarse: Vec<_> = series
            .points()
            .into_iter()
            .filter(|p| p.at <= 99_000)
            .collect();
        assert!(coarse.iter().any(|p| p.lag == 5_000 && p.at == 49_000));
        assert_eq!(coarse.iter().filter(|p| p.lag == 5_000).count(), 1);
    }

    #[test]
    fn the_history_is_bounded_in_time_and_in_points() {
        let mut series = LagSeries::default();
        // Three hours at one point a second.
        for s in 0..3 * 3600 {
            series.push(point(s * 1000, 1));
        }
        assert!(series.len() <= FINE_MAX_POINTS + COARSE_MAX_POINTS + 1);
        let oldest = series.points()[0].at;
        let newest = series.latest().map(|p| p.at).unwrap_or_default();
        assert!(
            newest - oldest <= FINE_SPAN_MS + COARSE_SPAN_MS,
            "{}",
            newest - oldest
        );
        // Faster than once a second: still bounded by count.
        let mut fast = LagSeries::default();
        for ms in 0..5_000 {
            fast.push(point(ms, 1));
        }
        assert_eq!(fast.fine.len(), FINE_MAX_POINTS);
        // The buffers never grow past their first allocation.
        assert_eq!(
            series.heap_bytes(),
            (FINE_MAX_POINTS + COARSE_MAX_POINTS) * std::mem::size_of::<LagPoint>()
        );
    }

    #[test]
    fn points_out_of_order_are_ignored() {
        let mut series = LagSeries::default();
        series.push(point(2_000, 5));
        series.push(point(1_000, 7));
        series.push(point(2_000, 9));
        assert_eq!(series.points(), vec![point(2_000, 5)]);
    }

    fn totals(lags: &[i64]) -> Vec<TotalPoint> {
        lags.iter()
            .enumerate()
            .map(|(i, lag)| TotalPoint {
                at: i as i64 * 1000,
                lag: *lag,
                position: 0,
            })
            .collect()
    }

    #[test]
    fn the_trend_reads_the_slope_against_a_threshold() {
        assert_eq!(trend_of(&totals(&[100, 110, 120, 130])), LagTrend::Growing);
        assert_eq!(
            trend_of(&totals(&[130, 120, 110, 100])),
            LagTrend::Shrinking
        );
        // A batch-sized wobble on a large lag is steady (5 % of ~1000 = 50).
        assert_eq!(
            trend_of(&totals(&[1000, 1020, 990, 1010, 1000])),
            LagTrend::Steady
        );
        // Near zero, one record either way is steady.
        assert_eq!(trend_of(&totals(&[0, 1, 0, 1])), LagTrend::Steady);
        assert_eq!(trend_of(&totals(&[5])), LagTrend::Steady);
        assert_eq!(trend_of(&[]), LagTrend::Steady);
    }

    #[test]
    fn rates_come_from_position_and_high_watermark_growth() {
        // Over 10 s the group read 500 and 300 were appended: lag fell by 200.
        let window = [
            TotalPoint {
                at: 0,
                lag: 1_000,
                position: 0,
            },
            TotalPoint {
                at: 10_000,
                lag: 800,
                position: 500,
            },
        ];
        assert_eq!(rates_of(&window), (50.0, 30.0));
        assert_eq!(rates_of(&window[..1]), (0.0, 0.0));
    }

    fn group(name: &str, committed: Option<i64>, high: i64) -> GroupInfo {
        GroupInfo {
            group: name.into(),
            state: "Empty".into(),
            members: vec![],
            partitions: vec![GroupPartition {
                topic: "reviews".into(),
                partition: 0,
                committed,
                high,
                lag: high - committed.unwrap_or(0),
                lag_seconds: None,
            }],
            lag: GroupLag::default(),
            state_history: Vec::new(),
        }
    }

    fn lows() -> HashMap<PartitionKey, i64> {
        low_watermarks(&[TopicInfo {
            name: "reviews".into(),
            partitions: vec![PartitionInfo {
                id: 0,
                low: 0,
                high: 0,
                rate: 0.0,
            }],
        }])
    }

    #[test]
    fn lag_seconds_is_the_age_of_the_next_record_to_read_and_zero_when_caught_up() {
        let book = LagBook::default();
        let mut groups = vec![group("g", Some(40), 100)];
        let stamps = HashMap::from([(("reviews".to_owned(), 0, 40), 7_000)]);
        book.record(10_000, &mut groups, &lows(), stamps);
        assert_eq!(groups[0].partitions[0].lag_seconds, Some(3.0));
        assert_eq!(groups[0].lag.seconds, 3.0);
        assert_eq!(groups[0].lag.records, 60);
        // The read failed a second later, the group did not move: one second older.
        let mut groups = vec![group("g", Some(40), 100)];
        book.record(11_000, &mut groups, &lows(), HashMap::new());
        assert_eq!(groups[0].partitions[0].lag_seconds, Some(4.0));
        // The group moved on and the new record's timestamp was not read: unknown, not 0.
        let mut groups = vec![group("g", Some(70), 100)];
        book.record(11_500, &mut groups, &lows(), HashMap::new());
        assert_eq!(groups[0].partitions[0].lag_seconds, None);
        assert_eq!(groups[0].lag.records, 30);
        // Caught up: zero, whatever was read.
        let mut groups = vec![group("g", Some(100), 100)];
        book.record(12_000, &mut groups, &lows(), HashMap::new());
        assert_eq!(groups[0].partitions[0].lag_seconds, Some(0.0));
        assert_eq!(groups[0].lag.catch_up_secs, Some(0.0));
        let history = book.history("g").expect("kept");
        assert_eq!(history.partitions[0].history.len(), 4);
        assert_eq!(history.partitions[0].high, 100);
        assert!(book.history("other").is_none());
    }

    #[test]
    fn a_group_catching_up_gets_a_time_to_catch_up() {
        let book = LagBook::default();
        // Reads 100/s, nothing appended: 1,000 behind → 900 → … shrinking.
        let mut last = Vec::new();
        for s in 0..6 {
            let mut groups = vec![group("g", Some(s * 100), 1_000)];
            book.record(s * 1000, &mut groups, &lows(), HashMap::new());
            last = groups;
        }
        let lag = &last[0].lag;
        assert_eq!(lag.trend, LagTrend::Shrinking);
        assert_eq!(lag.consume_rate, 100.0);
        assert_eq!(lag.records, 500);
        assert_eq!(lag.catch_up_secs, Some(5.0));
        // Stopped while records keep arriving: growing, no catching up.
        // (past the trend window, so only the growing part is in it)
        for s in 6..40 {
            let mut groups = vec![group("g", Some(500), 1_000 + (s - 5) * 100)];
            book.record(s * 1000, &mut groups, &lows(), HashMap::new());
            last = groups;
        }
        assert_eq!(last[0].lag.trend, LagTrend::Growing);
        assert_eq!(last[0].lag.catch_up_secs, None);
    }

    #[test]
    fn the_timestamps_to_read_skip_caught_up_partitions_and_cached_positions() {
        let groups = vec![
            group("a", Some(40), 100),
            group("b", Some(40), 100),
            group("c", None, 100),
            group("d", Some(100), 100),
        ];
        let cache = HashMap::from([(("reviews".to_owned(), 0, 0), 1)]);
        let (wanted, known) = wanted_timestamps(&groups, &lows(), &cache);
        assert_eq!(
            wanted,
            BTreeMap::from([(("reviews".to_owned(), 0), vec![40])])
        );
        assert_eq!(known.len(), 1);
    }

    #[test]
    fn groups_not_seen_for_the_whole_span_are_forgotten() {
        let book = LagBook::default();
        book.record(0, &mut [group("old", Some(0), 0)], &lows(), HashMap::new());
        let later = FINE_SPAN_MS + COARSE_SPAN_MS + 1;
        book.record(
            later,
            &mut [group("new", Some(0), 0)],
            &lows(),
            HashMap::new(),
        );
        assert_eq!(book.groups(), vec!["new".to_owned()]);
    }
}
