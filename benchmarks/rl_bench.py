"""SAC throughput: environment steps per second of lions_jax.rl SAC (L = 1 and 4) vs a baseline.

Each row times one jitted *epoch* of ``K`` training iterations (``num_envs`` environment steps
plus ``updates_per_step`` SAC updates each, no evaluation), median over ``--iters`` epochs after
warm-up; compile time is reported separately. Baselines, measured in the same process:

* ``brax-sac`` (where ``brax.training`` runs, i.e. jax <= 0.10): ``brax.training.agents.sac``
  on the same environment, number of envs, batch, updates per step, network widths and replay
  size; its steady-state ``training/sps`` of the last epoch (the first includes compilation).
  ``speedup_vs_baseline`` = our steps/s ÷ brax's.
* ``physics`` (always, and the only one on jax 0.11, where ``brax.training`` calls the removed
  ``jax.device_put_replicated``): a jitted ``lax.scan`` of uniform random actions through the same
  wrapped environment with ``physics_envs`` envs (2,048 on a GPU). ``fraction_of_physics`` = our
  steps/s ÷ raw physics steps/s; ``physics_share`` = the time our epoch spends in physics (the
  same envs, steps and actions without updates) ÷ the whole epoch.

    python benchmarks/rl_bench.py --device cpu [--tiny]   # --tiny: env "fast", no brax baseline
    python benchmarks/rl_bench.py --device gpu      # brax's hopper SAC settings
"""

import functools
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common
import jax
import jax.numpy as jnp
import numpy as np

from lions_jax.rl import EpisodeEnv, SACConfig, make_env
from lions_jax.rl.train import make_chunks

BENCH = "rl"


def settings(args):
    if args.tiny:
        return (
            ["fast"],
            dict(num_envs=2, batch_size=16, updates_per_step=2, hidden=(16, 16)),
            20,
            64,
        )
    if args.device == "cpu":
        base = dict(num_envs=16, batch_size=256, updates_per_step=16, hidden=(256, 256))
        return ["inverted_pendulum", "hopper"], base, 20, 256
    # brax's published hopper SAC settings (128 envs, batch 512), 32 updates per env step
    base = dict(num_envs=128, batch_size=512, updates_per_step=32, hidden=(256, 256))
    return ["hopper", "inverted_pendulum"], base, 20, 2048


def sac_config(env_name, base, iters, members):
    return SACConfig(
        env=env_name,
        n_members=members,
        eval_every=iters * base["num_envs"],
        total_steps=iters * base["num_envs"],
        learning_starts=0,
        buffer_size=100_000,
        reset_mode="initial",  # brax's AutoResetWrapper semantics, for a like-for-like comparison
        gamma=0.99,
        **base,
    )


def time_ours(args, env, cfg):
    init_fn, chunk_fn = make_chunks(cfg, env, evaluate_chunks=False)
    state = jax.jit(init_fn)(jax.random.key(0))
    compiled, compile_s, mem = _common.compile_fn(chunk_fn, state)
    # warm the buffer so updates sample real transitions; the state is threaded through epochs
    state, _ = compiled(state)
    times = []
    for _ in range(max(args.iters, 3)):
        t0 = time.perf_counter()
        state, m = compiled(state)
        jax.block_until_ready(m)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2], compile_s, mem


def time_physics(args, env, num_envs, steps, episode_length=1000):
    ep = EpisodeEnv(env, episode_length=episode_length)

    def rollout(state, key):
        def f(s, k):
            a = jax.random.uniform(k, (num_envs, env.action_size), minval=-1.0, maxval=1.0)
            s = jax.vmap(ep.step)(s, a)
            return s, s.reward.mean()

        return jax.lax.scan(f, state, jax.random.split(key, steps))

    state = jax.jit(jax.vmap(ep.reset))(jax.random.split(jax.random.key(1), num_envs))
    compiled, _, _ = _common.compile_fn(rollout, state, jax.random.key(2))
    ms = _common.time_compiled(compiled, state, jax.random.key(2), iters=max(args.iters, 3))
    return ms


