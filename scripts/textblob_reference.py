"""Writes the reference set the Rust TextBlob port is tested against (server/src/sentiment/textblob.rs,
test `polarity_matches_python_textblob_on_reference_set`): texts with the polarity and subjectivity
Python TextBlob gives them, one JSON object a line, the scores as Python's repr (shortest round-trip).

The texts: the 1,000 sentences of shared/data/yelp_labelled.txt as they are, lower- and upper-cased,
with words, negations, modifiers, "!", "(!)", emoticons (also written with spaces), quotes,
abbreviations, ellipses, paragraph breaks and non-ASCII whitespace inserted; pairs of sentences; and
random sequences of lexicon words, modifiers, negations and small words that exercise every rule.
Seeded, so the same TextBlob writes the same file.

    python3 -m venv .tools/textblob-venv && .tools/textblob-venv/bin/pip install textblob==0.20.1
    .tools/textblob-venv/bin/python scripts/textblob_reference.py \\
        ../shared/data/yelp_labelled.txt > server/src/sentiment/textblob_reference.jsonl
"""
import json
import random
import sys
from importlib.metadata import version

from textblob import TextBlob
from textblob._text import EMOTICONS
from textblob.en import sentiment as lexicon

SEED = 17

NEGATIONS = ["not", "never", "no", "n't", "don't", "isn't", "wasn't", "Not", "NEVER"]
MODIFIERS = ["very", "really", "extremely", "so", "too", "terribly", "quite", "incredibly",
             "really not", "not very", "never really", "pretty", "most", "totally"]
SMALL = ["a", "an", "is", "it", "I", "the", "to", "of", "be", "'", "t", "s", "at", "was", "x"]
MARKS = ["!", "!!!", "(!)", "( ! )", "(!", "...", "..", "?", "?!", ".", ",", ";", ":", "-", "--",
         "\n\n", "\n", "\r\n\r\n", "\u00a0", "\x1c", "\u3000", "\t", '"', "'", "“great”", "‘ok’",
         "'good'", "\"bad\"", "Mr.", "e.g.", "U.S.", "etc.", "Dr.", "a.m.", "w/", "vs.", "X.",
         "café", "ΣΟΦΟΣ", "naïve", "END-OF-SENTENCE", "(", ")", "[good]", "{bad}", "#great",
         "@nice", "good!", "bad.", "great...", "nice?!", "8", "D", "x D", "x", "3"]
FACES = [face for faces in EMOTICONS.values() for face in sorted(faces)]  # sets: fix the order
SPACED_FACES = [" ".join(face) for face in FACES] + [face.lower() for face in FACES]
WORDS = sorted(w for w in lexicon.keys() if w and " " not in w)
ADVERBS = sorted(w for w in WORDS if "RB" in lexicon[w])
INSERTS = NEGATIONS + MODIFIERS + MARKS + FACES + SPACED_FACES


def scores(text):
    s = TextBlob(text).sentiment
    return {"text": text, "polarity": repr(s.polarity), "subjectivity": repr(s.subjectivity)}


def insert(rng, sentence, k):
    words = sentence.split(" ")
    for _ in range(k):
        words.insert(rng.randrange(len(words) + 1), rng.choice(INSERTS))
    return " ".join(words)


def random_sequence(rng):
    pools = [WORDS, WORDS, ADVERBS, NEGATIONS, SMALL, SMALL, MARKS, FACES, SPACED_FACES, MODIFIERS]
    words = [rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 12))]
    text = " ".join(words)
    if rng.random() < 0.3:
        text = text.capitalize()
    if rng.random() < 0.3:
        text += rng.choice(["!", ".", "!!", " !", "?", " :)", ":(", " (!)", "..."])
    return text


def main(path):
    with open(path, encoding="utf-8") as f:
        sentences = [line.rsplit("\t", 1)[0] for line in f if "\t" in line]
    rng = random.Random(SEED)
    texts = ["", " ", "!", "(!)", ":)", "not", "very"]
    texts += sentences
    texts += [s.lower() for s in sentences]
    texts += [s.upper() for s in sentences]
    for s in sentences:
        for k in (1, 2, 3, 5):
            texts.append(insert(rng, s, k))
    for _ in range(1000):
        a, b = rng.choice(sentences), rng.choice(sentences)
        texts.append(a + rng.choice([" ", "\n\n", "\n", "\r\n\r\n", "!! ", " :) ", "... "]) + b)
    for _ in range(4000):
        texts.append(random_sequence(rng))
    seen = set()
    out = sys.stdout
    for text in texts:
        if text in seen:
            continue
        seen.add(text)
        out.write(json.dumps(scores(text), ensure_ascii=False) + "\n")
    print(f"textblob {version('textblob')}: {len(seen)} texts", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1])
