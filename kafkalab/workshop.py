"""Student copies of the notebooks: every cell tagged `solution` becomes an empty exercise cell,
so the check cell after it fails until the learner writes an answer. The originals, with their
solutions, are what the test suite runs: that is what proves every solution passes its check."""
from __future__ import annotations

from pathlib import Path

import nbformat

PLACEHOLDER = "# Your turn: write your answer here, then run the check cell below.\n"


def student_copy(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """The notebook without its solutions, and how many were removed."""
    removed = 0
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "code" and "solution" in tags:
            cell.source = PLACEHOLDER
            cell.metadata["tags"] = [t for t in tags if t != "solution"] + ["exercise"]
            cell.outputs, cell.execution_count = [], None
            removed += 1
    return nb, removed


def make_student_copies(source: Path, out: Path) -> dict[str, int]:
    """Write a student copy of every notebook in `source` to `out`; return solutions removed per file."""
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    for path in sorted(Path(source).glob("*.ipynb")):
        nb, removed = student_copy(nbformat.read(path, as_version=4))
        nbformat.validate(nb)
        nbformat.write(nb, out / path.name)
        report[path.name] = removed
    return report
