"""LION core: the three forms against a brute-force reference and each other."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from lions_jax._src.testing import assert_no_recompile, assert_rel_close, raises_invalid
from lions_jax.lion import (
    column_snake_order,
    elu_feature_map,
    invert_order,
    lion_attention,
    lion_attention_multiorder,
    lion_mask,
    silu_feature_map,
    snake_order,
    with_cls_order,
)


@functools.cache
def jitted(form, chunk_size, normalize=True):
    """One compiled function per configuration (eager LION would compile op by op: slow)."""
    return jax.jit(
        functools.partial(lion_attention, form=form, chunk_size=chunk_size, normalize=normalize)
    )


def mask_by_products(lam):
    """M[i, j] = λ_j ⋯ λ_{i-1} (i > j), 1 (i = j), λ_{i+1} ⋯ λ_j (i < j): plain products."""
    n = len(lam)
    m = np.ones((n, n))
    for i in range(n):
        m[i, :i] = np.cumprod(lam[:i][::-1])[::-1]  # prod(lam[j:i]) for j < i
        m[i, i + 1 :] = np.cumprod(lam[i + 1 :])  # prod(lam[i+1:j+1]) for j > i
    return m


def brute_force(q, k, v, log_decay, *, normalize=True, eps=1e-6):
    """Float64 numpy reference straight from the definition of M (products of decays)."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    b, n, h, d = q.shape
    out = np.zeros(v.shape)
    for bi, hi in itertools.product(range(b), range(h)):
        if log_decay is None:
            lam = np.ones(n)
        elif log_decay.ndim == 1:
            lam = np.full(n, np.exp(float(log_decay[hi])))
        else:
            lam = np.exp(np.asarray(log_decay[bi, :, hi], np.float64))
        m = mask_by_products(lam)
        a = (q[bi, :, hi] @ k[bi, :, hi].T) * m
        if normalize:
            out[bi, :, hi] = (a @ v[bi, :, hi]) / (a.sum(1, keepdims=True) + eps)
        else:
            out[bi, :, hi] = a @ v[bi, :, hi] / np.sqrt(d)
    return out


def inputs(n, *, dtype=jnp.float64, seed=0, b=2, h=3, dk=4, dv=5):
    """Positive q, k (as after a positive feature map), normal v, and the three decay kinds.

    Drawn with NumPy: eager jax.random calls would compile a PRNG kernel per shape.
    """
    rng = np.random.default_rng(seed)
    q = jnp.asarray(rng.uniform(size=(b, n, h, dk)), dtype)
    k = jnp.asarray(rng.uniform(size=(b, n, h, dk)), dtype)
    v = jnp.asarray(rng.normal(size=(b, n, h, dv)), dtype)
    z = rng.normal(size=(b, n, h))
    decays = {
        "lit": None,
        "d": jnp.asarray(np.log([0.5, 0.9, 0.99][:h]), dtype),
        "s": jnp.asarray(-np.logaddexp(0.0, -z), dtype),  # log σ(z)
    }
    return q, k, v, decays


@pytest.mark.parametrize("n", [1, 2, 7, 33, 100])
@pytest.mark.parametrize("variant", ["lit", "d", "s"])
@pytest.mark.parametrize("normalize", [True, False])
def test_every_form_equals_brute_force_fp64(x64, n, variant, normalize):
    q, k, v, decays = inputs(n)
    ld = decays[variant]
    ref = brute_force(q, k, v, ld, normalize=normalize)
    # chunk 3 and 8: divisors or not depending on n (8 > n for n <= 7: a single padded chunk)
    for form, c in [("parallel", 64), ("recurrent", 64), ("chunked", 3), ("chunked", 8)]:
        y = jitted(form, c, normalize)(q, k, v, ld)
        assert y.dtype == jnp.float64
        # float64 round-off of O(n) sums of products: measured <= 1e-14
        assert_rel_close(y, ref, rtol=1e-10, err_msg=f"{form} C={c}")


