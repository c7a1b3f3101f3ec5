//! The live feed behind `GET /api/events`, built to be shared by a room: a full snapshot when a
//! viewer connects, then once a second only the parts of it that changed.
//!
//! The sampler turns each snapshot into a [`Frame`] once: every part serialised, with the number
//! of the sample in which it last changed (its version), and the `parts` event for a viewer that
//! got the frame before. Each connection only remembers the versions it sent (a [`Cursor`]), so a
//! viewer costs no serialising: one that keeps up sends the frame's shared event; one that
//! skipped samples (a slow reader: the watch channel hands it the newest frame only) sends every
//! part newer than what it has, and is up to date again after one event.

mod bounds;
pub mod gzip;

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;

use app::api::{SNAPSHOT_PARTS, Snapshot};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tokio_util::sync::CancellationToken;

pub use bounds::for_viewers;

const PARTS: usize = SNAPSHOT_PARTS.len();

/// The versions of every part, in [`SNAPSHOT_PARTS`] order.
pub type Versions = [u64; PARTS];

/// One sample of the feed, serialised once for every viewer.
#[derive(Debug)]
pub struct Frame {
    /// Sample number, from 1.
    seq: u64,
    at: i64,
    /// Each part's JSON (shared with the frames before while it does not change) and version.
    parts: [(Arc<str>, u64); PARTS],
    /// The versions of the frame before: a viewer that sent those gets `delta`.
    base: Versions,
    /// `event: parts` data for a viewer that got the frame before.
    delta: Arc<str>,
    /// `event: snapshot` data: the whole (cut down) snapshot.
    snapshot: Arc<str>,
}

impl Frame {
    /// The first frame: every part new.
    pub fn first(snapshot: &Snapshot) -> Frame {
        let live = for_viewers(snapshot);
        let parts = serialised_parts(&live).map(|json| {
            // Not expected (our types serialise); `null` leaves the viewer's part as it was.
            (Arc::from(json.unwrap_or_else(|| "null".to_owned())), 1)
        });
        Frame::assemble(1, live.at, parts, [0; PARTS])
    }

    /// The frame after this one, for the next sample: parts whose JSON did not change keep their
    /// version (and their text, shared).
    pub fn next(&self, snapshot: &Snapshot) -> Frame {
        let seq = self.seq + 1;
        let live = for_viewers(snapshot);
        let mut parts = self.parts.clone();
        for ((part, json), name) in parts
            .iter_mut()
            .zip(serialised_parts(&live))
            .zip(SNAPSHOT_PARTS)
        {
            match json {
                Some(json) if *part.0 != *json => *part = (Arc::from(json), seq),
                Some(_) => {}
                // Not expected (our types serialise); the viewers keep the part they have.
                None => tracing::warn!(part = name, "live feed: part not serialisable, kept"),
            }
        }
        Frame::assemble(seq, live.at, parts, self.versions())
    }

    fn assemble(seq: u64, at: i64, parts: [(Arc<str>, u64); PARTS], base: Versions) -> Frame {
        let all = object(
            parts
                .iter()
                .zip(SNAPSHOT_PARTS)
                .map(|(p, name)| (name, &*p.0)),
        );
        let snapshot = format!("{{\"at\":{at},{}", &all[1..]);
        let mut frame = Frame {
            seq,
            at,
            parts,
            base,
            delta: Arc::from(""),
            snapshot: Arc::from(snapshot),
        };
        frame.delta = Arc::from(frame.parts_since(&base));
        frame
    }

    /// Milliseconds since the Unix epoch when the snapshot was taken.
    pub fn at(&self) -> i64 {
        self.at
    }

    /// The version of every part: the sample in which it last changed.
    pub fn versions(&self) -> Versions {
        self.parts.each_ref().map(|p| p.1)
    }

    /// `event: snapshot` data: `{"at":…,"pipeline":…,…}`, a [`Snapshot`].
    pub fn snapshot_json(&self) -> &str {
        &self.snapshot
    }

    /// The same, shared: what a page is rendered from (see [`app::InitialSnapshot`]).
    pub fn snapshot_shared(&self) -> Arc<str> {
        self.snapshot.clone()
    }

