//! The datasets folder: the only files the streamer reads. A request names a dataset (a file in
//! the folder), never a path, so it cannot make the server read `/etc/passwd` or
//! `/proc/self/environ` into a topic. Learners and teachers add datasets by uploading them.
//!
//! Names are single path components; they are joined to the folder, canonicalised and checked to
//! still be inside it. A symlink in the folder is followed only when its target is inside the
//! folder too (a teacher may alias `today.jsonl` to a file beside it); a link that leaves the
//! folder is refused like `..` — to stream a file kept elsewhere, copy it in or point
//! `PIPEBOOK_DATASETS_DIR` at its folder.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use app::api::{DatasetInfo, DatasetList, SOURCE_GENERATOR, check_dataset_name, human_bytes};
use futures::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use super::generator::ReviewGenerator;
use crate::sync::LockExt;

/// `PIPEBOOK_MAX_UPLOAD_BYTES` by default: 100 MiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 100 * 1024 * 1024;
/// The dataset written into an empty folder at start, so a file source works out of the box.
pub const SAMPLE_NAME: &str = "sample-yelp.jsonl";
pub const SAMPLE_REVIEWS: usize = 2_000;
const SAMPLE_SEED: u64 = 7;
/// Most datasets `GET /api/datasets` lists (by name), so a crowded folder cannot make it slow.
pub const MAX_LISTED: usize = 1_000;
/// Uploads are written under this prefix (hidden, never listed nor streamed) until complete.
const UPLOAD_PREFIX: &str = ".upload-";
/// Longest first line the upload check reads (the producer's own line limit).
const MAX_FIRST_LINE: usize = crate::producer::MAX_LINE_BYTES;
const WRITE_BUFFER: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// `StreamerConfig::source` names no readable dataset (400).
    #[error("source: {0}")]
    Source(String),
    /// An upload or delete name breaks the naming rule (400; the message starts with `name:`).
    #[error("{0}")]
    Name(String),
    /// The uploaded content is not a JSON-lines file (400; names the dataset and the line).
    #[error("{0}")]
    Content(String),
    #[error("Content-Type: expected {expected}, got {got:?}", expected = app::api::DATASET_CONTENT_TYPE)]
    ContentType { got: String },
    #[error(
        "body: larger than the upload limit of {limit} bytes ({}); the operator sets the limit \
         with PIPEBOOK_MAX_UPLOAD_BYTES",
        human_limit(.limit)
    )]
    TooLarge { limit: u64 },
    #[error("name: a dataset called {0:?} already exists; upload with ?replace=true to replace it")]
    Exists(String),
    #[error("no dataset called {0:?}")]
    NotFound(String),
    /// The client stopped sending, or sent a broken body.
    #[error("body: the upload did not arrive whole: {0}")]
    Body(String),
    #[error("datasets folder {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The datasets folder, its upload limit and the line counts already known.
pub struct Datasets {
    /// Canonical (absolute, no links), so "inside" is a prefix test on canonical paths.
    dir: PathBuf,
    max_upload_bytes: u64,
    counts: Arc<Mutex<LineCounts>>,
}

