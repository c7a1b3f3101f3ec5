//! VADER (Valence Aware Dictionary and sEntiment Reasoner) sentiment scoring.
//!
//! A faithful Rust port of the reference Python implementation, the PyPI
//! package `vaderSentiment` 3.3.2 (`vaderSentiment/vaderSentiment.py`,
//! C.J. Hutto, MIT licence; see `VADER_LICENSE.txt` next to this file), which
//! implements Hutto, C.J. & Gilbert, E.E. (2014), "VADER: A Parsimonious
//! Rule-based Model for Sentiment Analysis of Social Media Text", ICWSM-14.
//!
//! The Python source is the specification, including its quirks. In
//! particular this port reproduces:
//!
//! * emoji replacement by the textual description from
//!   `emoji_utf8_lexicon.txt` (only single-code-point keys can ever match,
//!   because the reference looks up one character at a time);
//! * tokenisation by Python `str.split()` whitespace, then stripping of
//!   leading/trailing ASCII punctuation (`string.punctuation`), keeping the
//!   *unstripped* token when the stripped one has 2 or fewer characters
//!   (so emoticons such as `:)` survive; no token is ever dropped);
//! * ALL-CAPS emphasis only when the text mixes case (`isupper()` semantics);
//! * boosters/dampeners, negations, "never so/this", "without doubt",
//!   "least", "no", "kind of", the special-case idioms and the multi-word
//!   booster n-grams exactly where the reference checks them (the idiom
//!   check only runs for a lexicon word at index >= 3 whose third
//!   preceding word is not itself in the lexicon);
//! * the contrastive "but" rule *including* the reference's
//!   list-mutation-while-iterating behaviour (`sentiments.index(...)` finds
//!   the first equal value, so repeated valences are re-weighted at the first
//!   occurrence);
//! * `!` (up to 4 × 0.292) and `?` (2–3 × 0.18, more = 0.96) emphasis;
//! * compound normalisation `x / sqrt(x² + 15)` and the pos/neg/neu sifting;
//! * Python's `round()` (correctly rounded, ties to even) of the returned
//!   scores: `neg`, `neu`, `pos` to 3 decimals and `compound` to 4, as the
//!   reference's dictionary holds them.
//!
//! The reference also defines `SENTIMENT_LADEN_IDIOMS` ("cut the mustard",
//! "in the red", ...) but never calls its `_sentiment_laden_idioms_check`
//! ("future work"), so those idioms get no special treatment here either.
//!
//! Performance: lexicon and emoji tables are parsed once in
//! [`SentimentIntensityAnalyzer::new`] (about 1-5 ms). Scoring uses no regex:
//! one byte-level pass splits the text, one hash lookup per token (a small
//! in-module hasher, no extra crate) yields its valence, booster/negation
//! membership and, for the few words the rules test by spelling, a word id,
//! so the rules compare integers rather than strings. A call allocates a few
//! buffers (lower-cased text, tokens, valences); the emoji pass allocates
//! only when the text actually contains an emoji. Pure-ASCII texts take a
//! fast path; other texts are handled with full Unicode semantics.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

/// `vader_lexicon.txt` from vaderSentiment 3.3.2 (token TAB mean TAB sd TAB ratings).
const LEXICON_DATA: &str = include_str!("vader_lexicon.txt");
/// `emoji_utf8_lexicon.txt` from vaderSentiment 3.3.2 (emoji TAB description).
const EMOJI_DATA: &str = include_str!("emoji_utf8_lexicon.txt");

// Empirically derived mean sentiment intensity rating increase for booster words.
const B_INCR: f64 = 0.293;
const B_DECR: f64 = -0.293;
// Empirically derived mean sentiment intensity rating increase for ALL-CAPS emphasis.
const C_INCR: f64 = 0.733;
const N_SCALAR: f64 = -0.74;
/// Normalisation constant for the compound score.
const ALPHA: f64 = 15.0;

const NEGATE: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

/// Single-token entries of the reference `BOOSTER_DICT`. Its multi-word
/// entries ("just enough", "kind of", "sort of") can never equal a
/// whitespace-free token; they only matter for the bigram check in
/// [`booster_bigram`].
const BOOSTERS: &[(&str, f64)] = &[
    ("absolutely", B_INCR),
    ("amazingly", B_INCR),
    ("awfully", B_INCR),
    ("completely", B_INCR),
    ("considerable", B_INCR),
    ("considerably", B_INCR),
    ("decidedly", B_INCR),
    ("deeply", B_INCR),
    ("effing", B_INCR),
    ("enormous", B_INCR),
    ("enormously", B_INCR),
    ("entirely", B_INCR),
    ("especially", B_INCR),
    ("exceptional", B_INCR),
    ("exceptionally", B_INCR),
    ("extreme", B_INCR),
    ("extremely", B_INCR),
    ("fabulously", B_INCR),
    ("flipping", B_INCR),
    ("flippin", B_INCR),
    ("frackin", B_INCR),
    ("fracking", B_INCR),
    ("fricking", B_INCR),
    ("frickin", B_INCR),
    ("frigging", B_INCR),
    ("friggin", B_INCR),
    ("fully", B_INCR),
    ("fuckin", B_INCR),
    ("fucking", B_INCR),
    ("fuggin", B_INCR),
    ("fugging", B_INCR),
    ("greatly", B_INCR),
    ("hella", B_INCR),
    ("highly", B_INCR),
    ("hugely", B_INCR),
    ("incredible", B_INCR),
    ("incredibly", B_INCR),
    ("intensely", B_INCR),
    ("major", B_INCR),
    ("majorly", B_INCR),
    ("more", B_INCR),
    ("most", B_INCR),
    ("particularly", B_INCR),
    ("purely", B_INCR),
    ("quite", B_INCR),
    ("really", B_INCR),
    ("remarkably", B_INCR),
    ("so", B_INCR),
    ("substantially", B_INCR),
    ("thoroughly", B_INCR),
    ("total", B_INCR),
    ("totally", B_INCR),
    ("tremendous", B_INCR),
    ("tremendously", B_INCR),
    ("uber", B_INCR),
    ("unbelievably", B_INCR),
    ("unusually", B_INCR),
    ("utter", B_INCR),
    ("utterly", B_INCR),
    ("very", B_INCR),
    ("almost", B_DECR),
    ("barely", B_DECR),
    ("hardly", B_DECR),
    ("kinda", B_DECR),
    ("kindof", B_DECR),
    ("kind-of", B_DECR),
    ("less", B_DECR),
    ("little", B_DECR),
    ("marginal", B_DECR),
    ("marginally", B_DECR),
    ("occasional", B_DECR),
    ("occasionally", B_DECR),
    ("partly", B_DECR),
    ("scarce", B_DECR),
    ("scarcely", B_DECR),
    ("slight", B_DECR),
    ("slightly", B_DECR),
    ("somewhat", B_DECR),
    ("sorta", B_DECR),
    ("sortof", B_DECR),
    ("sort-of", B_DECR),
];

