"""prune_layer: exact N:M output, baselines against references, refinement, the prox pruner."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lions_jax._src.testing import raises_invalid
from lions_jax.sparse24 import (
    ProxSchedule,
    hessian,
    is_nm_sparse,
    masked_cg,
    masked_gd,
    masked_lstsq,
    nm_mask,
    prune_layer,
    reconstruction_error,
)


def _toy(d_in=32, d_out=8, n_tok=512, rho=0.8, sigma=0.0, seed=0, dtype=np.float64):
    """The spec's correlated-feature layer: features correlated within groups of 4, scales e^{σz}."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n_tok, d_in // 4, 1))
    e = rng.normal(size=(n_tok, d_in // 4, 4))
    x = (np.sqrt(rho) * z + np.sqrt(1 - rho) * e).reshape(n_tok, d_in)
    x = x * np.exp(sigma * rng.normal(size=d_in))
    w = rng.normal(size=(d_in, d_out))
    return jnp.asarray(w, dtype), jnp.asarray(x, dtype)


def _np_loss(w, w_dense, h):
    d = np.asarray(w, np.float64) - np.asarray(w_dense, np.float64)
    return float(np.sum(d * (np.asarray(h, np.float64) @ d)))


def _sparsegpt_reference(w_dense, h, n, m, damp, block):
    """The published SparseGPT N:M algorithm, transcribed loop by loop (PyTorch layout, NumPy)."""
    W = np.array(w_dense, np.float64).T.copy()  # (rows, columns) = (d_out, d_in)
    H = np.array(h, np.float64).copy()
    cols = W.shape[1]
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += damp * np.mean(np.diag(H)) * np.eye(cols)
    Hinv = np.linalg.cholesky(np.linalg.inv(H)).T  # upper factor of H^-1
    mask = np.zeros_like(W, bool)  # True = pruned
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        W1 = W[:, i1:i2].copy()
        Q1 = np.zeros_like(W1)
        Err1 = np.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            w = W1[:, i]
            d = Hinv1[i, i]
            if i % m == 0:
                tmp = W1[:, i : i + m] ** 2 / np.diag(Hinv1)[i : i + m] ** 2
                idx = np.argsort(tmp, axis=1, kind="stable")[:, : m - n]
                np.put_along_axis(mask[:, i1 + i : i1 + i + m], idx, True, axis=1)
            q = w.copy()
            q[mask[:, i1 + i]] = 0
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= np.outer(err1, Hinv1[i, i:])
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return W.T, ~mask.T


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt", "prox"])
def test_every_method_is_exactly_nm_in_both_layouts(method):
    w, x = _toy(d_in=32, d_out=8, dtype=np.float32, sigma=0.5)
    wp, mask, info = prune_layer(w, x, method, refine_steps=10)
    assert wp.shape == w.shape and wp.dtype == w.dtype and mask.dtype == bool
    groups = np.asarray(mask).reshape(8, 4, 8).sum(axis=1)
    assert np.all(groups == 2)  # exactly n of every m, not "at most"
    assert np.all(np.asarray(wp)[~np.asarray(mask)] == 0) and bool(is_nm_sparse(wp))
    assert np.all(np.isfinite(np.asarray(wp)))
    assert float(info.rel_error) <= float(info.rel_error_mask) * (1 + 1e-5) + 1e-7
    # PyTorch layout (d_out, d_in), axis=-1: the transposed result
    wt, mt, _ = prune_layer(w.T, x, method, refine_steps=10, axis=-1)
    np.testing.assert_array_equal(np.asarray(mt), np.asarray(mask).T)
    np.testing.assert_allclose(np.asarray(wt), np.asarray(wp).T, rtol=1e-5, atol=1e-6)


def test_magnitude_and_wanda_match_their_definitions(x64):
    w, x = _toy(d_in=16, d_out=6, sigma=1.0, seed=1)
    wp, mask, _ = prune_layer(w, x, "magnitude")
    ref = nm_mask(jnp.abs(w))
    np.testing.assert_array_equal(mask, ref)
    np.testing.assert_array_equal(wp, jnp.where(ref, w, 0.0))
    # Wanda: |W_jk| * ||X_:,j||, ranked within each group of each output column
    scores = np.abs(np.asarray(w)) * np.linalg.norm(np.asarray(x), axis=0)[:, None]
    keep = np.zeros_like(scores, bool)
    for g in range(0, 16, 4):
        top = np.argsort(-scores[g : g + 4], axis=0, kind="stable")[:2]
        np.put_along_axis(keep[g : g + 4], top, True, axis=0)
    _, mask, _ = prune_layer(w, x, "wanda")
    np.testing.assert_array_equal(mask, keep)
    # general N:M for the baselines
    _, m13, _ = prune_layer(w[:12], x[:, :12], "wanda", n=1, m=3)
    assert np.all(np.asarray(m13).reshape(4, 3, 6).sum(axis=1) == 1)


@pytest.mark.parametrize(("d_in", "block"), [(24, 8), (20, 8)])
def test_sparsegpt_matches_the_published_algorithm(x64, d_in, block):
    """Blocks with lazy updates (24 = 3 blocks) and a ragged last block (20 = 8 + 8 + 4)."""
    w, x = _toy(d_in=d_in, d_out=5, n_tok=256, sigma=0.5, seed=2)
    h = hessian(x)
    wp, mask, info = prune_layer(w, h=h, method="sparsegpt", block_size=block)
    w_ref, keep_ref = _sparsegpt_reference(w, h, 2, 4, 0.01, block)
    np.testing.assert_array_equal(mask, keep_ref)
    # fp64, a d_in-sized Cholesky and O(d_in) rank-1 updates: agreement to 1e-10
    np.testing.assert_allclose(wp, w_ref, rtol=0, atol=1e-10 * np.abs(w_ref).max())
    assert not bool(info.fallback) and float(info.damping) == pytest.approx(0.01)


def test_sparsegpt_dead_features_rank_deficiency_and_fallback(x64):
    w, x = _toy(d_in=16, d_out=4, n_tok=6, seed=3)  # 6 tokens: H has rank 6 < 16
    x = x.at[:, 5].set(0.0)  # a dead input
    h = hessian(x)
    wp, mask, info = prune_layer(w, h=h, method="sparsegpt")
    assert np.all(np.isfinite(np.asarray(wp))) and not bool(info.fallback)
    assert np.all(np.asarray(wp)[5] == 0)  # SparseGPT zeroes weights of dead inputs
    w_ref, _ = _sparsegpt_reference(w, h, 2, 4, 0.01, 128)
    np.testing.assert_allclose(wp, w_ref, rtol=0, atol=1e-9 * np.abs(w_ref).max())
    # an indefinite "H" cannot be factored even with 10^4 x the damping: identity fallback,
    # which is magnitude pruning without updates
    bad = -jnp.eye(16)
    wp, mask, info = prune_layer(w, h=bad, method="sparsegpt")
    assert bool(info.fallback)
    np.testing.assert_array_equal(mask, nm_mask(jnp.abs(w)))


def test_sparsegpt_with_isotropic_h_is_magnitude_pruning(x64):
    w, _ = _toy(d_in=16, d_out=6, seed=4)
    wp, mask, _ = prune_layer(w, h=3.0 * jnp.eye(16), method="sparsegpt", block_size=8)
    np.testing.assert_array_equal(mask, nm_mask(jnp.abs(w)))
    np.testing.assert_allclose(wp, jnp.where(mask, w, 0.0), rtol=0, atol=1e-14)


def test_refinement_is_monotone_and_reaches_the_masked_least_squares(x64):
    w, x = _toy(d_in=16, d_out=5, sigma=1.0, seed=5)
    h = hessian(x)
    mask = nm_mask(jnp.abs(w))
    w0 = jnp.where(mask, w, 0.0)
    gd_losses = [_np_loss(masked_gd(w0, mask, w, h, k), w, h) for k in (0, 1, 2, 5, 20, 100)]
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(gd_losses)), gd_losses
    cg_losses = [_np_loss(masked_cg(w0, mask, w, h, k), w, h) for k in (0, 1, 2, 4, 8)]
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(cg_losses)), cg_losses
    exact = masked_lstsq(w, h, mask)
    # CG is exact after (kept entries per column) = 8 steps in exact arithmetic; with H's
    # condition number ~3.5e4, fp64 round-off delays that to ~16 steps, after which it agrees
    # with the direct solve to ~1e-12
    np.testing.assert_allclose(masked_cg(w0, mask, w, h, 16), exact, rtol=1e-9, atol=1e-10)
    # GD's rate is 1 - 1/cond per step: check its limit on a well-conditioned (σ = 0) layer
    w2, x2 = _toy(d_in=16, d_out=5, sigma=0.0, seed=5)
    h2, m2 = hessian(x2), nm_mask(jnp.abs(w2))
    np.testing.assert_allclose(
        masked_gd(w2 * m2, m2, w2, h2, 3000), masked_lstsq(w2, h2, m2), rtol=1e-8, atol=1e-10
    )
    # the optimum is optimal: no masked perturbation lowers the loss
    rng = np.random.default_rng(0)
    best = _np_loss(exact, w, h)
    for _ in range(5):
        pert = exact + 1e-3 * jnp.where(mask, rng.normal(size=w.shape), 0.0)
        assert _np_loss(pert, w, h) >= best
    # prune_layer's refinement on any mask lands on the same optimum
    for method in ("magnitude", "wanda", "sparsegpt"):
        wp, m, info = prune_layer(w, h=h, method=method, refine="cg", refine_steps=16)
        np.testing.assert_allclose(wp, masked_lstsq(w, h, m), rtol=1e-7, atol=1e-9)
        assert float(info.rel_error) <= float(info.rel_error_mask) + 1e-12


