"""Experiments ``sac-brax`` (SAC with L = 1 vs L = 4 critic pairs on brax) and ``expert``.

``sac-brax``: for every environment in ``envs`` and every ensemble size in ``members``, SAC
(actor on the mean of the members' pair-mins, ``beta = 0``) over ``num_seeds`` vmapped seeds;
return of the deterministic policy vs environment steps with the spread over seeds, final
return, area under the curve, and environment steps until the return first reaches 90 % of the
best arm's final mean. The quick preset is inverted_pendulum on the generalized backend (2-core
CPU, minutes); the paper preset runs hopper, halfcheetah, ant and walker2d with brax's published
hopper SAC settings (128 envs, batch 512, 32 updates per step) for 1 M steps, a GPU run.

``expert``: trains SAC on ``env`` (``lions-jax run expert --env hopper``), keeps the seed with the
best final evaluation, and saves ``num_demos`` stochastic and ``num_demos`` deterministic
episodes plus the policy to :func:`~lions_jax.rl.expert.expert_dir` (``$LIONS_JAX_DATA`` or
``~/.cache/lions_jax``), never into the repository. ``total_steps=0`` (the default) picks a
per-environment budget from :data:`EXPERT_STEPS`.
"""

import dataclasses
import functools
import math
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from lions_jax._src import registry, results
from lions_jax._src.config import config_to_dict
from lions_jax.rl import expert as expert_io
from lions_jax.rl import train as sac_train
from lions_jax.rl.envs import make_env
from lions_jax.rl.normalization import normalize

__all__ = ["EXPERT_STEPS", "ExpertConfig", "SACBraxConfig", "run_expert", "run_sac_brax"]

_SAC_FIELDS = tuple(f.name for f in dataclasses.fields(sac_train.SACConfig))


def _sac_config(cfg: Any, **changes: Any) -> sac_train.SACConfig:
    values = {name: getattr(cfg, name) for name in _SAC_FIELDS}
    values.update(changes)
    return sac_train.SACConfig(**values)


# ---- sac-brax -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, kw_only=True)
class SACBraxConfig(sac_train.SACConfig):
    """``sac-brax``: :class:`~lions_jax.rl.SACConfig` fields plus the grid.

    Attributes:
      envs: environments to run (the inherited ``env`` field is not used).
      members: ensemble sizes L to compare (``n_members`` is not used).
    """

    envs: tuple[str, ...] = ("inverted_pendulum",)
    members: tuple[int, ...] = (1, 4)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.envs or not self.members or min(self.members) < 1:
            raise ValueError(
                f"envs must be non-empty and members >= 1, got {self.envs}, {self.members}"
            )


# SAC settings that solve inverted_pendulum on 2 CPU cores in ~15k steps.
_CPU_SAC = dict(hidden=(64, 64), actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3, num_eval_envs=4)
# brax's published hopper SAC settings (notebooks/training.ipynb): a GPU run.
_BRAX_HOPPER_SAC = dict(
    eval_every=50_048,
    num_envs=128,
    batch_size=512,
    updates_per_step=32,
    learning_starts=8_192,
    gamma=0.997,
    actor_lr=6e-4,
    critic_lr=6e-4,
    alpha_lr=6e-4,
    reward_scale=30.0,
    normalize_observations=True,
    num_eval_envs=16,
)

SAC_PRESETS = {
    "quick": SACBraxConfig(
        envs=("inverted_pendulum",),
        members=(1, 4),
        total_steps=20_000,
        eval_every=2_000,
        learning_starts=1_000,
        **_CPU_SAC,
        num_seeds=3,
    ),
    # brax's published hopper SAC settings (notebooks/training.ipynb), 1 M instead of 6.55 M steps.
    "paper": SACBraxConfig(
        envs=("hopper", "halfcheetah", "ant", "walker2d"),
        members=(1, 4),
        total_steps=1_000_000,
        **_BRAX_HOPPER_SAC,
        num_seeds=3,
    ),
}


def _steps_to(curve: np.ndarray, steps: np.ndarray, threshold: float) -> list[float | None]:
    out = []
    for seed_curve in curve.T:
        hit = np.nonzero(seed_curve >= threshold)[0]
        out.append(float(steps[hit[0]]) if hit.size else None)
    return out


