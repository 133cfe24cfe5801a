r"""Finite-horizon two-player constant-sum Markov games with pairwise preferences, solved exactly.

The setting of Wu, Viano, Chen, Zhu, Antonakopoulos, Gu, Cevher, *Multi-Step Alignment as Markov
Games* (arXiv 2502.12678): both players start from the same state :math:`s_0` (the prompt) and
roll out **independently** through the same dynamics :math:`f_h(s' \mid s, a)`; at every step
player 1 earns the preference :math:`r_h(s, a, s', a') \in [0, 1]` of its (state, action) over
the opponent's, with :math:`r_h(s, a, s', a') + r_h(s', a', s, a) = 1` (constant-sum; no
Bradley–Terry assumption, so preferences may be cyclic). Because the rollouts are independent,
the joint occupancy factorises, :math:`d_h^{\pi,\pi'} = d_h^\pi \otimes d_h^{\pi'}`, and
everything player 1 needs against a fixed opponent is the *marginal* reward
:math:`g_h(s, a) = \sum_{s', a'} d_h^{\pi'}(s', a')\, r_h(s, a, s', a')` (:func:`marginal_reward`):
player 1 faces an ordinary MDP with reward :math:`g`. Hence

* :func:`occupancy` — :math:`d_h^\pi(s, a)` by forward recursion (sums to 1 per step);
* :func:`marginal_q` — :math:`\bar Q_h(s, a) = g_h(s, a) + \sum_{s''} f_h(s'' \mid s, a)
  \sum_{a''}\pi_{h+1}(a'' \mid s'')\,\bar Q_{h+1}(s'', a'')`, which equals the pairwise
  :math:`Q_h(s, a, s', a')` averaged over :math:`(s', a') \sim d_h^{\pi'}` (checked against the
  pairwise Bellman recursion in the tests);
* :func:`game_value` — :math:`V^{\pi,\pi'} = \sum_h \langle d_h^\pi, g_h\rangle`
  (:math:`V^{\pi,\pi} = H/2`);
* :func:`best_response` — the optimal policy of the marginal MDP by dynamic programming;
  :func:`exploitability` — :math:`\max_{\hat\pi} V^{\hat\pi,\pi} - V^{\pi,\pi}`, the paper's metric.

Policies are arrays ``(H, S, A)`` (rows on the simplex, in probability space; the updates in
:mod:`lions_jax.mpo.updates` work on log-policies). Everything is a pure, jitted function of arrays, exact
(no sampling), and vmaps over games.
"""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

__all__ = [
    "MarkovGame",
    "best_response",
    "exploitability",
    "game_value",
    "marginal_q",
    "marginal_reward",
    "occupancy",
    "pairwise_q",
    "policy_from_occupancy",
    "random_game",
    "validate_game",
]


class MarkovGame(NamedTuple):
    """A two-player constant-sum Markov game with a common initial state 0.

    Attributes:
      transitions: ``(H - 1, S, A, S)``: ``f_h(s' | s, a)`` for steps ``h = 0 .. H - 2``.
      reward: ``(H, S, A, S, A)``: player 1's preference ``r_h(s, a, s', a')`` in ``[0, 1]``.
    """

    transitions: jax.Array
    reward: jax.Array

    @property
    def horizon(self) -> int:
        return int(self.reward.shape[0])

    @property
    def num_states(self) -> int:
        return int(self.reward.shape[1])

    @property
    def num_actions(self) -> int:
        return int(self.reward.shape[2])


