//! One micro-batch as a Polars DataFrame, and its tumbling and sliding windows computed with
//! `group_by_dynamic` — the same query a learner would write in Python Polars.

use std::collections::BTreeMap;

use app::api::{DatasetKind, WindowKind};
use polars::prelude::*;

use super::windows::{Agg, Event, Partials, Spec, WindowId};

const TIME: &str = "time";
const LOWER: &str = "_lower_boundary";
const UPPER: &str = "_upper_boundary";
const BUSINESS: &str = "business";
const HASHTAG: &str = "hashtag";
const COUNTRY: &str = "country";
const INDUSTRY: &str = "industry";

/// The batch as columns: time (datetime, ms), sentiment (0 positive, 1 negative, 2 neutral;
/// null for a company, which has no label), score, stars, business (a review's only: a tweet's
/// key is a user, a company's its id, not a business to list), and a company's country and
/// industry (null for the others).
pub fn events_frame(events: &[Event]) -> PolarsResult<LazyFrame> {
    let time: Vec<i64> = events.iter().map(|e| e.time).collect();
    let sentiment: Vec<Option<i32>> = events
        .iter()
        .map(|e| e.sentiment.map(|s| s.index() as i32))
        .collect();
    let score: Vec<f64> = events.iter().map(|e| e.score).collect();
    let stars: Vec<i32> = events.iter().map(|e| i32::from(e.stars)).collect();
    let business: Vec<Option<&str>> = events
        .iter()
        .map(|e| (e.dataset == DatasetKind::Yelp).then_some(e.business_id.as_str()))
        .collect();
    let country: Vec<Option<&str>> = events.iter().map(|e| e.country.as_deref()).collect();
    let industry: Vec<Option<&str>> = events.iter().map(|e| e.industry.as_deref()).collect();
    let frame = df!(
        TIME => time,
        "sentiment" => sentiment,
        "score" => score,
        "stars" => stars,
        BUSINESS => business,
        COUNTRY => country,
        INDUSTRY => industry,
    )?;
    Ok(timed(frame))
}

/// The batch's hashtags, one row per (tweet, hashtag): time and hashtag. Exploded here rather
/// than with Polars' `explode`, so the list needs no column type of its own.
fn hashtags_frame(events: &[Event]) -> PolarsResult<LazyFrame> {
    let (time, hashtag): (Vec<i64>, Vec<&str>) = events
        .iter()
        .flat_map(|e| e.hashtags.iter().map(|tag| (e.time, tag.as_str())))
        .unzip();
    Ok(timed(df!(TIME => time, HASHTAG => hashtag)?))
}

fn timed(frame: DataFrame) -> LazyFrame {
    frame
        .lazy()
        .with_column(col(TIME).cast(DataType::Datetime(TimeUnit::Milliseconds, None)))
        .sort([TIME], SortMultipleOptions::default())
}

/// Windows of `size_ms` starting every `every_ms`, aligned to multiples of `every_ms`, each
/// holding every event in `[start, start + size)`. Polars starts the first window at the first
/// event's time truncated to `every`; moving the boundaries back by `size − every` makes it the
/// earliest window that contains that event (for sliding windows, `size` a multiple of `every`).
fn dynamic_options(size_ms: i64, every_ms: i64) -> PolarsResult<DynamicGroupOptions> {
    let millis = |ms: i64| Duration::try_parse(&format!("{ms}ms"));
    let back = size_ms - every_ms;
    Ok(DynamicGroupOptions {
        every: millis(every_ms)?,
        period: millis(size_ms)?,
        offset: if back > 0 {
            Duration::try_parse(&format!("-{back}ms"))?
        } else {
            millis(0)?
        },
        label: Label::Left,
        include_boundaries: true,
        closed_window: ClosedWindow::Left,
        start_by: StartBy::WindowBound,
        ..Default::default()
    })
}

