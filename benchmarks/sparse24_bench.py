"""2:4 pruning of one layer: time and reconstruction error per method, and a 2:4 matmul probe.

Rows:

* ``prune``: one jitted :func:`~lions_jax.sparse24.prune_layer` call (H given) per method —
  ``magnitude``, ``wanda``, ``sparsegpt`` (block 128), ``prox`` (the default
  :class:`~lions_jax.sparse24.ProxSchedule`: growth ×1.01, at most 3000 iterations) and ``prox-fn``
  (feature-normalised), each mask-only and with 100 masked-GD steps (``+gd``) — on layers of
  shapes 768×768, 768×3072, 3072×768 and 4096×4096 (``(d_in, d_out)``; CPU: the first two; tiny:
  256×256). ``H`` comes from 16,384 synthetic tokens whose features are correlated within groups
  of 4 (ρ = 0.8) with log-normal scales (σ = 0.5). The baseline is SparseGPT, measured in the
  same run: ``speedup_vs_baseline`` = SparseGPT ms / method ms (< 1: slower), and
  ``error_vs_baseline`` = method error / SparseGPT error (< 1: better).
* ``matmul``: does 2:4 sparsity make ``x @ w`` faster in JAX? ``jax.experimental.sparse.nm`` (an
  N:M sparse-dot path of some jax versions, GPU only) is tried first and the outcome recorded;
  then a BCOO matrix at 50% density (jax's general sparse format) against the dense matmul of
  the same pruned weights. The baseline is the dense matmul.

    python benchmarks/sparse24_bench.py --device cpu [--tiny]
    python benchmarks/sparse24_bench.py --device gpu
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common
import jax
import jax.numpy as jnp
import numpy as np

from lions_jax.sparse24 import ProxSchedule, hessian, nm_mask, prune_layer

BENCH = "sparse24"
VARIANTS = {
    "magnitude": dict(method="magnitude"),
    "wanda": dict(method="wanda"),
    "sparsegpt": dict(method="sparsegpt"),
    "prox": dict(method="prox"),
    "prox-fn": dict(method="prox", schedule=ProxSchedule(normalize_features=True)),
}


def layer(d_in: int, d_out: int, tokens: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(tokens, d_in // 4, 1)).astype(np.float32)
    e = rng.normal(size=(tokens, d_in // 4, 4)).astype(np.float32)
    x = (np.sqrt(0.8) * z + np.sqrt(0.2) * e).reshape(tokens, d_in)
    x *= np.exp(0.5 * rng.normal(size=d_in)).astype(np.float32)
    w = (rng.normal(size=(d_in, d_out)) / np.sqrt(d_in)).astype(np.float32)
    return jnp.asarray(w), hessian(jnp.asarray(x))


def bench_prune(args, shapes, tokens):
    for d_in, d_out in shapes:
        w, h = layer(d_in, d_out, tokens)
        rows = {}
        for name, kw in VARIANTS.items():
            for steps in (0, 100):

                def fn(w, h, kw=kw, steps=steps):
                    return prune_layer(w, h=h, refine_steps=steps, **kw)

                compiled, compile_s, mem = _common.compile_fn(fn, w, h)
                ms = _common.time_compiled(compiled, w, h, iters=args.iters, warmup=1)
                _, _, info = compiled(w, h)
                rows[(name, steps)] = dict(
                    variant=name + ("+gd" if steps else ""),
                    median_ms=ms,
                    compile_s=compile_s,
                    rel_error=float(info.rel_error),
                    rel_error_mask=float(info.rel_error_mask),
                    iterations=int(info.iterations),
                    converged=bool(info.converged),
                    **mem,
                )
        for (_, steps), row in rows.items():
            base = rows[("sparsegpt", steps)]
            _common.emit(
                args,
                BENCH,
                {
                    "case": "prune",
                    "dtype": "float32",
                    "shapes": {"w": [d_in, d_out], "tokens": tokens},
                    **row,
                    "baseline": "sparsegpt" + ("+gd" if steps else ""),
                    "baseline_median_ms": base["median_ms"],
                    "speedup_vs_baseline": base["median_ms"] / row["median_ms"],
                    "error_vs_baseline": row["rel_error"] / base["rel_error"],
                },
            )


def bench_matmul(args, shapes, tokens_list, dtype):
    from jax.experimental import sparse

    try:
        from jax.experimental.sparse import nm

        nm_status = "importable"
    except ImportError as e:
        nm, nm_status = None, f"not available: {e}"
    for d_in, d_out in shapes:
        w, _ = layer(d_in, d_out, 8)
        w = jnp.where(nm_mask(jnp.abs(w)), w, 0.0).astype(dtype)
        w_bcoo = sparse.BCOO.fromdense(w)
        for tokens in tokens_list:
            x = jax.random.normal(jax.random.key(1), (tokens, d_in), dtype)
            dense_c, _, _ = _common.compile_fn(lambda x, w: x @ w, x, w)
            dense_ms = _common.time_compiled(dense_c, x, w, iters=args.iters)
            if nm is not None and args.device == "gpu":
                bench_nm(args, nm, x, w, dense_ms)
            sp_c, compile_s, mem = _common.compile_fn(lambda x, ws: (ws.T @ x.T).T, x, w_bcoo)
            sp_ms = _common.time_compiled(sp_c, x, w_bcoo, iters=args.iters)
            err = float(jnp.max(jnp.abs(sp_c(x, w_bcoo) - dense_c(x, w))))
            _common.emit(
                args,
                BENCH,
                {
                    "case": "matmul",
                    "variant": "bcoo 2:4 (50% dense) @ x",
                    "dtype": jnp.dtype(dtype).name,
                    "shapes": {"w": [d_in, d_out], "tokens": tokens},
                    "median_ms": sp_ms,
                    "compile_s": compile_s,
                    **mem,
                    "max_abs_diff": err,
                    "jax_experimental_sparse_nm": nm_status,
                    "baseline": "dense x @ w",
                    "baseline_median_ms": dense_ms,
                    "speedup_vs_baseline": dense_ms / sp_ms,
                },
            )


def bench_nm(args, nm, x, w, dense_ms):
    """``jax.experimental.sparse.nm.nm_spmm`` (2:4 sparse tensor cores through XLA), if it runs."""
    d_in, d_out = w.shape
    row = {
        "case": "matmul",
        "variant": "nm_spmm 2:4 (jax.experimental.sparse.nm)",
        "dtype": jnp.dtype(x.dtype).name,
        "shapes": {"w": [d_in, d_out], "tokens": x.shape[0]},
        "baseline": "dense x @ w",
        "baseline_median_ms": dense_ms,
    }
    try:
        mask_t = np.asarray(w.T != 0)  # (d_out, d_in): groups along the minor (contracting) axis
        values = jnp.asarray(np.asarray(w.T)[mask_t].reshape(d_out, d_in // 2), x.dtype)
        meta = nm.nm_pack(jnp.asarray(mask_t))
        dnums = (((1,), (1,)), ((), ()))

        def f(values, x, meta):
            return nm.nm_spmm(values, x, meta, dimension_numbers=dnums, output_dtype=x.dtype).T

        compiled, compile_s, mem = _common.compile_fn(f, values, x, meta)
        ms = _common.time_compiled(compiled, values, x, meta, iters=args.iters)
        err = float(jnp.max(jnp.abs(compiled(values, x, meta) - x @ w)))
        row.update(median_ms=ms, compile_s=compile_s, **mem, max_abs_diff=err)
        row["speedup_vs_baseline"] = dense_ms / ms
    except Exception as e:  # record why the path does not run, keep benchmarking
        row.update(median_ms=None, compile_s=None, temp_bytes=None)
        row["speedup_vs_baseline"] = None
        row["error"] = f"{type(e).__name__}: {str(e)[:300]}"
    _common.emit(args, BENCH, row)


def main() -> None:
    args = _common.parse_args(__doc__.splitlines()[0])
    if args.tiny:
        prune_shapes, tokens = [(256, 256)], 2048
        mm_shapes, mm_tokens = [(256, 256)], [64]
    elif args.device == "cpu":
        prune_shapes, tokens = [(768, 768), (768, 3072)], 8192
        mm_shapes, mm_tokens = [(768, 3072)], [256, 4096]
    else:
        prune_shapes, tokens = [(768, 768), (768, 3072), (3072, 768), (4096, 4096)], 16384
        mm_shapes, mm_tokens = [(4096, 4096)], [16, 256, 4096, 16384]
    bench_prune(args, prune_shapes, tokens)
    bench_matmul(args, mm_shapes, mm_tokens, jnp.float32 if args.device == "cpu" else jnp.bfloat16)


if __name__ == "__main__":
    main()
