//! The embedded search backend: a tantivy index in the data directory, in-process.
//!
//! Writes go through one `IndexWriter` (tantivy allows one per index). Each bulk deletes any
//! document with the same `review_id` before adding it and commits, so a re-delivered review
//! replaces itself instead of counting twice, and a committed bulk survives a restart.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use app::api::{DatasetKind, SearchAggregations, SearchResults};
use serde_json::Value;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::{AggContextParams, AggregationCollector};
use tantivy::collector::{Count, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::query::{
    AllQuery, BooleanQuery, ConstScoreQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::document::Document;
use tantivy::schema::{
    DateOptions, DateTimePrecision, FAST, Field, INDEXED, IndexRecordOption, STORED, STRING,
    Schema, TEXT,
};
use tantivy::{
    DateTime, Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term,
};

use super::query::{Search, aggregations_body, parse_aggregations, parse_hit};
use super::{BulkOutcome, SearchBackend, SearchDoc, SearchError};

/// Memory the writer may buffer before flushing a segment.
const WRITER_HEAP_BYTES: usize = 64 * 1024 * 1024;

#[derive(Clone, Copy)]
struct Fields {
    review_id: Field,
    business_id: Field,
    user_id: Field,
    stars: Field,
    text: Field,
    sentiment: Field,
    score: Field,
    classifier: Field,
    date: Field,
    processed_at: Field,
    /// `None` in an index made before tweets were indexed (see [`EmbeddedIndex::open`]).
    dataset: Option<Field>,
    hashtags: Option<Field>,
}

/// Stored fields that may hold several values: a hit keeps them as a list (see [`flatten`]).
const MULTI_VALUED: [&str; 1] = ["hashtags"];

/// The mapping, field for field what the Elasticsearch backend declares: keyword fields are
/// untokenised (`STRING`), text is analysed (lower-cased words), numbers and dates are columnar
/// (`FAST`) so they can be aggregated.
fn schema() -> Schema {
    let mut builder = Schema::builder();
    let date = DateOptions::from(INDEXED)
        .set_stored()
        .set_fast()
        .set_precision(DateTimePrecision::Seconds);
    builder.add_text_field("review_id", STRING | STORED);
    builder.add_text_field("business_id", STRING | STORED | FAST);
    builder.add_text_field("user_id", STRING | STORED);
    builder.add_u64_field("stars", INDEXED | STORED | FAST);
    builder.add_text_field("text", TEXT | STORED);
    builder.add_text_field("sentiment", STRING | STORED | FAST);
    builder.add_f64_field("score", INDEXED | STORED | FAST);
    builder.add_text_field("classifier", STRING | STORED);
    builder.add_date_field("date", date.clone());
    builder.add_date_field("processed_at", date);
    builder.add_text_field("dataset", STRING | STORED | FAST);
    builder.add_text_field("hashtags", STRING | STORED);
    builder.build()
}

impl Fields {
    /// The fields of an index's schema, by name: the review fields must be there; the fields
    /// tweets added may be missing from an index an older Pipebook made.
    fn of(schema: &Schema) -> Result<Self, String> {
        let field = |name: &str| {
            schema
                .get_field(name)
                .map_err(|_| format!("the index has no {name} field"))
        };
        Ok(Self {
            review_id: field("review_id")?,
            business_id: field("business_id")?,
            user_id: field("user_id")?,
            stars: field("stars")?,
            text: field("text")?,
            sentiment: field("sentiment")?,
            score: field("score")?,
            classifier: field("classifier")?,
            date: field("date")?,
            processed_at: field("processed_at")?,
            dataset: field("dataset").ok(),
            hashtags: field("hashtags").ok(),
        })
    }
}

#[derive(Clone)]
pub struct EmbeddedIndex {
    dir: PathBuf,
    index: Index,
    fields: Fields,
    writer: Arc<Mutex<IndexWriter>>,
    reader: IndexReader,
}

/// How long opening the index waits for another writer of the same directory to let go.
const WRITER_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The index's one writer. An engine that has just shut down on the same data dir (a restart in
/// the same process) may still be dropping its writer, whose lock file goes with it a moment
/// later: wait for that, a bounded time, before calling the index taken.
fn open_writer(index: &Index) -> Result<IndexWriter, SearchError> {
    let deadline = Instant::now() + WRITER_LOCK_WAIT;
    loop {
        match index.writer(WRITER_HEAP_BYTES) {
            Err(tantivy::TantivyError::LockFailure(
                tantivy::directory::error::LockError::LockBusy,
                _,
            )) if Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            other => return other.map_err(embedded),
        }
    }
}

impl EmbeddedIndex {
    /// Opens the index under `dir`, creating it if it is not there.
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| SearchError::Embedded(format!("cannot create {}: {e}", dir.display())))?;
        let directory = MmapDirectory::open(dir)
            .map_err(|e| SearchError::Embedded(format!("cannot open {}: {e}", dir.display())))?;
        let another_version = |e: &dyn std::fmt::Display| {
            SearchError::Embedded(format!(
                "{}: {e} (an index from another Pipebook version? delete the directory to rebuild it)",
                dir.display()
            ))
        };
        let index = match Index::open_or_create(directory.clone(), schema()) {
            Ok(index) => index,
            // An index made before tweets were indexed (no dataset or hashtags field): kept, so
            // a learner's reviews stay searchable; its tweets are indexed without those fields.
            Err(tantivy::TantivyError::SchemaError(_)) => {
                let index = Index::open(directory).map_err(|e| another_version(&e))?;
                tracing::warn!(
                    dir = %dir.display(),
                    "the search index was made by an older Pipebook: tweets are indexed without \
                     their dataset and hashtags; delete the directory to rebuild it"
                );
                index
            }
            Err(e) => return Err(another_version(&e)),
        };
        let fields = Fields::of(&index.schema()).map_err(|e| another_version(&e))?;
        let writer = open_writer(&index)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(embedded)?;
        Ok(Self {
            dir: dir.to_owned(),
            index,
            fields,
            writer: Arc::new(Mutex::new(writer)),
            reader,
        })
    }

    fn document(&self, doc: &SearchDoc) -> Result<TantivyDocument, String> {
        let f = &self.fields;
        let mut out = TantivyDocument::default();
        out.add_text(f.review_id, &doc.review_id);
        // A field the record does not have is left out, as Elasticsearch leaves out a missing
        // one: aggregations on it (stars, top businesses) then skip the document.
        if let Some(business_id) = &doc.business_id {
            out.add_text(f.business_id, business_id);
        }
        out.add_text(f.user_id, &doc.user_id);
        if let Some(stars) = doc.stars {
            out.add_u64(f.stars, u64::from(stars));
        }
        if let Some(field) = f.dataset
            && doc.dataset != DatasetKind::Yelp
        {
            out.add_text(field, doc.dataset.as_str());
        }
        if let Some(field) = f.hashtags {
            for hashtag in &doc.hashtags {
                out.add_text(field, hashtag);
            }
        }
        out.add_text(f.text, &doc.text);
        out.add_text(f.sentiment, doc.sentiment.as_str());
        out.add_f64(f.score, doc.score);
        out.add_text(f.classifier, &doc.classifier);
        out.add_date(f.date, to_tantivy_date(&doc.date)?);
        out.add_date(f.processed_at, to_tantivy_date(&doc.processed_at)?);
        Ok(out)
    }

    /// Adds (or replaces) the documents and commits; blocking.
    fn write(&self, docs: &[SearchDoc]) -> Result<BulkOutcome, SearchError> {
        let mut outcome = BulkOutcome::default();
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| SearchError::Embedded("index writer poisoned".into()))?;
        for (position, doc) in docs.iter().enumerate() {
            let document = match self.document(doc) {
                Ok(document) => document,
                Err(reason) => {
                    outcome.rejected.push((position, reason));
                    continue;
                }
            };
            writer.delete_term(Term::from_field_text(self.fields.review_id, &doc.review_id));
            writer.add_document(document).map_err(embedded)?;
            outcome.indexed += 1;
        }
        writer.commit().map_err(embedded)?;
        drop(writer);
        self.reader.reload().map_err(embedded)?;
        Ok(outcome)
    }

    fn filtered(&self, search: &Search) -> Box<dyn Query> {
        let f = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if !search.text.is_empty() {
            // Elasticsearch's `match`: the analysed words, any of them (OR), ranked by BM25.
            let terms = self.analyse(&search.text);
            let words: Vec<(Occur, Box<dyn Query>)> = terms
                .into_iter()
                .map(|term| {
                    let query: Box<dyn Query> =
                        Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs));
                    (Occur::Should, query)
                })
                .collect();
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(words))));
        }
        if let Some(sentiment) = search.sentiment {
            let term = Term::from_field_text(f.sentiment, sentiment.as_str());
            clauses.push((
                Occur::Must,
                filter(TermQuery::new(term, IndexRecordOption::Basic)),
            ));
        }
        if let Some(stars) = search.stars_min {
            let lower = Term::from_field_u64(f.stars, u64::from(stars));
            clauses.push((
                Occur::Must,
                filter(RangeQuery::new(Bound::Included(lower), Bound::Unbounded)),
            ));
        }
        if clauses.is_empty() {
            Box::new(AllQuery)
        } else {
            Box::new(BooleanQuery::new(clauses))
        }
    }

    fn analyse(&self, text: &str) -> Vec<Term> {
        let Ok(mut analyzer) = self.index.tokenizer_for_field(self.fields.text) else {
            return Vec::new();
        };
        let mut stream = analyzer.token_stream(text);
        let mut terms = Vec::new();
        while let Some(token) = stream.next() {
            terms.push(Term::from_field_text(self.fields.text, &token.text));
        }
        terms
    }

    fn run_search(&self, search: &Search) -> Result<SearchResults, SearchError> {
        let started = Instant::now();
        let searcher = self.reader.searcher();
        let query = self.filtered(search);
        let limit = search.limit as usize;
        if search.text.is_empty() {
            let newest =
                TopDocs::with_limit(limit).order_by_fast_field::<DateTime>("date", Order::Desc);
            let (total, top) = searcher
                .search(&query, &(Count, newest))
                .map_err(embedded)?;
            self.hits(&searcher, total, top.into_iter().map(|(_, a)| a), started)
        } else {
            let best = TopDocs::with_limit(limit).order_by_score();
            let (total, top) = searcher.search(&query, &(Count, best)).map_err(embedded)?;
            self.hits(&searcher, total, top.into_iter().map(|(_, a)| a), started)
        }
    }

    fn hits(
        &self,
        searcher: &tantivy::Searcher,
        total: usize,
        addresses: impl Iterator<Item = tantivy::DocAddress>,
        started: Instant,
    ) -> Result<SearchResults, SearchError> {
        let schema = self.index.schema();
        let hits = addresses
            .map(|address| {
                let doc: TantivyDocument = searcher.doc(address).map_err(embedded)?;
                parse_hit(&flatten(&doc.to_json(&schema))?)
            })
            .collect::<Result<_, _>>()?;
        Ok(SearchResults {
            total: total as u64,
            hits,
            took_ms: millis(started),
        })
    }

    /// The stored document with this `review_id`: a term lookup on the untokenised id field.
    fn run_get(&self, review_id: &str) -> Result<Option<Value>, SearchError> {
        let searcher = self.reader.searcher();
        let term = Term::from_field_text(self.fields.review_id, review_id);
        let query = TermQuery::new(term, IndexRecordOption::Basic);
        let top = searcher
            .search(&query, &TopDocs::with_limit(1).order_by_score())
            .map_err(embedded)?;
        let Some((_, address)) = top.into_iter().next() else {
            return Ok(None);
        };
        let doc: TantivyDocument = searcher.doc(address).map_err(embedded)?;
        flatten(&doc.to_json(&self.index.schema())).map(Some)
    }

    fn run_aggregations(&self, interval: &str) -> Result<SearchAggregations, SearchError> {
        let started = Instant::now();
        let request: Aggregations = serde_json::from_value(aggregations_body(interval))
            .map_err(|e| SearchError::Embedded(format!("aggregation request: {e}")))?;
        let searcher = self.reader.searcher();
        let collector = AggregationCollector::from_aggs(request, AggContextParams::default());
        let results = searcher.search(&AllQuery, &collector).map_err(embedded)?;
        let json = serde_json::to_value(results)
            .map_err(|e| SearchError::Embedded(format!("aggregation result: {e}")))?;
        let mut parsed = parse_aggregations(&json, searcher.num_docs(), interval)?;
        parsed.took_ms = millis(started);
        Ok(parsed)
    }
}

