"""Web activity analytics: sessions, a funnel, and anomalies in per-user event rates.

Fixes to the cheat sheet's engine: sessions end after an inactivity timeout and the state is
bounded (least recently active users are evicted); the funnel is defined on the pages the
generator really produces; anomaly detection is a rolling z-score of each user's event rate
against the population, not a constant that can never cross its threshold.
"""
from __future__ import annotations

import heapq
import json
import math
import random
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from ..runtime import Worker

FUNNEL = ("/home", "/product", "/cart", "/checkout", "/thank-you")


def make_visit(user: str, start: float, rnd: random.Random, continue_p: float = 0.6,
               gap: tuple[float, float] = (1.0, 8.0)) -> list[dict]:
    """One visit walking down the funnel: each step continues with probability `continue_p`;
    a visit that reaches /thank-you ends with a purchase."""
    events, t = [], start
    for i, page in enumerate(FUNNEL):
        events.append({"user": user, "type": "page_view", "page": page, "ts": t})
        if rnd.random() < 0.5:
            t += rnd.uniform(0.2, 1.0)
            events.append({"user": user, "type": "click", "page": page, "ts": t})
        if page == "/thank-you":
            events.append({"user": user, "type": "purchase", "page": page, "ts": t,
                           "amount": round(rnd.uniform(5, 200), 2)})
            break
        if rnd.random() > continue_p:
            break
        t += rnd.uniform(*gap)
    return events


@dataclass
class Session:
    user: str
    start: float
    last: float
    events: int = 0
    pages: list = field(default_factory=list)
    revenue: float = 0.0

    @property
    def furthest_step(self) -> int:
        return max((FUNNEL.index(p) for p in self.pages if p in FUNNEL), default=-1)


class Sessionizer:
    """Groups each user's events into sessions split by `timeout` seconds of inactivity.
    At most `max_users` open sessions are kept: the least recently active one is closed first."""

    def __init__(self, timeout: float = 30.0, max_users: int = 10_000):
        if timeout <= 0 or max_users < 1:
            raise ValueError("timeout must be positive and max_users >= 1")
        self.timeout, self.max_users = timeout, max_users
        self.open: OrderedDict[str, Session] = OrderedDict()
        self.evicted = 0

    def add(self, event: dict) -> list[Session]:
        """Account one event (in time order per user); return the sessions it closed."""
        closed = []
        user, ts = event["user"], float(event["ts"])
        s = self.open.get(user)
        if s is not None and ts - s.last > self.timeout:
            closed.append(self.open.pop(user))
            s = None
        if s is None:
            if len(self.open) >= self.max_users:
                _, oldest = self.open.popitem(last=False)
                self.evicted += 1
                closed.append(oldest)
            s = self.open[user] = Session(user, ts, ts)
        self.open.move_to_end(user)
        s.last = max(s.last, ts)
        s.events += 1
        if event["type"] == "page_view":
            s.pages.append(event["page"])
        if event["type"] == "purchase":
            s.revenue += float(event.get("amount", 0))
        return closed

    def expire(self, now: float) -> list[Session]:
        """Close sessions idle for longer than the timeout."""
        closed = []
        while self.open:
            user, s = next(iter(self.open.items()))
            if now - s.last <= self.timeout:
                break
            closed.append(self.open.pop(user))
        return closed

    def flush(self) -> list[Session]:
        closed = list(self.open.values())
        self.open.clear()
        return closed


def funnel(sessions: list[Session]) -> list[dict]:
    """Sessions reaching each step, and the conversion from the previous step."""
    reached = [sum(1 for s in sessions if s.furthest_step >= i) for i in range(len(FUNNEL))]
    return [{"step": page, "sessions": n,
             "from_previous": round(n / reached[i - 1], 3) if i and reached[i - 1] else (1.0 if n else 0.0)}
            for i, (page, n) in enumerate(zip(FUNNEL, reached))]


