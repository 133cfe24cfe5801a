"""Helpers for using NNX modules functionally: build once under ``jit``, then split/merge."""

from collections.abc import Callable
from typing import Any

import jax
from flax import nnx

__all__ = ["init_model"]


def init_model(make_model: Callable[[nnx.Rngs], nnx.Module], key: jax.Array) -> tuple[Any, Any]:
    """``(graphdef, state)`` of ``make_model(nnx.Rngs(key))``, initialised in one jitted call.

    Building an NNX module eagerly runs (and compiles) every initializer op by op; building it
    inside ``jit`` compiles the whole initialisation once. The graphdef comes from an abstract
    build (``nnx.eval_shape``), so no parameters are materialised twice. Because ``key`` is an
    argument, ``jax.vmap(lambda k: init_model(make, k)[1])`` gives a stacked ensemble.

    Example:
        >>> import jax
        >>> from lions_jax.models import MLP
        >>> graphdef, state = init_model(lambda rngs: MLP(3, (8,), 2, rngs=rngs),
        ...                              jax.random.key(0))
        >>> nnx.merge(graphdef, state)(jax.numpy.ones((1, 3))).shape
        (1, 2)
    """
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: make_model(nnx.Rngs(0))))
    state = jax.jit(lambda k: nnx.state(make_model(nnx.Rngs(k))))(key)
    return graphdef, state
