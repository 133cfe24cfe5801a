"""LoRA adapters for functional parameter pytrees (Hu et al. 2021, arXiv 2106.09685).

The leading SemEval-2025 Task 4 teams unlearned with parameter-efficient updates (AILS-NTUA:
LoRA on gradient ascent / difference). Here an adapter is a pair ``(a, b)`` per targeted 2-D
kernel ``W`` (in, out); the model uses ``W + scale · a @ b`` with ``a`` (in, r) Gaussian and
``b`` (r, out) zero at initialisation, so the adapted model starts exactly at the target and every
update to a kernel has rank ≤ r. Adapters are a dict keyed by the kernel's path
(``jax.tree_util.keystr``), so they stay a plain pytree next to any parameter structure.

>>> import jax, jax.numpy as jnp
>>> params = {"dense": {"kernel": jnp.ones((4, 3))}, "norm": {"scale": jnp.ones(3)}}
>>> adapters = lora_init(jax.random.key(0), params, rank=2)
>>> list(adapters)
["['dense']['kernel']"]
>>> bool(jnp.all(lora_merge(params, adapters, scale=8.0)["dense"]["kernel"] == 1.0))
True
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["LoRA", "default_target", "lora_init", "lora_merge"]


class LoRA(NamedTuple):
    """One adapter: the kernel becomes ``W + scale · a @ b``.

    Attributes:
      a: (in, rank), Gaussian with variance 1 / in at initialisation.
      b: (rank, out), zero at initialisation.
    """

    a: jax.Array
    b: jax.Array


def default_target(path: str, leaf: jax.Array) -> bool:
    """Every 2-D ``kernel`` (attention and MLP projections); not embeddings or norms."""
    return leaf.ndim == 2 and "kernel" in path


def lora_init(
    key: jax.Array,
    params: Any,
    rank: int,
    *,
    target: Callable[[str, jax.Array], bool] = default_target,
) -> dict[str, Any]:
    """Adapters (a dict of :class:`LoRA` by path) for the leaves of ``params`` selected by
    ``target(path, leaf)``."""
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise ValueError(f"rank: expected a positive int, got {rank!r}")
    leaves = [
        (jax.tree_util.keystr(p), x)
        for p, x in jax.tree_util.tree_leaves_with_path(params)
        if target(jax.tree_util.keystr(p), x)
    ]
    if not leaves:
        raise ValueError("target: selects no parameter of params")
    keys = jax.random.split(key, len(leaves))
    out = {}
    for k, (path, w) in zip(keys, leaves):
        if rank > min(w.shape):
            raise ValueError(f"rank: {rank} exceeds the smaller side of {path} {w.shape}")
        a = jax.random.normal(k, (w.shape[0], rank), w.dtype) / jnp.sqrt(w.shape[0])
        out[path] = LoRA(a, jnp.zeros((rank, w.shape[1]), w.dtype))
    return out


def lora_merge(params: Any, adapters: dict[str, Any], scale: Any) -> Any:
    """``params`` with ``W + scale · a @ b`` at every adapted path (differentiable in both)."""

    def merge(path: Any, w: jax.Array) -> jax.Array:
        ad = adapters.get(jax.tree_util.keystr(path))
        return w if ad is None else w + scale * (ad.a @ ad.b).astype(w.dtype)

    unknown = set(adapters) - {
        jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)
    }
    if unknown:
        raise ValueError(f"adapters: paths not in params: {sorted(unknown)}")
    return jax.tree_util.tree_map_with_path(merge, params)
