"""VRLS: MLLS (EM / projected gradient) on device vs a NumPy EM; multi-node IW-ERM vmapped vs sharded.

Rows:

* ``mlls``: the maximum-likelihood label-shift ratio, ``jax.jit`` of
  ``lions_jax.vrls.mlls(probs, p_train, method=..., tol=1e-30, max_iter=100)`` (the tolerance is
  so small that the loop runs all ``max_iter`` iterations unless ``q`` stops changing exactly in
  float32; ``iterations`` reports how many ran), on synthetic float32 probabilities (rows
  ``Dirichlet(1)``, ``p_train`` ``Dirichlet(5)``) with ``(m, C)`` up to ``(10⁶, 1 000)`` on GPU
  (CPU: ``(10⁴, 10)``, ``(10⁵, 10)``, ``(10⁵, 100)``; tiny: ``(2 000, 10)``), ``method`` ∈ {``em``,
  ``pgd``}. The baseline is a plain float32 NumPy EM (Saerens' fixed point, the same updates),
  measured in the same process: ``baseline_median_ms`` = NumPy ms per EM iteration × the JAX
  solver's iterations, the NumPy time per iteration being measured over all ``max_iter``
  iterations, or over fewer (``baseline_iters_timed``: 10, or 2 above ``m·C = 10⁸``) when
  ``m·C >= 10⁷`` (the cost of an EM iteration does not depend on the iterate); such shapes are
  also timed over fewer runs (``--iters`` / 3, one warm-up). ``speedup_vs_baseline`` = NumPy ms
  / JAX ms; for ``pgd`` it compares projected-gradient iterations (with their backtracking line
  search) against as many EM iterations. ``rel_diff_vs_numpy`` (``em`` rows) = max |r_jax −
  r_numpy| / max |r_numpy| after ``baseline_iters_timed`` EM iterations of both.
* ``nodes``: one IW-ERM training step (synchronous gradient averaging + server Adam) over
  ``K = 8`` nodes (or the next multiple of the device count), MLP 784-256-10, batch 64 per node,
  random data; ``make_train(cfg)`` (nodes vmapped on one device) is the baseline and
  ``make_train(cfg, mesh=data_mesh(num_devices, axis_name="nodes"))`` (one ``shard_map`` over all
  devices) the measured program; ``median_ms`` is per step (run time / ``num_steps``) and
  ``speedup_vs_baseline`` = vmapped ms / sharded ms. On a single-GPU machine the mesh has one
  device and the row measures the overhead of ``shard_map``. With ``--device cpu`` this row is
  measured in a child process (the script re-runs itself with ``_LIONS_VRLS_BENCH_NODES_CHILD=1``)
  that asks for 8 host devices (``jax_num_cpu_devices = 8``, set before JAX starts its backend):
  the sharded program runs on 8 XLA:CPU devices sharing the host's cores. The ``mlls`` rows stay
  in the parent on the single default CPU device (8 host devices split XLA:CPU's thread pool and
  slowed the EM ~1.6x). CPU shapes: 100 steps, at most 3 timed runs (GPU: 200 steps).

    python benchmarks/vrls_bench.py --device cpu [--tiny]
    python benchmarks/vrls_bench.py --device gpu
"""

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common
import jax
import jax.numpy as jnp
import numpy as np

from lions_jax._src.sharding import data_mesh, replicate, shard_batch
from lions_jax.vrls import estimators
from lions_jax.vrls.train import IWERMConfig, NodeData, make_train

BENCH = "vrls"
MLLS_ITERS = 100
MLLS_TOL = 1e-30  # > 0 as required; below any float32 change of q, so max_iter iterations run
NUM_CPU_DEVICES = 8
NODES_CHILD_ENV = "_LIONS_VRLS_BENCH_NODES_CHILD"


def _nodes_child() -> bool:
    """True in the child process that measures the ``nodes`` row on 8 host devices (CPU only)."""
    return os.environ.get(NODES_CHILD_ENV) == "1"


# ----------------------------------------------------------------------------------------------
# mlls


def synthetic_probs(m: int, c: int, seed: int = 0) -> tuple[jax.Array, jax.Array]:
    """``(m, C)`` Dirichlet(1) probability rows and a Dirichlet(5) training prior, float32."""
    k1, k2 = jax.random.split(jax.random.key(seed))
    probs = jax.random.dirichlet(k1, jnp.ones(c, jnp.float32), (m,), dtype=jnp.float32)
    p_tr = jax.random.dirichlet(k2, jnp.full(c, 5.0, jnp.float32), dtype=jnp.float32)
    return jax.block_until_ready(probs), jax.block_until_ready(p_tr)


