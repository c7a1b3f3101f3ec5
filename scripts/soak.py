#!/usr/bin/env python3
"""Soak: N generated reviews through every stage while things break, then count what arrived.

    .tools/kafka-python-venv/bin/python scripts/soak.py --bin $CARGO_TARGET_DIR/debug/pipebook --n 1000000

(`source scripts/tools.sh --test` creates that venv; the counting at the end reads the topics with
kafka-python, a client that is not librdkafka.)

What it does, on one `pipebook serve` with its embedded broker, fresh data dir, free ports:
1. Starts the sentiment group (2 workers), the windows, the indexer, the Parquet sink and the
   producer, then streams N generated reviews (rate 0: as fast as the producer takes them).
2. While they stream: restarts the broker at 20 % of the reviews acknowledged, kills a sentiment
   worker at 40 % (a crash: its batch uncommitted) and restarts the broker again at 60 %.
3. Once all N are acknowledged, and while the consumers are still behind, kills the whole server
   with SIGKILL, starts it again on the same data dir and broker port, and starts the consumer
   stages again with the same settings (the streamer and producer are not restarted: every
   review is in `reviews` already; a socket streamer cannot be replayed).
4. Waits until every consumer group's lag is 0, then counts: distinct review ids in `reviews`
   and `reviews.sentiment` (and the records beyond those: redeliveries), documents in the
   index, the windows' counted + late records, Parquet rows, dead letters.

Prints the results as a Markdown table; exits 1 when a count is not N. Every process it starts is
stopped at the end (the data dir is kept and printed, for a look afterwards).
"""

import argparse
import json
import sys
import tempfile
import time
import urllib.error

from pbclient import Server, call, counter, free_port, stage, wait

GROUPS = ["pipebook-sentiment", "pipebook-aggregate", "pipebook-indexer", "pipebook-parquet"]
# The consumer stages, in the order they are started (and started again after the crash).
CONSUMERS = [
    ("sentiment", {"workers": 2}),
    ("aggregate", {}),
    ("indexer", {}),
    ("parquet", {}),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/debug/pipebook")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--timeout", type=int, default=7200, help="seconds for the whole run")
    parser.add_argument("--resume", metavar="DIR",
                        help="the data dir of a run that stopped after its crash: start the "
                             "consumers on it again, wait for them to catch up and count")
    args = parser.parse_args()
    if args.resume:
        return resume(args)
    data = tempfile.mkdtemp(prefix="pipebook-soak-")
    port, broker_port = free_port(), free_port()
    log = open(f"{data}.log", "wb")
    print(f"data dir {data}, server log {data}.log", flush=True)
    started = time.monotonic()
    events = []

    def event(what):
        events.append((time.monotonic() - started, what))
        print(f"{events[-1][0]:7.1f} s  {what}", flush=True)

    server = Server(args.bin, data, port, broker_port, log)
    try:
        base = server.base
        for stage_id, config in CONSUMERS:
            call(base, f"/api/stages/{stage_id}/start", config)
        call(base, "/api/stages/producer/start", {})
        call(base, "/api/stages/streamer/start",
             {"rate": 0, "chunk_size": 500, "limit": args.n})
        event("streaming")
        acked = lambda: counter(base, "producer", "acked")
        for share, action in [
            (0.2, lambda: call(base, "/api/stages/broker/restart", {}, timeout=120)),
            (0.4, lambda: call(base, "/api/stages/sentiment/workers/worker-1/kill", {})),
            (0.6, lambda: call(base, "/api/stages/broker/restart", {}, timeout=120)),
        ]:
            wait(f"{share:.0%} acknowledged", lambda: acked() >= args.n * share,
                 timeout=args.timeout, every=0.5)
            name = "sentiment worker-1 killed" if share == 0.4 else "broker restarted"
            action()
            event(f"{name} at {acked():,} acknowledged")
        wait("every review acknowledged", lambda: acked() >= args.n,
             timeout=args.timeout, every=0.5)
        event(f"all {acked():,} acknowledged; sentiment lag {lag(base, 'pipebook-sentiment'):,}")
        behind = {g: lag(base, g) for g in GROUPS}
        server.kill()
        event(f"server killed (SIGKILL) with lags {behind}")
        server = Server(args.bin, data, port, broker_port, log)
        for stage_id, config in CONSUMERS:
            call(base, f"/api/stages/{stage_id}/start", config)
        event("server started again on the same data dir; consumers started")
        results = catch_up_and_count(base, broker_port, args, event)
    finally:
        server.stop()
        log.close()
    print_report(args.n, events, results)
    return 0 if all(ok for _, _, ok in results) else 1


