"""A live view of the three-node cluster, with a stop / kill / start button per node.

Two workers: one owns the admin client and samples leaders, ISR and the controller quorum about
once a second; the other runs the node commands the buttons queue (a start takes seconds and
must not freeze the view). The widgets only read the latest snapshot and queue commands.
"""
from __future__ import annotations

import html
import queue
import re
import threading
import time
from concurrent.futures import Future

import ipywidgets as w
import pandas as pd

from .broker.cluster import NODES, Cluster
from .runtime import Composite, Periodic, Worker, wait_until

PARTITION_COLUMNS = ["topic", "partition", "leader", "replicas", "isr", "under_replicated", "offline"]


def describe_partitions(admin, topics: list[str] | None = None) -> pd.DataFrame:
    """Leader, replicas and ISR of every partition (of `topics`, else of every non-internal topic)."""
    names = topics or sorted(t for t in admin.list_topics() if not t.startswith("_"))
    rows = []
    for topic in admin.describe_topics(names) if names else []:
        for p in topic["partitions"]:
            rows.append({"topic": topic["name"], "partition": p["partition_index"],
                         "leader": p["leader_id"], "replicas": list(p["replica_nodes"]),
                         "isr": sorted(p["isr_nodes"]),
                         "under_replicated": len(p["isr_nodes"]) < len(p["replica_nodes"]),
                         "offline": p["leader_id"] < 0})
    return pd.DataFrame(rows, columns=PARTITION_COLUMNS).sort_values(["topic", "partition"],
                                                                      ignore_index=True)


def quorum(admin) -> dict:
    """The KRaft controller quorum: its leader, epoch and how far each voter is behind."""
    part = admin.describe_metadata_quorum()["topics"][0]["partitions"][0]
    hw = part["high_watermark"]
    return {"leader": part["leader_id"], "epoch": part["leader_epoch"], "high_watermark": hw,
            "voters": {v["replica_id"]: hw - v["log_end_offset"] if v["log_end_offset"] >= 0 else None
                       for v in part["current_voters"]}}


def _ints(text: str) -> list[int]:
    """[1, 2, 3] as the panel's table prints a list of node ids."""
    return [int(n) for n in re.findall(r"-?\d+", text)]


