r"""SPD's classifier: an RBF-kernel SVM with balanced class weights, in JAX.

The official notebook uses scikit-learn's ``SVC(kernel="rbf", class_weight="balanced")`` with
its defaults (C = 1, γ = ``"scale"`` = 1 / (d · Var(X)), no feature scaling). Here the same
problem is solved with the shared kernel-SVM dual solver (:mod:`lions_jax._src.kernel_svm`,
FISTA with restarts on the dual, exact projection): balanced weights make the box per-sample,
:math:`C_i = C\,n / (2 n_{y_i})`, and the bias is libsvm's (the mean KKT margin over the free
support vectors). Tested against ``sklearn.svm.SVC`` on fixed features.
"""

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lions_jax._src.kernel_svm import decision_function, rbf_kernel, solve_svm_dual

__all__ = ["RBFSVM", "fit_rbf_svm", "svm_decision"]


class RBFSVM(NamedTuple):
    """A fitted SVM: training points, dual variables, labels (±1), per-sample box, γ and C."""

    x: jax.Array
    alpha: jax.Array
    labels: jax.Array
    box: jax.Array
    gamma: jax.Array


def fit_rbf_svm(
    x: ArrayLike,
    y: ArrayLike,
    *,
    c: float = 1.0,
    gamma: Any = "scale",
    class_weight: Literal["balanced"] | None = "balanced",
    num_steps: int = 3_000,
    sample_mask: ArrayLike | None = None,
) -> RBFSVM:
    """Fits the SVM on features ``x (n, d)`` and labels ``y (n,)`` in {0, 1} (1 = jailbreak).

    ``num_steps`` FISTA steps on the dual (static; the solve is jit/vmap-able for fixed ``n``).
    ``gamma``: ``"scale"`` (1 / (d · Var(X)) over the points fitted), a positive float, or a
    scalar array (may be traced, so one compiled fit serves many γ). ``sample_mask`` ``(n,)``
    bool: only the True points are fitted (the others get a zero box, stay out of the balanced
    class counts and of ``"scale"``'s variance) — the same SVM as fitting ``x[sample_mask]``,
    with shapes that do not depend on the subset.
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim != 2 or not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x: expected float features (n, d), got {x.dtype}{x.shape}")
    if y.shape != x.shape[:1]:
        raise ValueError(f"y: expected shape ({x.shape[0]},), got {y.shape}")
    if class_weight not in ("balanced", None):
        raise ValueError(f"class_weight: expected 'balanced' or None, got {class_weight!r}")
    if isinstance(gamma, str) or isinstance(gamma, int | float):
        if not (gamma == "scale" or (not isinstance(gamma, str) and gamma > 0)):
            raise ValueError(f"gamma: expected 'scale' or a positive float, got {gamma!r}")
    elif jnp.ndim(gamma) != 0:
        raise ValueError(f"gamma: expected a scalar, got shape {jnp.shape(gamma)}")
    if not c > 0:
        raise ValueError(f"c: expected > 0, got {c}")
    if sample_mask is None:
        m = jnp.ones(y.shape, x.dtype)
    else:
        if jnp.shape(sample_mask) != y.shape:
            raise ValueError(f"sample_mask: expected shape {y.shape}, got {jnp.shape(sample_mask)}")
        m = jnp.asarray(sample_mask).astype(x.dtype)
    labels = jnp.where(y > 0, 1.0, -1.0).astype(x.dtype)
    if isinstance(gamma, str):
        n_fit = jnp.sum(m)
        mean = jnp.sum(m[:, None] * x) / (n_fit * x.shape[1])
        var = jnp.sum(m[:, None] * (x - mean) ** 2) / (n_fit * x.shape[1])
        g = 1.0 / (x.shape[1] * var)
    else:
        g = jnp.asarray(gamma, x.dtype)
    n_pos = jnp.sum(m * (labels > 0))
    if class_weight == "balanced":
        n = jnp.sum(m)
        weight = jnp.where(labels > 0, n / (2.0 * n_pos), n / (2.0 * (n - n_pos)))
    else:
        weight = jnp.ones_like(labels)
    box = (c * weight * m).astype(x.dtype)
    kernel = rbf_kernel(x, x, g)
    alpha = solve_svm_dual(labels, kernel, box, num_steps=num_steps)
    return RBFSVM(x, alpha, labels, box, jnp.asarray(g, x.dtype))


def svm_decision(model: RBFSVM, x: ArrayLike, *, sv_threshold: float = 1e-6) -> jax.Array:
    """Decision values ``(m,)`` for features ``x (m, d)``: positive = jailbreak."""
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[1] != model.x.shape[1]:
        raise ValueError(f"x: expected (m, {model.x.shape[1]}), got {x.shape}")
    k_train = rbf_kernel(model.x, model.x, model.gamma)
    k_eval = rbf_kernel(x, model.x, model.gamma)
    return decision_function(
        model.alpha, model.labels, k_eval, k_train, c=model.box, bias="free_sv",
        sv_threshold=sv_threshold,
    )  # fmt: skip
