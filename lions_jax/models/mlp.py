"""A multi-layer perceptron as a thin Flax NNX module."""

import itertools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax.typing import DTypeLike
from jaxtyping import Array, Float

__all__ = ["MLP"]


class MLP(nnx.Module):
    r"""Fully connected network :math:`x \mapsto W_L\,\sigma(\cdots\sigma(W_1 x + b_1)\cdots) + b_L`.

    Kernels use Flax's ``(in, out)`` layout. Used functionally in lions_jax: build it, then
    ``graphdef, params = nnx.split(mlp)`` and call ``nnx.merge(graphdef, params)(x)`` inside jitted
    code; an ensemble is ``jax.vmap`` over keys of a constructor that returns ``nnx.split(...)[1]``.

    Args:
      in_features: input width.
      hidden: widths of the hidden layers (may be empty: a linear model).
      out_features: output width.
      activation: elementwise non-linearity between layers.
      use_bias: whether layers have biases.
      param_dtype: parameter dtype.
      dtype: computation dtype (``None``: follow the inputs and parameters).
      rngs: ``nnx.Rngs`` for initialisation.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> mlp = MLP(4, (8, 8), 3, rngs=nnx.Rngs(0))
        >>> mlp(jnp.ones((2, 4))).shape
        (2, 3)
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        *,
        activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
        use_bias: bool = True,
        param_dtype: DTypeLike = jnp.float32,
        dtype: DTypeLike | None = None,
        rngs: nnx.Rngs,
    ):
        widths = [int(in_features), *(int(h) for h in hidden), int(out_features)]
        if any(w < 1 for w in widths):
            raise ValueError(
                f"MLP widths must be positive, got in={in_features}, "
                f"hidden={tuple(hidden)}, out={out_features}"
            )
        self.layers = nnx.List(
            [
                nnx.Linear(a, b, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
                for a, b in itertools.pairwise(widths)
            ]
        )
        self.activation = activation
        self.in_features = widths[0]

    def __call__(self, x: Float[Array, "*batch d_in"]) -> Float[Array, "*batch d_out"]:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"x: expected last axis {self.in_features}, got shape {x.shape}")
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)
