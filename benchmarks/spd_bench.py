"""SPD: detector cost per prompt vs SmoothLLM and the perplexity filter; GCG steps per second.

Rows (``case``):

* ``detector``: SPD (:mod:`lions_jax.spd`) on a batch of prompts, as one jitted program: a
  prefill + ``r`` greedy decode steps of the LM (:func:`lions_jax.models.generate` with
  ``return_logprobs=True``), the top-k surprisal features (``r = 5``, ``k = 25``) and the decision
  of an :class:`~lions_jax.spd.SPDDetector` fitted once, before timing, on synthetic log-probs of
  ``n_fit`` decodes with overlapping classes (so it keeps ~100+ support vectors;
  ``support_vectors`` in the row). ``median_ms`` is the whole batch, ``per_prompt_ms`` =
  ``median_ms / batch``; ``features_svm_ms`` is the features + SVM decision alone (on
  precomputed log-probs of the same shape): the rest is the LM. Baseline: **SmoothLLM**
  (:func:`lions_jax.spd.baselines.smoothllm_detect`, N = 10 swap-perturbed copies, q = 0.1, each
  decoded for 12 tokens — enough to judge a refusal, as in the experiment — the refusal judge on
  the host and the vote), timed end to end on the same model and batch;
  ``speedup_vs_baseline`` = SmoothLLM ms / SPD ms (= the per-prompt ratio: same batch).
  ``baseline_device_ms`` is SmoothLLM's jitted part alone (perturb + generate, no host judge),
  ``baseline_temp_bytes`` its decode's compiled memory, ``baseline_compile_s`` its first call.
* ``ppl_filter``: the input perplexity filter (:func:`lions_jax.spd.baselines.prompt_nll`, one
  forward pass of the prompt) as the cheap reference; its baseline is the SPD detector of the
  ``detector`` row (``speedup_vs_baseline`` = SPD ms / filter ms: what SPD's r decode steps
  and SVM cost on top of one prompt forward pass).
* ``gcg``: :func:`lions_jax.spd.gcg.gcg_attack` (``GCGConfig(top_k=32, num_candidates=64)`` on
  CPU, 512 on GPU), a ~60-token prompt (prefix 30 + suffix 20 + infix 11) and a 16-token target,
  ``num_steps`` steps in one compiled ``lax.scan``; ``median_ms`` is per step (``run_ms`` the
  whole attack) and ``steps_per_s``. Baseline: a Python loop of the public one-step API
  (:func:`lions_jax.spd.gcg.gcg_step`, its host-side input checks included), what a user writing
  the reference code's outer loop gets; ``speedup_vs_baseline`` = loop / scan.
* ``gcg_batch``: ``jax.vmap`` of the same attack over ``prompts`` prompts (independent keys,
  prefixes, suffixes, targets), ``median_ms`` per step of the whole batch and
  ``prompt_steps_per_s`` = steps × prompts / s. Baseline: a Python loop over the prompts of the
  compiled single-prompt attack (``speedup_vs_baseline`` = loop / vmap).

Model: the experiment's toy LM (:meth:`lions_jax.spd.toy.ToyLMConfig.lm_config`: byte vocabulary
259, d_model 128, 2 layers, 4 heads) with random initialisation (the cost does not depend on the
weights) on CPU, in float32. On GPU (``--device gpu``) a ~95M-parameter decoder: d_model 768,
12 layers, 12 heads, SwiGLU width 1536, and a **32 000-token vocabulary** (so that the full-
vocabulary log-softmax SPD reads, GCG's (m, V) token gradients and its candidates' output head
have a realistic size; token ids 256..258 keep the byte tokenizer's pad / BOS / EOS roles), in
bfloat16 (log-softmax and GCG's losses in float32), with batch 64. ``--tiny``: the toy LM with
tiny batches and few GCG steps (smoke test).

Timings are wall-clock medians on an otherwise idle machine only if nothing else runs on it.

    python benchmarks/spd_bench.py --device cpu [--tiny]
    python benchmarks/spd_bench.py --device gpu
"""

import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common
import jax
import jax.numpy as jnp
import numpy as np

from lions_jax.models import LMConfig, TransformerLM, generate, init_model
from lions_jax.spd import SPDDetector, baselines, gcg
from lions_jax.spd.task import is_refusal
from lions_jax.spd.toy import TOKENIZER, ToyLMConfig

BENCH = "spd"
R, K = 5, 25  # SPD's features (the experiment's defaults)
SMOOTH_COPIES, SMOOTH_Q, SMOOTH_NEW = 10, 0.1, 12  # SmoothLLM as in the experiment
PAD, BOS, EOS = TOKENIZER.pad_id, TOKENIZER.bos_id, TOKENIZER.eos_id
PREFIX_LEN, SUFFIX_LEN, INFIX_LEN, TARGET_LEN = 30, 20, 12, 16

