//! Window state across micro-batches: which records are late or duplicates, what each window
//! holds, when the watermark closes it, and what each output mode emits.
//!
//! Tumbling and sliding windows of a batch are computed by Polars ([`super::frame`]) and merged
//! here (counts and sums add up). Session windows (per business) are merged here directly: a
//! batch's events can join, extend or bridge sessions of earlier batches.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use app::api::{
    DatasetKind, OutputMode, Sentiment, SentimentCounts, TermCount, WindowKind, WindowRow,
};
use serde::{Deserialize, Serialize};

/// Closed windows kept for display, per kind.
const CLOSED_KEPT: usize = 120;
/// Businesses listed per window.
const TOP_BUSINESSES: usize = 3;
/// Hashtags listed per window.
pub const TOP_HASHTAGS: usize = 5;
/// Countries, and industries, listed per window of companies: seed 002's dashboard groups by
/// six of each, so a window of generated companies lists them all (a file with more countries
/// shows its top six).
pub const TOP_COMPANY_GROUPS: usize = 6;

/// One enriched review (or labelled tweet, or company), reduced to what the windows need.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub review_id: String,
    /// Event or processing time, milliseconds since the Unix epoch.
    pub time: i64,
    /// `None` for a record sentiment skipped (a company: no text to classify).
    pub sentiment: Option<Sentiment>,
    pub score: f64,
    pub stars: u8,
    /// The record key: a review's business, a tweet's user. Sessions are per key.
    pub business_id: String,
    /// Which dataset the record is from: a window lists a review's business, a tweet's hashtags.
    pub dataset: DatasetKind,
    /// A tweet's hashtags (empty for a review).
    pub hashtags: Vec<String>,
    /// A company's country and industry (`None` for a review or a tweet).
    pub country: Option<String>,
    pub industry: Option<String>,
}

/// Window sizes in milliseconds, the watermark delay and the output mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    pub tumbling_ms: i64,
    pub sliding_ms: i64,
    pub slide_ms: i64,
    pub gap_ms: i64,
    pub lateness_ms: i64,
    pub mode: OutputMode,
}

/// What a window has counted; adding two gives the aggregate of both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Agg {
    /// Per sentiment, in [`Sentiment::ALL`] order.
    pub counts: [u64; 3],
    pub score_sum: f64,
    pub stars_sum: u64,
    /// Per stars value, 1★ … 5★.
    pub stars: [u64; 5],
    /// Sum of scores per stars value, 1★ … 5★ (for the average score per stars value).
    #[serde(default)]
    pub score_by_stars: [f64; 5],
    pub businesses: BTreeMap<String, u64>,
    /// Tweets per hashtag (a tweet with three hashtags counts once for each). Never cut down
    /// like `businesses`: a hashtag's tweets are spread over partitions (tweets are keyed by
    /// user), so a partition's top hashtags need not hold the merged top ones.
    #[serde(default)]
    pub hashtags: BTreeMap<String, u64>,
    /// Records counted without a label (companies: sentiment skipped them, no text).
    #[serde(default)]
    pub unlabelled: u64,
    /// Companies per country and per industry. Never cut down either: companies are keyed by
    /// id, so one country's companies are spread over partitions.
    #[serde(default)]
    pub countries: BTreeMap<String, u64>,
    #[serde(default)]
    pub industries: BTreeMap<String, u64>,
}

/// Adds `theirs` to `mine`, key by key.
fn add_counts(mine: &mut BTreeMap<String, u64>, theirs: &BTreeMap<String, u64>) {
    for (key, count) in theirs {
        *mine.entry(key.clone()).or_default() += count;
    }
}

impl Agg {
    pub fn add(&mut self, event: &Event) {
        match event.sentiment {
            Some(sentiment) => {
                self.counts[sentiment.index()] += 1;
                self.score_sum += event.score;
            }
            None => self.unlabelled += 1,
        }
        self.stars_sum += u64::from(event.stars);
        let star = usize::from(event.stars).wrapping_sub(1);
        if let (Some(count), Some(sum)) =
            (self.stars.get_mut(star), self.score_by_stars.get_mut(star))
        {
            *count += 1;
            *sum += event.score;
        }
        match event.dataset {
            // A tweet's user is its key (sessions per user), not a business to list.
            DatasetKind::Tweets => {
                for tag in &event.hashtags {
                    *self.hashtags.entry(tag.clone()).or_default() += 1;
                }
            }
            // A company's id is its key (sessions per company), not a business to list.
            DatasetKind::Companies => {
                for (counts, value) in [
                    (&mut self.countries, &event.country),
                    (&mut self.industries, &event.industry),
                ] {
                    if let Some(value) = value {
                        *counts.entry(value.clone()).or_default() += 1;
                    }
                }
            }
            DatasetKind::Yelp => {
                *self
                    .businesses
                    .entry(event.business_id.clone())
                    .or_default() += 1;
            }
        }
    }

