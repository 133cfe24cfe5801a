r"""Observation normalisation by running statistics, as pure functions.

:func:`update_stats` merges a batch into ``(count, mean, M2)`` with Chan et al.'s parallel
update (exact: the result equals the statistics of all data seen, in any batching), and
:func:`normalize` maps :math:`x \mapsto \operatorname{clip}((x - \mu)/\sqrt{\sigma^2 + \epsilon})`.

Example:
    >>> import jax.numpy as jnp
    >>> s = init_stats(2)
    >>> s = update_stats(s, jnp.array([[0.0, 1.0], [2.0, 3.0]]))
    >>> s = update_stats(s, jnp.array([[4.0, 5.0]]))
    >>> s.mean.tolist(), (s.m2 / s.count).tolist()
    ([2.0, 3.0], [2.6666667461395264, 2.6666667461395264])
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = ["RunningStats", "init_stats", "normalize", "update_stats"]


class RunningStats(NamedTuple):
    """Count, mean and sum of squared deviations (``m2``) per feature."""

    count: jax.Array
    mean: jax.Array
    m2: jax.Array


def init_stats(size: int) -> RunningStats:
    """Empty statistics for ``size`` features."""
    zeros = jnp.zeros((size,), jnp.float32)
    return RunningStats(jnp.zeros((), jnp.float32), zeros, zeros)


def update_stats(stats: RunningStats, x: ArrayLike) -> RunningStats:
    """Merges a batch ``x`` of shape ``(..., size)`` into ``stats``."""
    x = jnp.asarray(x)
    if x.shape[-1:] != stats.mean.shape:
        raise ValueError(f"x: expected last axis {stats.mean.shape[0]}, got shape {x.shape}")
    x = x.reshape(-1, x.shape[-1]).astype(stats.mean.dtype)
    n = jnp.asarray(x.shape[0], stats.count.dtype)
    batch_mean = jnp.mean(x, axis=0)
    batch_m2 = jnp.sum((x - batch_mean) ** 2, axis=0)
    total = stats.count + n
    delta = batch_mean - stats.mean
    mean = stats.mean + delta * n / total
    m2 = stats.m2 + batch_m2 + delta**2 * stats.count * n / total
    return RunningStats(total, mean, m2)


def normalize(
    stats: RunningStats, x: jax.Array, *, eps: float = 1e-6, clip: float = 10.0
) -> jax.Array:
    """Standardises ``x`` with ``stats`` and clips to ``[-clip, clip]`` (identity before any data)."""
    var = jnp.where(stats.count > 0, stats.m2 / jnp.maximum(stats.count, 1.0), 1.0)
    return jnp.clip((x - stats.mean) / jnp.sqrt(var + eps), -clip, clip)
