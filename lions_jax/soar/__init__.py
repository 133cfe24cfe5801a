"""IL-SOAR: imitation learning with a soft optimistic actor-critic (Viel, Viano, Cevher, arXiv 2502.19859).

* :mod:`~lions_jax.soar.tabular` — tabular SOAR: projected-OGD cost player, L independently
  estimated transition models, optimistic Q (mean − β·std, min, UCB), mirror-descent policy
  player, exact evaluation; test MDPs (:func:`needle_mdp`, :func:`chain_mdp`,
  :func:`gridworld_mdp`).

The deep variant on brax builds on :mod:`lions_jax.rl` (SAC with L critic pairs and the
optimistic actor aggregation :func:`lions_jax.rl.optimistic_value`).
"""

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
