"""Flax NNX wrappers for LION: an attention layer, a LION ViT and a LION masked-LM encoder.

The layers are thin: projections and decay parameters live here, the math in
:mod:`lions_jax.lion.core`. Everything plugs into :class:`lions_jax.models.TransformerEncoder`
through its ``attention_module`` hook, so LION models share the embedding, MLP, norm, checkpoint
and loading code of the softmax baselines they are compared with.
"""

from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Shaped

from lions_jax.lion.core import (
    Form,
    column_snake_order,
    elu_feature_map,
    lion_attention,
    lion_attention_multiorder,
    silu_feature_map,
    snake_order,
    with_cls_order,
)
from lions_jax.models.transformer import EncoderConfig, TransformerEncoder

__all__ = ["LionAttention", "lion_mlm_encoder", "lion_vit", "natural_orders"]

Variant = Literal["lit", "d", "s"]
FeatureMap = Literal["elu", "silu", "identity"]

_FEATURE_MAPS = {
    "elu": elu_feature_map,
    "silu": silu_feature_map,
    "identity": lambda x: x,
}


class LionAttention(nnx.Module):
    r"""LION self-attention sub-layer: projections, feature map, decays, LION, output projection.

    Decays by ``variant``:

    * ``"lit"``: :math:`\lambda \equiv 1` (bidirectional linear attention of Katharopoulos et al.);
    * ``"d"``: one learned decay per head, :math:`\lambda_h = \sigma(a_h)`, :math:`a_h \sim N(0,1)`;
    * ``"s"``: input-dependent :math:`\lambda_{t,h} = \sigma(-(w_h \cdot x_t + b_h))`
      (truncated-normal std 0.02 weights, zero bias, so :math:`\lambda \approx 0.5` at init),
      computed as ``log_sigmoid`` in float32.

    Args:
      d_model: input/output width.
      num_heads: heads.
      variant: ``"lit"``, ``"d"`` or ``"s"``.
      head_dim: per-head width (default ``d_model // num_heads``).
      feature_map: ``"elu"`` (elu+1), ``"silu"`` ((silu+0.5), L2-normalised) or ``"identity"``;
        default: elu for LIT and silu for D/S when ``normalize``, identity otherwise (the
        official vision and MLM code respectively).
      normalize: row-normalised (vision) or scaled by :math:`1/\sqrt{d}` (MLM) attention.
      form: ``"parallel"``, ``"recurrent"`` or ``"chunked"`` (all compute the same function).
      chunk_size: chunk length of the chunked form.
      eps: normaliser epsilon.
      orders: scan orders for LION-D♮/S♮ (e.g. :func:`natural_orders`); each order gets its own
        decay parameters and the masks are averaged. Not for LIT (its mask ignores order).
      first_token_decay_one: force :math:`\lambda_0 = 1` (the class token of the vision LION-S).
      stop_gradient_decay: no gradient into the S gate (parity with the official vision code,
        which detaches it by wrapping it in ``torch.tensor``; off by default).
      layer_norm_after: LayerNorm on the attention output before the output projection (the
        official MLM LION-LIT).
      use_bias: biases on the projections.
      dtype, param_dtype: computation and parameter dtypes.
      rngs: initialisation keys.

    Called as ``layer(x, mask=None)`` with ``x`` (batch, seq, d_model) and an optional key mask,
    (batch, seq) or (batch, 1, 1, seq) as passed by ``TransformerEncoder``; masked keys are
    removed from numerator and normaliser.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        *,
        variant: Variant = "s",
        head_dim: int | None = None,
        feature_map: FeatureMap | None = None,
        normalize: bool = True,
        form: Form = "parallel",
        chunk_size: int = 64,
        eps: float = 1e-6,
        orders: Sequence[Sequence[int] | np.ndarray] | None = None,
        first_token_decay_one: bool = False,
        stop_gradient_decay: bool = False,
        layer_norm_after: bool = False,
        use_bias: bool = True,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if variant not in ("lit", "d", "s"):
            raise ValueError(f"variant: expected 'lit', 'd' or 's', got {variant!r}")
        if head_dim is None:
            if d_model % num_heads:
                raise ValueError(
                    f"d_model ({d_model}) must be divisible by num_heads "
                    f"({num_heads}) unless head_dim is given"
                )
            head_dim = d_model // num_heads
        if feature_map is None:
            feature_map = ("elu" if variant == "lit" else "silu") if normalize else "identity"
        if feature_map not in _FEATURE_MAPS:
            raise ValueError(
                f"feature_map: expected one of {sorted(_FEATURE_MAPS)}, got {feature_map!r}"
            )
        if orders is not None and variant == "lit":
            raise ValueError("orders: LION-LIT's mask is all ones; scan orders change nothing")
        inner = num_heads * head_dim
        kw = dict(use_bias=use_bias, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.query = nnx.Linear(d_model, inner, **kw)
        self.key = nnx.Linear(d_model, inner, **kw)
        self.value = nnx.Linear(d_model, inner, **kw)
        self.out = nnx.Linear(inner, d_model, **kw)
        self.orders = None if orders is None else tuple(tuple(int(i) for i in o) for o in orders)
        num_orders = 1 if orders is None else len(orders)
        if variant == "d":
            self.decay_logit = nnx.Param(
                jax.random.normal(rngs.params(), (num_orders, num_heads), param_dtype)
            )
        elif variant == "s":
            self.decay_proj = nnx.Linear(
                d_model,
                num_orders * num_heads,
                use_bias=True,
                param_dtype=param_dtype,
                kernel_init=nnx.initializers.truncated_normal(0.02),
                bias_init=nnx.initializers.zeros_init(),
                rngs=rngs,
            )
        self.out_norm = (
            nnx.LayerNorm(inner, param_dtype=param_dtype, rngs=rngs) if layer_norm_after else None
        )
        self.variant = variant
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.feature_map = feature_map
        self.normalize = normalize
        self.form = form
        self.chunk_size = chunk_size
        self.eps = eps
        self.first_token_decay_one = first_token_decay_one
        self.stop_gradient_decay = stop_gradient_decay

    def log_decays(self, x: Float[Array, "batch seq d"]) -> list[jax.Array | None]:
        """One log-decay array per scan order: None (LIT), (heads,) (D) or (batch, seq, heads) (S)."""
        num_orders = 1 if self.orders is None else len(self.orders)
        if self.variant == "lit":
            return [None]
        if self.variant == "d":
            logits = self.decay_logit[...].astype(jnp.float32)
            return [jax.nn.log_sigmoid(logits[r]) for r in range(num_orders)]
        b, n, _ = x.shape
        z = self.decay_proj(x).astype(jnp.float32).reshape(b, n, num_orders, self.num_heads)
        log_lam = jax.nn.log_sigmoid(-z)  # λ = 1 − σ(z), computed stably
        if self.first_token_decay_one:
            log_lam = log_lam.at[:, 0].set(0.0)
        if self.stop_gradient_decay:
            log_lam = jax.lax.stop_gradient(log_lam)
        return [log_lam[:, :, r] for r in range(num_orders)]

    def __call__(
        self,
        x: Float[Array, "batch seq d"],
        *,
        mask: Shaped[Array, "batch seq"] | Shaped[Array, "batch 1 1 seq"] | None = None,
    ) -> Float[Array, "batch seq d"]:
        b, n, _ = x.shape
        shape = (b, n, self.num_heads, self.head_dim)
        phi = _FEATURE_MAPS[self.feature_map]
        q = phi(self.query(x).reshape(shape))
        k = phi(self.key(x).reshape(shape))
        v = self.value(x).reshape(shape)
        if mask is not None:
            keep = mask.reshape(b, n).astype(k.dtype)
            k = k * keep[:, :, None, None]
        decays = self.log_decays(x)
        kw = dict(
            form=self.form, chunk_size=self.chunk_size, normalize=self.normalize, eps=self.eps
        )
        if self.orders is None:
            y = lion_attention(q, k, v, decays[0], **kw)
        else:
            y = lion_attention_multiorder(
                q, k, v, decays, [np.asarray(o) for o in self.orders], **kw
            )
        y = y.reshape(b, n, self.num_heads * self.head_dim)
        if self.out_norm is not None:
            y = self.out_norm(y)
        return self.out(y)


def natural_orders(grid_height: int, grid_width: int, *, cls_token: bool) -> list[np.ndarray]:
    """The two ♮ scan orders of a patch grid: row snake and column snake (class token first)."""
    orders = [snake_order(grid_height, grid_width), column_snake_order(grid_height, grid_width)]
    return [with_cls_order(o) for o in orders] if cls_token else orders


def lion_vit(
    config: EncoderConfig,
    *,
    variant: Variant,
    natural: bool = False,
    form: Form = "parallel",
    chunk_size: int = 64,
    stop_gradient_decay: bool = False,
    rngs: nnx.Rngs,
) -> TransformerEncoder:
    """A pre-LN Vision Transformer whose attention is LION (LION-LIT, -D, -S, -D♮, -S♮).

    ``config`` must have a patch embedding (``EncoderConfig.vit(...)``); as in the official
    models, LION ViTs usually run with ``position_embedding=False`` and mean pooling (pool the
    output with :func:`lions_jax.models.mean_pool`). With ``natural=True`` the two snake orders
    of the patch grid are used (class token kept first). For LION-S with a class token, the class
    token's decay is fixed to 1 as in the official code.
    """
    if config.patch_size is None or config.image_size is None:
        raise ValueError("config: lion_vit needs a patch embedding (patch_size and image_size)")
    orders = None
    if natural:
        g = config.image_size // config.patch_size
        orders = natural_orders(g, g, cls_token=config.cls_token)

    def make(rngs: nnx.Rngs) -> LionAttention:
        return LionAttention(
            config.d_model,
            config.num_heads,
            variant=variant,
            head_dim=config.head_dim,
            form=form,
            chunk_size=chunk_size,
            orders=orders,
            first_token_decay_one=config.cls_token and variant == "s",
            stop_gradient_decay=stop_gradient_decay,
            use_bias=config.use_bias,
            dtype=config.dtype,
            param_dtype=config.param_dtype,
            rngs=rngs,
        )

    return TransformerEncoder(config, attention_module=make, rngs=rngs)


def lion_mlm_encoder(
    config: EncoderConfig,
    *,
    variant: Variant,
    form: Form = "parallel",
    chunk_size: int = 64,
    rngs: nnx.Rngs,
) -> TransformerEncoder:
    r"""A bidirectional token encoder with LION attention as in the official MLM models.

    No feature map, raw :math:`q\cdot k` scaled by :math:`1/\sqrt{d}`, no row normalisation, and
    a LayerNorm after the attention for LION-LIT (``layer_norm_after``).
    """
    if config.vocab_size is None:
        raise ValueError("config: lion_mlm_encoder needs a vocab_size")

    def make(rngs: nnx.Rngs) -> LionAttention:
        return LionAttention(
            config.d_model,
            config.num_heads,
            variant=variant,
            head_dim=config.head_dim,
            normalize=False,
            feature_map="identity",
            layer_norm_after=variant == "lit",
            form=form,
            chunk_size=chunk_size,
            use_bias=config.use_bias,
            dtype=config.dtype,
            param_dtype=config.param_dtype,
            rngs=rngs,
        )

    return TransformerEncoder(config, attention_module=make, rngs=rngs)
