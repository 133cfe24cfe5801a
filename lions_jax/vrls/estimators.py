r"""Label-shift ratio estimators on predicted probabilities: BBSE, RLLS and MLLS (EM and projected
gradient). VRLS is MLLS applied to the entropy-regularised, calibrated predictor
(:mod:`lions_jax.vrls.calibration`).

**Setting.** Label shift: :math:`p_{te}(x \mid y) = p_{tr}(x \mid y)`; the target is the ratio
:math:`r_y = p_{te}(y) / p_{tr}(y)`. A source-trained predictor gives :math:`f(x) \approx
p_{tr}(\cdot \mid x)`; then :math:`p_{te}(x)/p_{tr}(x) = \sum_y r_y f_y(x)`.

* :func:`mlls` — the maximum-likelihood estimate (Saerens et al. 2002; VRLS eq. 1):

  .. math:: \hat r = \arg\max_{r \in R} \tfrac1m \textstyle\sum_j \log f(x_j)^\top r,\qquad
     R = \{r \ge 0 : \textstyle\sum_y r_y\, p_{tr}(y) = 1\}.

  ``method="em"``: the Saerens EM fixed point (E-step :math:`\pi_j(y) \propto w_y f_y(x_j)`,
  M-step :math:`q = \mathrm{mean}_j\,\pi_j`, :math:`w = q / p_{tr}`) in a ``lax.while_loop``
  stopped at ``max |Δq| < tol`` or ``max_iter``. ``method="pgd"``: projected gradient ascent on
  the same concave objective in :math:`q = r \odot p_{tr}` (the simplex; optax's exact simplex
  projection) with a backtracking (Armijo) step, as a cross-check. Both keep :math:`\hat r \in R`
  exactly (up to rounding).
* :func:`bbse` — black-box shift estimation (Lipton et al. 2018): :math:`\hat w = \hat C^{+}
  \hat\mu`, where :math:`\hat C_{ij} = \hat p_{tr}(\hat y = i, y = j)` on held-out source data and
  :math:`\hat\mu_i = \hat p_{te}(\hat y = i)`; hard (argmax) or soft (probabilities) confusion, see
  :func:`confusion_matrix`.
* :func:`rlls` — regularised learning of label shift (Azizzadenesheli et al. 2019):
  :math:`\hat\theta = \arg\min_\theta \|\hat C\theta - \hat b\|_2 + \Delta_C\|\theta\|_2` with
  :math:`\hat b = \hat\mu - \hat C\mathbf 1`, :math:`\hat w = 1 + \lambda\hat\theta`. The problem is
  solved exactly: its minimiser lies on the ridge path :math:`\theta(\rho) = (\hat C^\top\hat C +
  \rho I)^{-1}\hat C^\top\hat b` at the :math:`\rho` where :math:`\rho\|\theta(\rho)\| =
  \Delta_C\|\hat C\theta(\rho) - \hat b\|` (the first-order condition), found by bisection on
  :math:`\log\rho` (a monotone function); :math:`\theta = 0` when
  :math:`\|\hat C^\top\hat b\| \le \Delta_C\|\hat b\|`.

**Degenerate inputs.** BBSE and RLLS use the pseudo-inverse / ridge path, so a singular confusion
matrix gives the minimum-norm solution (documented fallback), never NaN. Their raw estimates are
clipped to :math:`r \ge 0` and, with ``normalize=True`` (default, used everywhere in lions_jax so
that all estimators are compared on the same set R), rescaled so that :math:`\sum_y r_y\,
p_{tr}(y) = 1` (an all-zero clipped estimate falls back to :math:`r \equiv 1`). A class absent from
training (:math:`p_{tr}(y) = 0`) is a ``ValueError`` when ``p_train`` is concrete; under ``jit``
(traced ``p_train``) such classes get :math:`r_y = 0` and are left out of the estimation. Rows of
``probs`` that do not sum to one are a ``ValueError`` when concrete; traced rows are renormalised.
"""

import functools
import math
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

__all__ = [
    "bbse",
    "confusion_matrix",
    "label_marginal",
    "mlls",
    "mlls_objective",
    "normalize_ratio",
    "rlls",
    "target_mean_prediction",
]

_PROB_TOL = 1e-3  # how far a concrete probability row may be from summing to one