/// Words the rules test by spelling. Each token gets its id from the same
/// hash lookup that finds its valence, so the rules compare small integers
/// instead of strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Word {
    Other,
    No,
    Or,
    Nor,
    Kind,
    Of,
    But,
    Least,
    At,
    Very,
    Never,
    So,
    This,
    Without,
    Doubt,
    The,
    Shit,
    Bomb,
    Bad,
    Ass,
    Bus,
    Stop,
    Yeah,
    Right,
    Beating,
    Heart,
    Kiss,
    Death,
    To,
    Die,
    For,
    Just,
    Enough,
    Sort,
}

/// Spellings (lower-case) of the [`Word`]s.
const SPECIAL_WORDS: &[(&str, Word)] = &[
    ("no", Word::No),
    ("or", Word::Or),
    ("nor", Word::Nor),
    ("kind", Word::Kind),
    ("of", Word::Of),
    ("but", Word::But),
    ("least", Word::Least),
    ("at", Word::At),
    ("very", Word::Very),
    ("never", Word::Never),
    ("so", Word::So),
    ("this", Word::This),
    ("without", Word::Without),
    ("doubt", Word::Doubt),
    ("the", Word::The),
    ("shit", Word::Shit),
    ("bomb", Word::Bomb),
    ("bad", Word::Bad),
    ("ass", Word::Ass),
    ("bus", Word::Bus),
    ("stop", Word::Stop),
    ("yeah", Word::Yeah),
    ("right", Word::Right),
    ("beating", Word::Beating),
    ("heart", Word::Heart),
    ("kiss", Word::Kiss),
    ("death", Word::Death),
    ("to", Word::To),
    ("die", Word::Die),
    ("for", Word::For),
    ("just", Word::Just),
    ("enough", Word::Enough),
    ("sort", Word::Sort),
];

/// Multi-word entries of the reference `BOOSTER_DICT` ("just enough",
/// "kind of", "sort of"), checked as bigrams.
fn booster_bigram(a: Word, b: Word) -> Option<f64> {
    match (a, b) {
        (Word::Just, Word::Enough) | (Word::Kind, Word::Of) | (Word::Sort, Word::Of) => {
            Some(B_DECR)
        }
        _ => None,
    }
}

/// Two-word entries of the reference `SPECIAL_CASES`.
fn special_case2(a: Word, b: Word) -> Option<f64> {
    match (a, b) {
        (Word::The, Word::Shit) | (Word::The, Word::Bomb) => Some(3.0),
        (Word::Bad, Word::Ass) => Some(1.5),
        (Word::Bus, Word::Stop) => Some(0.0),
        (Word::Yeah, Word::Right) => Some(-2.0),
        (Word::Beating, Word::Heart) => Some(3.5),
        _ => None,
    }
}

/// Three-word entries of the reference `SPECIAL_CASES` (its one-word entry
/// "badass" can never equal a space-joined n-gram, so it never fires).
fn special_case3(a: Word, b: Word, c: Word) -> Option<f64> {
    match (a, b, c) {
        (Word::Kiss, Word::Of, Word::Death) => Some(-1.5),
        (Word::To, Word::Die, Word::For) => Some(3.0),
        _ => None,
    }
}

/// Small, fast, non-cryptographic hasher for the lexicon tables (the keys
/// are fixed, embedded data, so HashDoS resistance is not needed). Short
/// words -- the common case -- cost one multiply plus the final avalanche.
#[derive(Default, Clone, Copy)]
struct WordHasher(u64);

const HASH_MUL: u64 = 0x9E37_79B9_7F4A_7C15;

#[inline]
fn read_u32(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u64::from(u32::from_le_bytes(w))
}

#[inline]
fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl WordHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(23) ^ word).wrapping_mul(HASH_MUL);
    }
}

