"""LUME: the LLM-unlearning benchmark of SemEval-2025 Task 4 (Ramakrishna, Wan, Jin, Chang, Bu,
Vinzamuri, Cevher, Hong, Gupta, arXiv 2502.15097), in JAX.

* :mod:`~lions_jax.lume.schema`, :mod:`~lions_jax.lume.data` — the LUME JSONL schema, a strict
  loader for the public files, and offline generators of the three tasks (stories, fake-PII
  biographies, public-style biographies), MIA non-members and a multiple-choice utility test;
* :mod:`~lions_jax.lume.metrics` — the official scoring: ROUGE-L recall (``rouge-score``, with
  stemming), exact match, the harmonic-mean task aggregate, MIA score ``1 − 2|AUC − 0.5|``,
  Final; MIA statistics loss, zlib, Min-K% and Min-K%++;
* :mod:`~lions_jax.lume.losses` — GA, GD, KL, NPO, NPO+GD and SimNPO as pure functions of
  per-token log-probs;
* :mod:`~lions_jax.lume.model` — the toy target LM: BPE tokenizer, encodings, memorisation
  training and the evaluation pass;
* :mod:`~lions_jax.lume.unlearn` — ``make_unlearn(cfg, graphdef) -> unlearn(key, params,
  ref_params, arrays)``, the shared loop with per-epoch evaluation, full-parameter or through
  LoRA adapters (:mod:`~lions_jax.lume.lora`).
"""

from lions_jax.lume import data, lora, losses, metrics, model, schema, unlearn
from lions_jax.lume.data import (
    Document,
    LumeData,
    MCQuestion,
    load_jsonl,
    make_lume_data,
    make_task1_stories,
    make_task2_bios,
    make_task3_bios,
    write_jsonl,
)
from lions_jax.lume.losses import (
    LOSSES,
    ga_loss,
    gd_loss,
    kl_loss,
    npo_gd_loss,
    npo_loss,
    simnpo_loss,
)
from lions_jax.lume.metrics import (
    MIA_STATISTICS,
    TaskScores,
    exact_match,
    final_score,
    harmonic_mean,
    loss_statistic,
    mia_auc,
    mia_score,
    min_k_pp_statistic,
    min_k_statistic,
    rouge_l_recall,
    task_aggregate,
    task_scores,
    utility_valid,
    zlib_statistic,
)
from lions_jax.lume.model import LumeTokenizer, TargetConfig, evaluate, make_train_target, score
from lions_jax.lume.schema import LumeRow, probe_kind
from lions_jax.lume.unlearn import UnlearnArrays, UnlearnConfig, UnlearnLog, make_unlearn

__all__ = [
    "LOSSES",
    "MIA_STATISTICS",
    "Document",
    "LumeData",
    "LumeRow",
    "LumeTokenizer",
    "MCQuestion",
    "TargetConfig",
    "TaskScores",
    "UnlearnArrays",
    "UnlearnConfig",
    "UnlearnLog",
    "data",
    "evaluate",
    "exact_match",
    "final_score",
    "ga_loss",
    "gd_loss",
    "harmonic_mean",
    "kl_loss",
    "load_jsonl",
    "lora",
    "loss_statistic",
    "losses",
    "make_lume_data",
    "make_task1_stories",
    "make_task2_bios",
    "make_task3_bios",
    "make_train_target",
    "make_unlearn",
    "metrics",
    "mia_auc",
    "mia_score",
    "min_k_pp_statistic",
    "min_k_statistic",
    "model",
    "npo_gd_loss",
    "npo_loss",
    "probe_kind",
    "rouge_l_recall",
    "schema",
    "score",
    "simnpo_loss",
    "task_aggregate",
    "task_scores",
    "unlearn",
    "utility_valid",
    "write_jsonl",
    "zlib_statistic",
]
