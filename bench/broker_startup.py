"""Broker start-up: the whole `kafkalab up` command on each Java and cache, against the same jars and
config launched by hand (java ... kafka.Kafka), measured side by side in one run.

Each figure is the median of N runs, to a working produce + consume round trip:
  cold:    a new data dir (format + start), jars downloaded and verified before
  restart: existing data (start only)
kafkalab rows time the command itself (`kafkalab up`, a new Python process, until it returns); the bare
row times from launching the JVM until a probe's round trip succeeds. Every kafkalab row has its own
cache directory, made by a warm-up run first (the JVM start-up cache is built after a clean stop).

Run: .venv/bin/python bench/broker_startup.py [--runs 5] [--skip-levers] [--skip-cluster]   (`make bench`)
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafkalab.broker import jvmcache  # noqa: E402
from kafkalab.broker.jars import classpath  # noqa: E402
from kafkalab.broker.java import Java, _version, bundled_java  # noqa: E402
from kafkalab.broker.local import LocalBroker, free_port, reachable, round_trip  # noqa: E402

BENCH = Path(tempfile.mkdtemp(prefix="kafkalab-bench-"))


def system_java17() -> Java | None:
    """A Java 17-23 of the machine (JAVA17 env, else /usr/lib/jvm, else PATH), for the CDS and bare rows."""
    candidates = [os.environ.get("JAVA17", "")] + sorted(glob.glob("/usr/lib/jvm/*17*/bin/java"))
    candidates.append(shutil.which("java") or "")
    for c in filter(None, candidates):
        try:
            major, full = _version(Path(c))
        except Exception:  # not a java: try the next candidate
            continue
        if 17 <= major < 24:
            return Java(Path(c), major, "system", full)
    return None


def env_for(name: str, java: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "KAFKALAB_JVM_OPTS", "KAFKALAB_JVM_CACHE")}
    return {**env, "KAFKALAB_JAVA": str(java), "KAFKALAB_CACHE_DIR": str(BENCH / "cache" / name), **extra}


def kafkalab(home: Path, env: dict, *args: str) -> float:
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "kafkalab.cli", "--home", str(home), *args], env=env,
                          capture_output=True, text=True, timeout=180)
    if done.returncode:
        raise RuntimeError(f"kafkalab {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.monotonic() - t0


def settle(env: dict) -> None:
    """Wait for a JVM cache build the last clean stop started (it would compete with the next start)."""
    old = os.environ.get("KAFKALAB_CACHE_DIR")
    os.environ["KAFKALAB_CACHE_DIR"] = env["KAFKALAB_CACHE_DIR"]
    try:
        jvmcache.wait_for_builds(300)
    finally:
        os.environ["KAFKALAB_CACHE_DIR"] = old or ""
        if old is None:
            del os.environ["KAFKALAB_CACHE_DIR"]


def kafkalab_row(name: str, env: dict, runs: int, profile: str = "single", before=lambda: None):
    """Medians of `kafkalab up` cold (new home each time) and on restart (one home)."""
    port = ["--port", "0"] if profile != "cluster" else []
    prof = ["--profile", profile]
    slug = Path(env["KAFKALAB_CACHE_DIR"]).name + f"-{profile}-{abs(hash(name)) % 10**6}"
    warm = BENCH / f"{slug}-warm"
    kafkalab(warm, env, "up", *prof, *port)       # downloads nothing new; trains the JVM cache
    kafkalab(warm, env, "down", *prof)
    settle(env)
    shutil.rmtree(warm, ignore_errors=True)
    cold, restart = [], []
    for i in range(runs):
        home = BENCH / f"{slug}-cold-{i}"
        before()
        cold.append(kafkalab(home, env, "up", *prof, *port))
        kafkalab(home, env, "down", *prof)
        settle(env)
        shutil.rmtree(home, ignore_errors=True)
    home = BENCH / f"{slug}-restart"
    kafkalab(home, env, "up", *prof, *port)
    for _ in range(runs):
        kafkalab(home, env, "down", *prof)
        settle(env)
        before()
        restart.append(kafkalab(home, env, "up", *prof))
    kafkalab(home, env, "down", *prof)
    settle(env)
    shutil.rmtree(home, ignore_errors=True)
    return name, statistics.median(cold), statistics.median(restart)


def probe(bootstrap: str, t0: float, proc) -> float:
    while time.monotonic() - t0 < 120:
        if proc.poll() is not None:
            raise RuntimeError("the broker exited")
        if reachable(bootstrap, 0.5):
            try:
                round_trip(bootstrap, timeout_s=30)
                return time.monotonic() - t0
            except Exception:  # not ready yet: try again until the timeout
                pass
        time.sleep(0.02)
    raise RuntimeError("not ready in time")


def bare_row(java: Java, runs: int):
    """What a user would type by hand: StorageTool format, then kafka.Kafka, Kafka's default flags."""
    jars = classpath()
    cp = os.pathsep.join(map(str, jars))
    flags = ["-Xmx1G", "-Xms1G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
             "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
             "-Djava.awt.headless=true"]
    cold, restart = [], []
    for i in range(runs):
        home = BENCH / f"bare-{i}"
        template = LocalBroker(home=home, port=0)
        port, cport = free_port(), free_port()
        template.dir.mkdir(parents=True)
        template.config_file.write_text(template.render_config(port, cport))
        log = open(template.dir / "bare.log", "wb")

        def start():
            return subprocess.Popen([str(java.path), *flags, "-cp", cp, "kafka.Kafka", str(template.config_file)],
                                    stdout=log, stderr=log)

        t0 = time.monotonic()
        subprocess.run([str(java.path), *flags, "-cp", cp, "kafka.tools.StorageTool", "format",
                        "-t", "bench-cluster-0000000000", "-c", str(template.config_file)],
                       check=True, capture_output=True)
        proc = start()
        cold.append(probe(f"127.0.0.1:{port}", t0, proc))
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        t0 = time.monotonic()
        proc = start()
        restart.append(probe(f"127.0.0.1:{port}", t0, proc))
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        log.close()
        shutil.rmtree(home, ignore_errors=True)
    return f"bare java kafka.Kafka, Java {java.full_version}", statistics.median(cold), statistics.median(restart)


