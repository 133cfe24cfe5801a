"""Self-play on random tabular Markov games: ``make_train(cfg) -> train(key)``.

``train(key)`` draws a random non-transitive game (:func:`~lions_jax.mpo.tabular.random_game`)
from ``key``, starts from the uniform policy and runs ``num_updates`` exact updates of one method
in a ``lax.scan``, recording at ``num_log`` points the exploitability of the last iterate and of
the average-occupancy policy (the output MPO's and OMPO's guarantees are about):

* ``"mpo"`` — :func:`~lions_jax.mpo.updates.mpo_update` on :math:`\\bar Q^{t,t}`;
* ``"ompo"`` — :func:`~lions_jax.mpo.updates.ompo_policy_update`, exponent
  :math:`\\beta(2\\bar Q^{t,t} - \\bar Q^{t,t-1})`;
* ``"ompo_occupancy"`` — :func:`~lions_jax.mpo.updates.ompo_occupancy_update` on
  :math:`2g^t - g^{t-1}` (the paper's theory algorithm);
* ``"md_occupancy"`` — the same step without optimism (:math:`g^{t-1} := g^t`);
* ``"sppo_trajectory"`` — the trajectory-level SPPO ("bandit self-play") baseline: SPPO
  (Wu et al. 2024) with the whole H-step response as one action. The policy is a distribution
  :math:`w` over the :math:`A^H` *open-loop* action sequences :math:`(a_0, \\dots, a_{H-1})`
  chosen at the initial state, so it cannot react to the stochastic intermediate states (per-step
  MPO can). With :math:`M` the payoff matrix of the sequences (:func:`sequence_payoff`), the
  update is :func:`sppo_trajectory_update`,
  :math:`\\log w \\leftarrow \\log w + \\beta(Mw - H/2)` renormalised. Its exploitability is
  measured in the full Markov game: a mixture of sequences has occupancy
  :math:`d = \\sum_i w_i d^{(i)}`, a best response depends only on the opponent's occupancy, and
  the self-play value is :math:`H/2` for any strategy, so the exploitability of the Markov policy
  :func:`~lions_jax.mpo.tabular.policy_from_occupancy` of :math:`d` (which has occupancy
  :math:`d`) is the mixture's. Only for :math:`A^H \\le` :data:`MAX_SEQUENCES`.

``beta`` is traced (a β grid vmaps with the games); the method, sizes and counts are static.
"""

import dataclasses
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lions_jax.mpo.tabular import (
    MarkovGame,
    exploitability,
    marginal_q,
    marginal_reward,
    occupancy,
    policy_from_occupancy,
    random_game,
)
from lions_jax.mpo.updates import mpo_update, ompo_occupancy_update, ompo_policy_update

__all__ = [
    "MAX_SEQUENCES",
    "METHODS",
    "GamesConfig",
    "GamesOutput",
    "make_train",
    "open_loop_sequences",
    "sequence_occupancies",
    "sequence_payoff",
    "sppo_trajectory_update",
]

METHODS = ("mpo", "ompo", "ompo_occupancy", "md_occupancy", "sppo_trajectory")

MAX_SEQUENCES = 4096
"""The largest number :math:`A^H` of open-loop sequences ``"sppo_trajectory"`` enumerates (its
payoff matrix is :math:`A^H \\times A^H` per game)."""


def _check_num_sequences(num_actions: int, horizon: int) -> None:
    if num_actions**horizon > MAX_SEQUENCES:
        raise ValueError(
            f"sppo_trajectory: A^H = {num_actions}^{horizon} = {num_actions**horizon:,} open-loop "
            f"sequences exceeds MAX_SEQUENCES = {MAX_SEQUENCES:,}"
        )


def open_loop_sequences(num_actions: int, horizon: int) -> np.ndarray:
    """All :math:`A^H` action sequences, ``(A^H, H)`` int32, in lexicographic order (``a_0``
    most significant). Raises ``ValueError`` above :data:`MAX_SEQUENCES`."""
    _check_num_sequences(num_actions, horizon)
    idx = np.unravel_index(np.arange(num_actions**horizon), (num_actions,) * horizon)
    return np.stack(idx, -1).astype(np.int32).reshape(-1, horizon)


