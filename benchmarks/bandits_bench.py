"""Bandits: rounds per second of phased aggression under ``jax.jit(jax.vmap(train))`` vs a NumPy loop.

Rows (``case`` = game): Alice runs PA over her base learner (RPS: Exp3; symmetrised Kuhn poker:
outcome-sampling MCCFR) against a *switching* Bob (fixed exploitable strategy for T/2 rounds,
then a best response every round: the most expensive opponent), for ``seeds`` independent seeds.
The measured program is ``jax.jit(jax.vmap(make_train(cfg)))(keys)`` (one ``lax.scan`` over T
rounds, ``num_log = 10`` recorded points); ``median_ms`` is one whole run, and
``rounds_per_s`` = seeds · T / run time. The baseline is the same algorithm in NumPy, vectorised
over the seeds with a Python loop over rounds (the natural NumPy port), timed over
``baseline_rounds`` rounds and scaled to T (its cost per round does not depend on t):
``speedup_vs_baseline`` = NumPy ms / JAX ms. ``check_mean_regret_best`` compares the two
implementations' mean regret to the best fixed strategy after ``baseline_rounds`` rounds (same
algorithm, different random streams: agreement within sampling noise, not bit-equality).

Shapes: GPU T = 10⁶ with 1 000 seeds (the issue's target); CPU T = 10⁴ with 1 000 seeds; tiny
T = 200 with 8 seeds.

    python benchmarks/bandits_bench.py --device cpu [--tiny]
    python benchmarks/bandits_bench.py --device gpu
"""

import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common
import jax
import numpy as np

from lions_jax.bandits import (
    BanditConfig,
    Game,
    Treeplex,
    epsilon_floor,
    kuhn_always_bet_call,
    kuhn_nash,
    kuhn_poker,
    kuhn_strategy,
    learner_params,
    make_run,
    opponent_params,
    realisation_weights,
    rock_paper_scissors,
)
from lions_jax.bandits.train import make_train

BENCH = "bandits"


def setting(game_name: str) -> tuple[Game, np.ndarray, np.ndarray, str]:
    if game_name == "rps":
        return rock_paper_scissors(), np.full((1, 3), 1 / 3), np.array([[0.5, 0.3, 0.2]]), "hedge"
    game = kuhn_poker()
    mu = np.asarray(epsilon_floor(kuhn_strategy(game.alice, kuhn_nash()), 0.02), np.float64)
    return game, mu, kuhn_strategy(game.bob, kuhn_always_bet_call()), "rm"


# ------------------------------------------------------------------ NumPy reference (batched)
def np_b2s(tp: Treeplex, b: np.ndarray) -> np.ndarray:
    s = b.shape[0]
    x = np.zeros((s, tp.num_sequences), b.dtype)
    x[:, 0] = 1
    for level in tp.levels:
        x[:, tp.sequences[level]] = x[:, tp.parent[level], None] * b[:, level]
    return x


