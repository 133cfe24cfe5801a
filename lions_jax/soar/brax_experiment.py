"""``soar-brax``: deep IL-SOAR vs its base methods and the ensemble-only ablation on brax.

For every base method in ``methods`` (spec §9, track B):

1. **σ tuning on separate seeds** — SOAR (L = ``n_members``, β = 1) for every σ in ``sigmas``
   on ``num_tune_seeds`` seeds that are *not* reported (seed ``seed + 1000``); σ* maximises the
   mean area under the return curve. (The SOAR code picks σ by AUC on the reported seeds.)
2. **report** on ``num_seeds`` seeds: the base method (L = 1), the **ensemble-only** ablation
   (L = ``n_members``, β = 0) and SOAR (L = ``n_members``, β = 1, σ*). The two ensemble arms
   (and the σ grid) share one compiled program: β and σ are vmapped like seeds.

The x-axis is **every environment step taken** — SAC's plus the reward-update rollouts (the
paper's x-axis omits the latter). Reported per arm: final return and AUC (mean return over the
evaluations) with the spread over seeds; steps until the return first reaches
``threshold_frac`` × the expert's deterministic return (per seed); and, as in the paper, the
ratio "steps for the arm's mean curve to reach the base's final return / steps the base needs",
which the SOAR paper reports as about 0.5.

Expert data: ``lions-jax run expert --env ENV`` (created on the fly in the run folder's
``expert/`` if missing, and cached). The quick preset is inverted_pendulum on 2 CPU cores with a
10× shorter SAC phase per iteration than the paper (500 steps, 2 reward rollouts) and a 10×
larger reward learning rate (1e-3: the paper's 1e-4 barely moves the reward in 32 steps); the
``paper`` preset is hopper with the SOAR code's settings, a GPU run.
"""

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lions_jax._src import registry, results, runner
from lions_jax._src.config import config_to_dict
from lions_jax.rl import expert as expert_io
from lions_jax.rl.envs import make_env
from lions_jax.soar import deep

__all__ = ["PRESETS", "SoarBraxConfig", "load_expert", "run"]

_DEEP_FIELDS = tuple(f.name for f in dataclasses.fields(deep.DeepSoarConfig))


@dataclasses.dataclass(frozen=True, kw_only=True)
class SoarBraxConfig(deep.DeepSoarConfig):
    """``soar-brax``: :class:`~lions_jax.soar.deep.DeepSoarConfig` fields plus the grid.

    Attributes:
      methods: base methods (the inherited ``method`` is not used).
      sigmas: σ grid tuned on the tuning seeds (β = 1).
      num_tune_seeds: seeds used only to pick σ.
      threshold_frac: steps-to-threshold target as a fraction of the expert's return.
      expert_data: folder of a demonstration set; empty = :func:`lions_jax.rl.expert.expert_dir`.
      expert_policy: ``"stochastic"`` (the SOAR code's) or ``"deterministic"`` demonstrations.
    """

    methods: tuple[str, ...] = ("mlirl_sa", "firl_rkl", "csil")
    sigmas: tuple[float, ...] = (1.0, 10.0)
    num_tune_seeds: int = 3
    threshold_frac: float = 0.9
    expert_data: str = ""
    expert_policy: str = "stochastic"

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [m for m in self.methods if m not in deep.METHODS]
        if not self.methods or bad:
            raise ValueError(
                f"methods must be a non-empty subset of {deep.METHODS}, got {self.methods}"
            )
        if not self.sigmas or min(self.sigmas) <= 0:
            raise ValueError(f"sigmas must be non-empty and positive, got {self.sigmas}")
        if self.n_members < 2:
            raise ValueError(f"n_members must be >= 2 for the ensemble arms, got {self.n_members}")
        if self.num_tune_seeds < 1 or not 0 < self.threshold_frac <= 1:
            raise ValueError("num_tune_seeds must be >= 1 and threshold_frac in (0, 1]")
        if self.expert_policy not in ("stochastic", "deterministic"):
            raise ValueError(
                f"expert_policy must be stochastic or deterministic, got {self.expert_policy!r}"
            )


