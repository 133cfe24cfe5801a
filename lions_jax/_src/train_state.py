"""A generic training-state pytree: parameters, optimizer state, PRNG key and step counter."""

import dataclasses
from typing import Any

import jax


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything a training run needs to continue, as one pytree of arrays.

    Checkpointing this (see :mod:`lions_jax._src.checkpoint`) is enough to resume a run exactly:
    the next step's randomness is derived from ``key`` and ``step`` (``fold_in``), never from
    host-side state.

    Attributes:
      params: model parameters (e.g. an ``nnx.State``).
      opt_state: optax optimizer state.
      key: a typed PRNG key owned by this run.
      step: int32 scalar, number of optimizer steps taken.
    """

    # Fields are typed ``Any``: JAX rebuilds pytree nodes with non-array leaves (tracers,
    # ShapeDtypeStructs, shardings, None), which runtime type checkers would reject.
    params: Any
    opt_state: Any
    key: Any
    step: Any

    def replace(self, **changes: Any) -> "TrainState":
        return dataclasses.replace(self, **changes)