/// Per-window counts and sums: the window aggregate the stage and the benchmark run.
pub fn window_counts(frame: LazyFrame, size_ms: i64, every_ms: i64) -> PolarsResult<DataFrame> {
    let count_of = |column: &str, value: i32, name: &str| {
        col(column)
            .eq(lit(value))
            .cast(DataType::UInt64)
            .sum()
            .alias(name)
    };
    let mut aggregations = vec![
        count_of("sentiment", 0, "positive"),
        count_of("sentiment", 1, "negative"),
        count_of("sentiment", 2, "neutral"),
        col("sentiment")
            .is_null()
            .cast(DataType::UInt64)
            .sum()
            .alias("unlabelled"),
        col("score").sum().alias("score_sum"),
        col("stars").cast(DataType::UInt64).sum().alias("stars_sum"),
    ];
    for stars in 1..=5 {
        aggregations.push(count_of("stars", stars, &format!("stars_{stars}")));
        aggregations.push(
            (col("score") * col("stars").eq(lit(stars)).cast(DataType::Float64))
                .sum()
                .alias(format!("score_stars_{stars}")),
        );
    }
    frame
        .group_by_dynamic(col(TIME), [], dynamic_options(size_ms, every_ms)?)
        .agg(aggregations)
        .collect()
}

/// Rows per value of `key` (a business, a hashtag, a country, an industry) and window; rows without one are left out.
fn key_counts(frame: LazyFrame, key: &str, size_ms: i64, every_ms: i64) -> PolarsResult<DataFrame> {
    frame
        .filter(col(key).is_not_null())
        .group_by_dynamic(col(TIME), [col(key)], dynamic_options(size_ms, every_ms)?)
        .agg([len().cast(DataType::UInt64).alias("n")])
        .collect()
}

/// The batch's tumbling and sliding windows, ready to merge into the stage's state.
pub fn window_partials(events: &[Event], spec: &Spec) -> PolarsResult<Partials> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let frame = events_frame(events)?;
    let hashtags = hashtags_frame(events)?;
    let any_hashtag = events.iter().any(|e| !e.hashtags.is_empty());
    let any_company = events.iter().any(|e| e.dataset == DatasetKind::Companies);
    let mut partials = Vec::new();
    for (kind, size, every) in [
        (WindowKind::Tumbling, spec.tumbling_ms, spec.tumbling_ms),
        (WindowKind::Sliding, spec.sliding_ms, spec.slide_ms),
    ] {
        let mut windows = read_counts(kind, &window_counts(frame.clone(), size, every)?)?;
        let businesses = key_counts(frame.clone(), BUSINESS, size, every)?;
        add_keys(kind, &businesses, BUSINESS, &mut windows, |agg| {
            &mut agg.businesses
        })?;
        if any_hashtag {
            let tags = key_counts(hashtags.clone(), HASHTAG, size, every)?;
            add_keys(kind, &tags, HASHTAG, &mut windows, |agg| &mut agg.hashtags)?;
        }
        if any_company {
            let countries = key_counts(frame.clone(), COUNTRY, size, every)?;
            add_keys(kind, &countries, COUNTRY, &mut windows, |agg| {
                &mut agg.countries
            })?;
            let industries = key_counts(frame.clone(), INDUSTRY, size, every)?;
            add_keys(kind, &industries, INDUSTRY, &mut windows, |agg| {
                &mut agg.industries
            })?;
        }
        partials.extend(windows.into_iter().filter(|(_, agg)| agg.total() > 0));
    }
    Ok(partials)
}

fn read_counts(kind: WindowKind, frame: &DataFrame) -> PolarsResult<BTreeMap<WindowId, Agg>> {
    let starts = i64s(frame, LOWER)?;
    let ends = i64s(frame, UPPER)?;
    let sentiments: Vec<Vec<u64>> = ["positive", "negative", "neutral"]
        .iter()
        .map(|name| u64s(frame, name))
        .collect::<PolarsResult<_>>()?;
    let stars: Vec<Vec<u64>> = (1..=5)
        .map(|s| u64s(frame, &format!("stars_{s}")))
        .collect::<PolarsResult<_>>()?;
    let score_sums = f64s(frame, "score_sum")?;
    let score_by_stars: Vec<Vec<f64>> = (1..=5)
        .map(|s| f64s(frame, &format!("score_stars_{s}")))
        .collect::<PolarsResult<_>>()?;
    let stars_sums = u64s(frame, "stars_sum")?;
    let unlabelled = u64s(frame, "unlabelled")?;
    let mut windows = BTreeMap::new();
    for row in 0..frame.height() {
        let agg = Agg {
            counts: [sentiments[0][row], sentiments[1][row], sentiments[2][row]],
            score_sum: score_sums[row],
            stars_sum: stars_sums[row],
            stars: [
                stars[0][row],
                stars[1][row],
                stars[2][row],
                stars[3][row],
                stars[4][row],
            ],
            score_by_stars: std::array::from_fn(|i| score_by_stars[i][row]),
            businesses: BTreeMap::new(),
            hashtags: BTreeMap::new(),
            unlabelled: unlabelled[row],
            countries: BTreeMap::new(),
            industries: BTreeMap::new(),
        };
        let id = WindowId {
            kind,
            start: starts[row],
            end: ends[row],
            key: None,
        };
        windows.insert(id, agg);
    }
    Ok(windows)
}

