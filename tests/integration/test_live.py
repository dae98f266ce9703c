"""The live toolkit against the real session broker: producers, consumers, groups, windows,
lag monitoring, charts and panels, and that none of them leaks a thread."""
import threading
import time
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaProducer

import kafkalab
from kafkalab import (ConsumerGroup, EventTimeWindows, LagChart, LiveConsumer, ProducerPanel,
                      RateProducer, ThroughputChart, TopicNotFound, Tumbling, WindowChart, stop_all,
                      wait_until)
from kafkalab.runtime import WorkerFailed, running

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
    wait_until(lambda: p.stats["acked"] >= 20, 20, what="20 acknowledged records")
    p.pause()
    time.sleep(0.3)
    frozen = p.stats["sent"]
    time.sleep(0.5)
    assert p.stats["sent"] == frozen and p.stats["paused"]
    p.reconfigure(compression_type="lz4", acks=1)
    p.set_rate(1000)
    p.resume()
    wait_until(lambda: p.stats["acked"] >= frozen + 200, 20, what="200 more records after resume")
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
    group.wait_members(1)
    group.add_member()
    assert sorted(group.wait_members(2)["member"].value_counts()) == [1, 2]
    group.remove_member()
    assert set(group.wait_members(1)["member"]) == {"member-1"}
    events = [e for _, e, parts in group.members[0].events]
    assert events.count("assigned") >= 3  # join, rebalance to 2, rebalance back to 1
    group.stop()


def test_lag_chart_tells_the_story_of_a_stopped_group(broker):
    topic, group = new_topic(2), f"lag-{uuid.uuid4().hex[:6]}"
    RateProducer(topic, rate=None, count=400).start().wait(30)
    LiveConsumer(topic, group_id=group, count=100, timeout=30).start().wait(40)  # commits 100, leaves
    chart = LagChart(group, interval=0.3, fps=5).start()
    wait_until(lambda: len(chart.monitor.report()) == 2 and chart.refreshes > 2, 30,
               what="two partitions in the lag report and three refreshes")
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
    wait_until(lambda: windows.windows.open_windows() == [], 10, what="the idle timeout to close every window")
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
        panel = ProducerPanel(p).start()
        return p, c, chart, panel

    first = cell()
    wait_until(lambda: first[0].stats["acked"] > 0, 20, what="a first acknowledged record")
    grown = len(_kafkalab_threads())
    second = cell()  # the re-run replaces the first set
    assert not any(w.alive for w in first[:3])
    wait_until(lambda: len(_kafkalab_threads()) <= grown, 15, what="the first set's threads to end")
    assert sorted(running()) == sorted(["producer:" + topic, "consumer:" + topic + ":rerun",
                                        "chart:throughput", "panel:producers",
                                        "panel:producers/stats"])
    assert stop_all() == 5
    assert not any(w.alive for w in second[:3])
    wait_until(lambda: len(_kafkalab_threads()) == baseline, 15,
               what=lambda: f"every thread to end; left: {[t.name for t in _kafkalab_threads()]}")


def test_panel_refuses_bad_input_visibly(broker):
    topic = new_topic(1)
    p = RateProducer(topic, rate=20)
    panel = ProducerPanel(p)
    row = panel._rows[0]
    row["rate"].value = -5
    assert "refused" in row["message"].value and p.target_rate == 20.0
    row["run"].value = True          # start
    wait_until(lambda: p.stats["acked"] > 0, 20, what="a first acknowledged record")
    row["rate"].value = 100
    assert row["message"].value == ""
    wait_until(lambda: p.target_rate == 100.0, 20, what="the new rate to be applied")
    row["compression"].value = "gzip"
    row["acks"].value = "1"
    wait_until(lambda: p.producer_config.get("acks") == 1, 20, what="acks=1 to be applied")
    row["stop"].click()
    assert not p.alive and p.failure is None and row["rate"].disabled
    panel.stop()


def test_a_producer_on_a_missing_topic_says_so_within_seconds_and_leaves_no_thread(broker):
    before = set(threading.enumerate())
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    p = RateProducer(missing, rate=100).start()
    with pytest.raises(WorkerFailed) as raised:
        p.wait(10)                           # not kafka-python's 60 s metadata wait
    assert isinstance(raised.value.__cause__, TopicNotFound)
    assert missing in str(raised.value) and "recreate_topic" in str(raised.value)
    stats = p.stats
    assert (stats["sent"], stats["running"]) == (0, False) and missing in stats["last_error"]
    stop_all()
    wait_until(lambda: set(threading.enumerate()) <= before, 10,
               what=lambda: f"no new thread; left: {[t.name for t in set(threading.enumerate()) - before]}")