/// Line counts by dataset name, valid while the file's size and mtime are unchanged.
#[derive(Default)]
struct LineCounts {
    known: HashMap<String, Counted>,
    /// A background count is under way (one at a time, so a folder of large files costs one
    /// thread reading, not one per file per request).
    counting: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    bytes: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    fn of(metadata: &std::fs::Metadata) -> Self {
        Self {
            bytes: metadata.len(),
            modified: metadata.modified().ok(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Counted {
    stamp: Stamp,
    lines: u64,
}

impl Datasets {
    /// Creates the folder if needed, and removes uploads a crash left half-written.
    pub fn open(dir: &Path, max_upload_bytes: u64) -> Result<Self, DatasetError> {
        let io = |source| DatasetError::Io {
            path: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let canonical = dir.canonicalize().map_err(io)?;
        let datasets = Self {
            dir: canonical,
            max_upload_bytes,
            counts: Arc::default(),
        };
        datasets.remove_stale_uploads();
        Ok(datasets)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_bytes
    }

    fn io(&self, source: std::io::Error) -> DatasetError {
        DatasetError::Io {
            path: self.dir.clone(),
            source,
        }
    }

    fn remove_stale_uploads(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(UPLOAD_PREFIX)
            {
                let path = entry.path();
                if let Err(error) = std::fs::remove_file(&path) {
                    tracing::warn!(%error, path = %path.display(), "cannot remove a stale upload");
                }
            }
        }
    }

    /// The canonical path of dataset `name`: a regular file inside the folder. Every refusal
    /// is a [`DatasetError::Source`] (a 400 whose message starts with `source:`).
    pub fn resolve(&self, name: &str) -> Result<PathBuf, DatasetError> {
        check_source_name(name)?;
        let refuse = |why: String| DatasetError::Source(why);
        let canonical = match self.dir.join(name).canonicalize() {
            Ok(path) => path,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(refuse(format!(
                    "no dataset called {name:?} in the datasets folder (GET /api/datasets lists them)"
                )));
            }
            Err(error) => return Err(refuse(format!("cannot read dataset {name:?}: {error}"))),
        };
        if !canonical.starts_with(&self.dir) {
            return Err(refuse(format!(
                "{name:?} is a link that leaves the datasets folder; only files inside it are read"
            )));
        }
        let metadata = std::fs::metadata(&canonical)
            .map_err(|error| refuse(format!("cannot read dataset {name:?}: {error}")))?;
        if metadata.is_dir() {
            return Err(refuse(format!("{name:?} is a folder, not a dataset file")));
        }
        if !metadata.is_file() {
            return Err(refuse(format!("{name:?} is not a regular file")));
        }
        Ok(canonical)
    }

    /// Opens dataset `name` for the streamer, after [`Datasets::resolve`].
    ///
    /// Check-then-open race: the file opened is the canonical path just checked, whose every
    /// component is a real directory or file, opened with `O_NOFOLLOW` (the last component
    /// cannot have been swapped for a symlink since the check: that open fails) and
    /// `O_NONBLOCK` (nor for a FIFO that would block the open). The opened handle is then
    /// checked again with `fstat` to be a regular file, and the streamer reads that handle, not
    /// the path. Names are single components, so the only directory on the way that could be
    /// swapped is the datasets folder itself, which the operator controls.
    pub fn open_source(&self, name: &str) -> Result<File, DatasetError> {
        let path = self.resolve(name)?;
        let file = open_no_follow(&path).map_err(|error| {
            DatasetError::Source(format!("cannot open dataset {name:?}: {error}"))
        })?;
        let is_file = file.metadata().map(|m| m.is_file()).unwrap_or(false);
        if !is_file {
            return Err(DatasetError::Source(format!(
                "{name:?} is not a regular file"
            )));
        }
        Ok(file)
    }

    /// The datasets in the folder, by name (at most [`MAX_LISTED`]). Hidden files and links
    /// that leave the folder are not listed. Line counts come from a cache keyed by size and
    /// mtime; a file not counted yet is counted in the background and listed with `lines: null`
    /// meanwhile, so a huge file never slows this call.
    pub fn list(&self) -> Result<DatasetList, DatasetError> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .map_err(|e| self.io(e))?
            .flatten()
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| !name.starts_with('.'))
            .collect();
        names.sort();
        let mut datasets = Vec::new();
        let mut to_count = Vec::new();
        for name in names {
            if datasets.len() == MAX_LISTED {
                break;
            }
            let Ok(path) = self.resolve(&name) else {
                continue;
            };
            let Ok(metadata) = std::fs::metadata(&path) else {
                continue;
            };
            let stamp = Stamp::of(&metadata);
            let lines = self.known_lines(&name, stamp);
            if lines.is_none() {
                to_count.push((name.clone(), path));
            }
            datasets.push(DatasetInfo {
                name,
                bytes: stamp.bytes,
                lines,
            });
        }
        self.forget_all_but(&datasets);
        self.count_in_background(to_count);
        Ok(DatasetList {
            datasets,
            kinds: app::api::DatasetKind::ALL
                .into_iter()
                .map(app::api::DatasetKind::description)
                .collect(),
            max_upload_bytes: self.max_upload_bytes,
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, LineCounts> {
        self.counts.lock_or_recover()
    }

    fn known_lines(&self, name: &str, stamp: Stamp) -> Option<u64> {
        self.counts()
            .known
            .get(name)
            .filter(|counted| counted.stamp == stamp)
            .map(|counted| counted.lines)
    }

    fn remember(&self, name: &str, path: &Path, lines: u64) {
        if let Ok(metadata) = std::fs::metadata(path) {
            let stamp = Stamp::of(&metadata);
            self.counts()
                .known
                .insert(name.to_owned(), Counted { stamp, lines });
        }
    }

    fn forget_all_but(&self, listed: &[DatasetInfo]) {
        let mut counts = self.counts();
        counts
            .known
            .retain(|name, _| listed.iter().any(|d| &d.name == name));
    }

    /// Counts the lines of `files` on one background thread, unless a count is under way (the
    /// next listing picks up what is still missing).
    fn count_in_background(&self, files: Vec<(String, PathBuf)>) {
        if files.is_empty() {
            return;
        }
        {
            let mut counts = self.counts();
            if counts.counting {
                return;
            }
            counts.counting = true;
        }
        let counts = self.counts.clone();
        let spawned = std::thread::Builder::new()
            .name("dataset-lines".into())
            .spawn(move || {
                for (name, path) in files {
                    // The stamp is taken before reading: a file that changes meanwhile is
                    // counted again on the next listing.
                    let Ok(metadata) = std::fs::metadata(&path) else {
                        continue;
                    };
                    let stamp = Stamp::of(&metadata);
                    match count_lines(&path) {
                        Ok(lines) => {
                            let mut counts = counts.lock_or_recover();
                            counts.known.insert(name, Counted { stamp, lines });
                        }
                        Err(error) => tracing::warn!(%error, %name, "cannot count lines"),
                    }
                }
                counts.lock_or_recover().counting = false;
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the line counter");
            self.counts().counting = false;
        }
    }

    /// Streams an upload into the folder as dataset `name`: written to a hidden temporary file
    /// in the folder, counted and checked as it arrives, then renamed into place in one step.
    /// Past the size limit, on a bad line or when the body breaks off, the temporary file is
    /// removed (it is also removed if the request is dropped mid-way: `TempPath` deletes on
    /// drop), so nothing half-written is left behind or listed.
    pub async fn upload<S, B, E>(
        &self,
        name: &str,
        replace: bool,
        body: S,
    ) -> Result<DatasetInfo, DatasetError>
    where
        S: Stream<Item = Result<B, E>>,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        check_dataset_name(name).map_err(DatasetError::Name)?;
        let destination = self.dir.join(name);
        if !replace && std::fs::symlink_metadata(&destination).is_ok() {
            return Err(DatasetError::Exists(name.to_owned()));
        }
        let temp = tempfile::Builder::new()
            .prefix(UPLOAD_PREFIX)
            .tempfile_in(&self.dir)
            .map_err(|e| self.io(e))?;
        let (file, temp_path) = temp.into_parts();
        let mut out =
            tokio::io::BufWriter::with_capacity(WRITE_BUFFER, tokio::fs::File::from_std(file));
        let mut check = ContentCheck::new(name);
        let mut received: u64 = 0;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| DatasetError::Body(e.to_string()))?;
            let chunk = chunk.as_ref();
            received += chunk.len() as u64;
            if received > self.max_upload_bytes {
                return Err(DatasetError::TooLarge {
                    limit: self.max_upload_bytes,
                });
            }
            check.feed(chunk)?;
            out.write_all(chunk).await.map_err(|e| self.io(e))?;
        }
        let lines = check.finish()?;
        out.flush().await.map_err(|e| self.io(e))?;
        // On disk before it is visible under its name: a crash never leaves a short dataset.
        out.into_inner().sync_all().await.map_err(|e| self.io(e))?;
        let persisted = if replace {
            temp_path.persist(&destination)
        } else {
            temp_path.persist_noclobber(&destination)
        };
        if let Err(failed) = persisted {
            // `failed.path` is dropped here, which removes the temporary file.
            return Err(match failed.error.kind() {
                std::io::ErrorKind::AlreadyExists => DatasetError::Exists(name.to_owned()),
                _ => self.io(failed.error),
            });
        }
        self.remember(name, &destination, lines);
        Ok(DatasetInfo {
            name: name.to_owned(),
            bytes: received,
            lines: Some(lines),
        })
    }

    /// Removes dataset `name` (a link is removed, not its target). A streamer reading it keeps
    /// its open handle until it ends.
    pub fn delete(&self, name: &str) -> Result<(), DatasetError> {
        check_dataset_name(name).map_err(DatasetError::Name)?;
        let path = self.dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(DatasetError::NotFound(name.to_owned()));
            }
            Err(error) => return Err(self.io(error)),
            Ok(metadata) if metadata.is_dir() => {
                return Err(DatasetError::Name(format!(
                    "name: {name:?} is a folder, not a dataset"
                )));
            }
            Ok(_) => {}
        }
        std::fs::remove_file(&path).map_err(|e| self.io(e))?;
        self.counts().known.remove(name);
        Ok(())
    }

