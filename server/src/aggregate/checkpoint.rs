//! Checkpoints: the window state and the offsets it covers, written together and atomically
//! after every trigger. On restart the stage reads from exactly those offsets with exactly that
//! state, so no record is lost or counted twice.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::windows::WindowState;

/// Bumped when the checkpoint format changes; an older checkpoint is refused, not misread.
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint {path} is not readable ({reason}); delete it to start over")]
    Corrupt { path: PathBuf, reason: String },
}

/// What a checkpoint holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    /// The stage's configuration when written, as JSON (a changed config starts over).
    pub config: serde_json::Value,
    /// Next offset to read, per partition of `reviews.sentiment`.
    pub offsets: BTreeMap<i32, i64>,
    pub state: WindowState,
    /// Triggers completed so far.
    pub triggers: u64,
}

/// Where a group's checkpoint lives: `<data dir>/checkpoints/aggregate/<group>.json`.
pub fn path(data_dir: &Path, group: &str) -> PathBuf {
    let safe: String = group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    data_dir
        .join("checkpoints")
        .join("aggregate")
        .join(format!("{safe}.json"))
}

/// Reads a checkpoint; `None` when there is none yet.
pub fn load(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CheckpointError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let checkpoint: Checkpoint =
        serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if checkpoint.version != VERSION {
        return Err(CheckpointError::Corrupt {
            path: path.to_owned(),
            reason: format!("version {} (expected {VERSION})", checkpoint.version),
        });
    }
    Ok(Some(checkpoint))
}

/// Writes a checkpoint atomically: a temporary file, flushed to disk, renamed over the old one.
/// A crash leaves either the old checkpoint or the new one, never half of one.
pub fn save(path: &Path, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut checkpoint = checkpoint.clone();
    checkpoint.version = VERSION;
    let bytes = serde_json::to_vec(&checkpoint).map_err(|e| io(std::io::Error::other(e)))?;
    let temporary = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&temporary).map_err(io)?;
    file.write_all(&bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_checkpoint_reads_back_and_junk_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("dir");
        let file = path(dir.path(), "pipebook-aggregate");
        assert_eq!(load(&file).expect("none yet"), None);
        let mut checkpoint = Checkpoint {
            offsets: BTreeMap::from([(0, 10), (2, 7)]),
            triggers: 3,
            ..Checkpoint::default()
        };
        checkpoint.state.counted = 17;
        checkpoint.state.seen.insert("r1".into(), 5);
        save(&file, &checkpoint).expect("save");
        let back = load(&file).expect("load").expect("some");
        assert_eq!(back.offsets, checkpoint.offsets);
        assert_eq!(back.state, checkpoint.state);
        std::fs::write(&file, b"{half").expect("corrupt it");
        let err = load(&file).expect_err("corrupt");
        assert!(err.to_string().contains("delete it"), "{err}");
        assert!(path(dir.path(), "a/../b").ends_with("a____b.json"));
    }
}
