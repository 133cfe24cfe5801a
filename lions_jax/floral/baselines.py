r"""Robust-SVM baselines of the FLORAL comparison (arXiv 2502.17121), as pure JAX functions.

* :func:`ln_svm_kernel` / :func:`ln_svm_eval_kernel` — LN-SVM (Biggio, Nelson & Laskov, ACML
  2011): the kernel matrix corrected for an assumed label-flip rate :math:`\mu`.
* :func:`ls_sanitize` — LS-SVM label sanitisation (Paudice, Muñoz-González & Lupu, 2018):
  k-NN majority relabelling repeated until nothing changes.
* :func:`dbscan` — DBSCAN (Ester et al., 1996) with scikit-learn's exact cluster numbering.
* :func:`curie_filter` — Curie (Laishram & Phoha, 2016): DBSCAN, then a z-scored distance to
  same-cluster points in the label-augmented space; outliers are dropped.

All are jit/vmap-able: fixed shapes, no Python branching on traced values, loops are
``lax.fori_loop`` / ``lax.while_loop`` with iteration caps. Integer, threshold and string
options (``k``, ``eta``, ``max_iter``, ``order``, ``min_samples``, ``num_samples``,
``reduction``) are Python values validated at trace time (mark them ``static_argnames`` under
``jax.jit``); the compiled kernels specialise only on the shapes and on LS's ``k`` and ``order``
(the others enter as traced values), so sweeping them does not recompile. Scalars ``mu``,
``eps``, ``label_weight`` and ``theta`` may be traced (range-checked only when concrete).
Labels are float arrays of ±1, as elsewhere in :mod:`lions_jax.floral`.

The reference for every choice documented below is the official code,
https://github.com/melisilaydabal/floral: ``src/models/ln_robust_svm.py`` (μ = 0.05),
``src/models/label_sanitization.py`` and ``src/models/curie_filter.py``, which
``src/core/data_loader.py`` applies to the (poisoned) training set with Curie ``weight=0.05,
count=20, theta=0.75`` and LS ``k=20, eta=0.75``.

K-LID (Weerasinghe et al., IEEE TIFS 2021) is deliberately **not** implemented: its per-point
kernel LID is public (``sandamal/lid-svm``), but the map from LID to sample weight is fitted on
the K-LID densities of points *known* to be flipped (an oracle, or a simulated attack whose
protocol the FLORAL code does not include: it only has a ``set_sample_weights`` hook).
"""

from functools import partial
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = [
    "curie_filter",
    "dbscan",
    "ln_svm_eval_kernel",
    "ln_svm_kernel",
    "ls_sanitize",
]


def _concrete(v: Any) -> bool:
    """True if ``v`` holds a value at trace time (not a tracer), so it can be range-checked."""
    return not isinstance(v, jax.core.Tracer)


def _float_array(v: ArrayLike) -> jax.Array:
    v = jnp.asarray(v)
    if not jnp.issubdtype(v.dtype, jnp.floating):
        v = v.astype(jnp.float32)
    return v


def _check_points_labels(x: jax.Array, y: jax.Array | None) -> None:
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x: expected a non-empty (n, d) array, got shape {x.shape}")
    if y is not None and y.shape != (x.shape[0],):
        raise ValueError(f"y: expected shape ({x.shape[0]},) to match x, got {y.shape}")


