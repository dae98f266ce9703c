"""Lag history: consumer groups' lag sampled by a background process into SQLite, for hours.

A LagMonitor lives in a kernel and forgets when it restarts. `watch(groups)` (or `kafkalab watch
GROUP...`) starts one detached watcher process per lab home instead: every `interval` seconds it
records, per partition of each group's topics, the committed offset (NULL: no commit yet, lag counted
from the log start), the log start and end offsets, the lag in records and in seconds (the age of
the next unconsumed record), and the group's active member count, into <home>/lag-history.sqlite.
It keeps going across kernel restarts and broker outages (an unreachable broker is recorded in the
`errors` table and retried at the next sample) until `stop_watch()` or `kafkalab watch --stop`.
Its pid file, <home>/lag-watch.json, is written by the watcher once it runs; one left by a watcher
that died is seen as such (the pid is checked against the watcher's command line).

`lag_history(group, since="-1h")` reads the samples back with a Burrow-style status per partition
at each sample, judged by lagwatch.judge over the `window` samples up to it, and
`lag_history_chart()` draws them. Samples older than KEEP_DAYS are pruned by the watcher.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .broker.local import default_home, pid_alive
from .runtime import Periodic, wait_until

if TYPE_CHECKING:
    import pandas as pd
# pandas and the Kafka clients load where they are used: `kafkalab status` reads the pid file only.

log = logging.getLogger("kafkalab.laghistory")

DB_FILE = "lag-history.sqlite"
STATE_FILE = "lag-watch.json"        # the running watcher's pid file
LOG_FILE = "lag-watch.log"
CLIENT_ENV = "KAFKALAB_WATCH_CLIENT"  # the connection settings handed to the watcher, as JSON
MARKER = "kafkalab.laghistory"        # in the watcher's command line: a recycled pid is not taken for it
DEFAULT_INTERVAL = 5.0
MIN_INTERVAL = 0.5
KEEP_DAYS = 7
COLUMNS = ["time", "topic", "partition", "committed", "log_start", "end_offset", "lag", "lag_seconds",
           "members", "status", "rule"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    time REAL NOT NULL, grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL,
    committed INTEGER, log_start INTEGER NOT NULL, end_offset INTEGER NOT NULL, lag INTEGER NOT NULL,
    lag_seconds REAL, members INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS samples_by_group ON samples (grp, time);
CREATE TABLE IF NOT EXISTS errors (time REAL NOT NULL, grp TEXT NOT NULL, error TEXT NOT NULL);
"""


class WatchError(RuntimeError):
    """The lag watcher could not be started or asked for something it cannot do; the message says why."""


