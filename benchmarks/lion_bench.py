"""LION attention vs softmax attention: forward and forward+backward time and compiled memory.

Rows per sequence length L: ``jax.nn.dot_product_attention`` (``implementation="xla"``, and
``"cudnn"`` on GPU with L padded to a multiple of 64 and the padding masked), LION-LIT (linear
form), LION-D and LION-S in parallel, chunked (several C) and recurrent (forward only) forms. The
baseline of every row is the fastest softmax attention measured at the same L in the same run;
``speedup_vs_baseline`` > 1 means LION is faster. The parallel LION forms are skipped where their
(B, H, L, L) float32 mask would not fit the memory cap. A ViT train step (softmax vs LION) closes
the run.

    python benchmarks/lion_bench.py --device cpu [--tiny]
    python benchmarks/lion_bench.py --device gpu        # B=8, H=6, d=64, bf16, L up to 16384
"""

import functools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lions_jax.lion import lion_attention, lion_vit
from lions_jax.models import EncoderConfig, TransformerEncoder, init_model, mean_pool


def _softmax(impl, seq_len):
    def f(q, k, v):
        pad = (-seq_len) % 64 if impl == "cudnn" else 0
        if pad:
            q, k, v = (jnp.pad(a, ((0, 0), (0, pad), (0, 0), (0, 0))) for a in (q, k, v))
            lengths = jnp.full((q.shape[0],), seq_len, jnp.int32)
            y = jax.nn.dot_product_attention(
                q,
                k,
                v,
                implementation=impl,
                query_seq_lengths=lengths,
                key_value_seq_lengths=lengths,
            )
            return y[:, :seq_len]
        return jax.nn.dot_product_attention(q, k, v, implementation=impl)

    return f


def _lion(form, chunk, variant):
    def f(q, k, v, ld):
        q, k = jax.nn.elu(q) + 1, jax.nn.elu(k) + 1  # positive feature map, as in the models
        return lion_attention(
            q, k, v, ld if variant != "lit" else None, form=form, chunk_size=chunk or 64
        )

    return f


def _fwd_bwd(fn):
    def loss(*args):
        return jnp.sum(fn(*args).astype(jnp.float32) ** 2)

    return jax.grad(loss, argnums=(0, 1, 2))


def attention_rows(args, *, b, h, d, lengths, dtype, chunks, mem_cap):
    impls = ["xla", "cudnn"] if args.device == "gpu" else ["xla"]
    for n in lengths:
        rng = np.random.default_rng(n)
        q, k, v = (jnp.asarray(rng.normal(size=(b, n, h, d)), dtype) for _ in range(3))
        ld_s = jnp.asarray(-np.logaddexp(0, -rng.normal(size=(b, n, h)) - 2.0), jnp.float32)
        ld_d = jnp.log(jnp.linspace(0.9, 0.999, h)).astype(jnp.float32)
        cases = [(f"softmax-{impl}", _softmax(impl, n), (q, k, v)) for impl in impls]
        cases.append(("lion-lit linear", _lion("parallel", 0, "lit"), (q, k, v, ld_d)))
        mask_bytes = b * h * n * n * 4
        for variant, ld in (("d", ld_d), ("s", ld_s)):
            if mask_bytes <= mem_cap:
                cases.append(
                    (f"lion-{variant} parallel", _lion("parallel", 0, variant), (q, k, v, ld))
                )
            for c in chunks:
                if c < n:
                    cases.append(
                        (
                            f"lion-{variant} chunked C={c}",
                            _lion("chunked", c, variant),
                            (q, k, v, ld),
                        )
                    )
            if n <= 4096:
                cases.append(
                    (f"lion-{variant} recurrent", _lion("recurrent", 0, variant), (q, k, v, ld))
                )
        results = {}
        for name, fn, inputs in cases:
            for mode in ("fwd", "fwd+bwd"):
                if mode == "fwd+bwd" and "recurrent" in name:
                    continue  # autodiff through the token scan stores L d x d states
                f = fn if mode == "fwd" else _fwd_bwd(fn)
                try:
                    compiled, compile_s, mem = _common.compile_fn(f, *inputs)
                    ms = _common.time_compiled(compiled, *inputs, iters=args.iters)
                except Exception as e:  # e.g. cuDNN rejecting a shape: record and go on
                    print(
                        f"# {name} {mode} L={n}: {type(e).__name__}: {str(e)[:200]}",
                        file=sys.stderr,
                    )
                    continue
                results[(name, mode)] = (ms, compile_s, mem)
        for mode in ("fwd", "fwd+bwd"):
            soft = {nm: r for (nm, md), r in results.items() if md == mode and "softmax" in nm}
            if not soft:
                continue
            base_name, (base_ms, _, base_mem) = min(soft.items(), key=lambda kv: kv[1][0])
            for (name, md), (ms, compile_s, mem) in results.items():
                if md != mode:
                    continue
                _common.emit(
                    args,
                    "lion",
                    {
                        "workload": f"attention {mode}",
                        "variant": name,
                        "dtype": str(dtype.dtype),
                        "shapes": {"B": b, "H": h, "d": d, "L": n},
                        "median_ms": ms,
                        "compile_s": compile_s,
                        **mem,
                        "tokens_per_s": b * n / (ms / 1e3),
                        "baseline": base_name,
                        "baseline_median_ms": base_ms,
                        "baseline_temp_bytes": base_mem["temp_bytes"],
                        "speedup_vs_baseline": base_ms / ms,
                    },
                )


