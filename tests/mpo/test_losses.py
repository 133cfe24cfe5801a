"""The LLM losses: MPO with one step is SPPO, a tie gives a zero target and zero gradient, OMPO
without optimism is MPO, the regression target reproduces the tabular MPO update, and the
K-sample winning-rate estimate."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from lions_jax.mpo import mpo_loss, mpo_update, ompo_loss, sppo_loss, winning_rate_q


def test_one_step_mpo_is_sppo_and_ties_give_no_update(x64):
    logp_new, logp_old, q, beta = jnp.array(-1.3), jnp.array(-1.1), jnp.array(0.8), 0.1
    assert float(mpo_loss(logp_new, logp_old, q, 0, 1, beta)) == pytest.approx(
        float(sppo_loss(logp_new, logp_old, q, beta)), abs=1e-15
    )
    # a tie at every remaining step: target 0, so the minimiser is logp_new = logp_old
    for step, horizon in ((0, 3), (2, 3), (0, 1)):
        q_tie = (horizon - step) / 2
        assert float(mpo_loss(logp_old, logp_old, q_tie, step, horizon, beta)) == 0.0
        assert float(jax.grad(mpo_loss)(logp_old, logp_old, q_tie, step, horizon, beta)) == 0.0
    check_grads(lambda x: mpo_loss(x, logp_old, q, 1, 3, beta), (logp_new,), order=2)


def test_ompo_without_optimism_is_mpo(x64):
    args = jnp.array(-0.7), jnp.array(-0.9), jnp.array(1.4)
    step, horizon, beta = 1, 3, 0.05
    tau = (horizon - step) / 2  # OMPO's τ plays the role of MPO's tie baseline
    assert float(ompo_loss(*args, args[2], beta, tau)) == pytest.approx(
        float(mpo_loss(*args, step, horizon, beta)), abs=1e-15
    )


def test_regression_target_reproduces_the_tabular_update(x64):
    """Minimising the squared loss over free log-probabilities gives logp_old + β(Q̂ − c); after
    normalisation that is exactly the MPO update π ∝ π exp(β Q̂)."""
    rng = np.random.default_rng(0)
    log_pi = jnp.log(jnp.asarray(rng.dirichlet(np.ones(5))))
    q = jnp.asarray(rng.uniform(0, 2, 5))
    beta, step, horizon = 0.3, 1, 3
    minimiser = log_pi + beta * (q - (horizon - step) / 2)
    losses = jax.vmap(mpo_loss, in_axes=(0, 0, 0, None, None, None))(
        minimiser, log_pi, q, step, horizon, beta
    )
    np.testing.assert_allclose(np.asarray(losses), 0.0, atol=1e-28)
    np.testing.assert_allclose(
        np.asarray(jax.nn.log_softmax(minimiser)),
        np.asarray(mpo_update(log_pi, q, beta)),
        atol=1e-14,
    )


def test_winning_rate_q():
    prefs = jnp.array([[0.5, 1.0, 0.0], [0.0, 0.5, 1.0]])
    np.testing.assert_allclose(np.asarray(winning_rate_q(prefs)), [0.5, 0.5])
    steps = jnp.stack([prefs, jnp.ones_like(prefs)])
    np.testing.assert_allclose(np.asarray(winning_rate_q(steps)), [1.5, 1.5])
    with pytest.raises(ValueError, match="prefs"):
        winning_rate_q(jnp.ones(3))
