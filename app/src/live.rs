//! The live feed: one EventSource on `/api/events`, whose snapshots every cell reads from context.

use crate::api::Snapshot;
use leptos::prelude::*;

/// The latest snapshot (None until the first one arrives) and whether the feed is connected.
#[derive(Clone, Copy)]
pub struct Live {
    pub snapshot: RwSignal<Option<Snapshot>>,
    pub connected: RwSignal<bool>,
}

impl Live {
    pub fn provide() -> Self {
        let live = Live {
            snapshot: RwSignal::new(None),
            connected: RwSignal::new(false),
        };
        provide_context(live);
        // Effects run only in the browser, after hydration.
        Effect::new(move |_| live.subscribe());
        live
    }

    pub fn use_context() -> Self {
        expect_context::<Live>()
    }

    #[cfg(feature = "hydrate")]
    fn subscribe(self) {
        use futures::StreamExt;
        use gloo_net::eventsource::futures::EventSource;
        leptos::task::spawn_local(async move {
            loop {
                if let Ok(mut source) = EventSource::new("/api/events") {
                    if let Ok(mut events) = source.subscribe("snapshot") {
                        while let Some(Ok((_, message))) = events.next().await {
                            let Some(data) = message.data().as_string() else {
                                continue;
                            };
                            if let Ok(snapshot) = serde_json::from_str::<Snapshot>(&data) {
                                self.connected.set(true);
                                self.snapshot.set(Some(snapshot));
                            }
                        }
                    }
                    source.close();
                }
                self.connected.set(false);
                gloo_timers::future::TimeoutFuture::new(1_000).await;
            }
        });
    }

    #[cfg(not(feature = "hydrate"))]
    fn subscribe(self) {}
}
