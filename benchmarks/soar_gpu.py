"""Deep IL-SOAR on one accelerator: {ML-IRL(SA), CSIL} × {base, ensemble only, SOAR}, seeds vmapped.

One jitted program per method holds every arm: the base (L = 1) runs and the L = 4 runs with
β ∈ {0 (ensemble only), 1 (SOAR, σ = ``--sigma``)}, ``--seeds`` seeds each, paired keys. It
records per arm the final and mean (AUC) return of the deterministic policy, the environment steps
taken (SAC's and the reward-update rollouts', all counted), the wall-clock of the whole program
and the cost of the ensemble relative to the base (``ensemble_cost_ratio``: the L = 4 runs'
share of the program time per run ÷ the base runs', measured by timing each part alone).

Sizing (spec §10): the first chunk is timed and the number of chunks is cut so the projected
run fits ``--budget-s`` (default 300 s); the rows say how many steps actually ran. Expert data:
``$LIONS_JAX_DATA/experts/<env>-generalized`` (``lions-jax run expert --env hopper``) or, when
missing, the `expert` experiment run here (brax hopper SAC, 200k steps; reported with its return).

    python benchmarks/soar_gpu.py --device gpu            # hopper, 8 seeds, <= 300k steps
    python benchmarks/soar_gpu.py --device cpu --tiny     # point-mass smoke run
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common
import jax
import jax.numpy as jnp
import numpy as np

from lions_jax._src import runner
from lions_jax.rl import make_env
from lions_jax.soar.brax_experiment import SoarBraxConfig, load_expert
from lions_jax.soar.deep import DeepSoarConfig, make_chunks

BENCH = "soar_gpu"


def settings(args):
    if args.tiny:
        return (
            dict(
                env="point_mass",
                episode_length=20,
                hidden=(16, 16),
                reward_hidden=(16,),
                total_steps=400,
                eval_every=200,
                sac_steps_per_itr=100,
                learning_starts=100,
                reward_rollouts=2,
                num_demos=2,
                batch_size=16,
                num_eval_envs=2,
                bc_steps=20,
            ),
            2,
            200,
        )
    # the SOAR code's networks and reward players; 32 envs and 8 updates per iteration (an update
    # every 4 environment steps) so that 300k steps fit minutes instead of 300k sequential updates
    return (
        dict(
            env="hopper",
            total_steps=300_000,
            eval_every=20_000,
            sac_steps_per_itr=5_000,
            num_envs=32,
            updates_per_step=8,
            batch_size=256,
            learning_starts=10_000,
            reward_rollouts=10,
            num_demos=16,
            num_eval_envs=8,
        ),
        8,
        200_000,
    )


def load_or_train_expert(args, base_cfg, expert_steps):
    """The experiment's expert loader (trains and caches brax's hopper SAC expert if missing)."""
    cfg = SoarBraxConfig(**base_cfg)
    t0 = time.perf_counter()
    demos, summary = load_expert(
        cfg, Path(args.out) / "soar_gpu", progress=False, expert_steps=expert_steps
    )
    return demos, float(summary["returns"]["deterministic"]["mean"]), time.perf_counter() - t0


def main():
    p_args = _common.parse_args(__doc__.splitlines()[0])
    base_cfg, seeds, expert_steps = settings(p_args)
    budget = 20.0 if p_args.tiny else 300.0
    sigma = 10.0
    env = make_env(base_cfg["env"])
    expert, expert_return, expert_s = load_or_train_expert(p_args, base_cfg, expert_steps)
    for method in ("mlirl_sa", "csil"):
        programs = {}
        for members in (1, 4):
            cfg = DeepSoarConfig(**base_cfg, method=method, n_members=members, sigma=sigma)
            init_fn, chunk_fn = make_chunks(cfg, expert, env)
            keys = runner.seed_keys(0, seeds)
            betas = [0.0] if members == 1 else [0.0, 1.0]
            runs = {
                "key": jnp.concatenate([keys] * len(betas)),
                "beta": jnp.repeat(jnp.asarray(betas, jnp.float32), seeds),
                "sigma": jnp.full(len(betas) * seeds, sigma, jnp.float32),
            }
            programs[members] = (cfg, jax.jit(jax.vmap(init_fn))(runs), jax.jit(jax.vmap(chunk_fn)))

        def one_chunk(states, programs=programs):
            return [programs[m][2](s) for m, s in zip((1, 4), states)]

        states = [programs[m][1] for m in (1, 4)]
        t0 = time.perf_counter()
        outs = one_chunk(states)  # compiles and runs the first chunk
        jax.block_until_ready(outs)
        first_s = time.perf_counter() - t0
        timings = {}
        for m in (1, 4):  # steady-state time of each part alone (second chunk)
            t = time.perf_counter()
            out = programs[m][2](outs[(1, 4).index(m)][0])
            jax.block_until_ready(out)
            timings[m] = time.perf_counter() - t
        cfg1 = programs[1][0]
        per_chunk = timings[1] + timings[4]
        chunks = max(2, min(cfg1.num_chunks, int((budget - first_s) / per_chunk)))
        states = [programs[m][1] for m in (1, 4)]
        rows = {1: [], 4: []}
        t_run = time.perf_counter()
        for _ in range(chunks):
            outs = one_chunk(states)
            states = [o[0] for o in outs]
            for m, o in zip((1, 4), outs):
                rows[m].append(jax.device_get(o[1]))
        wall = time.perf_counter() - t_run
        arms = {
            "base": (rows[1], slice(0, seeds)),
            "ensemble_only": (rows[4], slice(0, seeds)),
            "soar": (rows[4], slice(seeds, 2 * seeds)),
        }
        for arm, (r, sl) in arms.items():
            curve = np.stack([np.asarray(x["eval_return"])[sl] for x in r])  # (chunks, seeds)
            samples = np.stack([np.asarray(x["samples"])[sl] for x in r])
            _common.emit(
                p_args,
                BENCH,
                {
                    "env": base_cfg["env"],
                    "method": method,
                    "arm": arm,
                    "n_members": 1 if arm == "base" else 4,
                    "beta": 1.0 if arm == "soar" else 0.0,
                    "sigma": sigma,
                    "seeds": seeds,
                    "dtype": "float32",
                    "shapes": {
                        "hidden": list(cfg1.hidden),
                        "num_envs": cfg1.num_envs,
                        "batch_size": cfg1.batch_size,
                        "updates_per_step": cfg1.updates_per_step,
                    },
                    # per-run milliseconds of one chunk (eval_every SAC steps + rollouts + eval);
                    # the two L = 4 arms share one vmapped program, so each gets half of it
                    "median_ms": (timings[1] / seeds if arm == "base" else timings[4] / (2 * seeds))
                    * 1e3,
                    "compile_s": max(first_s - timings[1] - timings[4], 0.0),
                    "temp_bytes": None,
                    "baseline": "base method (L=1), same seeds",
                    "baseline_median_ms": timings[1] / seeds * 1e3,
                    "speedup_vs_baseline": (timings[1] / seeds)
                    / (timings[1] / seeds if arm == "base" else timings[4] / (2 * seeds)),
                    "sac_env_steps": chunks * cfg1.eval_every,
                    "total_env_steps_mean": float(samples[-1].mean()),
                    "final_return_mean": float(curve[-1].mean()),
                    "final_return_std": float(curve[-1].std()),
                    "auc_return_mean": float(curve.mean()),
                    "expert_return": expert_return,
                    "expert_train_s": expert_s,
                    "first_chunk_s_incl_compile": first_s,
                    "program_wall_s": wall,
                    "chunk_ms_base": timings[1] * 1e3,
                    "chunk_ms_L4_two_arms": timings[4] * 1e3,
                    "ensemble_cost_ratio": (timings[4] / 2) / timings[1],
                    "returns_per_chunk": curve.mean(axis=1).round(1).tolist(),
                },
            )


if __name__ == "__main__":
    main()