def vit_step_rows(args, *, cfg, batch, dtype, variants=("lit", "d", "s")):
    """One AdamW train step of a ViT: softmax attention vs LION-LIT/D/S (parallel form)."""
    rng = np.random.default_rng(0)
    images = jnp.asarray(
        rng.normal(size=(batch, cfg.image_size, cfg.image_size, cfg.num_channels)), dtype
    )
    labels = jnp.asarray(rng.integers(0, 10, batch))
    models = {"softmax": lambda rngs: TransformerEncoder(cfg, rngs=rngs)}
    for variant in variants:
        models[f"lion-{variant}"] = functools.partial(lion_vit, cfg, variant=variant)
    tx = optax.adamw(1e-3)
    rows = {}
    for name, make in models.items():
        graphdef, params = init_model(lambda rngs, make=make: make(rngs=rngs), jax.random.key(0))
        head = jnp.zeros((cfg.d_model, 10), jnp.float32)
        state = ((params, head), tx.init((params, head)))

        def step(state, images, labels, graphdef=graphdef):
            (params, head), opt = state

            def loss_fn(p):
                feats = mean_pool(nnx.merge(graphdef, p[0])(images=images))
                logits = feats.astype(jnp.float32) @ p[1]
                return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

            grads = jax.grad(loss_fn)((params, head))
            updates, opt = tx.update(grads, opt, (params, head))
            return optax.apply_updates((params, head), updates), opt

        compiled, compile_s, mem = _common.compile_fn(step, state, images, labels)
        ms = _common.time_compiled(compiled, state, images, labels, iters=args.iters)
        rows[name] = (ms, compile_s, mem)
    base_ms = rows["softmax"][0]
    for name, (ms, compile_s, mem) in rows.items():
        _common.emit(
            args,
            "lion",
            {
                "workload": "vit train step",
                "variant": name,
                "dtype": str(dtype.dtype),
                "shapes": {
                    "B": batch,
                    "image": cfg.image_size,
                    "patch": cfg.patch_size,
                    "d": cfg.d_model,
                    "layers": cfg.num_layers,
                    "heads": cfg.num_heads,
                    "L": cfg.num_patches + 1,
                },
                "median_ms": ms,
                "compile_s": compile_s,
                **mem,
                "images_per_s": batch / (ms / 1e3),
                "baseline": "softmax",
                "baseline_median_ms": base_ms,
                "baseline_temp_bytes": rows["softmax"][2]["temp_bytes"],
                "speedup_vs_baseline": base_ms / ms,
            },
        )


def main() -> None:
    args = _common.parse_args(__doc__.splitlines()[0])
    if args.tiny:
        attention_rows(
            args, b=1, h=2, d=16, lengths=(64, 200), dtype=jnp.float32, chunks=(32,), mem_cap=2**28
        )
        cfg = EncoderConfig.vit(
            image_size=8,
            patch_size=2,
            num_channels=1,
            d_model=32,
            num_layers=1,
            num_heads=2,
            d_ff=64,
        )
        vit_step_rows(args, cfg=cfg, batch=4, dtype=jnp.float32, variants=("s",))
    elif args.device == "cpu":
        attention_rows(
            args,
            b=1,
            h=2,
            d=32,
            lengths=(256, 1024, 2048, 4096),
            dtype=jnp.float32,
            chunks=(64, 128),
            mem_cap=2**31,
        )
        cfg = EncoderConfig.vit(
            image_size=32,
            patch_size=4,
            num_channels=3,
            d_model=128,
            num_layers=4,
            num_heads=4,
            d_ff=256,
        )
        vit_step_rows(args, cfg=cfg, batch=32, dtype=jnp.float32)
    else:
        attention_rows(
            args,
            b=8,
            h=6,
            d=64,
            lengths=(197, 1024, 4096, 16384),
            dtype=jnp.bfloat16,
            chunks=(64, 128, 256),
            mem_cap=2**34,
        )
        cfg = EncoderConfig.vit(
            image_size=224,
            patch_size=16,
            num_channels=3,
            d_model=384,
            num_layers=12,
            num_heads=6,
            d_ff=1536,
            dtype="bfloat16",
        )
        vit_step_rows(args, cfg=cfg, batch=128, dtype=jnp.bfloat16)


if __name__ == "__main__":
    main()