class RateAnomalyDetector:
    """Rolling z-score of each user's events per `bucket` seconds against all users' recent rates.

    A user is anomalous when their rate in the last bucket is more than `z` standard deviations
    above the population mean of the last `history` buckets (and at least `min_events`)."""

    def __init__(self, bucket: float = 5.0, history: int = 500, z: float = 4.0, min_events: int = 10):
        self.bucket, self.z, self.min_events = bucket, z, min_events
        self.rates: deque = deque(maxlen=history)
        self.current: dict[str, int] = {}
        self.current_bucket: int | None = None

    def add(self, event: dict) -> list[dict]:
        b = int(float(event["ts"]) // self.bucket)
        flagged = []
        if self.current_bucket is not None and b != self.current_bucket:
            flagged = self._close()
        self.current_bucket = b
        self.current[event["user"]] = self.current.get(event["user"], 0) + 1
        return flagged

    def _close(self) -> list[dict]:
        flagged = []
        if len(self.rates) >= 20:
            mean = sum(self.rates) / len(self.rates)
            sd = math.sqrt(sum((r - mean) ** 2 for r in self.rates) / len(self.rates)) or 1.0
            for user, n in self.current.items():
                score = (n - mean) / sd
                if score > self.z and n >= self.min_events:
                    flagged.append({"user": user, "events": n, "z": round(score, 1),
                                    "bucket_start": self.current_bucket * self.bucket})
        self.rates.extend(self.current.values())
        self.current = {}
        return flagged

    def flush(self) -> list[dict]:
        return self._close() if self.current else []


# -- live: traffic on Kafka, and the dashboard's state -----------------------------------------
class Traffic(Worker):
    """Visits starting at `settings["visits_per_s"]`, each event sent when its time comes (keyed
    by user, so a user's events stay in order); `inject_bot()` adds a burst from one user."""

    def __init__(self, topic: str, settings: dict, users: int = 300, name: str = "web:traffic",
                 seed: int = 0):
        super().__init__(name)
        self.topic, self.settings, self.users = topic, settings, users
        self.rnd = random.Random(seed)
        self.sent = 0
        self.bots: list[str] = []
        self._bot_requests: deque = deque()

    def inject_bot(self, events_per_s: float = 40, seconds: float = 5) -> str:
        name = f"bot-{len(self.bots) + 1}"
        self.bots.append(name)
        self._bot_requests.append((name, events_per_s, seconds))
        return name

    def run(self) -> None:
        from kafka import KafkaProducer

        from ..config import client_config
        due: list = []
        seq = 0
        with KafkaProducer(**client_config(linger_ms=5)) as producer:
            last = time.time()
            while not self.stopping.is_set():
                now = time.time()
                starts = self.rnd.random() < self.settings.get("visits_per_s", 5) * (now - last)
                last = now
                if starts:
                    user = f"user-{self.rnd.randint(1, self.users)}"
                    for e in make_visit(user, now, self.rnd, gap=(0.3, 2.0)):
                        seq += 1
                        heapq.heappush(due, (e["ts"], seq, e))
                while self._bot_requests:
                    bot, rate, seconds = self._bot_requests.popleft()
                    for k in range(int(rate * seconds)):
                        seq += 1
                        page = FUNNEL[k % 2]
                        heapq.heappush(due, (now + k / rate, seq,
                                             {"user": bot, "type": "page_view", "page": page, "ts": now + k / rate}))
                while due and due[0][0] <= now:
                    _, _, e = heapq.heappop(due)
                    producer.send(self.topic, json.dumps(e).encode(), key=e["user"].encode(),
                                  timestamp_ms=int(e["ts"] * 1000))
                    self.sent += 1
                self.stopping.wait(0.02)


class Dashboard:
    """What the web notebook shows, updated event by event: sessions and the funnel, anomalies,
    and per-window active users, conversion and revenue (bounded to the last `keep` windows)."""

    def __init__(self, window_s: float = 5.0, session_timeout: float = 10.0, max_users: int = 5000,
                 keep: int = 60):
        self.window_s, self.keep = window_s, keep
        self.sessions = Sessionizer(timeout=session_timeout, max_users=max_users)
        # ordinary users make a few events per window; bots in the lab make 200
        self.detector = RateAnomalyDetector(bucket=window_s, z=4.0, min_events=25)
        self.closed: deque = deque(maxlen=5000)
        self.flagged: list[dict] = []
        self.windows: OrderedDict = OrderedDict()   # start -> {"users": set, "views", "purchases", "revenue"}

    def add(self, event: dict) -> None:
        self.closed.extend(self.sessions.add(event))
        self.flagged += self.detector.add(event)
        start = int(event["ts"] // self.window_s * self.window_s)
        win = self.windows.get(start)
        if win is None:
            win = self.windows[start] = {"users": set(), "views": 0, "purchases": 0, "revenue": 0.0}
            while len(self.windows) > self.keep:
                self.windows.popitem(last=False)
        win["users"].add(event["user"])
        win["views"] += event["type"] == "page_view"
        if event["type"] == "purchase":
            win["purchases"] += 1
            win["revenue"] += float(event.get("amount", 0))

    def window_frame(self):
        import pandas as pd
        rows = [{"start": start, "active_users": len(w["users"]), "views": w["views"],
                 "purchases": w["purchases"], "revenue": round(w["revenue"], 2),
                 "conversion": round(w["purchases"] / max(1, len(w["users"])), 3)}
                for start, w in self.windows.items()]
        return pd.DataFrame(rows, columns=["start", "active_users", "views", "purchases", "revenue",
                                           "conversion"])

    def finish(self) -> None:
        """End of the run: close every session and the last anomaly bucket."""
        self.closed.extend(self.sessions.flush())
        self.flagged += self.detector.flush()
