//! The Elasticsearch 8 backend, through the official `elasticsearch` crate.
//!
//! The index is created with an explicit mapping (the same fields as the embedded schema);
//! documents go in with `_bulk`, `_id` = `review_id`, so a re-delivered review overwrites itself.

use std::time::{Duration, Instant};

use app::api::{SearchAggregations, SearchResults};
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::response::Response;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::indices::{
    IndicesCreateParts, IndicesExistsParts, IndicesPutMappingParts, IndicesRefreshParts,
};
use elasticsearch::{BulkOperation, BulkParts, CountParts, Elasticsearch, GetParts, SearchParts};
use serde_json::{Value, json};
use url::Url;

use super::query::{Search, aggregations_body, parse_aggregations, parse_hit, search_body};
use super::{BulkOutcome, SearchBackend, SearchDoc, SearchError};
use crate::secret::Secret;

/// Longest an Elasticsearch request may take before it counts as failed (and is retried).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How Pipebook reaches an Elasticsearch cluster (`PIPEBOOK_ELASTICSEARCH_*`).
#[derive(Clone)]
pub struct ElasticSettings {
    pub url: Url,
    pub index: String,
    pub auth: ElasticAuth,
    /// PEM bytes of a CA certificate to trust (self-signed clusters).
    pub ca_cert: Option<Vec<u8>>,
}

/// `Debug` never shows the password or key (they are [`Secret`]s).
#[derive(Clone, Debug)]
pub enum ElasticAuth {
    None,
    Basic {
        username: String,
        password: Secret,
    },
    /// The base64 `id:key` that Kibana and the `_security/api_key` API print as `encoded`.
    ApiKey(Secret),
}

impl std::fmt::Debug for ElasticSettings {
    /// Never prints a password or key, nor a password left in the URL.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match &self.auth {
            ElasticAuth::None => "none",
            ElasticAuth::Basic { .. } => "basic (redacted)",
            ElasticAuth::ApiKey(_) => "api key (redacted)",
        };
        let mut url = self.url.clone();
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        f.debug_struct("ElasticSettings")
            .field("url", &url.as_str())
            .field("index", &self.index)
            .field("auth", &auth)
            .field("ca_cert", &self.ca_cert.as_ref().map(|_| "PEM"))
            .finish()
    }
}

pub struct ElasticIndex {
    client: Elasticsearch,
    index: String,
    location: String,
}

impl ElasticIndex {
    /// Builds the client; nothing is sent until the first request.
    pub fn new(settings: &ElasticSettings) -> Result<Self, SearchError> {
        let pool = SingleNodeConnectionPool::new(settings.url.clone());
        let mut transport = TransportBuilder::new(pool)
            .timeout(REQUEST_TIMEOUT)
            .disable_proxy();
        transport = match &settings.auth {
            ElasticAuth::None => transport,
            ElasticAuth::Basic { username, password } => transport.auth(Credentials::Basic(
                username.clone(),
                password.expose().to_owned(),
            )),
            ElasticAuth::ApiKey(key) => {
                transport.auth(Credentials::EncodedApiKey(key.expose().to_owned()))
            }
        };
        if let Some(pem) = &settings.ca_cert {
            let certificate = Certificate::from_pem(pem)
                .map_err(|e| SearchError::Config(format!("CA certificate: {e}")))?;
            transport = transport.cert_validation(CertificateValidation::Full(certificate));
        }
        let transport = transport
            .build()
            .map_err(|e| SearchError::Config(format!("Elasticsearch client: {e}")))?;
        let mut location = settings.url.clone();
        let _ = location.set_password(None);
        let _ = location.set_username("");
        Ok(Self {
            client: Elasticsearch::new(transport),
            index: settings.index.clone(),
            location: location.to_string(),
        })
    }

    async fn search_json(&self, body: Value) -> Result<Value, SearchError> {
        let response = self
            .client
            .search(SearchParts::Index(&[&self.index]))
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        read_json(response).await
    }
}

/// The fields tweets added to the mapping: put on an index created before them (adding fields
/// to a mapping is allowed; changing one is not).
fn tweet_fields() -> Value {
    json!({
        "properties": {
            "dataset": {"type": "keyword"},
            "hashtags": {"type": "keyword"}
        }
    })
}