impl SearchBackend for EmbeddedIndex {
    fn describe(&self) -> (String, String) {
        ("embedded".to_owned(), self.dir.display().to_string())
    }

    async fn prepare(&self) -> Result<(), SearchError> {
        Ok(())
    }

    async fn bulk(&self, docs: Vec<SearchDoc>) -> Result<BulkOutcome, SearchError> {
        let this = self.clone();
        blocking(move || this.write(&docs)).await
    }

    async fn refresh(&self) -> Result<(), SearchError> {
        self.reader.reload().map_err(embedded)
    }

    async fn count(&self) -> Result<u64, SearchError> {
        Ok(self.reader.searcher().num_docs())
    }

    async fn search(&self, search: Search) -> Result<SearchResults, SearchError> {
        let this = self.clone();
        blocking(move || this.run_search(&search)).await
    }

    async fn get(&self, review_id: String) -> Result<Option<Value>, SearchError> {
        let this = self.clone();
        blocking(move || this.run_get(&review_id)).await
    }

    async fn aggregations(&self, interval: String) -> Result<SearchAggregations, SearchError> {
        let this = self.clone();
        blocking(move || this.run_aggregations(&interval)).await
    }
}

/// Runs index work on a blocking thread: tantivy does file I/O and CPU work synchronously.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SearchError> + Send + 'static,
) -> Result<T, SearchError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SearchError::Embedded(format!("index task failed: {e}")))?
}

