"""FLORAL's SVM pieces: the box-hyperplane projection against an exact breakpoint reference,
feasibility, idempotence, both methods agreeing, and PGD decreasing the dual."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lions_jax._src.testing import raises_invalid
from lions_jax.floral import (
    decision_function,
    flip_labels,
    pgd_step,
    project_box_hyperplane,
    rbf_kernel,
    solve_svm_dual,
    svm_dual,
    svm_dual_grad,
)


def _exact_projection(v, y, c):
    """Independent reference: phi is piecewise linear with breakpoints y_i v_i and y_i (v_i - c);
    find the root by evaluating phi at every breakpoint and interpolating linearly."""
    v, y = np.asarray(v, np.float64), np.asarray(y, np.float64)
    phi = lambda lam: np.sum(y * np.clip(v - lam * y, 0.0, c))  # noqa: E731
    points = np.unique(np.concatenate([y * v, y * (v - c)]))
    values = np.array([phi(p) for p in points])
    if values[0] <= 0:  # root at or left of the first breakpoint (phi constant there)
        lam = points[0]
    elif values[-1] > 0:
        lam = points[-1]
    else:
        k = np.nonzero(values <= 0)[0][0]
        a, b, fa, fb = points[k - 1], points[k], values[k - 1], values[k]
        lam = a + fa * (b - a) / (fa - fb) if fa != fb else a
    return np.clip(v - lam * y, 0.0, c)


@st.composite
def _cases(draw):
    n = draw(st.integers(2, 12))
    v = draw(st.lists(st.floats(-5, 5, allow_nan=False, width=64), min_size=n, max_size=n))
    y = draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=n, max_size=n))
    c = draw(st.floats(0.1, 3.0))
    return np.array(v), np.array(y), c


@settings(max_examples=25, deadline=None)  # every n re-traces: keep it small
@given(_cases())
@example((np.array([0.0, 1.0]), np.array([-1.0, 1.0]), 1.0))  # the plain fixed point cycles here
def test_projection_is_exact_feasible_and_idempotent(case):
    v, y, c = case
    with jax.enable_x64(True):
        ref = _exact_projection(v, y, c)
        for method in ("bisection", "fixed_point"):
            p = np.asarray(project_box_hyperplane(jnp.asarray(v), jnp.asarray(y), c, method=method))
            assert np.all(p >= 0) and np.all(p <= c)
            assert abs(np.dot(y, p)) < 1e-9 * max(1.0, c * len(v))
            # the projection is unique: both methods equal the breakpoint reference
            np.testing.assert_allclose(p, ref, atol=1e-8)
        again = project_box_hyperplane(jnp.asarray(p), jnp.asarray(y), c)
        np.testing.assert_allclose(again, p, atol=1e-10)


def test_projection_float32_and_vmap():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(5, 40)).astype(np.float32) * 3
    y = np.where(rng.uniform(size=(5, 40)) > 0.5, 1.0, -1.0).astype(np.float32)
    p = jax.jit(jax.vmap(lambda a, b: project_box_hyperplane(a, b, 1.0)))(v, y)
    assert p.dtype == jnp.float32
    # float32 round-off on a sum of 40 terms bounded by C = 1
    assert float(jnp.max(jnp.abs(jnp.sum(p * y, axis=1)))) < 1e-5


def test_pgd_never_increases_the_dual_for_fixed_labels(x64):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 2))
    y = np.where(x[:, 0] + 0.3 * rng.normal(size=30) > 0, 1.0, -1.0)
    kernel = rbf_kernel(x, x, 0.5)
    alpha = jnp.zeros(30)
    lr = 1.0 / float(jnp.linalg.eigvalsh(kernel).max())  # step 1/L: monotone PGD
    values = []
    for _ in range(50):
        alpha = pgd_step(alpha, y, kernel, lr, 10.0)
        values.append(float(svm_dual(alpha, y, kernel)))
    assert np.all(np.diff(values) <= 1e-12)
    # the gradient is the derivative of the dual
    g = jax.grad(svm_dual)(alpha, y, kernel)
    np.testing.assert_allclose(g, svm_dual_grad(alpha, y, kernel), rtol=1e-10, atol=1e-12)


def test_bad_inputs():
    with raises_invalid("v and y"):
        project_box_hyperplane(jnp.ones(3), jnp.ones(4), 1.0)
    with raises_invalid("method"):
        project_box_hyperplane(jnp.ones(3), jnp.ones(3), 1.0, method="qp")
    with pytest.raises(ValueError, match="x1, x2"):
        rbf_kernel(jnp.ones((3, 2)), jnp.ones((3, 4)), 1.0)


def test_attacker_flips_exactly_budget_labels_among_top_svs():
    rng = np.random.default_rng(2)
    alpha = np.where(rng.uniform(size=50) > 0.4, rng.uniform(0.01, 1.0, size=50), 0.0)
    y = np.where(rng.uniform(size=50) > 0.5, 1.0, -1.0)
    top = set(np.argsort(-alpha)[: 2 * 7])
    flips = jax.vmap(lambda k: flip_labels(k, alpha, y, 7))(
        jax.random.split(jax.random.key(0), 200)
    )
    changed = np.asarray(flips) != y
    assert np.all(changed.sum(1) == 7)
    assert set(np.nonzero(changed.any(0))[0]) <= top
    assert len(set(np.nonzero(changed.any(0))[0])) == 14  # every candidate gets drawn sometimes
    # fewer support vectors than the budget: all of them are flipped, nothing else
    few = np.zeros(50)
    few[[3, 9]] = 1.0
    changed = np.asarray(flip_labels(jax.random.key(1), few, y, 5)) != y
    assert set(np.nonzero(changed)[0]) == {3, 9}
    with pytest.raises(ValueError, match="budget"):
        flip_labels(jax.random.key(0), alpha, y, 51)


def test_exact_svm_agrees_with_scikit_learn_svc(x64):
    from sklearn.datasets import make_moons
    from sklearn.svm import SVC

    x, y01 = make_moons(400, noise=0.2, random_state=0)
    y = 2.0 * y01 - 1.0
    xtr, ytr, xte = x[:200], y[:200], x[200:]
    k_train = rbf_kernel(xtr, xtr, 0.5)
    alpha = jax.jit(lambda yy, kk: solve_svm_dual(yy, kk, 10.0, num_steps=20_000))(ytr, k_train)
    k_eval = rbf_kernel(xte, xtr, 0.5)
    svc = SVC(C=10.0, kernel="rbf", gamma=0.5, tol=1e-8).fit(xtr, ytr)
    # the dual optimum is libsvm's (its dual_coef_ = alpha_i y_i on the SVs): PGD with step 1/L
    # after 20k steps is within 2e-3 of it (1e-5 after 100k)
    ref = np.zeros(200)
    ref[svc.support_] = np.abs(svc.dual_coef_[0])
    np.testing.assert_allclose(alpha, ref, atol=2e-3)
    free = decision_function(alpha, ytr, k_eval, k_train, c=10.0, bias="free_sv")
    assert np.mean(np.sign(free) == svc.predict(xte)) >= 0.99
    np.testing.assert_allclose(free, svc.decision_function(xte), atol=0.05)
    # the official rule (bias over all SVs, bound ones included) shifts b: here 98 % agreement
    official = decision_function(alpha, ytr, k_eval, k_train)
    assert 0.95 <= np.mean(np.sign(official) == svc.predict(xte)) < 1.0
    with pytest.raises(ValueError, match="bias"):
        decision_function(alpha, ytr, k_eval, k_train, bias="free_sv")
