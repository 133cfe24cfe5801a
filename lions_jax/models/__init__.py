"""Shared Flax NNX models, used functionally (``graphdef, state = nnx.split(model)``).

* :class:`MLP`;
* :class:`TransformerLM` (causal decoder: RMSNorm/LayerNorm, RoPE or learned positions, tied or
  untied head, KV cache) with :func:`generate` / :func:`generate_uncached` under ``jit`` and
  per-token log-prob helpers;
* :class:`TransformerEncoder` (BERT or ViT layout) with a pluggable attention function;
* safetensors loaders for GPT-2- and BERT-named checkpoints (:mod:`lions_jax.models.loaders`)
  and the pretrained all-MiniLM-L6-v2 sentence encoder (:class:`SentenceEncoder`).
"""

from lions_jax.models.functional import init_model
from lions_jax.models.generation import (
    GenerationOutput,
    generate,
    generate_uncached,
    sample_token,
    sequence_logprobs,
    token_logprobs,
)
from lions_jax.models.layers import FeedForward, SelfAttention, apply_rope
from lions_jax.models.mlp import MLP
from lions_jax.models.transformer import (
    EncoderConfig,
    KVCache,
    LMConfig,
    TransformerEncoder,
    TransformerLM,
    mean_pool,
)

__all__ = [
    "MLP",
    "EncoderConfig",
    "FeedForward",
    "GenerationOutput",
    "KVCache",
    "LMConfig",
    "SelfAttention",
    "TransformerEncoder",
    "TransformerLM",
    "apply_rope",
    "generate",
    "generate_uncached",
    "init_model",
    "mean_pool",
    "sample_token",
    "sequence_logprobs",
    "token_logprobs",
]