/// Puts the counts of [`key_counts`] into their windows, in the map `of` picks.
fn add_keys(
    kind: WindowKind,
    frame: &DataFrame,
    key: &str,
    windows: &mut BTreeMap<WindowId, Agg>,
    of: impl Fn(&mut Agg) -> &mut BTreeMap<String, u64>,
) -> PolarsResult<()> {
    // No row had the key (a batch of tweets has no business): Polars then leaves out the
    // boundary columns too.
    if frame.height() == 0 {
        return Ok(());
    }
    let starts = i64s(frame, LOWER)?;
    let ends = i64s(frame, UPPER)?;
    let counts = u64s(frame, "n")?;
    let keys = frame.column(key)?.str()?;
    for (row, value) in keys.iter().enumerate() {
        let id = WindowId {
            kind,
            start: starts[row],
            end: ends[row],
            key: None,
        };
        if let (Some(agg), Some(value)) = (windows.get_mut(&id), value) {
            of(agg).insert(value.to_owned(), counts[row]);
        }
    }
    Ok(())
}

fn i64s(frame: &DataFrame, name: &str) -> PolarsResult<Vec<i64>> {
    let column = frame.column(name)?.cast(&DataType::Int64)?;
    Ok(column
        .i64()?
        .iter()
        .map(Option::unwrap_or_default)
        .collect())
}

fn u64s(frame: &DataFrame, name: &str) -> PolarsResult<Vec<u64>> {
    let column = frame.column(name)?.cast(&DataType::UInt64)?;
    Ok(column
        .u64()?
        .iter()
        .map(Option::unwrap_or_default)
        .collect())
}

