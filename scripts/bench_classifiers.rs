//! Standalone throughput check of the two offline classifiers on one core, optimised without a
//! release build of the workspace (docs/benchmarks.md):
//!     rustc -O --edition 2024 scripts/bench_classifiers.rs -o /tmp/bench_classifiers
//!     /tmp/bench_classifiers ../shared/data/yelp_labelled.txt 50
mod lexicon {
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub enum Sentiment {
        Positive,
        Negative,
        Neutral,
    }
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Thresholds {
        pub positive: f64,
        pub negative: f64,
    }
    impl Default for Thresholds {
        fn default() -> Self {
            Thresholds {
                positive: 0.05,
                negative: -0.05,
            }
        }
    }
    impl Thresholds {
        pub fn label(&self, x: f64) -> Sentiment {
            if x >= self.positive {
                Sentiment::Positive
            } else if x <= self.negative {
                Sentiment::Negative
            } else {
                Sentiment::Neutral
            }
        }
    }
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub enum ClassifierKind {
        TextBlob,
    }
    #[derive(Debug, Clone, PartialEq)]
    pub struct Classification {
        pub sentiment: Sentiment,
        pub score: f64,
        pub classifier: ClassifierKind,
        pub model: Option<String>,
        pub note: Option<String>,
    }
}
#[path = "../server/src/sentiment/textblob.rs"]
#[allow(dead_code)]
mod textblob;
#[path = "../server/src/sentiment/vader.rs"]
#[allow(dead_code)]
mod vader;
use std::time::Instant;
fn main() {
    let path = std::env::args().nth(1).expect("file");
    let reps: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(50);
    let data = std::fs::read_to_string(path).unwrap();
    let texts: Vec<&str> = data
        .lines()
        .filter_map(|l| l.rsplit_once('\t').map(|(t, _)| t))
        .collect();
    let n = texts.len() * reps;
    let tb = textblob::TextBlobClassifier::new(Default::default());
    let va = vader::SentimentIntensityAnalyzer::new();
    for round in 0..3 {
        let t = Instant::now();
        let mut pos = 0;
        for _ in 0..reps {
            for x in &texts {
                if tb.classify(x).score >= 0.05 {
                    pos += 1;
                }
            }
        }
        let tb_rate = n as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut vpos = 0;
        for _ in 0..reps {
            for x in &texts {
                if va.polarity_scores(x).compound >= 0.05 {
                    vpos += 1;
                }
            }
        }
        let va_rate = n as f64 / t.elapsed().as_secs_f64();
        println!(
            "round {round}: textblob {tb_rate:.0} reviews/s ({pos} pos), vader {va_rate:.0} reviews/s ({vpos} pos), n={n}"
        );
    }
}