def run_sac_brax(cfg: SACBraxConfig, out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    rows, summary, table = [], {"arms": {}}, []
    for env_name in cfg.envs:
        curves, steps = {}, None
        for n_members in cfg.members:
            arm = f"{env_name}-L{n_members}"
            sub = _sac_config(cfg, env=env_name, n_members=n_members)
            t_arm = time.perf_counter()
            _, arm_rows = sac_train.run(
                sub, out_dir / "runs" / arm, progress=progress, desc=f"sac {arm}"
            )
            wall = time.perf_counter() - t_arm
            stacked = results.stack_metrics(arm_rows)
            steps = stacked["step"]
            curve = stacked["eval_return"]  # (chunks, seeds)
            curves[n_members] = curve
            summary["arms"][arm] = {
                "env": env_name,
                "n_members": n_members,
                "final_return": results.summarize(curve[-1]),
                "auc_return": results.summarize(curve.mean(axis=0)),
                "wall_time_s": wall,
                "env_steps": int(steps[-1]),
            }
            rows += [{"env": env_name, "n_members": n_members, **r} for r in arm_rows]
        best_final = max(float(c[-1].mean()) for c in curves.values())
        threshold = 0.9 * best_final
        for n_members, curve in curves.items():
            arm = summary["arms"][f"{env_name}-L{n_members}"]
            arm["threshold"] = threshold
            arm["steps_to_threshold"] = _steps_to(curve, steps, threshold)
            reached = [s for s in arm["steps_to_threshold"] if s is not None]
            table.append(
                [
                    env_name,
                    n_members,
                    results.format_mean_std(arm["final_return"], 1),
                    results.format_mean_std(arm["auc_return"], 1),
                    f"{np.mean(reached):.0f} ({len(reached)}/{curve.shape[1]})"
                    if reached
                    else "never",
                    f"{arm['wall_time_s']:.0f}",
                ]
            )
        results.plot_curves(
            out_dir / f"return_{env_name}.png",
            steps,
            {f"L = {m}": c for m, c in curves.items()},
            xlabel="environment steps",
            ylabel="return (deterministic policy)",
            title=f"SAC on brax {env_name} ({cfg.backend})",
        )
    text = (
        f"# sac-brax ({cfg.num_seeds} seeds, {cfg.backend} backend)\n\n"
        + results.markdown_table(
            [
                "env",
                "L",
                "final return",
                "mean return over evals (AUC)",
                "steps to 90% of best final (seeds reaching)",
                "wall s",
            ],
            table,
        )
    )
    return results.write_outputs(
        out_dir,
        experiment="sac-brax",
        config=config_to_dict(cfg),
        table=text,
        rows=rows,
        summary=summary,
        wall_time_s=time.perf_counter() - t0,
    )


# ---- expert -------------------------------------------------------------------------------------
# Default SAC budgets per environment: the CPU-sized ones reach the maximal return on a 2-core
# machine; the locomotion ones are GPU-sized and reported as reached, not promised.
EXPERT_STEPS = {
    "point_mass": 5_000,
    "inverted_pendulum": 20_000,
    "inverted_double_pendulum": 100_000,
    "reacher": 200_000,
    "hopper": 1_000_000,
    "walker2d": 1_000_000,
    "halfcheetah": 1_000_000,
    "ant": 1_000_000,
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExpertConfig(sac_train.SACConfig):
    """``expert``: SAC fields plus the demonstration set.

    Attributes:
      total_steps: 0 picks :data:`EXPERT_STEPS` for ``env`` (1 M for unlisted envs).
      num_demos: episodes per set (stochastic and deterministic policy).
      data_dir: data root (empty: ``$LIONS_JAX_DATA`` or ``~/.cache/lions_jax``).
    """

    total_steps: int = 0
    num_demos: int = 64
    data_dir: str = ""

    def __post_init__(self) -> None:
        self.sac_config()  # validates the resolved SAC config
        if self.num_demos < 1:
            raise ValueError(f"num_demos must be >= 1, got {self.num_demos}")

    def sac_config(self) -> sac_train.SACConfig:
        steps = self.total_steps or EXPERT_STEPS.get(self.env, 1_000_000)
        steps = self.eval_every * math.ceil(steps / self.eval_every)
        return _sac_config(self, total_steps=steps)


EXPERT_PRESETS = {
    "quick": ExpertConfig(
        env="inverted_pendulum",
        eval_every=2_000,
        **_CPU_SAC,
        num_seeds=2,
    ),
    "paper": ExpertConfig(
        env="hopper",
        **_BRAX_HOPPER_SAC,
        num_seeds=2,
    ),
}


def run_expert(cfg: ExpertConfig, out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    sac_cfg = cfg.sac_config()
    env = make_env(cfg.env, backend=cfg.backend)
    state, rows = sac_train.run(
        sac_cfg, out_dir / "train", env=env, progress=progress, desc=f"expert {cfg.env}"
    )
    finals = np.asarray(rows[-1]["eval_return"], dtype=np.float64).reshape(-1)
    best = int(np.argmax(finals))
    actor = jax.tree.map(lambda x: x[best], state.sac.actor_params)
    stats = jax.tree.map(lambda x: x[best], state.obs_stats)
    agent = sac_train.make_agent(sac_cfg, env.observation_size, env.action_size)

    def policy(deterministic: bool) -> Any:
        def act(key: Any, obs: Any) -> Any:
            obs = normalize(stats, obs) if cfg.normalize_observations else obs
            return agent.act(key, actor, obs, deterministic=deterministic)

        return act

    key = jax.random.fold_in(jax.random.key(cfg.seed), 1)
    demos = {}
    for i, name in enumerate(("stochastic", "deterministic")):
        collect = jax.jit(
            functools.partial(
                expert_io.collect_demonstrations,
                env=env,
                policy=policy(name == "deterministic"),
                num_episodes=cfg.num_demos,
                episode_length=cfg.episode_length,
                action_repeat=cfg.action_repeat,
            )
        )
        demos[name] = collect(jax.random.fold_in(key, i))
    demos["policy"] = {"actor_params": actor, "obs_stats": stats._asdict()}
    returns = {
        n: results.summarize(np.asarray(demos[n]["returns"]))
        for n in ("stochastic", "deterministic")
    }
    lengths = {n: float(np.mean(demos[n]["lengths"])) for n in ("stochastic", "deterministic")}
    target = expert_io.expert_dir(cfg.env, cfg.backend, cfg.data_dir or None)
    meta = {
        "env": cfg.env,
        "backend": cfg.backend,
        "algorithm": "sac (lions_jax.rl)",
        "episode_length": cfg.episode_length,
        "num_demos": cfg.num_demos,
        "returns": returns,
        "mean_lengths": lengths,
        "best_seed": best,
        "train_final_eval_returns": finals.tolist(),
        "config": config_to_dict(cfg),
    }
    expert_io.save_demonstrations(target, demos, meta)
    stacked = results.stack_metrics(rows)
    results.plot_curves(
        out_dir / "expert_training.png",
        stacked["step"],
        {"SAC": stacked["eval_return"]},
        xlabel="environment steps",
        ylabel="return (deterministic policy)",
        title=f"expert training on {cfg.env} ({cfg.backend})",
    )
    table = (
        f"# expert: SAC on {cfg.env} ({cfg.backend}), {sac_cfg.total_steps} env steps\n\n"
        + results.markdown_table(
            ["policy", "episodes", "return", "mean length"],
            [
                [n, cfg.num_demos, results.format_mean_std(returns[n], 1), f"{lengths[n]:.1f}"]
                for n in ("stochastic", "deterministic")
            ],
        )
        + f"\nSaved to `{target}` (best of {finals.size} seeds: final evaluation "
        + ", ".join(f"{f:.1f}" for f in finals)
        + ").\n"
    )
    return results.write_outputs(
        out_dir,
        experiment="expert",
        config=config_to_dict(cfg),
        table=table,
        rows=rows,
        summary={"dataset": str(target), **meta},
        wall_time_s=time.perf_counter() - t0,
    )


registry.register(
    registry.Experiment(
        name="sac-brax",
        description="SAC with L = 1 vs L = 4 critic pairs on brax: return vs env steps over seeds.",
        config_type=SACBraxConfig,
        presets=SAC_PRESETS,
        run=run_sac_brax,
    )
)
registry.register(
    registry.Experiment(
        name="expert",
        description="Train a SAC expert on a brax env and save stochastic + deterministic demos.",
        config_type=ExpertConfig,
        presets=EXPERT_PRESETS,
        run=run_expert,
    )
)