def _sq_dists(x: jax.Array) -> jax.Array:
    """Pairwise squared Euclidean distances from explicit differences (exact zeros on the diagonal,
    no Gram-matrix cancellation), row blocks bounded to about 2^22 elements."""
    n, d = x.shape
    rows = max(1, min(n, (1 << 22) // max(1, n * d)))
    return jax.lax.map(lambda xi: jnp.sum((x - xi) ** 2, axis=-1), x, batch_size=rows)


def _ln_off_diagonal(mu: Any, dtype: Any) -> jax.Array:
    if jnp.ndim(mu) != 0:
        raise ValueError(f"mu: expected a scalar, got shape {jnp.shape(mu)}")
    if _concrete(mu) and not 0.0 <= float(mu) <= 0.5:
        raise ValueError(f"mu: expected a flip rate in [0, 0.5], got {float(mu)}")
    mu = jnp.asarray(mu, dtype)
    return 1.0 - 4.0 * mu * (1.0 - mu)


def ln_svm_kernel(kernel: ArrayLike, mu: ArrayLike) -> jax.Array:
    r"""LN-SVM's corrected training kernel :math:`\tilde K = K \odot M`.

    :math:`M_{ii} = 1` and :math:`M_{ij} = 1 - 4\mu(1-\mu)` for :math:`i \ne j` (Biggio, Nelson
    & Laskov, ACML 2011; the official code calls :math:`\mu(1-\mu)` ``sigma_squared`` and fixes
    :math:`\mu = 0.05`). Reading: if each training label is flipped independently with probability
    :math:`\mu`, :math:`\tilde y_i = \varepsilon_i y_i` with :math:`P(\varepsilon_i = -1) = \mu`,
    then :math:`E[\varepsilon_i \varepsilon_j] = (1-2\mu)^2 = 1 - 4\mu(1-\mu)` for :math:`i \ne j`
    and 1 for :math:`i = j`, i.e. :math:`M = E[\varepsilon\varepsilon^\top]`. Train the SVM dual on
    ``ln_svm_kernel(K, mu)`` and the (poisoned) labels.

    **Prediction kernel.** Use :func:`ln_svm_eval_kernel` for the test-vs-train kernel: every
    entry scaled by :math:`1 - 4\mu(1-\mu)` (no entry of a test-vs-train kernel is a diagonal one).
    This is what the official ``LNRobustSVM`` does through scikit-learn: its ``SVC`` is built with
    the correcting callable as its kernel, which ``predict`` calls on (test, train) and which sets
    the diagonal to 1 only when the two sets are identical (``np.array_equal``). Its separate
    ``_project`` / ``eval_ln_robust_kernel`` path cannot be followed as written (it applies the
    pointwise RBF to whole matrices, which reduces them to a scalar, and then passes a kernel
    matrix to ``SVC.predict``, which applies the kernel again), so it is not reproduced. The
    repo's second variant (``SVM_Baseline`` with ``kernel='ln_robust_rbf'``, μ = 0.25 there) also
    scales test-vs-support-vector entries, but resets the positional diagonal of that rectangular
    matrix to 1 (``np.fill_diagonal``), which has no meaning for test points. Note that
    scaling the test kernel by a constant is not a no-op: the bias is not scaled. Passing the plain
    kernel instead is the caller's choice (``decision_function`` takes any eval kernel).

    Args:
        kernel: ``(n, n)`` training kernel matrix.
        mu: assumed flip rate in ``[0, 0.5]`` (a scalar; may be traced, e.g. under ``vmap``; only
            checked when concrete).

    Returns:
        The ``(n, n)`` corrected kernel.
    """
    kernel = _float_array(kernel)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(f"kernel: expected a square (n, n) matrix, got shape {kernel.shape}")
    off = _ln_off_diagonal(mu, kernel.dtype)
    eye = jnp.eye(kernel.shape[0], dtype=bool)
    return jnp.where(eye, kernel, off * kernel)


def ln_svm_eval_kernel(kernel_eval_train: ArrayLike, mu: ArrayLike) -> jax.Array:
    r"""LN-SVM's test-vs-train kernel: :math:`(1 - 4\mu(1-\mu))\,K(x, x_i)` for every entry.

    The official code's prediction kernel (see :func:`ln_svm_kernel` for the derivation and the
    reading of the official code). ``kernel_eval_train`` is ``(m, n)``; to evaluate on the
    training set itself, use :func:`ln_svm_kernel` (diagonal kept at :math:`K_{ii}`), as the
    official callable does when the two sets are equal.
    """
    k_eval = _float_array(kernel_eval_train)
    if k_eval.ndim != 2:
        raise ValueError(f"kernel_eval_train: expected an (m, n) matrix, got shape {k_eval.shape}")
    return _ln_off_diagonal(mu, k_eval.dtype) * k_eval


def _knn_indices(x: jax.Array, k: int) -> jax.Array:
    """The ``k`` nearest neighbours of every point, the point itself first, ties to lower index."""
    d2 = _sq_dists(x)
    d2 = jnp.where(jnp.eye(x.shape[0], dtype=bool), -jnp.inf, d2)
    return jax.lax.top_k(-d2, k)[1]


def ls_sanitize(
    x: ArrayLike,
    y: ArrayLike,
    *,
    k: int = 20,
    eta: float = 0.75,
    max_iter: int = 100,
    order: Literal["sequential", "simultaneous"] = "sequential",
) -> jax.Array:
    r"""LS-SVM label sanitisation: relabel each point to its k-NN majority label when the majority
    share is at least ``eta``, and sweep until a sweep changes nothing.

    For point :math:`i` with neighbourhood :math:`N_k(i)`, let :math:`m_i` be the most frequent
    current label in :math:`N_k(i)` and :math:`c_i` its count; if :math:`c_i / k \ge \eta` and
    :math:`m_i \ne \tilde y_i`, set :math:`\tilde y_i \leftarrow m_i` (Paudice, Muñoz-González &
    Lupu, 2018). As in the official ``label_sanitization.py``:

    * :math:`N_k(i)` **includes the point itself** (scikit-learn ``kneighbors`` queried with the
      training point returns it at distance 0), so it is the point and its :math:`k-1` nearest
      other points (Euclidean). Neighbourhoods are fixed (features never change). Ties in distance
      go to the lower index here; scikit-learn's tree order may differ on exact ties.
    * ``order="sequential"`` (default) updates in index order within a sweep, each vote using
      the labels already updated in that sweep (Gauss–Seidel): the official loop writes into the
      label array it reads from. ``order="simultaneous"`` (Jacobi) votes with the previous
      sweep's labels for every point; it is not the official rule and can oscillate.
    * A vote tie (possible only for ``eta <= 0.5`` with even ``k``) goes to :math:`-1`, the
      smaller label, as ``scipy.stats.mode`` does.
    * The official loop is unbounded; here at most ``max_iter`` sweeps run (an iteration cap;
      it stops earlier once a sweep changes nothing).

    The test :math:`c_i/k \ge \eta` is evaluated once, in Python float64, as an integer count
    threshold, so it agrees with the official float64 comparison exactly.

    Args:
        x: ``(n, d)`` features.
        y: ``(n,)`` labels in ±1 (float).
        k: neighbourhood size including the point itself, ``1 <= k <= n`` (static).
        eta: majority-share threshold in ``(0, 1]`` (a Python float).
        max_iter: maximum number of sweeps, an int ``>= 1``.
        order: ``"sequential"`` or ``"simultaneous"`` (static).

    Returns:
        The ``(n,)`` sanitised labels, same dtype as ``y``.
    """
    x, y = _float_array(x), _float_array(y)
    _check_points_labels(x, y)
    n = x.shape[0]
    if not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"k: expected an int in [1, n={n}], got {k!r}")
    if not 0.0 < float(eta) <= 1.0:
        raise ValueError(f"eta: expected a float in (0, 1], got {eta!r}")
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter: expected an int >= 1, got {max_iter!r}")
    if order not in ("sequential", "simultaneous"):
        raise ValueError(f"order: expected 'sequential' or 'simultaneous', got {order!r}")
    # smallest count c with c / k >= eta, computed exactly as the official float64 comparison
    min_count = next(c for c in range(k + 1) if c / k >= float(eta))
    return _ls_sanitize(x, y, min_count, max_iter, k=k, order=order)


@partial(jax.jit, static_argnames=("k", "order"))
def _ls_sanitize(
    x: jax.Array, y: jax.Array, min_count: Any, max_iter: Any, *, k: int, order: str
) -> jax.Array:
    n = x.shape[0]
    nbrs = _knn_indices(x, k)

    def vote(labels_of_nbrs: jax.Array, current: jax.Array) -> jax.Array:
        n_pos = jnp.sum(labels_of_nbrs > 0, axis=-1)
        n_neg = k - n_pos
        majority = jnp.where(n_pos > n_neg, 1.0, -1.0).astype(y.dtype)
        share = jnp.maximum(n_pos, n_neg)
        return jnp.where((share >= min_count) & (majority != current), majority, current)

    if order == "sequential":

        def sweep(labels: jax.Array) -> jax.Array:
            def step(i: Any, lab: Any) -> jax.Array:
                return lab.at[i].set(vote(lab[nbrs[i]], lab[i]))

            return jax.lax.fori_loop(0, n, step, labels)

    else:

        def sweep(labels: jax.Array) -> jax.Array:
            return vote(labels[nbrs], labels)

    def cond(state: Any) -> jax.Array:
        it, _, changed = state
        return changed & (it < max_iter)

    def body(state: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
        it, labels, _ = state
        new = sweep(labels)
        return it + 1, new, jnp.any(new != labels)

    init = (jnp.zeros((), jnp.int32), y, jnp.ones((), bool))
    return jax.lax.while_loop(cond, body, init)[1]


def dbscan(x: ArrayLike, *, eps: Any, min_samples: int) -> jax.Array:
    r"""DBSCAN with Euclidean distance; labels numbered exactly as ``sklearn.cluster.DBSCAN``.

    * Neighbourhood :math:`N(i) = \{j : \lVert x_i - x_j\rVert \le \varepsilon\}` (the point
      itself included, boundary inclusive, as scikit-learn's ``radius_neighbors``); :math:`i` is a
      core point if :math:`|N(i)| \ge` ``min_samples``.
    * Clusters are the connected components of the graph on core points with edges
      :math:`\lVert x_i - x_j\rVert \le \varepsilon`, found by min-label propagation (each core
      point takes the smallest label among its core neighbours, followed by one pointer jump
      :math:`\ell \leftarrow \ell[\ell]`) inside a ``lax.while_loop`` capped at ``n`` rounds (the
      graph diameter bound); each component ends labelled by its smallest core index.
    * A non-core point with a core neighbour (border point) joins the adjacent component with
      the smallest smallest-core-index; other points are noise (``-1``). Components are numbered
      ``0, 1, ...`` by their smallest core index. This is scikit-learn's assignment exactly: its
      ``dbscan_inner`` starts clusters at core points in index order and a border point keeps the
      first cluster that reaches it.

    Cost :math:`O(n^2 d)` time for the distances and :math:`O(n^2)` memory.

    Args:
        x: ``(n, d)`` points.
        eps: neighbourhood radius ``> 0`` (may be traced; checked when concrete).
        min_samples: core-point threshold, an int ``>= 1``.

    Returns:
        ``(n,)`` int32 cluster labels, ``-1`` for noise.
    """
    x = _float_array(x)
    _check_points_labels(x, None)
    if jnp.ndim(eps) != 0 or (_concrete(eps) and not float(eps) > 0.0):
        raise ValueError(f"eps: expected a positive scalar, got {eps!r}")
    if not isinstance(min_samples, int) or min_samples < 1:
        raise ValueError(f"min_samples: expected an int >= 1, got {min_samples!r}")
    return _dbscan(x, jnp.asarray(eps, x.dtype), min_samples)


@jax.jit
def _dbscan(x: jax.Array, eps: jax.Array, min_samples: Any) -> jax.Array:
    n = x.shape[0]
    idx = jnp.arange(n, dtype=jnp.int32)
    near = jnp.sqrt(_sq_dists(x)) <= eps
    core = jnp.sum(near, axis=1) >= min_samples
    core_edge = near & core[:, None] & core[None, :]
    sentinel = jnp.int32(n)

    def propagate(lab: jax.Array) -> jax.Array:
        new = jnp.min(jnp.where(core_edge, lab[None, :], sentinel), axis=1)
        new = jnp.where(core, new, sentinel)
        return jnp.append(new, sentinel)[new]  # pointer jump (stays inside the component)

    def cond(state: Any) -> jax.Array:
        it, _, changed = state
        return changed & (it < n)

    def body(state: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
        it, lab, _ = state
        new = propagate(lab)
        return it + 1, new, jnp.any(new != lab)

    lab0 = jnp.where(core, idx, sentinel)
    comp = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), lab0, jnp.ones((), bool)))[1]
    # border points: the smallest component label among core neighbours (sentinel: none)
    border = jnp.min(jnp.where(near & core[None, :], comp[None, :], sentinel), axis=1)
    root = jnp.where(core, comp, border)
    is_root = core & (comp == idx)
    number = jnp.cumsum(is_root, dtype=jnp.int32) - 1
    return jnp.where(root < n, jnp.append(number, -1)[root], -1).astype(jnp.int32)


