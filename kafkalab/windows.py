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

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable

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
        return [(s, s + self.size_ms) for s in range(first, last + 1, self.advance_ms)
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


@dataclass
class EventTimeWindows:
    """Incremental windowed aggregation (count, sum, mean, min, max) per key."""
    kind: Tumbling | Hopping | Session
    grace_ms: int = 0
    idle_timeout: float | None = None
    keep_late: int = 1000
    clock: Callable[[], float] = time.monotonic
    stream_time: int = -1
    late_count: int = 0
    late: deque = field(init=False)
    _open: dict = field(init=False, default_factory=dict)
    _last_arrival: float | None = field(init=False, default=None)

    def __post_init__(self):
        if self.grace_ms < 0:
            raise ValueError("grace must be >= 0")
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive (seconds) or None")
        self.late = deque(maxlen=self.keep_late)

    # -- feeding ------------------------------------------------------------------------
    def add(self, timestamp: int, key: Hashable = None, value: float | None = None) -> list[Window]:
        """Account one record; return the windows this closed (final results), oldest first."""
        ts = int(timestamp)
        self._last_arrival = self.clock()
        if isinstance(self.kind, Session):
            accepted = self._add_session(ts, key, value)
        else:
            accepted = False
            for start, end in self.kind.windows_for(ts):
                if end + self.grace_ms <= self.stream_time:
                    continue  # that window has been emitted already
                self._open.setdefault((key, start), Window(key, start, end)).add(value)
                accepted = True
        if not accepted:
            self.late_count += 1
            self.late.append(Late(key, ts, self.stream_time, value))
        self.stream_time = max(self.stream_time, ts)
        return self._close(self.stream_time)

    def _add_session(self, ts: int, key, value) -> bool:
        gap = self.kind.gap_ms
        # a session that could still absorb this record: not closed, and within the gap
        mine = Window(key, ts, ts + gap)
        mine.add(value)
        touching = [k for k, w in self._open.items()
                    if k[0] == key and w.start - gap <= ts < w.end]
        if not touching and ts + gap + self.grace_ms <= self.stream_time:
            return False  # its own session would already be closed
        for k in touching:
            mine.merge(self._open.pop(k))
        self._open[(key, mine.start)] = mine
        return True

    def add_frame(self, df: pd.DataFrame, timestamp: str = "timestamp", key: str | None = "key",
                  value: str | Callable | None = None) -> list[Window]:
        """Feed a batch (for example one from LiveConsumer); timestamps in ms or as datetimes."""
        if df.empty:
            return []
        ts = df[timestamp]
        if pd.api.types.is_datetime64_any_dtype(ts):
            epoch = pd.Timestamp(0, tz="UTC") if ts.dt.tz is not None else pd.Timestamp(0)
            ts = (ts - epoch) // pd.Timedelta(1, "ms")  # whatever the unit (ns, us, ms)
        keys = df[key] if key else [None] * len(df)
        if value is None:
            values: Iterable = [None] * len(df)
        elif callable(value):
            values = df.apply(value, axis=1)
        else:
            values = df[value]
        closed = []
        for t, k, v in zip(ts.to_numpy(), keys, values):
            closed += self.add(int(t), k, v)
        return closed

    # -- closing ------------------------------------------------------------------------
    def _deadline(self, w: Window) -> int:
        # a session's end already includes the inactivity gap after its last record
        return w.end + self.grace_ms

    def _close(self, stream_time: int) -> list[Window]:
        done = [k for k, w in self._open.items() if self._deadline(w) <= stream_time]
        out = []
        for k in done:
            w = self._open.pop(k)
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
        if not self._open:
            return []
        horizon = max(self._deadline(w) for w in self._open.values())
        self.stream_time = max(self.stream_time, horizon)
        return self._close(self.stream_time)

    def open_windows(self) -> list[Window]:
        """Current partial results, for live charts."""
        return sorted(self._open.values(), key=lambda w: (w.start, str(w.key)))


def to_frame(windows: Iterable[Window]) -> pd.DataFrame:
    """Windows as a DataFrame with datetime start/end columns."""
    df = pd.DataFrame([w.as_row() for w in windows],
                      columns=["key", "start", "end", "count", "sum", "mean", "min", "max", "final"])
    for col in ("start", "end"):
        df[col] = pd.to_datetime(df[col], unit="ms", utc=True)
    return df
