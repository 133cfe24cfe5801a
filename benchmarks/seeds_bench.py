"""Many seeds at once: ``jax.jit(jax.vmap(train))`` vs a Python loop of jitted single-seed runs.

The baseline is what a user without ``make_train(cfg) -> train(key)`` would write: one jitted
training run, called once per seed. Workload: ``mlp-digits`` (NNX MLP, AdamW, digits).
Reports median ms for all seeds, compile time and compiled memory; ratio = loop / vmap.

    python benchmarks/seeds_bench.py --device cpu [--tiny]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common
import jax

from lions_jax.examples import mlp_digits


def main() -> None:
    args = _common.parse_args(__doc__.splitlines()[0])
    if args.tiny:
        cfg = mlp_digits.Config(
            hidden=(16,),
            num_steps=20,
            log_every=10,
            checkpoint_every=10,
            batch_size=16,
            baselines=False,
        )
        seed_counts = (2, 4)
    elif args.device == "cpu":
        cfg = mlp_digits.Config(
            hidden=(128, 128),
            num_steps=500,
            log_every=250,
            checkpoint_every=250,
            batch_size=128,
            baselines=False,
        )
        seed_counts = (1, 8, 32)
    else:
        cfg = mlp_digits.Config(
            hidden=(256, 256),
            num_steps=1000,
            log_every=500,
            checkpoint_every=500,
            batch_size=128,
            baselines=False,
        )
        seed_counts = (1, 8, 64, 256)
    train = mlp_digits.make_train(cfg)
    single, single_compile_s, single_mem = _common.compile_fn(train, jax.random.key(0))
    for n in seed_counts:
        keys = jax.random.split(jax.random.key(0), n)
        batched, compile_s, mem = _common.compile_fn(jax.vmap(train), keys)
        vmap_ms = _common.time_compiled(batched, keys, iters=args.iters)
        loop_ms = _common.time_host(lambda keys=keys: [single(k) for k in keys], iters=args.iters)
        _common.emit(
            args,
            "seeds",
            {
                "workload": "mlp-digits train",
                "dtype": "float32",
                "seeds": n,
                "shapes": {
                    "hidden": list(cfg.hidden),
                    "batch": cfg.batch_size,
                    "steps": cfg.num_steps,
                },
                "median_ms": vmap_ms,
                "compile_s": compile_s,
                **mem,
                "baseline": "python loop over jit(train)",
                "baseline_median_ms": loop_ms,
                "baseline_compile_s": single_compile_s,
                "baseline_temp_bytes": single_mem["temp_bytes"],
                "speedup_vs_baseline": loop_ms / vmap_ms,
            },
        )


if __name__ == "__main__":
    main()