    pub fn merge(&mut self, other: &Agg) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
        self.score_sum += other.score_sum;
        self.stars_sum += other.stars_sum;
        for (mine, theirs) in self.stars.iter_mut().zip(other.stars) {
            *mine += theirs;
        }
        for (mine, theirs) in self.score_by_stars.iter_mut().zip(other.score_by_stars) {
            *mine += theirs;
        }
        self.unlabelled += other.unlabelled;
        add_counts(&mut self.businesses, &other.businesses);
        add_counts(&mut self.hashtags, &other.hashtags);
        add_counts(&mut self.countries, &other.countries);
        add_counts(&mut self.industries, &other.industries);
    }

    /// Records with a sentiment label.
    pub fn labelled(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Every record counted, labelled or not.
    pub fn total(&self) -> u64 {
        self.labelled() + self.unlabelled
    }

    /// Keeps only the `n` businesses a window lists (most reviews first, then by id). Done when
    /// a window closes, to bound the state: a business's reviews are all in one input partition
    /// (the record key), so the top `n` of the merged partitions are among each one's top `n`.
    pub fn keep_top_businesses(&mut self, n: usize) {
        if self.businesses.len() <= n {
            return;
        }
        let mut ranked: Vec<(String, u64)> =
            std::mem::take(&mut self.businesses).into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(n);
        self.businesses = ranked.into_iter().collect();
    }
}

/// A window: its kind, bounds (`start` inclusive, `end` exclusive) and, for sessions, business.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WindowId {
    pub kind: WindowKind,
    pub start: i64,
    pub end: i64,
    pub key: Option<String>,
}

impl WindowId {
    /// The record key in `reviews.aggregates`: the same window always has the same key.
    pub fn record_key(&self) -> String {
        match &self.key {
            Some(key) => format!("{}:{key}:{}", self.kind.as_str(), self.start),
            None => format!("{}:{}:{}", self.kind.as_str(), self.start, self.end),
        }
    }
}

/// One result written to `reviews.aggregates`.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    pub window: WindowId,
    pub agg: Agg,
    pub closed: bool,
    /// In update mode, what the window held before this batch when a result of it was already
    /// written (same record key): this result replaces that one (−U / +U in Flink's changelog).
    /// `None` for a window's first result, and in append and complete mode.
    pub previous: Option<Agg>,
    /// In update mode, a session result written earlier that no longer exists: a later event
    /// bridged it into another session, or moved its start (its record key). `agg` is what
    /// that result said; Flink's changelog withdraws it with −D.
    pub retract: bool,
}

/// What the windows a batch changes held before it (update mode), by record key: tumbling and
/// sliding windows by id, sessions by business and start (a session that grows keeps its key).
#[derive(Default)]
struct Before {
    windows: BTreeMap<WindowId, Agg>,
    /// (business, start) → (end, aggregate): the sessions of the batch's businesses as the
    /// previous trigger left them (each of them was written then).
    sessions: BTreeMap<(String, i64), (i64, Agg)>,
}

/// What one batch did.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub emitted: Vec<Emitted>,
    /// Records behind the watermark, in arrival order.
    pub late: Vec<Event>,
    pub duplicates: u64,
    pub counted: u64,
}

/// Everything the stage remembers between batches; checkpointed after each one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowState {
    /// Tumbling and sliding windows not yet closed (or all of them in complete mode).
    #[serde(with = "as_pairs")]
    pub open: BTreeMap<WindowId, Agg>,
    /// Session windows per business, not yet closed, sorted by start.
    pub sessions: BTreeMap<String, Vec<(i64, i64, Agg)>>,
    /// The latest closed windows, for display.
    pub closed: VecDeque<(WindowId, Agg)>,
    pub watermark: Option<i64>,
    pub max_event_time: Option<i64>,
    /// `review_id` → time, for records not yet behind the watermark (dedup horizon).
    pub seen: HashMap<String, i64>,
    pub late: u64,
    pub duplicates: u64,
    pub counted: u64,
    /// Per kind, the start of the latest closed window no longer kept for display: merging
    /// partitions leaves out windows that some partition has already forgotten.
    #[serde(default)]
    pub forgotten_through: BTreeMap<WindowKind, i64>,
}

/// The sessions written by an earlier trigger whose record key is gone after this batch
/// (bridged into another session, or their start moved earlier): each is withdrawn.
fn retractions(before: &Before, live: &BTreeSet<WindowId>) -> Vec<Emitted> {
    let live_keys: BTreeSet<(&str, i64)> = live
        .iter()
        .filter_map(|w| Some((w.key.as_deref()?, w.start)))
        .collect();
    before
        .sessions
        .iter()
        .filter(|((business, start), _)| !live_keys.contains(&(business.as_str(), *start)))
        .map(|((business, start), (end, agg))| Emitted {
            window: WindowId {
                kind: WindowKind::Session,
                start: *start,
                end: *end,
                key: Some(business.clone()),
            },
            agg: agg.clone(),
            closed: false,
            previous: None,
            retract: true,
        })
        .collect()
}

