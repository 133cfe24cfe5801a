"""MPO / OMPO: multi-step preference optimisation as two-player constant-sum Markov games
(Wu, Viano, Chen, Zhu, Antonakopoulos, Gu, Cevher, arXiv 2502.12678).

* :mod:`~lions_jax.mpo.tabular` — exact occupancies, marginal and pairwise Q, game values, best
  responses and exploitability on finite-horizon Markov games with pairwise preferences.
* :mod:`~lions_jax.mpo.updates` — MPO (per-state multiplicative weights), OMPO in policy space
  and OMPO's exact occupancy-space optimistic mirror-descent step.
* :mod:`~lions_jax.mpo.losses` — the MPO / OMPO / SPPO squared losses on log-probabilities of
  any LM, and the K-sample winning-rate Q̂.
* :mod:`~lions_jax.mpo.structured` — the same exact quantities on large games with sparse
  (fixed fan-out) transitions and low-rank skew-bilinear preferences, O(H·S·A·(F + k)) per update.
* :mod:`~lions_jax.mpo.train` — ``make_train(cfg) -> train(key)``: self-play on a random game
  (MPO, OMPO, occupancy-space mirror descent, and the trajectory-level SPPO baseline).
* :mod:`~lions_jax.mpo.lm` — a toy multi-turn conversation game with a small learned LM and a
  non-transitive judge: MPO, OMPO, trajectory-level SPPO, iterative DPO and Step-DPO.
"""

from lions_jax.mpo.losses import mpo_loss, ompo_loss, sppo_loss, winning_rate_q
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
from lions_jax.mpo.train import (
    MAX_SEQUENCES,
    METHODS,
    GamesConfig,
    GamesOutput,
    make_train,
    open_loop_sequences,
    sequence_occupancies,
    sequence_payoff,
    sppo_trajectory_update,
)
from lions_jax.mpo.updates import mpo_update, ompo_occupancy_update, ompo_policy_update

__all__ = [
    "MAX_SEQUENCES",
    "METHODS",
    "GamesConfig",
    "GamesOutput",
    "MarkovGame",
    "StructuredGame",
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
    "open_loop_sequences",
    "pairwise_q",
    "policy_from_occupancy",
    "random_game",
    "random_structured_game",
    "sequence_occupancies",
    "sequence_payoff",
    "sppo_loss",
    "sppo_trajectory_update",
    "structured_best_response",
    "structured_exploitability",
    "structured_game_value",
    "structured_marginal_q",
    "structured_marginal_reward",
    "structured_occupancy",
    "structured_ompo_occupancy_update",
    "to_dense",
    "validate_game",
    "validate_structured_game",
    "winning_rate_q",
]
