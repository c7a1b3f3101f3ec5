"""The windowed aggregate of `pipebook bench`, in pandas: the baseline Polars is compared with.

Reads events.csv (time_ms,sentiment,score,stars,business), then times — best of 3, data already
in memory, like the Polars side — one-minute tumbling windows with the same ten aggregates:
reviews per sentiment, score sum, stars sum, reviews per stars value.
Prints one JSON object.
"""
import json
import sys
import time

import pandas as pd


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    flags = pd.DataFrame(
        {
            "time": df["time"],
            "positive": df["sentiment"] == 0,
            "negative": df["sentiment"] == 1,
            "neutral": df["sentiment"] == 2,
            "score_sum": df["score"],
            "stars_sum": df["stars"],
            **{f"stars_{s}": df["stars"] == s for s in range(1, 6)},
        }
    )
    return flags.groupby(pd.Grouper(key="time", freq="60s")).sum()


def main() -> None:
    path = sys.argv[1]
    df = pd.read_csv(path)
    df["time"] = pd.to_datetime(df["time_ms"], unit="ms")
    best = float("inf")
    windows = 0
    for _ in range(3):
        started = time.perf_counter()
        windows = len(aggregate(df))
        best = min(best, time.perf_counter() - started)
    print(json.dumps({
        "metric": "windowed aggregate (1-min tumbling, 10 aggregates), pandas",
        "events": len(df),
        "windows": windows,
        "seconds": best,
        "events_per_s": len(df) / best,
        "pandas": pd.__version__,
    }))


if __name__ == "__main__":
    main()
