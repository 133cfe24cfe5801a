"""Scion optimizer step: update time, optimizer-state bytes and Newton–Schulz accuracy.

Rows:

* ``optimizer step``: one jitted ``opt.update`` + ``optax.apply_updates`` (parameters and state
  donated) on a parameter tree shaped like GPT-2 small (12 layers of q/k/v/o 768², fc 768×3072,
  proj 3072×768, RMS gains, a 50304×768 embedding and an untied 768×50304 head; 163 M
  parameters) for ``optax.adamw``, ``optax.contrib.muon`` (defaults: Muon on every matrix,
  embedding and head included; and Muon on hidden matrices only, AdamW elsewhere, the
  modded-nanogpt split), and Scion variants: SCG / uSCG, Newton–Schulz in float32 and bfloat16,
  5 and 9 steps, the 'dion' schedule, equal-shaped matrices batched or one chain per leaf, the
  memory-lean ``light`` mode and a bfloat16 momentum. ``ratio_vs_adamw`` / ``ratio_vs_muon`` are
  time ratios against the baselines measured in the same run (< 1: faster than the baseline).
* ``ns accuracy``: singular values of the spectral LMO's Newton–Schulz output (ideal: all 1) for
  Gaussian matrices of the tree's shapes and a matrix with a 1 … 1e-4 decaying spectrum, and its
  time against the exact polar factor by SVD.
* ``lm fwd+bwd`` (GPU only): one forward+backward of the GPT-2-small-shaped
  :class:`~lions_jax.models.TransformerLM` in bfloat16 at B×T = 8×1024, for the optimizer step's
  share of a train step.

    python benchmarks/scion_bench.py --device cpu [--tiny]     # CPU: a 4-layer d=256 tree
    python benchmarks/scion_bench.py --device gpu              # GPT-2-small tree
"""

import functools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lions_jax.scion import newton_schulz, scion, unconstrained_scion


def gpt_tree(num_layers: int, d: int, vocab: int, dtype=jnp.float32) -> dict:
    """A GPT-shaped parameter tree with names that :func:`default_labels` understands."""
    shapes = {
        "wte": {"embedding": (vocab, d)},
        "lm_head": {"kernel": (d, vocab)},
        "final_norm": {"scale": (d,)},
    }
    for i in range(num_layers):
        shapes[f"block{i}"] = {
            "attn": {n: {"kernel": (d, d)} for n in ("q", "k", "v", "o")},
            "mlp": {"fc": {"kernel": (d, 4 * d)}, "proj": {"kernel": (4 * d, d)}},
            "norm1": {"scale": (d,)},
            "norm2": {"scale": (d,)},
        }
    keys = iter(jax.random.split(jax.random.key(0), 10 * num_layers + 10))

    def make(shape):
        return (0.02 * jax.random.normal(next(keys), shape, jnp.float32)).astype(dtype)

    return jax.tree.map(make, shapes, is_leaf=lambda x: isinstance(x, tuple))


def tree_bytes(tree) -> int:
    return int(sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree) if hasattr(x, "size")))


def hidden_only_dims(params):
    """Muon on the blocks' matrices, AdamW (via None) on embedding, head and gains."""

    def dims(path, x):
        key = jax.tree_util.keystr(path)
        return optax.contrib.MuonDimensionNumbers() if x.ndim == 2 and "block" in key else None

    return jax.tree_util.tree_map_with_path(dims, params)


