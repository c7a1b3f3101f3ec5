//! Scores a classifier on a labelled file such as `shared/data/yelp_labelled.txt`.
//!
//! File format: one example a line, `text TAB label`, label `1` (positive) or `0` (negative).
//! The last tab on a line separates text and label; whitespace around the label is ignored, so
//! CRLF files work. Blank lines are ignored.
//!
//! Malformed lines (no tab, empty text, a label other than 0/1, bytes that are not UTF-8) do not
//! stop the evaluation: they are counted in [`EvalReport::skipped`] and the first
//! [`MAX_SKIPPED_LISTED`] of them are listed with their line number and reason. Only a file that
//! cannot be read, or that has no well-formed line at all, is an error.
//!
//! Scoring is the usual binary reading of a three-way classifier: a prediction is correct when it
//! is POSITIVE for label 1, or NEGATIVE or NEUTRAL for label 0. The "positive" class is therefore
//! "predicted POSITIVE" and the "negative" class "predicted NEGATIVE or NEUTRAL".
//!
//! The offline classifiers (the VADER lexicon, TextBlob) run on the calling task, one review after another (it is CPU-bound and fast), so
//! `reviews_per_s` is single-core throughput. The LLM classifier runs up to
//! [`LLM_IN_FLIGHT`] classifications at once (the [`LlmClassifier`] itself further limits the
//! HTTP requests in flight); a review the LLM fails on is labelled by the lexicon with default
//! thresholds instead and counted in [`EvalReport::fallbacks`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;

use super::Sentiment;
use super::lexicon::{ClassifierKind, LexiconClassifier, Thresholds};
use super::llm::LlmClassifier;
use super::textblob::TextBlobClassifier;

/// LLM requests (of up to `batch_size` reviews each) awaited at once.
pub const LLM_IN_FLIGHT: usize = 16;
/// Malformed lines listed (with number and reason) in a report; all of them are counted.
pub const MAX_SKIPPED_LISTED: usize = 20;

/// The classifier to evaluate.
pub enum EvalClassifier {
    Lexicon(LexiconClassifier),
    TextBlob(TextBlobClassifier),
    Llm(LlmClassifier),
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} has no labelled line (text TAB 0|1); {skipped} malformed line(s) skipped", path.display())]
    NoExamples { path: PathBuf, skipped: u64 },
}

/// A malformed line that was left out of the evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedLine {
    /// 1-based line number in the file.
    pub line: usize,
    pub reason: String,
}

/// Precision, recall and F1 of one class; each is 0 when undefined (division by zero).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Examples whose label is this class.
    pub support: u64,
}

impl ClassMetrics {
    fn new(true_positives: u64, false_positives: u64, false_negatives: u64) -> Self {
        let precision = ratio(true_positives, true_positives + false_positives);
        let recall = ratio(true_positives, true_positives + false_negatives);
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        ClassMetrics {
            precision,
            recall,
            f1,
            support: true_positives + false_negatives,
        }
    }
}

/// How many examples of one label got each prediction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub struct PredictedCounts {
    pub positive: u64,
    pub negative: u64,
    pub neutral: u64,
}

impl PredictedCounts {
    fn add(&mut self, sentiment: Sentiment) {
        match sentiment {
            Sentiment::Positive => self.positive += 1,
            Sentiment::Negative => self.negative += 1,
            Sentiment::Neutral => self.neutral += 1,
        }
    }

    fn total(&self) -> u64 {
        self.positive + self.negative + self.neutral
    }
}

/// Label × prediction counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// Examples labelled 0 (negative).
    pub label_0: PredictedCounts,
    /// Examples labelled 1 (positive).
    pub label_1: PredictedCounts,
}

impl Confusion {
    fn add(&mut self, positive_label: bool, predicted: Sentiment) {
        if positive_label {
            self.label_1.add(predicted);
        } else {
            self.label_0.add(predicted);
        }
    }
}