def validate_game(game: MarkovGame, *, atol: float = 1e-5) -> None:
    """Concrete checks (NumPy): shapes, stochastic transitions, rewards in [0, 1], constant sum.
    Raises ``ValueError`` naming the field."""
    r = np.asarray(game.reward)
    f = np.asarray(game.transitions)
    if r.ndim != 5 or r.shape[1:3] != r.shape[3:5]:
        raise ValueError(f"reward: expected (H, S, A, S, A), got {r.shape}")
    h, s, a = r.shape[:3]
    if f.shape != (h - 1, s, a, s):
        raise ValueError(
            f"transitions: expected {(h - 1, s, a, s)} for reward {r.shape}, got {f.shape}"
        )
    if f.size and (f.min() < -atol or np.abs(f.sum(-1) - 1).max() > atol):
        raise ValueError("transitions: every f_h(. | s, a) must be a probability vector")
    if r.min() < -atol or r.max() > 1 + atol:
        raise ValueError(f"reward: expected values in [0, 1], got [{r.min():.3g}, {r.max():.3g}]")
    gap = np.abs(r + r.transpose(0, 3, 4, 1, 2) - 1).max()
    if gap > atol:
        raise ValueError(
            f"reward: not constant-sum, max |r(s,a,s',a') + r(s',a',s,a) - 1| = {gap:.3g}"
        )


@functools.partial(
    jax.jit,
    static_argnames=("num_states", "num_actions", "horizon", "feature_dim", "dtype"),
)
def random_game(
    key: ArrayLike,
    num_states: int,
    num_actions: int,
    horizon: int,
    *,
    feature_dim: int = 8,
    reward_scale: ArrayLike = 3.0,
    transition_concentration: ArrayLike = 0.5,
    dtype: Any = None,
) -> MarkovGame:
    """A random game with non-transitive preferences: ``r_h = σ(φ(s, a)ᵀ K_h φ(s', a'))`` with
    ``K_h`` skew-symmetric (so ``r + rᵀ = 1`` exactly and ``r(s, a, s, a) = 1/2``), ``φ`` Gaussian
    features (``reward_scale`` sets how far from 1/2 preferences go), and
    ``f_h(· | s, a) ~ Dirichlet(transition_concentration)``; ``dtype`` defaults to JAX's float."""
    dtype = jnp.result_type(float) if dtype is None else dtype
    k_f, k_phi, k_k = jax.random.split(key, 3)
    f = jax.random.dirichlet(
        k_f,
        jnp.full(num_states, transition_concentration, dtype),
        (horizon - 1, num_states, num_actions),
    )
    phi = jax.random.normal(k_phi, (horizon, num_states, num_actions, feature_dim), dtype)
    m = jax.random.normal(k_k, (horizon, feature_dim, feature_dim), dtype)
    skew = (m - jnp.swapaxes(m, -1, -2)) * (reward_scale / (2 * feature_dim))
    logits = jnp.einsum("hsai,hij,htbj->hsatb", phi, skew, phi)
    return MarkovGame(transitions=f.astype(dtype), reward=jax.nn.sigmoid(logits))


@jax.jit
def occupancy(game: MarkovGame, policy: ArrayLike) -> jax.Array:
    """``d_h(s, a)``, ``(H, S, A)``: the probability of (state, action) at step h from state 0."""
    pi = jnp.asarray(policy)
    start = jnp.zeros(game.num_states, pi.dtype).at[0].set(1)
    d0 = start[:, None] * pi[0]

    def step(d: Any, inp: Any) -> tuple[Any, Any]:
        f_h, pi_next = inp
        states = jnp.einsum("sa,sat->t", d, f_h)
        d_next = states[:, None] * pi_next
        return d_next, d_next

    _, rest = jax.lax.scan(step, d0, (game.transitions, pi[1:]))
    return jnp.concatenate([d0[None], rest])


@jax.jit
def marginal_reward(game: MarkovGame, opponent_occupancy: ArrayLike) -> jax.Array:
    """``g_h(s, a) = Σ_{s', a'} d'_h(s', a') r_h(s, a, s', a')``, ``(H, S, A)``."""
    h, s, a = game.reward.shape[:3]
    # one (SA, SA) @ (SA,) product per step: XLA's CPU einsum on the 5-D tensor is ~10x slower
    r = game.reward.reshape(h, s * a, s * a)
    d = jnp.asarray(opponent_occupancy).reshape(h, s * a, 1)
    return jnp.matmul(r, d).reshape(h, s, a)


