r"""Sequential 2:4 pruning of a whole Flax NNX model, with calibration inputs through pruned layers.

The protocol (the SparseGPT/Wanda one): the model's linear layers are pruned stage by stage in
the order the forward pass reaches them; before each stage the calibration batches are run through
the model *as pruned so far*, and each layer of the stage is pruned on :math:`H = X^\top X / N`
of the inputs it actually receives. Layers called on the same input (a transformer's query, key
and value; a gated MLP's gate and up) form one stage and share one :math:`H`.

How a model opts in — nothing to change in it:

* the prunable layers are its ``nnx.Linear`` modules (or subclasses: a ``kernel`` of shape
  ``(d_in, d_out)`` applied to ``(..., d_in)`` inputs), found with ``nnx.iter_modules``; choose
  them with ``include(path, module) -> bool`` (default: every ``nnx.Linear`` whose path does not
  name a head: ``lm_head``, ``head``, ``pooler``, ``classifier``);
* ``forward(model, batch)`` runs the model on one calibration batch (default ``model(batch)``);
  every token position of every batch counts, so calibration batches should hold no padding;
* layers that are not ``nnx.Linear`` (einsum projections, convolutions) are pruned with
  :func:`~lions_jax.sparse24.prune_layer` from an :math:`H` the user accumulates.

Inputs are captured by probing: a working copy of the model has its target layers' classes
swapped for subclasses whose ``__call__`` reports its input to a collector before calling the
original. Each stage runs one jitted function of (weights, batch) returning only that stage's
:math:`\sum x x^\top`, so XLA computes the forward pass only up to the stage's layers; the
functions are cached per (model structure, forward, stage), so pruning the same model again
(another method, another calibration seed) compiles nothing. The model passed in is never
modified.
"""

import contextvars
import dataclasses
import functools
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lions_jax.sparse24.layer import PruneInfo, prune_layer

__all__ = ["DEFAULT_EXCLUDE", "LayerReport", "linear_stages", "prune_model"]

Path = tuple[Any, ...]
DEFAULT_EXCLUDE = re.compile(r"(^|/)(lm_head|head|pooler|classifier)(/|$)")

_SINK: contextvars.ContextVar[dict | None] = contextvars.ContextVar("sparse24_sink", default=None)
_PROBE_TYPES: dict[type, type] = {}


@dataclasses.dataclass(frozen=True)
class LayerReport:
    """One pruned layer: its path, kernel shape, stage and :class:`~lions_jax.sparse24.PruneInfo`."""

    path: str
    shape: tuple[int, int]
    stage: int
    rel_error_mask: float
    rel_error: float
    iterations: int
    converged: bool
    fallback: bool
    seconds: float


def _path_str(path: Path) -> str:
    return "/".join(str(p) for p in path)


def _default_include(path: Path, module: nnx.Module) -> bool:
    return not DEFAULT_EXCLUDE.search(_path_str(path))


def _probe_call(self, x, *args, **kwargs):
    sink = _SINK.get()
    if sink is not None:
        entry = sink.setdefault(id(x), {"x": x, "paths": []})
        entry["paths"].append(self._sparse24_path)
    return type(self)._sparse24_base.__call__(self, x, *args, **kwargs)


def _probe_type(cls: type) -> type:
    if cls not in _PROBE_TYPES:
        _PROBE_TYPES[cls] = type(
            f"Sparse24Probe{cls.__name__}", (cls,), {"__call__": _probe_call, "_sparse24_base": cls}
        )
    return _PROBE_TYPES[cls]


def _targets(model: nnx.Module, include: Callable[[Path, nnx.Module], bool]) -> dict[Path, Any]:
    found = {}
    for path, module in nnx.iter_modules(model):
        if isinstance(module, nnx.Linear) and include(path, module):
            kernel = module.kernel[...]
            if kernel.ndim != 2:
                raise ValueError(
                    f"layer {_path_str(path)}: expected a 2-D kernel, got {kernel.shape}"
                )
            found[tuple(path)] = module
    return found


