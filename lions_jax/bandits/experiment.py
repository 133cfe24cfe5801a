"""``bandits``: regret to the comparator and to the best fixed strategy, and payoff, of minimax
play, the base bandit learner and phased aggression (PA), against four kinds of opponent.

Games (:mod:`lions_jax.bandits.games`):

* ``rps`` — rock-paper-scissors, losses ``(1 - u)/2``; comparator μ = uniform (the unique
  equilibrium, full support); base learner Exp3 (``hedge``).
* ``kuhn`` — seat-symmetrised Kuhn poker (value 0), losses ``(2 - u)/4``; comparator μ = the
  equilibrium with α = 1/6, ε-floored (every action ≥ ε, default 0.02: Kuhn equilibria lack full
  support; its exploitability is reported); base learner outcome-sampling MCCFR (``rm``).

Opponents: ``minimax`` (Bob plays an exact equilibrium), fixed exploitable strategies (RPS:
``biased`` = (0.5, 0.3, 0.2), whose best response, paper, earns 0.3 per round; Kuhn:
``always_bet_call``, ``never_bluff``), ``adaptive`` (best-responds every round to Alice's current
mixed strategy) and ``switching`` (the first exploitable strategy for T/2 rounds, then adaptive).

For each game and horizon T, opponents × Alice variants (base, PA for each ``c``) × seeds are one
``jax.jit(jax.vmap(...))`` program (Bob's strategy and switch round are traced). Minimax play is
computed in closed form (Alice plays μ every round, so every expectation is exact; its "realised"
columns are expectations). The
report gives mean ± 95 % CI over seeds, log-log slopes of the regret against T (fitted on the
means, where all are positive), and per-game figures.
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
from lions_jax.bandits.games import (
    Game,
    epsilon_floor,
    exploitability,
    kuhn_always_bet_call,
    kuhn_nash,
    kuhn_never_bluff,
    kuhn_poker,
    kuhn_strategy,
    rock_paper_scissors,
)
from lions_jax.bandits.train import (
    BanditConfig,
    LearnerParams,
    OpponentParams,
    learner_params,
    make_run,
)
from lions_jax.bandits.treeplex import behavioural_to_sequence, best_response

__all__ = ["GAMES", "OPPONENTS_BY_GAME", "BanditsExperimentConfig", "run", "setting"]

GAMES = ("rps", "kuhn")
OPPONENTS_BY_GAME = {
    "rps": ("minimax", "biased", "adaptive", "switching"),
    "kuhn": ("minimax", "always_bet_call", "never_bluff", "adaptive", "switching"),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class BanditsExperimentConfig:
    """``bandits``.

    Attributes:
      games: from :data:`GAMES`.
      horizons: the T values (each a separate run: τ and η depend on T).
      num_seeds: seeds per cell (vmapped).
      cs: PA's threshold constants (one PA variant each).
      opponents: restrict to these opponent names (``None`` = all of :data:`OPPONENTS_BY_GAME`).
      kuhn_epsilon: the ε-floor of Kuhn's comparator; kuhn_alpha: its equilibrium parameter.
      num_log: recorded points per run (must divide every horizon).
      seed: base PRNG seed.
    """

    games: tuple[str, ...] = GAMES
    horizons: tuple[int, ...] = (1_000, 10_000, 100_000)
    num_seeds: int = 50
    cs: tuple[float, ...] = (1.0,)
    opponents: tuple[str, ...] | None = None
    kuhn_epsilon: float = 0.02
    kuhn_alpha: float = 1 / 6
    num_log: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.opponents is not None:
            object.__setattr__(self, "opponents", tuple(self.opponents))
        if not self.games or any(g not in GAMES for g in self.games):
            raise ValueError(f"games: expected a non-empty subset of {GAMES}, got {self.games}")
        if not self.horizons or any(t < 1 or t % self.num_log for t in self.horizons):
            raise ValueError(
                f"horizons: expected positive multiples of num_log={self.num_log}, got {self.horizons}"
            )
        if self.num_seeds < 2:
            raise ValueError(f"num_seeds: expected >= 2 (for a CI), got {self.num_seeds}")
        if not self.cs or any(c <= 0 for c in self.cs):
            raise ValueError(f"cs: expected positive constants, got {self.cs}")
        known = {o for g in self.games for o in OPPONENTS_BY_GAME[g]}
        if self.opponents is not None and (not self.opponents or set(self.opponents) - known):
            raise ValueError(
                f"opponents: expected names from {sorted(known)}, got {self.opponents}"
            )


PRESETS = {
    "quick": BanditsExperimentConfig(
        opponents=("minimax", "biased", "always_bet_call", "adaptive", "switching")
    ),
    "paper": BanditsExperimentConfig(
        horizons=(1_000, 10_000, 100_000, 1_000_000), cs=(0.25, 0.5, 1.0, 2.0)
    ),
}


def setting(cfg: BanditsExperimentConfig, game_name: str) -> dict[str, Any]:
    """Game, comparator, base learner and Bob's strategies (behavioural) for one game."""
    if game_name == "rps":
        game = rock_paper_scissors()
        comparator = np.full((1, 3), 1 / 3)
        fixed = {"minimax": np.full((1, 3), 1 / 3), "biased": np.array([[0.5, 0.3, 0.2]])}
        base = "hedge"
    else:
        game = kuhn_poker()
        nash = kuhn_strategy(game.alice, kuhn_nash(cfg.kuhn_alpha))
        comparator = np.asarray(epsilon_floor(nash, cfg.kuhn_epsilon), dtype=np.float64)
        fixed = {
            "minimax": kuhn_strategy(game.bob, kuhn_nash(cfg.kuhn_alpha)),
            "always_bet_call": kuhn_strategy(game.bob, kuhn_always_bet_call()),
            "never_bluff": kuhn_strategy(game.bob, kuhn_never_bluff()),
        }
        base = "rm"
    opponents = [
        o for o in OPPONENTS_BY_GAME[game_name] if cfg.opponents is None or o in cfg.opponents
    ]
    switch_from = next(n for n in fixed if n != "minimax")
    return {
        "game": game,
        "comparator": comparator,
        "base": base,
        "fixed": {o: fixed[o] for o in opponents if o in fixed},
        "dynamic": [o for o in opponents if o not in fixed],
        "switch_from": fixed[switch_from],
    }


