"""Whole SAC runs as pure functions of one key: ``make_train(cfg) -> train(key)``.

One *iteration* steps ``num_envs`` environments once with the stochastic actor (uniform random
actions before ``learning_starts`` environment steps), writes the transitions into the replay
buffer, updates the observation statistics, and runs ``updates_per_step`` SAC updates on
``(n_members, batch_size)`` minibatches (none before ``learning_starts``). A *chunk* is
``eval_every`` environment steps followed by a deterministic evaluation on ``num_eval_envs``
fresh episodes. Everything is ``lax.scan``/``lax.cond``, so::

    train = make_train(cfg)
    final_state, metrics = jax.jit(jax.vmap(train))(jax.random.split(key, num_seeds))

runs every seed in one program (under ``vmap`` a ``lax.cond`` computes both branches, so the
warm-up iterations cost as much as the others). :func:`run` does the same from the host in
jitted chunks with a progress bar and orbax checkpoints; a killed run resumes to the same
result. Environment steps count agent decisions (``num_envs`` per iteration; each is
``action_repeat`` physics steps), including the warm-up.
"""

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp

from lions_jax._src import runner
from lions_jax.rl.buffer import ReplayBuffer, buffer_add, buffer_init, buffer_sample, relabel
from lions_jax.rl.envs import EpisodeEnv, make_env
from lions_jax.rl.networks import make_sac_networks
from lions_jax.rl.normalization import RunningStats, init_stats, normalize, update_stats
from lions_jax.rl.sac import SAC, SACState, make_sac, optimistic_value