def curie_filter(
    key: Any,
    x: ArrayLike,
    y: ArrayLike,
    *,
    eps: Any = 0.5,
    min_samples: int = 5,
    label_weight: Any = 0.05,
    num_samples: int = 20,
    theta: Any = 0.75,
    reduction: Literal["mean", "official"] = "mean",
) -> jax.Array:
    r"""Curie (Laishram & Phoha, 2016) as in the official ``curie_filter.py``: a keep mask.

    1. Cluster the features with :func:`dbscan` (``eps``, ``min_samples``; labels play no part).
       Noise points (``-1``) form one more group, as in the official code (it selects
       ``clusters == clusters[i]`` for noise points too).
    2. For each point :math:`i`, draw :math:`s_i` members of its group uniformly **without
       replacement** (the point itself may be drawn; the official code samples from a list that
       contains it) and sum the Euclidean distances :math:`\lVert z_i - z_j\rVert` in the
       label-augmented space :math:`z = [x,\ w\,y]` (``w = label_weight``; with ±1 labels a label
       disagreement adds :math:`(2w)^2` to the squared distance).
    3. Score, z-score over all points (population standard deviation, as ``scipy.stats.zscore``),
       and keep :math:`z_i \le \theta` (drop :math:`z_i > \theta`).

    ``reduction`` fixes :math:`s_i` and the score:

    * ``"mean"`` (default): :math:`s_i = \min(\text{num\_samples}, |G_i|)`; score = the mean
      distance over the :math:`s_i` draws. This is the method as described (and in the spec).
    * ``"official"``: the official arithmetic. Its ``count`` variable is overwritten whenever a
      smaller group is met and never restored, so :math:`s_i = \min(\text{num\_samples},
      \min_{j \le i} |G_j|)` (a running minimum in index order), and the sum is divided by the
      group size :math:`|G_i|`, not by :math:`s_i`.

    Deviations: the official code first reduces IMDB features by PCA (95 % variance) before
    clustering (distances still on the raw features); that step is not included (cluster the
    features you pass). If all scores are equal (zero spread) every point is kept, whereas scipy's
    zscore would return NaN and the official filter would drop every point. The official code
    seeds Python's ``random``; sampling here uses ``key`` (the same distribution, different
    draws). The mask has a fixed shape; to train without the dropped points inside ``jit``, set
    their :math:`C_i` to 0 (then :math:`\alpha_i = 0`, equivalent to removal).

    Args:
        key: PRNG key for the sampling.
        x: ``(n, d)`` features.
        y: ``(n,)`` labels in ±1 (float).
        eps: DBSCAN radius (default 0.5, official).
        min_samples: DBSCAN core threshold, an int ``>= 1`` (default 5, official).
        label_weight: weight :math:`w` of the label coordinate (official call: 0.05).
        num_samples: draws per point, an int ``>= 1`` (official call: 20).
        theta: z-score threshold (official call: 0.75).
        reduction: ``"mean"`` or ``"official"``.

    Returns:
        ``(n,)`` boolean mask, True for the points kept.
    """
    if jnp.ndim(theta) != 0:
        raise ValueError(f"theta: expected a scalar, got {theta!r}")
    score = _curie_scores(
        key,
        x,
        y,
        eps=eps,
        min_samples=min_samples,
        label_weight=label_weight,
        num_samples=num_samples,
        reduction=reduction,
    )
    spread = jnp.std(score)
    safe = jnp.where(spread > 0, spread, 1.0)
    zscore = jnp.where(spread > 0, (score - jnp.mean(score)) / safe, 0.0)
    return zscore <= jnp.asarray(theta, score.dtype)


