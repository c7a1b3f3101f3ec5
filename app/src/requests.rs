//! What the cells send and read, as Leptos' own async primitives: a button's POSTs are an
//! [`Action`] (in flight → its buttons disable; the answer or the refusal is its value), and a
//! read that is not in the live snapshot (records at an offset, a topic's schema, a group's lag
//! history, …) is a [`LocalResource`] over the path to read. Both run in the browser only: the
//! server renders the page before anything was sent or read.

use leptos::prelude::*;
use serde::de::DeserializeOwned;

use crate::client;

/// One request: the path and the JSON body.
type Request = (String, serde_json::Value);

/// The POSTs one control (a cell's buttons, a fault button) sends, as one [`Action`]. `T` is
/// the answer a caller shows (`()`: only whether it was refused).
pub struct Posts<T: 'static = ()> {
    action: Action<Vec<Request>, Result<T, String>>,
    pending: Memo<bool>,
    answer: MappedSignal<Option<Result<T, String>>>,
    /// Answers received (the action's version): what a read of the changed state can follow.
    done: RwSignal<usize>,
    /// The form's own refusal, found before anything was sent (a field that is not a number).
    refused: RwSignal<Option<String>>,
}

impl<T> Clone for Posts<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Posts<T> {}

impl Posts<()> {
    /// POSTs whose answer is only "done" or the server's refusal.
    pub fn new() -> Self {
        Self::sending(|path, body| async move { client::post(&path, body).await })
    }
}

impl Default for Posts<()> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: DeserializeOwned + Clone + Send + Sync + 'static> Posts<T> {
    /// POSTs whose JSON answer (a reset's outcome, a comparison) the caller shows.
    pub fn answered() -> Self {
        Self::sending(|path, body| async move { client::post_json::<T>(&path, body).await })
    }
}

impl<T: Clone + Send + Sync + 'static> Posts<T> {
    fn sending<F, Fut>(post: F) -> Self
    where
        F: Fn(String, serde_json::Value) -> Fut + Copy + 'static,
        Fut: Future<Output = Result<T, String>> + 'static,
    {
        // The browser's fetch futures are not `Send`: `new_unsync` runs them on this thread.
        let action = Action::new_unsync(move |requests: &Vec<Request>| {
            let requests = requests.clone();
            async move {
                let mut answer = Err("nothing was sent".to_owned());
                // In order, stopping at the first refusal: a later request may need the
                // earlier one done (the producer reads from the streamer it started).
                for (path, body) in requests {
                    answer = Ok(post(path, body).await?);
                }
                answer
            }
        });
        Self {
            action,
            pending: action.pending(),
            answer: action.value(),
            done: action.version(),
            refused: RwSignal::new(None),
        }
    }

    /// POSTs `body` to `path`.
    pub fn send(self, path: impl Into<String>, body: serde_json::Value) {
        self.send_all(vec![(path.into(), body)]);
    }

    /// POSTs each request in turn; the first refusal stops the rest.
    pub fn send_all(self, requests: Vec<Request>) {
        self.refused.set(None);
        self.action.dispatch(requests);
    }

    /// POSTs the body a form made, or shows why the form could not make one.
    pub fn send_checked(self, path: impl Into<String>, body: Result<serde_json::Value, String>) {
        match body {
            Ok(body) => self.send(path, body),
            Err(message) => self.refuse(message),
        }
    }

    /// Shows a refusal of the form's own, in place of the last answer's.
    pub fn refuse(self, message: String) {
        self.refused.set(Some(message));
    }

    /// Whether a POST is in flight (its buttons are disabled meanwhile).
    pub fn pending(self) -> bool {
        self.pending.get()
    }

    /// How many answers have come back: a read that should follow each change tracks it.
    pub fn done(self) -> usize {
        self.done.get()
    }

    /// The last answer, once it has come back and was not a refusal.
    pub fn answer(self) -> Option<T> {
        self.answer.get().and_then(Result::ok)
    }

    /// The form's refusal, or the server's to the last POST; nothing while one is in flight.
    pub fn error(self) -> Option<String> {
        self.refused.get().or_else(|| {
            if self.pending() {
                return None;
            }
            self.answer.get().and_then(Result::err)
        })
    }
}

impl<T: Clone + Send + Sync + 'static> From<Posts<T>> for Signal<Option<String>> {
    /// For `<ErrorLine error=posts />`.
    fn from(posts: Posts<T>) -> Self {
        Signal::derive(move || posts.error())
    }
}

/// A GET the page makes when it needs something the live snapshot does not carry, as a
/// [`LocalResource`]: it reads `path()` again whenever the signals that function reads change
/// (set one to ask again, even for the same path). A refusal keeps the last answer on screen
/// beside the error.
pub struct Read<T: Send + Sync + 'static> {
    latest: LocalResource<Option<Result<T, String>>>,
    /// The newest answer that was not a refusal.
    kept: Memo<Option<T>>,
}

impl<T: Send + Sync> Clone for Read<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Send + Sync> Copy for Read<T> {}

impl<T: DeserializeOwned + Clone + Send + Sync + 'static> Read<T> {
    /// Reads `path()`; `None` reads nothing (yet).
    pub fn new(path: impl Fn() -> Option<String> + 'static) -> Self {
        let latest = LocalResource::new(move || {
            let path = path();
            async move {
                match path {
                    Some(path) => Some(client::get::<T>(&path).await),
                    None => None,
                }
            }
        });
        // Every answer counts as a change, even one equal to the last: whoever follows the
        // answer (to ask again while a list is still being counted) sees each one.
        let kept = Memo::new_with_compare(
            move |kept: Option<&Option<T>>| match latest.get().flatten() {
                Some(Ok(answer)) => Some(answer),
                _ => kept.cloned().flatten(),
            },
            |_, _| true,
        );
        Self { latest, kept }
    }

    /// The newest answer received.
    pub fn answer(self) -> Option<T> {
        self.kept.get()
    }

    /// The refusal of the latest read, if it was refused.
    pub fn error(self) -> Option<String> {
        self.latest.get().flatten().and_then(Result::err)
    }
}

impl<T: DeserializeOwned + Clone + Send + Sync + 'static> From<Read<T>> for Signal<Option<String>> {
    /// For `<ErrorLine error=read />`.
    fn from(read: Read<T>) -> Self {
        Signal::derive(move || read.error())
    }
}
