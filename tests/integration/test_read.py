"""kafkalab.read() and peek() on the real session broker: exact event-time ranges, every kind of
payload and log (deleted records, compaction, transactions), limits, and clear failures."""
import _thread
import json
import threading
import time
import uuid

import pandas as pd
import pytest
from kafka import KafkaAdminClient, KafkaProducer, TopicPartition

import kafkalab
from kafkalab.config import BrokerUnavailable
from kafkalab.reader import Truncated

pytestmark = pytest.mark.integration

BASE = (int(time.time()) - 3600) * 1000    # record timestamps the tests set (an hour ago: within retention)


def topic(partitions=3, **configs):
    return kafkalab.recreate_topic(f"read-{uuid.uuid4().hex[:8]}", partitions=partitions, **configs)


def produce(name, records):
    """records: (partition, timestamp ms, key, value bytes or None[, headers])."""
    with KafkaProducer(**kafkalab.client_config()) as p:
        for partition, ts, key, value, *headers in records:
            p.send(name, partition=partition, timestamp_ms=ts, key=key and key.encode(), value=value,
                   headers=headers[0] if headers else None)
        p.flush()


def at(ms):
    return pd.Timestamp(ms, unit="ms", tz="UTC")


@pytest.fixture(scope="module")
def shuffled():
    """90 records on 3 partitions, timestamps out of order within each partition."""
    name = topic()
    records = []
    for i in range(90):
        ts = BASE + ((i * 37) % 90) * 1000                   # a permutation of 0..89 s
        records.append((i % 3, ts, f"user-{i % 4}", json.dumps({"i": i, "ts": ts, "n": {"k": i % 5}}).encode()))
    produce(name, records)
    return name, records


def expected_between(records, start, end):
    """(partition, offset) of the records with start <= ts < end, computed from what was sent."""
    offsets, found = {}, set()
    for partition, ts, *_ in records:
        offset = offsets[partition] = offsets.get(partition, -1) + 1
        if start <= ts < end:
            found.add((partition, offset))
    return found


