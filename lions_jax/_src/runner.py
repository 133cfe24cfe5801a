"""Host-side training loop over jitted chunks: progress bar, metrics log, checkpoints, resume.

A training run in lions_jax is written once, as two pure functions of one seed:

* ``init_fn(key) -> state`` builds the whole train state (params, optimizer state, PRNG key, step);
* ``chunk_fn(state) -> (state, metrics)`` advances it by a fixed number of steps (a ``lax.scan``
  inside) and returns a dict of scalar metrics for that chunk.

From these, :func:`scan_chunks` builds the pure ``train(key)`` that users ``jax.jit(jax.vmap(...))``,
and :func:`run_chunked` runs the same chunks from the host for many seeds at once, between chunks
writing ``metrics.jsonl``, saving orbax checkpoints and updating a progress bar. A run whose process
was killed resumes from its last checkpoint when :func:`run_chunked` is called again on the same
folder, and finishes with exactly the metrics of an uninterrupted run: both execute the same
compiled chunk on the same state.
"""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from lions_jax._src import checkpoint, results

__all__ = ["run_chunked", "scan_chunks", "seed_keys"]

State = Any
InitFn = Callable[[Any], State]
ChunkFn = Callable[[State], tuple[State, dict[str, jax.Array]]]

CHECKPOINT_DIR = "checkpoints"


def scan_chunks(init_fn: InitFn, chunk_fn: ChunkFn, num_chunks: int) -> Callable[[Any], Any]:
    """``train(key) -> (final_state, metrics)`` running ``num_chunks`` chunks in one ``lax.scan``.

    ``metrics`` holds every chunk's metrics stacked on a leading axis of length ``num_chunks``.
    """
    if num_chunks < 1:
        raise ValueError(f"num_chunks must be >= 1, got {num_chunks}")

    def train(key: Any) -> tuple[State, dict[str, jax.Array]]:
        state = init_fn(key)
        return jax.lax.scan(lambda s, _: chunk_fn(s), state, None, length=num_chunks)

    return train


def run_chunked(
    *,
    init_fn: InitFn,
    chunk_fn: ChunkFn,
    keys: Any,
    num_chunks: int,
    steps_per_chunk: int,
    out_dir: str | os.PathLike,
    checkpoint_every: int = 1,
    desc: str = "train",
    progress: bool = True,
    on_chunk_end: Callable[[int, State], None] | None = None,
) -> tuple[State, list[dict[str, Any]]]:
    """Runs ``init_fn``/``chunk_fn`` for every key in ``keys`` (vmapped), with checkpoints and resume.

    Args:
      init_fn: ``key -> state`` for one seed.
      chunk_fn: ``state -> (state, metrics)`` for one seed; metrics is a dict of scalars.
      keys: typed PRNG keys, shape ``(num_runs,)``, or a pytree of arrays with that leading
        axis (e.g. ``(keys, learning_rates)`` to vmap a hyperparameter grid); ``init_fn`` gets
        one slice.
      num_chunks: chunks to run in total.
      steps_per_chunk: training steps per chunk (the ``step`` logged after chunk ``c`` is
        ``(c + 1) * steps_per_chunk``).
      out_dir: run folder; ``metrics.jsonl`` and ``checkpoints/`` are written there.
      checkpoint_every: save a checkpoint every this many chunks (and after the last one).
      desc: progress-bar label.
      progress: show a progress bar.
      on_chunk_end: optional host callback ``(step, state)`` after each chunk is logged and saved.

    Returns:
      ``(final_state, rows)``: the stacked final state and every metrics row of the run (including
      rows written before a resume).
    """
    leading = {np.shape(x)[0] if np.ndim(x) else None for x in jax.tree.leaves(keys)}
    if not jax.tree.leaves(keys) or None in leading or len(leading) != 1:
        raise ValueError(
            "keys must be a 1-D array of PRNG keys (num_runs,) or a pytree of arrays sharing "
            f"that leading axis; got {jax.tree.map(np.shape, keys)}"
        )
    if num_chunks < 1 or steps_per_chunk < 1 or checkpoint_every < 1:
        raise ValueError("num_chunks, steps_per_chunk and checkpoint_every must all be >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = out_dir / results.METRICS_FILE

    batched_init = jax.jit(jax.vmap(init_fn))
    donate = (0,) if jax.default_backend() != "cpu" else ()
    batched_chunk = jax.jit(jax.vmap(chunk_fn), donate_argnums=donate)

    with checkpoint.Checkpointer(out_dir / CHECKPOINT_DIR) as ckpt:
        latest = ckpt.latest_step()
        if latest is not None:
            if latest % steps_per_chunk or latest // steps_per_chunk > num_chunks:
                raise ValueError(
                    f"checkpoint step {latest} in {out_dir} does not fit this run "
                    f"({num_chunks} chunks of {steps_per_chunk} steps)"
                )
            _, state = ckpt.restore(jax.eval_shape(batched_init, keys), step=latest)
            rows = results.truncate_metrics(metrics_path, latest)
            start = latest // steps_per_chunk
        else:
            state = batched_init(keys)
            rows = results.truncate_metrics(metrics_path, 0)
            start = 0

        bar = tqdm(total=num_chunks, initial=start, desc=desc, disable=not progress, unit="chunk")
        try:
            for c in range(start, num_chunks):
                state, metrics = batched_chunk(state)
                step = (c + 1) * steps_per_chunk
                row = {"step": step}
                row.update({k: np.asarray(v).tolist() for k, v in jax.device_get(metrics).items()})
                results.append_metrics(metrics_path, [row])
                rows.append(row)
                if (c + 1) % checkpoint_every == 0 or c + 1 == num_chunks:
                    ckpt.save(step, state)
                bar.set_postfix(
                    {k: f"{float(np.mean(v)):.4g}" for k, v in row.items() if k != "step"},
                    refresh=False,
                )
                bar.update(1)
                if on_chunk_end is not None:
                    on_chunk_end(step, state)
        finally:
            bar.close()
    return state, rows


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """``num_seeds`` independent typed keys derived from one integer seed."""
    if num_seeds < 1:
        raise ValueError(f"num_seeds must be >= 1, got {num_seeds}")
    return jax.random.split(jax.random.key(seed), num_seeds)