@pytest.mark.parametrize("normalize", [True, False])
def test_chunked_any_chunk_size_fp64(x64, normalize):
    n = 33
    q, k, v, decays = inputs(n, seed=7)
    ref = brute_force(q, k, v, decays["s"], normalize=normalize)
    for c in (1, 2, 5, 11, 32, 33, 34, 64):
        y = jitted("chunked", c, normalize)(q, k, v, decays["s"])
        assert_rel_close(y, ref, rtol=1e-10, err_msg=f"C={c}")


@pytest.mark.slow
@pytest.mark.parametrize("n", [1, 2, 7, 33, 100])
@pytest.mark.parametrize("variant", ["lit", "d", "s"])
@pytest.mark.parametrize("normalize", [True, False])
def test_every_chunk_size_every_case_fp64(x64, n, variant, normalize):
    q, k, v, decays = inputs(n, seed=8)
    ref = brute_force(q, k, v, decays[variant], normalize=normalize)
    for c in sorted({1, 2, 3, 4, 7, n, n + 5, 64}):
        y = jitted("chunked", c, normalize)(q, k, v, decays[variant])
        assert_rel_close(y, ref, rtol=1e-10, err_msg=f"C={c}")


@pytest.mark.parametrize("variant", ["lit", "d", "s"])
def test_gradients_agree_across_forms_fp64(x64, variant):
    q, k, v, decays = inputs(13, seed=1)
    ld = decays[variant]
    w = jnp.asarray(np.random.default_rng(9).normal(size=v.shape))

    def loss(form, c):
        def f(q, k, v, ld):
            return jnp.sum(w * lion_attention(q, k, v, ld, form=form, chunk_size=c))

        argnums = (0, 1, 2) if ld is None else (0, 1, 2, 3)
        return jax.jit(jax.grad(f, argnums=argnums))(q, k, v, ld)

    ref = loss("parallel", 64)
    for form, c in [("recurrent", 64), ("chunked", 4), ("chunked", 5)]:
        assert_rel_close(loss(form, c), ref, rtol=1e-10, err_msg=f"{form} C={c}")


@pytest.mark.parametrize(("form", "c"), [("parallel", 64), ("recurrent", 64), ("chunked", 3)])
def test_check_grads(x64, form, c):
    q, k, v, decays = inputs(6, seed=2, b=1, h=2, dk=3, dv=2)
    f = jitted(form, c)
    # first-order forward and reverse mode against central differences (float64)
    check_grads(f, (q, k, v, decays["s"]), order=1, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


def test_lit_linear_shortcut_equals_masked_form(x64):
    q, k, v, _ = inputs(9, seed=3)
    zero = jnp.zeros((2, 9, 3), jnp.float64)  # log λ = 0: the masked S path with M = 1
    assert_rel_close(lion_attention(q, k, v, None), lion_attention(q, k, v, zero), rtol=1e-12)


def test_mask_closed_form_and_rank_one_blocks(x64):
    lam = jnp.array([0.5, 0.9])
    m = lion_mask(jnp.log(lam), 6)
    i, j = np.meshgrid(np.arange(6), np.arange(6), indexing="ij")
    np.testing.assert_allclose(m, lam[:, None, None] ** np.abs(i - j)[None], rtol=1e-12)
    ld = jnp.asarray(-np.logaddexp(0, np.random.default_rng(0).normal(size=(1, 12, 1))))
    ms = np.asarray(lion_mask(ld, 12)[0, 0])
    np.testing.assert_allclose(np.diag(ms), 1.0, rtol=0, atol=0)
    # off-diagonal blocks of each triangle are rank 1 (semiseparable)
    assert np.linalg.matrix_rank(ms[6:, :6], tol=1e-12) == 1
    assert np.linalg.matrix_rank(ms[:6, 6:], tol=1e-12) == 1
    # one entry by hand: M[4, 1] = λ1 λ2 λ3, M[1, 4] = λ2 λ3 λ4
    lam_s = np.exp(np.asarray(ld[0, :, 0]))
    np.testing.assert_allclose(ms[4, 1], lam_s[1] * lam_s[2] * lam_s[3], rtol=1e-12)
    np.testing.assert_allclose(ms[1, 4], lam_s[2] * lam_s[3] * lam_s[4], rtol=1e-12)
    assert lion_mask(None, 3).shape == (3, 3)
    assert lion_mask(ld, 12).shape == (1, 1, 12, 12)


@pytest.mark.parametrize(("form", "c"), [("parallel", 64), ("recurrent", 64), ("chunked", 8)])
@pytest.mark.parametrize("log_lam", [-30.0, -1e-6])
def test_extreme_decays_are_finite_in_float32(form, c, log_lam):
    q, k, v, _ = inputs(40, dtype=jnp.float32, seed=4)
    ld = jnp.full((2, 40, 3), log_lam, jnp.float32).at[:, ::3].set(-30.0)

    def f(q, k, v, ld):
        return jnp.sum(lion_attention(q, k, v, ld, form=form, chunk_size=c) ** 2)

    val, grads = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2, 3)))(q, k, v, ld)
    assert np.isfinite(val)
    for g in grads:
        assert np.isfinite(np.asarray(g)).all()


