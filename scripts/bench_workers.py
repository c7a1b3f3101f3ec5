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
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method="POST" if data else "GET")
    if data:
        request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def wait(what, check, timeout=600, every=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"timed out waiting for {what}")


def counter(base, stage, name):
    for status in call(base, "/api/pipeline")["stages"]:
        if status["id"] == stage:
            return status.get("counters", {}).get(name, 0)
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/debug/pipebook")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2,3")
    args = parser.parse_args()
    data = tempfile.mkdtemp(prefix="pipebook-bench-workers-")
    port, broker_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, RUST_LOG="warn,librdkafka=off,rdkafka::client=off")
    env.pop("PIPEBOOK_KAFKA_BROKERS", None)
    server = subprocess.Popen(
        [args.bin, "serve", "--addr", f"127.0.0.1:{port}", "--data-dir", data,
         "--broker-addr", f"127.0.0.1:{broker_port}"],
        env=env, stdout=subprocess.DEVNULL,
    )
    children = []
    try:
        wait("the server", lambda: _healthy(base), timeout=120)
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
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()


def _healthy(base):
    try:
        call(base, "/api/health")
        return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