/// Per-window partial aggregates of one batch, as Polars computes them.
pub type Partials = Vec<(WindowId, Agg)>;

impl WindowState {
    /// Folds one batch into the state. `partials` computes the batch's tumbling and sliding
    /// windows (Polars); everything else happens here.
    pub fn process<E>(
        &mut self,
        spec: &Spec,
        events: Vec<Event>,
        partials: impl FnOnce(&[Event]) -> Result<Partials, E>,
    ) -> Result<BatchOutcome, E> {
        let mut outcome = BatchOutcome::default();
        let kept = self.admit(events, spec.lateness_ms, &mut outcome);
        let mut changed: BTreeSet<WindowId> = BTreeSet::new();
        let track = spec.mode == OutputMode::Update;
        let mut before = Before::default();
        for (window, agg) in partials(&kept)? {
            if track && let Some(old) = self.open.get(&window) {
                before
                    .windows
                    .entry(window.clone())
                    .or_insert_with(|| old.clone());
            }
            self.open.entry(window.clone()).or_default().merge(&agg);
            changed.insert(window);
        }
        let mut seen_businesses = BTreeSet::new();
        for event in &kept {
            // A business's sessions as they were before this batch: at its first event only, so
            // a session this batch created is never taken for one written earlier.
            if track
                && seen_businesses.insert(event.business_id.as_str())
                && let Some(sessions) = self.sessions.get(&event.business_id)
            {
                for (start, end, agg) in sessions {
                    before
                        .sessions
                        .insert((event.business_id.clone(), *start), (*end, agg.clone()));
                }
            }
            changed.insert(self.add_to_session(event, spec.gap_ms));
        }
        // A session that was later merged into another no longer exists: emit only live ones.
        let live_sessions = self.session_ids();
        changed.retain(|w| w.kind != WindowKind::Session || live_sessions.contains(w));
        if track {
            outcome.emitted = retractions(&before, &live_sessions);
        }
        outcome
            .emitted
            .extend(self.emit(spec.mode, &changed, &before));
        self.forget_seen_behind_watermark();
        Ok(outcome)
    }

    /// Splits off late records and duplicates; returns the records to count.
    ///
    /// The watermark moves after every counted record (Kafka Streams' "stream time" minus the
    /// grace period), not at the end of the batch: whether a record is late then depends only on
    /// the records before it in its partition, never on where a trigger happened to cut the
    /// stream — so a restart, a rebalance or another process reading the partition decides the
    /// same way.
    fn admit(
        &mut self,
        events: Vec<Event>,
        lateness_ms: i64,
        outcome: &mut BatchOutcome,
    ) -> Vec<Event> {
        let mut kept = Vec::with_capacity(events.len());
        for event in events {
            if self.watermark.is_some_and(|w| event.time < w) {
                self.late += 1;
                outcome.late.push(event);
            } else if self.seen.contains_key(&event.review_id) {
                self.duplicates += 1;
                outcome.duplicates += 1;
            } else {
                self.seen.insert(event.review_id.clone(), event.time);
                self.counted += 1;
                outcome.counted += 1;
                let max = self
                    .max_event_time
                    .map_or(event.time, |m| m.max(event.time));
                self.max_event_time = Some(max);
                // The watermark only moves forward.
                let candidate = max - lateness_ms;
                self.watermark = Some(self.watermark.map_or(candidate, |w| w.max(candidate)));
                kept.push(event);
            }
        }
        kept
    }

    /// Adds an event to its business's session, extending or bridging sessions as needed.
    fn add_to_session(&mut self, event: &Event, gap: i64) -> WindowId {
        let sessions = self.sessions.entry(event.business_id.clone()).or_default();
        let mut merged = (event.time, event.time + gap, Agg::default());
        merged.2.add(event);
        // Every session this event's own [t, t + gap) touches joins it.
        let (touching, rest): (Vec<_>, Vec<_>) = std::mem::take(sessions)
            .into_iter()
            .partition(|(start, end, _)| *start < merged.1 && merged.0 < *end);
        for (start, end, agg) in touching {
            merged.0 = merged.0.min(start);
            merged.1 = merged.1.max(end);
            merged.2.merge(&agg);
        }
        *sessions = rest;
        let id = WindowId {
            kind: WindowKind::Session,
            start: merged.0,
            end: merged.1,
            key: Some(event.business_id.clone()),
        };
        let position = sessions.partition_point(|(start, _, _)| *start < merged.0);
        sessions.insert(position, merged);
        id
    }

