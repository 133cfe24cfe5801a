r"""Large Markov games: sparse (fixed fan-out) transitions and low-rank skew-bilinear preferences.

The same finite-horizon two-player constant-sum Markov games as :mod:`lions_jax.mpo.tabular`
(Wu et al., *Multi-Step Alignment as Markov Games*, arXiv 2502.12678), stored so that S·A can
reach 10⁶. A dense :class:`~lions_jax.mpo.tabular.MarkovGame` holds ``(H − 1, S, A, S)``
transitions and an ``(H, S, A, S, A)`` preference tensor, so one MPO / OMPO update costs
O(H·S²·A²) time and memory (S·A ≲ 4·10³ in practice). A :class:`StructuredGame` holds

* transitions as a **fixed fan-out table**: from ``(s, a)`` at step ``h`` the next state is
  ``next_states[h, s, a, j]`` with probability ``next_probs[h, s, a, j]``, ``j < F`` (repeated
  indices add up);
* a **low-rank skew-bilinear preference**
  :math:`r_h(s, a, s', a') = \tfrac12 + \phi_h(s, a)^\top K_h\, \phi_h(s', a')` with features
  ``features`` ``(H, S, A, k)`` and ``skew`` :math:`K_h` ``(H, k, k)`` skew-symmetric. Then
  :math:`r_h(s, a, s', a') + r_h(s', a', s, a) = 1 + \phi^\top (K_h + K_h^\top)\phi' = 1` exactly
  (constant-sum, and :math:`r_h(s, a, s, a) = \tfrac12`), and preferences can be cyclic (a
  rank-2 :math:`K` already gives rock-paper-scissors-like cycles).

**Sufficient condition for** :math:`r \in [0, 1]` (checked by :func:`validate_structured_game`,
satisfied by :func:`random_structured_game`): every feature row has :math:`\|\phi_h(s, a)\|_2
\le 1` and every :math:`\|K_h\|_2 \le \tfrac12` (spectral norm), since then
:math:`|\phi^\top K \phi'| \le \|\phi\|_2 \|K\|_2 \|\phi'\|_2 \le \tfrac12`.

The functions mirror :mod:`~lions_jax.mpo.tabular`'s, with the same semantics (checked against
:func:`to_dense` in the tests):

* :func:`structured_occupancy` — forward recursion: the next-state mass is a segment sum
  (scatter-add) of ``d_h(s, a) · next_probs`` over ``next_states``; O(S·A·F) per step;
* :func:`structured_marginal_reward` — :math:`g_h(s, a) = \tfrac12\sum d'_h + \phi_h(s, a)^\top
  K_h \big(\sum_{s', a'} d'_h(s', a')\,\phi_h(s', a')\big)`: O(S·A·k) per step, the
  ``(S·A)²`` preference matrix is never formed;
* :func:`structured_marginal_q` — backward recursion, the expectation over next states a gather
  of ``V_{h+1}`` at ``next_states``: O(S·A·F) per step;
* :func:`structured_game_value`, :func:`structured_best_response`,
  :func:`structured_exploitability`, and :func:`structured_ompo_occupancy_update` (OMPO's
  occupancy-space step, :func:`~lions_jax.mpo.updates.ompo_occupancy_update`, which needs the
  transitions).

One MPO or OMPO policy update (occupancy, marginal reward, marginal Q, multiplicative weights)
therefore costs **O(H·S·A·(F + k))** time and memory, against O(H·S²·A²) for the dense game.
The policy-space updates :func:`~lions_jax.mpo.updates.mpo_update` and
:func:`~lions_jax.mpo.updates.ompo_policy_update` only see the log-policy and Q̄, so they apply
unchanged to Q̄ from :func:`structured_marginal_q`. Policies are ``(H, S, A)`` arrays (rows on the
simplex) as in :mod:`~lions_jax.mpo.tabular`; the initial state is 0. Everything is a pure,
jitted function of arrays; shapes are checked when a function is traced (``ValueError`` naming
the argument).
"""

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lions_jax.mpo.tabular import BestResponse, MarkovGame

