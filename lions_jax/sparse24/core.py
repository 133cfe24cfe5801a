r"""2:4 sparsity: the proximal operator of the 2:4 regulariser and N:M masks (pure JAX).

For a group :math:`w \in \mathbb{R}^4` the regulariser of Kübler et al. (2025) is the sum of the
absolute products of its four triples,

.. math:: r(w) = \sum_{i<j<k} |w_i w_j w_k|,

which is zero exactly when the group has at most two non-zeros. Its proximal operator
:math:`\mathrm{prox}_{t r}(z) = \operatorname{argmin}_w \tfrac12\|w - z\|^2 + t\, r(w)` keeps signs
and the magnitude order of :math:`z`, so it is solved on :math:`a = \mathrm{sort}(|z|)` (decreasing)
over three candidate supports — the top two (:math:`r = 0`), the top three, all four — each by exact
coordinate minimisation (:math:`r` is multilinear, so each coordinate's minimiser is
:math:`\max(0, a_i - t\,\partial_i r)`, and every sweep decreases the objective), and the candidate
with the lowest objective is returned. :math:`t = 0` is the identity, :math:`t \to \infty` the
2:4 projection onto the two largest magnitudes.

Groups are 4 consecutive entries along ``axis``; the default ``axis=0`` is the input
(contracting) axis of a Flax ``(d_in, d_out)`` kernel, which is what 2:4 sparse tensor cores need.

What is implemented, and what is reconstructed: the regulariser is ProxSparse's ``reg``; the
three-candidate solution with coordinate sweeps follows the ProxSparse implementation and the
paper's Algorithm 1 title ("decreasing non-negative input"); it is checked against a brute-force
search over all 16 supports in the tests. Whether the paper has a sharper closed form for the
three- and four-support candidates is unconfirmed.

References:
  Kübler, Cevher et al., *A Proximal Operator for Inducing 2:4-Sparsity*, arXiv:2501.18015.
  https://arxiv.org/abs/2501.18015
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Bool, Float

from lions_jax._src.typing import AnyArray as Array

__all__ = ["group_objective", "is_nm_sparse", "nm_mask", "prox_24"]


def _check_nm(shape: tuple[int, ...], axis: int, n: int, m: int, name: str) -> int:
    if not 0 <= n <= m or m < 1:
        raise ValueError(f"n and m: expected 0 <= n <= m and m >= 1, got n={n}, m={m}")
    if not shape:
        raise ValueError(f"{name}: expected at least one axis, got a scalar")
    ax = axis % len(shape) if -len(shape) <= axis < len(shape) else None
    if ax is None:
        raise ValueError(f"axis: {axis} is out of range for {name} of shape {shape}")
    if shape[ax] % m:
        raise ValueError(
            f"{name}: size {shape[ax]} of axis {axis} is not divisible by m={m} (shape {shape})"
        )
    return ax


def _groups(x: jax.Array, ax: int, m: int) -> tuple[jax.Array, Callable[[jax.Array], jax.Array]]:
    """(..., d/m, m) view of ``x`` with groups along ``ax`` last, and its inverse."""
    moved = jnp.moveaxis(x, ax, -1)
    g = moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m)

    def back(y: jax.Array) -> jax.Array:
        return jnp.moveaxis(y.reshape(moved.shape), -1, ax)

    return g, back


def group_objective(
    w: Float[Array, "*#batch 4"],
    z: Float[Array, "*#batch 4"],
    t: Float[Array, "*#batch"] | float,
) -> Float[Array, "*batch"]:
    r""":math:`\tfrac12\|w - z\|^2 + t\sum_{i<j<k}|w_i w_j w_k|` per group of four (last axis)."""
    a = jnp.abs(w)
    e3 = (
        a[..., 0] * a[..., 1] * a[..., 2]
        + a[..., 0] * a[..., 1] * a[..., 3]
        + a[..., 0] * a[..., 2] * a[..., 3]
        + a[..., 1] * a[..., 2] * a[..., 3]
    )
    return 0.5 * jnp.sum(jnp.square(w - z), axis=-1) + t * e3


def _lanes(x: jax.Array, ax: int) -> list[jax.Array]:
    """The four entries of every group along ``ax`` as four arrays (strided views, no sort)."""
    g = x.reshape(*x.shape[:ax], x.shape[ax] // 4, 4, *x.shape[ax + 1 :])
    return [jax.lax.index_in_dim(g, k, ax + 1, keepdims=False) for k in range(4)]


def _unlanes(lanes: list[jax.Array], ax: int, shape: tuple[int, ...]) -> jax.Array:
    return jnp.stack(lanes, axis=ax + 1).reshape(shape)


def _ranks(a: list[jax.Array]) -> list[jax.Array]:
    """Rank of each lane in decreasing magnitude order; ties: the earlier lane ranks first."""
    r = [jnp.zeros(a[0].shape, jnp.int8) for _ in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            j_first = (a[j] > a[i]).astype(jnp.int8)  # 1 if j precedes i
            r[i] = r[i] + j_first
            r[j] = r[j] + (1 - j_first)
    return r


def _gather_by_rank(vals: list[jax.Array], ranks: list[jax.Array]) -> list[jax.Array]:
    """``out[i] = vals[ranks[i]]`` lane-wise (the inverse of sorting)."""
    return [
        jnp.where(r == 0, vals[0], jnp.where(r == 1, vals[1], jnp.where(r == 2, vals[2], vals[3])))
        for r in ranks
    ]


def _coordinate_min(
    s: list[jax.Array], t: jax.Array, k: int, num_sweeps: int, tol: jax.Array
) -> list[jax.Array]:
    """Gauss-Seidel coordinate minimisation on the top-``k`` support (k = 3 or 4) of sorted ``s``.

    Each coordinate update is exact (the objective is quadratic-plus-linear in one coordinate),
    so every sweep decreases the objective; stops after ``num_sweeps`` sweeps or when no entry
    moved by more than ``tol``.
    """

    def others(w, i):
        o = [w[j] for j in range(k) if j != i]
        if k == 3:  # d/dw_i of w_i w_j w_l: the product of the other two
            return o[0] * o[1]
        return o[0] * o[1] + o[0] * o[2] + o[1] * o[2]  # e2 of the other three

    def sweep(carry):
        sweeps, w, _ = carry
        w = list(w)
        delta = jnp.zeros((), s[0].dtype)
        for i in range(k):
            new = jnp.maximum(0.0, s[i] - t * others(w, i))
            delta = jnp.maximum(delta, jnp.max(jnp.abs(new - w[i]), initial=0.0))
            w[i] = new
        return sweeps + 1, tuple(w), delta

    def cond(carry):
        sweeps, _, delta = carry
        return (sweeps < num_sweeps) & (delta > tol)

    init = (jnp.zeros((), jnp.int32), tuple(s[:k]), jnp.asarray(jnp.inf, s[0].dtype))
    _, w, _ = jax.lax.while_loop(cond, sweep, init)
    return [*w, *([jnp.zeros_like(s[0])] * (4 - k))]


def _objective_lanes(w: list[jax.Array], s: list[jax.Array], t: jax.Array) -> jax.Array:
    e3 = w[0] * w[1] * w[2] + w[0] * w[1] * w[3] + w[0] * w[2] * w[3] + w[1] * w[2] * w[3]
    return 0.5 * sum(jnp.square(wi - si) for wi, si in zip(w, s)) + t * e3


def prox_24_lanes(
    z: list[jax.Array], t: jax.Array, *, num_sweeps: int = 100, tol: jax.Array | float = 0.0
) -> list[jax.Array]:
    """:func:`prox_24` on groups given as four same-shape arrays (one per group position).

    The lane layout keeps every operation element-wise on contiguous arrays: the magnitudes are
    ranked by six comparisons instead of a sort, and the solution is put back by rank.
    """
    a = [jnp.abs(zi) for zi in z]
    ranks = _ranks(a)
    # sorted magnitudes s[0] >= ... >= s[3]: s[k] is the lane whose rank is k
    s = [
        sum(jnp.where(r == k, ai, 0.0) for r, ai in zip(ranks, a)).astype(a[0].dtype)
        for k in range(4)
    ]
    zero = jnp.zeros_like(s[0])
    c2 = [s[0], s[1], zero, zero]
    c3 = _coordinate_min(s, t, 3, num_sweeps, tol)
    c4 = _coordinate_min(s, t, 4, num_sweeps, tol)
    v2, v3, v4 = (_objective_lanes(c, s, t) for c in (c2, c3, c4))
    # the smallest objective wins; ties go to the smaller support
    use3 = v3 < v2
    use4 = v4 < jnp.minimum(v2, v3)
    best = [jnp.where(use4, x4, jnp.where(use3, x3, x2)) for x2, x3, x4 in zip(c2, c3, c4)]
    return [jnp.sign(zi) * wi for zi, wi in zip(z, _gather_by_rank(best, ranks))]


def prox_24(
    w: Float[Array, "*shape"],
    lam: Float[Array, ""] | float,
    *,
    axis: int = 0,
    num_sweeps: int = 100,
    tol: float | None = None,
) -> Float[Array, "*shape"]:
    r"""Proximal operator of ``lam`` times the 2:4 regulariser, group-wise along ``axis``.

    Args:
      w: weights of any shape; ``w.shape[axis]`` must be a multiple of 4.
      lam: the threshold :math:`t \ge 0` (step size times regularisation strength), a scalar.
      axis: the axis along which groups of 4 consecutive entries are formed (default 0: the
        input axis of a Flax ``(d_in, d_out)`` kernel).
      num_sweeps: the most coordinate-minimisation sweeps for the 3- and 4-support candidates
        (static).
      tol: sweeps stop early once no entry moves by more than ``tol``; default
        ``8 * eps * max|w|`` of the working dtype (float32, or float64 for float64 input), i.e.
        converged to working precision.

    Returns:
      An array of ``w``'s shape and dtype: signs and within-group magnitude order of ``w`` are
      kept, magnitudes only shrink.

    Example:
        >>> import jax.numpy as jnp
        >>> prox_24(jnp.array([4.0, -3.0, 0.5, 0.1]), 10.0).tolist()
        [4.0, -3.0, 0.0, 0.0]
        >>> prox_24(jnp.array([4.0, -3.0, 0.5, 0.1]), 0.0).tolist()
        [4.0, -3.0, 0.5, 0.10000000149011612]
    """
    w = jnp.asarray(w)
    if not jnp.issubdtype(w.dtype, jnp.floating):
        raise ValueError(f"w: expected a floating-point array, got dtype {w.dtype}")
    if np.ndim(lam) != 0:
        raise ValueError(f"lam: expected a scalar, got shape {np.shape(lam)}")
    if isinstance(lam, (int, float)) and lam < 0:
        raise ValueError(f"lam: expected >= 0, got {lam}")
    if num_sweeps < 1:
        raise ValueError(f"num_sweeps: expected >= 1, got {num_sweeps}")
    if tol is not None and not tol >= 0:
        raise ValueError(f"tol: expected >= 0, got {tol}")
    ax = _check_nm(w.shape, axis, 2, 4, "w")
    work = jnp.promote_types(w.dtype, jnp.float32)
    z = _lanes(w.astype(work), ax)
    if tol is None:
        tol_ = 8 * jnp.finfo(work).eps * jnp.max(jnp.abs(w), initial=0.0).astype(work)
    else:
        tol_ = jnp.asarray(tol, work)
    out = prox_24_lanes(z, jnp.asarray(lam, work), num_sweeps=num_sweeps, tol=tol_)
    return _unlanes(out, ax, w.shape).astype(w.dtype)


def nm_mask(
    scores: Float[Array, "*shape"], n: int = 2, m: int = 4, *, axis: int = 0
) -> Bool[Array, "*shape"]:
    """Boolean N:M mask keeping the ``n`` largest ``scores`` of every ``m`` consecutive entries along ``axis``.

    Ties keep the earlier entry. The default ``axis=0`` is the input axis of a Flax kernel
    (jaxpruner's ``NByM`` defaults to the last axis, the output axis of a Flax kernel).

    Example:
        >>> import jax.numpy as jnp
        >>> nm_mask(jnp.array([1.0, -5.0, 3.0, 2.0]) ** 2).tolist()
        [False, True, True, False]
    """
    scores = jnp.asarray(scores)
    ax = _check_nm(scores.shape, axis, n, m, "scores")
    g, back = _groups(scores, ax, m)
    ranks = jnp.argsort(jnp.argsort(-g, axis=-1, stable=True), axis=-1, stable=True)
    return back(ranks < n)


def is_nm_sparse(w: Float[Array, "*shape"], n: int = 2, m: int = 4, *, axis: int = 0) -> jax.Array:
    """True when every ``m`` consecutive entries of ``w`` along ``axis`` hold at most ``n`` non-zeros."""
    w = jnp.asarray(w)
    ax = _check_nm(w.shape, axis, n, m, "w")
    g, _ = _groups(w, ax, m)
    return jnp.all(jnp.sum(g != 0, axis=-1) <= n)
