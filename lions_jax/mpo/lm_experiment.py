"""``mpo-lm``: MPO, OMPO and the paper's baselines on a toy multi-turn conversation game with a
small learned LM and a programmatic non-transitive judge (:mod:`lions_jax.mpo.lm`).

Per seed, one base policy is pre-trained (shared by every method of that seed); each method then
runs ``num_iterations`` preference-optimisation iterations, all seeds in one
``jax.jit(jax.vmap(train))`` program. The report gives, after every iteration, the per-state
exploitability over the 30-answer candidate set (the Nash answer — correct, uniform style — has
0), the win rate against the base policy, accuracy and the style entropy (Nash: log 3 ≈ 1.099),
mean ± 95 % CI over seeds. The paper's LLM experiments (Mistral-7B, MT-bench-101, 3 iterations)
are far larger; this is the same loop at toy scale, not a reproduction of its numbers.
"""

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from lions_jax._src import registry, results
from lions_jax._src.config import config_to_dict
from lions_jax.mpo.lm import LM_METHODS, LMGameConfig, make_sft, make_train

__all__ = ["MPOLMConfig", "run"]

_METRICS = ("exploitability", "win_rate", "accuracy", "style_entropy")
_FINAL_HEADER = [
    "method", "exploitability", "win rate vs base", "accuracy", "style entropy", "style 0 / 1 / 2",
]  # fmt: skip


@dataclasses.dataclass(frozen=True, kw_only=True)
class MPOLMConfig:
    """``mpo-lm``.

    Attributes:
      methods: from :data:`~lions_jax.mpo.lm.LM_METHODS`.
      num_seeds: seeds (each with its own base policy), vmapped.
      num_iterations: preference-optimisation iterations.
      beta, dpo_beta, tau, train_on, num_prompts, num_samples, inner_steps, learning_rate:
        :class:`~lions_jax.mpo.lm.LMGameConfig`'s.
      horizon: turns per conversation.
      d_model, num_layers, num_heads, sft_steps, sft_batch: the LM and its pre-training.
      num_eval_prompts: conversations per evaluation.
      seed: base seed.
    """

    methods: tuple[str, ...] = LM_METHODS
    num_seeds: int = 3
    num_iterations: int = 8
    beta: float = 4.0
    dpo_beta: float = 1.0
    tau: float = 0.5
    train_on: str = "best_worst"
    num_prompts: int = 64
    num_samples: int = 5
    inner_steps: int = 20
    learning_rate: float = 1e-3
    horizon: int = 3
    d_model: int = 32
    num_layers: int = 1
    num_heads: int = 2
    sft_steps: int = 400
    sft_batch: int = 128
    num_eval_prompts: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.methods or set(self.methods) - set(LM_METHODS):
            raise ValueError(f"methods: expected names from {LM_METHODS}, got {self.methods}")
        if self.num_seeds < 2:
            raise ValueError(f"num_seeds: expected >= 2 (for a CI), got {self.num_seeds}")
        self.game_config(self.methods[0])  # validates the rest

    def game_config(self, method: str) -> LMGameConfig:
        return LMGameConfig(
            method=method,  # type: ignore[arg-type]
            num_iterations=self.num_iterations,
            beta=self.beta,
            dpo_beta=self.dpo_beta,
            tau=self.tau,
            train_on=self.train_on,  # type: ignore[arg-type]
            num_prompts=self.num_prompts,
            num_samples=self.num_samples,
            inner_steps=self.inner_steps,
            learning_rate=self.learning_rate,
            horizon=self.horizon,
            d_model=self.d_model,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            sft_steps=self.sft_steps,
            sft_batch=self.sft_batch,
            num_eval_prompts=self.num_eval_prompts,
        )


PRESETS = {
    "quick": MPOLMConfig(),
    "paper": MPOLMConfig(
        num_seeds=5, num_iterations=10, num_prompts=128, d_model=64, num_layers=2, sft_steps=800
    ),
}