def _curie_scores(
    key: Any,
    x: ArrayLike,
    y: ArrayLike,
    *,
    eps: Any = 0.5,
    min_samples: int = 5,
    label_weight: Any = 0.05,
    num_samples: int = 20,
    reduction: Literal["mean", "official"] = "mean",
) -> jax.Array:
    """Curie's per-point scores before the z-score (see :func:`curie_filter`)."""
    x, y = _float_array(x), _float_array(y)
    _check_points_labels(x, y)
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples: expected an int >= 1, got {num_samples!r}")
    if jnp.ndim(label_weight) != 0 or (_concrete(label_weight) and float(label_weight) < 0):
        raise ValueError(f"label_weight: expected a non-negative scalar, got {label_weight!r}")
    if reduction not in ("mean", "official"):
        raise ValueError(f"reduction: expected 'mean' or 'official', got {reduction!r}")
    if jnp.ndim(eps) != 0 or (_concrete(eps) and not float(eps) > 0.0):
        raise ValueError(f"eps: expected a positive scalar, got {eps!r}")
    if not isinstance(min_samples, int) or min_samples < 1:
        raise ValueError(f"min_samples: expected an int >= 1, got {min_samples!r}")
    eps, label_weight = jnp.asarray(eps, x.dtype), jnp.asarray(label_weight, x.dtype)
    official = jnp.asarray(reduction == "official")
    # the sort keeps a static number of candidates: num_samples rounded up to a power of two
    # (at least 16), so nearby num_samples share one compilation and the top-k stays cheap
    bucket = min(x.shape[0], 1 << max(4, (num_samples - 1).bit_length()))
    return _curie_scores_impl(
        key, x, y, eps, min_samples, label_weight, num_samples, official, candidates=bucket
    )


