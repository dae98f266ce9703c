"""Log aggregation: structured logs, message patterns, and spike alerts that come and go.

The cheat sheet's analyzer replaced digits before UUIDs (so UUIDs never matched), counted
patterns forever (so it detected volume, not spikes) and called its last-seen time first_seen.
Here patterns mask UUIDs, hex ids and numbers in that order, and each pattern's rate is an
exponentially decaying counter: an alert fires when the rate crosses a threshold and clears
when it falls back below half of it, with first and last seen kept apart.
"""
from __future__ import annotations

import json
import math
import random
import re
import time
import uuid
from dataclasses import dataclass, field

from ..runtime import Worker

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_HEX = re.compile(r"\b(?:0x)?(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{6,}\b")
_IP = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
_NUM = re.compile(r"(?<![A-Za-z])[-+]?\d+(?:\.\d+)?")


def extract_pattern(message: str, limit: int = 120) -> str:
    """The message with its variable parts masked: UUIDs first, then hex ids and IP addresses,
    then numbers (numbers first would cut UUIDs to pieces, as the cheat sheet's version did)."""
    pattern = _UUID.sub("<uuid>", message)
    pattern = _HEX.sub("<hex>", pattern)
    pattern = _IP.sub("<ip>", pattern)
    pattern = _NUM.sub("<n>", pattern)
    return pattern[:limit]


TEMPLATES = {
    "payments": [("ERROR", "Payment {uuid} failed: card declined after {n} attempts"),
                 ("WARNING", "Payment gateway latency {n} ms above threshold"),
                 ("INFO", "Payment {uuid} captured, amount {amount}"),
                 ("DEBUG", "Retry budget {n} for order {hex}")],
    "auth": [("ERROR", "Login failed for user {n} from {ip}"),
             ("WARNING", "Token {hex} expires in {n} s"),
             ("INFO", "User {n} logged in"),
             ("CRITICAL", "Signing key {hex} could not be loaded")],
    "search": [("INFO", "Query took {n} ms, {n} hits"),
               ("ERROR", "Index shard {n} unavailable"),
               ("DEBUG", "Cache hit ratio {amount}")],
}


def make_log(service: str, rnd: random.Random, error_rate: float = 0.05, now: float = 0.0,
             force_level: str | None = None) -> dict:
    """One structured log record for `service`; errors (and criticals) at about `error_rate`."""
    templates = TEMPLATES[service]
    bad = [t for t in templates if t[0] in ("ERROR", "CRITICAL")]
    good = [t for t in templates if t[0] not in ("ERROR", "CRITICAL")]
    if force_level:
        choices = [t for t in templates if t[0] == force_level] or templates
    else:
        choices = bad if rnd.random() < error_rate else good
    level, template = rnd.choice(choices)
    message = template
    for token, fill in (("{uuid}", lambda: str(uuid.UUID(int=rnd.getrandbits(128)))),
                        ("{hex}", lambda: f"{rnd.getrandbits(48):012x}"),
                        ("{amount}", lambda: f"{rnd.uniform(1, 500):.2f}"),
                        ("{ip}", lambda: f"10.0.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}"),
                        ("{n}", lambda: str(rnd.randint(1, 9999)))):
        while token in message:
            message = message.replace(token, fill(), 1)
    return {"ts": now, "service": service, "level": level, "message": message,
            "trace_id": uuid.UUID(int=rnd.getrandbits(128)).hex, "host": f"{service}-{rnd.randint(1, 3)}"}


@dataclass
class PatternState:
    pattern: str
    service: str
    level: str
    rate: float = 0.0            # decayed events per second
    count: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    alerting: bool = False


