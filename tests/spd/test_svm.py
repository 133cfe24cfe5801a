"""SPD's balanced RBF-SVM equals scikit-learn's ``SVC(kernel="rbf", class_weight="balanced")``."""

import jax.numpy as jnp
import numpy as np
from sklearn.svm import SVC

from lions_jax._src.testing import raises_invalid
from lions_jax.spd import fit_rbf_svm, svm_decision


def test_decisions_match_sklearn_svc(x64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 6))
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 + 0.3 * rng.normal(size=160) > 1.0).astype(int)  # 26 % pos
    x_test = rng.normal(size=(200, 6))
    # libsvm solved to tol 1e-8 (its default 1e-3 would itself be the error); same C, gamma="scale"
    ref = SVC(kernel="rbf", class_weight="balanced", tol=1e-8).fit(x, y).decision_function(x_test)
    model = fit_rbf_svm(jnp.asarray(x), jnp.asarray(y))
    ours = np.asarray(svm_decision(model, jnp.asarray(x_test)))
    # both solve the same dual to ~1e-8; measured max difference 1.3e-7
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    ref_fixed = SVC(kernel="rbf", C=3.0, gamma=0.2, class_weight=None, tol=1e-8).fit(x, y)
    fixed = fit_rbf_svm(jnp.asarray(x), jnp.asarray(y), c=3.0, gamma=0.2, class_weight=None)
    np.testing.assert_allclose(
        np.asarray(svm_decision(fixed, jnp.asarray(x_test))),
        ref_fixed.decision_function(x_test),
        atol=1e-5,
    )


def test_bad_input_names_the_argument():
    x, y = jnp.zeros((4, 3)), jnp.array([0, 1, 0, 1])
    with raises_invalid("x: expected"):
        fit_rbf_svm(jnp.zeros(4), y)
    with raises_invalid("y: expected"):
        fit_rbf_svm(x, jnp.array([0, 1]))
    with raises_invalid("gamma"):
        fit_rbf_svm(x, y, gamma=-1.0)
    with raises_invalid("class_weight"):
        fit_rbf_svm(x, y, class_weight="auto")
    model = fit_rbf_svm(jnp.ones((4, 3)) * jnp.arange(4.0)[:, None], y, num_steps=5)
    with raises_invalid(r"x: expected \(m, 3\)"):
        svm_decision(model, jnp.zeros((2, 4)))


def test_sample_mask_and_array_gamma_equal_fitting_the_subset(x64):
    """A masked fit is the SVM of the subset (decisions to solver round-off); an array γ equal to
    the subset's "scale" γ gives the same fit, so one compiled fit serves every subset and γ."""
    import jax

    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 4))
    y = (x[:, 0] + 0.4 * rng.normal(size=60) > 0.3).astype(int)
    x_test = rng.normal(size=(30, 4))
    keep = rng.random(60) < 0.7
    sub = fit_rbf_svm(jnp.asarray(x[keep]), jnp.asarray(y[keep]))
    ref = np.asarray(svm_decision(sub, jnp.asarray(x_test)))
    masked = fit_rbf_svm(jnp.asarray(x), jnp.asarray(y), sample_mask=jnp.asarray(keep))
    np.testing.assert_allclose(np.asarray(masked.gamma), np.asarray(sub.gamma), rtol=1e-12)
    # both are solved to ~1e-8 by the same iterations on an equivalent dual
    np.testing.assert_allclose(
        np.asarray(svm_decision(masked, jnp.asarray(x_test))), ref, atol=1e-6
    )

    @jax.jit
    def fit_decide(g, mask):
        model = fit_rbf_svm(jnp.asarray(x), jnp.asarray(y), gamma=g, sample_mask=mask)
        return svm_decision(model, jnp.asarray(x_test))

    got = fit_decide(sub.gamma, jnp.asarray(keep))
    np.testing.assert_allclose(np.asarray(got), ref, atol=1e-6)
    with raises_invalid("sample_mask"):
        fit_rbf_svm(jnp.asarray(x), jnp.asarray(y), sample_mask=jnp.ones(3, bool))
    with raises_invalid("gamma: expected a scalar"):
        fit_rbf_svm(jnp.asarray(x), jnp.asarray(y), gamma=jnp.ones(2))