__all__ = [
    "StructuredGame",
    "random_structured_game",
    "structured_best_response",
    "structured_exploitability",
    "structured_game_value",
    "structured_marginal_q",
    "structured_marginal_reward",
    "structured_occupancy",
    "structured_ompo_occupancy_update",
    "to_dense",
    "validate_structured_game",
]


class StructuredGame(NamedTuple):
    """A constant-sum Markov game with fan-out transitions and a low-rank skew preference.

    Attributes:
      next_states: ``(H - 1, S, A, F)`` int: the possible next states of ``(s, a)`` at step h.
      next_probs: ``(H - 1, S, A, F)``: their probabilities (each row sums to 1).
      features: ``(H, S, A, k)``: ``φ_h(s, a)``, rows of Euclidean norm ``<= 1``.
      skew: ``(H, k, k)``: ``K_h``, skew-symmetric with spectral norm ``<= 1/2``;
        ``r_h(s, a, s', a') = 1/2 + φ_h(s, a)ᵀ K_h φ_h(s', a')``.
    """

    next_states: jax.Array
    next_probs: jax.Array
    features: jax.Array
    skew: jax.Array

    @property
    def horizon(self) -> int:
        return int(self.features.shape[0])

    @property
    def num_states(self) -> int:
        return int(self.features.shape[1])

    @property
    def num_actions(self) -> int:
        return int(self.features.shape[2])

    @property
    def fan_out(self) -> int:
        return int(self.next_states.shape[-1])

    @property
    def rank(self) -> int:
        return int(self.features.shape[-1])


def _check_shapes(game: StructuredGame, **arrays: Any) -> None:
    """Static shape checks (run when tracing): the game's fields agree, and every named array is
    ``(H, S, A)``. Raises ``ValueError`` naming the field or argument."""
    phi = game.features
    if len(phi.shape) != 4:
        raise ValueError(f"features: expected (H, S, A, k), got {tuple(phi.shape)}")
    h, s, a, k = phi.shape
    if tuple(game.skew.shape) != (h, k, k):
        raise ValueError(
            f"skew: expected {(h, k, k)} for features {tuple(phi.shape)}, got "
            f"{tuple(game.skew.shape)}"
        )
    ns = game.next_states
    if len(ns.shape) != 4 or tuple(ns.shape[:3]) != (h - 1, s, a) or ns.shape[3] < 1:
        raise ValueError(
            f"next_states: expected {(h - 1, s, a)} + (F,) for features {tuple(phi.shape)}, "
            f"got {tuple(ns.shape)}"
        )
    if not jnp.issubdtype(ns.dtype, jnp.integer):
        raise ValueError(f"next_states: expected an integer dtype, got {ns.dtype}")
    if tuple(game.next_probs.shape) != tuple(ns.shape):
        raise ValueError(
            f"next_probs: expected {tuple(ns.shape)} (the shape of next_states), got "
            f"{tuple(game.next_probs.shape)}"
        )
    for name, x in arrays.items():
        if tuple(jnp.shape(x)) != (h, s, a):
            raise ValueError(f"{name}: expected {(h, s, a)} (H, S, A), got {tuple(jnp.shape(x))}")


