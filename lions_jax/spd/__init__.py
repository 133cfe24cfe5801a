"""SPD: single-pass detection of jailbreaking input from output log-probabilities (Candogan, Wu,
Abad Rocamora, Chrysos, Cevher, arXiv 2502.15435). In progress: the feature extraction
(:mod:`~lions_jax.spd.features`) the balanced RBF-SVM classifier (:mod:`~lions_jax.spd.svm`,
on the kernel-SVM solver shared with FLORAL) and the fit / save / load / apply detector
(:mod:`~lions_jax.spd.detector`)."""

from lions_jax.spd.detector import SPDDetector, api_top_logprobs
from lions_jax.spd.features import (
    SPDFeatures,
    feature_vector,
    features_from_generation,
    surprisal_features,
)
from lions_jax.spd.svm import RBFSVM, fit_rbf_svm, svm_decision

__all__ = [
    "RBFSVM",
    "SPDDetector",
    "SPDFeatures",
    "api_top_logprobs",
    "feature_vector",
    "features_from_generation",
    "fit_rbf_svm",
    "surprisal_features",
    "svm_decision",
]
