"""``floral``: robust accuracy under label poisoning — FLORAL against the SVM and robust baselines.

For each dataset, seed (a fresh train/validation/test split), attack and poison rate, the
training labels are poisoned (random flips; "influential" flips of the largest-α support
vectors of the clean SVM; optionally greedy LFA-style flips against validation error), and every
method is trained on the poisoned labels and scored on the clean test set:

* **SVM** — the exact kernel SVM (libsvm's bias over free SVs, as scikit-learn's ``SVC``, the
  official baseline);
* **FLORAL** — :func:`~lions_jax.floral.make_train` with the official Moon settings (C = 10,
  η = 1e-4, B = 5 % of ``n_train`` per round, the official predictor); the final round is
  reported, the curves over rounds are plotted;
* **LN-SVM** (μ = 0.05), **LS-SVM** (k = 20, η = 0.75), **Curie** (DBSCAN eps 0.5, 5 samples,
  w = 0.05, θ = 0.75): :mod:`lions_jax.floral.baselines`;
* **NN** / **NN-PGD** (optional, ``nn=True``): the MLP baselines of :mod:`lions_jax.floral.nn`.

Everything for one dataset — poisoning and all methods over seeds × attacks — is one
``jax.jit(jax.vmap(...))`` program, called once per poison rate (the number of flips is traced,
so all rates share the compiled program). Datasets: ``moons`` (2 000 points, noise 0.2, standardised,
500/500/1 000), ``digits17`` (scikit-learn's 8×8 digits 1 vs 7 stand in for MNIST 1-vs-7; 50/20/30 %
split, γ = 1/(d·Var X)) and ``fashion`` (Fashion-MNIST Sandal vs Sneaker, PCA to 20-d, 2 000 / 500 /
2 000, only where the Debian ``dataset-fashion-mnist`` files are present; it stands in for the
paper's IMDB/RoBERTa features, which cannot be obtained offline).
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
from lions_jax.floral.attacks import influential_flips, lfa_flips, random_flips
from lions_jax.floral.baselines import (
    curie_filter,
    ln_svm_eval_kernel,
    ln_svm_kernel,
    ls_sanitize,
)
from lions_jax.floral.nn import NNConfig, make_nn_train
from lions_jax.floral.svm import decision_function, solve_svm_dual
from lions_jax.floral.train import FloralConfig, FloralData, kernel_matrices, make_train

__all__ = ["ATTACKS", "DATASETS", "FloralExperimentConfig", "load_split", "run"]

DATASETS = ("moons", "digits17", "fashion")
ATTACKS = ("random", "influential", "lfa")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FloralExperimentConfig:
    """``floral``.

    Attributes:
      datasets: from :data:`DATASETS` (``fashion`` is skipped, with a note, when absent).
      attacks: from :data:`ATTACKS`.
      rates: poison rates in percent of ``n_train``.
      num_rounds: FLORAL rounds after round 0.
      budget_frac: FLORAL's attacker budget per round as a fraction of ``n_train``.
      lr: FLORAL's step size.
      c: SVM box constraint (all SVM-based methods).
      exact_steps: accelerated PGD steps of every exact SVM solve.
      ln_mu, ls_k, ls_eta: LN-SVM / LS-SVM parameters.
      nn: also run the NN and NN-PGD baselines; nn_epochs: their epochs.
      lfa_stages: greedy stages of the LFA attack.
      lfa_candidates: candidate flips scored per LFA stage (``min(n_train, lfa_candidates)``,
        drawn at random; each costs a warm-started re-solve).
      seed, num_seeds: seeds (each a different split and poisoning; vmapped).
    """

    datasets: tuple[str, ...] = ("moons", "digits17")
    attacks: tuple[str, ...] = ("random", "influential")
    rates: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 40.0)
    num_rounds: int = 500
    budget_frac: float = 0.05
    lr: float = 1e-4
    c: float = 10.0
    exact_steps: int = 1_500
    ln_mu: float = 0.05
    ls_k: int = 20
    ls_eta: float = 0.75
    nn: bool = True
    nn_epochs: int = 100
    lfa_stages: int = 10
    lfa_candidates: int = 200
    seed: int = 0
    num_seeds: int = 5

    def __post_init__(self) -> None:
        if not self.datasets or set(self.datasets) - set(DATASETS):
            raise ValueError(f"datasets must be among {DATASETS}, got {self.datasets}")
        if not self.attacks or set(self.attacks) - set(ATTACKS):
            raise ValueError(f"attacks must be among {ATTACKS}, got {self.attacks}")
        if not self.rates or not all(0 <= r < 50 for r in self.rates):
            raise ValueError(f"rates must lie in [0, 50) percent, got {self.rates}")
        if not 0 < self.budget_frac < 0.5:
            raise ValueError(f"budget_frac must lie in (0, 0.5), got {self.budget_frac}")
        if self.lfa_candidates < 1 or self.lfa_stages < 1:
            raise ValueError("lfa_candidates and lfa_stages must be >= 1")
        if self.num_seeds < 2 or self.num_rounds < 1:
            raise ValueError("num_seeds must be >= 2 (for a CI) and num_rounds >= 1")


PRESETS = {
    "quick": FloralExperimentConfig(rates=(0.0, 10.0, 25.0, 40.0), nn_epochs=50),
    "paper": FloralExperimentConfig(
        datasets=DATASETS, attacks=ATTACKS, num_seeds=10, exact_steps=3_000
    ),
}


def _standardize(parts: list[np.ndarray]) -> list[np.ndarray]:
    mean, std = parts[0].mean(0), parts[0].std(0) + 1e-8
    return [((p - mean) / std).astype(np.float32) for p in parts]


def load_split(name: str, seed: int) -> tuple[np.ndarray, ...] | None:
    """``(x_train, y_train, x_val, y_val, x_test, y_test)`` with ±1 float32 labels, or ``None``
    when the dataset's files are absent (``fashion``)."""
    rng = np.random.default_rng(seed)
    if name == "moons":
        from sklearn.datasets import make_moons

        x, y01 = make_moons(2_000, noise=0.2, random_state=seed)
        sizes = (500, 500, 1_000)
    elif name == "digits17":
        from sklearn.datasets import load_digits

        d = load_digits()
        keep = np.isin(d.target, (1, 7))
        x, y01 = d.data[keep].astype(np.float64), (d.target[keep] == 7).astype(np.int64)
        n = len(y01)
        sizes = (n // 2, n // 5, n - n // 2 - n // 5)
    elif name == "fashion":
        from lions_jax.data.fashion_mnist import find_fashion_mnist_dir, load_fashion_mnist

        try:
            find_fashion_mnist_dir()
        except ValueError:  # the Debian dataset-fashion-mnist files are absent
            return None
        ds = load_fashion_mnist()
        x_all = np.concatenate([ds.x_train, ds.x_test]).reshape(-1, 784).astype(np.float64)
        t_all = np.concatenate([ds.y_train, ds.y_test])
        keep = np.isin(t_all, (5, 7))  # Sandal vs Sneaker
        x, y01 = x_all[keep], (t_all[keep] == 7).astype(np.int64)  # pixels in [0, 1]
        sizes = (2_000, 500, 2_000)
    else:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    perm = rng.permutation(len(y01))[: sum(sizes)]
    cuts = np.cumsum(sizes)[:-1]
    idx = np.split(perm, cuts)
    xs = [x[i] for i in idx]
    if name == "fashion":
        from sklearn.decomposition import PCA

        pca = PCA(20, random_state=seed).fit(xs[0])
        xs = [pca.transform(p) for p in xs]
    xs = _standardize(xs)
    ys = [(2.0 * y01[i] - 1.0).astype(np.float32) for i in idx]
    return xs[0], ys[0], xs[1], ys[1], xs[2], ys[2]


def _methods(cfg: FloralExperimentConfig) -> tuple[str, ...]:
    names = ("SVM", "FLORAL", "LN-SVM", "LS-SVM", "Curie")
    return names + (("NN", "NN-PGD") if cfg.nn else ())


def _make_eval(
    cfg: FloralExperimentConfig, name: str, n_train: int, d: int, max_flips: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(attacks, methods)`` for one seed: ``attacks[a](key, split, num_flips) -> labels`` and
    ``methods[m](key, split, labels) -> {label: value}`` (clean-test accuracies; FLORAL also
    returns its curve over rounds)."""
    gamma = 0.5 if name == "moons" else "scale"
    budget = max(1, round(cfg.budget_frac * n_train))
    fcfg = FloralConfig(
        gamma=gamma, c=cfg.c, lr=cfg.lr, num_rounds=cfg.num_rounds, budget=budget,
        exact_steps=cfg.exact_steps,
    )  # fmt: skip
    floral = make_train(fcfg)

    def kernels(split: Any) -> tuple[Any, Any]:
        return kernel_matrices(fcfg, split[0], split[4])

    def svm_acc(y: Any, split: Any, c: Any) -> jax.Array:
        k_tr, k_te = kernels(split)
        alpha = solve_svm_dual(y, k_tr, c, num_steps=cfg.exact_steps)
        f = decision_function(alpha, y, k_te, k_tr, c=c, bias="free_sv")
        return jnp.mean(jnp.sign(f) == split[5])

    def ln_acc(y: Any, split: Any) -> jax.Array:
        k_tr, k_te = kernels(split)
        k_ln = ln_svm_kernel(k_tr, cfg.ln_mu)
        alpha = solve_svm_dual(y, k_ln, cfg.c, num_steps=cfg.exact_steps)
        k_eval = ln_svm_eval_kernel(k_te, cfg.ln_mu)
        f = decision_function(alpha, y, k_eval, k_ln, c=cfg.c, bias="free_sv")
        return jnp.mean(jnp.sign(f) == split[5])

    def floral_run(key: Any, split: Any, y: Any) -> dict[str, Any]:
        _, m = floral(key, FloralData(split[0], y, split[4], split[5]))
        return {"FLORAL": m["test_acc"][-1], "floral_curve": m["test_acc"]}

    methods = {
        "SVM": lambda key, split, y: {"SVM": svm_acc(y, split, cfg.c)},
        "FLORAL": floral_run,
        "LN-SVM": lambda key, split, y: {"LN-SVM": ln_acc(y, split)},
        "LS-SVM": lambda key, split, y: {
            "LS-SVM": svm_acc(ls_sanitize(split[0], y, k=cfg.ls_k, eta=cfg.ls_eta), split, cfg.c)
        },
        "Curie": lambda key, split, y: {
            "Curie": svm_acc(y, split, cfg.c * curie_filter(key, split[0], y))
        },
    }
    if cfg.nn:
        for label, adversarial in (("NN", False), ("NN-PGD", True)):
            train = make_nn_train(NNConfig(epochs=cfg.nn_epochs, adversarial=adversarial), d)
            methods[label] = lambda key, split, y, train=train, label=label: {
                label: train(key, split[0], y, split[4], split[5])[1]["test_accuracy"]
            }

    def lfa(key: Any, split: Any, num_flips: Any) -> jax.Array:
        x_tr, y_tr, x_va, y_va, _, _ = split
        k_tr, k_va = kernel_matrices(fcfg, x_tr, x_va)
        return lfa_flips(
            key, y_tr, k_tr, k_va, y_va, num_flips, c=cfg.c, num_stages=cfg.lfa_stages,
            num_candidates=min(n_train, cfg.lfa_candidates), max_flips=max_flips,
        )  # fmt: skip

    def influential(key: Any, split: Any, num_flips: Any) -> jax.Array:
        k_tr = kernel_matrices(fcfg, split[0], split[0])[0]
        alpha = solve_svm_dual(split[1], k_tr, cfg.c, num_steps=cfg.exact_steps)
        return influential_flips(alpha, split[1], num_flips)

    attacks = {
        "random": lambda key, split, num_flips: random_flips(key, split[1], num_flips),
        "influential": influential,
        "lfa": lfa,
    }
    return {a: attacks[a] for a in cfg.attacks}, methods


def run(cfg: FloralExperimentConfig, out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    methods = _methods(cfg)
    summary: dict[str, Any] = {"datasets": {}, "skipped": {}}
    rows, lines = [], []
    for name in cfg.datasets:
        splits = [load_split(name, cfg.seed + s) for s in range(cfg.num_seeds)]
        if splits[0] is None:
            summary["skipped"][name] = (
                "Fashion-MNIST files not found (Debian dataset-fashion-mnist)"
            )
            lines.append(f"## {name}\n\nskipped: {summary['skipped'][name]}\n")
            continue
        stacked = tuple(np.stack(p) for p in zip(*splits, strict=True))
        n_train, d = stacked[0].shape[1:]
        flips = np.array([round(r / 100 * n_train) for r in cfg.rates], np.int32)
        attack_fns, method_fns = _make_eval(cfg, name, n_train, d, int(flips.max()))
        keys = jax.random.split(jax.random.key(cfg.seed), cfg.num_seeds)
        poison_keys = jax.vmap(lambda k: jax.random.fold_in(k, 0))(keys)
        method_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
        # Seeds vmapped, one compiled program per attack and per method, reused across rates (the
        # number of flips is traced). One program for everything deadlocked XLA:CPU (all threads
        # idle) with the LFA attack and 10 seeds; separate programs also keep the batch small.
        attack_jit = {a: jax.jit(jax.vmap(f, in_axes=(0, 0, None))) for a, f in attack_fns.items()}
        method_jit = {m: jax.jit(jax.vmap(f)) for m, f in method_fns.items()}
        t = time.perf_counter()
        parts = []
        for rate, k in zip(cfg.rates, flips, strict=True):
            part: dict[str, dict[str, Any]] = {}
            for attack, poison in attack_jit.items():
                y_p = poison(poison_keys, stacked, jnp.asarray(k))
                part[attack] = {}
                for fn in method_jit.values():
                    part[attack].update(jax.device_get(fn(method_keys, stacked, y_p)))
            parts.append(part)
            if progress:
                print(
                    f"floral: {name} {rate:g} % done at {time.perf_counter() - t:.1f}s", flush=True
                )
        out = jax.tree.map(lambda *a: np.stack(a), *parts)  # leaves (rates, seeds, ...)
        ds_summary: dict[str, Any] = {"n_train": int(n_train), "dim": int(d), "attacks": {}}
        for attack in cfg.attacks:
            acc = {m: np.asarray(out[attack][m]) for m in methods}  # (rates, seeds)
            ds_summary["attacks"][attack] = {
                m: {
                    f"{r:g}": {"mean": float(a[i].mean()), "ci95": results.ci95(a[i]), "per_seed": a[i].tolist()}
                    for i, r in enumerate(cfg.rates)
                }
                for m, a in acc.items()
            }  # fmt: skip
            table = [
                [m, *(f"{acc[m][i].mean():.3f} ± {results.ci95(acc[m][i]):.3f}" for i in range(len(cfg.rates)))]
                for m in methods
            ]  # fmt: skip
            lines.append(
                f"## {name}, {attack} flips (clean-test accuracy, mean ± 95 % CI over "
                f"{cfg.num_seeds} splits)\n\n"
                + results.markdown_table(["method", *(f"{r:g} %" for r in cfg.rates)], table)
            )
            curve = np.asarray(out[attack]["floral_curve"])  # (rates, seeds, rounds + 1)
            rows += [
                {"dataset": name, "attack": attack, "rate": r, "method": m, "acc": acc[m][i].tolist()}
                for i, r in enumerate(cfg.rates)
                for m in methods
            ]  # fmt: skip
            results.plot_curves(
                out_dir / f"rounds_{name}_{attack}.png",
                np.arange(curve.shape[-1]),
                {f"{r:g} %": curve[i].T for i, r in enumerate(cfg.rates)},
                xlabel="round (0 = exact SVM on the poisoned labels)",
                ylabel="clean-test accuracy",
                title=f"FLORAL on {name}, {attack} flips",
            )
            _plot_rates(out_dir / f"acc_{name}_{attack}.png", cfg.rates, acc, f"{name}, {attack}")
        summary["datasets"][name] = ds_summary
    notes = (
        "Stand-ins: digits 1-vs-7 (8×8, scikit-learn) for MNIST 1-vs-7; Fashion-MNIST Sandal vs "
        "Sneaker (PCA 20-d) for IMDB/RoBERTa, which is not available offline; no RoBERTa baseline. "
        "K-LID is not run (see lions_jax.floral.baselines). Settings are smaller than the paper's "
        "only where stated in the config."
    )
    text = f"# floral ({cfg.num_seeds} seeds, {cfg.num_rounds} rounds)\n\n{notes}\n\n" + "\n".join(
        lines
    )
    return results.write_outputs(
        out_dir,
        experiment="floral",
        config=config_to_dict(cfg),
        table=text,
        rows=rows,
        summary=summary,
        wall_time_s=time.perf_counter() - t0,
    )


def _plot_rates(
    path: Path, rates: tuple[float, ...], acc: dict[str, np.ndarray], title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for m, a in acc.items():
        ci = np.array([results.ci95(a[i]) for i in range(len(rates))])
        ax.errorbar(rates, a.mean(1), yerr=ci, label=m, capsize=2, lw=1.2)
    ax.set_xlabel("poison rate (% of training labels)")
    ax.set_ylabel("clean-test accuracy")
    ax.set_title(f"robust accuracy: {title}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    results.save_figure(fig, path)


registry.register(
    registry.Experiment(
        name="floral",
        description="FLORAL vs SVM, LN-SVM, LS-SVM, Curie, NN, NN-PGD under label poisoning.",
        config_type=FloralExperimentConfig,
        presets=PRESETS,
        run=run,
    )
)
