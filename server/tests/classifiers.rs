//! The classifier lane on the embedded broker: the sentiment stage labelling with TextBlob, and
//! cell 3's A/B view (`POST /api/sentiment/compare`) comparing two classifiers on the same
//! records.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use app::api::{ClassifierComparison, EnrichedReview, Review, TOPIC_REVIEWS, TOPIC_SENTIMENT};
use common::{eventually, group_lag, read_all, serve, start_engine, stream_reviews};
use pipebook::sentiment::GROUP;
use pipebook::sentiment::lexicon::{LexiconClassifier, Thresholds};
use pipebook::sentiment::textblob::{TextBlobAnalyzer, TextBlobClassifier};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn textblob_workers_label_every_review_and_the_ab_view_compares_the_same_records() {
    let t = start_engine().await;
    let engine = &t.engine;
    stream_reviews(engine, 600, 5).await;

    engine
        .start_stage("sentiment", json!({"workers": 2, "classifier": "textblob"}))
        .await
        .expect("sentiment starts with textblob");
    eventually("group lag 0", Duration::from_secs(180), || async {
        (group_lag(engine, GROUP).await == Some(0)).then_some(())
    })
    .await;

    // Every review labelled by TextBlob, with TextBlob's polarity as its score.
    let analyzer = TextBlobAnalyzer::new();
    let labelled = read_all(engine, TOPIC_SENTIMENT).await;
    assert!(labelled.len() >= 600, "{} labelled", labelled.len());
    for message in &labelled {
        let enriched: EnrichedReview = serde_json::from_str(&message.value).expect("enriched");
        assert_eq!(enriched.classifier, "textblob");
        // (serde_json reads floats to within an ulp, not always exactly.)
        let polarity = analyzer.sentiment(&enriched.review.text).polarity;
        assert!(
            (enriched.score - polarity).abs() < 1e-12,
            "{} vs {polarity}",
            enriched.score
        );
    }

    // The A/B view over HTTP: VADER against TextBlob on the newest 100 of each partition.
    let served = serve(t.engine.clone()).await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/sentiment/compare", served.base);
    let response = http
        .post(&url)
        .json(&json!({"a": "lexicon", "b": "textblob", "limit": 300}))
        .send()
        .await
        .expect("compare");
    assert_eq!(response.status(), 200);
    let c: ClassifierComparison = response.json().await.expect("comparison JSON");
    assert_eq!((c.n, c.with_stars), (300, 300));
    assert_eq!(
        (c.a.classifier.as_str(), c.b.classifier.as_str()),
        ("lexicon", "textblob")
    );

    // The same figures computed here from the same records.
    let mut by_partition: BTreeMap<i32, Vec<Review>> = BTreeMap::new();
    for message in read_all(engine, TOPIC_REVIEWS).await {
        let review: Review = serde_json::from_str(&message.value).expect("review");
        by_partition
            .entry(message.partition)
            .or_default()
            .push(review);
    }
    let newest: Vec<Review> = by_partition
        .values()
        .flat_map(|reviews| reviews[reviews.len().saturating_sub(100)..].to_vec())
        .collect();
    assert_eq!(newest.len(), 300);
    let vader = LexiconClassifier::new(Thresholds::default());
    let textblob = TextBlobClassifier::new(Thresholds::default());
    let mut agreement = [[0u64; 3]; 3];
    let (mut vader_right, mut textblob_right) = (0, 0);
    for review in &newest {
        let (x, y) = (
            vader.classify(&review.text).sentiment,
            textblob.classify(&review.text).sentiment,
        );
        agreement[x.index()][y.index()] += 1;
        let stars = app::api::Sentiment::from_stars(review.stars);
        vader_right += u64::from(x == stars);
        textblob_right += u64::from(y == stars);
    }
    assert_eq!(c.agreement, agreement);
    assert_eq!(c.agree, (0..3).map(|i| agreement[i][i]).sum::<u64>());
    assert_eq!(
        (c.a.correct_vs_stars, c.b.correct_vs_stars),
        (vader_right, textblob_right)
    );
    assert_eq!(c.rows.len(), 20);
    let first_agreeing = c
        .rows
        .iter()
        .position(|r| r.a == r.b)
        .unwrap_or(c.rows.len());
    assert!(
        c.rows[first_agreeing..].iter().all(|r| r.a == r.b),
        "disagreements come first"
    );

    // Bad requests name the field.
    for (body, field) in [
        (
            json!({"a": "lexicon", "b": "textblob", "limit": 0}),
            "limit",
        ),
        (json!({"a": "lexicon", "b": "vader"}), ""),
    ] {
        let response = http.post(&url).json(&body).send().await.expect("post");
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.expect("error JSON");
        let message = error["error"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{body}: {message}");
    }
    if std::env::var_os("PIPEBOOK_LLM_BASE_URL").is_none() {
        let response = http
            .post(&url)
            .json(&json!({"a": "llm", "b": "textblob"}))
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 400);
        let error: Value = response.json().await.expect("error JSON");
        let message = error["error"].as_str().unwrap_or_default();
        assert!(message.starts_with("a:"), "{message}");
    }
    engine.shutdown().await;
}