def numpy_em(probs: np.ndarray, p_tr: np.ndarray, iters: int) -> np.ndarray:
    """Saerens' EM in float32 NumPy for exactly ``iters`` iterations (the baseline)."""
    probs = probs / probs.sum(-1, keepdims=True)
    g = probs / p_tr
    q = p_tr.copy()
    tiny = np.finfo(np.float32).tiny
    for _ in range(iters):
        post = g * q
        post /= np.maximum(post.sum(-1, keepdims=True), tiny)
        q = post.mean(0)
    return q / p_tr


def numpy_ms_per_iter(
    probs: np.ndarray, p_tr: np.ndarray, iters: int, reps: int
) -> tuple[float, np.ndarray]:
    """Median NumPy milliseconds per EM iteration (``iters`` iterations per run) and the ratio."""
    numpy_em(probs[: min(len(probs), 1_000)], p_tr, 2)  # warm-up (allocator, code paths)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        r = numpy_em(probs, p_tr, iters)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times)) / iters, r


def mlls_fn(method: str, max_iter: int):
    def fn(probs, p_tr):
        return estimators.mlls(probs, p_tr, method=method, tol=MLLS_TOL, max_iter=max_iter)

    return fn


def iterations_run(probs: jax.Array, p_tr: jax.Array, method: str, r_full: jax.Array) -> int:
    """How many of the ``MLLS_ITERS`` iterations ran: all, unless ``q`` stopped changing exactly.

    If the result after ``MLLS_ITERS - 1`` iterations differs from the final one, the last
    iteration ran (so all did); otherwise bisect for the first iteration count giving the final
    result (the loop stopped there).
    """

    def result(k: int) -> np.ndarray:
        return np.asarray(jax.jit(mlls_fn(method, k))(probs, p_tr))

    final = np.asarray(r_full)
    if not np.array_equal(result(MLLS_ITERS - 1), final):
        return MLLS_ITERS
    lo, hi = 1, MLLS_ITERS - 1  # result(hi) == final
    while lo < hi:
        mid = (lo + hi) // 2
        if np.array_equal(result(mid), final):
            hi = mid
        else:
            lo = mid + 1
    return lo


