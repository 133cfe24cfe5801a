"""``soar-tabular``: does optimism beat plain ensembling? Samples-to-ε on three tabular MDPs.

Arms (spec §9, track A), each over ``num_seeds`` seeds, all vmapped in one program per MDP and
rule: L = 1 (the non-optimistic primal–dual baseline); **ensemble only** (L ∈ ``members``,
β = 0); SOAR (the same L, β ∈ ``betas``, ``rule="std"``); the ``min`` rule; explicit UCB (one
model from pooled counts, bonus ``ucb_coef/√(n+1)``). The x-axis is **every transition consumed
by every member**. The normalised gap is :math:`(J(\\pi_E) - J(\\pi_k)) / (J(\\pi_E) -
J(\\text{uniform}))`; per arm we report the success rate (final gap ≤ the smallest ε), the median
samples to reach each ε over the seeds that do, and the log–log slope of samples-to-ε against
1/ε (an ε⁻² rate has slope 2).

MDPs: the authors' 2-state/20-action needle MDP (γ = 0.99), RiverSwim with 6 states (γ = 0.95),
a 5×5 sparse gridworld with 10 % slip (γ = 0.95). Expert: the optimal policy; ``num_expert``
state–action samples from its occupancy per seed.
"""

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lions_jax._src import registry, results
from lions_jax._src.config import config_to_dict
from lions_jax.soar.tabular import (
    chain_mdp,
    gridworld_mdp,
    make_tabular_soar,
    needle_mdp,
    optimal_policy,
    policy_value,
)

__all__ = ["MDPS", "TabularConfig", "run"]

MDPS = {"needle": needle_mdp, "chain": chain_mdp, "gridworld": gridworld_mdp}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TabularConfig:
    """``soar-tabular``.

    Attributes:
      mdps: from :data:`MDPS`.
      members: ensemble sizes for the ensemble-only and SOAR arms.
      betas: SOAR bonuses (std rule).
      num_iters, num_expert, eta, eta_c, c_max, ucb_coef: see
        :func:`~lions_jax.soar.make_tabular_soar`.
      state_only_cost: MDPs run with the notebook's state-only cost (the others use the
        state-action cost). On the needle MDP the state-only cost is what makes the expert's
        action a needle: a state-action cost reveals it from the expert samples directly.
      eps: normalised-gap thresholds for samples-to-ε.
      seed, num_seeds: seeds (vmapped).
    """

    mdps: tuple[str, ...] = ("needle", "chain", "gridworld")
    members: tuple[int, ...] = (3, 5, 10)
    betas: tuple[float, ...] = (0.001, 0.01, 0.1)
    num_iters: int = 100
    num_expert: int = 100
    eta: float = 4.0
    eta_c: float = 0.9
    c_max: float = 1.0
    ucb_coef: float = 10.0
    state_only_cost: tuple[str, ...] = ("needle",)
    eps: tuple[float, ...] = (0.5, 0.2, 0.1, 0.05, 0.02)
    seed: int = 0
    num_seeds: int = 20

    def __post_init__(self) -> None:
        unknown = set(self.mdps) - set(MDPS)
        if unknown or not self.mdps:
            raise ValueError(f"mdps must be among {sorted(MDPS)}, got {self.mdps}")
        if not self.members or min(self.members) < 1:
            raise ValueError(f"members must be >= 1, got {self.members}")
        if self.num_iters < 1 or self.num_seeds < 1 or self.num_expert < 1:
            raise ValueError("num_iters, num_seeds and num_expert must be >= 1")
        if not self.eps or not all(0 < e < 1 for e in self.eps):
            raise ValueError(f"eps must lie in (0, 1), got {self.eps}")


PRESETS = {
    "quick": TabularConfig(num_seeds=20, num_iters=100),
    "paper": TabularConfig(num_seeds=50, num_iters=300, members=(2, 3, 5, 10, 50)),
}


def _arms(cfg: TabularConfig) -> list[tuple[str, str, int, float]]:
    """``(label, rule, L, beta)`` for every arm."""
    arms = [("L=1", "std", 1, 0.0)]
    arms += [(f"ensemble L={m}", "std", m, 0.0) for m in cfg.members]
    arms += [(f"SOAR L={m} β={b:g}", "std", m, b) for m in cfg.members for b in cfg.betas]
    arms += [(f"min L={m}", "min", m, 0.0) for m in cfg.members]
    arms += [("UCB", "ucb", 1, 0.0)]
    return arms


def _samples_to(gap: np.ndarray, samples: np.ndarray, eps: float) -> np.ndarray:
    """Per seed: samples at the first iteration with gap <= eps (NaN if never)."""
    hit = gap <= eps
    first = np.argmax(hit, axis=-1)
    out = np.take_along_axis(samples, first[..., None], axis=-1)[..., 0].astype(np.float64)
    return np.where(hit.any(axis=-1), out, np.nan)


