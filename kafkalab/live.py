"""Live charts on plotly FigureWidgets, light enough to leave running.

Each chart is a Periodic worker: its thread samples its sources and redraws at most `fps` times a
second (capped at 10), inside one `batch_update()`, from numpy ring buffers of bounded length.
Data arrives from other threads through thread-safe appends, never by touching the figure.
`plotted()` reads back what a chart shows, so a check can compare it with an independent count.
"""
from __future__ import annotations

import html
import threading
import time
from collections import deque

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .lagwatch import LagMonitor
from .runtime import Periodic
from .windows import combine_partitions

MAX_FPS = 10.0
STATUS_COLORS = {"OK": "#2e7d32", "WARN": "#f9a825", "STALL": "#c62828", "STOP": "#6a1b9a",
                 "REWIND": "#1565c0"}


class Ring:
    """Fixed-capacity (x, y) history as numpy arrays; appends are O(1) amortised."""

    def __init__(self, capacity: int = 600):
        if capacity < 2:
            raise ValueError("capacity must be >= 2")
        self.capacity = capacity
        self._x = np.empty(2 * capacity)
        self._y = np.empty(2 * capacity)
        self._n = 0

    def append(self, x: float, y: float) -> None:
        if self._n == 2 * self.capacity:  # keep the newest half: one copy per `capacity` appends
            self._x[:self.capacity] = self._x[self.capacity:]
            self._y[:self.capacity] = self._y[self.capacity:]
            self._n = self.capacity
        self._x[self._n], self._y[self._n] = x, y
        self._n += 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        lo = max(0, self._n - self.capacity)
        return self._x[lo:self._n].copy(), self._y[lo:self._n].copy()

    def __len__(self) -> int:
        return min(self._n, self.capacity)


def _ms_to_datetime(ms: np.ndarray) -> np.ndarray:
    return ms.astype("int64").astype("datetime64[ms]")


class LiveChart(Periodic):
    """Base: a FigureWidget refreshed by a background thread, `fps` times a second at most."""

    def __init__(self, name: str | None, title: str, fps: float = 4.0, history: int = 600,
                 yaxis: str = "", height: int = 320, default: str = "chart"):
        if not 0 < fps <= MAX_FPS:
            raise ValueError(f"fps must be in (0, {MAX_FPS:g}]")
        super().__init__(name, 1.0 / fps, default=default)
        self.fps, self.history = fps, history
        self.figure = go.FigureWidget(layout=dict(
            title=title, height=height, margin=dict(l=50, r=20, t=50, b=40),
            yaxis_title=yaxis, legend=dict(orientation="h", y=-0.2), uirevision="keep"))
        self.refreshes = 0
        self._lock = threading.Lock()

    def sample(self, now: float) -> None:
        """Collect data for this tick (runs in the chart's thread)."""

    def draw(self) -> None:
        """Push arrays to traces (runs inside batch_update)."""
        raise NotImplementedError

    def tick(self) -> None:
        self.sample(time.time())
        self.refresh()

    def refresh(self) -> None:
        with self._lock, self.figure.batch_update():
            self.draw()
        self.refreshes += 1

    def plotted(self) -> pd.DataFrame:
        """What the figure shows now, read back from its visible traces: one row per point
        (series, x, y). Checks compare it with an independent count: a chart that lies fails."""
        with self._lock:
            rows = [(t.name, x, y) for t in self.figure.data if t.visible is not False
                    for x, y in zip(() if t.x is None else t.x, () if t.y is None else t.y)]
        return pd.DataFrame(rows, columns=["series", "x", "y"])

    def _line(self, name: str, x, y, **kw) -> None:
        """Set a line's points, adding the trace with them. A trace added empty is marked invisible by
        plotly.js, whose defaults come back to the Python figure and would hide the line from plotted()."""
        for t in self.figure.data:
            if t.name == name:
                t.x, t.y = x, y
                return
        self.figure.add_scatter(name=name, mode="lines", x=x, y=y, **kw)

    def widget(self):
        return self.figure

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget())


