//! The streamer's last configuration, kept in `<data dir>/streamer.json`: after a restart the
//! cells word the pipeline by what it last streamed (a dataset of tweets stays "tweets", not the
//! default "reviews": the topics still hold them) until a new run replaces it.
//!
//! Only the streamer's: its dataset is what the cells read their nouns and fields from. The other
//! stages' configs name their consumer groups, and a restored one would list a member of that
//! group which never ran in this process.

use std::path::{Path, PathBuf};

use crate::stage::StageId;

pub struct LastStreamerConfig {
    path: PathBuf,
}

impl LastStreamerConfig {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join("streamer.json"),
        }
    }

    /// The config saved by the last run, checked as a start request's body would be (a file
    /// from an older version or edited by hand is ignored, and the log says why). `None` before
    /// the first run.
    pub fn load(&self) -> Option<serde_json::Value> {
        let bytes = std::fs::read(&self.path).ok()?;
        let checked = serde_json::from_slice(&bytes)
            .map_err(|error| error.to_string())
            .and_then(|body| {
                crate::stage_config::check(StageId::Streamer, body).map_err(|e| e.to_string())
            });
        match checked {
            Ok(config) => Some(config),
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "the streamer's last config is unreadable; the cells word the defaults");
                None
            }
        }
    }

    /// Keeps the config a run started with (written to a temporary file, then renamed: a crash
    /// mid-write leaves the previous one).
    pub fn save(&self, config: &serde_json::Value) {
        crate::saved::save_json(&self.path, config, "the streamer's config");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_saved_config_loads_back_checked_and_a_bad_file_is_ignored() {
        let dir = tempfile::tempdir().expect("temp dir");
        let last = LastStreamerConfig::new(dir.path());
        assert_eq!(last.load(), None, "before the first run");

        let config =
            crate::stage_config::check(StageId::Streamer, json!({"dataset": "tweets", "rate": 20}))
                .expect("a valid config");
        last.save(&config);
        let loaded = last.load().expect("saved");
        assert_eq!(loaded, config);
        assert_eq!(loaded["dataset"], "tweets");

        std::fs::write(dir.path().join("streamer.json"), b"{not json").expect("write");
        assert_eq!(last.load(), None);
        std::fs::write(dir.path().join("streamer.json"), br#"{"dataset": "films"}"#)
            .expect("write");
        assert_eq!(last.load(), None, "refused as a start request would be");
    }
}
