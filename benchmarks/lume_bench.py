"""LUME: unlearning step time per objective, a compiled epoch vs a Python loop of steps, and
scoring throughput (greedy generations per second) batched vs row by row.

Rows (``case``):

* ``step``: one unlearning step of each objective of :mod:`lions_jax.lume.losses` (GA, GD, KL,
  NPO, NPO+GD, SimNPO+GD) inside :func:`lions_jax.lume.unlearn.make_unlearn`'s loop: forward and
  backward on a forget batch, plus a retain batch and frozen-reference forwards where the
  objective needs them, and the AdamW update. ``median_ms`` is per step (an epoch of ``steps``
  steps without evaluation, divided by ``steps``). Baseline: **GA**, the cheapest objective
  (``speedup_vs_baseline`` < 1 = what the retain term, the reference model or the KL's full
  distributions cost on top of GA).
* ``epoch``: one epoch of NPO+GD as one compiled ``lax.scan`` (the library's loop) vs a Python
  loop over a jitted single step, what a user writing the TOFU-style outer loop gets
  (``speedup_vs_baseline`` = loop / scan).
* ``grouping``: one NPO+GD epoch on LUME-like rows of two lengths (30 % at ``width``, 70 % at a
  quarter of it, as sc and qa rows) with each length group at its own width
  (:class:`~lions_jax.lume.unlearn.UnlearnArrays` groups) vs the same rows padded to one width
  (``speedup_vs_baseline`` = padded / grouped).
* ``scoring``: LUME's generation pass (:func:`lions_jax.lume.model.evaluate`'s greedy decoding:
  ``rows`` prompts of ``prompt`` tokens, ``new`` new tokens, KV cache, batched) in generations
  per second. Baseline: the organisers' evaluation script's pattern, one ``generate`` call per
  row (batch 1, same cache and compiled program), on ``loop_rows`` rows and scaled per
  generation (``speedup_vs_baseline`` = per-generation time row by row / batched).

Models are random-initialised (the cost does not depend on the weights) on synthetic token ids.
CPU: the experiment's toy LM (d_model 128, 2 layers, 4 heads, vocabulary 4096, windows of 112
tokens), float32. GPU (``--device gpu``): a ~100M-parameter decoder (d_model 768, 12 layers,
12 heads, vocabulary 32 000) in bfloat16 with batch 32, as the spec's GPU setting proposes.
``--tiny``: a tiny model and batches (smoke test).

    python benchmarks/lume_bench.py --device cpu [--tiny]
    python benchmarks/lume_bench.py --device gpu
"""

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lions_jax.lume.losses import LOSSES
from lions_jax.lume.model import EvalArrays, Sequences
from lions_jax.lume.unlearn import UnlearnArrays, UnlearnConfig, UnlearnHparams, make_unlearn
from lions_jax.models import LMConfig, TransformerLM, generate, init_model

BENCH = "lume"

SETTINGS = {
    "tiny": dict(
        d=16,
        layers=1,
        heads=2,
        vocab=256,
        width=32,
        batch=4,
        steps=2,
        rows=4,
        loop_rows=2,
        prompt=16,
        new=8,
        dtype=None,
    ),
    "cpu": dict(
        d=128,
        layers=2,
        heads=4,
        vocab=4096,
        width=112,
        batch=16,
        steps=5,
        rows=64,
        loop_rows=4,
        prompt=88,
        new=48,
        dtype=None,
    ),
    "gpu": dict(
        d=768,
        layers=12,
        heads=12,
        vocab=32_000,
        width=256,
        batch=32,
        steps=10,
        rows=256,
        loop_rows=8,
        prompt=192,
        new=64,
        dtype="bfloat16",
    ),
}


