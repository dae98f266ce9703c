"""`kafkalab lab` (what `make lab` runs): the broker, then JupyterLab serving notebook 00."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from kafkalab.broker.local import LocalBroker, free_port
from kafkalab.runtime import wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]


def test_lab_starts_the_broker_and_serves_the_notebooks(lab_home):
    home, port, token = lab_home / "labcmd", free_port(), "kafkalab-test-token"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kafkalab.cli", "--home", str(home), "lab", "--port", "0",
         "--no-browser", "--jupyter-port", str(port), "--notebooks", str(ROOT / "notebooks")],
        env={**os.environ, "JUPYTER_TOKEN": token}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/api/contents/00_start_here.ipynb?content=0&token={token}"
        def served():
            if proc.poll() is not None:
                raise AssertionError("kafkalab lab exited: " + proc.stdout.read1().decode(errors="replace"))
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    return json.load(r)
            except OSError:
                return None

        model = wait_until(served, 120, interval=0.5, what="JupyterLab to serve notebook 00")
        assert model["type"] == "notebook"
        assert LocalBroker(home=home).status()["running"] is True
    finally:
        LocalBroker(home=home).down()
        with contextlib.suppress(ProcessLookupError):  # JupyterLab may have exited on its own
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
