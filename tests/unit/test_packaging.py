"""docker-compose.yml and environment.yml agree with kafkalab's own defaults and pyproject.toml."""
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

from kafkalab.broker.jars import KAFKA_VERSION
from kafkalab.broker.local import DEFAULT_PORT, LocalBroker

ROOT = Path(__file__).parents[2]


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def props(env):
    """KAFKA_FOO_BAR -> foo.bar, the official image's mapping ('__' is '_', '___' is '-')."""
    out = {}
    for key, value in env.items():
        if key.startswith("KAFKA_") and key != "KAFKA_HEAP_OPTS":
            name = key[6:].replace("___", "-").replace("__", "\0").replace("_", ".").replace("\0", "_")
            out[name.lower()] = str(value)
    return out


def listeners(value):
    return dict(item.split("://") for item in value.split(","))


def test_compose_runs_the_same_kafka_on_the_same_host_port():
    kafka = compose()["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert kafka["ports"] == [f"127.0.0.1:{DEFAULT_PORT}:{DEFAULT_PORT}"]
    p = props(kafka["environment"])
    bound = listeners(p["listeners"])
    advertised = listeners(p["advertised.listeners"])
    # the published port is the listener advertised to the host, as kafkalab advertises it
    external = [name for name, addr in advertised.items() if addr == f"127.0.0.1:{DEFAULT_PORT}"]
    assert len(external) == 1 and bound[external[0]].endswith(f":{DEFAULT_PORT}")
    assert set(p["listener.security.protocol.map"].split(",")) == {
        f"{name}:PLAINTEXT" for name in bound}
    assert p["controller.listener.names"] in bound and p["inter.broker.listener.name"] in advertised


def test_compose_tunes_the_broker_like_kafkalab():
    p = props(compose()["services"]["kafka"]["environment"])
    ours = dict(line.split("=", 1) for line in
                LocalBroker(home="/nonexistent").render_config(9092, 9093).splitlines())
    for key in ("process.roles", "offsets.topic.replication.factor", "offsets.topic.num.partitions",
                "transaction.state.log.replication.factor", "transaction.state.log.min.isr",
                "group.initial.rebalance.delay.ms", "num.partitions", "auto.create.topics.enable",
                "log.cleaner.backoff.ms", "log.retention.check.interval.ms",
                "log.initial.task.delay.ms"):
        assert p[key] == ours[key], key


def test_compose_lab_reaches_the_broker_inside_the_network():
    services = compose()["services"]
    lab = services["lab"]
    advertised = listeners(props(services["kafka"]["environment"])["advertised.listeners"])
    assert lab["environment"]["KAFKA_BOOTSTRAP_SERVERS"] in advertised.values()
    assert lab["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert (ROOT / lab["build"] / "Dockerfile").exists()
    assert all(port.startswith("127.0.0.1:") for port in lab["ports"])
    # kafkalab.segments() reads the log directory the broker reports: the lab sees it at the same path, read-only
    log_dirs = props(services["kafka"]["environment"])["log.dirs"]
    data = next(v for v in services["kafka"]["volumes"] if v.endswith(":" + log_dirs))
    assert data + ":ro" in lab["volumes"]


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["test"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "conda-forge" in env["channels"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert any(d.replace(" ", "").startswith("openjdk>=17") for d in conda)
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pip = [r for r in pip if not r.startswith("-")]

    def norm(reqs):
        return {(r.name.lower(), str(r.specifier), frozenset(r.extras))
                for r in map(Requirement, reqs)}
    assert norm(pip) == norm(declared)
    python = next(d for d in conda if d.startswith("python"))
    assert python.replace(" ", "") == "python" + project["requires-python"]
