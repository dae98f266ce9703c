"""The Apache Kafka jars: a committed lock, fetched once per user, verified by sha256.

Resolution (which versions) happens once, at lock time, with jgo driving Maven's own
mediation: jgo's pure-Python resolver picks kafka-clients 3.9.1 for Kafka 4.4.0, which
would not run. Users then only download the exact locked artifacts (jgo, pure Python,
no Maven needed) into the shared Maven cache (~/.m2/repository or $M2_REPO).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

KAFKA_VERSION = "4.4.0"
LOG4J_VERSION = "2.25.5"  # the log4j2 release Kafka 4.4.0 itself depends on
ROOTS = (
    f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}",
    f"org.apache.kafka:kafka-tools:{KAFKA_VERSION}",
    # Kafka logs through slf4j 1.x; the binding ships only in Apache's tarball.
    f"org.apache.logging.log4j:log4j-slf4j-impl:{LOG4J_VERSION}",
)
LOCK_NAME = f"kafka-{KAFKA_VERSION}.lock.json"


class JarsError(RuntimeError):
    """The Kafka jars could not be provided."""


@dataclass(frozen=True)
class Locked:
    group: str
    artifact: str
    version: str
    sha256: str

    @property
    def coordinate(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}"

    @property
    def filename(self) -> str:
        return f"{self.artifact}-{self.version}.jar"


def lock_path() -> Path:
    return Path(str(resources.files("kafkalab.broker").joinpath(LOCK_NAME)))


def read_lock(path: Path | None = None) -> list[Locked]:
    data = json.loads((path or lock_path()).read_text())
    if data.get("kafka_version") != KAFKA_VERSION:
        raise JarsError(f"{path or lock_path()} locks Kafka {data.get('kafka_version')}, "
                        f"expected {KAFKA_VERSION}")
    return [Locked(**a) for a in data["artifacts"]]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _maven_context():
    from jgo.maven import MavenContext
    return MavenContext()


def _progress(i: int, n: int, name: str, stream) -> None:
    if stream.isatty():
        bar = "#" * int(30 * i / n)
        stream.write(f"\r  [{bar:<30}] {i}/{n} {name[:40]:<40}")
        if i == n:
            stream.write("\n")
    else:
        stream.write(f"  [{i}/{n}] {name}\n")
    stream.flush()


def cache_root() -> Path:
    """kafkalab's cache (KAFKALAB_CACHE_DIR, else ~/.cache/kafkalab): verified jars, JVM start-up caches."""
    if os.environ.get("KAFKALAB_CACHE_DIR"):
        return Path(os.environ["KAFKALAB_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kafkalab"


def _stamp_path(lock_text: str) -> Path:
    key = hashlib.sha256((lock_text + os.environ.get("M2_REPO", "")).encode()).hexdigest()[:16]
    return cache_root() / f"jars-{KAFKA_VERSION}-{key}.json"


def _stamped(stamp: Path) -> list[Path] | None:
    """The jars verified last time, if none changed since (size and mtime): hashing 92 jars and
    asking jgo where they are costs 0.4 s, on every `up`."""
    try:
        files = json.loads(stamp.read_text())
        paths = []
        for path, size, mtime_ns in files:
            st = os.stat(path)
            if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
                return None
            paths.append(Path(path))
        return paths
    except (OSError, ValueError, TypeError):
        return None


def _stamp(stamp: Path, paths: list[Path]) -> None:
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        tmp = stamp.with_name(f"{stamp.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps([[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in paths]))
        tmp.replace(stamp)
    except OSError as e:          # a read-only cache only costs the next start the check again
        sys.stderr.write(f"kafkalab: could not record the verified jars in {stamp}: {e}\n")


def classpath(stream=None) -> list[Path]:
    """Every locked jar, downloaded on first use and checked against the lock (the download's progress
    goes to `stream`, stdout by default: it is information, not an error)."""
    kafka_home = os.environ.get("KAFKA_HOME")
    if kafka_home:
        return _kafka_home_jars(Path(kafka_home))
    stamp = _stamp_path(lock_path().read_text())
    verified = _stamped(stamp)
    if verified is not None:
        return verified
    stream = stream or sys.stdout
    locked = read_lock()
    ctx = _maven_context()
    paths, missing = [], []
    for dep in locked:
        art = ctx.project(dep.group, dep.artifact).at_version(dep.version).artifact()
        path = art.cached_path
        if path is None or not path.exists():
            missing.append((dep, art))
        paths.append((dep, art))
    if missing:
        stream.write(f"kafkalab: downloading {len(missing)} jars for Apache Kafka {KAFKA_VERSION} "
                     f"(once; cached in {ctx.repo_cache})\n")
        for i, (dep, art) in enumerate(missing, 1):
            _progress(i, len(missing), dep.filename, stream)
            try:
                art.resolve()
            except Exception as e:  # jgo raises bare RuntimeError/requests errors
                raise JarsError(f"could not download {dep.coordinate}: {e}\n"
                                "Check the network or proxy, or point KAFKA_HOME at an "
                                "unpacked Apache Kafka distribution.") from e
    out = []
    for dep, art in paths:
        path = Path(art.cached_path)
        if not path.exists():
            raise JarsError(f"{dep.coordinate} is missing from {path}")
        if _sha256(path) != dep.sha256:
            raise JarsError(f"{path} does not match the locked sha256 of {dep.coordinate}; "
                            "delete it and run again to re-download")
        out.append(path)
    _stamp(stamp, out)
    return out


def _kafka_home_jars(home: Path) -> list[Path]:
    libs = home / "libs"
    jars = sorted(libs.glob("*.jar"))
    if not jars or not any(j.name.startswith("kafka_2.13-") for j in jars):
        raise JarsError(f"KAFKA_HOME={home} is not an Apache Kafka distribution "
                        "(no libs/kafka_2.13-*.jar)")
    return jars


def relock(out: Path | None = None) -> Path:
    """Re-resolve ROOTS with Maven's own mediation and rewrite the lock (maintainers only)."""
    import subprocess
    import tempfile

    mvn = shutil.which("mvn")
    if not mvn:
        raise JarsError("relocking needs Maven (mvn) on PATH; users of the lock do not")
    deps = "".join(
        "<dependency><groupId>{}</groupId><artifactId>{}</artifactId>"
        "<version>{}</version></dependency>".format(*root.split(":")) for root in ROOTS)
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "pom.xml").write_text(
            '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
            "<groupId>kafkalab</groupId><artifactId>broker-lock</artifactId><version>0</version>"
            f"<dependencies>{deps}</dependencies></project>")
        listing = Path(tmp, "deps.txt")
        subprocess.run([mvn, "-q", "-B", "dependency:list", "-DincludeScope=runtime",
                        f"-DoutputFile={listing}", "-DoutputAbsoluteArtifactFilename=true"],
                       cwd=tmp, check=True)
        artifacts = []
        for line in listing.read_text().splitlines():
            parts = line.strip().split(":")
            # group:artifact:jar:version:scope:/abs/path (the path may hold no ':' on POSIX)
            if len(parts) >= 6 and parts[2] == "jar":
                group, artifact, _, version, _scope, path = parts[:6]
                artifacts.append({"group": group, "artifact": artifact, "version": version,
                                  "sha256": _sha256(Path(path.split(" ")[0]))})
    out = out or lock_path()
    out.write_text(json.dumps({
        "kafka_version": KAFKA_VERSION,
        "roots": list(ROOTS),
        "resolved_by": "Maven dependency:list (runtime scope); downloaded with jgo",
        "artifacts": sorted(artifacts, key=lambda a: (a["group"], a["artifact"])),
    }, indent=1) + "\n")
    return out


if __name__ == "__main__":
    if sys.argv[1:] == ["relock"]:
        print(relock())
    else:
        sys.exit("usage: python -m kafkalab.broker.jars relock")
