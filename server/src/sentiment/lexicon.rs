//! The offline classifier: VADER's compound score (−1 … 1) cut into a label by two thresholds.
//!
//! Label rule, checked in this order: compound ≥ `positive` → POSITIVE, compound ≤ `negative` →
//! NEGATIVE, anything in between → NEUTRAL. With the defaults (0.05 / −0.05) this is the rule the
//! VADER authors recommend.

use serde::{Deserialize, Serialize};

use super::Sentiment;
use super::vader::SentimentIntensityAnalyzer;

/// Default compound score at or above which a text is POSITIVE.
pub const DEFAULT_POSITIVE: f64 = 0.05;
/// Default compound score at or below which a text is NEGATIVE.
pub const DEFAULT_NEGATIVE: f64 = -0.05;

/// Where the compound score is cut into POSITIVE / NEUTRAL / NEGATIVE.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Compound score at or above which a text is POSITIVE.
    pub positive: f64,
    /// Compound score at or below which a text is NEGATIVE.
    pub negative: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            positive: DEFAULT_POSITIVE,
            negative: DEFAULT_NEGATIVE,
        }
    }
}

/// Invalid [`Thresholds`]; `field` is `"positive"` or `"negative"`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field} threshold {message}")]
pub struct ThresholdError {
    pub field: &'static str,
    pub message: String,
}

impl Thresholds {
    /// Both thresholds must lie in −1..=1 (NaN is rejected) and `positive` must be greater than
    /// `negative`. The error names the offending field.
    pub fn validate(&self) -> Result<(), ThresholdError> {
        for (field, value) in [("positive", self.positive), ("negative", self.negative)] {
            if !(-1.0..=1.0).contains(&value) {
                return Err(ThresholdError {
                    field,
                    message: format!("must be between -1 and 1, got {value}"),
                });
            }
        }
        if self.positive <= self.negative {
            return Err(ThresholdError {
                field: "positive",
                message: format!(
                    "must be greater than the negative threshold ({}), got {}",
                    self.negative, self.positive
                ),
            });
        }
        Ok(())
    }

    /// The label for a compound score (see the module documentation for the rule).
    pub fn label(&self, compound: f64) -> Sentiment {
        if compound >= self.positive {
            Sentiment::Positive
        } else if compound <= self.negative {
            Sentiment::Negative
        } else {
            Sentiment::Neutral
        }
    }
}

/// Which classifier produced a [`Classification`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClassifierKind {
    Lexicon,
    Llm,
    /// TextBlob's pattern lexicon ([`super::textblob`]).
    #[serde(rename = "textblob")]
    TextBlob,
}

impl ClassifierKind {
    /// `"lexicon"`, `"llm"` or `"textblob"`, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            ClassifierKind::Lexicon => "lexicon",
            ClassifierKind::Llm => "llm",
            ClassifierKind::TextBlob => "textblob",
        }
    }
}

/// The label of one text and how it was obtained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    pub sentiment: Sentiment,
    /// VADER compound score or TextBlob polarity, −1 (most negative) … 1 (most positive); 0 when
    /// an LLM labelled it.
    pub score: f64,
    pub classifier: ClassifierKind,
    /// The LLM's model name; `None` for the lexicon.
    pub model: Option<String>,
    /// Anything worth knowing about this label, e.g. why the LLM fell back to the lexicon.
    pub note: Option<String>,
}

/// VADER plus thresholds. Build once and share (`Send + Sync`; classifying needs only `&self`).
#[derive(Debug)]
pub struct LexiconClassifier {
    analyzer: SentimentIntensityAnalyzer,
    thresholds: Thresholds,
}

impl LexiconClassifier {
    /// Builds the analyzer (a few milliseconds: it parses the embedded lexicons). `thresholds` are
    /// used as given; check them first with [`Thresholds::validate`].
    pub fn new(thresholds: Thresholds) -> Self {
        LexiconClassifier {
            analyzer: SentimentIntensityAnalyzer::new(),
            thresholds,
        }
    }

    /// Scores `text` with VADER and labels the compound score.
    pub fn classify(&self, text: &str) -> Classification {
        let score = self.analyzer.polarity_scores(text).compound;
        Classification {
            sentiment: self.thresholds.label(score),
            score,
            classifier: ClassifierKind::Lexicon,
            model: None,
            note: None,
        }
    }

    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }
}