def validate_structured_game(game: StructuredGame, *, atol: float = 1e-5) -> None:
    """Concrete checks (NumPy): shapes, next states in ``[0, S)``, stochastic ``next_probs``,
    feature rows of norm ``<= 1``, ``K_h`` skew-symmetric with spectral norm ``<= 1/2`` (which
    make ``r`` constant-sum and in ``[0, 1]``). Raises ``ValueError`` naming the field."""
    _check_shapes(game)
    s = game.num_states
    ns = np.asarray(game.next_states)
    p = np.asarray(game.next_probs)
    if ns.size and (ns.min() < 0 or ns.max() >= s):
        raise ValueError(f"next_states: expected indices in [0, {s}), got [{ns.min()}, {ns.max()}]")
    if p.size and (p.min() < -atol or np.abs(p.sum(-1) - 1).max() > atol):
        raise ValueError("next_probs: every row must be a probability vector")
    phi = np.asarray(game.features)
    norm = np.linalg.norm(phi, axis=-1).max() if phi.size else 0.0
    if norm > 1 + atol:
        raise ValueError(f"features: expected rows of Euclidean norm <= 1, got max {norm:.3g}")
    k = np.asarray(game.skew)
    asym = np.abs(k + np.swapaxes(k, -1, -2)).max() if k.size else 0.0
    if asym > atol:
        raise ValueError(f"skew: not skew-symmetric, max |K + Kᵀ| = {asym:.3g}")
    spec = np.linalg.norm(k, ord=2, axis=(-2, -1)).max() if k.size else 0.0
    if spec > 0.5 + atol:
        raise ValueError(f"skew: expected spectral norm <= 1/2, got {spec:.3g}")


@functools.partial(
    jax.jit,
    static_argnames=("num_states", "num_actions", "horizon", "fan_out", "rank", "dtype"),
)
def random_structured_game(
    key: ArrayLike,
    num_states: int,
    num_actions: int,
    horizon: int,
    *,
    fan_out: int = 4,
    rank: int = 8,
    skew_norm: ArrayLike = 0.5,
    dtype: Any = None,
) -> StructuredGame:
    """A random structured game: next states uniform on ``[0, S)`` (``fan_out`` draws with
    replacement per ``(h, s, a)``) with probabilities uniform on the simplex (``Dirichlet(1)``,
    normalised exponentials); features Gaussian rescaled to unit norm; ``K_h`` a Gaussian
    skew-symmetric matrix rescaled to spectral norm ``skew_norm`` (``<= 1/2`` keeps ``r`` in
    ``[0, 1]``). All of it from one uniform draw (one random-bits program to compile).
    ``dtype`` defaults to JAX's float."""
    dtype = jnp.result_type(float) if dtype is None else dtype
    # one uniform draw for everything (one threefry program to compile, not four samplers)
    table = (horizon - 1, num_states, num_actions, fan_out)
    sizes = [math.prod(table), math.prod(table), horizon * num_states * num_actions * rank]
    total = sum(sizes) + horizon * rank * rank
    u = jax.random.uniform(key, (total,), dtype, minval=jnp.finfo(dtype).tiny)  # (0, 1)
    u_ns, u_p, u_phi, u_k = jnp.split(u, np.cumsum(sizes))
    next_states = jnp.minimum(u_ns * num_states, num_states - 1).astype(jnp.int32).reshape(table)
    e = -jnp.log(u_p).reshape(table)  # Exp(1)
    next_probs = e / jnp.sum(e, -1, keepdims=True)
    phi = jax.scipy.special.ndtri(u_phi).reshape(horizon, num_states, num_actions, rank)
    phi = phi / jnp.linalg.norm(phi, axis=-1, keepdims=True)
    m = jax.scipy.special.ndtri(u_k).reshape(horizon, rank, rank)
    skew = m - jnp.swapaxes(m, -1, -2)
    # ‖K‖₂² = λ_max(KᵀK); 0 only if rank == 1 (then K = 0)
    spec = jnp.sqrt(jnp.linalg.eigvalsh(jnp.swapaxes(skew, -1, -2) @ skew)[..., -1])
    skew = skew * (skew_norm / jnp.where(spec > 0, spec, 1))[:, None, None]
    return StructuredGame(next_states, next_probs, phi, skew)