def table(rows, base) -> None:
    print(f"\n{'launch':<58} {'cold s':>7} {'restart s':>9} {'cold/base':>9} {'restart/base':>12}")
    for name, cold, restart in rows:
        print(f"{name:<58} {cold:7.2f} {restart:9.2f} {cold / base[1]:9.2f} {restart / base[2]:12.2f}")


def small_levers(home: Path, java: Path) -> None:
    """Python-side costs of a start, measured directly (best of 5)."""
    def best(fn, n=5):
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    from kafkalab.broker import jars
    check = [sys.executable, "-c", "from kafkalab.broker.jars import classpath; classpath()"]   # as `up` does
    hashed = best(lambda: ([s.unlink() for s in jars.cache_root().glob("jars-*.json")],
                           subprocess.run(check, check=True)))
    stamped = best(lambda: subprocess.run(check, check=True))
    bare = best(lambda: subprocess.run([sys.executable, "-c", "import kafkalab.broker.jars"], check=True))
    hashed, stamped = hashed - bare, stamped - bare
    version = best(lambda: subprocess.run([str(java), "-version"], capture_output=True))
    release = best(lambda: _version(java))
    broker = LocalBroker(home=home, port=0)
    broker.up()
    try:
        lean = best(lambda: round_trip(broker.bootstrap))
        clients = best(lambda: clients_round_trip(broker.bootstrap))
    finally:
        broker.down()
    print("\nPython-side costs of one start (best of 5; the jar check in a new process, less its imports):")
    print(f"  jars: jgo + sha256 of 92 jars        {hashed:6.3f} s   stamp checked (size, mtime)   {stamped:6.3f} s")
    print(f"  Java version: `java -version`        {version:6.3f} s   the JDK's release file        {release:6.3f} s")
    print(f"  readiness: producer + consumer      {clients:6.3f} s   one admin client's requests   {lean:6.3f} s")


def clients_round_trip(bootstrap: str) -> None:
    """The readiness check kafkalab used before: an admin client, a KafkaProducer and a KafkaConsumer."""
    import uuid

    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    with KafkaAdminClient(bootstrap_servers=bootstrap) as admin:
        admin.describe_cluster()
        admin.create_topics({"_kafkalab_health": {"num_partitions": 1, "replication_factor": 1}},
                            raise_errors=False, wait_for_metadata=True)
    token = uuid.uuid4().hex.encode()
    with KafkaProducer(bootstrap_servers=bootstrap) as producer:
        meta = producer.send("_kafkalab_health", token).get(timeout=15)
    tp = TopicPartition("_kafkalab_health", meta.partition)
    with KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False) as consumer:
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        deadline = time.monotonic() + 15
        while not any(r.value == token for rs in consumer.poll(timeout_ms=500).values() for r in rs):
            if time.monotonic() > deadline:
                raise RuntimeError("the record did not come back")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-levers", action="store_true", help="only the main rows")
    ap.add_argument("--skip-cluster", action="store_true", help="no three-node cluster rows")
    args = ap.parse_args()
    bundled, j17 = bundled_java(), system_java17()
    jars = classpath()
    print(f"{len(jars)} jars; {os.cpu_count()} cores; median of {args.runs}; bundled: "
          f"{_version(bundled)[1] if bundled else 'none'}; system: {j17.full_version if j17 else 'none'}")
    rows = []
    if j17:
        rows.append(bare_row(j17, args.runs))
        rows.append(kafkalab_row(f"kafkalab up, Java {j17.full_version} + CDS", env_for("j17", j17.path), args.runs))
    if bundled:
        j25 = env_for("j25", bundled)
        rows.append(kafkalab_row(f"kafkalab up, bundled Java {_version(bundled)[1]} + AOT cache", j25, args.runs))
        rows.append(kafkalab_row("  without the AOT cache", env_for("j25-plain", bundled, KAFKALAB_JVM_CACHE="0"),
                                 args.runs))
        if not args.skip_levers:
            rows.append(kafkalab_row("  with the full JIT (C2), AOT cache", env_for(
                "j25-c2", bundled, KAFKALAB_JVM_OPTS="-XX:TieredStopAtLevel=4"), args.runs))
            formats = BENCH / "cache" / "j25" / "format"
            rows.append(kafkalab_row("  with a format JVM (no template), AOT cache", j25, args.runs,
                                     before=lambda: shutil.rmtree(formats, ignore_errors=True)))
    table(rows, rows[0])
    if bundled and not args.skip_cluster:
        runs = max(1, min(3, args.runs))
        cluster = [kafkalab_row(f"kafkalab up --profile cluster, bundled Java, median of {runs}", j25, runs,
                                profile="cluster")]
        table(cluster, cluster[0])
    if bundled and not args.skip_levers:
        os.environ.update(KAFKALAB_CACHE_DIR=str(BENCH / "cache" / "j25"), KAFKALAB_JAVA=str(bundled))
        small_levers(BENCH / "levers", bundled)
    shutil.rmtree(BENCH, ignore_errors=True)


if __name__ == "__main__":
    main()