def _is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_probs(probs: Any, name: str, num_classes: int | None = None) -> jax.Array:
    probs = jnp.asarray(probs)
    if probs.ndim != 2 or probs.shape[0] < 1 or probs.shape[1] < 2:
        raise ValueError(
            f"{name}: expected shape (m, num_classes) with m >= 1, num_classes >= 2, got {probs.shape}"
        )
    if num_classes is not None and probs.shape[1] != num_classes:
        raise ValueError(
            f"{name}: expected {num_classes} classes (last axis), got shape {probs.shape}"
        )
    if not jnp.issubdtype(probs.dtype, jnp.floating):
        raise ValueError(f"{name}: expected a floating dtype, got {probs.dtype}")
    if _is_concrete(probs):  # checked in NumPy: inside a jit trace, jnp ops on constants are staged
        pn = np.asarray(probs)
        dev = float(np.max(np.abs(pn.sum(-1) - 1.0)))
        if not math.isfinite(dev) or dev > _PROB_TOL or float(pn.min()) < 0:
            raise ValueError(
                f"{name}: rows must be probabilities (>= 0, summing to 1); max |row sum - 1| = {dev:.3g}"
            )
    return probs / probs.sum(-1, keepdims=True)


def _check_marginal(p: Any, name: str, num_classes: int | None = None) -> jax.Array:
    p = jnp.asarray(p)
    if p.ndim != 1 or p.shape[0] < 2:
        raise ValueError(
            f"{name}: expected shape (num_classes,) with num_classes >= 2, got {p.shape}"
        )
    if num_classes is not None and p.shape[0] != num_classes:
        raise ValueError(f"{name}: expected shape ({num_classes},), got {p.shape}")
    if not jnp.issubdtype(p.dtype, jnp.floating):
        raise ValueError(f"{name}: expected a floating dtype, got {p.dtype}")
    if _is_concrete(p):
        pn = np.asarray(p)
        if float(pn.min()) <= 0:
            raise ValueError(
                f"{name}: every class needs positive training frequency (class "
                f"{int(np.argmin(pn))} has {float(pn.min()):.3g}); drop absent classes first"
            )
        if abs(float(pn.sum()) - 1.0) > _PROB_TOL:
            raise ValueError(f"{name}: must sum to 1, sums to {float(pn.sum()):.6g}")
    return p / p.sum()


def label_marginal(labels: ArrayLike, num_classes: int) -> jax.Array:
    """Empirical label frequencies, shape ``(num_classes,)`` (float32, or float64 under x64)."""
    labels = jnp.asarray(labels)
    if labels.ndim != 1 or not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"labels: expected a 1-D integer array, got {labels.dtype}{labels.shape}")
    counts = jnp.zeros(num_classes, jnp.result_type(float)).at[labels].add(1.0)
    return counts / labels.shape[0]


def confusion_matrix(probs: ArrayLike, labels: ArrayLike, *, soft: bool = False) -> jax.Array:
    r"""Joint confusion :math:`\hat C_{ij} = \hat p(\hat y = i, y = j)` on held-out source data.

    Args:
      probs: ``(n, C)`` predicted probabilities on held-out *labelled source* data.
      labels: ``(n,)`` integer true labels.
      soft: use the probabilities themselves (soft BBSE) instead of one-hot argmax predictions.

    Returns:
      ``(C, C)``, entries summing to one; column sums are the source label frequencies.
    """
    probs = _check_probs(probs, "probs")
    labels = jnp.asarray(labels)
    if labels.shape != probs.shape[:1] or not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(
            f"labels: expected integer shape {probs.shape[:1]}, got {labels.dtype}{labels.shape}"
        )
    c = probs.shape[1]
    pred = probs if soft else jax.nn.one_hot(jnp.argmax(probs, -1), c, dtype=probs.dtype)
    return pred.T @ jax.nn.one_hot(labels, c, dtype=probs.dtype) / probs.shape[0]


def target_mean_prediction(
    probs_target: ArrayLike, *, soft: bool = False, weights: ArrayLike | None = None
) -> jax.Array:
    r""":math:`\hat\mu_i = \hat p_{te}(\hat y = i)` on unlabelled target data (hard or soft);
    ``weights`` (``(m,)``, ≥ 0) make it a weighted mean, e.g. a 0/1 mask over padded rows."""
    probs = _check_probs(probs_target, "probs_target")
    w = _check_weights(weights, probs)
    pred = (
        probs if soft else jax.nn.one_hot(jnp.argmax(probs, -1), probs.shape[1], dtype=probs.dtype)
    )
    return w @ pred