def _backward(game: MarkovGame, g: Any, policy: Any | None) -> tuple[Any, Any]:
    """Backward pass on the marginal MDP: expectation under ``policy`` (Q̄), or max (``None``)."""
    num_states = game.num_states
    v_last = jnp.zeros(num_states, g.dtype)

    def step(v_next: Any, inp: Any) -> tuple[Any, Any]:
        g_h, f_h, pi_h = inp
        q_h = g_h + jnp.einsum("sat,t->sa", f_h, v_next)
        v_h = jnp.max(q_h, -1) if policy is None else jnp.sum(pi_h * q_h, -1)
        return v_h, q_h

    f_pad = jnp.concatenate(
        [game.transitions, jnp.zeros((1, *game.transitions.shape[1:]), g.dtype)]
    )
    pi = jnp.zeros_like(g) if policy is None else jnp.asarray(policy)
    v0, q = jax.lax.scan(step, v_last, (g, f_pad, pi), reverse=True)
    return q, v0


@jax.jit
def marginal_q(game: MarkovGame, policy: ArrayLike, opponent_occupancy: ArrayLike) -> jax.Array:
    """``Q̄_h(s, a)`` of ``policy`` against an opponent with occupancy ``opponent_occupancy``."""
    g = marginal_reward(game, opponent_occupancy)
    return _backward(game, g, jnp.asarray(policy))[0]


@jax.jit
def game_value(game: MarkovGame, policy: ArrayLike, opponent: ArrayLike) -> jax.Array:
    """``V^{π, π'} = Σ_h Σ d_h^π r_h d_h^{π'}``: player 1's expected total preference."""
    d, d_opp = occupancy(game, policy), occupancy(game, opponent)
    return jnp.sum(d * marginal_reward(game, d_opp))


class BestResponse(NamedTuple):
    value: jax.Array
    policy: jax.Array


@jax.jit
def best_response(game: MarkovGame, opponent: ArrayLike) -> BestResponse:
    """``max_π V^{π, opponent}`` and a deterministic maximiser (ties: lowest action)."""
    g = marginal_reward(game, occupancy(game, opponent))
    q, v0 = _backward(game, g, None)
    policy = jax.nn.one_hot(jnp.argmax(q, -1), game.num_actions, dtype=g.dtype)
    return BestResponse(value=v0[0], policy=policy)


@jax.jit
def exploitability(game: MarkovGame, policy: ArrayLike) -> jax.Array:
    """``max_π̂ V^{π̂, π} − V^{π, π}`` (≥ 0; 0 exactly at a symmetric Nash equilibrium)."""
    return best_response(game, policy).value - game_value(game, policy, policy)


@jax.jit
def pairwise_q(game: MarkovGame, policy: ArrayLike, opponent: ArrayLike) -> jax.Array:
    """The pairwise ``Q_h(s, a, s', a')``, ``(H, S, A, S, A)``, by the two-player Bellman recursion
    (O((SA)²) memory: a reference for small games)."""
    pi, pi_o = jnp.asarray(policy), jnp.asarray(opponent)
    f = game.transitions
    q_next = game.reward[-1]
    qs = [q_next]
    for h in range(game.horizon - 2, -1, -1):
        v_next = jnp.einsum("sa,sauc,uc->su", pi[h + 1], q_next, pi_o[h + 1])
        q_next = game.reward[h] + jnp.einsum("sax,tby,xy->satb", f[h], f[h], v_next)
        qs.append(q_next)
    return jnp.stack(qs[::-1])


@jax.jit
def policy_from_occupancy(d: ArrayLike) -> jax.Array:
    """``π_h(a | s) = d_h(s, a) / Σ_a d_h(s, a)``; uniform at unreached states."""
    d = jnp.asarray(d)
    total = d.sum(-1, keepdims=True)
    return jnp.where(total > 0, d / jnp.where(total > 0, total, 1), 1.0 / d.shape[-1])
