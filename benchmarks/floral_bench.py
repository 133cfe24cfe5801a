"""FLORAL rounds on device vs refitting scikit-learn's ``SVC`` every round; vmapped budgets vs a loop.

Rows:

* ``round``: one jitted FLORAL run (``init="zero"``, ``R`` rounds of attacker + PGD step + clean
  test evaluation, the kernel matrices computed on device) on standardised moons with
  ``n_train`` ∈ {500, 2 000, 10 000} (CPU: 500, 2 000; tiny: 200) and 1 000 test points;
  ``median_ms`` is per round (run time / R) and ``run_ms`` the whole run. The baseline is what a
  user of the official code pays per round: one ``sklearn.svm.SVC`` fit on the same data and
  flipped labels (measured in the same process; ``speedup_vs_baseline`` = SVC ms / FLORAL ms).
* ``budgets``: 8 attacker budgets in one ``vmap``-ed call against a Python loop over the
  budgets of the compiled single-budget program (``speedup_vs_baseline`` = loop / vmap).

    python benchmarks/floral_bench.py --device cpu [--tiny]
    python benchmarks/floral_bench.py --device gpu
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common
import jax
import jax.numpy as jnp
import numpy as np

from lions_jax.floral import FloralConfig, FloralData, make_train

BENCH = "floral"


def moons(n_train: int, n_test: int = 1_000, seed: int = 0) -> FloralData:
    from sklearn.datasets import make_moons

    x, y01 = make_moons(n_train + n_test, noise=0.2, random_state=seed)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    y = (2.0 * y01 - 1.0).astype(np.float32)
    return FloralData(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def svc_fit_ms(data: FloralData, labels: np.ndarray, cfg: FloralConfig, iters: int) -> float:
    from sklearn.svm import SVC

    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        SVC(C=cfg.c, kernel="rbf", gamma=cfg.gamma).fit(data.x_train, labels)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def bench_round(args, sizes: list[int], rounds: int) -> None:
    for n in sizes:
        data = moons(n)
        cfg = FloralConfig(num_rounds=rounds, budget=max(1, n // 20))
        train = make_train(cfg)
        key = jax.random.key(0)
        compiled, compile_s, mem = _common.compile_fn(train, key, data)
        iters = max(1, args.iters // (2 if n >= 10_000 else 1))
        run_ms = _common.time_compiled(compiled, key, data, iters=iters, warmup=1)
        state, m = compiled(key, data)
        svc_ms = svc_fit_ms(data, np.asarray(state.labels), cfg, 1 if n >= 10_000 else 3)
        per_round = run_ms / rounds
        _common.emit(
            args,
            BENCH,
            {
                "case": "round",
                "dtype": "float32",
                "shapes": {"n_train": n, "n_test": 1_000, "rounds": rounds},
                "median_ms": per_round,
                "run_ms": run_ms,
                "compile_s": compile_s,
                **mem,
                "final_test_acc": float(m["test_acc"][-1]),
                "baseline": "sklearn SVC fit per round (host)",
                "baseline_median_ms": svc_ms,
                "speedup_vs_baseline": svc_ms / per_round,
            },
        )


def bench_budgets(args, n: int, rounds: int, num_budgets: int = 8) -> None:
    data = moons(n)
    budgets = jnp.linspace(0, n // 10, num_budgets).astype(jnp.int32)
    cfg = FloralConfig(num_rounds=rounds, budget=n // 20, max_budget=n // 10)
    train = make_train(cfg)
    key = jax.random.key(0)

    def vmapped(key, data, budgets):
        return jax.vmap(train, in_axes=(None, None, 0))(key, data, budgets)

    compiled, compile_s, mem = _common.compile_fn(vmapped, key, data, budgets)
    vmap_ms = _common.time_compiled(compiled, key, data, budgets, iters=args.iters, warmup=1)
    single, _, _ = _common.compile_fn(train, key, data, budgets[0])

    def loop():
        return [single(key, data, b) for b in budgets]

    loop_ms = _common.time_host(loop, iters=args.iters)
    _common.emit(
        args,
        BENCH,
        {
            "case": "budgets",
            "dtype": "float32",
            "shapes": {"n_train": n, "rounds": rounds, "budgets": num_budgets},
            "median_ms": vmap_ms,
            "compile_s": compile_s,
            **mem,
            "baseline": "python loop over budgets (same compiled program)",
            "baseline_median_ms": loop_ms,
            "speedup_vs_baseline": loop_ms / vmap_ms,
        },
    )


def main() -> None:
    args = _common.parse_args(__doc__.splitlines()[0])
    if args.tiny:
        sizes, rounds, budget_n = [200], 20, 200
    elif args.device == "cpu":
        sizes, rounds, budget_n = [500, 2_000], 100, 500
    else:
        sizes, rounds, budget_n = [500, 2_000, 10_000], 200, 2_000
    bench_round(args, sizes, rounds)
    bench_budgets(args, budget_n, rounds)


if __name__ == "__main__":
    main()
