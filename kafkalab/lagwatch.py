"""Consumer lag that tells a story: records and seconds behind, the trend, when it will drain,
and a per-partition status judged over a sliding window the way Burrow judges it.

`judge()` is pure (unit-tested on hand-made histories). `LagMonitor` samples a group about once a
second from its own thread, with its own admin client and a consumer that reads the timestamp of
the next unconsumed record (lag in seconds), and keeps the history bounded.

Burrow's rules, adapted to sampled offsets (the admin API shows committed offsets, not each
commit's time): evaluated only while lag > 0, in order, the first that fires wins:
  STOP   the group has no active member: nothing will commit;
  OK     lag reached zero somewhere in the window;
  REWIND the committed offset went back;
  STALL  the committed offset did not move over the whole window;
  WARN   the offset moves but lag never decreased (the consumer is falling behind);
  WARN   kafkalab's rule, not Burrow's: lag went down somewhere, but its trend is up, the partition is
         not draining (the group commits slower than records arrive), and the lag rose over the window
         by more than its largest drop: one dip does not make a growing lag healthy;
  OK     otherwise: lag went down at least once in the window (Burrow's rule). A consumer that keeps up
         in bursts (lag in a sawtooth) stays OK: its drops are as large as its rises; the rule says
         when the trend is up all the same.

Lag hides nothing: every partition of the group's topics is sampled (the topics it has committed
offsets for, and those its active members subscribe to or are assigned). A partition with no commit
yet counts its lag from the log start, as a consumer with auto_offset_reset='earliest' would read it,
and its rule says so; while nothing is committed over a whole window, the judge calls it a STALL.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .runtime import Periodic

STATUSES = ("OK", "WARN", "STALL", "STOP", "REWIND")
SEVERITY = {"OK": 0, "WARN": 1, "REWIND": 2, "STALL": 3, "STOP": 4}   # a group's status: its worst partition's
NO_COMMIT = "no commit yet: lag counted from the log start (as auto_offset_reset='earliest' would read)"


@dataclass(frozen=True)
class Sample:
    t: float            # seconds (wall clock)
    committed: int      # the committed offset, or the log start offset while there is no commit
    end: int
    no_commit: bool = False

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


@dataclass(frozen=True)
class Verdict:
    status: str
    rule: str
    lag: int
    trend: float          # records/s: + growing, - shrinking
    produce_rate: float   # records/s appended to the partition
    consume_rate: float   # records/s committed by the group
    drain_seconds: float  # inf when not draining

    @property
    def drain(self) -> str:
        if self.lag == 0:
            return "drained"
        return "not draining" if math.isinf(self.drain_seconds) else f"{self.drain_seconds:.0f} s"


def _rate(ts: np.ndarray, values: np.ndarray) -> float:
    if len(ts) < 2 or ts[-1] == ts[0]:
        return 0.0
    return float((values[-1] - values[0]) / (ts[-1] - ts[0]))


def _slope(ts: np.ndarray, values: np.ndarray) -> float:
    if len(ts) < 2 or np.ptp(ts) == 0:
        return 0.0
    return float(np.polyfit(ts - ts[0], values, 1)[0])


def judge(samples: list[Sample], group_active: bool = True, min_samples: int = 3) -> Verdict:
    """Status of one partition from its recent samples (oldest first)."""
    if not samples:
        raise ValueError("judge() needs at least one sample")
    ts = np.array([s.t for s in samples], dtype=float)
    committed = np.array([s.committed for s in samples], dtype=float)
    lags = np.array([s.lag for s in samples], dtype=float)
    ends = np.array([s.end for s in samples], dtype=float)
    produce, consume = _rate(ts, ends), _rate(ts, committed)
    lag = samples[-1].lag
    drain = lag / (consume - produce) if consume > produce and lag > 0 else (0.0 if lag == 0 else math.inf)
    note = f"; {NO_COMMIT}" if samples[-1].no_commit else ""
    verdict = lambda status, rule: Verdict(status, rule + note, lag, _slope(ts, lags), produce, consume,  # noqa: E731
                                           drain)

    if lag == 0:
        return verdict("OK", "no lag")
    if not group_active:
        return verdict("STOP", "lag > 0 and the group has no active member: nothing commits")
    if len(samples) < min_samples:
        return verdict("OK", f"collecting samples ({len(samples)}/{min_samples})")
    if (lags == 0).any():
        return verdict("OK", "lag reached zero within the window")
    if all(s.no_commit for s in samples):       # the log start may move (retention): that is not consuming
        return verdict("STALL", f"nothing committed for {ts[-1] - ts[0]:.0f} s while lag > 0")
    if (np.diff(committed) < 0).any():          # also a commit that vanished (expired offsets)
        return verdict("REWIND", "the committed offset went back")
    if (np.diff(committed) == 0).all():
        return verdict("STALL", f"committed offset stuck at {int(committed[-1])} "
                                f"for {ts[-1] - ts[0]:.0f} s while lag > 0")
    steps = np.diff(lags)
    if (steps >= 0).all():
        return verdict("WARN", "offsets move but lag never decreased in the window")
    trend, span = _slope(ts, lags), ts[-1] - ts[0]
    rise, largest_drop = trend * span, float(-steps.min())
    if trend > 0 and math.isinf(drain) and rise > largest_drop:
        return verdict("WARN", f"lag growing {trend:+.0f}/s, not draining: it rose {rise:.0f} over {span:.0f} s, "
                               f"more than its largest drop ({largest_drop:.0f}); Burrow would say OK "
                               "because lag went down once")
    if trend > 0:
        return verdict("OK", f"lag went down at least once in the window; its swings (largest drop "
                             f"{largest_drop:.0f}) outweigh the trend {trend:+.0f}/s")
    return verdict("OK", "lag went down at least once in the window")


@dataclass(frozen=True)
class GroupSnapshot:
    """One look at a group: every partition of its topics, and the group's active member count."""
    committed: dict     # TopicPartition -> committed offset, None when the group has no commit there yet
    log_start: dict     # TopicPartition -> the first offset still in the log
    end: dict           # TopicPartition -> the end offset
    members: int

    @property
    def partitions(self) -> list:
        return sorted(self.end)

    def position(self, tp) -> int:
        """Where the group reads next: its commit, else the log start (auto_offset_reset='earliest')."""
        committed = self.committed[tp]
        return self.log_start[tp] if committed is None else committed

    def lag(self, tp) -> int:
        return max(0, self.end[tp] - self.position(tp))

    def sample(self, tp, t: float) -> Sample:
        return Sample(t, self.position(tp), self.end[tp], no_commit=self.committed[tp] is None)


