r"""Two-player zero-sum games in sequence form: matrix games (rock-paper-scissors) and Kuhn poker.

A :class:`Game` lists its terminals (Alice's last sequence, Bob's last sequence, chance
probability, payoff to Alice); everything else follows. With payoffs in :math:`[-B, B]`, Alice's
loss at a terminal is :math:`(B - u)/(2B) \in [0, 1]`, and her expected loss is bilinear,
:math:`x^\top M y` with :math:`M_{\sigma\tau} = \sum_{z \to (\sigma,\tau)} \pi_c(z)\,
\mathrm{loss}(z)` (:attr:`Game.loss_matrix`). A hand is played by sampling a terminal with
probability :math:`\pi_c(z)\, x[\sigma(z)]\, y[\tau(z)]` (:func:`terminal_probs`): that is exactly
the distribution of playing the behavioural strategies of ``x`` and ``y`` move by move.

**Kuhn poker** (Kuhn 1950; OpenSpiel's ``kuhn_poker`` conventions: cards 0 = J, 1 = Q, 2 = K;
actions ``pass`` = check/fold, ``bet`` = bet/call; an infoset is named by the player's card and the
public history, e.g. ``"1pb"``). :func:`kuhn_poker` with ``seats=("p1", "p2")`` is the
*seat-symmetrised* game — each hand Alice takes either seat with probability 1/2, so her strategy
covers all 12 infosets and the game value is 0; ``seats=("p1",)`` is the usual game (value −1/18
for the first player). :func:`kuhn_nash` is the one-parameter family of equilibria (the first
player bets J with α ∈ [0, 1/3], K with 3α, calls with Q with α + 1/3; the second player's
equilibrium is unique). Kuhn equilibria do **not** give every action positive probability (J never
calls, Q never opens), so the PA guarantee needs :func:`epsilon_floor`.
"""

import dataclasses
import functools
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lions_jax.bandits.treeplex import Treeplex, behavioural_to_sequence, best_response

__all__ = [
    "KUHN_INFOSETS",
    "Game",
    "epsilon_floor",
    "expected_loss",
    "exploitability",
    "kuhn_always_bet_call",
    "kuhn_nash",
    "kuhn_never_bluff",
    "kuhn_poker",
    "kuhn_strategy",
    "matrix_game",
    "min_realisation_weight",
    "rock_paper_scissors",
    "solve_matrix_game",
    "terminal_probs",
    "worst_case_loss",
]


@dataclasses.dataclass(frozen=True, eq=False)
class Game:
    """A two-player zero-sum game in sequence form (Alice minimises her loss).

    Attributes:
      name: label.
      alice, bob: the two treeplexes.
      terminal_alice, terminal_bob: ``(Z,)`` each terminal's last sequence of each player.
      terminal_chance: ``(Z,)`` chance probability of each terminal (seat choice included).
      terminal_payoff: ``(Z,)`` payoff to Alice, in ``[-payoff_bound, payoff_bound]``.
      payoff_bound: ``B``.
      value: the min-max value to Alice, in payoff units.
    """

    name: str
    alice: Treeplex
    bob: Treeplex
    terminal_alice: np.ndarray
    terminal_bob: np.ndarray
    terminal_chance: np.ndarray
    terminal_payoff: np.ndarray
    payoff_bound: float
    value: float

    @functools.cached_property
    def terminal_loss(self) -> np.ndarray:
        return (self.payoff_bound - self.terminal_payoff) / (2 * self.payoff_bound)

    @functools.cached_property
    def terminal_incidence(self) -> tuple[np.ndarray, np.ndarray]:
        """0/1 matrices ``(alice.num_sequences, Z)`` and ``(bob.num_sequences, Z)``."""
        z = np.arange(self.terminal_alice.shape[0])
        ea = np.zeros((self.alice.num_sequences, z.shape[0]), np.float32)
        eb = np.zeros((self.bob.num_sequences, z.shape[0]), np.float32)
        ea[self.terminal_alice, z] = 1
        eb[self.terminal_bob, z] = 1
        return ea, eb

    @functools.cached_property
    def loss_matrix(self) -> np.ndarray:
        """``M`` with ``x^T M y`` = Alice's expected loss, ``(alice.num_sequences, bob.num_sequences)``."""
        m = np.zeros((self.alice.num_sequences, self.bob.num_sequences))
        np.add.at(
            m, (self.terminal_alice, self.terminal_bob), self.terminal_chance * self.terminal_loss
        )
        return m

    def payoff(self, loss: Any) -> Any:
        """Alice's payoff for a loss (or an expected loss): ``B (1 - 2 loss)``."""
        return self.payoff_bound * (1 - 2 * loss)


def terminal_probs(game: Game, x: ArrayLike, y: ArrayLike) -> jax.Array:
    """``(Z,)`` the probability of each terminal when Alice plays ``x`` and Bob ``y`` (sequence form)."""
    x, y = jnp.asarray(x), jnp.asarray(y)
    ea, eb = game.terminal_incidence  # one-hot matmuls: cheaper than vmapped gathers on CPU
    return game.terminal_chance * (x @ ea.astype(x.dtype)) * (y @ eb.astype(y.dtype))


