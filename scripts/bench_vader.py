"""The Python baseline for Pipebook's lexicon benchmark: the reference vaderSentiment on the same
review texts `pipebook bench` measured (one text per line), on one core. Prints one JSON object."""
import json
import sys
import time

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


def main(path: str, limit: int) -> None:
    with open(path, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f][:limit]
    analyzer = SentimentIntensityAnalyzer()
    started = time.perf_counter()
    positive = sum(1 for t in texts if analyzer.polarity_scores(t)["compound"] > 0)
    elapsed = time.perf_counter() - started
    print(json.dumps({
        "metric": "python vaderSentiment 3.3.2, one core",
        "value": len(texts) / elapsed,
        "unit": "reviews/s",
        "n": len(texts),
        "positive": positive,
    }))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 20_000)
