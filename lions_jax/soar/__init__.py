"""IL-SOAR: imitation learning with a soft optimistic actor-critic (Viel, Viano, Cevher, arXiv 2502.19859).

* :mod:`~lions_jax.soar.tabular` — tabular SOAR: projected-OGD cost player, L independently
  estimated transition models, optimistic Q (mean − β·std, min, UCB), mirror-descent policy
  player, exact evaluation; test MDPs (:func:`needle_mdp`, :func:`chain_mdp`,
  :func:`gridworld_mdp`).

* :mod:`~lions_jax.soar.deep` — deep SOAR on brax: the primal–dual outer loop with SAC (L critic
  pairs, optimistic actor :func:`lions_jax.rl.optimistic_value`) as the policy player and the
  reward players of ML-IRL (state / state-action), f-IRL (reverse KL, with its discriminator) and
  CSIL (BC prior, coherent reward); ``deep.make_train(cfg, expert)(key, beta, sigma)``.

Experiments: ``soar-tabular`` and ``soar-brax`` (``lions-jax run ...``).
"""

from lions_jax.soar import deep
from lions_jax.soar.tabular import (
    SoarState,
    TabularMDP,
    chain_mdp,
    gridworld_mdp,
    make_tabular_soar,
    needle_mdp,
    occupancy,
    optimal_policy,
    optimistic_q,
    policy_value,
    project_cost,
    sample_trajectory_counts,
)

__all__ = [
    "SoarState",
    "TabularMDP",
    "chain_mdp",
    "deep",
    "gridworld_mdp",
    "make_tabular_soar",
    "needle_mdp",
    "occupancy",
    "optimal_policy",
    "optimistic_q",
    "policy_value",
    "project_cost",
    "sample_trajectory_counts",
]
