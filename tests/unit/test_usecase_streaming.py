import random

import pandas as pd

from kafkalab.usecases.streaming import SourceWindows, iot_reading, measure, social_post


def batch(records):
    return pd.DataFrame({"partition": [0] * len(records), "timestamp": [r[0] for r in records],
                         "key": [r[1] for r in records], "value": [r[2] for r in records]})


def test_generators_key_by_user_and_device():
    rnd = random.Random(2)
    key, post = social_post(0, rnd)
    assert key == post["user"] and -1 <= post["sentiment"] <= 1 and measure(post) == post["sentiment"]
    key, reading = iot_reading(0, rnd)
    assert key == reading["device"] and measure(reading) == reading["reading"]
    assert measure("not a dict") is None


def test_windows_per_source_with_means_and_the_last_window_at_stop():
    rnd = random.Random(4)
    records = []
    for i in range(200):                      # 20 s of data, 10 records a second
        ts = 1_000_000 + i * 100
        key, value = (social_post if i % 2 else iot_reading)(i, rnd)
        records.append((ts, key, value))
    w = SourceWindows(size_ms=5000, advance_ms=2500, grace_ms=0, idle_timeout=None)
    w.add_frame(batch(records[:150]))
    w.add_frame(batch(records[150:]))
    w.flush()
    res = w.results()
    tumbling = res[res["kind"] == "tumbling"]
    assert set(tumbling["source"]) == {"social", "iot"}
    assert tumbling["count"].sum() == 200 and tumbling["final"].all()
    iot = [v["reading"] for _, _, v in records if v["source"] == "iot"]
    assert abs(tumbling[tumbling["source"] == "iot"]["sum"].sum() - sum(iot)) < 1e-6
    hopping = res[res["kind"] == "hopping"]
    assert hopping["count"].sum() > tumbling["count"].sum()  # each record in about two windows


def test_a_late_record_is_counted():
    w = SourceWindows(size_ms=1000, advance_ms=500, grace_ms=0, idle_timeout=None)
    rnd = random.Random(1)
    w.add_frame(batch([(5000, *iot_reading(0, rnd)), (9000, *iot_reading(1, rnd))]))
    w.add_frame(batch([(1000, *iot_reading(2, rnd))]))
    assert w.late == 1


def test_records_delivered_again_after_a_rebalance_are_not_counted_twice():
    rnd = random.Random(5)
    records = [(1_000_000 + i * 100, *(social_post if i % 2 else iot_reading)(i, rnd)) for i in range(60)]
    frame = batch(records).assign(topic="t", partition=[i % 2 for i in range(60)],
                                  offset=[i // 2 for i in range(60)])
    w = SourceWindows(size_ms=5000, advance_ms=2500, grace_ms=0, idle_timeout=None)
    w.add_frame(frame.iloc[:40])
    w.add_frame(frame.iloc[30:])          # the last commit covered 30 records: 10 come again
    w.flush()
    tumbling = w.results().query("kind == 'tumbling'")
    assert w.replayed == 10
    assert tumbling["count"].sum() == 60