def np_pass(tp: Treeplex, loss: np.ndarray, b: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Bottom-up pass over a batch: expectation under ``b`` (cf losses) or min (``b=None``)."""
    s = loss.shape[0]
    below = np.zeros_like(loss)
    q = np.zeros((s, *tp.sequences.shape), loss.dtype)
    v = np.zeros((s, tp.num_infosets), loss.dtype)
    for level in reversed(tp.levels):
        seqs = tp.sequences[level]
        ql = loss[:, seqs] + below[:, seqs]
        vl = ql.min(-1) if b is None else (b[:, level] * ql).sum(-1)
        q[:, level], v[:, level] = ql, vl
        np.add.at(below, (slice(None), tp.parent[level]), vl)
    return q, v


def np_policy(kind: str, table: np.ndarray) -> np.ndarray:
    if kind == "hedge":
        e = np.exp(table - table.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    pos = np.maximum(table, 0)
    tot = pos.sum(-1, keepdims=True)
    return np.where(tot > 0, pos / np.where(tot > 0, tot, 1), 1 / table.shape[-1])


def np_run(cfg: BanditConfig, seeds: int, rounds: int, rng: np.random.Generator) -> float:
    """PA against a switching Bob (switch at cfg.num_rounds // 2), ``rounds`` rounds; returns the
    mean regret to the best fixed strategy."""
    game, alice, bob = cfg.game, cfg.game.alice, cfg.game.bob
    f = np.float32
    m = game.loss_matrix.astype(f)
    mu = realisation_weights(alice, cfg.comparator).astype(f)
    p = learner_params(cfg)
    alpha0, tau, eta = float(p.alpha_init), float(p.tau), float(p.eta)
    y_fixed = realisation_weights(bob, cfg.opponent_strategy).astype(f)
    ta, tb = game.terminal_alice, game.terminal_bob
    chance, tloss = game.terminal_chance.astype(f), game.terminal_loss.astype(f)
    table = np.zeros((seeds, *alice.sequences.shape), f)
    alpha = np.full(seeds, alpha0, f)
    phase = np.zeros((seeds, alice.num_sequences), f)
    exp_loss = np.zeros(seeds)
    loss_vec = np.zeros((seeds, alice.num_sequences))
    rows = np.arange(seeds)
    switch = cfg.num_rounds // 2
    for t in range(rounds):
        b = np_policy(cfg.base, table)
        x = (1 - alpha[:, None]) * mu + alpha[:, None] * np_b2s(alice, b)
        if t < switch:
            y = np.broadcast_to(y_fixed, (seeds, bob.num_sequences))
        else:
            q, _ = np_pass(bob, -(x @ m), None)
            y = np_b2s(bob, np.eye(bob.num_actions, dtype=f)[q.argmin(-1)])
        ell = y @ m.T
        exp_loss += (x * ell).sum(-1)
        loss_vec += ell
        probs = chance * x[:, ta] * y[:, tb]
        cdf = np.cumsum(probs, -1)
        z = np.minimum((cdf <= rng.random(seeds)[:, None] * cdf[:, -1:]).sum(-1), len(ta) - 1)
        sigma = ta[z]
        loss_hat = np.zeros_like(x)
        loss_hat[rows, sigma] = tloss[z] / x[rows, sigma]
        q, v = np_pass(alice, loss_hat, b)
        table = table - eta * q if cfg.base == "hedge" else table + (v[..., None] - q)
        phase += loss_hat
        _, vmin = np_pass(alice, phase, None)
        gap = phase @ mu - (phase[:, 0] + vmin[:, alice.parent == 0].sum(-1))
        restart = (gap > 2 * tau) & (alpha > 0) & (alpha < 1)
        alpha = np.where(restart, np.minimum(1, 2 * alpha), alpha)
        phase[restart] = 0
        table[restart] = 0
    _, vbest = np_pass(alice, loss_vec, None)
    best = loss_vec[:, 0] + vbest[:, alice.parent == 0].sum(-1)
    return float((exp_loss - best).mean())


def bench_game(args, game_name: str, horizon: int, seeds: int, np_rounds: int) -> None:
    game, mu, y, base = setting(game_name)
    cfg = BanditConfig(
        game=game,
        comparator=mu,
        num_rounds=horizon,
        opponent="switching",
        opponent_strategy=y,
        base=base,
        num_log=10,
    )
    train = jax.vmap(make_train(cfg))
    keys = jax.random.split(jax.random.key(0), seeds)
    compiled, compile_s, mem = _common.compile_fn(train, keys)
    iters = max(1, args.iters // (5 if horizon * seeds >= 10**8 else 1))
    run_ms = _common.time_compiled(compiled, keys, iters=iters, warmup=1)
    out = compiled(keys)

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    np_regret = np_run(cfg, seeds, np_rounds, rng)
    np_ms = (time.perf_counter() - t0) * 1e3 / np_rounds * horizon
    # the JAX regret after np_rounds rounds, with the T-horizon parameters (τ, η, switch round)
    switch = min(horizon // 2, np_rounds)  # the same switch as np_run within np_rounds
    short = dataclasses.replace(cfg, num_rounds=np_rounds, num_log=1, switch_round=switch)
    run = jax.vmap(make_run(short), in_axes=(0, None, None))
    params, opp = learner_params(cfg), opponent_params(short)
    jax_regret = float(jax.jit(run)(keys, params, opp).regret_best[:, -1].mean())
    _common.emit(
        args,
        BENCH,
        {
            "case": game_name,
            "dtype": "float32",
            "shapes": {"rounds": horizon, "seeds": seeds, "sequences": game.alice.num_sequences},
            "median_ms": run_ms,
            "rounds_per_s": seeds * horizon / (run_ms / 1e3),
            "compile_s": compile_s,
            **mem,
            "final_regret_best_mean": float(np.asarray(out.regret_best)[:, -1].mean()),
            "baseline": "NumPy loop over rounds, vectorised over seeds (same algorithm)",
            "baseline_rounds": np_rounds,
            "baseline_median_ms": np_ms,
            "speedup_vs_baseline": np_ms / run_ms,
            "check_mean_regret_best": {"jax": jax_regret, "numpy": np_regret},
        },
    )


def main() -> None:
    args = _common.parse_args(__doc__.splitlines()[0])
    if args.tiny:
        horizon, seeds, np_rounds = 200, 8, 100
    elif args.device == "cpu":
        horizon, seeds, np_rounds = 10_000, 1_000, 500
    else:
        horizon, seeds, np_rounds = 1_000_000, 1_000, 500
    for game_name in ("rps", "kuhn"):
        bench_game(args, game_name, horizon, seeds, np_rounds)


if __name__ == "__main__":
    main()
