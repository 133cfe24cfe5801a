"""Structured (fan-out transitions, low-rank skew preference) Markov games against the dense
tabular functions on the same game (``to_dense``), the constant-sum identities, occupancies, the
policy updates on structured Q̄, and shape / validity errors.

Tolerances: in float64 the structured and dense functions compute the same finite sums (of
O(S·A·F) or O(S·A·k) terms, each of magnitude <= H) in a different order, so they agree to a few
hundred ulps (~1e-14); 1e-12 leaves room without hiding a wrong term (those show up at >= 1e-3).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lions_jax._src.testing import enable_x64, raises_invalid
from lions_jax.mpo import (
    best_response,
    exploitability,
    game_value,
    marginal_q,
    marginal_reward,
    mpo_update,
    occupancy,
    ompo_occupancy_update,
    ompo_policy_update,
    validate_game,
)
from lions_jax.mpo.structured import (
    StructuredGame,
    random_structured_game,
    structured_best_response,
    structured_exploitability,
    structured_game_value,
    structured_marginal_q,
    structured_marginal_reward,
    structured_occupancy,
    structured_ompo_occupancy_update,
    to_dense,
    validate_structured_game,
)

ATOL = 1e-12
S, A, H = 5, 3, 3


def _policy(seed, h, s, a):
    # NumPy: jax.random.dirichlet's gamma sampler takes seconds to compile
    return jnp.asarray(np.random.default_rng(seed).dirichlet(np.ones(a), (h, s)))


@pytest.fixture(scope="module")
def games():
    """Two float64 games from one compiled ``random_structured_game`` (its random sampler takes
    seconds to compile on a loaded CPU): S = 5 with 3 draws per row, so repeated next states
    (whose probabilities add) are common."""
    with enable_x64():
        keys = jax.random.split(jax.random.key(0), 2)
        return [
            random_structured_game(k, S, A, H, fan_out=3, rank=4, dtype=jnp.float64) for k in keys
        ]


def _horizon_one(game):
    return StructuredGame(
        game.next_states[:0], game.next_probs[:0], game.features[:1], game.skew[:1]
    )


def _close(x, y, atol=ATOL):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=atol)


def test_random_structured_game_is_valid_constant_sum_in_unit_interval(x64, games):
    game = games[0]
    assert game.next_states.dtype == jnp.int32 and game.features.dtype == jnp.float64
    validate_structured_game(game, atol=1e-12)
    np.testing.assert_allclose(
        np.linalg.norm(np.asarray(game.skew), ord=2, axis=(-2, -1)), 0.5, atol=1e-12
    )
    dense = to_dense(game)
    validate_game(dense, atol=1e-12)
    r = np.asarray(dense.reward)
    _close(r + r.transpose(0, 3, 4, 1, 2), 1.0, atol=1e-15)
    idx = np.arange(S)[:, None], np.arange(A)[None]
    _close(r[:, idx[0], idx[1], idx[0], idx[1]], 0.5, atol=1e-15)
    assert r.min() >= 0 and r.max() <= 1 and r.std() > 0.02
    # repeated next states were summed into the dense transitions
    ns = np.asarray(game.next_states)
    assert any(len(set(row)) < row.size for row in ns.reshape(-1, ns.shape[-1]))


def test_every_function_equals_the_dense_one(x64, games):
    game = games[0]
    dense = to_dense(game)
    pi, pi_o = _policy(1, H, S, A), _policy(2, H, S, A)
    d, d_o = structured_occupancy(game, pi), structured_occupancy(game, pi_o)
    _close(d, occupancy(dense, pi))
    _close(structured_marginal_reward(game, d_o), marginal_reward(dense, d_o))
    _close(structured_marginal_q(game, pi, d_o), marginal_q(dense, pi, d_o))
    _close(structured_game_value(game, pi, pi_o), game_value(dense, pi, pi_o))
    br, br_dense = structured_best_response(game, pi_o), best_response(dense, pi_o)
    _close(br.value, br_dense.value)
    _close(br.policy, br_dense.policy, atol=0)
    _close(structured_exploitability(game, pi), exploitability(dense, pi))
    assert float(structured_exploitability(game, pi)) > 1e-3
    g_t = structured_marginal_reward(game, d)
    log_pi = jnp.log(pi)
    _close(
        structured_ompo_occupancy_update(game, log_pi, g_t, marginal_reward(dense, d_o), 0.7),
        ompo_occupancy_update(dense, log_pi, g_t, marginal_reward(dense, d_o), 0.7),
    )
    # a marginal reward of a non-normalised "occupancy" keeps the ½ Σ d' term
    _close(structured_marginal_reward(game, 2 * d_o), marginal_reward(dense, 2 * d_o))


def test_occupancy_rows_sum_to_one_and_self_play_value_is_half_h(x64, games):
    game = games[1]
    pi = _policy(3, H, S, A)
    d = structured_occupancy(game, pi)
    _close(d.sum((1, 2)), 1.0)
    assert float(d.min()) >= 0
    _close(structured_game_value(game, pi, pi), H / 2)
    pi_o = _policy(4, H, S, A)
    total = structured_game_value(game, pi, pi_o) + structured_game_value(game, pi_o, pi)
    _close(total, H)


def test_horizon_one(x64, games):
    game = _horizon_one(games[1])
    assert game.next_states.shape == (0, S, A, 3)
    dense = to_dense(game)
    pi, pi_o = _policy(6, 1, S, A), _policy(7, 1, S, A)
    d_o = structured_occupancy(game, pi_o)
    _close(d_o, occupancy(dense, pi_o))
    _close(structured_marginal_q(game, pi, d_o), marginal_q(dense, pi, d_o))
    _close(structured_exploitability(game, pi), exploitability(dense, pi))


def test_mpo_and_ompo_updates_run_unchanged_on_structured_q(x64, games):
    """Several MPO and OMPO self-play steps with structured Q̄ give the dense iterates."""
    game = games[1]
    dense = to_dense(game)
    log_pi0 = jnp.full((H, S, A), -jnp.log(A), jnp.float64)
    for method in ("mpo", "ompo"):
        iterates = []
        for occ, mq in ((structured_occupancy, structured_marginal_q), (occupancy, marginal_q)):
            g = game if occ is structured_occupancy else dense
            log_pi, d_prev = log_pi0, occ(g, jnp.exp(log_pi0))
            for _ in range(4):
                pi = jnp.exp(log_pi)
                d = occ(g, pi)
                if method == "mpo":
                    log_pi = mpo_update(log_pi, mq(g, pi, d), 2.0)
                else:
                    log_pi = ompo_policy_update(log_pi, mq(g, pi, d), mq(g, pi, d_prev), 2.0)
                d_prev = d
            iterates.append(log_pi)
        _close(iterates[0], iterates[1])
        assert float(jnp.abs(iterates[0] - log_pi0).max()) > 1e-2  # the policy moved


def test_bad_shapes_raise_naming_the_argument(x64, games):
    game = games[0]
    pi = _policy(0, H, S, A)
    with raises_invalid("policy"):
        structured_occupancy(game, pi[:, :, :2])
    with raises_invalid("opponent_occupancy"):
        structured_marginal_reward(game, pi[:2])
    with raises_invalid("opponent_occupancy"):
        structured_marginal_q(game, pi, pi[:, :4])
    with raises_invalid("opponent"):
        structured_best_response(game, pi[:, :, :, None])
    with raises_invalid("skew"):
        structured_occupancy(game._replace(skew=game.skew[:, :3]), pi)
    with raises_invalid("next_probs"):
        structured_occupancy(game._replace(next_probs=game.next_probs[..., :2]), pi)
    with raises_invalid("next_states"):
        structured_occupancy(game._replace(next_states=game.next_states[:1]), pi)
    with raises_invalid("next_states"):
        structured_occupancy(game._replace(next_states=game.next_states.astype(jnp.float64)), pi)
    with raises_invalid("features"):
        to_dense(game._replace(features=game.features[0]))


def test_validate_structured_game_rejects_invalid_games(x64, games):
    game = games[0]
    cases = {
        "next_states": game._replace(next_states=game.next_states.at[0, 0, 0, 0].set(S)),
        "next_probs": game._replace(next_probs=game.next_probs * 1.1),
        "features": game._replace(features=game.features * 1.1),
        "skew": game._replace(skew=game.skew.at[0, 0, 1].add(0.1)),
    }
    for name, bad in cases.items():
        with pytest.raises(ValueError, match=name):
            validate_structured_game(bad)
    with pytest.raises(ValueError, match="spectral norm"):
        validate_structured_game(game._replace(skew=game.skew * 1.1))
    assert isinstance(game, StructuredGame)