impl Hasher for WordHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let len = bytes.len();
        // Every byte is read at least once (reads may overlap), and the
        // length is mixed in, so distinct strings give distinct inputs.
        let tail = if len >= 8 {
            let mut at = 0;
            while at + 8 < len {
                self.mix(read_u64(bytes, at));
                at += 8;
            }
            read_u64(bytes, len - 8)
        } else if len >= 4 {
            read_u32(bytes, 0) | (read_u32(bytes, len - 4) << 32)
        } else if len > 0 {
            u64::from(bytes[0])
                | (u64::from(bytes[len / 2]) << 8)
                | (u64::from(bytes[len - 1]) << 16)
        } else {
            0
        };
        self.mix(tail ^ ((len as u64) << 56));
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        // `str` hashing appends a 0xff marker: fold it in without a multiply.
        self.0 = self.0.wrapping_add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // Final avalanche so both the low (bucket) and high (tag) bits are good.
        let h = self.0;
        let h = (h ^ (h >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^ (h >> 29)
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// What the analyzer knows about one lower-cased token (16 bytes, so the
/// lexicon table stays compact).
#[derive(Debug, Clone, Copy)]
struct WordInfo {
    /// Valence from `vader_lexicon.txt` ("in self.lexicon"); NaN if absent.
    valence: f64,
    /// Booster/dampener ("in BOOSTER_DICT"): +1 for B_INCR, -1 for B_DECR, 0 if absent.
    booster: i8,
    /// Member of the `NEGATE` list.
    negate: bool,
    /// Which spelling-tested word this is, if any.
    word: Word,
}

impl WordInfo {
    const NONE: WordInfo = WordInfo {
        valence: f64::NAN,
        booster: 0,
        negate: false,
        word: Word::Other,
    };

    #[inline]
    fn valence(&self) -> Option<f64> {
        if self.valence.is_nan() {
            None
        } else {
            Some(self.valence)
        }
    }

    #[inline]
    fn in_lexicon(&self) -> bool {
        !self.valence.is_nan()
    }

    #[inline]
    fn booster(&self) -> Option<f64> {
        match self.booster {
            0 => None,
            b if b > 0 => Some(B_INCR),
            _ => Some(B_DECR),
        }
    }
}

/// VADER scores of one text, as returned by the reference
/// (`neg`/`neu`/`pos` rounded to 3 decimals, `compound` to 4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolarityScores {
    pub neg: f64,
    pub neu: f64,
    pub pos: f64,
    pub compound: f64,
}

/// The VADER analyzer. Construct once (parsing the embedded lexicons takes a
/// few milliseconds) and share it: scoring only needs `&self`, and the type
/// is `Send + Sync`.
pub struct SentimentIntensityAnalyzer {
    words: FastMap<&'static str, WordInfo>,
    emojis: FastMap<char, &'static str>,
    lexicon_len: usize,
}

impl fmt::Debug for SentimentIntensityAnalyzer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentimentIntensityAnalyzer")
            .field("lexicon_entries", &self.lexicon_len)
            .field("emoji_entries", &self.emojis.len())
            .finish_non_exhaustive()
    }
}

