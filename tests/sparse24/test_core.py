"""prox_24 against brute force over all supports; N:M masks; validation."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import minimize

from lions_jax._src.testing import enable_x64, raises_invalid
from lions_jax.sparse24 import group_objective, is_nm_sparse, nm_mask, prox_24


def _objective(w, a, t):
    return 0.5 * np.sum((w - a) ** 2) + t * sum(
        w[i] * w[j] * w[k] for i, j, k in itertools.combinations(range(4), 3)
    )


def _brute_force(z, t):
    """min over all 16 supports of the prox objective on magnitudes, multi-start L-BFGS-B in [0, |z|]."""
    a = np.abs(z)
    rng = np.random.default_rng(0)
    best = _objective(np.zeros(4), a, t)
    for size in range(1, 5):
        for support in itertools.combinations(range(4), size):
            s = list(support)

            def f(x, s=s):
                w = np.zeros(4)
                w[s] = x
                return _objective(w, a, t)

            starts = [a[s], a[s] / 2, *(rng.uniform(0, 1, len(s)) * a[s] for _ in range(3))]
            for x0 in starts:
                res = minimize(
                    f,
                    x0,
                    method="L-BFGS-B",
                    bounds=[(0, ai) for ai in a[s]],
                    options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 500},
                )
                best = min(best, res.fun)
    return best


def test_prox_equals_brute_force_on_random_groups(x64):
    rng = np.random.default_rng(1)
    n = 40  # 40 groups × 16 supports of local search (80 took twice as long)
    z = rng.normal(size=(n, 4)) * rng.choice([0.1, 1.0, 3.0], size=(n, 1))
    ts = 10.0 ** rng.uniform(-2, 1.5, size=n)
    prox = jax.jit(jax.vmap(lambda zz, t: prox_24(zz, t)))
    w = np.asarray(prox(jnp.asarray(z), jnp.asarray(ts)))
    sizes = []
    for i in range(n):
        ours = _objective(np.abs(w[i]), np.abs(z[i]), ts[i])
        ref = _brute_force(z[i], ts[i])
        # ours is a feasible point, so ours >= the true minimum; the brute force is a local search
        # over every support, accurate to ~1e-12 here: agreement to 1e-9 in float64
        assert ours <= ref + 1e-9, (i, z[i], ts[i], ours, ref)
        sizes.append(int(np.sum(w[i] != 0)))
    assert {2, 3, 4} <= set(sizes), sizes  # all three candidates are exercised


def test_signs_order_and_shrinkage(x64):
    rng = np.random.default_rng(2)
    z = rng.normal(size=(64, 4))
    w = np.asarray(jax.vmap(lambda zz: prox_24(zz, 0.7))(jnp.asarray(z)))
    assert np.all((np.sign(w) == np.sign(z)) | (w == 0))
    assert np.all(np.abs(w) <= np.abs(z) + 1e-15)
    for zi, wi in zip(z, w):
        order = np.argsort(-np.abs(zi), kind="stable")
        assert np.all(np.diff(np.abs(wi)[order]) <= 1e-15)


def test_limits_identity_and_projection(x64):
    rng = np.random.default_rng(3)
    w = jnp.asarray(rng.normal(size=(16, 6)))
    np.testing.assert_array_equal(prox_24(w, 0.0), w)
    big = np.asarray(prox_24(w, 1e8))
    keep = np.asarray(nm_mask(jnp.abs(w)))
    np.testing.assert_array_equal(big, np.where(keep, np.asarray(w), 0.0))
    assert bool(is_nm_sparse(big))


def test_axis_shapes_dtypes_and_jit():
    rng = np.random.default_rng(4)
    w = rng.normal(size=(3, 8, 12)).astype(np.float32)
    for axis in (0, 1, 2, -1):
        if w.shape[axis] % 4:
            continue
        out = jax.jit(lambda x, axis=axis: prox_24(x, 0.5, axis=axis))(jnp.asarray(w))
        assert out.shape == w.shape and out.dtype == jnp.float32
        ref = np.moveaxis(
            np.asarray(prox_24(jnp.asarray(np.moveaxis(w, axis, 0)), 0.5, axis=0)), 0, axis
        )
        np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-7)
    # bf16 in, bf16 out (computed in float32)
    assert prox_24(jnp.ones((4, 2), jnp.bfloat16), 0.1).dtype == jnp.bfloat16


_prox_rows = jax.jit(lambda z, t: prox_24(z, t, axis=1))


@settings(max_examples=25, deadline=None)
@given(arrays(np.float64, (8, 4), elements=st.floats(-5, 5)), st.floats(0, 20))
def test_prox_is_never_worse_than_its_candidates(z, t):
    """Property: the prox value is <= the objective at z's top-2 projection and <= at w = 0."""
    with enable_x64():
        zj = jnp.asarray(z)
        w = _prox_rows(zj, jnp.asarray(t))
        val = np.asarray(group_objective(w, zj, t))
        top2 = jnp.where(nm_mask(jnp.abs(zj), axis=1), zj, 0.0)
        assert np.all(val <= np.asarray(group_objective(top2, zj, t)) + 1e-9)
        assert np.all(val <= np.asarray(group_objective(jnp.zeros_like(zj), zj, t)) + 1e-9)


def test_nm_mask_general_and_axis():
    s = jnp.asarray(np.arange(24, dtype=np.float32).reshape(6, 4))
    m = np.asarray(nm_mask(s, 1, 3, axis=0))
    assert m.sum() == 8 and m[2].all() and m[5].all()
    m2 = np.asarray(nm_mask(s, 2, 4, axis=1))
    assert (m2.sum(axis=1) == 2).all() and m2[:, 2:].all()
    tie = np.asarray(nm_mask(jnp.ones(4)))
    assert tie.tolist() == [True, True, False, False]
    assert bool(is_nm_sparse(jnp.where(nm_mask(s, axis=1), s, 0), axis=1))
    assert not bool(is_nm_sparse(s, axis=1))


def test_validation():
    with pytest.raises(ValueError, match="not divisible by m=4"):
        prox_24(jnp.ones((6, 2)), 0.1)
    with pytest.raises(ValueError, match="n <= m"):
        nm_mask(jnp.ones(8), 5, 4)
    with pytest.raises(ValueError, match="lam"):
        prox_24(jnp.ones((4,)), -1.0)
    with raises_invalid("floating"):  # or the runtime annotation check, when enabled
        prox_24(jnp.ones((4,), jnp.int32), 0.1)
    with pytest.raises(ValueError, match="axis"):
        nm_mask(jnp.ones((4, 4)), axis=3)