def optimizers(device: str):
    lr = 1e-3
    opts = {
        "adamw": optax.adamw(lr, weight_decay=0.1),
        "muon (optax, all matrices)": optax.contrib.muon(lr),
        "muon (optax, hidden; adamw embed/head)": optax.contrib.muon(
            lr, muon_weight_dimension_numbers=hidden_only_dims
        ),
        "scion": scion(lr),
        "scion ns=fp32": scion(lr, ns_dtype=jnp.float32),
        "scion ns=bf16": scion(lr, ns_dtype=jnp.bfloat16),
        "scion per-leaf ns": scion(lr, batch_matrices=False),
        "scion ns_steps=9": scion(lr, ns_steps=9),
        "scion dion": scion(lr, ns_coeffs="dion"),
        "scion mu=bf16": scion(lr, mu_dtype=jnp.bfloat16),
        "scion light": scion(lr, light=True),
        "unconstrained scion": unconstrained_scion(lr),
    }
    if device == "cpu":  # bfloat16 matmuls are emulated on XLA:CPU
        del opts["scion ns=bf16"]
    return opts


def step_rows(args, params, shapes_desc):
    grads = jax.tree.map(lambda p: (1e-3 * jnp.ones_like(p)).astype(p.dtype), params)
    results = {}
    for name, opt in optimizers(args.device).items():

        def step(p, s, g, opt=opt):
            u, s = opt.update(g, s, p)
            return optax.apply_updates(p, u), s

        try:
            state = jax.jit(opt.init)(params)
            p = jax.tree.map(jnp.copy, params)
            t0 = time.perf_counter()
            compiled = jax.jit(step, donate_argnums=(0, 1)).lower(p, state, grads).compile()
            compile_s = time.perf_counter() - t0
            mem = compiled.memory_analysis()
            temp = int(mem.temp_size_in_bytes) if mem is not None else None
            state_bytes = tree_bytes(state)
            for _ in range(2):
                p, state = compiled(p, state, grads)
            jax.block_until_ready(p)
            times = []
            for _ in range(args.iters):
                t0 = time.perf_counter()
                p, state = compiled(p, state, grads)
                jax.block_until_ready(p)
                times.append((time.perf_counter() - t0) * 1e3)
        except Exception as e:  # record and go on
            print(f"# {name}: {type(e).__name__}: {str(e)[:300]}", file=sys.stderr)
            continue
        results[name] = (statistics.median(times), compile_s, temp, state_bytes)
    adamw_ms = results["adamw"][0]
    muon_ms = results["muon (optax, all matrices)"][0]
    for name, (ms, compile_s, temp, state_bytes) in results.items():
        _common.emit(
            args,
            "scion",
            {
                "workload": "optimizer step",
                "variant": name,
                "dtype": str(jax.tree.leaves(params)[0].dtype),
                "shapes": shapes_desc,
                "median_ms": ms,
                "compile_s": compile_s,
                "temp_bytes": temp,
                "state_bytes": state_bytes,
                "param_bytes": tree_bytes(params),
                "state_per_param_bytes": state_bytes / tree_bytes(params),
                "baseline": "adamw",
                "baseline_median_ms": adamw_ms,
                "speedup_vs_baseline": adamw_ms / ms,
                "ratio_vs_adamw": ms / adamw_ms,
                "ratio_vs_muon": ms / muon_ms,
            },
        )
    return results


def _polar_svd(x):
    u, _, vt = jnp.linalg.svd(x, full_matrices=False)
    return u @ vt


