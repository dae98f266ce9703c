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

from . import jvmcache
from .java import Java, find_java
from ..runtime import wait_until
from .jars import KAFKA_VERSION, cache_root, classpath

DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
HEALTH_TOPIC = "_kafkalab_health"
BOOTSTRAP_SNAPSHOT = "00000000000000000000-0000000000.checkpoint"   # what `kafka-storage format` writes
MIN_FREE_DISK = 256 * 1024 * 1024
# Small explicit heap: the lab runs on laptops and 2-core CI machines next to JupyterLab.
# C1-only JIT: on 2 cores the C2 compiler threads compete with the start itself (about 1 s of a 3 s
# restart) and take about 40% more CPU under a lab's load, for no gain at a lab's rates: a C1 broker
# took 224-256k msg/s from librdkafka where a C2 one took 144-172k on the same 2 cores (bench/README.md).
JVM_OPTS = ["-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:TieredStopAtLevel=1",
            "-XX:+ExplicitGCInvokesConcurrent", "-XX:-OmitStackTraceInFastThrow",
            "-Djava.awt.headless=true"]


def extra_jvm_opts() -> list[str]:
    """KAFKALAB_JVM_OPTS: options added to every broker JVM's, after kafkalab's (e.g. -Xmx2g for a
    heavier load, -XX:TieredStopAtLevel=4 for the full JIT)."""
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
            return False  # exited, or exiting (see pid_gone); its parent has not collected it
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return marker is None or marker in cmdline