    fn session_ids(&self) -> BTreeSet<WindowId> {
        self.sessions
            .iter()
            .flat_map(|(business, sessions)| {
                sessions.iter().map(|(start, end, _)| WindowId {
                    kind: WindowKind::Session,
                    start: *start,
                    end: *end,
                    key: Some(business.clone()),
                })
            })
            .collect()
    }

    fn session(&self, id: &WindowId) -> Option<&Agg> {
        let sessions = self.sessions.get(id.key.as_deref()?)?;
        sessions
            .iter()
            .find(|(start, end, _)| *start == id.start && *end == id.end)
            .map(|(_, _, agg)| agg)
    }

    fn agg(&self, id: &WindowId) -> Option<&Agg> {
        match id.kind {
            WindowKind::Session => self.session(id),
            _ => self.open.get(id),
        }
    }

    fn is_closed(&self, id: &WindowId) -> bool {
        self.watermark.is_some_and(|w| id.end <= w)
    }

    /// What the output mode emits now; closed windows leave the state (except in complete mode).
    fn emit(
        &mut self,
        mode: OutputMode,
        changed: &BTreeSet<WindowId>,
        before: &Before,
    ) -> Vec<Emitted> {
        let all: Vec<WindowId> = self
            .open
            .keys()
            .cloned()
            .chain(self.session_ids())
            .collect();
        let chosen: Vec<&WindowId> = match mode {
            OutputMode::Append => all.iter().filter(|w| self.is_closed(w)).collect(),
            OutputMode::Update => all.iter().filter(|w| changed.contains(*w)).collect(),
            OutputMode::Complete => all.iter().collect(),
        };
        let emitted = chosen
            .into_iter()
            .filter_map(|window| {
                let previous = match (&window.kind, &window.key) {
                    (WindowKind::Session, Some(business)) => before
                        .sessions
                        .get(&(business.clone(), window.start))
                        .map(|(_, agg)| agg),
                    _ => before.windows.get(window),
                };
                Some(Emitted {
                    window: window.clone(),
                    agg: self.agg(window)?.clone(),
                    closed: self.is_closed(window),
                    previous: previous.cloned(),
                    retract: false,
                })
            })
            .collect();
        if mode != OutputMode::Complete {
            self.evict_closed(&all);
        }
        emitted
    }

    fn evict_closed(&mut self, all: &[WindowId]) {
        let closed: Vec<&WindowId> = all.iter().filter(|w| self.is_closed(w)).collect();
        for window in closed {
            let agg = match window.kind {
                WindowKind::Session => {
                    let Some(sessions) = window.key.as_ref().and_then(|k| self.sessions.get_mut(k))
                    else {
                        continue;
                    };
                    let Some(i) = sessions
                        .iter()
                        .position(|(s, e, _)| *s == window.start && *e == window.end)
                    else {
                        continue;
                    };
                    sessions.remove(i).2
                }
                _ => match self.open.remove(window) {
                    Some(agg) => agg,
                    None => continue,
                },
            };
            let mut agg = agg;
            agg.keep_top_businesses(TOP_BUSINESSES);
            self.closed.push_back((window.clone(), agg));
        }
        self.sessions.retain(|_, sessions| !sessions.is_empty());
        self.trim_closed();
    }

    fn trim_closed(&mut self) {
        for kind in WindowKind::ALL {
            let kept = self.closed.iter().filter(|(w, _)| w.kind == kind).count();
            let mut excess = kept.saturating_sub(CLOSED_KEPT);
            let forgotten = &mut self.forgotten_through;
            self.closed.retain(|(w, _)| {
                if w.kind == kind && excess > 0 {
                    excess -= 1;
                    let through = forgotten.entry(kind).or_insert(w.start);
                    *through = (*through).max(w.start);
                    false
                } else {
                    true
                }
            });
        }
    }

    fn forget_seen_behind_watermark(&mut self) {
        if let Some(watermark) = self.watermark {
            self.seen.retain(|_, time| *time >= watermark);
        }
    }

    /// Every window the state holds, open or closed and kept for display, with its aggregate.
    pub fn windows(&self) -> impl Iterator<Item = (WindowId, &Agg)> {
        let sessions = self.sessions.iter().flat_map(|(business, sessions)| {
            sessions.iter().map(|(start, end, agg)| {
                let id = WindowId {
                    kind: WindowKind::Session,
                    start: *start,
                    end: *end,
                    key: Some(business.clone()),
                };
                (id, agg)
            })
        });
        self.closed
            .iter()
            .map(|(w, a)| (w.clone(), a))
            .chain(self.open.iter().map(|(w, a)| (w.clone(), a)))
            .chain(sessions)
    }
}

