"""Executes every notebook's code cells in order: MyST/jupytext ``.md`` and Jupyter ``.ipynb``."""

import json
import re
from pathlib import Path

import matplotlib
import pytest

NOTEBOOKS = sorted(
    p
    for p in (Path(__file__).resolve().parents[1] / "notebooks").iterdir()
    if p.suffix in (".md", ".ipynb")
)
CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```", re.S | re.M)


def code_cells(path: Path) -> list[str]:
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            assert not cell.get("outputs"), f"{path.name}: outputs must be stripped"
        return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    return CELL.findall(path.read_text())


def test_there_are_notebooks():
    assert NOTEBOOKS


# 30-80 s each on 2 cores: in `make test-slow` (CI time); what they call is covered by the
# method tests. The CI keeps the quickstart.
SLOW_NOTEBOOKS = {
    "vrls.ipynb",
    "soar.ipynb",
    "sparse24.ipynb",
    "bandits.ipynb",
    "lion.ipynb",
    "floral.ipynb",
    "scion.ipynb",
    "mpo.ipynb",
    "spd.ipynb",
    "lume.ipynb",
}


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW_NOTEBOOKS else p for p in NOTEBOOKS],
    ids=lambda p: p.name,
)
def test_notebook_runs(path, capsys):
    matplotlib.use("Agg", force=True)  # plt.show() is a no-op
    cells = code_cells(path)
    assert cells, f"{path.name} has no code cells"
    import jax

    namespace: dict = {"__name__": "__notebook__"}
    try:
        for i, code in enumerate(cells):
            try:
                exec(compile(code, f"{path.name}[cell {i}]", "exec"), namespace)
            except Exception as e:
                raise AssertionError(f"{path.name} cell {i} failed: {e!r}") from e
    finally:
        jax.config.update("jax_enable_x64", False)  # notebooks may switch it on