def test_a_consumer_group_on_a_missing_topic_fails_naming_it(broker):
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    consumer = LiveConsumer(missing, group_id="nobody").start()
    with pytest.raises(WorkerFailed, match=missing):
        consumer.wait_assigned(10)


def test_two_unnamed_producers_on_one_topic_both_run_and_are_plotted_apart(broker):
    topic = new_topic(1)
    steady = RateProducer(topic, rate=200).start()
    bursty = RateProducer(topic, rate=100).start()
    assert steady.name != bursty.name
    chart = ThroughputChart([steady, bursty], fps=5).start()
    wait_until(lambda: steady.stats["acked"] > 400 and bursty.stats["acked"] > 200, 20,
               what="both producers to send")
    assert steady.alive and bursty.alive
    chart.refresh()
    assert {t.name for t in chart.figure.data} == {f"produced · {steady.name}", f"produced · {bursty.name}",
                                                   f"produced · total · {topic}"}


def test_the_panel_shows_a_producers_own_keys_and_keeps_its_key_function(broker):
    topic = new_topic(1)
    by_user = lambda i: f"user-{i % 3}"              # noqa: E731
    p = RateProducer(topic, rate=200, key=by_user)
    none = RateProducer(topic, rate=10, key=None, name="keyless")
    panel = ProducerPanel(p, none)
    row, keyless = panel._rows
    assert row["key"].value == "custom (function)" and row["hot"].disabled
    assert keyless["key"].value == "none"
    row["run"].value = True
    row["hot"].value = 0.3                           # means nothing for a key function
    wait_until(lambda: p.keys.hot_share == 0.3, 20, what="the key change to be applied")
    assert p.keys.mode is by_user
    row["key"].value = "skewed"
    assert not row["hot"].disabled
    wait_until(lambda: p.keys.mode == "skewed", 20, what="skewed keys")
    row["key"].value = "custom (function)"
    wait_until(lambda: p.keys.mode is by_user, 20, what="the key function to come back")


def test_the_panel_brings_idempotence_back_with_acks_all(broker):
    topic = new_topic(1)
    p = RateProducer(topic, rate=50).start()
    row = ProducerPanel(p)._rows[0]
    row["acks"].value = "1"
    wait_until(lambda: p.producer_config.get("enable_idempotence") is False, 20, what="acks=1")
    row["acks"].value = "all"
    wait_until(lambda: p.producer_config.get("acks") == "all", 20, what="acks=all")
    assert "enable_idempotence" not in p.producer_config          # kafka-python's default: on
    wait_until(lambda: p.stats["acked"] > 20, 20, what="records with acks=all")
    assert p.stats["errors"] == 0


def test_throughput_chart_plots_each_producers_own_rate_and_their_total(broker):
    """Two producers on one topic at 200 and 100 msg/s: each line, and the topic's total, must match
    what the producers themselves acknowledged over the same seconds (within 10%)."""
    topic = new_topic(3)
    steady = RateProducer(topic, rate=200, name=f"steady-{topic}").start()
    bursty = RateProducer(topic, rate=100, key="skewed", name=f"bursty-{topic}").start()
    chart = ThroughputChart([steady, bursty], fps=4).start()
    wait_until(lambda: steady.stats["acked"] > 400 and bursty.stats["acked"] > 200, 30,
               what="both producers to run for two seconds")
    t0, acked0 = time.time(), (steady.acked, bursty.acked)
    time.sleep(6)
    t1, acked1 = time.time(), (steady.acked, bursty.acked)
    chart.stop()
    own = {steady.name: (acked1[0] - acked0[0]) / (t1 - t0), bursty.name: (acked1[1] - acked0[1]) / (t1 - t0)}
    own["total"] = sum(own.values())
    shown = chart.plotted()
    # the producers' meters cover the last two seconds: points from t0 + 2 s on see only this interval
    x_ms = shown["x"].astype("datetime64[ms]").astype("int64")
    inside = shown[(x_ms >= (t0 + 2) * 1000) & (x_ms <= t1 * 1000)]
    plotted = inside.groupby("series")["y"].mean()
    assert set(plotted.index) == {f"produced · {steady.name}", f"produced · {bursty.name}",
                                  f"produced · total · {topic}"}, plotted
    for series, expected in ((f"produced · {steady.name}", own[steady.name]),
                             (f"produced · {bursty.name}", own[bursty.name]),
                             (f"produced · total · {topic}", own["total"])):
        assert abs(plotted[series] - expected) <= 0.10 * expected, (series, plotted[series], expected)
    assert (inside.groupby("series").size() >= 8).all()      # about 4 points a second for 4 s
