r"""Kernel SVMs in JAX, shared by FLORAL (:mod:`lions_jax.floral.svm`) and SPD
(:mod:`lions_jax.spd`): kernels, the dual, its exact projection, projected-gradient / FISTA solves
and the decision function.

The dual in minimisation form, for labels :math:`\tilde y \in \{\pm 1\}^n`,

.. math::
   D(\alpha; \tilde y) = \tfrac12 \alpha^\top Q \alpha - \mathbf 1^\top \alpha,
   \qquad Q = \operatorname{diag}(\tilde y)\,K\,\operatorname{diag}(\tilde y),
   \qquad S(\tilde y) = \{0 \le \alpha \le C,\ \tilde y^\top \alpha = 0\}.

The Euclidean projection onto :math:`S` is :math:`\Pi(v) = \operatorname{clip}(v - \lambda^\star
\tilde y, 0, C)` with :math:`\lambda^\star` the root of the non-increasing, piecewise-linear
:math:`\varphi(\lambda) = \tilde y^\top \operatorname{clip}(v - \lambda\tilde y, 0, C)`.
:func:`project_box_hyperplane` finds it by bisection on a bracket that provably contains it
(static iteration count) followed by one exact step on the final linear piece, or by FLORAL's
fixed-point iteration (its Algorithm 2); both are jit/vmap-able.
"""

from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = [
    "decision_function",
    "linear_kernel",
    "pgd_step",
    "project_box_hyperplane",
    "rbf_kernel",
    "solve_svm_dual",
    "svm_dual",
    "svm_dual_grad",
]


def _check_labels_vector(v: jax.Array, y: jax.Array) -> None:
    if v.ndim != 1 or y.shape != v.shape:
        raise ValueError(f"v and y: expected equal 1-D shapes, got {v.shape} and {y.shape}")


def rbf_kernel(x1: ArrayLike, x2: ArrayLike, gamma: Any) -> jax.Array:
    r""":math:`K_{ij} = \exp(-\gamma \lVert x_{1,i} - x_{2,j} \rVert^2)` for ``x1 (n, d)``, ``x2 (m, d)``."""
    x1, x2 = jnp.asarray(x1), jnp.asarray(x2)
    if x1.ndim != 2 or x2.ndim != 2 or x1.shape[1] != x2.shape[1]:
        raise ValueError(f"x1, x2: expected (n, d) and (m, d), got {x1.shape} and {x2.shape}")
    sq = jnp.sum(x1**2, axis=1)[:, None] + jnp.sum(x2**2, axis=1)[None, :] - 2.0 * x1 @ x2.T
    return jnp.exp(-gamma * jnp.maximum(sq, 0.0))


def linear_kernel(x1: ArrayLike, x2: ArrayLike) -> jax.Array:
    """:math:`K = x_1 x_2^\\top`."""
    x1, x2 = jnp.asarray(x1), jnp.asarray(x2)
    if x1.ndim != 2 or x2.ndim != 2 or x1.shape[1] != x2.shape[1]:
        raise ValueError(f"x1, x2: expected (n, d) and (m, d), got {x1.shape} and {x2.shape}")
    return x1 @ x2.T


def svm_dual(alpha: ArrayLike, y: ArrayLike, kernel: ArrayLike) -> jax.Array:
    r""":math:`D(\alpha; y) = \frac12 \alpha^\top \operatorname{diag}(y) K \operatorname{diag}(y) \alpha - \mathbf 1^\top\alpha`."""
    ay = jnp.asarray(alpha) * jnp.asarray(y)
    return 0.5 * ay @ jnp.asarray(kernel) @ ay - jnp.sum(alpha)


def svm_dual_grad(alpha: ArrayLike, y: ArrayLike, kernel: ArrayLike) -> jax.Array:
    r""":math:`\nabla_\alpha D = \operatorname{diag}(y) K \operatorname{diag}(y)\,\alpha - \mathbf 1`."""
    y = jnp.asarray(y)
    return y * (jnp.asarray(kernel) @ (y * jnp.asarray(alpha))) - 1.0


def _phi(v: jax.Array, y: jax.Array, c: Any, lam: jax.Array) -> jax.Array:
    return jnp.sum(y * jnp.clip(v - lam * y, 0.0, c))


