//! The queries every search backend answers, written once in Elasticsearch's query and
//! aggregation JSON, and the one parser that turns either backend's answer into API types.
//!
//! Elasticsearch receives these bodies as they are. The embedded backend hands the aggregation
//! body to tantivy, whose aggregation module reads the same JSON and answers in the same shape,
//! so both backends are asked the same question and read with the same code.

use std::collections::BTreeMap;

use app::api::{
    SearchAggregations, SearchHit, SearchRequest, Sentiment, StarsBucket, TermCount, TimeBucket,
};
use serde_json::{Value, json};

use super::SearchError;
use crate::error::ConfigError;

/// Results returned when a search does not say how many.
pub const DEFAULT_LIMIT: u32 = 20;
/// Most results one search returns.
pub const MAX_LIMIT: u32 = 100;
/// Histogram interval when the caller does not choose one.
pub const DEFAULT_INTERVAL: &str = "1h";
/// Percentiles of the sentiment score the aggregations report.
pub const PERCENTS: [f64; 3] = [50.0, 90.0, 99.0];

/// A search request with its limit checked and filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub text: String,
    pub sentiment: Option<Sentiment>,
    pub stars_min: Option<u8>,
    pub limit: u32,
}

impl Search {
    pub fn from_request(request: &SearchRequest) -> Result<Self, ConfigError> {
        let limit = request.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ConfigError::new(
                "limit",
                format!("must be 1..={MAX_LIMIT}, got {limit}"),
            ));
        }
        if let Some(stars) = request.stars_min
            && !(1..=5).contains(&stars)
        {
            return Err(ConfigError::new(
                "stars_min",
                format!("must be 1..=5, got {stars}"),
            ));
        }
        Ok(Self {
            text: request.q.trim().to_owned(),
            sentiment: request.sentiment,
            stars_min: request.stars_min,
            limit,
        })
    }
}

/// A `fixed_interval` both backends accept: a positive whole number and a unit.
pub fn check_interval(interval: &str) -> Result<(), ConfigError> {
    let digits = interval.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &interval[digits.len()..];
    let number_ok = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u32>().is_ok_and(|n| n > 0);
    if number_ok && ["ms", "s", "m", "h", "d"].contains(&unit) {
        Ok(())
    } else {
        Err(ConfigError::new(
            "interval",
            format!("expected a number and one of ms, s, m, h, d (e.g. 1h), got {interval:?}"),
        ))
    }
}

/// The `_search` body for a search: full-text `match` on the text (or every document, newest
/// first), with the sentiment and stars as filters that do not change the ranking.
pub fn search_body(search: &Search) -> Value {
    let mut filters = Vec::new();
    if let Some(sentiment) = search.sentiment {
        filters.push(json!({"term": {"sentiment": sentiment.as_str()}}));
    }
    if let Some(stars) = search.stars_min {
        filters.push(json!({"range": {"stars": {"gte": stars}}}));
    }
    let must = if search.text.is_empty() {
        json!([{"match_all": {}}])
    } else {
        json!([{"match": {"text": search.text}}])
    };
    let mut body = json!({
        "query": {"bool": {"must": must, "filter": filters}},
        "size": search.limit,
        "track_total_hits": true,
        "_source": ["dataset", "review_id", "text", "stars", "hashtags", "sentiment", "score", "date"],
    });
    if search.text.is_empty() {
        body["sort"] = json!([{"date": {"order": "desc"}}]);
    }
    body
}

/// The aggregations the search cell charts, as one request.
pub fn aggregations_body(interval: &str) -> Value {
    json!({
        "by_sentiment": {"terms": {"field": "sentiment", "size": 3}},
        "by_stars": {
            "terms": {"field": "stars", "size": 5, "order": {"_key": "asc"}},
            "aggs": {"avg_score": {"avg": {"field": "score"}}}
        },
        "over_time": {
            "date_histogram": {"field": "date", "fixed_interval": interval, "min_doc_count": 1},
            "aggs": {"by_sentiment": {"terms": {"field": "sentiment", "size": 3}}}
        },
        // Each tantivy segment (like each Elasticsearch shard) reports its top `shard_size`
        // terms; counts are exact while there are fewer businesses than that.
        "top_businesses": {"terms": {"field": "business_id", "size": 5, "shard_size": 5000}},
        "score_percentiles": {"percentiles": {"field": "score", "percents": PERCENTS}}
    })
}

/// Reads the `aggregations` object of either backend's answer.
pub fn parse_aggregations(
    aggregations: &Value,
    total: u64,
    interval: &str,
) -> Result<SearchAggregations, SearchError> {
    let by_stars = buckets(aggregations, "by_stars")?
        .iter()
        .map(|bucket| {
            Ok(StarsBucket {
                stars: u8::try_from(key_number(bucket)? as u64).unwrap_or(0),
                count: doc_count(bucket),
                avg_score: bucket["avg_score"]["value"].as_f64(),
            })
        })
        .collect::<Result<_, SearchError>>()?;
    let over_time = buckets(aggregations, "over_time")?
        .iter()
        .map(|bucket| {
            let mut by_sentiment = [0; 3];
            for term in terms(bucket, "by_sentiment")? {
                if let Some(sentiment) = sentiment_of(&term.key) {
                    by_sentiment[sentiment.index()] = term.count;
                }
            }
            Ok(TimeBucket {
                start: key_number(bucket)? as i64,
                count: doc_count(bucket),
                by_sentiment,
            })
        })
        .collect::<Result<_, SearchError>>()?;
    Ok(SearchAggregations {
        total,
        by_sentiment: terms(aggregations, "by_sentiment")?,
        by_stars,
        interval: interval.to_owned(),
        over_time,
        top_businesses: terms(aggregations, "top_businesses")?,
        score_percentiles: percentiles(&aggregations["score_percentiles"]),
        took_ms: 0.0,
    })
}

