//! The seeds' other datasets (issue 17) through the real pipeline on the embedded broker:
//! generated tweets go streamer → producer → sentiment and come out labelled, keyed by user; a
//! tweet file's broken line is dead-lettered by the producer with the field at fault; companies
//! (no text) are skipped by sentiment: written on to `reviews.sentiment` unlabelled, none
//! dead-lettered. The windows count the labelled tweets and list each window's top hashtags,
//! and count the companies by country and industry; the Parquet sink and the indexer take the
//! tweets beside reviews (seed 001's Twitter → Kafka → Spark → Parquet) and skip the companies:
//! none of them reaches the dead-letter topic.

mod common;

use std::time::Duration;

use app::api::{TOPIC_DLQ, TOPIC_REVIEWS, TOPIC_SENTIMENT};
use common::{counter, eventually, group_lag, read_all, serve, start_engine, stream_reviews};
use pipebook::sentiment::GROUP;
use polars::prelude::ListNameSpaceImpl;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const TWEETS: u64 = 600;

/// Every record of the dead-letter topic, as JSON.
async fn dead_letters(engine: &pipebook::pipeline::Engine) -> Vec<Value> {
    read_all(engine, TOPIC_DLQ)
        .await
        .iter()
        .map(json_of)
        .collect()
}

fn json_of(message: &app::api::Message) -> Value {
    serde_json::from_str(&message.value).expect("JSON record")
}

/// A generated record's event time (`created_at`), in ms since the epoch.
fn created_ms(record: &Value) -> i64 {
    chrono::NaiveDateTime::parse_from_str(
        record["created_at"].as_str().expect("created_at"),
        "%Y-%m-%d %H:%M:%S",
    )
    .expect("a generated time")
    .and_utc()
    .timestamp_millis()
}

/// The `n` most counted keys, most first, ties by key: what a window lists.
fn top(counts: BTreeMap<String, u64>, n: usize) -> Vec<(String, u64)> {
    let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(n);
    ranked
}

fn listed(terms: &[app::api::TermCount]) -> Vec<(String, u64)> {
    terms.iter().map(|t| (t.key.clone(), t.count)).collect()
}

/// The tumbling windows of the aggregate's view.
fn tumbling(engine: &pipebook::pipeline::Engine) -> Vec<app::api::WindowRow> {
    engine
        .aggregates(None)
        .windows
        .into_iter()
        .filter(|w| w.kind == app::api::WindowKind::Tumbling)
        .collect()
}