class TimeSeriesChart(LiveChart):
    """Generic live lines: push(series, value) from any thread, or give `sample`.

    Parameters
    ----------
    title : the chart's title.
    name : its name in the registry. Default "chart:<title>".
    sample : a function returning {series: value}, called on every tick (in the chart's thread).
    fps : refreshes per second, at most 10. history : points kept per series.
    yaxis, height : the y-axis title and the height in pixels.
    """

    def __init__(self, title: str = "live", name: str | None = None, sample=None,
                 default: str | None = None, **kw):
        super().__init__(name, title, default=default or f"chart:{title}", **kw)
        self._series: dict[str, Ring] = {}
        self._pending: deque = deque()
        self._sample_fn = sample

    def push(self, series: str, value: float, t: float | None = None) -> None:
        self._pending.append((series, time.time() if t is None else t, float(value)))

    def sample(self, now: float) -> None:
        if self._sample_fn is not None:
            for series, value in self._sample_fn().items():
                self.push(series, value, now)
        while self._pending:
            series, t, v = self._pending.popleft()
            self._series.setdefault(series, Ring(self.history)).append(t * 1000, v)

    def draw(self) -> None:
        for name, ring in self._series.items():
            x, y = ring.arrays()
            self._line(name, _ms_to_datetime(x), y, **self._style(name))

    def _style(self, series: str) -> dict:
        """Extra trace settings for a new series."""
        return {}


class ThroughputChart(TimeSeriesChart):
    """Produced and consumed messages per second, one line per worker (by its name), sampled
    from the workers' own achieved rates, and a total per topic where several producers write it
    (and per group where several members of one group consume).

    Parameters
    ----------
    producers : RateProducers to plot (acknowledged records per second).
    consumers : LiveConsumers to plot (consumed records per second).
    name : its name in the registry. Default "chart:throughput".
    fps, history, height : as for TimeSeriesChart.
    """

    def __init__(self, producers=(), consumers=(), name: str | None = None, **kw):
        super().__init__("throughput (msg/s)", name=name, default="chart:throughput", **kw)
        self.producers, self.consumers = list(producers), list(consumers)

    def sample(self, now: float) -> None:
        totals: dict = {}
        for p in self.producers:
            rate = p.rate
            self.push(f"produced · {p.name}", rate, now)
            totals.setdefault(f"produced · total · {p.topic}", []).append(rate)
        for c in self.consumers:
            rate = c.rate
            self.push(f"consumed · {c.name}", rate, now)
            if c.group_id:
                totals.setdefault(f"consumed · total · group {c.group_id}", []).append(rate)
        for series, rates in totals.items():
            if len(rates) > 1:
                self.push(series, sum(rates), now)
        super().sample(now)

    def _style(self, series: str) -> dict:
        return {"line": {"dash": "dash"}} if " · total · " in series else {}


class LagChart(LiveChart):
    """Per-partition lag of one group, with the story: seconds behind, trend, drain, status.
    Every partition of the group's topics is drawn; one with no commit yet shows "none yet" and its
    lag counted from the log start (the rule says so).

    Parameters
    ----------
    group : the consumer group to watch (its LagMonitor samples it every `interval` seconds).
    interval : seconds between samples of the group's offsets.
    name : its name in the registry. Default "chart:lag:<group>".
    fps, history, height : as for TimeSeriesChart.
    """

    def __init__(self, group: str, interval: float = 1.0, name: str | None = None, **kw):
        super().__init__(name, f"consumer lag · {group}", yaxis="records", default=f"chart:lag:{group}", **kw)
        import ipywidgets as widgets
        self.monitor = LagMonitor(group, interval=interval, name=f"{self.name}/monitor")
        self.table = widgets.HTML()
        self._box = widgets.VBox([self.figure, self.table])

    def start(self):
        self.monitor.start()
        return super().start()

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        self.monitor.stop(timeout)

    def draw(self) -> None:
        history = list(self.monitor.history)
        if not history:
            return
        parts = sorted({tp for _, lags in history for tp in lags})
        t = _ms_to_datetime(np.array([h[0] * 1000 for h in history]))
        for tp in parts:
            y = np.array([lags.get(tp, np.nan) for _, lags in history], dtype=float)
            self._line(f"{tp.topic}[{tp.partition}]", t, y)
        report = self.monitor.report()
        status = self.monitor.status()
        self.figure.layout.title.text = f"consumer lag · {self.monitor.group} · {status}"
        rows = "".join(
            f"<tr><td>{html.escape(r.topic)}[{r.partition}]</td>"
            f"<td>{'none yet' if pd.isna(r.committed) else r.committed}</td><td>{r.lag}</td><td>{r.lag_seconds}</td>"
            f"<td>{r.trend_per_s:+}</td><td>{html.escape(r.drain)}</td>"
            f"<td style='color:{STATUS_COLORS[r.status]};font-weight:bold'>{r.status}</td>"
            f"<td>{html.escape(r.rule)}</td></tr>" for r in report.itertuples())
        error = f"<p style='color:#c62828'>{html.escape(self.monitor.error)}</p>" if self.monitor.error else ""
        self.table.value = (
            "<table><tr><th>partition</th><th>committed</th><th>lag (records)</th><th>lag (s)</th><th>trend /s</th>"
            f"<th>time to drain</th><th>status</th><th>rule that fired</th></tr>{rows}</table>{error}")

    def widget(self):
        return self._box


