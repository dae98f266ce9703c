"""Multi-region replication: one SQLite database per region is the real source and replica.

Local writes go through SQL; triggers copy every local change into an outbox table in the same
transaction (so a change is never lost between the database and Kafka). A publisher turns outbox
rows into change events; each region's replicator applies the other regions' events with a
conflict strategy, records every applied change id in a durable `applied` table (duplicates
are detected across restarts, not by an in-memory set), and reports what it cannot apply so it
can go to a dead-letter topic.

Strategies (all deterministic, so every region converges to the same rows):
  lww      last writer wins on the row's timestamp, ties broken by region name;
  merge    field by field, each field's own timestamp wins (ties: region name);
  vector   version vectors tell an ordered update (applied or ignored as stale) from a truly
           concurrent one, which is counted as a conflict and then resolved field by field.
"""
from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kafka.errors import KafkaError

from ..runtime import Worker

FIELDS = ("name", "email", "tier")
STRATEGIES = ("lww", "merge", "vector")

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY, name TEXT, email TEXT, tier TEXT,
    field_ts TEXT NOT NULL,        -- {"name": stamp, ...}: the write that last set each field
    vv TEXT NOT NULL,              -- version vector {"region": counter}
    stamp TEXT NOT NULL            -- [ts, region, counter] of the row's last write: unique, ordered
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, row_id TEXT NOT NULL, payload TEXT NOT NULL,
    published INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS applied (change_id TEXT PRIMARY KEY, outcome TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
INSERT OR IGNORE INTO meta VALUES ('replicating', '0');
CREATE TRIGGER IF NOT EXISTS customers_out_ins AFTER INSERT ON customers
WHEN (SELECT value FROM meta WHERE key = 'replicating') = '0'
BEGIN
    INSERT INTO outbox (row_id, payload) VALUES (NEW.id, json_object(
        'id', NEW.id, 'name', NEW.name, 'email', NEW.email, 'tier', NEW.tier,
        'field_ts', json(NEW.field_ts), 'vv', json(NEW.vv), 'stamp', json(NEW.stamp)));
END;
CREATE TRIGGER IF NOT EXISTS customers_out_upd AFTER UPDATE ON customers
WHEN (SELECT value FROM meta WHERE key = 'replicating') = '0'
BEGIN
    INSERT INTO outbox (row_id, payload) VALUES (NEW.id, json_object(
        'id', NEW.id, 'name', NEW.name, 'email', NEW.email, 'tier', NEW.tier,
        'field_ts', json(NEW.field_ts), 'vv', json(NEW.vv), 'stamp', json(NEW.stamp)));
END;
"""


class Unappliable(ValueError):
    """A change event that cannot be applied (it belongs on the dead-letter topic)."""


@dataclass
class Outcome:
    change_id: str
    result: str          # applied | stale | duplicate | merged | conflict
    concurrent: bool = False


def _newer(a: list, b: list) -> bool:
    """Is stamp a [ts, region, counter] later than b? Equal timestamps are ordered by region
    name, and one region's writes by its own counter: no two writes ever tie."""
    return (a[0], a[1], a[2]) > (b[0], b[1], b[2])


def _dominates(a: dict, b: dict) -> bool:
    return all(a.get(k, 0) >= v for k, v in b.items())


class RegionDB:
    """One region's database file."""

    def __init__(self, region: str, path: str | Path, clock=time.time):
        self.region, self.path, self.clock = region, Path(path), clock
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- local writes (captured by the triggers) ----------------------------------------------
    def write(self, customer_id: str, **fields) -> None:
        unknown = set(fields) - set(FIELDS)
        if unknown or not fields:
            raise ValueError(f"write some of {FIELDS}; got {sorted(fields)}")
        with self._transaction():
            row = self.get(customer_id)
            # a hybrid clock: a write is stamped after every write this row has seen, even if
            # this region's clock is behind (skew, or a step back), or another region would
            # judge it older than the value it replaces here, and the regions would diverge
            now = max(self.clock(), json.loads(row["stamp"])[0] + 1e-6) if row else self.clock()
            current = {f: row[f] for f in FIELDS} if row else {f: None for f in FIELDS}
            field_ts = json.loads(row["field_ts"]) if row else {}
            vv = json.loads(row["vv"]) if row else {}
            current.update(fields)
            vv[self.region] = vv.get(self.region, 0) + 1
            stamp = [now, self.region, vv[self.region]]
            for f in fields:
                field_ts[f] = stamp
            self._store(customer_id, current, field_ts, vv, stamp)

    def _store(self, cid, values, field_ts, vv, stamp) -> None:
        self.db.execute(
            "INSERT INTO customers (id, name, email, tier, field_ts, vv, stamp) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET name=excluded.name, "
            "email=excluded.email, tier=excluded.tier, field_ts=excluded.field_ts, vv=excluded.vv, "
            "stamp=excluded.stamp",
            (cid, values["name"], values["email"], values["tier"], json.dumps(field_ts, sort_keys=True),
             json.dumps(vv, sort_keys=True), json.dumps(stamp)))

    def _transaction(self):
        db = self.db

        class Tx:
            def __enter__(self):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, exc_type, *_):
                db.execute("ROLLBACK" if exc_type else "COMMIT")
        return Tx()

    def get(self, customer_id: str):
        return self.db.execute("SELECT * FROM customers WHERE id = ?", (customer_id,)).fetchone()

    # -- the outbox ---------------------------------------------------------------------------
    def pending_changes(self, limit: int = 500) -> list[dict]:
        """Unpublished changes as events: {change_id, origin, row}."""
        rows = self.db.execute("SELECT seq, payload FROM outbox WHERE published = 0 ORDER BY seq LIMIT ?",
                               (limit,)).fetchall()
        return [{"change_id": f"{self.region}:{r['seq']}", "origin": self.region, "seq": r["seq"],
                 "row": json.loads(r["payload"])} for r in rows]

    def mark_published(self, up_to_seq: int) -> None:
        self.db.execute("UPDATE outbox SET published = 1 WHERE seq <= ?", (up_to_seq,))

    # -- applying other regions' changes ------------------------------------------------------
    def apply(self, event: dict, strategy: str = "lww") -> Outcome:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}")
        try:
            change_id, remote = event["change_id"], event["row"]
            cid = remote["id"]
            r_values = {f: remote[f] for f in FIELDS}
            r_field_ts = {f: list(v) for f, v in remote["field_ts"].items()}
            r_vv = {k: int(v) for k, v in remote["vv"].items()}
            r_stamp = [float(remote["stamp"][0]), str(remote["stamp"][1]), int(remote["stamp"][2])]
            if any(len(v) != 3 for v in r_field_ts.values()):
                raise ValueError("field stamps must be [ts, region, counter]")
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise Unappliable(f"malformed change event: {type(e).__name__}: {e}") from None
        with self._transaction():
            if self.db.execute("SELECT 1 FROM applied WHERE change_id = ?", (change_id,)).fetchone():
                return Outcome(change_id, "duplicate")
            self.db.execute("UPDATE meta SET value = '1' WHERE key = 'replicating'")
            try:
                outcome = self._resolve(cid, r_values, r_field_ts, r_vv, r_stamp, strategy, change_id)
            finally:
                self.db.execute("UPDATE meta SET value = '0' WHERE key = 'replicating'")
            self.db.execute("INSERT INTO applied VALUES (?, ?, ?)", (change_id, outcome.result, self.clock()))
        return outcome

    def _resolve(self, cid, r_values, r_field_ts, r_vv, r_stamp, strategy, change_id) -> Outcome:
        local = self.get(cid)
        if local is None:
            self._store(cid, r_values, r_field_ts, r_vv, r_stamp)
            return Outcome(change_id, "applied")
        l_values = {f: local[f] for f in FIELDS}
        l_field_ts = json.loads(local["field_ts"])
        l_vv = json.loads(local["vv"])
        l_stamp = json.loads(local["stamp"])
        merged_vv = {k: max(l_vv.get(k, 0), r_vv.get(k, 0)) for k in set(l_vv) | set(r_vv)}
        newest = r_stamp if _newer(r_stamp, l_stamp) else l_stamp

        if strategy == "lww":       # the whole row of the latest write, everywhere
            if newest is r_stamp:
                self._store(cid, r_values, r_field_ts, merged_vv, r_stamp)
                return Outcome(change_id, "applied")
            self._store(cid, l_values, l_field_ts, merged_vv, l_stamp)
            return Outcome(change_id, "stale")

        result, concurrent = "merged", False
        if strategy == "vector":
            if _dominates(l_vv, r_vv):
                return Outcome(change_id, "stale")       # we have seen everything it says
            if _dominates(r_vv, l_vv):
                result = "applied"                       # it has seen everything we have
            else:
                result, concurrent = "conflict", True    # neither saw the other: a true conflict
        # field by field, the later write wins: the same answer in any delivery order
        values, field_ts = dict(l_values), dict(l_field_ts)
        for f in FIELDS:
            theirs, ours = r_field_ts.get(f), l_field_ts.get(f)
            if theirs and (ours is None or _newer(theirs, ours)):
                values[f], field_ts[f] = r_values[f], theirs
        self._store(cid, values, field_ts, merged_vv, newest)
        return Outcome(change_id, result, concurrent)

    # -- inspection ---------------------------------------------------------------------------
    def snapshot(self) -> list[tuple]:
        """The replicated content, comparable across regions."""
        return [tuple(r) for r in self.db.execute(
            "SELECT id, name, email, tier FROM customers ORDER BY id").fetchall()]

    @staticmethod
    def read_snapshot(path: str | Path) -> list[tuple]:
        """A region's rows read through a read-only connection (no lock taken for writing)."""
        con = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
        try:
            return [tuple(r) for r in con.execute(
                "SELECT id, name, email, tier FROM customers ORDER BY id").fetchall()]
        finally:
            con.close()

    def applied_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM applied").fetchone()[0]