impl Default for SentimentIntensityAnalyzer {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-token facts used by the rules (everything the reference derives
/// from a token's spelling is resolved once, at tokenisation).
#[derive(Clone, Copy)]
struct Token {
    /// Python `str.isupper()` of the (stripped) token.
    upper: bool,
    /// Reference `negated([word])`: in `NEGATE` or containing "n't".
    negated: bool,
    info: WordInfo,
}

/// The tokens of one text.
struct Tokens {
    toks: Vec<Token>,
}

impl Tokens {
    #[inline]
    fn len(&self) -> usize {
        self.toks.len()
    }

    /// The spelling-tested word id of token `i`.
    #[inline]
    fn word(&self, i: usize) -> Word {
        self.toks[i].info.word
    }

    /// Reference `negated([word])` for the word at `i` (already lower-case).
    #[inline]
    fn negated(&self, i: usize) -> bool {
        self.toks[i].negated
    }
}

impl SentimentIntensityAnalyzer {
    /// Builds the analyzer from the embedded lexicons.
    ///
    /// # Panics
    /// Only if the embedded (compile-time constant) `vader_lexicon.txt` has a
    /// malformed valence, which would be a build defect, not an input error.
    pub fn new() -> Self {
        let mut words: FastMap<&'static str, WordInfo> =
            FastMap::with_capacity_and_hasher(8192, BuildHasherDefault::default());
        let mut lexicon_len = 0;
        // Reference `make_lex_dict`: line.strip().split('\t')[0:2], later
        // duplicates override earlier ones.
        for line in LEXICON_DATA.split('\n') {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let mut fields = line.split('\t');
            let word = fields.next().unwrap_or_default();
            let measure: f64 = fields
                .next()
                .unwrap_or_default()
                .trim()
                .parse()
                .expect("embedded vader_lexicon.txt: every line has a numeric valence");
            let entry = words.entry(word).or_insert(WordInfo::NONE);
            if !entry.in_lexicon() {
                lexicon_len += 1;
            }
            entry.valence = measure;
        }
        for &(word, scalar) in BOOSTERS {
            words.entry(word).or_insert(WordInfo::NONE).booster = if scalar > 0.0 { 1 } else { -1 };
        }
        for &word in NEGATE {
            words.entry(word).or_insert(WordInfo::NONE).negate = true;
        }
        for &(spelling, word) in SPECIAL_WORDS {
            words.entry(spelling).or_insert(WordInfo::NONE).word = word;
        }

        // Reference `make_emoji_dict`. It looks emojis up one character at a
        // time, so keys longer than one code point can never match: skip them.
        let mut emojis: FastMap<char, &'static str> =
            FastMap::with_capacity_and_hasher(2048, BuildHasherDefault::default());
        for line in EMOJI_DATA.split('\n') {
            let line = line.trim();
            let mut fields = line.split('\t');
            let (Some(key), Some(description)) = (fields.next(), fields.next()) else {
                continue;
            };
            let mut chars = key.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                emojis.insert(c, description);
            }
        }

        Self {
            words,
            emojis,
            lexicon_len,
        }
    }

    /// Scores `text` like the reference `polarity_scores`.
    pub fn polarity_scores(&self, text: &str) -> PolarityScores {
        let replaced;
        let text = match self.replace_emojis(text) {
            Some(t) => {
                replaced = t;
                replaced.as_str()
            }
            None => text,
        };

        let tokens = self.tokenize(text);
        let n = tokens.len();
        if n == 0 {
            return PolarityScores {
                neg: 0.0,
                neu: 0.0,
                pos: 0.0,
                compound: 0.0,
            };
        }

        // allcap_differential: some but not all tokens are ALL CAPS.
        let allcap = tokens.toks.iter().filter(|t| t.upper).count();
        let is_cap_diff = allcap > 0 && allcap < n;

        let mut sentiments = Vec::with_capacity(n);
        for i in 0..n {
            let t = &tokens.toks[i];
            if t.info.booster != 0
                || (i + 1 < n && t.info.word == Word::Kind && tokens.word(i + 1) == Word::Of)
            {
                sentiments.push(0.0);
                continue;
            }
            sentiments.push(sentiment_valence(&tokens, i, is_cap_diff));
        }

        but_check(&tokens, &mut sentiments);
        score_valence(&sentiments, text)
    }

    /// Reference emoji-to-description pass. Returns `None` when the text has
    /// nothing to replace (always the case for ASCII text).
    fn replace_emojis(&self, text: &str) -> Option<String> {
        if text.is_ascii() {
            return None;
        }
        let (pos, _) = text
            .char_indices()
            .find(|&(_, c)| !c.is_ascii() && self.emojis.contains_key(&c))?;
        let mut out = String::with_capacity(text.len() + 64);
        out.push_str(&text[..pos]);
        let mut prev_space = pos == 0 || text[..pos].ends_with(' ');
        for c in text[pos..].chars() {
            let description = if c.is_ascii() {
                None
            } else {
                self.emojis.get(&c)
            };
            if let Some(description) = description {
                if !prev_space {
                    out.push(' ');
                }
                out.push_str(description);
                prev_space = false;
            } else {
                out.push(c);
                prev_space = c == ' ';
            }
        }
        // The reference then calls `.strip()`; leading/trailing whitespace is
        // irrelevant to `split()` and to the `!`/`?` counts, so it is skipped.
        Some(out)
    }

    /// Reference `SentiText._words_and_emoticons` plus the per-token facts
    /// (lexicon/booster/negation membership, word id, isupper).
    fn tokenize(&self, text: &str) -> Tokens {
        let mut toks = Vec::with_capacity(text.len() / 5 + 4);
        split_tokens(text, |key, upper| {
            let info = self.words.get(key).copied().unwrap_or(WordInfo::NONE);
            let negated = info.negate || (key.len() >= 3 && contains_nt(key.as_bytes()));
            toks.push(Token {
                upper,
                negated,
                info,
            });
        });
        Tokens { toks }
    }
}

/// Reference `SentiText._words_and_emoticons`: calls `f(lower, isupper)`
/// for each token, in order, with Python's `token.lower()` and
/// `token.isupper()`.
///
/// Works on bytes: whitespace is Python `str.split()` whitespace (only lead
/// bytes 0xC2/0xE1/0xE2/0xE3 can start a non-ASCII one), and only ASCII
/// punctuation is stripped, so all cuts fall on char boundaries.
fn split_tokens(text: &str, mut f: impl FnMut(&str, bool)) {
    let bytes = text.as_bytes();
    let n = bytes.len();
    // ASCII lower-casing preserves byte offsets, so an ASCII text is
    // lower-cased once and tokens are ranges into it. Otherwise each token
    // is lower-cased into a scratch buffer (full Unicode lower-casing may
    // change lengths).
    let ascii = text.is_ascii();
    let lower_text = if ascii {
        text.to_ascii_lowercase()
    } else {
        String::new()
    };
    let mut scratch = String::new();
    let mut i = 0;
    loop {
        while i < n {
            let w = py_space_len(text, i);
            if w == 0 {
                break;
            }
            i += w;
        }
        if i >= n {
            break;
        }
        let start = i;
        while i < n && py_space_len(text, i) == 0 {
            i += 1;
        }
        // _strip_punc_if_word: strip string.punctuation at both ends and
        // keep the original token if 2 or fewer characters remain.
        let (mut lo, mut hi) = (start, i);
        while lo < hi && bytes[lo].is_ascii_punctuation() {
            lo += 1;
        }
        while hi > lo && bytes[hi - 1].is_ascii_punctuation() {
            hi -= 1;
        }
        let at_most_two_chars =
            hi - lo <= 2 || (hi - lo <= 8 && !ascii && text[lo..hi].chars().nth(2).is_none());
        if at_most_two_chars {
            (lo, hi) = (start, i);
        }
        let (mut has_upper, mut has_lower, mut non_ascii) = (false, false, false);
        for &b in &bytes[lo..hi] {
            has_upper |= b.is_ascii_uppercase();
            has_lower |= b.is_ascii_lowercase();
            non_ascii |= !b.is_ascii();
        }
        if ascii {
            f(&lower_text[lo..hi], has_upper && !has_lower);
        } else {
            let word = &text[lo..hi];
            scratch.clear();
            if non_ascii {
                // Full Unicode lower-casing incl. final sigma, like Python.
                scratch.push_str(&word.to_lowercase());
                f(&scratch, py_is_upper(word));
            } else {
                scratch.extend(word.bytes().map(|b| char::from(b.to_ascii_lowercase())));
                f(&scratch, has_upper && !has_lower);
            }
        }
    }
}

/// Whether `word` contains "n't".
#[inline]
fn contains_nt(word: &[u8]) -> bool {
    word.windows(3).any(|w| w == b"n't")
}

/// Python `str.isspace()` for an ASCII byte.
#[inline]
fn is_ascii_py_space(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | 0x1c..=0x20)
}

