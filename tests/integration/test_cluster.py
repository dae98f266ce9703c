"""The three-node cluster profile: status, node stop / kill / start from the command line, the
cluster view, and the durability promise of acks=all + RF 3 + min ISR 2 when a leader dies."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from kafkalab.broker.cluster import NODES, Cluster
from kafkalab.clusterview import ClusterPanel, describe_partitions
from kafkalab.durability import run_trial, wait_isr

pytestmark = pytest.mark.integration


def cli(*args):
    return subprocess.run([sys.executable, "-m", "kafkalab.cli", *args], capture_output=True, text=True,
                          timeout=240)


@pytest.fixture(scope="module")
def cluster():
    # the lab's own home (KAFKALAB_HOME of the test session): notebook 15 finds it running
    cluster = Cluster(home=Path(os.environ["KAFKALAB_HOME"]))
    cluster.up(timeout=180)
    return cluster


def test_status_json_lists_every_node(cluster):
    done = cli("status", "--profile", "cluster", "--json")
    status = json.loads(done.stdout)
    assert done.returncode == 0 and status["running"] and status["profile"] == "cluster"
    assert [n["id"] for n in status["nodes"]] == list(NODES)
    assert all(n["alive"] and n["pid"] for n in status["nodes"])
    assert status["bootstrap"] == ",".join(f"127.0.0.1:{n['port']}" for n in status["nodes"])
    assert len({n["port"] for n in status["nodes"]}) == 3


def test_node_stop_and_start_move_leaders_and_refill_the_isr(cluster):
    with KafkaAdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        admin.create_topics({"cluster-moves": {"num_partitions": 3, "replication_factor": 3}},
                            raise_errors=False, wait_for_metadata=True)
        wait_isr(admin, "cluster-moves", 3)
        assert cli("node", "stop", "2").returncode == 0
        status = json.loads(cli("status", "--profile", "cluster", "--json").stdout)
        assert [n["alive"] for n in status["nodes"]] == [True, False, True] and not status["running"]
        parts = describe_partitions(admin, ["cluster-moves"])
        assert 2 not in set(parts["leader"])          # a controlled shutdown moved its leaders
        started = cli("node", "start", "2")
        assert started.returncode == 0, started.stderr
        wait_isr(admin, "cluster-moves", 3)           # it caught up and rejoined every ISR
    assert cluster.status()["running"]


def test_cluster_panel_sees_a_killed_node_and_its_return(cluster):
    panel = ClusterPanel(cluster, topics=["cluster-moves"], period=0.5, name="test:cluster-panel").start()
    try:
        panel.wait_for(lambda s: not s["partitions"]["under_replicated"].any(), 60, "a healthy cluster")
        assert panel.command("kill", 3).result(timeout=60) == 3
        # each leader drops node 3 from its ISR on its own clock (session timeout, replica lag): wait for all
        snap = panel.wait_for(lambda s: all(3 not in isr for isr in s["partitions"]["isr"]), 90,
                              "node 3 out of every ISR")
        assert snap["partitions"]["under_replicated"].all() and 3 not in set(snap["partitions"]["leader"])
        assert "node 3: down" in panel.status.value
        # the command's Future completes after its log line is written: no race with the sampler
        assert panel.command("start", 3).result(timeout=120) == 3
        panel.wait_for(lambda s: all(n["alive"] for n in s["nodes"])
                       and not s["partitions"]["under_replicated"].any(), 120, "node 3 back in every ISR")
        assert any("kill done" in m for m in panel.log) and any("start done" in m for m in panel.log)
        with pytest.raises(ValueError, match="unknown command"):
            panel.command("restart", 3).result(timeout=1)
    finally:
        panel.stop()


def test_acks_all_with_min_isr_2_loses_nothing_when_the_leader_is_killed(cluster):
    trial = run_trial(cluster, "durability-acks-all", acks="all", min_insync=2, records=2000, kill_at=700)
    print(trial.row())
    assert trial.acked > 0 and trial.killed in NODES
    assert trial.lost == 0, f"acknowledged records missing after the leader died: {trial.lost_sample}"
    assert trial.duplicated == 0          # the idempotent producer's retries wrote nothing twice
    assert trial.consumed >= trial.acked


def test_read_fetches_every_partition_from_its_own_leader(cluster):
    """Partitions led by three different nodes: read() sends each node the fetches for its partitions."""
    import kafkalab
    from kafka import KafkaProducer
    with KafkaAdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        admin.create_topics({"cluster-read": {"num_partitions": 6, "replication_factor": 3}},
                            raise_errors=False, wait_for_metadata=True)
        wait_isr(admin, "cluster-read", 3)
        leaders = set(describe_partitions(admin, ["cluster-read"])["leader"])
    assert len(leaders) == 3, f"the test needs partitions led by every node, got leaders {leaders}"
    with KafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all") as p:
        for i in range(60):
            p.send("cluster-read", value=json.dumps({"i": i}).encode(), partition=i % 6)
    df = kafkalab.read("cluster-read", bootstrap_servers=cluster.bootstrap)
    assert sorted(df["i"]) == list(range(60)) and sorted(set(df["partition"])) == list(range(6))


def test_down_kills_a_node_stranded_without_a_controller_quorum_and_up_recovers(cluster, capsys):
    """Nodes 1 and 2 stop one by one (each with a quorum to grant its controlled shutdown); node 3,
    alone, can never be granted its own: down() kills it after the grace instead of waiting out the
    timeout, warning on stderr, and the next up() recovers all three."""
    try:
        assert cluster.stop_node(1) and cluster.stop_node(2)
        capsys.readouterr()
        assert cluster.down(timeout=120, stranded_grace=2)
        warned = capsys.readouterr().err
        assert "node 3 was still waiting for a controlled shutdown" in warned and "did not stop in" not in warned
        assert not any(node.alive() for node in cluster.nodes())
    finally:       # notebook 15 runs on this cluster after this test, whatever it found
        cluster.up(timeout=180)
    assert cluster.status()["running"]