class WindowChart(LiveChart):
    """Window aggregates per key: final windows solid, open (partial) ones faded, late ones counted,
    and next to the chart the window inspector: why each open window is still open (its partition's
    stream time against end + grace, the idle-timeout countdown) and which windows late records missed.

    Feed it from a LiveConsumer with `WindowChart(windows, consumer, value=...)`: the consumer's
    thread adds each batch; this chart's thread closes idle windows and draws.

    Parameters
    ----------
    windows : the EventTimeWindows or SessionWindows to draw.
    consumer : a LiveConsumer whose batches feed `windows` (optional: add_frame() by hand).
    value : a column, or a function of each record's value, giving the number to aggregate.
    key : the column to window by (default the record key).
    metric : "count", "sum", "mean", "min" or "max".
    max_windows, max_keys : how many windows and keys (the busiest) are drawn.
    inspector : show the window inspector next to the chart (`windows.inspect()` as a table).
    name : its name in the registry. Default "chart:windows".
    fps, height : as for TimeSeriesChart.
    """

    def __init__(self, windows, consumer=None, value=None, key: str | None = "key",
                 metric: str = "count", max_windows: int = 40, max_keys: int = 8,
                 inspector: bool = True, name: str | None = None, **kw):
        if metric not in ("count", "sum", "mean", "min", "max"):
            raise ValueError("metric must be count, sum, mean, min or max")
        super().__init__(name, f"windows · {metric}", yaxis=metric, default="chart:windows", **kw)
        self.figure.layout.barmode = "group"
        self.windows, self.metric = windows, metric
        self.max_windows, self.max_keys = max_windows, max_keys
        self.closed: deque = deque(maxlen=max_windows * max_keys)
        self._wlock = threading.Lock()
        self.inspector = None
        if inspector:
            import ipywidgets as widgets
            # a fixed height: its rows come and go, and a growing cell would shift the page under the learner
            self.inspector = widgets.HTML(layout=widgets.Layout(width="45%", height=f"{self.figure.layout.height}px",
                                                                overflow="auto"))
            self._box = widgets.HBox([widgets.Box([self.figure], layout=widgets.Layout(width="55%")),
                                      self.inspector])
        if consumer is not None:
            consumer.subscribe(lambda df: self.add_frame(df, key=key, value=value))

    def add_frame(self, df, key="key", value=None) -> None:
        with self._wlock:
            self.closed.extend(self.windows.add_frame(df, key=key, value=value))

    def sample(self, now: float) -> None:
        with self._wlock:
            self.closed.extend(self.windows.poll_idle())

    def flush(self) -> list:
        """Emit the still-open windows as final (at the end of a run)."""
        with self._wlock:
            done = self.windows.flush()
            self.closed.extend(done)
        return done

    def draw(self) -> None:
        with self._wlock:
            parts = list(self.closed) + self.windows.open_windows()
            late = self.windows.late_count
        shown = combine_partitions(parts)
        totals: dict = {}
        for w in shown:
            totals[w.key] = totals.get(w.key, 0) + w.count
        keys = sorted(totals, key=lambda k: -totals[k])[:self.max_keys]
        starts = sorted({w.start for w in shown})[-self.max_windows:]
        first = starts[0] if starts else 0
        names = {str(k) for k in keys}
        for trace in self.figure.data:      # a key that left the top max_keys is hidden, not frozen
            trace.visible = trace.name in names
        for k in keys:
            ws = sorted((w for w in shown if w.key == k and w.start >= first), key=lambda w: w.start)
            name = str(k)
            x = _ms_to_datetime(np.array([w.start for w in ws], dtype="int64"))
            y = np.array([getattr(w, self.metric) for w in ws], dtype=float)
            opacity = np.array([1.0 if w.final else 0.45 for w in ws])
            trace = next((t for t in self.figure.data if t.name == name), None)
            if trace is None:                # added with its bars (see LiveChart._line)
                self.figure.add_bar(name=name, x=x, y=y, marker={"opacity": opacity})
            else:
                trace.x, trace.y, trace.marker.opacity = x, y, opacity
        self.figure.layout.title.text = (f"windows · {self.metric} · final solid, open faded · "
                                         f"late records: {late}")
        if self.inspector is not None:
            self.inspector.value = inspector_html(self.windows._inspection(newest_late=5))

    def plotted(self) -> pd.DataFrame:
        """What the bars show (series = key, x = window start, y = the metric), with `final`
        (solid bars) read from their opacity."""
        with self._lock:
            rows = [(t.name, x, y, o == 1.0) for t in self.figure.data if t.visible is not False
                    for x, y, o in zip(t.x, t.y, t.marker.opacity)]
        return pd.DataFrame(rows, columns=["series", "x", "y", "final"])

    def widget(self):
        return self.figure if self.inspector is None else self._box


