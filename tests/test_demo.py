"""The full `lions-jax demo` (every quick preset, then the report). Slow: `make test-slow`."""

import json

import pytest

from lions_jax import cli
from lions_jax._src import results


@pytest.mark.slow
def test_demo_writes_report_with_every_experiment(tmp_path):
    assert cli.main(["demo", "--root", str(tmp_path), "--no-progress"]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    runs = results.latest_complete_runs(tmp_path)
    assert "mlp-digits" in runs
    for name, run in runs.items():
        assert f"## {name}" in report
        assert (run / "table.md").read_text().strip() in report
        assert any(run.glob("*.png"))
    res = json.loads((runs["mlp-digits"] / "results.json").read_text())
    # quick preset: 5 seeds, 1,500 AdamW steps; measured 0.979 ± 0.002; sklearn logreg 0.969
    assert res["test_accuracy"]["mean"] > 0.96