/// JSON objects need string keys: a map keyed by window is stored as a list of pairs.
mod as_pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::{Agg, WindowId};

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<WindowId, Agg>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<WindowId, Agg>, D::Error> {
        let pairs: Vec<(WindowId, Agg)> = Vec::deserialize(deserializer)?;
        Ok(pairs.into_iter().collect())
    }
}

/// A window as the API shows it.
pub fn row(window: &WindowId, agg: &Agg, closed: bool) -> WindowRow {
    // The average score is over labelled records: none in a window of companies.
    let n = agg.labelled();
    let counts: SentimentCounts = Sentiment::ALL
        .iter()
        .map(|s| (*s, agg.counts[s.index()]))
        .collect();
    let starred: u64 = agg.stars.iter().sum();
    WindowRow {
        kind: window.kind,
        start: window.start,
        end: window.end,
        key: window.key.clone(),
        counts,
        unlabelled: agg.unlabelled,
        avg_score: (n > 0).then(|| agg.score_sum / n as f64),
        // Over the records with stars only: a tweet has none (every review has 1–5).
        avg_stars: (starred > 0).then(|| agg.stars_sum as f64 / starred as f64),
        stars: agg.stars,
        avg_score_by_stars: std::array::from_fn(|i| {
            (agg.stars[i] > 0).then(|| agg.score_by_stars[i] / agg.stars[i] as f64)
        }),
        top_businesses: top(&agg.businesses, TOP_BUSINESSES),
        top_hashtags: top(&agg.hashtags, TOP_HASHTAGS),
        top_countries: top(&agg.countries, TOP_COMPANY_GROUPS),
        top_industries: top(&agg.industries, TOP_COMPANY_GROUPS),
        closed,
    }
}

/// The `n` keys with the highest counts, most first, ties by key (so every partitioning of the
/// same records lists the same ones).
fn top(counts: &BTreeMap<String, u64>, n: usize) -> Vec<TermCount> {
    let mut ranked: Vec<TermCount> = counts
        .iter()
        .map(|(key, count)| TermCount {
            key: key.clone(),
            count: *count,
        })
        .collect();
    ranked.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    ranked.truncate(n);
    ranked
}