    /// `event: parts` data for a viewer that sent `sent`: `{"at":…,"parts":{…}}` with the parts
    /// newer than that, a [`app::api::SnapshotDelta`].
    pub fn parts_since(&self, sent: &Versions) -> String {
        let newer = self
            .parts
            .iter()
            .zip(SNAPSHOT_PARTS)
            .zip(sent)
            .filter(|((part, _), sent)| part.1 > **sent)
            .map(|((part, name), _)| (name, &*part.0));
        format!("{{\"at\":{},\"parts\":{}}}", self.at, object(newer))
    }
}

/// A JSON object of already serialised values.
fn object<'a>(fields: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::from("{");
    for (i, (name, json)) in fields.enumerate() {
        let comma = if i == 0 { "" } else { "," };
        let _ = write!(out, "{comma}\"{name}\":{json}");
    }
    out.push('}');
    out
}

/// Every part's JSON, in [`SNAPSHOT_PARTS`] order; `None` where serialising failed.
fn serialised_parts(s: &Snapshot) -> [Option<String>; PARTS] {
    fn json(value: &impl Serialize) -> Option<String> {
        serde_json::to_string(value).ok()
    }
    [
        json(&s.pipeline),
        json(&s.topics),
        json(&s.groups),
        json(&s.sentiment),
        json(&s.search),
        json(&s.aggregate),
        json(&s.lesson),
        json(&s.lab),
    ]
}

/// What one connection has sent: nothing yet, or the versions of every part.
#[derive(Debug, Default)]
pub struct Cursor {
    sent: Option<Versions>,
}

/// One event of the feed, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    /// `event: snapshot`: the first event of a connection.
    Snapshot(Arc<str>),
    /// `event: parts`: what changed since the connection's previous event.
    Parts(Arc<str>),
}

impl Cursor {
    /// The event that brings this connection's viewer up to `frame`.
    pub fn event(&mut self, frame: &Frame) -> FeedEvent {
        let event = match &self.sent {
            None => FeedEvent::Snapshot(frame.snapshot.clone()),
            Some(sent) if *sent == frame.base => FeedEvent::Parts(frame.delta.clone()),
            Some(sent) => FeedEvent::Parts(Arc::from(frame.parts_since(sent))),
        };
        self.sent = Some(frame.versions());
        event
    }
}

impl FeedEvent {
    fn into_sse(self) -> Event {
        match self {
            FeedEvent::Snapshot(json) => Event::default().event("snapshot").data(&*json),
            FeedEvent::Parts(json) => Event::default().event("parts").data(&*json),
        }
    }
}

