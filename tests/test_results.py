import json
import os

import numpy as np
import pytest

from lions_jax._src import results


def test_atomic_write_leaves_no_temp_files_and_replaces(tmp_path):
    p = tmp_path / "sub" / "a.json"
    results.atomic_write_json(p, {"x": np.float32(1.5), "y": np.arange(3), "z": float("nan")})
    results.atomic_write_json(p, {"x": 2})
    assert json.loads(p.read_text()) == {"x": 2}
    assert sorted(os.listdir(p.parent)) == ["a.json"]


def test_atomic_write_failure_keeps_old_file(tmp_path):
    p = tmp_path / "a.txt"
    results.atomic_write_text(p, "old")

    class Boom:
        def __array__(self, *a, **k):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        results.atomic_write_json(p, {"bad": Boom()})
    assert p.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_to_jsonable_non_finite():
    assert results.to_jsonable([np.inf, -np.inf, 1.0]) == ["inf", "-inf", 1.0]


def test_metrics_torn_line_and_truncation(tmp_path):
    p = tmp_path / results.METRICS_FILE
    results.append_metrics(p, [{"step": 10, "a": [1, 2]}, {"step": 20, "a": [3, 4]}])
    with open(p, "a") as f:
        f.write('{"step": 30, "a": [5')  # a write torn by a kill
    assert [r["step"] for r in results.read_metrics(p)] == [10, 20]
    kept = results.truncate_metrics(p, 10)
    assert [r["step"] for r in kept] == [10]
    assert p.read_text().count("\n") == 1
    m = results.stack_metrics(results.read_metrics(p))
    np.testing.assert_array_equal(m["a"], [[1.0, 2.0]])


def test_summary_table_and_plot(tmp_path):
    s = results.summarize([0.9, 1.0, 0.8])
    assert s["mean"] == pytest.approx(0.9, abs=1e-12)
    assert s["std"] == pytest.approx(np.std([0.9, 1.0, 0.8]), abs=1e-12)
    assert results.format_mean_std(s, 2) == "0.90 ± 0.08"
    md = results.markdown_table(["a", "b"], [[1, "x|y"]])
    assert md.splitlines() == ["| a | b |", "|---|---|", "| 1 | x\\|y |"]
    with pytest.raises(ValueError):
        results.markdown_table(["a"], [[1, 2]])
    png = results.plot_curves(
        tmp_path / "c.png", np.arange(3), {"y": np.ones((3, 2))}, xlabel="x", ylabel="y", title="t"
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_uses_latest_complete_runs(tmp_path):
    old = tmp_path / "exp" / "a"
    new = tmp_path / "exp" / "b"
    unfinished = tmp_path / "exp" / "c"
    for d, acc in ((old, "0.1"), (new, "0.9")):
        results.atomic_write_json(
            d / results.CONFIG_FILE, {"preset": "quick", "config": {"num_seeds": 3}}
        )
        results.atomic_write_text(d / results.TABLE_FILE, f"| acc |\n|---|\n| {acc} |\n")
        results.atomic_write_json(d / results.RESULTS_FILE, {})
        os.utime(d / results.RESULTS_FILE, (1e9 if d == old else 2e9,) * 2)
    results.atomic_write_json(unfinished / results.CONFIG_FILE, {})
    results.plot_curves(new / "curve.png", [0, 1], {"y": [1, 2]}, xlabel="", ylabel="", title="")
    report = results.build_report(tmp_path, descriptions={"exp": "An experiment."}).read_text()
    assert "## exp" in report and "An experiment." in report
    assert "0.9" in report and "0.1" not in report
    assert "![curve](exp/b/curve.png)" in report


def test_ci95_is_the_student_t_half_width():
    import numpy as np

    from lions_jax._src.results import ci95

    v = np.array([1.0, 2.0, 4.0, 7.0, 11.0])
    # t_{0.975, 4} = 2.7764 (tables), sample std with ddof=1
    assert abs(ci95(v) - 2.7764451 * v.std(ddof=1) / np.sqrt(5)) < 1e-6
    assert abs(ci95([0.0, 1.0]) - 12.7062047 * np.std([0.0, 1.0], ddof=1) / np.sqrt(2)) < 1e-6
    assert ci95([3.0]) == 0.0