def project_box_hyperplane(
    v: ArrayLike,
    y: ArrayLike,
    c: Any,
    *,
    method: Literal["bisection", "fixed_point"] = "bisection",
    max_iter: int | None = None,
) -> jax.Array:
    r"""Euclidean projection of ``v`` onto :math:`\{0 \le \alpha \le c,\ y^\top\alpha = 0\}`, ``y`` in ±1.

    ``c`` is a scalar or one upper bound per coordinate (``c_i = 0`` removes a point, a weight
    :math:`w_i` scales its :math:`C_i = w_i C`, as sample-weighted SVMs do).

    ``method="bisection"``: the root of :math:`\varphi` lies in :math:`[\min_i y_i v_i - c,\
    \max_i y_i v_i + c]` (outside it every coordinate is clipped and :math:`\varphi` has the sign
    of a one-signed label count); ``max_iter`` halvings (default: the float's mantissa bits + 8)
    and then one exact step on the linear piece :math:`\varphi(\lambda) = \varphi(\lambda_0) -
    |F|(\lambda - \lambda_0)`, :math:`F` the free coordinates, give feasibility to round-off.
    ``method="fixed_point"``: the paper's Algorithm 2,
    :math:`\lambda \leftarrow \frac{e-|I_x|}{e}\lambda + \frac1e\big(c\sum_{I_c} y_i +
    \sum_{I_x} v_i y_i\big)`, :math:`e = \max(2|I_x|, 1)`, for ``max_iter`` steps (default 1 000;
    stops early when λ no longer changes), **safeguarded**: the sign of :math:`\varphi` at each
    iterate shrinks a bracket of the root, and a step that leaves the bracket is replaced by its
    midpoint. The plain iteration can cycle when no coordinate is free (``v = (0, 1)``,
    ``y = (-1, 1)``, ``c = 1`` alternates λ = 0, 1 and returns an infeasible point); where it
    converges the fixed point is the same. Both are jit/vmap-able. If all labels share one sign
    the set is :math:`\{0\}`, which both return.
    """
    v = jnp.asarray(v)
    if not jnp.issubdtype(v.dtype, jnp.floating):
        v = v.astype(jnp.float32)
    y = jnp.asarray(y, v.dtype)
    _check_labels_vector(v, y)
    if method not in ("bisection", "fixed_point"):
        raise ValueError(f"method must be 'bisection' or 'fixed_point', got {method!r}")
    c = jnp.asarray(c, v.dtype)
    if c.ndim > 1 or (c.ndim == 1 and c.shape != v.shape):
        raise ValueError(f"c: expected a scalar or shape {v.shape}, got {c.shape}")
    yv = y * v
    if method == "bisection":
        iters = int(max_iter or jnp.finfo(v.dtype).nmant + 8)
        lo, hi = jnp.min(yv) - jnp.max(c), jnp.max(yv) + jnp.max(c)

        def halve(_: Any, bracket: Any) -> tuple[jax.Array, jax.Array]:
            lo, hi = bracket
            mid = 0.5 * (lo + hi)
            positive = _phi(v, y, c, mid) > 0
            return jnp.where(positive, mid, lo), jnp.where(positive, hi, mid)

        lo, hi = jax.lax.fori_loop(0, iters, halve, (lo, hi))
        lam = 0.5 * (lo + hi)
        z = v - lam * y
        free = jnp.sum((z > 0) & (z < c))
        step = jnp.where(free > 0, _phi(v, y, c, lam) / jnp.maximum(free, 1), 0.0)
        lam_exact = lam + step
        # keep the exact step only if it stays on the piece (it does once the bracket is tight)
        same_piece = jnp.all(
            ((z > 0) & (z < c)) == ((v - lam_exact * y > 0) & (v - lam_exact * y < c))
        )
        lam = jnp.where(same_piece, lam_exact, lam)
        return jnp.clip(v - lam * y, 0.0, c)

    iters = int(max_iter or 1000)

    def cond(state: Any) -> jax.Array:
        i, lam, prev, _, _ = state
        return (i < iters) & (lam != prev)

    def body(state: Any) -> tuple[jax.Array, ...]:
        i, lam, _, lo, hi = state
        z = v - lam * y
        at_c = z >= c
        inside = (z > 0) & (z < c)
        n_x = jnp.sum(inside)
        e = jnp.maximum(2.0 * n_x, 1.0)
        new = (e - n_x) / e * lam + (
            jnp.sum(jnp.where(at_c, c * y, 0.0)) + jnp.sum(jnp.where(inside, yv, 0.0))
        ) / e
        # safeguard: phi is non-increasing, so its sign at lam shrinks the bracket of the root;
        # a step leaving the bracket (the plain iteration can cycle) becomes a bisection step
        phi = _phi(v, y, c, lam)
        lo = jnp.where(phi > 0, lam, lo)
        hi = jnp.where(phi < 0, lam, hi)
        new = jnp.where(phi == 0, lam, new)
        new = jnp.where((phi != 0) & ((new <= lo) | (new >= hi)), 0.5 * (lo + hi), new)
        return i + 1, new, lam, lo, hi

    lam0 = jnp.zeros((), v.dtype)
    lo, hi = jnp.min(yv) - jnp.max(c), jnp.max(yv) + jnp.max(c)
    state = (jnp.zeros((), jnp.int32), lam0, lam0 + 1.0, lo, hi)
    _, lam, _, _, _ = jax.lax.while_loop(cond, body, state)
    return jnp.clip(v - lam * y, 0.0, c)


def pgd_step(
    alpha: ArrayLike, y: ArrayLike, kernel: ArrayLike, lr: Any, c: Any, **projection: Any
) -> jax.Array:
    r"""One projected-gradient step on the dual: :math:`\Pi_{S(y)}(\alpha - \eta\nabla D(\alpha; y))`."""
    alpha = jnp.asarray(alpha)
    return project_box_hyperplane(alpha - lr * svm_dual_grad(alpha, y, kernel), y, c, **projection)


