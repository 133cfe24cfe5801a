r"""MPO / OMPO squared-regression losses for any language model, from log-probabilities.

Per sample, unbatched (``vmap`` them): each takes the log-probability of an answer under the model
being trained (``logp_new``, differentiable) and under the frozen current policy :math:`\pi^t`
(``logp_old``), and regresses the log-ratio onto a winning-rate target (the paper's practical
Algorithms 2 and 4, which write the closed-form update :math:`\log \pi^{t+1}/\pi^t = \beta\bar Q
- \log Z` as a least-squares problem with :math:`\log Z` replaced by its value under a tie):

* :func:`mpo_loss` — :math:`\big[\log\frac{\pi_\theta(a_h \mid s_h)}{\pi^t(a_h \mid s_h)} -
  \beta\big(\hat Q_h(s_h, a_h) - \tfrac{H - h}{2}\big)\big]^2` with ``step`` :math:`h \in \{0,
  \dots, H-1\}` (0-indexed: :math:`H - h` steps remain, each worth 1/2 under a tie, so a tie
  gives a zero target);
* :func:`ompo_loss` — the optimistic target :math:`\beta(2\hat Q^{t,t} - \hat Q^{t,t-1} - \tau)`
  (:math:`\tau = 0` in the paper's chat experiments);
* :func:`sppo_loss` — SPPO (Wu et al. 2024): :math:`[\log\frac{\pi_\theta}{\pi^t} - \beta(\hat
  P(a \succ \pi^t) - \tfrac12)]^2`; :func:`mpo_loss` with ``horizon=1`` equals it;
* :func:`winning_rate_q` — the K-sample estimate :math:`\hat Q_h(s_h, a^k) = \sum_{\hat h \ge h}
  \frac1K\sum_{k'} P([s_{\hat h}, a^k_{\hat h}] \succ [s'_{\hat h}, a^{k'}_{\hat h}])` from a
  preference matrix (one per remaining step).
"""

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = ["mpo_loss", "ompo_loss", "sppo_loss", "winning_rate_q"]


def mpo_loss(
    logp_new: ArrayLike,
    logp_old: ArrayLike,
    q_hat: ArrayLike,
    step: ArrayLike,
    horizon: ArrayLike,
    beta: ArrayLike,
) -> jax.Array:
    """``(logp_new − logp_old − β (q_hat − (horizon − step)/2))²``."""
    target = beta * (jnp.asarray(q_hat) - (jnp.asarray(horizon) - jnp.asarray(step)) / 2)
    return (jnp.asarray(logp_new) - jnp.asarray(logp_old) - target) ** 2


def ompo_loss(
    logp_new: ArrayLike,
    logp_old: ArrayLike,
    q_hat_tt: ArrayLike,
    q_hat_ttm1: ArrayLike,
    beta: ArrayLike,
    tau: ArrayLike = 0.0,
) -> jax.Array:
    """``(logp_new − logp_old − β (2 q_hat_tt − q_hat_ttm1 − τ))²``: ``q_hat_tt`` is the winning
    rate against the current policy, ``q_hat_ttm1`` against the previous one."""
    target = beta * (2 * jnp.asarray(q_hat_tt) - jnp.asarray(q_hat_ttm1) - tau)
    return (jnp.asarray(logp_new) - jnp.asarray(logp_old) - target) ** 2


def sppo_loss(
    logp_new: ArrayLike, logp_old: ArrayLike, win_rate: ArrayLike, beta: ArrayLike
) -> jax.Array:
    """``(logp_new − logp_old − β (win_rate − 1/2))²``."""
    target = beta * (jnp.asarray(win_rate) - 0.5)
    return (jnp.asarray(logp_new) - jnp.asarray(logp_old) - target) ** 2


def winning_rate_q(prefs: ArrayLike) -> jax.Array:
    """``Q̂`` for each of K answers from preferences ``(K, K')`` (``prefs[k, k'] = P(answer k ≻
    opponent answer k')``) or ``(steps, K, K')`` over the remaining steps (summed)."""
    p = jnp.asarray(prefs)
    if p.ndim not in (2, 3):
        raise ValueError(f"prefs: expected (K, K') or (steps, K, K'), got shape {p.shape}")
    q = p.mean(-1)
    return q if p.ndim == 2 else q.sum(0)
