"""Background producers that hold a target rate, plus sample-event generators.

A RateProducer's thread owns its KafkaProducer from creation to close. Other threads (widgets,
the notebook) only set events or put commands on a queue: pause, resume, a new rate, a new
producer configuration (compression, acks...), which the owner applies between sends.
"""
from __future__ import annotations

import json
import math
import queue
import random
import threading
import time
from collections import deque
from typing import Any, Callable

import numpy as np

from .runtime import Worker

MAX_RATE = 1_000_000.0
RECONFIGURABLE = {"compression_type", "acks", "linger_ms", "batch_size", "enable_idempotence",
                  "max_in_flight_requests_per_connection"}
COMPRESSION = (None, "gzip", "snappy", "lz4", "zstd")


def check_rate(rate) -> float | None:
    """None means as fast as possible; anything else must be a finite rate in (0, 1e6] msg/s."""
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise ValueError(f"rate must be a number of messages per second, got {rate!r}")
    if not (math.isfinite(rate) and 0 < rate <= MAX_RATE):
        raise ValueError(f"rate must be > 0 and <= {MAX_RATE:,.0f} msg/s, got {rate}")
    return float(rate)


def check_payload(size) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= 1_000_000:
        raise ValueError(f"payload size must be a whole number of bytes from 0 to 1,000,000, got {size!r}")
    return size


def check_producer_config(config: dict) -> dict:
    unknown = set(config) - RECONFIGURABLE
    if unknown:
        raise ValueError(f"cannot change {sorted(unknown)} while running; "
                         f"changeable: {sorted(RECONFIGURABLE)}")
    if "compression_type" in config and config["compression_type"] not in COMPRESSION:
        raise ValueError(f"compression_type must be one of {COMPRESSION}")
    if "acks" in config and config["acks"] not in (0, 1, "all", -1):
        raise ValueError("acks must be 0, 1 or 'all'")
    if config.get("acks") in (0, 1) and "enable_idempotence" not in config:
        # kafka-python 3 would only warn and switch idempotence off; say it explicitly
        config = {**config, "enable_idempotence": False}
    return config


class KeyChooser:
    """uniform over `keys` keys; skewed: one hot key takes `hot_share`; a str: always that key;
    a callable: key(i); None: no key (the producer spreads records itself)."""

    def __init__(self, mode: str | Callable | None = "uniform", keys: int = 10,
                 hot_share: float = 0.8, seed: int | None = None):
        if keys < 1:
            raise ValueError("keys must be >= 1")
        if not 0 <= hot_share <= 1:
            raise ValueError("hot_share must be between 0 and 1")
        self.mode, self.keys, self.hot_share = mode, keys, hot_share
        self._rnd = random.Random(seed)
        self._names = [f"key-{i}" for i in range(keys)]

    def __call__(self, i: int):
        if self.mode is None:
            return None
        if callable(self.mode):
            return self.mode(i)
        if self.mode == "uniform":
            return self._rnd.choice(self._names)
        if self.mode == "skewed":
            if self.keys == 1 or self._rnd.random() < self.hot_share:
                return self._names[0]
            return self._rnd.choice(self._names[1:])
        return self.mode  # a fixed key


def sample_event(i: int, key=None) -> dict:
    """A small reading, the default value: an id, a timestamp in ms and a number."""
    return {"id": i, "ts": int(time.time() * 1000), "key": key,
            "reading": round(random.gauss(20.0, 5.0), 3)}


def _encode(value: Any, payload_size: int) -> bytes:
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode()
    else:
        data = json.dumps(value, separators=(",", ":")).encode()
        if len(data) < payload_size and isinstance(value, dict):
            pad = payload_size - len(data) - len(',"pad":""')
            data = json.dumps({**value, "pad": "x" * max(0, pad)}, separators=(",", ":")).encode()
    if len(data) < payload_size:
        data += b" " * (payload_size - len(data))
    return data


