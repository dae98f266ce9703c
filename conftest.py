"""Test-session wiring: an isolated kafkalab home, and a real broker when any test needs one.

The broker gets its own data dir and a free port, so a lab broker the user is running is never
touched. Notebooks (nbval) reach it through KAFKA_BOOTSTRAP_SERVERS, which kernels inherit.
"""
import os
import shutil
import tempfile
from pathlib import Path

import pytest

_session = {}


def pytest_configure(config):
    home = Path(tempfile.mkdtemp(prefix="kafkalab-test-"))
    _session["home"] = home
    os.environ["KAFKALAB_HOME"] = str(home / "default")  # LocalBroker() never sees ~/.local
    os.environ["KAFKALAB_CACHE_DIR"] = str(home / "cache")  # nor the user's CDS archives
    os.environ.pop("KAFKA_BOOTSTRAP_SERVERS", None)


def _needs_broker(item) -> bool:
    return item.get_closest_marker("integration") is not None or item.path.suffix == ".ipynb"


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.integration)
    if any(_needs_broker(i) for i in items) and not config.option.collectonly:
        from kafkalab.broker.local import LocalBroker

        broker = LocalBroker(home=_session["home"] / "session", port=0)
        broker.up(timeout=180)
        _session["broker"] = broker
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap


def pytest_unconfigure(config):
    broker = _session.pop("broker", None)
    if broker is not None:
        broker.down()
    if "home" in _session:  # notebooks or tests may have started the secure broker or the cluster
        from kafkalab.broker.cluster import Cluster
        from kafkalab.broker.secure import SecureBroker
        SecureBroker(home=_session["home"] / "default").down()
        Cluster(home=_session["home"] / "default").down()
        shutil.rmtree(_session.pop("home"), ignore_errors=True)  # brokers' data, logs, secrets


@pytest.fixture(scope="session")
def broker():
    if "broker" not in _session:
        pytest.fail("the session broker was not started")
    return _session["broker"]


@pytest.fixture(scope="session")
def lab_home():
    return _session["home"]
