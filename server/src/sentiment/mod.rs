//! Stage 3 · sentiment: classifiers that label a review POSITIVE, NEGATIVE or NEUTRAL.
//! `llm` asks any OpenAI-compatible chat-completions endpoint.

pub mod llm;

pub use app::api::Sentiment;
