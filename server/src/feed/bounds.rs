//! What the live feed keeps of a snapshot: the lists cut down to what the cells draw. The full
//! lists stay available from their own endpoints (`GET /api/aggregates`, `GET /api/sentiment`).

use app::api::{
    AggregateView, LIVE_LATEST_REVIEWS, LIVE_REBALANCES, LIVE_SESSIONS, LIVE_WINDOWS_PER_KIND,
    SentimentView, Snapshot, WindowKind, WindowRow,
};

/// The snapshot as viewers get it. Drawing it gives what drawing `snapshot` would: every cut
/// keeps the rows a cell shows and the totals it counts over the others.
pub fn for_viewers(snapshot: &Snapshot) -> Snapshot {
    Snapshot {
        at: snapshot.at,
        pipeline: snapshot.pipeline.clone(),
        topics: snapshot.topics.clone(),
        groups: snapshot.groups.clone(),
        sentiment: sentiment(&snapshot.sentiment),
        search: snapshot.search.clone(),
        aggregate: aggregate(&snapshot.aggregate),
        lesson: snapshot.lesson.clone(),
        lab: snapshot.lab.clone(),
    }
}

/// The windows the charts and the sessions table draw, in list order, with the totals over all.
fn aggregate(view: &AggregateView) -> AggregateView {
    let mut drawn = view.latest_windows(WindowKind::Tumbling, LIVE_WINDOWS_PER_KIND);
    drawn.extend(view.latest_windows(WindowKind::Sliding, LIVE_WINDOWS_PER_KIND));
    drawn.extend(view.latest_sessions(LIVE_SESSIONS));
    // Chosen by identity, so the list keeps its order (kind, start) and nothing else.
    let is_drawn = |w: &WindowRow| drawn.iter().any(|d| std::ptr::eq(*d, w));
    AggregateView {
        watermark: view.watermark,
        max_event_time: view.max_event_time,
        late_records: view.late_records,
        duplicates: view.duplicates,
        counted: view.counted,
        windows: view
            .windows
            .iter()
            .filter(|w| is_drawn(w))
            .cloned()
            .collect(),
        totals: Some(view.totals()),
        partitions: view.partitions.clone(),
    }
}

