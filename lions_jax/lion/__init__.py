"""LION: bidirectional linear attention (arXiv 2502.16249) — parallel, recurrent and chunked forms.

Official code: https://github.com/LIONS-EPFL/LION
"""

from lions_jax.lion.core import (
    FORMS,
    column_snake_order,
    elu_feature_map,
    invert_order,
    lion_attention,
    lion_attention_multiorder,
    lion_mask,
    silu_feature_map,
    snake_order,
    with_cls_order,
)
from lions_jax.lion.modules import LionAttention, lion_mlm_encoder, lion_vit, natural_orders

__all__ = [
    "FORMS",
    "LionAttention",
    "column_snake_order",
    "elu_feature_map",
    "invert_order",
    "lion_attention",
    "lion_attention_multiorder",
    "lion_mask",
    "lion_mlm_encoder",
    "lion_vit",
    "natural_orders",
    "silu_feature_map",
    "snake_order",
    "with_cls_order",
]
