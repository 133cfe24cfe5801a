"""MPO / OMPO: multi-step preference optimisation as two-player constant-sum Markov games
(Wu, Viano, Chen, Zhu, Antonakopoulos, Gu, Cevher, arXiv 2502.12678).

* :mod:`~lions_jax.mpo.tabular` — exact occupancies, marginal and pairwise Q, game values, best
  responses and exploitability on finite-horizon Markov games with pairwise preferences.
* :mod:`~lions_jax.mpo.updates` — MPO (per-state multiplicative weights), OMPO in policy space
  and OMPO's exact occupancy-space optimistic mirror-descent step.
* :mod:`~lions_jax.mpo.losses` — the MPO / OMPO / SPPO squared losses on log-probabilities of
  any LM, and the K-sample winning-rate Q̂.
* :mod:`~lions_jax.mpo.train` — ``make_train(cfg) -> train(key)``: self-play on a random game.
"""

from lions_jax.mpo.losses import mpo_loss, ompo_loss, sppo_loss, winning_rate_q
from lions_jax.mpo.tabular import (
    MarkovGame,
    best_response,
    exploitability,
    game_value,
    marginal_q,
    marginal_reward,
    occupancy,
    pairwise_q,
    policy_from_occupancy,
    random_game,
    validate_game,
)
from lions_jax.mpo.train import METHODS, GamesConfig, GamesOutput, make_train
from lions_jax.mpo.updates import mpo_update, ompo_occupancy_update, ompo_policy_update

__all__ = [
    "METHODS",
    "GamesConfig",
    "GamesOutput",
    "MarkovGame",
    "best_response",
    "exploitability",
    "game_value",
    "make_train",
    "marginal_q",
    "marginal_reward",
    "mpo_loss",
    "mpo_update",
    "occupancy",
    "ompo_loss",
    "ompo_occupancy_update",
    "ompo_policy_update",
    "pairwise_q",
    "policy_from_occupancy",
    "random_game",
    "sppo_loss",
    "validate_game",
    "winning_rate_q",
]
