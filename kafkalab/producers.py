"""Background producers that hold a target rate, plus sample-event generators.

A RateProducer's thread owns its KafkaProducer from creation to close. Other threads (widgets,
the notebook) only set an event (pause) or queue a command, a method the owner thread then runs
between sends: a new rate, new keys, a new payload size, a new producer configuration.
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

from .runtime import RateMeter, Worker

MAX_RATE = 1_000_000.0
BURST = 500            # records per turn when sending flat out (rate=None)
# Records due are sent together at most every SEND_TICK s: waking kafka-python's sender once per
# record costs about half a core at 300 msg/s (measured on the lab broker), once per tick a tenth of
# that. The rate over any second is unchanged; records go out in small bursts, as with linger.ms.
SEND_TICK = 0.05
RECONFIGURABLE = {"compression_type", "acks", "linger_ms", "batch_size", "enable_idempotence",
                  "max_in_flight_requests_per_connection"}
COMPRESSION = (None, "gzip", "snappy", "lz4", "zstd")
KEY_MODES = ("uniform", "skewed")
# kafka-python blocks a send up to max_block_ms (60 s) waiting for a topic's metadata; a lab
# producer should report a vanished topic or broker in seconds and stay stoppable.
LAB_PRODUCER_CONFIG = {"max_block_ms": 5000}


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
    return config


def producer_settings(current: dict, change: dict, original: dict) -> dict:
    """The producer configuration after `change`. acks=0/1 cannot be idempotent: kafka-python 3
    would only warn and switch idempotence off, so it is switched off here, visibly; going back
    to acks=all restores the idempotence the producer was created with (kafka-python's default
    when it was not given)."""
    merged = {**current, **change}
    if "acks" in change and "enable_idempotence" not in change:
        if change["acks"] in (0, 1):
            merged["enable_idempotence"] = False
        elif "enable_idempotence" in original:
            merged["enable_idempotence"] = original["enable_idempotence"]
        else:
            merged.pop("enable_idempotence", None)
    return merged


class KeyChooser:
    """Keys for a generated stream.

    Parameters
    ----------
    mode : "uniform" (any of `keys` keys, equally), "skewed" (one hot key takes `hot_share` of
        the records, the rest spread over the others), None (no key: the producer spreads records
        over partitions itself) or a function i -> key. For one fixed key: `lambda i: "my-key"`.
    keys : how many distinct keys "uniform" and "skewed" use (key-0 ... key-{keys-1}).
    hot_share : the hot key's share for "skewed", from 0 to 1.
    seed : makes the choice repeatable.
    """

    def __init__(self, mode: str | Callable | None = "uniform", keys: int = 10,
                 hot_share: float = 0.8, seed: int | None = None):
        if not (mode is None or callable(mode) or mode in KEY_MODES):
            raise ValueError(f"key must be 'uniform', 'skewed', None or a function i -> key, got {mode!r}"
                             " (for one fixed key: key=lambda i: 'my-key')")
        if isinstance(keys, bool) or not isinstance(keys, int) or keys < 1:
            raise ValueError(f"keys must be a whole number >= 1, got {keys!r}")
        if not 0 <= hot_share <= 1:
            raise ValueError(f"hot_share must be between 0 and 1, got {hot_share!r}")
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
        if self.keys == 1 or self._rnd.random() < self.hot_share:
            return self._names[0]
        return self._rnd.choice(self._names[1:])


def sample_event(i: int, key=None) -> dict:
    """A small reading, the default value: an id, a timestamp in ms and a number."""
    return {"id": i, "ts": int(time.time() * 1000), "key": key,
            "reading": round(random.gauss(20.0, 5.0), 3)}


def encode_value(value: Any, payload_size: int = 0) -> bytes:
    """dict/list as JSON (a dict padded with a "pad" field), str as UTF-8, bytes as they are;
    padded to at least `payload_size` bytes."""
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


class Pacer:
    """When to send: record n of a run at `rate` msg/s is due at start + n / rate. Pure (it is
    told the time), so its accuracy is tested with a fake clock. A sender that fell behind
    catches up by at most one second's worth instead of flooding the broker; rate None means
    `BURST` records whenever asked."""

    def __init__(self, rate: float | None, now: float):
        self.restart(rate, now)

    def restart(self, rate: float | None, now: float) -> None:
        """A new rate, or a resume: the schedule starts again from `now`."""
        self.rate, self.start, self.n = rate, now, 0

    def due(self, now: float) -> int:
        """How many records may be sent now."""
        if self.rate is None:
            return BURST
        due = int((now - self.start) * self.rate) + 1 - self.n
        if due > self.rate + 1:                 # more than a second behind: forget the backlog
            self.start, self.n = now - 1.0, 0
            due = int(self.rate) + 1
        return max(due, 0)

    def sent(self, n: int) -> None:
        self.n += n

    def wait(self, now: float) -> float:
        """Seconds until the next record is due (0 when one is due now)."""
        if self.rate is None:
            return 0.0
        return max(self.start + self.n / self.rate - now, 0.0)


class RateProducer(Worker):
    """Produces to `topic` at a target rate in the background until stopped, `count` records
    or `duration` seconds; steer it while it runs with set_rate(), set_keys(), set_payload(),
    reconfigure(), pause() and resume() (or a ProducerPanel).

    Parameters
    ----------
    topic : the topic to write. It must exist: the lab broker does not create topics on first
        use, so a missing topic fails the producer within seconds, naming it.
    rate : target messages per second, in (0, 1,000,000]; None sends as fast as it can.
    value : value(i, key) -> dict or list (sent as JSON), str or bytes. Default: a small JSON
        sensor reading (`sample_event`).
    key : "uniform", "skewed", None or a function i -> key (see KeyChooser).
    keys : how many keys "uniform" and "skewed" use.
    hot_share : the hot key's share of records with key="skewed".
    payload_size : pad every value to at least this many bytes.
    count : stop after this many records. duration : stop after this many seconds.
    name : its name in the registry: starting another worker under it stops this one.
        Default "producer:<topic>" (with #2, #3... when another cell's producer has it).
    seed : makes key="uniform"/"skewed" repeatable.
    **producer_config : KafkaProducer settings (acks, compression_type, linger_ms...), on top
        of kafkalab.client_config().
    """

    def __init__(self, topic: str, rate: float | None = 100.0, value: Callable | None = None,
                 key: str | Callable | None = "uniform", keys: int = 10, hot_share: float = 0.8,
                 payload_size: int = 0, count: int | None = None, duration: float | None = None,
                 name: str | None = None, seed: int | None = None, **producer_config):
        super().__init__(name, default=f"producer:{topic}")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            raise ValueError(f"count must be a whole number >= 0, got {count!r}")
        if duration is not None and not (isinstance(duration, (int, float)) and duration > 0
                                         and math.isfinite(duration)):
            raise ValueError(f"duration must be a number of seconds > 0, got {duration!r}")
        self.topic = topic
        self.target_rate = check_rate(rate)
        self.value = value or sample_event
        self.keys = KeyChooser(key, keys, hot_share, seed)
        self.payload_size = check_payload(payload_size)
        self.count, self.duration = count, duration
        self._original_config = dict(producer_config)
        self.producer_config = dict(producer_config)
        self._commands: queue.Queue = queue.Queue()
        self._paused = threading.Event()
        self._lat = deque(maxlen=5_000)
        self._pending: deque = deque()           # futures of sends not yet counted
        self._meter = RateMeter(lambda: self.acked)
        self._producer = None                    # the owner thread's KafkaProducer
        self._pacer: Pacer | None = None
        self.sent = self.acked = self.errors = 0
        self.last_error: str | None = None
        self.started_at: float | None = None

    # -- control, from any thread: each queues a method for the owner thread ----------------
    def set_rate(self, rate: float | None) -> None:
        self._commands.put((self._apply_rate, check_rate(rate)))

    def set_keys(self, mode: str | Callable | None, hot_share: float | None = None) -> None:
        chooser = KeyChooser(mode, self.keys.keys,
                             self.keys.hot_share if hot_share is None else hot_share)
        self._commands.put((self._apply_keys, chooser))

    def set_payload(self, size: int) -> None:
        self._commands.put((self._apply_payload, check_payload(size)))

    def reconfigure(self, **config) -> None:
        """Rebuild the producer with new settings (the owner thread flushes and swaps it)."""
        self._commands.put((self._apply_config, check_producer_config(config)))

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._commands.put((self._apply_resume, None))
        self._paused.clear()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    @property
    def rate(self) -> float:
        """The achieved rate: acknowledged records per second over the last two seconds."""
        return self._meter.rate()

    @property
    def stats(self) -> dict:
        lat = np.fromiter(tuple(self._lat), dtype=float) if self._lat else None
        return {"target": self.target_rate, "sent": self.sent, "acked": self.acked,
                "errors": self.errors, "in_flight": self.sent - self.acked - self.errors,
                "rate": round(self.rate, 1),
                "latency_p50_ms": round(float(np.percentile(lat, 50)), 2) if lat is not None else None,
                "latency_p99_ms": round(float(np.percentile(lat, 99)), 2) if lat is not None else None,
                "paused": self.paused, "running": self.alive, "last_error": self.last_error}

    # -- the owner thread: commands ---------------------------------------------------------
    def _apply_rate(self, rate: float | None) -> None:
        self.target_rate = rate
        self._pacer.restart(rate, time.monotonic())

    def _apply_keys(self, chooser: KeyChooser) -> None:
        self.keys = chooser

    def _apply_payload(self, size: int) -> None:
        self.payload_size = size

    def _apply_resume(self, _=None) -> None:
        self._pacer.restart(self.target_rate, time.monotonic())

    def _apply_config(self, change: dict) -> None:
        self._producer.close(timeout=10)        # flushes: every pending send completes
        self._settle()
        self.producer_config = producer_settings(self.producer_config, change, self._original_config)
        self._producer = self._make()
        self._pacer.restart(self.target_rate, time.monotonic())

    # -- the owner thread: sending ----------------------------------------------------------
    def _on_timed_ack(self, t_sent: float, _metadata) -> None:
        self._lat.append((time.monotonic() - t_sent) * 1000)

    def _on_error(self, exc) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    def _make(self):
        from kafka import KafkaProducer

        from .config import client_config
        return KafkaProducer(**client_config(**{**LAB_PRODUCER_CONFIG, **self.producer_config}))

    def run(self) -> None:
        from .explore import require_topics
        try:
            require_topics([self.topic], **self.producer_config)
        except Exception as e:   # shown in stats and the panel, not only in failure
            self.last_error = f"{type(e).__name__}: {e}"
            raise
        self._producer = self._make()
        try:
            self._loop()
        finally:
            self._producer.close(timeout=10)

    def _loop(self) -> None:
        self.started_at = now = time.monotonic()
        self._pacer = pacer = Pacer(self.target_rate, now)
        end = now + self.duration if self.duration else math.inf
        while not self.stopping.is_set():
            now = time.monotonic()
            self._meter.mark(now)
            if now >= end or (self.count is not None and self.sent >= self.count):
                break
            while True:
                try:
                    command, arg = self._commands.get_nowait()
                except queue.Empty:
                    break
                command(arg)
            if self._paused.is_set():
                self._settle()
                self.stopping.wait(0.05)
                pacer.restart(self.target_rate, time.monotonic())
                continue
            due = pacer.due(now)
            if due == 0:
                self._settle()
                self.stopping.wait(min(max(pacer.wait(now), SEND_TICK), 0.05))
                continue
            if self.count is not None:
                due = min(due, self.count - self.sent)
            pacer.sent(self._send_batch(self._producer, due, self.sent))
        self._producer.flush(timeout=30)
        self._settle()
        self._meter.mark(force=True)

    def _send_batch(self, producer, due: int, i: int) -> int:
        sent = 0
        send, topic, keys, value, size = (producer.send, self.topic, self.keys, self.value,
                                          self.payload_size)
        pending = self._pending
        for j in range(i, i + min(due, 2000)):
            key = keys(j)
            data = encode_value(value(j, key), size)
            timed = not j & 15  # latency from 1 record in 16: percentiles need no more
            t_sent = time.monotonic() if timed else 0.0
            try:
                future = send(topic, value=data, key=None if key is None else str(key).encode())
            except Exception as e:  # buffer full, too large, no metadata: counted, shown, slowed down
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
