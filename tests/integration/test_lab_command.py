"""`kafkalab lab` (what `make lab` runs): the broker, then JupyterLab serving notebook 00."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from kafkalab.broker.local import LocalBroker, free_port

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
        deadline, model = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    model = json.load(r)
                break
            except OSError:
                time.sleep(0.5)
        assert model is not None, proc.stdout.read1().decode(errors="replace")
        assert model["type"] == "notebook"
        assert LocalBroker(home=home).status()["running"] is True
    finally:
        LocalBroker(home=home).down()
        with contextlib.suppress(ProcessLookupError):  # JupyterLab may have exited on its own
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
