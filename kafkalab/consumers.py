"""Background consumers: one thread owns each KafkaConsumer and hands DataFrame batches on.

Subscribers are called in the consumer's thread, in order, before the batch's offsets are
committed (at-least-once: a crash re-delivers, never skips). The notebook reads batches from a
bounded buffer instead of touching the consumer. `count=` and `timeout=` end a run on their own.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

import pandas as pd

from .records import RECORD_COLUMNS, records_frame
from .runtime import Composite, RateMeter, Worker, wait_until


# A live consumer feeds charts that refresh a few times a second: a fetch waits up to 100 ms for
# 64 KiB instead of returning every few records (kafka-python's default: 1 byte, 500 ms). At a few
# hundred msg/s that cuts its CPU by about three quarters (measured on the lab broker), for at most
# 100 ms more latency. Passing fetch_min_bytes / fetch_max_wait_ms overrides it.
LIVE_FETCH = {"fetch_min_bytes": 65536, "fetch_max_wait_ms": 100}


class LiveConsumer(Worker):
    """Consumes `topics` in the background and hands every batch, as a DataFrame, to its
    subscribers (then to a bounded buffer), committing after they ran.

    Parameters
    ----------
    topics : a topic or a list of them; they must exist (checked at start, named if missing).
    group_id : join this consumer group (partitions are assigned, offsets committed after each
        batch); None reads every partition itself and commits nothing.
    count : stop after this many records. timeout : stop after this many seconds.
    from_beginning : a new group (or no group) starts at the earliest offset; False: the latest.
    buffer : how many unread batches `get()` / `frame()` keep (the oldest gives way, counted
        in `dropped`); 0 keeps none (subscribers only).
    max_records : the most records one poll returns (one batch).
    name : its name in the registry. Default "consumer:<topics>:<group_id>".
    **consumer_config : KafkaConsumer settings, on top of the lab's (kafkalab.config) and of
        LIVE_FETCH (fetches wait up to 100 ms to fill: fewer, larger batches).
    """

    def __init__(self, topics: str | list[str], group_id: str | None = None,
                 count: int | None = None, timeout: float | None = None,
                 from_beginning: bool = True, buffer: int = 200, max_records: int = 2000,
                 name: str | None = None, **consumer_config):
        topics = [topics] if isinstance(topics, str) else list(topics)
        if not topics:
            raise ValueError("give at least one topic")
        super().__init__(name, default=f"consumer:{','.join(topics)}:{group_id}")
        if count is not None and count <= 0:
            raise ValueError("count must be positive")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive (seconds)")
        if buffer < 0:
            raise ValueError("buffer must be >= 0 batches")
        self.topics, self.group_id = topics, group_id
        self.count, self.timeout = count, timeout
        self.from_beginning, self.max_records = from_beginning, max_records
        self.consumer_config = {**LIVE_FETCH, **consumer_config}
        self._subscribers: list[Callable[[pd.DataFrame], None]] = []
        self._buffer: deque = deque(maxlen=buffer)  # 0: subscribers only, keep nothing
        self._ready = threading.Condition()          # guards _buffer
        self.consumed = self.batches = self.dropped = 0
        self.assignment: frozenset = frozenset()
        self.events: deque = deque(maxlen=200)    # (time, event, partitions)
        self._meter = RateMeter(lambda: self.consumed)

    def subscribe(self, fn: Callable[[pd.DataFrame], None]) -> "LiveConsumer":
        """fn(batch) runs in the consumer thread for every batch, before its commit."""
        self._subscribers.append(fn)
        return self

    # -- the owner thread -------------------------------------------------------------------
    def run(self) -> None:
        from kafka import ConsumerRebalanceListener, TopicPartition

        from .config import group_consumer
        from .explore import require_topics

        require_topics(self.topics, **self.consumer_config)
        me = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                me.assignment = me.assignment - set(revoked)
                me.events.append((time.time(), "revoked", sorted(revoked)))

            def on_partitions_assigned(self, assigned):
                me.assignment = frozenset(assigned)
                me.events.append((time.time(), "assigned", sorted(assigned)))

        with group_consumer(group_id=self.group_id, from_beginning=self.from_beginning,
                            **self.consumer_config) as consumer:
            if self.group_id:
                consumer.subscribe(self.topics, listener=Listener())
            else:
                parts = [TopicPartition(t, p) for t in self.topics
                         for p in sorted(consumer.partitions_for_topic(t) or [])]
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
        uncommitted = False
        while not self.stopping.is_set():
            now = time.monotonic()
            self._meter.mark(now)
            if deadline and now >= deadline:
                break
            left = None if self.count is None else self.count - self.consumed
            if left is not None and left <= 0:
                break
            polled = consumer.poll(timeout_ms=100,
                                   max_records=self.max_records if left is None else min(left, self.max_records))
            records = [r for batch in polled.values() for r in batch]
            if not records:
                if uncommitted:
                    uncommitted = not self._commit_caught_up(consumer)
                continue
            frame = records_frame(records)
            for fn in self._subscribers:
                fn(frame)  # an exception here stops the consumer (see Worker.failure): no commit
            self.consumed += len(records)
            self.batches += 1
            with self._ready:
                if self._buffer.maxlen:
                    if len(self._buffer) == self._buffer.maxlen:
                        self.dropped += len(self._buffer[0])  # the oldest unread batch gives way
                    self._buffer.append(frame)
                self._ready.notify_all()
            if self.group_id:
                consumer.commit_async()
                uncommitted = True
        self._meter.mark(force=True)

    def _commit_caught_up(self, consumer) -> bool:
        """Caught up: commit synchronously what was processed. An asynchronous commit that
        failed (a rebalance was in progress) is retried by the next batch's commit; once no
        batch comes, only this commit makes the group's lag reach zero."""
        from kafka.errors import KafkaError
        try:
            consumer.commit()
            return True
        except KafkaError as e:       # a rebalance in progress: the next idle poll tries again
            self.events.append((time.time(), f"commit failed: {type(e).__name__}", []))
            return False

    # -- reading, from any thread -------------------------------------------------------------
    def get(self, timeout: float = 1.0) -> pd.DataFrame | None:
        """The oldest buffered batch, waiting up to `timeout` s; None if none came."""
        end = time.monotonic() + timeout
        with self._ready:
            while not self._buffer:
                left = end - time.monotonic()
                if left <= 0 or not self.alive:
                    return None
                self._ready.wait(min(left, 0.1))
            return self._buffer.popleft()

    def frame(self) -> pd.DataFrame:
        """Everything buffered so far, as one DataFrame (the buffer is emptied)."""
        with self._ready:
            batches = list(self._buffer)
            self._buffer.clear()
        return pd.concat(batches, ignore_index=True) if batches else pd.DataFrame(columns=RECORD_COLUMNS)

    @property
    def rate(self) -> float:
        """The achieved rate: records consumed per second over the last two seconds."""
        return self._meter.rate()

    @property
    def stats(self) -> dict:
        return {"consumed": self.consumed, "batches": self.batches, "dropped": self.dropped,
                "rate": round(self.rate, 1), "partitions": len(self.assignment),
                "running": self.alive, "failure": self.failure}

    def wait_assigned(self, timeout: float = 30.0) -> frozenset:
        """Block until the group gave this consumer its partitions and return them; raises the
        consumer's failure, or TimeoutError after `timeout` s."""
        wait_until(lambda: self.assignment or (self.started and not self.alive), timeout,
                   what=f"{self.name} to be assigned partitions")
        self.raise_if_failed()
        if not self.assignment:
            raise RuntimeError(f"{self.name} stopped before it was assigned partitions")
        return self.assignment


