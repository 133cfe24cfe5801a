"""Type aliases used across lions_jax (jaxtyping style, checked in tests by beartype)."""

from typing import Any, TypeAlias

import jax
from jaxtyping import PRNGKeyArray, PyTree

Array: TypeAlias = jax.Array
ArrayLike: TypeAlias = jax.typing.ArrayLike
DTypeLike: TypeAlias = jax.typing.DTypeLike
PRNGKey: TypeAlias = PRNGKeyArray
Params: TypeAlias = PyTree[Any]
Metrics: TypeAlias = dict[str, Array]

__all__ = ["Array", "ArrayLike", "DTypeLike", "Metrics", "PRNGKey", "Params", "PyTree"]
