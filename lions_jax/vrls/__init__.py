"""VRLS: label-shift ratio estimation with entropy regularisation, and multi-node
importance-weighted ERM (Wu, Choi, Cao, Cevher, Ramezani-Kebrya, arXiv 2502.02544, ICLR 2025).

* :mod:`~lions_jax.vrls.estimators` — ``bbse``, ``rlls``, ``mlls`` (EM and projected gradient) on
  predicted probabilities; confusion matrices and target mean predictions.
* :mod:`~lions_jax.vrls.calibration` — the entropy-regularised cross-entropy (CE − ζH), temperature
  scaling and bias-corrected temperature scaling, the corrected prediction argmax r̂ ⊙ f.
* :mod:`~lions_jax.vrls.train` — ``make_train(cfg, mesh=None) -> train(key, data, ratios)``:
  multi-node IW-ERM (synchronous gradient averaging; FedAvg/FedProx with local steps), nodes
  vmapped or sharded over a device mesh with ``shard_map``.
"""

from lions_jax.vrls.calibration import (
    Calibration,
    calibrated_probs,
    corrected_predict,
    entropy_regularized_ce,
    fit_temperature,
)
from lions_jax.vrls.estimators import (
    bbse,
    confusion_matrix,
    label_marginal,
    mlls,
    mlls_objective,
    normalize_ratio,
    rlls,
    target_mean_prediction,
)
from lions_jax.vrls.train import (
    IWERMConfig,
    NodeData,
    communication_per_step,
    iw_loss,
    make_train,
    node_weights,
)

__all__ = [
    "Calibration",
    "IWERMConfig",
    "NodeData",
    "bbse",
    "calibrated_probs",
    "communication_per_step",
    "confusion_matrix",
    "corrected_predict",
    "entropy_regularized_ce",
    "fit_temperature",
    "iw_loss",
    "label_marginal",
    "make_train",
    "mlls",
    "mlls_objective",
    "node_weights",
    "normalize_ratio",
    "rlls",
    "target_mean_prediction",
]
