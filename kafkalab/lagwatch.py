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
  OK     otherwise: lag went down at least once in the window (Burrow judges growth by that, so a
         consumer that keeps up in bursts is OK even while the trend is up; the trend column shows it).
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


@dataclass(frozen=True)
class Sample:
    t: float            # seconds (wall clock)
    committed: int
    end: int

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
    verdict = lambda status, rule: Verdict(status, rule, lag, _slope(ts, lags), produce, consume, drain)  # noqa: E731

    if lag == 0:
        return verdict("OK", "no lag")
    if not group_active:
        return verdict("STOP", "lag > 0 and the group has no active member: nothing commits")
    if len(samples) < min_samples:
        return verdict("OK", f"collecting samples ({len(samples)}/{min_samples})")
    if (lags == 0).any():
        return verdict("OK", "lag reached zero within the window")
    if (np.diff(committed) < 0).any():
        return verdict("REWIND", "the committed offset went back")
    if (np.diff(committed) == 0).all():
        return verdict("STALL", f"committed offset stuck at {int(committed[-1])} "
                                f"for {ts[-1] - ts[0]:.0f} s while lag > 0")
    if (np.diff(lags) >= 0).all():
        return verdict("WARN", "offsets move but lag never decreased in the window")
    return verdict("OK", "lag went down at least once in the window")


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
        from kafka.admin import OffsetSpec
        try:
            self._sample(self._admin, self._reader, OffsetSpec)
            self.error = None
        except Exception as e:  # shown in report(); the next sample retries
            self.error = f"{type(e).__name__}: {e}"

    def _sample(self, admin, reader, OffsetSpec) -> None:
        committed = admin.list_group_offsets({self.group: None}).get(self.group, {})
        committed = {tp: om.offset for tp, om in committed.items() if om.offset >= 0}
        group = admin.describe_groups([self.group]).get(self.group, {})
        active = bool(group.get("members"))
        now = time.time()
        ends = ({tp: o.offset for tp, o in admin.list_partition_offsets(
            {tp: OffsetSpec.LATEST for tp in committed}).items()} if committed else {})
        ages = self._ages(reader, {tp: off for tp, off in committed.items() if ends[tp] > off}, now)
        with self._lock:
            self._active = active
            for tp, off in committed.items():
                self._samples.setdefault(tp, deque(maxlen=self.window)).append(
                    Sample(now, off, ends[tp]))
                self._lag_seconds[tp] = ages.get(tp, 0.0)
            self.history.append((now, {tp: max(0, ends[tp] - off) for tp, off in committed.items()}))

    @staticmethod
    def _ages(reader, positions: dict, now: float) -> dict:
        """Seconds since the next unconsumed record was written, read from its timestamp."""
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

    def report(self) -> pd.DataFrame:
        """One row per partition: lag in records and seconds, trend, drain estimate, status, rule."""
        columns = ["topic", "partition", "committed", "end_offset", "lag", "lag_seconds",
                   "trend_per_s", "produce_rate", "consume_rate", "drain", "status", "rule"]
        with self._lock:
            items = [(tp, list(s), self._lag_seconds.get(tp, 0.0)) for tp, s in self._samples.items()]
            active = self._active
        rows = []
        for tp, samples, age in sorted(items):
            v = judge(samples, group_active=active)
            rows.append({"topic": tp.topic, "partition": tp.partition,
                         "committed": samples[-1].committed, "end_offset": samples[-1].end,
                         "lag": v.lag, "lag_seconds": round(age, 1) if v.lag else 0.0,
                         "trend_per_s": round(v.trend, 1), "produce_rate": round(v.produce_rate, 1),
                         "consume_rate": round(v.consume_rate, 1), "drain": v.drain,
                         "status": v.status, "rule": v.rule})
        return pd.DataFrame(rows, columns=columns)

    def status(self) -> str:
        """The worst partition status (the group's status, as Burrow reports it)."""
        report = self.report()
        if report.empty:
            return "OK"
        order = {"OK": 0, "WARN": 1, "REWIND": 2, "STALL": 3, "STOP": 4}
        return max(report["status"], key=order.__getitem__)
