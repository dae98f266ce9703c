"""A live view of the three-node cluster, with a stop / kill / start button per node.

Two workers: one owns the admin client and samples leaders, ISR and the controller quorum about
once a second; the other runs the node commands the buttons queue (a start takes seconds and
must not freeze the view). The widgets only read the latest snapshot and queue commands.
"""
from __future__ import annotations

import html
import queue
import time

import ipywidgets as w
import pandas as pd

from .broker.cluster import NODES, Cluster
from .runtime import Stoppable, Worker, register, unregister

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


class _Sampler(Worker):
    def __init__(self, name: str, cluster: Cluster, topics, period: float, on_sample):
        super().__init__(name)
        self.cluster, self.topics, self.period, self.on_sample = cluster, topics, period, on_sample

    def run(self) -> None:
        from kafka import KafkaAdminClient
        admin = None
        try:
            while not self.stopping.is_set():
                snap = {"at": time.time(), "nodes": self.cluster.status()["nodes"], "error": None}
                try:
                    if admin is None:
                        admin = KafkaAdminClient(bootstrap_servers=self.cluster.bootstrap,
                                                 bootstrap_timeout_ms=3000, request_timeout_ms=4000)
                    snap["partitions"] = describe_partitions(admin, self.topics)
                    snap["quorum"] = quorum(admin)
                except Exception as e:  # no quorum, no node: that is what the view must show
                    snap["error"] = f"{type(e).__name__}: {e}"
                    if admin is not None:
                        admin.close()
                        admin = None
                self.on_sample(snap)
                self.stopping.wait(self.period)
        finally:
            if admin is not None:
                admin.close()


class _NodeOps(Worker):
    def __init__(self, name: str, cluster: Cluster, on_result):
        super().__init__(name)
        self.cluster, self.on_result = cluster, on_result
        self.commands: queue.Queue = queue.Queue()

    def run(self) -> None:
        actions = {"stop": self.cluster.stop_node, "kill": self.cluster.kill_node,
                   "start": self.cluster.start_node}
        while not self.stopping.is_set():
            try:
                action, node = self.commands.get(timeout=0.2)
            except queue.Empty:
                continue
            t0 = time.monotonic()
            try:
                actions[action](node)
                self.on_result(f"node {node}: {action} done in {time.monotonic() - t0:.1f} s")
            except Exception as e:  # shown in the panel; the next command still runs
                self.on_result(f"node {node}: {action} failed: {type(e).__name__}: {e}")


class ClusterPanel(Stoppable):
    """Per-node stop / kill / start buttons; partition leaders and ISR; under-replicated and
    offline partition counts; the controller quorum. `snapshot` holds the latest sample."""

    def __init__(self, cluster: Cluster | None = None, topics: list[str] | None = None,
                 period: float = 1.0, name: str = "panel:cluster"):
        if period < 0.5:
            raise ValueError("period must be at least 0.5 s: each sample asks the cluster three questions")
        self.name, self.cluster = name, cluster or Cluster()
        self.snapshot: dict = {}
        self.log: list[str] = []
        self.status = w.HTML()
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
        register(self)
        self._ops = _NodeOps(f"{name}/ops", self.cluster, self._message).start()
        self._sampler = _Sampler(f"{name}/sampler", self.cluster, topics, period, self._show).start()

    def command(self, action: str, node: int) -> None:
        """Queue stop / kill / start of a node (what the buttons do)."""
        if action not in ("stop", "kill", "start") or node not in NODES:
            self._message(f"unknown command {action!r} for node {node!r}")
            return
        self._message(f"node {node}: {action} requested")
        self._ops.commands.put((action, node))

    def _message(self, text: str) -> None:
        self.log = (self.log + [f"{time.strftime('%H:%M:%S')} {text}"])[-6:]
        self.messages.value = "<br>".join(html.escape(m) for m in self.log)

    def _show(self, snap: dict) -> None:
        self._render(snap)
        self.snapshot = snap     # last: whoever waits on the snapshot sees the view drawn

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

    def wait_for(self, predicate, timeout: float = 30.0) -> dict:
        """Block until predicate(snapshot) holds (for notebooks and tests); return the snapshot."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            snap = self.snapshot
            if snap and not snap.get("error") and predicate(snap):
                return snap
            time.sleep(0.2)
        raise TimeoutError(f"the cluster did not reach the expected state within {timeout:.0f} s: "
                           f"{self.snapshot.get('error') or 'condition false'}")

    def _ipython_display_(self):
        from IPython.display import display
        display(self.box)

    def stop(self, timeout: float = 10.0) -> None:
        self._sampler.stop(timeout)
        self._ops.stop(timeout)
        unregister(self)
