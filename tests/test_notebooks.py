"""Executes every notebooks/*.md (MyST/jupytext) notebook's code cells in order."""

import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.md"))
CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```", re.S | re.M)


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, capsys):
    cells = CELL.findall(path.read_text())
    assert cells, f"{path.name} has no code cells"
    namespace: dict = {"__name__": "__notebook__"}
    for i, code in enumerate(cells):
        try:
            exec(compile(code, f"{path.name}[cell {i}]", "exec"), namespace)
        except Exception as e:
            raise AssertionError(f"{path.name} cell {i} failed: {e!r}") from e