def _member_topics(member: dict) -> set:
    """Topics a member is assigned or subscribes to (subscriptions cover a rebalance in progress)."""
    topics = set()
    assignment, metadata = member.get("member_assignment"), member.get("member_metadata")
    if isinstance(assignment, dict):           # kafka-python leaves bytes it could not decode
        topics |= {a["topic"] for a in assignment.get("assigned_partitions", [])}
    if isinstance(metadata, dict):
        topics |= set(metadata.get("topics", []))
    return topics


def group_snapshot(admin, group: str) -> GroupSnapshot:
    """Committed, log start and end offsets of every partition of the group's topics: those with a
    committed offset and those its active members are assigned or subscribe to. Partitions of a
    topic that no longer exists are left out (they have no end offset)."""
    from kafka import TopicPartition
    from kafka.admin import OffsetSpec

    found = admin.list_group_offsets({group: None}).get(group, {})
    committed = {tp: om.offset for tp, om in found.items() if om.offset >= 0}
    members = admin.describe_groups([group]).get(group, {}).get("members") or []
    topics = {tp.topic for tp in committed}.union(*(_member_topics(m) for m in members))
    parts = [TopicPartition(t["name"], p["partition_index"])
             for t in (admin.describe_topics(sorted(topics)) if topics else [])
             if t["error_code"] == 0 for p in t["partitions"]]
    if not parts:
        return GroupSnapshot({}, {}, {}, len(members))

    def offsets(spec) -> dict:
        return {tp: o.offset for tp, o in admin.list_partition_offsets({tp: spec for tp in parts}).items()}

    return GroupSnapshot({tp: committed.get(tp) for tp in parts}, offsets(OffsetSpec.EARLIEST),
                         offsets(OffsetSpec.LATEST), len(members))


