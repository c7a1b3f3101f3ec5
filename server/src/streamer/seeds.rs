//! Seeded, offline generators of the seeds' other datasets (issue 17): tweets like seeds 001,
//! 003 and 004 stream, and companies like seed 002's faker source. The same seed always gives
//! the same records; event times move forward 10 s apart from 2024-01-01 09:00 with a little
//! jitter, as the Yelp generator's do.

use chrono::{Duration, NaiveDate, NaiveDateTime};
use rand::{Rng, SeedableRng, seq::IndexedRandom};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::records::DATE_FORMAT;

const SECONDS_PER_RECORD: i64 = 10;
const USERS: usize = 400;

/// A tweet as seeds 001/003/004 read it from Twitter's API (the fields the pipeline uses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tweet {
    pub tweet_id: String,
    pub user: String,
    pub text: String,
    pub hashtags: Vec<String>,
    pub created_at: String,
}

/// A company as seed 002's faker source makes it, with the time the record was made (seed
/// 002's `timestamp_column`): `founded` is a year, not an event time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Company {
    pub company_id: String,
    pub name: String,
    pub country: String,
    pub industry: String,
    pub employees: u32,
    pub founded: u16,
    pub created_at: String,
}

/// Hashtags, most popular first: drawn with weights 1/rank (Zipf-like), so a few dominate.
const HASHTAGS: &[&str] = &[
    "#bigdata",
    "#kafka",
    "#AI",
    "#python",
    "#rust",
    "#datascience",
    "#streaming",
    "#cloud",
];

const OPENERS: &[&str] = &[
    "Just tried the new release.",
    "Day three of the migration.",
    "Reading the docs this morning.",
    "Our team shipped the pipeline today.",
    "Watching the conference talk.",
    "Back from the meetup.",
];
const POSITIVE: &[&str] = &[
    "Love how fast it is!",
    "This is amazing, great work by the team.",
    "Really happy with the results.",
    "Best tool I have used this year.",
    "Super excited about what comes next.",
];
const NEGATIVE: &[&str] = &[
    "Terrible docs, wasted the whole afternoon.",
    "So frustrating, it crashed again.",
    "Awful latency and nobody cares.",
    "I hate the new pricing, it is a scam.",
    "Disappointed, the demo was broken.",
];
const NEUTRAL: &[&str] = &[
    "The talk starts at 3pm.",
    "Version 2.1 is out.",
    "Slides are linked below.",
    "Moving the cluster to another region.",
];

const FIRST: &[&str] = &[
    "Blue", "North", "Bright", "Iron", "Silver", "Green", "Rapid", "Open", "Quantum", "Delta",
];
const SECOND: &[&str] = &[
    "Harbor", "Peak", "Field", "Works", "Labs", "Systems", "River", "Forge", "Point", "Wave",
];
const SUFFIX: &[&str] = &["Ltd", "Inc", "GmbH", "SA", "LLC", "Group"];
/// Seed 002's dashboard countries, most frequent first.
const COUNTRIES: &[&str] = &[
    "France",
    "Egypt",
    "Australia",
    "Morocco",
    "Singapore",
    "Luxembourg",
];
const INDUSTRIES: &[&str] = &[
    "Technology",
    "Retail",
    "Finance",
    "Healthcare",
    "Energy",
    "Manufacturing",
];

/// Common state: the random stream, the start of event time and the record count.
struct Clock {
    rng: ChaCha8Rng,
    start: NaiveDateTime,
    index: i64,
}

