r"""FLORAL's kernel-SVM pieces (arXiv 2502.17121): the generic kernel SVM (kernels, dual, exact
projection onto the box-hyperplane set, projected-gradient / FISTA solve, decision function) lives
in :mod:`lions_jax._src.kernel_svm`, shared with SPD, and is re-exported here; the label-flipping
attacker :func:`flip_labels` is FLORAL's own.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lions_jax._src.kernel_svm import (
    _check_labels_vector,
    decision_function,
    linear_kernel,
    pgd_step,
    project_box_hyperplane,
    rbf_kernel,
    solve_svm_dual,
    svm_dual,
    svm_dual_grad,
)

__all__ = [
    "decision_function",
    "flip_labels",
    "linear_kernel",
    "pgd_step",
    "project_box_hyperplane",
    "rbf_kernel",
    "solve_svm_dual",
    "svm_dual",
    "svm_dual_grad",
]


def flip_labels(
    key: Any,
    alpha: ArrayLike,
    y: ArrayLike,
    budget: Any,
    *,
    max_budget: int | None = None,
    candidate_factor: int = 2,
    sv_threshold: float = 1e-5,
) -> jax.Array:
    r"""FLORAL's randomized top-k attacker: negate ``budget`` labels among the top support vectors.

    Support vectors are :math:`\{i : \alpha_i > \text{sv\_threshold}\}`; the candidates are the
    ``min(|SV|, candidate_factor * budget)`` with the largest :math:`\alpha_i`; ``budget`` of them
    (all, if fewer) are drawn uniformly without replacement and their labels in ``y`` (the given
    labels: flips never accumulate) are negated (the official code's ``randomized_sv_flip``).

    ``budget`` may be a traced integer (so one compiled program vmaps over budgets) when the
    static ``max_budget`` bounds it; a Python ``budget`` is its own bound.
    """
    alpha, y = jnp.asarray(alpha), jnp.asarray(y)
    _check_labels_vector(alpha, y)
    n = alpha.shape[0]
    if max_budget is None:
        if not isinstance(budget, int | np.integer):
            raise ValueError("max_budget: required (a Python int) when budget is an array")
        max_budget = int(budget)
    max_budget = int(max_budget)
    if isinstance(budget, int | np.integer) and not 0 <= budget <= max_budget:
        raise ValueError(f"budget must lie in [0, max_budget={max_budget}], got {budget}")
    if not 0 <= max_budget <= n or candidate_factor < 1:
        raise ValueError(
            f"max_budget must lie in [0, n={n}] and candidate_factor >= 1, "
            f"got {max_budget}, {candidate_factor}"
        )
    if max_budget == 0:
        return y
    budget = jnp.asarray(budget, jnp.int32)
    is_sv = alpha > sv_threshold
    order = jnp.argsort(jnp.where(is_sv, -alpha, jnp.inf))  # SVs by alpha, descending
    rank = jnp.empty_like(order).at[order].set(jnp.arange(n))
    n_cand = jnp.minimum(jnp.sum(is_sv), candidate_factor * budget)
    candidate = rank < n_cand
    priority = jnp.where(candidate, jax.random.uniform(key, alpha.shape), -1.0)
    top, idx = jax.lax.top_k(priority, max_budget)  # a uniform random order of the candidates
    chosen = (top >= 0.0) & (jnp.arange(max_budget) < budget)
    flip = jnp.zeros(alpha.shape, bool).at[idx].set(chosen)
    return jnp.where(flip, -y, y)
