"""``mpo-games``: exploitability against the number of policy updates on random non-transitive
Markov games, for MPO, OMPO (policy space and the exact occupancy-space step), the
non-optimistic occupancy-space step and the trajectory-level SPPO baseline (a mixture over the
A^H open-loop action sequences; skipped, with a note, for sizes with A^H above
:data:`~lions_jax.mpo.train.MAX_SEQUENCES`), last iterate and average-occupancy policy.

For each game size, ``num_seeds`` random games (:func:`~lions_jax.mpo.random_game`: skew-symmetric
bilinear preferences through a sigmoid, Dirichlet transitions) are solved by self-play from the
uniform policy with exact marginal Q-functions; every method is one ``jax.jit(jax.vmap(train))``
program over the games. The report gives mean ± 95 % CI over games at selected update counts,
the number of updates each method needs to reach MPO's final average-iterate exploitability, and
log-log plots. The paper (App. F.2: 10 games, |S| ~ U[1, 100], |A| ~ U[2, 10]) reports OMPO at
"very low exploitability after 100 updates, while 2000 are needed by MPO"; its sizes here are
fixed per row and its β is ours.
"""

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from lions_jax._src import registry, results
from lions_jax._src.config import config_to_dict
from lions_jax.mpo.train import MAX_SEQUENCES, METHODS, GamesConfig, make_train

