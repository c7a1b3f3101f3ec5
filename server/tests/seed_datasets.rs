//! The seeds' other datasets (issue 17) through the real pipeline on the embedded broker:
//! generated tweets go streamer → producer → sentiment and come out labelled, keyed by user; a
//! tweet file's broken line is dead-lettered by the producer with the field at fault; companies
//! (no text) are refused by sentiment, at its start and record by record. The windows count the
//! labelled tweets.

mod common;

use std::time::Duration;

use app::api::{TOPIC_DLQ, TOPIC_REVIEWS, TOPIC_SENTIMENT};
use common::{counter, eventually, group_lag, read_all, start_engine};
use pipebook::sentiment::GROUP;
use serde_json::{Value, json};

const TWEETS: u64 = 600;

fn json_of(message: &app::api::Message) -> Value {
    serde_json::from_str(&message.value).expect("JSON record")
}

/// Starts the streamer with `config` (the producer too the first time, which then reconnects to
/// each new streamer) and waits until the producer has `acked` records in all.
async fn stream(engine: &pipebook::pipeline::Engine, config: Value, acked: u64) {
    let first = acked == TWEETS;
    let _ = engine.stop_stage("streamer").await;
    engine
        .start_stage("streamer", config)
        .await
        .expect("streamer starts");
    if first {
        engine
            .start_stage("producer", json!({}))
            .await
            .expect("producer starts");
    }
    eventually("records acknowledged", Duration::from_secs(120), || async {
        (counter(engine, "producer", "acked") + counter(engine, "producer", "dlq_acked") >= acked)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tweets_are_labelled_by_user_and_companies_are_refused_by_sentiment() {
    let t = start_engine().await;
    let engine = &t.engine;
    stream(
        engine,
        json!({"dataset": "tweets", "rate": 0, "chunk_size": 200, "limit": TWEETS, "seed": 5}),
        TWEETS,
    )
    .await;

    // On `reviews`: each tweet keyed by its user and tagged with its dataset.
    let produced = read_all(engine, TOPIC_REVIEWS).await;
    assert_eq!(produced.len() as u64, TWEETS);
    for message in &produced {
        let tweet = json_of(message);
        assert_eq!(tweet["dataset"], "tweets");
        assert_eq!(
            message.key.as_deref(),
            tweet["user"].as_str(),
            "keyed by user"
        );
    }

    engine
        .start_stage("sentiment", json!({"workers": 2}))
        .await
        .expect("sentiment starts on tweets");
    eventually("group lag 0", Duration::from_secs(120), || async {
        (group_lag(engine, GROUP).await == Some(0)).then_some(())
    })
    .await;
    let labelled = read_all(engine, TOPIC_SENTIMENT).await;
    assert_eq!(
        labelled.len() as u64,
        TWEETS,
        "one labelled output per tweet"
    );
    let mut labels = std::collections::BTreeSet::new();
    for message in &labelled {
        let out = json_of(message);
        assert_eq!(
            message.key.as_deref(),
            out["user"].as_str(),
            "still keyed by user"
        );
        assert!(
            out["hashtags"].is_array() && out["text"].is_string(),
            "{out}"
        );
        labels.insert(out["sentiment"].as_str().expect("a label").to_owned());
    }
    assert_eq!(
        labels.len(),
        3,
        "positive, negative and neutral tweets: {labels:?}"
    );
    let view = engine.subscribe().borrow().sentiment.clone();
    let checked: u64 = view.confusion.iter().flatten().sum();
    assert_eq!(checked, 0, "tweets have no stars to check labels against");
    assert!(view.latest.iter().all(|l| l.stars == 0));

    // The windows count the labelled tweets as they count reviews (sessions per user).
    engine
        .start_stage(
            "aggregate",
            json!({"trigger_ms": 200, "tumbling_secs": 86_400, "sliding_secs": 86_400,
                   "slide_secs": 21_600, "allowed_lateness_secs": 86_400}),
        )
        .await
        .expect("aggregate starts");
    eventually("tweets counted", Duration::from_secs(60), || async {
        (counter(engine, "aggregate", "counted") >= TWEETS).then_some(())
    })
    .await;
    assert_eq!(counter(engine, "aggregate", "counted"), TWEETS);
    assert_eq!(counter(engine, "aggregate", "dlq"), 0, "no tweet refused");
    engine
        .stop_stage("aggregate")
        .await
        .expect("aggregate stops");

    // A tweet file with a broken line: the producer dead-letters it, naming the field.
    let good = r#"{"tweet_id":"t1","user":"ana","text":"love it","hashtags":[],"created_at":"2024-01-01 09:00:00"}"#;
    let bad =
        r#"{"tweet_id":"t2","text":"no user","hashtags":[],"created_at":"2024-01-01 09:00:10"}"#;
    std::fs::write(
        engine.datasets().dir().join("tweets.jsonl"),
        format!("{good}\n{bad}\n"),
    )
    .expect("write dataset");
    let before = counter(engine, "producer", "acked") + counter(engine, "producer", "dlq_acked");
    stream(
        engine,
        json!({"dataset": "tweets", "source": "tweets.jsonl", "clock": "replay"}),
        before + 2,
    )
    .await;
    let letters: Vec<Value> = read_all(engine, TOPIC_DLQ)
        .await
        .iter()
        .map(json_of)
        .collect();
    assert!(
        letters.iter().any(|l| l["stage"] == "producer"
            && l["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("user is missing"))),
        "{letters:?}"
    );

    // Companies reaching a running sentiment stage: each one dead-lettered with the reason.
    stream(
        engine,
        json!({"dataset": "companies", "rate": 0, "limit": 10, "seed": 6}),
        before + 12,
    )
    .await;
    let refused = eventually(
        "companies dead-lettered",
        Duration::from_secs(60),
        || async {
            let refused = read_all(engine, TOPIC_DLQ)
                .await
                .iter()
                .map(json_of)
                .filter(|l| {
                    l["stage"] == "sentiment"
                        && l["reason"]
                            == "companies has no text field: nothing to classify; skip to cell 4"
                })
                .count();
            (refused == 10).then_some(refused)
        },
    )
    .await;
    assert_eq!(refused, 10);

    // And a sentiment stage started on companies is refused outright, saying why.
    engine.stop_stage("sentiment").await.expect("stops");
    let error = engine
        .start_stage("sentiment", json!({}))
        .await
        .expect_err("nothing to classify");
    assert!(
        error.to_string().starts_with("companies has no text field"),
        "{error}"
    );
    engine.shutdown().await;
}
