"""A real Apache Kafka broker (KRaft, combined broker + controller) run from the locked jars.

Everything lives under one home directory (KAFKALAB_HOME, default ~/.local/share/kafkalab):
`<home>/<profile>/` holds state.json, server.properties, the data and the broker log, so
several homes (a user's lab, the test suite) never disturb each other.
"""
from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import cds
from .java import Java, find_java
from ..runtime import wait_until
from .jars import KAFKA_VERSION, classpath

DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
HEALTH_TOPIC = "_kafkalab_health"
MIN_FREE_DISK = 256 * 1024 * 1024
# Small explicit heap: the lab runs on laptops and 2-core CI machines next to JupyterLab.
JVM_OPTS = ["-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:+ExplicitGCInvokesConcurrent", "-XX:-OmitStackTraceInFastThrow",
            "-Djava.awt.headless=true"]


def extra_jvm_opts() -> list[str]:
    """KAFKALAB_JVM_OPTS: options added to every broker JVM's (e.g. -XX:TieredStopAtLevel=1, which
    the test suite sets: C1 only takes about 40% less CPU to start and serve a lab's load)."""
    return shlex.split(os.environ.get("KAFKALAB_JVM_OPTS", ""))


LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
logger.kafka.name = kafka.Kafka$
logger.kafka.level = INFO
logger.startup.name = kafka.server.BrokerServer
logger.startup.level = INFO
logger.authfail.name = org.apache.kafka.common.network.Selector
logger.authfail.level = INFO
"""


class BrokerError(RuntimeError):
    """The local broker could not be started, stopped or reached."""


def default_home() -> Path:
    env = os.environ.get("KAFKALAB_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "kafkalab"


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reachable(bootstrap: str, timeout: float = 2.0) -> bool:
    """True if any host:port of a bootstrap list accepts a TCP connection."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout):
                return True
        except (OSError, ValueError):
            continue
    return False