__all__ = ["MPOGamesConfig", "run"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class MPOGamesConfig:
    """``mpo-games``.

    Attributes:
      sizes: ``"SxAxH"`` per row (states, actions, horizon).
      methods: from :data:`~lions_jax.mpo.METHODS`; ``"sppo_trajectory"`` is skipped, with a
        note in the table, at sizes with ``A^H >`` :data:`~lions_jax.mpo.train.MAX_SEQUENCES`.
      num_seeds: random games per size, one per seed (vmapped).
      num_updates, num_log: T and the recorded points (must divide T).
      beta: the step size of every method.
      reward_scale: preference logit scale of the random games.
      seed: base seed.
    """

    sizes: tuple[str, ...] = ("10x3x2", "20x5x3")
    methods: tuple[str, ...] = METHODS
    num_seeds: int = 20
    num_updates: int = 2_000
    num_log: int = 100
    beta: float = 1.0
    reward_scale: float = 3.0
    seed: int = 0

    def __post_init__(self) -> None:
        try:
            parsed = [tuple(int(v) for v in str(s).split("x")) for s in self.sizes]
        except ValueError:
            parsed = []
        if not parsed or any(len(p) != 3 or min(p) < 1 or p[1] < 2 for p in parsed):
            raise ValueError(f"sizes: expected 'SxAxH' strings with A >= 2, got {self.sizes}")

        if not self.methods or set(self.methods) - set(METHODS):
            raise ValueError(f"methods: expected names from {METHODS}, got {self.methods}")
        if self.num_seeds < 2:
            raise ValueError(f"num_seeds: expected >= 2 (for a CI), got {self.num_seeds}")
        if self.num_updates % self.num_log:
            raise ValueError(f"num_log: expected a divisor of num_updates, got {self.num_log}")

    @property
    def parsed_sizes(self) -> list[tuple[int, int, int]]:
        return [tuple(int(v) for v in s.split("x")) for s in self.sizes]  # type: ignore[misc]


PRESETS = {
    "quick": MPOGamesConfig(),
    "paper": MPOGamesConfig(
        sizes=("10x3x2", "20x5x3", "50x10x3", "100x10x5"), num_seeds=50, num_updates=5_000
    ),
}


def _updates_to_reach(curve: np.ndarray, steps: np.ndarray, level: float) -> int | None:
    hit = np.flatnonzero(curve <= level)
    return int(steps[hit[0]]) if hit.size else None


def _skip_reason(method: str, num_actions: int, horizon: int) -> str | None:
    """Why ``method`` is not run at this size (``None``: it is)."""
    if method == "sppo_trajectory" and num_actions**horizon > MAX_SEQUENCES:
        return (
            f"{method} skipped: A^H = {num_actions}^{horizon} = {num_actions**horizon:,} "
            f"open-loop sequences > {MAX_SEQUENCES:,}"
        )
    return None


def run(cfg: MPOGamesConfig, out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    steps = cfg.num_updates // cfg.num_log * np.arange(1, cfg.num_log + 1)
    rows, sections, summary = [], [], {"sizes": {}}
    keys = jax.random.split(jax.random.key(cfg.seed), cfg.num_seeds)
    marks = [t for t in (10, 100, 1_000, 2_000, 5_000, cfg.num_updates) if t in steps]
    marks = sorted(set(marks))
    for s, a, h in cfg.parsed_sizes:
        label = f"S={s}, A={a}, H={h}"
        curves: dict[str, dict[str, np.ndarray]] = {}
        skipped = {m: r for m in cfg.methods if (r := _skip_reason(m, a, h)) is not None}
        for method in cfg.methods:
            if method in skipped:
                if progress:
                    print(f"mpo-games: {label} {skipped[method]}", flush=True)
                continue
            t_m = time.perf_counter()
            gcfg = GamesConfig(
                num_states=s,
                num_actions=a,
                horizon=h,
                method=method,
                beta=cfg.beta,
                num_updates=cfg.num_updates,
                num_log=cfg.num_log,
                reward_scale=cfg.reward_scale,
            )
            out = jax.jit(jax.vmap(make_train(gcfg)))(keys)
            curves[method] = {
                "average": np.asarray(out.exploitability_average, np.float64),
                "last": np.asarray(out.exploitability_last, np.float64),
            }
            if progress:
                print(f"mpo-games: {label} {method}: {time.perf_counter() - t_m:.1f}s", flush=True)
        notes = "".join(f"\n\nNote: {r}." for r in skipped.values())
        if not curves:
            summary["sizes"][label] = {"methods": {}, "skipped": skipped}
            sections.append(f"## {label}{notes}\n")
            continue
        ref = "mpo" if "mpo" in curves else next(iter(curves))
        target = float(curves[ref]["average"][:, -1].mean())
        table, size_summary = [], {"target": target, "methods": {}, "skipped": skipped}
        for method, c in curves.items():
            reach = _updates_to_reach(c["average"].mean(0), steps, target)
            cells = []
            for t in marks:
                i = int(np.flatnonzero(steps == t)[0])
                avg, last = c["average"][:, i], c["last"][:, i]
                cells.append(f"{avg.mean():.4f} ± {results.ci95(avg):.4f} / {last.mean():.3f}")
                rows.append({
                    "size": label, "method": method, "updates": t,
                    "exploitability_average": results.summarize(avg) | {"ci95": results.ci95(avg)},
                    "exploitability_last": results.summarize(last) | {"ci95": results.ci95(last)},
                })  # fmt: skip
            size_summary["methods"][method] = {
                "average_final": float(c["average"][:, -1].mean()),
                "last_final": float(c["last"][:, -1].mean()),
                "updates_to_reach_target": reach,
                "average_curve_mean": c["average"].mean(0).tolist(),
                "last_curve_mean": c["last"].mean(0).tolist(),
            }
            table.append([method, *cells, "—" if reach is None else f"{reach:,}"])
        summary["sizes"][label] = size_summary
        sections.append(
            f"## {label}\n\nExploitability, average-occupancy policy (mean ± 95 % CI over "
            f"{cfg.num_seeds} games) / last iterate (mean), after t updates; last column: updates "
            f"until the mean average-iterate exploitability reaches {ref}'s final value "
            f"({target:.4f}).\n\n"
            + results.markdown_table(
                ["method", *[f"t = {t:,}" for t in marks], f"updates to {target:.4f}"], table
            )
            + notes
        )
        _plot(out_dir, label, steps, curves)
    summary["updates"] = steps.tolist()
    text = (
        f"# mpo-games (β = {cfg.beta}, {cfg.num_seeds} random games per size, exact Q)\n\n"
        + "\n".join(sections)
    )
    return results.write_outputs(
        out_dir,
        experiment="mpo-games",
        config=config_to_dict(cfg),
        table=text,
        rows=rows,
        summary=summary,
        wall_time_s=time.perf_counter() - t0,
    )


def _plot(out_dir: Path, label: str, steps: np.ndarray, curves: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, kind in zip(axes, ("average", "last"), strict=True):
        for method, c in curves.items():
            v = c[kind]
            mean = v.mean(0)
            ci = np.array([results.ci95(v[:, i]) for i in range(v.shape[1])])
            ax.plot(steps, mean, label=method)
            ax.fill_between(steps, np.maximum(mean - ci, 1e-12), mean + ci, alpha=0.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("policy updates")
        ax.set_title(f"{kind} iterate")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("exploitability")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"mpo-games: {label}")
    fig.tight_layout()
    name = label.replace(", ", "_").replace("=", "")
    results.save_figure(fig, out_dir / f"exploitability_{name}.png")
    plt.close(fig)


registry.register(
    registry.Experiment(
        name="mpo-games",
        description=(
            "Exploitability vs policy updates on random non-transitive Markov games: MPO, OMPO "
            "(policy and occupancy space), trajectory-level SPPO, last and average iterate."
        ),
        config_type=MPOGamesConfig,
        presets=PRESETS,
        run=run,
    )
)