SETTINGS = {
    "tiny": dict(batch=4, prompt=48, n_fit=200, gcg_steps=2, candidates=16, gcg_prompts=2),
    "cpu": dict(batch=8, prompt=64, n_fit=200, gcg_steps=5, candidates=64, gcg_prompts=4),
    "gpu": dict(batch=64, prompt=64, n_fit=400, gcg_steps=10, candidates=512, gcg_prompts=8),
}


def lm_config(device: str) -> tuple[LMConfig, str]:
    if device == "cpu":
        return ToyLMConfig().lm_config(), "float32"
    cfg = LMConfig(vocab_size=32_000, d_model=768, num_layers=12, num_heads=12, d_ff=1536,
                   max_len=512, dtype="bfloat16")  # fmt: skip
    return cfg, "bfloat16"


def model_shapes(cfg: LMConfig, params) -> dict:
    return {
        "vocab": cfg.vocab_size,
        "d_model": cfg.d_model,
        "layers": cfg.num_layers,
        "heads": cfg.num_heads,
        "d_ff": cfg.resolved_d_ff,
        "params": int(sum(x.size for x in jax.tree.leaves(params))),
    }


def chat_like_prompts(rng: np.random.Generator, batch: int, length: int):
    """(ids, mask, editable): BOS + random printable bytes, all real; the last 12 bytes stand
    for ``"\\nAssistant: "`` and BOS is not editable (SmoothLLM perturbs the request only)."""
    ids = rng.integers(32, 127, (batch, length)).astype(np.int32)
    ids[:, 0] = BOS
    mask = np.ones((batch, length), bool)
    editable = mask.copy()
    editable[:, 0] = False
    editable[:, -INFIX_LEN:] = False
    return jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(editable)


def fit_detector(vocab: int, n_fit: int) -> SPDDetector:
    """An SPD detector fitted on synthetic log-probs of ``n_fit`` decodes: two classes of random
    logits whose temperatures overlap, so many training points stay support vectors."""
    rng = np.random.default_rng(0)
    labels = np.arange(n_fit) % 2
    scale = rng.uniform(1.5, 3.0, (n_fit, 1, 1)) + 0.3 * labels[:, None, None]
    logits = scale * rng.standard_normal((n_fit, R, vocab)).astype(np.float32)
    logprobs = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1)
    lengths = jnp.asarray(rng.integers(R - 1, R + 1, n_fit), jnp.int32)  # half one token short
    return SPDDetector(r=R, k=K).fit(logprobs, jnp.asarray(labels), lengths)


def refused_judge(tokens: np.ndarray) -> np.ndarray:
    """SmoothLLM's refusal judge on the host: decode the bytes, match a refusal opening."""
    return np.array([is_refusal(TOKENIZER.decode(t[t < 256])) for t in np.asarray(tokens)])


