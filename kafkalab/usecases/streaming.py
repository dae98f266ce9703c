"""Multi-source streaming: social posts and IoT readings, windowed by event time per source.

Fixes to the cheat sheet's aggregator: no Murmur2Partitioner import (removed in kafka-python
2.0; the default partitioner is murmur2); events carry their own time and windows close on it;
the last window is emitted at stop; offsets are committed only after a batch is processed
(LiveConsumer does that) instead of every 100 records with the tail never committed.
"""
from __future__ import annotations

import random

import numpy as np
import pandas as pd

from ..windows import EventTimeWindows, Hopping, Tumbling, Window, combine_partitions

WORDS = {1: ["love", "great", "fast", "happy"], -1: ["hate", "slow", "broken", "sad"], 0: ["ok", "meh"]}


def social_post(i: int, rnd: random.Random, users: int = 50) -> tuple[str, dict]:
    """(key, value): keyed by user, with a sentiment in [-1, 1] derived from its words."""
    mood = rnd.choice([1, 1, 0, -1])
    words = rnd.sample(WORDS[mood], k=min(2, len(WORDS[mood])))
    user = f"user-{rnd.randint(1, users)}"
    return user, {"source": "social", "user": user, "text": " ".join(words),
                  "sentiment": round(mood * rnd.uniform(0.5, 1.0), 3)}


def iot_reading(i: int, rnd: random.Random, devices: int = 20) -> tuple[str, dict]:
    """(key, value): keyed by device, a temperature reading."""
    device = f"device-{rnd.randint(1, devices)}"
    return device, {"source": "iot", "device": device, "reading": round(rnd.gauss(21.0, 3.0), 2)}


def measure(value: dict) -> float | None:
    """The number a window averages: sentiment for posts, the reading for devices."""
    if not isinstance(value, dict):
        return None
    return value.get("sentiment") if value.get("source") == "social" else value.get("reading")


class SourceWindows:
    """Tumbling and hopping windows per source, fed with LiveConsumer batches."""

    def __init__(self, size_ms: int = 5000, advance_ms: int = 2500, grace_ms: int = 1000,
                 idle_timeout: float | None = 3.0):
        self.tumbling = EventTimeWindows(Tumbling(size_ms), grace_ms=grace_ms, idle_timeout=idle_timeout)
        self.hopping = EventTimeWindows(Hopping(size_ms, advance_ms), grace_ms=grace_ms,
                                        idle_timeout=idle_timeout)
        self.closed: list[tuple[str, Window]] = []
        self.replayed = 0          # records delivered again (after a rebalance), not counted twice
        self._next: dict = {}      # (topic, partition) -> the next offset not yet windowed

    def add_frame(self, batch: pd.DataFrame) -> list[tuple[str, Window]]:
        """Window a batch by source (the record's `value["source"]`); return what closed.

        Offsets are committed after processing (at-least-once), so a rebalance or a failed
        commit can deliver records again; those below their partition's next offset are skipped
        and counted in `replayed`, which keeps every window count exact."""
        batch = self._unseen(batch)
        if batch.empty:
            return []
        frame = batch.assign(source=[v.get("source") if isinstance(v, dict) else None
                                     for v in batch["value"]])
        closed = [("tumbling", w) for w in self.tumbling.add_frame(frame, key="source", value=measure)]
        closed += [("hopping", w) for w in self.hopping.add_frame(frame, key="source", value=measure)]
        self.closed += closed
        return closed

    def _unseen(self, batch: pd.DataFrame) -> pd.DataFrame:
        if batch.empty or "offset" not in batch or "partition" not in batch:
            return batch
        keep = np.ones(len(batch), dtype=bool)
        offsets = batch["offset"].to_numpy()
        by = ["topic", "partition"] if "topic" in batch else ["partition"]
        for tp, rows in batch.groupby(by, sort=False).indices.items():
            keep[rows] = offsets[rows] >= self._next.get(tp, -1)
            self._next[tp] = max(self._next.get(tp, -1), int(offsets[rows].max()) + 1)
        self.replayed += int((~keep).sum())
        return batch if keep.all() else batch[keep]

    def poll_idle(self) -> list[tuple[str, Window]]:
        done = [("tumbling", w) for w in self.tumbling.poll_idle()]
        done += [("hopping", w) for w in self.hopping.poll_idle()]
        self.closed += done
        return done

    def flush(self) -> list[tuple[str, Window]]:
        """At stop: the windows still open are emitted, not lost."""
        done = [("tumbling", w) for w in self.tumbling.flush()] + [("hopping", w) for w in self.hopping.flush()]
        self.closed += done
        return done

    def results(self) -> pd.DataFrame:
        """Final windows per source; a source spans partitions, so its per-partition parts are
        combined into one window."""
        rows = [{"kind": kind, **w.as_row()} for kind in ("tumbling", "hopping")
                for w in combine_partitions([w for k, w in self.closed if k == kind])]
        df = pd.DataFrame(rows, columns=["kind", "key", "start", "end", "count", "sum", "mean", "min",
                                         "max", "final"])
        return df.rename(columns={"key": "source"})

    @property
    def late(self) -> int:
        return self.tumbling.late_count
