"""A priority task queue on Kafka: one topic per priority, weighted polling, retries that wait
without blocking anyone, a dead-letter topic, and a ledger that proves the outcome.

Fixes to the cheat sheet's queue: workers start from the earliest offset (its `latest` skipped
every task produced before they joined); a retry is a record on a retry topic with a due time,
not a `sleep(2 ** n)` that stalls every priority; a retry is produced and acknowledged before
the original is committed, so no task is lost in between; completions are recorded once in a
SQLite ledger, so a task processed twice after a crash is still completed once.
"""
from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..runtime import Worker

PRIORITIES = ("high", "medium", "low")


class WeightedScheduler:
    """Smooth weighted round-robin over priorities (as nginx balances upstreams): with weights
    6/3/1, out of every 10 turns high gets 6, medium 3, low 1, interleaved, never starved."""

    def __init__(self, weights: dict[str, int]):
        if not weights or any(w <= 0 for w in weights.values()):
            raise ValueError("weights must be positive")
        self.weights = dict(weights)
        self._current = {p: 0 for p in weights}

    def next(self, ready: set[str] | None = None) -> str | None:
        """The priority to serve next, among those with work (`ready`; None means all)."""
        candidates = [p for p in self.weights if ready is None or p in ready]
        if not candidates:
            return None
        total = sum(self.weights[p] for p in candidates)
        for p in candidates:
            self._current[p] += self.weights[p]
        best = max(candidates, key=lambda p: self._current[p])
        self._current[best] -= total
        return best


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 10.0

    def __post_init__(self):
        if self.max_attempts < 1 or self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError("need max_attempts >= 1 and 0 <= base_delay <= max_delay")

    def decide(self, attempts: int, now: float) -> tuple[str, float | None]:
        """After `attempts` failed tries: ("retry", due time) or ("dead", None)."""
        if attempts >= self.max_attempts:
            return "dead", None
        return "retry", now + min(self.max_delay, self.base_delay * 2 ** (attempts - 1))


class Ledger:
    """What happened to every task, in SQLite: submitted, completed (once), dead-lettered."""

    def __init__(self, path: str | Path):
        self._lock = threading.Lock()  # workers share one ledger
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.executescript("""
            CREATE TABLE IF NOT EXISTS submitted (task_id TEXT PRIMARY KEY, priority TEXT, at REAL);
            CREATE TABLE IF NOT EXISTS completed (task_id TEXT PRIMARY KEY, attempts INTEGER, at REAL);
            CREATE TABLE IF NOT EXISTS dead (task_id TEXT PRIMARY KEY, reason TEXT, attempts INTEGER, at REAL);
            CREATE TABLE IF NOT EXISTS repeats (task_id TEXT, what TEXT, at REAL);
        """)

    def close(self) -> None:
        self.db.close()

    def _once(self, table: str, values: tuple) -> bool:
        """Insert once; a second time is recorded as a repeat and reported as False."""
        marks = ",".join("?" * len(values))
        with self._lock:
            cur = self.db.execute(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", values)
            if cur.rowcount == 0:
                self.db.execute("INSERT INTO repeats VALUES (?, ?, ?)", (values[0], table, time.time()))
                return False
            return True

    def submitted(self, task_id: str, priority: str) -> bool:
        return self._once("submitted", (task_id, priority, time.time()))

    def completed(self, task_id: str, attempts: int) -> bool:
        return self._once("completed", (task_id, attempts, time.time()))

    def dead(self, task_id: str, reason: str, attempts: int) -> bool:
        return self._once("dead", (task_id, reason, attempts, time.time()))

    def audit(self) -> dict:
        """Lost: submitted but neither completed nor dead. Twice: completed (or dead) repeatedly,
        or both completed and dead."""
        def q(sql):
            with self._lock:
                return self.db.execute(sql).fetchone()[0]
        return {
            "submitted": q("SELECT count(*) FROM submitted"),
            "completed": q("SELECT count(*) FROM completed"),
            "dead": q("SELECT count(*) FROM dead"),
            "lost": q("SELECT count(*) FROM submitted WHERE task_id NOT IN (SELECT task_id FROM completed) "
                      "AND task_id NOT IN (SELECT task_id FROM dead)"),
            "completed_and_dead": q("SELECT count(*) FROM completed JOIN dead USING (task_id)"),
            "repeated_outcomes": q("SELECT count(*) FROM repeats WHERE what != 'submitted'"),
        }


# -- on Kafka -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Topics:
    prefix: str = "tasks"

    def priority(self, p: str) -> str:
        return f"{self.prefix}-{p}"

    @property
    def retry(self) -> str:
        return f"{self.prefix}-retry"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}-dlq"

    @property
    def all(self) -> list[str]:
        return [self.priority(p) for p in PRIORITIES] + [self.retry, self.dlq]


def make_task(i: int, rnd: random.Random, mix: dict[str, float], poison_share: float = 0.0) -> dict:
    """A task with a priority drawn from `mix`; poison tasks fail on every attempt."""
    priority = rnd.choices(list(mix), weights=list(mix.values()))[0]
    return {"id": f"task-{i}", "priority": priority, "attempts": 0,
            "poison": rnd.random() < poison_share, "work_ms": rnd.randint(1, 5)}


