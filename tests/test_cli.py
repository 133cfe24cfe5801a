import json
import os
import subprocess
import sys

import pytest

from lions_jax import cli
from lions_jax._src import results

TINY = ["num_steps=20", "log_every=10", "checkpoint_every=10", "hidden=8", "batch_size=16"]


def _err_line(capsys):
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    assert err.startswith("lions-jax: error: ")
    return err


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["run", "no-such-exp"], "unknown experiment 'no-such-exp'"),
        (["run", "mlp-digits", "bogus=1"], "unknown config field 'bogus'"),
        (["run", "mlp-digits", "learning_rate=fast"], "expected a number"),
        (["run", "mlp-digits", "num_steps=15"], "multiple of log_every"),
        (["run", "mlp-digits", "--preset", "huge"], "no preset 'huge'"),
        (["run", "mlp-digits", "--seeds", "0"], "--seeds must be >= 1"),
        (["run", "mlp-digits", "--bogus-flag"], "unrecognized arguments"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_usage_errors_exit_2_one_line_and_write_nothing(argv, match, capsys, tmp_path):
    root = tmp_path / "runs"
    status = cli.main([*argv, "--root", str(root)] if argv and argv[0] == "run" else argv)
    assert status == 2
    assert match in _err_line(capsys)
    assert not root.exists()


def test_console_script_exit_status(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "lions_jax.cli", "run", "nope", "--root", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "unknown experiment 'nope'" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_list(capsys):
    assert cli.main(["list"]) == 0
    assert "mlp-digits" in capsys.readouterr().out


def test_run_writes_complete_folder_then_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "run1"
    argv = ["run", "mlp-digits", "--out", str(out), "--seeds", "2", "--no-progress", *TINY]
    assert cli.main(argv) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "checkpoints",
        "config.json",
        "metrics.jsonl",
        "results.json",
        "table.md",
        "test_accuracy.png",
        "train_loss.png",
    ]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["experiment"] == "mlp-digits" and cfg["config"]["num_seeds"] == 2
    assert cfg["config"]["hidden"] == [8]
    res = json.loads((out / "results.json").read_text())
    assert len(res["test_accuracy"]["per_seed"]) == 2
    assert [r["step"] for r in results.read_metrics(out / "metrics.jsonl")] == [10, 20]
    capsys.readouterr()
    # a finished run is not silently overwritten
    assert cli.main(argv) == 2
    assert "already complete" in _err_line(capsys)
    # nor is a folder with a different config
    assert cli.main([*argv, "learning_rate=0.5"]) == 2
    assert "different config" in _err_line(capsys)


def test_out_folder_with_foreign_files_is_refused(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("mine")
    assert cli.main(["run", "mlp-digits", "--out", str(tmp_path), *TINY]) == 2
    assert "holds no lions_jax run" in _err_line(capsys)
    assert sorted(os.listdir(tmp_path)) == ["x.txt"]


def test_report_and_missing_root(tmp_path, capsys):
    assert cli.main(["report", "--root", str(tmp_path / "missing")]) == 2
    assert "no such folder" in _err_line(capsys)
    root = tmp_path / "runs"
    assert (
        cli.main(["run", "mlp-digits", "--root", str(root), "--seeds", "1", "--no-progress", *TINY])
        == 0
    )
    assert cli.main(["report", "--root", str(root)]) == 0
    report = (root / "REPORT.md").read_text()
    assert "## mlp-digits" in report and "test accuracy" in report
    assert "test_accuracy.png" in report
