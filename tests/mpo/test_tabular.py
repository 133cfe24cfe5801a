"""Tabular Markov games: the constant-sum identities, occupancies, the marginal Q against the
pairwise Bellman recursion, best responses against brute force, exploitability zero at a Nash
equilibrium (LP for H = 1), MPO = SPPO for H = 1, OMPO without optimism = MPO, and the exact
occupancy-space step against perturbations of its objective."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lions_jax._src.testing import count_compilations, enable_x64, raises_invalid
from lions_jax.mpo import (
    GamesConfig,
    MarkovGame,
    best_response,
    exploitability,
    game_value,
    make_train,
    marginal_q,
    marginal_reward,
    mpo_update,
    occupancy,
    ompo_occupancy_update,
    ompo_policy_update,
    pairwise_q,
    random_game,
    validate_game,
)


def _policy(key, h, s, a):
    return jax.random.dirichlet(key, jnp.ones(a), (h, s))


def test_random_game_is_constant_sum_and_valid(x64):
    game = random_game(jax.random.key(0), 4, 3, 3)
    validate_game(game)
    r = np.asarray(game.reward)
    np.testing.assert_allclose(r + r.transpose(0, 3, 4, 1, 2), 1.0, atol=1e-15)
    idx = np.arange(4)[:, None], np.arange(3)[None]
    np.testing.assert_allclose(r[:, idx[0], idx[1], idx[0], idx[1]], 0.5, atol=1e-15)
    assert r.std() > 0.05  # preferences are not all ties


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_occupancy_sums_to_one_and_self_play_value_is_half_h(seed):
    with enable_x64():
        key_g, key_p = jax.random.split(jax.random.key(seed))
        game = random_game(key_g, 4, 3, 3, dtype=jnp.float64)
        pi = _policy(key_p, 3, 4, 3)
        d = occupancy(game, pi)
        np.testing.assert_allclose(np.asarray(d.sum((1, 2))), 1.0, atol=1e-12)
        assert float(d.min()) >= 0
        np.testing.assert_allclose(float(game_value(game, pi, pi)), 3 / 2, atol=1e-12)


def test_marginal_q_equals_the_pairwise_bellman_recursion(x64):
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    game = random_game(k1, 4, 3, 3, dtype=jnp.float64)
    pi, pi_o = _policy(k2, 3, 4, 3), _policy(k3, 3, 4, 3)
    q = pairwise_q(game, pi, pi_o)  # (H, S, A, S, A)
    d_o = occupancy(game, pi_o)
    expected = jnp.einsum("hsatb,htb->hsa", q, d_o)
    np.testing.assert_allclose(
        np.asarray(marginal_q(game, pi, d_o)), np.asarray(expected), atol=1e-12
    )
    # the value from the pairwise Q at the common initial state 0
    v = jnp.einsum("a,ab,b->", pi[0, 0], q[0, 0][:, 0], pi_o[0, 0])
    np.testing.assert_allclose(float(game_value(game, pi, pi_o)), float(v), atol=1e-12)
    # constant sum for any pair of policies
    total = game_value(game, pi, pi_o) + game_value(game, pi_o, pi)
    np.testing.assert_allclose(float(total), 3.0, atol=1e-12)


def test_best_response_equals_brute_force_over_deterministic_policies(x64):
    k1, k2 = jax.random.split(jax.random.key(2))
    h, s, a = 2, 3, 2
    game = random_game(k1, s, a, h, dtype=jnp.float64)
    opponent = _policy(k2, h, s, a)
    br = best_response(game, opponent)
    values = []
    for choice in itertools.product(range(a), repeat=h * s):
        pi = jax.nn.one_hot(jnp.array(choice).reshape(h, s), a, dtype=jnp.float64)
        values.append(float(game_value(game, pi, opponent)))
    np.testing.assert_allclose(float(br.value), max(values), atol=1e-12)
    np.testing.assert_allclose(
        float(game_value(game, br.policy, opponent)), max(values), atol=1e-12
    )


def test_exploitability_is_zero_at_the_nash_of_a_one_step_game(x64):
    """H = 1, one state: a symmetric constant-sum matrix game (value 1/2); its Nash by LP."""
    from scipy.optimize import linprog

    game = random_game(jax.random.key(3), 1, 4, 1, reward_scale=8.0, dtype=jnp.float64)
    p = np.asarray(game.reward[0, 0, :, 0, :])  # P(a ≻ a')
    # max v s.t. x^T P[:, a'] >= v for all a', x in the simplex
    res = linprog(
        c=np.r_[np.zeros(4), -1.0],
        A_ub=np.c_[-p.T, np.ones(4)],
        b_ub=np.zeros(4),
        A_eq=np.r_[np.ones(4), 0.0][None],
        b_eq=[1.0],
        bounds=[(0, None)] * 4 + [(None, None)],
        method="highs",
    )
    nash = jnp.asarray(res.x[:4])[None, None]
    assert res.x[-1] == pytest.approx(0.5, abs=1e-9)  # symmetric game: value 1/2
    assert float(exploitability(game, nash)) == pytest.approx(0.0, abs=1e-9)
    uniform = jnp.full((1, 1, 4), 0.25)
    assert float(exploitability(game, uniform)) > 1e-3


def test_mpo_with_one_step_is_sppo_and_ompo_without_optimism_is_mpo(x64):
    game = random_game(jax.random.key(4), 1, 5, 1, dtype=jnp.float64)
    pi = _policy(jax.random.key(5), 1, 1, 5)
    beta = 0.7
    new = mpo_update(jnp.log(pi), marginal_q(game, pi, occupancy(game, pi)), beta)
    win_rate = game.reward[0, 0, :, 0, :] @ pi[0, 0]  # P(a ≻ π)
    sppo = pi[0, 0] * jnp.exp(beta * win_rate)
    np.testing.assert_allclose(
        np.asarray(jnp.exp(new[0, 0])), np.asarray(sppo / sppo.sum()), atol=1e-14
    )
    # the SPPO target "P̂ − 1/2" differs by a constant per state: same policy
    q = jax.random.normal(jax.random.key(6), (3, 4, 5), jnp.float64)
    log_pi = jnp.log(_policy(jax.random.key(7), 3, 4, 5))
    np.testing.assert_allclose(
        np.asarray(ompo_policy_update(log_pi, q, q, beta)),
        np.asarray(mpo_update(log_pi, q, beta)),
        atol=1e-14,
    )
    # occupancy step with g_{t-1} = g_t and H = 1 is MPO too (Q̄ = g)
    g = marginal_reward(game, occupancy(game, pi))
    occ = ompo_occupancy_update(game, jnp.log(pi), g, g, beta)
    np.testing.assert_allclose(np.asarray(occ), np.asarray(new), atol=1e-14)


def _trajectory_kl(game, pi_new, pi_old):
    d = occupancy(game, pi_new)
    states = d.sum(-1)
    kl = jnp.sum(pi_new * (jnp.log(pi_new) - jnp.log(pi_old)), -1)
    return jnp.sum(states * kl)


def test_occupancy_step_maximises_its_mirror_descent_objective(x64):
    k1, k2, k3, k4 = jax.random.split(jax.random.key(8), 4)
    game = random_game(k1, 4, 3, 3, dtype=jnp.float64)
    pi = _policy(k2, 3, 4, 3)
    g_t = marginal_reward(game, occupancy(game, _policy(k3, 3, 4, 3)))
    g_tm1 = marginal_reward(game, occupancy(game, pi))
    beta = 2.0
    new = jnp.exp(ompo_occupancy_update(game, jnp.log(pi), g_t, g_tm1, beta))

    def objective(p):
        return beta * jnp.sum(occupancy(game, p) * (2 * g_t - g_tm1)) - _trajectory_kl(game, p, pi)

    best = float(objective(new))
    for i in range(20):
        noise = jax.random.normal(jax.random.fold_in(k4, i), new.shape) * 0.3
        other = jax.nn.softmax(jnp.log(new) + noise, -1)
        assert float(objective(other)) <= best + 1e-12


def test_self_play_train_vmaps_and_ompo_beats_mpo():
    keys = jax.random.split(jax.random.key(0), 4)
    out = {}
    for method in ("mpo", "ompo"):
        cfg = GamesConfig(
            num_states=4, num_actions=3, horizon=3, method=method, num_updates=200, num_log=4
        )
        train = jax.jit(jax.vmap(make_train(cfg)))
        with count_compilations() as counter:
            out[method] = jax.block_until_ready(train(keys))
        assert counter.count == 1
    assert out["mpo"].exploitability_average.shape == (4, 4)
    np.testing.assert_allclose(np.asarray(out["mpo"].policy.sum(-1)), 1.0, atol=1e-5)
    e_mpo = np.asarray(out["mpo"].exploitability_average)
    e_ompo = np.asarray(out["ompo"].exploitability_average)
    # the average iterate improves, and OMPO's beats MPO's on the same games
    assert np.all(e_mpo[:, -1] < e_mpo[:, 0])
    assert e_ompo[:, -1].mean() < e_mpo[:, -1].mean()


def test_validation(x64):
    game = random_game(jax.random.key(0), 4, 3, 3)  # the shape (and dtype) of the tests above
    with pytest.raises(ValueError, match="not constant-sum"):
        validate_game(MarkovGame(game.transitions, game.reward * 0.9))
    with pytest.raises(ValueError, match="transitions"):
        validate_game(MarkovGame(game.transitions[:, :, :, :2], game.reward))
    with pytest.raises(ValueError, match="reward"):
        validate_game(MarkovGame(game.transitions, game.reward[0]))
    with pytest.raises(ValueError, match="num_log"):
        GamesConfig(num_updates=100, num_log=7)
    with pytest.raises(ValueError, match="horizon"):
        GamesConfig(horizon=0)
    with raises_invalid("method"):
        GamesConfig(method="dpo")
    with pytest.raises(ValueError, match="beta"):
        GamesConfig(beta=0.0)