def _default_forward(model: nnx.Module, batch: Any) -> Any:
    return model(batch)


def _trace(graphdef: Any, forward: Callable, state: Any, batch: Any) -> list[dict]:
    """Runs ``forward`` on the merged model; the distinct layer inputs, in call order."""
    model = nnx.merge(graphdef, state)
    sink: dict = {}
    token = _SINK.set(sink)
    try:
        forward(model, batch)
    finally:
        _SINK.reset(token)
    return list(sink.values())  # entries hold their input, so no id is reused within a trace


@functools.lru_cache(maxsize=256)
def _collector(graphdef: Any, forward: Callable, wanted: frozenset[str]) -> Callable:
    """Jitted ``(state, batch) -> {layer: (sum of x x^T, tokens)}`` for the ``wanted`` layers.

    Only the wanted layers' statistics are outputs, so XLA drops the rest of the forward pass:
    a stage costs the forward up to its own layers. Cached per (model structure, forward,
    stage), so repeated prunings of the same model (other methods, other seeds) compile nothing.
    """

    def collect(state, batch):
        stats = {}
        for entry in _trace(graphdef, forward, state, batch):
            paths = [p for p in map(_path_str, entry["paths"]) if p in wanted]
            if not paths:
                continue
            x = entry["x"]
            x2 = x.reshape(-1, x.shape[-1]).astype(jnp.promote_types(x.dtype, jnp.float32))
            xtx = x2.T @ x2  # once per distinct input: query, key and value share it
            for key in paths:
                stats[key] = (xtx, jnp.asarray(x2.shape[0], jnp.float32))
        return stats

    return jax.jit(collect)


class _Probed:
    """A working copy of ``model`` whose target layers report their inputs to the collector."""

    def __init__(self, model, forward, include):
        self.model = nnx.clone(model)
        self.layers = _targets(self.model, include)
        if not self.layers:
            raise ValueError("model: no nnx.Linear layers to prune (check `include`)")
        for path, module in self.layers.items():
            module.__class__ = _probe_type(type(module))
            module._sparse24_path = path
        self.graphdef, _ = nnx.split(self.model)
        self.forward = forward

    def stages(self, batch) -> list[list[Path]]:
        """Layers grouped by identical input, in call order (from one abstract trace)."""
        out: list[list[Path]] = []

        def f(state, batch):
            entries = _trace(self.graphdef, self.forward, state, batch)
            out.extend(list(dict.fromkeys(e["paths"])) for e in entries)
            return 0

        jax.eval_shape(f, nnx.state(self.model), batch)
        return out

    def hessians(self, batches: Sequence[Any], paths: Sequence[Path]) -> dict[Path, jax.Array]:
        state = nnx.state(self.model)
        collect = _collector(self.graphdef, self.forward, frozenset(map(_path_str, paths)))
        sums: dict[str, Any] = {}
        for batch in batches:
            stats = collect(state, batch)
            for path in paths:
                key = _path_str(path)
                if key not in stats:
                    raise ValueError(f"layer {key} was not called by forward(model, batch)")
                hs, c = stats[key]
                prev = sums.get(key)
                sums[key] = (hs, c) if prev is None else (prev[0] + hs, prev[1] + c)
        return {p: sums[_path_str(p)][0] / sums[_path_str(p)][1] for p in paths}

    def release(self) -> nnx.Module:
        for module in self.layers.values():
            module.__class__ = type(module)._sparse24_base
            del module._sparse24_path
        return self.model