class _Sampler(Periodic):
    """Owns the admin client; one snapshot of nodes, partitions and quorum per period."""
    tick_on_stop = False

    def __init__(self, name: str, cluster: Cluster, topics, period: float, on_sample):
        super().__init__(name, period)
        self.cluster, self.topics, self.on_sample = cluster, topics, on_sample
        self._admin = None

    def tick(self) -> None:
        from kafka import KafkaAdminClient
        snap = {"at": time.time(), "nodes": self.cluster.status()["nodes"], "error": None}
        try:
            if self._admin is None:
                self._admin = KafkaAdminClient(bootstrap_servers=self.cluster.bootstrap,
                                               bootstrap_timeout_ms=3000, request_timeout_ms=4000)
            snap["partitions"] = describe_partitions(self._admin, self.topics)
            snap["quorum"] = quorum(self._admin)
        except Exception as e:  # no quorum, no node: that is what the view must show
            snap["error"] = f"{type(e).__name__}: {e}"
            self.teardown()
        self.on_sample(snap)

    def teardown(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None


class _NodeOps(Worker):
    """Runs the queued node commands one at a time (a start takes seconds)."""

    def __init__(self, name: str, cluster: Cluster, on_result):
        super().__init__(name)
        self.cluster, self.on_result = cluster, on_result
        self.commands: queue.Queue = queue.Queue()

    def run(self) -> None:
        actions = {"stop": self.cluster.stop_node, "kill": self.cluster.kill_node,
                   "start": self.cluster.start_node}
        while not self.stopping.is_set():
            try:
                action, node, done = self.commands.get(timeout=0.2)
            except queue.Empty:
                continue
            t0 = time.monotonic()
            try:
                actions[action](node)
            except Exception as e:  # shown in the panel; the next command still runs
                self.on_result(f"node {node}: {action} failed: {type(e).__name__}: {e}")
                done.set_exception(e)
            else:
                self.on_result(f"node {node}: {action} done in {time.monotonic() - t0:.1f} s")
                done.set_result(node)
        while not self.commands.empty():         # never leave a caller waiting on a dropped command
            self.commands.get_nowait()[2].cancel()


class ClusterPanel(Composite):
    """Per-node stop / kill / start buttons; partition leaders and ISR; under-replicated and
    offline partition counts; the controller quorum. `snapshot` holds the latest sample.

    Parameters
    ----------
    cluster : the three-node Cluster (default: the local cluster profile's).
    topics : the topics whose partitions are shown (default: every non-internal topic).
    period : seconds between samples, at least 0.5.
    name : its name in the registry. Default "panel:cluster".
    """

    def __init__(self, cluster: Cluster | None = None, topics: list[str] | None = None,
                 period: float = 1.0, name: str | None = None):
        if period < 0.5:
            raise ValueError("period must be at least 0.5 s: each sample asks the cluster three questions")
        super().__init__(name, default="panel:cluster")
        self.cluster = cluster or Cluster()
        self.snapshot: dict = {}
        self.log: list[str] = []
        self._shown_lock = threading.Lock()    # a read-back sees one sample's status and table
        self.status = w.HTML("<i>not started: call start()</i>")
        self.table = w.HTML()
        self.messages = w.HTML()
        rows = []
        for node in NODES:
            buttons = []
            for action, style in (("stop", "warning"), ("kill", "danger"), ("start", "success")):
                b = w.Button(description=f"{action} {node}", button_style=style,
                             layout=w.Layout(width="90px"))
                b.on_click(lambda _, a=action, n=node: self.command(a, n))
                buttons.append(b)
            rows.append(w.HBox(buttons))
        self.box = w.VBox([w.HBox([w.VBox(rows), self.status]), self.table, self.messages])
        self._ops = _NodeOps(f"{self.name}/ops", self.cluster, self._message)
        self._sampler = _Sampler(f"{self.name}/sampler", self.cluster, topics, period, self._show)
        self.children += [self._ops, self._sampler]

    def command(self, action: str, node: int) -> Future:
        """Queue stop / kill / start of a node (what the buttons do). The Future completes when
        the command has run (its result is the node; a failure is its exception)."""
        done: Future = Future()
        if action not in ("stop", "kill", "start") or node not in NODES:
            self._message(f"unknown command {action!r} for node {node!r}")
            done.set_exception(ValueError(f"unknown command {action!r} for node {node!r}"))
            return done
        if not self._ops.alive:
            done.set_exception(RuntimeError(f"{self.name} is not running: call start() first"))
            return done
        self._message(f"node {node}: {action} requested")
        self._ops.commands.put((action, node, done))
        return done

    def _message(self, text: str) -> None:
        self.log = (self.log + [f"{time.strftime('%H:%M:%S')} {text}"])[-6:]
        self.messages.value = "<br>".join(html.escape(m) for m in self.log)

    def _show(self, snap: dict) -> None:
        with self._shown_lock:
            self._render(snap)
        self.snapshot = snap     # last: whoever waits on the snapshot sees the view drawn

    def shown(self) -> dict:
        """What the panel shows now, read back from its widgets (not from `snapshot`), so a check can
        compare it with an independent look at the cluster: `partitions` (topic, partition, leader,
        replicas, isr, as the table lists them), `under_replicated` and `offline` (the counts in
        the status line), `quorum_leader`, and `error` (the error shown instead, else None)."""
        with self._shown_lock:
            status, table = self.status.value, self.table.value
        cell = r"<td>(.*?)</td>"
        rows = [(html.unescape(t), int(p), int(leader), _ints(replicas), _ints(isr))
                for t, p, leader, replicas, isr in re.findall(r"<tr[^>]*>" + cell * 5 + "</tr>", table)]
        error = re.search(r"<span style='color:crimson'>(.*?)</span>", status)

        def number(pattern: str) -> int | None:
            found = re.search(pattern, status)
            return int(found.group(1)) if found else None
        return {"partitions": pd.DataFrame(rows, columns=["topic", "partition", "leader", "replicas", "isr"]),
                "under_replicated": number(r"under-replicated partitions: <b>(\d+)</b>"),
                "offline": number(r"offline: <b>(\d+)</b>"),
                "quorum_leader": number(r"controller quorum leader: <b>(-?\d+)</b>"),
                "error": html.unescape(error.group(1)) if error else None}

    def _render(self, snap: dict) -> None:
        alive = " ".join(f"<b style='color:{'green' if n['alive'] else 'crimson'}'>node {n['id']}: "
                         f"{'up' if n['alive'] else 'down'}</b>" for n in snap["nodes"])
        if snap["error"]:
            self.status.value = f"{alive}<br><span style='color:crimson'>{html.escape(snap['error'])}</span>"
            return
        parts, q = snap["partitions"], snap["quorum"]
        lagging = ", ".join(f"{v}: {'?' if lag is None else lag}" for v, lag in sorted(q["voters"].items()))
        self.status.value = (f"{alive}<br>controller quorum leader: <b>{q['leader']}</b> "
                             f"(epoch {q['epoch']}; records behind per voter: {lagging})<br>"
                             f"under-replicated partitions: <b>{int(parts['under_replicated'].sum())}</b>, "
                             f"offline: <b>{int(parts['offline'].sum())}</b>")
        cells = []
        for r in parts.itertuples():
            color = "#fdd" if r.offline else ("#ffe9b3" if r.under_replicated else "")
            cells.append(f"<tr style='background:{color}'><td>{html.escape(r.topic)}</td><td>{r.partition}</td>"
                         f"<td>{r.leader}</td><td>{r.replicas}</td><td>{r.isr}</td></tr>")
        self.table.value = ("<table><tr><th>topic</th><th>partition</th><th>leader</th><th>replicas</th>"
                            f"<th>ISR</th></tr>{''.join(cells[:40])}</table>")

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "the expected cluster state") -> dict:
        """Block until predicate(snapshot) holds on an error-free sample (for notebooks and
        tests); return that snapshot. TimeoutError names `what` and the last sample's error."""
        def ready():
            snap = self.snapshot
            return snap if snap and not snap.get("error") and predicate(snap) else None
        return wait_until(ready, timeout, interval=0.2, what=lambda: (
            f"{what} (last sample: {self.snapshot.get('error') or 'condition false'})"))

    def _ipython_display_(self):
        from IPython.display import display
        display(self.box)