def test_prox_pruner_terminates_and_beats_the_baselines_on_the_equal_scale_toy():
    """Spec §8's ranking checks on the fixed-seed (ρ = .8, σ = 0) toy, not a full ranking."""
    w, x = _toy(d_in=64, d_out=16, n_tok=2048, rho=0.8, sigma=0.0, seed=0, dtype=np.float32)
    h = hessian(x)
    errs = {}
    for method in ("magnitude", "wanda", "sparsegpt", "prox"):
        _, _, info = prune_layer(w, h=h, method=method, refine_steps=0)
        errs[method] = float(info.rel_error_mask)
    _, _, info = prune_layer(w, h=h, method="prox", schedule=ProxSchedule(max_iters=3000))
    assert bool(info.converged) and 0 < int(info.iterations) < 3000
    assert errs["prox"] <= errs["sparsegpt"], errs
    assert errs["magnitude"] == max(errs.values()), errs
    _, _, mag = prune_layer(w, h=h, method="magnitude", refine_steps=100)
    assert float(mag.rel_error) >= float(info.rel_error), (float(mag.rel_error), info)


def test_prox_iteration_cap_still_gives_a_24_mask_and_normalized_coordinates():
    w, x = _toy(d_in=32, d_out=8, sigma=1.0, seed=6, dtype=np.float32)
    wp, mask, info = prune_layer(w, x, "prox", schedule=ProxSchedule(max_iters=3), refine_steps=0)
    assert int(info.iterations) == 3 and not bool(info.converged)
    assert bool(is_nm_sparse(wp)) and np.all(np.asarray(mask).reshape(8, 4, 8).sum(1) == 2)
    # normalised coordinates: the same loss, so a dead input gets no weight and errors are sane
    x = x.at[:, 3].set(0.0)
    wp, _, info = prune_layer(w, x, "prox", schedule=ProxSchedule(normalize_features=True))
    assert np.all(np.asarray(wp)[3] == 0) and 0 <= float(info.rel_error) < 1


