"""Broker start-up: `kafkalab up` vs the same jars and config launched by hand (java ... kafka.Kafka).

Each figure is the median of N runs, measured to a working produce + consume round trip:
  cold:    a fresh data dir (format + start), jars already cached
  restart: existing data (start only)
Run: .venv/bin/python bench/broker_startup.py [--runs 5] [--variants]
(`make bench`). kafkalab's class-data-sharing archive is made by a warm-up run first.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.simplefilter("ignore", DeprecationWarning)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafkalab.broker.jars import classpath  # noqa: E402
from kafkalab.broker.java import find_java  # noqa: E402
from kafkalab.broker.local import JVM_OPTS, LocalBroker, free_port, reachable, round_trip  # noqa: E402


class Quiet:
    def write(self, _):
        pass

    def flush(self):
        pass


def ready(bootstrap: str, t0: float, proc=None, timeout: float = 120) -> float:
    while time.monotonic() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("the broker exited")
        if reachable(bootstrap, 0.5):
            try:
                round_trip(bootstrap, timeout_s=30)
                return time.monotonic() - t0
            except Exception:  # not ready yet: try again until the timeout
                pass
        time.sleep(0.05)
    raise RuntimeError("not ready in time")


def kafkalab_run(home: Path, jvm_opts) -> tuple[float, float]:
    broker = LocalBroker(home=home, port=0, jvm_opts=jvm_opts, out=Quiet())
    t0 = time.monotonic()
    broker.up()
    cold = time.monotonic() - t0
    broker.down()
    broker.requested_port = None
    t0 = time.monotonic()
    broker.up()
    restart = time.monotonic() - t0
    broker.down()
    return cold, restart


def bare_run(home: Path, java, jars) -> tuple[float, float]:
    """What a user would type by hand: StorageTool format, then kafka.Kafka, Kafka's default flags."""
    template = LocalBroker(home=home, port=0)
    port, cport = free_port(), free_port()
    template.dir.mkdir(parents=True)
    template.config_file.write_text(template.render_config(port, cport))
    cp = os.pathsep.join(map(str, jars))
    flags = ["-Xmx1G", "-Xms1G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
             "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
             "-Djava.awt.headless=true"]
    log = open(template.dir / "bare.log", "wb")

    def start():
        return subprocess.Popen([str(java.path), *flags, "-cp", cp, "kafka.Kafka",
                                 str(template.config_file)], stdout=log, stderr=log)

    t0 = time.monotonic()
    subprocess.run([str(java.path), *flags, "-cp", cp, "kafka.tools.StorageTool", "format",
                    "-t", "bench-cluster-0000000000", "-c", str(template.config_file)],
                   check=True, capture_output=True)
    proc = start()
    cold = ready(f"127.0.0.1:{port}", t0, proc)
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    t0 = time.monotonic()
    proc = start()
    restart = ready(f"127.0.0.1:{port}", t0, proc)
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    log.close()
    return cold, restart


def median_of(n, fn, *args):
    runs = []
    for _ in range(n):
        home = Path(tempfile.mkdtemp(prefix="kafkalab-bench-"))
        try:
            runs.append(fn(home, *args))
        finally:
            shutil.rmtree(home, ignore_errors=True)
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--variants", action="store_true", help="also try other JVM settings")
    args = ap.parse_args()
    java, jars = find_java(), classpath()
    print(f"{java}; {len(jars)} jars; {os.cpu_count()} cores; median of {args.runs}\n")
    median_of(1, kafkalab_run, JVM_OPTS)  # warm-up: makes the class-data-sharing archive if missing
    rows = [("bare java kafka.Kafka (Kafka's default flags)", median_of(args.runs, bare_run, java, jars)),
            ("kafkalab up (CDS archive, 256-768 MB heap, G1)", median_of(args.runs, kafkalab_run, JVM_OPTS))]
    os.environ["KAFKALAB_CDS"] = "0"
    rows.append(("kafkalab up without CDS", median_of(args.runs, kafkalab_run, JVM_OPTS)))
    if args.variants:
        heap = ["-Xms256m", "-Xmx768m"]
        for name, opts in [
            ("  without CDS, SerialGC", heap + ["-XX:+UseSerialGC"]),
            ("  without CDS, G1 + C1 only", heap + ["-XX:+UseG1GC", "-XX:TieredStopAtLevel=1"]),
            ("  without CDS, G1, 1 GB heap", ["-Xms1G", "-Xmx1G", "-XX:+UseG1GC"]),
        ]:
            rows.append((name, median_of(args.runs, kafkalab_run, opts)))
    bare_cold, bare_restart = rows[0][1]
    print(f"{'launch':<48} {'cold s':>7} {'restart s':>9} {'cold/bare':>9} {'restart/bare':>12}")
    for name, (cold, restart) in rows:
        print(f"{name:<48} {cold:7.2f} {restart:9.2f} {cold / bare_cold:9.2f} {restart / bare_restart:12.2f}")


if __name__ == "__main__":
    main()
