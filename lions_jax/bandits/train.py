r"""Repeated zero-sum play with bandit feedback: ``make_train(cfg) -> train(key)``.

Each round Alice plays :math:`x_t = (1-\alpha)\mu + \alpha p_t` (sequence form; a simplex for
matrix games), Bob plays :math:`y_t`, one terminal is sampled with probability
:math:`\pi_c(z)\,x_t[\sigma(z)]\,y_t[\tau(z)]`, and Alice observes only her last sequence
:math:`\sigma_t` and her loss. She updates her base learner (:mod:`~lions_jax.bandits.learners`) on
the importance-weighted estimate :math:`\hat\ell_t = \mathrm{loss}_t\, e_{\sigma_t} /
x_t[\sigma_t]` and her phased-aggression state (:func:`~lions_jax.bandits.pa_update`). The three
Alice variants differ only in the initial aggression, so they share one compiled program
(:class:`LearnerParams` is traced and can be vmapped):

* ``"comparator"`` — α = 0: always μ (minimax play when μ is an equilibrium);
* ``"base"`` — α = 1: the base learner alone (Exp3 = ``"hedge"`` on a simplex; outcome-sampling
  MCCFR = ``"rm"`` on a treeplex);
* ``"pa"`` — α₁ = 1/τ, doubling at each phase end (best of both worlds).

Bob (static ``opponent``): ``"fixed"`` (any behavioural strategy, e.g. minimax or exploitable),
``"best_response"`` (best-responds every round to Alice's current mixed strategy :math:`x_t`), or
``"switching"`` (fixed for ``switch_round`` rounds, then best-responding).

Everything is accounted in expectation over Alice's sampling given the history (low variance)
and as realised: ``regret_comparator`` :math:`= \sum_t \langle x_t - \mu, \ell_t\rangle`,
``regret_best`` :math:`= \sum_t \langle x_t, \ell_t\rangle - \min_{x \in Q}\langle x, \sum_t
\ell_t\rangle` (the best fixed strategy in hindsight; a best response on the treeplex), with
:math:`\ell_t = M y_t`; sums are Kahan-compensated so float32 stays exact enough over 10⁶ rounds.
``train(key)`` is one ``lax.scan`` over the rounds (nested: ``num_log`` recorded points);
``jax.jit(jax.vmap(train))(keys)`` runs seeds in parallel.
"""

import dataclasses
import math
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lions_jax.bandits.core import (
    _kahan,
    iw_loss_estimate,
    pa_init,
    pa_mix,
    pa_threshold,
    pa_update,
)
from lions_jax.bandits.games import Game, terminal_probs
from lions_jax.bandits.learners import LEARNERS, learner_init, learner_policy, learner_update
from lions_jax.bandits.treeplex import Treeplex, behavioural_to_sequence, best_response

__all__ = [
    "OPPONENTS",
    "VARIANTS",
    "BanditConfig",
    "LearnerParams",
    "OpponentParams",
    "TrainOutput",
    "learner_params",
    "make_run",
    "make_train",
    "opponent_params",
    "realisation_weights",
]

OPPONENTS = ("fixed", "best_response", "switching")
VARIANTS = ("comparator", "base", "pa")


def realisation_weights(treeplex: Treeplex, behavioural: Any) -> np.ndarray:
    """NumPy (concrete) version of :func:`~lions_jax.bandits.behavioural_to_sequence`."""
    b = np.asarray(behavioural, dtype=np.float64)
    x = np.zeros(treeplex.num_sequences)
    x[0] = 1.0
    for level in treeplex.levels:
        x[treeplex.sequences[level]] = x[treeplex.parent[level], None] * b[level]
    return x