def run(cfg: MPOLMConfig, out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    k_base, k_run = jax.random.split(jax.random.key(cfg.seed))
    _, sft = make_sft(cfg.game_config(cfg.methods[0]))
    bases = jax.jit(jax.vmap(sft))(jax.random.split(k_base, cfg.num_seeds))
    if progress:
        print(f"mpo-lm: base policies: {time.perf_counter() - t0:.1f}s", flush=True)
    keys = jax.random.split(k_run, cfg.num_seeds)
    curves: dict[str, dict[str, np.ndarray]] = {}
    for method in cfg.methods:
        t_m = time.perf_counter()
        out = jax.jit(jax.vmap(make_train(cfg.game_config(method))))(keys, bases)
        curves[method] = {k: np.asarray(v, np.float64) for k, v in out._asdict().items()}
        if progress:
            print(f"mpo-lm: {method}: {time.perf_counter() - t_m:.1f}s", flush=True)

    iters = np.arange(cfg.num_iterations + 1)
    fmt = lambda v, d=3: f"{v.mean():.{d}f} ± {results.ci95(v):.{d}f}"  # noqa: E731
    final, rows = [], []
    for method, c in curves.items():
        style = c["style_probs"][:, -1].mean(0)
        final.append([
            method, *(fmt(c[m][:, -1]) for m in _METRICS),
            " / ".join(f"{p:.2f}" for p in style[:3]),
        ])  # fmt: skip
        for i in iters:
            rows.append({"method": method, "iteration": int(i)}
                        | {m: results.summarize(c[m][:, i]) | {"ci95": results.ci95(c[m][:, i])}
                           for m in _METRICS})  # fmt: skip
    base = next(iter(curves.values()))
    by_iter = [
        [method, *(f"{c['exploitability'][:, i].mean():.3f}" for i in iters)]
        for method, c in curves.items()
    ]
    text = (
        f"# mpo-lm (toy conversation game, H = {cfg.horizon}, K = {cfg.num_samples}, {cfg.num_seeds} seeds, "
        f"{cfg.num_iterations} iterations, β = {cfg.beta}, DPO β = {cfg.dpo_beta})\n\n"
        f"Base policy: exploitability {fmt(base['exploitability'][:, 0])}, accuracy "
        f"{fmt(base['accuracy'][:, 0])}, style entropy {fmt(base['style_entropy'][:, 0])}.\n\n"
        f"## After {cfg.num_iterations} iterations (mean ± 95 % CI over seeds)\n\n"
        "Exploitability: per-state, against the best of the 3 × 10 candidate answers (0 at the "
        "Nash answer). Win rate: against the base policy. Style entropy: log 3 ≈ 1.099 at the "
        "Nash.\n\n"
        + results.markdown_table(_FINAL_HEADER, final)
        + "\n\n## Exploitability after each iteration (mean over seeds)\n\n"
        + results.markdown_table(["method", *(f"t = {i}" for i in iters)], by_iter)
    )
    _plot(out_dir, iters, curves)
    summary = {
        method: {m: c[m].mean(0).tolist() for m in (*_METRICS, "style_probs")}
        for method, c in curves.items()
    }
    return results.write_outputs(
        out_dir,
        experiment="mpo-lm",
        config=config_to_dict(cfg),
        table=text,
        rows=rows,
        summary=summary,
        wall_time_s=time.perf_counter() - t0,
    )


def _plot(out_dir: Path, iters: np.ndarray, curves: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, metric in zip(axes, ("exploitability", "win_rate", "style_entropy"), strict=True):
        for method, c in curves.items():
            v = c[metric]
            mean = v.mean(0)
            ci = np.array([results.ci95(v[:, i]) for i in range(v.shape[1])])
            ax.plot(iters, mean, marker="o", label=method)
            ax.fill_between(iters, mean - ci, mean + ci, alpha=0.2)
        ax.set_xlabel("iteration")
        ax.set_title(metric.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[2].axhline(np.log(3), color="k", ls=":", lw=1)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    results.save_figure(fig, out_dir / "mpo_lm.png")
    plt.close(fig)


registry.register(
    registry.Experiment(
        name="mpo-lm",
        description=(
            "MPO / OMPO vs SPPO, iterative DPO and Step-DPO on a toy multi-turn conversation "
            "game with a small LM and a non-transitive judge."
        ),
        config_type=MPOLMConfig,
        presets=PRESETS,
        run=run,
    )
)
