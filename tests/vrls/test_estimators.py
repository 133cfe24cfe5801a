"""BBSE, RLLS and MLLS on exact posteriors of a Gaussian-mixture label shift, brute force and
closed forms."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lions_jax._src.testing import raises_invalid
from lions_jax.vrls import (
    bbse,
    confusion_matrix,
    corrected_predict,
    label_marginal,
    mlls,
    mlls_objective,
    rlls,
    target_mean_prediction,
)

MEANS = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])  # 3 unit-variance Gaussian classes in 2-D
P_TR = np.array([0.5, 0.3, 0.2])
Q_TE = np.array([0.1, 0.3, 0.6])
R_TRUE = Q_TE / P_TR


def sample_mixture(key, prior, m):
    """``(x, y)``: m draws of y ~ prior, x ~ N(MEANS[y], I)."""
    ky, kx = jax.random.split(key)
    y = jax.random.choice(ky, len(prior), (m,), p=jnp.asarray(prior))
    x = jnp.asarray(MEANS)[y] + jax.random.normal(kx, (m, 2), jnp.asarray(prior).dtype)
    return x, y


def exact_posterior(x, prior):
    """p(y | x) under ``prior`` (what a perfectly calibrated source predictor outputs)."""
    logits = -0.5 * jnp.sum((x[:, None, :] - jnp.asarray(MEANS)) ** 2, -1) + jnp.log(
        jnp.asarray(prior)
    )
    return jax.nn.softmax(logits, -1)


def test_mlls_recovers_ratio_at_rate_one_over_sqrt_m(x64):
    # Root-mean-square error over 64 target draws, at m and 16 m. MLLS is a regular MLE, so the
    # RMSE is ~ c / sqrt(m): it must shrink by ~4x (accepted 2.5x-6.5x: 64 draws estimate an
    # RMSE to ~9 %), and at m = 16 000 it is ~0.02 here (asserted < 0.05).
    def rmse(m):
        def one(key):
            x, _ = sample_mixture(key, Q_TE, m)
            return mlls(exact_posterior(x, P_TR), jnp.asarray(P_TR), tol=1e-10, max_iter=2_000)

        est = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(0), 64))
        return float(jnp.sqrt(jnp.mean((est - R_TRUE) ** 2)))

    small, large = rmse(1_000), rmse(16_000)
    assert large < 0.05, large
    assert 2.5 < small / large < 6.5, (small, large)


def test_em_and_projected_gradient_agree(x64):
    x, _ = sample_mixture(jax.random.key(1), Q_TE, 2_000)
    probs = exact_posterior(x, P_TR)
    r_em = mlls(probs, P_TR, method="em", tol=1e-13, max_iter=20_000)
    r_pgd = mlls(probs, P_TR, method="pgd", tol=1e-13, max_iter=20_000)
    # Same concave objective, both solved to tolerance 1e-13 in q: values agree to rounding, and
    # the maximiser (strictly concave here: the g_j span R^3) to ~1e-8.
    np.testing.assert_allclose(
        mlls_objective(r_em, probs), mlls_objective(r_pgd, probs), rtol=1e-12
    )
    np.testing.assert_allclose(r_em, r_pgd, atol=1e-7)


def test_mlls_satisfies_kkt(x64):
    # At the maximiser over the simplex (q = r * p_tr): mean_j g_j(y) / (g_j^T q) = 1 where
    # q_y > 0 and <= 1 where q_y = 0 (g_j(y) = f_y(x_j) / p_tr(y)). A target without class 0
    # drives q_0 towards the boundary.
    x, _ = sample_mixture(jax.random.key(2), np.array([1e-9, 0.4, 0.6]), 3_000)
    probs = exact_posterior(x, P_TR)
    r = mlls(probs, P_TR, tol=1e-14, max_iter=50_000)
    g = probs / P_TR
    grad = jnp.mean(g / (g @ (r * P_TR))[:, None], 0)
    np.testing.assert_allclose(jnp.where(r > 1e-3, grad, 1.0), 1.0, atol=1e-6)
    assert jnp.all(grad <= 1 + 1e-6)


@functools.partial(jax.jit, static_argnums=(1, 3))
def _random_problem_and_mlls(key, num_classes, m, method):
    # m (1..40) is traced: the sample is padded to 40 rows and masked by ``weights``.
    kp, kq = jax.random.split(key)
    probs = jax.random.dirichlet(kp, jnp.full(num_classes, 0.3), (40,))
    probs = probs / probs.sum(-1, keepdims=True)
    p_tr = jax.random.dirichlet(kq, jnp.full(num_classes, 2.0)) * 0.98 + 0.02 / num_classes
    mask = jnp.arange(40) < m
    return mlls(probs, p_tr / p_tr.sum(), method=method, max_iter=300, weights=mask), p_tr


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    num_classes=st.sampled_from([2, 5]),
    m=st.integers(1, 40),
    method=st.sampled_from(["em", "pgd"]),
)
def test_mlls_stays_in_constraint_set(seed, num_classes, m, method):
    # Random Dirichlet(0.3) probabilities (many near-zero entries) and training priors; one
    # compiled program per (C, method).
    r, p_tr = _random_problem_and_mlls(jax.random.key(seed), num_classes, m, method)
    assert jnp.all(jnp.isfinite(r)) and jnp.all(r >= 0)
    np.testing.assert_allclose(jnp.sum(r * p_tr / p_tr.sum()), 1.0, rtol=1e-5)  # float32 sums


def test_mlls_jit_vmap_and_traced_absent_class():
    probs = jnp.array([[0.7, 0.3, 0.0], [0.2, 0.8, 0.0]])
    batch = jnp.stack([probs, probs[::-1]])
    r = jax.jit(jax.vmap(lambda p: mlls(p, jnp.array([0.5, 0.5, 0.0]))))(batch)
    # A class with zero training frequency, under jit (traced p_train): it gets r = 0, no NaN.
    assert jnp.all(jnp.isfinite(r)) and jnp.all(r[:, 2] == 0)
    np.testing.assert_allclose(r[:, :2] @ jnp.array([0.5, 0.5]), 1.0, rtol=1e-6)


def test_bbse_exact_with_perfect_confusion(x64):
    # A 3-class predictor with confusion P(yhat = i | y = j) = M_ij: C = M diag(p_tr), mu = M q.
    m = jnp.array([[0.8, 0.1, 0.2], [0.15, 0.7, 0.1], [0.05, 0.2, 0.7]])
    conf = m * P_TR
    mu = m @ Q_TE
    np.testing.assert_allclose(bbse(conf, mu), R_TRUE, rtol=1e-12)
    np.testing.assert_allclose(bbse(conf, mu, normalize=False), R_TRUE, rtol=1e-12)
    # RLLS with no regularisation is BBSE; with a huge Delta_C it returns theta = 0, r = 1.
    np.testing.assert_allclose(rlls(conf, mu, delta=0.0), R_TRUE, rtol=1e-9)
    np.testing.assert_allclose(rlls(conf, mu, delta=1e3), 1.0, rtol=1e-12)


def test_bbse_from_samples_is_consistent(x64):
    # Hard and soft BBSE on exact posteriors, 20 000 source and 20 000 target points: error
    # ~ 1/sqrt(n) ~ 0.02 per entry (asserted < 0.1).
    xs, ys = sample_mixture(jax.random.key(3), P_TR, 20_000)
    xt, _ = sample_mixture(jax.random.key(4), Q_TE, 20_000)
    ps, pt = exact_posterior(xs, P_TR), exact_posterior(xt, P_TR)
    for soft in (False, True):
        conf = confusion_matrix(ps, ys, soft=soft)
        np.testing.assert_allclose(conf.sum(), 1.0, rtol=1e-12)
        np.testing.assert_allclose(conf.sum(0), label_marginal(ys, 3), rtol=1e-12)
        r = bbse(conf, target_mean_prediction(pt, soft=soft))
        np.testing.assert_allclose(r, R_TRUE, atol=0.1)


def test_bbse_singular_confusion_is_finite():
    conf = jnp.array([[0.25, 0.25, 0.0], [0.25, 0.25, 0.0], [0.0, 0.0, 0.0]])
    for est in (
        bbse(conf, jnp.array([0.6, 0.4, 0.0])),
        rlls(conf, jnp.array([0.6, 0.4, 0.0]), delta=0.1),
    ):
        assert jnp.all(jnp.isfinite(est)) and jnp.all(est >= 0)


def test_rlls_matches_brute_force_minimiser(x64):
    # Compare with scipy's Nelder-Mead on ||C theta - b|| + Delta ||theta||: the exact solution
    # must be at least as good (up to 1e-9) and, the problem being strictly convex here, close.
    from scipy.optimize import minimize

    rng = np.random.default_rng(0)
    m = rng.dirichlet(np.ones(3) * 3, size=3).T  # columns: P(yhat | y)
    conf = m * P_TR
    mu = m @ Q_TE + rng.normal(0, 0.02, 3)
    b = mu - conf.sum(1)
    delta = 0.05

    def obj(t):
        return np.linalg.norm(conf @ t - b) + delta * np.linalg.norm(t)

    ref = minimize(
        obj,
        np.zeros(3),
        method="Nelder-Mead",
        options=dict(xatol=1e-12, fatol=1e-14, maxiter=20_000),
    ).x
    theta = np.asarray(rlls(conf, mu, delta=delta, normalize=False)) - 1.0
    assert obj(theta) <= obj(ref) + 1e-9
    np.testing.assert_allclose(theta, ref, atol=1e-4)


def test_corrected_prediction_with_true_ratio_beats_uncorrected(x64):
    x, y = sample_mixture(jax.random.key(5), Q_TE, 20_000)
    probs = exact_posterior(x, P_TR)
    plain = jnp.mean(jnp.argmax(probs, -1) == y)
    corrected = jnp.mean(corrected_predict(probs, jnp.asarray(R_TRUE)) == y)
    bayes = jnp.mean(jnp.argmax(exact_posterior(x, Q_TE), -1) == y)
    assert corrected == bayes  # r * p_tr(y|x) ∝ p_te(y|x): the same argmax
    assert corrected > plain + 0.05


def test_bad_inputs_raise():
    probs = jnp.array([[0.5, 0.5], [0.9, 0.1]])
    with pytest.raises(ValueError, match="probs_target: rows must be probabilities"):
        mlls(jnp.array([[0.5, 0.6], [0.9, 0.1]]), jnp.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="p_train: every class needs positive"):
        mlls(probs, jnp.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="p_train: must sum to 1"):
        mlls(probs, jnp.array([0.5, 0.6]))
    with raises_invalid("p_train: expected shape"):
        mlls(probs, jnp.array([0.2, 0.3, 0.5]))
    with raises_invalid("method"):
        mlls(probs, jnp.array([0.5, 0.5]), method="newton")
    with raises_invalid("probs_target: expected shape"):
        mlls(jnp.array([0.5, 0.5]), jnp.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="mu_target: expected shape"):
        bbse(jnp.eye(3) / 3, jnp.ones(2) / 2)
    with pytest.raises(ValueError, match="confusion: expected a square"):
        bbse(jnp.ones((2, 3)), jnp.ones(2) / 2)
    with pytest.raises(ValueError, match="delta"):
        rlls(jnp.eye(2) / 2, jnp.ones(2) / 2, delta=-1.0)
    with pytest.raises(ValueError, match="labels: expected integer"):
        confusion_matrix(probs, jnp.array([0.0, 1.0]))


def test_weights_mask_equals_truncated_sample(x64):
    # A 0/1 mask over a padded sample gives the estimate of the unpadded sample (the experiment
    # relies on this to share one program across test sizes).
    x, _ = sample_mixture(jax.random.key(6), Q_TE, 300)
    probs = exact_posterior(x, P_TR)
    mask = jnp.arange(300) < 120
    for method in ("em", "pgd"):
        np.testing.assert_allclose(
            mlls(probs, P_TR, method=method, weights=mask, tol=1e-12, max_iter=5_000),
            mlls(probs[:120], P_TR, method=method, tol=1e-12, max_iter=5_000),
            rtol=1e-8,
        )
    for soft in (False, True):
        np.testing.assert_allclose(
            target_mean_prediction(probs, soft=soft, weights=mask),
            target_mean_prediction(probs[:120], soft=soft),
            rtol=1e-12,
        )
    with pytest.raises(ValueError, match="weights: expected shape"):
        mlls(probs, P_TR, weights=mask[:10])


def test_concrete_checks_inside_jit_with_closed_over_prior():
    # Inside a jit trace, jnp ops on a closed-over constant are staged; the validation must not
    # turn them into Python numbers (regression: ConcretizationTypeError).
    p_tr = jnp.array([0.5, 0.5])
    probs = jnp.array([[0.9, 0.1], [0.2, 0.8]])
    r = jax.jit(lambda p: mlls(p, p_tr, weights=jnp.ones(2)))(probs)
    np.testing.assert_allclose(r, mlls(probs, p_tr), rtol=1e-6)
