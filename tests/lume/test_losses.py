"""Unlearning objectives: closed forms, NPO's gradient identity, masking, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from lions_jax._src.testing import enable_x64, raises_invalid
from lions_jax.lume import losses as L


def _batch(seed: int, b: int = 3, t: int = 5, v: int = 7):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    logits = jax.random.normal(k1, (b, t, v), jnp.float64)
    targets = jax.random.randint(k2, (b, t), 0, v)
    mask = jax.random.bernoulli(k3, 0.7, (b, t)).at[:, 0].set(True)
    return logits, targets, mask


def _logp(logits, targets):
    lp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(lp, targets[..., None], axis=-1)[..., 0]


@settings(max_examples=25, deadline=None)
@given(
    beta=st.floats(0.01, 5.0),
    lp=st.lists(st.floats(-20.0, -1e-3), min_size=2, max_size=6),
)
def test_npo_at_reference_is_two_over_beta_log2(beta, lp):
    with enable_x64():
        logp = jnp.asarray([lp], jnp.float64)
        mask = jnp.ones_like(logp, bool)
        got = float(L.npo_loss(logp, logp, mask, beta))
    assert got == pytest.approx(2 / beta * np.log(2), rel=1e-12)


@pytest.mark.parametrize("beta", [0.1, 1.0, 3.0])
def test_npo_gradient_at_reference_equals_ga_gradient(x64, beta):
    """NPO paper §4: ∇L_NPO = E[W_θ ∇ log π_θ] with W_θ = 1 at π_θ = π_ref, i.e. GA's gradient."""
    logits, targets, mask = _batch(0)
    ref = _logp(logits, targets)
    g_npo = jax.grad(lambda z: L.npo_loss(_logp(z, targets), ref, mask, beta))(logits)
    g_ga = jax.grad(lambda z: L.ga_loss(_logp(z, targets), mask))(logits)
    np.testing.assert_allclose(g_npo, g_ga, rtol=1e-12, atol=1e-14)


def test_npo_weight_away_from_reference(x64):
    """Away from π_ref, each example's gradient is GA's times W = 2σ(β log(π_θ/π_ref))."""
    logits, targets, mask = _batch(1)
    ref = _logp(logits + 0.5 * jax.random.normal(jax.random.key(9), logits.shape), targets)
    beta = 0.7
    g_npo = jax.grad(lambda z: L.npo_loss(_logp(z, targets), ref, mask, beta))(logits)
    ratio = L.sequence_logprob(_logp(logits, targets), mask) - L.sequence_logprob(ref, mask)
    w = 2 * jax.nn.sigmoid(beta * ratio)
    g_ga_rows = jax.grad(lambda z: L.ga_loss(_logp(z, targets), mask))(logits)
    np.testing.assert_allclose(g_npo, g_ga_rows * w[:, None, None], rtol=1e-10, atol=1e-14)


def test_npo_tends_to_ga_as_beta_vanishes(x64):
    logits, targets, mask = _batch(2)
    lp = _logp(logits, targets)
    ref = lp - 0.3
    beta = 1e-6
    shifted = L.npo_loss(lp, ref, mask, beta) - 2 / beta * np.log(2)
    # (2/β) softplus(β r) = (2/β) log 2 + r + O(β r²); here r = 0.3 · |y|
    expected = jnp.mean(L.sequence_logprob(lp, mask) - L.sequence_logprob(ref, mask))
    np.testing.assert_allclose(shifted, expected, rtol=1e-5)


def test_gd_and_nll_closed_forms(x64):
    logits, targets, mask = _batch(3)
    lp = _logp(logits, targets)
    seq = np.sum(np.where(mask, lp, 0.0), axis=1)
    assert float(L.nll(lp, mask)) == pytest.approx(-seq.mean(), rel=1e-12)
    assert float(L.ga_loss(lp, mask)) == pytest.approx(seq.mean(), rel=1e-12)
    lp_r, mask_r = lp[::-1], mask[::-1]
    gd = L.gd_loss(lp, mask, lp_r, mask_r, lam=0.3)
    assert float(gd) == pytest.approx(seq.mean() + 0.3 * float(L.nll(lp_r, mask_r)), rel=1e-12)