/// The result of [`evaluate`]. `Display` prints a table; serialize it for JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// The evaluated file, as given.
    pub file: String,
    /// Examples evaluated (well-formed lines).
    pub n: u64,
    /// Correct predictions: POSITIVE for label 1, NEGATIVE or NEUTRAL for label 0.
    pub correct: u64,
    pub accuracy: f64,
    /// Examples per second of classification alone (file reading and parsing excluded); 0 when
    /// the time was too short to measure.
    pub reviews_per_s: f64,
    /// Seconds spent classifying.
    pub classify_s: f64,
    pub classifier: ClassifierKind,
    /// The LLM's model name; `None` for the offline classifiers.
    pub model: Option<String>,
    /// The offline classifier's thresholds (for the LLM: those of its lexicon fallback).
    pub thresholds: Thresholds,
    /// Class "predicted POSITIVE" against label 1.
    pub positive: ClassMetrics,
    /// Class "predicted NEGATIVE or NEUTRAL" against label 0.
    pub negative: ClassMetrics,
    /// Share of examples predicted NEUTRAL.
    pub neutral_share: f64,
    pub confusion: Confusion,
    /// LLM only: examples the LLM failed on, labelled by the lexicon instead. Always 0 for the
    /// lexicon.
    pub fallbacks: u64,
    /// LLM only: the error of the first (lowest-numbered) line that fell back.
    pub first_error: Option<SkippedLine>,
    /// Malformed lines left out.
    pub skipped: u64,
    /// The first [`MAX_SKIPPED_LISTED`] malformed lines.
    pub skipped_lines: Vec<SkippedLine>,
}

/// One well-formed line.
struct Example {
    line: usize,
    text: String,
    positive: bool,
}

/// What a file holds: its examples and the malformed lines.
struct Parsed {
    examples: Vec<Example>,
    skipped: u64,
    skipped_lines: Vec<SkippedLine>,
}

/// Reads `path` and scores `classifier` on it. See the module documentation for the file format
/// and the scoring rule.
pub async fn evaluate(path: &Path, classifier: &EvalClassifier) -> Result<EvalReport, EvalError> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|source| EvalError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let parsed = parse(&bytes);
    if parsed.examples.is_empty() {
        return Err(EvalError::NoExamples {
            path: path.to_path_buf(),
            skipped: parsed.skipped,
        });
    }

    let predicted = match classifier {
        EvalClassifier::Lexicon(lexicon) => {
            predict_offline(&parsed.examples, lexicon.thresholds(), |t| {
                lexicon.classify(t).sentiment
            })
        }
        EvalClassifier::TextBlob(textblob) => {
            predict_offline(&parsed.examples, textblob.thresholds(), |t| {
                textblob.classify(t).sentiment
            })
        }
        EvalClassifier::Llm(llm) => predict_llm(llm, &parsed.examples).await,
    };
    let (kind, model) = match classifier {
        EvalClassifier::Lexicon(_) => (ClassifierKind::Lexicon, None),
        EvalClassifier::TextBlob(_) => (ClassifierKind::TextBlob, None),
        EvalClassifier::Llm(llm) => (ClassifierKind::Llm, Some(llm.model().to_owned())),
    };
    Ok(report(path, parsed, predicted, kind, model))
}

/// The predictions for every example, in file order.
struct Predictions {
    sentiments: Vec<Sentiment>,
    elapsed: Duration,
    thresholds: Thresholds,
    fallbacks: u64,
    first_error: Option<SkippedLine>,
}

/// An offline (CPU-bound) classifier, one review after another on the calling task.
fn predict_offline(
    examples: &[Example],
    thresholds: Thresholds,
    classify: impl Fn(&str) -> Sentiment,
) -> Predictions {
    let started = Instant::now();
    let sentiments: Vec<Sentiment> = examples
        .iter()
        .map(|example| classify(&example.text))
        .collect();
    Predictions {
        sentiments,
        elapsed: started.elapsed(),
        thresholds,
        fallbacks: 0,
        first_error: None,
    }
}

