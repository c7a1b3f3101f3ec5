//! The Python baselines, run by `pipebook bench --python <interpreter>` in the same invocation,
//! on the same data and (for the pipeline) the same broker: the seeds' socket → confluent-kafka →
//! vaderSentiment pipeline, vaderSentiment alone, and pandas for the window aggregate.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Where the baseline scripts are and which interpreter runs them.
#[derive(Debug, Clone)]
pub struct Python {
    pub interpreter: PathBuf,
    pub scripts: PathBuf,
}

impl Python {
    /// Runs `scripts/<script> args…` and parses the JSON object it prints last.
    pub fn run(&self, script: &str, args: &[String]) -> Result<Value, String> {
        let output = Command::new(&self.interpreter)
            .arg(self.scripts.join(script))
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.interpreter.display()))?;
        if !output.status.success() {
            return Err(format!(
                "{script} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .last()
                    .unwrap_or_default()
            ));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let last = stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'));
        serde_json::from_str(last.unwrap_or_default())
            .map_err(|e| format!("{script} printed no JSON result: {e}"))
    }
}

/// A number from a baseline's JSON answer.
pub fn figure(answer: &Value, key: &str) -> Option<f64> {
    answer.get(key).and_then(Value::as_f64)
}

/// Writes reviews as JSON lines, the socket server's input in the Python pipeline.
pub fn write_reviews(path: &Path, seed: u64, n: u64) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for review in crate::streamer::generator::ReviewGenerator::new(seed).take(n as usize) {
        writeln!(
            file,
            "{}",
            serde_json::to_string(&review).unwrap_or_default()
        )?;
    }
    file.flush()
}
