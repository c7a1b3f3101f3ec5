//! A seeded generator of realistic Yelp-style reviews: the same seed always yields the same
//! reviews, stars are correlated with what the text says, and event times move forward with a
//! little jitter (so a few arrive out of order, as real events do).

use app::api::Review;
use chrono::{Duration, NaiveDate, NaiveDateTime};
use rand::{Rng, SeedableRng, seq::IndexedRandom};
use rand_chacha::ChaCha8Rng;

const BUSINESSES: usize = 250;
const USERS: usize = 5_000;
/// Event time advances this many seconds per review on average.
const SECONDS_PER_REVIEW: i64 = 10;
const ID_ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";

const OPENERS: &[&str] = &[
    "Came here on a Friday night with a group of friends.",
    "Stopped by for a quick lunch during the work week.",
    "We booked a table for my parents' anniversary dinner.",
    "I've been coming to this place for a couple of years now.",
    "First visit after a friend recommended it.",
    "Ordered takeout on a rainy Sunday evening.",
    "Walked in without a reservation around 7pm.",
    "Tried this spot for brunch with my sister.",
];

const POSITIVE: &[&str] = &[
    "The food was absolutely delicious and came out hot.",
    "Our server was friendly, attentive and knew the menu well.",
    "The pasta was perfectly cooked and the sauce was amazing.",
    "Great atmosphere, cozy lighting and the music was just right.",
    "Prices are very reasonable for the portion sizes.",
    "The staff went out of their way to make us feel welcome.",
    "Best tacos I have had in this city, hands down.",
    "Desserts were fantastic, especially the chocolate cake.",
    "Everything was fresh and beautifully presented.",
    "The coffee was excellent and the pastries were lovely.",
    "Service was fast even though the place was packed.",
    "I love how clean and bright the dining room is.",
];

const NEGATIVE: &[&str] = &[
    "The food was cold and bland by the time it arrived.",
    "We waited over forty minutes and nobody checked on us.",
    "Our server was rude and seemed annoyed by every question.",
    "The burger was overcooked and the fries were soggy.",
    "Way too expensive for what you actually get.",
    "The place was dirty and the tables were sticky.",
    "They got our order wrong twice and never apologized.",
    "The music was so loud we could not hear each other.",
    "Honestly the worst customer service I have experienced in years.",
    "The chicken tasted old and the salad was wilted.",
    "Management did not care at all when we complained.",
    "I was disappointed, it was nothing like the photos.",
];

const NEUTRAL: &[&str] = &[
    "The menu has the usual options plus a few specials.",
    "Parking is available behind the building.",
    "They take reservations online and by phone.",
    "The portions were average for this part of town.",
    "It was fairly busy for a weekday.",
    "The decor is simple with a few plants and wooden tables.",
    "We ordered two mains and a side to share.",
    "They close at ten on weeknights.",
];

const CLOSERS_GOOD: &[&str] = &[
    "Will definitely be back soon!",
    "Highly recommend this place.",
    "Five stars, can't wait to return.",
    "A new favorite for sure.",
];
const CLOSERS_BAD: &[&str] = &[
    "Will not be coming back.",
    "Save your money and go somewhere else.",
    "Very disappointing experience overall.",
    "Not worth it.",
];
const CLOSERS_MIXED: &[&str] = &[
    "It was okay, maybe I'll try it again sometime.",
    "Decent, but nothing special.",
    "Some hits and some misses.",
];

/// Generates reviews for the socket streamer; an infinite, deterministic iterator.
pub struct ReviewGenerator {
    rng: ChaCha8Rng,
    businesses: Vec<String>,
    users: Vec<String>,
    start: NaiveDateTime,
    index: i64,
}

impl ReviewGenerator {
    pub fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let businesses = (0..BUSINESSES).map(|_| random_id(&mut rng)).collect();
        let users = (0..USERS).map(|_| random_id(&mut rng)).collect();
        let start = NaiveDate::from_ymd_opt(2024, 1, 1)
            .and_then(|d| d.and_hms_opt(9, 0, 0))
            .unwrap_or_default();
        Self {
            rng,
            businesses,
            users,
            start,
            index: 0,
        }
    }

    /// Draws stars with roughly Yelp's skew towards 5 and 1.
    fn stars(&mut self) -> u8 {
        match self.rng.random_range(0..100) {
            0..14 => 1,
            14..22 => 2,
            22..33 => 3,
            33..55 => 4,
            _ => 5,
        }
    }

    fn text(&mut self, stars: u8) -> String {
        // Share of positive sentences, by stars: a 3-star review is genuinely mixed.
        let positive_share = [0.0, 0.05, 0.25, 0.5, 0.8, 0.95][usize::from(stars)];
        let sentences = self.rng.random_range(6..=13);
        let mut text = String::with_capacity(640);
        text.push_str(pick(&mut self.rng, OPENERS));
        for _ in 0..sentences {
            text.push(' ');
            let roll: f64 = self.rng.random();
            let bank = if self.rng.random_bool(0.2) {
                NEUTRAL
            } else if roll < positive_share {
                POSITIVE
            } else {
                NEGATIVE
            };
            text.push_str(pick(&mut self.rng, bank));
        }
        text.push(' ');
        let closers = match stars {
            4..=5 => CLOSERS_GOOD,
            1..=2 => CLOSERS_BAD,
            _ => CLOSERS_MIXED,
        };
        text.push_str(pick(&mut self.rng, closers));
        text
    }

    fn event_time(&mut self) -> NaiveDateTime {
        let jitter = self
            .rng
            .random_range(-SECONDS_PER_REVIEW..=SECONDS_PER_REVIEW);
        self.start + Duration::seconds(self.index * SECONDS_PER_REVIEW + jitter)
    }
}

