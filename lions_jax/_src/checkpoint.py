"""Whole-train-state checkpoints on orbax (V0 ``CheckpointManager`` + ``StandardSave``/``StandardRestore``).

Two functions are the whole interface, so that a later move to orbax's V1 API stays local:

* :func:`save` writes a pytree of arrays (params, optimizer state, step, PRNG keys, ...) at a step,
  with an optional JSON ``metadata`` dict (e.g. the config) beside it.
* :func:`restore` reads it back against an *abstract* target, typically ``jax.eval_shape(init, key)``
  (shapes, dtypes and shardings, no memory), so that the restored tree has exactly the structure,
  dtypes (typed PRNG keys included) and shardings the program expects.

Orbax writes each step to a temporary folder and renames it when complete, so a process killed
mid-save leaves at most an unfinished temporary folder, which the next manager ignores/cleans.

Example:
    >>> import tempfile, jax, jax.numpy as jnp
    >>> state = {"w": jnp.arange(3.0), "key": jax.random.key(0), "step": jnp.int32(7)}
    >>> d = tempfile.mkdtemp()
    >>> save(d, 7, state)
    >>> step, restored = restore(d, jax.eval_shape(lambda: state))
    >>> step, restored["w"].tolist(), int(restored["step"])
    (7, [0.0, 1.0, 2.0], 7)
"""

import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

__all__ = ["Checkpointer", "latest_step", "restore", "save"]

_STATE = "state"
_METADATA = "metadata"


class Checkpointer:
    """A thin context-managed wrapper around one ``ocp.CheckpointManager`` folder.

    Args:
      directory: checkpoint folder (created if missing).
      max_to_keep: number of most recent steps kept on disk.
    """

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 2):
        if max_to_keep < 1:
            raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}")
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, state: Any, *, metadata: dict[str, Any] | None = None) -> None:
        """Saves ``state`` (and ``metadata``) as checkpoint ``step``; blocks until written."""
        items = {_STATE: ocp.args.StandardSave(state)}
        if metadata is not None:
            items[_METADATA] = ocp.args.JsonSave(metadata)
        self._manager.save(int(step), args=ocp.args.Composite(**items), force=True)
        self._manager.wait_until_finished()

    def latest_step(self) -> int | None:
        """The newest complete step on disk, or ``None``."""
        return self._manager.latest_step()

    def restore(self, abstract_state: Any, *, step: int | None = None) -> tuple[int, Any]:
        """Restores ``(step, state)`` against ``abstract_state`` (newest step if ``step`` is None).

        Raises:
          FileNotFoundError: if there is no checkpoint to restore.
        """
        if step is None:
            step = self.latest_step()
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        abstract_state = jax.tree.map(_abstract_leaf, abstract_state)
        out = self._manager.restore(
            int(step), args=ocp.args.Composite(**{_STATE: ocp.args.StandardRestore(abstract_state)})
        )
        return int(step), out[_STATE]

    def metadata(self, step: int | None = None) -> dict[str, Any] | None:
        """The JSON metadata saved with ``step`` (newest if None), or None if there is none."""
        step = self.latest_step() if step is None else step
        if step is None or not (self.directory / str(step) / _METADATA).exists():
            return None
        out = self._manager.restore(
            int(step), args=ocp.args.Composite(**{_METADATA: ocp.args.JsonRestore()})
        )
        return out[_METADATA]

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _abstract_leaf(x: Any) -> Any:
    """Concrete arrays become ``ShapeDtypeStruct``s (with their sharding); abstract leaves pass."""
    if isinstance(x, jax.Array):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
    return x


def save(
    directory: str | os.PathLike,
    step: int,
    state: Any,
    *,
    metadata: dict[str, Any] | None = None,
    max_to_keep: int = 2,
) -> None:
    """Saves the pytree ``state`` as checkpoint ``step`` in ``directory`` (see module docstring)."""
    with Checkpointer(directory, max_to_keep=max_to_keep) as ckpt:
        ckpt.save(step, state, metadata=metadata)


def restore(
    directory: str | os.PathLike, abstract_state: Any, *, step: int | None = None
) -> tuple[int, Any]:
    """Restores ``(step, state)`` from ``directory`` against ``abstract_state``.

    Args:
      directory: the folder given to :func:`save`.
      abstract_state: a pytree of ``jax.ShapeDtypeStruct`` (e.g. ``jax.eval_shape(init, key)``)
        or of concrete arrays with the target shapes, dtypes and shardings.
      step: which step; the newest if None.

    Raises:
      FileNotFoundError: if ``directory`` holds no checkpoint.
    """
    if not Path(directory).exists():
        raise FileNotFoundError(f"no checkpoint directory {directory}")
    with Checkpointer(directory) as ckpt:
        return ckpt.restore(abstract_state, step=step)


def latest_step(directory: str | os.PathLike) -> int | None:
    """The newest complete checkpoint step in ``directory``, or None (also if it does not exist)."""
    if not Path(directory).exists():
        return None
    with Checkpointer(directory) as ckpt:
        return ckpt.latest_step()
