"""``TransformerLM`` (causal decoder with a KV cache) and ``TransformerEncoder`` (BERT / ViT).

Both are Flax NNX modules used functionally: ``graphdef, state = nnx.split(model)`` at every
``jit``/``vmap``/``scan`` boundary and ``nnx.merge(graphdef, state)`` inside. Their configs are
frozen dataclasses with constructors for the public architectures whose checkpoints
:mod:`lions_jax.models.loaders` reads (GPT-2, BERT).
"""

import dataclasses
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Float, Int, Shaped

from lions_jax.models.layers import (
    Activation,
    AttentionFn,
    AttentionModuleFactory,
    FeedForward,
    SelfAttention,
    make_norm,
)

__all__ = [
    "EncoderConfig",
    "KVCache",
    "LMConfig",
    "TransformerEncoder",
    "TransformerLM",
    "mean_pool",
]


def _check_common(cfg: Any) -> None:
    for name in ("d_model", "num_layers", "num_heads", "max_len"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.head_dim is None and cfg.d_model % cfg.num_heads:
        raise ValueError(
            f"d_model ({cfg.d_model}) must be divisible by num_heads "
            f"({cfg.num_heads}) unless head_dim is given"
        )


# ============================================================================================
# Causal language model
# ============================================================================================
@dataclasses.dataclass(frozen=True, kw_only=True)
class LMConfig:
    """Architecture of a :class:`TransformerLM`.

    The defaults are a modern small decoder (pre-norm RMSNorm, RoPE, SwiGLU, no biases, tied
    embeddings); :meth:`gpt2` gives GPT-2's (LayerNorm with bias, learned positions, tanh-GELU MLP,
    biases, tied head).

    Attributes:
      vocab_size: vocabulary size.
      d_model: residual width.
      num_layers: decoder blocks.
      num_heads: attention heads.
      head_dim: per-head width (default ``d_model // num_heads``).
      d_ff: MLP hidden width (default ``4 * d_model``).
      max_len: longest sequence (size of the learned position table; a bound on the KV cache).
      norm: ``"rms"`` or ``"layer"``.
      norm_eps: normalisation epsilon.
      position: ``"rope"`` (rotary) or ``"learned"`` (absolute table).
      rope_base: RoPE base.
      activation: MLP activation.
      gated_mlp: gated MLP (``act(gate(x)) * up(x)``; SwiGLU with ``silu``).
      use_bias: biases in projections and LayerNorm.
      tie_embeddings: output head shares the token embedding.
      dtype: computation dtype (e.g. ``"bfloat16"``); None follows the parameters.
      param_dtype: parameter dtype.
    """

    vocab_size: int
    d_model: int = 256
    num_layers: int = 4
    num_heads: int = 4
    head_dim: int | None = None
    d_ff: int | None = None
    max_len: int = 1024
    norm: Literal["rms", "layer"] = "rms"
    norm_eps: float = 1e-6
    position: Literal["rope", "learned"] = "rope"
    rope_base: float = 10_000.0
    activation: Activation = "silu"
    gated_mlp: bool = True
    use_bias: bool = False
    tie_embeddings: bool = True
    dtype: str | None = None
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {self.vocab_size}")
        _check_common(self)

    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim or self.d_model // self.num_heads

    @property
    def resolved_d_ff(self) -> int:
        return self.d_ff or 4 * self.d_model

    @classmethod
    def gpt2(
        cls,
        *,
        vocab_size: int = 50257,
        d_model: int = 768,
        num_layers: int = 12,
        num_heads: int = 12,
        max_len: int = 1024,
        d_ff: int | None = None,
        norm_eps: float = 1e-5,
        activation: Activation = "gelu_tanh",
        tie_embeddings: bool = True,
        **kw: Any,
    ) -> "LMConfig":
        """GPT-2's architecture (the defaults are GPT-2 small, 124M)."""
        return cls(
            vocab_size=vocab_size,
            d_model=d_model,
            num_layers=num_layers,
            num_heads=num_heads,
            max_len=max_len,
            d_ff=d_ff,
            norm="layer",
            norm_eps=norm_eps,
            position="learned",
            activation=activation,
            gated_mlp=False,
            use_bias=True,
            tie_embeddings=tie_embeddings,
            **kw,
        )


class KVCache(NamedTuple):
    """Per-layer key/value cache for incremental decoding.

    Attributes:
      k, v: one (batch, S, heads, head_dim) array per layer.
      valid: (batch, S) which cache slots hold real tokens (left padding stays False).
      positions: (batch,) position id of the next token of each row.
      index: () the next cache slot to write (the same for every row).
    """

    k: tuple[jax.Array, ...]
    v: tuple[jax.Array, ...]
    valid: jax.Array
    positions: jax.Array
    index: jax.Array


class DecoderBlock(nnx.Module):
    """Pre-norm block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``."""

    def __init__(self, cfg: LMConfig, *, rngs: nnx.Rngs):
        kw = dict(dtype=cfg.dtype, param_dtype=cfg.param_dtype, rngs=rngs)
        self.attn_norm = make_norm(
            cfg.norm,
            cfg.d_model,
            cfg.norm_eps,
            use_bias=cfg.use_bias,
            param_dtype=cfg.param_dtype,
            rngs=rngs,
        )
        self.attn = SelfAttention(
            cfg.d_model,
            cfg.num_heads,
            cfg.resolved_head_dim,
            use_bias=cfg.use_bias,
            rope_base=cfg.rope_base if cfg.position == "rope" else None,
            **kw,
        )
        self.mlp_norm = make_norm(
            cfg.norm,
            cfg.d_model,
            cfg.norm_eps,
            use_bias=cfg.use_bias,
            param_dtype=cfg.param_dtype,
            rngs=rngs,
        )
        self.mlp = FeedForward(
            cfg.d_model,
            cfg.resolved_d_ff,
            activation=cfg.activation,
            gated=cfg.gated_mlp,
            use_bias=cfg.use_bias,
            **kw,
        )

    def __call__(
        self,
        x: jax.Array,
        *,
        mask: jax.Array,
        positions: jax.Array,
        cache: tuple[jax.Array, jax.Array] | None = None,
        cache_index: jax.Array | None = None,
    ) -> tuple[jax.Array, Any]:
        h, kv = self.attn(
            self.attn_norm(x), mask=mask, positions=positions, cache=cache, cache_index=cache_index
        )
        x = x + h
        return x + self.mlp(self.mlp_norm(x)), kv


class TransformerLM(nnx.Module):
    """Causal decoder-only language model.

    Call it on token ids for logits; use :meth:`init_cache`, :meth:`prefill` and
    :meth:`decode_step` / :meth:`extend` (or :func:`lions_jax.models.generate`) for incremental
    decoding.
    Left-padded batches are supported through ``attention_mask``: position ids then count only
    real tokens, so a padded row gives the same logits as the unpadded sequence.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> lm = TransformerLM(LMConfig(vocab_size=11, d_model=16, num_layers=1, num_heads=2),
        ...                    rngs=nnx.Rngs(0))
        >>> lm(jnp.zeros((2, 5), jnp.int32)).shape
        (2, 5, 11)
    """

    def __init__(self, config: LMConfig, *, rngs: nnx.Rngs):
        cfg = config
        self.config = cfg
        self.embed = nnx.Embed(
            cfg.vocab_size, cfg.d_model, dtype=cfg.dtype, param_dtype=cfg.param_dtype, rngs=rngs
        )
        self.pos_embed = (
            nnx.Embed(
                cfg.max_len, cfg.d_model, dtype=cfg.dtype, param_dtype=cfg.param_dtype, rngs=rngs
            )
            if cfg.position == "learned"
            else None
        )
        self.blocks = nnx.List([DecoderBlock(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
        self.final_norm = make_norm(
            cfg.norm,
            cfg.d_model,
            cfg.norm_eps,
            use_bias=cfg.use_bias,
            param_dtype=cfg.param_dtype,
            rngs=rngs,
        )
        self.lm_head = (
            None
            if cfg.tie_embeddings
            else nnx.Linear(
                cfg.d_model,
                cfg.vocab_size,
                use_bias=False,
                dtype=cfg.dtype,
                param_dtype=cfg.param_dtype,
                rngs=rngs,
            )
        )

    # ---------------------------------------------------------------------------------------
    def _embed(self, tokens: jax.Array, positions: jax.Array) -> jax.Array:
        x = self.embed(tokens)
        if self.pos_embed is not None:
            x = x + self.pos_embed(positions)
        return x

    def _head(self, x: jax.Array) -> jax.Array:
        x = self.final_norm(x)
        logits = self.embed.attend(x) if self.lm_head is None else self.lm_head(x)
        return logits.astype(jnp.float32)

    def _check_tokens(self, tokens: jax.Array) -> None:
        if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise ValueError(f"tokens: expected int (batch, seq), got {tokens.dtype}{tokens.shape}")

    def __call__(
        self,
        tokens: Int[Array, "batch seq"],
        *,
        attention_mask: Bool[Array, "batch seq"] | None = None,
        positions: Int[Array, "batch seq"] | None = None,
    ) -> Float[Array, "batch seq vocab"]:
        """Float32 logits of every position (causal); ``attention_mask`` marks real tokens."""
        self._check_tokens(tokens)
        b, t = tokens.shape
        if t > self.config.max_len:
            raise ValueError(f"tokens: sequence length {t} exceeds max_len {self.config.max_len}")
        if attention_mask is None:
            attention_mask = jnp.ones((b, t), bool)
        if positions is None:
            positions = _positions_from_mask(attention_mask)
        causal = jnp.tril(jnp.ones((t, t), bool))
        mask = causal[None, None] & attention_mask[:, None, None, :]
        x = self._embed(tokens, positions)
        for block in self.blocks:
            x, _ = block(x, mask=mask, positions=positions)
        return self._head(x)

    # ---------------------------------------------------------------------------------------
    def init_cache(self, batch_size: int, cache_len: int, dtype: Any = None) -> KVCache:
        """An empty cache with ``cache_len`` slots (prompt length + tokens to generate)."""
        cfg = self.config
        if cache_len > cfg.max_len and cfg.position == "learned":
            raise ValueError(
                f"cache_len {cache_len} exceeds max_len {cfg.max_len} of a model "
                "with learned positions"
            )
        dtype = dtype or cfg.dtype or cfg.param_dtype
        shape = (batch_size, cache_len, cfg.num_heads, cfg.resolved_head_dim)
        zeros = tuple(jnp.zeros(shape, dtype) for _ in range(cfg.num_layers))
        return KVCache(
            k=zeros,
            v=zeros,
            valid=jnp.zeros((batch_size, cache_len), bool),
            positions=jnp.zeros((batch_size,), jnp.int32),
            index=jnp.zeros((), jnp.int32),
        )

    def _cached_forward(
        self, tokens: jax.Array, positions: jax.Array, valid: jax.Array, cache: KVCache
    ) -> tuple[jax.Array, KVCache]:
        t = tokens.shape[1]
        s = valid.shape[1]
        slot = jnp.arange(s)
        query_slot = cache.index + jnp.arange(t)
        # key slot j is visible to the query written at slot i iff j <= i and j holds a token
        mask = (slot[None, :] <= query_slot[:, None])[None, None] & valid[:, None, None, :]
        x = self._embed(tokens, positions)
        ks, vs = [], []
        for i, block in enumerate(self.blocks):
            x, (k, v) = block(
                x,
                mask=mask,
                positions=positions,
                cache=(cache.k[i], cache.v[i]),
                cache_index=cache.index,
            )
            ks.append(k)
            vs.append(v)
        new = KVCache(
            k=tuple(ks),
            v=tuple(vs),
            valid=valid,
            positions=positions[:, -1] + 1,
            index=cache.index + t,
        )
        return self._head(x), new

    def prefill(
        self,
        tokens: Int[Array, "batch prompt"],
        cache: KVCache,
        *,
        attention_mask: Bool[Array, "batch prompt"] | None = None,
    ) -> tuple[Float[Array, "batch prompt vocab"], KVCache]:
        """Runs the prompt through the model, filling the first ``prompt`` slots of ``cache``.

        ``attention_mask`` (left padding) marks real prompt tokens.
        """
        self._check_tokens(tokens)
        if attention_mask is None:
            attention_mask = jnp.ones(tokens.shape, bool)
        positions = _positions_from_mask(attention_mask)
        valid = jax.lax.dynamic_update_slice_in_dim(
            cache.valid, attention_mask, cache.index, axis=1
        )
        logits, cache = self._cached_forward(tokens, positions, valid, cache)
        # the next position counts real tokens only (left padding has no position)
        return logits, cache._replace(positions=jnp.sum(attention_mask, axis=1).astype(jnp.int32))

    def extend(
        self, tokens: Int[Array, "batch new"], cache: KVCache
    ) -> tuple[Float[Array, "batch new vocab"], KVCache]:
        """Appends ``tokens`` (all real) after the cache's contents in one forward pass; each
        row's positions continue from its cache. ``decode_step`` is the one-token case; scoring
        a continuation after a prefilled prompt (teacher forcing from a shared cache) is another.
        """
        self._check_tokens(tokens)
        valid = jax.lax.dynamic_update_slice_in_dim(
            cache.valid, jnp.ones(tokens.shape, bool), cache.index, axis=1
        )
        positions = cache.positions[:, None] + jnp.arange(tokens.shape[1], dtype=jnp.int32)
        return self._cached_forward(tokens, positions, valid, cache)

    def decode_step(
        self, token: Int[Array, " batch"], cache: KVCache
    ) -> tuple[Float[Array, "batch vocab"], KVCache]:
        """Appends one token per row to ``cache``; returns the next-token logits."""
        valid = jax.lax.dynamic_update_slice_in_dim(
            cache.valid, jnp.ones((token.shape[0], 1), bool), cache.index, axis=1
        )
        logits, cache = self._cached_forward(token[:, None], cache.positions[:, None], valid, cache)
        return logits[:, 0], cache


def _positions_from_mask(mask: jax.Array) -> jax.Array:
    """Position ids counting only real tokens: ``[0,0,1,2]`` for mask ``[F,T,T,T]``."""
    return jnp.maximum(jnp.cumsum(mask.astype(jnp.int32), axis=-1) - 1, 0)


# ============================================================================================
# Bidirectional encoder (BERT, ViT)
# ============================================================================================
@dataclasses.dataclass(frozen=True, kw_only=True)
class EncoderConfig:
    """Architecture of a :class:`TransformerEncoder`.

    :meth:`bert` gives BERT's layout (post-LN LayerNorm with bias, exact GELU, learned absolute
    positions, token-type embeddings, LayerNorm on the embeddings); :meth:`vit` a pre-LN ViT with a
    patch embedding and a class token.

    Attributes:
      vocab_size: token vocabulary (None for image-only encoders).
      d_model, num_layers, num_heads, head_dim, d_ff, max_len: as in :class:`LMConfig`.
      type_vocab_size: token-type (segment) embeddings; 0 for none.
      norm_placement: ``"post"`` (BERT: ``norm(x + f(x))``) or ``"pre"`` (``x + f(norm(x))`` and a
        final norm).
      norm_eps: LayerNorm epsilon.
      activation: MLP activation.
      use_bias: biases in projections and LayerNorm.
      embedding_norm: LayerNorm after summing the embeddings (BERT).
      patch_size, image_size, num_channels: ViT patch embedding (``patch_size`` None: tokens only).
      cls_token: prepend a learned class token to the patches.
      position_embedding: add learned absolute position embeddings (LION's ViTs run without).
      pooler: BERT's ``tanh(W h_[CLS] + b)`` pooler.
      dtype, param_dtype: computation and parameter dtypes.
    """

    vocab_size: int | None = None
    d_model: int = 256
    num_layers: int = 4
    num_heads: int = 4
    head_dim: int | None = None
    d_ff: int | None = None
    max_len: int = 512
    type_vocab_size: int = 0
    norm_placement: Literal["post", "pre"] = "pre"
    norm_eps: float = 1e-6
    activation: Activation = "gelu"
    use_bias: bool = True
    embedding_norm: bool = False
    patch_size: int | None = None
    image_size: int | None = None
    num_channels: int = 3
    cls_token: bool = False
    position_embedding: bool = True
    pooler: bool = False
    dtype: str | None = None
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        _check_common(self)
        if self.vocab_size is None and self.patch_size is None:
            raise ValueError("an encoder needs a vocab_size (tokens) or a patch_size (images)")
        if self.patch_size is not None:
            if self.image_size is None or self.image_size % self.patch_size:
                raise ValueError(
                    f"image_size ({self.image_size}) must be a multiple of "
                    f"patch_size ({self.patch_size})"
                )
            if self.num_patches + int(self.cls_token) > self.max_len:
                raise ValueError(f"{self.num_patches} patches (+cls) exceed max_len {self.max_len}")

    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim or self.d_model // self.num_heads

    @property
    def resolved_d_ff(self) -> int:
        return self.d_ff or 4 * self.d_model

    @property
    def num_patches(self) -> int:
        if self.patch_size is None or self.image_size is None:
            return 0
        return (self.image_size // self.patch_size) ** 2

    @classmethod
    def bert(
        cls,
        *,
        vocab_size: int = 30522,
        d_model: int = 768,
        num_layers: int = 12,
        num_heads: int = 12,
        d_ff: int | None = 3072,
        max_len: int = 512,
        type_vocab_size: int = 2,
        norm_eps: float = 1e-12,
        pooler: bool = True,
        activation: Activation = "gelu",
        **kw: Any,
    ) -> "EncoderConfig":
        """BERT's architecture (defaults: BERT-base)."""
        return cls(
            vocab_size=vocab_size,
            d_model=d_model,
            num_layers=num_layers,
            num_heads=num_heads,
            d_ff=d_ff,
            max_len=max_len,
            type_vocab_size=type_vocab_size,
            norm_placement="post",
            norm_eps=norm_eps,
            activation=activation,
            use_bias=True,
            embedding_norm=True,
            pooler=pooler,
            **kw,
        )

    @classmethod
    def vit(
        cls,
        *,
        image_size: int = 224,
        patch_size: int = 16,
        num_channels: int = 3,
        d_model: int = 768,
        num_layers: int = 12,
        num_heads: int = 12,
        d_ff: int | None = 3072,
        **kw: Any,
    ) -> "EncoderConfig":
        """A pre-LN Vision Transformer (defaults: ViT-B/16)."""
        n = (image_size // patch_size) ** 2 + 1
        return cls(
            vocab_size=None,
            d_model=d_model,
            num_layers=num_layers,
            num_heads=num_heads,
            d_ff=d_ff,
            max_len=n,
            norm_placement="pre",
            norm_eps=1e-6,
            activation="gelu",
            use_bias=True,
            patch_size=patch_size,
            image_size=image_size,
            num_channels=num_channels,
            cls_token=True,
            **kw,
        )


class EncoderBlock(nnx.Module):
    """Bidirectional block, post-LN (BERT) or pre-LN (ViT)."""

    def __init__(
        self,
        cfg: EncoderConfig,
        *,
        attention_fn: AttentionFn,
        attention_module: AttentionModuleFactory | None = None,
        rngs: nnx.Rngs,
    ):
        kw = dict(dtype=cfg.dtype, param_dtype=cfg.param_dtype, rngs=rngs)
        if attention_module is not None:
            self.attn = attention_module(rngs)
        else:
            self.attn = SelfAttention(
                cfg.d_model,
                cfg.num_heads,
                cfg.resolved_head_dim,
                use_bias=cfg.use_bias,
                attention_fn=attention_fn,
                **kw,
            )
        self.attn_norm = make_norm(
            "layer",
            cfg.d_model,
            cfg.norm_eps,
            use_bias=cfg.use_bias,
            param_dtype=cfg.param_dtype,
            rngs=rngs,
        )
        self.mlp = FeedForward(
            cfg.d_model,
            cfg.resolved_d_ff,
            activation=cfg.activation,
            gated=False,
            use_bias=cfg.use_bias,
            **kw,
        )
        self.mlp_norm = make_norm(
            "layer",
            cfg.d_model,
            cfg.norm_eps,
            use_bias=cfg.use_bias,
            param_dtype=cfg.param_dtype,
            rngs=rngs,
        )
        self.post = cfg.norm_placement == "post"

    def _attend(self, x: jax.Array, mask: jax.Array | None) -> jax.Array:
        out = self.attn(x, mask=mask)
        return out[0] if isinstance(out, tuple) else out

    def __call__(self, x: jax.Array, *, mask: jax.Array | None) -> jax.Array:
        if self.post:
            x = self.attn_norm(x + self._attend(x, mask))
            return self.mlp_norm(x + self.mlp(x))
        x = x + self._attend(self.attn_norm(x), mask)
        return x + self.mlp(self.mlp_norm(x))


class TransformerEncoder(nnx.Module):
    """Bidirectional Transformer encoder over tokens or image patches, with pluggable attention.

    Args:
      config: the architecture.
      attention_fn: any function with the signature of ``jax.nn.dot_product_attention`` on
        (batch, seq, heads, head_dim) arrays, called as ``attention_fn(q, k, v, mask=mask)`` with
        ``mask`` of shape (batch, 1, 1, seq) or None. Softmax attention by default.
      attention_module: alternatively, a factory ``rngs -> nnx.Module`` building each layer's
        whole attention sub-layer (projections included), called as ``module(x, mask=mask)`` on
        (batch, seq, d_model) and returning (batch, seq, d_model). Attention with its own
        parameters (e.g. LION's learned decays, :class:`lions_jax.lion.LionAttention`) plugs in
        here.
      rngs: initialisation keys.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> enc = TransformerEncoder(EncoderConfig.bert(vocab_size=50, d_model=16, num_layers=1,
        ...                          num_heads=2, d_ff=32), rngs=nnx.Rngs(0))
        >>> enc(jnp.ones((2, 7), jnp.int32)).shape
        (2, 7, 16)
    """

    def __init__(
        self,
        config: EncoderConfig,
        *,
        attention_fn: AttentionFn = jax.nn.dot_product_attention,
        attention_module: AttentionModuleFactory | None = None,
        rngs: nnx.Rngs,
    ):
        cfg = config
        self.config = cfg
        kw = dict(dtype=cfg.dtype, param_dtype=cfg.param_dtype, rngs=rngs)
        self.embed = nnx.Embed(cfg.vocab_size, cfg.d_model, **kw) if cfg.vocab_size else None
        self.patch_embed = (
            nnx.Conv(
                cfg.num_channels,
                cfg.d_model,
                (cfg.patch_size, cfg.patch_size),
                strides=(cfg.patch_size, cfg.patch_size),
                padding="VALID",
                **kw,
            )
            if cfg.patch_size
            else None
        )
        self.cls = (
            nnx.Param(jnp.zeros((1, 1, cfg.d_model), cfg.param_dtype)) if cfg.cls_token else None
        )
        self.pos_embed = (
            nnx.Embed(cfg.max_len, cfg.d_model, **kw) if cfg.position_embedding else None
        )
        self.type_embed = (
            nnx.Embed(cfg.type_vocab_size, cfg.d_model, **kw) if cfg.type_vocab_size else None
        )
        self.embed_norm = (
            make_norm(
                "layer",
                cfg.d_model,
                cfg.norm_eps,
                use_bias=cfg.use_bias,
                param_dtype=cfg.param_dtype,
                rngs=rngs,
            )
            if cfg.embedding_norm
            else None
        )
        self.blocks = nnx.List(
            [
                EncoderBlock(
                    cfg, attention_fn=attention_fn, attention_module=attention_module, rngs=rngs
                )
                for _ in range(cfg.num_layers)
            ]
        )
        self.final_norm = (
            make_norm(
                "layer",
                cfg.d_model,
                cfg.norm_eps,
                use_bias=cfg.use_bias,
                param_dtype=cfg.param_dtype,
                rngs=rngs,
            )
            if cfg.norm_placement == "pre"
            else None
        )
        self.pooler = nnx.Linear(cfg.d_model, cfg.d_model, **kw) if cfg.pooler else None

    def embed_inputs(
        self,
        input_ids: jax.Array | None,
        images: jax.Array | None,
        token_type_ids: jax.Array | None,
    ) -> jax.Array:
        cfg = self.config
        if (input_ids is None) == (images is None):
            raise ValueError("pass exactly one of input_ids or images")
        if input_ids is not None:
            if self.embed is None:
                raise ValueError("input_ids: this encoder has no token embedding (vocab_size=None)")
            if input_ids.ndim != 2 or not jnp.issubdtype(input_ids.dtype, jnp.integer):
                raise ValueError(
                    f"input_ids: expected int (batch, seq), got {input_ids.dtype}{input_ids.shape}"
                )
            x = self.embed(input_ids)
        else:
            if self.patch_embed is None:
                raise ValueError("images: this encoder has no patch embedding (patch_size=None)")
            expected = (cfg.image_size, cfg.image_size, cfg.num_channels)
            if images.ndim != 4 or images.shape[1:] != expected:
                raise ValueError(
                    f"images: expected (batch, {expected[0]}, {expected[1]}, "
                    f"{expected[2]}) NHWC, got {images.shape}"
                )
            p = self.patch_embed(images)
            x = p.reshape(p.shape[0], -1, p.shape[-1])
            if self.cls is not None:
                cls = jnp.broadcast_to(self.cls[...].astype(x.dtype), (x.shape[0], 1, x.shape[-1]))
                x = jnp.concatenate([cls, x], axis=1)
        t = x.shape[1]
        if t > cfg.max_len:
            raise ValueError(f"sequence length {t} exceeds max_len {cfg.max_len}")
        if self.pos_embed is not None:
            x = x + self.pos_embed(jnp.arange(t))[None]
        if self.type_embed is not None:
            types = jnp.zeros(x.shape[:2], jnp.int32) if token_type_ids is None else token_type_ids
            x = x + self.type_embed(types)
        if self.embed_norm is not None:
            x = self.embed_norm(x)
        return x

    def __call__(
        self,
        input_ids: Int[Array, "batch seq"] | None = None,
        *,
        images: Float[Array, "batch h w c"] | None = None,
        attention_mask: Bool[Array, "batch seq"] | Int[Array, "batch seq"] | None = None,
        token_type_ids: Int[Array, "batch seq"] | None = None,
    ) -> Float[Array, "batch tokens d"]:
        """Final hidden states (batch, tokens, d_model); ``attention_mask`` marks real tokens."""
        x = self.embed_inputs(input_ids, images, token_type_ids)
        mask = None
        if attention_mask is not None:
            mask = attention_mask.astype(bool)[:, None, None, :]
        for block in self.blocks:
            x = block(x, mask=mask)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x

    def pool(self, hidden: Float[Array, "batch tokens d"]) -> Float[Array, "batch d"]:
        """BERT's pooler: ``tanh(W h_0 + b)`` on the first ([CLS]) token."""
        if self.pooler is None:
            raise ValueError("this encoder has no pooler (config.pooler=False)")
        return jnp.tanh(self.pooler(hidden[:, 0]))


def mean_pool(
    hidden: Float[Array, "batch seq d"],
    attention_mask: Shaped[Array, "batch seq"] | None = None,
) -> Float[Array, "batch d"]:
    r"""Masked mean over tokens, :math:`\sum_t m_t h_t / \max(\sum_t m_t, 10^{-9})`.

    The sentence-embedding pooling of sentence-transformers (``pooling_mode_mean_tokens``).
    """
    if attention_mask is None:
        return hidden.mean(axis=1)
    m = attention_mask.astype(hidden.dtype)[..., None]
    return (hidden * m).sum(axis=1) / jnp.maximum(m.sum(axis=1), 1e-9)
