"""Durability experiments on the three-node cluster: what survives when a leader dies.

A trial produces numbered records, kills (or stops) the leader of the partition while they are
in flight, brings the node back, then reads the partition from the beginning and compares what
the producer was told (acknowledged) with what is really there: acknowledged but missing is
*lost*, read more than once is *duplicated*. That is how Kafka's own system tests judge a
failure: by acknowledged records, never by how many were sent.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from .broker.cluster import Cluster
from .config import client_config
from .explore import recreate_topic
from .runtime import wait_until


@dataclass
class Trial:
    acks: int | str
    min_insync: int
    replication: int = 3
    idempotent: bool = False
    sent: int = 0
    acked: int = 0
    errors: int = 0
    consumed: int = 0
    lost: int = 0
    duplicated: int = 0
    killed: int | None = None
    first_error: str | None = None
    lost_sample: list = field(default_factory=list)

    def row(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "lost_sample"}


def partition_leader(admin, topic: str, partition: int = 0) -> int:
    for p in admin.describe_topics([topic])[0]["partitions"]:
        if p["partition_index"] == partition:
            return p["leader_id"]
    raise KeyError(f"{topic}/{partition} not found")


def wait_isr(admin, topic: str, size: int | None = None, *, timeout: float = 60.0,
             isr: list[int] | None = None) -> None:
    """Until every partition of `topic` has `size` in-sync replicas (a restarted node caught up),
    or exactly the nodes `isr` (a stopped node dropped out). A request that meets a node killed a
    moment ago fails with a connection error: the admin client then asks another node."""
    from kafka.errors import KafkaConnectionError
    if (size is None) == (isr is None):
        raise ValueError("give size or isr")
    last: list = []

    def reached():
        try:
            last[:] = admin.describe_topics([topic])[0]["partitions"]
        except KafkaConnectionError:
            return False
        if isr is not None:
            return last and all(sorted(p["isr_nodes"]) == sorted(isr) for p in last)
        return last and all(len(p["isr_nodes"]) >= size for p in last)

    goal = f"{size} in-sync replicas" if isr is None else f"ISR {sorted(isr)}"
    wait_until(reached, timeout, interval=0.3,
               what=lambda: f"{topic} to have {goal} (ISR now {[p['isr_nodes'] for p in last]})")


def read_all(topic: str, connect: dict, partition: int = 0, timeout: float = 30.0) -> list[int]:
    """Every record number in the partition, from the beginning to its current end."""
    from kafka import KafkaConsumer, TopicPartition
    tp = TopicPartition(topic, partition)
    seen: list[int] = []
    with KafkaConsumer(**client_config(**connect, enable_auto_commit=False)) as consumer:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]

        def at_end():
            for records in consumer.poll(timeout_ms=500).values():
                seen.extend(n for n in map(int, (r.value for r in records)) if n >= 0)  # not the warm-up
            return consumer.position(tp) >= end

        if consumer.position(tp) < end:
            wait_until(at_end, timeout, interval=0, what=lambda: (
                f"the end of {topic} (read {len(seen)} records, position {consumer.position(tp)} of {end})"))
    return seen


def run_trial(cluster: Cluster, topic: str, acks: int | str = "all", min_insync: int = 2,
              records: int = 3000, kill_at: int = 1000, rate: float = 1000.0,
              how: str = "kill") -> Trial:
    """One experiment: `records` numbered sends at `rate` per second, the leader killed (or
    stopped) after `kill_at` of them; the node is started again and the ISR refilled before
    the log is read back. The followers are replicating before it starts (a warm-up record
    with acks=all): on a brand-new topic they may not have fetched anything yet, and a leader
    killed then takes even its old records with it."""
    from kafka import KafkaAdminClient, KafkaProducer
    if how not in ("kill", "stop"):
        raise ValueError("how must be 'kill' (SIGKILL) or 'stop' (SIGTERM)")
    idempotent = acks in ("all", -1)
    trial = Trial(acks=acks, min_insync=min_insync, idempotent=idempotent)
    connect = {"bootstrap_servers": cluster.bootstrap}
    recreate_topic(topic, partitions=1, replication_factor=3, client=connect,
                   min_insync_replicas=min_insync)
    with KafkaAdminClient(**client_config(**connect)) as admin:
        wait_isr(admin, topic, 3)
        trial.killed = partition_leader(admin, topic)
    with KafkaProducer(**client_config(**connect, acks="all")) as warm:
        warm.send(topic, b"-1", partition=0).get(timeout=30)
    acked: list[int] = []
    producer = KafkaProducer(**client_config(
        **connect, acks=acks, enable_idempotence=idempotent, linger_ms=5, retries=2 ** 31 - 1,
        delivery_timeout_ms=60000, request_timeout_ms=10000, max_block_ms=30000))
    try:
        pending, t0 = [], time.monotonic()
        for i in range(records):
            ahead = t0 + i / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            if i == kill_at:
                (cluster.kill_node if how == "kill" else cluster.stop_node)(trial.killed)
            pending.append((i, producer.send(topic, str(i).encode(), partition=0)))
            trial.sent += 1
            if len(pending) >= rate / 10 or i == records - 1:   # settle every ~0.1 s
                producer.flush(timeout=90)
                for n, future in pending:
                    if future.succeeded():
                        acked.append(n)
                    else:
                        trial.errors += 1
                        trial.first_error = trial.first_error or repr(future.exception)
                pending.clear()
    finally:
        producer.close(timeout=10)
    cluster.start_node(trial.killed)
    with KafkaAdminClient(**client_config(**connect)) as admin:
        wait_isr(admin, topic, 3)
    seen = read_all(topic, connect)
    trial.acked, trial.consumed = len(acked), len(seen)
    present = set(seen)
    missing = [n for n in acked if n not in present]
    trial.lost, trial.lost_sample = len(missing), missing[:10]
    trial.duplicated = len(seen) - len(present)
    return trial
