"""Bandit primitives: importance-weighted estimates are unbiased (exactly, by enumeration, and by
Monte Carlo), Exp3 in log space and its regret bound on a fixed loss sequence, the learners on a
treeplex, and the phased-aggression state machine."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lions_jax._src.testing import raises_invalid
from lions_jax.bandits import (
    Treeplex,
    behavioural_to_sequence,
    epsilon_floor,
    exp3_probs,
    exp3_update,
    iw_loss_estimate,
    kuhn_nash,
    kuhn_poker,
    kuhn_strategy,
    learner_init,
    learner_policy,
    learner_update,
    pa_gap,
    pa_init,
    pa_threshold,
    pa_update,
    terminal_probs,
)


def test_iw_estimate_is_unbiased_by_enumeration_and_monte_carlo(x64):
    probs = jnp.array([0.6, 0.3, 0.1])
    loss = jnp.array([0.2, 0.9, 0.5])
    exact = sum(probs[a] * iw_loss_estimate(loss[a], a, probs) for a in range(3))
    np.testing.assert_allclose(np.asarray(exact), np.asarray(loss), atol=1e-15)
    n = 200_000
    actions = jax.random.choice(jax.random.key(0), 3, (n,), p=probs)
    est = jax.vmap(lambda a: iw_loss_estimate(loss[a], a, probs))(actions)
    # per-coordinate std of the estimate: loss_a * sqrt((1 - p_a) / p_a); 5 standard errors
    se = np.asarray(loss * jnp.sqrt((1 - probs) / probs)) / np.sqrt(n)
    assert np.all(np.abs(np.asarray(est.mean(0) - loss)) < 5 * se)


def test_sequence_form_estimate_is_unbiased_in_kuhn(x64):
    """E over the sampled terminal of loss / x[σ] · e_σ = M y: the loss vector on Alice's sequences."""
    game = kuhn_poker()
    rng = np.random.default_rng(0)
    x = behavioural_to_sequence(game.alice, rng.dirichlet([1, 1], size=12))
    y = behavioural_to_sequence(game.bob, rng.dirichlet([1, 1], size=12))
    probs = terminal_probs(game, x, y)
    est = sum(
        probs[z] * iw_loss_estimate(game.terminal_loss[z], int(game.terminal_alice[z]), x)
        for z in range(len(probs))
    )
    np.testing.assert_allclose(np.asarray(est), game.loss_matrix @ np.asarray(y), atol=1e-14)


def test_exp3_update_is_normalised_and_equals_hedge_on_a_simplex(x64):
    logw = jnp.log(jnp.array([0.5, 0.3, 0.2]))
    loss_hat = jnp.array([0.0, 2.0, 0.0])
    new = exp3_update(logw, loss_hat, 0.1)
    assert float(jax.nn.logsumexp(new)) == pytest.approx(0.0, abs=1e-15)
    expected = np.array([0.5, 0.3 * np.exp(-0.2), 0.2])
    np.testing.assert_allclose(np.asarray(exp3_probs(new)), expected / expected.sum(), atol=1e-15)
    tp = Treeplex.simplex(3)
    table = learner_update(tp, "hedge", logw[None], jnp.r_[0.0, loss_hat], 0.1)
    np.testing.assert_allclose(np.asarray(table[0]), np.asarray(new), atol=1e-15)


def test_regret_matching_is_uniform_without_positive_regret_and_proportional_otherwise():
    p = learner_policy("rm", jnp.array([[-1.0, -2.0], [3.0, 1.0]]))
    np.testing.assert_allclose(np.asarray(p), [[0.5, 0.5], [0.75, 0.25]])
    with raises_invalid("kind"):
        learner_policy("exp4", jnp.zeros((1, 2)))


@functools.partial(jax.jit, static_argnums=(2,))
def _exp3_pseudo_regret(key, losses, num_seeds):
    """Bandit Exp3 on a fixed loss sequence ``(T, K)``; pseudo-regret Σ⟨p_t, ℓ_t⟩ − min_a Σ ℓ_t(a)."""
    t, k = losses.shape
    eta = jnp.sqrt(2 * jnp.log(k) / (t * k))

    def one(key):
        def step(carry, inp):
            logw, key = carry
            loss_t = inp
            key, sub = jax.random.split(key)
            p = exp3_probs(logw)
            a = jax.random.categorical(sub, logw)
            logw = exp3_update(logw, iw_loss_estimate(loss_t[a], a, p), eta)
            return (logw, key), p @ loss_t

        _, expected = jax.lax.scan(step, (jnp.zeros(k), key), losses)
        return expected.sum() - losses.sum(0).min()

    return jax.vmap(one)(jax.random.split(key, num_seeds))