# -- the store --------------------------------------------------------------------------------------
class LagStore:
    """The SQLite file of lag samples: one row per (sample time, group, partition), and the errors.

    Parameters
    ----------
    path : the database file (created with its tables on first write).
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)

    @contextlib.contextmanager
    def _connect(self):
        con = sqlite3.connect(self.path, timeout=10)   # waits out the other process's write
        try:
            with con:                                  # commits, or rolls back on an exception
                yield con
        finally:
            con.close()

    def create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")     # readers in notebooks never block the watcher
            con.executescript(SCHEMA)

    def add(self, t: float, group: str, rows: list[tuple]) -> None:
        """rows: (topic, partition, committed or None, log_start, end_offset, lag, lag_seconds or None,
        members), all sampled at `t` (epoch seconds)."""
        with self._connect() as con:
            con.executemany("INSERT INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [(t, group, *row) for row in rows])

    def add_error(self, t: float, group: str, error: str) -> None:
        with self._connect() as con:
            con.execute("INSERT INTO errors VALUES (?, ?, ?)", (t, group, error))

    def groups(self) -> list[str]:
        with self._connect() as con:
            return [g for (g,) in con.execute("SELECT DISTINCT grp FROM samples ORDER BY grp")]

    def samples(self, group: str, since: float | None = None, until: float | None = None,
                before: int = 0) -> pd.DataFrame:
        """The group's rows with since <= time < until (epoch seconds), plus the `before` sample
        times just before `since` (the judge's window reaches back into them)."""
        import pandas as pd
        lo, hi = -1.0 if since is None else since, float("inf") if until is None else until
        with self._connect() as con:
            if before and since is not None:
                earlier = con.execute(
                    "SELECT MIN(time) FROM (SELECT DISTINCT time FROM samples WHERE grp = ? AND time < ? "
                    "ORDER BY time DESC LIMIT ?)", (group, since, before)).fetchone()[0]
                lo = lo if earlier is None else earlier
            frame = pd.read_sql_query(
                "SELECT time, topic, partition, committed, log_start, end_offset, lag, lag_seconds, members "
                "FROM samples WHERE grp = ? AND time >= ? AND time < ? ORDER BY time, topic, partition",
                con, params=(group, lo, hi))
        return frame.astype({"partition": "int64", "committed": "Int64", "log_start": "int64",
                             "end_offset": "int64", "lag": "int64", "lag_seconds": "float64",
                             "members": "int64"})

    def errors(self, since: float | None = None) -> pd.DataFrame:
        import pandas as pd
        with self._connect() as con:
            return pd.read_sql_query('SELECT time, grp AS "group", error FROM errors WHERE time >= ? ORDER BY time',
                                     con, params=(-1.0 if since is None else since,))

    def prune(self, before: float) -> None:
        with self._connect() as con:
            con.execute("DELETE FROM samples WHERE time < ?", (before,))
            con.execute("DELETE FROM errors WHERE time < ?", (before,))


def judge_history(samples: pd.DataFrame, window: int = 10) -> pd.DataFrame:
    """`samples` (LagStore.samples) with the status and rule of each partition at each sample,
    judged over the `window` samples of that partition up to it (a STOP while members == 0)."""
    import pandas as pd

    from .lagwatch import Sample, judge
    status, rule = pd.Series("", index=samples.index, dtype=object), pd.Series("", index=samples.index, dtype=object)
    for _, part in samples.groupby(["topic", "partition"], sort=False):
        history = [Sample(t, int(start if pd.isna(c) else c), int(end), no_commit=bool(pd.isna(c)))
                   for t, c, start, end in zip(part["time"], part["committed"], part["log_start"],
                                               part["end_offset"])]
        for i, (index, members) in enumerate(zip(part.index, part["members"])):
            verdict = judge(history[max(0, i - window + 1):i + 1], group_active=members > 0)
            status[index], rule[index] = verdict.status, verdict.rule
    return samples.assign(status=status.astype(str), rule=rule.astype(str))


# -- the watcher process ----------------------------------------------------------------------------
class _Sampler(Periodic):
    """The watcher's loop: every `period` seconds, one sample of each group into the store. Its
    clients are made on first use and dropped on any error, so a broker outage is recorded and the
    next sample reconnects."""

    tick_on_stop = False

    def __init__(self, groups: list[str], interval: float, config: dict, store: LagStore):
        super().__init__("lag-history", interval, default="lag-history")
        self.groups, self.config, self.store = groups, config, store
        self._admin = self._reader = None
        self._pruned = 0.0

    def _clients(self):
        if self._admin is None:
            from kafka import KafkaAdminClient, KafkaConsumer

            from .config import require_reachable
            require_reachable(self.config["bootstrap_servers"])     # ~2 s, not a client's long bootstrap
            self._admin = KafkaAdminClient(**{"request_timeout_ms": 10_000, **self.config})
            self._reader = KafkaConsumer(**self.config, group_id=None, enable_auto_commit=False)
        return self._admin, self._reader

    def _close(self) -> None:
        for client in (self._reader, self._admin):
            if client is not None:
                client.close()
        self._admin = self._reader = None

    teardown = _close

    def tick(self) -> None:
        from .lagwatch import group_snapshot, record_ages
        if time.time() - self._pruned > 3600:
            self._pruned = time.time()
            self.store.prune(self._pruned - KEEP_DAYS * 86400)
        for group in self.groups:
            try:
                admin, reader = self._clients()
                snapshot = group_snapshot(admin, group)
                now = time.time()
                ages = record_ages(reader, {tp: snapshot.position(tp) for tp in snapshot.partitions
                                            if snapshot.lag(tp)}, now)
            except Exception as e:   # recorded; the next sample reconnects and retries
                log.warning("sampling %s failed: %s: %s", group, type(e).__name__, e)
                self.store.add_error(time.time(), group, f"{type(e).__name__}: {e}")
                self._close()
                continue
            self.store.add(now, group, [
                (tp.topic, tp.partition, snapshot.committed[tp], snapshot.log_start[tp], snapshot.end[tp],
                 snapshot.lag(tp), (ages.get(tp) if snapshot.lag(tp) else 0.0), snapshot.members)
                for tp in snapshot.partitions])


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def _serve(home: Path, groups: list[str], interval: float) -> int:
    """The watcher process's main: sample until SIGTERM (or SIGINT)."""
    from .config import client_config
    logging.basicConfig(level=logging.WARNING, format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    config = client_config(**json.loads(os.environ.get(CLIENT_ENV, "{}")))
    store = LagStore(home / DB_FILE)
    store.create()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sampler = _Sampler(groups, interval, config, store).start()
    state = {"pid": os.getpid(), "groups": groups, "interval": interval, "db": str(store.path),
             "bootstrap": config["bootstrap_servers"],
             "security_protocol": config.get("security_protocol", "PLAINTEXT"),
             "started_at": time.time(), "log": str(home / LOG_FILE)}
    _write_json(home / STATE_FILE, state)
    log.info("watching %s every %g s at %s into %s", ", ".join(groups), interval, state["bootstrap"], store.path)
    while not stop.wait(1.0):
        if not sampler.alive:
            log.error("the sampler stopped: %s", sampler.failure)
            return 1
    sampler.stop()
    log.info("stopped")
    return 0


# -- starting, stopping, status ---------------------------------------------------------------------
@dataclass
class Watcher:
    """The running lag watcher: what it samples, where to, and `stop()`.
    `change` says what the call that returned it did ("started", "already running", "restarted ...")."""
    pid: int
    groups: list
    interval: float
    db: str
    bootstrap: str
    home: str
    change: str = ""

    @property
    def running(self) -> bool:
        return pid_alive(self.pid, MARKER)

    def stop(self) -> int | None:
        """Stop the watcher (the history stays); the pid stopped, or None if it was not running."""
        return stop_watch(self.home)


@contextlib.contextmanager
def _locked(home: Path):
    """One start or stop at a time per home: two calls never start two watchers."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "lag-watch.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _state(home: Path) -> dict | None:
    try:
        return json.loads((home / STATE_FILE).read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return {"pid": None}      # torn or hand-edited: no live watcher can be found from it


def watch_status(home: Path | str | None = None) -> dict:
    """Whether a watcher runs for `home`, and its pid, groups, interval, cluster and db; a pid file
    whose process is gone is reported as `stale_pid`."""
    home = Path(home) if home else default_home()
    state = _state(home)
    base = {"running": False, "db": str(home / DB_FILE), "pid_file": str(home / STATE_FILE)}
    if state is None:
        return base
    if not pid_alive(state.get("pid"), MARKER):
        return {**base, "stale_pid": state.get("pid")}
    return {**base, **state, "running": True}


def _terminate(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    try:
        wait_until(lambda: not pid_alive(pid, MARKER), 15, interval=0.1, what=f"lag watcher pid {pid} to stop")
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid, MARKER), 5, interval=0.1, what=f"lag watcher pid {pid} to die")


def stop_watch(home: Path | str | None = None) -> int | None:
    """Stop the lag watcher of `home` (default: the lab home); the pid stopped, or None if none ran.
    The history stays."""
    home = Path(home) if home else default_home()
    with _locked(home):
        status = watch_status(home)
        if status["running"]:
            _terminate(status["pid"])
        (home / STATE_FILE).unlink(missing_ok=True)
    return status["pid"] if status["running"] else None


def watch(groups: str | list[str], interval: float | None = None, *, home: Path | str | None = None,
          **client_overrides) -> Watcher:
    """Start the lag watcher process (or reuse the running one) and return it.

    One watcher runs per home. Asked again, it keeps running if it already samples these groups at
    this interval; otherwise it restarts with its groups plus the new ones (the history stays).
    Stop it with `stop_watch()` or `Watcher.stop()`; it outlives the kernel that started it.

    Parameters
    ----------
    groups : the consumer group(s) to sample.
    interval : seconds between samples, at least 0.5 (default 5, or the running watcher's).
    home : the lab home holding the database and pid file (default $KAFKALAB_HOME or
        ~/.local/share/kafkalab).
    **client_overrides : connection settings (kafkalab.client_config), e.g. a SecureBroker's
        client_config(); the watcher process gets the resolved settings, security included.
    """
    groups = [groups] if isinstance(groups, str) else list(groups)
    if not groups or not all(isinstance(g, str) and g for g in groups):
        raise ValueError(f"name the consumer groups to watch, as strings: got {groups!r}")
    if interval is not None and not (isinstance(interval, (int, float)) and not isinstance(interval, bool)
                                     and interval >= MIN_INTERVAL and interval != float("inf")):
        raise ValueError(f"interval must be a number of seconds >= {MIN_INTERVAL}, got {interval!r}")
    from .config import client_config, require_reachable
    config = client_config(**client_overrides)
    try:
        settings = json.dumps(config)
    except TypeError as e:
        raise WatchError(f"the watcher runs in another process and gets its connection settings as plain "
                         f"values (text, numbers): {e}") from e
    require_reachable(config["bootstrap_servers"])
    home = Path(home) if home else default_home()
    with _locked(home):
        current = watch_status(home)
        change = "started"
        if current["running"]:
            if current["bootstrap"] != config["bootstrap_servers"]:
                raise WatchError(f"a lag watcher of {current['bootstrap']} runs already (pid {current['pid']}); "
                                 f"stop it first (kafkalab watch --stop) to watch {config['bootstrap_servers']}")
            wanted = current["groups"] + [g for g in groups if g not in current["groups"]]
            interval = current["interval"] if interval is None else float(interval)
            if (wanted, interval) == (current["groups"], current["interval"]):
                return Watcher(current["pid"], wanted, interval, current["db"], current["bootstrap"],
                               str(home), "already running")
            _terminate(current["pid"])
            change = f"restarted (was: {', '.join(current['groups'])} every {current['interval']:g} s)"
            groups = wanted
        elif current.get("stale_pid"):
            change = f"started (pid {current['stale_pid']} of the previous watcher is gone)"
        interval = DEFAULT_INTERVAL if interval is None else float(interval)
        (home / STATE_FILE).unlink(missing_ok=True)
        with open(home / LOG_FILE, "a") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", MARKER, "--home", str(home), "--interval", str(interval), "--", *groups],
                env={**os.environ, CLIENT_ENV: settings}, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True, cwd=home)   # not killed with the kernel

        def ready():
            if proc.poll() is not None:
                tail = (home / LOG_FILE).read_text().splitlines()[-15:]
                raise WatchError(f"the lag watcher exited with code {proc.returncode}:\n" + "\n".join(tail))
            return (_state(home) or {}).get("pid") == proc.pid

        try:
            wait_until(ready, 30, interval=0.1, what="the lag watcher to start")
        except TimeoutError as e:
            proc.kill()
            raise WatchError(f"{e}; its log: {home / LOG_FILE}") from e
    return Watcher(proc.pid, groups, interval, str(home / DB_FILE), config["bootstrap_servers"], str(home), change)


# -- reading it back --------------------------------------------------------------------------------
def lag_history(group: str, since="-1h", until=None, *, window: int = 10,
                home: Path | str | None = None) -> pd.DataFrame:
    """The group's recorded lag, one row per partition per sample, with its Burrow-style status.

    Columns: time (UTC), topic, partition, committed (<NA>: no commit yet, lag counted from the
    log start), log_start, end_offset, lag, lag_seconds (age of the next unconsumed record; NaN
    when it could not be read), members (active), status and rule (lagwatch.judge over the
    `window` samples of the partition up to that row).

    Parameters
    ----------
    group : a consumer group the watcher has sampled.
    since, until : the time range [since, until): a datetime, an ISO string (UTC unless it names a
        zone) or a relative time ("-15min", "-2h", "-1d"); since=None: from the first sample;
        until=None: up to now.
    window : samples per partition the status is judged over.
    home : the lab home (default $KAFKALAB_HOME or ~/.local/share/kafkalab).
    """
    import pandas as pd
    home = Path(home) if home else default_home()
    store = LagStore(home / DB_FILE)
    if not store.path.exists():
        raise FileNotFoundError(f"no lag history under {home}: start the watcher first, "
                                f"`kafkalab watch {group}` or kafkalab.watch([{group!r}])")
    now = pd.Timestamp.now(tz="UTC")
    from .times import time_bound
    lo, hi = time_bound(since, now), time_bound(until, now)
    frame = store.samples(group, None if lo is None else lo.timestamp(), None if hi is None else hi.timestamp(),
                          before=window - 1)
    watched = watch_status(home).get("groups", [])     # a watcher may not have sampled it yet
    if frame.empty and group not in store.groups() + watched:
        known = ", ".join(sorted(set(store.groups() + watched))) or "none yet"
        raise ValueError(f"no lag history of group {group!r} in {store.path} (groups recorded: {known}); "
                         f"watch it with `kafkalab watch {group}`")
    frame = judge_history(frame, window)
    if lo is not None:
        frame = frame[frame["time"] >= lo.timestamp()]
    frame = frame.assign(time=pd.to_datetime(frame["time"], unit="s", utc=True))
    return frame[COLUMNS].reset_index(drop=True)


def lag_history_chart(group: str, since="-1h", until=None, *, window: int = 10,
                      home: Path | str | None = None):
    """A plotly Figure of lag_history(): lag per partition over time, each sample's marker colored by
    its status (hover: the rule that fired); the title gives the group's latest status."""
    import plotly.graph_objects as go

    from .lagwatch import SEVERITY
    from .live import STATUS_COLORS
    frame = lag_history(group, since, until, window=window, home=home)
    fig = go.Figure()
    for (topic, partition), part in frame.groupby(["topic", "partition"]):
        fig.add_scatter(x=part["time"], y=part["lag"], mode="lines+markers", name=f"{topic}[{partition}]",
                        line={"width": 1.5}, marker={"size": 7, "color": part["status"].map(STATUS_COLORS).tolist(),
                                                     "line": {"width": 0}},
                        customdata=part[["status", "rule", "lag_seconds"]].to_numpy(),
                        hovertemplate="%{x}<br>lag %{y} records, %{customdata[2]:.0f} s<br>"
                                      "<b>%{customdata[0]}</b>: %{customdata[1]}<extra>%{fullData.name}</extra>")
    for status in frame["status"].unique():      # a legend of the marker colors
        fig.add_scatter(x=[None], y=[None], mode="markers", name=status, legendgroup="status",
                        marker={"size": 9, "color": STATUS_COLORS[status]})
    latest = frame[frame["time"] == frame["time"].max()]
    status = max(latest["status"], key=SEVERITY.__getitem__) if len(latest) else "no samples"
    fig.update_layout(title=f"lag history · {group} · {status}", xaxis_title="time (UTC)",
                      yaxis_title="lag (records)", hovermode="closest", height=420)
    return fig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=f"python -m {MARKER}", description="the lag watcher process "
                                "(start it with `kafkalab watch GROUP...` or kafkalab.watch())")
    p.add_argument("--home", required=True)
    p.add_argument("--interval", type=float, required=True)
    p.add_argument("groups", nargs="+")
    args = p.parse_args(argv)
    return _serve(Path(args.home), args.groups, args.interval)


if __name__ == "__main__":
    sys.exit(main())