def _device_put_replicated(x, devices):
    """jax's documented drop-in replacement (docs.jax.dev migrate_pmap) for the removed API."""
    mesh = jax.sharding.Mesh(np.array(devices), ("d",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("d"))
    return jax.tree.map(lambda a: jax.device_put(jnp.stack([a] * len(devices)), sharding), x)


def brax_sac_sps(env_name, env, base, iters, epochs):
    """Steady-state env steps/s of brax's SAC trainer, or (None, reason) where it cannot run.

    brax 0.14.2's trainer calls ``jax.device_put_replicated`` once, to place its initial state;
    jax removed it in 0.10.0, so it is restored here with jax's documented replacement (this
    touches only that one-time placement, not the timed training epochs).
    """
    if not hasattr(jax, "device_put_replicated"):
        jax.device_put_replicated = _device_put_replicated
    from brax.training.agents.sac import networks as sac_networks
    from brax.training.agents.sac import train as sac

    rows = []
    n, b, u = base["num_envs"], base["batch_size"], base["updates_per_step"]
    min_replay = max(2 * b * u // n * n, 1024)
    epoch_steps = iters * n
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sac.train(
            environment=env,
            num_timesteps=min_replay + (epochs + 1) * epoch_steps,
            episode_length=1000 if env_name != "fast" else 100,
            num_envs=n,
            num_eval_envs=1,
            batch_size=b,
            grad_updates_per_step=u,
            min_replay_size=min_replay,
            max_replay_size=100_000,
            num_evals=2 + epochs,
            discounting=0.99,
            network_factory=functools.partial(
                sac_networks.make_sac_networks, hidden_layer_sizes=base["hidden"]
            ),
            progress_fn=lambda step, m: rows.append(m),
        )
    wall = time.perf_counter() - t0
    # the first epoch includes compilation; the median of the others is the steady state
    sps = [m["training/sps"] for m in rows if "training/sps" in m][1:]
    return (float(np.median(sps)), wall), None


def main():
    args = _common.parse_args(__doc__.splitlines()[0])
    envs, base, iters, physics_envs = settings(args)
    for env_name in envs:
        env = make_env(env_name)
        steps_per_epoch = iters * base["num_envs"]
        physics_ms = time_physics(args, env, physics_envs, iters)
        physics_sps = physics_envs * iters / (physics_ms / 1e3)
        epoch_physics_ms = time_physics(args, env, base["num_envs"], iters)
        if args.tiny:  # smoke test: brax's trainer alone compiles for ~40 s on 2 cores
            brax, reason = None, "skipped in --tiny mode"
        else:
            try:
                brax, reason = brax_sac_sps(env_name, env, base, iters, epochs=5)
            except Exception as e:  # e.g. brax.training on a jax it does not support
                brax, reason = None, f"brax.training SAC failed: {type(e).__name__}: {e}"[:300]
        for members in (1, 4):
            cfg = sac_config(env_name, base, iters, members)
            ms, compile_s, mem = time_ours(args, env, cfg)
            sps = steps_per_epoch / (ms / 1e3)
            row = {
                "case": "sac",
                "env": env_name,
                "n_members": members,
                "dtype": "float32",
                "shapes": {
                    "num_envs": base["num_envs"],
                    "batch": base["batch_size"],
                    "updates_per_step": base["updates_per_step"],
                    "hidden": list(base["hidden"]),
                    "iterations_per_epoch": iters,
                },
                "median_ms": ms,
                "compile_s": compile_s,
                **mem,
                "env_steps_per_s": sps,
                "physics_envs": physics_envs,
                "physics_env_steps_per_s": physics_sps,
                "fraction_of_physics": sps / physics_sps,
                "physics_share": epoch_physics_ms / ms,
            }
            if brax is not None:
                brax_sps, brax_wall = brax
                row.update(
                    baseline="brax.training.agents.sac (median steady-state training/sps)",
                    baseline_median_ms=steps_per_epoch / brax_sps * 1e3,
                    speedup_vs_baseline=sps / brax_sps,
                    baseline_env_steps_per_s=brax_sps,
                    baseline_wall_s_incl_compile=brax_wall,
                )
            else:
                row.update(
                    baseline=f"raw physics, {physics_envs} envs, random actions",
                    baseline_unavailable=reason,
                    baseline_median_ms=steps_per_epoch / physics_sps * 1e3,
                    speedup_vs_baseline=sps / physics_sps,
                )
            _common.emit(args, BENCH, row)


if __name__ == "__main__":
    main()
