"""``scion-gpt``: Scion vs unconstrained Scion vs AdamW vs Muon on a byte-level GPT, and width transfer.

A small CPU stand-in for the paper's shallow-nanoGPT experiments (spec §9), on the offline
``python-docs`` corpus (:func:`lions_jax.data.load_text_corpus`, bytes as tokens):

* **A, equal steps.** A 2-layer :class:`~lions_jax.models.TransformerLM` of width ``width``
  trained for ``num_steps`` steps by each optimizer at every learning rate of its grid, linear
  decay to 0, ``num_seeds`` seeds. The metric is held-out bits per byte; each optimizer is reported
  at its best learning rate (mean ± std over seeds).
* **B, width transfer.** The same model at every width in ``transfer_widths`` (fixed head
  dimension), Scion and AdamW over their learning-rate grids, ``transfer_steps`` steps. The claim
  the paper makes and this tests: Scion's best learning rate stays put (moves at most one grid
  step, ×2) as width grows, and loss at a fixed learning rate improves with width; standard-
  parametrisation AdamW's best learning rate drifts.

Optimizers: ``scion`` (SCG) and ``unconstrained_scion`` (uSCG) with the shallow-GPT recipe
(embedding ColNorm ρ=1, hidden spectral ρ=3, head Sign/d_in ρ=10, norm gains BiasRMS ρ=1,
α=0.1, weights started with :func:`~lions_jax.scion.scion_init`); ``adamw`` (β=(0.9, 0.95),
weight decay 0.1, standard init); ``muon`` = ``optax.contrib.muon`` on the blocks' matrices
(Nesterov, β=0.95) and AdamW at ``muon_adam_lr`` on embedding, head and gains. The learning rate
is a traced argument: each optimizer's whole grid × seeds trains as one vmapped, compiled run.

Differences from the paper's setting (stated in the report): bytes of Python documentation rather
than Shakespeare characters, widths 32–128 rather than 256–2048, T = 64 rather than 1024, a few
hundred steps, RMSNorm *with* gains and plain GELU (the official model has no gains and √2·GELU).
"""

import dataclasses
import itertools
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
from lions_jax.scion.transform import default_labels, scion, scion_init, unconstrained_scion

__all__ = ["OPTIMIZERS", "PRESETS", "ScionGPTConfig", "make_optimizer", "make_train", "run"]

OPTIMIZERS = ("scion", "unconstrained_scion", "adamw", "muon")
_LN2 = float(np.log(2.0))