impl Iterator for ReviewGenerator {
    type Item = Review;

    fn next(&mut self) -> Option<Review> {
        let stars = self.stars();
        let text = self.text(stars);
        let date = self.event_time().format("%Y-%m-%d %H:%M:%S").to_string();
        let review = Review {
            review_id: random_id(&mut self.rng),
            user_id: self.users[self.rng.random_range(0..self.users.len())].clone(),
            business_id: self.businesses[self.rng.random_range(0..self.businesses.len())].clone(),
            stars,
            useful: self.rng.random_range(0..6),
            funny: self.rng.random_range(0..3),
            cool: self.rng.random_range(0..4),
            text,
            date,
        };
        self.index += 1;
        Some(review)
    }
}

fn pick<'a, T: ?Sized>(rng: &mut ChaCha8Rng, items: &'a [&'a T]) -> &'a T {
    items
        .choose(rng)
        .copied()
        .expect("phrase banks are not empty")
}

/// A 22-character id in the alphabet of Yelp's ids.
fn random_id(rng: &mut ChaCha8Rng) -> String {
    (0..22)
        .map(|_| char::from(ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_reviews_and_ids_are_unique() {
        let a: Vec<Review> = ReviewGenerator::new(7).take(500).collect();
        let b: Vec<Review> = ReviewGenerator::new(7).take(500).collect();
        assert_eq!(a, b);
        let ids: std::collections::HashSet<_> = a.iter().map(|r| &r.review_id).collect();
        assert_eq!(ids.len(), 500);
        let c: Vec<Review> = ReviewGenerator::new(8).take(5).collect();
        assert_ne!(a[..5], c[..]);
    }

    #[test]
    fn every_review_validates_against_the_yelp_description() {
        let description = app::api::DatasetKind::Yelp.description();
        for review in ReviewGenerator::new(7).take(1_000) {
            let raw = serde_json::to_vec(&review).expect("json");
            let checked = crate::records::check_record(&description, &raw)
                .unwrap_or_else(|e| panic!("{e}: {review:?}"));
            assert_eq!(checked.key, review.business_id, "keyed by business_id");
        }
    }

    #[test]
    fn reviews_look_like_yelp_reviews() {
        let reviews: Vec<Review> = ReviewGenerator::new(1).take(2_000).collect();
        let mean_len = reviews.iter().map(|r| r.text.len()).sum::<usize>() / reviews.len();
        assert!((450..=700).contains(&mean_len), "mean length {mean_len}");
        for star in 1..=5 {
            assert!(
                reviews.iter().any(|r| r.stars == star),
                "no {star}-star review"
            );
        }
        assert!(reviews.iter().all(|r| r.review_id.len() == 22));
        assert!(
            reviews
                .iter()
                .all(|r| NaiveDateTime::parse_from_str(&r.date, "%Y-%m-%d %H:%M:%S").is_ok())
        );
    }

    #[test]
    fn event_time_moves_forward_with_some_disorder() {
        let dates: Vec<String> = ReviewGenerator::new(3)
            .take(1_000)
            .map(|r| r.date)
            .collect();
        assert!(dates.last() > dates.first());
        let out_of_order = dates.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(out_of_order > 0 && out_of_order < 500, "{out_of_order}");
    }

    #[test]
    fn stars_follow_the_text() {
        let reviews: Vec<Review> = ReviewGenerator::new(5).take(3_000).collect();
        let positive_hits = |r: &Review| POSITIVE.iter().filter(|p| r.text.contains(*p)).count();
        let avg = |star: u8| {
            let chosen: Vec<_> = reviews.iter().filter(|r| r.stars == star).collect();
            chosen.iter().map(|r| positive_hits(r)).sum::<usize>() as f64 / chosen.len() as f64
        };
        assert!(avg(5) > avg(3) && avg(3) > avg(1));
    }
}