@dataclasses.dataclass(frozen=True, kw_only=True)
class BanditConfig:
    """One repeated game.

    Attributes:
      game: a :class:`~lions_jax.bandits.Game`.
      comparator: Alice's comparator μ as a behavioural strategy ``(infosets, actions)`` (a
        matrix game: ``[probs]``); every sequence needs positive realisation weight (else
        ``ValueError``: use :func:`~lions_jax.bandits.epsilon_floor`).
      num_rounds: T.
      opponent: ``"fixed"``, ``"best_response"`` or ``"switching"``.
      opponent_strategy: Bob's behavioural strategy (``fixed``, and ``switching`` before the switch).
      switch_round: the round at which a switching Bob starts best-responding (default T // 2).
      variant: ``"pa"``, ``"base"`` or ``"comparator"`` (see the module docstring).
      base: the base learner, ``"hedge"`` (Exp3 on a simplex) or ``"rm"`` (outcome-sampling MCCFR).
      c: PA's threshold constant in τ = c √(T log(nT)/μ_min).
      eta: Hedge's step size; default √(2 log(A) μ_min / T) (A actions per infoset).
      num_log: recorded points along the run (must divide T).
    """

    game: Game
    comparator: Any
    num_rounds: int
    opponent: Literal["fixed", "best_response", "switching"] = "fixed"
    opponent_strategy: Any = None
    switch_round: int | None = None
    variant: Literal["comparator", "base", "pa"] = "pa"
    base: Literal["hedge", "rm"] = "hedge"
    c: float = 1.0
    eta: float | None = None
    num_log: int = 100

    def __post_init__(self) -> None:
        if not isinstance(self.game, Game):
            raise ValueError(
                f"game: expected a lions_jax.bandits.Game, got {type(self.game).__name__}"
            )
        alice, bob = self.game.alice, self.game.bob
        alice.check_behavioural(self.comparator, "comparator")
        weights = realisation_weights(alice, self.comparator)
        if weights[1:].min() <= 0:
            seq = int(np.argmin(weights[1:])) + 1
            raise ValueError(
                f"comparator: sequence {alice.sequence_name(seq)!r} has realisation weight 0; the "
                "O(1)-regret guarantee needs a comparator that supports every action — use "
                "lions_jax.bandits.epsilon_floor(comparator, eps)"
            )
        if self.opponent not in OPPONENTS:
            raise ValueError(f"opponent: expected one of {OPPONENTS}, got {self.opponent!r}")
        if self.opponent != "best_response":
            if self.opponent_strategy is None:
                raise ValueError(f"opponent_strategy: required for opponent={self.opponent!r}")
            bob.check_behavioural(self.opponent_strategy, "opponent_strategy")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant: expected one of {VARIANTS}, got {self.variant!r}")
        if self.base not in LEARNERS:
            raise ValueError(f"base: expected one of {LEARNERS}, got {self.base!r}")
        if not isinstance(self.num_rounds, int) or self.num_rounds < 1:
            raise ValueError(f"num_rounds: expected a positive int, got {self.num_rounds!r}")
        if not isinstance(self.num_log, int) or self.num_log < 1 or self.num_rounds % self.num_log:
            raise ValueError(
                f"num_log: expected a positive divisor of num_rounds={self.num_rounds}, got {self.num_log!r}"
            )
        if self.switch_round is not None and not 0 <= self.switch_round <= self.num_rounds:
            raise ValueError(
                f"switch_round: expected 0..{self.num_rounds}, got {self.switch_round}"
            )
        if not self.c > 0:
            raise ValueError(f"c: expected > 0, got {self.c}")
        if self.eta is not None and not self.eta > 0:
            raise ValueError(f"eta: expected > 0, got {self.eta}")

    @property
    def mu_min(self) -> float:
        return float(realisation_weights(self.game.alice, self.comparator)[1:].min())


class LearnerParams(NamedTuple):
    """Alice's traced knobs (vmappable): initial aggression, PA threshold τ, Hedge step size."""

    alpha_init: jax.Array
    tau: jax.Array
    eta: jax.Array


def learner_params(
    cfg: BanditConfig, variant: str | None = None, c: float | None = None
) -> LearnerParams:
    """The defaults of ``cfg`` (optionally for another ``variant`` or ``c``)."""
    variant = cfg.variant if variant is None else variant
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    c = cfg.c if c is None else c
    alice = cfg.game.alice
    tau = float(pa_threshold(cfg.num_rounds, alice.num_sequences - 1, cfg.mu_min, c))
    eta = cfg.eta or math.sqrt(2 * math.log(alice.num_actions) * cfg.mu_min / cfg.num_rounds)
    alpha = {"comparator": 0.0, "base": 1.0, "pa": min(1.0, 1.0 / tau)}[variant]
    dtype = jnp.result_type(float)
    return LearnerParams(*(jnp.asarray(v, dtype) for v in (alpha, tau, eta)))


