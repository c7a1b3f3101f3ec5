#!/usr/bin/env python3
"""How long the cluster views answer while the whole pipeline runs flat out.

    python3 scripts/bench_listing.py --bin $CARGO_TARGET_DIR/debug/pipebook --n 200000

On one `pipebook serve` (embedded broker, fresh data dir, free ports): starts every consumer
stage as the soak does (sentiment ×2, windows, indexer, Parquet) and the producer, streams N
generated reviews as fast as the producer takes them, and meanwhile calls `GET
/api/kafka/topics` and `GET /api/kafka/groups` one after the other, as a learner's cell 2 would,
until the reviews are all acknowledged. Prints each endpoint's answers: how many, how many were
refused (503: the listing bound was taken) or failed, and the median / p90 / max time.

The once-a-second snapshot sampler reads the same topics and groups at the same time, so the
figures include its share of the broker. Standard library only; the server is stopped at the end.
"""

import argparse
import statistics
import tempfile
import time
import urllib.error

from pbclient import Server, call, counter, free_port
from soak import CONSUMERS

ENDPOINTS = ["/api/kafka/topics", "/api/kafka/groups"]


def timed(base, path):
    """(seconds, outcome) of one GET: "ok", "503" or the error's name."""
    started = time.monotonic()
    try:
        call(base, path, timeout=60)
        outcome = "ok"
    except urllib.error.HTTPError as error:
        outcome = str(error.code)
    except OSError as error:
        outcome = type(error).__name__
    return time.monotonic() - started, outcome


def summary(path, samples):
    ok = sorted(s for s, outcome in samples if outcome == "ok")
    refused = sum(1 for _, outcome in samples if outcome == "503")
    failed = len(samples) - len(ok) - refused
    if not ok:
        return f"| `{path}` | {len(samples)} | {refused} | {failed} | – | – | – |"
    p90 = ok[min(len(ok) - 1, int(len(ok) * 0.9))]
    return (f"| `{path}` | {len(samples)} | {refused} | {failed} | "
            f"{statistics.median(ok) * 1000:,.0f} ms | {p90 * 1000:,.0f} ms | "
            f"{ok[-1] * 1000:,.0f} ms |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/debug/pipebook")
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    data = tempfile.mkdtemp(prefix="pipebook-listing-")
    server = Server(args.bin, data, free_port(), free_port())
    try:
        base = server.base
        for stage_id, config in CONSUMERS:
            call(base, f"/api/stages/{stage_id}/start", config)
        call(base, "/api/stages/producer/start", {})
        call(base, "/api/stages/streamer/start", {"rate": 0, "chunk_size": 500, "limit": args.n})
        samples = {path: [] for path in ENDPOINTS}
        started = time.monotonic()
        while counter(base, "producer", "acked") < args.n:
            for path in ENDPOINTS:
                samples[path].append(timed(base, path))
        print(f"{args.n:,} reviews acknowledged in {time.monotonic() - started:.0f} s\n")
        print("| endpoint | calls | 503 | failed | median | p90 | max |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for path in ENDPOINTS:
            print(summary(path, samples[path]))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