class ConsumerGroup(Composite):
    """Members of one consumer group, added and removed live to watch rebalances.

    Parameters
    ----------
    topics : the topic or topics every member subscribes to.
    group_id : the group's id.
    name : its name in the registry (members are "<name>/member-N"). Default "group:<group_id>".
    **consumer_config : LiveConsumer options and KafkaConsumer settings for every member.
    """

    def __init__(self, topics: str | list[str], group_id: str, name: str | None = None,
                 **consumer_config):
        super().__init__(name, default=f"group:{group_id}")
        self.topics, self.group_id = topics, group_id
        self.consumer_config = consumer_config
        self._n = 0

    @property
    def members(self) -> list[LiveConsumer]:
        return self.children

    def add_member(self, subscriber: Callable[[pd.DataFrame], None] | None = None,
                   **overrides) -> LiveConsumer:
        """Start one more member (subscriber: called with each of its batches)."""
        if not self.started:
            self.start()
        self._n += 1
        member = LiveConsumer(self.topics, group_id=self.group_id,
                              name=f"{self.name}/member-{self._n}",
                              **{**self.consumer_config, **overrides})
        if subscriber is not None:
            member.subscribe(subscriber)
        self.children.append(member.start())
        return member

    def remove_member(self) -> LiveConsumer | None:
        """Stop the newest member; the group rebalances its partitions onto the others."""
        if not self.children:
            return None
        member = self.children.pop()
        member.stop()
        return member

    def assignment(self) -> pd.DataFrame:
        rows = [{"member": m.name.rsplit("/", 1)[-1], "topic": tp.topic, "partition": tp.partition}
                for m in self.children for tp in sorted(m.assignment)]
        return pd.DataFrame(rows, columns=["member", "topic", "partition"])

    def wait_members(self, members: int | None = None, timeout: float = 30.0) -> pd.DataFrame:
        """Block until every partition of the group's topics is assigned, over `members` members
        (default: all of them); return the assignment. TimeoutError names what was missing."""
        from .explore import partition_count
        topics = [self.topics] if isinstance(self.topics, str) else list(self.topics)
        expected = sum(partition_count(t) for t in topics)
        want = min(len(self.children), expected) if members is None else members

        def settled():
            a = self.assignment()
            return len(a) == expected and a["member"].nunique() == want

        wait_until(settled, timeout, what=lambda: (
            f"{expected} partitions over {want} members of {self.group_id!r}; "
            f"now: {self.assignment().groupby('member')['partition'].apply(list).to_dict()}"))
        return self.assignment()

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        self.children.clear()
