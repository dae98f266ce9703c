"""`kafkalab doctor`: what a workshop laptop needs, checked, with the fix for each problem."""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .broker.jars import KAFKA_VERSION, JarsError, read_lock
from .broker.java import JavaError, find_java
from .broker.local import (DEFAULT_CONTROLLER_PORT, DEFAULT_PORT, BrokerError, LocalBroker,
                           port_free, reachable)

MIN_DISK_GB = 1.0
MIN_MEMORY_GB = 2.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warn: bool = False      # worth knowing, not a problem


def _memory_available_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        return None
    return None


def run_checks(home: Path | None = None) -> list[Check]:
    checks = []
    py = sys.version_info
    checks.append(Check("Python", py >= (3, 10), f"{py.major}.{py.minor}.{py.micro}",
                        "install Python 3.10 or newer and run `make lab` again"))
    try:
        java = find_java()
        checks.append(Check("Java", True, str(java)))
    except JavaError as e:
        checks.append(Check("Java", False, str(e).splitlines()[0], "\n".join(str(e).splitlines()[1:])))
    broker = LocalBroker(home=home)
    try:
        state = broker.state()
        running = broker.alive(state)
    except BrokerError as e:
        state, running = None, False
        checks.append(Check("lab state", False, str(e), "kafkalab reset --yes"))
    for port, what in ((DEFAULT_PORT, "client"), (DEFAULT_CONTROLLER_PORT, "controller")):
        ours = running and state and port in (state.port, state.controller_port)
        free = port_free(port)
        checks.append(Check(f"port {port} ({what})", True,
                            "used by the lab broker" if ours else ("free" if free else
                            "taken by another program: `kafkalab up` will pick a free port instead"),
                            warn=not (free or ours)))
    broker.dir.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(broker.dir).free / 2**30
    checks.append(Check("disk", free_gb >= MIN_DISK_GB, f"{free_gb:.1f} GB free under {broker.dir}",
                        f"free at least {MIN_DISK_GB:g} GB, or set KAFKALAB_HOME to a roomier disk"))
    mem = _memory_available_gb()
    if mem is not None:
        checks.append(Check("memory", mem >= MIN_MEMORY_GB, f"{mem:.1f} GB available",
                            "close other programs: the broker takes up to 768 MB, JupyterLab ~300 MB"))
    try:
        lock = read_lock()
        checks.append(Check("Kafka jars", True, f"Apache Kafka {KAFKA_VERSION}, {len(lock)} jars locked"
                            + ("; KAFKA_HOME=" + os.environ["KAFKA_HOME"] if os.environ.get("KAFKA_HOME") else "")))
    except (JarsError, OSError, ValueError) as e:
        checks.append(Check("Kafka jars", False, str(e), "reinstall kafkalab (`make setup`)"))
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if env:
        ok = reachable(env, 3.0)
        checks.append(Check("broker", ok, f"KAFKA_BOOTSTRAP_SERVERS={env} " + ("answers" if ok else "does not answer"),
                            "check the address, the VPN or proxy, "
                            "or unset KAFKA_BOOTSTRAP_SERVERS to use the lab broker"))
    elif running:
        ok = reachable(f"127.0.0.1:{state.port}", 3.0)
        checks.append(Check("broker", ok, f"lab broker pid {state.pid} on 127.0.0.1:{state.port}",
                            "kafkalab logs; then kafkalab down && kafkalab up"))
    else:
        checks.append(Check("broker", True, "not running (fine: `kafkalab up` or `make lab` starts it)"))
    return checks


def report(checks: list[Check], out=sys.stdout) -> int:
    for c in checks:
        mark = "BAD" if not c.ok else ("warn" if c.warn else "ok")
        out.write(f"{mark:<4} {c.name:<22} {c.detail}\n")
        if not c.ok and c.fix:
            for line in c.fix.splitlines():
                out.write(f"       fix: {line}\n")
    bad = sum(not c.ok for c in checks)
    out.write(f"\n{len(checks) - bad} ok, {bad} to fix\n")
    return 1 if bad else 0