def _variants(cfg: BanditsExperimentConfig) -> list[tuple[str, str, float | None]]:
    """(label, variant, c)."""
    pa = [(f"PA (c={c:g})" if len(cfg.cs) > 1 else "PA", "pa", c) for c in cfg.cs]
    return [("minimax", "comparator", None), ("base", "base", None), *pa]


def _run_cell(
    cfg: BanditsExperimentConfig, s: dict[str, Any], horizon: int, key: Any
) -> dict[str, dict[str, np.ndarray]]:
    """One program for one game and horizon: (opponents × variants × seeds), opponents as traced
    :class:`~lions_jax.bandits.OpponentParams`. Returns ``{opponent: {metric: [variant, seed,
    ...]}}``."""
    opponents = list(s["fixed"]) + s["dynamic"]
    switch = {"adaptive": 0, "switching": horizon // 2}
    strategies = [s["fixed"].get(o, s["switch_from"]) for o in opponents]
    rounds = [switch.get(o, horizon) for o in opponents]
    bcfg = BanditConfig(
        game=s["game"],
        comparator=s["comparator"],
        num_rounds=horizon,
        opponent="switching" if s["dynamic"] else "fixed",
        opponent_strategy=s["switch_from"],
        base=s["base"],
        num_log=cfg.num_log,
    )
    # minimax play is deterministic in expectation: exact, not simulated (see _comparator_cell)
    params = [learner_params(bcfg, v, c) for _, v, c in _variants(cfg) if v != "comparator"]
    stacked = LearnerParams(*(jnp.stack(p) for p in zip(*params, strict=True)))
    dtype = jnp.result_type(float)
    opp = OpponentParams(jnp.asarray(np.stack(strategies), dtype), jnp.asarray(rounds, jnp.int32))
    keys = jax.random.split(key, cfg.num_seeds)
    run = make_run(bcfg)
    over_seeds = jax.vmap(run, in_axes=(0, None, None))
    over_variants = jax.vmap(over_seeds, in_axes=(None, 0, None))
    over_opps = jax.vmap(over_variants, in_axes=(None, None, 0))
    out = jax.jit(over_opps)(keys, stacked, opp)
    exact = _comparator_cell(cfg, s, horizon, opponents, rounds, strategies)
    return {
        o: {k: np.concatenate([exact[o][k], np.asarray(v[i])]) for k, v in out._asdict().items()}
        for i, o in enumerate(opponents)
    }


def _comparator_cell(
    cfg: BanditsExperimentConfig,
    s: dict[str, Any],
    horizon: int,
    opponents: list[str],
    rounds: list[int],
    strategies: list[np.ndarray],
) -> dict[str, dict[str, np.ndarray]]:
    """Minimax play (α = 0) in closed form: Alice's strategy is μ every round, so Bob's play is
    deterministic too (his fixed strategy, or the best response to μ, with the simulator's tie
    breaking) and every expected quantity is exact. Realised quantities are reported as their
    expectations. Arrays are shaped like the simulated ones: ``[1, seed, num_log]``."""
    game: Game = s["game"]
    m = np.asarray(game.loss_matrix)
    mu = np.asarray(behavioural_to_sequence(game.alice, s["comparator"]), np.float64)
    y_br = np.asarray(best_response(game.bob, -(mu @ m)).sequence, np.float64)
    t = horizon // cfg.num_log * np.arange(1, cfg.num_log + 1)
    out = {}
    for o, switch, y in zip(opponents, rounds, strategies, strict=True):
        ell_fixed = m @ np.asarray(behavioural_to_sequence(game.bob, y), np.float64)
        before = np.minimum(t, switch)[:, None]
        cum = before * ell_fixed + (t[:, None] - before) * (m @ y_br)
        exp_loss = cum @ mu
        best = np.array([float(best_response(game.alice, c).value) for c in cum])
        payoff = game.payoff_bound * (t - 2 * exp_loss)
        zeros = np.zeros(cfg.num_log)
        row = {
            "regret_comparator": zeros,
            "regret_comparator_realised": zeros,
            "regret_best": exp_loss - best,
            "payoff": payoff,
            "expected_payoff": payoff,
            "alpha": zeros,
        }
        out[o] = {k: np.broadcast_to(v, (1, cfg.num_seeds, cfg.num_log)) for k, v in row.items()}
        out[o]["num_restarts"] = np.zeros((1, cfg.num_seeds), np.int32)
    return out


def _slope(ts: list[int], means: list[float]) -> float | None:
    """Least-squares slope of log(mean) on log(T); ``None`` unless every mean is ≥ 0.1 (smaller
    regrets are rounding-level for the minimax player and fit noise, not a rate)."""
    if len(ts) < 2 or min(means) < 0.1:
        return None
    return float(np.polyfit(np.log(ts), np.log(means), 1)[0])


def _fmt(v: np.ndarray, digits: int = 1) -> str:
    return f"{v.mean():.{digits}f} ± {results.ci95(v):.{digits}f}"


def run(cfg: BanditsExperimentConfig, out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    key = jax.random.key(cfg.seed)
    variants = _variants(cfg)
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"games": {}}
    sections = []
    for game_name in cfg.games:
        s = setting(cfg, game_name)
        game: Game = s["game"]
        mu_x = behavioural_to_sequence(game.alice, s["comparator"])
        mu_expl = float(exploitability(game, mu_x))
        opponents = list(s["fixed"]) + s["dynamic"]
        br_value = {
            o: float(
                game.payoff(
                    best_response(
                        game.alice, game.loss_matrix @ behavioural_to_sequence(game.bob, y)
                    ).value
                )
            )
            for o, y in s["fixed"].items()
        }
        mu_value = {
            o: float(game.payoff(mu_x @ game.loss_matrix @ behavioural_to_sequence(game.bob, y)))
            for o, y in s["fixed"].items()
        }
        cells: dict[tuple[str, int], dict[str, np.ndarray]] = {}
        for horizon in cfg.horizons:
            t_cell = time.perf_counter()
            key, sub = jax.random.split(key)
            for opp, out in _run_cell(cfg, s, horizon, sub).items():
                cells[opp, horizon] = out
            if progress:
                print(
                    f"bandits: {game_name} T={horizon}: {time.perf_counter() - t_cell:.1f}s",
                    flush=True,
                )
        table_rows = []
        game_summary: dict[str, Any] = {
            "comparator_exploitability": mu_expl,
            "br_value_per_round": br_value,
            "comparator_value_per_round": mu_value,
            "cells": {},
            "slopes": {},
        }
        for opp in opponents:
            for j, (label, _, _) in enumerate(variants):
                for horizon in cfg.horizons:
                    o = cells[opp, horizon]
                    rc = o["regret_comparator"][j, :, -1]
                    rb = o["regret_best"][j, :, -1]
                    pay = o["expected_payoff"][j, :, -1] / horizon
                    alpha = o["alpha"][j, :, -1]
                    restarts = o["num_restarts"][j]
                    row = {
                        "game": game_name,
                        "opponent": opp,
                        "variant": label,
                        "T": horizon,
                        "regret_comparator": results.summarize(rc) | {"ci95": results.ci95(rc)},
                        "regret_comparator_realised": float(
                            o["regret_comparator_realised"][j, :, -1].mean()
                        ),
                        "regret_best": results.summarize(rb) | {"ci95": results.ci95(rb)},
                        "payoff_per_round": results.summarize(pay) | {"ci95": results.ci95(pay)},
                        "alpha_final": float(alpha.mean()),
                        "restarts": float(restarts.mean()),
                    }
                    rows.append(row)
                    game_summary["cells"][f"{opp}/{label}/{horizon}"] = {
                        k: row[k]["mean"] if isinstance(row[k], dict) else row[k]
                        for k in (
                            "regret_comparator",
                            "regret_best",
                            "payoff_per_round",
                            "alpha_final",
                            "restarts",
                        )
                    }
                    table_rows.append([
                        opp, label, f"{horizon:,}", _fmt(rc), _fmt(rb),
                        f"{pay.mean():+.4f} ± {results.ci95(pay):.4f}",
                        f"{alpha.mean():.3g}", f"{restarts.mean():.1f}",
                    ])  # fmt: skip
        # slopes of the mean regrets against T
        slope_rows = []
        for j, (label, _, _) in enumerate(variants):
            worst = [
                max(float(cells[o, t]["regret_comparator"][j, :, -1].mean()) for o in opponents)
                for t in cfg.horizons
            ]
            per_opp_best = {
                o: _slope(
                    list(cfg.horizons),
                    [float(cells[o, t]["regret_best"][j, :, -1].mean()) for t in cfg.horizons],
                )
                for o in opponents
            }
            sw = _slope(list(cfg.horizons), worst)
            game_summary["slopes"][label] = {
                "worst_case_regret_comparator": sw,
                "worst_case_regret_comparator_values": worst,
                "regret_best": per_opp_best,
            }
            slope_rows.append([
                label,
                ", ".join(f"{w:.2f}" for w in worst),
                "—" if sw is None else f"{sw:.2f}",
                "; ".join(f"{o}: {'—' if v is None else f'{v:.2f}'}" for o, v in per_opp_best.items()),
            ])  # fmt: skip
        summary["games"][game_name] = game_summary
        _plot_game(cfg, out_dir, game_name, opponents, variants, cells, br_value)
        note = (
            f"Comparator μ: {'uniform' if game_name == 'rps' else f'Kuhn equilibrium α={cfg.kuhn_alpha:.3g}, ε-floored at {cfg.kuhn_epsilon}'}"
            f", exploitability {mu_expl:.4f} per hand; base learner {s['base']}. Best-response payoff per "
            "round against the fixed opponents: "
            + ", ".join(f"{o} {v:+.4f} (μ earns {mu_value[o]:+.4f})" for o, v in br_value.items())
            + "."
        )
        sections.append(
            f"## {game_name}\n\n{note}\n\n"
            + results.markdown_table(
                [
                    "opponent",
                    "Alice",
                    "T",
                    "regret to μ",
                    "regret to best",
                    "payoff / round",
                    "α final",
                    "phases",
                ],
                table_rows,
            )
            + "\n"
            + results.markdown_table(
                [
                    "Alice",
                    "worst-case regret to μ per T",
                    "slope",
                    "slope of regret to best (per opponent)",
                ],
                slope_rows,
            )
        )
    text = (
        f"# bandits ({cfg.num_seeds} seeds per cell, mean ± 95 % CI; regrets in loss units [0, 1] "
        "per round, payoff in game units)\n\n" + "\n".join(sections)
    )
    return results.write_outputs(
        out_dir,
        experiment="bandits",
        config=config_to_dict(cfg),
        table=text,
        rows=rows,
        summary=summary,
        wall_time_s=time.perf_counter() - t0,
    )


def _plot_game(
    cfg: BanditsExperimentConfig,
    out_dir: Path,
    game_name: str,
    opponents: list[str],
    variants: list[tuple[str, str, float | None]],
    cells: dict[tuple[str, int], dict[str, np.ndarray]],
    br_value: dict[str, float],
) -> None:
    import matplotlib.pyplot as plt

    ts = np.array(cfg.horizons)
    fig, axes = plt.subplots(3, len(opponents), figsize=(3.2 * len(opponents), 8.5), squeeze=False)
    for col, opp in enumerate(opponents):
        for j, (label, _, _) in enumerate(variants):
            for row, (metric, scale) in enumerate(
                [
                    ("regret_comparator", None),
                    ("regret_best", None),
                    ("expected_payoff", "per_round"),
                ]
            ):
                vals = np.stack([cells[opp, t][metric][j, :, -1] for t in cfg.horizons])
                if scale:
                    vals = vals / ts[:, None]
                mean = vals.mean(1)
                ci = np.array([results.ci95(v) for v in vals])
                ax = axes[row, col]
                ax.errorbar(ts, mean, yerr=ci, marker="o", ms=3, capsize=2, label=label)
        if opp in br_value:
            axes[2, col].axhline(br_value[opp], color="k", ls=":", lw=1, label="best response")
        axes[0, col].set_title(opp)
        axes[0, col].set_yscale("symlog", linthresh=1.0)
        axes[1, col].set_yscale("log")
        for r in range(3):
            axes[r, col].set_xscale("log")
            axes[r, col].grid(alpha=0.3)
        axes[2, col].set_xlabel("T")
    axes[0, 0].set_ylabel("regret to μ (symlog)")
    axes[1, 0].set_ylabel("regret to best fixed (log)")
    axes[2, 0].set_ylabel("payoff per round")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"bandits: {game_name}, {cfg.num_seeds} seeds, mean ± 95 % CI")
    fig.tight_layout()
    results.save_figure(fig, out_dir / f"regret_{game_name}.png")
    plt.close(fig)


registry.register(
    registry.Experiment(
        name="bandits",
        description=(
            "Best of both worlds in RPS and symmetrised Kuhn poker: minimax vs Exp3/MCCFR vs phased "
            "aggression, against minimax, exploitable, adaptive and switching opponents."
        ),
        config_type=BanditsExperimentConfig,
        presets=PRESETS,
        run=run,
    )
)