# ------------------------------------------------------------------------------------ detector
def bench_detector(args, cfg: LMConfig, dtype: str, graphdef, params, s: dict) -> None:
    b, length = s["batch"], s["prompt"]
    ids, mask, editable = chat_like_prompts(np.random.default_rng(1), b, length)
    det = fit_detector(cfg.vocab_size, s["n_fit"])
    n_sv = int(jnp.sum(det.svm.alpha > 1e-6))

    def spd(params, ids, mask, svm):
        out = generate(None, graphdef, params, ids, prompt_mask=mask, max_new_tokens=R,
                       eos_id=EOS, pad_id=PAD, return_logprobs=True)  # fmt: skip
        return dataclasses.replace(det, svm=svm).decision(out.logprobs, out.lengths)

    def features_svm(logprobs, lengths, svm):
        return dataclasses.replace(det, svm=svm).decision(logprobs, lengths)

    def ppl(params, ids, mask):
        return baselines.prompt_nll(graphdef, params, ids, mask)

    key = jax.random.key(0)
    spd_c, spd_compile, spd_mem = _common.compile_fn(spd, params, ids, mask, det.svm)
    # features + SVM alone, on log-probs of the same shape (their values do not change the cost)
    lp = jax.nn.log_softmax(jax.random.normal(key, (b, R, cfg.vocab_size)), axis=-1)
    lens = jnp.full((b,), R, jnp.int32)
    fs_c, _, _ = _common.compile_fn(features_svm, lp, lens, det.svm)
    ppl_c, ppl_compile, ppl_mem = _common.compile_fn(ppl, params, ids, mask)

    def smooth_host():  # the public end-to-end API: perturb, decode, judge on the host, vote
        return baselines.smoothllm_detect(
            key, graphdef, params, ids, mask, editable, refused_judge,
            max_new_tokens=SMOOTH_NEW, q=SMOOTH_Q, num_copies=SMOOTH_COPIES, eos_id=EOS,
            pad_id=PAD,
        )  # fmt: skip

    t0 = time.perf_counter()
    jax.block_until_ready(smooth_host())  # compiles perturb_prompts and generate
    sm_compile = time.perf_counter() - t0
    # SmoothLLM's device part alone, called exactly as smoothllm_detect does (its compiled
    # programs, from the jit caches: no recompilation), for its compiled memory and time
    k_pert, k_gen = jax.random.split(key)
    pert = baselines.perturb_prompts(k_pert, ids, mask, editable, q=SMOOTH_Q, kind="swap",
                                     num_copies=SMOOTH_COPIES, pad_id=PAD)  # fmt: skip
    n = SMOOTH_COPIES * b
    gen_kw = dict(max_new_tokens=SMOOTH_NEW, temperature=0.0, eos_id=EOS, pad_id=PAD)
    gen_args = (k_gen, graphdef, params, pert.ids.reshape(n, -1))
    gen_c = generate.lower(*gen_args, prompt_mask=pert.mask.reshape(n, -1), **gen_kw).compile()
    sm_mem = gen_c.memory_analysis()
    sm_temp = None if sm_mem is None else int(sm_mem.temp_size_in_bytes)

    def smooth_device():
        pert = baselines.perturb_prompts(k_pert, ids, mask, editable, q=SMOOTH_Q, kind="swap",
                                         num_copies=SMOOTH_COPIES, pad_id=PAD)  # fmt: skip
        return generate(k_gen, graphdef, params, pert.ids.reshape(n, -1),
                        prompt_mask=pert.mask.reshape(n, -1), **gen_kw).tokens  # fmt: skip

    it = args.iters
    spd_ms = _common.time_compiled(spd_c, params, ids, mask, det.svm, iters=it)
    fs_ms = _common.time_compiled(fs_c, lp, lens, det.svm, iters=it)
    sm_it = it if args.device != "cpu" else max(1, it // 3)  # 10 decodes per prompt: slow on CPU
    sm_dev_ms = _common.time_host(smooth_device, iters=sm_it)
    sm_ms = _common.time_host(smooth_host, iters=sm_it)
    ppl_ms = _common.time_compiled(ppl_c, params, ids, mask, iters=it)

    shapes = {"batch": b, "prompt_len": length, **model_shapes(cfg, params)}
    common = {"dtype": dtype, "shapes": shapes}
    _common.emit(
        args,
        BENCH,
        {
            "case": "detector",
            **common,
            "r": R,
            "k": K,
            "n_fit": s["n_fit"],
            "support_vectors": n_sv,
            "median_ms": spd_ms,
            "per_prompt_ms": spd_ms / b,
            "features_svm_ms": fs_ms,
            "compile_s": spd_compile,
            **spd_mem,
            "baseline": f"SmoothLLM (N = {SMOOTH_COPIES} swap copies, q = {SMOOTH_Q}, "
            f"{SMOOTH_NEW} decoded tokens each, host refusal judge + vote), same batch",
            "baseline_median_ms": sm_ms,
            "baseline_per_prompt_ms": sm_ms / b,
            "baseline_device_ms": sm_dev_ms,
            "baseline_compile_s": sm_compile,
            "baseline_temp_bytes": sm_temp,
            "speedup_vs_baseline": sm_ms / spd_ms,
        },
    )
    _common.emit(
        args,
        BENCH,
        {
            "case": "ppl_filter",
            **common,
            "median_ms": ppl_ms,
            "per_prompt_ms": ppl_ms / b,
            "compile_s": ppl_compile,
            **ppl_mem,
            "baseline": f"SPD detector (prefill + {R} decode steps + features + SVM), same batch",
            "baseline_median_ms": spd_ms,
            "speedup_vs_baseline": spd_ms / ppl_ms,
        },
    )


# ----------------------------------------------------------------------------------------- GCG
def gcg_inputs(rng: np.random.Generator, n: int):
    """``n`` prompts' (prefix, suffix_init, target) ids and the shared infix."""
    prefix = rng.integers(32, 127, (n, PREFIX_LEN)).astype(np.int32)
    prefix[:, 0] = BOS
    suffix = np.full((n, SUFFIX_LEN), ord("!"), np.int32)
    target = rng.integers(32, 127, (n, TARGET_LEN)).astype(np.int32)
    infix = np.frombuffer(b"\nAssistant: ", np.uint8).astype(np.int32)
    assert infix.size == INFIX_LEN
    return jnp.asarray(prefix), jnp.asarray(suffix), jnp.asarray(infix), jnp.asarray(target)


def bench_gcg(args, cfg: LMConfig, dtype: str, graphdef, params, s: dict) -> None:
    steps, n_prompts = s["gcg_steps"], s["gcg_prompts"]
    gcfg = gcg.GCGConfig(num_steps=steps, top_k=32, num_candidates=s["candidates"])
    prefix, suffix, infix, target = gcg_inputs(np.random.default_rng(2), n_prompts)
    keys = jax.random.split(jax.random.key(3), n_prompts)
    # a whole attack per timed run: few runs on CPU (seconds each)
    it = max(1, args.iters // (5 if args.device == "cpu" else 2))

    def attack(key, params, prefix, suffix, infix, target):
        return gcg.gcg_attack(key, graphdef, params, prefix, suffix, infix, target, config=gcfg)

    one = (keys[0], params, prefix[0], suffix[0], infix, target[0])
    att_c, att_compile, att_mem = _common.compile_fn(attack, *one)
    run_ms = _common.time_compiled(att_c, *one, iters=it, warmup=1)
    allowed = gcg.allowed_token_mask(gcfg.allowed, cfg.vocab_size)

    def step_loop():  # the public one-step API in a Python loop (host checks included)
        sfx, loss = suffix[0], None
        for k in jax.random.split(keys[0], steps):
            sfx, loss = gcg.gcg_step(k, graphdef, params, prefix[0], sfx, infix, target[0],
                                     top_k=gcfg.top_k, num_candidates=gcfg.num_candidates,
                                     allowed_mask=allowed)  # fmt: skip
        return sfx, loss

    loop_ms = _common.time_host(step_loop, iters=it)
    shapes = {
        "prefix": PREFIX_LEN,
        "suffix": SUFFIX_LEN,
        "infix": INFIX_LEN,
        "target": TARGET_LEN,
        **model_shapes(cfg, params),
    }
    gcg_cfg = {"num_steps": steps, "top_k": gcfg.top_k, "num_candidates": gcfg.num_candidates}
    _common.emit(
        args,
        BENCH,
        {
            "case": "gcg",
            "dtype": dtype,
            "shapes": shapes,
            **gcg_cfg,
            "median_ms": run_ms / steps,
            "run_ms": run_ms,
            "steps_per_s": steps / (run_ms / 1e3),
            "compile_s": att_compile,
            **att_mem,
            "baseline": "Python loop of gcg.gcg_step (jitted per step, host input checks)",
            "baseline_median_ms": loop_ms / steps,
            "baseline_run_ms": loop_ms,
            "speedup_vs_baseline": loop_ms / run_ms,
        },
    )

    def batched(keys, params, prefix, suffix, infix, target):
        return jax.vmap(attack, in_axes=(0, None, 0, 0, None, 0))(
            keys, params, prefix, suffix, infix, target
        )

    batch_args = (keys, params, prefix, suffix, infix, target)
    vm_c, vm_compile, vm_mem = _common.compile_fn(batched, *batch_args)
    vm_ms = _common.time_compiled(vm_c, *batch_args, iters=it, warmup=1)

    def prompt_loop():
        return [att_c(keys[i], params, prefix[i], suffix[i], infix, target[i])
                for i in range(n_prompts)]  # fmt: skip

    ploop_ms = _common.time_host(prompt_loop, iters=it, warmup=0)  # att_c ran above
    _common.emit(
        args,
        BENCH,
        {
            "case": "gcg_batch",
            "dtype": dtype,
            "shapes": {**shapes, "prompts": n_prompts},
            **gcg_cfg,
            "prompts": n_prompts,
            "median_ms": vm_ms / steps,
            "run_ms": vm_ms,
            "steps_per_s": steps / (vm_ms / 1e3),
            "prompt_steps_per_s": steps * n_prompts / (vm_ms / 1e3),
            "compile_s": vm_compile,
            **vm_mem,
            "baseline": "Python loop over the prompts of the compiled single-prompt attack",
            "baseline_median_ms": ploop_ms / steps,
            "baseline_run_ms": ploop_ms,
            "speedup_vs_baseline": ploop_ms / vm_ms,
        },
    )


def main() -> None:
    args = _common.parse_args(__doc__.splitlines()[0])
    s = SETTINGS["tiny" if args.tiny else ("cpu" if args.device == "cpu" else "gpu")]
    cfg, dtype = lm_config("cpu" if args.tiny or args.device == "cpu" else args.device)
    graphdef, params = init_model(lambda rngs: TransformerLM(cfg, rngs=rngs), jax.random.key(0))
    t0 = time.perf_counter()
    bench_detector(args, cfg, dtype, graphdef, params, s)
    bench_gcg(args, cfg, dtype, graphdef, params, s)
    print(f"spd_bench: {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