@pytest.mark.parametrize("variant", ["lit", "d", "s"])
def test_float32_and_bfloat16_error_budgets(variant):
    """Errors against the float64 reference: f32 ≤ 1e-5, bf16 inputs ≤ 3e-2 (relative norm).

    bf16 has an 8-bit mantissa (unit round-off 2^-9 ≈ 2e-3); the inputs are rounded to bf16 and
    the matmul operands (scores, states) are cast to bf16 with float32 accumulation, so errors of
    ~1e-2 relative are expected; mask and normaliser math stay in float32.
    """
    with jax.enable_x64(True):
        q, k, v, decays = inputs(64, seed=5)
        ld = decays[variant]
        ref = brute_force(q, k, v, ld)
        q32, k32, v32 = (a.astype(jnp.float32) for a in (q, k, v))
        ld32 = None if ld is None else ld.astype(jnp.float32)
    for form, c in [("parallel", 64), ("recurrent", 64), ("chunked", 16)]:
        y32 = jitted(form, c)(q32, k32, v32, ld32)
        assert y32.dtype == jnp.float32
        assert_rel_close(y32, ref, rtol=1e-5, err_msg=f"f32 {form}")
        yb = jitted(form, c)(
            q32.astype(jnp.bfloat16), k32.astype(jnp.bfloat16), v32.astype(jnp.bfloat16), ld32
        )
        assert yb.dtype == jnp.bfloat16
        assert_rel_close(yb, ref, rtol=3e-2, err_msg=f"bf16 {form}")


def test_jit_vmap_and_no_recompile():
    q, k, v, decays = inputs(16, dtype=jnp.float32)
    ld = decays["s"]
    f = jax.jit(lambda q, k, v, ld: lion_attention(q, k, v, ld, form="chunked", chunk_size=5))
    eager = jitted("chunked", 5)(q, k, v, ld)
    np.testing.assert_allclose(f(q, k, v, ld), eager, rtol=1e-6, atol=1e-6)
    assert_no_recompile(f, q, k, v, ld)
    # vmap over an extra leading axis matches a Python loop
    stacked = jax.vmap(f)(
        q[None].repeat(2, 0), k[None].repeat(2, 0), v[None].repeat(2, 0), ld[None].repeat(2, 0)
    )
    np.testing.assert_allclose(stacked[1], eager, rtol=1e-6, atol=1e-6)


