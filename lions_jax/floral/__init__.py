"""FLORAL: adversarial training of kernel SVMs against label poisoning (Bal et al., arXiv 2502.17121).

* :mod:`~lions_jax.floral.svm` — RBF/linear kernels, the SVM dual and its gradient, the exact
  Euclidean projection onto :math:`\\{0 \\le \\alpha \\le C,\\ y^\\top\\alpha = 0\\}` (bisection with an
  exact final step, or the paper's fixed-point iteration), the projected-gradient step, the exact
  SVM by PGD to convergence, the randomized top-k support-vector label-flip attacker and the
  decision function with the bias over all support vectors.

Work in progress (issue 8): ``make_train`` (the attacker/defender game), the baselines,
one-vs-rest and the experiment are not here yet.
"""

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

__all__ = [
    "decision_function",
    "flip_labels",
    "linear_kernel",
    "pgd_step",
    "project_box_hyperplane",
    "rbf_kernel",
    "solve_svm_dual",
    "svm_dual",
    "svm_dual_grad",
]
