"""A partition's log as the broker keeps it on disk: its segment files.

Kafka has no client API that lists segments, so this asks the broker where its log directory is
(DescribeLogDirs) and reads that directory. That works for every broker running on this machine
(each kafkalab profile, each node of the cluster) and fails plainly for one that runs elsewhere.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from kafka.errors import UnknownTopicOrPartitionError

from .explore import _admin, require_topics

COLUMNS = ["node", "base_offset", "bytes", "state", "file"]
# what the broker leaves next to live segments: .deleted waits file.delete.delay.ms (60 s by
# default) before it goes; .cleaned and .swap exist while the cleaner rewrites a segment
STATES = {".log": "live", ".deleted": "deleting", ".cleaned": "compacting", ".swap": "compacting"}


class SegmentsElsewhere(RuntimeError):
    """The broker's log directory is not on this machine (a remote cluster, a Docker container)."""


def _state(name: str) -> str | None:
    for suffix, state in STATES.items():
        if name.endswith(suffix) and ".log" in name:
            return state
    return None


def segments(topic: str, partition: int = 0, **overrides) -> pd.DataFrame:
    """The segment files of `topic`/`partition` on every node that holds a replica, oldest first.

    state: "active" for the segment being written (the newest live one: the cleaner never compacts it,
    and retention closes it before deleting it), "live", "deleting" (retention or compaction dropped it;
    the file goes after file.delete.delay.ms) or "compacting". `overrides` go to the admin client
    (bootstrap_servers=...).
    """
    with _admin(**overrides) as admin:
        described = admin.describe_topics([topic])[0]
        if described["error_code"] == UnknownTopicOrPartitionError.errno:
            require_topics([topic], **overrides)     # raises TopicNotFound, saying how to create it
        count = len(described["partitions"])
        if not 0 <= partition < count:
            raise ValueError(f"{topic} has partitions 0..{count - 1}, not {partition}")
        answer = admin.describe_log_dirs({topic: [partition]})
    rows, elsewhere = [], []
    for broker in answer:
        for log_dir in broker["log_dirs"]:
            held = any(t["name"] == topic and any(p["partition_index"] == partition for p in t["partitions"])
                       for t in log_dir["topics"])
            if not held:
                continue
            folder = Path(log_dir["log_dir"]) / f"{topic}-{partition}"
            if not Path(log_dir["log_dir"]).is_dir():
                elsewhere.append(f"node {broker['broker']}: {log_dir['log_dir']}")
                continue
            try:
                names = os.listdir(folder)
            except FileNotFoundError:        # the partition was deleted between the two questions
                continue
            found = []
            for name in names:
                state = _state(name)
                if state is None:
                    continue
                try:
                    size = (folder / name).stat().st_size
                except FileNotFoundError:    # deleted while we looked
                    continue
                found.append({"node": broker["broker"], "base_offset": int(name.split(".")[0]),
                              "bytes": size, "state": state, "file": name})
            live = [r for r in found if r["state"] == "live"]
            if live:
                max(live, key=lambda r: r["base_offset"])["state"] = "active"
            rows += found
    if elsewhere and not rows:
        raise SegmentsElsewhere(
            f"the log directory of {topic}-{partition} is not on this machine ({'; '.join(elsewhere)}): "
            "segment files can only be listed for a broker running here. The partition's size in bytes "
            "is still given by KafkaAdminClient.describe_log_dirs().")
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values(["node", "base_offset", "state"], ignore_index=True).astype(
        {"node": "int64", "base_offset": "int64", "bytes": "int64"})
