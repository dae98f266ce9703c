"""ipywidgets control panels. Widgets never touch a Kafka client: they validate input, then
call the worker's thread-safe controls (events and a command queue). A bad value is refused with
a message in the panel, never a traceback in a background thread."""
from __future__ import annotations

import html

import ipywidgets as w

from .producers import COMPRESSION, RateProducer, check_rate
from .runtime import Composite, Periodic

CUSTOM_KEYS = "custom (function)"


class ProducerPanel(Composite):
    """Rate, key skew, payload size, compression, acks, start/pause/resume and stop for
    one or more RateProducers, with their live stats (refreshed twice a second once started).

    Parameters
    ----------
    *producers : the RateProducers to steer (started or not: "start" starts one).
    name : its name in the registry. Default "panel:producers".
    """

    def __init__(self, *producers: RateProducer, name: str | None = None):
        if not producers:
            raise ValueError("give at least one RateProducer")
        super().__init__(name, default="panel:producers")
        self.producers = list(producers)
        self._rows = [self._row(p) for p in self.producers]
        self.box = w.VBox([row["box"] for row in self._rows])
        self.children.append(Periodic(f"{self.name}/stats", 0.5, tick=self._update_stats))

    # -- layout -------------------------------------------------------------------------------
    def _row(self, p: RateProducer) -> dict:
        style = {"description_width": "initial"}
        mode = p.keys.mode
        keys = ["uniform", "skewed", "none"] + ([CUSTOM_KEYS] if callable(mode) else [])
        row = {
            "rate": w.FloatText(value=p.target_rate or 0.0, description="rate (msg/s)", style=style,
                                layout=w.Layout(width="190px")),
            "key": w.Dropdown(options=keys,
                              value=CUSTOM_KEYS if callable(mode) else ("none" if mode is None else mode),
                              description="keys", layout=w.Layout(width="220px")),
            "hot": w.FloatSlider(value=p.keys.hot_share, min=0.0, max=1.0, step=0.05,
                                 description="hot-key share", style=style, readout_format=".2f",
                                 disabled=mode != "skewed"),
            "custom": mode if callable(mode) else None,
            "payload": w.IntSlider(value=p.payload_size, min=0, max=10_000, step=100,
                                   description="payload bytes", style=style),
            "compression": w.Dropdown(options=[str(c) for c in COMPRESSION],
                                      value=str(p.producer_config.get("compression_type")),
                                      description="compression", layout=w.Layout(width="200px")),
            "acks": w.Dropdown(options=["all", "1", "0"],
                               value=str(p.producer_config.get("acks", "all")),
                               description="acks", layout=w.Layout(width="140px")),
            "run": w.ToggleButton(value=p.alive and not p.paused,
                                  description="pause" if p.alive else "start", icon="play"),
            "stop": w.Button(description="stop", icon="stop", button_style="danger"),
            "stats": w.HTML(),
            "message": w.HTML(),
        }
        row["rate"].observe(lambda ch, p=p, r=row: self._set_rate(p, r, ch["new"]), "value")
        for k in ("key", "hot"):
            row[k].observe(lambda ch, p=p, r=row: self._set_keys(p, r), "value")
        row["payload"].observe(lambda ch, p=p, r=row: self._guard(r, p.set_payload, ch["new"]), "value")
        row["compression"].observe(lambda ch, p=p, r=row: self._guard(
            r, p.reconfigure, compression_type=None if ch["new"] == "None" else ch["new"]), "value")
        row["acks"].observe(lambda ch, p=p, r=row: self._guard(
            r, p.reconfigure, acks="all" if ch["new"] == "all" else int(ch["new"])), "value")
        row["run"].observe(lambda ch, p=p, r=row: self._run(p, r, ch["new"]), "value")
        row["stop"].on_click(lambda _b, p=p, r=row: self._stop_one(p, r))
        title = w.HTML(f"<b>{html.escape(p.topic)}</b>")
        row["box"] = w.VBox([
            w.HBox([title, row["run"], row["stop"], row["rate"], row["key"], row["hot"]]),
            w.HBox([row["payload"], row["compression"], row["acks"]]),
            row["stats"], row["message"]])
        return row

    # -- handlers (the widget thread) -----------------------------------------------------------
    @staticmethod
    def _say(row: dict, text: str = "", error: bool = False) -> None:
        color = "#c62828" if error else "#555"
        row["message"].value = f"<span style='color:{color}'>{html.escape(text)}</span>" if text else ""

    def _guard(self, row: dict, fn, *args, **kwargs) -> bool:
        try:
            fn(*args, **kwargs)
        except ValueError as e:
            self._say(row, f"refused: {e}", error=True)
            return False
        self._say(row)
        return True

    def _set_rate(self, p: RateProducer, row: dict, value) -> None:
        try:
            check_rate(value)
        except ValueError as e:
            self._say(row, f"refused: {e}; keeping {p.target_rate} msg/s", error=True)
            return
        self._guard(row, p.set_rate, value)

    def _set_keys(self, p: RateProducer, row: dict) -> None:
        """The dropdown picks the mode; the hot-key share only means something for "skewed",
        and a producer's own key function comes back when "custom" is picked again."""
        choice = row["key"].value
        mode = {"none": None, CUSTOM_KEYS: row["custom"]}.get(choice, choice)
        row["hot"].disabled = choice != "skewed"
        self._guard(row, p.set_keys, mode, row["hot"].value)

    def _run(self, p: RateProducer, row: dict, on: bool) -> None:
        if p.started and not p.alive:
            self._say(row, "this producer has stopped; create a new one", error=True)
            return
        if on and not p.started:
            self._guard(row, p.start)
        elif on:
            p.resume()
        else:
            p.pause()
        row["run"].description = "pause" if on else "resume"

    def _stop_one(self, p: RateProducer, row: dict) -> None:
        p.stop()
        for k in ("run", "stop", "rate", "key", "hot", "payload", "compression", "acks"):
            row[k].disabled = True
        self._say(row, "stopped")

    def _update_stats(self) -> None:
        """Runs in the panel's stats thread: reads the producers' counters, writes HTML."""
        for p, row in zip(self.producers, self._rows):
            s = p.stats
            state = "failed: " + p.failure if p.failure else (
                "paused" if s["paused"] else ("running" if s["running"] else "idle"))
            p50 = "-" if s["latency_p50_ms"] is None else f"{s['latency_p50_ms']:.1f}"
            p99 = "-" if s["latency_p99_ms"] is None else f"{s['latency_p99_ms']:.1f}"
            # two lines that never wrap: numbers growing a digit must not change the panel's height,
            # or every cell below it jumps at each refresh
            line = "<div style='white-space:nowrap;overflow:hidden;text-overflow:ellipsis'>{}</div>"
            row["stats"].value = (
                line.format(f"<code>{html.escape(state)} · target {s['target'] or 'max'} msg/s · achieved "
                            f"{s['rate']:.0f} msg/s · errors {s['errors']}</code>")
                + line.format(f"<code>sent {s['sent']} · acked {s['acked']} · latency p50 {p50} ms, "
                              f"p99 {p99} ms</code>")
                + (f"<span style='color:#c62828'>{html.escape(s['last_error'])}</span>" if s["last_error"] else ""))

    def _ipython_display_(self):
        from IPython.display import display
        display(self.box)