    /// Writes [`SAMPLE_NAME`] (2,000 generated reviews, fixed seed) when the folder holds no
    /// dataset, so the list is never empty and a file source works on the first run.
    pub fn seed_if_empty(&self) -> Result<Option<DatasetInfo>, DatasetError> {
        let has_any = std::fs::read_dir(&self.dir)
            .map_err(|e| self.io(e))?
            .flatten()
            .any(|entry| !entry.file_name().to_string_lossy().starts_with('.'));
        if has_any {
            return Ok(None);
        }
        let mut text = String::with_capacity(SAMPLE_REVIEWS * 700);
        for review in ReviewGenerator::new(SAMPLE_SEED).take(SAMPLE_REVIEWS) {
            let line =
                serde_json::to_string(&review).map_err(|e| self.io(std::io::Error::other(e)))?;
            text.push_str(&line);
            text.push('\n');
        }
        let mut temp = tempfile::Builder::new()
            .prefix(UPLOAD_PREFIX)
            .tempfile_in(&self.dir)
            .map_err(|e| self.io(e))?;
        std::io::Write::write_all(&mut temp, text.as_bytes()).map_err(|e| self.io(e))?;
        let destination = self.dir.join(SAMPLE_NAME);
        match temp.persist_noclobber(&destination) {
            Ok(_) => {}
            // Another process seeded it first: fine.
            Err(failed) if failed.error.kind() == std::io::ErrorKind::AlreadyExists => {
                return Ok(None);
            }
            Err(failed) => return Err(self.io(failed.error)),
        }
        let lines = SAMPLE_REVIEWS as u64;
        self.remember(SAMPLE_NAME, &destination, lines);
        Ok(Some(DatasetInfo {
            name: SAMPLE_NAME.to_owned(),
            bytes: text.len() as u64,
            lines: Some(lines),
        }))
    }
}

