//! The indexer and both search backends: the embedded tantivy index, and the Elasticsearch
//! backend against a real Elasticsearch (`PIPEBOOK_TEST_ELASTICSEARCH_URL`) or, by default,
//! osmem-server, an Elasticsearch-API server installed from PyPI by scripts/tools.sh
//! (`PIPEBOOK_TEST_OSMEM` = its binary). Without either, the Elasticsearch tests say so and pass.

mod common;

use std::time::Duration;

use app::api::{SearchAggregations, SearchRequest, Sentiment, TOPIC_DLQ, TermCount};
use common::elastic::TestElasticsearch;
use common::{counter, eventually, group_lag, high_sum, start_engine_with, stream_reviews};
use pipebook::index::elastic::{ElasticAuth, ElasticIndex, ElasticSettings};
use pipebook::index::embedded::EmbeddedIndex;
use pipebook::index::query::Search;
use pipebook::index::{SearchBackend, SearchDoc, SearchSettings};
use pipebook::pipeline::Engine;
use pipebook::streamer::generator::ReviewGenerator;
use serde_json::json;

/// Documents searchable now; 0 until the indexer has created the index.
async fn count_after_refresh(engine: &Engine) -> u64 {
    let backend = engine.search_backend();
    if backend.refresh().await.is_err() {
        return 0;
    }
    backend.count().await.expect("count")
}

