"""Test-suite set-up: 8 fake CPU devices (for sharding tests) before JAX starts its backend."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

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
