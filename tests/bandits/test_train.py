"""Repeated play: config validation, the comparator variant's exact bookkeeping, PA's regret to
the comparator staying O(1) where Exp3's grows, exploitation by the base learner, variants sharing
one program, and seeds vmapped with one compilation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lions_jax._src.testing import count_compilations, raises_invalid
from lions_jax.bandits import (
    BanditConfig,
    LearnerParams,
    behavioural_to_sequence,
    epsilon_floor,
    expected_loss,
    kuhn_always_bet_call,
    kuhn_nash,
    kuhn_poker,
    kuhn_strategy,
    learner_params,
    make_run,
    make_train,
    opponent_params,
    rock_paper_scissors,
)

RPS = rock_paper_scissors()
UNIFORM = np.full((1, 3), 1 / 3)
BIASED = np.array([[0.5, 0.3, 0.2]])


def _rps(**kw):
    base = dict(
        game=RPS, comparator=UNIFORM, num_rounds=1_000, opponent_strategy=BIASED, num_log=10
    )
    return BanditConfig(**(base | kw))


def _final(out, name):
    return np.asarray(getattr(out, name))[..., -1]


def test_comparator_variant_bookkeeping_is_exact():
    # one round per recorded chunk: a fresh random stream per chunk is checked below
    cfg = _rps(variant="comparator", num_rounds=500, num_log=500)
    out = jax.jit(jax.vmap(make_train(cfg)))(jax.random.split(jax.random.key(0), 4))
    np.testing.assert_array_equal(np.asarray(out.regret_comparator), 0.0)
    np.testing.assert_array_equal(np.asarray(out.alpha), 0.0)
    np.testing.assert_array_equal(np.asarray(out.num_restarts), 0)
    # uniform against anything: expected payoff 0; regret to best = 500 · (0.5 - 0.35) in loss units
    np.testing.assert_allclose(np.asarray(out.expected_payoff), 0.0, atol=1e-4)
    np.testing.assert_allclose(_final(out, "regret_best"), 500 * 0.15, rtol=1e-5)
    assert out.regret_best.shape == (4, 500)
    # realised payoff of 500 independent hands per seed (std of one hand ≈ 0.82): a random stream
    # reused across chunks would repeat one outcome 500 times (|payoff| = 500)
    assert np.all(np.abs(_final(out, "payoff")) < 5 * 0.82 * np.sqrt(500))


def test_pa_keeps_comparator_regret_constant_where_exp3_does_not():
    """Against a best-responding Bob, Exp3's regret to the uniform comparator grows (~√T) while
    PA's stays below α₁τ = 1 plus noise (the O(1) guarantee)."""
    keys = jax.random.split(jax.random.key(1), 16)
    res = {}
    for variant in ("base", "pa"):
        cfg = _rps(variant=variant, opponent="best_response", num_rounds=2_000)
        res[variant] = _final(jax.jit(jax.vmap(make_train(cfg)))(keys), "regret_comparator")
    assert res["base"].mean() > 10
    assert abs(res["pa"].mean()) < 1.5, res["pa"]


def test_base_learner_exploits_a_fixed_opponent_and_pa_restarts_towards_it():
    keys = jax.random.split(jax.random.key(2), 8)
    cfg = _rps(variant="base", num_rounds=5_000)
    out = jax.jit(jax.vmap(make_train(cfg)))(keys)
    assert _final(out, "expected_payoff").mean() / 5_000 > 0.2  # best response earns 0.3
    assert _final(out, "regret_comparator").mean() < -500  # a large gain over μ
    # PA with a small threshold constant finishes phases and doubles α against the same Bob
    pa = jax.jit(jax.vmap(make_train(_rps(variant="pa", num_rounds=5_000, c=0.1))))(keys)
    assert np.asarray(pa.num_restarts).min() >= 2
    assert _final(pa, "alpha").min() > 4 * float(
        learner_params(_rps(variant="pa", num_rounds=5_000, c=0.1)).alpha_init
    )
    assert _final(pa, "regret_comparator").mean() < 0  # it gains, never pays for exploring