/// Tumbling and sliding windows computed one event at a time: the reference the Polars
/// computation is tested against, and a fallback-free way to state what a window is.
pub fn reference_partials(events: &[Event], spec: &Spec) -> Partials {
    let mut windows: BTreeMap<WindowId, Agg> = BTreeMap::new();
    for event in events {
        for (kind, size, every) in [
            (WindowKind::Tumbling, spec.tumbling_ms, spec.tumbling_ms),
            (WindowKind::Sliding, spec.sliding_ms, spec.slide_ms),
        ] {
            // Windows start at multiples of `every`; the event is in those starting within
            // (time − size, time].
            let last = event.time.div_euclid(every) * every;
            let mut start = last;
            while start > event.time - size {
                let id = WindowId {
                    kind,
                    start,
                    end: start + size,
                    key: None,
                };
                windows.entry(id).or_default().add(event);
                start -= every;
            }
        }
    }
    windows.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn event(id: &str, minute_tenths: i64, sentiment: Sentiment, business: &str) -> Event {
        Event {
            review_id: id.into(),
            time: minute_tenths * MIN / 10,
            sentiment: Some(sentiment),
            score: match sentiment {
                Sentiment::Positive => 0.5,
                Sentiment::Negative => -0.5,
                Sentiment::Neutral => 0.0,
            },
            stars: match sentiment {
                Sentiment::Positive => 5,
                Sentiment::Negative => 1,
                Sentiment::Neutral => 3,
            },
            business_id: business.into(),
            dataset: DatasetKind::Yelp,
            hashtags: Vec::new(),
            country: None,
            industry: None,
        }
    }

    /// A company as the windows see it: no label, no stars, its country and industry.
    fn company(id: &str, minute_tenths: i64, country: &str, industry: &str) -> Event {
        Event {
            sentiment: None,
            score: 0.0,
            stars: 0,
            dataset: DatasetKind::Companies,
            country: Some(country.into()),
            industry: Some(industry.into()),
            ..event(id, minute_tenths, Sentiment::Neutral, id)
        }
    }

    fn spec(mode: OutputMode) -> Spec {
        Spec {
            tumbling_ms: MIN,
            sliding_ms: MIN,
            slide_ms: MIN / 2,
            gap_ms: MIN,
            lateness_ms: MIN,
            mode,
        }
    }

    /// Lateness wide enough that no test event is late: sessions can be bridged from behind.
    fn spec_with_wide_lateness(mode: OutputMode) -> Spec {
        Spec {
            lateness_ms: 10 * MIN,
            ..spec(mode)
        }
    }

    fn process(state: &mut WindowState, spec: &Spec, events: Vec<Event>) -> BatchOutcome {
        state
            .process(spec, events, |kept| {
                Ok::<_, ()>(reference_partials(kept, spec))
            })
            .expect("process")
    }

    /// (kind, start minute ×10, end minute ×10, total) of the emitted windows.
    fn summary(emitted: &[Emitted]) -> Vec<(WindowKind, i64, i64, u64)> {
        emitted
            .iter()
            .map(|e| {
                (
                    e.window.kind,
                    e.window.start * 10 / MIN,
                    e.window.end * 10 / MIN,
                    e.agg.total(),
                )
            })
            .collect()
    }

    use Sentiment::{Negative as N, Positive as P};
    use WindowKind::{Session as Se, Sliding as Sl, Tumbling as Tu};

    #[test]
    fn tumbling_and_sliding_windows_by_hand() {
        // Events at 0.2, 0.7, 1.1 and 2.5 minutes.
        let events = vec![
            event("a", 2, P, "b1"),
            event("b", 7, N, "b1"),
            event("c", 11, P, "b2"),
            event("d", 25, P, "b1"),
        ];
        let partials = reference_partials(&events, &spec(OutputMode::Update));
        let got: Vec<_> = partials
            .iter()
            .map(|(w, a)| (w.kind, w.start * 10 / MIN, w.end * 10 / MIN, a.counts))
            .collect();
        assert_eq!(
            got,
            [
                // Tumbling 1 min: [0,1) a b · [1,2) c · [2,3) d
                (Tu, 0, 10, [1, 1, 0]),
                (Tu, 10, 20, [1, 0, 0]),
                (Tu, 20, 30, [1, 0, 0]),
                // Sliding 1 min every 30 s: [-0.5,0.5) a · [0,1) a b · [0.5,1.5) b c ·
                // [1,2) c · [2,3) d · [2.5,3.5) d
                (Sl, -5, 5, [1, 0, 0]),
                (Sl, 0, 10, [1, 1, 0]),
                (Sl, 5, 15, [1, 1, 0]),
                (Sl, 10, 20, [1, 0, 0]),
                (Sl, 20, 30, [1, 0, 0]),
                (Sl, 25, 35, [1, 0, 0]),
            ]
        );
    }

    #[test]
    fn append_emits_each_window_once_when_the_watermark_passes_it() {
        let spec = spec(OutputMode::Append);
        let mut state = WindowState::default();
        let first = process(
            &mut state,
            &spec,
            vec![event("a", 2, P, "b1"), event("b", 7, N, "b1")],
        );
        // max 0.7, watermark −0.3: nothing closed yet.
        assert!(first.emitted.is_empty());
        assert_eq!(state.watermark, Some(-3 * MIN / 10));

        let second = process(&mut state, &spec, vec![event("c", 25, P, "b2")]);
        // max 2.5, watermark 1.5: closes tumbling [0,1), sliding [-0.5,0.5) [0,1) [0.5,1.5),
        // and b1's session [0.2, 1.7)? No: it ends at 0.7 + 1 = 1.7 > 1.5, still open.
        assert_eq!(
            summary(&second.emitted),
            [
                (Tu, 0, 10, 2),
                (Sl, -5, 5, 1),
                (Sl, 0, 10, 2),
                (Sl, 5, 15, 1)
            ]
        );
        let third = process(&mut state, &spec, vec![event("d", 40, N, "b2")]);
        // watermark 3.0: closes tumbling [2,3), sliding [2,3) and b1's session [0.2,1.7).
        assert_eq!(
            summary(&third.emitted),
            [(Tu, 20, 30, 1), (Sl, 20, 30, 1), (Se, 2, 17, 2)]
        );
        // Nothing is emitted twice.
        let again = process(&mut state, &spec, vec![]);
        assert!(again.emitted.is_empty());
    }

    #[test]
    fn update_emits_changed_windows_and_complete_emits_all() {
        let mut update = WindowState::default();
        let spec_u = spec(OutputMode::Update);
        process(&mut update, &spec_u, vec![event("a", 2, P, "b1")]);
        let out = process(&mut update, &spec_u, vec![event("b", 4, N, "b1")]);
        // b changes tumbling [0,1), sliding [-0.5,0.5) and [0,1), and b1's session.
        assert_eq!(
            summary(&out.emitted),
            [
                (Tu, 0, 10, 2),
                (Sl, -5, 5, 2),
                (Sl, 0, 10, 2),
                (Se, 2, 14, 2)
            ]
        );

        // Each is an update of a result written by the first batch (same record key: the
        // session grew from [0.2, 1.2) to [0.2, 1.4) and kept its start), and says what it
        // replaces; the first batch's results were inserts.
        assert!(
            out.emitted
                .iter()
                .all(|e| e.previous.as_ref().map(Agg::total) == Some(1))
        );
        let first = process(&mut update, &spec_u, vec![event("c", 25, P, "b2")]);
        assert!(first.emitted.iter().all(|e| e.previous.is_none()));

        let mut complete = WindowState::default();
        let spec_c = spec(OutputMode::Complete);
        process(&mut complete, &spec_c, vec![event("a", 2, P, "b1")]);
        process(&mut complete, &spec_c, vec![event("b", 40, N, "b2")]);
        let out = process(&mut complete, &spec_c, vec![]);
        // Everything ever seen, closed or not, 4 windows per event: complete mode never evicts.
        assert_eq!(out.emitted.len(), 8);
        assert!(out.emitted.iter().any(|e| e.closed));
        assert!(out.emitted.iter().any(|e| !e.closed));
        // Complete mode rewrites the whole table: no result replaces one in particular.
        assert!(out.emitted.iter().all(|e| e.previous.is_none()));
    }

    #[test]
    fn late_records_are_counted_and_set_aside_and_duplicates_skipped() {
        let spec = spec(OutputMode::Update);
        let mut state = WindowState::default();
        process(&mut state, &spec, vec![event("a", 50, P, "b1")]);
        // Watermark 4.0: an event at 3.5 is late, one at 4.5 is not; "a" again is a duplicate.
        let out = process(
            &mut state,
            &spec,
            vec![
                event("x", 35, N, "b1"),
                event("y", 45, N, "b1"),
                event("a", 50, P, "b1"),
            ],
        );
        assert_eq!(out.late.len(), 1);
        assert_eq!(out.late[0].review_id, "x");
        assert_eq!(out.duplicates, 1);
        assert_eq!(out.counted, 1);
        assert_eq!((state.late, state.duplicates, state.counted), (1, 1, 2));
    }

    #[test]
    fn sessions_extend_and_bridge_across_batches() {
        let spec = spec_with_wide_lateness(OutputMode::Update);
        let mut state = WindowState::default();
        process(
            &mut state,
            &spec,
            vec![
                event("a", 0, P, "b1"),
                event("b", 18, P, "b1"),
                event("c", 5, P, "b2"),
            ],
        );
        // b1 has two sessions, [0,1) and [1.8,2.8); b2 one.
        assert_eq!(state.sessions["b1"].len(), 2);
        // An event at 0.9 is within the gap of both: it bridges them into [0, 2.8).
        let out = process(&mut state, &spec, vec![event("d", 9, N, "b1")]);
        assert_eq!(state.sessions["b1"].len(), 1);
        let (start, end, agg) = &state.sessions["b1"][0];
        assert_eq!((*start, *end, agg.total()), (0, 28 * MIN / 10, 3));
        assert!(summary(&out.emitted).contains(&(Se, 0, 28, 3)));
        // Update mode: [0,1) grows into [0, 2.8) (same key: −U/+U), and [1.8, 2.8), written by
        // the first trigger, is gone: withdrawn with what it said.
        let sessions: Vec<_> = out
            .emitted
            .iter()
            .filter(|e| e.window.kind == Se)
            .map(|e| {
                (
                    e.window.start,
                    e.agg.total(),
                    e.previous.as_ref().map(Agg::total),
                    e.retract,
                )
            })
            .collect();
        assert_eq!(
            sessions,
            [(18 * MIN / 10, 1, None, true), (0, 3, Some(1), false)]
        );
    }

    #[test]
    fn a_session_created_and_merged_in_one_batch_is_never_withdrawn() {
        let spec = spec_with_wide_lateness(OutputMode::Update);
        let mut state = WindowState::default();
        // Two sessions of b1 start in this batch, then a third event bridges them: nothing of
        // it was written before, so one insert and no withdrawal.
        let out = process(
            &mut state,
            &spec,
            vec![
                event("a", 0, P, "b1"),
                event("b", 18, P, "b1"),
                event("c", 9, N, "b1"),
            ],
        );
        let sessions: Vec<_> = out.emitted.iter().filter(|e| e.window.kind == Se).collect();
        assert_eq!(sessions.len(), 1);
        assert!(!sessions[0].retract && sessions[0].previous.is_none());
        // An event before the session moves its start: its record key changes, so the old
        // result is withdrawn and the new one inserted.
        let out = process(&mut state, &spec, vec![event("d", -5, P, "b1")]);
        let sessions: Vec<_> = out
            .emitted
            .iter()
            .filter(|e| e.window.kind == Se)
            .map(|e| (e.window.start, e.agg.total(), e.retract))
            .collect();
        assert_eq!(sessions, [(0, 3, true), (-5 * MIN / 10, 4, false)]);
    }

    #[test]
    fn a_tweet_window_lists_its_top_hashtags_and_no_user() {
        let tweet = |id: &str, user: &str, tags: &[&str]| Event {
            dataset: DatasetKind::Tweets,
            stars: 0,
            hashtags: tags.iter().map(|t| (*t).to_owned()).collect(),
            ..event(id, 1, P, user)
        };
        let mut agg = Agg::default();
        for (i, tags) in [
            &["#a", "#b"][..],
            &["#a"],
            &["#c", "#a"],
            &["#b"],
            &["#d"],
            &["#e"],
            &["#f"],
            &[],
        ]
        .iter()
        .enumerate()
        {
            agg.add(&tweet(&format!("t{i}"), "ana", tags));
        }
        // Partitions' shares add up, hashtag by hashtag.
        let mut other = Agg::default();
        other.add(&tweet("t9", "bo", &["#f", "#f2"]));
        agg.merge(&other);
        let window = WindowId {
            kind: Tu,
            start: 0,
            end: MIN,
            key: None,
        };
        let shown = row(&window, &agg, false);
        let listed: Vec<(&str, u64)> = shown
            .top_hashtags
            .iter()
            .map(|t| (t.key.as_str(), t.count))
            .collect();
        // Most first, ties by tag, five at most.
        assert_eq!(
            listed,
            [("#a", 3), ("#b", 2), ("#f", 2), ("#c", 1), ("#d", 1)]
        );
        assert!(shown.top_businesses.is_empty(), "a user is not a business");
        assert_eq!((shown.total(), shown.avg_stars), (9, None));
    }

    #[test]
    fn a_company_window_counts_countries_and_industries_and_no_sentiment() {
        // Two partitions' shares of one window: companies are keyed by id, so one country's
        // companies are in both, and a partition's top five need not hold the merged top five.
        let mut first = Agg::default();
        for (i, (country, industry)) in [
            ("France", "Retail"),
            ("France", "Retail"),
            ("Chile", "Energy"),
            ("Peru", "Energy"),
            ("Japan", "Media"),
            ("Kenya", "Media"),
            ("Oman", "Mining"),
        ]
        .iter()
        .enumerate()
        {
            first.add(&company(&format!("a{i}"), 1, country, industry));
        }
        let mut second = Agg::default();
        for (i, (country, industry)) in [
            ("Spain", "Energy"),
            ("Spain", "Farming"),
            ("Spain", "Farming"),
            ("Chile", "Banking"),
        ]
        .iter()
        .enumerate()
        {
            second.add(&company(&format!("b{i}"), 1, country, industry));
        }
        first.merge(&second);
        let window = WindowId {
            kind: Tu,
            start: 0,
            end: MIN,
            key: None,
        };
        let shown = row(&window, &first, false);
        let listed = |terms: &[TermCount]| -> Vec<(String, u64)> {
            terms.iter().map(|t| (t.key.clone(), t.count)).collect()
        };
        let pairs = |items: &[(&str, u64)]| -> Vec<(String, u64)> {
            items.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
        };
        // Counts add up across partitions (Chile 1 + 1, Energy 2 + 1); most first, ties by key,
        // six at most (Peru, last of the ones, is left out).
        assert_eq!(
            listed(&shown.top_countries),
            pairs(&[
                ("Spain", 3),
                ("Chile", 2),
                ("France", 2),
                ("Japan", 1),
                ("Kenya", 1),
                ("Oman", 1)
            ])
        );
        assert_eq!(
            listed(&shown.top_industries),
            pairs(&[
                ("Energy", 3),
                ("Farming", 2),
                ("Media", 2),
                ("Retail", 2),
                ("Banking", 1),
                ("Mining", 1)
            ])
        );
        let by_country: u64 = first.countries.values().sum();
        assert_eq!((by_country, shown.total(), shown.unlabelled), (11, 11, 11));
        // No label: zero sentiment counts, and no average to divide by zero for.
        assert!(shown.counts.values().all(|n| *n == 0));
        assert_eq!((shown.avg_score, shown.avg_stars), (None, None));
        assert!(shown.avg_score_by_stars.iter().all(Option::is_none));
        assert!(shown.top_businesses.is_empty() && shown.top_hashtags.is_empty());
        // A company's session is its own, as any key's.
        let mut state = WindowState::default();
        let spec = spec(OutputMode::Update);
        let out = process(&mut state, &spec, vec![company("c1", 2, "Peru", "Energy")]);
        assert!(summary(&out.emitted).contains(&(Se, 2, 12, 1)));
    }

    #[test]
    fn append_and_complete_modes_never_withdraw() {
        for mode in [OutputMode::Append, OutputMode::Complete] {
            let spec = spec_with_wide_lateness(mode);
            let mut state = WindowState::default();
            process(
                &mut state,
                &spec,
                vec![event("a", 0, P, "b1"), event("b", 18, P, "b1")],
            );
            let out = process(&mut state, &spec, vec![event("d", 9, N, "b1")]);
            assert!(out.emitted.iter().all(|e| !e.retract), "{mode:?}");
        }
    }
}