@jax.jit
def sequence_occupancies(game: MarkovGame) -> jax.Array:
    """``d^{(i)}_h(s, a)``, ``(A^H, H, S, A)``: the occupancy of each open-loop sequence of
    :func:`open_loop_sequences` (action ``a_h`` at step h whatever the state)."""
    seqs = open_loop_sequences(game.num_actions, game.horizon)
    onehot = jax.nn.one_hot(seqs, game.num_actions, dtype=game.reward.dtype)  # (N, H, A)
    policies = jnp.broadcast_to(
        onehot[:, :, None, :], (seqs.shape[0], game.horizon, game.num_states, game.num_actions)
    )
    return jax.vmap(occupancy, in_axes=(None, 0))(game, policies)


@jax.jit
def sequence_payoff(game: MarkovGame, sequence_occupancy: ArrayLike) -> jax.Array:
    """``M[i, j] = Σ_h ⟨d^{(i)}_h, g_h(d^{(j)})⟩``, ``(N, N)``: the expected total preference of
    sequence i over sequence j (both rolled out independently from state 0); ``M + Mᵀ = H``."""
    d = jnp.asarray(sequence_occupancy)
    g = jax.vmap(marginal_reward, in_axes=(None, 0))(game, d)
    return jnp.einsum("ihsa,jhsa->ij", d, g)


@jax.jit
def sppo_trajectory_update(
    log_w: ArrayLike, payoff: ArrayLike, beta: ArrayLike, horizon: ArrayLike
) -> jax.Array:
    """SPPO over sequences: ``log w ← log w + β (M w − H/2)`` renormalised.

    ``M w`` is each sequence's expected *total* preference over the mixture (not the per-step
    average), so β means the same as for :func:`~lions_jax.mpo.updates.mpo_update`, whose
    :math:`\\bar Q` sums the remaining steps' preferences; the baseline ``H/2`` (the tie)
    cancels in the normalisation. With ``H = 1`` this is ``mpo_update`` at state 0."""
    log_w = jnp.asarray(log_w)
    target = jnp.asarray(payoff) @ jnp.exp(log_w) - jnp.asarray(horizon, log_w.dtype) / 2
    return jax.nn.log_softmax(log_w + beta * target)