def test_variants_share_one_program_and_match_make_train():
    cfg = _rps(opponent="switching", num_rounds=400, switch_round=100)
    run = make_run(cfg)
    params = [learner_params(cfg, v) for v in ("comparator", "base", "pa")]
    stacked = LearnerParams(*(jnp.stack(p) for p in zip(*params, strict=True)))
    key = jax.random.key(3)
    together = jax.jit(jax.vmap(run, in_axes=(None, 0, None)))(key, stacked, opponent_params(cfg))
    np.testing.assert_array_equal(np.asarray(together.regret_comparator[0]), 0.0)
    np.testing.assert_array_equal(np.asarray(together.alpha[1]), 1.0)
    alone = make_train(_rps(opponent="switching", num_rounds=400, switch_round=100, variant="pa"))
    np.testing.assert_allclose(
        np.asarray(together.regret_best[2]),
        np.asarray(alone(key).regret_best),
        rtol=1e-5,
        atol=1e-4,
    )


def test_seeds_vmap_with_one_compilation_and_kuhn_runs():
    game = kuhn_poker()
    mu = np.asarray(epsilon_floor(kuhn_strategy(game.alice, kuhn_nash()), 0.02), np.float64)
    cfg = BanditConfig(
        game=game,
        comparator=mu,
        num_rounds=300,
        opponent="best_response",
        base="rm",
        variant="base",
        num_log=3,
    )
    train = jax.jit(jax.vmap(make_train(cfg)))
    keys0, keys1 = jax.random.split(jax.random.key(0), (2, 3))
    with count_compilations() as counter:
        out = jax.block_until_ready(train(keys0))
    assert counter.count == 1
    with count_compilations() as counter:
        jax.block_until_ready(train(keys1))
    assert counter.count == 0
    for leaf in jax.tree.leaves(out):
        assert np.all(np.isfinite(np.asarray(leaf)))
    # the best responder exploits MCCFR's early play: Alice loses on average
    assert _final(out, "expected_payoff").mean() < 0
    # against a fixed always-bet/call Bob, μ's expected payoff per hand is the exact value
    fixed = BanditConfig(
        game=game,
        comparator=mu,
        num_rounds=100,
        opponent="fixed",
        opponent_strategy=kuhn_strategy(game.bob, kuhn_always_bet_call()),
        variant="comparator",
        num_log=1,
    )
    out = make_train(fixed)(jax.random.key(0))
    x = behavioural_to_sequence(game.alice, mu)
    y = behavioural_to_sequence(game.bob, kuhn_strategy(game.bob, kuhn_always_bet_call()))
    exact = float(game.payoff(expected_loss(game, x, y)))
    np.testing.assert_allclose(float(out.expected_payoff[-1]) / 100, exact, rtol=1e-4)


def test_config_validation():
    game = kuhn_poker()
    nash = kuhn_strategy(game.alice, kuhn_nash())
    with pytest.raises(ValueError, match=r"realisation weight 0.*epsilon_floor"):
        BanditConfig(game=game, comparator=nash, num_rounds=10, opponent="best_response")
    with pytest.raises(ValueError, match="comparator: expected a behavioural strategy of shape"):
        _rps(comparator=np.ones(3) / 3)
    with pytest.raises(ValueError, match="opponent_strategy: required"):
        _rps(opponent_strategy=None)
    with pytest.raises(ValueError, match="opponent_strategy: every row"):
        _rps(opponent_strategy=np.array([[0.5, 0.5, 0.5]]))
    with pytest.raises(ValueError, match="num_log"):
        _rps(num_rounds=1_000, num_log=7)
    with pytest.raises(ValueError, match="switch_round"):
        _rps(opponent="switching", switch_round=5_000)
    with pytest.raises(ValueError, match="c: expected > 0"):
        _rps(c=0.0)
    with raises_invalid("opponent"):
        _rps(opponent="random")
    with raises_invalid("variant"):
        _rps(variant="exp3")
    with raises_invalid("base"):
        _rps(base="sgd")
    with raises_invalid("game"):
        BanditConfig(game="rps", comparator=UNIFORM, num_rounds=10, opponent="best_response")