def _check_weights(weights: Any, probs: jax.Array) -> jax.Array:
    """Sample weights normalised to sum to one (uniform when ``None``)."""
    if weights is None:
        return jnp.full(probs.shape[0], 1.0 / probs.shape[0], probs.dtype)
    w = jnp.asarray(weights, probs.dtype)
    if w.shape != probs.shape[:1]:
        raise ValueError(f"weights: expected shape {probs.shape[:1]}, got {w.shape}")
    if _is_concrete(w) and not (float(np.min(w)) >= 0 and float(np.sum(w)) > 0):
        raise ValueError("weights: expected non-negative weights with a positive sum")
    return w / w.sum()


def normalize_ratio(r: ArrayLike, p_train: ArrayLike) -> jax.Array:
    r"""Clip to :math:`r \ge 0` and rescale so that :math:`\sum_y r_y\,p_{tr}(y) = 1` (all zero →
    :math:`r \equiv 1`)."""
    r = jnp.maximum(jnp.asarray(r), 0.0)
    p_train = jnp.asarray(p_train)
    mass = jnp.sum(r * p_train)
    safe = mass > 0
    return jnp.where(safe, r / jnp.where(safe, mass, 1.0), jnp.ones_like(r))


def bbse(confusion: ArrayLike, mu_target: ArrayLike, *, normalize: bool = True) -> jax.Array:
    r"""Black-box shift estimation: :math:`\hat r = \mathrm{clip}_{\ge 0}(\hat C^{+}\hat\mu)`.

    Args:
      confusion: ``(C, C)`` joint confusion from :func:`confusion_matrix` (hard or soft).
      mu_target: ``(C,)`` from :func:`target_mean_prediction` with the same ``soft``.
      normalize: rescale onto :math:`\sum_y r_y p_{tr}(y) = 1` with :math:`p_{tr}` the column sums
        of ``confusion`` (see :func:`normalize_ratio`).

    Returns:
      ``(C,)`` ratio estimate. With an exact confusion matrix and noiseless :math:`\hat\mu` it is
      the true ratio. A singular ``confusion`` gives the minimum-norm least-squares solution.
    """
    conf, mu = _check_square(confusion, mu_target)
    w = jnp.linalg.pinv(conf) @ mu
    return normalize_ratio(w, conf.sum(0)) if normalize else jnp.maximum(w, 0.0)


def _check_square(confusion: Any, mu_target: Any) -> tuple[jax.Array, jax.Array]:
    conf = jnp.asarray(confusion)
    mu = jnp.asarray(mu_target)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1] or conf.shape[0] < 2:
        raise ValueError(
            f"confusion: expected a square (C, C) matrix with C >= 2, got {conf.shape}"
        )
    if mu.shape != conf.shape[:1]:
        raise ValueError(f"mu_target: expected shape {conf.shape[:1]}, got {mu.shape}")
    if not (jnp.issubdtype(conf.dtype, jnp.floating) and jnp.issubdtype(mu.dtype, jnp.floating)):
        raise ValueError(
            f"confusion, mu_target: expected floating dtypes, got {conf.dtype}, {mu.dtype}"
        )
    dtype = jnp.result_type(conf, mu)
    return conf.astype(dtype), mu.astype(dtype)


def rlls(
    confusion: ArrayLike,
    mu_target: ArrayLike,
    *,
    delta: float,
    lam: float = 1.0,
    normalize: bool = True,
    num_bisection: int = 100,
) -> jax.Array:
    r"""Regularised learning of label shift, solved exactly.

    Minimises :math:`\|\hat C\theta - \hat b\|_2 + \Delta_C\|\theta\|_2` (``delta`` = :math:`\Delta_C`)
    with :math:`\hat b = \hat\mu - \hat C\mathbf 1` and returns :math:`1 + \lambda\hat\theta`,
    clipped (and normalised, see :func:`bbse`). Azizzadenesheli et al. suggest
    :math:`\Delta_C \propto 1/\sqrt{n}` for ``n`` held-out source points.

    The minimiser is :math:`\theta(\rho) = (\hat C^\top \hat C + \rho I)^{-1}\hat C^\top\hat b` at the
    root of :math:`h(\rho) = \rho\|\theta(\rho)\| - \Delta_C\|\hat C\theta(\rho) - \hat b\|`, which
    increases in :math:`\rho`; ``num_bisection`` halvings of :math:`\log_{10}\rho \in [-30, 30]`
    (100 gives the root to ~1e-28 relative, below float64 rounding). If
    :math:`\|\hat C^\top\hat b\| \le \Delta_C\|\hat b\|`, the minimiser is :math:`\theta = 0`.
    """
    conf, mu = _check_square(confusion, mu_target)
    if not delta >= 0:
        raise ValueError(f"delta: expected >= 0, got {delta}")
    if not lam > 0:
        raise ValueError(f"lam: expected > 0, got {lam}")
    w = _rlls_theta(conf, mu, jnp.asarray(delta, conf.dtype), num_bisection)
    w = 1.0 + lam * w
    return normalize_ratio(w, conf.sum(0)) if normalize else jnp.maximum(w, 0.0)