/// The explicit mapping: the embedded schema's fields, with the same types.
fn mapping() -> Value {
    json!({
        "settings": {"number_of_shards": 1},
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "dataset": {"type": "keyword"},
                "hashtags": {"type": "keyword"},
                "review_id": {"type": "keyword"},
                "business_id": {"type": "keyword"},
                "user_id": {"type": "keyword"},
                "stars": {"type": "integer"},
                "text": {"type": "text"},
                "sentiment": {"type": "keyword"},
                "score": {"type": "double"},
                "classifier": {"type": "keyword"},
                "date": {"type": "date"},
                "processed_at": {"type": "date"}
            }
        }
    })
}

impl SearchBackend for ElasticIndex {
    fn describe(&self) -> (String, String) {
        (
            "elasticsearch".to_owned(),
            format!("{} (index {})", self.location, self.index),
        )
    }

    async fn prepare(&self) -> Result<(), SearchError> {
        let exists = self
            .client
            .indices()
            .exists(IndicesExistsParts::Index(&[&self.index]))
            .send()
            .await
            .map_err(transport)?;
        if exists.status_code().is_success() {
            // An index from before tweets were indexed: give it their fields. If the cluster
            // refuses, reviews still index; tweets are then refused one by one, with its reason.
            let added = self
                .client
                .indices()
                .put_mapping(IndicesPutMappingParts::Index(&[&self.index]))
                .body(tweet_fields())
                .send()
                .await
                .map_err(transport)?;
            if let Err(error) = read_json(added).await {
                tracing::warn!(%error, index = %self.index, "cannot add the tweet fields to the mapping");
            }
            return Ok(());
        }
        let created = self
            .client
            .indices()
            .create(IndicesCreateParts::Index(&self.index))
            .body(mapping())
            .send()
            .await
            .map_err(transport)?;
        match read_json(created).await {
            Ok(_) => Ok(()),
            // Another indexer created it between our two requests.
            Err(SearchError::Rejected { reason, .. })
                if reason.contains("resource_already_exists_exception") =>
            {
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    async fn bulk(&self, docs: Vec<SearchDoc>) -> Result<BulkOutcome, SearchError> {
        let operations: Vec<BulkOperation<&SearchDoc>> = docs
            .iter()
            .map(|doc| BulkOperation::index(doc).id(&doc.review_id).into())
            .collect();
        let response = self
            .client
            .bulk(BulkParts::Index(&self.index))
            .body(operations)
            .send()
            .await
            .map_err(transport)?;
        let answer = read_json(response).await?;
        bulk_outcome(&answer, docs.len())
    }

    async fn refresh(&self) -> Result<(), SearchError> {
        let response = self
            .client
            .indices()
            .refresh(IndicesRefreshParts::Index(&[&self.index]))
            .send()
            .await
            .map_err(transport)?;
        read_json(response).await.map(|_| ())
    }

    async fn count(&self) -> Result<u64, SearchError> {
        let response = self
            .client
            .count(CountParts::Index(&[&self.index]))
            .send()
            .await
            .map_err(transport)?;
        let answer = match read_json(response).await {
            // No index yet: the indexer creates it on its first start.
            Err(SearchError::Rejected { status: 404, .. }) => return Ok(0),
            other => other?,
        };
        answer["count"]
            .as_u64()
            .ok_or_else(|| SearchError::BadResponse(format!("_count answered {answer}")))
    }

    async fn get(&self, review_id: String) -> Result<Option<Value>, SearchError> {
        let response = self
            .client
            .get(GetParts::IndexId(&self.index, &review_id))
            .send()
            .await
            .map_err(transport)?;
        match read_json(response).await {
            // No such document (or no index yet).
            Err(SearchError::Rejected { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
            Ok(answer) if answer["found"].as_bool() == Some(true) => {
                Ok(answer.get("_source").cloned())
            }
            Ok(_) => Ok(None),
        }
    }

    async fn search(&self, search: Search) -> Result<SearchResults, SearchError> {
        let started = Instant::now();
        let answer = self.search_json(search_body(&search)).await?;
        let hits = answer["hits"]["hits"]
            .as_array()
            .ok_or_else(|| SearchError::BadResponse("search answer has no hits".into()))?
            .iter()
            .map(|hit| parse_hit(&hit["_source"]))
            .collect::<Result<_, _>>()?;
        Ok(SearchResults {
            total: answer["hits"]["total"]["value"].as_u64().unwrap_or(0),
            hits,
            took_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    async fn aggregations(&self, interval: String) -> Result<SearchAggregations, SearchError> {
        let started = Instant::now();
        let body = json!({
            "size": 0,
            "track_total_hits": true,
            "aggs": aggregations_body(&interval),
        });
        let answer = self.search_json(body).await?;
        let total = answer["hits"]["total"]["value"].as_u64().unwrap_or(0);
        let mut parsed = parse_aggregations(&answer["aggregations"], total, &interval)?;
        parsed.took_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(parsed)
    }
}

/// Splits a `_bulk` answer into what was indexed, what to retry and what to refuse.
fn bulk_outcome(answer: &Value, sent: usize) -> Result<BulkOutcome, SearchError> {
    let items = answer["items"]
        .as_array()
        .ok_or_else(|| SearchError::BadResponse(format!("_bulk answered {answer}")))?;
    if items.len() != sent {
        return Err(SearchError::BadResponse(format!(
            "_bulk answered {} items for {sent} documents",
            items.len()
        )));
    }
    let mut outcome = BulkOutcome::default();
    for (position, item) in items.iter().enumerate() {
        let result = &item["index"];
        let status = result["status"].as_u64().unwrap_or(0);
        if (200..300).contains(&status) {
            outcome.indexed += 1;
        } else if status == 429 || status >= 500 || status == 0 {
            outcome.retry.push(position);
        } else {
            let reason = format!(
                "Elasticsearch refused the document ({status}): {}",
                result["error"]
            );
            outcome.rejected.push((position, reason));
        }
    }
    Ok(outcome)
}

/// The JSON body of a successful answer, or an error that says whether a retry can help.
async fn read_json(response: Response) -> Result<Value, SearchError> {
    let status = response.status_code().as_u16();
    let text = response.text().await.map_err(transport)?;
    if (200..300).contains(&status) {
        return serde_json::from_str(&text)
            .map_err(|e| SearchError::BadResponse(format!("not JSON ({e}): {text:.200}")));
    }
    let reason = format!("{status}: {text:.500}");
    if status == 429 || status >= 500 {
        Err(SearchError::Unavailable(reason))
    } else {
        Err(SearchError::Rejected { status, reason })
    }
}

fn transport(error: elasticsearch::Error) -> SearchError {
    SearchError::Unavailable(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_items_are_indexed_retried_or_refused_by_status() {
        let answer = json!({"errors": true, "items": [
            {"index": {"_id": "a", "status": 201}},
            {"index": {"_id": "b", "status": 200}},
            {"index": {"_id": "c", "status": 429, "error": {"type": "es_rejected_execution_exception"}}},
            {"index": {"_id": "d", "status": 400, "error": {"type": "mapper_parsing_exception"}}}
        ]});
        let outcome = bulk_outcome(&answer, 4).expect("outcome");
        assert_eq!(outcome.indexed, 2);
        assert_eq!(outcome.retry, vec![2]);
        assert_eq!(outcome.rejected.len(), 1);
        assert_eq!(outcome.rejected[0].0, 3);
        assert!(outcome.rejected[0].1.contains("mapper_parsing_exception"));
        assert!(bulk_outcome(&answer, 5).is_err(), "item count must match");
    }

    #[test]
    fn debug_output_hides_credentials() {
        let settings = ElasticSettings {
            url: Url::parse("https://es.example:9200").expect("url"),
            index: "reviews".into(),
            auth: ElasticAuth::Basic {
                username: "elastic".into(),
                password: "hunter2".into(),
            },
            ca_cert: None,
        };
        let printed = format!("{settings:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        let key = ElasticAuth::ApiKey("a2V5LXNlY3JldA==".into());
        assert!(!format!("{key:?}").contains("a2V5LXNlY3JldA=="));
        let in_url = ElasticSettings {
            url: Url::parse("https://elastic:urlpass@es.example:9200").expect("url"),
            ..settings
        };
        let printed = format!("{in_url:?}");
        assert!(!printed.contains("urlpass"), "{printed}");
    }
}