def pid_alive(pid: int | None, marker: str | None = None) -> bool:
    """Alive (not a zombie) and, on Linux, really our broker rather than a recycled pid."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return marker is None
    proc = Path(f"/proc/{pid}")
    if not proc.exists():  # not Linux: the signal check is all there is
        return True
    try:
        if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False  # exited; its parent (or a non-reaping init) has not collected it
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return marker is None or marker in cmdline


@dataclass
class State:
    """What `up` recorded: enough for `status`, `down` and `bootstrap()` to find the broker."""
    port: int
    controller_port: int
    pid: int | None = None
    cluster_id: str = ""
    kafka_version: str = KAFKA_VERSION
    java: str = ""
    started_at: float | None = None
    extra: dict = field(default_factory=dict)


class LocalBroker:
    """One single-node KRaft broker under `home`."""

    profile = "single"
    node_id = 1
    default_port = DEFAULT_PORT
    default_controller_port = DEFAULT_CONTROLLER_PORT

    def __init__(self, home: Path | str | None = None, port: int | None = None,
                 jvm_opts: list[str] | None = None, out=None):
        self.home = Path(home) if home else default_home()
        self._place(self.home / self.profile)
        self.requested_port = port
        self.jvm_opts = list(JVM_OPTS if jvm_opts is None else jvm_opts) + extra_jvm_opts()
        self.out = out or sys.stderr

    def _place(self, directory: Path) -> None:
        self.dir = directory
        self.data_dir = self.dir / "data"
        self.log_file = self.dir / "logs" / "broker.log"
        self.config_file = self.dir / "server.properties"
        self.state_file = self.dir / "state.json"

    # -- state --------------------------------------------------------------------------
    def state(self) -> State | None:
        try:
            return State(**json.loads(self.state_file.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as e:
            raise BrokerError(f"{self.state_file} is unreadable ({e}); "
                              "run `kafkalab reset --yes` to start over") from e

    def _save(self, state: State) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state.__dict__, indent=1))
        tmp.replace(self.state_file)

    def alive(self, state: State | None = None) -> bool:
        state = state or self.state()
        return bool(state) and pid_alive(state.pid, str(self.config_file))

    @property
    def bootstrap(self) -> str:
        state = self.state()
        if not state:
            raise BrokerError(f"no local broker has been set up under {self.dir}")
        return f"127.0.0.1:{state.port}"

    def status(self) -> dict:
        state = self.state()
        alive = self.alive(state)
        return {
            "running": alive,
            "profile": self.profile,
            "bootstrap": f"127.0.0.1:{state.port}" if state else None,
            "data_dir": str(self.data_dir),
            "log_file": str(self.log_file),
            "kafka_version": state.kafka_version if state else KAFKA_VERSION,
            "nodes": [{"id": self.node_id, "pid": state.pid if (state and alive) else None,
                       "port": state.port if state else None, "alive": alive}],
            **self.status_extra(),
        }

    # -- configuration ------------------------------------------------------------------
    def _choose_ports(self, state: State | None) -> tuple[int, int]:
        if self.requested_port is not None:
            port = self.requested_port or free_port()
            if not port_free(port):
                raise BrokerError(f"port taken: 127.0.0.1:{port} is in use by another program")
        elif state and port_free(state.port):
            port = state.port
        elif state:
            port = free_port()
            self._say(f"port {state.port} is taken now; using {port}")
        else:
            port = self.default_port if port_free(self.default_port) else free_port()
            if port != self.default_port:
                self._say(f"port {self.default_port} is taken; using {port}")
        if state and state.controller_port != port and port_free(state.controller_port):
            cport = state.controller_port
        elif (not state and self.requested_port is None
              and port_free(self.default_controller_port)):
            cport = self.default_controller_port
        else:
            cport = free_port()
        return port, cport

    def render_config(self, port: int, controller_port: int) -> str:
        return "".join(f"{k}={v}\n" for k, v in self.properties(port, controller_port).items())

    def properties(self, port: int, controller_port: int) -> dict:
        return {
            "process.roles": "broker,controller",
            "node.id": self.node_id,
            # Static voters (not --standalone): the controller port may change between runs.
            "controller.quorum.voters": f"{self.node_id}@127.0.0.1:{controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": self.data_dir,
            "num.partitions": 1,
            "default.replication.factor": 1,
            "min.insync.replicas": 1,
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 1,   # 50 by default: a slow first group join
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,  # 3 s by default on every first join
            "num.network.threads": 2,
            "num.io.threads": 2,
            "background.threads": 2,
            "num.recovery.threads.per.data.dir": 1,
            "log.cleaner.dedupe.buffer.size": 16777216,
            "log.cleaner.backoff.ms": 1000,   # 15 s by default: compaction is watched within a cell
            "log.retention.hours": 168,
            # explicit topics: a typo fails loudly instead of creating a stray topic
            "auto.create.topics.enable": "false",
        }

    # -- hooks for other profiles ---------------------------------------------------------
    def prepare(self) -> None:
        """Make what the configuration refers to (certificates, users) before it is written."""

    def format_args(self) -> list[str]:
        """Extra StorageTool format arguments (SCRAM users)."""
        return []

    def client_security(self) -> dict:
        """kafka-python settings the readiness check needs to get in."""
        return {}

    def status_extra(self) -> dict:
        return {}

    def _java_cmd(self, java: Java, jars: list[Path], main: str, *args: str,
                  heap: list[str] | None = None, extra: list[str] = ()) -> list[str]:
        log4j = self.dir / "log4j2.properties"
        return [str(java.path), *(self.jvm_opts if heap is None else heap), *extra,
                f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={self.log_file.parent}",
                "-cp", os.pathsep.join(map(str, jars)), main, *args]

    # -- lifecycle ----------------------------------------------------------------------
    def _say(self, msg: str) -> None:
        self.out.write(f"kafkalab: {msg}\n")
        self.out.flush()

    def _preflight(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.dir).free
        if free < MIN_FREE_DISK:
            raise BrokerError(f"out of disk: only {free // 2**20} MiB free under {self.dir}; "
                              f"Kafka needs at least {MIN_FREE_DISK // 2**20} MiB")
        marker = self.data_dir / ".kafkalab-version"
        if marker.exists() and marker.read_text().strip() != KAFKA_VERSION:
            raise BrokerError(
                f"data dir from another version: {self.data_dir} was formatted by Kafka "
                f"{marker.read_text().strip()}, these jars are Kafka {KAFKA_VERSION}. "
                "Run `kafkalab reset --yes` to wipe it.")

    def _format(self, java: Java, jars: list[Path], cluster_id: str) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = self._java_cmd(java, jars, "kafka.tools.StorageTool", "format",
                             f"--cluster-id={cluster_id}", "-c", str(self.config_file),
                             "--ignore-formatted", *self.format_args(),
                             heap=["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise BrokerError("formatting the data dir failed:\n"
                              + (done.stdout + done.stderr).strip()[-2000:])
        (self.data_dir / ".kafkalab-version").write_text(KAFKA_VERSION + "\n")

    def up(self, timeout: float = 90.0) -> dict:
        """Start (or find running) and return only once a produce/consume round trip works."""
        t0 = time.monotonic()
        state = self.state()
        if state and self.alive(state):
            self._say(f"broker already running (pid {state.pid}) at 127.0.0.1:{state.port}")
            self.wait_ready(state, timeout)
            return self.status()
        java = find_java()
        proc, state = self.launch(java, classpath(stream=self.out), *self._choose_ports(state),
                                  state.cluster_id if state and state.cluster_id else new_cluster_id())
        port, pending = state.port, _path(state.extra.get("cds_pending"))
        try:
            self.wait_ready(state, timeout - (time.monotonic() - t0), proc=proc)
        except BrokerError:
            if proc.poll() is None:
                self._signal(proc.pid, signal.SIGKILL)
                proc.wait(10)
            cds.discard(pending)
            raise
        self._say(f"Apache Kafka {KAFKA_VERSION} ready at 127.0.0.1:{port} "
                  f"(pid {proc.pid}, {java}) in {time.monotonic() - t0:.1f} s")
        return self.status()

    def launch(self, java: Java, jars: list[Path], port: int, cport: int,
               cluster_id: str) -> tuple[subprocess.Popen, State]:
        """Configure, format if new, and start the JVM; readiness is the caller's to wait for."""
        self._preflight()
        self.prepare()
        self.config_file.write_text(self.render_config(port, cport))
        (self.dir / "log4j2.properties").write_text(LOG4J2)
        if not (self.data_dir / "meta.properties").exists():
            self._format(java, jars, cluster_id)
        archive, share, pending = None, [], None
        if cds.enabled():
            archive = cds.archive_for(java, jars, self.jvm_opts)
            share, pending = cds.jvm_flags(archive)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"\n=== kafkalab up {time.strftime('%Y-%m-%dT%H:%M:%S')} ===\n".encode())
            log.flush()
            proc = subprocess.Popen(
                self._java_cmd(java, jars, "kafka.Kafka", str(self.config_file), extra=share),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.dir)
        state = State(port=port, controller_port=cport, pid=proc.pid, cluster_id=cluster_id,
                      java=str(java), started_at=time.time(),
                      extra={"cds_archive": str(archive) if archive else None,
                             "cds_pending": str(pending) if pending else None})
        self._save(state)
        return proc, state

    def wait_ready(self, state: State, timeout: float, proc: subprocess.Popen | None = None) -> float:
        """Alive, then TCP, then describe_cluster, then a produce + consume round trip."""
        t0 = time.monotonic()
        deadline = t0 + max(timeout, 1.0)
        bootstrap = f"127.0.0.1:{state.port}"
        last_error = "no answer yet"

        def ready() -> bool:
            nonlocal last_error
            exited = proc.poll() is not None if proc else not self.alive(state)
            if exited:
                raise BrokerError(self.diagnose("the broker process exited during start-up"))
            if not reachable(bootstrap, 0.5):
                return False
            try:
                round_trip(bootstrap, timeout_s=max(5.0, deadline - time.monotonic()),
                           **self.client_security())
                return True
            except Exception as e:  # the next pass retries; the last error is reported
                last_error = f"{type(e).__name__}: {e}"
                return False

        try:
            wait_until(ready, max(timeout, 1.0), interval=0.2, what="the broker to be ready")
        except TimeoutError:
            raise BrokerError(self.diagnose(f"the broker was not ready after {timeout:.0f} s "
                                            f"(last error: {last_error})")) from None
        return time.monotonic() - t0

    def diagnose(self, headline: str, lines: int = 25) -> str:
        tail = self.log_tail(400)
        starts = [i for i, line in enumerate(tail) if line.startswith("=== kafkalab up")]
        tail = tail[starts[-1] + 1:] if starts else tail  # this start only
        tail = tail[-lines:]
        text = "\n".join(tail)
        causes = [
            ("Address already in use", "port taken: another program listens on a broker port"),
            ("UnsupportedClassVersionError", "Java too old: Kafka 4 needs Java 17+"),
            ("No space left on device", "out of disk"),
            ("Invalid cluster.id", "data dir from another cluster or version: `kafkalab reset --yes`"),
            ("InconsistentClusterIdException", "data dir from another cluster: `kafkalab reset --yes`"),
            ("doesn't match", "data dir from another node or cluster: `kafkalab reset --yes`"),
            ("No readable meta.properties", "data dir not formatted: `kafkalab reset --yes`"),
            ("OutOfMemoryError", "out of memory: close other programs or lower the load"),
        ]
        likely = [cause for needle, cause in causes if needle in text]
        msg = [headline]
        if likely:
            msg.append("likely cause: " + "; ".join(dict.fromkeys(likely)))
        msg.append(f"last lines of {self.log_file}:")
        msg.extend("  " + line for line in tail)
        return "\n".join(msg)

    def log_tail(self, lines: int = 50) -> list[str]:
        try:
            with open(self.log_file, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                return f.read().decode(errors="replace").splitlines()[-lines:]
        except FileNotFoundError:
            return []

    @staticmethod
    def _signal(pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def down(self, timeout: float = 60.0) -> bool:
        """SIGTERM (a clean shutdown keeps recovery short), SIGKILL after `timeout`."""
        state = self.state()
        if not state or not self.alive(state):
            return False
        self._signal(state.pid, signal.SIGTERM)
        try:
            wait_until(lambda: not self.alive(state), timeout, interval=0.1, what="the broker to exit")
            self.collect(state)
        except TimeoutError:
            self._say(f"broker did not stop in {timeout:.0f} s; killing pid {state.pid}")
            self.kill()
        _reap(state.pid)
        return True

    def collect(self, state: State) -> None:
        """After a clean exit: publish the class-data archive it dumped and reap the process."""
        cds.adopt(_path(state.extra.get("cds_pending")), _path(state.extra.get("cds_archive")))
        _reap(state.pid)

    def kill(self) -> bool:
        """SIGKILL, as a crash would: for recovery experiments."""
        state = self.state()
        if not state or not self.alive(state):
            return False
        self._signal(state.pid, signal.SIGKILL)

        def gone() -> bool:
            _reap(state.pid)
            return not self.alive(state)

        wait_until(gone, 10, what=f"the killed broker (pid {state.pid}) to exit")
        cds.discard(_path(state.extra.get("cds_pending")))
        return True

    def reset(self) -> None:
        """Stop the broker and wipe its data, config and state."""
        self.down()
        if self.dir.exists():
            shutil.rmtree(self.dir)


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def new_cluster_id() -> str:
    """Like Kafka's Uuid.randomUuid(): base64url of 16 random bytes, never starting with '-'
    (the command line would read such an id as an option)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def round_trip(bootstrap: str, timeout_s: float = 15.0, topic: str = HEALTH_TOPIC,
               replication_factor: int = 1, **security) -> None:
    """describe_cluster sees a broker, then one record goes through produce (acks=all) and consume."""
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

    ms = int(timeout_s * 1000)
    common = dict(bootstrap_servers=bootstrap, bootstrap_timeout_ms=ms,
                  request_timeout_ms=min(ms, 10000), **security)
    with KafkaAdminClient(**common) as admin:
        cluster = admin.describe_cluster()
        if not cluster.get("brokers"):
            raise BrokerError(f"describe_cluster lists no broker: {cluster}")
        admin.create_topics({topic: {"num_partitions": 1, "replication_factor": replication_factor}},
                            raise_errors=False, wait_for_metadata=True)
    token = uuid.uuid4().hex.encode()
    with KafkaProducer(**common) as producer:
        meta = producer.send(topic, token).get(timeout=timeout_s)
    tp = TopicPartition(topic, meta.partition)
    with KafkaConsumer(**common, enable_auto_commit=False) as consumer:
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        def found() -> bool:
            return any(r.value == token for records in consumer.poll(timeout_ms=500).values()
                       for r in records)

        try:
            wait_until(found, timeout_s, interval=0, what="the record just produced")
        except TimeoutError:
            raise BrokerError("produced a record but could not consume it back") from None
