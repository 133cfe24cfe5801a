"""Decoding with ``TransformerLM``'s KV cache vs re-running the model on the whole buffer.

The baseline is model-agnostic decoding (``generate_uncached``), what a user gets from a plain
``apply_fn`` without a cache. Both are greedy, jitted, ``lax.scan`` over steps; ratio =
uncached / cached.

    python benchmarks/generate_bench.py --device cpu [--tiny]
"""

import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common
import jax
import jax.numpy as jnp
from flax import nnx

from lions_jax.models import (
    LMConfig,
    TransformerLM,
    generate,
    generate_uncached,
    init_model,
)


def _apply(graphdef, params, tokens):
    return nnx.merge(graphdef, params)(tokens)


def main() -> None:
    args = _common.parse_args(__doc__.splitlines()[0])
    if args.tiny:
        settings = [dict(d=32, layers=2, heads=4, batch=2, prompt=8, new=8)]
    elif args.device == "cpu":
        settings = [dict(d=256, layers=4, heads=4, batch=4, prompt=32, new=32)]
    else:
        settings = [
            dict(d=768, layers=12, heads=12, batch=8, prompt=128, new=128),
            dict(d=768, layers=12, heads=12, batch=8, prompt=512, new=256),
        ]
    dtype = "float32" if args.device == "cpu" else "bfloat16"
    for s in settings:
        cfg = LMConfig(
            vocab_size=32_000,
            d_model=s["d"],
            num_layers=s["layers"],
            num_heads=s["heads"],
            max_len=s["prompt"] + s["new"],
            dtype=None if dtype == "float32" else dtype,
        )
        graphdef, state = init_model(
            lambda rngs, cfg=cfg: TransformerLM(cfg, rngs=rngs), jax.random.key(0)
        )
        prompt = jax.random.randint(jax.random.key(1), (s["batch"], s["prompt"]), 0, 32_000)
        cached = functools.partial(generate, None, graphdef, max_new_tokens=s["new"])
        uncached = functools.partial(
            generate_uncached, None, functools.partial(_apply, graphdef), max_new_tokens=s["new"]
        )
        c_fn, c_compile, c_mem = _common.compile_fn(
            lambda st, p, f=cached: f(st, p).tokens, state, prompt
        )
        u_fn, u_compile, u_mem = _common.compile_fn(
            lambda st, p, f=uncached: f(st, p).tokens, state, prompt
        )
        assert bool(jnp.all(c_fn(state, prompt) == u_fn(state, prompt))) or dtype != "float32"
        c_ms = _common.time_compiled(c_fn, state, prompt, iters=args.iters)
        u_ms = _common.time_compiled(u_fn, state, prompt, iters=args.iters)
        _common.emit(
            args,
            "generate",
            {
                "workload": "greedy decoding",
                "dtype": dtype,
                "shapes": s,
                "median_ms": c_ms,
                "compile_s": c_compile,
                **c_mem,
                "tokens_per_s": s["batch"] * s["new"] / (c_ms / 1e3),
                "baseline": "generate_uncached (no KV cache)",
                "baseline_median_ms": u_ms,
                "baseline_compile_s": u_compile,
                "baseline_temp_bytes": u_mem["temp_bytes"],
                "speedup_vs_baseline": u_ms / c_ms,
            },
        )


if __name__ == "__main__":
    main()
