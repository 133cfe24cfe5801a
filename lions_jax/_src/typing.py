"""Type aliases used across lions_jax (jaxtyping style, checked in tests by beartype)."""

from typing import Any, TypeAlias

import jax
import numpy as np
from jaxtyping import PRNGKeyArray, PyTree

Array: TypeAlias = jax.Array
# What public array functions accept: JAX arrays (incl. tracers) and NumPy arrays.
AnyArray: TypeAlias = jax.Array | np.ndarray
ArrayLike: TypeAlias = jax.typing.ArrayLike
DTypeLike: TypeAlias = jax.typing.DTypeLike
PRNGKey: TypeAlias = PRNGKeyArray
Params: TypeAlias = PyTree[Any]
Metrics: TypeAlias = dict[str, Array]

__all__ = ["AnyArray", "Array", "ArrayLike", "DTypeLike", "Metrics", "PRNGKey", "Params", "PyTree"]