_QUICK = dict(
    env="inverted_pendulum",
    hidden=(64, 64),
    reward_hidden=(64, 64),
    total_steps=16_000,
    eval_every=2_000,
    sac_steps_per_itr=500,
    reward_rollouts=2,
    reward_lr=1e-3,
    num_demos=4,
    num_eval_envs=4,
    learning_starts=1_000,
    disc_iters=200,
    disc_batch=256,
    bc_steps=1_000,
    num_seeds=3,
    num_tune_seeds=2,
)
PRESETS = {
    "quick": SoarBraxConfig(**_QUICK),
    "tiny": SoarBraxConfig(  # the test suite's: the point-mass env, seconds
        **{
            **_QUICK,
            "env": "point_mass",
            "episode_length": 20,
            "hidden": (8,),
            "reward_hidden": (8,),
            "total_steps": 80,
            "eval_every": 40,
            "sac_steps_per_itr": 20,
            "learning_starts": 20,
            "batch_size": 8,
            "num_demos": 2,
            "num_eval_envs": 2,
            "disc_iters": 2,
            "disc_batch": 8,
            "bc_steps": 5,
            "bc_batch": 8,
            "num_seeds": 2,
            "num_tune_seeds": 2,  # 2 sigmas x 2 seeds: the same program as the ensemble arms
            "methods": ("mlirl_sa",),
        }
    ),
    "paper": SoarBraxConfig(
        env="hopper",
        methods=("mlirl_sa", "firl_rkl", "csil"),
        sigmas=(1.0, 10.0, 50.0),
        total_steps=1_000_000,
        num_seeds=5,
        num_tune_seeds=3,
    ),
}


def load_expert(
    cfg: SoarBraxConfig, out_dir: Path, *, progress: bool = True, expert_steps: int = 0
) -> tuple[dict, dict]:
    """``(demos, summary)``: the ``cfg.expert_policy`` set of ``cfg.env``'s expert data.

    Cached data (``cfg.expert_data`` or :func:`~lions_jax.rl.expert.expert_dir`) are loaded;
    missing data are produced by the ``expert`` experiment in ``out_dir/expert`` (its quick
    preset for inverted_pendulum, else its GPU preset; ``expert_steps`` > 0 overrides the
    budget). The point-mass test env's expert is its greedy controller.
    """
    directory = (
        Path(cfg.expert_data) if cfg.expert_data else expert_io.expert_dir(cfg.env, cfg.backend)
    )
    if cfg.env in ("point_mass",):  # the test env: the greedy controller is the expert
        env = make_env(cfg.env)
        demos = expert_io.collect_demonstrations(
            jax.random.key(cfg.seed + 7),
            env,
            lambda k, o: env.optimal_action(o),
            num_episodes=cfg.num_demos,
            episode_length=cfg.episode_length,
        )
        demos = jax.tree.map(np.asarray, demos)
        return demos, {"returns": {"deterministic": results.summarize(demos["returns"])}}
    if not (directory / expert_io.SUMMARY_FILE).is_file():
        if cfg.expert_data:
            raise FileNotFoundError(f"expert_data: no demonstrations in {directory}")
        from lions_jax.rl.experiment import EXPERT_PRESETS, run_expert

        preset = EXPERT_PRESETS["quick" if cfg.env == "inverted_pendulum" else "paper"]
        run_expert(
            dataclasses.replace(
                preset,
                env=cfg.env,
                backend=cfg.backend,
                episode_length=cfg.episode_length,
                total_steps=expert_steps or preset.total_steps,
            ),
            out_dir / "expert",
            progress=progress,
        )
    demos, summary = expert_io.load_demonstrations(directory)
    return demos[cfg.expert_policy], summary