class TrainOutput(NamedTuple):
    """Cumulative quantities at the ``num_log`` recorded rounds ``T/num_log · (1, 2, ...)``.

    regret_comparator: Σ ⟨x_t − μ, ℓ_t⟩ (expected over Alice's sampling).
    regret_comparator_realised: Σ (loss_t − ⟨μ, ℓ_t⟩).
    regret_best: Σ ⟨x_t, ℓ_t⟩ − min_x ⟨x, Σ ℓ_t⟩.
    payoff: Alice's cumulative realised payoff (game units).
    expected_payoff: Σ payoff(⟨x_t, ℓ_t⟩).
    alpha: the aggression in force at the recorded round.
    num_restarts: phases finished by the end.
    """

    regret_comparator: jax.Array
    regret_comparator_realised: jax.Array
    regret_best: jax.Array
    payoff: jax.Array
    expected_payoff: jax.Array
    alpha: jax.Array
    num_restarts: jax.Array


class _Carry(NamedTuple):
    key: jax.Array
    table: jax.Array
    pa: Any
    sums: (
        jax.Array
    )  # Kahan pairs: [regret_comp, expected_loss, realised_loss, realised_regret_comp]
    sums_comp: jax.Array
    loss_vec: jax.Array  # Σ ℓ_t on Alice's sequences (Kahan)
    loss_vec_comp: jax.Array
    t: jax.Array


def _blocked_cumsum(v: jax.Array) -> jax.Array:
    """``cumsum`` of a short vector as two small triangular matmuls over √n blocks (XLA:CPU
    lowers ``cumsum`` to a quadratic reduce-window; this is ~√n times fewer operations)."""
    n = v.shape[0]
    k = math.isqrt(n - 1) + 1
    blocks = jnp.pad(v, (0, k * k - n)).reshape(k, k)
    tri = jnp.triu(jnp.ones((k, k), v.dtype))
    within = blocks @ tri
    offsets = within[:, -1] @ (tri - jnp.eye(k, dtype=v.dtype))
    return (within + offsets[:, None]).reshape(-1)[:n]


def _sample(probs: jax.Array, u: jax.Array) -> jax.Array:
    """Inverse-CDF draw of an index from unnormalised ``probs`` with one uniform ``u`` (one random
    number per round instead of one Gumbel per terminal; zero-probability indices never drawn)."""
    cdf = _blocked_cumsum(probs)
    total = cdf[-1]
    # guard the top end against rounding: never past the last index with positive probability
    return jnp.minimum(jnp.sum(cdf <= u * total), jnp.sum(cdf < total))


class OpponentParams(NamedTuple):
    """Bob's traced knobs (vmappable): his behavioural ``strategy`` before ``switch_round``, a
    best response to Alice's current strategy from then on. With ``cfg.opponent == "fixed"`` the
    program computes no best response and ignores ``switch_round``; otherwise one program covers
    fixed (``switch_round = T``), best-responding (0) and switching Bobs."""

    strategy: jax.Array
    switch_round: jax.Array


def opponent_params(cfg: BanditConfig) -> OpponentParams:
    """``cfg``'s opponent as traced data (see :class:`OpponentParams`)."""
    bob = cfg.game.bob
    y = cfg.opponent_strategy if cfg.opponent_strategy is not None else bob.uniform()
    switch = {
        "fixed": cfg.num_rounds,
        "best_response": 0,
        "switching": cfg.num_rounds // 2 if cfg.switch_round is None else cfg.switch_round,
    }[cfg.opponent]
    return OpponentParams(
        jnp.asarray(np.asarray(y, np.float64), jnp.result_type(float)),
        jnp.asarray(switch, jnp.int32),
    )