/// What `source` may be before the file system is asked: `generator` or one plain file name —
/// no path separators, no `..`, not absolute, not hidden, no NUL or control characters.
pub fn check_source_name(name: &str) -> Result<(), DatasetError> {
    let refuse = |why: String| Err(DatasetError::Source(why));
    if name == SOURCE_GENERATOR {
        return Ok(());
    }
    if name.is_empty() {
        return refuse("expected \"generator\" or the name of a dataset, got \"\"".into());
    }
    if name.contains('\0') || name.chars().any(char::is_control) {
        return refuse(format!(
            "control characters are not allowed in a dataset name: {name:?}"
        ));
    }
    if Path::new(name).is_absolute() || name.contains(['/', '\\']) {
        return refuse(format!(
            "expected \"generator\" or the name of a dataset in the datasets folder, not a path: \
             {name:?} (GET /api/datasets lists them)"
        ));
    }
    if name.starts_with('.') {
        return refuse(format!(
            "{name:?} is not a dataset name (names starting with '.', like \"..\", are not read)"
        ));
    }
    Ok(())
}

/// Opens for reading without following a symlink in the last component and without blocking on
/// a FIFO (O_NONBLOCK has no effect on reads of a regular file).
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    options.open(path)
}

/// Counts the lines of a file the way the streamer sends them (blank lines are skipped).
fn count_lines(path: &Path) -> std::io::Result<u64> {
    let mut file = File::open(path)?;
    let mut buffer = vec![0u8; 256 * 1024];
    let mut counter = LineCounter::default();
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok(counter.finish());
        }
        counter.feed(&buffer[..read]);
    }
}