/// Python `str.isspace()` for one character.
#[inline]
fn py_is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Byte length of the Python whitespace character starting at byte `i`, or
/// 0 if there is none (`i` may point inside a multi-byte character: UTF-8
/// continuation bytes never start whitespace).
#[inline]
fn py_space_len(text: &str, i: usize) -> usize {
    let b = text.as_bytes()[i];
    if b < 0x80 {
        usize::from(is_ascii_py_space(b))
    } else if matches!(b, 0xC2 | 0xE1..=0xE3) {
        // A lead byte, hence a char boundary.
        match text[i..].chars().next() {
            Some(c) if py_is_space(c) => c.len_utf8(),
            _ => 0,
        }
    } else {
        0
    }
}

/// Python `str.isupper()`: at least one uppercase character and no
/// lowercase or titlecase characters.
fn py_is_upper(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_lowercase() || is_titlecase(c) {
            return false;
        }
        cased |= c.is_uppercase();
    }
    cased
}

/// Unicode general category Lt (titlecase letters).
fn is_titlecase(c: char) -> bool {
    matches!(
        c,
        '\u{1c5}'
            | '\u{1c8}'
            | '\u{1cb}'
            | '\u{1f2}'
            | '\u{1f88}'..='\u{1f8f}'
            | '\u{1f98}'..='\u{1f9f}'
            | '\u{1fa8}'..='\u{1faf}'
            | '\u{1fbc}'
            | '\u{1fcc}'
            | '\u{1ffc}'
    )
}

/// Reference `scalar_inc_dec` for the word at `j` modifying a valence.
#[inline]
fn scalar_inc_dec(tokens: &Tokens, j: usize, valence: f64, is_cap_diff: bool) -> f64 {
    let t = &tokens.toks[j];
    let Some(b) = t.info.booster() else {
        return 0.0;
    };
    let mut scalar = b;
    if valence < 0.0 {
        scalar *= -1.0;
    }
    if t.upper && is_cap_diff {
        if valence > 0.0 {
            scalar += C_INCR;
        } else {
            scalar -= C_INCR;
        }
    }
    scalar
}

/// Reference `SentimentIntensityAnalyzer.sentiment_valence` for token `i`.
fn sentiment_valence(tokens: &Tokens, i: usize, is_cap_diff: bool) -> f64 {
    let n = tokens.len();
    let t = &tokens.toks[i];
    let Some(base) = t.info.valence() else {
        return 0.0;
    };
    let mut valence = base;

    // "no" as a negation of an adjacent lexicon item rather than its own item.
    if t.info.word == Word::No && i != n - 1 && tokens.toks[i + 1].info.in_lexicon() {
        valence = 0.0;
    }
    if (i > 0 && tokens.word(i - 1) == Word::No)
        || (i > 1 && tokens.word(i - 2) == Word::No)
        || (i > 2
            && tokens.word(i - 3) == Word::No
            && matches!(tokens.word(i - 1), Word::Or | Word::Nor))
    {
        valence = base * N_SCALAR;
    }

    // ALL-CAPS emphasis (only when the text mixes case).
    if t.upper && is_cap_diff {
        if valence > 0.0 {
            valence += C_INCR;
        } else {
            valence -= C_INCR;
        }
    }

    for start_i in 0..3 {
        if i > start_i && !tokens.toks[i - (start_i + 1)].info.in_lexicon() {
            let mut s = scalar_inc_dec(tokens, i - (start_i + 1), valence, is_cap_diff);
            if start_i == 1 && s != 0.0 {
                s *= 0.95;
            }
            if start_i == 2 && s != 0.0 {
                s *= 0.9;
            }
            valence += s;
            valence = negation_check(valence, tokens, start_i, i);
            if start_i == 2 {
                valence = special_idioms_check(valence, tokens, i);
            }
        }
    }

    least_check(valence, tokens, i)
}

/// Reference `_negation_check`.
fn negation_check(valence: f64, tokens: &Tokens, start_i: usize, i: usize) -> f64 {
    let w = |k: usize| tokens.word(k);
    match start_i {
        0 => {
            if tokens.negated(i - 1) {
                return valence * N_SCALAR;
            }
        }
        1 => {
            if w(i - 2) == Word::Never && matches!(w(i - 1), Word::So | Word::This) {
                return valence * 1.25;
            } else if w(i - 2) == Word::Without && w(i - 1) == Word::Doubt {
                return valence;
            } else if tokens.negated(i - 2) {
                return valence * N_SCALAR;
            }
        }
        _ => {
            if (w(i - 3) == Word::Never && matches!(w(i - 2), Word::So | Word::This))
                || matches!(w(i - 1), Word::So | Word::This)
            {
                return valence * 1.25;
            } else if w(i - 3) == Word::Without
                && (w(i - 2) == Word::Doubt || w(i - 1) == Word::Doubt)
            {
                return valence;
            } else if tokens.negated(i - 3) {
                return valence * N_SCALAR;
            }
        }
    }
    valence
}

