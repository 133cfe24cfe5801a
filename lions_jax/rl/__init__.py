"""Reinforcement-learning substrate: brax environments, replay buffer, SAC with critic ensembles.

* :mod:`~lions_jax.rl.envs` — :func:`make_env` (brax ``generalized``/``mjx``/... or the pure-JAX
  :class:`PointMass`), :class:`EpisodeEnv` (time limit vs termination, action repeat, automatic
  fresh resets, true next observations, dtype canonicalisation), :class:`BatchedEnv`;
* :mod:`~lions_jax.rl.buffer` — a jittable ring buffer with ``(members, batch)`` sampling and
  sample-time reward relabelling;
* :mod:`~lions_jax.rl.normalization` — running observation statistics;
* :mod:`~lions_jax.rl.networks` — ``(init, apply)`` MLPs and the tanh-Gaussian policy;
* :mod:`~lions_jax.rl.sac` — pure SAC losses and :func:`make_sac` with L critic pairs stacked on
  ``[L, 2]`` and a pluggable actor aggregation (:func:`mean_value`, :func:`optimistic_value`);
* :mod:`~lions_jax.rl.train` — ``make_train(cfg) -> train(key)`` (whole run in ``lax.scan``,
  seeds vmapped) and the host-side :func:`run` with orbax checkpoints;
* :mod:`~lions_jax.rl.expert` — expert training and demonstration datasets.

brax is optional (the ``rl`` extra): only :func:`make_env` with a brax name needs it.
"""

from lions_jax.rl.buffer import ReplayBuffer, buffer_add, buffer_init, buffer_sample, relabel
from lions_jax.rl.envs import (
    BRAX_BACKENDS,
    TEST_ENVS,
    BatchedEnv,
    EnvState,
    EpisodeEnv,
    EpisodeState,
    PointMass,
    canonicalize,
    make_env,
)
from lions_jax.rl.expert import (
    collect_demonstrations,
    expert_dir,
    load_demonstrations,
    save_demonstrations,
)
from lions_jax.rl.networks import (
    Network,
    SACNetworks,
    make_sac_networks,
    mlp,
    tanh_gaussian_log_prob,
    tanh_gaussian_sample,
)
from lions_jax.rl.normalization import RunningStats, init_stats, normalize, update_stats
from lions_jax.rl.sac import (
    SAC,
    SACState,
    actor_loss,
    alpha_loss,
    critic_loss,
    ensemble_q,
    make_sac,
    mean_value,
    optimistic_value,
)
from lions_jax.rl.train import (
    SACConfig,
    TrainState,
    evaluate,
    make_agent,
    make_chunks,
    make_iteration,
    make_train,
    run,
)

__all__ = [
    "BRAX_BACKENDS",
    "SAC",
    "TEST_ENVS",
    "BatchedEnv",
    "EnvState",
    "EpisodeEnv",
    "EpisodeState",
    "Network",
    "PointMass",
    "ReplayBuffer",
    "RunningStats",
    "SACConfig",
    "SACNetworks",
    "SACState",
    "TrainState",
    "actor_loss",
    "alpha_loss",
    "buffer_add",
    "buffer_init",
    "buffer_sample",
    "canonicalize",
    "collect_demonstrations",
    "critic_loss",
    "ensemble_q",
    "evaluate",
    "expert_dir",
    "init_stats",
    "load_demonstrations",
    "make_agent",
    "make_chunks",
    "make_env",
    "make_iteration",
    "make_sac",
    "make_sac_networks",
    "make_train",
    "mean_value",
    "mlp",
    "normalize",
    "optimistic_value",
    "relabel",
    "run",
    "save_demonstrations",
    "tanh_gaussian_log_prob",
    "tanh_gaussian_sample",
    "update_stats",
]