def pid_gone(pid: int | None, marker: str | None = None) -> bool:
    """Exited entirely, so its ports and files are free: stricter than `not pid_alive`. A killed JVM's
    main thread shows as a zombie, and its command line reads empty, while its other threads still
    exit holding the broker's sockets (for about 50 ms; a restart then found its port taken)."""
    if not pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    proc = Path(f"/proc/{pid}")
    if not proc.exists():  # not Linux: the signal check is all there is
        return False
    try:
        if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return len(os.listdir(proc / "task")) <= 1
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return True
    return bool(cmdline) and marker is not None and marker not in cmdline     # its pid reused by another program


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
        self.out = out or sys.stdout      # information; warnings go to stderr (_warn)

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

    def gone(self, state: State) -> bool:
        """Its JVM has exited entirely (a stopping one is no longer alive() before that)."""
        return pid_gone(state.pid, str(self.config_file))

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
            "running_java": state.java if (state and alive) else None,
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
        elif state and _freed(state.port):
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
            # KIP-848 consumer groups and KIP-932 share groups: the broker sets the heartbeat interval, and a
            # member learns of a new target assignment only at its next heartbeat: 1 s instead of 5 s, as
            # fast as the classic-protocol clients here heartbeat (04b_consumer_groups compares them)
            "group.consumer.heartbeat.interval.ms": 1000,
            "group.consumer.min.heartbeat.interval.ms": 1000,
            "group.share.heartbeat.interval.ms": 1000,
            "group.share.min.heartbeat.interval.ms": 1000,
            # a broker restarted after a crash (kill -9) cannot register again until its old session
            # expires (DuplicateBrokerRegistrationException): 4 s instead of 9 s, heartbeats every second
            "broker.session.timeout.ms": 4000,
            "broker.heartbeat.interval.ms": 1000,
            "num.network.threads": 2,
            "num.io.threads": 2,
            "background.threads": 2,
            "num.recovery.threads.per.data.dir": 1,
            "log.cleaner.dedupe.buffer.size": 16777216,
            "log.cleaner.backoff.ms": 1000,   # 15 s by default: compaction is watched within a cell
            "log.retention.check.interval.ms": 1000,   # 5 min by default: so is retention,
            "log.initial.task.delay.ms": 1000,          # whose first check waits 30 s after start by default
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
        """Information (ready, already running, another port): a notebook shows stdout as plain output,
        stderr as an error box."""
        self.out.write(f"kafkalab: {msg}\n")
        self.out.flush()

    @staticmethod
    def _warn(msg: str) -> None:
        """Something went wrong that the learner may need to know of (a forced kill, a lost cache)."""
        sys.stderr.write(f"kafkalab: {msg}\n")
        sys.stderr.flush()

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
        """`kafka-storage format`, or a copy of what it wrote last time.

        Without format arguments (SCRAM users), format's output is the same for every data dir of a
        Kafka version (the bootstrap metadata snapshot) except meta.properties' ids: copying it and
        writing new ids saves a JVM start, about 1-1.5 s of every first `up` (bench/broker_startup.py)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        template = cache_root() / "format" / f"kafka-{KAFKA_VERSION}"
        usable = not self.format_args() and not os.environ.get("KAFKA_HOME")   # the locked jars' format only
        if usable and (template / "__cluster_metadata-0" / BOOTSTRAP_SNAPSHOT).exists():
            for item in template.iterdir():
                if item.is_dir():
                    shutil.copytree(item, self.data_dir / item.name, dirs_exist_ok=True)
            (self.data_dir / "meta.properties").write_text(
                f"node.id={self.node_id}\ndirectory.id={new_cluster_id()}\nversion=1\ncluster.id={cluster_id}\n")
        else:
            cache = jvmcache.plan(java, jars, self.jvm_opts, train=False)
            done = self._run_format(java, jars, cluster_id, cache)
            if done.returncode != 0 and jvmcache.check_log(cache, done.stdout + done.stderr, crashed=True):
                done = self._run_format(java, jars, cluster_id, None)     # it crashed on the cache: without
            if done.returncode != 0:
                raise BrokerError("formatting the data dir failed:\n"
                                  + (done.stdout + done.stderr).strip()[-2000:])
            if usable:
                _save_template(self.data_dir, template)
        (self.data_dir / ".kafkalab-version").write_text(KAFKA_VERSION + "\n")

    def _run_format(self, java: Java, jars: list[Path], cluster_id: str, cache) -> subprocess.CompletedProcess:
        cmd = self._java_cmd(java, jars, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                             "-c", str(self.config_file), "--ignore-formatted", *self.format_args(),
                             extra=cache.flags if cache else [])
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    def up(self, timeout: float = 90.0) -> dict:
        """Start (or find running) and return only once a produce/consume round trip works."""
        t0 = time.monotonic()
        state = self.state()
        if state and self.alive(state):
            self._say(f"broker already running (pid {state.pid}) at 127.0.0.1:{state.port}")
            self.wait_ready(state, timeout)
            return self.status()
        java, jars = find_java(), classpath(stream=self.out)
        cluster_id = state.cluster_id if state and state.cluster_id else new_cluster_id()
        for attempt in (1, 2):
            started = time.monotonic()
            proc, state = self.launch(java, jars, *self._choose_ports(state), cluster_id)
            cache = jvmcache.Plan.from_json(state.extra.get("jvm_cache"))
            try:
                self.wait_ready(state, timeout - (started - t0 if attempt == 1 else 0), proc=proc)
                break
            except BrokerError:
                exited = proc.poll() is not None
                if not exited:
                    self._signal(proc.pid, signal.SIGKILL)
                    proc.wait(10)
                jvmcache.discard(cache)
                # a JVM that crashed on a corrupt cache (Java 17 does, on a truncated archive): once more without
                if attempt == 2 or not exited or not self.check_cache(cache, crashed=True):
                    raise
        self.check_cache(cache)
        self._say(f"Apache Kafka {KAFKA_VERSION} ready at 127.0.0.1:{state.port} "
                  f"(pid {proc.pid}, {java}) in {time.monotonic() - t0:.1f} s")
        return self.status()

    def check_cache(self, cache: jvmcache.Plan | None, crashed: bool = False) -> bool:
        """Delete a start-up cache this start's log says the JVM could not use (it ran, or crashed, without it)."""
        if jvmcache.check_log(cache, "\n".join(self.start_log()), crashed):
            self._warn(f"the JVM could not use its start-up cache {cache.cache.name} (stale or corrupt): "
                       "deleted; a fresh one is made after the next clean stop")
            return True
        return False

    def launch(self, java: Java, jars: list[Path], port: int, cport: int,
               cluster_id: str) -> tuple[subprocess.Popen, State]:
        """Configure, format if new, and start the JVM; readiness is the caller's to wait for."""
        self._preflight()
        self.prepare()
        self.config_file.write_text(self.render_config(port, cport))
        (self.dir / "log4j2.properties").write_text(LOG4J2)
        if not (self.data_dir / "meta.properties").exists():
            self._format(java, jars, cluster_id)
        cache = jvmcache.plan(java, jars, self.jvm_opts)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"\n=== kafkalab up {time.strftime('%Y-%m-%dT%H:%M:%S')} ===\n".encode())
            log.flush()
            proc = subprocess.Popen(
                self._java_cmd(java, jars, "kafka.Kafka", str(self.config_file), extra=cache.flags if cache else []),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.dir)
        state = State(port=port, controller_port=cport, pid=proc.pid, cluster_id=cluster_id,
                      java=str(java), started_at=time.time(),
                      extra={"jvm_cache": cache.to_json() if cache else None})
        self._save(state)
        return proc, state

    def wait_ready(self, state: State, timeout: float, proc: subprocess.Popen | None = None) -> float:
        """Alive, then TCP, then describe_cluster, then a produce + consume round trip."""
        t0 = time.monotonic()
        deadline = t0 + max(timeout, 1.0)
        bootstrap = f"127.0.0.1:{state.port}"
        last_error = "no answer yet"
        import kafka.admin  # noqa: F401  (0.3 s: imported while the JVM starts, not after its port opens)

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
            # a refused connection costs nothing: look often, the port opens when the broker is ready
            wait_until(ready, max(timeout, 1.0), interval=0.02, what="the broker to be ready")
        except TimeoutError:
            raise BrokerError(self.diagnose(f"the broker was not ready after {timeout:.0f} s "
                                            f"(last error: {last_error})")) from None
        return time.monotonic() - t0

    def start_log(self, lines: int = 400) -> list[str]:
        """The broker log since the last `up` (at most `lines` lines)."""
        tail = self.log_tail(lines)
        starts = [i for i, line in enumerate(tail) if line.startswith("=== kafkalab up")]
        return tail[starts[-1] + 1:] if starts else tail

    def diagnose(self, headline: str, lines: int = 25) -> str:
        tail = self.start_log()[-lines:]
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
            wait_until(lambda: self.gone(state), timeout, interval=0.1, what="the broker to exit")
            self.collect(state)
        except TimeoutError:
            self._warn(f"broker did not stop in {timeout:.0f} s; killing pid {state.pid}")
            self.kill()
        _reap(state.pid)
        return True

    def collect(self, state: State) -> None:
        """After a clean exit: publish (or start building) the JVM's start-up cache, and reap the process."""
        try:
            jvmcache.adopt(jvmcache.Plan.from_json(state.extra.get("jvm_cache")))
        except OSError as e:            # a full or read-only cache: the broker did stop; only the cache is lost
            self._warn(f"could not keep the JVM start-up cache: {e}")
        _reap(state.pid)

    def kill(self) -> bool:
        """SIGKILL, as a crash would: for recovery experiments."""
        state = self.state()
        if not state or not self.alive(state):
            return False
        self._signal(state.pid, signal.SIGKILL)

        def gone() -> bool:
            _reap(state.pid)
            return self.gone(state)

        wait_until(gone, 10, what=f"the killed broker (pid {state.pid}) to exit")
        jvmcache.discard(jvmcache.Plan.from_json(state.extra.get("jvm_cache")))
        return True

    def reset(self) -> None:
        """Stop the broker and wipe its data, config and state."""
        self.down()
        if self.dir.exists():
            shutil.rmtree(self.dir)


