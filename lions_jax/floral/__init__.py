"""FLORAL: adversarial training of kernel SVMs against label poisoning (Bal et al., arXiv 2502.17121).

* :mod:`~lions_jax.floral.svm` — RBF/linear kernels, the SVM dual and its gradient, the exact
  Euclidean projection onto :math:`\\{0 \\le \\alpha \\le C,\\ y^\\top\\alpha = 0\\}` (bisection with an
  exact final step, or the paper's fixed-point iteration, safeguarded), the projected-gradient
  step, the exact SVM by accelerated PGD, the randomized top-k support-vector label-flip
  attacker and the decision function with the bias over all (or the free) support vectors.
* :mod:`~lions_jax.floral.train` — ``make_train(cfg) -> train(key, data, budget)``: the
  attacker/defender game in one ``lax.scan``, vmappable over seeds, datasets and budgets;
  ``make_train_ovr`` for one-vs-rest multi-class.
* :mod:`~lions_jax.floral.baselines` — LN-SVM's kernel correction, LS-SVM's kNN label
  sanitisation, DBSCAN and the Curie filter, all pure JAX.
* :mod:`~lions_jax.floral.attacks` — random, influential (largest-α) and greedy LFA-style flips.
* :mod:`~lions_jax.floral.nn` — the NN and NN-PGD (feature-space adversarial training) baselines.
* :mod:`~lions_jax.floral.experiment` — the ``floral`` experiment (``lions-jax run floral``).
"""

from lions_jax.floral.attacks import influential_flips, lfa_flips, random_flips
from lions_jax.floral.baselines import (
    curie_filter,
    dbscan,
    ln_svm_eval_kernel,
    ln_svm_kernel,
    ls_sanitize,
)
from lions_jax.floral.nn import NNConfig, make_nn_apply, make_nn_init, make_nn_train, pgd_attack
from lions_jax.floral.svm import (
    decision_function,
    flip_labels,
    linear_kernel,
    pgd_step,
    project_box_hyperplane,
    rbf_kernel,
    solve_svm_dual,
    svm_dual,
    svm_dual_grad,
)
from lions_jax.floral.train import (
    FloralConfig,
    FloralData,
    FloralState,
    kernel_matrices,
    make_train,
    make_train_ovr,
    step_size,
)

__all__ = [
    "FloralConfig",
    "FloralData",
    "FloralState",
    "NNConfig",
    "curie_filter",
    "dbscan",
    "decision_function",
    "flip_labels",
    "influential_flips",
    "kernel_matrices",
    "lfa_flips",
    "linear_kernel",
    "ln_svm_eval_kernel",
    "ln_svm_kernel",
    "ls_sanitize",
    "make_nn_apply",
    "make_nn_init",
    "make_nn_train",
    "make_train",
    "make_train_ovr",
    "pgd_attack",
    "pgd_step",
    "project_box_hyperplane",
    "random_flips",
    "rbf_kernel",
    "solve_svm_dual",
    "step_size",
    "svm_dual",
    "svm_dual_grad",
]
