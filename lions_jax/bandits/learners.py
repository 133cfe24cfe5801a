r"""Bandit regret minimisers on a treeplex, driven by an estimated loss vector on sequences.

Both learners keep one table of shape ``(num_infosets, num_actions)`` and update every infoset
with its *counterfactual* loss :math:`q(h, a)` (:func:`~lions_jax.bandits.treeplex.counterfactual_losses`
of the estimate under the current strategy) — counterfactual regret minimisation (Zinkevich et al.
2007) with a local learner per infoset:

* ``"hedge"`` — log-space exponential weights, :math:`\log w_h \leftarrow \log w_h - \eta\, q(h,
  \cdot)` (renormalised). On a simplex (one infoset) this *is* Exp3 (:func:`~lions_jax.bandits.exp3_update`).
* ``"rm"`` — regret matching (Hart & Mas-Colell 2000): cumulative regrets :math:`r_h \mathrel{+}=
  v(h) - q(h, \cdot)`, play :math:`\propto [r_h]_+` (uniform when none is positive). Fed the
  outcome-sampling estimate (one sampled terminal, importance-weighted by the realisation weight
  of the player's sequence under the *sampling* strategy) this is outcome-sampling MCCFR
  (Lanctot et al. 2009): opponent and chance reach cancel in the importance weight.
"""

from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lions_jax.bandits.treeplex import Treeplex, counterfactual_losses

__all__ = ["LEARNERS", "learner_init", "learner_policy", "learner_update"]

LEARNERS = ("hedge", "rm")
Learner = Literal["hedge", "rm"]


def learner_init(treeplex: Treeplex, dtype: Any = jnp.float32) -> jax.Array:
    """All-zero table: uniform play for both learners."""
    return jnp.zeros(treeplex.sequences.shape, dtype)


def learner_policy(kind: Learner, table: ArrayLike) -> jax.Array:
    """The behavioural strategy ``(num_infosets, num_actions)`` the learner plays."""
    table = jnp.asarray(table)
    if kind == "hedge":
        return jax.nn.softmax(table, axis=-1)
    if kind == "rm":
        positive = jnp.maximum(table, 0)
        total = positive.sum(-1, keepdims=True)
        return jnp.where(total > 0, positive / jnp.where(total > 0, total, 1), 1 / table.shape[-1])
    raise ValueError(f"kind: expected one of {LEARNERS}, got {kind!r}")


def learner_update(
    treeplex: Treeplex, kind: Learner, table_tm1: ArrayLike, loss_hat_t: ArrayLike, eta: ArrayLike
) -> jax.Array:
    """One CFR step on the estimated sequence losses ``loss_hat_t`` (``eta`` is unused by ``rm``)."""
    policy = learner_policy(kind, table_tm1)
    q, v = counterfactual_losses(treeplex, loss_hat_t, policy)
    if kind == "hedge":
        logits = jnp.asarray(table_tm1) - eta * q
        return logits - jax.nn.logsumexp(logits, axis=-1, keepdims=True)
    return jnp.asarray(table_tm1) + (v[:, None] - q)