/// A constant-score filter: it narrows the hits without changing their ranking, like a
/// clause in Elasticsearch's `bool.filter`.
fn filter(query: impl Query) -> Box<dyn Query> {
    Box::new(ConstScoreQuery::new(Box::new(query), 0.0))
}

fn to_tantivy_date(rfc3339: &str) -> Result<DateTime, String> {
    let parsed = chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map_err(|e| format!("date {rfc3339:?} is not RFC 3339: {e}"))?;
    Ok(DateTime::from_timestamp_secs(parsed.timestamp()))
}

/// tantivy writes every stored field as an array (`{"stars": [5]}`); hits want plain values,
/// except for the fields that are lists ([`MULTI_VALUED`]), even of one.
fn flatten(json: &str) -> Result<Value, SearchError> {
    let value: Value = serde_json::from_str(json)
        .map_err(|e| SearchError::Embedded(format!("stored document: {e}")))?;
    let Value::Object(map) = value else {
        return Err(SearchError::Embedded(
            "stored document is not an object".into(),
        ));
    };
    Ok(Value::Object(
        map.into_iter()
            .map(|(key, value)| match value {
                Value::Array(mut values)
                    if values.len() == 1 && !MULTI_VALUED.contains(&key.as_str()) =>
                {
                    (key, values.remove(0))
                }
                other => (key, other),
            })
            .collect(),
    ))
}