def test_validation():
    q, k, v, _ = inputs(5, dtype=jnp.float32)
    with raises_invalid("q: expected"):
        lion_attention(q[0], k[0], v[0])
    with raises_invalid("k: shape"):
        lion_attention(q, k[:, :4], v)
    with raises_invalid(r"v: \(batch, seq, heads\)"):
        lion_attention(q, k, v[:, :, :2])
    with raises_invalid("log_decay: expected"):
        lion_attention(q, k, v, jnp.zeros((2,)))
    with pytest.raises(ValueError, match="values must be <= 0"):
        lion_attention(q, k, v, jnp.full((3,), 0.1))
    with raises_invalid("form: expected one of"):
        lion_attention(q, k, v, form="fast")
    with raises_invalid("chunk_size"):
        lion_attention(q, k, v, form="chunked", chunk_size=0)
    with raises_invalid("expected a floating dtype"):
        lion_attention(q.astype(jnp.int32), k.astype(jnp.int32), v)


def test_feature_maps_positive_and_normalised():
    x = jnp.linspace(-10, 10, 40).reshape(5, 8)
    assert (elu_feature_map(x) > 0).all()
    s = silu_feature_map(x)
    assert (s > 0).all()
    np.testing.assert_allclose(jnp.linalg.norm(s, axis=-1), 1.0, rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 6), w=st.integers(1, 6))
def test_patch_orders_are_bijections(h, w):
    for order in (snake_order(h, w), column_snake_order(h, w)):
        assert sorted(order.tolist()) == list(range(h * w))
        inv = invert_order(order)
        np.testing.assert_array_equal(order[inv], np.arange(h * w))
        np.testing.assert_array_equal(inv[order], np.arange(h * w))
        # consecutive tokens of a snake are grid neighbours
        r, c = np.divmod(order, w)
        assert (np.abs(np.diff(r)) + np.abs(np.diff(c)) == 1).all()
    cls = with_cls_order(snake_order(h, w))
    assert cls[0] == 0 and sorted(cls.tolist()) == list(range(h * w + 1))


def test_invert_order_rejects_non_permutations():
    with pytest.raises(ValueError, match="permutation"):
        invert_order([0, 0, 1])


@pytest.mark.parametrize("normalize", [True, False])
def test_multiorder_equals_averaged_mask(x64, normalize):
    """M = ½(P₁ᵀ M₁ P₁ + P₂ᵀ M₂ P₂) on a 3x4 grid with a class token, every form."""
    n = 13
    q, k, v, decays = inputs(n, seed=6)
    o1 = with_cls_order(snake_order(3, 4))
    o2 = with_cls_order(column_snake_order(3, 4))
    ld1 = decays["s"]
    ld2 = jnp.asarray(-np.logaddexp(0, np.random.default_rng(11).normal(size=(2, n, 3))))
    # reference: explicit averaged mask
    out = np.zeros(v.shape)
    for b, h in itertools.product(range(2), range(3)):
        m = np.zeros((n, n))
        for o, ld in ((o1, ld1), (o2, ld2)):
            mr = np.asarray(lion_mask(ld[b : b + 1, o][:, :, h : h + 1], n)[0, 0])
            inv = invert_order(o)
            m += mr[np.ix_(inv, inv)] / 2
        a = (np.asarray(q[b, :, h]) @ np.asarray(k[b, :, h]).T) * m
        num = a @ np.asarray(v[b, :, h])
        out[b, :, h] = num / (a.sum(1, keepdims=True) + 1e-6) if normalize else num / 2.0
    for form, c in [("parallel", 64), ("recurrent", 64), ("chunked", 4)]:
        # orders are static (NumPy) permutations: close over them under jit
        f = jax.jit(
            lambda q, k, v, a, b, form=form, c=c: lion_attention_multiorder(
                q, k, v, [a, b], [o1, o2], form=form, chunk_size=c, normalize=normalize
            )
        )
        assert_rel_close(f(q, k, v, ld1, ld2), out, rtol=1e-10, err_msg=form)
