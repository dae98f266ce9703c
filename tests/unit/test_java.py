import stat

import pytest

from kafkalab.broker.java import JavaError, find_java


def fake_jdk(root, version_line):
    java = root / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return root


@pytest.mark.parametrize("line, major", [
    ('openjdk version "17.0.15" 2025-04-15', 17),
    ('openjdk version "25" 2025-09-16', 25),
    ('openjdk version "21.0.2" 2024-01-16 LTS', 21),
])
def test_java_17_and_newer_is_accepted(tmp_path, monkeypatch, line, major):
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path, line)))
    assert find_java().version == major


@pytest.mark.parametrize("line", ['openjdk version "11.0.2" 2019-01-15',
                                  'java version "1.8.0_292"'])
def test_older_java_is_refused_with_install_instructions(tmp_path, monkeypatch, line):
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path, line)))
    with pytest.raises(JavaError, match="Java too old") as err:
        find_java()
    assert "openjdk-17" in str(err.value)


def test_java_home_without_java_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(JavaError, match="has no bin/java"):
        find_java()


def test_no_java_at_all_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JavaError, match="No Java runtime found") as err:
        find_java()
    assert "JAVA_HOME" in str(err.value)