class TaskWorker(Worker):
    """One worker: fetches from every priority topic into small per-priority buffers, then serves
    the buffers by weight (so the choice costs no extra fetch), and moves due retries back.

    `settings` is shared with the notebook's widgets (a dict read on every task): failure_rate.
    """

    BUFFER_HIGH, BUFFER_LOW = 100, 20   # pause a priority's partitions above, resume below

    def __init__(self, topics: Topics, group: str, ledger: Ledger, weights: dict[str, int],
                 policy: RetryPolicy, settings: dict, name: str, seed: int = 0):
        super().__init__(name)
        self.topics, self.group, self.ledger = topics, group, ledger
        self.scheduler = WeightedScheduler(weights)
        self.policy, self.settings = policy, settings
        self.rnd = random.Random(seed)
        self.done = {p: 0 for p in PRIORITIES}
        self.retried = self.dead = 0
        self._lock = threading.Lock()

    def run(self) -> None:
        from collections import deque

        from kafka import ConsumerRebalanceListener, KafkaProducer
        from kafka.structs import OffsetAndMetadata

        from ..config import client_config, group_consumer

        topic_priority = {self.topics.priority(p): p for p in PRIORITIES}
        buffers = {p: deque() for p in PRIORITIES}
        held: dict = {}                    # retry partition -> due time (paused until then)
        rewind: dict = {}                  # partition -> its oldest record dropped at a revocation

        class Rebalance(ConsumerRebalanceListener):
            """Buffered records of revoked partitions are dropped (their new owner reads them from
            the last commit). A partition this worker gets back keeps its position (kafka-python 3,
            like Java's client, keeps the state of a partition assigned before and after), which
            is past the dropped records: seek back to them, or they are never processed."""

            def on_partitions_revoked(self, revoked):
                revoked = set(revoked)
                for p in PRIORITIES:
                    kept = deque()
                    for tp, record in buffers[p]:
                        if tp in revoked:
                            rewind.setdefault(tp, record.offset)   # buffers hold records in order
                        else:
                            kept.append((tp, record))
                    buffers[p] = kept

            def on_partitions_assigned(self, assigned):
                for tp in assigned:
                    if tp in rewind:
                        consumer.seek(tp, rewind[tp])
                rewind.clear()
                for tp in set(held) - set(assigned):   # a kept retry partition stays paused and held
                    del held[tp]

        with group_consumer(group_id=self.group) as consumer, \
                KafkaProducer(**client_config()) as producer:
            consumer.subscribe(list(topic_priority) + [self.topics.retry], listener=Rebalance())
            while not self.stopping.is_set():
                now = time.time()
                for tp, due in list(held.items()):
                    if due <= now:
                        del held[tp]
                        consumer.resume(tp)
                for tp in consumer.assignment():
                    p = topic_priority.get(tp.topic)
                    if p and len(buffers[p]) >= self.BUFFER_HIGH:
                        consumer.pause(tp)
                    elif p and len(buffers[p]) <= self.BUFFER_LOW and tp in consumer.paused():
                        consumer.resume(tp)
                busy = any(buffers.values())
                for tp, records in consumer.poll(timeout_ms=0 if busy else 100, max_records=200).items():
                    if tp.topic == self.topics.retry:
                        self._move_due(consumer, producer, tp, records, held)
                    else:
                        buffers[topic_priority[tp.topic]].extend((tp, r) for r in records)
                processed = {}
                for _ in range(20):
                    choice = self.scheduler.next({p for p in PRIORITIES if buffers[p]})
                    if choice is None:
                        break
                    tp, record = buffers[choice].popleft()
                    self._work(producer, record)
                    processed[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
                if processed:
                    consumer.commit(processed)     # only what is done (its retries are acked)

    def _move_due(self, consumer, producer, tp, records, held: dict) -> None:
        from kafka.structs import OffsetAndMetadata
        for r in records:
            entry = json.loads(r.value)
            if entry["due_at"] > time.time():
                consumer.seek(tp, r.offset)        # not yet: come back to it, block nobody
                consumer.pause(tp)
                held[tp] = entry["due_at"]
                return
            task = entry["task"]
            producer.send(self.topics.priority(task["priority"]), json.dumps(task).encode(),
                          key=task["id"].encode()).get(timeout=10)      # re-queued before ...
            consumer.commit({tp: OffsetAndMetadata(r.offset + 1, "", -1)})   # ... committed

    def _work(self, producer, record) -> None:
        task = json.loads(record.value)
        task["attempts"] += 1
        time.sleep(task.get("work_ms", 1) / 1000)
        failed = task.get("poison") or self.rnd.random() < self.settings.get("failure_rate", 0.0)
        if not failed:
            self.ledger.completed(task["id"], task["attempts"])
            with self._lock:
                self.done[task["priority"]] += 1
            return
        verdict, due = self.policy.decide(task["attempts"], time.time())
        if verdict == "retry":
            producer.send(self.topics.retry, json.dumps({"due_at": due, "task": task}).encode(),
                          key=task["id"].encode()).get(timeout=10)
            self.retried += 1
        else:
            reason = "poison task: fails every time" if task.get("poison") else "failed too often"
            producer.send(self.topics.dlq, json.dumps(task).encode(), key=task["id"].encode(),
                          headers=[("reason", reason.encode()),
                                   ("attempts", str(task["attempts"]).encode())]).get(timeout=10)
            self.ledger.dead(task["id"], reason, task["attempts"])
            self.dead += 1
