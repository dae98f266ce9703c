"""kafkalab.read() against a plain kafka-python loop and confluent-kafka (librdkafka), side by side.

200,000 small JSON records (4 fields) on 3 partitions, read whole into a DataFrame with the fields as
columns. Each reader runs --rounds times, interleaved; the best time of each is compared.

Run: .venv/bin/python bench/read_topic.py [--records 200000] [--rounds 3]
Uses KAFKA_BOOTSTRAP_SERVERS if set, else starts its own broker in a temporary directory.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

warnings.simplefilter("ignore", DeprecationWarning)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import confluent_kafka  # noqa: E402
import pandas as pd  # noqa: E402
from kafka import KafkaConsumer, TopicPartition  # noqa: E402

import kafkalab  # noqa: E402


def fill(n: int) -> str:
    topic = f"bench-read-{uuid.uuid4().hex[:8]}"
    kafkalab.recreate_topic(topic, partitions=3)
    producer = confluent_kafka.Producer({"bootstrap.servers": kafkalab.bootstrap(), "linger.ms": 20})
    for i in range(n):
        user = f"user-{i % 500}"
        producer.produce(topic, key=user, value=json.dumps(
            {"user": user, "page": f"/p/{i % 37}", "ms": i % 1000, "ok": i % 3 == 0}))
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0, "records not delivered"
    return topic


def kafka_python_loop(topic: str) -> pd.DataFrame:
    """What a learner writes: assign, seek, poll until the end offsets, json.loads, one dict per row."""
    with KafkaConsumer(**kafkalab.client_config(), group_id=None, enable_auto_commit=False) as consumer:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        end = consumer.end_offsets(tps)
        left = {tp for tp in tps if end[tp] > 0}
        rows = []
        while left:
            for tp, records in consumer.poll(timeout_ms=1000).items():
                for r in records:
                    row = json.loads(r.value)
                    row.update(partition=r.partition, offset=r.offset, timestamp=r.timestamp, key=r.key)
                    rows.append(row)
                if consumer.position(tp) >= end[tp]:
                    left.discard(tp)
    return pd.DataFrame(rows)


def librdkafka_loop(topic: str) -> pd.DataFrame:
    """The same loop on confluent-kafka: librdkafka fetches and decodes in C; rows are built in Python."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": kafkalab.bootstrap(), "group.id": "bench-unused",
                                         "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        end = {p: consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), timeout=10)[1]
               for p in meta}
        consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in meta])
        left, rows = {p for p in meta if end[p] > 0}, []
        while left:
            for m in consumer.consume(10_000, timeout=1.0):
                if m.error():
                    continue
                row = json.loads(m.value())
                row.update(partition=m.partition(), offset=m.offset(), timestamp=m.timestamp()[1], key=m.key())
                rows.append(row)
                if m.offset() >= end[m.partition()] - 1:
                    left.discard(m.partition())
    finally:
        consumer.close()
    return pd.DataFrame(rows)


def kafkalab_read(topic: str) -> pd.DataFrame:
    return kafkalab.read(topic, progress=False, limit=None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    own = None
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        home = Path(tempfile.mkdtemp(prefix="kafkalab-bench-"))
        own = kafkalab.LocalBroker(home=home)
        own.up()
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = own.bootstrap
    try:
        topic = fill(args.records)
        readers = {"plain kafka-python loop": kafka_python_loop, "confluent-kafka loop": librdkafka_loop,
                   "kafkalab.read()": kafkalab_read}
        best = dict.fromkeys(readers, float("inf"))
        for _ in range(args.rounds):
            for name, reader in readers.items():
                t0 = time.perf_counter()
                df = reader(topic)
                best[name] = min(best[name], time.perf_counter() - t0)
                fields = {"user", "page", "ms", "ok"}
                assert len(df) == args.records and fields <= set(df.columns), (name, df.shape, list(df.columns))
        print(f"reading {args.records:,} small JSON records (4 fields, 3 partitions) into a DataFrame, "
              f"best of {args.rounds} each, interleaved")
        for name, seconds in best.items():
            print(f"   {name:<26} {seconds:6.2f} s   {args.records / seconds:>9,.0f} records/s")
        ours = best["kafkalab.read()"]
        print(f"   read / kafka-python loop    {ours / best['plain kafka-python loop']:.2f}   (target < 1.0)")
        print(f"   read / confluent-kafka loop {ours / best['confluent-kafka loop']:.2f}   (target <= 1.0)")
    finally:
        if own is not None:
            own.down()
            shutil.rmtree(own.home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
