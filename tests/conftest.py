"""Test-suite set-up: 8 fake CPU devices (for sharding tests) before JAX starts its backend."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One XLA compilation cache per test session, shared by the xdist workers (they inherit the
# controller's environment): identical programs compiled by several tests (experiment runs and
# their resumes, CLI subprocesses) are compiled once. Compilation *counts* in tests are unchanged:
# they count lowerings, which happen before the cache lookup.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="lions_jax_xla_cache_")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    _OWN_CACHE = os.environ["JAX_COMPILATION_CACHE_DIR"]
else:
    _OWN_CACHE = None

# The suite's time is XLA compilation, not execution: LLVM at -O0 compiles the CPU programs ~1/3
# faster (tests/mpo: 98 s -> 66 s wall on 2 cores). XLA's HLO passes (fusion, simplification)
# still run; only the machine-code optimisation of the fused kernels is skipped.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

import jax

jax.config.update("jax_num_cpu_devices", 8)

import pytest  # noqa: E402

from lions_jax._src.testing import enable_x64  # noqa: E402


@pytest.fixture
def x64():
    """Runs the test with float64 enabled (for fp64 reference comparisons)."""
    with enable_x64():
        yield


@pytest.fixture
def fixtures_dir():
    from pathlib import Path

    return Path(__file__).parent / "fixtures"


def pytest_sessionfinish(session):
    """The controller removes the session's compilation cache (workers leave it alone)."""
    if _OWN_CACHE and not hasattr(session.config, "workerinput"):
        import shutil

        shutil.rmtree(_OWN_CACHE, ignore_errors=True)
