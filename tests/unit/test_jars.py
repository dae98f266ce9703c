import json
import re

import pytest

from kafkalab.broker import jars


def test_lock_pins_every_kafka_module_to_one_version():
    locked = jars.read_lock()
    kafka = [d for d in locked if d.group == "org.apache.kafka"]
    assert {d.artifact for d in kafka} >= {"kafka_2.13", "kafka-clients", "kafka-server",
                                          "kafka-raft", "kafka-storage", "kafka-tools"}
    # jgo's pure-Python resolver mediated kafka-clients to 3.9.1 here: never again.
    assert {d.version for d in kafka} == {jars.KAFKA_VERSION}


def test_lock_has_the_logging_binding_and_one_version_per_artifact():
    locked = jars.read_lock()
    names = [(d.group, d.artifact) for d in locked]
    assert len(names) == len(set(names))
    assert ("org.apache.logging.log4j", "log4j-slf4j-impl") in names
    assert ("org.apache.logging.log4j", "log4j-core") in names
    assert all(re.fullmatch(r"[0-9a-f]{64}", d.sha256) for d in locked)


def test_lock_for_another_version_is_refused(tmp_path):
    data = json.loads(jars.lock_path().read_text())
    data["kafka_version"] = "3.9.0"
    other = tmp_path / "other.lock.json"
    other.write_text(json.dumps(data))
    with pytest.raises(jars.JarsError, match="3.9.0"):
        jars.read_lock(other)


def test_kafka_home_must_look_like_a_distribution(tmp_path, monkeypatch):
    monkeypatch.setenv("KAFKA_HOME", str(tmp_path))
    with pytest.raises(jars.JarsError, match="not an Apache Kafka distribution"):
        jars.classpath()
    (tmp_path / "libs").mkdir()
    for name in ("kafka_2.13-4.4.0.jar", "kafka-clients-4.4.0.jar"):
        (tmp_path / "libs" / name).write_bytes(b"PK")
    assert [p.name for p in jars.classpath()] == ["kafka-clients-4.4.0.jar", "kafka_2.13-4.4.0.jar"]


def test_a_tampered_jar_is_refused(tmp_path, monkeypatch):
    """The cache is checked against the lock, so a corrupt download cannot run."""
    monkeypatch.delenv("KAFKA_HOME", raising=False)
    monkeypatch.setenv("M2_REPO", str(tmp_path))
    dep = jars.read_lock()[0]
    target = tmp_path.joinpath(*dep.group.split("."), dep.artifact, dep.version, dep.filename)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not the real jar")
    monkeypatch.setattr(jars, "read_lock", lambda: [dep])
    with pytest.raises(jars.JarsError, match="does not match the locked sha256"):
        jars.classpath()


def test_verified_jars_are_not_hashed_again_until_one_changes(tmp_path, monkeypatch):
    monkeypatch.delenv("KAFKA_HOME", raising=False)
    monkeypatch.setenv("M2_REPO", str(tmp_path / "m2"))
    monkeypatch.setenv("KAFKALAB_CACHE_DIR", str(tmp_path / "cache"))
    dep = jars.read_lock()[0]
    target = tmp_path.joinpath("m2", *dep.group.split("."), dep.artifact, dep.version, dep.filename)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"a jar")
    dep = jars.Locked(dep.group, dep.artifact, dep.version, jars._sha256(target))
    monkeypatch.setattr(jars, "read_lock", lambda: [dep])
    assert jars.classpath() == [target]

    sha256 = jars._sha256

    def no_hashing(path):
        raise AssertionError(f"hashed {path} again although it did not change")
    monkeypatch.setattr(jars, "_sha256", no_hashing)
    assert jars.classpath() == [target]
    monkeypatch.setattr(jars, "_sha256", sha256)
    target.write_bytes(b"a tampered jar")            # a new size: checked again, and refused
    with pytest.raises(jars.JarsError, match="does not match the locked sha256"):
        jars.classpath()