fn f64s(frame: &DataFrame, name: &str) -> PolarsResult<Vec<f64>> {
    let column = frame.column(name)?.cast(&DataType::Float64)?;
    Ok(column
        .f64()?
        .iter()
        .map(Option::unwrap_or_default)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::windows::reference_partials;
    use app::api::{OutputMode, Sentiment};

    fn events(n: usize) -> Vec<Event> {
        // Irregular times over ~40 minutes, some negative (before 1970), shuffled order.
        (0..n)
            .map(|i| {
                let i = i as i64;
                // Every third record a tweet with 0–2 of three hashtags; some others companies
                // (no label, no stars; a country and an industry).
                let dataset = if i % 3 == 0 {
                    DatasetKind::Tweets
                } else if i % 5 == 4 {
                    DatasetKind::Companies
                } else {
                    DatasetKind::Yelp
                };
                let company = dataset == DatasetKind::Companies;
                let pick = |values: &[&str], n: i64| {
                    company.then(|| values[(n % values.len() as i64) as usize].to_owned())
                };
                Event {
                    review_id: format!("r{i}"),
                    time: (i * 7_919 % 2_400_000) - 600_000 + (i % 13) * 1_000,
                    sentiment: (!company).then_some(Sentiment::ALL[(i % 3) as usize]),
                    score: if company {
                        0.0
                    } else {
                        (i % 11) as f64 / 10.0 - 0.5
                    },
                    stars: if company { 0 } else { (i % 5 + 1) as u8 },
                    business_id: format!("b{}", i % 4),
                    country: pick(&["Chile", "France", "Japan", "Peru"], i / 7),
                    industry: pick(&["Energy", "Media", "Retail"], i / 11),
                    dataset,
                    hashtags: if i % 3 == 0 {
                        ["#a", "#b", "#c"]
                            .iter()
                            .take((i % 5 % 3) as usize)
                            .map(|t| (*t).to_owned())
                            .collect()
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect()
    }

    fn spec() -> Spec {
        Spec {
            tumbling_ms: 60_000,
            sliding_ms: 60_000,
            slide_ms: 15_000,
            gap_ms: 30_000,
            lateness_ms: 0,
            mode: OutputMode::Append,
        }
    }

    #[test]
    fn polars_windows_equal_the_one_event_at_a_time_reference() {
        let events = events(2_000);
        let mut polars = window_partials(&events, &spec()).expect("polars");
        let mut reference = reference_partials(&events, &spec());
        polars.sort_by(|a, b| a.0.cmp(&b.0));
        reference.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(polars.len(), reference.len());
        for ((wp, ap), (wr, ar)) in polars.iter().zip(&reference) {
            assert_eq!(wp, wr);
            assert_eq!(ap.counts, ar.counts, "{wp:?}");
            assert_eq!(ap.stars, ar.stars, "{wp:?}");
            assert_eq!(ap.stars_sum, ar.stars_sum);
            assert_eq!(ap.businesses, ar.businesses, "{wp:?}");
            assert_eq!(ap.hashtags, ar.hashtags, "{wp:?}");
            assert_eq!(ap.unlabelled, ar.unlabelled, "{wp:?}");
            assert_eq!(ap.countries, ar.countries, "{wp:?}");
            assert_eq!(ap.industries, ar.industries, "{wp:?}");
            assert!((ap.score_sum - ar.score_sum).abs() < 1e-9);
            for (p, r) in ap.score_by_stars.iter().zip(ar.score_by_stars) {
                assert!((p - r).abs() < 1e-9, "{wp:?}");
            }
        }
    }

    #[test]
    fn a_window_counts_each_hashtag_of_its_tweets_and_lists_no_user() {
        let tweets: Vec<Event> = events(60)
            .into_iter()
            .filter(|e| e.dataset == DatasetKind::Tweets)
            .collect();
        let tagged: u64 = tweets.iter().map(|e| e.hashtags.len() as u64).sum();
        let spec = Spec {
            tumbling_ms: 3_600_000,
            ..spec()
        };
        let partials = window_partials(&tweets, &spec).expect("polars");
        let tumbling: Vec<&Agg> = partials
            .iter()
            .filter(|(w, _)| w.kind == WindowKind::Tumbling)
            .map(|(_, agg)| agg)
            .collect();
        let counted: u64 = tumbling.iter().flat_map(|a| a.hashtags.values()).sum();
        assert!(tagged > 0);
        assert_eq!(counted, tagged, "each tweet once per hashtag");
        assert!(tumbling.iter().all(|a| a.businesses.is_empty()));
    }

    #[test]
    fn a_window_counts_its_companies_by_country_and_by_industry() {
        let companies: Vec<Event> = events(200)
            .into_iter()
            .filter(|e| e.dataset == DatasetKind::Companies)
            .collect();
        let spec = Spec {
            tumbling_ms: 3_600_000,
            ..spec()
        };
        let partials = window_partials(&companies, &spec).expect("polars");
        let tumbling: Vec<&Agg> = partials
            .iter()
            .filter(|(w, _)| w.kind == WindowKind::Tumbling)
            .map(|(_, agg)| agg)
            .collect();
        let sum = |of: fn(&Agg) -> u64| tumbling.iter().map(|a| of(a)).sum::<u64>();
        let n = companies.len() as u64;
        assert!(n > 0);
        // Each company once by country and once by industry, none by sentiment or business.
        assert_eq!(sum(|a| a.countries.values().sum()), n);
        assert_eq!(sum(|a| a.industries.values().sum()), n);
        assert_eq!((sum(Agg::total), sum(|a| a.unlabelled)), (n, n));
        assert_eq!(sum(Agg::labelled), 0);
        assert!(tumbling.iter().all(|a| a.businesses.is_empty()));
    }

    #[test]
    fn an_empty_batch_has_no_windows() {
        assert!(window_partials(&[], &spec()).expect("empty").is_empty());
    }
}