def run(cfg: TabularConfig, out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    del progress  # each MDP is one short compiled program
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    arms = _arms(cfg)
    max_members = max((a[2] for a in arms), default=1)
    summary: dict[str, Any] = {}
    rows, lines = [], []
    for name in cfg.mdps:
        mdp = MDPS[name]()
        j_e = float(mdp.init @ policy_value(mdp, optimal_policy(mdp)))
        uniform = jnp.full((mdp.num_states, mdp.num_actions), 1.0 / mdp.num_actions)
        j_u = float(mdp.init @ policy_value(mdp, uniform))
        scale = j_e - j_u
        curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for rule in ("std", "min", "ucb"):
            group = [a for a in arms if a[1] == rule]
            if not group:
                continue
            soar = make_tabular_soar(
                mdp,
                num_iters=cfg.num_iters,
                max_members=max_members if rule != "ucb" else 1,
                num_expert=cfg.num_expert,
                rule=rule,
                eta=cfg.eta,
                eta_c=cfg.eta_c,
                c_max=cfg.c_max,
                ucb_coef=cfg.ucb_coef,
                state_only_cost=name in cfg.state_only_cost,
            )
            keys = jax.random.split(jax.random.key(cfg.seed), cfg.num_seeds)
            ls = jnp.array([a[2] for a in group])
            betas = jnp.array([a[3] for a in group], jnp.float32)
            per_arm = jax.vmap(jax.vmap(soar, in_axes=(0, None, None)), in_axes=(None, 0, 0))
            _, m = jax.jit(per_arm)(keys, ls, betas)  # leaves (arms, seeds, iters)
            gap = np.asarray(m["gap"]) / scale
            samples = np.asarray(m["samples"])
            for i, (label, *_rest) in enumerate(group):
                curves[label] = (gap[i], samples[i])
        summary[name] = {"expert_return": j_e, "uniform_return": j_u, "arms": {}}
        table = []
        for label, rule, n_members, beta in arms:
            gap, samples = curves[label]
            final = gap[:, -1]
            s_eps = {e: _samples_to(gap, samples, e) for e in cfg.eps}
            medians = {
                e: float(np.nanmedian(v)) if np.isfinite(v).any() else None
                for e, v in s_eps.items()
            }
            pts = [(1 / e, m) for e, m in medians.items() if m is not None and m > 0]
            slope = (
                float(np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)[0])
                if len(pts) >= 3
                else None
            )
            success = float(np.mean(final <= min(cfg.eps)))
            summary[name]["arms"][label] = {
                "rule": rule,
                "n_members": n_members,
                "beta": beta,
                "final_gap": results.summarize(final),
                "success_rate": success,
                "median_samples_to_eps": {str(e): v for e, v in medians.items()},
                "reached_eps": {str(e): int(np.isfinite(v).sum()) for e, v in s_eps.items()},
                "loglog_slope": slope,
                "total_samples": results.summarize(samples[:, -1]),
            }
            rows += [
                {
                    "mdp": name,
                    "arm": label,
                    "iteration": k + 1,
                    "gap": gap[:, k].tolist(),
                    "samples": samples[:, k].tolist(),
                }
                for k in range(gap.shape[1])
            ]
            fmt = lambda v: "–" if v is None else f"{v:,.0f}"  # noqa: E731
            table.append(
                [
                    label,
                    results.format_mean_std(summary[name]["arms"][label]["final_gap"], 3),
                    f"{success:.2f}",
                    *(f"{fmt(medians[e])} ({int(np.isfinite(s_eps[e]).sum())})" for e in cfg.eps),
                    "–" if slope is None else f"{slope:.2f}",
                ]
            )
        cost_kind = "state-only" if name in cfg.state_only_cost else "state-action"
        lines.append(
            f"## {name} (J(π_E) = {j_e:.3f}, J(uniform) = {j_u:.3f}; {cost_kind} cost)\n\n"
            + results.markdown_table(
                [
                    "arm",
                    "final normalised gap",
                    f"success (gap ≤ {min(cfg.eps)})",
                    *(f"median samples to ε={e} (seeds)" for e in cfg.eps),
                    "log–log slope",
                ],
                table,
            )
        )
        _plot(out_dir / f"gap_{name}.png", curves, name)
    text = (
        f"# soar-tabular ({cfg.num_seeds} seeds, {cfg.num_iters} iterations; x = transitions of "
        "all members)\n\n" + "\n".join(lines)
    )
    return results.write_outputs(
        out_dir,
        experiment="soar-tabular",
        config=config_to_dict(cfg),
        table=text,
        rows=rows,
        summary=summary,
        wall_time_s=time.perf_counter() - t0,
    )


def _plot(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    for label, (gap, samples) in curves.items():
        if label.startswith("SOAR") and "β=0.01" not in label:
            continue  # keep the plot readable: one β per L
        ax.plot(samples.mean(0), np.maximum(gap.mean(0), 1e-4), label=label, lw=1.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("transitions consumed (all members)")
    ax.set_ylabel("normalised gap (mean over seeds)")
    ax.set_title(f"tabular SOAR: {title}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    results.save_figure(fig, path)


registry.register(
    registry.Experiment(
        name="soar-tabular",
        description="Tabular SOAR vs L = 1, ensemble-only, min and UCB on 3 MDPs: samples-to-ε.",
        config_type=TabularConfig,
        presets=PRESETS,
        run=run,
    )
)