__all__ = [
    "SACConfig",
    "TrainState",
    "evaluate",
    "make_agent",
    "make_chunks",
    "make_iteration",
    "make_train",
    "run",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SACConfig:
    """SAC (optionally with an ensemble of critic pairs) on one environment.

    Attributes:
      env, backend: :func:`~lions_jax.rl.make_env` name and brax backend.
      episode_length, action_repeat, reset_mode: see :class:`~lions_jax.rl.EpisodeEnv`.
      num_envs: environments stepped in parallel per iteration.
      total_steps: environment steps per seed (rounded up to whole chunks).
      eval_every: environment steps per chunk (one evaluation and one metrics row each).
      num_eval_envs: evaluation episodes (deterministic actor, fresh initial states).
      learning_starts: environment steps of uniform random actions before updates begin.
      updates_per_step: gradient updates per iteration (per ``num_envs`` environment steps).
      batch_size, buffer_size: minibatch per member; replay capacity (transitions).
      hidden: hidden widths of actor and critics.
      n_members: L, critic pairs. beta, sigma, ddof: the actor aggregates the members'
        pair-mins by :func:`~lions_jax.rl.optimistic_value` (``beta=0``: their mean).
      actor_lr, critic_lr, alpha_lr, gamma, tau, init_alpha, learn_alpha, target_entropy,
        reward_scale, opt_lambda: see :func:`~lions_jax.rl.make_sac`.
      normalize_observations: feed networks running-statistics-normalised observations.
      seed, num_seeds: seeds are vmapped.
    """

    env: str = "inverted_pendulum"
    backend: str = "generalized"
    episode_length: int = 1000
    action_repeat: int = 1
    reset_mode: Literal["fresh", "initial"] = "fresh"
    num_envs: int = 1
    total_steps: int = 20_000
    eval_every: int = 2_000
    num_eval_envs: int = 8
    learning_starts: int = 1_000
    updates_per_step: int = 1
    batch_size: int = 256
    buffer_size: int = 1_000_000
    hidden: tuple[int, ...] = (256, 256)
    n_members: int = 1
    beta: float = 0.0
    sigma: float = 1e9
    ddof: int = 1
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    init_alpha: float = 1.0
    learn_alpha: bool = True
    target_entropy: float | None = None
    reward_scale: float = 1.0
    opt_lambda: float = 0.0
    normalize_observations: bool = False
    seed: int = 0
    num_seeds: int = 1

    def __post_init__(self) -> None:
        positive = (
            "episode_length action_repeat num_envs total_steps eval_every num_eval_envs "
            "updates_per_step batch_size buffer_size n_members num_seeds"
        ).split()
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_starts < 0:
            raise ValueError(f"learning_starts must be >= 0, got {self.learning_starts}")
        if self.eval_every % self.num_envs:
            raise ValueError(
                f"eval_every ({self.eval_every}) must be a multiple of num_envs ({self.num_envs})"
            )
        if not 0.0 < self.gamma <= 1.0 or not 0.0 < self.tau <= 1.0:
            raise ValueError(f"gamma and tau must lie in (0, 1], got {self.gamma}, {self.tau}")
        if self.beta < 0 or self.sigma < 0:
            raise ValueError(f"beta and sigma must be >= 0, got {self.beta}, {self.sigma}")

    @property
    def iters_per_chunk(self) -> int:
        return self.eval_every // self.num_envs

    @property
    def num_chunks(self) -> int:
        return math.ceil(self.total_steps / self.eval_every)


class TrainState(NamedTuple):
    """Everything a SAC run carries: learner, environments, buffer, statistics, key, counters."""

    sac: SACState
    env_state: Any
    buffer: ReplayBuffer
    obs_stats: RunningStats
    key: jax.Array
    env_steps: jax.Array


def make_agent(
    cfg: SACConfig,
    obs_size: int,
    action_size: int,
    *,
    beta: Any = None,
    sigma: Any = None,
    prior: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
) -> SAC:
    """The :class:`~lions_jax.rl.SAC` learner a config describes.

    ``beta``/``sigma`` override ``cfg.beta``/``cfg.sigma`` and may be traced (one compiled
    program for a vmapped grid of bonuses); ``prior`` is :func:`~lions_jax.rl.make_sac`'s.
    """
    beta = cfg.beta if beta is None else beta
    sigma = cfg.sigma if sigma is None else sigma
    networks = make_sac_networks(obs_size, action_size, hidden=cfg.hidden)
    return make_sac(
        networks,
        n_members=cfg.n_members,
        actor_lr=cfg.actor_lr,
        critic_lr=cfg.critic_lr,
        alpha_lr=cfg.alpha_lr,
        gamma=cfg.gamma,
        tau=cfg.tau,
        init_alpha=cfg.init_alpha,
        learn_alpha=cfg.learn_alpha,
        target_entropy=cfg.target_entropy,
        reward_scale=cfg.reward_scale,
        opt_lambda=cfg.opt_lambda,
        aggregate=lambda q: optimistic_value(q, beta, sigma, ddof=cfg.ddof),
        prior=prior,
    )


def evaluate(
    key: Any,
    env: Any,
    policy: Callable[[jax.Array], jax.Array],
    *,
    num_episodes: int,
    episode_length: int,
    action_repeat: int = 1,
) -> dict[str, jax.Array]:
    """Returns and lengths of ``num_episodes`` episodes of ``policy(obs_batch) -> actions``.

    ``env`` is a bare environment (:func:`~lions_jax.rl.make_env`); episodes run in parallel
    for ``episode_length`` environment steps (frozen after they end).
    """
    ep_env = EpisodeEnv(
        env, episode_length=episode_length, action_repeat=action_repeat, auto_reset=False
    )
    state = jax.vmap(ep_env.reset)(jax.random.split(key, num_episodes))

    def step(s: Any, _: Any) -> tuple[Any, None]:
        return jax.vmap(ep_env.step)(s, policy(s.obs)), None

    n = math.ceil(episode_length / action_repeat)
    state, _ = jax.lax.scan(step, state, None, length=n)
    return {"return": state.episode_return, "length": state.episode_length}


def _norm_fn(cfg: SACConfig) -> Callable[[RunningStats, Any], Any]:
    def norm(stats: RunningStats, x: Any) -> Any:
        return normalize(stats, x) if cfg.normalize_observations else x

    return norm


def make_iteration(
    cfg: SACConfig,
    ep_env: EpisodeEnv,
    agent: SAC,
    *,
    reward_fn: Callable[..., jax.Array] | None = None,
    relabel_fn: Callable[[dict, Any], dict] | None = None,
) -> tuple[Callable[[Any], TrainState], Callable[[TrainState, Any], tuple[TrainState, dict]]]:
    """``(init_fn, iteration)``: the building blocks of a SAC run, for outer loops built on it.

    ``init_fn(key) -> TrainState``; ``iteration(ts, reward_params) -> (ts, metrics)`` steps the
    ``cfg.num_envs`` environments once and runs ``cfg.updates_per_step`` updates, relabelling
    every minibatch with ``reward_fn(reward_params, obs, action, next_obs)`` when given (the
    environment's reward otherwise). ``relabel_fn(sample, reward_params) -> sample`` instead
    rewrites the whole minibatch (e.g. to also use its ``discount``). Imitation learners
    (:mod:`lions_jax.soar.deep`) call it with the current learned reward's parameters.
    """
    if reward_fn is not None and relabel_fn is not None:
        raise ValueError("give reward_fn or relabel_fn, not both")
    obs_size, action_size = agent.networks.obs_size, agent.networks.action_size
    n_envs, n_members, batch = cfg.num_envs, cfg.n_members, cfg.batch_size
    if agent.n_members != n_members:
        raise ValueError(
            f"agent: expected {n_members} members (cfg.n_members), got {agent.n_members}"
        )
    norm = _norm_fn(cfg)

    def init_fn(key: Any) -> TrainState:
        k_env, k_sac, key = jax.random.split(key, 3)
        env_state = jax.vmap(ep_env.reset)(jax.random.split(k_env, n_envs))
        example = {
            "obs": jnp.zeros((obs_size,), jnp.float32),
            "action": jnp.zeros((action_size,), jnp.float32),
            "reward": jnp.zeros((), jnp.float32),
            "next_obs": jnp.zeros((obs_size,), jnp.float32),
            "discount": jnp.zeros((), jnp.float32),
        }
        return TrainState(
            sac=agent.init(k_sac),
            env_state=env_state,
            buffer=buffer_init(cfg.buffer_size, example),
            obs_stats=init_stats(obs_size),
            key=key,
            env_steps=jnp.zeros((), jnp.int32),
        )

    def iteration(ts: TrainState, reward_params: Any = None) -> tuple[TrainState, dict]:
        key, k_act, k_rand, k_upd = jax.random.split(ts.key, 4)
        obs = ts.env_state.obs
        policy_action = agent.act(k_act, ts.sac.actor_params, norm(ts.obs_stats, obs))
        random_action = jax.random.uniform(k_rand, policy_action.shape, minval=-1.0, maxval=1.0)
        warm = ts.env_steps < cfg.learning_starts
        action = jnp.where(warm, random_action, policy_action)
        env_state = jax.vmap(ep_env.step)(ts.env_state, action)
        terminal = env_state.done * (1.0 - env_state.truncation)
        transitions = {
            "obs": obs,
            "action": action,
            "reward": env_state.reward,
            "next_obs": env_state.next_obs,
            "discount": 1.0 - terminal,
        }
        buffer = buffer_add(ts.buffer, transitions)
        obs_stats = update_stats(ts.obs_stats, obs) if cfg.normalize_observations else ts.obs_stats
        env_steps = ts.env_steps + n_envs

        def one_update(sac: SACState, k: Any) -> tuple[SACState, dict[str, jax.Array]]:
            k_sample, k_step = jax.random.split(k)
            sample = buffer_sample(k_sample, buffer, (n_members, batch))
            if reward_fn is not None:
                sample = relabel(sample, reward_fn, reward_params)
            elif relabel_fn is not None:
                sample = relabel_fn(sample, reward_params)
            sample = {
                **sample,
                "obs": norm(obs_stats, sample["obs"]),
                "next_obs": norm(obs_stats, sample["next_obs"]),
            }
            return agent.update(k_step, sac, sample)

        def do_updates(sac: SACState) -> tuple[SACState, dict[str, jax.Array]]:
            sac, metrics = jax.lax.scan(
                one_update, sac, jax.random.split(k_upd, cfg.updates_per_step)
            )
            return sac, jax.tree.map(jnp.mean, metrics)

        def skip(sac: SACState) -> tuple[SACState, dict[str, jax.Array]]:
            return sac, jax.tree.map(jnp.zeros_like, jax.eval_shape(lambda: do_updates(sac)[1]))

        updating = env_steps >= cfg.learning_starts
        sac, metrics = jax.lax.cond(updating, do_updates, skip, ts.sac)
        ended = env_state.done
        metrics = {
            **metrics,
            "updated": updating.astype(jnp.float32),
            "episodes": jnp.sum(ended),
            "return_sum": jnp.sum(ended * env_state.episode_return),
        }
        return TrainState(sac, env_state, buffer, obs_stats, key, env_steps), metrics

    return init_fn, iteration


def make_chunks(
    cfg: SACConfig,
    env: Any | None = None,
    *,
    reward_fn: Callable[..., jax.Array] | None = None,
    evaluate_chunks: bool = True,
) -> tuple[Callable[[Any], TrainState], Callable[[TrainState], tuple[TrainState, dict]]]:
    """``(init_fn, chunk_fn)`` of a SAC run, for :func:`lions_jax._src.runner` style loops.

    Args:
      cfg: the run's config.
      env: a bare environment; default ``make_env(cfg.env, backend=cfg.backend)``.
      reward_fn: optional ``reward_fn(None, obs, action, next_obs)`` that replaces the
        environment's reward at sample time (see :func:`~lions_jax.rl.relabel`).
      evaluate_chunks: end each chunk with the deterministic evaluation (``False``: training
        only, e.g. to time throughput; ``eval_*`` metrics are then absent).
    """
    env = make_env(cfg.env, backend=cfg.backend) if env is None else env
    ep_env = EpisodeEnv(
        env,
        episode_length=cfg.episode_length,
        action_repeat=cfg.action_repeat,
        reset_mode=cfg.reset_mode,
    )
    agent = make_agent(cfg, int(env.observation_size), int(env.action_size))
    init_fn, step = make_iteration(cfg, ep_env, agent, reward_fn=reward_fn)
    norm = _norm_fn(cfg)

    def iteration(ts: TrainState, _: Any) -> tuple[TrainState, dict[str, jax.Array]]:
        return step(ts, None)

    def chunk_fn(ts: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
        ts, m = jax.lax.scan(iteration, ts, None, length=cfg.iters_per_chunk)
        episodes = jnp.sum(m["episodes"])
        updating = jnp.sum(m["updated"])
        metrics = {"env_steps": ts.env_steps}
        if evaluate_chunks:
            key, k_eval = jax.random.split(ts.key)
            ts = ts._replace(key=key)
            actor, stats = ts.sac.actor_params, ts.obs_stats
            ev = evaluate(
                k_eval,
                env,
                lambda o: agent.act(None, actor, norm(stats, o), deterministic=True),
                num_episodes=cfg.num_eval_envs,
                episode_length=cfg.episode_length,
                action_repeat=cfg.action_repeat,
            )
            metrics["eval_return"] = jnp.mean(ev["return"])
            metrics["eval_return_std"] = jnp.std(ev["return"])
            metrics["eval_length"] = jnp.mean(ev["length"].astype(jnp.float32))
        metrics["train_return"] = jnp.sum(m["return_sum"]) / jnp.maximum(episodes, 1)
        metrics["train_episodes"] = episodes
        for name in ("critic_loss", "actor_loss", "alpha", "entropy", "q", "q_member_std"):
            metrics[name] = jnp.sum(m[name]) / jnp.maximum(updating, 1)
        return ts, metrics

    return init_fn, chunk_fn


def make_train(
    cfg: SACConfig,
    env: Any | None = None,
    *,
    reward_fn: Callable[..., jax.Array] | None = None,
) -> Callable[[Any], tuple[TrainState, dict[str, jax.Array]]]:
    """``train(key) -> (final_state, metrics)``: the whole run in one ``lax.scan``.

    ``metrics`` holds one row per chunk (leading axis ``cfg.num_chunks``): ``env_steps``,
    ``eval_return`` (mean over ``num_eval_envs`` deterministic episodes), ``train_return``
    (mean over training episodes that ended in the chunk; 0 if none), losses, temperature,
    entropy, mean Q and the members' mean disagreement ``q_member_std``.

    Example:
        >>> import jax
        >>> cfg = SACConfig(env="point_mass", episode_length=20, total_steps=200, eval_every=100,
        ...                 learning_starts=50, batch_size=16, hidden=(8,), n_members=2)
        >>> keys = jax.random.split(jax.random.key(0), 3)  # run with jax.jit(jax.vmap(train))
        >>> _, metrics = jax.eval_shape(jax.vmap(make_train(cfg)), keys)
        >>> metrics["eval_return"].shape  # (seeds, chunks)
        (3, 2)
    """
    init_fn, chunk_fn = make_chunks(cfg, env, reward_fn=reward_fn)
    return runner.scan_chunks(init_fn, chunk_fn, cfg.num_chunks)


def run(
    cfg: SACConfig,
    out_dir: str | Path,
    *,
    env: Any | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    """Trains ``cfg.num_seeds`` seeds (vmapped) in jitted chunks with checkpoints in ``out_dir``.

    Calling it again on the same folder resumes from the last checkpoint and ends with exactly
    the metrics of an uninterrupted run. Returns the stacked final state and the metrics rows.
    """
    init_fn, chunk_fn = make_chunks(cfg, env)
    return runner.run_chunked(
        init_fn=init_fn,
        chunk_fn=chunk_fn,
        keys=runner.seed_keys(cfg.seed, cfg.num_seeds),
        num_chunks=cfg.num_chunks,
        steps_per_chunk=cfg.eval_every,
        out_dir=out_dir,
        desc=desc or f"sac {cfg.env} L={cfg.n_members}",
        progress=progress,
    )