/// The feed as a server-sent-events response, gzip-compressed event by event when `gzip`; it
/// ends when `closing` is cancelled.
pub fn response(
    frames: watch::Receiver<Arc<Frame>>,
    closing: CancellationToken,
    gzip: bool,
) -> Response {
    let mut cursor = Cursor::default();
    // A watch stream yields the current frame at once, then the newest one each time it is
    // polled after a change: a viewer that reads slowly skips frames instead of queueing them.
    let events = WatchStream::new(frames)
        .map(move |frame| Ok::<_, Infallible>(cursor.event(&frame).into_sse()))
        .take_until(closing.cancelled_owned());
    let response = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    if gzip {
        gzip::compress_events(response)
    } else {
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::api::{SearchStatus, SnapshotDelta};

    fn snapshot(at: i64, documents: u64) -> Snapshot {
        Snapshot {
            at,
            search: SearchStatus {
                documents: Some(documents),
                ..SearchStatus::default()
            },
            ..Snapshot::default()
        }
    }

    fn parts_of(event: &FeedEvent) -> SnapshotDelta {
        match event {
            FeedEvent::Parts(json) => serde_json::from_str(json).expect("parts JSON"),
            FeedEvent::Snapshot(_) => panic!("a snapshot, not parts"),
        }
    }

    #[test]
    fn a_connection_starts_with_the_whole_snapshot() {
        let frame = Frame::first(&snapshot(1_000, 7));
        let FeedEvent::Snapshot(json) = Cursor::default().event(&frame) else {
            panic!("first event is not a snapshot");
        };
        let got: Snapshot = serde_json::from_str(&json).expect("snapshot JSON");
        assert_eq!(got, for_viewers(&snapshot(1_000, 7)));
    }

    #[test]
    fn a_part_that_did_not_change_is_not_sent_again() {
        let first = Frame::first(&snapshot(1_000, 7));
        let mut cursor = Cursor::default();
        cursor.event(&first);

        let same = first.next(&snapshot(2_000, 7));
        assert_eq!(same.versions(), first.versions());
        let delta = parts_of(&cursor.event(&same));
        assert_eq!(delta.at, 2_000);
        assert_eq!(delta.parts, Default::default(), "nothing changed");

        let changed = same.next(&snapshot(3_000, 8));
        let delta = parts_of(&cursor.event(&changed));
        assert_eq!(delta.parts.search.and_then(|s| s.documents), Some(8));
        assert!(delta.parts.pipeline.is_none() && delta.parts.aggregate.is_none());
        // A viewer in step is sent the frame's shared event, not one of its own.
        let FeedEvent::Parts(shared) = cursor_at(&same).event(&changed) else {
            panic!("parts expected");
        };
        assert!(Arc::ptr_eq(&shared, &changed.delta));
    }

    /// A cursor that has sent `frame`.
    fn cursor_at(frame: &Frame) -> Cursor {
        Cursor {
            sent: Some(frame.versions()),
        }
    }

    #[test]
    fn a_viewer_that_missed_samples_gets_the_latest_of_each_changed_part() {
        let first = Frame::first(&snapshot(1_000, 7));
        let mut slow = Cursor::default();
        slow.event(&first);
        let mut lesson = snapshot(2_000, 8);
        lesson.lesson.steps.push(Default::default());
        let second = first.next(&lesson);
        let mut third_snapshot = snapshot(3_000, 9);
        third_snapshot.lesson = lesson.lesson.clone();
        let third = second.next(&third_snapshot);

        // The slow viewer skipped `second`: it gets both changes, each at its latest.
        let delta = parts_of(&slow.event(&third));
        assert_eq!(delta.at, 3_000);
        assert_eq!(delta.parts.search.and_then(|s| s.documents), Some(9));
        assert_eq!(delta.parts.lesson.map(|l| l.steps.len()), Some(1));
        // A viewer that got `second` is sent only what changed after it.
        let delta = parts_of(&cursor_at(&second).event(&third));
        assert!(delta.parts.lesson.is_none());
    }

    mod property {
        use super::super::*;
        use crate::feed::bounds::tests::window;
        use app::api::{
            DeliveryLabView, GroupInfo, LatestReview, LessonStep, PartitionInfo, RebalanceEvent,
            Sentiment, StageStatus, TopicInfo, WindowKind,
        };
        use proptest::prelude::*;

        /// Changes part `part` of `snapshot` in a way that depends on `seed` (possibly to what it
        /// already was: a sample in which nothing really changed).
        fn change(snapshot: &mut Snapshot, part: usize, seed: u8) {
            let n = usize::from(seed);
            match part {
                0 => {
                    let mut stage = StageStatus {
                        id: "sentiment".into(),
                        ..StageStatus::default()
                    };
                    stage.counters.insert("produced".into(), u64::from(seed));
                    snapshot.pipeline.stages = vec![stage];
                }
                1 => {
                    snapshot.topics = (0..n % 4)
                        .map(|t| TopicInfo {
                            name: format!("topic-{t}"),
                            partitions: vec![PartitionInfo {
                                id: 0,
                                low: 0,
                                high: i64::from(seed),
                                rate: f64::from(seed) / 4.0,
                            }],
                        })
                        .collect();
                }
                2 => {
                    snapshot.groups = (0..n % 3)
                        .map(|g| GroupInfo {
                            group: format!("group-{g}"),
                            state: "Stable".into(),
                            members: vec![],
                            partitions: vec![],
                            lag: Default::default(),
                            state_history: Vec::new(),
                        })
                        .collect();
                }
                3 => {
                    let view = &mut snapshot.sentiment;
                    view.rebalances = (0..n % 40)
                        .map(|i| RebalanceEvent {
                            at: 1_000 - i as i64,
                            worker: format!("worker-{}", i % 3),
                            kind: "assigned".into(),
                            partitions: vec![0, 1],
                        })
                        .collect();
                    view.latest = (0..n % 25)
                        .map(|i| LatestReview {
                            review_id: format!("r{seed}-{i}"),
                            excerpt: "fine".into(),
                            stars: 4,
                            sentiment: Sentiment::Positive,
                            score: 0.5,
                            classifier: "lexicon".into(),
                            worker: "worker-1".into(),
                            partition: 0,
                            offset: i as i64,
                        })
                        .collect();
                    view.confusion[0][0] = u64::from(seed);
                }
                4 => snapshot.search.documents = Some(u64::from(seed)),
                5 => {
                    let view = &mut snapshot.aggregate;
                    view.counted = u64::from(seed);
                    view.windows = (0..n)
                        .map(|i| {
                            let kind = WindowKind::ALL[i % 3];
                            let start = (i / 3) as i64 * 10 + i64::from(seed % 7);
                            window(kind, start, start + 10 + (i as i64 * 13) % 17, 3)
                        })
                        .collect();
                    view.windows
                        .sort_by(|a, b| (a.kind, a.start, &a.key).cmp(&(b.kind, b.start, &b.key)));
                }
                6 => {
                    snapshot.lesson.steps = (0..n % 5)
                        .map(|i| LessonStep {
                            id: format!("step-{i}"),
                            cell: 1,
                            reached: i,
                            parts: 5,
                            ..LessonStep::default()
                        })
                        .collect();
                }
                _ => {
                    snapshot.lab = DeliveryLabView {
                        records: u64::from(seed),
                        ..DeliveryLabView::default()
                    };
                }
            }
        }

        /// What a browser holds after reading a snapshot's JSON.
        fn as_read(snapshot: &Snapshot) -> Snapshot {
            serde_json::from_str(&serde_json::to_string(snapshot).expect("serialise"))
                .expect("deserialise")
        }

        /// A viewer: its connection's cursor and what its browser holds.
        #[derive(Default)]
        struct Viewer {
            cursor: Cursor,
            held: Option<Snapshot>,
            /// Whether it received the frame before the current one.
            in_step: bool,
        }

        impl Viewer {
            fn receive(&mut self, frame: &Frame, current: &Snapshot) {
                let expected = as_read(&for_viewers(current));
                match self.cursor.event(frame) {
                    FeedEvent::Snapshot(json) => {
                        self.held = Some(serde_json::from_str(&json).expect("snapshot JSON"));
                    }
                    FeedEvent::Parts(json) => {
                        let delta: app::api::SnapshotDelta =
                            serde_json::from_str(&json).expect("parts JSON");
                        let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
                        let held = self.held.as_mut().expect("parts after a snapshot");
                        let (had, now) = (serialised_parts(held), serialised_parts(&expected));
                        for (i, name) in SNAPSHOT_PARTS.iter().enumerate() {
                            let sent = value["parts"].get(name).is_some();
                            let differs = had[i] != now[i];
                            // Never missing a change; and to a viewer in step, only changes.
                            assert!(sent || !differs, "{name} changed but was not sent");
                            if self.in_step {
                                assert_eq!(sent, differs, "{name}: sent {sent}, changed {differs}");
                            }
                        }
                        held.apply(delta);
                    }
                }
                assert_eq!(self.held.as_ref(), Some(&expected));
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(32))]

            /// Over any sequence of samples, viewers that receive any subset of the frames (a
            /// slow one skips some) hold exactly the server's (cut) snapshot after each event.
            #[test]
            fn viewers_rebuild_the_servers_snapshot(
                samples in prop::collection::vec(
                    (prop::array::uniform9(prop::option::of(any::<u8>())),
                     prop::array::uniform3(any::<bool>())),
                    1..30,
                ),
            ) {
                let mut current = Snapshot::default();
                let mut frame = Frame::first(&current);
                let mut viewers: Vec<Viewer> = (0..3).map(|_| Viewer::default()).collect();
                for (at, (changes, delivered)) in samples.iter().enumerate() {
                    current.at = at as i64 * 1_000;
                    for (part, seed) in changes.iter().enumerate() {
                        if let Some(seed) = seed {
                            change(&mut current, part, *seed);
                        }
                    }
                    frame = frame.next(&current);
                    prop_assert_eq!(
                        serde_json::from_str::<Snapshot>(frame.snapshot_json()).expect("JSON"),
                        as_read(&for_viewers(&current))
                    );
                    for (viewer, delivered) in viewers.iter_mut().zip(delivered) {
                        if *delivered {
                            viewer.receive(&frame, &current);
                        }
                        viewer.in_step = *delivered;
                    }
                }
                // Whatever each missed, one more event brings every viewer up to date.
                for viewer in &mut viewers {
                    viewer.receive(&frame, &current);
                }
            }
        }
    }
}
