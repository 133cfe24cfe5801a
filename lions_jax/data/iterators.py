"""Deterministic minibatching: a host-side numpy iterator and jittable in-graph samplers.

* :func:`batch_iterator` runs on the host over numpy arrays (any pytree: tuple, dict, NamedTuple,
  ...); epoch ``e`` is shuffled with ``np.random.default_rng([seed, e])``, so a run restarted at
  epoch ``e`` sees exactly the same batches.
* :func:`sample_batch` and :func:`epoch_permutation` are pure JAX functions taking ``key`` first,
  for use inside ``jit``/``lax.scan`` and ``vmap`` over keys.
"""

import math
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Int, PRNGKeyArray

__all__ = [
    "batch_iterator",
    "epoch_permutation",
    "num_batches",
    "sample_batch",
]


def _leading_dim(arrays: Any, what: str = "arrays") -> int:
    leaves, treedef = jax.tree.flatten(arrays)
    if not leaves:
        raise ValueError(f"{what} must contain at least one array; got {treedef}")
    dims = []
    for leaf in leaves:
        shape = np.shape(leaf)
        if len(shape) < 1:
            raise ValueError(f"{what} leaves must have a leading example axis; got a scalar")
        dims.append(shape[0])
    if len(set(dims)) != 1:
        raise ValueError(f"{what} leaves must have equal leading dimensions; got {dims}")
    return int(dims[0])


def num_batches(n: int, batch_size: int, *, drop_last: bool = True) -> int:
    """Number of batches per epoch over ``n`` examples.

    Args:
        n: Number of examples, ``>= 0``.
        batch_size: Batch size, ``>= 1``.
        drop_last: If true, a final partial batch is not counted.

    Returns:
        ``n // batch_size`` if ``drop_last`` else ``ceil(n / batch_size)``.

    Raises:
        ValueError: If ``n < 0`` or ``batch_size < 1``.

    Example:
        >>> num_batches(10, 4), num_batches(10, 4, drop_last=False)
        (2, 3)
    """
    if n < 0:
        raise ValueError(f"n must be >= 0; got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def batch_iterator(
    arrays: Any,
    batch_size: int,
    *,
    seed: int,
    shuffle: bool = True,
    drop_last: bool = True,
    num_epochs: int | None = None,
) -> Iterator[Any]:
    """Iterates over minibatches of a pytree of arrays sharing their leading dimension.

    Arguments are validated when this function is called, not at the first ``next``.

    Args:
        arrays: A pytree (tuple, dict, NamedTuple, nested, or one array) of numpy arrays with
            equal leading dimension ``n >= 1``.
        batch_size: Examples per batch, ``>= 1``; at most ``n`` if ``drop_last``.
        seed: Seed of the shuffling; epoch ``e`` uses
            ``np.random.default_rng([seed, e]).permutation(n)``.
        shuffle: If false, examples come in their stored order every epoch.
        drop_last: If true, each epoch's final partial batch is skipped, so every batch has
            exactly ``batch_size`` examples.
        num_epochs: Number of passes over the data; ``None`` iterates forever.

    Returns:
        An iterator of batches with the same pytree structure as ``arrays``.

    Raises:
        ValueError: If the leading dimensions differ, ``arrays`` is empty, ``batch_size`` is out of
            range, ``seed < 0`` or ``num_epochs < 0``.

    Example:
        >>> import numpy as np
        >>> data = {"x": np.arange(10.0), "y": np.arange(10)}
        >>> batches = list(batch_iterator(data, 4, seed=0, num_epochs=1))
        >>> len(batches), sorted(batches[0]), batches[0]["x"].shape
        (2, ['x', 'y'], (4,))
    """
    n = _leading_dim(arrays)
    if n < 1:
        raise ValueError("arrays must hold at least one example; got leading dimension 0")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if drop_last and batch_size > n:
        raise ValueError(
            f"batch_size must be <= the number of examples ({n}) when drop_last=True; "
            f"got {batch_size}"
        )
    if seed < 0:
        raise ValueError(f"seed must be >= 0; got {seed}")
    if num_epochs is not None and num_epochs < 0:
        raise ValueError(f"num_epochs must be >= 0 or None; got {num_epochs}")
    steps = num_batches(n, batch_size, drop_last=drop_last)

    def generate() -> Iterator[Any]:
        epoch = 0
        while num_epochs is None or epoch < num_epochs:
            if shuffle:
                order = np.random.default_rng([seed, epoch]).permutation(n)
            else:
                order = np.arange(n)
            for step in range(steps):
                idx = order[step * batch_size : (step + 1) * batch_size]
                yield jax.tree.map(lambda a, idx=idx: a[idx], arrays)
            epoch += 1

    return generate()


def epoch_permutation(key: PRNGKeyArray, n: int) -> Int[jax.Array, " n"]:
    """A uniformly random permutation of ``range(n)`` (jittable with ``n`` static).

    Args:
        key: PRNG key.
        n: Number of examples, ``>= 1``.

    Returns:
        An integer array of shape ``(n,)``.

    Raises:
        ValueError: If ``n < 1``.

    Example:
        >>> import jax
        >>> p = epoch_permutation(jax.random.key(0), 5)
        >>> sorted(p.tolist())
        [0, 1, 2, 3, 4]
    """
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    return jax.random.permutation(key, n)


def sample_batch(key: PRNGKeyArray, arrays: Any, batch_size: int, *, replace: bool = True) -> Any:
    """Samples one minibatch in-graph from a pytree of arrays sharing their leading dimension.

    Pure and jittable (``batch_size`` and ``replace`` must be static); with ``key`` first,
    ``jax.vmap(lambda k: sample_batch(k, data, b))(keys)`` draws one batch per key.

    Args:
        key: PRNG key.
        arrays: A pytree of arrays (jax or numpy) with equal leading dimension ``n``.
        batch_size: Examples per batch, ``>= 1`` (and ``<= n`` without replacement).
        replace: If true, indices are drawn uniformly with replacement
            (``jax.random.randint``); otherwise they are the first ``batch_size`` entries of a
            random permutation (distinct indices).

    Returns:
        A pytree like ``arrays`` whose leaves have leading dimension ``batch_size``.

    Raises:
        ValueError: If the leading dimensions differ or ``batch_size`` is out of range.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> data = (jnp.arange(10), jnp.arange(10) * 2)
        >>> x, y = sample_batch(jax.random.key(0), data, 4, replace=False)
        >>> x.shape, bool(jnp.all(y == 2 * x))
        ((4,), True)
    """
    n = _leading_dim(arrays)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if n < 1:
        raise ValueError("arrays must hold at least one example; got leading dimension 0")
    if not replace and batch_size > n:
        raise ValueError(
            f"batch_size must be <= the number of examples ({n}) when replace=False; "
            f"got {batch_size}"
        )
    if replace:
        idx = jax.random.randint(key, (batch_size,), 0, n)
    else:
        idx = jax.random.permutation(key, n)[:batch_size]
    return jax.tree.map(lambda a: jnp.take(jnp.asarray(a), idx, axis=0), arrays)
