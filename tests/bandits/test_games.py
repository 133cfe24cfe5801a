"""Treeplex operations and the games: behavioural ↔ sequence form, best response against brute
force over every pure strategy, Kuhn poker against OpenSpiel's values (stored fixture), the
symmetrised game's value 0 at the known equilibria, realisation-equivalent mixing against a
move-by-move Kuhn engine, ε-floors."""

import itertools
import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lions_jax.bandits import (
    Treeplex,
    behavioural_to_sequence,
    best_response,
    counterfactual_losses,
    epsilon_floor,
    expected_loss,
    exploitability,
    kuhn_always_bet_call,
    kuhn_nash,
    kuhn_never_bluff,
    kuhn_poker,
    kuhn_strategy,
    matrix_game,
    min_realisation_weight,
    pa_mix,
    realisation_weights,
    rock_paper_scissors,
    sequence_to_behavioural,
    solve_matrix_game,
    terminal_probs,
    worst_case_loss,
)

FIXTURE = json.loads((Path(__file__).parents[1] / "fixtures" / "kuhn_openspiel.json").read_text())
SEATS = [("p1",), ("p2",), ("p1", "p2")]


def _random_behavioural(tp: Treeplex, rng: np.random.Generator, floor: float = 0.0) -> np.ndarray:
    b = rng.dirichlet(np.ones(tp.num_actions), size=tp.num_infosets)
    return (1 - tp.num_actions * floor) * b + floor


def _pure_strategies(tp: Treeplex) -> np.ndarray:
    """Every pure behavioural strategy (one action per infoset), as sequence-form rows."""
    rows = []
    for choice in itertools.product(range(tp.num_actions), repeat=tp.num_infosets):
        b = np.eye(tp.num_actions)[list(choice)]
        rows.append(realisation_weights(tp, b))  # NumPy: 4096 strategies
    return np.unique(np.array(rows), axis=0)  # strategies differing only off-path coincide


# ------------------------------------------------------------------------------- treeplex


@pytest.mark.parametrize("seats", SEATS)
def test_sequence_form_constraints_and_roundtrip(x64, seats):
    tp = kuhn_poker(seats).alice
    rng = np.random.default_rng(0)
    for _ in range(5):
        b = _random_behavioural(tp, rng, floor=1e-3)
        x = np.asarray(behavioural_to_sequence(tp, b))
        assert x[0] == 1.0 and np.all(x >= 0)
        # flow constraints: the sequences of every infoset sum to its parent's weight
        np.testing.assert_allclose(x[tp.sequences].sum(-1), x[tp.parent], atol=1e-14)
        np.testing.assert_allclose(np.asarray(sequence_to_behavioural(tp, x)), b, atol=1e-13)


