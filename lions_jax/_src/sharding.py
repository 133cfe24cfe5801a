"""Data-parallel sharding helpers on ``jax.make_mesh`` and ``NamedSharding`` (never ``pmap``).

Two axes of parallelism appear in lions_jax: a *batch* axis (data parallelism inside one training
run) and a *stacked-seed* axis (independent runs under ``jax.vmap``). Both are the leading axis of
their arrays and are sharded the same way: :func:`shard_batch` / :func:`shard_seeds` place an
array's leading axis across the mesh's data axis and replicate the rest, and
:func:`constrain_batch` does the same inside ``jit``. Parameters and optimizer state are
:func:`replicate`-d. ``tests/conftest.py`` runs everything on 8 fake CPU devices.

Example:
    >>> import jax, jax.numpy as jnp
    >>> mesh = data_mesh()
    >>> x = shard_batch(jnp.zeros((8 * mesh.size, 3)), mesh)
    >>> x.sharding.spec == jax.P("data")
    True
"""

from typing import Any

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

__all__ = [
    "DATA_AXIS",
    "batch_sharding",
    "constrain_batch",
    "data_mesh",
    "replicate",
    "replicated_sharding",
    "shard_batch",
    "shard_seeds",
]

DATA_AXIS = "data"


def data_mesh(
    num_devices: int | None = None,
    *,
    axis_name: str = DATA_AXIS,
    axis_type: AxisType = AxisType.Auto,
    devices: Any = None,
) -> Mesh:
    """A 1-D mesh over ``num_devices`` devices (all local devices by default) for data parallelism.

    Args:
      num_devices: number of devices; defaults to ``len(devices)`` or ``jax.device_count()``.
      axis_name: the mesh axis name.
      axis_type: ``AxisType.Auto`` (default: the compiler propagates shardings, so any
        ``make_train`` runs unchanged, e.g. vmapped seeds gathering from replicated data) or
        ``AxisType.Explicit`` (shardings are part of array types; operations whose output
        sharding is ambiguous, such as a gather with sharded indices, then need an explicit
        ``out_sharding``).
      devices: devices to use (defaults to ``jax.devices()``).

    Raises:
      ValueError: if more devices are requested than exist.
    """
    available = list(devices) if devices is not None else jax.devices()
    n = len(available) if num_devices is None else int(num_devices)
    if not 1 <= n <= len(available):
        raise ValueError(f"num_devices must be in [1, {len(available)}], got {num_devices}")
    return jax.make_mesh((n,), (axis_name,), axis_types=(axis_type,), devices=available[:n])


def batch_sharding(mesh: Mesh, axis_name: str = DATA_AXIS) -> NamedSharding:
    """Leading axis split over ``axis_name``, other axes replicated."""
    return NamedSharding(mesh, PartitionSpec(axis_name))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """Fully replicated over the mesh."""
    return NamedSharding(mesh, PartitionSpec())


def _check_leading(tree: Any, mesh: Mesh, axis_name: str, what: str) -> None:
    size = mesh.shape[axis_name]
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        shape = getattr(leaf, "shape", ())
        if len(shape) == 0 or shape[0] % size:
            raise ValueError(
                f"{what}: leaf {jax.tree_util.keystr(path) or '<root>'} has shape {tuple(shape)}; "
                f"its leading axis must be a multiple of the {size} devices on mesh axis "
                f"{axis_name!r}"
            )


def shard_batch(tree: Any, mesh: Mesh, axis_name: str = DATA_AXIS) -> Any:
    """Places every leaf's leading (batch) axis across ``axis_name`` of ``mesh``.

    Raises:
      ValueError: if a leaf is a scalar or its leading axis is not divisible by the axis size.
    """
    _check_leading(tree, mesh, axis_name, "shard_batch")
    return jax.device_put(tree, batch_sharding(mesh, axis_name))


def shard_seeds(tree: Any, mesh: Mesh, axis_name: str = DATA_AXIS) -> Any:
    """Places a stacked-seed pytree (leading axis = seeds, e.g. vmapped train states) across devices.

    Each device then runs ``num_seeds / num_devices`` independent runs under the same
    ``jax.jit(jax.vmap(...))``; no communication is needed between seeds.
    """
    _check_leading(tree, mesh, axis_name, "shard_seeds")
    return jax.device_put(tree, batch_sharding(mesh, axis_name))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Replicates every leaf on all devices of ``mesh`` (parameters, optimizer state, keys)."""
    return jax.device_put(tree, replicated_sharding(mesh))


def constrain_batch(tree: Any, mesh: Mesh | None, axis_name: str = DATA_AXIS) -> Any:
    """Inside ``jit``: asks for the leading axis of every leaf to be split over ``axis_name``.

    A no-op when ``mesh`` is None, so a ``make_train(cfg, mesh=None)`` runs unchanged on one device.
    Uses ``jax.sharding.reshard`` on explicit meshes and ``with_sharding_constraint`` otherwise.
    """
    if mesh is None:
        return tree
    sharding = batch_sharding(mesh, axis_name)
    if dict(zip(mesh.axis_names, mesh.axis_types))[axis_name] == AxisType.Explicit:
        return jax.tree.map(lambda x: jax.sharding.reshard(x, sharding), tree)
    return jax.lax.with_sharding_constraint(tree, sharding)