impl Clock {
    fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            start: NaiveDate::from_ymd_opt(2024, 1, 1)
                .and_then(|d| d.and_hms_opt(9, 0, 0))
                .unwrap_or_default(),
            index: 0,
        }
    }

    fn next_time(&mut self) -> String {
        let jitter = self
            .rng
            .random_range(-SECONDS_PER_RECORD..=SECONDS_PER_RECORD);
        let time = self.start + Duration::seconds(self.index * SECONDS_PER_RECORD + jitter);
        self.index += 1;
        time.format(DATE_FORMAT).to_string()
    }

    fn pick(&mut self, items: &[&'static str]) -> &'static str {
        items.choose(&mut self.rng).copied().unwrap_or_default()
    }

    /// Index `0..n`, rank r drawn with weight 1/(r+1): the first few dominate.
    fn skewed(&mut self, n: usize) -> usize {
        let total: f64 = (1..=n).map(|r| 1.0 / r as f64).sum();
        let mut roll = self.rng.random::<f64>() * total;
        for rank in 0..n {
            roll -= 1.0 / (rank + 1) as f64;
            if roll <= 0.0 {
                return rank;
            }
        }
        n - 1
    }
}

/// An infinite, deterministic stream of tweets: a mix of positive, negative and neutral
/// sentences (so sentiment has something to say), 0–3 skewed hashtags, a few chatty users.
pub struct TweetGenerator {
    clock: Clock,
}

impl TweetGenerator {
    pub fn new(seed: u64) -> Self {
        Self {
            clock: Clock::new(seed),
        }
    }
}

impl Iterator for TweetGenerator {
    type Item = Tweet;

    fn next(&mut self) -> Option<Tweet> {
        let c = &mut self.clock;
        let created_at = c.next_time();
        let mut text = c.pick(OPENERS).to_owned();
        let bank = match c.rng.random_range(0..10) {
            0..4 => POSITIVE,
            4..7 => NEGATIVE,
            _ => NEUTRAL,
        };
        text.push(' ');
        text.push_str(c.pick(bank));
        let mut hashtags: Vec<String> = Vec::new();
        for _ in 0..c.rng.random_range(0..=3) {
            let tag = HASHTAGS[c.skewed(HASHTAGS.len())];
            if !hashtags.iter().any(|t| t == tag) {
                hashtags.push(tag.to_owned());
            }
        }
        for tag in &hashtags {
            text.push(' ');
            text.push_str(tag);
        }
        let user = format!("user{:03}", c.skewed(USERS));
        let tweet_id = format!(
            "{}",
            1_740_000_000_000_000_000u64 + c.rng.random::<u32>() as u64
        );
        Some(Tweet {
            tweet_id,
            user,
            text,
            hashtags,
            created_at,
        })
    }
}

/// An infinite, deterministic stream of companies, skewed towards the first countries and
/// industries (so a window has a leader).
pub struct CompanyGenerator {
    clock: Clock,
}

impl CompanyGenerator {
    pub fn new(seed: u64) -> Self {
        Self {
            clock: Clock::new(seed),
        }
    }
}

impl Iterator for CompanyGenerator {
    type Item = Company;

    fn next(&mut self) -> Option<Company> {
        let c = &mut self.clock;
        let created_at = c.next_time();
        let company_id = format!("c-{:08x}", c.rng.random::<u32>());
        let name = format!("{} {} {}", c.pick(FIRST), c.pick(SECOND), c.pick(SUFFIX));
        let country = COUNTRIES[c.skewed(COUNTRIES.len())].to_owned();
        let industry = INDUSTRIES[c.skewed(INDUSTRIES.len())].to_owned();
        // Mostly small firms, a few large ones: 10^(1..4.5).
        let employees = 10f64.powf(c.rng.random_range(1.0..4.5)).round() as u32;
        let founded = c.rng.random_range(1950..=2023);
        Some(Company {
            company_id,
            name,
            country,
            industry,
            employees,
            founded,
            created_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use app::api::DatasetKind;

    use super::*;
    use crate::records::check_record;

    fn validated<T: Serialize>(kind: DatasetKind, records: &[T]) {
        let description = kind.description();
        for record in records {
            let raw = serde_json::to_vec(record).expect("json");
            check_record(&description, &raw).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        }
    }

    #[test]
    fn same_seed_same_tweets_and_every_tweet_validates() {
        let a: Vec<Tweet> = TweetGenerator::new(7).take(1_000).collect();
        let b: Vec<Tweet> = TweetGenerator::new(7).take(1_000).collect();
        assert_eq!(a, b);
        let c: Vec<Tweet> = TweetGenerator::new(8).take(5).collect();
        assert_ne!(a[..5], c[..]);
        validated(DatasetKind::Tweets, &a);
    }

    #[test]
    fn same_seed_same_companies_and_every_company_validates() {
        let a: Vec<Company> = CompanyGenerator::new(7).take(1_000).collect();
        let b: Vec<Company> = CompanyGenerator::new(7).take(1_000).collect();
        assert_eq!(a, b);
        let c: Vec<Company> = CompanyGenerator::new(8).take(5).collect();
        assert_ne!(a[..5], c[..]);
        validated(DatasetKind::Companies, &a);
    }

    #[test]
    fn tweets_mix_sentiments_and_hashtags_are_skewed() {
        let tweets: Vec<Tweet> = TweetGenerator::new(1).take(3_000).collect();
        let with = |bank: &[&str]| {
            tweets
                .iter()
                .filter(|t| bank.iter().any(|s| t.text.contains(s)))
                .count()
        };
        for (name, bank) in [
            ("positive", POSITIVE),
            ("negative", NEGATIVE),
            ("neutral", NEUTRAL),
        ] {
            assert!(with(bank) > 300, "{name}: {}", with(bank));
        }
        let count = |tag: &str| {
            tweets
                .iter()
                .filter(|t| t.hashtags.iter().any(|h| h == tag))
                .count()
        };
        assert!(
            count(HASHTAGS[0]) > 2 * count(HASHTAGS[7]),
            "the first tag leads"
        );
        assert!(tweets.iter().all(|t| t.hashtags.len() <= 3));
    }

    #[test]
    fn companies_skew_by_country_and_times_move_forward() {
        let companies: Vec<Company> = CompanyGenerator::new(2).take(2_000).collect();
        let count = |country: &str| companies.iter().filter(|c| c.country == country).count();
        assert!(count("France") > count("Luxembourg"));
        assert!(companies.last().map(|c| &c.created_at) > companies.first().map(|c| &c.created_at));
        assert!(
            companies
                .iter()
                .all(|c| (10..=31_623).contains(&c.employees))
        );
    }
}