async fn predict_llm(llm: &LlmClassifier, examples: &[Example]) -> Predictions {
    let fallback = LexiconClassifier::new(Thresholds::default());
    let started = Instant::now();
    // Several reviews per request (`PIPEBOOK_LLM_BATCH_SIZE`), each review falling back on its own.
    let mut batches: Vec<(usize, Vec<Result<Sentiment, String>>)> =
        futures::stream::iter(examples.chunks(llm.batch_size().max(1)).enumerate())
            .map(|(index, chunk)| async move {
                let texts: Vec<&str> = chunk.iter().map(|e| e.text.as_str()).collect();
                let answers = llm
                    .classify_many(&texts)
                    .await
                    .into_iter()
                    .map(|answer| {
                        answer
                            .map(|label| label.sentiment)
                            .map_err(|error| error.to_string())
                    })
                    .collect();
                (index, answers)
            })
            .buffer_unordered(LLM_IN_FLIGHT)
            .collect()
            .await;
    batches.sort_by_key(|(index, _)| *index);
    let answers = batches
        .into_iter()
        .flat_map(|(_, answers)| answers)
        .enumerate();

    let mut sentiments = Vec::with_capacity(examples.len());
    let mut fallbacks = 0;
    let mut first_error = None;
    for ((_, answer), example) in answers.zip(examples) {
        match answer {
            Ok(sentiment) => sentiments.push(sentiment),
            Err(reason) => {
                tracing::debug!(line = example.line, %reason, "LLM failed; using the lexicon");
                fallbacks += 1;
                if first_error.is_none() {
                    first_error = Some(SkippedLine {
                        line: example.line,
                        reason,
                    });
                }
                sentiments.push(fallback.classify(&example.text).sentiment);
            }
        }
    }
    Predictions {
        sentiments,
        elapsed: started.elapsed(),
        thresholds: fallback.thresholds(),
        fallbacks,
        first_error,
    }
}