def _clock(ms: int) -> str:
    """A time in ms as UTC HH:MM:SS.mmm."""
    return time.strftime("%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}"


def _span(start: int, end: int) -> str:
    return f"{_clock(start)} +{(end - start) / 1000:g} s"


def inspector_html(snap, max_rows: int = 8) -> str:
    """The window inspector as HTML, from a windows' `_inspection()`: stream time per partition, the
    open windows nearest to closing (one row per partition and window, its keys counted) with what
    they wait for, then the newest late records with the window each missed."""
    parts = "".join(f"<li>partition {html.escape(str(p))}: stream time {_clock(t)}</li>"
                    for p, t in sorted(snap.stream.items(), key=lambda kv: str(kv[0])))
    countdown = (f"<p style='margin:2px 0'>idle timeout closes every open window in <b>{snap.idle_left:.1f} s</b> "
                 "of quiet</p>" if snap.open and snap.idle_left is not None else "")
    windows: dict = {}                       # (partition, start, end, closes_at, stream time) -> [keys, records]
    for partition, _, start, end, deadline, st, count in snap.open:
        entry = windows.setdefault((partition, start, end, deadline, st), [0, 0])
        entry[0] += 1
        entry[1] += count
    nearest = sorted(windows.items(), key=lambda kv: (kv[0][3] - kv[0][4], str(kv[0][0])))[:max_rows]
    rows = "".join(
        f"<tr><td>{html.escape(str(p))}</td><td>{_span(start, end)}</td><td>{_clock(deadline)}</td>"
        f"<td>{(deadline - st) / 1000:.1f} s</td><td>{keys}</td><td>{records}</td></tr>"
        for (p, start, end, deadline, st), (keys, records) in nearest)
    missed = "".join(
        f"<tr><td>{html.escape(str(p))}</td><td>{html.escape(str(key))}</td><td>{_clock(ts)}</td>"
        f"<td>{_span(start, end)}</td><td>{(st - deadline) / 1000:.1f} s</td></tr>"
        for p, key, start, end, deadline, st, ts in snap.late[-5:])
    table = "<table style='white-space:nowrap;border-spacing:8px 1px;text-align:left'>"
    return (
        f"<div style='font-size:11px;line-height:1.3'><b>window inspector</b> (times UTC)"
        f"<ul style='margin:2px 0'>{parts or '<li>no record yet</li>'}</ul>{countdown}"
        f"<b>open windows</b> ({len(windows)}; each closes when its partition's stream time reaches end + grace: "
        "'to go')"
        f"{table}<tr><th>part.</th><th>window</th><th>closes at</th><th>to go</th><th>keys</th>"
        f"<th>records</th></tr>{rows}</table>"
        f"<b>late records</b> ({snap.late_kept} kept; newest 5)"
        f"{table}<tr><th>part.</th><th>key</th><th>stamped</th><th>missed window</th>"
        f"<th>too late by</th></tr>{missed}</table></div>")