@functools.partial(jax.jit, static_argnums=(3,))
def _rlls_theta(conf: Any, mu: Any, delta: Any, num_bisection: int) -> jax.Array:
    c = conf.shape[0]
    b = mu - conf.sum(1)
    gram, ctb = conf.T @ conf, conf.T @ b
    eye = jnp.eye(c, dtype=conf.dtype)

    def theta(log_rho: Any) -> jax.Array:
        return jnp.linalg.solve(gram + 10.0**log_rho * eye, ctb)

    def h(log_rho: Any) -> jax.Array:
        t = theta(log_rho)
        return 10.0**log_rho * jnp.linalg.norm(t) - delta * jnp.linalg.norm(conf @ t - b)

    def halve(_: Any, bounds: Any) -> tuple[jax.Array, jax.Array]:
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        up = h(mid) > 0
        return jnp.where(up, lo, mid), jnp.where(up, mid, hi)

    lo, hi = jax.lax.fori_loop(
        0, num_bisection, halve, (jnp.asarray(-30.0, conf.dtype), jnp.asarray(30.0, conf.dtype))
    )
    t = theta(0.5 * (lo + hi))
    zero = jnp.linalg.norm(ctb) <= delta * jnp.linalg.norm(b)
    return jnp.where(zero | ~jnp.all(jnp.isfinite(t)), 0.0, t)


def mlls_objective(r: ArrayLike, probs_target: ArrayLike) -> jax.Array:
    r""":math:`\tfrac1m\sum_j \log f(x_j)^\top r`, the MLLS log-likelihood (up to a constant)."""
    return jnp.mean(jnp.log(jnp.asarray(probs_target) @ jnp.asarray(r)))


def mlls(
    probs_target: ArrayLike,
    p_train: ArrayLike,
    *,
    method: Literal["em", "pgd"] = "em",
    tol: float = 1e-6,
    max_iter: int = 100,
    weights: ArrayLike | None = None,
) -> jax.Array:
    r"""Maximum-likelihood label shift (MLLS / the VRLS estimator) by EM or projected gradient.

    Args:
      probs_target: ``(m, C)`` calibrated source-predictor probabilities on unlabelled target data.
      p_train: ``(C,)`` source label frequencies (the prior the predictor was trained under).
      method: ``"em"`` (Saerens' fixed point, the standard solver) or ``"pgd"`` (projected
        gradient ascent with backtracking on the simplex in :math:`q = r\odot p_{tr}`).
      tol: ``em`` stops when the largest change of :math:`q` in an iteration is below ``tol``;
        ``pgd`` when the largest entry of the gradient mapping :math:`(q_+ - q)/t` is.
      max_iter: static iteration cap (``pgd`` usually needs several hundred; EM on separable
        predictors converges in tens).
      weights: optional ``(m,)`` non-negative sample weights (the objective becomes the weighted
        mean log-likelihood); a 0/1 mask lets target samples of different sizes share one
        compiled program.

    Returns:
      ``(C,)`` ratio :math:`\hat r \in R`; jit/vmap-able (``method``, ``tol``, ``max_iter`` static).

    Example:
        >>> import jax.numpy as jnp
        >>> probs = jnp.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8]])
        >>> [round(float(v), 2) for v in mlls(probs, jnp.array([0.5, 0.5]))]
        [1.63, 0.37]
    """
    if method not in ("em", "pgd"):
        raise ValueError(f"method: expected 'em' or 'pgd', got {method!r}")
    if not (tol > 0 and max_iter >= 1):
        raise ValueError(f"tol must be > 0 and max_iter >= 1, got tol={tol}, max_iter={max_iter}")
    probs = _check_probs(probs_target, "probs_target")
    p_tr = _check_marginal(p_train, "p_train", probs.shape[1]).astype(probs.dtype)
    w = _check_weights(weights, probs)
    return _mlls(probs, p_tr, w, method, tol, max_iter)


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def _mlls(probs: Any, p_tr: Any, w: Any, method: str, tol: float, max_iter: int) -> jax.Array:
    # Jitted (cached per static options and shapes) so eager callers compile the loop once.
    present = p_tr > 0
    safe_p = jnp.where(present, p_tr, 1.0)
    # g_j(y) = f_y(x_j) / p_tr(y): the likelihood ratio in q-space, log-likelihood mean_j log g_j^T q.
    g = jnp.where(present, probs / safe_p, 0.0)
    solve = _em if method == "em" else _pgd
    q = solve(g, w, p_tr, tol, max_iter)
    return jnp.where(present, q / safe_p, 0.0)