fn report(
    path: &Path,
    parsed: Parsed,
    predicted: Predictions,
    classifier: ClassifierKind,
    model: Option<String>,
) -> EvalReport {
    let mut confusion = Confusion::default();
    for (example, sentiment) in parsed.examples.iter().zip(&predicted.sentiments) {
        confusion.add(example.positive, *sentiment);
    }
    let zero = confusion.label_0;
    let one = confusion.label_1;
    let n = zero.total() + one.total();
    let correct = one.positive + zero.negative + zero.neutral;
    let seconds = predicted.elapsed.as_secs_f64();
    let reviews_per_s = if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    };
    EvalReport {
        file: path.display().to_string(),
        n,
        correct,
        accuracy: ratio(correct, n),
        reviews_per_s,
        classify_s: seconds,
        classifier,
        model,
        thresholds: predicted.thresholds,
        positive: ClassMetrics::new(one.positive, zero.positive, one.negative + one.neutral),
        negative: ClassMetrics::new(
            zero.negative + zero.neutral,
            one.negative + one.neutral,
            zero.positive,
        ),
        neutral_share: ratio(zero.neutral + one.neutral, n),
        confusion,
        fallbacks: predicted.fallbacks,
        first_error: predicted.first_error,
        skipped: parsed.skipped,
        skipped_lines: parsed.skipped_lines,
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn parse(bytes: &[u8]) -> Parsed {
    let mut parsed = Parsed {
        examples: Vec::new(),
        skipped: 0,
        skipped_lines: Vec::new(),
    };
    for (index, raw) in bytes.split(|byte| *byte == b'\n').enumerate() {
        let line = index + 1;
        match parse_line(raw) {
            Ok(None) => {}
            Ok(Some((text, positive))) => parsed.examples.push(Example {
                line,
                text: text.to_owned(),
                positive,
            }),
            Err(reason) => {
                parsed.skipped += 1;
                if parsed.skipped_lines.len() < MAX_SKIPPED_LISTED {
                    parsed.skipped_lines.push(SkippedLine {
                        line,
                        reason: reason.to_owned(),
                    });
                }
            }
        }
    }
    parsed
}

/// `Ok(None)` for a blank line, `Ok(Some((text, positive)))` for an example, `Err(reason)` for a
/// malformed line.
fn parse_line(raw: &[u8]) -> Result<Option<(&str, bool)>, &'static str> {
    let Ok(line) = std::str::from_utf8(raw) else {
        return Err("not valid UTF-8");
    };
    if line.trim().is_empty() {
        return Ok(None);
    }
    let Some((text, label)) = line.rsplit_once('\t') else {
        return Err("no tab between text and label");
    };
    let positive = match label.trim() {
        "1" => true,
        "0" => false,
        _ => return Err("label is not 0 or 1"),
    };
    if text.trim().is_empty() {
        return Err("text is empty");
    }
    Ok(Some((text, positive)))
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.model {
            Some(model) => writeln!(f, "classifier     {} ({model})", self.classifier.as_str())?,
            None => writeln!(f, "classifier     {}", self.classifier.as_str())?,
        }
        writeln!(f, "file           {}", self.file)?;
        writeln!(
            f,
            "reviews        {} ({} malformed line(s) skipped)",
            self.n, self.skipped
        )?;
        writeln!(
            f,
            "accuracy       {:.4} ({} of {} correct)",
            self.accuracy, self.correct, self.n
        )?;
        writeln!(
            f,
            "throughput     {:.0} reviews/s ({:.3} s classifying)",
            self.reviews_per_s, self.classify_s
        )?;
        let fallback = match self.classifier {
            ClassifierKind::Lexicon | ClassifierKind::TextBlob => "",
            ClassifierKind::Llm => " (lexicon fallback)",
        };
        writeln!(
            f,
            "thresholds     POSITIVE >= {}, NEGATIVE <= {}{fallback}",
            self.thresholds.positive, self.thresholds.negative
        )?;
        writeln!(f, "neutral share  {:.1}%", self.neutral_share * 100.0)?;
        if self.classifier == ClassifierKind::Llm {
            writeln!(f, "LLM fallbacks  {}", self.fallbacks)?;
            if let Some(error) = &self.first_error {
                writeln!(f, "first error    line {}: {}", error.line, error.reason)?;
            }
        }
        writeln!(f)?;
        writeln!(
            f,
            "class                       precision  recall     F1  support"
        )?;
        for (name, metrics) in [
            ("positive (POSITIVE)", &self.positive),
            ("negative (NEGATIVE|NEUTRAL)", &self.negative),
        ] {
            writeln!(
                f,
                "{name:<27} {:>9.4} {:>7.4} {:>6.4} {:>8}",
                metrics.precision, metrics.recall, metrics.f1, metrics.support
            )?;
        }
        writeln!(f)?;
        writeln!(f, "label \\ predicted  POSITIVE  NEGATIVE  NEUTRAL")?;
        for (name, counts) in [
            ("1 (positive)", &self.confusion.label_1),
            ("0 (negative)", &self.confusion.label_0),
        ] {
            writeln!(
                f,
                "{name:<18} {:>8} {:>9} {:>8}",
                counts.positive, counts.negative, counts.neutral
            )?;
        }
        if !self.skipped_lines.is_empty() {
            writeln!(f)?;
            for skipped in &self.skipped_lines {
                writeln!(f, "skipped line {}: {}", skipped.line, skipped.reason)?;
            }
            let unlisted = self.skipped - self.skipped_lines.len() as u64;
            if unlisted > 0 {
                writeln!(f, "… and {unlisted} more malformed line(s)")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Write;

    use crate::sentiment::llm::LlmConfig;

    /// Hand-checked: VADER scores these as commented.
    const TINY: &str = "\
The food was absolutely delicious!\t1
Great value and friendly people.\t1
Terrible service, I hate it.\t1
The table was by the window.\t1

Rude staff and cold, bland food.\t0
The restaurant is on Main Street.\t0
I love this place.\t0
";

    fn write_file(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        let mut file = std::fs::File::create(&path).expect("create");
        file.write_all(content).expect("write");
        path
    }

    fn lexicon() -> EvalClassifier {
        EvalClassifier::Lexicon(LexiconClassifier::new(Thresholds::default()))
    }

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() < 1e-12
    }

    #[test]
    fn tiny_file_is_labelled_as_expected() {
        let classifier = LexiconClassifier::default();
        let expected = [
            Sentiment::Positive,
            Sentiment::Positive,
            Sentiment::Negative,
            Sentiment::Neutral,
            Sentiment::Negative,
            Sentiment::Neutral,
            Sentiment::Positive,
        ];
        let parsed = parse(TINY.as_bytes());
        assert_eq!(parsed.examples.len(), expected.len());
        for (example, want) in parsed.examples.iter().zip(expected) {
            assert_eq!(
                classifier.classify(&example.text).sentiment,
                want,
                "{}",
                example.text
            );
        }
    }

    #[tokio::test]
    async fn tiny_file_gives_hand_checked_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_file(&dir, "tiny.txt", TINY.as_bytes());

        let report = evaluate(&path, &lexicon()).await.expect("evaluate");

        assert_eq!(report.n, 7);
        assert_eq!(report.skipped, 0, "a blank line is not malformed");
        assert_eq!(
            report.confusion.label_1,
            PredictedCounts {
                positive: 2,
                negative: 1,
                neutral: 1
            }
        );
        assert_eq!(
            report.confusion.label_0,
            PredictedCounts {
                positive: 1,
                negative: 1,
                neutral: 1
            }
        );
        assert_eq!(report.correct, 4);
        assert!(close(report.accuracy, 4.0 / 7.0), "{}", report.accuracy);
        // Positive: tp 2, fp 1, fn 2. Negative: tp 2, fp 2, fn 1.
        assert!(close(report.positive.precision, 2.0 / 3.0));
        assert!(close(report.positive.recall, 0.5));
        assert!(close(report.positive.f1, 4.0 / 7.0));
        assert_eq!(report.positive.support, 4);
        assert!(close(report.negative.precision, 0.5));
        assert!(close(report.negative.recall, 2.0 / 3.0));
        assert!(close(report.negative.f1, 4.0 / 7.0));
        assert_eq!(report.negative.support, 3);
        assert!(close(report.neutral_share, 2.0 / 7.0));
        assert_eq!(report.classifier, ClassifierKind::Lexicon);
        assert_eq!(report.model, None);
        assert_eq!(report.fallbacks, 0);
        assert_eq!(report.thresholds, Thresholds::default());
        assert!(report.reviews_per_s >= 0.0);
    }

    #[tokio::test]
    async fn malformed_lines_are_skipped_with_their_line_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut content = b"Loved it.\t1\r\nno tab here 1\r\nBad label.\t2\r\n\t0\r\n".to_vec();
        content.extend_from_slice(
            b"caf\xe9 latin-1\t1\nAwful.\t0\n\n   \nTab\tinside the text.\t 1 \n",
        );
        let path = write_file(&dir, "malformed.txt", &content);

        let report = evaluate(&path, &lexicon()).await.expect("evaluate");

        assert_eq!(report.n, 3, "lines 1, 6 and 9 are well-formed");
        assert_eq!(report.skipped, 4);
        let listed: Vec<(usize, &str)> = report
            .skipped_lines
            .iter()
            .map(|s| (s.line, s.reason.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                (2, "no tab between text and label"),
                (3, "label is not 0 or 1"),
                (4, "text is empty"),
                (5, "not valid UTF-8"),
            ]
        );
        let text = report.to_string();
        assert!(text.contains("skipped line 2: no tab"), "{text}");
    }

    #[tokio::test]
    async fn skipped_lines_are_all_counted_but_not_all_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut content = "junk\n".repeat(MAX_SKIPPED_LISTED + 5);
        content.push_str("Nice.\t1\n");
        let path = write_file(&dir, "junk.txt", content.as_bytes());

        let report = evaluate(&path, &lexicon()).await.expect("evaluate");

        assert_eq!(report.n, 1);
        assert_eq!(report.skipped, MAX_SKIPPED_LISTED as u64 + 5);
        assert_eq!(report.skipped_lines.len(), MAX_SKIPPED_LISTED);
        assert!(report.to_string().contains("and 5 more"));
    }

    #[tokio::test]
    async fn a_file_without_examples_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_file(&dir, "empty.txt", b"just text\n\nmore text\n");

        let err = evaluate(&path, &lexicon()).await.expect_err("no examples");

        assert!(
            matches!(err, EvalError::NoExamples { skipped: 2, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("empty.txt"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing.txt");

        let err = evaluate(&path, &lexicon()).await.expect_err("missing");

        assert!(matches!(err, EvalError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains("missing.txt"), "{err}");
    }

    #[tokio::test]
    async fn display_and_json_show_the_figures() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_file(&dir, "tiny.txt", TINY.as_bytes());
        let report = evaluate(&path, &lexicon()).await.expect("evaluate");

        let text = report.to_string();
        assert!(
            text.contains("accuracy       0.5714 (4 of 7 correct)"),
            "{text}"
        );
        assert!(text.contains("classifier     lexicon"), "{text}");
        assert!(!text.contains("LLM fallbacks"), "{text}");

        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["n"], 7);
        assert_eq!(json["classifier"], "lexicon");
        assert_eq!(json["model"], serde_json::Value::Null);
        assert_eq!(json["thresholds"]["positive"], 0.05);
        assert_eq!(json["confusion"]["label_1"]["POSITIVE"], 2);
        assert_eq!(json["confusion"]["label_0"]["NEUTRAL"], 1);
        assert!(json["accuracy"].is_f64());
        assert!(json["positive"]["f1"].is_f64());
    }

    /// A fake chat-completions endpoint: texts containing "broken" get HTTP 400 (not retried),
    /// texts containing "nice" get POSITIVE and the rest NEGATIVE. A batch request (a JSON
    /// array of reviews) gets a JSON object of labels that leaves the "broken" ones out, so
    /// they are asked alone.
    async fn spawn_fake_llm() -> String {
        use axum::Json;
        use axum::http::StatusCode;
        use axum::response::{IntoResponse, Response};

        fn label(text: &str) -> &'static str {
            if text.contains("nice") {
                "POSITIVE"
            } else {
                "NEGATIVE"
            }
        }

        async fn answer(Json(body): Json<serde_json::Value>) -> Response {
            let text = body["messages"][1]["content"].as_str().unwrap_or_default();
            if let Ok(reviews) = serde_json::from_str::<Vec<serde_json::Value>>(text) {
                let labels: serde_json::Map<String, serde_json::Value> = reviews
                    .iter()
                    .filter_map(|r| Some((r["id"].as_str()?, r["text"].as_str()?)))
                    .filter(|(_, text)| !text.contains("broken"))
                    .map(|(id, text)| (id.to_owned(), label(text).into()))
                    .collect();
                let content = serde_json::Value::Object(labels).to_string();
                return Json(serde_json::json!({"choices": [{"message": {"content": content}}]}))
                    .into_response();
            }
            if text.contains("broken") {
                let error = serde_json::json!({"error": {"message": "bad request"}});
                return (StatusCode::BAD_REQUEST, Json(error)).into_response();
            }
            let label = if text.contains("nice") {
                "POSITIVE"
            } else {
                "NEGATIVE"
            };
            Json(serde_json::json!({"choices": [{"message": {"content": label}}]})).into_response()
        }

        let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(answer));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/v1")
    }

    #[tokio::test]
    async fn llm_errors_fall_back_to_the_lexicon_and_are_counted() {
        let base_url = spawn_fake_llm().await;
        let mut config = LlmConfig::new(base_url, "fake-model");
        config.max_retries = 0;
        let llm = LlmClassifier::new(config).expect("llm");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut content = String::new();
        for i in 0..40 {
            content.push_str(&format!("A nice evening, number {i}.\t1\n"));
        }
        // The LLM fails on these; the lexicon says POSITIVE, then NEGATIVE.
        content.push_str("Wonderful and lovely despite the broken chair.\t1\n");
        content.push_str("Terrible and broken.\t0\n");
        content.push_str("Plain words.\t0\n");
        let path = write_file(&dir, "llm.txt", content.as_bytes());

        let report = evaluate(&path, &EvalClassifier::Llm(llm))
            .await
            .expect("evaluate");

        assert_eq!(report.n, 43);
        assert_eq!(report.classifier, ClassifierKind::Llm);
        assert_eq!(report.model.as_deref(), Some("fake-model"));
        assert_eq!(report.fallbacks, 2);
        let first = report.first_error.as_ref().expect("first error");
        assert_eq!(first.line, 41);
        assert!(first.reason.contains("400"), "{}", first.reason);
        assert_eq!(
            report.confusion.label_1,
            PredictedCounts {
                positive: 41,
                negative: 0,
                neutral: 0
            }
        );
        assert_eq!(
            report.confusion.label_0,
            PredictedCounts {
                positive: 0,
                negative: 2,
                neutral: 0
            }
        );
        assert!(close(report.accuracy, 1.0));
        let text = report.to_string();
        assert!(text.contains("classifier     llm (fake-model)"), "{text}");
        assert!(text.contains("LLM fallbacks  2"), "{text}");
        assert!(text.contains("first error    line 41"), "{text}");
    }

    /// The published figure for this data set (Python vaderSentiment, same binary reading).
    const REFERENCE_ACCURACY: f64 = 0.817;

    #[tokio::test]
    async fn lexicon_matches_the_reference_on_yelp() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/yelp_labelled.txt"
        ));
        if !path.exists() {
            println!("skipped: {} does not exist", path.display());
            return;
        }

        let report = evaluate(path, &lexicon()).await.expect("evaluate");

        println!("{report}");
        assert_eq!(report.n, 1000);
        assert_eq!(report.skipped, 0);
        assert!(
            report.accuracy >= REFERENCE_ACCURACY,
            "accuracy {} below the reference {REFERENCE_ACCURACY}",
            report.accuracy
        );
    }
}
