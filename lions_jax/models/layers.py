"""Transformer building blocks shared by ``TransformerLM`` and ``TransformerEncoder``.

All kernels use Flax's ``(in, out)`` layout; attention works on ``(batch, seq, heads, head_dim)``
arrays, the layout of ``jax.nn.dot_product_attention``.
"""

from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Float, Int

__all__ = [
    "ACTIVATIONS",
    "AttentionFn",
    "AttentionModuleFactory",
    "FeedForward",
    "SelfAttention",
    "apply_rope",
    "make_norm",
]

Activation = Literal["gelu", "gelu_tanh", "relu", "silu"]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # BERT: exact erf GELU
    "gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True),  # GPT-2 "gelu_new"
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
}

# The signature of ``jax.nn.dot_product_attention``: (q, k, v, bias=None, mask=None, ...) on
# (batch, seq, heads, head_dim) arrays, ``mask`` boolean and broadcastable to (B, N, T, S).
AttentionFn = Callable[..., jax.Array]
# Builds one layer's attention sub-layer: rngs -> module(x, mask=...) -> (batch, seq, d_model).
AttentionModuleFactory = Callable[[nnx.Rngs], nnx.Module]


def apply_rope(
    x: Float[Array, "batch seq heads dim"],
    positions: Int[Array, "batch seq"],
    *,
    base: float = 10_000.0,
) -> Float[Array, "batch seq heads dim"]:
    r"""Rotary position embedding (RoPE), "rotate-half" convention (GPT-NeoX, LLaMA).

    Feature pairs :math:`(x_i, x_{i + d/2})` are rotated by the angle :math:`p\,\theta_i` with
    :math:`\theta_i = \text{base}^{-2i/d}`, so that
    :math:`\langle \mathrm{rope}(q, m), \mathrm{rope}(k, n)\rangle` depends on :math:`m - n` only.
    Angles are computed in float32; the result has the dtype of ``x``.

    References:
      Su et al., *RoFormer: Enhanced Transformer with Rotary Position Embedding*, 2021,
      https://arxiv.org/abs/2104.09864
    """
    dim = x.shape[-1]
    if dim % 2:
        raise ValueError(f"apply_rope: head dim must be even, got {dim}")
    half = dim // 2
    inv_freq = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angles = positions.astype(jnp.float32)[..., None] * inv_freq  # (B, T, half)
    cos = jnp.cos(angles)[:, :, None, :]
    sin = jnp.sin(angles)[:, :, None, :]
    x1 = x[..., :half].astype(jnp.float32)
    x2 = x[..., half:].astype(jnp.float32)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x.dtype)


def make_norm(
    kind: Literal["rms", "layer"],
    dim: int,
    eps: float,
    *,
    use_bias: bool,
    param_dtype: Any,
    rngs: nnx.Rngs,
) -> nnx.Module:
    """``nnx.RMSNorm`` or ``nnx.LayerNorm`` (with or without bias)."""
    if kind == "rms":
        return nnx.RMSNorm(dim, epsilon=eps, param_dtype=param_dtype, rngs=rngs)
    if kind == "layer":
        return nnx.LayerNorm(
            dim, epsilon=eps, use_bias=use_bias, param_dtype=param_dtype, rngs=rngs
        )
    raise ValueError(f"norm must be 'rms' or 'layer', got {kind!r}")


class SelfAttention(nnx.Module):
    """Multi-head self-attention with separate ``query``/``key``/``value``/``out`` projections.

    Args:
      d_model: model width.
      num_heads: attention heads.
      head_dim: per-head width.
      use_bias: biases on the four projections.
      attention_fn: ``jax.nn.dot_product_attention``-compatible function (pluggable: e.g. LION).
      rope_base: if not None, rotary embeddings with this base are applied to queries and keys.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        head_dim: int,
        *,
        use_bias: bool,
        attention_fn: AttentionFn = jax.nn.dot_product_attention,
        rope_base: float | None = None,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        inner = num_heads * head_dim
        kw = dict(use_bias=use_bias, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.query = nnx.Linear(d_model, inner, **kw)
        self.key = nnx.Linear(d_model, inner, **kw)
        self.value = nnx.Linear(d_model, inner, **kw)
        self.out = nnx.Linear(inner, d_model, **kw)
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.attention_fn = attention_fn
        self.rope_base = rope_base

    def __call__(
        self,
        x: Float[Array, "batch seq d"],
        *,
        mask: Bool[Array, "#batch 1 #seq kv"] | None = None,
        positions: Int[Array, "batch seq"] | None = None,
        cache: tuple[jax.Array, jax.Array] | None = None,
        cache_index: Int[Array, ""] | None = None,
    ) -> tuple[Float[Array, "batch seq d"], tuple[jax.Array, jax.Array]]:
        """Returns ``(output, (k, v))``.

        Without ``cache``, keys/values are those of ``x`` and are returned (for a prefill). With
        ``cache = (k_cache, v_cache)`` of shape (batch, S, heads, head_dim), the new keys/values
        are written at slot ``cache_index`` and attention runs over all S slots (``mask`` says
        which are valid); the updated cache is returned.
        """
        b, t, _ = x.shape
        shape = (b, t, self.num_heads, self.head_dim)
        q = self.query(x).reshape(shape)
        k = self.key(x).reshape(shape)
        v = self.value(x).reshape(shape)
        if self.rope_base is not None:
            if positions is None:
                raise ValueError("positions are required with rotary embeddings")
            q = apply_rope(q, positions, base=self.rope_base)
            k = apply_rope(k, positions, base=self.rope_base)
        if cache is not None:
            k_cache, v_cache = cache
            k = jax.lax.dynamic_update_slice_in_dim(
                k_cache, k.astype(k_cache.dtype), cache_index, axis=1
            )
            v = jax.lax.dynamic_update_slice_in_dim(
                v_cache, v.astype(v_cache.dtype), cache_index, axis=1
            )
        y = self.attention_fn(q, k.astype(q.dtype), v.astype(q.dtype), mask=mask)
        return self.out(y.reshape(b, t, self.num_heads * self.head_dim)), (k, v)


class FeedForward(nnx.Module):
    """Position-wise MLP: ``down(act(up(x)))``, or gated ``down(act(gate(x)) * up(x))`` (SwiGLU)."""

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        *,
        activation: Activation,
        gated: bool,
        use_bias: bool,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        kw = dict(use_bias=use_bias, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.up = nnx.Linear(d_model, d_ff, **kw)
        self.gate = nnx.Linear(d_model, d_ff, **kw) if gated else None
        self.down = nnx.Linear(d_ff, d_model, **kw)
        self.activation = activation

    def __call__(self, x: Float[Array, "*batch d"]) -> Float[Array, "*batch d"]:
        act = ACTIVATIONS[self.activation]
        h = act(self.gate(x)) * self.up(x) if self.gate is not None else act(self.up(x))
        return self.down(h)