@dataclass
class SpikeDetector:
    """Per (service, pattern) rates with exponential decay (half-life in seconds).

    rate is events/s averaged over roughly the half-life; an alert opens when it reaches
    `threshold` (events/s) and closes when it drops below `threshold * clear_ratio`.
    """
    threshold: float = 2.0
    half_life: float = 10.0
    clear_ratio: float = 0.5
    levels: tuple = ("WARNING", "ERROR", "CRITICAL")
    max_patterns: int = 10_000
    states: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.threshold <= 0 or self.half_life <= 0 or not 0 < self.clear_ratio < 1:
            raise ValueError("threshold and half_life must be positive, clear_ratio in (0, 1)")
        self._k = math.log(2) / self.half_life

    def _decay(self, state: PatternState, now: float) -> None:
        dt = max(0.0, now - state.last_seen)
        state.rate *= math.exp(-self._k * dt)
        state.last_seen = max(state.last_seen, now)

    def observe(self, log: dict) -> list[dict]:
        """Account one log record; return the alert events (opened/cleared) it caused."""
        if log["level"] not in self.levels:
            return []
        now = float(log["ts"])
        key = (log["service"], extract_pattern(log["message"]))
        state = self.states.get(key)
        if state is None:
            if len(self.states) >= self.max_patterns:  # bounded: forget the quietest pattern
                quietest = min(self.states, key=lambda k: self.states[k].rate)
                del self.states[quietest]
            state = self.states[key] = PatternState(key[1], key[0], log["level"], first_seen=now,
                                                    last_seen=now)
        self._decay(state, now)
        state.rate += self._k  # one event adds k, so a steady r events/s converges to r
        state.count += 1
        return self._transitions([state], now)

    def tick(self, now: float) -> list[dict]:
        """Decay every pattern to `now` (quiet patterns clear their alerts)."""
        for state in self.states.values():
            self._decay(state, now)
        return self._transitions(list(self.states.values()), now)

    def _transitions(self, states, now: float) -> list[dict]:
        events = []
        for s in states:
            if not s.alerting and s.rate >= self.threshold:
                s.alerting = True
                events.append(self._event("opened", s, now))
            elif s.alerting and s.rate < self.threshold * self.clear_ratio:
                s.alerting = False
                events.append(self._event("cleared", s, now))
        return events

    @staticmethod
    def _event(kind: str, s: PatternState, now: float) -> dict:
        return {"alert": kind, "service": s.service, "pattern": s.pattern, "level": s.level,
                "rate_per_s": round(s.rate, 2), "count": s.count, "first_seen": s.first_seen,
                "last_seen": s.last_seen, "at": now,
                "severity": "HIGH" if s.level in ("ERROR", "CRITICAL") else "MEDIUM"}

    def top(self, n: int = 10) -> list[PatternState]:
        return sorted(self.states.values(), key=lambda s: -s.rate)[:n]


# -- on Kafka -----------------------------------------------------------------------------------
def level_topic(prefix: str, level: str) -> str:
    return f"{prefix}-{level.lower()}"


class LogEmitter(Worker):
    """Services logging at `settings["rate"]` records/s with `settings["error_rate"]`, each record
    routed to its level's topic (debug and critical included), with acks=1 stated explicitly."""

    def __init__(self, prefix: str, settings: dict, services=("payments", "auth", "search"),
                 name: str = "logs:emitter", seed: int = 0):
        super().__init__(name)
        self.prefix, self.settings, self.services = prefix, settings, services
        self.rnd = random.Random(seed)
        self.sent = self.failed = 0

    def _failed(self, exc) -> None:
        self.failed += 1

    def run(self) -> None:
        from kafka import KafkaProducer

        from ..config import client_config
        with KafkaProducer(**client_config(acks=1, enable_idempotence=False, linger_ms=5)) as producer:
            next_at = time.monotonic()
            while not self.stopping.is_set():
                rate = max(0.1, float(self.settings.get("rate", 50)))
                if time.monotonic() < next_at:
                    self.stopping.wait(min(0.05, next_at - time.monotonic()))
                    continue
                next_at += 1.0 / rate
                log = make_log(self.rnd.choice(self.services), self.rnd,
                               self.settings.get("error_rate", 0.05), now=time.time())
                producer.send(level_topic(self.prefix, log["level"]), json.dumps(log).encode(),
                              key=log["service"].encode()).add_errback(self._failed)
                self.sent += 1


class LogAnalyzer(Worker):
    """Reads every level's topic, feeds a SpikeDetector, and publishes alert events (opened and
    cleared) to the alerts topic; commits after each batch is analysed."""

    def __init__(self, prefix: str, alerts_topic: str, detector: SpikeDetector,
                 name: str = "logs:analyzer"):
        super().__init__(name)
        self.prefix, self.alerts_topic, self.detector = prefix, alerts_topic, detector
        self.read = 0
        self.recent: list[dict] = []

    def run(self) -> None:
        from kafka import KafkaProducer

        from ..config import client_config, group_consumer
        topics = [level_topic(self.prefix, lv) for lv in LEVELS]
        with group_consumer(*topics, group_id=f"{self.prefix}-analyzer") as consumer, \
                KafkaProducer(**client_config()) as producer:
            while not self.stopping.is_set():
                events = []
                polled = consumer.poll(timeout_ms=200, max_records=500)
                for records in polled.values():
                    for r in records:
                        events += self.detector.observe(json.loads(r.value))
                        self.read += 1
                events += self.detector.tick(time.time())
                for e in events:
                    producer.send(self.alerts_topic, json.dumps(e).encode(), key=e["service"].encode())
                    self.recent = (self.recent + [e])[-50:]
                if events:
                    producer.flush(timeout=10)
                if polled:
                    consumer.commit()
