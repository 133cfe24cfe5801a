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
* ``"md_occupancy"`` — the same step without optimism (:math:`g^{t-1} := g^t`).

``beta`` is traced (a β grid vmaps with the games); the method, sizes and counts are static.
"""

import dataclasses
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lions_jax.mpo.tabular import (
    exploitability,
    marginal_q,
    marginal_reward,
    occupancy,
    policy_from_occupancy,
    random_game,
)
from lions_jax.mpo.updates import mpo_update, ompo_occupancy_update, ompo_policy_update

__all__ = ["METHODS", "GamesConfig", "GamesOutput", "make_train"]

METHODS = ("mpo", "ompo", "ompo_occupancy", "md_occupancy")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GamesConfig:
    """One self-play run on a random game.

    Attributes:
      num_states, num_actions, horizon: the game's size (S, A, H).
      method: one of :data:`METHODS`.
      beta: step size (also accepted traced by ``train(key, beta)``).
      num_updates: T.
      num_log: recorded points (must divide T).
      feature_dim, reward_scale, transition_concentration: :func:`random_game`'s knobs.
    """

    num_states: int = 20
    num_actions: int = 5
    horizon: int = 3
    method: Literal["mpo", "ompo", "ompo_occupancy", "md_occupancy"] = "ompo"
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


class GamesOutput(NamedTuple):
    """At the ``num_log`` recorded updates: exploitability of the last iterate and of the
    average-occupancy policy; ``policy``: the final last iterate ``(H, S, A)``."""

    exploitability_last: jax.Array
    exploitability_average: jax.Array
    policy: jax.Array


def make_train(cfg: GamesConfig) -> Any:
    """``train(key, beta=cfg.beta) -> GamesOutput``; ``jax.vmap`` over keys (games) and betas."""
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
        dtype = game.reward.dtype
        shape = (cfg.horizon, cfg.num_states, cfg.num_actions)
        log_pi0 = jnp.full(shape, -jnp.log(cfg.num_actions), dtype)
        d0 = occupancy(game, jnp.exp(log_pi0))

        def update(carry: Any, _: Any) -> tuple[Any, None]:
            log_pi, d_prev, d_sum, t = carry
            pi = jnp.exp(log_pi)
            d = occupancy(game, pi)
            if cfg.method == "mpo":
                new = mpo_update(log_pi, marginal_q(game, pi, d), beta)
            elif cfg.method == "ompo":
                q_tt = marginal_q(game, pi, d)
                q_ttm1 = marginal_q(game, pi, d_prev)
                new = ompo_policy_update(log_pi, q_tt, q_ttm1, beta)
            else:
                g_t = marginal_reward(game, d)
                g_tm1 = g_t if cfg.method == "md_occupancy" else marginal_reward(game, d_prev)
                new = ompo_occupancy_update(game, log_pi, g_t, g_tm1, beta)
            return (new, d, d_sum + d, t + 1), None

        def chunk(carry: Any, _: Any) -> tuple[Any, tuple[Any, Any]]:
            carry, _ = jax.lax.scan(update, carry, None, length=steps)
            log_pi, _, d_sum, t = carry
            avg = policy_from_occupancy(d_sum / t)
            return carry, (exploitability(game, jnp.exp(log_pi)), exploitability(game, avg))

        init = (log_pi0, d0, jnp.zeros(shape, dtype), jnp.zeros((), dtype))
        (log_pi, *_), (last, average) = jax.lax.scan(chunk, init, None, length=cfg.num_log)
        return GamesOutput(last, average, jnp.exp(log_pi))

    return train
