"""pandas views of a cluster: what a learner looks at between experiments."""
from __future__ import annotations

import json
import time
import warnings

import pandas as pd

from .config import client_config, require_reachable

with warnings.catch_warnings():  # kafka-python 3.0 warns on import under Python 3.11
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
    from kafka.admin import OffsetSpec
    from kafka.errors import TopicAlreadyExistsError


def _admin(**overrides) -> KafkaAdminClient:
    config = client_config(**overrides)
    require_reachable(config["bootstrap_servers"])
    return KafkaAdminClient(**config)


def _offsets(admin, partitions, spec) -> dict:
    if not partitions:
        return {}
    found = admin.list_partition_offsets({tp: spec for tp in partitions})
    return {tp: o.offset for tp, o in found.items()}


def topics(internal: bool = False, **overrides) -> pd.DataFrame:
    """One row per topic: partitions, replication factor and the records it holds now."""
    with _admin(**overrides) as admin:
        described = admin.describe_topics()
        rows, partitions = [], []
        for t in described:
            if not internal and (t["is_internal"] or t["name"].startswith("_")):
                continue
            tps = [TopicPartition(t["name"], p["partition_index"]) for p in t["partitions"]]
            partitions += tps
            rows.append((t["name"], tps, t["partitions"]))
        start = _offsets(admin, partitions, OffsetSpec.EARLIEST)
        end = _offsets(admin, partitions, OffsetSpec.LATEST)
    return pd.DataFrame(
        [{"topic": name,
          "partitions": len(tps),
          "replication_factor": len(parts[0]["replica_nodes"]) if parts else 0,
          "records": sum(end[tp] - start[tp] for tp in tps)}
         for name, tps, parts in sorted(rows, key=lambda r: r[0])],
        columns=["topic", "partitions", "replication_factor", "records"])


def _decode(raw: bytes | None):
    """Show JSON as objects, text as str, anything else as bytes."""
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    try:
        return json.loads(text)
    except ValueError:
        return text


def peek(topic: str, n: int = 10, from_end: bool = True, timeout: float = 5.0,
         **overrides) -> pd.DataFrame:
    """The newest (or oldest) n records of a topic, across partitions, without joining a group."""
    columns = ["partition", "offset", "timestamp", "key", "value", "headers"]
    config = client_config(**overrides)
    require_reachable(config["bootstrap_servers"])
    with KafkaConsumer(**config, enable_auto_commit=False, group_id=None) as consumer:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise ValueError(f"unknown topic {topic!r}")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        begin, end = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        wanted = {}
        for tp in tps:
            first = max(begin[tp], end[tp] - n) if from_end else begin[tp]
            last = end[tp] if from_end else min(end[tp], begin[tp] + n)
            if last > first:
                consumer.seek(tp, first)
                wanted[tp] = last
            else:
                consumer.pause(tp)
        rows = []
        deadline = time.monotonic() + timeout
        while wanted and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200).items():
                for r in records:
                    if tp in wanted and r.offset < wanted[tp]:
                        rows.append({"partition": r.partition, "offset": r.offset,
                                     "timestamp": pd.Timestamp(r.timestamp, unit="ms", tz="UTC"),
                                     "key": _decode(r.key), "value": _decode(r.value),
                                     "headers": {k: _decode(v) for k, v in (r.headers or [])}})
                if tp in wanted and consumer.position(tp) >= wanted[tp]:
                    del wanted[tp]
                    consumer.pause(tp)
    df = pd.DataFrame(rows, columns=columns).sort_values(["timestamp", "partition", "offset"])
    return (df.tail(n) if from_end else df.head(n)).reset_index(drop=True)


def lag(group: str, **overrides) -> pd.DataFrame:
    """Committed offset, end offset and lag per partition the group has committed to."""
    columns = ["topic", "partition", "committed", "end_offset", "lag"]
    with _admin(**overrides) as admin:
        committed = admin.list_group_offsets({group: None}).get(group, {})
        committed = {tp: om.offset for tp, om in committed.items() if om.offset >= 0}
        end = _offsets(admin, list(committed), OffsetSpec.LATEST)
    rows = [{"topic": tp.topic, "partition": tp.partition, "committed": off,
             "end_offset": end[tp], "lag": max(0, end[tp] - off)}
            for tp, off in sorted(committed.items())]
    return pd.DataFrame(rows, columns=columns).astype(
        {"partition": "int64", "committed": "int64", "end_offset": "int64", "lag": "int64"})


def recreate_topic(name: str, partitions: int = 1, replication_factor: int = 1,
                   timeout: float = 30.0, client: dict | None = None, **topic_configs) -> str:
    """Delete `name` if it exists and create it empty: notebooks stay safe to re-run.
    Topic configs as keywords (min_insync_replicas=2); `client` overrides the connection."""
    configs = {k.replace("_", "."): str(v) for k, v in topic_configs.items()}
    with _admin(**(client or {})) as admin:
        if name in admin.list_topics():
            admin.delete_topics([name])
            deadline = time.monotonic() + timeout
            while name in admin.list_topics():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"topic {name!r} was not deleted within {timeout:.0f} s")
                time.sleep(0.1)
        spec = {"num_partitions": partitions, "replication_factor": replication_factor}
        if configs:
            spec["configs"] = configs
        deadline = time.monotonic() + timeout
        while True:  # the broker may still be finishing the deletion
            try:
                admin.create_topics({name: spec}, wait_for_metadata=True)
                return name
            except TopicAlreadyExistsError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
