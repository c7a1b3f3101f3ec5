//! State the server keeps across restarts as small JSON files in the data dir (lesson progress,
//! the running incident, the streamer's last config), written the one safe way.

use std::path::Path;

use serde::Serialize;

/// Writes `value` as JSON to `path` atomically: to a temporary file, then renamed over it, so a
/// crash mid-write leaves the previous file. A failure is logged with `what`, not fatal: the
/// server goes on with what it has in memory.
pub fn save_json<T: Serialize + ?Sized>(path: &Path, value: &T, what: &str) {
    let json = match serde_json::to_vec_pretty(value) {
        Ok(json) => json,
        Err(error) => return tracing::warn!(%error, "cannot serialise {what}"),
    };
    let tmp = path.with_extension("json.tmp");
    if let Err(error) = std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, path)) {
        tracing::warn!(path = %path.display(), %error, "cannot save {what}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_file_replaces_the_previous_one_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state.json");
        save_json(&path, &serde_json::json!({"n": 1}), "the state");
        save_json(&path, &serde_json::json!({"n": 2}), "the state");
        let read: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("saved")).expect("json");
        assert_eq!(read["n"], 2);
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn a_folder_that_is_gone_is_logged_not_fatal() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("gone").join("state.json");
        save_json(&path, &serde_json::json!({}), "the state");
        assert!(!path.exists());
    }
}