@jax.jit
def to_dense(game: StructuredGame) -> MarkovGame:
    """The same game as a dense :class:`~lions_jax.mpo.tabular.MarkovGame` (O(H·S²·A²) memory:
    for tests and small games)."""
    _check_shapes(game)
    h, s, a, _ = game.features.shape
    idx = jnp.ogrid[: h - 1, :s, :a]
    f = jnp.zeros((h - 1, s, a, s), game.next_probs.dtype)
    f = f.at[idx[0][..., None], idx[1][..., None], idx[2][..., None], game.next_states].add(
        game.next_probs
    )
    phi = game.features
    reward = 0.5 + jnp.einsum("hsai,hij,htbj->hsatb", phi, game.skew, phi)
    return MarkovGame(transitions=f, reward=reward)


def _push(next_states_h: Any, next_probs_h: Any, mass: Any, num_states: int) -> Any:
    """``Σ_{s, a, j: next_states_h[s, a, j] = t} mass[s, a] next_probs_h[s, a, j]``, ``(S,)``."""
    w = mass[..., None] * next_probs_h
    return jax.ops.segment_sum(w.reshape(-1), next_states_h.reshape(-1), num_segments=num_states)


def _pull(next_states_h: Any, next_probs_h: Any, v_next: Any) -> Any:
    """``Σ_j next_probs_h[s, a, j] v_next[next_states_h[s, a, j]]``, ``(S, A)``."""
    return jnp.sum(next_probs_h * v_next[next_states_h], -1)


@jax.jit
def structured_occupancy(game: StructuredGame, policy: ArrayLike) -> jax.Array:
    """``d_h(s, a)``, ``(H, S, A)``: the probability of (state, action) at step h from state 0."""
    _check_shapes(game, policy=policy)
    pi = jnp.asarray(policy)
    d0 = jnp.zeros_like(pi[0]).at[0].set(pi[0, 0])

    def step(d: Any, inp: Any) -> tuple[Any, Any]:
        ns_h, p_h, pi_next = inp
        d_next = _push(ns_h, p_h, d, game.num_states)[:, None] * pi_next
        return d_next, d_next

    _, rest = jax.lax.scan(step, d0, (game.next_states, game.next_probs, pi[1:]))
    return jnp.concatenate([d0[None], rest])


@jax.jit
def structured_marginal_reward(game: StructuredGame, opponent_occupancy: ArrayLike) -> jax.Array:
    """``g_h(s, a) = Σ_{s', a'} d'_h(s', a') r_h(s, a, s', a') = ½ Σ d'_h + φ_h(s, a)ᵀ K_h m_h``
    with ``m_h = Σ_{s', a'} d'_h(s', a') φ_h(s', a')``; ``(H, S, A)``, O(H·S·A·k)."""
    _check_shapes(game, opponent_occupancy=opponent_occupancy)
    h, s, a, k = game.features.shape
    d = jnp.asarray(opponent_occupancy).reshape(h, s * a)
    # (H, S·A, k) matrix-vector products: ~3x faster on XLA:CPU than 4-d einsums
    phi = game.features.reshape(h, s * a, k)
    m = jnp.einsum("hn,hnk->hk", d, phi)
    km = jnp.einsum("hij,hj->hi", game.skew, m)
    g = 0.5 * jnp.sum(d, -1, keepdims=True) + jnp.einsum("hnk,hk->hn", phi, km)
    return g.reshape(h, s, a)


def _backward(game: StructuredGame, g: Any, policy: Any | None) -> tuple[Any, Any]:
    """Backward pass on the marginal MDP: expectation under ``policy`` (Q̄), or max (``None``)."""

    def step(v_next: Any, inp: Any) -> tuple[Any, Any]:
        g_h, ns_h, p_h, pi_h = inp
        q_h = g_h + _pull(ns_h, p_h, v_next)
        v_h = jnp.max(q_h, -1) if policy is None else jnp.sum(pi_h * q_h, -1)
        return v_h, q_h

    pi = jnp.zeros_like(g) if policy is None else jnp.asarray(policy)
    # the last step has no successor: Q̄_{H-1} = g_{H-1}
    q_last = g[-1]
    v_last = jnp.max(q_last, -1) if policy is None else jnp.sum(pi[-1] * q_last, -1)
    v0, q = jax.lax.scan(
        step, v_last, (g[:-1], game.next_states, game.next_probs, pi[:-1]), reverse=True
    )
    return jnp.concatenate([q, q_last[None]]), v0