def synthetic_rows(rng: np.random.Generator, n: int, width: int, vocab: int) -> Sequences:
    """Rows of random ids: the first half is the input, the rest the output (the loss)."""
    tokens = rng.integers(2, vocab, (n, width)).astype(np.int32)
    attn = np.ones((n, width), bool)
    loss = np.zeros((n, width - 1), bool)
    loss[:, width // 2 - 1 :] = True
    return Sequences(jnp.asarray(tokens), jnp.asarray(attn), jnp.asarray(loss))


def main() -> None:
    args = _common.parse_args(__doc__.splitlines()[0])
    s = SETTINGS["tiny" if args.tiny else ("cpu" if args.device == "cpu" else "gpu")]
    cfg = LMConfig(vocab_size=s["vocab"], d_model=s["d"], num_layers=s["layers"],
                   num_heads=s["heads"], max_len=2 * max(s["width"], s["prompt"] + s["new"]),
                   dtype=s["dtype"])  # fmt: skip
    dtype = s["dtype"] or "float32"
    graphdef, params = init_model(lambda r: TransformerLM(cfg, rngs=r), jax.random.key(0))
    n_params = int(sum(x.size for x in jax.tree.leaves(params)))
    rng = np.random.default_rng(0)
    b, steps = s["batch"], s["steps"]
    forget = synthetic_rows(rng, b * steps, s["width"], s["vocab"])
    retain = synthetic_rows(rng, b * steps, s["width"], s["vocab"])
    prompts = jnp.asarray(rng.integers(2, s["vocab"], (s["rows"], s["prompt"])).astype(np.int32))
    pmask = jnp.ones_like(prompts, bool)
    one_doc = jax.tree.map(lambda x: x[:1], forget)
    tiny_eval = EvalArrays((prompts[:1, :4],), (pmask[:1, :4],), one_doc, one_doc)
    arrays = UnlearnArrays((forget,), (retain,), tiny_eval)
    shapes = {"d_model": s["d"], "layers": s["layers"], "vocab": s["vocab"], "params": n_params,
              "batch": b, "width": s["width"]}  # fmt: skip

    # ---- step: one epoch without evaluation, per objective (traced algorithm: one compile)
    base = UnlearnConfig(epochs=1, batch_size=b, learning_rate=1e-4)
    unlearn = make_unlearn(base, graphdef, max_new_tokens=(1,))

    def epoch_only(params, arrays, h):
        # the two evaluations (1 row, 1 new token, 1 document) are negligible next to the steps
        new, log = unlearn(jax.random.key(1), params, params, arrays, h)
        return new, log.losses

    hp = {a: UnlearnHparams.from_config(dataclasses.replace(base, algorithm=a)) for a in LOSSES}
    compiled, compile_s, mem = _common.compile_fn(epoch_only, params, arrays, hp["ga"])
    ms = {a: _common.time_compiled(compiled, params, arrays, hp[a], iters=args.iters) / steps
          for a in LOSSES}  # fmt: skip
    for a in LOSSES:
        _common.emit(args, BENCH, {
            "case": "step", "objective": a, "dtype": dtype, "shapes": {**shapes, "steps": steps},
            "median_ms": ms[a], "compile_s": compile_s, **mem,
            "baseline": "GA step", "baseline_median_ms": ms["ga"],
            "speedup_vs_baseline": ms["ga"] / ms[a],
        })  # fmt: skip

    # ---- epoch: compiled scan vs a Python loop of a jitted step (NPO+GD)
    h = hp["npo_gd"]
    epoch_ms = ms["npo_gd"] * steps
    opt = optax.adamw(1e-4, weight_decay=0.0)

    def objective(p, ref, f, r):
        from lions_jax.lume import losses
        from lions_jax.lume.model import sequence_token_logprobs as lp

        return losses.npo_gd_loss(lp(graphdef, p, f), jax.lax.stop_gradient(lp(graphdef, ref, f)),
                                  f.loss_mask, lp(graphdef, p, r), r.loss_mask, 0.1, 1.0)  # fmt: skip

    @jax.jit
    def one_step(p, state, ref, f, r):
        g = jax.grad(objective)(p, ref, f, r)
        upd, state = opt.update(g, state, p)
        return optax.apply_updates(p, upd), state

    batches = [(jax.tree.map(lambda x, i=i: x[i * b : (i + 1) * b], forget),
                jax.tree.map(lambda x, i=i: x[i * b : (i + 1) * b], retain)) for i in range(steps)]  # fmt: skip

    def loop():
        p, state = params, opt.init(params)
        for f, r in batches:
            p, state = one_step(p, state, params, f, r)
        return p

    loop_ms = _common.time_host(loop, iters=max(1, args.iters // 2))
    _common.emit(args, BENCH, {
        "case": "epoch", "objective": "npo_gd", "dtype": dtype, "shapes": {**shapes, "steps": steps},
        "median_ms": epoch_ms, "compile_s": compile_s, **mem,
        "baseline": "Python loop of a jitted step", "baseline_median_ms": loop_ms,
        "speedup_vs_baseline": loop_ms / epoch_ms,
    })  # fmt: skip

    # ---- grouping: LUME-like rows of two lengths (30 % sc-like at `width`, 70 % qa-like at a
    # quarter of it), one NPO+GD epoch with each length group at its own width vs one padded width
    n_long = round(0.3 * b * steps)
    long_ = synthetic_rows(rng, n_long, s["width"], s["vocab"])
    short = synthetic_rows(rng, b * steps - n_long, s["width"] // 4, s["vocab"])

    def widen(x: Sequences) -> Sequences:
        extra = s["width"] - x.tokens.shape[1]
        return Sequences(*(jnp.pad(a, ((0, 0), (0, extra))) for a in x))

    one_width = Sequences(*(jnp.concatenate(xs) for xs in zip(long_, widen(short))))
    grouped = UnlearnArrays((long_, short), (long_, short), tiny_eval)
    padded = UnlearnArrays((one_width,), (one_width,), tiny_eval)
    gr_c, gr_compile, gr_mem = _common.compile_fn(epoch_only, params, grouped, h)
    pa_c, _, _ = _common.compile_fn(epoch_only, params, padded, h)
    gr_ms = _common.time_compiled(gr_c, params, grouped, h, iters=args.iters)
    pa_ms = _common.time_compiled(pa_c, params, padded, h, iters=args.iters)
    _common.emit(args, BENCH, {
        "case": "grouping", "objective": "npo_gd", "dtype": dtype,
        "shapes": {**shapes, "steps": steps, "rows": [n_long, b * steps - n_long],
                   "widths": [s["width"], s["width"] // 4]},
        "median_ms": gr_ms, "compile_s": gr_compile, **gr_mem,
        "baseline": "all rows padded to one width", "baseline_median_ms": pa_ms,
        "speedup_vs_baseline": pa_ms / gr_ms,
    })  # fmt: skip

    # ---- scoring: batched greedy generation vs one row at a time
    def gen(params, prompts, pmask):
        return generate(None, graphdef, params, prompts, prompt_mask=pmask,
                        max_new_tokens=s["new"], eos_id=1, pad_id=0).tokens  # fmt: skip

    g_c, g_compile, g_mem = _common.compile_fn(gen, params, prompts, pmask)
    g_ms = _common.time_compiled(g_c, params, prompts, pmask, iters=args.iters)
    one_c, _, _ = _common.compile_fn(gen, params, prompts[:1], pmask[:1])
    rows = [(prompts[i : i + 1], pmask[i : i + 1]) for i in range(s["loop_rows"])]
    row_ms = _common.time_host(
        lambda: [jax.block_until_ready(one_c(params, p, m)) for p, m in rows],
        iters=max(1, args.iters // 2),
    )
    per_gen_batched = g_ms / s["rows"]
    per_gen_loop = row_ms / s["loop_rows"]
    _common.emit(args, BENCH, {
        "case": "scoring", "dtype": dtype,
        "shapes": {**shapes, "rows": s["rows"], "prompt": s["prompt"], "new_tokens": s["new"]},
        "median_ms": g_ms, "generations_per_s": 1e3 / per_gen_batched, "compile_s": g_compile,
        **g_mem, "baseline": "one generate call per row (organisers' script pattern)",
        "baseline_median_ms": per_gen_loop * s["rows"],
        "baseline_generations_per_s": 1e3 / per_gen_loop,
        "speedup_vs_baseline": per_gen_loop / per_gen_batched,
    })  # fmt: skip


if __name__ == "__main__":
    main()