def make_run(cfg: BanditConfig) -> Any:
    """``run(key, params: LearnerParams, opponent: OpponentParams) -> TrainOutput``: ``cfg`` with
    Alice's and Bob's knobs traced, so variants, step sizes and opponents vmap in one program
    (``cfg.opponent`` only decides whether best responses are computed at all)."""
    game = cfg.game
    alice, bob = game.alice, game.bob
    dtype = jnp.result_type(float)
    m = jnp.asarray(game.loss_matrix, dtype)
    mu = jnp.asarray(realisation_weights(alice, cfg.comparator), dtype)
    term_loss = jnp.asarray(game.terminal_loss, dtype)
    term_alice = jnp.asarray(game.terminal_alice)
    steps = cfg.num_rounds // cfg.num_log
    base = cfg.base

    def bob_strategy(x: Any, opponent: "OpponentParams", y_fixed: Any, t: Any) -> Any:
        if cfg.opponent == "fixed":  # static: no best response computed at all
            return y_fixed
        y_br = best_response(bob, -(x @ m)).sequence
        return jnp.where(t < opponent.switch_round, y_fixed, y_br)

    def run(key: Any, params: Any, opponent: Any) -> TrainOutput:
        y_fixed = behavioural_to_sequence(bob, jnp.asarray(opponent.strategy, dtype))

        def round_(carry: _Carry, u: Any) -> tuple[_Carry, None]:
            p = behavioural_to_sequence(alice, learner_policy(base, carry.table))
            x = pa_mix(mu, p, carry.pa.alpha)
            y = bob_strategy(x, opponent, y_fixed, carry.t)
            ell = m @ y
            exp_loss, comp_loss = x @ ell, mu @ ell
            z = _sample(terminal_probs(game, x, y), u)
            loss = term_loss[z]
            loss_hat = iw_loss_estimate(loss, term_alice[z], x)
            table = learner_update(alice, base, carry.table, loss_hat, params.eta)
            pa, restart = pa_update(alice, carry.pa, loss_hat, mu, params.tau)
            table = jnp.where(restart, jnp.zeros_like(table), table)
            inc = jnp.stack([exp_loss - comp_loss, exp_loss, loss, loss - comp_loss])
            sums, sums_comp = _kahan(carry.sums, carry.sums_comp, inc)
            loss_vec, loss_vec_comp = _kahan(carry.loss_vec, carry.loss_vec_comp, ell)
            new = _Carry(
                carry.key, table, pa, sums, sums_comp, loss_vec, loss_vec_comp, carry.t + 1
            )
            return new, None

        def chunk(carry: _Carry, _: Any) -> tuple[_Carry, TrainOutput]:
            key, k_chunk = jax.random.split(carry.key)
            uniforms = jax.random.uniform(k_chunk, (steps,), dtype)
            carry, _ = jax.lax.scan(round_, carry._replace(key=key), uniforms)
            regret_comp, exp_loss, real_loss, real_regret = carry.sums
            t = carry.t.astype(dtype)
            best = best_response(alice, carry.loss_vec).value
            out = TrainOutput(
                regret_comparator=regret_comp,
                regret_comparator_realised=real_regret,
                regret_best=exp_loss - best,
                payoff=game.payoff_bound * (t - 2 * real_loss),
                expected_payoff=game.payoff_bound * (t - 2 * exp_loss),
                alpha=carry.pa.alpha,
                num_restarts=carry.pa.num_restarts,
            )
            return carry, out

        zeros4 = jnp.zeros(4, dtype)
        zeros_vec = jnp.zeros(alice.num_sequences, dtype)
        init = _Carry(
            key=key,
            table=learner_init(alice, dtype),
            pa=pa_init(params.alpha_init, alice.num_sequences, dtype),
            sums=zeros4,
            sums_comp=zeros4,
            loss_vec=zeros_vec,
            loss_vec_comp=zeros_vec,
            t=jnp.zeros((), jnp.int32),
        )
        _, outs = jax.lax.scan(chunk, init, None, length=cfg.num_log)
        return outs._replace(num_restarts=outs.num_restarts[-1])

    return run


def make_train(cfg: BanditConfig) -> Any:
    """``train(key) -> TrainOutput`` for ``cfg``; ``jax.jit(jax.vmap(train))(keys)`` for seeds."""
    run = make_run(cfg)
    params = learner_params(cfg)
    opponent = opponent_params(cfg)

    def train(key: ArrayLike) -> TrainOutput:
        return run(key, params, opponent)

    return train
