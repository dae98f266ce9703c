"""The broker's configuration, preflight checks and failure diagnosis, without starting it."""
import os
from pathlib import Path

import pytest

from kafkalab.broker.local import JVM_OPTS, BrokerError, LocalBroker, free_port, port_free
from kafkalab.runtime import wait_until


def props(text):
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_listens_on_loopback_only(tmp_path):
    p = props(LocalBroker(home=tmp_path).render_config(9092, 9093))
    assert p["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert p["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert p["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert p["process.roles"] == "broker,controller"
    assert p["log.dirs"] == str(tmp_path / "single" / "data")
    assert p["offsets.topic.replication.factor"] == "1"
    assert p["group.initial.rebalance.delay.ms"] == "0"


def test_requested_port_that_is_taken_is_refused(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not port_free(port)
        with pytest.raises(BrokerError, match="port taken"):
            LocalBroker(home=tmp_path, port=port)._choose_ports(None)


def test_port_zero_means_any_free_port(tmp_path):
    port, cport = LocalBroker(home=tmp_path, port=0)._choose_ports(None)
    assert port != cport and port_free(port) and port_free(cport)


def test_data_dir_from_another_version_is_refused(tmp_path):
    broker = LocalBroker(home=tmp_path)
    broker.data_dir.mkdir(parents=True)
    (broker.data_dir / ".kafkalab-version").write_text("3.9.0\n")
    with pytest.raises(BrokerError, match="data dir from another version"):
        broker._preflight()


@pytest.mark.parametrize("log_line, cause", [
    ("java.net.BindException: Address already in use", "port taken"),
    ("java.lang.UnsupportedClassVersionError: kafka/Kafka has been compiled", "Java too old"),
    ("java.io.IOException: No space left on device", "out of disk"),
    ("InconsistentClusterIdException: The Cluster ID x doesn't match", "another cluster"),
])
def test_diagnosis_names_the_likely_cause(tmp_path, log_line, cause):
    broker = LocalBroker(home=tmp_path)
    broker.log_file.parent.mkdir(parents=True)
    broker.log_file.write_text(f"[x] INFO starting\n[y] ERROR {log_line}\n")
    text = broker.diagnose("the broker process exited during start-up")
    likely = [line for line in text.splitlines() if line.startswith("likely cause:")]
    assert likely and cause in likely[0]
    assert log_line in text


def test_unknown_failure_still_shows_the_log(tmp_path):
    broker = LocalBroker(home=tmp_path)
    broker.log_file.parent.mkdir(parents=True)
    broker.log_file.write_text("something odd\n")
    text = broker.diagnose("it failed")
    assert "likely cause" not in text and "something odd" in text


def test_status_of_a_never_started_home(tmp_path):
    status = LocalBroker(home=tmp_path).status()
    assert status["running"] is False and status["profile"] == "single"
    assert status["nodes"][0]["alive"] is False and status["bootstrap"] is None


def test_free_port_is_free():
    assert port_free(free_port())


def test_cluster_ids_are_kafka_shaped_and_never_look_like_options():
    import re
    from kafkalab.broker.local import new_cluster_id
    ids = [new_cluster_id() for _ in range(2000)]  # ~31 would start with '-' if unguarded
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_cluster_nodes_share_a_static_quorum_and_replicate_everything(tmp_path):
    from kafkalab.broker.cluster import Cluster, ClusterNode
    cluster = Cluster(home=tmp_path)
    ports = cluster._choose_ports(None)
    voters = ",".join(f"{n}@127.0.0.1:{ports[str(n)][1]}" for n in (1, 2, 3))
    props = [ClusterNode(n, tmp_path, voters=voters).properties(*ports[str(n)]) for n in (1, 2, 3)]
    assert [p["node.id"] for p in props] == [1, 2, 3]
    assert {p["controller.quorum.voters"] for p in props} == {voters}
    assert len({p["log.dirs"] for p in props}) == 3                        # a data dir each
    assert len({port for pair in ports.values() for port in pair}) == 6     # no port shared
    for p in props:
        assert p["default.replication.factor"] == 3 and p["min.insync.replicas"] == 2
        assert p["offsets.topic.replication.factor"] == 3 and p["transaction.state.log.min.isr"] == 2
        assert p["listeners"].count("127.0.0.1:") == 2 and "0.0.0.0" not in p["listeners"]


def test_cluster_ports_are_kept_while_free_and_moved_when_taken(tmp_path, monkeypatch):
    import kafkalab.broker.cluster as cl
    cluster = cl.Cluster(home=tmp_path)
    old = {"ports": {"1": [19092, 19093], "2": [29092, 29093], "3": [39092, 39093]}}
    monkeypatch.setattr(cl, "port_free", lambda port: port != 29092)
    chosen = cluster._choose_ports(old)
    assert chosen["1"] == [19092, 19093] and chosen["3"] == [39092, 39093]
    assert chosen["2"][0] != 29092 and chosen["2"][1] == 29093


def test_no_such_node(tmp_path):
    from kafkalab.broker.cluster import ClusterNode
    with pytest.raises(BrokerError, match="no node 4"):
        ClusterNode(4, tmp_path)


def test_kafkalab_jvm_opts_are_added_to_every_profiles_jvm(tmp_path, monkeypatch):
    from kafkalab.broker.cluster import ClusterNode
    monkeypatch.setenv("KAFKALAB_JVM_OPTS", "-Xmx1g  -Dlab.note='two words'")
    for broker in (LocalBroker(home=tmp_path), ClusterNode(1, home=tmp_path)):
        assert broker.jvm_opts[-2:] == ["-Xmx1g", "-Dlab.note=two words"]
        assert "-XX:+UseG1GC" in broker.jvm_opts          # added to, not instead of, the defaults
    monkeypatch.delenv("KAFKALAB_JVM_OPTS")
    assert LocalBroker(home=tmp_path).jvm_opts == JVM_OPTS


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_process_is_gone_only_once_it_has_exited_and_a_reused_pid_is_not_ours():
    import subprocess
    import sys
    from kafkalab.broker.local import pid_alive, pid_gone
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert pid_alive(child.pid, "time.sleep") and not pid_gone(child.pid, "time.sleep")
        child.kill()
        wait_until(lambda: Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", 10)
        assert not pid_alive(child.pid, "time.sleep")      # a zombie is not running...
        assert pid_gone(child.pid, "time.sleep")          # ...and, single-threaded, nothing of it is left
    finally:
        child.wait()
    assert pid_gone(child.pid) and pid_gone(None)
    assert pid_gone(os.getpid(), "a marker not in this command line")     # a pid reused by another program
    assert not pid_gone(os.getpid(), "python")