# -- on Kafka -----------------------------------------------------------------------------------
class RegionNode(Worker):
    """One region: local writes at `settings["write_rate"][region]` per second, its outbox
    published (idempotent producer), and the other regions' changes applied with
    `settings["strategy"]`; what cannot be applied goes to the dead-letter topic."""

    def __init__(self, region: str, db_path: str | Path, topic: str, dlq: str, settings: dict,
                 name: str | None = None, seed: int = 0):
        super().__init__(name or f"region:{region}")
        self.region, self.db_path, self.topic, self.dlq = region, Path(db_path), topic, dlq
        self.settings = settings
        self.rnd = random.Random(seed)
        self.counts = {"written": 0, "published": 0, "applied": 0, "stale": 0, "duplicate": 0,
                       "merged": 0, "conflict": 0, "dead_letter": 0}
        self.lag = 0.0            # seconds from a change's write to its apply here (latest)
        self.idle = threading.Event()
        self.errors, self.last_error = 0, None

    def run(self) -> None:
        from kafka import KafkaProducer

        from ..config import client_config, group_consumer

        db = RegionDB(self.region, self.db_path)
        try:
            with KafkaProducer(**client_config()) as producer, \
                    group_consumer(self.topic, group_id=f"{self.topic}-{self.region}") as consumer:
                next_write = time.monotonic()
                while not self.stopping.is_set():
                    try:
                        next_write = self._step(db, producer, consumer, next_write)
                    except (KafkaError, sqlite3.OperationalError) as e:
                        # a failed commit or a busy database: nothing is lost (the outbox and the
                        # uncommitted offsets are replayed, and applying is idempotent), so go on
                        self.errors += 1
                        self.last_error = f"{type(e).__name__}: {e}"
                        self.idle.clear()
                        self._rewind(consumer)
                        self.stopping.wait(0.2)
        finally:
            db.close()

    @staticmethod
    def _rewind(consumer) -> None:
        """Back to the committed offsets: the rest of a failed batch is read again, not skipped."""
        for tp in consumer.assignment():
            committed = consumer.committed(tp)
            if committed is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)

    def _step(self, db: RegionDB, producer, consumer, next_write: float) -> float:
        rate = self.settings["write_rate"].get(self.region, 0)
        if rate > 0 and time.monotonic() >= next_write:
            db.write(f"customer-{self.rnd.randint(1, 12)}",
                     **{self.rnd.choice(FIELDS): f"{self.region}-{self.counts['written']}"})
            self.counts["written"] += 1
            next_write = time.monotonic() + 1.0 / rate
        self._publish(db, producer)
        polled = consumer.poll(timeout_ms=50, max_records=200)
        for records in polled.values():
            for r in records:
                self._apply(db, producer, r)
        if polled:
            consumer.commit()
        if polled or db.pending_changes(1):
            self.idle.clear()
        else:
            self.idle.set()       # nothing to publish, nothing arrived
        return next_write

    def _publish(self, db: RegionDB, producer) -> None:
        events = db.pending_changes()
        if not events:
            return
        sends = [producer.send(self.topic, json.dumps(e).encode(), key=e["row"]["id"].encode(),
                               headers=[("origin", self.region.encode())]) for e in events]
        producer.flush(timeout=10)
        for sent in sends:                  # every one acknowledged before the outbox rows are
            sent.get(timeout=0)             # marked; a failed send raises and they stay pending
        db.mark_published(events[-1]["seq"])
        self.counts["published"] += len(events)

    def _apply(self, db: RegionDB, producer, record) -> None:
        try:
            event = json.loads(record.value)
            if event.get("origin") == self.region:
                return
            outcome = db.apply(event, self.settings["strategy"])
        except (ValueError, Unappliable) as e:       # not JSON, or not a change we can apply
            producer.send(self.dlq, record.value, key=record.key, headers=[
                ("reason", f"{type(e).__name__}: {e}".encode()), ("region", self.region.encode()),
                ("source", f"{record.topic}/{record.partition}/{record.offset}".encode())]).get(timeout=10)
            self.counts["dead_letter"] += 1
            return
        self.counts[outcome.result] += 1
        if outcome.result != "duplicate":
            self.lag = max(0.0, time.time() - float(event["row"]["stamp"][0]))
