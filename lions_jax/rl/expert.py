"""Expert demonstrations: collect rollouts of a policy, save and load them (orbax + JSON summary).

A demonstration set is a dict of arrays over ``N`` episodes of ``T`` agent steps:

==============  ============  =====================================================
key             shape         meaning
==============  ============  =====================================================
``obs``         (N, T, o)     observation acted on
``action``      (N, T, a)     action taken (in ``[-1, 1]``)
``reward``      (N, T)        environment reward of the step
``next_obs``    (N, T, o)     observation reached (before any reset)
``done``        (N, T)        1 where the task *terminated* at this step
``truncation``  (N, T)        1 where the time limit ended the episode at this step
``mask``        (N, T)        1 for steps inside the episode (0 after it ended)
``returns``     (N,)          episode return (sum of masked rewards)
``lengths``     (N,)          episode length
==============  ============  =====================================================

Episodes that terminate early (hopper, walker2d) are masked after their last step, never padded
with fake transitions. :func:`save_demonstrations` writes ``{"stochastic": ..., "deterministic":
...}`` (or any dict of such sets) with orbax and a ``summary.json`` beside it; the default location
is :func:`expert_dir` (``$LIONS_JAX_DATA/experts/<env>-<backend>``, else
``~/.cache/lions_jax/experts/...``): data are produced by ``lions-jax run expert --env ENV``,
cached, and never committed.
"""

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lions_jax._src import checkpoint, results
from lions_jax.rl.envs import EpisodeEnv

__all__ = [
    "collect_demonstrations",
    "data_root",
    "expert_dir",
    "load_demonstrations",
    "save_demonstrations",
]

SUMMARY_FILE = "summary.json"
_ARRAYS = "arrays"


def collect_demonstrations(
    key: Any,
    env: Any,
    policy: Callable[[Any, jax.Array], jax.Array],
    *,
    num_episodes: int,
    episode_length: int,
    action_repeat: int = 1,
) -> dict[str, jax.Array]:
    """Rolls ``policy(key, obs_batch) -> actions`` for ``num_episodes`` parallel episodes.

    ``env`` is a bare environment (:func:`~lions_jax.rl.make_env`). Jittable; see the module
    docstring for the returned arrays.
    """
    if num_episodes < 1 or episode_length < 1:
        raise ValueError(
            f"num_episodes and episode_length must be >= 1, got {num_episodes}, {episode_length}"
        )
    ep_env = EpisodeEnv(
        env, episode_length=episode_length, action_repeat=action_repeat, auto_reset=False
    )
    k_reset, k_policy = jax.random.split(key)
    state = jax.vmap(ep_env.reset)(jax.random.split(k_reset, num_episodes))
    steps = math.ceil(episode_length / action_repeat)

    def step(s: Any, k: Any) -> tuple[Any, dict[str, jax.Array]]:
        action = policy(k, s.obs)
        nxt = jax.vmap(ep_env.step)(s, action)
        live = 1.0 - s.done
        row = {
            "obs": s.obs,
            "action": action,
            "reward": nxt.reward * live,
            "next_obs": nxt.next_obs,
            "done": nxt.done * (1.0 - nxt.truncation) * live,
            "truncation": nxt.truncation * live,
            "mask": live,
        }
        return nxt, row

    state, rows = jax.lax.scan(step, state, jax.random.split(k_policy, steps))
    demos = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), rows)  # (N, T, ...)
    demos["returns"] = jnp.sum(demos["reward"], axis=1)
    demos["lengths"] = jnp.sum(demos["mask"], axis=1).astype(jnp.int32)
    return demos


def data_root() -> Path:
    """``$LIONS_JAX_DATA`` if set, else ``~/.cache/lions_jax``."""
    root = os.environ.get("LIONS_JAX_DATA")
    return Path(root) if root else Path.home() / ".cache" / "lions_jax"


def expert_dir(env: str, backend: str = "generalized", root: str | os.PathLike | None = None):
    """Where the expert data of ``env`` on ``backend`` live (see :func:`data_root`)."""
    return Path(root or data_root()) / "experts" / f"{env}-{backend}"


def save_demonstrations(
    directory: str | os.PathLike, demos: dict[str, Any], summary: dict[str, Any]
) -> Path:
    """Writes ``demos`` (a dict of demonstration sets, or one set) and ``summary.json``.

    The arrays go through orbax (atomic: a killed save leaves no half-written set); the summary
    gets the arrays' shapes and dtypes so :func:`load_demonstrations` needs no other input.
    ``demos`` must be nested dicts/lists of arrays (convert NamedTuples with ``_asdict()``).
    """
    directory = Path(directory)
    arrays = jax.tree.map(np.asarray, jax.device_get(demos))
    layout = jax.tree.map(lambda x: {"shape": list(x.shape), "dtype": str(x.dtype)}, arrays)
    checkpoint.save(directory / _ARRAYS, 0, arrays, max_to_keep=1)
    results.atomic_write_json(directory / SUMMARY_FILE, {**summary, "layout": layout})
    return directory


def load_demonstrations(directory: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(demos, summary)`` as written by :func:`save_demonstrations` (NumPy arrays)."""
    directory = Path(directory)
    path = directory / SUMMARY_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no demonstrations in {directory}: create them with `lions-jax run expert --env ENV`"
        )
    summary = json.loads(path.read_text())
    abstract = jax.tree.map(
        lambda d: jax.ShapeDtypeStruct(tuple(d["shape"]), np.dtype(d["dtype"])),
        summary["layout"],
        is_leaf=lambda d: isinstance(d, dict) and set(d) == {"shape", "dtype"},
    )
    _, demos = checkpoint.restore(directory / _ARRAYS, abstract)
    return jax.tree.map(np.asarray, demos), summary
