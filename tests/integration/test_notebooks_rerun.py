"""Every notebook runs top to bottom twice in the same kernel (what a learner does with
"Run All" after playing), and the second run leaves no more kafkalab threads than the first."""
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.integration
NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))
COUNT_THREADS = ("import threading as _t; print(len([x for x in _t.enumerate() "
                 "if x.name.startswith('kafkalab:')]))")


def run_all(client, nb) -> float:
    t0 = time.monotonic()
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            client.execute_cell(cell, index)
    return time.monotonic() - t0


def kafkalab_threads(client) -> int:
    cell = nbformat.v4.new_code_cell(COUNT_THREADS)
    client.nb.cells.append(cell)
    client.execute_cell(cell, len(client.nb.cells) - 1)
    client.nb.cells.pop()
    return int(cell.outputs[0]["text"].strip())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: getattr(p, "name", str(p)))
def test_notebook_runs_twice_in_one_kernel(path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=180, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel():
        first = run_all(client, nb)
        after_first = kafkalab_threads(client)
        second = run_all(client, nb)
        after_second = kafkalab_threads(client)
    print(f"{path.name}: first run {first:.1f} s, second run {second:.1f} s")
    assert after_second <= after_first, f"re-running left {after_second - after_first} more threads"