def _pow2(lo: int, hi: int) -> tuple[float, ...]:
    return tuple(2.0**k for k in range(lo, hi + 1))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScionGPTConfig:
    """``scion-gpt``.

    Attributes:
      seed, num_seeds: seeds of experiment A (vmapped together with the learning-rate grid).
      optimizers: experiment A's optimizers, from :data:`OPTIMIZERS`.
      width, num_layers, head_dim, seq_len, batch_size, num_steps: experiment A's model and run.
      scion_lrs, adamw_lrs, muon_lrs: learning-rate grids (γ for both Scions).
      muon_adam_lr: AdamW learning rate of Muon's non-matrix parameters.
      momentum: Scion's α (d ← (1−α)d + αg).
      adamw_weight_decay: AdamW's decoupled weight decay.
      transfer_widths: experiment B's widths (empty: skip B).
      transfer_optimizers: experiment B's optimizers.
      transfer_steps, transfer_seeds: experiment B's steps and seeds.
      log_every, checkpoint_every: steps per jitted chunk / between checkpoints (both
        experiments' step counts must be multiples of ``log_every``).
      eval_windows: held-out windows of ``seq_len`` bytes for the validation loss.
    """

    seed: int = 0
    num_seeds: int = 3
    optimizers: tuple[str, ...] = OPTIMIZERS
    width: int = 64
    num_layers: int = 2
    head_dim: int = 16
    seq_len: int = 64
    batch_size: int = 16
    num_steps: int = 600
    scion_lrs: tuple[float, ...] = _pow2(-8, -3)
    adamw_lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3, 1e-2)
    muon_lrs: tuple[float, ...] = _pow2(-7, -4)
    muon_adam_lr: float = 3e-3
    momentum: float = 0.1
    adamw_weight_decay: float = 0.1
    transfer_widths: tuple[int, ...] = (32, 64, 128)
    transfer_optimizers: tuple[str, ...] = ("scion", "adamw")
    transfer_steps: int = 300
    transfer_seeds: int = 2
    log_every: int = 100
    checkpoint_every: int = 300
    eval_windows: int = 256

    def __post_init__(self) -> None:
        for name in (
            "num_seeds",
            "width",
            "num_layers",
            "head_dim",
            "seq_len",
            "batch_size",
            "num_steps",
            "transfer_steps",
            "transfer_seeds",
            "log_every",
            "checkpoint_every",
            "eval_windows",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("optimizers", "transfer_optimizers"):
            bad = [o for o in getattr(self, name) if o not in OPTIMIZERS]
            if bad or (name == "optimizers" and not self.optimizers):
                raise ValueError(f"{name}: unknown {bad}; choose from {', '.join(OPTIMIZERS)}")
        for name in ("scion_lrs", "adamw_lrs", "muon_lrs"):
            grid = getattr(self, name)
            if not grid or any(not lr > 0 for lr in grid):
                raise ValueError(f"{name}: expected positive learning rates, got {grid}")
        for w in (self.width, *self.transfer_widths):
            if w % self.head_dim:
                raise ValueError(f"width {w} is not a multiple of head_dim={self.head_dim}")
        if not 0.0 < self.momentum <= 1.0:
            raise ValueError(f"momentum must be in (0, 1], got {self.momentum}")
        for steps in (self.num_steps, self.transfer_steps, self.checkpoint_every):
            if steps % self.log_every:
                raise ValueError(
                    "num_steps, transfer_steps and checkpoint_every must be multiples of "
                    f"log_every={self.log_every}"
                )

    def lrs(self, optimizer: str) -> tuple[float, ...]:
        return {
            "scion": self.scion_lrs,
            "unconstrained_scion": self.scion_lrs,
            "adamw": self.adamw_lrs,
            "muon": self.muon_lrs,
        }[optimizer]


PRESETS = {
    # About 100 s on 2 CPU cores, half of it compilation: experiment A only (width 32, 100 steps,
    # 3-point grids, 3 seeds). Width transfer needs the longer runs of the paper preset.
    "quick": ScionGPTConfig(
        width=32,
        num_steps=100,
        log_every=50,
        checkpoint_every=100,
        eval_windows=64,
        scion_lrs=_pow2(-6, -4),
        adamw_lrs=(1e-3, 3e-3, 1e-2),
        muon_lrs=_pow2(-6, -4),
        transfer_widths=(),
    ),
    # The spec's reproduction (§9) with 7-point power-of-two grids for both Scions and AdamW:
    # 41 minutes on 2 CPU cores (A 24 min, B 17 min).
    "paper": ScionGPTConfig(
        scion_lrs=_pow2(-9, -3),
        adamw_lrs=_pow2(-12, -6),
        transfer_steps=300,
    ),
}


# ============================================================================================
# Data and model
# ============================================================================================
def _data(cfg: ScionGPTConfig) -> tuple[np.ndarray, np.ndarray, int]:
    corpus = load_text_corpus("python-docs")
    tok = ByteTokenizer()
    train = tok.encode(corpus.train).astype(np.int32)
    val = lm_sequences(tok.encode(corpus.validation), cfg.seq_len)
    idx = np.linspace(0, len(val) - 1, min(cfg.eval_windows, len(val))).astype(int)
    return train, val[idx], tok.vocab_size


def _lm_config(cfg: ScionGPTConfig, width: int, vocab: int) -> LMConfig:
    return LMConfig(
        vocab_size=vocab,
        d_model=width,
        num_layers=cfg.num_layers,
        num_heads=width // cfg.head_dim,
        head_dim=cfg.head_dim,
        d_ff=4 * width,
        max_len=cfg.seq_len,
        norm="rms",
        position="rope",
        activation="gelu",
        gated_mlp=False,
        use_bias=False,
        tie_embeddings=False,
    )


def _muon_dims(params: Any) -> Any:
    """Muon on the hidden (block) matrices; ``None`` routes a leaf to Muon's AdamW."""
    return jax.tree.map(
        lambda lab: optax.contrib.MuonDimensionNumbers() if lab == "hidden" else None,
        default_labels(params),
    )


def make_optimizer(
    cfg: ScionGPTConfig, optimizer: str, lr: Any, num_steps: int
) -> optax.GradientTransformation:
    """The optimizer with peak learning rate ``lr`` (may be traced), linear decay to 0."""
    sched = optax.linear_schedule(lr, 0.0, num_steps)
    if optimizer == "scion":
        return scion(sched, momentum=cfg.momentum)
    if optimizer == "unconstrained_scion":
        return unconstrained_scion(sched, momentum=cfg.momentum)
    if optimizer == "adamw":
        return optax.adamw(sched, b1=0.9, b2=0.95, weight_decay=cfg.adamw_weight_decay)
    if optimizer == "muon":
        return optax.contrib.muon(
            sched,
            adam_learning_rate=optax.linear_schedule(cfg.muon_adam_lr, 0.0, num_steps),
            adam_b2=0.95,
            muon_weight_dimension_numbers=_muon_dims,
        )
    raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {optimizer!r}")


def _parts(cfg: ScionGPTConfig, optimizer: str, width: int, num_steps: int, data=None):
    """``init((key, lr)) -> state`` and ``chunk(state) -> (state, metrics)`` for one run."""
    train_tokens, val_windows, vocab = _data(cfg) if data is None else data
    train_tokens = jnp.asarray(train_tokens)
    val_windows = jnp.asarray(val_windows)
    lm_cfg = _lm_config(cfg, width, vocab)
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: TransformerLM(lm_cfg, rngs=nnx.Rngs(0))))
    T, B = cfg.seq_len, cfg.batch_size

    def loss_fn(params, windows):
        logits = nnx.merge(graphdef, params)(windows[:, :-1])
        ce = optax.softmax_cross_entropy_with_integer_labels(
            logits.astype(jnp.float32), windows[:, 1:]
        )
        return ce.mean() / _LN2  # bits per byte

    def init(key_lr):
        key, lr = key_lr
        k_init, k_scion, k_run = jax.random.split(key, 3)
        params = nnx.state(TransformerLM(lm_cfg, rngs=nnx.Rngs(k_init)))
        if optimizer in ("scion", "unconstrained_scion"):
            params = scion_init(k_scion, params)
        tx = make_optimizer(cfg, optimizer, lr, num_steps)
        return {
            "params": params,
            "opt_state": tx.init(params),
            "key": k_run,
            "lr": lr,
            "step": jnp.zeros((), jnp.int32),
        }

    def body(state, _):
        tx = make_optimizer(cfg, optimizer, state["lr"], num_steps)
        k = jax.random.fold_in(state["key"], state["step"])
        starts = jax.random.randint(k, (B,), 0, train_tokens.shape[0] - T - 1)
        windows = jax.vmap(lambda s: jax.lax.dynamic_slice(train_tokens, (s,), (T + 1,)))(starts)
        loss, grads = jax.value_and_grad(loss_fn)(state["params"], windows)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return {**state, "params": params, "opt_state": opt_state, "step": state["step"] + 1}, loss

    def chunk(state):
        state, losses = jax.lax.scan(body, state, None, length=cfg.log_every)
        val = loss_fn(state["params"], val_windows)
        return state, {"train_bpb": losses.mean(), "val_bpb": val}

    return init, chunk


