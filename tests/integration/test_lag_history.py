"""The lag watcher process on the real broker: it records, survives its own SIGKILL (the history
stays and new samples append), runs once per home, rides out a broker outage, and --stop ends it."""
import json
import os
import signal
import subprocess
import sys
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

import kafkalab
from kafkalab import wait_until
from kafkalab.broker.local import LocalBroker, pid_alive
from kafkalab.laghistory import MARKER, STATE_FILE, LagStore, lag_history, stop_watch, watch, watch_status

pytestmark = pytest.mark.integration


@pytest.fixture
def home(tmp_path):
    """A lab home of its own; every watcher started under it is killed at the end, by pid."""
    started = []
    yield tmp_path, started
    state = watch_status(tmp_path)
    for pid in started + ([state["pid"]] if state["running"] else []):
        if pid_alive(pid, MARKER):
            os.kill(pid, signal.SIGKILL)


def started(home, w):
    home[1].append(w.pid)
    return w


def topic_and_group(records=(40, 60), **client):
    topic, group = f"hist-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:6]}"
    with KafkaAdminClient(**kafkalab.client_config(**client)) as admin:
        admin.create_topics({topic: {"num_partitions": len(records), "replication_factor": 1}},
                            wait_for_metadata=True)
    with KafkaProducer(**kafkalab.client_config(**client)) as p:
        for partition, n in enumerate(records):
            for i in range(n):
                p.send(topic, value=b"x", partition=partition)
    return topic, group


def commit(topic, group, offsets, **client):
    with KafkaConsumer(**kafkalab.client_config(group_id=group, enable_auto_commit=False, **client)) as c:
        c.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})


def rows_where(group, home_dir, condition):
    """The number of recorded rows meeting `condition` (a DataFrame -> bool Series)."""
    frame = lag_history(group, since=None, home=home_dir)
    return int(condition(frame).sum()) if len(frame) else 0


def test_history_survives_a_sigkill_of_the_watcher_and_new_samples_append(broker, home):
    topic, group = topic_and_group()
    commit(topic, group, {1: 20})                          # partition 0: no commit yet
    w = started(home, watch([group], interval=0.5, home=home[0]))
    assert w.change == "started" and w.running
    wait_until(lambda: rows_where(group, home[0], lambda f: f["partition"] == 1) >= 3, 30,
               what="three samples of the group")
    first = lag_history(group, since=None, home=home[0])
    p0, p1 = first[first["partition"] == 0].iloc[-1], first[first["partition"] == 1].iloc[-1]
    assert (p0["lag"], p0["end_offset"], p1["committed"], p1["lag"]) == (40, 40, 20, 40)
    assert first[first["partition"] == 0]["committed"].isna().all() and p0["lag_seconds"] > 0
    assert p0["status"] == "STOP" and p0["rule"].endswith(kafkalab.lagwatch.NO_COMMIT)

    commit(topic, group, {0: 40, 1: 50})
    wait_until(lambda: rows_where(group, home[0], lambda f: f["committed"] == 50) >= 1, 30,
               what="a sample of the new commit")

    os.kill(w.pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(w.pid, MARKER), 10, what="the watcher to die")
    assert watch_status(home[0])["stale_pid"] == w.pid
    before = lag_history(group, since=None, home=home[0])
    again = started(home, watch([group], interval=0.5, home=home[0]))
    assert again.pid != w.pid and "is gone" in again.change
    wait_until(lambda: rows_where(group, home[0], lambda f: f["time"] > before["time"].max()) >= 2, 30,
               what="new samples from the restarted watcher")
    after = lag_history(group, since=None, home=home[0])
    kept = ["time", "partition", "committed"]
    assert after.iloc[:len(before)][kept].equals(before[kept])        # the history from before the kill
    assert (after.iloc[len(before):]["lag"] == [0, 10] * ((len(after) - len(before)) // 2)).all()

    assert stop_watch(home[0]) == again.pid
    assert not pid_alive(again.pid, MARKER) and not (home[0] / STATE_FILE).exists()


def cli(home_dir, *args):
    return subprocess.run([sys.executable, "-m", "kafkalab.cli", "--home", str(home_dir), *args],
                          capture_output=True, text=True, timeout=60)


def test_one_watcher_per_home_whose_groups_extend_and_which_stop_ends(broker, home):
    _, g1 = topic_and_group()
    _, g2 = topic_and_group()
    out = cli(home[0], "watch", g1, "--interval", "0.5")
    assert out.returncode == 0 and "lag watcher started" in out.stdout, out.stderr
    first = watch_status(home[0])
    home[1].append(first["pid"])
    assert cli(home[0], "watch", g1).stdout.startswith(f"lag watcher already running: pid {first['pid']}")
    out = cli(home[0], "watch", g2)
    assert f"restarted (was: {g1} every 0.5 s)" in out.stdout, out.stderr
    second = watch_status(home[0])
    home[1].append(second["pid"])
    assert second["groups"] == [g1, g2] and second["interval"] == 0.5 and not pid_alive(first["pid"], MARKER)

    status = json.loads(cli(home[0], "status", "--json").stdout)["lag_watch"]
    assert (status["running"], status["pid"], status["groups"]) == (True, second["pid"], [g1, g2])
    assert status["db"] == str(home[0] / "lag-history.sqlite") and status["bootstrap"] == broker.bootstrap
    assert f"lag watch: running (pid {second['pid']})" in cli(home[0], "status").stdout

    assert cli(home[0], "watch", "--stop").stdout.startswith(f"lag watcher stopped (pid {second['pid']})")
    assert not pid_alive(second["pid"], MARKER)
    assert "lag watch: not running" in cli(home[0], "status").stdout
    assert cli(home[0], "watch", "--stop").stdout.strip() == "no lag watcher running"


def test_an_unreachable_broker_fails_a_start_within_seconds(home):
    from kafkalab.broker.local import free_port
    with pytest.raises(kafkalab.BrokerUnavailable, match="No Kafka broker answers"):
        watch(["g"], home=home[0], bootstrap_servers=f"127.0.0.1:{free_port()}")
    assert not watch_status(home[0])["running"]


def test_the_watcher_rides_out_a_broker_outage(home):
    from kafkalab.broker.local import free_port
    own = LocalBroker(home=home[0] / "brokers", port=free_port())    # back on the same port after the outage
    own.up(timeout=120)
    try:
        client = {"bootstrap_servers": own.bootstrap}
        topic, group = topic_and_group((5,), **client)
        commit(topic, group, {0: 2}, **client)
        w = started(home, watch([group], interval=0.5, home=home[0], **client))
        store = LagStore(w.db)
        wait_until(lambda: len(store.samples(group)) >= 2, 30, what="samples before the outage")
        own.down()
        wait_until(lambda: len(store.errors()) >= 2, 30, what="the outage to be recorded as errors")
        assert w.running and set(store.errors()["group"]) == {group}
        last = store.samples(group)["time"].max()
        own.up(timeout=120)
        wait_until(lambda: (store.samples(group)["time"] > last).sum() >= 2, 60, what="samples after the outage")
        assert store.samples(group)["lag"].iloc[-1] == 3
    finally:
        stop_watch(home[0])
        own.down()
