"""FLORAL's robust-SVM baselines: LN-SVM kernel correction, LS label sanitisation against a
straightforward numpy port of the official loop, DBSCAN against scikit-learn (exact labels), and
the Curie filter against exact references (full-group and expected-value cases)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import mode
from sklearn.cluster import DBSCAN
from sklearn.neighbors import NearestNeighbors

from lions_jax._src.testing import raises_invalid
from lions_jax.floral.baselines import (
    _curie_scores,
    _knn_indices,
    curie_filter,
    dbscan,
    ln_svm_eval_kernel,
    ln_svm_kernel,
    ls_sanitize,
)
from lions_jax.floral.svm import rbf_kernel


def _blobs(rng, n, centers, scale):
    centers = np.asarray(centers, float)
    which = rng.integers(0, len(centers), n)
    return centers[which] + scale * rng.standard_normal((n, centers.shape[1])), which


# --------------------------------------------------------------------------- LN-SVM


def test_ln_svm_kernel_correction_and_eval_kernel():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 3))
    k = np.asarray(rbf_kernel(x, x, 0.5))
    mu = 0.05
    off = 1 - 4 * mu * (1 - mu)
    got = np.asarray(ln_svm_kernel(k, mu))
    np.testing.assert_allclose(np.diag(got), np.diag(k), rtol=1e-6)
    mask = ~np.eye(12, dtype=bool)
    np.testing.assert_allclose(got[mask], off * k[mask], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(ln_svm_kernel(k, 0.0)), k, rtol=1e-6)
    k_eval = np.asarray(rbf_kernel(x[:5] + 0.1, x, 0.5))
    np.testing.assert_allclose(np.asarray(ln_svm_eval_kernel(k_eval, mu)), off * k_eval, rtol=1e-6)
    # traced mu: vmap over flip rates, and jit
    mus = jnp.array([0.0, 0.1, 0.5])
    batched = jax.vmap(ln_svm_kernel, in_axes=(None, 0))(k, mus)
    assert batched.shape == (3, 12, 12)
    np.testing.assert_allclose(np.asarray(batched[2])[mask], 0.0, atol=1e-7)  # mu = 1/2
    np.testing.assert_allclose(np.asarray(jax.jit(ln_svm_kernel)(k, mu)), got, rtol=1e-6)


def test_ln_svm_rejects_bad_input():
    k = jnp.eye(4)
    with pytest.raises(ValueError, match="kernel"):
        ln_svm_kernel(jnp.ones((3, 4)), 0.1)
    with pytest.raises(ValueError, match="mu"):
        ln_svm_kernel(k, 0.7)
    with pytest.raises(ValueError, match="mu"):
        ln_svm_kernel(k, jnp.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="kernel_eval_train"):
        ln_svm_eval_kernel(jnp.ones(4), 0.1)


# --------------------------------------------------------------------------- LS-SVM


def _ls_reference(x, y, k, eta, max_iter, order):
    """The official loop, in numpy: kNN including the point itself, scipy's mode (ties -> the
    smaller label), sequential in-place updates (or a Jacobi variant), until no change."""
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, -np.inf)
    nbrs = np.argsort(d2, axis=1, kind="stable")[:, :k]
    y = y.copy()
    for _ in range(max_iter):
        votes_from = y if order == "sequential" else y.copy()
        changed = False
        for i in range(len(y)):
            common, count = mode(votes_from[nbrs[i]])
            if count / k >= eta and common != y[i]:
                y[i] = common
                changed = True
        if not changed:
            break
    return y


def test_knn_matches_sklearn_and_includes_self():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 3))
    ours = np.asarray(_knn_indices(jnp.asarray(x), 7))
    ref = NearestNeighbors(n_neighbors=7).fit(x).kneighbors(x, return_distance=False)
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_array_equal(ours[:, 0], np.arange(50))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    k=st.sampled_from([1, 6]),
    eta=st.sampled_from([0.3, 0.5, 0.6, 0.75, 1.0]),
    order=st.sampled_from(["sequential", "simultaneous"]),
)
def test_ls_sanitize_matches_reference(seed, k, eta, order):
    """Fixed n (one compilation per k and order); eta and the sweep cap are not static."""
    rng = np.random.default_rng(seed)
    n = 40
    x, which = _blobs(rng, n, [[0.0, 0.0], [2.5, 0.0]], 0.8)
    y = np.where(which == 1, 1.0, -1.0)
    y[rng.random(n) < 0.2] *= -1
    with jax.enable_x64(True):
        ours = ls_sanitize(jnp.asarray(x), jnp.asarray(y), k=k, eta=eta, max_iter=15, order=order)
    np.testing.assert_array_equal(np.asarray(ours), _ls_reference(x, y, k, eta, 15, order))


def test_ls_sanitize_repairs_interior_flips_and_is_jittable():
    rng = np.random.default_rng(2)
    x, which = _blobs(rng, 120, [[-3.0, 0.0], [3.0, 0.0]], 0.7)
    clean = np.where(which == 1, 1.0, -1.0).astype(np.float32)
    poisoned = clean.copy()
    flip = rng.choice(120, 12, replace=False)
    poisoned[flip] *= -1
    f = jax.jit(ls_sanitize, static_argnames=("k", "eta", "max_iter", "order"))
    out = np.asarray(f(jnp.asarray(x, jnp.float32), jnp.asarray(poisoned), k=20, eta=0.75))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, clean)


def test_ls_sanitize_rejects_bad_input():
    x, y = jnp.zeros((5, 2)), jnp.ones(5)
    with pytest.raises(ValueError, match="k"):
        ls_sanitize(x, y, k=6)
    with pytest.raises(ValueError, match="eta"):
        ls_sanitize(x, y, k=3, eta=0.0)
    with pytest.raises(ValueError, match="max_iter"):
        ls_sanitize(x, y, k=3, max_iter=0)
    with pytest.raises(ValueError, match="y"):
        ls_sanitize(x, jnp.ones(4), k=3)
    with pytest.raises(ValueError, match="x"):
        ls_sanitize(jnp.zeros(5), y, k=3)
    with raises_invalid("order"):
        ls_sanitize(x, y, k=3, order="jacobi")


# --------------------------------------------------------------------------- DBSCAN


def _sk_dbscan(x, eps, min_samples):
    return DBSCAN(eps=eps, min_samples=min_samples).fit_predict(x)


def test_dbscan_matches_sklearn_on_blobs():
    rng = np.random.default_rng(3)
    x, _ = _blobs(rng, 150, [[0, 0, 0], [4, 0, 0], [0, 4, 0], [4, 4, 1]], 0.4)
    x = np.concatenate([x, rng.uniform(-3, 7, (20, 3))])  # some noise points
    for eps, min_samples in [(0.5, 5), (0.3, 4), (1.0, 10)]:
        with jax.enable_x64(True):
            ours = np.asarray(dbscan(jnp.asarray(x), eps=eps, min_samples=min_samples))
        np.testing.assert_array_equal(ours, _sk_dbscan(x, eps, min_samples))
    assert ours.dtype == np.int32


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    eps=st.floats(0.05, 1.5),
    min_samples=st.integers(1, 8),
)
def test_dbscan_matches_sklearn_random(seed, eps, min_samples):
    """Exact labels, border points included: a border point joins the cluster with the smallest
    first core index, which is scikit-learn's rule too, so no relabelling is needed. Shapes are
    fixed (eps and min_samples are not static: one compilation in all)."""
    x = np.random.default_rng(seed).uniform(0, 3, (50, 2))
    with jax.enable_x64(True):
        ours = np.asarray(dbscan(jnp.asarray(x), eps=eps, min_samples=min_samples))
    np.testing.assert_array_equal(ours, _sk_dbscan(x, eps, min_samples))


def test_dbscan_long_chain_and_traced_eps():
    # a 1-D chain: one component of diameter n - 1 (the worst case for label propagation)
    x = jnp.arange(64.0)[:, None]
    f = jax.jit(dbscan, static_argnames="min_samples")
    np.testing.assert_array_equal(np.asarray(f(x, eps=1.0, min_samples=3)), np.zeros(64))
    labels = jax.vmap(lambda e: dbscan(x, eps=e, min_samples=3))(jnp.array([0.5, 1.0]))
    np.testing.assert_array_equal(np.asarray(labels[0]), -np.ones(64))


def test_dbscan_rejects_bad_input():
    x = jnp.zeros((5, 2))
    with pytest.raises(ValueError, match="eps"):
        dbscan(x, eps=0.0, min_samples=3)
    with pytest.raises(ValueError, match="min_samples"):
        dbscan(x, eps=0.5, min_samples=0)
    with pytest.raises(ValueError, match="x"):
        dbscan(jnp.zeros((0, 2)), eps=0.5, min_samples=3)


# --------------------------------------------------------------------------- Curie


def _group_mean_distances(x, y, w, clusters):
    """Per point: mean augmented distance over its whole group (noise points form one group)."""
    z = np.concatenate([x, w * y[:, None]], axis=1)
    dist = np.sqrt(((z[:, None, :] - z[None, :, :]) ** 2).sum(-1))
    same = clusters[:, None] == clusters[None, :]
    return (dist * same).sum(1) / same.sum(1), same.sum(1)


def _curie_data(seed):
    """58 points (every Curie test uses this shape and float64: one compilation): two blobs with
    some flipped labels, plus uniform noise points."""
    rng = np.random.default_rng(seed)
    x, which = _blobs(rng, 50, [[0, 0], [3, 0]], 0.35)
    x = np.concatenate([x, rng.uniform(-2, 5, (8, 2))])
    y = np.where(np.concatenate([which, rng.integers(0, 2, 8)]) == 1, 1.0, -1.0)
    flip = rng.choice(50, 5, replace=False)
    y[flip] *= -1
    return x, y, flip


def test_curie_full_groups_match_reference(x64):
    """num_samples >= every group size: each point draws its whole group, so the scores are
    deterministic (noise points form one group)."""
    x, y, _ = _curie_data(4)
    w, theta = 0.5, 0.75
    clusters = _sk_dbscan(x, 0.5, 5)
    assert (clusters == -1).any() and clusters.max() >= 1
    mean_dist, _ = _group_mean_distances(x, y, w, clusters)
    key = jax.random.key(0)
    scores = np.asarray(_curie_scores(key, x, y, label_weight=w, num_samples=58))
    keep = np.asarray(curie_filter(key, x, y, label_weight=w, num_samples=58, theta=theta))
    np.testing.assert_allclose(scores, mean_dist, rtol=1e-12)
    ref_z = (mean_dist - mean_dist.mean()) / mean_dist.std()
    np.testing.assert_array_equal(keep, ref_z <= theta)
    assert 0 < keep.sum() < len(y)


def test_curie_sampling_is_uniform_without_replacement(x64):
    """Averaged over keys (vmap), the sampled score matches its expectation: the group-mean
    distance for "mean"; draws_i / |G_i| times it for "official", draws_i the running minimum."""
    x, y, _ = _curie_data(5)
    clusters = _sk_dbscan(x, 0.5, 5)
    mean_dist, size = _group_mean_distances(x, y, 0.05, clusters)
    keys = jax.random.split(jax.random.key(1), 400)
    smallest = size.min()
    for reduction in ("mean", "official"):
        f = jax.vmap(lambda k, r=reduction: _curie_scores(k, x, y, num_samples=12, reduction=r))
        avg = np.asarray(f(keys)).mean(0)
        if reduction == "mean":
            expected = mean_dist
        else:
            draws = np.minimum.accumulate(np.minimum(size, 12))
            assert smallest < 12 and draws[-1] == smallest  # the running minimum bites here
            expected = draws * mean_dist / size
        np.testing.assert_allclose(avg, expected, rtol=0.06)
    # without replacement: a group of exactly num_samples members always gives its exact mean
    exact = size == smallest
    s = np.asarray(_curie_scores(jax.random.key(2), x, y, num_samples=int(smallest)))
    np.testing.assert_allclose(s[exact], mean_dist[exact], rtol=1e-12)


def test_curie_drops_flipped_points_with_heavy_label_weight_under_jit(x64):
    x, y, flip = _curie_data(6)
    f = jax.jit(curie_filter, static_argnames=("min_samples", "num_samples", "reduction"))
    keep = np.asarray(f(jax.random.key(0), x, y, label_weight=2.0, theta=1.0))
    assert keep.dtype == bool and keep.shape == (58,)
    blob = np.setdiff1d(np.arange(50), flip)
    assert not keep[flip].any() and keep[blob].mean() >= 0.9


def test_curie_constant_scores_keep_everything(x64):
    keep = curie_filter(jax.random.key(0), np.zeros((58, 2)), np.ones(58), num_samples=12)
    assert bool(jnp.all(keep))


def test_curie_rejects_bad_input():
    key, x, y = jax.random.key(0), jnp.zeros((6, 2)), jnp.ones(6)
    with pytest.raises(ValueError, match="num_samples"):
        curie_filter(key, x, y, num_samples=0)
    with pytest.raises(ValueError, match="label_weight"):
        curie_filter(key, x, y, label_weight=-1.0)
    with pytest.raises(ValueError, match="y"):
        curie_filter(key, x, jnp.ones(5))
    with pytest.raises(ValueError, match="eps"):
        curie_filter(key, x, y, eps=-0.5)
    with pytest.raises(ValueError, match="theta"):
        curie_filter(key, x, y, theta=jnp.ones(2))
    with raises_invalid("reduction"):
        curie_filter(key, x, y, reduction="median")
