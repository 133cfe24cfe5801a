"""SPD: single-pass detection of jailbreaking input from output log-probabilities (Candogan, Wu,
Abad Rocamora, Chrysos, Cevher, arXiv 2502.15435). In progress: the feature extraction
(:mod:`~lions_jax.spd.features`)."""

from lions_jax.spd.features import SPDFeatures, feature_vector, surprisal_features

__all__ = ["SPDFeatures", "feature_vector", "surprisal_features"]
