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


def _sweeps(a: jax.Array, t: jax.Array, k: int, num_sweeps: int) -> jax.Array:
    """Coordinate minimisation on the top-``k`` support (k = 3 or 4) of sorted magnitudes ``a``."""
    active = jnp.arange(4) < k

    def partial(w, i):
        others = jnp.where((jnp.arange(4) != i) & active, w, 0.0)
        if k == 3:  # product of the other two active entries
            return jnp.prod(jnp.where((jnp.arange(4) != i) & active, w, 1.0), axis=-1)
        s1 = jnp.sum(others, axis=-1)
        return 0.5 * (s1 * s1 - jnp.sum(others * others, axis=-1))  # e2 of the other three

    def sweep(_, w):
        for i in range(k):
            w = w.at[..., i].set(jnp.maximum(0.0, a[..., i] - t * partial(w, i)))
        return w

    w0 = jnp.where(active, a, 0.0)
    return jax.lax.fori_loop(0, num_sweeps, sweep, w0)


def prox_24(
    w: Float[Array, "*shape"],
    lam: Float[Array, ""] | float,
    *,
    axis: int = 0,
    num_sweeps: int = 100,
) -> Float[Array, "*shape"]:
    r"""Proximal operator of ``lam`` times the 2:4 regulariser, group-wise along ``axis``.

    Args:
      w: weights of any shape; ``w.shape[axis]`` must be a multiple of 4.
      lam: the threshold :math:`t \ge 0` (step size times regularisation strength), a scalar.
      axis: the axis along which groups of 4 consecutive entries are formed (default 0: the
        input axis of a Flax ``(d_in, d_out)`` kernel).
      num_sweeps: coordinate-minimisation sweeps for the 3- and 4-support candidates (static).

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
    ax = _check_nm(w.shape, axis, 2, 4, "w")
    g, back = _groups(w, ax, 4)
    work = jnp.promote_types(g.dtype, jnp.float32)
    z = g.astype(work)
    t = jnp.asarray(lam, work)
    order = jnp.argsort(-jnp.abs(z), axis=-1, stable=True)
    a = jnp.take_along_axis(jnp.abs(z), order, axis=-1)
    c2 = jnp.where(jnp.arange(4) < 2, a, 0.0)
    c3 = _sweeps(a, t, 3, num_sweeps)
    c4 = _sweeps(a, t, 4, num_sweeps)
    cands = jnp.stack([c2, c3, c4])
    vals = group_objective(cands, a[None], t)
    best = jnp.argmin(vals, axis=0)
    sol = jnp.take_along_axis(cands, best[None, ..., None], axis=0)[0]
    out = jnp.put_along_axis(jnp.zeros_like(sol), order, sol, axis=-1, inplace=False)
    return back((jnp.sign(z) * out).astype(g.dtype))


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