@dataclasses.dataclass(frozen=True, kw_only=True)
class GamesConfig:
    """One self-play run on a random game.

    Attributes:
      num_states, num_actions, horizon: the game's size (S, A, H).
      method: one of :data:`METHODS` (``"sppo_trajectory"`` needs ``A^H <=``
        :data:`MAX_SEQUENCES`).
      beta: step size (also accepted traced by ``train(key, beta)``).
      num_updates: T.
      num_log: recorded points (must divide T).
      feature_dim, reward_scale, transition_concentration: :func:`random_game`'s knobs.
    """

    num_states: int = 20
    num_actions: int = 5
    horizon: int = 3
    method: Literal["mpo", "ompo", "ompo_occupancy", "md_occupancy", "sppo_trajectory"] = "ompo"
    beta: float = 1.0
    num_updates: int = 1_000
    num_log: int = 50
    feature_dim: int = 8
    reward_scale: float = 3.0
    transition_concentration: float = 0.5

    def __post_init__(self) -> None:
        for name in ("num_states", "num_updates", "num_log", "feature_dim"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive int, got {getattr(self, name)!r}")
        if not isinstance(self.num_actions, int) or self.num_actions < 2:
            raise ValueError(f"num_actions: expected an int >= 2, got {self.num_actions!r}")
        if not isinstance(self.horizon, int) or self.horizon < 1:
            raise ValueError(f"horizon: expected an int >= 1, got {self.horizon!r}")
        if self.method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {self.method!r}")
        if self.num_updates % self.num_log:
            raise ValueError(
                f"num_log: expected a divisor of num_updates={self.num_updates}, got {self.num_log}"
            )
        if not self.beta > 0:
            raise ValueError(f"beta: expected > 0, got {self.beta}")
        if self.method == "sppo_trajectory":
            _check_num_sequences(self.num_actions, self.horizon)


class GamesOutput(NamedTuple):
    """At the ``num_log`` recorded updates: exploitability of the last iterate and of the
    average-occupancy policy; ``policy``: the final last iterate ``(H, S, A)`` (for
    ``"sppo_trajectory"``: the Markov policy with the last mixture's occupancy)."""

    exploitability_last: jax.Array
    exploitability_average: jax.Array
    policy: jax.Array


def make_train(cfg: GamesConfig) -> Any:
    """``train(key, beta=cfg.beta) -> GamesOutput``; ``jax.vmap`` over keys (games) and betas.
    Raises ``ValueError`` for ``"sppo_trajectory"`` with ``A^H >`` :data:`MAX_SEQUENCES`."""
    if cfg.method == "sppo_trajectory":
        _check_num_sequences(cfg.num_actions, cfg.horizon)
    steps = cfg.num_updates // cfg.num_log

    def train(key: ArrayLike, beta: ArrayLike | None = None) -> GamesOutput:
        beta = cfg.beta if beta is None else beta
        game = random_game(
            key,
            cfg.num_states,
            cfg.num_actions,
            cfg.horizon,
            feature_dim=cfg.feature_dim,
            reward_scale=cfg.reward_scale,
            transition_concentration=cfg.transition_concentration,
        )
        if cfg.method == "sppo_trajectory":
            init, update, policies = _sppo_trajectory(game, beta)
        else:
            init, update, policies = _markov(game, cfg.method, beta)

        def chunk(carry: Any, _: Any) -> tuple[Any, tuple[Any, Any]]:
            carry, _ = jax.lax.scan(update, carry, None, length=steps)
            last, average = policies(carry)
            return carry, (exploitability(game, last), exploitability(game, average))

        carry, (last, average) = jax.lax.scan(chunk, init, None, length=cfg.num_log)
        return GamesOutput(last, average, policies(carry)[0])

    return train


def _markov(game: MarkovGame, method: str, beta: Any) -> tuple[Any, Any, Any]:
    """Per-step (Markov) policies: carry ``(log π^t, d^{t-1}, Σ_{τ<t} d^τ, t)``."""
    dtype = game.reward.dtype
    shape = (game.horizon, game.num_states, game.num_actions)
    log_pi0 = jnp.full(shape, -jnp.log(game.num_actions), dtype)
    d0 = occupancy(game, jnp.exp(log_pi0))

    def update(carry: Any, _: Any) -> tuple[Any, None]:
        log_pi, d_prev, d_sum, t = carry
        pi = jnp.exp(log_pi)
        d = occupancy(game, pi)
        if method == "mpo":
            new = mpo_update(log_pi, marginal_q(game, pi, d), beta)
        elif method == "ompo":
            q_tt = marginal_q(game, pi, d)
            q_ttm1 = marginal_q(game, pi, d_prev)
            new = ompo_policy_update(log_pi, q_tt, q_ttm1, beta)
        else:
            g_t = marginal_reward(game, d)
            g_tm1 = g_t if method == "md_occupancy" else marginal_reward(game, d_prev)
            new = ompo_occupancy_update(game, log_pi, g_t, g_tm1, beta)
        return (new, d, d_sum + d, t + 1), None

    def policies(carry: Any) -> tuple[Any, Any]:
        log_pi, _, d_sum, t = carry
        return jnp.exp(log_pi), policy_from_occupancy(d_sum / t)

    init = (log_pi0, d0, jnp.zeros(shape, dtype), jnp.zeros((), dtype))
    return init, update, policies


def _sppo_trajectory(game: MarkovGame, beta: Any) -> tuple[Any, Any, Any]:
    """Trajectory-level SPPO: carry ``(log w^t, Σ_{τ<t} w^τ)`` over the open-loop sequences; the
    policies are the Markov policies of the mixtures' occupancies."""
    dtype = game.reward.dtype
    d_seq = sequence_occupancies(game)
    payoff = sequence_payoff(game, d_seq)
    n = d_seq.shape[0]
    log_w0 = jnp.full(n, -jnp.log(n), dtype)

    def update(carry: Any, _: Any) -> tuple[Any, None]:
        log_w, w_sum = carry
        new = sppo_trajectory_update(log_w, payoff, beta, game.horizon)
        return (new, w_sum + jnp.exp(log_w)), None

    def policies(carry: Any) -> tuple[Any, Any]:
        log_w, w_sum = carry
        d_last = jnp.einsum("i,ihsa->hsa", jnp.exp(log_w), d_seq)
        d_avg = jnp.einsum("i,ihsa->hsa", w_sum / w_sum.sum(), d_seq)
        return policy_from_occupancy(d_last), policy_from_occupancy(d_avg)

    return (log_w0, jnp.zeros(n, dtype)), update, policies