def test_prune_layer_under_jit_and_vmap_over_calibration_sets():
    w, x = _toy(d_in=16, d_out=4, dtype=np.float32)
    hs = jnp.stack([hessian(x[:128]), hessian(x[128:256]), hessian(x[256:384])])
    prune = jax.jit(jax.vmap(lambda h: prune_layer(w, h=h, method="prox", refine_steps=5)[0]))
    out = prune(hs)
    single = prune_layer(w, h=hs[1], method="prox", refine_steps=5)[0]
    # the vmapped while loop runs every member to the slowest one's iteration count; members
    # that had stopped are held fixed, so results agree to float32 round-off
    np.testing.assert_allclose(out[1], single, rtol=1e-4, atol=1e-5)
    assert bool(jnp.all(jax.vmap(is_nm_sparse)(out)))


def test_reconstruction_error_is_relative_to_the_dense_output():
    w, x = _toy(d_in=8, d_out=3, dtype=np.float32)
    h = hessian(x)
    assert float(reconstruction_error(w, w, h)) == 0.0
    assert float(reconstruction_error(jnp.zeros_like(w), w, h)) == pytest.approx(1.0)
    np.testing.assert_allclose(h, x.T @ x / x.shape[0], rtol=1e-5)


def test_validation_errors():
    w, x = _toy(d_in=16, d_out=4, dtype=np.float32)
    with pytest.raises(ValueError, match="exactly one of x"):
        prune_layer(w)
    with pytest.raises(ValueError, match="exactly one of x"):
        prune_layer(w, x, h=hessian(x))
    with pytest.raises(ValueError, match="not divisible by m=4"):
        prune_layer(w[:14], x[:, :14])
    with pytest.raises(ValueError, match="n <= m"):
        prune_layer(w, x, "wanda", n=5, m=4)
    with pytest.raises(ValueError, match="2:4 only"):
        prune_layer(w, x, "prox", n=1, m=4)
    with pytest.raises(ValueError, match="method"):
        prune_layer(w, x, "obs")
    with pytest.raises(ValueError, match=r"x: expected \(tokens, 16\)"):
        prune_layer(w, x[:, :8])
    with pytest.raises(ValueError, match=r"h: expected shape \(16, 16\)"):
        prune_layer(w, h=jnp.eye(8))
    with pytest.raises(ValueError, match="x: contains NaN"):
        prune_layer(w, x.at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="w: contains NaN"):
        prune_layer(w.at[0, 0].set(jnp.inf), x)
    with raises_invalid(match="2-D"):
        prune_layer(w[None], x)
    with pytest.raises(ValueError, match="block_size"):
        prune_layer(w, x, "sparsegpt", block_size=6)
    with raises_invalid(match="refine"):
        prune_layer(w, x, refine="adam")
    with pytest.raises(ValueError, match="growth"):
        ProxSchedule(growth=1.0)


