"""Where the broker's messages go: information (ready, another port, the jar download) to stdout, which
a notebook shows as plain output; warnings (a forced kill, a lost cache) to stderr, which it shows as an
error box. No broker is started."""
import hashlib
import socket
import subprocess
import sys
from pathlib import Path

from kafkalab.broker import jars
from kafkalab.broker.cluster import Cluster
from kafkalab.broker.local import LocalBroker, State, free_port, pid_alive


def test_each_profile_says_information_on_stdout_and_warns_on_stderr(tmp_path, capsys):
    for broker in (LocalBroker(home=tmp_path), Cluster(home=tmp_path)):
        broker._say("ready at 127.0.0.1:9092")
        broker._warn("did not stop in 60 s; killing pid 1")
    said = capsys.readouterr()
    assert said.out == "kafkalab: ready at 127.0.0.1:9092\n" * 2
    assert said.err == "kafkalab: did not stop in 60 s; killing pid 1\n" * 2


def test_a_taken_default_port_is_said_on_stdout(tmp_path, capsys):
    broker = LocalBroker(home=tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        broker.default_port = s.getsockname()[1]
        port, _ = broker._choose_ports(None)
    said = capsys.readouterr()
    assert said.out == f"kafkalab: port {broker.default_port} is taken; using {port}\n" and said.err == ""


def test_a_broker_that_ignores_sigterm_is_killed_with_a_warning_on_stderr(tmp_path, capsys):
    broker = LocalBroker(home=tmp_path)
    broker.dir.mkdir(parents=True)
    # a stand-in for the JVM: its command line names the broker's config file, as the JVM's does
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                                 "signal.SIG_IGN); print('ready', flush=True); time.sleep(60)",
                                 str(broker.config_file)], stdout=subprocess.PIPE, text=True)
    try:
        assert stubborn.stdout.readline() == "ready\n"
        broker._save(State(port=free_port(), controller_port=free_port(), pid=stubborn.pid))
        assert broker.down(timeout=1)
        assert not pid_alive(stubborn.pid)            # killed (and reaped) by down()
    finally:
        stubborn.kill()
        stubborn.wait()
        stubborn.stdout.close()
    said = capsys.readouterr()
    assert said.err == f"kafkalab: broker did not stop in 1 s; killing pid {stubborn.pid}\n" and said.out == ""


def test_the_jar_download_progress_goes_to_stdout(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("KAFKA_HOME", raising=False)
    monkeypatch.setenv("KAFKALAB_CACHE_DIR", str(tmp_path / "cache"))
    content = b"a jar"
    dep = jars.Locked("org.example", "demo", "1.0", hashlib.sha256(content).hexdigest())
    jar = tmp_path / "m2" / dep.filename

    class Artifact:                       # jgo's artifact: not in the Maven cache until resolved
        cached_path = jar

        def resolve(self):
            jar.parent.mkdir(parents=True, exist_ok=True)
            jar.write_bytes(content)

    class Context:
        repo_cache = tmp_path / "m2"

        def project(self, group, artifact):
            return self

        def at_version(self, version):
            return self

        def artifact(self):
            return Artifact()

    monkeypatch.setattr(jars, "read_lock", lambda: [dep])
    monkeypatch.setattr(jars, "_maven_context", Context)
    assert jars.classpath() == [Path(jar)]
    said = capsys.readouterr()
    assert "kafkalab: downloading 1 jars" in said.out and f"[1/1] {dep.filename}" in said.out
    assert said.err == ""
