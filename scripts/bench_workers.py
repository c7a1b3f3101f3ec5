#!/usr/bin/env python3
"""Reviews/s of the sentiment stage run as 1, 2, 3 … `pipebook worker` processes.

Starts `pipebook serve` (embedded broker, fresh data dir, free ports), streams N generated
reviews into `reviews` through the streamer and producer, then for each K runs K worker processes
in a group of their own (`bench-K`, so each K reads all N from the start) and measures the steady
rate: the members' `processed` (from their heartbeats, `GET /api/workers`) between 10 % and 90 %
of N, over the time between those samples. Group joining is outside the measured span.

    python3 scripts/bench_workers.py --bin target/debug/pipebook --n 100000 --workers 1,2,3

Only the standard library; every process it starts is stopped at the end.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

from pbclient import QUIET, Server, call, counter, free_port, wait


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/debug/pipebook")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2,3")
    args = parser.parse_args()
    data = tempfile.mkdtemp(prefix="pipebook-bench-workers-")
    server = Server(args.bin, data, free_port(), free_port())
    base = server.base
    env = dict(os.environ, RUST_LOG=QUIET)
    children = []
    try:
        brokers = call(base, "/api/pipeline")["kafka"]["bootstrap_servers"]
        call(base, "/api/stages/streamer/start", {"rate": 0, "chunk_size": 500, "limit": args.n})
        call(base, "/api/stages/producer/start", {})
        wait("the reviews acknowledged", lambda: counter(base, "producer", "acked") >= args.n)
        rows = []
        for k in [int(k) for k in args.workers.split(",")]:
            group = f"bench-{k}"
            children = [
                subprocess.Popen(
                    [args.bin, "worker", "--stage", "sentiment", "--brokers", brokers,
                     "--group", group],
                    env=env, stdout=subprocess.DEVNULL,
                )
                for _ in range(k)
            ]

            def processed():
                members = [m for m in call(base, "/api/workers") if m["group"] == group]
                return time.monotonic(), sum(m["processed"] for m in members)

            t1, p1 = wait("10 %", lambda: (lambda s: s if s[1] >= args.n // 10 else None)(processed()))
            t2, p2 = wait("90 %", lambda: (lambda s: s if s[1] >= args.n * 9 // 10 else None)(processed()))
            rate = (p2 - p1) / (t2 - t1)
            rows.append((k, rate))
            print(f"{k} worker process(es): {rate:,.0f} reviews/s", flush=True)
            for child in children:
                child.send_signal(signal.SIGTERM)
            for child in children:
                child.wait(timeout=60)
            children = []
        print("\n| worker processes | reviews/s |\n| --- | --- |")
        for k, rate in rows:
            print(f"| {k} | {rate:,.0f} |")
    finally:
        for child in children:
            child.kill()
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