/// Reference `_special_idioms_check` (only called with `i >= 3`).
fn special_idioms_check(mut valence: f64, tokens: &Tokens, i: usize) -> f64 {
    let n = tokens.len();
    let (w3, w2, w1, w0) = (
        tokens.word(i - 3),
        tokens.word(i - 2),
        tokens.word(i - 1),
        tokens.word(i),
    );
    // Sequences in reference order: onezero, twoonezero, twoone,
    // threetwoone, threetwo; the first match wins.
    let first = special_case2(w1, w0)
        .or_else(|| special_case3(w2, w1, w0))
        .or_else(|| special_case2(w2, w1))
        .or_else(|| special_case3(w3, w2, w1))
        .or_else(|| special_case2(w3, w2));
    if let Some(v) = first {
        valence = v;
    }
    if n - 1 > i
        && let Some(v) = special_case2(w0, tokens.word(i + 1))
    {
        valence = v;
    }
    if n - 1 > i + 1
        && let Some(v) = special_case3(w0, tokens.word(i + 1), tokens.word(i + 2))
    {
        valence = v;
    }
    // Booster/dampener n-grams (threetwoone can never match a two-word key).
    for (a, b) in [(w3, w2), (w2, w1)] {
        if let Some(s) = booster_bigram(a, b) {
            valence += s;
        }
    }
    valence
}

/// Reference `_least_check`. ("least" is not in the lexicon.)
fn least_check(valence: f64, tokens: &Tokens, i: usize) -> f64 {
    if i > 0 && !tokens.toks[i - 1].info.in_lexicon() && tokens.word(i - 1) == Word::Least {
        if i > 1 {
            if !matches!(tokens.word(i - 2), Word::At | Word::Very) {
                return valence * N_SCALAR;
            }
        } else {
            return valence * N_SCALAR;
        }
    }
    valence
}

/// Reference `_but_check`, reproducing its in-place list mutation: for each
/// position k (in order) the *current* value v = s[k] is re-weighted at the
/// first index holding a value equal to v (`list.index(v)`), by 0.5 if that
/// index is before the first "but", 1.5 if after. Zeros stay zero whatever
/// happens, so they are skipped.
fn but_check(tokens: &Tokens, sentiments: &mut [f64]) {
    let Some(bi) = tokens.toks.iter().position(|t| t.info.word == Word::But) else {
        return;
    };
    let nonzero = sentiments.iter().filter(|&&v| v != 0.0).count();
    if nonzero <= BUT_CHECK_SCAN_MAX {
        but_check_scan(bi, sentiments);
    } else {
        but_check_indexed(bi, sentiments);
    }
}

/// Up to this many non-zero valences `but_check` uses a plain scan
/// (quadratic, but fastest for sentence- and review-sized texts).
const BUT_CHECK_SCAN_MAX: usize = 64;

#[inline]
fn but_factor(si: usize, bi: usize) -> f64 {
    match si.cmp(&bi) {
        std::cmp::Ordering::Less => 0.5,
        std::cmp::Ordering::Greater => 1.5,
        std::cmp::Ordering::Equal => 1.0,
    }
}

fn but_check_scan(bi: usize, sentiments: &mut [f64]) {
    for k in 0..sentiments.len() {
        let v = sentiments[k];
        if v == 0.0 {
            continue;
        }
        // `list.index(v)`: always found, at or before k.
        let si = sentiments[..=k].iter().position(|&x| x == v).unwrap_or(k);
        if si != bi {
            sentiments[si] = v * but_factor(si, bi);
        }
    }
}

/// Same result as [`but_check_scan`] in O(n log n), for very long texts:
/// keeps, per non-zero value, the ordered set of indices holding it.
fn but_check_indexed(bi: usize, sentiments: &mut [f64]) {
    // Non-zero, non-NaN values compare equal exactly when their bits do.
    let mut at: FastMap<u64, BTreeSet<usize>> = FastMap::default();
    for (j, &v) in sentiments.iter().enumerate() {
        if v != 0.0 {
            at.entry(v.to_bits()).or_default().insert(j);
        }
    }
    for k in 0..sentiments.len() {
        let v = sentiments[k];
        if v == 0.0 {
            continue;
        }
        // `list.index(v)`: the smallest index holding v (k holds v).
        let si = at
            .get_mut(&v.to_bits())
            .and_then(BTreeSet::pop_first)
            .unwrap_or(k);
        if si == bi {
            // Unchanged; put the index back.
            at.entry(v.to_bits()).or_default().insert(si);
            continue;
        }
        let new = v * but_factor(si, bi);
        sentiments[si] = new;
        if new != 0.0 {
            at.entry(new.to_bits()).or_default().insert(si);
        }
    }
}

/// Reference `_punctuation_emphasis` (`_amplify_ep` + `_amplify_qm`).
fn punctuation_emphasis(text: &str) -> f64 {
    let (mut ep, mut qm) = (0usize, 0usize);
    for &b in text.as_bytes() {
        ep += usize::from(b == b'!');
        qm += usize::from(b == b'?');
    }
    let ep_amplifier = ep.min(4) as f64 * 0.292;
    let qm_amplifier = if qm > 1 {
        if qm <= 3 { qm as f64 * 0.18 } else { 0.96 }
    } else {
        0.0
    };
    ep_amplifier + qm_amplifier
}