def solve_svm_dual(
    y: ArrayLike,
    kernel: ArrayLike,
    c: Any,
    *,
    num_steps: int = 2_000,
    alpha0: ArrayLike | None = None,
    accelerated: bool = True,
    lr: Any = None,
) -> jax.Array:
    r"""The exact SVM (round 0 of FLORAL): projected gradient on the dual run to convergence.

    Step ``lr`` (default :math:`1/\lambda_{\max}(K)`, the dual's smoothness constant, since
    :math:`\lVert\operatorname{diag}(y)K\operatorname{diag}(y)\rVert = \lVert K\rVert`).
    ``accelerated=False`` is plain projected gradient (the dual decreases monotonically);
    ``accelerated=True`` is FISTA with O'Donoghue–Candès gradient restarts, which on kernel SVM
    duals reaches the same optimum in roughly ten times fewer steps. ``num_steps`` is static
    (``lax.fori_loop``); ``c`` may be per-sample (see :func:`project_box_hyperplane`).
    """
    y, kernel = jnp.asarray(y), jnp.asarray(kernel)
    n = y.shape[0]
    if y.ndim != 1 or kernel.shape != (n, n):
        raise ValueError(f"y, kernel: expected (n,) and (n, n), got {y.shape} and {kernel.shape}")
    if lr is None:
        lr = 1.0 / jnp.linalg.eigvalsh(kernel)[-1]
    alpha = jnp.zeros(n, kernel.dtype) if alpha0 is None else jnp.asarray(alpha0, kernel.dtype)
    if not accelerated:
        return jax.lax.fori_loop(0, num_steps, lambda _, a: pgd_step(a, y, kernel, lr, c), alpha)

    def step(_: Any, state: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
        a, z, t = state
        a_new = pgd_step(z, y, kernel, lr, c)
        t_new = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t * t))
        restart = jnp.vdot(z - a_new, a_new - a) > 0
        z_new = a_new + jnp.where(restart, 0.0, (t - 1.0) / t_new) * (a_new - a)
        return a_new, z_new, jnp.where(restart, 1.0, t_new)

    one = jnp.ones((), kernel.dtype)
    alpha, _, _ = jax.lax.fori_loop(0, num_steps, step, (alpha, alpha, one))
    return alpha


def decision_function(
    alpha: ArrayLike,
    labels: ArrayLike,
    kernel_eval_train: ArrayLike,
    kernel_train: ArrayLike,
    *,
    c: Any = None,
    bias: Literal["all_sv", "free_sv"] = "all_sv",
    sv_threshold: float = 1e-5,
) -> jax.Array:
    r""":math:`f(x) = \sum_{i \in SV} \alpha_i y_i K(x_i, x) + b`, :math:`b = \operatorname{mean}_{s}(y_s - \sum_{j\in SV} \alpha_j y_j K_{sj})`.

    ``bias="all_sv"`` averages over **all** support vectors, bound ones (:math:`\alpha_s = C`)
    included: the official code's rule. ``bias="free_sv"`` averages over the free ones
    (:math:`0 < \alpha_s < C`, needs ``c``), the KKT-exact bias of libsvm/scikit-learn. They
    differ: on 200 moons points (C = 10, γ = 0.5; 32 of 38 SVs bound) the same optimal α gives
    98 % vs 100 % agreement with ``sklearn.svm.SVC`` on 200 test points.
    ``labels`` are the labels the dual was solved with: the round's flipped labels (the
    official code's predictor) or the given ones (the spec's parity switch is the caller's
    choice of ``labels``). ``kernel_eval_train`` is ``(m, n)``, ``kernel_train`` ``(n, n)``.
    """
    alpha, labels = jnp.asarray(alpha), jnp.asarray(labels)
    _check_labels_vector(alpha, labels)
    k_eval, k_train = jnp.asarray(kernel_eval_train), jnp.asarray(kernel_train)
    n = alpha.shape[0]
    if k_eval.ndim != 2 or k_eval.shape[1] != n or k_train.shape != (n, n):
        raise ValueError(
            f"kernel_eval_train, kernel_train: expected (m, {n}) and ({n}, {n}), "
            f"got {k_eval.shape} and {k_train.shape}"
        )
    if bias not in ("all_sv", "free_sv") or (bias == "free_sv" and c is None):
        raise ValueError(f"bias must be 'all_sv' or 'free_sv' (with c given), got {bias!r}")
    sv = alpha > sv_threshold
    w = jnp.where(sv, alpha * labels, 0.0)
    margins = labels - k_train @ w
    on = sv if bias == "all_sv" else sv & (alpha < c - sv_threshold)
    b = jnp.sum(jnp.where(on, margins, 0.0)) / jnp.maximum(jnp.sum(on), 1)
    return k_eval @ w + b