def test_feature_normalised_prox_is_the_raw_prox_when_features_are_standardised():
    """With diag(H) = 1 the change of coordinates is the identity, so both paths coincide."""
    w, x = _toy(d_in=16, d_out=4, sigma=0.0, seed=7, dtype=np.float32)
    h = hessian(x)
    d = jnp.sqrt(jnp.diagonal(h))
    corr = h / d[:, None] / d[None, :]
    corr = corr.at[jnp.diag_indices(16)].set(1.0)
    raw = prune_layer(w, h=corr, method="prox", refine_steps=0)
    fn = prune_layer(
        w, h=corr, method="prox", refine_steps=0, schedule=ProxSchedule(normalize_features=True)
    )
    np.testing.assert_array_equal(raw[1], fn[1])
    np.testing.assert_allclose(raw[0], fn[0], rtol=1e-6, atol=1e-7)
    assert int(raw[2].iterations) == int(fn[2].iterations)


def test_pure_layer_functions_validate_shapes():
    from lions_jax.sparse24 import prox_prune, sparsegpt_prune, wanda_scores

    w, h, m = jnp.ones((8, 3)), jnp.eye(8), jnp.ones((8, 3), bool)
    for call, match in [
        (lambda: masked_gd(w, m[:4], w, h, 2), "mask: expected shape"),
        (lambda: masked_cg(w, m, w[:, :2], h, 2), "w_dense: expected shape"),
        (lambda: masked_lstsq(w, jnp.eye(4), m), r"h: expected shape \(8, 8\)"),
        (lambda: reconstruction_error(w[0], w[0], h), "w: expected a 2-D"),
        (lambda: wanda_scores(w, jnp.eye(3)), "h: expected shape"),
        (lambda: prox_prune(w, jnp.eye(4)), "h: expected shape"),
        (lambda: sparsegpt_prune(w[:6], jnp.eye(6)), "not divisible by m=4"),
    ]:
        with raises_invalid(match=match):
            call()