/// Counts lines that are not blank (and all line breaks), fed in pieces of any size.
#[derive(Debug, Default)]
struct LineCounter {
    lines: u64,
    breaks: u64,
    in_line: bool,
}

impl LineCounter {
    fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            match byte {
                b'\n' => {
                    self.lines += u64::from(self.in_line);
                    self.breaks += 1;
                    self.in_line = false;
                }
                // What `str::trim` removes, in ASCII: such lines are blank to the streamer.
                b' ' | b'\t' | b'\r' | 0x0b | 0x0c => {}
                _ => self.in_line = true,
            }
        }
    }

    fn finish(&self) -> u64 {
        self.lines + u64::from(self.in_line)
    }
}

/// The light check of an upload, fed chunk by chunk: every line UTF-8, the first line that is
/// not blank a JSON object, at least one line. Other malformed lines are let through on
/// purpose: the producer sends each to `reviews.dlq` with its reason, which is the lesson.
struct ContentCheck {
    name: String,
    /// Lines and line breaks so far (the breaks give a message its line number).
    counter: LineCounter,
    /// The end of the last chunk when it stopped inside a UTF-8 character (at most 3 bytes).
    carry: Vec<u8>,
    /// The first line that is not blank, while it is still arriving; `None` once checked.
    first_line: Option<Vec<u8>>,
}

impl ContentCheck {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            counter: LineCounter::default(),
            carry: Vec::new(),
            first_line: Some(Vec::new()),
        }
    }

    fn error(&self, line: u64, message: &str) -> DatasetError {
        DatasetError::Content(format!("{} line {line}: {message}", self.name))
    }

    fn feed(&mut self, chunk: &[u8]) -> Result<(), DatasetError> {
        let joined;
        let data = if self.carry.is_empty() {
            chunk
        } else {
            joined = [self.carry.as_slice(), chunk].concat();
            joined.as_slice()
        };
        let valid = match std::str::from_utf8(data) {
            Ok(_) => data.len(),
            // Cut inside a character at the end: the rest comes with the next chunk.
            Err(error) if error.error_len().is_none() => error.valid_up_to(),
            Err(error) => {
                let before = &data[..error.valid_up_to()];
                let line = self.counter.breaks + count_breaks(before) + 1;
                return Err(self.error(line, "not UTF-8 text (a JSON-lines file must be UTF-8)"));
            }
        };
        let (text, rest) = data.split_at(valid);
        self.scan_first_line(text)?;
        self.counter.feed(text);
        self.carry = rest.to_vec();
        Ok(())
    }

    /// Collects the first line that is not blank and checks it once it is complete.
    fn scan_first_line(&mut self, text: &[u8]) -> Result<(), DatasetError> {
        let Some(mut line) = self.first_line.take() else {
            return Ok(());
        };
        let mut breaks = self.counter.breaks;
        for piece in text.split_inclusive(|&b| b == b'\n') {
            let complete = piece.ends_with(b"\n");
            line.extend_from_slice(piece);
            if line.len() > MAX_FIRST_LINE {
                return Err(self.error(
                    breaks + 1,
                    "longer than 1 MiB without a line break; a dataset is one review (a JSON \
                     object) per line",
                ));
            }
            if !complete {
                break;
            }
            if line.trim_ascii().is_empty() {
                line.clear();
                breaks += 1;
                continue;
            }
            return self.check_first_line(&line, breaks + 1);
        }
        self.first_line = Some(line);
        Ok(())
    }

    fn check_first_line(&self, line: &[u8], number: u64) -> Result<(), DatasetError> {
        let line = line.trim_ascii();
        match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(_)) => Ok(()),
            _ if line.starts_with(b"[") => Err(self.error(
                number,
                "a JSON array, not one review per line; convert it with jq -c '.[]' file.json",
            )),
            _ => Err(self.error(
                number,
                "not a JSON object; a dataset is one Yelp-format review (a JSON object) per line",
            )),
        }
    }

    /// The number of lines that are not blank, once the whole body has arrived.
    fn finish(mut self) -> Result<u64, DatasetError> {
        if !self.carry.is_empty() {
            return Err(self.error(
                self.counter.breaks + 1,
                "not UTF-8 text (the file ends inside a character)",
            ));
        }
        if let Some(line) = self.first_line.take()
            && !line.trim_ascii().is_empty()
        {
            self.check_first_line(&line, self.counter.breaks + 1)?;
        }
        let lines = self.counter.finish();
        if lines == 0 {
            return Err(DatasetError::Content(format!(
                "{}: the file has no lines; a dataset is one review (a JSON object) per line",
                self.name
            )));
        }
        Ok(lines)
    }
}