def _stats(curve: np.ndarray) -> dict[str, Any]:
    return {"final": results.summarize(curve[-1]), "auc": results.summarize(curve.mean(axis=0))}


def _first_reach(samples: np.ndarray, curve: np.ndarray, target: float) -> float | None:
    hit = np.nonzero(curve >= target)[0]
    return float(samples[hit[0]]) if hit.size else None


def run(cfg: SoarBraxConfig, out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    expert, expert_summary = load_expert(cfg, out_dir, progress=progress)
    expert_return = float(expert_summary["returns"]["deterministic"]["mean"])
    target = cfg.threshold_frac * expert_return
    env = make_env(cfg.env, backend=cfg.backend)
    n_arms_l = len(cfg.sigmas)
    summary: dict[str, Any] = {"expert_return": expert_return, "threshold": target, "methods": {}}
    rows, table, ratio_table = [], [], []

    def launch(
        method: str,
        n_members: int,
        betas: list[float],
        sigmas: list[float],
        seed: int,
        n: int,
        name: str,
    ):
        sub = deep.DeepSoarConfig(
            **{f: getattr(cfg, f) for f in _DEEP_FIELDS if f not in ("method", "n_members")},
            method=method,
            n_members=n_members,
        )
        init_fn, chunk_fn = deep.make_chunks(sub, expert, env)
        keys = runner.seed_keys(seed, n)
        runs = {
            "key": jnp.concatenate([keys] * len(betas)),
            "beta": jnp.repeat(jnp.asarray(betas, jnp.float32), n),
            "sigma": jnp.repeat(jnp.asarray(sigmas, jnp.float32), n),
        }
        t_arm = time.perf_counter()
        _, arm_rows = runner.run_chunked(
            init_fn=init_fn,
            chunk_fn=chunk_fn,
            keys=runs,
            num_chunks=sub.num_chunks,
            steps_per_chunk=sub.eval_every,
            out_dir=out_dir / "runs" / name,
            desc=f"soar {name}",
            progress=progress,
        )
        stacked = results.stack_metrics(arm_rows)
        split = lambda x: np.asarray(x).reshape(x.shape[0], len(betas), n)  # noqa: E731
        return {k: split(v) for k, v in stacked.items() if k != "step"}, time.perf_counter() - t_arm

    for method in cfg.methods:
        # 1. sigma on tuning seeds (never reported)
        tune, tune_wall = launch(
            method,
            cfg.n_members,
            [1.0] * n_arms_l,
            list(cfg.sigmas),
            cfg.seed + 1000,
            cfg.num_tune_seeds,
            f"{method}-tune",
        )
        tune_auc = tune["eval_return"].mean(axis=0).mean(axis=-1)  # (sigmas,)
        sigma = float(cfg.sigmas[int(np.argmax(tune_auc))])
        # 2. reported seeds: base (L = 1), ensemble only (beta = 0) and SOAR (beta = 1, sigma*)
        base, base_wall = launch(
            method, 1, [0.0], [sigma], cfg.seed, cfg.num_seeds, f"{method}-base"
        )
        ens, ens_wall = launch(
            method,
            cfg.n_members,
            [0.0, 1.0],
            [sigma, sigma],
            cfg.seed,
            cfg.num_seeds,
            f"{method}-L{cfg.n_members}",
        )
        arms = {
            "base (L=1)": {k: v[:, 0] for k, v in base.items()},
            f"ensemble only (L={cfg.n_members}, β=0)": {k: v[:, 0] for k, v in ens.items()},
            f"SOAR (L={cfg.n_members}, β=1, σ={sigma:g})": {k: v[:, 1] for k, v in ens.items()},
        }
        walls = [base_wall, ens_wall / 2, ens_wall / 2]
        base_curve = arms["base (L=1)"]["eval_return"]  # (chunks, seeds)
        base_final = float(base_curve[-1].mean())
        base_x = arms["base (L=1)"]["samples"].mean(axis=1)
        base_reach = _first_reach(base_x, base_curve.mean(axis=1), base_final)
        m_summary = {
            "sigma": sigma,
            "tune_auc": dict(zip(map(str, cfg.sigmas), tune_auc.tolist())),
            "tune_wall_s": tune_wall,
            "arms": {},
        }
        for (label, arm), wall in zip(arms.items(), walls):
            curve, samples = arm["eval_return"], arm["samples"]
            x = samples.mean(axis=1)
            per_seed = [
                _first_reach(samples[:, i], curve[:, i], target) for i in range(curve.shape[1])
            ]
            reach = _first_reach(x, curve.mean(axis=1), base_final)
            ratio = reach / base_reach if reach is not None and base_reach else None
            stats = _stats(curve)
            m_summary["arms"][label] = {
                **stats,
                "steps_to_threshold": per_seed,
                "samples_to_base_final": reach,
                "ratio_to_base": ratio,
                "total_samples": float(x[-1]),
                "sac_env_steps": float(arm["env_steps"].mean(axis=1)[-1]),
                "wall_time_s": wall,
            }
            reached = [s for s in per_seed if s is not None]
            table.append(
                [
                    method,
                    label,
                    results.format_mean_std(stats["final"], 1),
                    results.format_mean_std(stats["auc"], 1),
                    f"{np.mean(reached):.0f} ({len(reached)}/{len(per_seed)})"
                    if reached
                    else f"never (0/{len(per_seed)})",
                    "—" if ratio is None else f"{ratio:.2f}",
                    f"{x[-1]:.0f}",
                ]
            )
            for c in range(curve.shape[0]):
                rows.append(
                    {
                        "method": method,
                        "arm": label,
                        "chunk": c,
                        **{k: v[c].tolist() for k, v in arm.items()},
                    }
                )
        summary["methods"][method] = m_summary
        ratio_table.append(
            [
                method,
                f"{sigma:g}",
                ", ".join(f"{s:g}: {a:.1f}" for s, a in zip(cfg.sigmas, tune_auc)),
            ]
        )
        results.plot_curves(
            out_dir / f"return_{method}.png",
            base_x,
            {label: arm["eval_return"] for label, arm in arms.items()},
            xlabel="environment steps (incl. reward-update rollouts; base arm's x)",
            ylabel="return (deterministic policy)",
            title=f"{method} on brax {cfg.env}",
        )
    text = (
        f"# soar-brax: {cfg.env} ({cfg.backend}), {cfg.num_seeds} seeds\n\n"
        f"Expert (deterministic) return {expert_return:.1f}; threshold "
        f"{cfg.threshold_frac:g} × expert = {target:.1f}. x-axis: every environment step, "
        f"reward-update rollouts included ({cfg.sac_steps_per_itr} SAC steps + "
        f"{cfg.reward_rollouts} rollouts of ≤ {cfg.episode_length} steps per iteration; CSIL has "
        "no rollouts).\n\n"
        + results.markdown_table(
            [
                "method",
                "arm",
                "final return",
                "AUC (mean return over evals)",
                "steps to threshold (seeds reaching)",
                "steps to base's final / base's",
                "total env steps",
            ],
            table,
        )
        + "\nσ picked on separate tuning seeds (mean AUC per σ):\n\n"
        + results.markdown_table(["method", "σ*", "tuning AUC by σ"], ratio_table)
    )
    return results.write_outputs(
        out_dir,
        experiment="soar-brax",
        config=config_to_dict(cfg),
        table=text,
        rows=rows,
        summary=summary,
        wall_time_s=time.perf_counter() - t0,
    )


registry.register(
    registry.Experiment(
        name="soar-brax",
        description="Deep IL-SOAR on brax: {ML-IRL, f-IRL, CSIL} × {base, SOAR, ensemble only}.",
        config_type=SoarBraxConfig,
        presets=PRESETS,
        run=run,
    )
)
