"""The baseline pipeline of `pipebook bench`: what the seed tutorials build, in Python.

A socket server sends review JSON lines in chunks; a confluent-kafka producer reads the socket
and produces each review to Kafka (key = business_id); a consumer group member reads them,
classifies each with vaderSentiment and produces the enriched review to a second topic, committing
after the outputs are acknowledged. Run against the same broker and the same reviews as
Pipebook's own measurement; prints one JSON object with the rates.

usage: bench_pipeline.py BOOTSTRAP REVIEWS_JSONL N
"""
import json
import socket
import sys
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

CHUNK = 1000


def serve(lines, ready, port_box):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port_box.append(server.getsockname()[1])
    ready.set()
    conn, _ = server.accept()
    for i in range(0, len(lines), CHUNK):
        conn.sendall("".join(lines[i : i + CHUNK]).encode())
    conn.close()
    server.close()


def produce(bootstrap, topic, port, n):
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    acked = [0]

    def delivered(err, _msg):
        if err is None:
            acked[0] += 1

    stream = socket.create_connection(("127.0.0.1", port)).makefile("r", encoding="utf-8")
    for line in stream:
        review = json.loads(line)
        while True:
            try:
                producer.produce(topic, line.rstrip("\n").encode(), key=review["business_id"].encode(), on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(120)
    return acked[0]


def classify(bootstrap, source, sink, n):
    analyzer = SentimentIntensityAnalyzer()
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"py-sentiment-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    consumer.subscribe([source])
    done = 0
    while done < n:
        batch = consumer.consume(num_messages=500, timeout=1.0)
        for message in batch:
            if message.error():
                continue
            review = json.loads(message.value())
            compound = analyzer.polarity_scores(review["text"])["compound"]
            review["sentiment"] = "POSITIVE" if compound >= 0.05 else "NEGATIVE" if compound <= -0.05 else "NEUTRAL"
            review["score"] = compound
            producer.produce(sink, json.dumps(review).encode(), key=message.key())
            producer.poll(0)
        if batch:
            producer.flush(120)
            consumer.commit(asynchronous=False)
            done += len(batch)
    consumer.close()
    return done


def main():
    bootstrap, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(path, encoding="utf-8") as f:
        lines = [line if line.endswith("\n") else line + "\n" for _, line in zip(range(n), f)]
    run = uuid.uuid4().hex[:8]
    source, sink = f"py.reviews.{run}", f"py.reviews.sentiment.{run}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(t, num_partitions=3, replication_factor=1) for t in (source, sink)]).values():
        future.result(30)
    ready, port_box = threading.Event(), []
    threading.Thread(target=serve, args=(lines, ready, port_box), daemon=True).start()
    ready.wait()
    started = time.perf_counter()
    acked = produce(bootstrap, source, port_box[0], len(lines))
    produced_in = time.perf_counter() - started
    classify_started = time.perf_counter()
    classified = classify(bootstrap, source, sink, acked)
    classified_in = time.perf_counter() - classify_started
    total = time.perf_counter() - started
    print(json.dumps({
        "reviews": len(lines),
        "socket_to_kafka_per_s": acked / produced_in,
        "sentiment_per_s": classified / classified_in,
        "end_to_end_per_s": classified / total,
        "acked": acked,
        "classified": classified,
    }))


if __name__ == "__main__":
    main()