fn millis(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

fn embedded(error: impl std::fmt::Display) -> SearchError {
    SearchError::Embedded(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::api::Sentiment;

    fn doc(id: &str, stars: u8, sentiment: Sentiment, text: &str, date: &str) -> SearchDoc {
        SearchDoc {
            dataset: DatasetKind::Yelp,
            review_id: id.into(),
            business_id: Some(format!("b{}", stars % 2)),
            user_id: "u".into(),
            stars: Some(stars),
            hashtags: Vec::new(),
            text: text.into(),
            sentiment,
            score: f64::from(stars) / 5.0 - 0.5,
            classifier: "lexicon".into(),
            date: date.into(),
            processed_at: "2026-11-23T10:00:00.000Z".into(),
        }
    }

    fn sample() -> Vec<SearchDoc> {
        vec![
            doc(
                "a",
                1,
                Sentiment::Negative,
                "Terrible service, cold food",
                "2024-03-01T10:15:00Z",
            ),
            doc(
                "b",
                2,
                Sentiment::Negative,
                "The service was slow",
                "2024-03-01T10:45:00Z",
            ),
            doc(
                "c",
                5,
                Sentiment::Positive,
                "Great service and tacos",
                "2024-03-01T12:05:00Z",
            ),
            doc(
                "d",
                3,
                Sentiment::Neutral,
                "Fine tacos",
                "2024-03-02T09:00:00Z",
            ),
        ]
    }

    #[tokio::test]
    async fn the_same_review_id_replaces_itself_and_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("dir");
        let index = EmbeddedIndex::open(dir.path()).expect("open");
        let outcome = index.bulk(sample()).await.expect("bulk");
        assert_eq!(outcome.indexed, 4);
        index.bulk(sample()).await.expect("again");
        assert_eq!(index.count().await.expect("count"), 4);
        drop(index);
        let reopened = EmbeddedIndex::open(dir.path()).expect("reopen");
        assert_eq!(reopened.count().await.expect("count"), 4);
    }

    #[tokio::test]
    async fn a_document_is_found_by_its_review_id_only() {
        let dir = tempfile::tempdir().expect("dir");
        let index = EmbeddedIndex::open(dir.path()).expect("open");
        index.bulk(sample()).await.expect("bulk");
        let doc = index.get("b".into()).await.expect("get").expect("b exists");
        assert_eq!(doc["review_id"], "b");
        assert_eq!(doc["stars"], 2);
        assert_eq!(doc["sentiment"], "NEGATIVE");
        assert_eq!(index.get("nope".into()).await.expect("get"), None);
    }

    #[tokio::test]
    async fn match_with_filters_and_newest_first_without_words() {
        let dir = tempfile::tempdir().expect("dir");
        let index = EmbeddedIndex::open(dir.path()).expect("open");
        index.bulk(sample()).await.expect("bulk");
        let negative_service = Search {
            text: "SERVICE".into(),
            sentiment: Some(Sentiment::Negative),
            stars_min: Some(2),
            limit: 10,
        };
        let found = index.search(negative_service).await.expect("search");
        assert_eq!(found.total, 1);
        assert_eq!(found.hits[0].review_id, "b");
        assert_eq!(found.hits[0].date, "2024-03-01T10:45:00Z");
        let newest = Search {
            text: String::new(),
            sentiment: None,
            stars_min: None,
            limit: 2,
        };
        let found = index.search(newest).await.expect("search");
        assert_eq!(found.total, 4);
        let ids: Vec<_> = found.hits.iter().map(|h| h.review_id.as_str()).collect();
        assert_eq!(ids, ["d", "c"]);
    }

    #[tokio::test]
    async fn aggregations_count_sentiments_stars_and_hours() {
        let dir = tempfile::tempdir().expect("dir");
        let index = EmbeddedIndex::open(dir.path()).expect("open");
        index.bulk(sample()).await.expect("bulk");
        let aggs = index.aggregations("1h".into()).await.expect("aggs");
        assert_eq!(aggs.total, 4);
        let negative = aggs.by_sentiment.iter().find(|t| t.key == "NEGATIVE");
        assert_eq!(negative.map(|t| t.count), Some(2));
        let stars: Vec<_> = aggs.by_stars.iter().map(|b| (b.stars, b.count)).collect();
        assert_eq!(stars, [(1, 1), (2, 1), (3, 1), (5, 1)]);
        assert_eq!(aggs.by_stars[3].avg_score, Some(0.5));
        // 10:00 (2 reviews), 12:00 and the next day's 09:00; empty hours are left out.
        let hours: Vec<_> = aggs
            .over_time
            .iter()
            .map(|b| (b.start, b.by_sentiment))
            .collect();
        assert_eq!(
            hours,
            [
                (1_709_287_200_000, [0, 2, 0]),
                (1_709_294_400_000, [1, 0, 0]),
                (1_709_370_000_000, [0, 0, 1]),
            ]
        );
        assert!(aggs.score_percentiles.contains_key("50.0"), "{aggs:?}");
    }

    /// A tweet among the reviews: found by its words and its id, with its hashtags as a list;
    /// the charts over every document count it, those of reviews' own fields do not.
    #[tokio::test]
    async fn a_tweet_is_searchable_beside_reviews_and_only_the_shared_charts_count_it() {
        let dir = tempfile::tempdir().expect("dir");
        let index = EmbeddedIndex::open(dir.path()).expect("open");
        let mut docs = sample();
        docs.push(SearchDoc {
            dataset: DatasetKind::Tweets,
            review_id: "1740000000000000001".into(),
            business_id: None,
            user_id: "user007".into(),
            stars: None,
            hashtags: vec!["#kafka".into()],
            text: "Love how fast the tacos stream #kafka".into(),
            sentiment: Sentiment::Positive,
            score: 0.7,
            classifier: "lexicon".into(),
            date: "2024-03-01T10:20:00Z".into(),
            processed_at: "2026-11-23T10:00:00.000Z".into(),
        });
        index.bulk(docs).await.expect("bulk");
        let found = index
            .search(Search {
                text: "kafka".into(),
                sentiment: None,
                stars_min: None,
                limit: 10,
            })
            .await
            .expect("search");
        assert_eq!(found.total, 1);
        let hit = &found.hits[0];
        assert_eq!(hit.dataset, DatasetKind::Tweets);
        assert_eq!(
            (hit.stars, hit.hashtags.as_slice()),
            (0, &["#kafka".to_owned()][..])
        );
        let everything = Search {
            text: String::new(),
            sentiment: None,
            stars_min: None,
            limit: 10,
        };
        let found = index.search(everything).await.expect("search");
        assert_eq!(found.total, 5);
        assert!(
            found
                .hits
                .iter()
                .filter(|h| h.dataset == DatasetKind::Yelp)
                .all(|h| h.stars > 0)
        );
        let stored = index
            .get("1740000000000000001".into())
            .await
            .expect("get")
            .expect("found");
        assert_eq!(stored["user_id"], "user007");
        assert_eq!(stored["dataset"], "tweets");

        let aggs = index.aggregations("1h".into()).await.expect("aggs");
        assert_eq!(aggs.total, 5);
        let counted = |terms: &[app::api::TermCount]| terms.iter().map(|t| t.count).sum::<u64>();
        assert_eq!(counted(&aggs.by_sentiment), 5, "the tweet has a label");
        assert_eq!(
            aggs.by_stars.iter().map(|b| b.count).sum::<u64>(),
            4,
            "no 0★ bar"
        );
        assert!(aggs.by_stars.iter().all(|b| b.stars > 0));
        assert_eq!(counted(&aggs.top_businesses), 4, "a tweet has no business");
        assert_eq!(aggs.over_time.iter().map(|b| b.count).sum::<u64>(), 5);
    }

    /// An index made before tweets were indexed still opens, and takes reviews and tweets.
    #[tokio::test]
    async fn an_index_without_the_tweet_fields_still_opens_and_indexes_tweets() {
        let dir = tempfile::tempdir().expect("dir");
        let mut older = schema();
        let mut builder = Schema::builder();
        for (_, entry) in older.fields() {
            if !["dataset", "hashtags"].contains(&entry.name()) {
                builder.add_field(entry.clone());
            }
        }
        older = builder.build();
        let directory = MmapDirectory::open(dir.path()).expect("dir");
        drop(Index::open_or_create(directory, older).expect("older index"));
        let index = EmbeddedIndex::open(dir.path()).expect("opens");
        let mut docs = sample();
        docs[0].dataset = DatasetKind::Tweets;
        docs[0].hashtags = vec!["#rust".into()];
        assert_eq!(index.bulk(docs).await.expect("bulk").indexed, 4);
        let stored = index.get("a".into()).await.expect("get").expect("found");
        assert!(stored.get("hashtags").is_none(), "{stored}");
    }

    #[tokio::test]
    async fn a_bad_date_is_refused_by_position_and_the_rest_indexed() {
        let dir = tempfile::tempdir().expect("dir");
        let index = EmbeddedIndex::open(dir.path()).expect("open");
        let mut docs = sample();
        docs[1].date = "last tuesday".into();
        let outcome = index.bulk(docs).await.expect("bulk");
        assert_eq!(outcome.indexed, 3);
        assert_eq!(outcome.rejected.len(), 1);
        assert_eq!(outcome.rejected[0].0, 1);
        assert!(outcome.rejected[0].1.contains("last tuesday"));
    }
}
