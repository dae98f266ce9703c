"""Event-time windows: tumbling, hopping and session, `[start, end)`, aligned to the epoch.

Time is the records' own timestamps (milliseconds). Stream time is the largest timestamp seen;
a window closes once stream time passes its end plus the grace period, and is then emitted
once, final. A record that only belongs to closed windows is *late*: it is counted and kept
(bounded) for display, never silently dropped. Work per record is proportional to the windows
it falls in, so history is never recomputed.

A quiet stream never advances stream time, so its last window would stay open forever (the most
common complaint about stream processors' windows). `idle_timeout` closes every open window
once no record has arrived for that long on the wall clock; `flush()` does the same at shutdown.
"""
from __future__ import annotations

import heapq
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Tumbling:
    size_ms: int

    def __post_init__(self):
        if self.size_ms <= 0:
            raise ValueError(f"window size must be positive, got {self.size_ms} ms")

    def windows_for(self, ts: int) -> list[tuple[int, int]]:
        start = ts - ts % self.size_ms
        return [(start, start + self.size_ms)]


@dataclass(frozen=True)
class Hopping:
    size_ms: int
    advance_ms: int

    def __post_init__(self):
        if self.size_ms <= 0 or self.advance_ms <= 0:
            raise ValueError("window size and advance must be positive")
        if self.advance_ms > self.size_ms:
            raise ValueError(f"advance {self.advance_ms} ms > size {self.size_ms} ms would leave gaps")

    def windows_for(self, ts: int) -> list[tuple[int, int]]:
        last = ts - ts % self.advance_ms
        first = last - self.size_ms // self.advance_ms * self.advance_ms
        # like Kafka Streams' TimeWindows, no window starts before the epoch
        return [(s, s + self.size_ms) for s in range(max(first, 0), last + 1, self.advance_ms)
                if s <= ts < s + self.size_ms]


@dataclass(frozen=True)
class Session:
    """Records of one key closer than `gap_ms` apart form one session `[first, last + gap)`."""
    gap_ms: int

    def __post_init__(self):
        if self.gap_ms <= 0:
            raise ValueError(f"session gap must be positive, got {self.gap_ms} ms")


@dataclass
class Window:
    key: Hashable
    start: int
    end: int
    count: int = 0
    sum: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    final: bool = False

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else math.nan

    def add(self, value: float | None) -> None:
        self.count += 1
        if value is not None:
            self.sum += value
            self.min = min(self.min, value)
            self.max = max(self.max, value)

    def merge(self, other: "Window") -> None:
        self.start, self.end = min(self.start, other.start), max(self.end, other.end)
        self.count += other.count
        self.sum += other.sum
        self.min, self.max = min(self.min, other.min), max(self.max, other.max)

    def as_row(self) -> dict:
        return {"key": self.key, "start": self.start, "end": self.end, "count": self.count,
                "sum": self.sum, "mean": self.mean,
                "min": self.min if self.count and self.min != math.inf else math.nan,
                "max": self.max if self.count and self.max != -math.inf else math.nan,
                "final": self.final}


@dataclass
class Late:
    key: Hashable
    timestamp: int
    stream_time: int
    value: Any = None