def _em(g: jax.Array, w: jax.Array, q0: jax.Array, tol: float, max_iter: int) -> jax.Array:
    def step(q: Any) -> jax.Array:
        post = g * q  # pi_j(y) ∝ w_y f_y(x_j) = q_y g_j(y)
        post = post / jnp.maximum(post.sum(-1, keepdims=True), jnp.finfo(g.dtype).tiny)
        return w @ post

    def cond(carry: Any) -> jax.Array:
        it, _, change = carry
        return (it < max_iter) & (change >= tol)

    def body(carry: Any) -> tuple[Any, Any, Any]:
        it, q, _ = carry
        q_new = step(q)
        return it + 1, q_new, jnp.max(jnp.abs(q_new - q))

    init = (jnp.asarray(0), q0, jnp.asarray(jnp.inf, q0.dtype))
    return jax.lax.while_loop(cond, body, init)[1]


def _pgd(g: jax.Array, w: jax.Array, q0: jax.Array, tol: float, max_iter: int) -> jax.Array:
    """Projected gradient ascent on mean_j log(g_j^T q) over the simplex, Armijo backtracking.

    Each iteration tries step sizes ``2 s, s, s/2, ...`` (``s`` the last accepted one, starting at
    1) and accepts the first with sufficient increase ``F(q+) >= F(q) + <∇F, q+ - q> - |q+ - q|²/(2t)``
    (the standard condition for the proximal-gradient step of a smooth concave objective).
    """
    dtype = g.dtype
    big = jnp.asarray(jnp.finfo(dtype).max, dtype)
    slack = 8 * jnp.finfo(dtype).eps  # rounding allowance in the sufficient-increase test

    def objective(q: Any) -> jax.Array:
        val = w @ jnp.log(jnp.where(w > 0, g @ q, 1.0))
        return jnp.where(jnp.isfinite(val), val, -big)

    def ascent(q: Any, grad: Any, t: Any) -> jax.Array:
        return optax.projections.projection_simplex(q + t * grad)

    def cond(carry: Any) -> jax.Array:
        it, _, _, change = carry
        return (it < max_iter) & (change >= tol)

    def body(carry: Any) -> tuple[Any, Any, Any, Any]:
        it, q, t, _ = carry
        f, grad = jax.value_and_grad(objective)(q)

        def accepted(t_: Any) -> jax.Array:
            q_new = ascent(q, grad, t_)
            d = q_new - q
            return objective(q_new) >= f + d @ grad - (d @ d) / (2 * t_) - slack * jnp.abs(f)

        t = jax.lax.while_loop(
            lambda t_: ~accepted(t_) & (t_ > 1e-20), lambda t_: 0.5 * t_, 2.0 * t
        )
        q_new = ascent(q, grad, t)
        # Stop on the gradient mapping |q+ - q| / t (zero exactly at the maximiser), not on the
        # step alone, which is also small when backtracking has shrunk t.
        return it + 1, q_new, t, jnp.max(jnp.abs(q_new - q)) / t

    init = (jnp.asarray(0), q0, jnp.asarray(1.0, dtype), jnp.asarray(jnp.inf, dtype))
    return jax.lax.while_loop(cond, body, init)[1]