def record_ages(reader, positions: dict, now: float) -> dict:
    """Seconds since the next unconsumed record of each partition was written, read from its
    timestamp by `reader` (a KafkaConsumer without a group); a partition that gives no record
    within about a second is left out."""
    if not positions:
        return {}
    reader.assign(list(positions))
    for tp, off in positions.items():
        reader.seek(tp, off)
    ages, deadline = {}, time.monotonic() + 1.0
    while len(ages) < len(positions) and time.monotonic() < deadline:
        for tp, records in reader.poll(timeout_ms=200, max_records=len(positions) * 5).items():
            if tp not in ages and records:
                ages[tp] = max(0.0, now - records[0].timestamp / 1000)
                reader.pause(tp)
    reader.resume(*reader.paused())
    return ages


class LagMonitor(Periodic):
    """Samples one group's lag in a background thread; `report()` is the story, `history` the data.

    Parameters
    ----------
    group : the consumer group to watch.
    interval : seconds between samples (at least 0.2).
    window : how many recent samples per partition the judge looks at.
    history : how many samples `history` keeps (for charts).
    name : its name in the registry. Default "lag:<group>".
    **client_overrides : connection settings (kafkalab.client_config) for its admin client.
    """

    tick_on_stop = False

    def __init__(self, group: str, interval: float = 1.0, window: int = 10,
                 history: int = 600, name: str | None = None, **client_overrides):
        if interval < 0.2:
            raise ValueError("sample at most 5 times a second (interval >= 0.2 s)")
        super().__init__(name, interval, default=f"lag:{group}")
        self.group, self.interval, self.window = group, interval, window
        self._overrides = client_overrides
        self._samples: dict = {}                      # TopicPartition -> deque[Sample]
        self._lag_seconds: dict = {}
        self._active = True
        self._lock = threading.Lock()
        self.history = deque(maxlen=history)          # (t, {tp: lag})
        self.error: str | None = None
        self._admin = self._reader = None

    def setup(self) -> None:
        from kafka import KafkaAdminClient, KafkaConsumer

        from .config import client_config
        config = client_config(**self._overrides)
        self._admin = KafkaAdminClient(**config)
        self._reader = KafkaConsumer(**config, group_id=None, enable_auto_commit=False)

    def teardown(self) -> None:
        for client in (self._reader, self._admin):
            if client is not None:
                client.close()

    def tick(self) -> None:
        try:
            self._sample(self._admin, self._reader)
            self.error = None
        except Exception as e:  # shown in report(); the next sample retries
            self.error = f"{type(e).__name__}: {e}"

    def _sample(self, admin, reader) -> None:
        snapshot = group_snapshot(admin, self.group)
        now = time.time()
        ages = record_ages(reader, {tp: snapshot.position(tp) for tp in snapshot.partitions if snapshot.lag(tp)},
                           now)
        with self._lock:
            self._active = snapshot.members > 0
            for tp in snapshot.partitions:
                self._samples.setdefault(tp, deque(maxlen=self.window)).append(snapshot.sample(tp, now))
                self._lag_seconds[tp] = ages.get(tp, 0.0)
            self.history.append((now, {tp: snapshot.lag(tp) for tp in snapshot.partitions}))

    def report(self) -> pd.DataFrame:
        """One row per partition of the group's topics: lag in records and seconds, trend, drain
        estimate, status, rule. `committed` is <NA> where the group has no commit yet (the rule says
        how its lag is counted)."""
        columns = ["topic", "partition", "committed", "end_offset", "lag", "lag_seconds",
                   "trend_per_s", "produce_rate", "consume_rate", "drain", "status", "rule"]
        with self._lock:
            items = [(tp, list(s), self._lag_seconds.get(tp, 0.0)) for tp, s in self._samples.items()]
            active = self._active
        rows = []
        for tp, samples, age in sorted(items):
            v = judge(samples, group_active=active)
            rows.append({"topic": tp.topic, "partition": tp.partition,
                         "committed": None if samples[-1].no_commit else samples[-1].committed,
                         "end_offset": samples[-1].end,
                         "lag": v.lag, "lag_seconds": round(age, 1) if v.lag else 0.0,
                         "trend_per_s": round(v.trend, 1), "produce_rate": round(v.produce_rate, 1),
                         "consume_rate": round(v.consume_rate, 1), "drain": v.drain,
                         "status": v.status, "rule": v.rule})
        return pd.DataFrame(rows, columns=columns).astype({"committed": "Int64"})

    def status(self) -> str:
        """The worst partition status (the group's status, as Burrow reports it)."""
        report = self.report()
        if report.empty:
            return "OK"
        return max(report["status"], key=SEVERITY.__getitem__)
