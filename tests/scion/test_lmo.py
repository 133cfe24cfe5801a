"""Scion LMOs: unit norm, dual-norm pairing, scale invariance, layouts, Newton–Schulz accuracy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lions_jax._src.testing import raises_invalid
from lions_jax.scion import (
    ScionDimensionNumbers,
    apply_lmo,
    bias_rms_lmo,
    colnorm_lmo,
    dual_norm,
    lmo_norm,
    newton_schulz,
    rownorm_lmo,
    sign_lmo,
    spectral_conv_lmo,
    spectral_lmo,
)

EXACT = {
    "sign": sign_lmo,
    "colnorm": colnorm_lmo,
    "rownorm": rownorm_lmo,
}


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(1, 12),
    n=st.integers(1, 12),
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(sorted(EXACT)),
    normalized=st.booleans(),
)
def test_exact_lmos_are_unit_norm_and_attain_the_dual_norm(m, n, seed, kind, normalized):
    with jax.enable_x64(True):
        rng = np.random.default_rng(seed)
        # entries bounded away from 0, so the LMOs' eps (1e-8) stays below 1e-7 relative
        g = jnp.asarray(rng.uniform(0.5, 2.0, (m, n)) * rng.choice([-1.0, 1.0], (m, n)))
        s = EXACT[kind](g, normalized=normalized)
        # float64; the LMOs' eps (1e-8) perturbs the pairing by ~1e-8 relative
        np.testing.assert_allclose(lmo_norm(kind, s, normalized=normalized), 1.0, rtol=1e-7)
        np.testing.assert_allclose(
            jnp.vdot(g, s), dual_norm(kind, g, normalized=normalized), rtol=1e-7
        )
        # positive homogeneity of degree 0: S(cG) = S(G)
        np.testing.assert_allclose(
            EXACT[kind](3.7 * g, normalized=normalized), s, rtol=1e-7, atol=1e-12
        )


def test_bias_rms_lmo(x64):
    b = jnp.asarray(np.random.default_rng(0).normal(size=(7,)))
    s = bias_rms_lmo(b)
    np.testing.assert_allclose(jnp.sqrt(jnp.mean(s**2)), 1.0, rtol=1e-7)
    np.testing.assert_allclose(jnp.vdot(b, s), dual_norm("bias_rms", b), rtol=1e-7)


def test_exact_spectral_pairing_and_newton_schulz_range():
    rng = np.random.default_rng(1)
    for shape in [(32, 16), (16, 48), (20, 20)]:
        g = jnp.asarray(rng.normal(size=shape), jnp.float32)
        d_in, d_out = shape
        u, _, vt = np.linalg.svd(np.asarray(g, np.float64), full_matrices=False)
        exact = np.sqrt(d_out / d_in) * (u @ vt)
        np.testing.assert_allclose(lmo_norm("spectral", jnp.asarray(exact)), 1.0, rtol=1e-6)
        np.testing.assert_allclose(
            np.vdot(np.asarray(g), exact), dual_norm("spectral", g), rtol=1e-5
        )
        s = spectral_lmo(g)
        sv = np.linalg.svd(np.asarray(s, np.float64) / np.sqrt(d_out / d_in), compute_uv=False)
        # 5 steps of the standard quintic NS: singular values in ~[0.68, 1.13] for Gaussian
        # rectangular matrices (spec §3.2); square matrices converge slower at the bottom.
        assert sv.max() <= 1.25 and sv.min() >= (0.05 if shape[0] == shape[1] else 0.6)
        dion = newton_schulz(g, coeffs="dion")
        svd = np.linalg.svd(np.asarray(dion, np.float64), compute_uv=False)
        assert svd.max() <= 1.1 and svd.min() >= (0.3 if shape[0] == shape[1] else 0.85)
        # the NS direction attains most of the dual norm
        ratio = float(jnp.vdot(g, s) / dual_norm("spectral", g))
        assert 0.6 <= ratio <= 1.25


def test_layouts_and_scalings():
    g = jnp.asarray(np.random.default_rng(2).normal(size=(2, 8)), jnp.float32)  # Flax (in, out)
    s = spectral_lmo(g, steps=10, coeffs="dion")
    sv = np.linalg.svd(np.asarray(s), compute_uv=False)
    np.testing.assert_allclose(sv, 2.0, rtol=0.05)  # √(d_out/d_in) = 2
    np.testing.assert_allclose(np.abs(sign_lmo(g)), 0.5, rtol=0)  # 1/d_in
    np.testing.assert_allclose(
        np.sqrt(np.mean(np.asarray(colnorm_lmo(g)) ** 2, axis=1)), 1.0, rtol=1e-6
    )  # each input unit's row to RMS 1
    np.testing.assert_allclose(
        np.linalg.norm(np.asarray(rownorm_lmo(g)), axis=0), 1 / np.sqrt(2), rtol=1e-6
    )  # each output column to 1/√d_in
    s_max = spectral_lmo(g.T, clip_max=True)  # d_out/d_in = 1/4 < 1: scale clipped to 1
    assert abs(float(np.linalg.svd(np.asarray(s_max), compute_uv=False).max()) - 1.0) < 0.25
    assert float(jnp.max(jnp.abs(spectral_lmo(g, normalized=False)))) > 0


def test_conv_and_stacked_dimension_numbers():
    rng = np.random.default_rng(3)
    k = jnp.asarray(rng.normal(size=(3, 3, 4, 8)), jnp.float32)
    s = spectral_conv_lmo(k, steps=10, coeffs="dion")
    mat = np.asarray(s).reshape(36, 8)
    sv = np.linalg.svd(mat, compute_uv=False)
    np.testing.assert_allclose(sv, np.sqrt(8 / 4) / 9, rtol=0.05)  # √(c_out/c_in)/k²
    np.testing.assert_allclose(apply_lmo("auto", k, ns_steps=10, ns_coeffs="dion"), s, rtol=1e-6)
    stacked = jnp.asarray(rng.normal(size=(3, 5, 6)), jnp.float32)
    per_layer = jnp.stack([spectral_lmo(stacked[i]) for i in range(3)])
    np.testing.assert_allclose(spectral_lmo(stacked), per_layer, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(apply_lmo("auto", stacked), per_layer, rtol=1e-5, atol=1e-6)
    # the same stack with the layer axis last, via dimension numbers
    moved = jnp.moveaxis(stacked, 0, -1)  # (5, 6, 3)
    dn = ScionDimensionNumbers(reduction_axis=0, output_axis=1)
    np.testing.assert_allclose(
        spectral_lmo(moved, dimension_numbers=dn),
        jnp.moveaxis(per_layer, 0, -1),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("kind", ["auto", "spectral", "sign", "colnorm", "rownorm", "bias_rms"])
def test_zero_input_gives_zero_never_nan(kind):
    shapes = [(4, 6)] + ([(5,)] if kind in ("auto", "sign", "bias_rms") else [])
    for shape in shapes:
        s = np.asarray(apply_lmo(kind, jnp.zeros(shape, jnp.float32)))
        assert s.shape == shape and np.isfinite(s).all() and not s.any(), (kind, shape)


def test_bfloat16_newton_schulz():
    g = jnp.asarray(np.random.default_rng(4).normal(size=(64, 32)), jnp.float32)
    s32 = spectral_lmo(g)
    s16 = spectral_lmo(g, ns_dtype="bfloat16")
    assert s16.dtype == jnp.float32  # iterate in bf16, return the input dtype
    # bf16 iteration: 8-bit mantissa, errors compound over 5 steps; measured ~6e-2 relative
    assert float(jnp.linalg.norm(s16 - s32) / jnp.linalg.norm(s32)) < 1e-1
    assert spectral_lmo(g.astype(jnp.bfloat16)).dtype == jnp.bfloat16


def test_validation():
    with pytest.raises(ValueError, match="steps"):
        newton_schulz(jnp.ones((2, 2)), steps=0)
    with pytest.raises(ValueError, match="coeffs"):
        newton_schulz(jnp.ones((2, 2)), coeffs=[(1.0, 2.0)])
    with raises_invalid("norm: expected"):
        apply_lmo("frobenius", jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="dimension numbers"):
        spectral_lmo(jnp.ones((2, 3, 4)), dimension_numbers=ScionDimensionNumbers(0, 0))