def bench_mlls(args, grid: list[tuple[int, int]]) -> None:
    for m, c in grid:
        probs, p_tr = synthetic_probs(m, c)
        probs_np, p_tr_np = np.asarray(probs), np.asarray(p_tr)
        big = m * c >= 10_000_000
        np_iters = MLLS_ITERS if not big else (10 if m * c <= 100_000_000 else 2)
        np_reps = 1 if m * c > 100_000_000 or args.iters < 3 else 3
        np_ms_iter, r_np = numpy_ms_per_iter(probs_np, p_tr_np, np_iters, np_reps)
        # same-iteration check of the JAX EM against NumPy (at np_iters iterations)
        r_em = np.asarray(jax.jit(mlls_fn("em", np_iters))(probs, p_tr))
        rel_diff = float(np.max(np.abs(r_em - r_np)) / np.max(np.abs(r_np)))
        iters = max(1, args.iters // 3) if big else args.iters
        warmup = 1 if big else 2
        for method in ("em", "pgd"):
            fn = mlls_fn(method, MLLS_ITERS)
            compiled, compile_s, mem = _common.compile_fn(fn, probs, p_tr)
            ms = _common.time_compiled(compiled, probs, p_tr, iters=iters, warmup=warmup)
            r = compiled(probs, p_tr)
            n_iter = iterations_run(probs, p_tr, method, r)
            baseline_ms = np_ms_iter * n_iter
            row = {
                "case": "mlls",
                "method": method,
                "dtype": "float32",
                "shapes": {"m": m, "num_classes": c},
                "iterations": n_iter,
                "max_iter": MLLS_ITERS,
                "median_ms": ms,
                "per_iter_ms": ms / n_iter,
                "compile_s": compile_s,
                **mem,
                "objective": float(estimators.mlls_objective(r, probs)),
                "baseline": "NumPy float32 EM (host), same number of iterations",
                "baseline_median_ms": baseline_ms,
                "baseline_per_iter_ms": np_ms_iter,
                "baseline_iters_timed": np_iters,
                "speedup_vs_baseline": baseline_ms / ms,
            }
            if method == "em":
                # max |r_jax - r_numpy| / max |r_numpy| after baseline_iters_timed EM iterations
                row["rel_diff_vs_numpy"] = rel_diff
            _common.emit(args, BENCH, row)
        del probs, probs_np


# ----------------------------------------------------------------------------------------------
# nodes


def node_data(k: int, n: int, m: int, d: int, c: int, seed: int = 0) -> tuple[NodeData, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = NodeData(
        rng.standard_normal((k, n, d), dtype=np.float32),
        rng.integers(0, c, (k, n)).astype(np.int32),
        rng.standard_normal((k, m, d), dtype=np.float32),
        rng.integers(0, c, (k, m)).astype(np.int32),
    )
    return data, np.ones((k, c), np.float32)


def bench_nodes(args, cfg: IWERMConfig, n: int, m: int, d: int) -> None:
    num_devices = jax.device_count()
    k = -(-8 // num_devices) * num_devices  # K = 8, or the next multiple of the device count
    data, ratios = node_data(k, n, m, d, cfg.num_classes)
    key = jax.random.key(0)
    mesh = data_mesh(num_devices, axis_name="nodes")

    vmapped = make_train(cfg)
    v_args = (key, jax.device_put(data), jax.device_put(ratios))
    v_compiled, v_compile_s, _ = _common.compile_fn(vmapped, *v_args)
    v_ms = _common.time_compiled(v_compiled, *v_args, iters=args.iters, warmup=1)

    sharded = make_train(cfg, mesh=mesh)
    s_args = (
        replicate(key, mesh),
        shard_batch(data, mesh, "nodes"),
        shard_batch(ratios, mesh, "nodes"),
    )
    s_compiled, s_compile_s, mem = _common.compile_fn(sharded, *s_args)
    s_ms = _common.time_compiled(s_compiled, *s_args, iters=args.iters, warmup=1)

    loss_v = np.asarray(v_compiled(*v_args)[1]["train_loss"])
    loss_s = np.asarray(s_compiled(*s_args)[1]["train_loss"])
    steps = cfg.num_steps
    _common.emit(
        args,
        BENCH,
        {
            "case": "nodes",
            "dtype": "float32",
            "shapes": {
                "nodes": k,
                "devices": num_devices,
                "n_train": n,
                "n_test": m,
                "mlp": [d, *cfg.hidden, cfg.num_classes],
                "batch": cfg.batch_size,
                "steps": steps,
            },
            "median_ms": s_ms / steps,
            "run_ms": s_ms,
            "compile_s": s_compile_s,
            **mem,
            "max_abs_loss_diff": float(np.max(np.abs(loss_v - loss_s))),
            "baseline": "make_train(cfg) (nodes vmapped on one device), per step",
            "baseline_median_ms": v_ms / steps,
            "baseline_run_ms": v_ms,
            "baseline_compile_s": v_compile_s,
            "speedup_vs_baseline": v_ms / s_ms,
        },
    )


def main() -> None:
    if _nodes_child():
        # before parse_args, which starts the backend
        jax.config.update("jax_num_cpu_devices", NUM_CPU_DEVICES)
    args = _common.parse_args(__doc__.splitlines()[0])
    if args.tiny:
        grid = [(2_000, 10)]
        cfg = IWERMConfig(num_classes=10, hidden=(32,), batch_size=16, num_steps=20, eval_every=20)
        n, m, d = 64, 32, 64
    elif args.device == "cpu":
        grid = [(10_000, 10), (100_000, 10), (100_000, 100)]
        cfg = IWERMConfig(
            num_classes=10, hidden=(256,), batch_size=64, num_steps=100, eval_every=100
        )
        n, m, d = 512, 256, 784
        args.iters = min(args.iters, 3) if _nodes_child() else args.iters
    else:
        grid = [(10_000, 10), (100_000, 100), (1_000_000, 10), (1_000_000, 1_000)]
        cfg = IWERMConfig(
            num_classes=10, hidden=(256,), batch_size=64, num_steps=200, eval_every=200
        )
        n, m, d = 512, 256, 784
    if _nodes_child():
        bench_nodes(args, cfg, n, m, d)
        return
    bench_mlls(args, grid)
    if args.device == "cpu":
        # the node mesh needs several devices: a child process with 8 XLA:CPU devices (set before
        # its backend starts; here it would also split the mlls rows' CPU thread pool)
        env = {**os.environ, NODES_CHILD_ENV: "1"}
        subprocess.run([sys.executable, *sys.argv], env=env, check=True)
    else:
        bench_nodes(args, cfg, n, m, d)


if __name__ == "__main__":
    main()