def resume(args):
    data, port, broker_port = args.resume, free_port(), free_port()
    started = time.monotonic()
    events = []

    def event(what):
        events.append((time.monotonic() - started, what))
        print(f"{events[-1][0]:7.1f} s  {what}", flush=True)

    log = open(f"{data}.resume.log", "wb")
    server = Server(args.bin, data, port, broker_port, log)
    try:
        for stage_id, config in CONSUMERS:
            call(server.base, f"/api/stages/{stage_id}/start", config)
        event(f"server started on {data}; consumers started")
        results = catch_up_and_count(server.base, broker_port, args, event)
    finally:
        server.stop()
        log.close()
    print_report(args.n, events, results)
    return 0 if all(ok for _, _, ok in results) else 1


def catch_up_and_count(base, broker_port, args, event):
    wait("every group caught up",
         lambda: all(lag(base, g) == 0 for g in GROUPS), timeout=args.timeout, every=2)
    event("every group's lag is 0")
    # The windows checkpoint every trigger and the indexer commits after each bulk: give the
    # last ones a moment to land before reading the figures.
    time.sleep(5)
    results = count(base, broker_port, args.n)
    event("counted")
    return results


def lag(base, group):
    """The group's lag in records; None when the server could not tell this time (busy: 503)."""
    try:
        groups = call(base, "/api/kafka/groups")
    except (urllib.error.URLError, TimeoutError) as error:
        print(f"          (lag not read: {error})", flush=True)
        return None
    for g in groups:
        if g["group"] == group:
            return sum(p["lag"] for p in g["partitions"])
    return 0


def count(base, broker_port, n):
    reviews = distinct_ids(broker_port, "reviews")
    labelled = distinct_ids(broker_port, "reviews.sentiment")
    dlq = sum(p["high"] - p["low"] for t in call(base, "/api/kafka/topics")
              if t["name"] == "reviews.dlq" for p in t["partitions"])
    indexed = call(base, "/api/search/aggregations?interval=1d")["total"]
    windows = call(base, "/api/aggregates")
    counted, late = windows["counted"], windows["late_records"]
    tumbling = sum(sum(w["counts"].values()) for w in windows["windows"]
                   if w["kind"] == "tumbling")
    parquet = stage(base, "parquet").get("counters", {})
    return [
        ("distinct review ids in `reviews`", f"{reviews[0]:,} ({reviews[1]:,} records)",
         reviews[0] == n),
        ("distinct review ids in `reviews.sentiment`",
         f"{labelled[0]:,} ({labelled[1] - labelled[0]:,} redelivered)", labelled[0] == n),
        ("documents in the index", f"{indexed:,}", indexed == n),
        ("windows: counted + late", f"{counted:,} + {late:,} = {counted + late:,} "
         f"(duplicates set aside: {windows['duplicates']:,})", counted + late == n),
        ("windows: sum of the tumbling windows' counts", f"{tumbling:,}", tumbling == counted),
        ("Parquet rows on disk", f"{parquet.get('rows_on_disk', 0):,}",
         parquet.get("rows_on_disk", 0) >= n),
        ("dead letters", f"{dlq:,}", dlq == 0),
    ]


def distinct_ids(broker_port, topic):
    """(distinct review ids, records) in `topic`, read to its end with kafka-python."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=f"127.0.0.1:{broker_port}",
                             enable_auto_commit=False, group_id=None,
                             max_partition_fetch_bytes=4 << 20)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    ends = consumer.end_offsets(partitions)
    ids, records = set(), 0
    while any(consumer.position(p) < ends[p] for p in partitions):
        for batch in consumer.poll(timeout_ms=1000, max_records=10_000).values():
            for record in batch:
                records += 1
                ids.add(json.loads(record.value)["review_id"])
    consumer.close()
    return len(ids), records


def print_report(n, events, results):
    print(f"\nSoak of {n:,} reviews\n\n| when (s) | what |\n| ---: | --- |")
    for at, what in events:
        print(f"| {at:.0f} | {what} |")
    print("\n| figure | value | as expected |\n| --- | --- | --- |")
    for name, value, ok in results:
        print(f"| {name} | {value} | {'yes' if ok else '**no**'} |")


if __name__ == "__main__":
    sys.exit(main())