fn count_breaks(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

fn human_limit(limit: &u64) -> String {
    human_bytes(*limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> (tempfile::TempDir, Datasets) {
        let root = tempfile::tempdir().expect("temp dir");
        let datasets = Datasets::open(&root.path().join("datasets"), 1024).expect("open");
        (root, datasets)
    }

    fn chunks(parts: &[&[u8]]) -> impl Stream<Item = Result<Vec<u8>, String>> {
        futures::stream::iter(parts.iter().map(|p| Ok(p.to_vec())).collect::<Vec<_>>())
    }

    /// Every entry of the folder, hidden ones included.
    fn entries(datasets: &Datasets) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(datasets.dir())
            .expect("read dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn source_error(result: Result<PathBuf, DatasetError>) -> String {
        let err = result.expect_err("refused").to_string();
        assert!(err.starts_with("source: "), "{err}");
        err
    }

    #[test]
    fn paths_dot_dot_hidden_and_control_characters_are_refused_before_the_disk() {
        let (_root, datasets) = folder();
        for name in [
            "",
            "..",
            ".",
            "../../etc/passwd",
            "/etc/passwd",
            "sub/file.jsonl",
            "a\\b.jsonl",
            ".hidden.jsonl",
            ".upload-x",
            "a\0b",
            "a\nb",
        ] {
            source_error(datasets.resolve(name));
        }
        assert!(check_source_name("generator").is_ok());
    }

    #[test]
    fn only_regular_files_inside_the_folder_resolve() {
        let (root, datasets) = folder();
        let inside = datasets.dir().join("good.jsonl");
        std::fs::write(&inside, "{}\n").expect("write");
        assert_eq!(datasets.resolve("good.jsonl").expect("inside"), inside);

        let err = source_error(datasets.resolve("missing.jsonl"));
        assert!(err.contains("no dataset called"), "{err}");
        std::fs::create_dir(datasets.dir().join("folder.jsonl")).expect("mkdir");
        let err = source_error(datasets.resolve("folder.jsonl"));
        assert!(err.contains("folder"), "{err}");

        // A link that leaves the folder is refused, whether to a file or to /etc/passwd …
        let outside = root.path().join("secret.txt");
        std::fs::write(&outside, "secret\n").expect("write");
        std::os::unix::fs::symlink(&outside, datasets.dir().join("out.jsonl")).expect("link");
        std::os::unix::fs::symlink("/etc/passwd", datasets.dir().join("passwd.jsonl"))
            .expect("link");
        for name in ["out.jsonl", "passwd.jsonl"] {
            let err = source_error(datasets.resolve(name));
            assert!(err.contains("leaves the datasets folder"), "{err}");
            assert!(datasets.open_source(name).is_err());
        }
        // … one through a relative path too; a link to a file inside the folder is followed.
        std::os::unix::fs::symlink("../secret.txt", datasets.dir().join("rel.jsonl"))
            .expect("link");
        source_error(datasets.resolve("rel.jsonl"));
        std::os::unix::fs::symlink("good.jsonl", datasets.dir().join("alias.jsonl")).expect("link");
        assert_eq!(
            datasets.resolve("alias.jsonl").expect("inside link"),
            inside
        );

        let mut text = String::new();
        datasets
            .open_source("alias.jsonl")
            .expect("opens")
            .read_to_string(&mut text)
            .expect("read");
        assert_eq!(text, "{}\n");
    }

    #[test]
    fn opening_refuses_a_last_component_that_became_a_link() {
        let root = tempfile::tempdir().expect("temp dir");
        let link = root.path().join("link");
        std::os::unix::fs::symlink("/etc/passwd", &link).expect("link");
        assert!(open_no_follow(&link).is_err(), "O_NOFOLLOW refuses a link");
    }

    #[test]
    fn listing_skips_hidden_files_and_links_out_and_counts_lines_in_the_background() {
        let (_root, datasets) = folder();
        let text = "{}\n\n  \n{}\n{}";
        std::fs::write(datasets.dir().join("b.jsonl"), text).expect("write");
        std::fs::write(datasets.dir().join(".upload-partial"), "{}\n").expect("write");
        std::os::unix::fs::symlink("/etc/passwd", datasets.dir().join("a.jsonl")).expect("link");
        let list = datasets.list().expect("list");
        assert_eq!(list.max_upload_bytes, 1024);
        let names: Vec<&str> = list.datasets.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["b.jsonl"]);
        assert_eq!(list.datasets[0].bytes, text.len() as u64);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let lines = loop {
            if let Some(lines) = datasets.list().expect("list").datasets[0].lines {
                break lines;
            }
            assert!(std::time::Instant::now() < deadline, "never counted");
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(
            lines, 3,
            "blank lines are not counted, a last line without \\n is"
        );
        // A changed file is counted again.
        std::fs::write(datasets.dir().join("b.jsonl"), "{}\n{}\n{}\n{}\n{}\n").expect("write");
        let counted = datasets.list().expect("list").datasets[0].lines;
        assert_ne!(counted, Some(3));
    }

    #[test]
    fn stale_uploads_are_removed_when_the_folder_is_opened() {
        let (root, datasets) = folder();
        std::fs::write(datasets.dir().join(".upload-crashed"), "{}\n").expect("write");
        drop(datasets);
        let datasets = Datasets::open(&root.path().join("datasets"), 1024).expect("open");
        assert!(entries(&datasets).is_empty());
    }

    #[tokio::test]
    async fn an_upload_is_checked_counted_and_renamed_into_place() {
        let (_root, datasets) = folder();
        // A character cut between two chunks is fine; blank lines are not counted.
        let info = datasets
            .upload(
                "cafe.jsonl",
                false,
                chunks(&[b"\n{\"text\": \"caf\xc3", b"\xa9\"}\n\n{}\n", b"not json\n"]),
            )
            .await
            .expect("uploaded");
        assert_eq!(info.lines, Some(3));
        assert_eq!(entries(&datasets), ["cafe.jsonl"]);
        let listed = datasets.list().expect("list");
        assert_eq!(
            listed.datasets,
            std::slice::from_ref(&info),
            "counted at upload"
        );

        let again = datasets
            .upload("cafe.jsonl", false, chunks(&[b"{}\n"]))
            .await
            .expect_err("exists");
        assert!(matches!(again, DatasetError::Exists(_)), "{again}");
        assert!(again.to_string().starts_with("name: "), "{again}");
        let replaced = datasets
            .upload("cafe.jsonl", true, chunks(&[b"{}\n"]))
            .await
            .expect("replaced");
        assert_eq!(replaced.lines, Some(1));
        assert_eq!(entries(&datasets), ["cafe.jsonl"]);
    }

    #[tokio::test]
    async fn a_refused_upload_leaves_nothing_behind() {
        let (_root, datasets) = folder();
        let big = vec![b'x'; 600];
        let cases: Vec<(&str, Vec<&[u8]>, &str)> = vec![
            (
                "big.jsonl",
                vec![b"{}\n", &big, &big],
                "upload limit of 1024 bytes (1 KiB)",
            ),
            (
                "bad.jsonl",
                vec![b"{}\n{}\n", b"\xff\n"],
                "bad.jsonl line 3: not UTF-8",
            ),
            (
                "cut.jsonl",
                vec![b"{}\n\xc3"],
                "cut.jsonl line 2: not UTF-8",
            ),
            (
                "csv.jsonl",
                vec![b"\n\nstars,text\n"],
                "csv.jsonl line 3: not a JSON object",
            ),
            (
                "array.json",
                vec![b"[{}, ", b"{}]\n"],
                "array.json line 1: a JSON array",
            ),
            (
                "empty.jsonl",
                vec![b"\n \n"],
                "empty.jsonl: the file has no lines",
            ),
            ("bad name.jsonl", vec![b"{}\n"], "name: "),
            ("passwd", vec![b"{}\n"], "name: "),
        ];
        for (name, parts, expected) in cases {
            let err = datasets
                .upload(name, false, chunks(&parts))
                .await
                .expect_err(name)
                .to_string();
            assert!(err.contains(expected), "{name}: {err}");
            assert!(
                entries(&datasets).is_empty(),
                "{name} left {:?}",
                entries(&datasets)
            );
        }
        // A body that breaks off mid-way.
        let broken = futures::stream::iter(vec![Ok(b"{}\n".to_vec()), Err("reset".to_owned())]);
        let err = datasets
            .upload("broken.jsonl", false, broken)
            .await
            .expect_err("broken");
        assert!(err.to_string().starts_with("body: "), "{err}");
        assert!(entries(&datasets).is_empty());
    }

    #[test]
    fn deleting_follows_the_name_rule_and_removes_only_the_entry() {
        let (root, datasets) = folder();
        std::fs::write(datasets.dir().join("a.jsonl"), "{}\n").expect("write");
        let outside = root.path().join("keep.txt");
        std::fs::write(&outside, "keep").expect("write");
        std::os::unix::fs::symlink(&outside, datasets.dir().join("link.jsonl")).expect("link");
        assert!(matches!(
            datasets.delete("nope.jsonl"),
            Err(DatasetError::NotFound(_))
        ));
        let err = datasets.delete("../keep.txt").expect_err("path");
        assert!(err.to_string().starts_with("name: "), "{err}");
        datasets.delete("a.jsonl").expect("deleted");
        datasets.delete("link.jsonl").expect("link deleted");
        assert!(entries(&datasets).is_empty());
        assert!(outside.exists(), "a link's target is not touched");
    }

    #[test]
    fn an_empty_folder_gets_the_sample_once() {
        let (_root, datasets) = folder();
        let sample = datasets.seed_if_empty().expect("seed").expect("seeded");
        assert_eq!(sample.name, SAMPLE_NAME);
        assert_eq!(sample.lines, Some(SAMPLE_REVIEWS as u64));
        let path = datasets.resolve(SAMPLE_NAME).expect("listed");
        let text = std::fs::read_to_string(path).expect("read");
        assert_eq!(text.lines().count(), SAMPLE_REVIEWS);
        for line in text.lines() {
            serde_json::from_str::<app::api::Review>(line).expect("a review");
        }
        assert!(datasets.seed_if_empty().expect("seed").is_none());
        assert_eq!(datasets.list().expect("list").datasets, [sample]);
    }
}
