"""The live toolkit against the real session broker: producers, consumers, groups, windows,
lag monitoring, charts and panels, and that none of them leaks a thread."""
import threading
import time
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaProducer

import kafkalab
from kafkalab import (ConsumerGroup, EventTimeWindows, LagChart, LiveConsumer, ProducerPanel,
                      RateProducer, ThroughputChart, Tumbling, WindowChart, stop_all)
from kafkalab.runtime import running

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def clean_registry():
    yield
    stop_all()


def new_topic(partitions=3):
    name = f"live-{uuid.uuid4().hex[:8]}"
    with KafkaAdminClient(**kafkalab.client_config()) as admin:
        admin.create_topics({name: {"num_partitions": partitions, "replication_factor": 1}},
                            wait_for_metadata=True)
    return name


def eventually(check, timeout=20.0, every=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return check()


def test_bounded_producer_and_consumer_account_for_every_record(broker):
    topic = new_topic()
    stats = RateProducer(topic, rate=2000, count=3000, key="skewed", payload_size=200).start().wait(60)
    assert (stats["sent"], stats["acked"], stats["errors"]) == (3000, 3000, 0)
    assert stats["latency_p50_ms"] > 0 and stats["latency_p99_ms"] >= stats["latency_p50_ms"]

    windows = EventTimeWindows(Tumbling(1000))
    closed = []
    consumer = LiveConsumer(topic, count=3000, timeout=60)
    consumer.subscribe(lambda df: closed.extend(windows.add_frame(df, value=lambda v: v["reading"])))
    assert consumer.start().wait(90)["consumed"] == 3000
    closed += windows.flush()
    assert sum(w.count for w in closed) + windows.late_count == 3000
    frame = consumer.frame()
    assert len(frame) == 3000 and frame["value"].map(lambda v: len(str(v))).min() >= 150
    hot = frame["key"].value_counts(normalize=True).iloc[0]
    assert hot > 0.6  # the hot key takes ~80% with key="skewed"


def test_pause_resume_rate_and_reconfigure_go_through_the_owner_thread(broker):
    topic = new_topic(1)
    p = RateProducer(topic, rate=200).start()
    assert eventually(lambda: p.stats["acked"] >= 20)
    p.pause()
    time.sleep(0.3)
    frozen = p.stats["sent"]
    time.sleep(0.5)
    assert p.stats["sent"] == frozen and p.stats["paused"]
    p.reconfigure(compression_type="lz4", acks=1)
    p.set_rate(1000)
    p.resume()
    assert eventually(lambda: p.stats["acked"] >= frozen + 200)
    assert p.producer_config == {"compression_type": "lz4", "acks": 1, "enable_idempotence": False}
    p.stop()
    assert not p.alive and p.stats["errors"] == 0 and p.failure is None


@pytest.mark.parametrize("bad", [0, -5, float("nan"), float("inf"), "fast", True, 2e6])
def test_bad_rates_are_refused_up_front(bad):
    with pytest.raises(ValueError):
        RateProducer("t", rate=bad)


def test_bad_reconfiguration_is_refused_up_front():
    p = RateProducer("t", rate=1)
    with pytest.raises(ValueError, match="cannot change"):
        p.reconfigure(bootstrap_servers="elsewhere:9092")
    with pytest.raises(ValueError, match="compression_type"):
        p.reconfigure(compression_type="brotli")
    with pytest.raises(ValueError, match="payload size"):
        p.set_payload(-1)


def test_a_poison_pill_does_not_stop_the_consumer(broker):
    topic = new_topic(1)
    with KafkaProducer(**kafkalab.client_config()) as raw:
        raw.send(topic, b'{"ok": 1}')
        raw.send(topic, b"not json {")
        raw.send(topic, b"\xff\xfe binary")
        raw.send(topic, b'{"ok": 2}')
    consumer = LiveConsumer(topic, count=4, timeout=30).start()
    consumer.wait(40)
    values = list(consumer.frame()["value"])
    assert values == [{"ok": 1}, "not json {", b"\xff\xfe binary", {"ok": 2}]


def test_group_members_come_and_go_and_the_assignment_follows(broker):
    topic = new_topic(3)
    group = ConsumerGroup(topic, f"g-{uuid.uuid4().hex[:6]}")
    group.add_member()
    assert eventually(lambda: len(group.assignment()) == 3)
    group.add_member()
    assert eventually(lambda: sorted(group.assignment()["member"].value_counts()) == [1, 2])
    group.remove_member()
    assert eventually(lambda: set(group.assignment()["member"]) == {"member-1"}
                      and len(group.assignment()) == 3)
    events = [e for _, e, parts in group.members[0].events]
    assert events.count("assigned") >= 3  # join, rebalance to 2, rebalance back to 1
    group.stop()


def test_lag_chart_tells_the_story_of_a_stopped_group(broker):
    topic, group = new_topic(2), f"lag-{uuid.uuid4().hex[:6]}"
    RateProducer(topic, rate=None, count=400).start().wait(30)
    LiveConsumer(topic, group_id=group, count=100, timeout=30).start().wait(40)  # commits 100, leaves
    chart = LagChart(group, interval=0.3, fps=5).start()
    assert eventually(lambda: len(chart.monitor.report()) == 2 and chart.refreshes > 2, timeout=30)
    report = chart.monitor.report()
    assert report["lag"].sum() == 300 and (report["committed"] + report["lag"] == report["end_offset"]).all()
    assert set(report["status"]) == {"STOP"}  # lag and nobody in the group
    assert (report["lag_seconds"] > 0).all()
    assert "STOP" in chart.table.value and "rule that fired" in chart.table.value
    assert len(chart.figure.data) == 2 and len(chart.figure.data[0].y) >= 1
    chart.stop()


def test_window_and_throughput_charts_draw_from_live_workers(broker):
    topic = new_topic(1)
    producer = RateProducer(topic, rate=500, count=1000, key="uniform", keys=3).start()
    consumer = LiveConsumer(topic, count=1000, timeout=60)
    windows = WindowChart(EventTimeWindows(Tumbling(500), idle_timeout=1.0), consumer,
                          value=lambda v: v["reading"], fps=5).start()
    throughput = ThroughputChart([producer], [consumer], fps=5).start()
    consumer.start().wait(60)
    assert eventually(lambda: windows.windows.open_windows() == [], timeout=10)  # idle timeout closed
    windows.refresh()
    drawn = sum(sum(t.y) for t in windows.figure.data)
    assert drawn == 1000 and {t.name for t in windows.figure.data} == {"key-0", "key-1", "key-2"}
    assert throughput.refreshes > 0 and any(max(t.y) > 0 for t in throughput.figure.data)


def _kafkalab_threads():
    return [t for t in threading.enumerate() if t is not threading.main_thread()]


def test_rerunning_cells_replaces_workers_and_stop_all_leaves_no_thread(broker):
    topic = new_topic(1)
    baseline = len(_kafkalab_threads())

    def cell():  # what a notebook cell would create
        p = RateProducer(topic, rate=50).start()
        c = LiveConsumer(topic, group_id="rerun", from_beginning=False)
        chart = ThroughputChart([p], [c], fps=2)
        c.start()
        chart.start()
        panel = ProducerPanel(p)
        return p, c, chart, panel

    first = cell()
    assert eventually(lambda: first[0].stats["acked"] > 0)
    grown = len(_kafkalab_threads())
    second = cell()  # the re-run replaces the first set
    assert not any(w.alive for w in first[:3])
    assert eventually(lambda: len(_kafkalab_threads()) <= grown, timeout=15)
    assert sorted(running()) == sorted(["producer:" + topic, "consumer:" + topic + ":rerun",
                                        "chart:throughput", "panel:producers",
                                        "panel:producers/stats"])
    assert stop_all() == 5
    assert not any(w.alive for w in second[:3])
    assert eventually(lambda: len(_kafkalab_threads()) == baseline, timeout=15), \
        [t.name for t in _kafkalab_threads()]


def test_panel_refuses_bad_input_visibly(broker):
    topic = new_topic(1)
    p = RateProducer(topic, rate=20)
    panel = ProducerPanel(p)
    row = panel._rows[0]
    row["rate"].value = -5
    assert "refused" in row["message"].value and p.rate == 20.0
    row["run"].value = True          # start
    assert eventually(lambda: p.stats["acked"] > 0)
    row["rate"].value = 100
    assert row["message"].value == ""
    assert eventually(lambda: p.rate == 100.0)
    row["compression"].value = "gzip"
    row["acks"].value = "1"
    assert eventually(lambda: p.producer_config.get("acks") == 1)
    row["stop"].click()
    assert not p.alive and p.failure is None and row["rate"].disabled
    panel.stop()