@partial(jax.jit, static_argnames="candidates")
def _curie_scores_impl(
    key: Any,
    x: jax.Array,
    y: jax.Array,
    eps: jax.Array,
    min_samples: Any,
    label_weight: jax.Array,
    num_samples: Any,
    official: jax.Array,
    *,
    candidates: int,
) -> jax.Array:
    """Every point ranks its group's members by a random priority (uniform sampling without
    replacement: the top ``draws_i`` of ``candidates >= min(num_samples, n)`` ranked ones)."""
    n = x.shape[0]
    clusters = _dbscan(x, eps, min_samples)
    same = clusters[:, None] == clusters[None, :]
    size = jnp.sum(same, axis=1)
    draws = jnp.minimum(size, num_samples)
    draws = jnp.where(official, jax.lax.cummin(draws), draws)
    priority = jnp.where(same, jax.random.uniform(key, (n, n), x.dtype), -1.0)
    picked = jax.lax.top_k(priority, candidates)[1]  # members first, in random order
    z = jnp.concatenate([x, label_weight * y[:, None]], axis=1)
    dist = jnp.sqrt(jnp.sum((z[picked] - z[:, None, :]) ** 2, axis=-1))
    used = jnp.arange(candidates)[None, :] < draws[:, None]
    total = jnp.sum(jnp.where(used, dist, 0.0), axis=1)
    return total / jnp.where(official, size, draws).astype(x.dtype)
