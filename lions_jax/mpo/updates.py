r"""MPO and OMPO policy updates on tabular Markov games (exact, in log space).

* :func:`mpo_update` — MPO (the paper's natural actor-critic / per-state mirror descent):
  :math:`\pi^{t+1}_h(a \mid s) \propto \pi^t_h(a \mid s)\exp(\beta\,\bar Q^{t}_h(s, a))` with
  :math:`\bar Q^t` the marginal Q of :math:`\pi^t` against itself
  (:func:`~lions_jax.mpo.tabular.marginal_q`). Its guarantee is for the *average occupancy*.
  With H = 1 this is SPPO's update, :math:`\pi^{t+1}(a) \propto \pi^t(a)\exp(\beta P(a \succ
  \pi^t))` (tested).
* :func:`ompo_policy_update` — OMPO's policy-space optimistic step, exponent
  :math:`\beta(2\bar Q^{t,t} - \bar Q^{t,t-1})` (the current policy's marginal Q against itself,
  twice, minus against the previous policy), the form of the paper's practical Algorithm 4; with
  :math:`\pi^{0} = \pi^{1}` its first step is MPO's.
* :func:`ompo_occupancy_update` — OMPO's theory step (Algorithm 3; optimistic online mirror
  descent over occupancy measures with one projection per step): :math:`d^{t+1} = \arg\max_{d \in
  \mathcal F} \beta\langle d, 2g^t - g^{t-1}\rangle - D(d, d^t)`, with the marginal rewards
  :math:`g^t_h = \sum d^t_h r_h` and :math:`D` the KL divergence between trajectory
  distributions (the dilated entropy; strongly convex on the flow polytope :math:`\mathcal F`).
  The maximiser is computed exactly by a soft Bellman backward pass: :math:`W_h(s, a) = \beta
  \tilde g_h(s, a) + \sum_{s'} f_h(s' \mid s, a) V_{h+1}(s')`, :math:`V_h(s) = \log\sum_a
  \pi^t_h(a \mid s) e^{W_h(s, a)}`, :math:`\pi^{t+1} = \pi^t e^{W - V}`. Passing ``g_tm1 = g_t``
  gives the non-optimistic (MPO-like) occupancy-space step.

Which OMPO the paper's experiments used in policy space is not confirmed here (its App. E); both
forms are provided and compared in the ``mpo-games`` experiment.
"""

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lions_jax.mpo.tabular import MarkovGame

__all__ = ["mpo_update", "ompo_occupancy_update", "ompo_policy_update"]


def _normalise(logits: Any) -> Any:
    return logits - jax.nn.logsumexp(logits, axis=-1, keepdims=True)


@jax.jit
def mpo_update(log_policy_t: ArrayLike, q_bar_t: ArrayLike, beta: ArrayLike) -> jax.Array:
    """``log π^{t+1} = log π^t + β Q̄^t`` renormalised per (step, state)."""
    return _normalise(jnp.asarray(log_policy_t) + beta * jnp.asarray(q_bar_t))


@jax.jit
def ompo_policy_update(
    log_policy_t: ArrayLike, q_bar_tt: ArrayLike, q_bar_ttm1: ArrayLike, beta: ArrayLike
) -> jax.Array:
    """``log π^{t+1} = log π^t + β (2 Q̄^{t,t} − Q̄^{t,t−1})`` renormalised."""
    return _normalise(
        jnp.asarray(log_policy_t) + beta * (2 * jnp.asarray(q_bar_tt) - jnp.asarray(q_bar_ttm1))
    )


@jax.jit
def ompo_occupancy_update(
    game: MarkovGame,
    log_policy_t: ArrayLike,
    g_t: ArrayLike,
    g_tm1: ArrayLike,
    beta: ArrayLike,
) -> jax.Array:
    """The exact optimistic mirror-descent step over occupancy measures (trajectory-KL Bregman
    divergence); returns the new log-policy, ``(H, S, A)``."""
    log_pi = jnp.asarray(log_policy_t)
    g_tilde = beta * (2 * jnp.asarray(g_t) - jnp.asarray(g_tm1))
    f_pad = jnp.concatenate(
        [game.transitions, jnp.zeros((1, *game.transitions.shape[1:]), log_pi.dtype)]
    )

    def step(v_next: Any, inp: Any) -> tuple[Any, Any]:
        g_h, f_h, log_pi_h = inp
        w = g_h + jnp.einsum("sat,t->sa", f_h, v_next)
        v = jax.nn.logsumexp(log_pi_h + w, axis=-1)
        return v, log_pi_h + w - v[:, None]

    _, new = jax.lax.scan(
        step, jnp.zeros(game.num_states, log_pi.dtype), (g_tilde, f_pad, log_pi), reverse=True
    )
    return new