def test_exp3_regret_on_a_fixed_loss_sequence_is_within_its_bound():
    """E[regret] ≤ √(2 T K log K) for Exp3 with η = √(2 log K / (T K)) (Lattimore & Szepesvári,
    Thm 11.1). An alternating-then-shifting sequence where the best arm changes halfway."""
    t, k, seeds = 2_000, 3, 64
    rng = np.random.default_rng(0)
    losses = rng.uniform(0, 1, size=(t, k))
    losses[: t // 2, 0] *= 0.3  # arm 0 best early, arm 2 best late, arm 2 best overall
    losses[t // 2 :, 2] *= 0.1
    regrets = np.asarray(
        _exp3_pseudo_regret(jax.random.key(0), jnp.asarray(losses, jnp.float32), seeds)
    )
    bound = np.sqrt(2 * t * k * np.log(k))
    assert regrets.mean() + 3 * regrets.std() / np.sqrt(seeds) < bound, (regrets.mean(), bound)
    assert regrets.mean() > 0  # it does pay for learning


def test_mccfr_learner_on_kuhn_lowers_loss_against_a_fixed_opponent():
    """Regret matching per infoset on exact counterfactual losses converges to the best response
    (a sanity check of the learner's bookkeeping, full information)."""
    game = kuhn_poker()
    y = behavioural_to_sequence(
        game.bob, kuhn_strategy(game.bob, {n: 1.0 for n in game.bob.infoset_names})
    )
    loss_vec = jnp.asarray(game.loss_matrix, jnp.float32) @ y
    table = learner_init(game.alice)
    first = None
    for _ in range(200):
        x = behavioural_to_sequence(game.alice, learner_policy("rm", table))
        first = float(x @ loss_vec) if first is None else first
        table = learner_update(game.alice, "rm", table, loss_vec, 0.0)
    from lions_jax.bandits import best_response

    final = float(behavioural_to_sequence(game.alice, learner_policy("rm", table)) @ loss_vec)
    best = float(best_response(game.alice, loss_vec).value)
    assert final < first and final - best < 0.01 * (first - best)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_pa_gap_is_nonnegative_and_the_simplex_closed_form(seed):
    rng = np.random.default_rng(seed)
    k = 4
    tp = Treeplex.simplex(k)
    mu = np.r_[1.0, rng.dirichlet(np.ones(k))]
    s = np.r_[0.0, rng.exponential(size=k)]
    gap = float(pa_gap(tp, mu, s))
    assert gap >= -1e-6
    np.testing.assert_allclose(gap, mu @ s - s[1:].min(), rtol=1e-5, atol=1e-5)
    game = kuhn_poker()
    mu_k = behavioural_to_sequence(
        game.alice, epsilon_floor(kuhn_strategy(game.alice, kuhn_nash()), 0.02)
    )
    assert float(pa_gap(game.alice, mu_k, rng.exponential(size=25))) >= -1e-5


def test_pa_update_doubles_alpha_resets_the_phase_and_caps_at_one():
    tp = Treeplex.simplex(2)
    mu = jnp.array([1.0, 0.5, 0.5])
    tau = 1.0
    state = pa_init(0.25, tp.num_sequences)
    big = jnp.array([0.0, 3.0, 0.0])  # gap += 1.5 per call
    state, restart = pa_update(tp, state, big, mu, tau)
    assert not bool(restart) and float(state.phase_loss[1]) == 3.0  # gap 1.5 ≤ 2τ
    state, restart = pa_update(tp, state, big, mu, tau)  # gap 3 > 2τ
    assert bool(restart) and float(state.alpha) == 0.5 and int(state.num_restarts) == 1
    np.testing.assert_array_equal(np.asarray(state.phase_loss), 0.0)
    for _ in range(4):
        state, _ = pa_update(tp, state, big, mu, tau)
    assert float(state.alpha) == 1.0 and int(state.num_restarts) == 2  # capped: no more phases
    for alpha in (0.0, 1.0):  # pure comparator / pure base learner: never restart
        s0 = pa_init(alpha, tp.num_sequences)
        for _ in range(3):
            s0, restart = pa_update(tp, s0, big, mu, tau)
            assert not bool(restart)
        assert float(s0.alpha) == alpha


def test_pa_threshold_formula_and_validation():
    tau = pa_threshold(10_000, 3, 1 / 3, 2.0)
    assert tau == pytest.approx(2.0 * np.sqrt(10_000 * np.log(30_000) * 3))
    with pytest.raises(ValueError, match="mu_min"):
        pa_threshold(100, 3, 0.0)
    with pytest.raises(ValueError, match="probs_t"):
        iw_loss_estimate(1.0, 0, jnp.ones((2, 2)))