class RateProducer(Worker):
    """Produces to `topic` at `rate` msg/s (None: flat out) until stopped, `count` or `duration`.

    value(i, key) makes each record's value (dict/list: JSON; str; bytes); the default is a
    sample reading. payload_size pads values to at least that many bytes.
    """

    def __init__(self, topic: str, rate: float | None = 100.0, value: Callable | None = None,
                 key: str | Callable | None = "uniform", keys: int = 10, hot_share: float = 0.8,
                 payload_size: int = 0, count: int | None = None, duration: float | None = None,
                 name: str | None = None, seed: int | None = None, **producer_config):
        super().__init__(name or f"producer:{topic}")
        if count is not None and count < 0:
            raise ValueError("count must be >= 0")
        self.topic = topic
        self._rate = check_rate(rate)
        self.value = value or sample_event
        self.keys = KeyChooser(key, keys, hot_share, seed)
        self.payload_size = check_payload(payload_size)
        self.count, self.duration = count, duration
        self.producer_config = producer_config
        self._commands: queue.Queue = queue.Queue()
        self._paused = threading.Event()
        self._lat = deque(maxlen=5_000)
        self._pending: deque = deque()           # futures of sends not yet counted
        self._rate_marks = deque(maxlen=64)     # (monotonic t, acked)
        self.sent = self.acked = self.errors = 0
        self.last_error: str | None = None
        self.started_at: float | None = None

    # -- control, from any thread ---------------------------------------------------------
    def set_rate(self, rate: float | None) -> None:
        self._commands.put(("rate", check_rate(rate)))

    def set_keys(self, mode: str | Callable | None, hot_share: float | None = None) -> None:
        chooser = KeyChooser(mode, self.keys.keys,
                             self.keys.hot_share if hot_share is None else hot_share)
        self._commands.put(("keys", chooser))

    def set_payload(self, size: int) -> None:
        self._commands.put(("payload", check_payload(size)))

    def reconfigure(self, **config) -> None:
        """Rebuild the producer with new settings (the owner thread flushes and swaps it)."""
        self._commands.put(("config", check_producer_config(config)))

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._commands.put(("resume", None))
        self._paused.clear()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    @property
    def rate(self) -> float | None:
        return self._rate

    @property
    def stats(self) -> dict:
        lat = np.fromiter(tuple(self._lat), dtype=float) if self._lat else None
        marks = list(self._rate_marks)
        recent = [m for m in marks if m[0] >= marks[-1][0] - 2.0] if marks else []
        achieved = ((recent[-1][1] - recent[0][1]) / (recent[-1][0] - recent[0][0])
                    if len(recent) >= 2 and recent[-1][0] > recent[0][0] else 0.0)
        return {"target": self._rate, "sent": self.sent, "acked": self.acked,
                "errors": self.errors, "in_flight": self.sent - self.acked - self.errors,
                "rate": round(achieved, 1),
                "latency_p50_ms": round(float(np.percentile(lat, 50)), 2) if lat is not None else None,
                "latency_p99_ms": round(float(np.percentile(lat, 99)), 2) if lat is not None else None,
                "paused": self.paused, "running": self.alive, "last_error": self.last_error}

    # -- the owner thread -------------------------------------------------------------------
    def _on_timed_ack(self, t_sent: float, _metadata) -> None:
        self._lat.append((time.monotonic() - t_sent) * 1000)

    def _on_error(self, exc) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    def _make(self, config: dict):
        from kafka import KafkaProducer

        from .config import client_config
        return KafkaProducer(**client_config(**config))

    def run(self) -> None:
        box = [self._make(self.producer_config)]  # a box: reconfigure swaps the producer
        try:
            self._loop(box)
        finally:
            box[0].close(timeout=10)

    def _loop(self, box: list) -> None:
        self.started_at = t_base = time.monotonic()
        n_base, i = 0, 0
        end = t_base + self.duration if self.duration else math.inf
        next_mark = t_base
        while not self.stopping.is_set():
            now = time.monotonic()
            if now >= next_mark:
                self._rate_marks.append((now, self.acked))
                next_mark = now + 0.25
            if now >= end or (self.count is not None and self.sent >= self.count):
                break
            rebase = False
            while True:
                try:
                    what, arg = self._commands.get_nowait()
                except queue.Empty:
                    break
                if what == "rate":
                    self._rate, rebase = arg, True
                elif what == "keys":
                    self.keys = arg
                elif what == "payload":
                    self.payload_size = arg
                elif what == "resume":
                    rebase = True
                elif what == "config":
                    box[0].close(timeout=10)  # flushes: every pending send completes
                    self._settle()
                    self.producer_config = {**self.producer_config, **arg}
                    box[0] = self._make(self.producer_config)
                    rebase = True
            if rebase:
                t_base, n_base = time.monotonic(), 0
            if self._paused.is_set():
                self._settle()
                self.stopping.wait(0.05)
                t_base, n_base = time.monotonic(), 0
                continue
            rate = self._rate
            if rate is None:
                due = 500
            else:
                # first record at t=0, then one every 1/rate s; a late thread catches up by at
                # most one second's worth instead of flooding the broker
                due = int((now - t_base) * rate) + 1 - n_base
                if due > rate + 1:
                    t_base, n_base = now - 1.0, 0  # forget the older backlog
                    due = int(rate) + 1
                if due <= 0:
                    self._settle()
                    wait = t_base + n_base / rate - now
                    self.stopping.wait(min(max(wait, 0.0005), 0.05))
                    continue
            if self.count is not None:
                due = min(due, self.count - self.sent)
            n_base += self._send_batch(box[0], due, i)
            i = self.sent
        box[0].flush(timeout=30)
        self._settle()
        self._rate_marks.append((time.monotonic(), self.acked))

    def _send_batch(self, producer, due: int, i: int) -> int:
        sent = 0
        send, topic, keys, value, size = (producer.send, self.topic, self.keys, self.value,
                                          self.payload_size)
        pending = self._pending
        for j in range(i, i + min(due, 2000)):
            key = keys(j)
            data = _encode(value(j, key), size)
            timed = not j & 15  # latency from 1 record in 16: percentiles need no more
            t_sent = time.monotonic() if timed else 0.0
            try:
                future = send(topic, value=data, key=None if key is None else str(key).encode())
            except Exception as e:  # buffer full, too large, closed: counted, shown, slowed down
                self._on_error(e)
                self.stopping.wait(0.05)
                break
            if timed:
                future.add_callback(self._on_timed_ack, t_sent)
            pending.append(future)
            self.sent += 1
            sent += 1
        self._settle()
        return sent

    def _settle(self) -> None:
        """Count finished sends, oldest first: cheaper than a callback on every record."""
        pending = self._pending
        while pending and pending[0].is_done:
            future = pending.popleft()
            if future.exception is None:
                self.acked += 1
            else:
                self._on_error(future.exception)

    def wait(self, timeout: float | None = None) -> dict:
        """Block until a bounded run (count= or duration=) has finished; return its stats."""
        self.join(timeout)
        return self.stats
