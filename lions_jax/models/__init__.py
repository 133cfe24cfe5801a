"""Shared Flax NNX models, used functionally (``nnx.split`` / ``nnx.merge``)."""

from lions_jax.models.mlp import MLP

__all__ = [
    "MLP",
]