def ns_accuracy_rows(args, shapes):
    """Singular values of NS(G) (ideal: all 1) and its time against the exact polar factor (SVD)."""
    rng = np.random.default_rng(0)
    mats = {f"gaussian {m}x{n}": rng.normal(size=(m, n)) for m, n in shapes}
    m = shapes[0][0]
    u, _ = np.linalg.qr(rng.normal(size=(m, m)))
    v, _ = np.linalg.qr(rng.normal(size=(m, m)))
    mats[f"decaying 1..1e-4 {m}x{m}"] = (u * np.logspace(0, -4, m)) @ v.T
    dtypes = ["float32"] + (["bfloat16"] if args.device != "cpu" else [])
    for label, a in mats.items():
        x = jnp.asarray(a, jnp.float32)
        svd_compiled, _, _ = _common.compile_fn(_polar_svd, x)
        svd_ms = _common.time_compiled(svd_compiled, x, iters=args.iters)
        for dt in dtypes:
            for coeffs, steps in (("standard", 5), ("standard", 9), ("dion", 5)):
                fn = functools.partial(newton_schulz, steps=steps, coeffs=coeffs, dtype=dt)
                compiled, compile_s, mem = _common.compile_fn(fn, x)
                ms = _common.time_compiled(compiled, x, iters=args.iters)
                sv = np.linalg.svd(np.asarray(compiled(x), np.float64), compute_uv=False)
                _common.emit(
                    args,
                    "scion",
                    {
                        "workload": "ns accuracy",
                        "variant": f"{coeffs} steps={steps}",
                        "matrix": label,
                        "dtype": dt,
                        "shapes": {"m": a.shape[0], "n": a.shape[1]},
                        "sv_min": float(sv.min()),
                        "sv_max": float(sv.max()),
                        "sv_median": float(np.median(sv)),
                        "frac_sv_in_0.5_1.5": float(np.mean((sv > 0.5) & (sv < 1.5))),
                        "median_ms": ms,
                        "compile_s": compile_s,
                        **mem,
                        "baseline": "exact polar factor (float32 SVD)",
                        "baseline_median_ms": svd_ms,
                        "speedup_vs_baseline": svd_ms / ms,
                    },
                )


def lm_rows(args, num_layers, d, vocab, batch, seq, step_results):
    from flax import nnx

    from lions_jax.models import LMConfig, TransformerLM, init_model

    cfg = LMConfig(
        vocab_size=vocab,
        d_model=d,
        num_layers=num_layers,
        num_heads=d // 64,
        d_ff=4 * d,
        gated_mlp=False,
        activation="gelu",
        tie_embeddings=False,
        max_len=seq,
        dtype="bfloat16",
    )
    graphdef, params = init_model(lambda rngs: TransformerLM(cfg, rngs=rngs), jax.random.key(0))
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, vocab, (batch, seq + 1)))

    def loss(p, toks):
        logits = nnx.merge(graphdef, p)(toks[:, :-1]).astype(jnp.float32)
        return optax.softmax_cross_entropy_with_integer_labels(logits, toks[:, 1:]).mean()

    compiled, compile_s, mem = _common.compile_fn(jax.grad(loss), params, tokens)
    ms = _common.time_compiled(compiled, params, tokens, iters=args.iters)
    _common.emit(
        args,
        "scion",
        {
            "workload": "lm fwd+bwd",
            "variant": "TransformerLM bf16 (for the optimizer step's share)",
            "dtype": "bfloat16",
            "shapes": {"layers": num_layers, "d": d, "vocab": vocab, "B": batch, "T": seq},
            "median_ms": ms,
            "compile_s": compile_s,
            **mem,
            "baseline": "scion optimizer step (same tree)",
            "baseline_median_ms": step_results["scion"][0],
            "speedup_vs_baseline": step_results["scion"][0] / ms,
            "optimizer_step_share": {name: r[0] / (r[0] + ms) for name, r in step_results.items()},
        },
    )


def main() -> None:
    args = _common.parse_args(__doc__.splitlines()[0])
    if args.tiny:
        layers, d, vocab = 2, 64, 256
    elif args.device == "cpu":
        layers, d, vocab = 4, 256, 4096
    else:
        layers, d, vocab = 12, 768, 50304
    params = gpt_tree(layers, d, vocab)
    n_params = sum(x.size for x in jax.tree.leaves(params))
    desc = {"layers": layers, "d": d, "vocab": vocab, "params": int(n_params)}
    step_results = step_rows(args, params, desc)
    ns_accuracy_rows(args, [(d, d), (d, 4 * d)])
    if args.device == "gpu" and not args.tiny:
        try:
            lm_rows(args, layers, d, vocab, batch=8, seq=1024, step_results=step_results)
        except Exception as e:
            print(f"# lm fwd+bwd: {type(e).__name__}: {str(e)[:300]}", file=sys.stderr)


if __name__ == "__main__":
    main()