def linear_stages(
    model: nnx.Module,
    batch: Any,
    *,
    forward: Callable[[nnx.Module, Any], Any] | None = None,
    include: Callable[[Path, nnx.Module], bool] | None = None,
) -> list[list[Path]]:
    """The prunable layers of ``model`` grouped into stages (same input), in forward order.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from lions_jax.models import LMConfig, TransformerLM
        >>> lm = TransformerLM(LMConfig(vocab_size=11, d_model=16, num_layers=1, num_heads=2,
        ...                             gated_mlp=False), rngs=nnx.Rngs(0))
        >>> for stage in linear_stages(lm, jnp.zeros((1, 8), jnp.int32)):
        ...     print(["/".join(map(str, path)) for path in stage])
        ['blocks/0/attn/query', 'blocks/0/attn/key', 'blocks/0/attn/value']
        ['blocks/0/attn/out']
        ['blocks/0/mlp/up']
        ['blocks/0/mlp/down']
    """
    probed = _Probed(model, forward or _default_forward, include or _default_include)
    return probed.stages(batch)


def prune_model(
    model: nnx.Module,
    batches: Sequence[Any],
    *,
    method: str = "prox",
    forward: Callable[[nnx.Module, Any], Any] | None = None,
    include: Callable[[Path, nnx.Module], bool] | None = None,
    stages: Sequence[Sequence[Path]] | None = None,
    **prune_kwargs: Any,
) -> tuple[nnx.Module, list[LayerReport]]:
    """Prunes every selected linear layer of ``model`` to N:M, sequentially (see the module docs).

    Args:
      model: a Flax NNX model (left unchanged).
      batches: calibration batches (a sequence: it is re-run before every stage).
      method: :func:`~lions_jax.sparse24.prune_layer`'s method.
      forward: ``forward(model, batch)``; default ``model(batch)``.
      include: ``include(path, module) -> bool`` selects the ``nnx.Linear`` layers to prune.
      stages: explicit stages (lists of layer paths) in order; default :func:`linear_stages`.
      **prune_kwargs: passed to :func:`~lions_jax.sparse24.prune_layer` (``n``, ``m``,
        ``refine``, ``refine_steps``, ``schedule``, ``damp``, ``block_size``).

    Returns:
      ``(pruned_model, reports)``: a pruned copy of the model and one :class:`LayerReport` per
      layer, in pruning order; ``rel_error`` is each layer's local relative error on the inputs
      it receives from the already-pruned model.
    """
    batches = list(batches)
    if not batches:
        raise ValueError("batches: expected at least one calibration batch")
    if "axis" in prune_kwargs or "x" in prune_kwargs or "h" in prune_kwargs:
        raise ValueError("prune_kwargs: axis, x and h are set by prune_model")
    probed = _Probed(model, forward or _default_forward, include or _default_include)
    try:
        order = (
            [list(map(tuple, s)) for s in stages]
            if stages is not None
            else probed.stages(batches[0])
        )
        unknown = [p for s in order for p in s if p not in probed.layers]
        if unknown:
            raise ValueError(
                f"stages: not prunable nnx.Linear layers: {[_path_str(p) for p in unknown]}"
            )
        reports: list[LayerReport] = []
        for index, stage in enumerate(order):
            hs = probed.hessians(batches, stage)
            for path in stage:
                module = probed.layers[path]
                start = time.perf_counter()
                kernel = module.kernel[...]
                wp, _, info = prune_layer(kernel, h=hs[path], method=method, **prune_kwargs)
                info = jax.device_get(info)
                module.kernel[...] = wp
                reports.append(
                    _report(path, kernel.shape, index, info, time.perf_counter() - start)
                )
    finally:
        pruned = probed.release()
    return pruned, reports


def _report(path: Path, shape: tuple[int, ...], stage: int, info: PruneInfo, seconds: float):
    return LayerReport(
        path=_path_str(path),
        shape=(int(shape[0]), int(shape[1])),
        stage=stage,
        rel_error_mask=float(np.asarray(info.rel_error_mask)),
        rel_error=float(np.asarray(info.rel_error)),
        iterations=int(info.iterations),
        converged=bool(info.converged),
        fallback=bool(info.fallback),
        seconds=seconds,
    )
