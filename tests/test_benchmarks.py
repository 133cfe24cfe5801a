"""CPU smoke runs of every benchmark script with tiny shapes (the GPU runs use the same code)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHES = sorted((ROOT / "benchmarks").glob("*_bench.py"))
# 20-60 s of compilation each for a smoke run: in `make test-slow` only (CI time). The CI keeps
# one cheap smoke run of the shared harness (generate_bench.py) and the wrong-device check.
SLOW_BENCHES = {
    "mpo_bench.py",
    "rl_bench.py",
    "lion_bench.py",
    "seeds_bench.py",
    "sparse24_bench.py",
    "scion_bench.py",
    "floral_bench.py",
    "vrls_bench.py",
    "bandits_bench.py",
    "spd_bench.py",
    "lume_bench.py",
}
REQUIRED = {
    "bench",
    "jax",
    "backend",
    "device",
    "dtype",
    "shapes",
    "median_ms",
    "compile_s",
    "temp_bytes",
    "baseline",
    "baseline_median_ms",
    "speedup_vs_baseline",
}


def test_there_are_benchmarks():
    assert {b.name for b in BENCHES} >= {"seeds_bench.py", "generate_bench.py"}


@pytest.mark.parametrize(
    "bench",
    [pytest.param(b, marks=pytest.mark.slow) if b.name in SLOW_BENCHES else b for b in BENCHES],
    ids=lambda p: p.name,
)
def test_benchmark_tiny_cpu_rows(bench, tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            str(bench),
            "--device",
            "cpu",
            "--tiny",
            "--iters",
            "1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert rows
    files = list(tmp_path.glob("*.jsonl"))
    assert len(files) == 1 and len(files[0].read_text().splitlines()) == len(rows)
    for row in rows:
        assert REQUIRED <= row.keys()
        assert row["median_ms"] > 0 and row["baseline_median_ms"] > 0


@pytest.mark.slow
def test_soar_gpu_tiny_cpu_rows(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    script = ROOT / "benchmarks" / "soar_gpu.py"
    cmd = [sys.executable, str(script), "--device", "cpu", "--tiny", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert {(r["method"], r["arm"]) for r in rows} == {
        (m, a) for m in ("mlirl_sa", "csil") for a in ("base", "ensemble_only", "soar")
    }
    for row in rows:
        assert REQUIRED <= row.keys() and row["median_ms"] > 0


def test_wrong_device_exits_2(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(BENCHES[0]), "--device", "gpu", "--tiny", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 2
    assert "requested but JAX's backend is cpu" in proc.stderr