def _save_template(data_dir: Path, template: Path) -> None:
    """Keep a just-formatted data dir's metadata (not its ids) for the next format to copy."""
    tmp = template.with_name(f"{template.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        shutil.copytree(data_dir, tmp, ignore=shutil.ignore_patterns(".kafkalab-version"))
        os.replace(tmp, template)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)   # another broker saved it first, or the cache is read-only


def _freed(port: int, wait: float = 3.0) -> bool:
    """The port is free, or becomes free within `wait` s (a broker stopped a moment ago may still hold it)."""
    try:
        return wait_until(lambda: port_free(port), wait, interval=0.05, what=f"port {port} to be free")
    except TimeoutError:
        return False


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
    """describe_cluster sees a broker, then one record is produced (acks=all) and fetched back.

    All through one admin client's connections: a KafkaProducer and a KafkaConsumer would each
    bootstrap again, about 0.4 s of a start's 1-2 s. The produce and fetch requests are kafka-python's
    own, sent as kafkalab.read sends its fetches (tests/unit/test_compat.py pins the version)."""
    from kafka import KafkaAdminClient
    from kafka.protocol.consumer.fetch import FetchRequest
    from kafka.protocol.producer.produce import ProduceRequest
    from kafka.record.memory_records import MemoryRecordsBuilder
    from kafka.errors import for_code

    ms = int(timeout_s * 1000)
    token = uuid.uuid4().hex.encode()
    with KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=ms,
                          request_timeout_ms=min(ms, 10000), **security) as admin:
        cluster = admin.describe_cluster()
        if not cluster.get("brokers"):
            raise BrokerError(f"describe_cluster lists no broker: {cluster}")
        described = admin.describe_topics([topic])[0]
        if described["error_code"]:         # a new data dir: make the topic (a restart has it)
            admin.create_topics({topic: {"num_partitions": 1, "replication_factor": replication_factor}},
                                raise_errors=False, wait_for_metadata=True)
            described = admin.describe_topics([topic])[0]
        leader = described["partitions"][0]["leader_id"]
        if leader < 0:                      # elected in a moment: the caller retries
            raise BrokerError(f"{topic} has no leader yet")
        batch = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1024)
        batch.append(int(time.time() * 1000), None, token)
        batch.close()
        produce = ProduceRequest(acks=-1, timeout_ms=min(ms, 10000), transactional_id=None, topic_data=[
            ProduceRequest.TopicProduceData(name=topic, partition_data=[
                ProduceRequest.TopicProduceData.PartitionProduceData(index=0, records=batch.buffer())])],
            min_version=3, max_version=9)

        def send(request):
            async def go():
                return await admin._manager.send(request, node_id=leader, request_timeout_ms=min(ms, 10000))
            return admin._manager.run(go)

        part = send(produce).responses[0].partition_responses[0]
        if part.error_code:
            raise for_code(part.error_code)(f"producing the health record to {topic}")
        fetch = FetchRequest(
            max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0, session_id=0, session_epoch=-1,
            forgotten_topics_data=[], rack_id="", topics=[FetchRequest.FetchTopic(topic=topic, partitions=[
                FetchRequest.FetchTopic.FetchPartition(
                    partition=0, current_leader_epoch=-1, fetch_offset=part.base_offset, last_fetched_epoch=-1,
                    partition_max_bytes=1 << 20)])],
            min_version=4, max_version=12)
        got = send(fetch).responses[0].partitions[0]
        if got.error_code:
            raise for_code(got.error_code)(f"fetching the health record from {topic}")
        if token not in bytes(got.records or b""):
            raise BrokerError("produced a record but could not fetch it back")