def expected_loss(game: Game, x: ArrayLike, y: ArrayLike) -> jax.Array:
    """Alice's expected loss ``x^T M y``."""
    return jnp.asarray(x) @ (game.loss_matrix @ jnp.asarray(y))


def worst_case_loss(game: Game, x: ArrayLike) -> jax.Array:
    """``max_y x^T M y``: Alice's loss against Bob's best response (backward induction)."""
    bob_loss = -(jnp.asarray(x) @ game.loss_matrix)
    return -best_response(game.bob, bob_loss).value


def exploitability(game: Game, x: ArrayLike) -> jax.Array:
    """How much Bob's best response takes from Alice beyond the game value, in payoff units
    (0 exactly at a min-max strategy)."""
    return game.value - game.payoff(worst_case_loss(game, x))


def min_realisation_weight(treeplex: Treeplex, behavioural: ArrayLike) -> jax.Array:
    """The smallest realisation weight over the player's sequences (0 = not full support)."""
    return jnp.min(behavioural_to_sequence(treeplex, behavioural)[1:])


def epsilon_floor(behavioural: ArrayLike, epsilon: float) -> jax.Array:
    """``(1 - Aε) b + ε``: every action probability becomes ≥ ε (needs ``0 ≤ ε ≤ 1/A``)."""
    b = jnp.asarray(behavioural)
    num_actions = b.shape[-1]
    if not 0 <= epsilon <= 1 / num_actions:
        raise ValueError(f"epsilon: expected 0 <= epsilon <= 1/{num_actions}, got {epsilon}")
    return (1 - num_actions * epsilon) * b + epsilon


# ----------------------------------------------------------------------------- matrix games


def solve_matrix_game(payoff: ArrayLike) -> tuple[float, np.ndarray, np.ndarray]:
    """Min-max value and strategies of the matrix game (row player maximises ``payoff``), by LP
    (SciPy's HiGHS). Returns ``(value, row_strategy, column_strategy)``."""
    from scipy.optimize import linprog

    a = np.asarray(payoff, dtype=np.float64)
    k, m = a.shape

    def solve(mat: np.ndarray) -> tuple[float, np.ndarray]:
        # max v  s.t.  mat^T p >= v,  p in the simplex;  variables (p, v).
        n = mat.shape[0]
        res = linprog(
            c=np.r_[np.zeros(n), -1.0],
            A_ub=np.c_[-mat.T, np.ones(mat.shape[1])],
            b_ub=np.zeros(mat.shape[1]),
            A_eq=np.r_[np.ones(n), 0.0][None],
            b_eq=[1.0],
            bounds=[(0, None)] * n + [(None, None)],
            method="highs",
        )
        return float(res.x[-1]), res.x[:n]

    value, row = solve(a)
    _, col = solve(-a.T)
    del k, m
    return value, row, col


def matrix_game(
    payoff: ArrayLike,
    *,
    name: str = "matrix",
    action_names: Sequence[str] | None = None,
    bob_action_names: Sequence[str] | None = None,
) -> Game:
    """A K×M matrix game: ``payoff[a, b]`` to Alice (row player); the value is solved by LP."""
    a = np.asarray(payoff, dtype=np.float64)
    if a.ndim != 2 or min(a.shape) < 2 or not np.all(np.isfinite(a)):
        raise ValueError(
            f"payoff: expected a finite (K, M) matrix with K, M >= 2, got shape {a.shape}"
        )
    k, m = a.shape
    bound = float(np.abs(a).max()) or 1.0
    ai, bi = np.meshgrid(np.arange(k), np.arange(m), indexing="ij")
    return Game(
        name=name,
        alice=Treeplex.simplex(k, action_names),
        bob=Treeplex.simplex(m, bob_action_names),
        terminal_alice=(1 + ai.ravel()).astype(np.int32),
        terminal_bob=(1 + bi.ravel()).astype(np.int32),
        terminal_chance=np.ones(k * m),
        terminal_payoff=a.ravel(),
        payoff_bound=bound,
        value=solve_matrix_game(a)[0],
    )


def rock_paper_scissors() -> Game:
    """RPS: win +1, loss −1, tie 0; value 0, the unique equilibrium is uniform."""
    rps = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])
    names = ("rock", "paper", "scissors")
    return matrix_game(rps, name="rps", action_names=names, bob_action_names=names)


# ----------------------------------------------------------------------------- Kuhn poker

# Top-down: the first player's opening infosets, the second player's, then "pass, bet" replies.
KUHN_INFOSETS: dict[str, tuple[str, ...]] = {
    "p1": ("0", "1", "2", "0pb", "1pb", "2pb"),
    "p2": ("0p", "1p", "2p", "0b", "1b", "2b"),
}
_HISTORIES = {"pp": 1, "pbp": -1, "pbb": 2, "bp": 1, "bb": 2}  # |payoff| to the first player


