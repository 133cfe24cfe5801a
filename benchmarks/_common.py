"""Shared helpers for benchmarks: CLI flags, timing, compiled memory, JSON rows.

Every benchmark script prints one JSON object per line (and appends it to
``<out>/<script>.jsonl``) with the jax version, device, dtype, shapes, median milliseconds over
>= 10 timed runs after warm-up (``block_until_ready`` before the clock stops), compile time
measured separately (AOT ``lower().compile()``), compiled memory from ``memory_analysis()``, and
the ratio against the baseline measured in the same process.
"""

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax


def parse_args(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", choices=["cpu", "gpu", "tpu"], default="cpu")
    p.add_argument("--tiny", action="store_true", help="tiny shapes (smoke test)")
    p.add_argument("--iters", type=int, default=None, help="timed runs (default 10, tiny 3)")
    p.add_argument(
        "--out",
        default=os.environ.get("OUT") or "benchmarks/results",
        help="folder for <script>.jsonl (default $OUT or benchmarks/results)",
    )
    args = p.parse_args()
    if args.iters is None:
        args.iters = 3 if args.tiny else 10
    backend = jax.default_backend()
    if backend != args.device:
        print(
            f"{Path(sys.argv[0]).name}: error: --device {args.device} requested but JAX's "
            f"backend is {backend}",
            file=sys.stderr,
        )
        sys.exit(2)
    return args


def compile_fn(fn: Callable, *args: Any) -> tuple[Any, float, dict[str, int | None]]:
    """AOT-compiles ``jax.jit(fn)`` for ``args``: (compiled, compile seconds, memory dict)."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    seconds = time.perf_counter() - t0
    mem: dict[str, int | None] = {"temp_bytes": None, "argument_bytes": None, "output_bytes": None}
    try:
        ma = compiled.memory_analysis()
        if ma is not None:
            mem = {
                "temp_bytes": int(ma.temp_size_in_bytes),
                "argument_bytes": int(ma.argument_size_in_bytes),
                "output_bytes": int(ma.output_size_in_bytes),
            }
    except Exception:  # backends without memory analysis
        pass
    return compiled, seconds, mem


def time_compiled(compiled: Callable, *args: Any, iters: int, warmup: int = 2) -> float:
    """Median wall milliseconds of ``compiled(*args)`` over ``iters`` runs after ``warmup``."""
    for _ in range(warmup):
        jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def time_host(fn: Callable[[], Any], *, iters: int, warmup: int = 1) -> float:
    """Median wall milliseconds of a host-level callable (which blocks on its own results)."""
    for _ in range(warmup):
        jax.block_until_ready(fn())
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def emit(args: argparse.Namespace, bench: str, row: dict[str, Any]) -> None:
    """Prints a JSON row (with environment fields) and appends it to ``<out>/<bench>.jsonl``."""
    dev = jax.devices()[0]
    full = {
        "bench": bench,
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device": dev.device_kind,
        "tiny": args.tiny,
        **row,
    }
    line = json.dumps(full)
    print(line, flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{bench}.jsonl", "a") as f:
        f.write(line + "\n")