/// The newest labelled reviews and rebalance events the cell lists, and the oldest event kept:
/// the timeline counts its seconds from it.
fn sentiment(view: &SentimentView) -> SentimentView {
    let events = &view.rebalances;
    let rebalances = if events.len() > LIVE_REBALANCES + 1 {
        let mut kept = events[..LIVE_REBALANCES].to_vec();
        kept.extend(events.last().cloned());
        kept
    } else {
        events.clone()
    };
    SentimentView {
        group: view.group.clone(),
        workers: view.workers.clone(),
        rebalances,
        latest: view
            .latest
            .iter()
            .take(LIVE_LATEST_REVIEWS)
            .cloned()
            .collect(),
        confusion: view.confusion,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use app::api::{LatestReview, RebalanceEvent, Sentiment};

    /// A window of `kind` from `start` (seconds) to `end`, with `reviews` reviews of `stars`.
    pub(crate) fn window(kind: WindowKind, start: i64, end: i64, reviews: u64) -> WindowRow {
        let stars = usize::try_from(start.rem_euclid(5)).unwrap_or(0);
        let mut by_stars = [0; 5];
        by_stars[stars] = reviews;
        let mut score = [None; 5];
        score[stars] = Some((start % 7) as f64 / 8.0 - 0.375);
        WindowRow {
            kind,
            start: start * 1000,
            end: end * 1000,
            key: (kind == WindowKind::Session).then(|| format!("b_{}", start % 11)),
            counts: [(Sentiment::Positive, reviews)].into_iter().collect(),
            unlabelled: 0,
            avg_score: Some(0.25),
            avg_stars: Some(4.0),
            stars: by_stars,
            avg_score_by_stars: score,
            top_businesses: vec![],
            top_hashtags: vec![],
            top_countries: vec![],
            top_industries: vec![],
            closed: end < 500,
        }
    }

    /// Many windows of every kind, sessions ending in a shuffled order with ties.
    fn busy_view() -> AggregateView {
        let mut windows = vec![];
        for start in 0..100 {
            windows.push(window(WindowKind::Tumbling, start * 10, start * 10 + 10, 5));
            windows.push(window(WindowKind::Sliding, start * 5, start * 5 + 20, 7));
            windows.push(window(
                WindowKind::Session,
                start,
                300 + (start * 37) % 250,
                3,
            ));
        }
        windows.sort_by(|a, b| (a.kind, a.start, &a.key).cmp(&(b.kind, b.start, &b.key)));
        AggregateView {
            watermark: Some(1),
            max_event_time: Some(2),
            late_records: 3,
            duplicates: 4,
            counted: 5,
            windows,
            totals: None,
            partitions: Vec::new(),
        }
    }

    #[test]
    fn the_cut_windows_draw_what_all_windows_draw() {
        let full = busy_view();
        let live = aggregate(&full);
        assert_eq!(
            live.windows.len(),
            2 * LIVE_WINDOWS_PER_KIND + LIVE_SESSIONS
        );
        for kind in [WindowKind::Tumbling, WindowKind::Sliding] {
            assert_eq!(
                live.latest_windows(kind, LIVE_WINDOWS_PER_KIND),
                full.latest_windows(kind, LIVE_WINDOWS_PER_KIND),
                "{kind:?} bars"
            );
        }
        for kind in WindowKind::ALL {
            assert_eq!(live.count_of(kind), full.count_of(kind), "{kind:?} caption");
        }
        assert_eq!(full.count_of(WindowKind::Tumbling).windows, 100);
        assert_eq!(
            live.latest_sessions(LIVE_SESSIONS),
            full.latest_sessions(LIVE_SESSIONS)
        );
        assert_eq!(live.tumbling_stars(), full.tumbling_stars());
        assert_eq!(
            (live.watermark, live.late_records, live.counted),
            (full.watermark, full.late_records, full.counted)
        );
        // The list stays a sub-list of the full one, in its order.
        let mut rest = full.windows.iter();
        for kept in &live.windows {
            assert!(rest.any(|w| w == kept), "out of order: {kept:?}");
        }
        // Cutting again changes nothing.
        assert_eq!(aggregate(&live), live);
    }

    fn event(at: i64) -> RebalanceEvent {
        RebalanceEvent {
            at,
            worker: "worker-1".into(),
            kind: "assigned".into(),
            partitions: vec![0],
        }
    }

    fn latest(n: usize) -> LatestReview {
        LatestReview {
            review_id: format!("r{n}"),
            excerpt: "good".into(),
            stars: 5,
            sentiment: Sentiment::Positive,
            score: 0.5,
            classifier: "lexicon".into(),
            worker: "worker-1".into(),
            partition: 0,
            offset: n as i64,
        }
    }

    #[test]
    fn the_timeline_keeps_its_newest_events_and_its_zero() {
        let view = SentimentView {
            rebalances: (0..50).rev().map(event).collect(),
            latest: (0..20).map(latest).collect(),
            ..SentimentView::default()
        };
        let live = sentiment(&view);
        assert_eq!(live.rebalances.len(), LIVE_REBALANCES + 1);
        assert_eq!(
            live.rebalances[..LIVE_REBALANCES],
            view.rebalances[..LIVE_REBALANCES]
        );
        assert_eq!(live.rebalances.last(), view.rebalances.last());
        assert_eq!(live.latest, view.latest[..LIVE_LATEST_REVIEWS]);

        let few = SentimentView {
            rebalances: (0..13).map(event).collect(),
            ..SentimentView::default()
        };
        assert_eq!(sentiment(&few), few, "nothing to cut");
    }
}
