"""Entropy-regularised CE, temperature scaling / BCTS and the source predictor."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

from lions_jax._src.testing import raises_invalid
from lions_jax.vrls import (
    calibrated_probs,
    corrected_predict,
    entropy_regularized_ce,
    fit_temperature,
)
from lions_jax.vrls.predictor import PredictorConfig, make_predictor


def test_entropy_regularized_ce_closed_forms(x64):
    logits = jax.random.normal(jax.random.key(0), (6, 4))
    labels = jnp.array([0, 1, 2, 3, 0, 1])
    np.testing.assert_allclose(
        entropy_regularized_ce(logits, labels, 0.0),
        optax.softmax_cross_entropy_with_integer_labels(logits, labels),
        rtol=1e-14,
    )
    # Uniform logits: CE = H = log C, so the loss is (1 - zeta) log C.
    np.testing.assert_allclose(
        entropy_regularized_ce(jnp.zeros((2, 4)), labels[:2], 0.3), 0.7 * np.log(4), rtol=1e-14
    )
    # Against the definition -log p_y + zeta * sum p log p, written out.
    p = jax.nn.softmax(logits)
    ref = -jnp.log(p[jnp.arange(6), labels]) + 0.2 * jnp.sum(p * jnp.log(p), -1)
    np.testing.assert_allclose(entropy_regularized_ce(logits, labels, 0.2), ref, rtol=1e-12)
    check_grads(
        lambda z: entropy_regularized_ce(z, labels, 0.2).sum(), (logits,), order=2, modes=("rev",)
    )


def test_entropy_term_raises_predictive_entropy():
    # The minimiser over a free softmax of CE - zeta*H for a single label y: p_y rises with 1/zeta;
    # a gradient step from a confident prediction lowers confidence when zeta is large.
    z = jnp.array([[4.0, 0.0, 0.0]])
    y = jnp.array([0])
    g0 = jax.grad(lambda z: entropy_regularized_ce(z, y, 0.0).sum())(z)
    g1 = jax.grad(lambda z: entropy_regularized_ce(z, y, 1.0).sum())(z)
    assert g0[0, 0] < 0 < g1[0, 0]  # CE pushes the true logit up, CE - H (zeta=1) pulls it down


@pytest.mark.parametrize("bias_corrected", [False, True])
def test_fit_temperature_recovers_generating_calibration(x64, bias_corrected):
    # Labels drawn from softmax(z / T* + b*): the NLL's minimiser tends to (T*, b* + const) at rate
    # 1/sqrt(n); with n = 20 000 the errors are ~0.02, asserted < 0.1.
    kz, ky = jax.random.split(jax.random.key(1))
    z = 3.0 * jax.random.normal(kz, (20_000, 5))
    t_star = 2.0
    b_star = jnp.array([0.5, -0.5, 0.0, 1.0, -1.0]) if bias_corrected else jnp.zeros(5)
    y = jax.random.categorical(ky, z / t_star + b_star)
    cal = jax.jit(fit_temperature, static_argnames=("bias_corrected",))(
        z, y, bias_corrected=bias_corrected
    )
    assert abs(float(cal.temperature) - t_star) < 0.1
    np.testing.assert_allclose(cal.bias - cal.bias.mean(), b_star - b_star.mean(), atol=0.1)
    probs = calibrated_probs(z, cal)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-12)
    assert float(optax.softmax_cross_entropy_with_integer_labels(jnp.log(probs), y).mean()) < float(
        optax.softmax_cross_entropy_with_integer_labels(z, y).mean()
    )


def test_calibration_bad_inputs():
    with pytest.raises(ValueError, match="labels: expected integer shape"):
        fit_temperature(jnp.zeros((3, 2)), jnp.zeros(3))
    with pytest.raises(ValueError, match="labels: expected integer shape"):
        entropy_regularized_ce(jnp.zeros((3, 2)), jnp.zeros(4, jnp.int32))
    with raises_invalid("logits: expected"):
        entropy_regularized_ce(jnp.zeros((3, 1)), jnp.zeros(3, jnp.int32))
    with pytest.raises(ValueError, match="ratio: expected shape"):
        corrected_predict(jnp.ones((3, 2)) / 2, jnp.ones(3))
    with pytest.raises(ValueError, match="zeta"):
        PredictorConfig(zeta=-1.0)


def test_predictor_learns_digits_and_zeta_vmaps():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = jnp.asarray(d.data / 16.0, jnp.float32)
    y = jnp.asarray(d.target, jnp.int32)
    cfg = PredictorConfig(hidden=(32,), num_steps=300, batch_size=64, lr=3e-3)
    train, apply = make_predictor(cfg, 64, 10)
    zetas = jnp.array([0.0, 1.0])
    params = jax.jit(jax.vmap(lambda z: train(jax.random.key(0), x[:1200], y[:1200], z)))(zetas)
    logits = jax.vmap(apply, in_axes=(0, None))(params, x[1200:])
    acc = jnp.mean(jnp.argmax(logits, -1) == y[1200:], axis=-1)
    assert jnp.all(acc > 0.85), acc
    entropy = -jnp.sum(jax.nn.softmax(logits) * jax.nn.log_softmax(logits), -1).mean(-1)
    assert entropy[1] > entropy[0] + 0.1, entropy  # CE - H is less confident than CE
    with pytest.raises(ValueError, match="x: expected shape"):
        train(jax.random.key(0), x[:, :10], y)