def _kuhn_treeplex(seats: Sequence[str]) -> Treeplex:
    names = [n for s in seats for n in KUHN_INFOSETS[s] if not n.endswith("pb")]
    names += [n for s in seats for n in KUHN_INFOSETS[s] if n.endswith("pb")]
    index = {n: i for i, n in enumerate(names)}
    parents = [1 + 2 * index[n[0]] if n.endswith("pb") else 0 for n in names]  # after own "pass"
    return Treeplex.from_infosets(parents, 2, infoset_names=names, action_names=("pass", "bet"))


def _kuhn_sequence(tp: Treeplex, card: int, public: str, action: str) -> int:
    h = tp.infoset_names.index(f"{card}{public}")
    return int(tp.sequences[h, ("p", "b").index(action)])


def _first_player_payoff(history: str, c1: int, c2: int) -> float:
    if history == "pbp":
        return -1.0
    if history == "bp":
        return 1.0
    return _HISTORIES[history] * (1.0 if c1 > c2 else -1.0)


@functools.cache
def kuhn_poker(seats: tuple[str, ...] = ("p1", "p2")) -> Game:
    """Kuhn poker for Alice in ``seats``: ``("p1", "p2")`` (seat-symmetrised, value 0),
    ``("p1",)`` (value −1/18) or ``("p2",)`` (value +1/18)."""
    if not seats or len(set(seats)) != len(seats) or any(s not in KUHN_INFOSETS for s in seats):
        raise ValueError(f"seats: expected a non-empty subset of ('p1', 'p2'), got {seats!r}")
    seats = tuple(s for s in ("p1", "p2") if s in seats)
    other = {"p1": "p2", "p2": "p1"}
    alice = _kuhn_treeplex(seats)
    bob = alice if len(seats) == 2 else _kuhn_treeplex((other[seats[0]],))
    rows = []
    for seat in seats:
        for c1, c2 in itertools.permutations(range(3), 2):
            for hist in _HISTORIES:
                # the first player's last action and public prefix, the second player's likewise
                s1 = ("", hist[0]) if hist[0] == "b" or hist == "pp" else ("pb", hist[2])
                s2 = ("b", hist[1]) if hist[0] == "b" else ("p", hist[1])
                u1 = _first_player_payoff(hist, c1, c2)
                p1_tp, p2_tp = (alice, bob) if seat == "p1" else (bob, alice)
                seq1 = _kuhn_sequence(p1_tp, c1, *s1)
                seq2 = _kuhn_sequence(p2_tp, c2, *s2)
                if seat == "p1":
                    rows.append((seq1, seq2, u1))
                else:
                    rows.append((seq2, seq1, -u1))
    rows_np = np.array(rows)
    value = {("p1",): -1 / 18, ("p2",): 1 / 18, ("p1", "p2"): 0.0}[seats]
    return Game(
        name="kuhn" if len(seats) == 2 else f"kuhn_{seats[0]}",
        alice=alice,
        bob=bob,
        terminal_alice=rows_np[:, 0].astype(np.int32),
        terminal_bob=rows_np[:, 1].astype(np.int32),
        terminal_chance=np.full(len(rows), 1 / (6 * len(seats))),
        terminal_payoff=rows_np[:, 2],
        payoff_bound=2.0,
        value=value,
    )


def kuhn_strategy(treeplex: Treeplex, bet_probs: Mapping[str, float]) -> np.ndarray:
    """Behavioural strategy ``(num_infosets, 2)`` from ``{infoset: P(bet or call)}`` (OpenSpiel
    info-state strings; keys for infosets the treeplex does not have are ignored)."""
    missing = [n for n in treeplex.infoset_names if n not in bet_probs]
    if missing:
        raise ValueError(f"bet_probs: no probability for infosets {missing}")
    p = np.array([float(bet_probs[n]) for n in treeplex.infoset_names])
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"bet_probs: probabilities must lie in [0, 1], got {dict(bet_probs)}")
    return np.stack([1 - p, p], axis=-1)


def kuhn_nash(alpha: float = 1 / 6) -> dict[str, float]:
    """An equilibrium of Kuhn poker (both seats), first player's parameter ``alpha ∈ [0, 1/3]``."""
    if not 0 <= alpha <= 1 / 3:
        raise ValueError(f"alpha: expected 0 <= alpha <= 1/3, got {alpha}")
    return {
        "0": alpha, "1": 0.0, "2": 3 * alpha,
        "0pb": 0.0, "1pb": alpha + 1 / 3, "2pb": 1.0,
        "0p": 1 / 3, "1p": 0.0, "2p": 1.0,
        "0b": 0.0, "1b": 1 / 3, "2b": 1.0,
    }  # fmt: skip


def kuhn_always_bet_call() -> dict[str, float]:
    """Bets and calls with every card (exploitable: fold J, call/bet K)."""
    return dict.fromkeys(KUHN_INFOSETS["p1"] + KUHN_INFOSETS["p2"], 1.0)


def kuhn_never_bluff() -> dict[str, float]:
    """Bets only with K; calls with Q or K, folds J."""
    names = KUHN_INFOSETS["p1"] + KUHN_INFOSETS["p2"]
    return {n: float(n[0] != "0") if n.endswith("b") else float(n[0] == "2") for n in names}