/// Day-long windows, a day of lateness: every generated record counts.
fn day_windows() -> Value {
    json!({"trigger_ms": 200, "tumbling_secs": 86_400, "sliding_secs": 86_400,
           "slide_secs": 21_600, "allowed_lateness_secs": 86_400})
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
async fn tweets_are_labelled_by_user_and_companies_skipped_by_sentiment_are_counted_in_windows() {
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
        .start_stage("aggregate", day_windows())
        .await
        .expect("aggregate starts");
    eventually("tweets counted", Duration::from_secs(60), || async {
        (counter(engine, "aggregate", "counted") >= TWEETS).then_some(())
    })
    .await;
    assert_eq!(counter(engine, "aggregate", "counted"), TWEETS);
    assert_eq!(counter(engine, "aggregate", "dlq"), 0, "no tweet refused");

    // Each day-long tumbling window lists the top five hashtags of the tweets streamed into
    // it, counted here from what the producer wrote (a tweet counts once per hashtag), and no
    // user in a business's place.
    let windows = tumbling(engine);
    assert!(!windows.is_empty());
    let mut shown = 0;
    for window in &windows {
        let mut counts = BTreeMap::new();
        for message in &produced {
            let tweet = json_of(message);
            if (window.start..window.end).contains(&created_ms(&tweet)) {
                for tag in tweet["hashtags"].as_array().expect("a list") {
                    *counts
                        .entry(tag.as_str().expect("a hashtag").to_owned())
                        .or_default() += 1;
                }
            }
        }
        let expected = top(counts, 5);
        assert_eq!(
            listed(&window.top_hashtags),
            expected,
            "window from {}",
            window.start
        );
        assert!(window.top_businesses.is_empty(), "a user is not a business");
        shown += expected.len();
    }
    assert!(shown > 0, "the generator's hashtags are listed");
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
    let letters = dead_letters(engine).await;
    assert!(
        letters.iter().any(|l| l["stage"] == "producer"
            && l["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("user is missing"))),
        "{letters:?}"
    );

    // Companies (no text) reaching the running sentiment stage: not an error. Each is written
    // on to reviews.sentiment unlabelled, keyed by its id, saying why; none is dead-lettered.
    const COMPANIES: u64 = 120;
    stream(
        engine,
        json!({"dataset": "companies", "rate": 0, "limit": COMPANIES, "seed": 6}),
        before + 2 + COMPANIES,
    )
    .await;
    eventually("companies skipped", Duration::from_secs(60), || async {
        (counter(engine, "sentiment", "skipped") >= COMPANIES).then_some(())
    })
    .await;
    assert_eq!(counter(engine, "sentiment", "skipped"), COMPANIES);
    let companies: Vec<Value> = read_all(engine, TOPIC_REVIEWS)
        .await
        .iter()
        .map(json_of)
        .filter(|r| r["dataset"] == "companies")
        .collect();
    assert_eq!(companies.len() as u64, COMPANIES);
    let forwarded: Vec<app::api::Message> = read_all(engine, TOPIC_SENTIMENT)
        .await
        .into_iter()
        .filter(|m| json_of(m)["dataset"] == "companies")
        .collect();
    assert_eq!(
        forwarded.len() as u64,
        COMPANIES,
        "each company written on once"
    );
    for message in &forwarded {
        let out = json_of(message);
        assert_eq!(
            message.key.as_deref(),
            out["company_id"].as_str(),
            "keyed by id"
        );
        assert!(
            out.get("sentiment").is_none() && out.get("score").is_none(),
            "{out}"
        );
        assert_eq!(
            out["skipped"],
            "companies has no text field: nothing to classify"
        );
        assert!(
            out["country"].is_string() && out["industry"].is_string(),
            "{out}"
        );
    }
    let letters = dead_letters(engine).await;
    assert!(
        letters.iter().all(|l| !l["raw"]
            .as_str()
            .unwrap_or_default()
            .contains(r#""dataset":"companies""#)),
        "{letters:?}"
    );

    // The windows count them without a label, by country and by industry: in each day-long
    // tumbling window, as many as were streamed into it (partitions' counts add up).
    engine
        .start_stage("aggregate", day_windows())
        .await
        .expect("aggregate resumes");
    let windows = eventually("companies counted", Duration::from_secs(60), || async {
        let windows = tumbling(engine);
        let counted: u64 = windows.iter().map(|w| w.unlabelled).sum();
        (counted == COMPANIES).then_some(windows)
    })
    .await;
    assert_eq!(counter(engine, "aggregate", "dlq"), 0, "no company refused");
    for window in &windows {
        let mine: Vec<&Value> = companies
            .iter()
            .filter(|c| (window.start..window.end).contains(&created_ms(c)))
            .collect();
        let by = |field: &str| {
            let mut counts = BTreeMap::new();
            for company in &mine {
                let value = company[field].as_str().expect("a string").to_owned();
                *counts.entry(value).or_default() += 1;
            }
            top(counts, 6)
        };
        let (countries, industries) = (
            listed(&window.top_countries),
            listed(&window.top_industries),
        );
        assert_eq!(countries, by("country"), "window from {}", window.start);
        assert_eq!(industries, by("industry"), "window from {}", window.start);
        let sum = |terms: &[(String, u64)]| terms.iter().map(|t| t.1).sum::<u64>();
        assert_eq!(
            sum(&countries),
            mine.len() as u64,
            "every company by its country"
        );
        assert_eq!(sum(&industries), mine.len() as u64);
        assert_eq!(window.unlabelled, mine.len() as u64);
        // No label to average: a window of companies alone has no average, never a NaN.
        assert!(window.avg_score.is_none_or(f64::is_finite), "{window:?}");
        if window.total() == window.unlabelled {
            assert_eq!(window.avg_score, None);
        }
    }
    // Sessions per company, as per any key.
    let first = companies[0]["company_id"].as_str().expect("company_id");
    assert!(
        engine
            .aggregates(None)
            .windows
            .iter()
            .any(|w| w.kind == app::api::WindowKind::Session && w.key.as_deref() == Some(first)),
        "a session of {first}"
    );
    engine.shutdown().await;
}

/// Every row of the Parquet files under `dir` (`date=*/*.parquet`), read back with Polars.
fn read_table(dir: &std::path::Path) -> polars::prelude::DataFrame {
    use polars_io::SerReader;
    use polars_io::prelude::ParquetReader;
    let mut frames = Vec::new();
    for date in std::fs::read_dir(dir).expect("table folder").flatten() {
        if !date.file_name().to_string_lossy().starts_with("date=") {
            continue;
        }
        for file in std::fs::read_dir(date.path())
            .expect("date folder")
            .flatten()
        {
            let path = file.path();
            if path.extension().is_some_and(|e| e == "parquet") {
                let file = std::fs::File::open(&path).expect("open");
                frames.push(ParquetReader::new(file).finish().expect("a Parquet file"));
            }
        }
    }
    let mut frames = frames.into_iter();
    let mut all = frames.next().expect("at least one file");
    for frame in frames {
        all.vstack_mut(&frame)
            .expect("files of one table share their columns");
    }
    all
}

fn strings(frame: &polars::prelude::DataFrame, column: &str) -> Vec<String> {
    frame
        .column(column)
        .expect(column)
        .str()
        .expect("a string column")
        .iter()
        .map(|v| v.expect("no null").to_owned())
        .collect()
}

async fn get_json(base: &str, path: &str) -> Value {
    let response = reqwest::get(format!("{base}{path}"))
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200, "{path}");
    response.json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tweets_land_in_their_parquet_table_and_the_search_index_beside_reviews() {
    const REVIEWS: u64 = 200;
    const MIXED_TWEETS: u64 = 300;
    const COMPANIES: u64 = 50;
    let t = start_engine().await;
    let engine = &t.engine;
    let served = serve(engine.clone()).await;
    stream_reviews(engine, REVIEWS, 9).await;
    engine.stop_stage("streamer").await.expect("streamer stops");
    engine
        .start_stage(
            "streamer",
            json!({"dataset": "tweets", "rate": 0, "chunk_size": 100, "limit": MIXED_TWEETS, "seed": 11}),
        )
        .await
        .expect("streamer starts on tweets");
    let total = REVIEWS + MIXED_TWEETS;
    eventually("tweets acknowledged", Duration::from_secs(120), || async {
        (counter(engine, "producer", "acked") >= total).then_some(())
    })
    .await;
    let sent: Vec<Value> = read_all(engine, TOPIC_REVIEWS)
        .await
        .iter()
        .map(json_of)
        .filter(|r| r["dataset"] == "tweets")
        .collect();
    assert_eq!(sent.len() as u64, MIXED_TWEETS);
    // Then companies: the sinks skip them (no table, nothing to search), counting them.
    stream(
        engine,
        json!({"dataset": "companies", "rate": 0, "limit": COMPANIES, "seed": 12}),
        total + COMPANIES,
    )
    .await;

    for (stage, config) in [
        ("sentiment", json!({"workers": 2})),
        ("parquet", json!({"roll_rows": 10_000, "roll_secs": 1})),
        ("indexer", json!({})),
    ] {
        engine
            .start_stage(stage, config)
            .await
            .unwrap_or_else(|e| panic!("{stage} starts: {e}"));
    }
    eventually("written and indexed", Duration::from_secs(120), || async {
        (counter(engine, "parquet", "rows") >= total
            && counter(engine, "indexer", "indexed") >= total
            && counter(engine, "parquet", "skipped") >= COMPANIES
            && counter(engine, "indexer", "skipped") >= COMPANIES)
            .then_some(())
    })
    .await;
    assert_eq!(counter(engine, "sentiment", "skipped"), COMPANIES);
    assert_eq!(counter(engine, "parquet", "skipped"), COMPANIES);
    assert_eq!(counter(engine, "indexer", "skipped"), COMPANIES);
    assert_eq!(
        counter(engine, "parquet", "dlq"),
        0,
        "no record refused by the sink"
    );
    assert_eq!(
        counter(engine, "indexer", "dlq"),
        0,
        "no record refused by the indexer"
    );

    // Parquet: the tweets are a table of their own, every one of them, with a tweet's columns;
    // the reviews are where they always were.
    let root = engine.parquet_root();
    let tweets = read_table(&root.join("tweets"));
    assert_eq!(tweets.height() as u64, MIXED_TWEETS);
    let columns: Vec<&str> = tweets
        .get_column_names()
        .iter()
        .map(|c| c.as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "tweet_id",
            "user",
            "text",
            "hashtags",
            "created_at",
            "sentiment",
            "score",
            "classifier",
            "processed_at"
        ]
    );
    let written: std::collections::BTreeSet<String> =
        strings(&tweets, "tweet_id").into_iter().collect();
    let expected: std::collections::BTreeSet<String> = sent
        .iter()
        .map(|t| t["tweet_id"].as_str().expect("tweet_id").to_owned())
        .collect();
    assert_eq!(written, expected, "every tweet streamed, once");
    let tags = tweets
        .column("hashtags")
        .expect("hashtags")
        .list()
        .expect("a list column");
    let tagged: u32 = tags.lst_lengths().into_no_null_iter().sum();
    let sent_tags: usize = sent
        .iter()
        .map(|t| t["hashtags"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(
        tagged as usize, sent_tags,
        "each tweet's hashtags kept as its list"
    );
    assert!(matches!(
        tweets.column("created_at").expect("created_at").dtype(),
        polars::prelude::DataType::Datetime(_, _)
    ));
    let labels: std::collections::BTreeSet<String> =
        strings(&tweets, "sentiment").into_iter().collect();
    assert_eq!(labels.len(), 3, "{labels:?}");
    let reviews = read_table(&root);
    assert_eq!(reviews.height() as u64, REVIEWS);
    assert!(reviews.column("stars").is_ok() && reviews.column("hashtags").is_err());

    // Search: the tweets are found by their words, as tweets; every document counts in the
    // charts that every document has a value for, and the stars chart counts reviews only.
    let kafka: Vec<&Value> = sent
        .iter()
        .filter(|t| {
            t["hashtags"]
                .as_array()
                .is_some_and(|h| h.contains(&json!("#kafka")))
        })
        .collect();
    assert!(!kafka.is_empty());
    let found = get_json(&served.base, "/api/search?q=kafka&limit=100").await;
    assert_eq!(found["total"], kafka.len(), "{found}");
    for hit in found["hits"].as_array().expect("hits") {
        assert_eq!(hit["dataset"], "tweets", "{hit}");
        assert_eq!(hit["stars"], 0, "{hit}");
        assert!(
            hit["hashtags"]
                .as_array()
                .is_some_and(|h| h.contains(&json!("#kafka"))),
            "{hit}"
        );
    }
    let everything = get_json(&served.base, "/api/search?limit=100").await;
    assert_eq!(everything["total"], total);
    let aggregations = get_json(&served.base, "/api/search/aggregations?interval=1h").await;
    let sum = |name: &str| -> u64 {
        aggregations[name]
            .as_array()
            .expect(name)
            .iter()
            .map(|b| b["count"].as_u64().unwrap_or(0))
            .sum()
    };
    assert_eq!(aggregations["total"], total);
    assert_eq!(sum("by_sentiment"), total, "{aggregations}");
    assert_eq!(sum("over_time"), total, "{aggregations}");
    assert_eq!(
        sum("by_stars"),
        REVIEWS,
        "no 0★ bar for the tweets: {aggregations}"
    );
    let businesses = aggregations["top_businesses"]
        .as_array()
        .expect("top businesses");
    assert!(
        businesses
            .iter()
            .all(|b| !b["key"].as_str().unwrap_or_default().starts_with("user")),
        "a tweet's user is not a business: {aggregations}"
    );

    // The dead-letter topic holds none of them.
    let letters = dead_letters(engine).await;
    assert!(
        letters.iter().all(|l| {
            let raw = l["raw"].as_str().unwrap_or_default();
            !raw.contains(r#""dataset":"tweets""#) && !raw.contains(r#""dataset":"companies""#)
        }),
        "{letters:?}"
    );
    let tables: Vec<String> = std::fs::read_dir(&root)
        .expect("parquet folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!tables.iter().any(|t| t.contains("compan")), "{tables:?}");
    engine.shutdown().await;
}

/// The hops of a trace, as (hop, state), in pipeline order.
fn hop_states(trace: &app::api::Trace) -> Vec<(app::api::TraceHopKind, app::api::TraceHopState)> {
    trace.hops.iter().map(|h| (h.hop, h.state)).collect()
}

fn fact<'a>(hop: &'a app::api::TraceHop, name: &str) -> Option<&'a str> {
    hop.facts
        .iter()
        .find(|f| f.name == name)
        .map(|f| f.value.as_str())
}

/// Issue 17's "every cell adapts", for cells 7 and 3: a tweet is traced end to end by its
/// `tweet_id` (socket chunk, `reviews` keyed by its user, its label in `reviews.sentiment`, its
/// windows, its search document), a company by its `company_id` through the hops it really
/// takes (sentiment forwards it unlabelled: "not labelled: no text"; the indexer leaves it out:
/// "not indexed: no text"), the next record produced is traced when it is a tweet, and the A/B
/// view compares two classifiers on tweets' text — agreement and throughput, no accuracy, the
/// companies among the newest records counted but not compared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tweet_is_traced_end_to_end_a_company_through_its_own_hops_and_ab_compares_tweets() {
    use app::api::{
        ClassifierChoice, CompareRequest, DatasetKind, TraceHopKind as Hop, TraceHopState as State,
    };
    use pipebook::trace::path::partition_for_key;
    const TRACED_TWEETS: u64 = 300;
    const TRACED_COMPANIES: u64 = 60;
    let t = start_engine().await;
    let engine = &t.engine;
    // Tweets through every stage (day-long windows: every record counts), companies after.
    engine
        .start_stage(
            "streamer",
            json!({"dataset": "tweets", "rate": 0, "chunk_size": 50, "limit": TRACED_TWEETS, "seed": 21, "clock": "replay"}),
        )
        .await
        .expect("streamer starts on tweets");
    for (stage, config) in [
        ("producer", json!({})),
        ("sentiment", json!({"workers": 2})),
        ("aggregate", day_windows()),
        ("indexer", json!({})),
    ] {
        engine
            .start_stage(stage, config)
            .await
            .unwrap_or_else(|e| panic!("{stage} starts: {e}"));
    }
    eventually(
        "tweets labelled, counted and indexed",
        Duration::from_secs(120),
        || async {
            (counter(engine, "indexer", "indexed") >= TRACED_TWEETS
                && counter(engine, "aggregate", "counted") >= TRACED_TWEETS)
                .then_some(())
        },
    )
    .await;
    let tweets_produced: Vec<(app::api::Message, Value)> = read_all(engine, TOPIC_REVIEWS)
        .await
        .into_iter()
        .map(|m| {
            let value = json_of(&m);
            (m, value)
        })
        .collect();
    let produced = &tweets_produced;

    // A tweet, by its tweet_id: every hop found, each in a tweet's words. The generator's
    // tweet 123 went out in chunk 3 (chunks of 50).
    let generated = pipebook::streamer::seeds::TweetGenerator::new(21)
        .nth(123)
        .expect("tweet 123");
    let (record, tweet) = produced
        .iter()
        .find(|(_, v)| v["tweet_id"] == generated.tweet_id.as_str())
        .cloned()
        .expect("tweet 123 produced");
    let tweet_id = tweet["tweet_id"].as_str().expect("tweet_id");
    let user = tweet["user"].as_str().expect("user");
    let trace = engine.trace(tweet_id).await.expect("a tweet is traced");
    assert_eq!(trace.review_id, tweet_id);
    assert_eq!(trace.dataset, DatasetKind::Tweets);
    assert!(trace.complete, "{trace:?}");
    assert_eq!(
        hop_states(&trace),
        Hop::ALL
            .iter()
            .map(|&h| (h, State::Found))
            .collect::<Vec<_>>(),
        "{trace:#?}"
    );
    let socket = trace.hop(Hop::Socket).expect("socket");
    assert_eq!(fact(socket, "chunk"), Some("3"), "{socket:?}");
    let reviews = trace.hop(Hop::Reviews).expect("reviews");
    assert_eq!(
        (reviews.partition, reviews.offset),
        (Some(record.partition), Some(record.offset))
    );
    assert_eq!(fact(reviews, "key (user)"), Some(user));
    assert_eq!(
        partition_for_key(user.as_bytes(), 3),
        Some(record.partition),
        "the user's hash chose it"
    );
    assert!(
        reviews.detail.contains("Keyed by user"),
        "{}",
        reviews.detail
    );
    assert!(
        reviews.detail.contains("every tweet of this user"),
        "{}",
        reviews.detail
    );
    let tags: Vec<&str> = tweet["hashtags"]
        .as_array()
        .expect("hashtags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let listed = if tags.is_empty() {
        "none".to_owned()
    } else {
        tags.join(" ")
    };
    assert_eq!(fact(reviews, "hashtags"), Some(listed.as_str()));
    assert_eq!(
        fact(reviews, "event time (created_at)"),
        tweet["created_at"].as_str()
    );
    // Its label, read back from reviews.sentiment ourselves.
    let labelled = read_all(engine, TOPIC_SENTIMENT).await;
    let out = labelled
        .iter()
        .find(|m| json_of(m)["tweet_id"] == tweet_id)
        .expect("its output");
    let sentiment = trace.hop(Hop::Sentiment).expect("sentiment");
    assert_eq!(
        (sentiment.partition, sentiment.offset),
        (Some(out.partition), Some(out.offset))
    );
    assert_eq!(fact(sentiment, "label"), json_of(out)["sentiment"].as_str());
    let window = trace.hop(Hop::Window).expect("window");
    assert_eq!(fact(window, "late"), Some("no"));
    assert!(
        fact(window, "time").is_some_and(|t| t.contains("the tweet's created_at")),
        "{window:?}"
    );
    assert!(
        window
            .windows
            .iter()
            .any(|w| w.kind == app::api::WindowKind::Tumbling)
    );
    let search = trace.hop(Hop::Search).expect("search");
    assert_eq!(fact(search, "document id"), Some(tweet_id));
    assert!(search.detail.contains("its tweet_id"), "{}", search.detail);
    assert!(fact(search, "stars").is_none(), "a tweet has no stars");
    for hop in &trace.hops {
        assert!(
            !hop.detail.contains("review "),
            "{:?}: {}",
            hop.hop,
            hop.detail
        );
    }

    // A company, by its company_id: the hops it takes, the two it is passed by said as such.
    let total = TRACED_TWEETS + TRACED_COMPANIES;
    stream(
        engine,
        json!({"dataset": "companies", "rate": 0, "chunk_size": 20, "limit": TRACED_COMPANIES, "seed": 22, "clock": "replay"}),
        total,
    )
    .await;
    eventually(
        "companies skipped and counted",
        Duration::from_secs(120),
        || async {
            (counter(engine, "indexer", "skipped") >= TRACED_COMPANIES
                && counter(engine, "aggregate", "counted") >= total)
                .then_some(())
        },
    )
    .await;
    let company = pipebook::streamer::seeds::CompanyGenerator::new(22)
        .nth(7)
        .expect("company 7");
    let company = serde_json::to_value(&company).expect("company JSON");
    let company_id = company["company_id"].as_str().expect("company_id");
    let trace = engine.trace(company_id).await.expect("a company is traced");
    assert_eq!(trace.dataset, DatasetKind::Companies);
    assert!(trace.complete, "{trace:?}");
    assert_eq!(
        hop_states(&trace),
        vec![
            (Hop::Socket, State::Found),
            (Hop::Reviews, State::Found),
            (Hop::Sentiment, State::Skipped),
            (Hop::Window, State::Found),
            (Hop::Search, State::Skipped),
        ],
        "{trace:#?}"
    );
    let sentiment = trace.hop(Hop::Sentiment).expect("sentiment");
    assert_eq!(sentiment.state_label(), "not labelled: no text");
    assert_eq!(
        sentiment.topic.as_deref(),
        Some(TOPIC_SENTIMENT),
        "it was written on"
    );
    assert!(sentiment.at_ms.is_some() && sentiment.latency_ms.is_some());
    assert_eq!(
        fact(sentiment, "skipped"),
        Some("companies has no text field: nothing to classify")
    );
    let reviews = trace.hop(Hop::Reviews).expect("reviews");
    assert_eq!(fact(reviews, "key (company_id)"), Some(company_id));
    assert_eq!(fact(reviews, "country"), company["country"].as_str());
    let window = trace.hop(Hop::Window).expect("window");
    assert!(
        window.detail.contains("by its country and industry"),
        "{}",
        window.detail
    );
    let search = trace.hop(Hop::Search).expect("search");
    assert_eq!(search.state_label(), "not indexed: no text");
    assert!(
        search.detail.contains("company records"),
        "{}",
        search.detail
    );

    // A/B on the newest 200 records: tweets compared on their text, companies counted apart.
    let comparison = pipebook::sentiment::compare::compare(
        engine,
        &CompareRequest {
            a: ClassifierChoice::Lexicon,
            b: ClassifierChoice::TextBlob,
            limit: 200,
        },
    )
    .await
    .expect("compare on tweets");
    let read: u64 = comparison.datasets.iter().map(|d| d.records).sum();
    // ceil(200 / 3) of each partition, cut to the 200 asked for.
    assert_eq!(read, 200, "{comparison:?}");
    assert_eq!(comparison.dataset(), DatasetKind::Tweets);
    assert!(comparison.without_text() > 0, "companies among the newest");
    assert_eq!(comparison.n + comparison.without_text(), read);
    assert_eq!(comparison.with_stars, 0, "tweets carry no stars");
    assert_eq!(comparison.a.accuracy_vs_stars, None);
    assert_eq!(comparison.b.accuracy_vs_stars, None);
    assert_eq!(
        comparison.agreement.iter().flatten().sum::<u64>(),
        comparison.n
    );
    assert!(comparison.a.reviews_per_s > 0.0 && comparison.b.reviews_per_s > 0.0);
    let tweet_ids: std::collections::BTreeSet<&str> = produced
        .iter()
        .filter_map(|(_, v)| v["tweet_id"].as_str())
        .collect();
    assert!(
        comparison
            .rows
            .iter()
            .all(|r| tweet_ids.contains(r.review_id.as_str()) && r.stars == 0),
        "{:?}",
        comparison.rows
    );

    // The next record produced, a tweet: traced as one (it was refused as "not a review").
    engine.stop_stage("streamer").await.expect("streamer stops");
    engine
        .start_stage(
            "streamer",
            json!({"dataset": "tweets", "rate": 20, "chunk_size": 1, "limit": 200, "seed": 23}),
        )
        .await
        .expect("streamer starts");
    let next = engine.trace_next().await.expect("the next tweet is traced");
    assert_eq!(next.dataset, DatasetKind::Tweets);
    let reviews = next.hop(Hop::Reviews).expect("reviews");
    assert_eq!(reviews.state, State::Found);
    assert!(fact(reviews, "key (user)").is_some(), "{reviews:?}");
    engine.shutdown().await;
}
