"""Find a Java 17+ runtime: Kafka 4.x refuses anything older."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

MIN_JAVA = 17

INSTALL_HINT = (
    "Install a Java 17+ runtime, then run the command again:\n"
    "  Debian/Ubuntu:  sudo apt-get install -y openjdk-17-jre-headless\n"
    "  Fedora/RHEL:    sudo dnf install -y java-17-openjdk-headless\n"
    "  macOS:          brew install openjdk@17\n"
    "  conda:          conda install -c conda-forge 'openjdk>=17'\n"
    "or set JAVA_HOME to an existing JDK 17+."
)


class JavaError(RuntimeError):
    """No usable Java runtime."""


@dataclass(frozen=True)
class Java:
    path: Path
    version: int

    def __str__(self) -> str:
        return f"Java {self.version} ({self.path})"


def _major(java: Path) -> int:
    out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        raise JavaError(f"cannot read the version of {java}: {out.stderr.strip()[:200]}")
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 else major  # "1.8.0" is Java 8


def find_java() -> Java:
    """JAVA_HOME wins, then `java` on PATH; either must be 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        if not candidate.exists():
            raise JavaError(f"JAVA_HOME={home} has no bin/java.\n{INSTALL_HINT}")
        source = "JAVA_HOME"
    else:
        found = shutil.which("java")
        if not found:
            raise JavaError(f"No Java runtime found (JAVA_HOME unset, no java on PATH).\n{INSTALL_HINT}")
        candidate, source = Path(found), "PATH"
    version = _major(candidate)
    if version < MIN_JAVA:
        raise JavaError(f"Java too old: {candidate} (from {source}) is Java {version}; "
                        f"Apache Kafka 4 needs Java {MIN_JAVA}+.\n{INSTALL_HINT}")
    return Java(candidate, version)
