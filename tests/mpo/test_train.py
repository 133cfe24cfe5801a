"""Trajectory-level SPPO ("bandit self-play" over open-loop action sequences): the sequence
payoff matrix is constant-sum and matches game values, a mixture's occupancy is realised by its
Markov policy (so the full-game exploitability is exact), H = 1 is MPO, self-play runs vmapped,
and too many sequences are refused at config time."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lions_jax.mpo import (
    GamesConfig,
    exploitability,
    game_value,
    make_train,
    marginal_q,
    mpo_update,
    occupancy,
    policy_from_occupancy,
    random_game,
)
from lions_jax.mpo.train import (
    open_loop_sequences,
    sequence_occupancies,
    sequence_payoff,
    sppo_trajectory_update,
)


def test_sequence_payoff_is_constant_sum_and_mixtures_are_markov(x64):
    h, s, a = 3, 4, 3  # the shape of the other mpo tests (jit cache)
    game = random_game(jax.random.key(0), s, a, h, dtype=jnp.float64)
    seqs = open_loop_sequences(a, h)
    assert seqs.shape == (a**h, h) and len({tuple(q) for q in seqs}) == a**h
    d_seq = sequence_occupancies(game)
    assert d_seq.shape == (a**h, h, s, a)
    np.testing.assert_allclose(np.asarray(d_seq.sum((2, 3))), 1.0, atol=1e-12)
    m = np.asarray(sequence_payoff(game, d_seq))
    np.testing.assert_allclose(m + m.T, h, atol=1e-12)
    for i, j in ((0, 5), (26, 13)):  # against V of the open-loop sequences as Markov policies
        pi_i, pi_j = (
            jnp.broadcast_to(jax.nn.one_hot(seqs[k], a)[:, None], (h, s, a)) for k in (i, j)
        )
        np.testing.assert_allclose(m[i, j], float(game_value(game, pi_i, pi_j)), atol=1e-12)
    # a mixture's occupancy is that of its Markov policy; the uniform mixture is the uniform policy
    w = jnp.asarray(np.random.default_rng(0).dirichlet(np.full(a**h, 0.3)))
    d_mix = jnp.einsum("i,ihsa->hsa", w, d_seq)
    pi_mix = policy_from_occupancy(d_mix)
    np.testing.assert_allclose(np.asarray(occupancy(game, pi_mix)), np.asarray(d_mix), atol=1e-12)
    uniform = jnp.full((h, s, a), 1 / a, jnp.float64)
    np.testing.assert_allclose(
        np.asarray(d_seq.mean(0)), np.asarray(occupancy(game, uniform)), atol=1e-12
    )
    # self-play value H/2; a closed-loop best response does at least as well as the best sequence
    w_np = np.asarray(w)
    np.testing.assert_allclose(w_np @ m @ w_np, h / 2, atol=1e-12)
    assert float(exploitability(game, pi_mix)) >= (m @ w_np).max() - h / 2 - 1e-12


def test_one_step_sppo_trajectory_is_mpo(x64):
    """H = 1: the sequences are the actions at state 0 and the update is MPO's state-0 row."""
    s, a = 4, 3
    game = random_game(jax.random.key(4), s, a, 1, dtype=jnp.float64)
    pi = jnp.asarray(np.random.default_rng(1).dirichlet(np.ones(a), (1, s)))
    beta = 0.7
    mpo = mpo_update(jnp.log(pi), marginal_q(game, pi, occupancy(game, pi)), beta)
    payoff = sequence_payoff(game, sequence_occupancies(game))
    sppo = sppo_trajectory_update(jnp.log(pi[0, 0]), payoff, beta, 1)
    np.testing.assert_allclose(np.asarray(sppo), np.asarray(mpo[0, 0]), atol=1e-14)


@pytest.mark.slow  # test_games_experiment runs the same program end to end
def test_sppo_trajectory_self_play():
    """The config of the ``mpo-games`` end-to-end test (one compiled program, shared through the
    session's compilation cache)."""
    keys = jax.random.split(jax.random.key(0), 2)
    cfg = GamesConfig(
        num_states=4, num_actions=2, horizon=2, method="sppo_trajectory", num_updates=20, num_log=2
    )
    out = jax.block_until_ready(jax.jit(jax.vmap(make_train(cfg)))(keys))
    assert out.exploitability_average.shape == out.exploitability_last.shape == (2, 2)
    assert out.policy.shape == (2, 2, 4, 2)
    np.testing.assert_allclose(np.asarray(out.policy.sum(-1)), 1.0, atol=1e-5)
    # the returned policy is the last iterate whose exploitability was logged
    for i, key in enumerate(keys):
        game = random_game(key, 4, 2, 2)
        np.testing.assert_allclose(
            float(exploitability(game, out.policy[i])),
            float(out.exploitability_last[i, -1]),
            atol=1e-5,
        )
    assert float(out.exploitability_average.min()) >= -1e-6


def test_too_many_sequences_is_refused():
    with pytest.raises(ValueError, match=r"A\^H = 5\^6 = 15,625"):
        make_train(GamesConfig(num_actions=5, horizon=6, method="sppo_trajectory"))
    with pytest.raises(ValueError, match="MAX_SEQUENCES"):
        open_loop_sequences(2, 13)
    make_train(GamesConfig(num_actions=5, horizon=6, method="mpo"))  # per-step methods: fine