def test_sequence_to_behavioural_unreached_infosets_are_uniform(x64):
    tp = kuhn_poker(("p1",)).alice
    b = kuhn_strategy(tp, kuhn_always_bet_call())  # never checks: "pb" infosets unreached
    back = np.asarray(sequence_to_behavioural(tp, behavioural_to_sequence(tp, b)))
    reached = [i for i, n in enumerate(tp.infoset_names) if not n.endswith("pb")]
    np.testing.assert_allclose(back[reached], b[reached])
    unreached = [i for i, n in enumerate(tp.infoset_names) if n.endswith("pb")]
    np.testing.assert_allclose(back[unreached], 0.5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_counterfactual_pass_reproduces_the_linear_loss(seed):
    tp = kuhn_poker().alice
    rng = np.random.default_rng(seed)
    b = _random_behavioural(tp, rng)
    loss = rng.normal(size=tp.num_sequences)
    q, v = counterfactual_losses(tp, loss, b)
    x = np.asarray(behavioural_to_sequence(tp, b), dtype=np.float64)
    roots = tp.parent == 0
    # float32 sums of ~25 terms of size ~1: 1e-5 relative
    np.testing.assert_allclose(
        loss[0] + float(np.asarray(v)[roots].sum()), x @ loss, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(np.asarray(v), (b * np.asarray(q)).sum(-1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("seats", SEATS)
def test_best_response_equals_brute_force_over_pure_strategies(x64, seats):
    tp = kuhn_poker(seats).alice
    pure = _pure_strategies(tp)  # 64 (one seat) or 4096 (both seats) pure strategies
    rng = np.random.default_rng(1)
    for _ in range(5):
        loss = rng.normal(size=tp.num_sequences)
        br = best_response(tp, loss)
        brute = (pure @ loss).min()
        np.testing.assert_allclose(float(br.value), brute, rtol=0, atol=1e-12)
        np.testing.assert_allclose(float(np.asarray(br.sequence) @ loss), brute, atol=1e-12)
        assert np.any(np.all(np.isclose(pure, np.asarray(br.sequence)), axis=1))  # a pure strategy


def test_treeplex_validation():
    with pytest.raises(ValueError, match="parents"):
        Treeplex.from_infosets([0, 5], 2)  # sequence 5 belongs to infoset 2, listed later
    with pytest.raises(ValueError, match="num_actions"):
        Treeplex.from_infosets([0], 1)
    tp = Treeplex.simplex(3)
    with pytest.raises(ValueError, match="comparator: expected a behavioural strategy of shape"):
        tp.check_behavioural(np.ones(3) / 3, "comparator")
    with pytest.raises(ValueError, match="every row must be a probability vector"):
        tp.check_behavioural(np.array([[0.5, 0.6, 0.1]]), "comparator")


# ------------------------------------------------------------------------------- matrix games


def test_rps_and_random_matrix_games_by_lp():
    rps = rock_paper_scissors()
    assert abs(rps.value) < 1e-12
    value, row, col = solve_matrix_game(np.array([[0.0, -1, 1], [1, 0, -1], [-1, 1, 0]]))
    np.testing.assert_allclose(row, 1 / 3, atol=1e-9)
    np.testing.assert_allclose(col, 1 / 3, atol=1e-9)
    rng = np.random.default_rng(0)
    payoff = rng.uniform(-1, 1, size=(4, 3))
    game = matrix_game(payoff)
    value, row, col = solve_matrix_game(payoff)
    # the LP solution is an equilibrium: neither side gains by deviating
    assert (row @ payoff).min() >= value - 1e-9 and (payoff @ col).max() <= value + 1e-9
    x = np.r_[1.0, row]
    np.testing.assert_allclose(float(exploitability(game, x)), 0.0, atol=1e-6)
    with pytest.raises(ValueError, match="payoff"):
        matrix_game(np.ones(3))


# ------------------------------------------------------------------------------- Kuhn poker


def _seat_game_strategies(name: str):
    game = kuhn_poker(("p1",))
    d = FIXTURE["strategies"][name]
    return game, kuhn_strategy(game.alice, d), kuhn_strategy(game.bob, d)


def test_kuhn_infosets_match_openspiel():
    assert set(kuhn_poker(("p1",)).alice.infoset_names) == set(FIXTURE["info_states"]["0"])
    assert set(kuhn_poker(("p2",)).alice.infoset_names) == set(FIXTURE["info_states"]["1"])


def test_kuhn_values_and_best_responses_match_openspiel(x64):
    """Every entry of OpenSpiel 2.0.2's value table and best-response values (fixture generated by
    tests/fixtures/make_kuhn_openspiel.py), to float64 rounding."""
    names = list(FIXTURE["strategies"])
    game = kuhn_poker(("p1",))
    xs = {n: behavioural_to_sequence(game.alice, _seat_game_strategies(n)[1]) for n in names}
    ys = {n: behavioural_to_sequence(game.bob, _seat_game_strategies(n)[2]) for n in names}
    for s in names:
        for t in names:
            v = float(game.payoff(expected_loss(game, xs[s], ys[t])))
            assert v == pytest.approx(FIXTURE["value"][s][t], abs=1e-12), (s, t)
        # Bob (second player) best-responds to s's first-player part: his payoff
        br_p1 = -float(game.payoff(worst_case_loss(game, xs[s])))
        assert br_p1 == pytest.approx(FIXTURE["br_value_vs_p0"][s], abs=1e-12), s
    second = kuhn_poker(("p2",))  # Alice in the second seat: the first player best-responds to her
    for s in names:
        x = behavioural_to_sequence(
            second.alice, kuhn_strategy(second.alice, FIXTURE["strategies"][s])
        )
        br_p0 = -float(second.payoff(worst_case_loss(second, x)))
        assert br_p0 == pytest.approx(FIXTURE["br_value_vs_p1"][s], abs=1e-12), s


def test_symmetrised_kuhn_has_value_zero_at_the_equilibria(x64):
    game = kuhn_poker()
    assert game.value == 0.0
    for alpha in (0.0, 1 / 6, 1 / 3):
        nash = kuhn_strategy(game.alice, kuhn_nash(alpha))
        x = behavioural_to_sequence(game.alice, nash)
        assert float(game.payoff(expected_loss(game, x, x))) == pytest.approx(0.0, abs=1e-12)
        assert float(exploitability(game, x)) == pytest.approx(0.0, abs=1e-12)
    for name, strat in (("always", kuhn_always_bet_call()), ("never", kuhn_never_bluff())):
        x = behavioural_to_sequence(game.alice, kuhn_strategy(game.alice, strat))
        # fixture: nash_conv/2 is the symmetrised exploitability per hand
        assert float(exploitability(game, x)) == pytest.approx(
            FIXTURE["nash_conv"]["always_bet_call" if name == "always" else "never_bluff"] / 2,
            abs=1e-12,
        )
    with pytest.raises(ValueError, match="alpha"):
        kuhn_nash(0.5)
    with pytest.raises(ValueError, match="seats"):
        kuhn_poker(("p3",))
    with pytest.raises(ValueError, match="no probability for infosets"):
        kuhn_strategy(game.alice, {"0": 0.5})


def test_epsilon_floor_gives_full_support(x64):
    game = kuhn_poker()
    nash = kuhn_strategy(game.alice, kuhn_nash())
    assert float(min_realisation_weight(game.alice, nash)) == 0.0  # J never calls, Q never opens
    floored = np.asarray(epsilon_floor(nash, 0.02))
    assert floored.min() >= 0.02 - 1e-15
    np.testing.assert_allclose(floored.sum(-1), 1.0, atol=1e-15)
    assert float(min_realisation_weight(game.alice, floored)) > 0.02**2
    x = behavioural_to_sequence(game.alice, floored)
    assert 0 < float(exploitability(game, x)) < 0.05  # small but not zero
    with pytest.raises(ValueError, match="epsilon"):
        epsilon_floor(nash, 0.6)


def _play_hand(rng, seat, strategies, tp_a, tp_b):
    """One hand of Kuhn poker move by move (an engine independent of the terminal table).
    Returns (Alice's last sequence, Bob's last sequence)."""
    c1, c2 = rng.permutation(3)[:2]
    players = {"p1": c1, "p2": c2}
    alice_seat = seat
    last = {}
    history = ""
    while True:
        mover = "p1" if len(history) % 2 == 0 else "p2"
        who = "alice" if mover == alice_seat else "bob"
        tp = tp_a if who == "alice" else tp_b
        name = f"{players[mover]}{history}"
        h = tp.infoset_names.index(name)
        a = int(rng.random() < strategies[who][h, 1])
        last[who] = int(tp.sequences[h, a])
        history += "pb"[a]
        if history in ("pp", "pbp", "pbb", "bp", "bb"):
            return last["alice"], last["bob"]


def test_realisation_equivalent_mixing_matches_the_terminal_table():
    """Per hand, play μ with probability 1 − α and p otherwise (move by move): the terminal
    distribution equals :func:`terminal_probs` of the sequence-form mixture (1 − α)μ + αp."""
    game = kuhn_poker()
    rng = np.random.default_rng(0)
    mu = np.asarray(epsilon_floor(kuhn_strategy(game.alice, kuhn_nash()), 0.05))
    p = _random_behavioural(game.alice, rng)
    y = _random_behavioural(game.bob, rng)
    alpha = 0.3
    mix = pa_mix(
        behavioural_to_sequence(game.alice, mu), behavioural_to_sequence(game.alice, p), alpha
    )
    probs = np.asarray(terminal_probs(game, mix, behavioural_to_sequence(game.bob, y)), np.float64)
    np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-6)
    index = {
        (int(a), int(b)): z for z, (a, b) in enumerate(zip(game.terminal_alice, game.terminal_bob))
    }
    assert len(index) == len(probs)  # (Alice's, Bob's) last sequences identify the terminal
    n = 60_000
    counts = np.zeros(len(probs))
    for _ in range(n):
        seat = "p1" if rng.random() < 0.5 else "p2"
        alice = mu if rng.random() < 1 - alpha else p
        a, b = _play_hand(rng, seat, {"alice": alice, "bob": y}, game.alice, game.bob)
        counts[index[a, b]] += 1
    # Pearson chi-square over 60 cells (59 dof): the 0.999 quantile is ~99.6
    expected = n * probs
    chi2 = float((((counts - expected) ** 2) / np.maximum(expected, 1e-12)).sum())
    assert chi2 < 99.6, chi2
    # the behavioural strategy of the mixture, not the mixture of behavioural strategies
    b_mix = np.asarray(sequence_to_behavioural(game.alice, mix))
    np.testing.assert_allclose(
        np.asarray(behavioural_to_sequence(game.alice, b_mix)), np.asarray(mix), atol=1e-6
    )
    naive = behavioural_to_sequence(game.alice, (1 - alpha) * mu + alpha * p)
    assert np.abs(np.asarray(naive) - np.asarray(mix)).max() > 1e-3


def test_terminal_probs_of_rps_and_expected_loss():
    game = rock_paper_scissors()
    x = jnp.array([1.0, 0.2, 0.3, 0.5])
    y = jnp.array([1.0, 0.5, 0.3, 0.2])
    probs = np.asarray(terminal_probs(game, x, y)).reshape(3, 3)
    np.testing.assert_allclose(probs, np.outer([0.2, 0.3, 0.5], [0.5, 0.3, 0.2]), rtol=1e-6)
    rps = np.array([[0.0, -1, 1], [1, 0, -1], [-1, 1, 0]])
    u = np.array([0.2, 0.3, 0.5]) @ rps @ np.array([0.5, 0.3, 0.2])
    np.testing.assert_allclose(float(game.payoff(expected_loss(game, x, y))), u, atol=1e-6)
