"""The `cluster` profile: three combined KRaft nodes on 127.0.0.1, for replication, ISR and
failover experiments.

Each node is a LocalBroker with its own directory (`<home>/cluster/node-N/`), ports, data and
log; `<home>/cluster/cluster.json` holds what they share (the cluster id and every node's
ports, which the static controller quorum names). Stopping one node (SIGTERM) moves its
leaders at once; killing one (SIGKILL) moves them after the broker session timeout; losing two
of three loses the controller quorum, and that is a lesson too.
"""
from __future__ import annotations

import json
import shutil
import signal
import sys
import time
from pathlib import Path

from ..runtime import wait_until
from . import jvmcache
from .jars import KAFKA_VERSION, classpath
from .java import find_java
from .local import (JVM_OPTS, BrokerError, LocalBroker, default_home, free_port, new_cluster_id, port_free,
                    round_trip)

NODES = (1, 2, 3)
HEALTH_TOPIC_RF3 = "_kafkalab_health_rf3"
# Three JVMs next to JupyterLab on a 2-core laptop: small explicit heaps.
NODE_JVM_OPTS = ["-Xms128m", "-Xmx384m", "-XX:CICompilerCount=2",
                 *(o for o in JVM_OPTS if not o.startswith(("-Xms", "-Xmx")))]
LAST_NODE_GRACE_S = 10.0    # see Cluster.down


class ClusterNode(LocalBroker):
    """Node N of the cluster: ports N9092 (clients) and N9093 (controller) unless taken."""

    profile = "cluster"

    def __init__(self, node_id: int, home: Path | str | None = None, voters: str = "", out=None):
        if node_id not in NODES:
            raise BrokerError(f"no node {node_id}: the cluster has nodes {', '.join(map(str, NODES))}")
        super().__init__(home, jvm_opts=NODE_JVM_OPTS, out=out)
        self.node_id = node_id
        self.voters = voters
        self.default_port = node_id * 10000 + 9092
        self.default_controller_port = node_id * 10000 + 9093
        self._place(self.home / self.profile / f"node-{node_id}")

    def properties(self, port: int, controller_port: int) -> dict:
        props = super().properties(port, controller_port)
        replicated = {
            "controller.quorum.voters": self.voters,
            "default.replication.factor": 3,
            "min.insync.replicas": 2,
            "offsets.topic.replication.factor": 3,
            "transaction.state.log.replication.factor": 3,
            "transaction.state.log.min.isr": 2,
            "share.coordinator.state.topic.replication.factor": 3,
            "share.coordinator.state.topic.min.isr": 2,
            # a follower that stops fetching leaves the ISR in ~5 s instead of 30 s
            "replica.lag.time.max.ms": 5000,
            # (broker.session.timeout.ms 4 s, heartbeats every second, from LocalBroker: a killed node is
            # declared dead after 4 s instead of 9 s, so its leaderships move while a learner watches)
            "num.network.threads": 1,
            "num.io.threads": 2,
        }
        return {**props, **replicated}


