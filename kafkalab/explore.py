"""pandas views of a cluster: what a learner looks at between experiments."""
from __future__ import annotations

import warnings

import pandas as pd

from .config import TopicNotFound, client_config, require_reachable
from .runtime import wait_until

with warnings.catch_warnings():  # kafka-python 3.0 warns on import under Python 3.11
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaAdminClient, TopicPartition
    from kafka.admin import OffsetSpec
    from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError


def _admin(**overrides) -> KafkaAdminClient:
    config = client_config(**overrides)
    require_reachable(config["bootstrap_servers"])
    return KafkaAdminClient(**config)


def require_topics(names: list[str], **overrides) -> None:
    """Raise TopicNotFound, naming every missing topic, within a second or two: kafka-python
    would otherwise wait a minute for its metadata (the lab broker does not create topics on
    first use). Overrides that are not connection settings (acks, group_id...) are ignored."""
    connection = {k: v for k, v in overrides.items() if k in KafkaAdminClient.DEFAULT_CONFIG}
    with _admin(**connection) as admin:
        missing = [t["name"] for t in admin.describe_topics(list(names))
                   if t["error_code"] == UnknownTopicOrPartitionError.errno]
    if missing:
        first = missing[0]
        raise TopicNotFound(
            f"topic{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
            f"do{'' if len(missing) > 1 else 'es'} not exist, and this broker does not create topics "
            f"on first use: create {'them' if len(missing) > 1 else 'it'} first, e.g. "
            f"kafkalab.recreate_topic({first!r}, partitions=3)")


def partition_count(topic: str, **overrides) -> int:
    """How many partitions `topic` has (TopicNotFound if it does not exist)."""
    with _admin(**overrides) as admin:
        described = admin.describe_topics([topic])[0]
    if described["error_code"] == UnknownTopicOrPartitionError.errno:
        require_topics([topic], **overrides)          # raises TopicNotFound, saying how to create it
    return len(described["partitions"])


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


def peek(topic: str, n: int = 10, from_end: bool = True, timeout: float = 5.0,
         **overrides) -> pd.DataFrame:
    """The newest (or oldest) n records of a topic across partitions, by timestamp, without joining
    a group: the last (first) n of each partition are read, then the n newest (oldest) of those kept.
    Values are decoded but not flattened (kafkalab.read flattens JSON into columns).
    `timeout`: seconds to wait for a broker's answer."""
    from .reader import Plan, Session, columns_frame, fetch_records
    with Session(timeout=timeout, **overrides) as session:
        parts = sorted(session.leaders(topic))
        begin = session.offsets(topic, parts, OffsetSpec.EARLIEST)
        end = session.offsets(topic, parts, OffsetSpec.LATEST)
        ranges = {p: (max(begin[p], end[p] - n), end[p]) if from_end else (begin[p], min(end[p], begin[p] + n))
                  for p in parts}
        plan = Plan(topic, {p: r for p, r in ranges.items() if r[1] > r[0]})
        columns, _ = fetch_records(session, plan, limit=None, progress=False)
    df = columns_frame(columns, flatten_json=False).sort_values(["timestamp", "partition", "offset"])
    return (df.tail(n) if from_end else df.head(n)).reset_index(drop=True)


def lag(group: str, **overrides) -> pd.DataFrame:
    """Committed offset, end offset and lag of every partition of the group's topics: those it has
    committed offsets for, and those its active members are assigned or subscribe to.

    A partition with no commit yet is listed, not dropped: `committed` is <NA> and its lag is
    counted from the log start, as a consumer with auto_offset_reset='earliest' would read it;
    `note` says so (and is empty elsewhere). `overrides`: connection settings (client_config)."""
    from .lagwatch import NO_COMMIT, group_snapshot
    columns = ["topic", "partition", "committed", "end_offset", "lag", "note"]
    with _admin(**overrides) as admin:
        snapshot = group_snapshot(admin, group)
    rows = [{"topic": tp.topic, "partition": tp.partition, "committed": snapshot.committed[tp],
             "end_offset": snapshot.end[tp], "lag": snapshot.lag(tp),
             "note": "" if snapshot.committed[tp] is not None else NO_COMMIT}
            for tp in snapshot.partitions]
    return pd.DataFrame(rows, columns=columns).astype(
        {"partition": "int64", "committed": "Int64", "end_offset": "int64", "lag": "int64", "note": "str"})


def recreate_topic(name: str, partitions: int = 1, replication_factor: int = 1,
                   timeout: float = 30.0, client: dict | None = None,
                   assignments: dict[int, list[int]] | None = None, **topic_configs) -> str:
    """Delete `name` if it exists and create it empty: notebooks stay safe to re-run.
    Topic configs as keywords (min_insync_replicas=2); `client` overrides the connection;
    `assignments` ({partition: [node ids]}, preferred leader first) places the replicas
    yourself, instead of `partitions` and `replication_factor`."""
    configs = {k.replace("_", "."): str(v) for k, v in topic_configs.items()}
    if assignments and (partitions, replication_factor) != (1, 1):
        raise ValueError("give assignments or partitions and replication_factor, not both: the assignments "
                         "say how many partitions and replicas there are")
    if assignments:
        spec = {"assignments": {int(p): [int(n) for n in nodes] for p, nodes in assignments.items()}}
    else:
        spec = {"num_partitions": partitions, "replication_factor": replication_factor}
    if configs:
        spec["configs"] = configs

    with _admin(**(client or {})) as admin:
        def created():
            try:
                admin.create_topics({name: spec}, wait_for_metadata=True)
                return True
            except TopicAlreadyExistsError:   # the broker may still be finishing the deletion
                return False

        if name in admin.list_topics():
            admin.delete_topics([name])
            wait_until(lambda: name not in admin.list_topics(), timeout, interval=0.1,
                       what=f"topic {name!r} to be deleted")
        wait_until(created, timeout, interval=0.2, what=f"topic {name!r} to be created again")
    return name
