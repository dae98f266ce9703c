from pathlib import Path

from kafkalab.broker import cds
from kafkalab.broker.java import Java


def test_archive_key_changes_with_java_jars_and_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("KAFKALAB_CACHE_DIR", str(tmp_path))
    j17, j21 = Java(Path("/jdk17/bin/java"), 17), Java(Path("/jdk21/bin/java"), 21)
    jars = [Path("/m2/a.jar"), Path("/m2/b.jar")]
    base = cds.archive_for(j17, jars, ["-Xmx1G"])
    assert base == cds.archive_for(j17, list(jars), ["-Xmx1G"])
    assert base.parent == tmp_path / "cds"
    assert len({base, cds.archive_for(j21, jars, ["-Xmx1G"]), cds.archive_for(j17, jars[:1], ["-Xmx1G"]),
                cds.archive_for(j17, jars, ["-Xmx2G"])}) == 4


def test_first_run_dumps_to_a_private_file_then_it_is_published(tmp_path):
    archive = tmp_path / "cds" / "k.jsa"
    flags, pending = cds.jvm_flags(archive)
    assert flags == [f"-XX:ArchiveClassesAtExit={pending}"] and pending.parent == archive.parent
    pending.write_bytes(b"archive")
    cds.adopt(pending, archive)
    assert archive.read_bytes() == b"archive" and not pending.exists()
    assert cds.jvm_flags(archive) == ([f"-XX:SharedArchiveFile={archive}"], None)


def test_a_losing_racer_or_a_killed_dump_is_never_published(tmp_path):
    archive = tmp_path / "k.jsa"
    archive.write_bytes(b"first")
    late = tmp_path / "k.jsa.1.tmp"
    late.write_bytes(b"second")
    cds.adopt(late, archive)
    assert archive.read_bytes() == b"first" and not late.exists()
    partial = tmp_path / "k.jsa.2.tmp"
    partial.write_bytes(b"par")
    cds.discard(partial)
    assert not partial.exists()