class Cluster:
    """Three ClusterNodes started, watched and stopped together (or one at a time)."""

    profile = "cluster"

    def __init__(self, home: Path | str | None = None, out=None):
        self.home = Path(home) if home else default_home()
        self.dir = self.home / self.profile
        self.state_file = self.dir / "cluster.json"
        self.out = out or sys.stdout      # information; warnings go to stderr (_warn)
        self.log_file = self.dir / "node-1" / "logs" / "broker.log"   # `kafkalab logs` shows node 1

    # -- shared state -----------------------------------------------------------------------
    def _shared(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return None
        except ValueError as e:
            raise BrokerError(f"{self.state_file} is unreadable ({e}); "
                              "run `kafkalab reset --profile cluster --yes` to start over") from e

    def _save(self, shared: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(shared, indent=1))
        tmp.replace(self.state_file)

    def node(self, node_id: int) -> ClusterNode:
        shared = self._shared() or {}
        return ClusterNode(node_id, self.home, voters=shared.get("voters", ""), out=self.out)

    def nodes(self) -> list[ClusterNode]:
        return [self.node(n) for n in NODES]

    @property
    def bootstrap(self) -> str:
        shared = self._shared()
        if not shared:
            raise BrokerError(f"no cluster has been set up under {self.dir}")
        return ",".join(f"127.0.0.1:{shared['ports'][str(n)][0]}" for n in NODES)

    def alive(self) -> bool:
        return any(node.alive() for node in self.nodes())

    def status(self) -> dict:
        shared = self._shared()
        nodes = []
        for node in self.nodes():
            state = node.state()
            alive = node.alive(state)
            nodes.append({"id": node.node_id, "pid": state.pid if (state and alive) else None,
                          "port": state.port if state else None,
                          "controller_port": state.controller_port if state else None,
                          "alive": alive, "data_dir": str(node.data_dir), "log_file": str(node.log_file)})
        return {
            "running": all(n["alive"] for n in nodes),
            "alive_nodes": sum(n["alive"] for n in nodes),
            "profile": self.profile,
            "bootstrap": self.bootstrap if shared else None,
            "data_dir": str(self.dir),
            "log_file": str(self.log_file),
            "kafka_version": KAFKA_VERSION,
            "nodes": nodes,
        }

    # -- lifecycle --------------------------------------------------------------------------
    def _choose_ports(self, shared: dict | None) -> dict[str, list[int]]:
        """Every node keeps its ports while they are free; a taken one moves to a free port."""
        chosen: dict[str, list[int]] = {}
        taken: set[int] = set()

        def pick(preferred: int | None) -> int:
            port = preferred if preferred and preferred not in taken and port_free(preferred) else None
            while port is None or port in taken:
                port = free_port()
            taken.add(port)
            return port

        for n in NODES:
            old = (shared or {}).get("ports", {}).get(str(n))
            defaults = (n * 10000 + 9092, n * 10000 + 9093)
            chosen[str(n)] = [pick(old[0] if old else defaults[0]), pick(old[1] if old else defaults[1])]
        return chosen

    def up(self, timeout: float = 120.0) -> dict:
        """Start the nodes that are not running and return once all three serve an RF 3 topic."""
        t0 = time.monotonic()
        shared = self._shared()
        running = [node for node in self.nodes() if node.alive()]
        if not running:
            shared = {"cluster_id": (shared or {}).get("cluster_id") or new_cluster_id(),
                      "ports": self._choose_ports(shared)}
            shared["voters"] = ",".join(f"{n}@127.0.0.1:{shared['ports'][str(n)][1]}" for n in NODES)
            self._save(shared)
        java, jars = find_java(), classpath(stream=self.out)
        procs = []
        for node in self.nodes():
            if node.alive():
                continue
            port, cport = shared["ports"][str(node.node_id)]
            for p in (port, cport):
                try:                                  # a node killed a moment ago may still hold it
                    wait_until(lambda p=p: port_free(p), 10, interval=0.2, what=f"port {p} to be free")
                except TimeoutError:
                    raise BrokerError(f"port taken: node {node.node_id} needs 127.0.0.1:{p}, which "
                                      "another program uses (the other nodes know it by that port)") from None
            procs.append((node, *node.launch(java, jars, port, cport, shared["cluster_id"])))
        try:
            self.wait_ready(timeout - (time.monotonic() - t0), procs)
        except BrokerError:
            for node, proc, state in procs:
                cache = jvmcache.Plan.from_json(state.extra.get("jvm_cache"))
                if proc.poll() is None:
                    node.kill()
                jvmcache.discard(cache)
                node.check_cache(cache, crashed=True)
            raise
        for node, _, state in procs:
            node.check_cache(jvmcache.Plan.from_json(state.extra.get("jvm_cache")))
        self._say(f"Apache Kafka {KAFKA_VERSION} cluster of {len(NODES)} nodes ready at {self.bootstrap} "
                  f"in {time.monotonic() - t0:.1f} s")
        return self.status()

    def wait_ready(self, timeout: float, procs=(), brokers: int = len(NODES)) -> float:
        """describe_cluster lists `brokers` brokers, then an acks=all round trip on an RF 3 topic."""
        t0 = time.monotonic()
        deadline = t0 + max(timeout, 1.0)
        last_error = "no answer yet"

        def ready() -> bool:
            nonlocal last_error
            for node, proc, _ in procs:
                if proc.poll() is not None:
                    raise BrokerError(node.diagnose(f"node {node.node_id} exited during start-up"))
            try:
                seen = self.live_brokers()
                if len(seen) >= brokers:
                    round_trip(self.bootstrap, timeout_s=max(5.0, min(20.0, deadline - time.monotonic())),
                               topic=HEALTH_TOPIC_RF3, replication_factor=len(NODES))
                    return True
                last_error = f"brokers registered: {sorted(seen)}"
            except Exception as e:  # the next pass retries; the last error is reported
                last_error = f"{type(e).__name__}: {e}"
            return False

        try:
            wait_until(ready, max(timeout, 1.0), interval=0.1, what="the cluster to be ready")
        except TimeoutError:
            heads = "\n".join(node.diagnose(f"node {node.node_id}:", lines=8) for node, _, _ in procs)
            raise BrokerError(f"the cluster was not ready after {timeout:.0f} s "
                              f"(last: {last_error})\n{heads}") from None
        return time.monotonic() - t0

    def live_brokers(self, via: str | None = None) -> set[int]:
        """Node ids the cluster's metadata lists as brokers (asked through `via`, else any node)."""
        from kafka import KafkaAdminClient
        with KafkaAdminClient(bootstrap_servers=via or self.bootstrap, bootstrap_timeout_ms=3000,
                              request_timeout_ms=5000) as admin:
            return {b["broker_id"] for b in admin.describe_cluster().get("brokers", [])}

    def start_node(self, node_id: int, timeout: float = 60.0) -> dict:
        """Start one stopped node and wait until the controller lists it again."""
        shared = self._shared()
        if not shared:
            raise BrokerError("the cluster has never been started: run `kafkalab up --profile cluster`")
        node = self.node(node_id)
        if node.alive():
            self._say(f"node {node_id} is already running")
            return self.status()
        t0 = time.monotonic()
        port, cport = shared["ports"][str(node_id)]
        proc, _ = node.launch(find_java(), classpath(stream=self.out), port, cport, shared["cluster_id"])
        last_error = "no answer yet"

        def back() -> bool:
            nonlocal last_error
            if proc.poll() is not None:
                raise BrokerError(node.diagnose(f"node {node_id} exited during start-up"))
            try:
                # asked through its own port: the answer comes from the restarted node itself
                return node_id in self.live_brokers(via=f"127.0.0.1:{port}")
            except Exception as e:  # a quorum without this node may not answer yet
                last_error = f"{type(e).__name__}: {e}"
                return False

        try:
            wait_until(back, timeout, interval=0.3, what=f"node {node_id} to rejoin")
        except TimeoutError:
            raise BrokerError(node.diagnose(f"node {node_id} did not rejoin within {timeout:.0f} s "
                                            f"(last: {last_error})")) from None
        self._say(f"node {node_id} is back (pid {proc.pid}) in {time.monotonic() - t0:.1f} s")
        return self.status()

    def stop_node(self, node_id: int, timeout: float = 60.0) -> bool:
        """SIGTERM: a controlled shutdown; its partitions get new leaders before it exits."""
        return self.node(node_id).down(timeout)

    def kill_node(self, node_id: int) -> bool:
        """SIGKILL: a crash; leaders move only after the broker session times out (4 s here)."""
        return self.node(node_id).kill()

    def down(self, timeout: float = 60.0, stranded_grace: float = LAST_NODE_GRACE_S) -> bool:
        """SIGTERM to every node at once, SIGKILL to a node stranded without a controller quorum.

        A combined node's broker asks the active controller for a controlled shutdown before its own
        controller stops. Whichever node is last may still be waiting for that grant when the other two
        controllers have gone: with one voter of three no controller can be elected, and it would wait
        forever (seen in about one stop in three on 2 cores). So a node left alone, with no quorum
        possible, gets `stranded_grace` seconds and is then killed; its logs are recovered at the next start.
        """
        nodes = [(node, node.state()) for node in self.nodes()]
        nodes = [(node, state) for node, state in nodes if state and node.alive(state)]
        for node, state in nodes:
            node._signal(state.pid, signal.SIGTERM)
        deadline, alone_since = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            alive = [(node, state) for node, state in nodes if not node.gone(state)]
            if not alive:
                break
            if len(alive) == 1 and len(NODES) > 1:
                alone_since = alone_since or time.monotonic()
                if time.monotonic() - alone_since > stranded_grace:
                    node, state = alive[0]
                    self._warn(f"node {node.node_id} was still waiting for a controlled shutdown {stranded_grace:g} s "
                               "after the other nodes stopped: with no controller quorum left nothing can grant it; "
                               f"killing pid {state.pid} (its logs are recovered at the next start)")
                    node.kill()
                    break
            time.sleep(0.1)
        for node, state in nodes:
            if not node.gone(state):
                self._warn(f"node {node.node_id} did not stop in {timeout:.0f} s; killing pid {state.pid}")
                node.kill()
            else:
                node.collect(state)
        return bool(nodes)

    def kill(self) -> bool:
        return any([node.kill() for node in self.nodes()])

    def reset(self) -> None:
        self.down()
        if self.dir.exists():
            shutil.rmtree(self.dir)

    def diagnose(self, headline: str, lines: int = 10) -> str:
        return "\n".join([headline] + [node.diagnose(f"node {node.node_id}:", lines) for node in self.nodes()])

    def log_tail(self, lines: int = 50) -> list[str]:
        out = []
        for node in self.nodes():
            out += [f"[node {node.node_id}] {line}" for line in node.log_tail(lines)]
        return out

    def _say(self, msg: str) -> None:
        """Information, to stdout by default (see LocalBroker._say)."""
        self.out.write(f"kafkalab: {msg}\n")
        self.out.flush()

    _warn = staticmethod(LocalBroker._warn)