/// 20,000 reviews → sentiment → indexer: 20,000 documents. Re-reading the whole topic in a new
/// group indexes all 20,000 again, and the count stays 20,000.
async fn each_review_is_indexed_once(settings: SearchSettings) {
    let t = start_engine_with(|s| s.search = settings).await;
    let engine = &t.engine;
    stream_reviews(engine, 20_000, 51).await;
    engine
        .start_stage("sentiment", json!({"workers": 3}))
        .await
        .expect("sentiment starts");
    engine
        .start_stage("indexer", json!({}))
        .await
        .expect("indexer starts");
    eventually("20,000 indexed", Duration::from_secs(240), || async {
        (count_after_refresh(engine).await == 20_000).then_some(())
    })
    .await;
    eventually("indexer lag 0", Duration::from_secs(60), || async {
        (group_lag(engine, "pipebook-indexer").await == Some(0)).then_some(())
    })
    .await;
    assert_eq!(counter(engine, "indexer", "indexed"), 20_000);
    assert_eq!(high_sum(engine, TOPIC_DLQ).await, 0);

    engine.stop_stage("indexer").await.expect("stop");
    engine
        .start_stage("indexer", json!({"group": "pipebook-indexer-again"}))
        .await
        .expect("indexer starts again from offset 0");
    eventually("second pass done", Duration::from_secs(240), || async {
        (counter(engine, "indexer", "indexed") == 20_000).then_some(())
    })
    .await;
    assert_eq!(
        count_after_refresh(engine).await,
        20_000,
        "re-indexing duplicated"
    );

    let negative_service = engine
        .search(&SearchRequest {
            q: "service".into(),
            sentiment: Some(Sentiment::Negative),
            stars_min: None,
            limit: Some(50),
        })
        .await
        .expect("search");
    assert!(negative_service.total > 0);
    for hit in &negative_service.hits {
        assert_eq!(hit.sentiment, Sentiment::Negative);
        assert!(hit.text.to_lowercase().contains("service"), "{}", hit.text);
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_index_holds_each_review_once() {
    each_review_is_indexed_once(SearchSettings::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_index_holds_each_review_once() {
    let Some(server) = TestElasticsearch::start() else {
        return;
    };
    each_review_is_indexed_once(SearchSettings::Elastic(server.settings("reviews"))).await;
}

/// The same 3,000 documents, labelled from their stars with a score that varies per review.
fn documents() -> Vec<SearchDoc> {
    ReviewGenerator::new(77)
        .take(3_000)
        .enumerate()
        .map(|(i, review)| {
            let date = chrono::NaiveDateTime::parse_from_str(&review.date, "%Y-%m-%d %H:%M:%S")
                .expect("generated date")
                .and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            SearchDoc {
                review_id: review.review_id,
                dataset: app::api::DatasetKind::Yelp,
                business_id: Some(review.business_id),
                user_id: review.user_id,
                stars: Some(review.stars),
                hashtags: Vec::new(),
                sentiment: Sentiment::from_stars(review.stars),
                score: (f64::from(review.stars) - 3.0) / 2.0 + (i % 7) as f64 / 100.0,
                text: review.text,
                classifier: "lexicon".into(),
                date,
                processed_at: "2026-11-23T10:00:00.000Z".into(),
            }
        })
        .collect()
}

fn sorted(mut terms: Vec<TermCount>) -> Vec<(String, u64)> {
    terms.sort_by(|a, b| a.key.cmp(&b.key));
    terms.into_iter().map(|t| (t.key, t.count)).collect()
}

/// What must be equal across backends; percentiles are left out (tantivy uses DDSketch,
/// Elasticsearch t-digest: both approximate, differently).
fn comparable(aggs: &SearchAggregations) -> serde_json::Value {
    let mut top: Vec<u64> = aggs.top_businesses.iter().map(|t| t.count).collect();
    top.sort_unstable();
    json!({
        "total": aggs.total,
        "by_sentiment": sorted(aggs.by_sentiment.clone()),
        "by_stars": aggs.by_stars.iter().map(|b| {
            // Sums in another order differ in the last bits of a double.
            let avg = b.avg_score.map(|v| (v * 1e9).round() / 1e9);
            json!([b.stars, b.count, avg])
        }).collect::<Vec<_>>(),
        "over_time": aggs.over_time.iter().map(|b| json!([b.start, b.count, b.by_sentiment])).collect::<Vec<_>>(),
        "top_business_counts": top,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_answer_the_same_aggregations_and_totals() {
    let Some(server) = TestElasticsearch::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let embedded = EmbeddedIndex::open(dir.path()).expect("embedded index");
    let elastic = ElasticIndex::new(&server.settings("compare")).expect("client");
    elastic
        .prepare()
        .await
        .expect("index created with its mapping");
    elastic.prepare().await.expect("prepare is idempotent");
    for chunk in documents().chunks(1_000) {
        let a = embedded.bulk(chunk.to_vec()).await.expect("embedded bulk");
        let b = elastic.bulk(chunk.to_vec()).await.expect("elastic bulk");
        assert_eq!((a.indexed, b.indexed), (chunk.len(), chunk.len()));
    }
    elastic.refresh().await.expect("refresh");
    assert_eq!(embedded.count().await.expect("count"), 3_000);
    assert_eq!(elastic.count().await.expect("count"), 3_000);

    for interval in ["15m", "1h"] {
        let a = embedded
            .aggregations(interval.into())
            .await
            .expect("embedded");
        let b = elastic
            .aggregations(interval.into())
            .await
            .expect("elastic");
        assert_eq!(comparable(&a), comparable(&b), "interval {interval}");
        assert!(
            a.over_time.len() > 5,
            "{interval}: {} buckets",
            a.over_time.len()
        );
        assert_eq!(a.score_percentiles.len(), 3);
        assert_eq!(b.score_percentiles.len(), 3);
    }

    let searches = [
        ("service", Some(Sentiment::Negative), None),
        ("tacos", None, Some(4)),
        ("", Some(Sentiment::Neutral), None),
        ("friendly staff", None, None),
    ];
    for (q, sentiment, stars_min) in searches {
        let search = Search {
            text: q.into(),
            sentiment,
            stars_min,
            limit: 20,
        };
        let a = embedded
            .search(search.clone())
            .await
            .expect("embedded search");
        let b = elastic.search(search).await.expect("elastic search");
        assert_eq!(
            a.total, b.total,
            "total for {q:?} {sentiment:?} {stars_min:?}"
        );
        assert_eq!(a.hits.len(), b.hits.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_retried_and_shown_without_losing_records() {
    // A port nothing listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let settings = ElasticSettings {
        url: url::Url::parse(&format!("http://127.0.0.1:{port}")).expect("url"),
        index: "reviews".into(),
        auth: ElasticAuth::None,
        ca_cert: None,
    };
    let t = start_engine_with(|s| s.search = SearchSettings::Elastic(settings)).await;
    let engine = &t.engine;
    engine
        .start_stage("indexer", json!({}))
        .await
        .expect("indexer starts");
    let error = eventually("retry shown", Duration::from_secs(30), || async {
        let status = engine.pipeline_status();
        let indexer = status.stage("indexer")?;
        indexer.last_error.clone().filter(|e| e.contains("retry"))
    })
    .await;
    assert!(error.contains("unavailable"), "{error}");
    assert!(counter(engine, "indexer", "retries") >= 1);
    let mut snapshots = engine.subscribe();
    let status = eventually(
        "snapshot shows the backend",
        Duration::from_secs(10),
        || {
            let status = snapshots.borrow_and_update().search.clone();
            async move { (!status.backend.is_empty()).then_some(status) }
        },
    )
    .await;
    assert_eq!(status.backend, "elasticsearch");
    assert!(status.location.contains(&port.to_string()), "{status:?}");
    engine.shutdown().await;
}
