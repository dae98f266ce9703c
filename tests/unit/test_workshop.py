"""Student copies: valid notebooks, every solution removed, every check kept.
(That each solution passes its check is proven by the notebook tests, which run the originals.)"""
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from kafkalab.workshop import PLACEHOLDER, make_student_copies

NOTEBOOKS = Path(__file__).parents[2] / "notebooks"


def tagged(nb, tag):
    return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    return out, make_student_copies(NOTEBOOKS, out)


def test_every_notebook_has_an_exercise_and_loses_its_solutions(copies):
    out, report = copies
    assert set(report) == {p.name for p in NOTEBOOKS.glob("*.ipynb")}
    for name, removed in report.items():
        original = nbformat.read(NOTEBOOKS / name, as_version=4)
        student = nbformat.read(out / name, as_version=4)
        nbformat.validate(student)
        assert removed == len(tagged(original, "solution")) >= 1, f"{name} has no exercise solution"
        assert not tagged(student, "solution")
        assert [c.source for c in tagged(student, "exercise")] == [PLACEHOLDER] * removed
        solutions = {c.source for c in tagged(original, "solution")}
        assert not any(c.source in solutions for c in student.cells if c.cell_type == "code")


def test_check_cells_stay_right_after_each_exercise(copies):
    out, _ = copies
    for path in sorted(out.glob("*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        for i, cell in enumerate(cells):
            if "exercise" in cell.metadata.get("tags", []):
                following = [c for c in cells[i + 1:] if c.cell_type == "code"][0]
                assert "# check" in following.source and "assert" in following.source, path.name


def test_the_cli_writes_them(tmp_path):
    out = tmp_path / "class"
    done = subprocess.run([sys.executable, "-m", "kafkalab.cli", "student-copies", "--notebooks",
                           str(NOTEBOOKS), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(list(out.glob("*.ipynb"))) == len(list(NOTEBOOKS.glob("*.ipynb")))
