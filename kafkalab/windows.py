"""Event-time windows: fixed (tumbling and hopping) and session windows, `[start, end)`.

Time is the records' own timestamps (milliseconds). Stream time is the largest timestamp seen;
a window closes once stream time passes its end plus the grace period, and is then emitted
once, final. A record that only belongs to closed windows is *late*: it is counted and kept
(bounded) for display, never silently dropped. Work per record is proportional to the windows
it falls in, so history is never recomputed.

A tumbling window is a hopping window whose advance equals its size, so both take one path
(`EventTimeWindows`); session windows grow and merge per key and have their own class
(`SessionWindows`). Both keep stream time per partition, like Kafka Streams' tasks.

A quiet stream never advances stream time, so its last window would stay open forever (the most
common complaint about stream processors' windows). `idle_timeout` closes every open window
once no record has arrived for that long on the wall clock; `flush()` does the same at shutdown.
`inspect()` answers "why is this window still open?": per partition, its stream time, each open
window's close deadline and how far stream time is from it, the idle-timeout countdown, and the
late records with the windows they missed.

The windows are safe to read from one thread while another feeds them (one lock each).
"""
from __future__ import annotations

import heapq
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Hopping:
    """Windows of `size_ms` starting every `advance_ms` (multiples of it since the epoch): a
    record lands in size / advance windows.

    Parameters
    ----------
    size_ms : the window length in milliseconds.
    advance_ms : how far each window starts after the previous one; at most size_ms (no gaps).
    """
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


class Tumbling(Hopping):
    """Back-to-back windows of `size_ms` (a hopping window that advances by its size): each
    record lands in exactly one.

    Parameters
    ----------
    size_ms : the window length in milliseconds.
    """

    def __init__(self, size_ms: int):
        super().__init__(size_ms, size_ms)

    def __repr__(self) -> str:
        return f"Tumbling(size_ms={self.size_ms})"


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
    stream_time: int        # of its partition when it arrived
    value: Any = None
    partition: Any = None