class EventTimeWindows:
    """Incremental windowed aggregation (count, sum, mean, min, max) per key.

    Stream time is kept per partition, as Kafka Streams keeps it per task: a key lives in one
    partition, so records of other partitions that run ahead never make its records late.
    Closing is driven by a heap of deadlines, so a record costs O(log n), not a scan.
    """

    def __init__(self, kind: Tumbling | Hopping | Session, grace_ms: int = 0,
                 idle_timeout: float | None = None, keep_late: int = 1000,
                 clock: Callable[[], float] = time.monotonic):
        if grace_ms < 0:
            raise ValueError("grace must be >= 0")
        if idle_timeout is not None and idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive (seconds) or None")
        self.kind, self.grace_ms, self.idle_timeout, self.clock = kind, grace_ms, idle_timeout, clock
        self.late_count = 0
        self.late: deque = deque(maxlen=keep_late)
        self._stream: dict = {}        # partition -> stream time
        self._open: dict = {}          # (partition, key, start) -> Window
        self._sessions: dict = {}      # (partition, key) -> [Window] (session windows only)
        self._heaps: dict = {}         # partition -> [(deadline, seq, id)]
        self._seq = 0
        self._last_arrival: float | None = None

    @property
    def stream_time(self) -> int:
        """The newest timestamp seen in any partition (-1 before the first record)."""
        return max(self._stream.values(), default=-1)

    # -- feeding ------------------------------------------------------------------------
    def add(self, timestamp: int, key: Hashable = None, value: float | None = None,
            partition: int | None = None) -> list[Window]:
        """Account one record; return the windows this closed (final results), oldest first."""
        ts = int(timestamp)
        self._last_arrival = self.clock()
        st = self._stream.get(partition, -1)
        if isinstance(self.kind, Session):
            accepted = self._add_session(ts, key, value, partition, st)
        else:
            accepted = False
            for start, end in self.kind.windows_for(ts):
                if end + self.grace_ms <= st:
                    continue  # that window has been emitted already
                wid = (partition, key, start)
                w = self._open.get(wid)
                if w is None:
                    w = self._open[wid] = Window(key, start, end)
                    self._schedule(partition, w, wid)
                w.add(value)
                accepted = True
        if not accepted:
            self.late_count += 1
            self.late.append(Late(key, ts, st, value))
        if ts > st:
            self._stream[partition] = ts
            return self._close(partition)
        return []

    def _schedule(self, partition, w: Window, wid) -> None:
        self._seq += 1
        heapq.heappush(self._heaps.setdefault(partition, []), (w.end + self.grace_ms, self._seq, wid))

    def _add_session(self, ts: int, key, value, partition, st: int) -> bool:
        gap = self.kind.gap_ms
        sessions = self._sessions.setdefault((partition, key), [])
        touching = [w for w in sessions if w.start - gap <= ts < w.end]
        if not touching and ts + gap + self.grace_ms <= st:
            return False  # its own session would already be closed
        mine = Window(key, ts, ts + gap)
        mine.add(value)
        for w in touching:
            mine.merge(w)
            sessions.remove(w)
            del self._open[(partition, key, w.start)]
        sessions.append(mine)
        wid = (partition, key, mine.start)
        self._open[wid] = mine
        self._schedule(partition, mine, wid)
        return True

    def add_frame(self, df: pd.DataFrame, timestamp: str = "timestamp", key: str | None = "key",
                  value: str | Callable | None = None,
                  partition: str | None = "partition") -> list[Window]:
        """Feed a batch (for example one from LiveConsumer); timestamps in ms or as datetimes.

        value: a column of numbers, or a callable applied to each record's `value` (for JSON
        records, e.g. `lambda v: v["reading"]`). Tumbling and hopping windows take the batch in a
        few vectorised steps; the result is the same as adding its records one by one.
        """
        if df.empty:
            return []
        ts = df[timestamp]
        if pd.api.types.is_datetime64_any_dtype(ts):
            epoch = pd.Timestamp(0, tz="UTC") if ts.dt.tz is not None else pd.Timestamp(0)
            ts = (ts - epoch) // pd.Timedelta(1, "ms")  # whatever the unit (ns, us, ms)
        n = len(df)
        keys = _column(df[key]) if key else [None] * n
        parts = _column(df[partition]) if partition and partition in df else [None] * n
        if value is None:
            values = [None] * n
        elif callable(value):
            values = [value(v) for v in df["value"].tolist()]
        else:
            values = df[value].tolist()
        ts = ts.to_numpy(dtype="int64")
        if isinstance(self.kind, Session):
            closed = []
            for t, k, v, p in zip(ts.tolist(), keys, values, parts):
                closed += self.add(t, k, v, p)
            return closed
        return self._add_batch(ts, keys, values, parts)

    def _add_batch(self, ts: np.ndarray, keys: list, values: list, parts: list) -> list[Window]:
        self._last_arrival = self.clock()
        n = len(ts)
        vals = np.array(values, dtype=float)  # None -> NaN
        codes, uniques = _codes(parts)
        # stream time of its partition just before each record arrives
        before = np.empty(n, dtype=np.int64)
        for c, p in enumerate(uniques):
            idx = np.flatnonzero(codes == c)
            run = np.maximum.accumulate(ts[idx])
            before[idx] = np.maximum(np.concatenate(([-1], run[:-1])), self._stream.get(p, -1))
        size = self.kind.size_ms
        step = getattr(self.kind, "advance_ms", size)
        last = ts - ts % step
        rec, starts = [], []
        for k in range(size // step + 1):
            s = last - k * step
            ok = (s >= 0) & (s <= ts) & (ts < s + size) & (s + size + self.grace_ms > before)
            rec.append(np.flatnonzero(ok))
            starts.append(s[ok])
        rec, starts = np.concatenate(rec), np.concatenate(starts)
        late = np.ones(n, dtype=bool)
        late[rec] = False
        for i in np.flatnonzero(late):
            self.late_count += 1
            self.late.append(Late(keys[i], int(ts[i]), int(before[i]), values[i]))
        if len(rec):
            # one group per (partition, key, window start), aggregated with bincount
            kcodes, key_of = _codes(keys)
            start_of, s_inv = np.unique(starts, return_inverse=True)
            gid = (codes[rec] * len(key_of) + kcodes[rec]) * len(start_of) + s_inv
            groups, inv = np.unique(gid, return_inverse=True)
            v = vals[rec]
            has = ~np.isnan(v)
            count = np.bincount(inv, minlength=len(groups))
            total = np.bincount(inv[has], weights=v[has], minlength=len(groups))
            lo = np.full(len(groups), np.inf)
            hi = np.full(len(groups), -np.inf)
            np.minimum.at(lo, inv[has], v[has])
            np.maximum.at(hi, inv[has], v[has])
            for g, gcount, gtotal, glo, ghi in zip(groups.tolist(), count.tolist(), total.tolist(),
                                                   lo.tolist(), hi.tolist()):
                rest, si = divmod(g, len(start_of))
                c, kc = divmod(rest, len(key_of))
                p, k, start = uniques[c], key_of[kc], int(start_of[si])
                wid = (p, k, start)
                w = self._open.get(wid)
                if w is None:
                    w = self._open[wid] = Window(k, start, start + size)
                    self._schedule(p, w, wid)
                w.count += gcount
                w.sum += gtotal
                w.min, w.max = min(w.min, glo), max(w.max, ghi)
        closed = []
        for c, p in enumerate(uniques):
            newest = int(ts[codes == c].max())
            if newest > self._stream.get(p, -1):
                self._stream[p] = newest
                closed += self._close(p)
        return sorted(closed, key=lambda w: (w.end, w.start, str(w.key)))

    # -- closing ------------------------------------------------------------------------
    def _close(self, partition) -> list[Window]:
        st, heap, out = self._stream.get(partition, -1), self._heaps.get(partition, []), []
        while heap and heap[0][0] <= st:
            deadline, _, wid = heapq.heappop(heap)
            w = self._open.get(wid)
            if w is None or w.end + self.grace_ms != deadline:
                continue  # merged into another session, or emitted already
            del self._open[wid]
            if isinstance(self.kind, Session):
                self._sessions[(partition, w.key)].remove(w)
            w.final = True
            out.append(w)
        return sorted(out, key=lambda w: (w.end, w.start, str(w.key)))

    def poll_idle(self) -> list[Window]:
        """Close everything if the stream has been quiet for `idle_timeout` seconds (wall clock)."""
        if (self.idle_timeout is None or self._last_arrival is None or not self._open
                or self.clock() - self._last_arrival < self.idle_timeout):
            return []
        return self.flush()

    def flush(self) -> list[Window]:
        """Emit every open window as final (at shutdown, or when the stream went idle).
        Stream time jumps past them, so a record for one of them arriving later counts as late."""
        out = []
        for partition in {wid[0] for wid in self._open}:
            horizon = max(w.end + self.grace_ms for wid, w in self._open.items() if wid[0] == partition)
            self._stream[partition] = max(self._stream.get(partition, -1), horizon)
            out += self._close(partition)
        return sorted(out, key=lambda w: (w.end, w.start, str(w.key)))

    def open_windows(self) -> list[Window]:
        """Current partial results, for live charts."""
        return sorted(self._open.values(), key=lambda w: (w.start, str(w.key)))


def _column(series: pd.Series) -> list:
    """A column as a list, missing values (NaN from pandas) as None."""
    values = series.tolist()
    if series.hasnans:
        values = [None if (isinstance(x, float) and math.isnan(x)) else x for x in values]
    return values


def _codes(items: list) -> tuple[np.ndarray, list]:
    """Integer codes for hashable items, None included, and the items in code order."""
    index: dict = {}
    codes = np.fromiter((index.setdefault(x, len(index)) for x in items), dtype=np.int64,
                        count=len(items))
    return codes, list(index)


def to_frame(windows: Iterable[Window]) -> pd.DataFrame:
    """Windows as a DataFrame with datetime start/end columns."""
    df = pd.DataFrame([w.as_row() for w in windows],
                      columns=["key", "start", "end", "count", "sum", "mean", "min", "max", "final"])
    for col in ("start", "end"):
        df[col] = pd.to_datetime(df[col], unit="ms", utc=True)
    return df