def test_kl_divergence_matches_numpy_and_vanishes_at_reference(x64):
    logits, _, mask = _batch(4)
    other = logits + jax.random.normal(jax.random.key(5), logits.shape)
    p = jax.nn.softmax(np.asarray(logits), -1)
    q = jax.nn.softmax(np.asarray(other), -1)
    kl = np.sum(p * (np.log(p) - np.log(q)), -1)
    expected = np.mean(np.sum(np.where(mask, kl, 0.0), -1))
    assert float(L.kl_divergence(logits, other, mask)) == pytest.approx(expected, rel=1e-12)
    assert float(L.kl_divergence(logits, logits, mask)) == pytest.approx(0.0, abs=1e-14)
    # invariant to per-position logit shifts (both sides are log-softmaxed)
    assert float(L.kl_divergence(logits + 3.0, other - 1.0, mask)) == pytest.approx(
        expected, rel=1e-12
    )


def test_simnpo_closed_form_and_no_reference(x64):
    logits, targets, mask = _batch(6)
    lp = _logp(logits, targets)
    beta, gamma = 2.5, 0.4
    n = np.sum(mask, 1)
    margin = beta * np.sum(np.where(mask, lp, 0.0), 1) / n + gamma
    forget = 2 / beta * np.mean(np.log1p(np.exp(margin)))
    got = L.simnpo_loss(lp, mask, lp, mask, beta, gamma, lam=0.0)
    assert float(got) == pytest.approx(forget, rel=1e-12)
    with_retain = L.simnpo_loss(lp, mask, lp[::-1], mask[::-1], beta, gamma, lam=2.0)
    assert float(with_retain) == pytest.approx(
        forget + 2 * float(L.nll(lp[::-1], mask[::-1])), rel=1e-12
    )


@pytest.mark.parametrize(
    "fn",
    [
        lambda lp, m: L.npo_loss(lp, lp[::-1] - 0.1, m, 0.5),
        lambda lp, m: L.simnpo_loss(lp, m, lp[::-1], m, 2.5, 0.1, 1.0),
        lambda lp, m: L.gd_loss(lp, m, lp[::-1], m, 1.0),
    ],
    ids=["npo", "simnpo", "gd"],
)
def test_gradients(x64, fn):
    logits, targets, mask = _batch(7)
    check_grads(lambda z: fn(_logp(z, targets), mask), (logits,), order=2, modes=["rev"])


def test_masked_positions_are_ignored(x64):
    logits, targets, mask = _batch(8)
    lp = _logp(logits, targets)
    noisy = jnp.where(mask, lp, -1e3)
    ref = lp - 0.2
    for f in (
        lambda x: L.ga_loss(x, mask),
        lambda x: L.npo_loss(x, ref, mask, 0.1),
        lambda x: L.simnpo_loss(x, mask, x, mask),
        lambda x: L.gd_loss(x, mask, x, mask),
    ):
        assert float(f(noisy)) == pytest.approx(float(f(lp)), rel=1e-12)


def test_bad_input():
    lp = jnp.zeros((2, 3))
    with raises_invalid("mask"):
        L.ga_loss(lp, jnp.ones((2, 4), bool))
    with raises_invalid("batch, T"):
        L.nll(jnp.zeros(3), jnp.ones(3, bool))
    with raises_invalid("beta"):
        L.npo_loss(lp, lp, jnp.ones((2, 3), bool), beta=0.0)
    with raises_invalid("beta"):
        L.simnpo_loss(lp, jnp.ones((2, 3), bool), lp, jnp.ones((2, 3), bool), beta=-1.0)
    with raises_invalid("logits"):
        L.kl_divergence(jnp.zeros((2, 3, 4)), jnp.zeros((2, 3, 5)), jnp.ones((2, 3), bool))