@jax.jit
def structured_marginal_q(
    game: StructuredGame, policy: ArrayLike, opponent_occupancy: ArrayLike
) -> jax.Array:
    """``Q̄_h(s, a)`` of ``policy`` against an opponent with occupancy ``opponent_occupancy``."""
    _check_shapes(game, policy=policy, opponent_occupancy=opponent_occupancy)
    g = structured_marginal_reward(game, opponent_occupancy)
    return _backward(game, g, jnp.asarray(policy))[0]


@jax.jit
def structured_game_value(
    game: StructuredGame, policy: ArrayLike, opponent: ArrayLike
) -> jax.Array:
    """``V^{π, π'} = Σ_h Σ d_h^π r_h d_h^{π'}``: player 1's expected total preference."""
    _check_shapes(game, policy=policy, opponent=opponent)
    d, d_opp = structured_occupancy(game, policy), structured_occupancy(game, opponent)
    return jnp.sum(d * structured_marginal_reward(game, d_opp))


@jax.jit
def structured_best_response(game: StructuredGame, opponent: ArrayLike) -> BestResponse:
    """``max_π V^{π, opponent}`` and a deterministic maximiser (ties: lowest action)."""
    _check_shapes(game, opponent=opponent)
    g = structured_marginal_reward(game, structured_occupancy(game, opponent))
    q, v0 = _backward(game, g, None)
    policy = jax.nn.one_hot(jnp.argmax(q, -1), game.num_actions, dtype=g.dtype)
    return BestResponse(value=v0[0], policy=policy)


@jax.jit
def structured_exploitability(game: StructuredGame, policy: ArrayLike) -> jax.Array:
    """``max_π̂ V^{π̂, π} − V^{π, π}`` (≥ 0; 0 exactly at a symmetric Nash equilibrium)."""
    _check_shapes(game, policy=policy)
    return structured_best_response(game, policy).value - structured_game_value(
        game, policy, policy
    )


@jax.jit
def structured_ompo_occupancy_update(
    game: StructuredGame,
    log_policy_t: ArrayLike,
    g_t: ArrayLike,
    g_tm1: ArrayLike,
    beta: ArrayLike,
) -> jax.Array:
    """:func:`~lions_jax.mpo.updates.ompo_occupancy_update` on a structured game: the exact
    optimistic mirror-descent step over occupancy measures; returns the new log-policy."""
    _check_shapes(game, log_policy_t=log_policy_t, g_t=g_t, g_tm1=g_tm1)
    log_pi = jnp.asarray(log_policy_t)
    g_tilde = beta * (2 * jnp.asarray(g_t) - jnp.asarray(g_tm1))

    def soft(log_pi_h: Any, w: Any) -> tuple[Any, Any]:
        v = jax.nn.logsumexp(log_pi_h + w, axis=-1)
        return v, log_pi_h + w - v[:, None]

    def step(v_next: Any, inp: Any) -> tuple[Any, Any]:
        g_h, ns_h, p_h, log_pi_h = inp
        return soft(log_pi_h, g_h + _pull(ns_h, p_h, v_next))

    v_last, new_last = soft(log_pi[-1], g_tilde[-1])
    _, new = jax.lax.scan(
        step, v_last, (g_tilde[:-1], game.next_states, game.next_probs, log_pi[:-1]), reverse=True
    )
    return jnp.concatenate([new, new_last[None]])