def test_a_time_range_holds_exactly_the_records_with_start_le_timestamp_lt_end(shuffled):
    name, records = shuffled
    start, end = BASE + 20_000, BASE + 50_000                # records exist exactly at both bounds
    df = kafkalab.read(name, at(start), at(end))
    assert set(zip(df["partition"], df["offset"])) == expected_between(records, start, end)
    assert len(df) == 30 and df["timestamp"].min() == at(start) and df["timestamp"].max() == at(end - 1000)
    assert df["timestamp"].is_monotonic_increasing and str(df["timestamp"].dt.tz) == "UTC"
    assert (df["ts"] == df["timestamp"].astype("int64") // 1000).all()    # the fields are the JSON's own
    assert list(df.columns[:4]) == ["partition", "offset", "timestamp", "key"] and "n.k" in df.columns


def test_times_as_iso_strings_and_offsets_select_the_same_way(shuffled):
    name, records = shuffled
    iso = kafkalab.read(name, at(BASE + 20_000).isoformat(), str(at(BASE + 50_000)))
    assert len(iso) == 30
    by_offset = kafkalab.read(name, 10, 12)              # offsets 10 and 11 of every partition
    assert sorted(zip(by_offset["partition"], by_offset["offset"])) == [(p, o) for p in range(3) for o in (10, 11)]
    assert kafkalab.read(name, 1000).empty and kafkalab.read(name, 5, 5).empty       # past the end; empty range


def test_lateness_stops_early_and_says_what_it_drops(shuffled):
    """With out-of-order data, stopping at the offset of `end` loses records: exact by default."""
    name, records = shuffled
    start, end = BASE, BASE + 30_000
    exact = kafkalab.read(name, at(start), at(end))
    assert set(zip(exact["partition"], exact["offset"])) == expected_between(records, start, end)
    generous = kafkalab.read(name, at(start), at(end), lateness="90s")       # more than the data's disorder
    assert generous.equals(exact)
    tight = kafkalab.read(name, at(start), at(end), lateness="0s")       # claims in-order data: it is not
    assert set(zip(tight["partition"], tight["offset"])) < set(zip(exact["partition"], exact["offset"]))


def test_filters_partitions_key_and_where(shuffled):
    name, _ = shuffled
    assert set(kafkalab.read(name, partitions=[0, 2])["partition"]) == {0, 2}
    assert set(kafkalab.read(name, partitions=1)["partition"]) == {1}
    keyed = kafkalab.read(name, key="user-2")
    assert len(keyed) == 22 and set(keyed["key"]) == {"user-2"}
    where = kafkalab.read(name, where="`n.k` == 3 and i < 50")
    assert sorted(where["i"]) == [i for i in range(50) if i % 5 == 3]
    with pytest.raises(ValueError, match="no partition"):
        kafkalab.read(name, partitions=[7])


def test_an_empty_topic_gives_an_empty_frame_with_the_record_columns():
    df = kafkalab.read(topic(), "-1h")
    assert df.empty and list(df.columns) == ["partition", "offset", "timestamp", "key", "value", "headers"]


def test_tombstones_binary_text_and_json_in_one_topic_never_break_a_read():
    name = topic(partitions=1)
    produce(name, [(0, BASE, "a", b'{"x": 1}'), (0, BASE + 1, "a", None), (0, BASE + 2, None, b"\xff\x00binary"),
                   (0, BASE + 3, "t", b"plain text"), (0, BASE + 4, "h", b'{"x": 2, "y": {"z": true}}',
                                                        [("trace", b"t-1"), ("meta", b'{"v": 2}')])])
    df = kafkalab.read(name)
    assert df["value"].tolist() == [None, None, b"\xff\x00binary", "plain text", None]
    assert df["x"].tolist()[0] == 1 and df["x"].tolist()[4] == 2 and df["x"].isna().tolist()[1:4] == [True] * 3
    assert df["y.z"].tolist()[4] is True and df["headers"].tolist()[4] == {"trace": "t-1", "meta": {"v": 2}}
    raw = kafkalab.read(name, flatten=False)
    assert raw["value"].tolist()[0] == {"x": 1} and raw["value"].tolist()[1] is None


def test_deleted_records_are_skipped_from_the_new_log_start():
    name = topic(partitions=1)
    produce(name, [(0, BASE + i, None, str(i).encode()) for i in range(20)])
    with KafkaAdminClient(**kafkalab.client_config()) as admin:
        admin.delete_records({TopicPartition(name, 0): 12})
    df = kafkalab.read(name)
    assert df["offset"].tolist() == list(range(12, 20)) and df["value"].tolist()[0] == 12
    assert kafkalab.read(name, 3, 14)["offset"].tolist() == [12, 13]


def test_a_compacted_topic_reads_what_the_cleaner_kept():
    name = topic(partitions=1, cleanup_policy="compact", segment_ms=100, min_cleanable_dirty_ratio=0.001,
                 delete_retention_ms=100)
    produce(name, [(0, BASE + i, f"k{i % 4}", json.dumps({"v": i}).encode()) for i in range(40)])
    seen = {}
    kafkalab.wait_until(lambda: _compacted(name, seen), 60, interval=1.0, what="the log cleaner to compact the topic")
    kept = seen["frame"]
    assert set(kept["key"]) == {"k0", "k1", "k2", "k3"} and len(kept) < 41
    latest = kept.groupby("key")["v"].max().to_dict()
    assert latest == {"k0": 36, "k1": 37, "k2": 38, "k3": 39}     # the newest value of every key survives


def _compacted(name, seen) -> bool:
    # segments roll by record time (segment.ms): a record written now starts a new segment, and the
    # old ones become cleanable
    produce(name, [(0, int(time.time() * 1000), "roll", b'{"v": -1}')])
    df = kafkalab.read(name)
    seen["frame"] = df[df["key"] != "roll"]
    return df["offset"].tolist() != list(range(len(df)))        # gaps: the cleaner removed records


def test_transaction_markers_take_offsets_but_are_not_records():
    name = topic(partitions=1)
    p = KafkaProducer(**kafkalab.client_config(), transactional_id=f"tx-{uuid.uuid4().hex[:6]}")
    try:
        p.init_transactions()
        for batch in range(3):
            p.begin_transaction()
            for i in range(4):
                p.send(name, value=json.dumps({"batch": batch, "i": i}).encode(), partition=0)
            p.commit_transaction()
    finally:
        p.close()
    df = kafkalab.read(name)
    assert len(df) == 12 and df["offset"].tolist() == [o for o in range(15) if o % 5 != 4]    # a marker per commit


def test_limit_keeps_memory_bounded_and_says_it_truncated(shuffled):
    name, _ = shuffled
    with pytest.warns(Truncated, match=r"limit=10.*more records"):
        df = kafkalab.read(name, limit=10)
    assert len(df) == 10 and df.attrs["truncated"] is True
    assert kafkalab.read(name, limit=90).attrs["truncated"] is False


def test_reading_never_joins_a_group(shuffled):
    name, _ = shuffled
    with KafkaAdminClient(**kafkalab.client_config()) as admin:
        before = set(g[0] if isinstance(g, tuple) else g["group_id"] for g in admin.list_groups())
        kafkalab.read(name)
        kafkalab.peek(name)
        after = set(g[0] if isinstance(g, tuple) else g["group_id"] for g in admin.list_groups())
    assert after == before


def test_peek_is_the_newest_n_across_partitions(shuffled):
    name, records = shuffled
    newest = kafkalab.peek(name, n=5)
    assert newest["timestamp"].tolist() == sorted(newest["timestamp"])
    assert list(newest.columns) == ["partition", "offset", "timestamp", "key", "value", "headers"]
    assert isinstance(newest["value"].iloc[0], dict)                      # peek decodes, does not flatten


def _returns_within(seconds, call):
    """Run call() in a thread; what it raised, or a failure if it is still running after `seconds`."""
    outcome = {}

    def run():
        try:
            call()
        except Exception as e:   # the outcome under test
            outcome["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still waiting after {seconds} s: a bad input must fail fast"
    return outcome.get("error")


def test_an_unknown_topic_and_an_unreachable_broker_fail_clearly_and_fast():
    error = _returns_within(10, lambda: kafkalab.read(f"missing-{uuid.uuid4().hex[:6]}"))
    assert isinstance(error, kafkalab.TopicNotFound) and "recreate_topic" in str(error)
    from kafkalab.broker.local import free_port
    error = _returns_within(10, lambda: kafkalab.read("t", bootstrap_servers=f"127.0.0.1:{free_port()}"))
    assert isinstance(error, BrokerUnavailable) and "No Kafka broker answers" in str(error)


def test_an_interrupted_read_leaves_no_thread_or_client(shuffled):
    name, _ = shuffled
    before = {t.ident for t in threading.enumerate()}
    started = threading.Event()
    from kafkalab import reader

    original = reader.decode_batches

    def slow_decode(*args):          # the first batch arrives, then the "kernel interrupt" lands
        started.set()
        _thread.interrupt_main()
        return original(*args)
    reader.decode_batches = slow_decode
    try:
        with pytest.raises(KeyboardInterrupt):
            for _ in range(1000):        # the interrupt is delivered between bytecodes of this thread
                kafkalab.read(name)
    finally:
        reader.decode_batches = original
    assert started.is_set()
    left = [t.name for t in threading.enumerate() if t.ident not in before]
    assert left == [], f"an interrupted read left threads running: {left}"
