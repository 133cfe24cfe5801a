"""SPD: single-pass detection of jailbreaking input from output log-probabilities (Candogan, Wu,
Abad Rocamora, Chrysos, Cevher, arXiv 2502.15435).

* :mod:`~lions_jax.spd.features` — top-k surprisals of the first r generated positions (full
  vocabulary or an API's top-k), with an explicit validity mask for short outputs;
* :mod:`~lions_jax.spd.svm` — the balanced RBF-SVM (on the kernel-SVM solver shared with FLORAL);
* :mod:`~lions_jax.spd.detector` — :class:`SPDDetector`: fit / save / load / apply in one pass;
* :mod:`~lions_jax.spd.task`, :mod:`~lions_jax.spd.toy` — the synthetic assistant task, its exact
  harm judge and the toy aligned byte-level LM trained on it;
* :mod:`~lions_jax.spd.gcg`, :mod:`~lions_jax.spd.attacks` — jailbreaks: GCG in JAX, AutoDAN-like
  template search, PAIR-like rewrite search;
* :mod:`~lions_jax.spd.baselines` — perplexity filter, refusal probability, SmoothLLM, and an
  input-embedding (MiniLM) classifier.
"""

from lions_jax.spd import attacks, baselines, gcg, task, toy
from lions_jax.spd.baselines import (
    EmbeddingClassifier,
    fit_threshold,
    perturb_prompts,
    prompt_nll,
    refusal_logprob,
    smoothllm_detect,
    smoothllm_vote,
)
from lions_jax.spd.detector import SPDDetector, api_top_logprobs
from lions_jax.spd.features import (
    SPDFeatures,
    feature_vector,
    features_from_generation,
    surprisal_features,
)
from lions_jax.spd.gcg import GCGConfig, GCGResult, gcg_attack, gcg_step, token_gradients
from lions_jax.spd.svm import RBFSVM, fit_rbf_svm, svm_decision
from lions_jax.spd.task import ChatTask, is_harmful, is_refusal
from lions_jax.spd.toy import ToyLMConfig, chat_generate, make_train

__all__ = [
    "RBFSVM",
    "ChatTask",
    "EmbeddingClassifier",
    "GCGConfig",
    "GCGResult",
    "SPDDetector",
    "SPDFeatures",
    "ToyLMConfig",
    "api_top_logprobs",
    "attacks",
    "baselines",
    "chat_generate",
    "feature_vector",
    "features_from_generation",
    "fit_rbf_svm",
    "fit_threshold",
    "gcg",
    "gcg_attack",
    "gcg_step",
    "is_harmful",
    "is_refusal",
    "make_train",
    "perturb_prompts",
    "prompt_nll",
    "refusal_logprob",
    "smoothllm_detect",
    "smoothllm_vote",
    "surprisal_features",
    "svm_decision",
    "task",
    "token_gradients",
    "toy",
]