def make_train(
    cfg: ScionGPTConfig, optimizer: str, *, width: int | None = None, num_steps: int | None = None
):
    """Pure ``train(key, lr) -> (state, metrics)``; ``jax.jit(jax.vmap(train))`` over seeds and lrs.

    Metrics (stacked per chunk of ``log_every`` steps): ``train_bpb`` (mean training loss of the
    chunk) and ``val_bpb`` (held-out loss after it), in bits per byte.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {optimizer!r}")
    steps = cfg.num_steps if num_steps is None else num_steps
    init, chunk = _parts(cfg, optimizer, width or cfg.width, steps)
    scanned = runner.scan_chunks(init, chunk, steps // cfg.log_every)
    return lambda key, lr: scanned((key, jnp.asarray(lr, jnp.float32)))


# ============================================================================================
# Host-side runs and the report
# ============================================================================================
def _grid_run(cfg, optimizer, width, num_steps, num_seeds, out_dir, data, progress):
    """One optimizer × width: every lr × seed in one vmapped, checkpointed run.

    Returns ``(lrs, curves)`` with ``curves[metric]`` of shape (chunks, n_lr, num_seeds) and
    ``curves["step"]`` of shape (chunks,).
    """
    lrs = np.asarray(cfg.lrs(optimizer), np.float64)
    keys = runner.seed_keys(cfg.seed, num_seeds)
    grid_keys = jnp.tile(keys, len(lrs))
    grid_lrs = jnp.repeat(jnp.asarray(lrs, jnp.float32), num_seeds)
    init, chunk = _parts(cfg, optimizer, width, num_steps, data=data)
    _, rows = runner.run_chunked(
        init_fn=init,
        chunk_fn=chunk,
        keys=(grid_keys, grid_lrs),
        num_chunks=num_steps // cfg.log_every,
        steps_per_chunk=cfg.log_every,
        out_dir=out_dir,
        checkpoint_every=max(1, cfg.checkpoint_every // cfg.log_every),
        desc=f"scion-gpt {optimizer} d={width}",
        progress=progress,
    )
    m = results.stack_metrics(rows)
    curves = {
        k: (v if k == "step" else v.reshape(len(v), len(lrs), num_seeds)) for k, v in m.items()
    }
    return lrs, curves


def _best(lrs: np.ndarray, finals: np.ndarray) -> tuple[int, np.ndarray]:
    """Index of the lr with the lowest mean final loss (diverged runs count as +inf)."""
    means = np.where(np.isfinite(finals).all(axis=1), finals.mean(axis=1), np.inf)
    return int(np.argmin(means)), means


def _fmt(mean: float | np.floating, std: float | np.floating) -> str:
    return "diverged" if not np.isfinite(mean) else f"{mean:.3f} ± {std:.3f}"


def _lr_label(lr: float | np.floating) -> str:
    k = np.log2(lr)
    return f"2^{k:.0f}" if abs(k - round(k)) < 1e-6 else f"{lr:.0e}"


def _plot_transfer(path, transfer):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    opts = list(transfer)
    fig, axes = plt.subplots(1, len(opts), figsize=(4.6 * len(opts), 3.4), squeeze=False)
    for ax, opt in zip(axes[0], opts):
        for width, (lrs, finals) in transfer[opt].items():
            _, means = _best(lrs, finals)
            ok = np.isfinite(means)
            ax.errorbar(
                np.log2(lrs)[ok],
                means[ok],
                yerr=finals[ok].std(axis=1),
                marker="o",
                capsize=2,
                label=f"width {width}",
            )
        ax.set_xlabel("log2 learning rate")
        ax.set_ylabel("final validation bits/byte")
        ax.set_title(opt)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return results.save_figure(fig, path)


def run(cfg: ScionGPTConfig, out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    data = _data(cfg)
    summary: dict[str, Any] = {"equal_steps": {}, "width_transfer": {}}
    lines = []
    all_rows = []

    # ---- A: equal steps --------------------------------------------------------------------
    best_curves = {}
    rows_a = []
    for opt in cfg.optimizers:
        lrs, curves = _grid_run(
            cfg,
            opt,
            cfg.width,
            cfg.num_steps,
            cfg.num_seeds,
            out_dir / "runs" / f"A_{opt}",
            data,
            progress,
        )
        finals = curves["val_bpb"][-1]  # (n_lr, seeds)
        i, means = _best(lrs, finals)
        best_curves[f"{opt} (lr {_lr_label(lrs[i])})"] = curves["val_bpb"][:, i, :]
        steps_axis = curves["step"]
        summary["equal_steps"][opt] = {
            "lrs": lrs.tolist(),
            "best_lr": float(lrs[i]),
            "val_bpb": results.summarize(finals[i]),
            "val_bpb_mean_per_lr": means.tolist(),
        }
        rows_a.append(
            [
                opt,
                _lr_label(lrs[i]),
                _fmt(means[i], finals[i].std()),
                ", ".join(
                    f"{_lr_label(lr)}: {'div.' if not np.isfinite(m) else f'{m:.3f}'}"
                    for lr, m in zip(lrs, means)
                ),
            ]
        )
        all_rows += [
            {
                "experiment": "A",
                "optimizer": opt,
                "width": cfg.width,
                "lr": float(lr),
                "step": int(s),
                "val_bpb": curves["val_bpb"][c, j].tolist(),
                "train_bpb": curves["train_bpb"][c, j].tolist(),
            }
            for c, s in enumerate(steps_axis)
            for j, lr in enumerate(lrs)
        ]
    results.plot_curves(
        out_dir / "val_bpb_equal_steps.png",
        steps_axis,
        best_curves,
        xlabel="step",
        ylabel="validation bits/byte",
        title=f"scion-gpt: width {cfg.width}, best lr each",
    )
    lines.append(
        f"### A. Equal steps (width {cfg.width}, {cfg.num_layers} layers, "
        f"{cfg.num_steps} steps, {cfg.num_seeds} seeds)\n"
    )
    lines.append(
        results.markdown_table(
            ["optimizer", "best lr", "val bits/byte at best lr", "mean per lr"], rows_a
        )
    )
    eq = summary["equal_steps"]
    if "scion" in eq and "adamw" in eq:
        s, a = eq["scion"]["val_bpb"], eq["adamw"]["val_bpb"]
        verdict = "holds" if s["mean"] <= a["mean"] + a["std"] else "does NOT hold"
        lines.append(
            f"\nClaim 'Scion ≥ AdamW' (Scion's best mean ≤ AdamW's best mean + 1 std): "
            f"{verdict} ({s['mean']:.3f} vs {a['mean']:.3f} ± {a['std']:.3f}).\n"
        )

    # ---- B: width transfer ----------------------------------------------------------------
    transfer: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    rows_b = []
    for opt in cfg.transfer_optimizers if cfg.transfer_widths else ():
        transfer[opt] = {}
        for width in cfg.transfer_widths:
            lrs, curves = _grid_run(
                cfg,
                opt,
                width,
                cfg.transfer_steps,
                cfg.transfer_seeds,
                out_dir / "runs" / f"B_{opt}_w{width}",
                data,
                progress,
            )
            finals = curves["val_bpb"][-1]
            transfer[opt][width] = (lrs, finals)
            i, means = _best(lrs, finals)
            rows_b.append(
                [
                    opt,
                    width,
                    _lr_label(lrs[i]),
                    _fmt(means[i], finals[i].std()),
                    ", ".join("div." if not np.isfinite(m) else f"{m:.3f}" for m in means),
                ]
            )
            summary["width_transfer"].setdefault(opt, {})[str(width)] = {
                "lrs": lrs.tolist(),
                "best_lr": float(lrs[i]),
                "val_bpb_mean_per_lr": means.tolist(),
                "val_bpb_std_per_lr": finals.std(axis=1).tolist(),
            }
            all_rows += [
                {
                    "experiment": "B",
                    "optimizer": opt,
                    "width": width,
                    "lr": float(lr),
                    "step": int(curves["step"][-1]),
                    "val_bpb": finals[j].tolist(),
                }
                for j, lr in enumerate(lrs)
            ]
    if transfer:
        _plot_transfer(out_dir / "width_transfer.png", transfer)
        lines.append(
            f"\n### B. Width transfer ({cfg.transfer_steps} steps, "
            f"{cfg.transfer_seeds} seeds, head dim {cfg.head_dim})\n"
        )
        lines.append(
            results.markdown_table(
                [
                    "optimizer",
                    "width",
                    "best lr",
                    "val bits/byte at best lr",
                    "mean per lr (grid order)",
                ],
                rows_b,
            )
        )
        lines.append("")
        for opt, by_width in transfer.items():
            widths = sorted(by_width)
            best_idx = [_best(*by_width[w])[0] for w in widths]
            lrs = by_width[widths[0]][0]
            moves = max(best_idx) - min(best_idx)
            mid = best_idx[len(best_idx) // 2]
            at_mid = [_best(*by_width[w])[1][mid] for w in widths]
            monotone = all(b < a for a, b in itertools.pairwise(at_mid))
            summary["width_transfer"][opt]["argmin_moves_grid_steps"] = moves
            summary["width_transfer"][opt]["loss_decreases_with_width_at_fixed_lr"] = monotone
            lines.append(
                f"- {opt}: best lr per width {', '.join(_lr_label(lrs[i]) for i in best_idx)} "
                f"(moves {moves} grid step{'s' if moves != 1 else ''}); at lr "
                f"{_lr_label(lrs[mid])} the loss "
                f"{'decreases' if monotone else 'does not decrease monotonically'} with width "
                f"({' → '.join('div.' if not np.isfinite(x) else f'{x:.3f}' for x in at_mid)})."
            )
    wall = time.perf_counter() - t0
    lines.append(
        f"\nHeld-out bits per byte on {len(data[1])} windows of {cfg.seq_len} bytes of the "
        "python-docs corpus (validation documents); linear decay to 0; mean ± std over seeds. "
        "Smaller than the paper's shallow-nanoGPT (Shakespeare, widths 256–2048, T = 1024): "
        "RMSNorm with gains, plain GELU. "
        f"Muon: optax.contrib.muon on block matrices, AdamW lr {cfg.muon_adam_lr:g} elsewhere. "
        f"Wall {wall:.0f} s.\n"
    )
    return results.write_outputs(
        out_dir,
        experiment="scion-gpt",
        config=config_to_dict(cfg),
        table="\n".join(lines),
        rows=all_rows,
        summary=summary,
        wall_time_s=wall,
    )


registry.register(
    registry.Experiment(
        name="scion-gpt",
        description="Scion / uSCG vs AdamW vs Muon on a byte-level GPT; learning-rate transfer "
        "across widths.",
        config_type=ScionGPTConfig,
        presets=PRESETS,
        run=run,
    )
)
