"""The live toolkit against raw kafka-python, measured side by side in one run.

  1. RateProducer flat out vs a raw send() loop (same values, keys and producer config)
  2. LiveConsumer -> windows -> chart (refreshing) vs a raw poll loop decoding the same JSON
  3. resident memory growth of a live pipeline at 5,000 msg/s (--memory-minutes, default 10)
  4. RateProducer rate accuracy at 1, 100, 1,000 and 5,000 msg/s over 10 s
  5. CPU of notebook 00b's live lab (two producers at 300 msg/s, a consumer, windows, charts):
     kafkalab's sending tick and live fetch settings vs one wake-up per record and kafka-python's fetch defaults

Run: .venv/bin/python bench/live_toolkit.py [--records 200000] [--memory-minutes 10] [--skip ...]
Uses KAFKA_BOOTSTRAP_SERVERS if set, else starts its own broker in a temporary directory.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path

warnings.simplefilter("ignore", DeprecationWarning)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ipywidgets  # noqa: E402
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402

import kafkalab  # noqa: E402
from kafkalab.producers import KeyChooser, encode_value, sample_event  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def new_topic(partitions=3) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    with KafkaAdminClient(**kafkalab.client_config()) as admin:
        admin.create_topics({name: {"num_partitions": partitions, "replication_factor": 1}},
                            wait_for_metadata=True)
    return name


# -- 1 ----------------------------------------------------------------------------------------
def raw_producer(topic: str, n: int) -> float:
    keys = KeyChooser("uniform", 10, seed=1)
    t0 = time.monotonic()
    with KafkaProducer(**kafkalab.client_config()) as p:
        for i in range(n):
            key = keys(i)
            p.send(topic, value=encode_value(sample_event(i, key), 0), key=key.encode())
        p.flush()
    return n / (time.monotonic() - t0)


def rate_producer(topic: str, n: int) -> float:
    p = kafkalab.RateProducer(topic, rate=None, count=n, key="uniform", seed=1, name="bench")
    t0 = time.monotonic()
    p.start().wait()
    assert p.stats["acked"] == n, p.stats
    return n / (time.monotonic() - t0)


def bench_producer(n: int) -> None:
    print(f"\n1. producing {n:,} small JSON records flat out (best of 3 each, interleaved)")
    raw, ours = [], []
    for _ in range(3):
        raw.append(raw_producer(new_topic(), n))
        ours.append(rate_producer(new_topic(), n))
    print(f"   raw send() loop      {max(raw):10,.0f} msg/s")
    print(f"   RateProducer         {max(ours):10,.0f} msg/s")
    print(f"   ratio                {max(ours) / max(raw):10.2f}   (target >= 0.9)")


# -- 2 ----------------------------------------------------------------------------------------
class WidgetMessages:
    """Counts the messages widgets send to the front end (state updates and custom messages)."""

    def __init__(self):
        self.count = 0
        self._lock = threading.Lock()
        self._orig = (ipywidgets.Widget.send_state, ipywidgets.Widget.send)

    def __enter__(self):
        orig_state, orig_send = self._orig
        counter = self

        def send_state(widget, key=None):
            with counter._lock:
                counter.count += 1
            return orig_state(widget, key)

        def send(widget, content, buffers=None):
            with counter._lock:
                counter.count += 1
            return orig_send(widget, content, buffers)
        ipywidgets.Widget.send_state, ipywidgets.Widget.send = send_state, send
        return self

    def __exit__(self, *exc):
        ipywidgets.Widget.send_state, ipywidgets.Widget.send = self._orig


def raw_consumer(topic: str, n: int) -> float:
    t0 = time.monotonic()
    seen = 0
    with KafkaConsumer(**kafkalab.client_config(), enable_auto_commit=False) as c:
        parts = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic))]
        c.assign(parts)
        c.seek_to_beginning()
        while seen < n:
            for records in c.poll(timeout_ms=100, max_records=2000).values():
                for r in records:
                    json.loads(r.value)
                seen += len(records)
    return n / (time.monotonic() - t0)


def pipeline(topic: str, n: int) -> tuple[float, float, float]:
    consumer = kafkalab.LiveConsumer(topic, count=n, buffer=0, name="bench-consumer")
    windows = kafkalab.EventTimeWindows(kafkalab.Tumbling(1000), idle_timeout=2.0)
    chart = kafkalab.WindowChart(windows, consumer, value=lambda v: v["reading"],
                                 fps=5, name="bench-chart")
    with WidgetMessages() as messages:
        chart.start()
        time.sleep(0.5)  # the chart idles at 5 Hz; the pipeline starts now
        refreshes0, messages0 = chart.refreshes, messages.count
        t0 = time.monotonic()
        consumer.start().wait()
        elapsed = time.monotonic() - t0
        refreshes, sent = chart.refreshes - refreshes0, messages.count - messages0
        chart.stop()
    assert consumer.consumed == n
    return n / elapsed, refreshes / elapsed, sent / elapsed


def bench_pipeline(n: int) -> None:
    topic = new_topic()
    kafkalab.RateProducer(topic, rate=None, count=n, key="uniform", name="bench-fill").start().wait()
    print(f"\n2. consuming {n:,} small JSON records (best of 3 each, interleaved)")
    raw, ours = [], []
    for _ in range(3):
        raw.append(raw_consumer(topic, n))
        ours.append(pipeline(topic, n))
    best = max(ours, key=lambda r: r[0])
    print(f"   raw poll loop + json.loads           {max(raw):10,.0f} msg/s")
    print(f"   LiveConsumer -> windows -> chart     {best[0]:10,.0f} msg/s "
          f"(chart {best[1]:.1f} refreshes/s, {best[2]:.0f} widget messages/s)")
    print(f"   ratio                                {best[0] / max(raw):10.2f}   "
          "(target >= 0.8 at >= 4 Hz, <= 100 messages/s)")


# -- 3 ----------------------------------------------------------------------------------------
def bench_memory(minutes: float) -> None:
    topic = new_topic()
    print(f"\n3. live pipeline at 5,000 msg/s for {minutes:g} min: producer, consumer, windows, "
          "window + throughput + lag charts")
    producer = kafkalab.RateProducer(topic, rate=5000, name="mem-producer")
    consumer = kafkalab.LiveConsumer(topic, group_id="bench-mem", buffer=0, from_beginning=False,
                                     name="mem-consumer")
    windows = kafkalab.WindowChart(kafkalab.EventTimeWindows(kafkalab.Tumbling(1000)), consumer,
                                   value=lambda v: v["reading"], fps=5, name="mem-windows")
    throughput = kafkalab.ThroughputChart([producer], [consumer], fps=5, name="mem-throughput")
    lag = kafkalab.LagChart("bench-mem", fps=2, name="mem-lag")
    with WidgetMessages():
        for w in (consumer, producer, windows, throughput, lag):
            w.start()
        time.sleep(30)  # warm-up: buffers and histories reach their bounds
        start, t0 = rss_mb(), time.monotonic()
        samples = []
        while time.monotonic() - t0 < minutes * 60:
            time.sleep(min(30, minutes * 60))
            samples.append(rss_mb())
        stats = producer.stats
        kafkalab.stop_all()
    print(f"   sent {stats['sent']:,} (errors {stats['errors']}), consumed {consumer.consumed:,}")
    print(f"   RSS after warm-up {start:.0f} MB, at the end {samples[-1]:.0f} MB, peak {max(samples):.0f} MB")
    print(f"   growth {samples[-1] - start:+.1f} MB   (target < 50 MB)")


# -- 4 ----------------------------------------------------------------------------------------
def bench_accuracy() -> None:
    print("\n4. rate accuracy, 10 s each")
    print(f"   {'target msg/s':>12} {'sent':>8} {'achieved':>9} {'error':>7}")
    for rate in (1, 100, 1000, 5000):
        p = kafkalab.RateProducer(new_topic(1), rate=rate, duration=10, name="bench-accuracy")
        p.start().wait()
        achieved = p.stats["sent"] / 10
        print(f"   {rate:12,} {p.stats['sent']:8,} {achieved:9,.1f} {100 * (achieved / rate - 1):+6.2f}%")


# -- 5 ----------------------------------------------------------------------------------------
def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def live_lab_cpu(tick: float, fetch: dict, seconds: float = 10.0) -> tuple[float, float]:
    """Share of one core the 00b workers use at their steady state, and the consumed rate."""
    from kafkalab import producers
    kept, producers.SEND_TICK = producers.SEND_TICK, tick   # the one knob compared, restored below
    try:
        topic = new_topic()
        steady = kafkalab.RateProducer(topic, rate=200, key="uniform", name="cpu-steady")
        bursty = kafkalab.RateProducer(topic, rate=100, key="skewed", hot_share=0.9, name="cpu-bursty")
        reader = kafkalab.LiveConsumer(topic, group_id=f"cpu-{uuid.uuid4().hex[:6]}", from_beginning=False,
                                       buffer=0, name="cpu-reader", **fetch)
        windows = kafkalab.WindowChart(kafkalab.EventTimeWindows(kafkalab.Tumbling(2000), grace_ms=500),
                                       reader, value=lambda v: v["reading"], fps=4, name="cpu-windows")
        throughput = kafkalab.ThroughputChart([steady, bursty], [reader], fps=2, name="cpu-throughput")
        with WidgetMessages():
            for w in (reader, windows, steady, bursty, throughput):
                w.start()
            reader.wait_assigned(timeout=30)
            time.sleep(3)                                       # past start-up
            c0, t0 = cpu_seconds(), time.monotonic()
            n0 = reader.consumed
            time.sleep(seconds)
            share = (cpu_seconds() - c0) / (time.monotonic() - t0)
            rate = (reader.consumed - n0) / (time.monotonic() - t0)
            kafkalab.stop_all()
        return share, rate
    finally:
        producers.SEND_TICK = kept


def bench_live_lab_cpu() -> None:
    from kafkalab.producers import SEND_TICK
    print("\n5. CPU of notebook 00b's live lab: 2 producers (200 + 100 msg/s), consumer, windows, 2 charts, 10 s")
    variants = [(f"kafkalab: sends every {SEND_TICK * 1000:.0f} ms, fetch waits for 64 KiB/100 ms",
                 SEND_TICK, {}),
                ("a wake-up per record, kafka-python's fetch defaults", 0.0005,
                 {"fetch_min_bytes": 1, "fetch_max_wait_ms": 500})]
    best: dict = {}
    for _ in range(2):                                          # interleaved, best of 2
        for label, tick, fetch in variants:
            share, rate = live_lab_cpu(tick, fetch)
            if label not in best or share < best[label][0]:
                best[label] = (share, rate)
    for label, (share, rate) in best.items():
        print(f"   {label:<62} {share:6.0%} of a core, consuming {rate:5.0f} msg/s")
    ours, theirs = (best[v[0]][0] for v in variants)
    print(f"   ratio (kafkalab / per record)                                  {ours / theirs:6.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--memory-minutes", type=float, default=10.0)
    ap.add_argument("--skip", nargs="*", default=[], choices=["producer", "pipeline", "memory", "accuracy", "cpu"])
    args = ap.parse_args()
    home = None
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        home = Path(tempfile.mkdtemp(prefix="kafkalab-bench-"))
        broker = kafkalab.LocalBroker(home=home, port=0)
        broker.up()
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
    print(f"kafkalab live toolkit benchmark · {os.cpu_count()} cores · broker {kafkalab.bootstrap()}")
    try:
        if "producer" not in args.skip:
            bench_producer(args.records)
        if "pipeline" not in args.skip:
            bench_pipeline(args.records)
        if "accuracy" not in args.skip:
            bench_accuracy()
        if "cpu" not in args.skip:
            bench_live_lab_cpu()
        if "memory" not in args.skip:
            bench_memory(args.memory_minutes)
    finally:
        kafkalab.stop_all()
        if home:
            kafkalab.LocalBroker(home=home).down()
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
