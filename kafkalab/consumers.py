"""Background consumers: one thread owns each KafkaConsumer and hands DataFrame batches on.

Subscribers are called in the consumer's thread, in order, before the batch's offsets are
committed (at-least-once: a crash re-delivers, never skips). The notebook reads batches from a
bounded buffer instead of touching the consumer. `count=` and `timeout=` end a run on their own.
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Callable

import numpy as np
import pandas as pd

from .runtime import Stoppable, Worker, register, unregister

COLUMNS = ["topic", "partition", "offset", "timestamp", "key", "value"]

# A lab's kernels get restarted: a member that vanished without leaving holds up its group's
# rebalance until its session expires (45 s by default), so lab consumers expire sooner.
LAB_GROUP_CONFIG = {"session_timeout_ms": 10_000, "heartbeat_interval_ms": 2_000,
                    "max_poll_interval_ms": 60_000}


def decode_json(raw: bytes | None):
    """JSON if it parses, else text, else the bytes: a poison pill never kills the loop."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw


def to_frame(records) -> pd.DataFrame:
    keys = [None if r.key is None else r.key.decode("utf-8", "replace") for r in records]
    return pd.DataFrame({
        "topic": [r.topic for r in records],
        "partition": np.fromiter((r.partition for r in records), dtype=np.int64, count=len(records)),
        "offset": np.fromiter((r.offset for r in records), dtype=np.int64, count=len(records)),
        "timestamp": np.fromiter((r.timestamp for r in records), dtype=np.int64, count=len(records)),
        "key": pd.Series(keys, dtype=object),      # keep None (pandas 3 would make it NaN)
        "value": pd.Series([decode_json(r.value) for r in records], dtype=object),
    }, columns=COLUMNS)