/// Reference `normalize` (alpha = 15).
fn normalize(score: f64) -> f64 {
    let norm = score / (score * score + ALPHA).sqrt();
    norm.clamp(-1.0, 1.0)
}

/// Reference `score_valence` (called with at least one sentiment).
fn score_valence(sentiments: &[f64], text: &str) -> PolarityScores {
    let mut sum_s = 0.0;
    for &s in sentiments {
        sum_s += s;
    }
    let punct = punctuation_emphasis(text);
    if sum_s > 0.0 {
        sum_s += punct;
    } else if sum_s < 0.0 {
        sum_s -= punct;
    }
    let compound = normalize(sum_s);

    // _sift_sentiment_scores
    let mut pos_sum = 0.0;
    let mut neg_sum = 0.0;
    let mut neu_count = 0usize;
    for &s in sentiments {
        if s > 0.0 {
            pos_sum += s + 1.0;
        }
        if s < 0.0 {
            neg_sum += s - 1.0;
        }
        if s == 0.0 {
            neu_count += 1;
        }
    }
    let neu_count = neu_count as f64;
    if pos_sum > neg_sum.abs() {
        pos_sum += punct;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= punct;
    }
    let total = pos_sum + neg_sum.abs() + neu_count;
    PolarityScores {
        neg: py_round((neg_sum / total).abs(), 3),
        neu: py_round((neu_count / total).abs(), 3),
        pos: py_round((pos_sum / total).abs(), 3),
        compound: py_round(compound, 4),
    }
}