class _Windows:
    """What fixed and session windows share: stream time per partition, closing by a heap of
    deadlines (a record costs O(log n), not a scan), late records, idle close and flush."""

    def __init__(self, grace_ms: int, idle_timeout: float | None, keep_late: int,
                 clock: Callable[[], float]):
        if grace_ms < 0:
            raise ValueError("grace must be >= 0")
        if idle_timeout is not None and idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive (seconds) or None")
        self.grace_ms, self.idle_timeout, self.clock = grace_ms, idle_timeout, clock
        self.late_count = 0
        self.late: deque = deque(maxlen=keep_late)
        self._stream: dict = {}        # partition -> stream time
        self._open: dict = {}          # (partition, key, start) -> Window
        self._heaps: dict = {}         # partition -> [(deadline, seq, id)]
        self._seq = 0
        self._last_arrival: float | None = None
        self._lock = threading.RLock()

    @property
    def stream_time(self) -> int:
        """The newest timestamp seen in any partition (-1 before the first record)."""
        return max(self._stream.values(), default=-1)

    def add(self, timestamp: int, key: Hashable = None, value: float | None = None,
            partition: int | None = None) -> list[Window]:
        """Account one record; return the windows this closed (final results), oldest first."""
        with self._lock:
            ts = int(timestamp)
            self._last_arrival = self.clock()
            st = self._stream.get(partition, -1)
            if not self._place(ts, key, value, partition, st):
                self.late_count += 1
                self.late.append(Late(key, ts, st, value, partition))
            if ts > st:
                self._stream[partition] = ts
                return self._close(partition)
            return []

    def _place(self, ts: int, key, value, partition, st: int) -> bool:
        """Put one record in its windows; False if they are all closed (the record is late)."""
        raise NotImplementedError

    def add_frame(self, df: pd.DataFrame, timestamp: str = "timestamp", key: str | None = "key",
                  value: str | Callable | None = None,
                  partition: str | None = "partition") -> list[Window]:
        """Feed a batch (for example one from LiveConsumer); timestamps in ms or as datetimes.

        value: a column of numbers, or a callable applied to each record's `value` (for JSON
        records, e.g. `lambda v: v["reading"]`). The result is the same as adding the batch's
        records one by one.
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
        with self._lock:
            return self._add_columns(ts.to_numpy(dtype="int64"), keys, values, parts)

    def _add_columns(self, ts: np.ndarray, keys: list, values: list, parts: list) -> list[Window]:
        closed = []
        for t, k, v, p in zip(ts.tolist(), keys, values, parts):
            closed += self.add(t, k, v, p)
        return closed

    def _schedule(self, partition, w: Window, wid) -> None:
        self._seq += 1
        heapq.heappush(self._heaps.setdefault(partition, []), (w.end + self.grace_ms, self._seq, wid))

    def _close(self, partition) -> list[Window]:
        st, heap, out = self._stream.get(partition, -1), self._heaps.get(partition, []), []
        while heap and heap[0][0] <= st:
            deadline, _, wid = heapq.heappop(heap)
            w = self._open.get(wid)
            if w is None or w.end + self.grace_ms != deadline:
                continue  # merged into another session, or emitted already
            del self._open[wid]
            self._closed(partition, w)
            w.final = True
            out.append(w)
        return sorted(out, key=lambda w: (w.end, w.start, str(w.key)))

    def _closed(self, partition, w: Window) -> None:
        """A window left the open set (sessions forget it)."""

    def poll_idle(self) -> list[Window]:
        """Close everything if the stream has been quiet for `idle_timeout` seconds (wall clock)."""
        with self._lock:
            if self._idle_left() != 0.0 or not self._open:
                return []
            return self.flush()

    def _idle_left(self) -> float | None:
        """Seconds of quiet before poll_idle() closes everything (None: no idle timeout, or no record yet)."""
        if self.idle_timeout is None or self._last_arrival is None:
            return None
        return max(0.0, self.idle_timeout - (self.clock() - self._last_arrival))

    def flush(self) -> list[Window]:
        """Emit every open window as final (at shutdown, or when the stream went idle).
        Stream time jumps past them, so a record for one of them arriving later counts as late."""
        with self._lock:
            out = []
            for partition in {wid[0] for wid in self._open}:
                horizon = max(w.end + self.grace_ms for wid, w in self._open.items() if wid[0] == partition)
                self._stream[partition] = max(self._stream.get(partition, -1), horizon)
                out += self._close(partition)
            return sorted(out, key=lambda w: (w.end, w.start, str(w.key)))

    def open_windows(self) -> list[Window]:
        """Current partial results, for live charts."""
        with self._lock:
            return sorted(self._open.values(), key=lambda w: (w.start, str(w.key)))

    def stream_times(self) -> dict:
        """Stream time (ms) of each partition seen so far."""
        with self._lock:
            return dict(self._stream)

    def _missed(self, ts: int) -> tuple[int, int]:
        """The newest window a late record at `ts` would have joined: [start, end)."""
        raise NotImplementedError

    def _inspection(self, newest_late: int | None = None) -> "Inspection":
        """One consistent snapshot for the inspector, in plain tuples (ms): the window chart's
        inspector reads it several times a second, so no DataFrame is built for it."""
        with self._lock:
            open_rows = sorted(((p, w.key, w.start, w.end, w.end + self.grace_ms, self._stream.get(p, -1), w.count)
                                for (p, _, _), w in self._open.items()),
                               key=lambda r: (str(r[0]), r[2], str(r[1])))
            kept = list(self.late)[-newest_late:] if newest_late else list(self.late)
            late_rows = []
            for r in kept:
                start, end = self._missed(r.timestamp)
                late_rows.append((r.partition, r.key, start, end, end + self.grace_ms, r.stream_time, r.timestamp))
            return Inspection(dict(self._stream), self._idle_left(), open_rows, late_rows, len(self.late))

    def inspect(self) -> pd.DataFrame:
        """Why each window is still open, and which windows the late records missed.

        One row per open window (state "open") and per kept late record (state "late"): its
        partition and key, the window [start, end), `closes_at` = end + grace, the partition's
        `stream_time` (for a late record: when it arrived), `to_close_ms` = closes_at - stream_time
        (how much newer a record must come before the window closes; negative for a late record:
        how long before it arrived its window had closed), the records counted, the late record's
        own `timestamp`, `idle_close_s` (seconds of quiet left before the idle timeout closes
        everything; NaN without one) and `why` in words."""
        snap = self._inspection()
        idle, rows = snap.idle_left, []
        for partition, key, start, end, deadline, st, count in snap.open:
            why = (f"stream time of partition {partition} is {deadline - st} ms short of end + grace "
                   f"({self.grace_ms} ms): a record stamped at or after closes_at closes it")
            if idle is None:
                why += "; no idle timeout" if self.idle_timeout is None else ""
            elif idle > 0:
                why += f"; the idle timeout closes it after {idle:.1f} s more of quiet"
            else:
                why += f"; quiet for over {self.idle_timeout:g} s: the next poll_idle() closes it"
            rows.append(("open", partition, key, start, end, deadline, st, deadline - st, count, None, idle, why))
        for partition, key, start, end, deadline, st, ts in snap.late:
            rows.append(("late", partition, key, start, end, deadline, st, deadline - st, 1, ts, idle,
                         f"stream time of partition {partition} had passed its window's end + grace "
                         f"by {st - deadline} ms when it arrived"))
        df = pd.DataFrame(rows, columns=["state", "partition", "key", "start", "end", "closes_at", "stream_time",
                                         "to_close_ms", "count", "timestamp", "idle_close_s", "why"])
        for col in ("start", "end", "closes_at", "stream_time", "timestamp"):
            df[col] = pd.to_datetime(df[col], unit="ms", utc=True)
        return df.astype({"idle_close_s": float}).round({"idle_close_s": 1})


@dataclass(frozen=True)
class Inspection:
    """A snapshot of a window set for its inspector (times in ms)."""
    stream: dict                # partition -> stream time
    idle_left: float | None     # seconds of quiet before the idle timeout closes everything
    open: list                  # (partition, key, start, end, closes_at, stream_time, count)
    late: list                  # (partition, key, start, end, closes_at, stream_time, timestamp), oldest first
    late_kept: int              # late records kept in all (`late` may hold only the newest)


class EventTimeWindows(_Windows):
    """Incremental tumbling or hopping windows per key: count, sum, mean, min and max.

    Stream time is kept per partition, as Kafka Streams keeps it per task: a key lives in one
    partition, so records of other partitions that run ahead never make its records late.

    Parameters
    ----------
    kind : Tumbling(size_ms) or Hopping(size_ms, advance_ms). For session windows use
        SessionWindows.
    grace_ms : how long after its end (in stream time) a window still accepts records.
    idle_timeout : seconds of wall-clock quiet after which poll_idle() closes every open
        window; None waits for stream time.
    keep_late : how many late records `late` keeps (all are counted in `late_count`).
    clock : the wall clock for idle_timeout (a fake one in tests).
    """

    def __init__(self, kind: Hopping, grace_ms: int = 0, idle_timeout: float | None = None,
                 keep_late: int = 1000, clock: Callable[[], float] = time.monotonic):
        if not isinstance(kind, Hopping):
            raise TypeError(f"kind must be Tumbling(size_ms) or Hopping(size_ms, advance_ms), got {kind!r}"
                            " (session windows: SessionWindows(gap_ms))")
        super().__init__(grace_ms, idle_timeout, keep_late, clock)
        self.kind = kind

    def _place(self, ts: int, key, value, partition, st: int) -> bool:
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
        return accepted

    def _missed(self, ts: int) -> tuple[int, int]:
        return self.kind.windows_for(ts)[-1]

    def _add_columns(self, ts: np.ndarray, keys: list, values: list, parts: list) -> list[Window]:
        """The batch in a few vectorised steps (a unit test proves it equal to add() per record)."""
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
        size, step = self.kind.size_ms, self.kind.advance_ms
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
            self.late.append(Late(keys[i], int(ts[i]), int(before[i]), values[i], parts[i]))
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


class SessionWindows(_Windows):
    """Session windows per key: records closer than `gap_ms` apart form one session
    `[first, last + gap)`; a record that bridges two sessions merges them.

    Parameters
    ----------
    gap_ms : the inactivity gap that ends a session, in milliseconds.
    grace_ms, idle_timeout, keep_late, clock : as for EventTimeWindows.
    """

    def __init__(self, gap_ms: int, grace_ms: int = 0, idle_timeout: float | None = None,
                 keep_late: int = 1000, clock: Callable[[], float] = time.monotonic):
        if gap_ms <= 0:
            raise ValueError(f"session gap must be positive, got {gap_ms} ms")
        super().__init__(grace_ms, idle_timeout, keep_late, clock)
        self.gap_ms = gap_ms
        self._sessions: dict = {}      # (partition, key) -> [Window]

    def _place(self, ts: int, key, value, partition, st: int) -> bool:
        gap = self.gap_ms
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

    def _closed(self, partition, w: Window) -> None:
        self._sessions[(partition, w.key)].remove(w)

    def _missed(self, ts: int) -> tuple[int, int]:
        return ts, ts + self.gap_ms


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


def combine_partitions(windows: Iterable[Window]) -> list[Window]:
    """One window per (key, start): windows are kept per partition (stream time is), so a key
    that spans partitions (e.g. a field, not the record key) has one partial window in each."""
    combined: dict = {}
    for w in windows:
        c = combined.get((w.key, w.start))
        if c is None:
            combined[(w.key, w.start)] = Window(w.key, w.start, w.end, w.count, w.sum, w.min, w.max,
                                                w.final)
        else:
            c.merge(w)
            c.final = c.final and w.final
    return list(combined.values())


def windows_frame(windows: Iterable[Window]) -> pd.DataFrame:
    """Windows as a DataFrame with datetime start/end columns."""
    df = pd.DataFrame([w.as_row() for w in windows],
                      columns=["key", "start", "end", "count", "sum", "mean", "min", "max", "final"])
    for col in ("start", "end"):
        df[col] = pd.to_datetime(df[col], unit="ms", utc=True)
    return df
