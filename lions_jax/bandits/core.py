r"""Bandit primitives and phased aggression (PA), as pure rlax-style functions.

Unbatched, ``key`` first, ``_t``/``_tm1`` suffixes; vmap for batches. Losses lie in ``[0, 1]``.

* :func:`iw_loss_estimate` — :math:`\hat\ell_t(a) = \ell_t(a_t)\,\mathbb 1\{a = a_t\} / x_t(a)`,
  unbiased wherever :math:`x_t(a) > 0`. With ``probs_t`` the *realisation weights* of a
  sequence-form strategy and ``action_t`` the sequence that ended the hand, it is the
  extensive-form (outcome-sampling) estimator of the loss vector on sequences.
* :func:`exp3_probs`, :func:`exp3_update` — Exp3 (Auer et al. 2002) with log-space weights:
  :math:`\log w_t = \log w_{t-1} - \eta \hat\ell_t`, renormalised with ``logsumexp``.
* Phased aggression over a bandit learner, the algorithm behind the claims of Müller, Schneider,
  Skoulakis, Viano, Cevher, *Best of Both Worlds: Regret Minimization versus Minimax Play*
  (arXiv 2502.11673, ICML 2025): play :math:`x_t = (1-\alpha_k)\mu + \alpha_k p_t` (:func:`pa_mix`),
  feed the base learner the importance-weighted loss of :math:`x_t`, and track the estimated gap
  of phase *k*, :math:`G_k = \max_{x'} \sum_{s \in k} \langle \mu - x', \hat\ell_s\rangle`
  (:func:`pa_gap`; a best response on the treeplex). When :math:`G_k > 2\tau` and
  :math:`\alpha_k < 1`, the phase ends: :math:`\alpha_{k+1} = \min(1, 2\alpha_k)`, the phase sums
  and the base learner restart (:func:`pa_update`). With :math:`\alpha_1 = 1/\tau` and
  :math:`\tau = c\sqrt{T \log(nT)/\mu_{\min}}` (:func:`pa_threshold`): every phase costs at most
  :math:`\alpha_k \tau` against :math:`\mu`, every finished phase gains about :math:`\alpha_k\tau`,
  so the regret to :math:`\mu` telescopes to :math:`\alpha_1\tau = O(1)`; the regret to the best
  fixed strategy is :math:`O(\tau \log T) = \tilde O(\sqrt{T/\mu_{\min}})`.

**What was implemented, and why.** The paper's algorithm box could not be read here (only the
abstract and summary pages are reachable offline). The rule above is the reconstruction of the
lions_jax spec (``bandits.md`` §3), consistent with the paper's stated guarantees (O(1) regret to a
comparator that supports every action, Õ(√T) to any fixed strategy): phased aggression (Even-Dar,
Kearns, Mansour, Wortman 2008) made bandit by importance weighting, with doubling aggression and
soft restarts. Threshold constant, restart trigger and base learner (Exp3 on the simplex; Hedge or
regret matching per infoset — outcome-sampling MCCFR — on a treeplex) are ours, not the paper's.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lions_jax.bandits.treeplex import Treeplex, best_response

__all__ = [
    "PAState",
    "exp3_probs",
    "exp3_update",
    "iw_loss_estimate",
    "pa_gap",
    "pa_init",
    "pa_mix",
    "pa_threshold",
    "pa_update",
]


def iw_loss_estimate(loss_t: ArrayLike, action_t: ArrayLike, probs_t: ArrayLike) -> jax.Array:
    """Importance-weighted estimate of the whole loss vector from one observed loss.

    Args:
      loss_t: the observed scalar loss of the played action (or the reached terminal).
      action_t: int index of the played action (or of the player's last sequence).
      probs_t: ``(n,)`` the probability with which each index would be observed (a mixed strategy,
        or sequence-form realisation weights); must be positive at ``action_t``.

    Returns:
      ``(n,)``: ``loss_t / probs_t[action_t]`` at ``action_t``, zero elsewhere.
    """
    probs_t = jnp.asarray(probs_t)
    if probs_t.ndim != 1:
        raise ValueError(f"probs_t: expected a vector, got shape {probs_t.shape}")
    onehot = jax.nn.one_hot(action_t, probs_t.shape[0], dtype=probs_t.dtype)
    return onehot * (jnp.asarray(loss_t, probs_t.dtype) / jnp.sum(onehot * probs_t))


def exp3_probs(log_weights: ArrayLike) -> jax.Array:
    """Exp3's sampling distribution: ``softmax(log_weights)``."""
    return jax.nn.softmax(jnp.asarray(log_weights))


def exp3_update(log_weights_tm1: ArrayLike, loss_hat_t: ArrayLike, eta: ArrayLike) -> jax.Array:
    """One Exp3 step in log space, returned normalised (``logsumexp = 0``) so it never drifts."""
    logits = jnp.asarray(log_weights_tm1) - eta * jnp.asarray(loss_hat_t)
    return logits - jax.nn.logsumexp(logits)


def pa_threshold(
    num_rounds: int, num_choices: int, mu_min: float, c: ArrayLike = 1.0
) -> jax.Array | float:
    """``τ = c √(T log(n T) / μ_min)``: the budget of regret a phase may spend against ``μ``.

    ``num_choices`` is the number of actions (simplex) or of the player's sequences (treeplex);
    ``mu_min`` the smallest probability (realisation weight) the comparator gives any of them.
    """
    if num_rounds < 1 or num_choices < 2 or not mu_min > 0:
        raise ValueError(
            f"pa_threshold: expected num_rounds >= 1, num_choices >= 2, mu_min > 0; got "
            f"{num_rounds}, {num_choices}, {mu_min}"
        )
    return c * np.sqrt(num_rounds * np.log(num_choices * num_rounds) / mu_min)


class PAState(NamedTuple):
    """Phased-aggression state: the aggression ``alpha`` of the current phase, the phase's
    importance-weighted loss sum (``phase_loss`` with its Kahan compensation ``phase_comp``) and
    the number of finished phases."""

    alpha: jax.Array
    phase_loss: jax.Array
    phase_comp: jax.Array
    num_restarts: jax.Array


def pa_init(alpha_init: ArrayLike, num_sequences: int, dtype: Any = jnp.float32) -> PAState:
    """``alpha_init = 1/τ`` for PA; 0 plays the comparator forever, 1 the base learner forever."""
    zeros = jnp.zeros(num_sequences, dtype)
    return PAState(jnp.asarray(alpha_init, dtype), zeros, zeros, jnp.zeros((), jnp.int32))


def pa_mix(mu: ArrayLike, p_t: ArrayLike, alpha: ArrayLike) -> jax.Array:
    """``x_t = (1 - α) μ + α p_t`` (simplex or sequence form: both are convex sets)."""
    return (1 - alpha) * jnp.asarray(mu) + alpha * jnp.asarray(p_t)


def pa_gap(treeplex: Treeplex, mu: ArrayLike, phase_loss: ArrayLike) -> jax.Array:
    """``G = ⟨μ, S⟩ - min_{x' ∈ Q} ⟨x', S⟩ ≥ 0``: the estimated advantage of the best fixed
    strategy over ``μ`` within the phase (``S`` = the phase's summed loss estimates)."""
    return jnp.dot(jnp.asarray(mu), phase_loss) - best_response(treeplex, phase_loss).value


def _kahan(total: jax.Array, comp: jax.Array, value: jax.Array) -> tuple[jax.Array, jax.Array]:
    y = value - comp
    t = total + y
    return t, (t - total) - y


def pa_update(
    treeplex: Treeplex, state: PAState, loss_hat_t: ArrayLike, mu: ArrayLike, tau: ArrayLike
) -> tuple[PAState, jax.Array]:
    """Adds ``loss_hat_t`` to the phase sum; ends the phase when ``G > 2τ`` and ``0 < α < 1``.

    Returns ``(state_t, restart)``; on ``restart`` the caller resets its base learner (the soft
    restart), e.g. ``jax.tree.map(lambda a, b: jnp.where(restart, a, b), init, learner)``.
    """
    phase_loss, phase_comp = _kahan(state.phase_loss, state.phase_comp, jnp.asarray(loss_hat_t))
    gap = pa_gap(treeplex, mu, phase_loss)
    restart = (gap > 2 * tau) & (state.alpha > 0) & (state.alpha < 1)
    zeros = jnp.zeros_like(phase_loss)
    new = PAState(
        alpha=jnp.where(restart, jnp.minimum(1, 2 * state.alpha), state.alpha),
        phase_loss=jnp.where(restart, zeros, phase_loss),
        phase_comp=jnp.where(restart, zeros, phase_comp),
        num_restarts=state.num_restarts + restart.astype(jnp.int32),
    )
    return new, restart
