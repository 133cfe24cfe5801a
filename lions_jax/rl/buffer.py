"""A fixed-capacity replay buffer as a pytree: jittable, vmappable, checkpointable.

The buffer holds any pytree of transitions (each leaf with a leading ``capacity`` axis) in a ring:
:func:`buffer_add` writes a batch at the insert position, wrapping around and overwriting the
oldest entries; :func:`buffer_sample` draws indices uniformly from the filled part, for any
sample shape — ``(members, batch)`` gives every critic pair of an ensemble its own independent
minibatch in one call. Rewards need not be stored: :func:`relabel` recomputes them at sample
time from a reward function (imitation learning relabels with the *current* learned reward).

Example:
    >>> import jax, jax.numpy as jnp
    >>> buf = buffer_init(4, {"obs": jnp.zeros(2)})
    >>> buf = buffer_add(buf, {"obs": jnp.arange(12.0).reshape(6, 2)})  # 6 > 4: wraps
    >>> int(buf.size), int(buf.insert_pos), buf.data["obs"][:, 0].tolist()
    (4, 2, [8.0, 10.0, 4.0, 6.0])
    >>> buffer_sample(jax.random.key(0), buf, (3, 5))["obs"].shape
    (3, 5, 2)
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["ReplayBuffer", "buffer_add", "buffer_init", "buffer_sample", "relabel"]


class ReplayBuffer(NamedTuple):
    """Ring-buffer state.

    Attributes:
      data: pytree of arrays with leading axis ``capacity``.
      insert_pos: next write index, in ``[0, capacity)``.
      size: number of valid entries, ``min(total inserted, capacity)``.
    """

    data: Any
    insert_pos: jax.Array
    size: jax.Array

    @property
    def capacity(self) -> int:
        return int(jax.tree.leaves(self.data)[0].shape[0])


def buffer_init(capacity: int, example: Any) -> ReplayBuffer:
    """An empty buffer for transitions shaped like ``example`` (one transition, no batch axis)."""
    if capacity < 1:
        raise ValueError(f"capacity must be >= 1, got {capacity}")
    if not jax.tree.leaves(example):
        raise ValueError("example: expected a pytree with at least one array leaf")
    data = jax.tree.map(lambda x: jnp.zeros((capacity, *jnp.shape(x)), jnp.result_type(x)), example)
    return ReplayBuffer(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def buffer_add(buffer: ReplayBuffer, batch: Any) -> ReplayBuffer:
    """Writes a batch of transitions (leading axis ``n``) at the insert position, wrapping around.

    With ``n > capacity`` only the last ``capacity`` transitions remain, as if added one by one.
    """
    if jax.tree.structure(batch) != jax.tree.structure(buffer.data):
        raise ValueError(
            f"batch: expected the buffer's structure {jax.tree.structure(buffer.data)}, "
            f"got {jax.tree.structure(batch)}"
        )
    sizes = set()
    for x, d in zip(jax.tree.leaves(batch), jax.tree.leaves(buffer.data)):
        if jnp.ndim(x) != d.ndim or jnp.shape(x)[1:] != d.shape[1:]:
            raise ValueError(
                f"batch: expected leaves shaped (n, *{d.shape[1:]}), got {jnp.shape(x)}"
            )
        sizes.add(jnp.shape(x)[0])
    if len(sizes) != 1:
        raise ValueError(f"batch: leaves disagree on the leading axis: {sorted(sizes)}")
    (n,) = sizes
    capacity = buffer.capacity
    keep = min(n, capacity)
    # Only the last `keep` items can survive; their slots are consecutive modulo capacity.
    start = buffer.insert_pos + (n - keep)
    idx = (start + jnp.arange(keep, dtype=jnp.int32)) % capacity
    data = jax.tree.map(
        lambda d, x: d.at[idx].set(jnp.asarray(x[n - keep :], d.dtype), unique_indices=True),
        buffer.data,
        batch,
    )
    insert_pos = ((buffer.insert_pos + n) % capacity).astype(jnp.int32)
    size = jnp.minimum(buffer.size + n, capacity).astype(jnp.int32)
    return ReplayBuffer(data, insert_pos, size)


def buffer_sample(key: Any, buffer: ReplayBuffer, shape: tuple[int, ...]) -> Any:
    """Transitions at indices drawn uniformly (with replacement) from the filled part.

    Args:
      key: PRNG key.
      buffer: a buffer holding at least one transition (sampling an empty buffer returns
        entry 0, the zeros it was initialised with).
      shape: sample shape, e.g. ``(batch,)`` or ``(members, batch)`` for independent
        minibatches per ensemble member.

    Returns:
      The sampled pytree, each leaf shaped ``(*shape, *leaf_shape)``.
    """
    if not isinstance(buffer, ReplayBuffer):
        raise ValueError(f"buffer: expected a ReplayBuffer, got {type(buffer).__name__}")
    shape = tuple(int(s) for s in shape)
    if any(s < 1 for s in shape):
        raise ValueError(f"shape: expected positive sizes, got {shape}")
    idx = jax.random.randint(key, shape, 0, jnp.maximum(buffer.size, 1))
    return jax.tree.map(lambda d: d[idx], buffer.data)


def relabel(
    batch: dict[str, Any],
    reward_fn: Callable[..., jax.Array],
    reward_params: Any,
) -> dict[str, Any]:
    """``batch`` with ``"reward"`` recomputed as ``reward_fn(reward_params, obs, action, next_obs)``.

    ``reward_fn`` works on one transition's arrays with any leading batch axes (apply it to the
    ``(members, batch)`` sample directly); the result must have the batch shape of ``obs``.
    """
    reward = reward_fn(reward_params, batch["obs"], batch["action"], batch["next_obs"])
    expected = batch["obs"].shape[:-1]
    if reward.shape != expected:
        raise ValueError(f"reward_fn: expected rewards of shape {expected}, got {reward.shape}")
    return {**batch, "reward": reward.astype(batch["obs"].dtype)}