/// Reads one hit's `_source` (both backends return the stored document as JSON).
pub fn parse_hit(source: &Value) -> Result<SearchHit, SearchError> {
    serde_json::from_value(source.clone())
        .map_err(|e| SearchError::BadResponse(format!("hit is not a review document: {e}")))
}

fn buckets<'a>(parent: &'a Value, name: &str) -> Result<&'a Vec<Value>, SearchError> {
    parent[name]["buckets"]
        .as_array()
        .ok_or_else(|| SearchError::BadResponse(format!("aggregation {name} has no buckets")))
}

fn terms(parent: &Value, name: &str) -> Result<Vec<TermCount>, SearchError> {
    buckets(parent, name)?
        .iter()
        .map(|bucket| {
            let key = match &bucket["key"] {
                Value::String(key) => key.clone(),
                Value::Number(number) => number.to_string(),
                other => return Err(SearchError::BadResponse(format!("bucket key {other}"))),
            };
            Ok(TermCount {
                key,
                count: doc_count(bucket),
            })
        })
        .collect()
}

fn key_number(bucket: &Value) -> Result<f64, SearchError> {
    bucket["key"]
        .as_f64()
        .ok_or_else(|| SearchError::BadResponse(format!("bucket key {} is not a number", bucket)))
}

fn doc_count(bucket: &Value) -> u64 {
    bucket["doc_count"].as_u64().unwrap_or(0)
}

fn sentiment_of(key: &str) -> Option<Sentiment> {
    Sentiment::ALL.into_iter().find(|s| s.as_str() == key)
}

/// `{"values": {"50.0": 0.61, …}}`; keys normalised to one decimal so both backends agree.
fn percentiles(aggregation: &Value) -> BTreeMap<String, f64> {
    let Some(values) = aggregation["values"].as_object() else {
        return BTreeMap::new();
    };
    values
        .iter()
        .filter_map(|(key, value)| {
            let percent = key.parse::<f64>().ok()?;
            Some((format!("{percent:.1}"), value.as_f64()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_do_not_rank_and_an_empty_query_sorts_newest_first() {
        let search = Search::from_request(&SearchRequest {
            q: " service ".into(),
            sentiment: Some(Sentiment::Negative),
            stars_min: Some(2),
            limit: None,
        })
        .expect("valid");
        let body = search_body(&search);
        assert_eq!(body["query"]["bool"]["must"][0]["match"]["text"], "service");
        assert_eq!(
            body["query"]["bool"]["filter"][0]["term"]["sentiment"],
            "NEGATIVE"
        );
        assert_eq!(
            body["query"]["bool"]["filter"][1]["range"]["stars"]["gte"],
            2
        );
        assert_eq!(body["size"], DEFAULT_LIMIT);
        assert!(body.get("sort").is_none());

        let everything = search_body(&Search::from_request(&SearchRequest::default()).unwrap());
        assert_eq!(everything["sort"][0]["date"]["order"], "desc");
    }

    #[test]
    fn bad_limits_stars_and_intervals_are_named() {
        let too_many = SearchRequest {
            limit: Some(1000),
            ..SearchRequest::default()
        };
        let err = Search::from_request(&too_many).expect_err("limit");
        assert!(err.to_string().starts_with("limit"), "{err}");
        let stars = SearchRequest {
            stars_min: Some(6),
            ..SearchRequest::default()
        };
        let err = Search::from_request(&stars).expect_err("stars");
        assert!(err.to_string().starts_with("stars_min"), "{err}");
        for good in ["1h", "15m", "1d", "500ms", "30s"] {
            check_interval(good).expect(good);
        }
        for bad in ["", "h", "0h", "1w", "1.5h", "-1h", "1 h", "1M"] {
            let err = check_interval(bad).expect_err(bad);
            assert!(err.to_string().starts_with("interval"), "{err}");
        }
    }

    #[test]
    fn parses_an_elasticsearch_style_answer() {
        let answer = json!({
            "by_sentiment": {"buckets": [
                {"key": "POSITIVE", "doc_count": 5}, {"key": "NEGATIVE", "doc_count": 3}
            ]},
            "by_stars": {"buckets": [
                {"key": 1, "doc_count": 2, "avg_score": {"value": -0.5}},
                {"key": 5.0, "doc_count": 6, "avg_score": {"value": 0.75}}
            ]},
            "over_time": {"buckets": [
                {"key": 1_709_287_200_000_i64, "key_as_string": "2024-03-01T10:00:00.000Z",
                 "doc_count": 8, "by_sentiment": {"buckets": [
                    {"key": "POSITIVE", "doc_count": 5}, {"key": "NEGATIVE", "doc_count": 3}
                 ]}}
            ]},
            "top_businesses": {"buckets": [{"key": "b1", "doc_count": 8}]},
            "score_percentiles": {"values": {"50.0": 0.1, "90": 0.8, "99.0": 0.9}}
        });
        let parsed = parse_aggregations(&answer, 8, "1h").expect("parse");
        assert_eq!(parsed.by_sentiment[1].key, "NEGATIVE");
        assert_eq!(parsed.by_stars[1].stars, 5);
        assert_eq!(parsed.by_stars[0].avg_score, Some(-0.5));
        assert_eq!(parsed.over_time[0].start, 1_709_287_200_000);
        assert_eq!(parsed.over_time[0].by_sentiment, [5, 3, 0]);
        assert_eq!(parsed.top_businesses[0].count, 8);
        assert_eq!(parsed.score_percentiles.get("90.0"), Some(&0.8));
        assert!(parse_aggregations(&json!({}), 0, "1h").is_err());
    }
}