class LiveConsumer(Worker):
    """Consumes `topics` in the background. Without group_id it reads every partition itself."""

    def __init__(self, topics: str | list[str], group_id: str | None = None,
                 count: int | None = None, timeout: float | None = None,
                 from_beginning: bool = True, buffer: int = 200, max_records: int = 2000,
                 name: str | None = None, **consumer_config):
        topics = [topics] if isinstance(topics, str) else list(topics)
        if not topics:
            raise ValueError("give at least one topic")
        super().__init__(name or f"consumer:{','.join(topics)}:{group_id}")
        if count is not None and count <= 0:
            raise ValueError("count must be positive")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive (seconds)")
        self.topics, self.group_id = topics, group_id
        self.count, self.timeout = count, timeout
        self.from_beginning, self.max_records = from_beginning, max_records
        self.consumer_config = consumer_config
        self._subscribers: list[Callable[[pd.DataFrame], None]] = []
        if buffer < 0:
            raise ValueError("buffer must be >= 0 batches")
        self._buffer: deque = deque(maxlen=buffer)  # 0: subscribers only, keep nothing
        self._ready = threading.Condition()
        self.consumed = self.batches = self.dropped = 0
        self.assignment: frozenset = frozenset()
        self.events: deque = deque(maxlen=200)    # (time, event, partitions)
        self._rate_marks: deque = deque(maxlen=64)

    def subscribe(self, fn: Callable[[pd.DataFrame], None]) -> "LiveConsumer":
        """fn(batch) runs in the consumer thread for every batch, before its commit."""
        self._subscribers.append(fn)
        return self

    # -- the owner thread -------------------------------------------------------------------
    def run(self) -> None:
        from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition

        from .config import client_config

        me = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                me.events.append((time.time(), "revoked", sorted(revoked)))

            def on_partitions_assigned(self, assigned):
                me.assignment = frozenset(assigned)
                me.events.append((time.time(), "assigned", sorted(assigned)))

        config = client_config(**{**LAB_GROUP_CONFIG, **self.consumer_config},
                               enable_auto_commit=False,
                               auto_offset_reset="earliest" if self.from_beginning else "latest")
        with KafkaConsumer(**config, group_id=self.group_id) as consumer:
            if self.group_id:
                consumer.subscribe(self.topics, listener=Listener())
            else:
                parts = [TopicPartition(t, p) for t in self.topics
                         for p in sorted(consumer.partitions_for_topic(t) or [])]
                if not parts:
                    raise ValueError(f"none of {self.topics} exists (or has partitions)")
                consumer.assign(parts)
                if self.from_beginning:
                    consumer.seek_to_beginning()
                else:
                    consumer.seek_to_end()
                self.assignment = frozenset(parts)
            self._loop(consumer)
            if self.group_id and self.consumed:
                consumer.commit()  # the final, synchronous commit of what was processed

    def _loop(self, consumer) -> None:
        deadline = time.monotonic() + self.timeout if self.timeout else None
        while not self.stopping.is_set():
            now = time.monotonic()
            self._rate_marks.append((now, self.consumed))
            if deadline and now >= deadline:
                break
            left = None if self.count is None else self.count - self.consumed
            if left is not None and left <= 0:
                break
            polled = consumer.poll(timeout_ms=100,
                                   max_records=self.max_records if left is None else min(left, self.max_records))
            records = [r for batch in polled.values() for r in batch]
            if not records:
                continue
            frame = to_frame(records)
            for fn in self._subscribers:
                fn(frame)  # an exception here stops the consumer (see Worker.failure): no commit
            self.consumed += len(records)
            self.batches += 1
            if self._buffer.maxlen:
                if len(self._buffer) == self._buffer.maxlen:
                    self.dropped += len(self._buffer[0])  # the oldest unread batch gives way
                self._buffer.append(frame)
            with self._ready:
                self._ready.notify_all()
            if self.group_id:
                consumer.commit_async()

    # -- reading, from any thread -------------------------------------------------------------
    def get(self, timeout: float = 1.0) -> pd.DataFrame | None:
        """The oldest buffered batch, waiting up to `timeout` s; None if none came."""
        end = time.monotonic() + timeout
        with self._ready:
            while not self._buffer:
                left = end - time.monotonic()
                if left <= 0 or (not self.alive and not self._buffer):
                    return None
                self._ready.wait(min(left, 0.1))
            return self._buffer.popleft()

    def frame(self) -> pd.DataFrame:
        """Everything buffered so far, as one DataFrame (the buffer is emptied)."""
        batches = []
        while self._buffer:
            batches.append(self._buffer.popleft())
        return pd.concat(batches, ignore_index=True) if batches else pd.DataFrame(columns=COLUMNS)

    @property
    def rate(self) -> float:
        marks = list(self._rate_marks)
        recent = [m for m in marks if m[0] >= marks[-1][0] - 2.0] if marks else []
        if len(recent) < 2 or recent[-1][0] == recent[0][0]:
            return 0.0
        return (recent[-1][1] - recent[0][1]) / (recent[-1][0] - recent[0][0])

    @property
    def stats(self) -> dict:
        return {"consumed": self.consumed, "batches": self.batches, "dropped": self.dropped,
                "rate": round(self.rate, 1), "partitions": len(self.assignment),
                "running": self.alive, "failure": self.failure}

    def wait(self, timeout: float | None = None) -> dict:
        """Block until a bounded run (count= or timeout=) has finished; return its stats."""
        self.join(timeout)
        return self.stats

    def wait_assigned(self, timeout: float = 30.0) -> frozenset:
        """Block until the group gave this consumer its partitions (or `timeout` s passed)."""
        deadline = time.monotonic() + timeout
        while not self.assignment and self.alive and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.assignment


class ConsumerGroup(Stoppable):
    """Members of one consumer group, added and removed live to watch rebalances."""

    def __init__(self, topics: str | list[str], group_id: str, name: str | None = None,
                 **consumer_config):
        self.topics, self.group_id = topics, group_id
        self.name = name or f"group:{group_id}"
        self.consumer_config = consumer_config
        self.members: list[LiveConsumer] = []
        self._n = 0
        register(self)

    def add_member(self, subscriber: Callable[[pd.DataFrame], None] | None = None,
                   **overrides) -> LiveConsumer:
        """Start one more member (subscriber: called with each of its batches)."""
        self._n += 1
        member = LiveConsumer(self.topics, group_id=self.group_id,
                              name=f"{self.name}/member-{self._n}",
                              **{**self.consumer_config, **overrides})
        if subscriber is not None:
            member.subscribe(subscriber)
        self.members.append(member.start())
        return member

    def remove_member(self) -> LiveConsumer | None:
        """Stop the newest member; the group rebalances its partitions onto the others."""
        if not self.members:
            return None
        member = self.members.pop()
        member.stop()
        return member

    def assignment(self) -> pd.DataFrame:
        rows = [{"member": m.name.rsplit("/", 1)[-1], "topic": tp.topic, "partition": tp.partition}
                for m in self.members for tp in sorted(m.assignment)]
        return pd.DataFrame(rows, columns=["member", "topic", "partition"])

    def stop(self, timeout: float = 10.0) -> None:
        while self.members:
            self.members.pop().stop(timeout)
        unregister(self)