/// Python's `round(x, ndigits)` for small `ndigits` and |x| < 2^40: the
/// exact binary value of `x` is rounded to `ndigits` decimals with ties to
/// even, then converted back to the nearest double.
fn py_round(x: f64, ndigits: i32) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let m = 10f64.powi(ndigits); // exact for ndigits <= 22
    let ax = x.abs();
    let p = ax * m;
    let err = ax.mul_add(m, -p); // ax * m == p + err exactly
    let k = p.floor();
    let d = (p - k) - 0.5; // exact
    let up = if d > 0.0 {
        true
    } else if d < 0.0 {
        false
    } else if err != 0.0 {
        err > 0.0
    } else {
        k % 2.0 != 0.0 // exact tie: to even
    };
    let r = if up { k + 1.0 } else { k } / m;
    if x.is_sign_negative() { -r } else { r }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compound(a: &SentimentIntensityAnalyzer, text: &str) -> f64 {
        a.polarity_scores(text).compound
    }

    #[test]
    fn analyzer_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SentimentIntensityAnalyzer>();
    }

    #[test]
    fn lexicons_loaded() {
        let a = SentimentIntensityAnalyzer::new();
        // 7,520 lines, 14 duplicated tokens (the later value wins).
        assert_eq!(a.lexicon_len, 7506);
        assert_eq!(a.words.get("good").and_then(|w| w.valence()), Some(1.9));
        assert_eq!(a.words.get("lol").and_then(|w| w.valence()), Some(1.8));
        assert_eq!(a.words.get(":-p").and_then(|w| w.valence()), Some(1.5));
        assert_eq!(a.words.get("kinda").and_then(|w| w.booster()), Some(B_DECR));
        assert!(a.words.get("hasn't").is_some_and(|w| w.negate));
        // 1,212 single-code-point emoji keys.
        assert_eq!(a.emojis.len(), 1212);
        assert_eq!(a.emojis.get(&'😁'), Some(&"beaming face with smiling eyes"));
    }

    #[test]
    fn python_round_semantics() {
        assert_eq!(py_round(0.0625, 3), 0.062); // exact tie -> even
        assert_eq!(py_round(0.1875, 3), 0.188);
        assert_eq!(py_round(0.5, 0), 0.0);
        assert_eq!(py_round(1.5, 0), 2.0);
        assert_eq!(py_round(0.00005, 4), 0.0001); // 0.00005 is slightly above the tie
        assert_eq!(py_round(-0.44045, 4), -0.4405); // binary value is above the tie
        assert_eq!(py_round(0.00015, 4), 0.0001); // binary value is below the tie
        assert_eq!(py_round(2.675, 2), 2.67);
        assert_eq!(py_round(-0.7003, 4), -0.7003);
    }

    #[test]
    fn full_scores_match_reference() {
        let a = SentimentIntensityAnalyzer::new();
        assert_eq!(
            a.polarity_scores("VADER is smart, handsome, and funny."),
            PolarityScores {
                neg: 0.0,
                neu: 0.254,
                pos: 0.746,
                compound: 0.8316
            }
        );
        assert_eq!(
            a.polarity_scores("The plot was good, but the characters are uncompelling and the dialog is not great."),
            PolarityScores {
                neg: 0.327,
                neu: 0.579,
                pos: 0.094,
                compound: -0.7042
            }
        );
        let empty = PolarityScores {
            neg: 0.0,
            neu: 0.0,
            pos: 0.0,
            compound: 0.0,
        };
        assert_eq!(a.polarity_scores(""), empty);
        assert_eq!(a.polarity_scores(" \t\n "), empty);
        assert_eq!(
            a.polarity_scores("The table is wooden."),
            PolarityScores {
                neg: 0.0,
                neu: 1.0,
                pos: 0.0,
                compound: 0.0
            }
        );
    }

    /// Compound scores produced by vaderSentiment 3.3.2 (Python 3.11).
    #[test]
    fn compound_matches_reference() {
        let a = SentimentIntensityAnalyzer::new();
        let cases: &[(&str, f64)] = &[
            // punctuation emphasis
            ("VADER is smart, handsome, and funny!", 0.8439),
            ("Great food!!!!!!", 0.7405),
            ("Is it good??", 0.504),
            ("Is it good????", 0.594),
            // boosters and ALL-CAPS (mixed case only)
            ("VADER is very smart, handsome, and funny.", 0.8545),
            ("VADER is VERY SMART, handsome, and FUNNY.", 0.9227),
            ("GREAT FOOD", 0.6249),
            ("I AM HAPPY", 0.5719), // all caps: no emphasis
            ("I am HAPPY", 0.6633),
            ("The food was AMAZINGLY good", 0.6028),
            // dampeners incl. "kind of"
            ("The book was only kind of good.", 0.3832),
            ("Today only kinda sux! But I'll get by, lol", 0.5249),
            // "kind of"/"sort of"/"just enough" bigrams inside the idiom check
            (
                "It was Kind Of bad and sort of boring, just enough good",
                -0.5402,
            ),
            // negation, "never so/this", "without doubt", "least"
            ("VADER is not smart, handsome, nor funny.", -0.7424),
            ("Sentiment analysis has never been this good!", 0.5672),
            ("The pizza was never so good!", 0.6926),
            ("It was not bad at all.", 0.431),
            ("Without a doubt, excellent idea.", 0.7013),
            (
                "Roger Dodger is one of the least compelling variations on this theme.",
                -0.1695,
            ),
            (
                "Roger Dodger is at least compelling as a variation on the theme.",
                0.2263,
            ),
            ("At least it isn't a horrible book.", 0.431),
            ("least good", -0.3412),
            // "no"
            ("no good", -0.3412),
            ("There is no doubt it was good.", 0.6136),
            ("it had no flavor or taste", -0.296),
            ("I said no", -0.296),
            ("no no no", 0.4168),
            // special idioms; sentiment-laden idioms are not applied
            ("With VADER, sentiment analysis is the shit!", 0.6476),
            ("On the other hand, VADER is quite bad ass", 0.802),
            ("He cannot cut the mustard.", 0.2057),
            ("the dessert is to die for", -0.5994),
            ("yeah right, great service", 0.743),
            // "but"
            ("The food was good but the service was terrible.", -0.4939),
            // the reference's list.index() quirk: 0.296, not 0.4588
            ("It was clear, but fine.", 0.296),
            // "?" and mixed "!?" emphasis
            ("Is this good?", 0.4404),
            ("Terrible?! Awful!?!?", -0.8184),
            // emoticons and emojis
            ("Make sure you :) or :D today!", 0.8633),
            ("Catch utf-8 emoji such as 💘 and 💋 and 😁", 0.875),
            ("HAHA lol LOL lmao :-p XD xd", 0.9771),
            // emoji descriptions "ON! arrow" / "UP! button" add "!" emphasis
            ("🔛 great 🆙", 0.6892),
            // Python whitespace includes U+3000 and U+001C
            ("good\u{3000}bad\u{1c}nice", 0.296),
            ("ΣΟΦΟΣ good", 0.4404),
        ];
        let mut failures = Vec::new();
        for &(text, expected) in cases {
            let got = compound(&a, text);
            if got != expected {
                failures.push(format!("{text:?}: got {got}, expected {expected}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn but_check_indexed_matches_scan() {
        // Deterministic pseudo-random valences with many repeats, including
        // values that become equal after re-weighting (x and x * 0.5).
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let palette = [
            0.0, 0.0, 0.0, 1.6, 0.8, 0.4, 1.9, -2.5, -1.25, 1.2, 2.4, -0.6,
        ];
        for round in 0..500 {
            let n = 1 + round % 97;
            let mut a: Vec<f64> = (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    palette[(seed % palette.len() as u64) as usize]
                })
                .collect();
            let bi = (seed as usize >> 8) % n;
            a[bi] = 0.0;
            let mut b = a.clone();
            but_check_scan(bi, &mut a);
            but_check_indexed(bi, &mut b);
            assert_eq!(a, b, "round {round}");
        }
    }

    #[test]
    fn tokenizer_matches_python_split_and_strip() {
        let split = |text: &str| {
            let mut out = Vec::new();
            split_tokens(text, |lower, upper| out.push((lower.to_string(), upper)));
            out.into_iter().unzip::<_, _, Vec<String>, Vec<bool>>()
        };
        let (lowers, upper) = split("  Hello,\u{1c}WORLD!! :) a. ...ok... I'm \u{3000}x-D\tÉTÉ ");
        assert_eq!(
            lowers,
            [
                "hello", "world", ":)", "a.", "...ok...", "i'm", "x-d", "été"
            ]
        );
        assert_eq!(
            upper,
            [false, true, false, false, false, false, false, true]
        );

        let (lowers, upper) = split("It's GREAT!!! :-) 'ok' (a) --so-- I");
        assert_eq!(
            lowers,
            ["it's", "great", ":-)", "'ok'", "(a)", "--so--", "i"]
        );
        assert_eq!(upper, [false, true, false, false, false, false, true]);

        // Python's split() whitespace, lower() with final sigma, isupper().
        let (lowers, upper) = split("ΣΟΦΟΣ\u{2003}ǅemal Straße\u{85}x\u{a0}ÉTÉ!");
        assert_eq!(lowers, ["σοφος", "ǆemal", "straße", "x", "été"]);
        assert_eq!(upper, [true, false, false, false, true]);
    }
}
