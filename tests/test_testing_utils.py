import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lions_jax._src import testing


def test_eight_fake_devices():
    assert jax.device_count() == 8


def test_enable_x64(x64):
    assert jnp.ones(()).dtype == jnp.float64


def test_x64_off_by_default():
    assert jnp.ones(()).dtype == jnp.float32


def test_rel_error_and_assert():
    a = np.array([1.0, 2.0, 3.0])
    assert testing.rel_error(a, a) == 0.0
    assert testing.rel_error(a * (1 + 1e-8), a) == pytest.approx(1e-8, rel=1e-6)
    testing.assert_rel_close({"x": a * (1 + 1e-9)}, {"x": a}, rtol=1e-8)
    with pytest.raises(AssertionError, match="relative error"):
        testing.assert_rel_close(a * 1.1, a, rtol=1e-3)
    with pytest.raises(AssertionError):  # NaN never passes
        testing.assert_rel_close(np.array([np.nan]), np.array([1.0]), rtol=1.0)
    with pytest.raises(AssertionError, match="structures differ"):
        testing.assert_rel_close({"x": a}, {"y": a}, rtol=1.0)


def test_assert_trees_all_close_handles_keys_and_bf16():
    k = jax.random.key(3)
    testing.assert_trees_all_close(
        {"k": k, "b": jnp.ones(2, jnp.bfloat16)},
        {"k": k, "b": jnp.ones(2, jnp.bfloat16)},
        rtol=0,
        atol=0,
    )


def test_count_compilations_and_no_recompile():
    f = jax.jit(lambda x: x * 3)
    x = jnp.arange(4.0)
    with testing.count_compilations() as c:
        f(x).block_until_ready()
    assert c.count >= 1
    testing.assert_no_recompile(f, x)
    # a function that builds a new jit each call recompiles and must be caught
    with pytest.raises(AssertionError, match="compiled"):
        testing.assert_no_recompile(lambda y: jax.jit(lambda z: z + 1)(y), x)