impl Default for LexiconClassifier {
    fn default() -> Self {
        LexiconClassifier::new(Thresholds::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_thresholds_are_vaders_and_valid() {
        let thresholds = Thresholds::default();
        assert_eq!(thresholds.positive, 0.05);
        assert_eq!(thresholds.negative, -0.05);
        assert_eq!(thresholds.validate(), Ok(()));
    }

    #[test]
    fn out_of_range_thresholds_name_the_field() {
        let cases = [
            (1.5, -0.05, "positive"),
            (f64::NAN, -0.05, "positive"),
            (0.05, -1.01, "negative"),
            (0.05, f64::NAN, "negative"),
            (0.05, f64::NEG_INFINITY, "negative"),
        ];
        for (positive, negative, field) in cases {
            let err = Thresholds { positive, negative }
                .validate()
                .expect_err("out of range");
            assert_eq!(err.field, field, "{positive} / {negative}");
            assert!(err.to_string().starts_with(field), "{err}");
        }
    }

    #[test]
    fn crossed_or_equal_thresholds_are_rejected() {
        for (positive, negative) in [(-0.5, 0.5), (0.1, 0.1)] {
            let err = Thresholds { positive, negative }
                .validate()
                .expect_err("crossed");
            assert_eq!(err.field, "positive");
            assert!(err.to_string().contains("greater than"), "{err}");
        }
        let edges = Thresholds {
            positive: 1.0,
            negative: -1.0,
        };
        assert_eq!(edges.validate(), Ok(()));
    }

    #[test]
    fn label_rule_includes_both_thresholds() {
        let thresholds = Thresholds::default();
        assert_eq!(thresholds.label(0.05), Sentiment::Positive);
        assert_eq!(thresholds.label(0.9), Sentiment::Positive);
        assert_eq!(thresholds.label(0.0499), Sentiment::Neutral);
        assert_eq!(thresholds.label(0.0), Sentiment::Neutral);
        assert_eq!(thresholds.label(-0.0499), Sentiment::Neutral);
        assert_eq!(thresholds.label(-0.05), Sentiment::Negative);
        assert_eq!(thresholds.label(-1.0), Sentiment::Negative);
    }

    #[test]
    fn classifies_clear_cases() {
        let classifier = LexiconClassifier::new(Thresholds::default());

        let good = classifier.classify("The food was absolutely delicious!");
        assert_eq!(good.sentiment, Sentiment::Positive);
        assert!(good.score >= 0.05, "{}", good.score);
        assert_eq!(good.classifier, ClassifierKind::Lexicon);
        assert_eq!(good.model, None);
        assert_eq!(good.note, None);

        let bad = classifier.classify("Rude staff and cold, bland food.");
        assert_eq!(bad.sentiment, Sentiment::Negative);
        assert!(bad.score <= -0.05, "{}", bad.score);

        let plain = classifier.classify("The restaurant is on Main Street.");
        assert_eq!(plain.sentiment, Sentiment::Neutral);
        assert_eq!(plain.score, 0.0);

        let empty = classifier.classify("");
        assert_eq!(empty.sentiment, Sentiment::Neutral);
        assert_eq!(empty.score, 0.0);
    }

    #[test]
    fn thresholds_move_the_cut() {
        let text = "The food was okay.";
        let default = LexiconClassifier::default();
        let score = default.classify(text).score;
        assert!(score > 0.05 && score < 0.9, "{score}");
        assert_eq!(default.classify(text).sentiment, Sentiment::Positive);

        let strict = Thresholds {
            positive: 0.9,
            negative: -0.9,
        };
        let classifier = LexiconClassifier::new(strict);
        assert_eq!(classifier.thresholds(), strict);
        let classification = classifier.classify(text);
        assert_eq!(classification.sentiment, Sentiment::Neutral);
        assert_eq!(
            classification.score, score,
            "thresholds never change the score"
        );
    }

    #[test]
    fn classifier_kind_serializes_lowercase() {
        assert_eq!(
            serde_json::to_string(&ClassifierKind::Lexicon).expect("json"),
            "\"lexicon\""
        );
        assert_eq!(
            serde_json::to_string(&ClassifierKind::Llm).expect("json"),
            "\"llm\""
        );
        let kind: ClassifierKind = serde_json::from_str("\"llm\"").expect("json");
        assert_eq!(kind, ClassifierKind::Llm);
        assert_eq!(ClassifierKind::Lexicon.as_str(), "lexicon");
    }

    #[test]
    fn classifier_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<LexiconClassifier>();
    }
}
