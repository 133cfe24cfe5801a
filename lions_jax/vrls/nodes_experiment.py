r"""``vrls-nodes``: multi-node IW-ERM under label shift — ERM, FedAvg, FedProx, IW-ERM with BBSE,
VRLS and true ratios (``specs/vrls.md`` §9 B).

**Setting.** :math:`K` nodes (default 5). Node :math:`k` holds ``n_train`` labelled training points
drawn from :math:`p_k^{tr}(y)` and ``n_test`` *test* points from its own test distribution
:math:`p_k^{te}(y)`, with :math:`p(x\mid y)` shared (label shift). The test points are used twice:
their inputs are the node's unlabelled local sample for ratio estimation (spec: 500 per node), their
labels only to score accuracy. Two split designs:

* ``5clients`` (the official code's design, spec §2): node :math:`k` trains on ``major_frac`` = 95 %
  class :math:`(k + C/2) \bmod C` (class 5 + k for 10 classes), the remaining 5 % spread uniformly
  over the other classes; its test set is 95 % class :math:`k` (rest uniform). Needs
  :math:`K \le C/2`.
* ``dirichlet``: each node's training marginal and test marginal are drawn independently from
  Dirichlet(``dirichlet_alpha`` · 1) (α = 0.5), fresh for every seed.

Class counts are the marginals times the set size, rounded by largest remainders, so the drawn
label frequencies match the design up to rounding. Points of each class are drawn from that class's
pool without replacement within a node when the pool is large enough and *with replacement*
otherwise (always for ``digits``; never for Fashion-MNIST at the default sizes); different nodes
draw independently, so two nodes may share a training point. Training pools come from the dataset's
training part and test pools from its test part, so no node's training and test sets overlap.

**Data.** ``fashion``: Fashion-MNIST (784 pixels in [0, 1]) from the Debian
``dataset-fashion-mnist`` files; where they are absent the run falls back to ``digits`` and says so
in ``table.md`` and ``results.json``. ``digits``: scikit-learn's 8×8 digits (64 standardised
features, 10 classes; a stand-in for MNIST), split 50/50 (stratified) into the training and test
pools.

**Ratio estimation (per node, locally; one vmapped program).** The first ``n_val`` points of the
node's training set are a labelled validation split, the rest train a local MLP predictor
(:func:`~lions_jax.vrls.predictor.make_predictor`) twice, with CE (ζ = 0) and with CE − ζH
(ζ = ``zeta`` = 0.1), in one vmap over ζ:

* **BBSE** (Lipton et al. 2018): hard confusion matrix of the CE predictor on the validation split,
  hard mean prediction on the unlabelled local test sample, :math:`\hat r = \hat C^{+}\hat\mu`
  clipped and normalised; :math:`\hat q_k = \hat r \odot \hat p^{val}_k`.
* **VRLS**: the CE − ζH predictor, temperature-scaled on the validation split
  (:func:`~lions_jax.vrls.calibration.fit_temperature`), MLLS by EM on the unlabelled local test
  sample with the predictor's training frequencies :math:`\hat p_k^{tr}`;
  :math:`\hat q_k = \hat r_k \odot \hat p_k^{tr}`.
* **MLLS** (the same with the CE predictor) is only scored for its estimation error (no IW-ERM run),
  to isolate the effect of the entropy term.

Each node shares :math:`\hat q_k` only; the IW-ERM weights are
:func:`~lions_jax.vrls.train.node_weights` (:math:`r_k(y) = \sum_j \hat q_j(y)/\hat p_k^{tr}(y)`
with the node's empirical training frequencies). **True ratios** use the design test marginals
:math:`q_k` instead of :math:`\hat q_k` (the code's ``use_true_ratio``; an upper bound).

**Training** (:func:`~lions_jax.vrls.train.make_train`; an MLP with ``hidden`` widths):

* **ERM** (ratios ≡ 1), **IW-ERM (BBSE / VRLS / true)**: the official synchronous protocol — every
  step each node's minibatch gradient, uniformly averaged, one server Adam step (lr 1e-3, weight
  decay 1e-6, batch 64). All four share one compiled program, vmapped over methods and seeds, and
  use the same initialisation and minibatches per seed (paired comparison).
* **FedAvg** (μ = 0, optional) and **FedProx** (μ = ``prox_mu`` = 0.01): rounds of ``local_steps``
  local SGD steps (``local_lr``) per node, then model averaging, ratios ≡ 1. They run
  ``num_steps / local_steps`` rounds, i.e. the **same number of local gradient steps** as the
  synchronous methods (``local_steps`` times fewer communication rounds); their curves are plotted
  against local gradient steps.

**What the accuracy measures.** IW-ERM minimises an estimate of the *sum over nodes of their test
risks* :math:`\sum_k R_k^{te}(\theta)` with a single global model. The reported metric is its
accuracy counterpart: the mean over nodes of each node's accuracy on its own test set (its own test
distribution), after the last step; mean ± 95 % CI (Student t) over seeds, plus the paired
per-seed gap against ERM. The ratio-estimation error is the mean squared error of the node weights
:math:`r_k(y)` (dominated by classes rare in a node's training data, whose weights are large) and of
the shared test marginals :math:`\hat q_k` against the truth, averaged over nodes and classes.

Numbers here are not comparable to the paper's (another model, data size and training length).
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
from lions_jax.vrls.calibration import calibrated_probs, fit_temperature
from lions_jax.vrls.estimators import (
    bbse,
    confusion_matrix,
    label_marginal,
    mlls,
    target_mean_prediction,
)
from lions_jax.vrls.predictor import PredictorConfig, make_predictor
from lions_jax.vrls.train import IWERMConfig, NodeData, make_train, node_weights

__all__ = [
    "DATASETS",
    "SPLITS",
    "VRLSNodesConfig",
    "load_pools",
    "make_node_data",
    "methods",
    "run",
]

DATASETS = ("fashion", "digits")
SPLITS = ("5clients", "dirichlet")
_SYNC_METHODS = ("ERM", "IW-ERM (BBSE)", "IW-ERM (VRLS)", "IW-ERM (true ratios)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class VRLSNodesConfig:
    """``vrls-nodes``.

    Attributes:
      dataset: ``"fashion"`` (falls back to ``"digits"``, with a note, when the Debian
        Fashion-MNIST files are absent) or ``"digits"``.
      downsample: Fashion-MNIST only: average-pool the 28×28 images by this factor (2: 14×14 =
        196 features; 1: the full 784), to fit the quick preset's CPU budget.
      splits: from :data:`SPLITS`.
      num_nodes: number of nodes :math:`K` (``5clients`` needs :math:`K \\le C/2`).
      n_train: labelled training points per node (the first ``n_val`` are the local validation
        split of the ratio-estimation predictor; IW-ERM trains on all of them).
      n_val: local labelled validation points (temperature scaling, BBSE confusion matrix).
      n_test: test points per node: the unlabelled sample for ratio estimation and, with their
        labels, the node's accuracy test set.
      major_frac: ``5clients``: the share of the node's dominant class (train and test).
      dirichlet_alpha: ``dirichlet``: concentration of the per-node label marginals.
      hidden: hidden widths of the IW-ERM / FedAvg / FedProx MLP.
      num_steps: synchronous training steps (FedAvg/FedProx: ``num_steps / local_steps`` rounds).
      batch_size: minibatch per node per (local) step.
      lr: server Adam step size.
      weight_decay: L2 term (torch ``Adam(weight_decay)`` semantics).
      eval_every: steps between accuracy evaluations (a multiple of ``local_steps``).
      fedavg: also run FedAvg (FedProx with μ = 0).
      local_steps: FedAvg/FedProx local SGD steps per round.
      local_lr: FedAvg/FedProx local SGD step size (0.2: with 0.05, the quick preset's 60 rounds
        left FedAvg/FedProx clearly under-trained, 0.64 vs 0.74 mean accuracy on ``dirichlet``).
      prox_mu: FedProx proximal coefficient μ.
      pred_hidden, pred_steps, pred_batch, pred_lr: the local ratio-estimation predictor.
      zeta: the entropy weight ζ of the VRLS predictor (CE − ζH).
      bias_corrected: VRLS/MLLS calibration by BCTS instead of plain temperature scaling.
      seed, num_seeds: seeds (each a fresh draw of the node data, marginals and initialisation;
        vmapped).
    """

    dataset: str = "fashion"
    downsample: int = 1
    splits: tuple[str, ...] = SPLITS
    num_nodes: int = 5
    n_train: int = 3_000
    n_val: int = 600
    n_test: int = 500
    major_frac: float = 0.95
    dirichlet_alpha: float = 0.5
    hidden: tuple[int, ...] = (128,)
    num_steps: int = 500
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-6
    eval_every: int = 50
    fedavg: bool = True
    local_steps: int = 5
    local_lr: float = 0.2
    prox_mu: float = 0.01
    pred_hidden: tuple[int, ...] = (128,)
    pred_steps: int = 500
    pred_batch: int = 64
    pred_lr: float = 1e-3
    zeta: float = 0.1
    bias_corrected: bool = False
    seed: int = 0
    num_seeds: int = 5

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if (
            not self.splits
            or set(self.splits) - set(SPLITS)
            or len(set(self.splits)) != len(self.splits)
        ):
            raise ValueError(f"splits must be distinct names among {SPLITS}, got {self.splits}")
        if self.downsample not in (1, 2, 4, 7):
            raise ValueError(f"downsample must divide 28 (1, 2, 4, 7), got {self.downsample}")
        if self.num_nodes < 2:
            raise ValueError(f"num_nodes must be >= 2, got {self.num_nodes}")
        if "5clients" in self.splits and self.num_nodes > 5:
            raise ValueError(
                f"the 5clients split needs num_nodes <= num_classes / 2 = 5, got {self.num_nodes}"
            )
        if not 0 < self.n_val < self.n_train:
            raise ValueError(f"n_val must lie in (0, n_train={self.n_train}), got {self.n_val}")
        if self.n_train - self.n_val < self.pred_batch:
            raise ValueError(
                f"n_train - n_val ({self.n_train - self.n_val}) must be >= pred_batch "
                f"({self.pred_batch})"
            )
        if self.batch_size < 1 or self.batch_size > self.n_train:
            raise ValueError(f"batch_size must lie in [1, n_train], got {self.batch_size}")
        if self.n_test < 10:
            raise ValueError(f"n_test must be >= 10, got {self.n_test}")
        if not 0.1 < self.major_frac < 1:
            raise ValueError(f"major_frac must lie in (0.1, 1), got {self.major_frac}")
        if not self.dirichlet_alpha > 0:
            raise ValueError(f"dirichlet_alpha must be > 0, got {self.dirichlet_alpha}")
        if self.zeta < 0 or self.prox_mu < 0 or self.weight_decay < 0:
            raise ValueError("zeta, prox_mu and weight_decay must be >= 0")
        if self.local_steps < 2:
            raise ValueError(f"local_steps must be >= 2 (FedAvg/FedProx), got {self.local_steps}")
        if self.num_steps < 1 or self.num_steps % self.local_steps:
            raise ValueError(
                f"num_steps ({self.num_steps}) must be a positive multiple of local_steps "
                f"({self.local_steps})"
            )
        if self.eval_every < 1 or self.eval_every % self.local_steps:
            raise ValueError(
                f"eval_every ({self.eval_every}) must be a positive multiple of local_steps "
                f"({self.local_steps})"
            )
        if self.num_seeds < 2:
            raise ValueError(f"num_seeds must be >= 2 (for a CI), got {self.num_seeds}")
        if self.pred_steps < 1 or self.pred_batch < 1 or not self.pred_lr > 0:
            raise ValueError("pred_steps and pred_batch must be >= 1 and pred_lr > 0")
        if not self.lr > 0 or not self.local_lr > 0:
            raise ValueError("lr and local_lr must be > 0")


PRESETS = {
    "quick": VRLSNodesConfig(
        num_seeds=3,
        num_steps=300,
        pred_steps=300,
        hidden=(64,),
        pred_hidden=(64,),
        fedavg=False,
        downsample=2,
    ),
    "paper": VRLSNodesConfig(num_seeds=10, num_steps=1_000, pred_hidden=(256,), hidden=(256,)),
}


def methods(cfg: VRLSNodesConfig) -> tuple[str, ...]:
    """The compared methods, in table order."""
    fed = ("FedAvg",) if cfg.fedavg else ()
    return ("ERM", *fed, "FedProx", *_SYNC_METHODS[1:])


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def load_pools(
    dataset: str, seed: int = 0, downsample: int = 1
) -> tuple[str, tuple[np.ndarray, ...], str]:
    """``(dataset_used, (x_train_pool, y_train_pool, x_test_pool, y_test_pool), note)``.

    ``fashion`` falls back to ``digits`` (with a non-empty ``note``) when its files are absent;
    its images are average-pooled by ``downsample`` (28 / downsample pixels a side).
    """
    note = ""
    if dataset == "fashion":
        from lions_jax.data.fashion_mnist import find_fashion_mnist_dir, load_fashion_mnist

        try:
            find_fashion_mnist_dir()
        except ValueError:
            note = (
                "Fashion-MNIST files not found (Debian dataset-fashion-mnist): scikit-learn's "
                "8×8 digits are used instead."
            )
            dataset = "digits"
        else:
            ds = load_fashion_mnist()

            def pool(x: np.ndarray) -> np.ndarray:
                s = 28 // downsample
                x = x.reshape(-1, s, downsample, s, downsample).mean((2, 4))
                return np.ascontiguousarray(x.reshape(len(x), -1), np.float32)

            return "fashion", (pool(ds.x_train), ds.y_train, pool(ds.x_test), ds.y_test), note
    if dataset != "digits":
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    from lions_jax.data.sklearn_sets import load_digits

    ds = load_digits(test_fraction=0.5, seed=seed, standardize=True)
    return "digits", (ds.x_train, ds.y_train, ds.x_test, ds.y_test), note


def _round_counts(p: np.ndarray, n: int) -> np.ndarray:
    """Largest-remainder rounding of ``n * p`` to integers summing to ``n``."""
    raw = n * np.asarray(p, np.float64)
    counts = np.floor(raw).astype(np.int64)
    rest = n - counts.sum()
    counts[np.argsort(-(raw - counts), kind="stable")[:rest]] += 1
    return counts


def _marginals(
    cfg: VRLSNodesConfig, split: str, rng: np.random.Generator, c: int
) -> tuple[np.ndarray, np.ndarray]:
    k = cfg.num_nodes
    if split == "5clients":
        minor = (1.0 - cfg.major_frac) / (c - 1)
        p_tr, p_te = np.full((k, c), minor), np.full((k, c), minor)
        for i in range(k):
            p_tr[i, (i + c // 2) % c] = cfg.major_frac
            p_te[i, i] = cfg.major_frac
        return p_tr, p_te
    alpha = np.full(c, cfg.dirichlet_alpha)
    return rng.dirichlet(alpha, size=k), rng.dirichlet(alpha, size=k)


def _draw(
    rng: np.random.Generator, pools: list[np.ndarray], x: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Draws ``counts[c]`` points of every class from its pool; returns ``(x, y, replaced)``."""
    idx, labels, replaced = [], [], False
    for c, n_c in enumerate(counts):
        if n_c == 0:
            continue
        replace = bool(n_c > len(pools[c]))
        replaced |= replace
        idx.append(rng.choice(pools[c], n_c, replace=replace))
        labels.append(np.full(n_c, c, np.int32))
    idx, labels = np.concatenate(idx), np.concatenate(labels)
    perm = rng.permutation(len(idx))
    return x[idx[perm]], labels[perm], replaced


def make_node_data(
    cfg: VRLSNodesConfig, split: str, pools: tuple[np.ndarray, ...], rng: np.random.Generator
) -> dict[str, Any]:
    """One seed's node data: ``x_train (K, n, d)``, ``y_train``, ``x_test (K, m, d)``, ``y_test``,
    the design marginals ``p_train``/``q_test`` ``(K, C)`` and ``replaced`` (any class pool drawn
    with replacement)."""
    x_tr, y_tr, x_te, y_te = pools
    c = int(max(y_tr.max(), y_te.max())) + 1
    tr_pools = [np.flatnonzero(y_tr == i) for i in range(c)]
    te_pools = [np.flatnonzero(y_te == i) for i in range(c)]
    p_tr, q_te = _marginals(cfg, split, rng, c)
    out: dict[str, list[Any]] = {"x_train": [], "y_train": [], "x_test": [], "y_test": []}
    replaced = False
    for k in range(cfg.num_nodes):
        xa, ya, r1 = _draw(rng, tr_pools, x_tr, _round_counts(p_tr[k], cfg.n_train))
        xb, yb, r2 = _draw(rng, te_pools, x_te, _round_counts(q_te[k], cfg.n_test))
        replaced |= r1 or r2
        for name, v in (("x_train", xa), ("y_train", ya), ("x_test", xb), ("y_test", yb)):
            out[name].append(v)
    data: dict[str, Any] = {name: np.stack(v) for name, v in out.items()}
    data.update(p_train=p_tr, q_test=q_te, replaced=replaced)
    return data


# --------------------------------------------------------------------------------------------
# Programs
# --------------------------------------------------------------------------------------------
def _make_estimate(cfg: VRLSNodesConfig, d: int, c: int) -> Any:
    """``estimate(keys, x_train, y_train, x_test) -> {"BBSE", "MLLS", "VRLS": q̂ (B, C)}`` for ``B``
    nodes (all seeds' nodes flattened into one vmapped axis: fewer nested vmaps compile faster)."""
    pcfg = PredictorConfig(
        hidden=cfg.pred_hidden, zeta=cfg.zeta, lr=cfg.pred_lr, num_steps=cfg.pred_steps,
        batch_size=cfg.pred_batch,
    )  # fmt: skip
    pred_train, apply = make_predictor(pcfg, d, c)
    zetas = jnp.asarray([0.0, cfg.zeta], jnp.float32)

    def node(key: Any, x: Any, y: Any, x_te: Any) -> dict[str, jax.Array]:
        x_val, y_val = x[: cfg.n_val], y[: cfg.n_val]
        x_fit, y_fit = x[cfg.n_val :], y[cfg.n_val :]
        p_fit = label_marginal(y_fit, c)

        def fit(zeta: Any) -> tuple[Any, Any, Any]:
            params = pred_train(key, x_fit, y_fit, zeta)
            logits_val, logits_te = apply(params, x_val), apply(params, x_te)
            cal = fit_temperature(logits_val, y_val, bias_corrected=cfg.bias_corrected)
            return logits_val, logits_te, cal

        logits_val, logits_te, cal = jax.vmap(fit)(zetas)  # [0]: CE, [1]: CE − ζH
        conf = confusion_matrix(jax.nn.softmax(logits_val[0]), y_val)
        r_bbse = bbse(conf, target_mean_prediction(jax.nn.softmax(logits_te[0])))
        # one EM solve, vmapped over the two predictors
        r = jax.vmap(lambda lg, cl: mlls(calibrated_probs(lg, cl), p_fit))(logits_te, cal)
        return {"BBSE": r_bbse * conf.sum(0), "MLLS": r[0] * p_fit, "VRLS": r[1] * p_fit}

    return jax.vmap(node)


def _iwerm_configs(cfg: VRLSNodesConfig, c: int) -> tuple[IWERMConfig, dict[str, IWERMConfig]]:
    base = IWERMConfig(
        num_classes=c, hidden=cfg.hidden, lr=cfg.lr, weight_decay=cfg.weight_decay,
        batch_size=cfg.batch_size, num_steps=cfg.num_steps, eval_every=cfg.eval_every,
    )  # fmt: skip
    fed = dataclasses.replace(
        base,
        num_steps=cfg.num_steps // cfg.local_steps,
        eval_every=cfg.eval_every // cfg.local_steps,
        local_steps=cfg.local_steps,
        local_lr=cfg.local_lr,
    )
    feds = {"FedProx": dataclasses.replace(fed, prox_mu=cfg.prox_mu)}
    if cfg.fedavg:
        feds = {"FedAvg": fed, **feds}
    return base, feds


def _stat(v: Any) -> dict[str, Any]:
    v = np.asarray(v, np.float64)
    return {"mean": float(v.mean()), "ci95": results.ci95(v), "per_seed": v.tolist()}


def _fmt(s: dict[str, Any], scale: float = 1.0, digits: int = 3) -> str:
    return f"{s['mean'] * scale:.{digits}f} ± {s['ci95'] * scale:.{digits}f}"


# --------------------------------------------------------------------------------------------
# Run
# --------------------------------------------------------------------------------------------
def run(cfg: VRLSNodesConfig, out_dir: Path, *, progress: bool = True) -> dict[str, Any]:
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    used, pools, fallback = load_pools(cfg.dataset, cfg.seed, cfg.downsample)
    d = pools[0].shape[1]
    c = int(pools[1].max()) + 1
    method_names = methods(cfg)
    sync_cfg, fed_cfgs = _iwerm_configs(cfg, c)
    sync = make_train(sync_cfg)

    def sync_methods(key: Any, data: Any, ratios: Any) -> dict[str, jax.Array]:
        # ratios (M, K, C): the synchronous methods share the key (init and minibatches)
        return jax.vmap(lambda r: sync(key, data, r)[1])(ratios)

    sync_jit = jax.jit(jax.vmap(sync_methods))
    fed_jit = {}
    for name, fcfg in fed_cfgs.items():
        fed_train = make_train(fcfg)
        fed_jit[name] = jax.jit(
            jax.vmap(lambda key, data, ratios, f=fed_train: f(key, data, ratios)[1])
        )
    estimate_jit = jax.jit(_make_estimate(cfg, d, c))
    keys = jax.random.split(jax.random.key(cfg.seed), cfg.num_seeds)
    est_keys = jax.vmap(lambda k: jax.random.split(jax.random.fold_in(k, 0), cfg.num_nodes))(keys)
    est_keys = est_keys.reshape(-1)  # (S * K,): one key per seed and node
    train_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)

    notes = [
        f"{cfg.num_nodes} nodes, {cfg.n_train} training points (the first {cfg.n_val} a local "
        f"validation split for the ratio predictor) and {cfg.n_test} test points per node; "
        f"MLP {cfg.hidden}, {cfg.num_steps} steps (FedAvg/FedProx: {cfg.num_steps // cfg.local_steps}"
        f" rounds of {cfg.local_steps} local SGD steps, lr {cfg.local_lr}); {cfg.num_seeds} seeds.",
        "Accuracy: mean over nodes of each node's accuracy on its own test distribution (the "
        "quantity IW-ERM targets: the sum of the nodes' test risks), after the last step; "
        "mean ± 95 % CI (t) over seeds. Not comparable with the paper's numbers.",
    ]
    if fallback:
        notes.insert(0, f"**Substitution:** {fallback}")
    if used == "fashion" and cfg.downsample > 1:
        side = 28 // cfg.downsample
        notes.append(
            f"Fashion-MNIST images average-pooled {cfg.downsample}×{cfg.downsample} to "
            f"{side}×{side} = {side * side} features (CPU budget)."
        )
    if used == "digits":
        notes.append(
            "digits (8×8, scikit-learn) stand in for MNIST/Fashion-MNIST; its class pools (~90 "
            "points) are sampled with replacement."
        )
    summary: dict[str, Any] = {"dataset": used, "notes": notes, "splits": {}}
    rows, lines = [], []
    for split in cfg.splits:
        t_split = time.perf_counter()
        si = SPLITS.index(split)  # the draw of a split does not depend on the others
        seeds = [
            make_node_data(cfg, split, pools, np.random.default_rng([cfg.seed, si, s]))
            for s in range(cfg.num_seeds)
        ]
        stack = {
            k: np.stack([s[k] for s in seeds])
            for k in ("x_train", "y_train", "x_test", "y_test", "p_train", "q_test")
        }
        replaced = any(s["replaced"] for s in seeds)
        data = NodeData(stack["x_train"], stack["y_train"], stack["x_test"], stack["y_test"])

        def flat(a: np.ndarray) -> np.ndarray:
            return a.reshape(-1, *a.shape[2:])

        q_hat = jax.device_get(
            estimate_jit(
                est_keys, flat(stack["x_train"]), flat(stack["y_train"]), flat(stack["x_test"])
            )
        )
        q_hat = {
            e: np.asarray(q).reshape(cfg.num_seeds, cfg.num_nodes, c) for e, q in q_hat.items()
        }
        q_true = stack["q_test"]  # (S, K, C), the design marginals
        p_emp = np.stack(
            [[np.bincount(y, minlength=c) / len(y) for y in s] for s in stack["y_train"]]
        )
        weights = {
            "BBSE": _node_weights_per_seed(q_hat["BBSE"], p_emp),
            "VRLS": _node_weights_per_seed(q_hat["VRLS"], p_emp),
            "MLLS": _node_weights_per_seed(q_hat["MLLS"], p_emp),
            "true": _node_weights_per_seed(q_true, p_emp),
        }
        if progress:
            print(
                f"vrls-nodes: {split}: ratios estimated at {time.perf_counter() - t_split:.1f}s",
                flush=True,
            )
        ratios = np.stack(
            [np.ones_like(weights["true"]), weights["BBSE"], weights["VRLS"], weights["true"]],
            axis=1,
        ).astype(np.float32)  # (S, M, K, C)
        sync_out = jax.device_get(sync_jit(train_keys, data, ratios))
        curves: dict[str, np.ndarray] = {}  # method -> (num_evals, S)
        final: dict[str, np.ndarray] = {}  # method -> (S,)
        per_node: dict[str, np.ndarray] = {}  # method -> (S, K)
        for i, name in enumerate(_SYNC_METHODS):
            curves[name] = np.asarray(sync_out["mean_test_acc"][:, i]).T
            per_node[name] = np.asarray(sync_out["test_acc"][:, i, -1])
        steps = np.asarray(sync_out["eval_step"][0, 0])
        if progress:
            print(
                f"vrls-nodes: {split}: synchronous methods done at "
                f"{time.perf_counter() - t_split:.1f}s",
                flush=True,
            )
        ones = np.ones_like(ratios[:, 0])
        for name, fn in fed_jit.items():
            out = jax.device_get(fn(train_keys, data, ones))
            curves[name] = np.asarray(out["mean_test_acc"]).T
            per_node[name] = np.asarray(out["test_acc"][:, -1])
        for name in method_names:
            final[name] = per_node[name].mean(-1)
        split_summary: dict[str, Any] = {
            "methods": {
                m: {
                    **_stat(final[m]),
                    "per_node_mean": per_node[m].mean(0).tolist(),
                    "curve_mean": curves[m].mean(1).tolist(),
                }
                for m in method_names
            },
            "eval_step": steps.tolist(),
            "gap_vs_erm": {m: _stat(final[m] - final["ERM"]) for m in method_names if m != "ERM"},
            "weights_mse": {
                e: _stat(((weights[e] - weights["true"]) ** 2).mean((1, 2)))
                for e in ("BBSE", "MLLS", "VRLS")
            },
            "q_mse": {
                e: _stat(((q_hat[e] - q_true) ** 2).mean((1, 2))) for e in ("BBSE", "MLLS", "VRLS")
            },
            "sampled_with_replacement": replaced,
            "q_test": q_true.tolist(),
            "p_train": p_emp.tolist(),
        }
        summary["splits"][split] = split_summary
        rows += [
            {"split": split, "method": m, "step": int(st), "mean_test_acc": curves[m][j].tolist()}
            for m in method_names
            for j, st in enumerate(steps)
        ]
        est = {"IW-ERM (BBSE)": "BBSE", "IW-ERM (VRLS)": "VRLS"}
        table = []
        for m in method_names:
            e = est.get(m)
            gap = split_summary["gap_vs_erm"].get(m)
            table.append([
                m,
                _fmt(split_summary["methods"][m]),
                "—" if gap is None else f"{gap['mean'] * 100:+.1f} ± {gap['ci95'] * 100:.1f}",
                _fmt(split_summary["weights_mse"][e], digits=3) if e else "—",
                _fmt(split_summary["q_mse"][e], scale=1e3, digits=3) if e else "—",
            ])  # fmt: skip
        mlls_row = (
            f"MLLS with the CE-only predictor (no IW-ERM run): weight MSE "
            f"{_fmt(split_summary['weights_mse']['MLLS'])}, q̂ MSE ×10³ "
            f"{_fmt(split_summary['q_mse']['MLLS'], scale=1e3)}."
        )
        gap_v = split_summary["gap_vs_erm"]["IW-ERM (VRLS)"]
        best_base = max(
            (m for m in method_names if m in ("ERM", "FedAvg", "FedProx")),
            key=lambda m: final[m].mean(),
        )
        gap_best = final["IW-ERM (VRLS)"] - final[best_base]
        gap_line = (
            f"Observed gap: IW-ERM (VRLS) − ERM = {gap_v['mean'] * 100:+.1f} ± "
            f"{gap_v['ci95'] * 100:.1f} points; against the best baseline ({best_base}) "
            f"{gap_best.mean() * 100:+.1f} points (largest single seed "
            f"{gap_best.max() * 100:+.1f}); IW-ERM (true ratios) − IW-ERM (VRLS) = "
            f"{(final['IW-ERM (true ratios)'] - final['IW-ERM (VRLS)']).mean() * 100:+.1f} points."
        )
        if gap_best.mean() >= 0.2:
            gap_line += " This gap is at least the paper's 'up to 20 %'."
        split_title = (
            f"5clients ({cfg.major_frac:.0%} one class per node, train class k + {c // 2}, test "
            f"class k)"
            if split == "5clients"
            else f"dirichlet (per-node train and test marginals ~ Dirichlet({cfg.dirichlet_alpha:g}))"
        )
        lines.append(
            f"## {split_title}\n\n"
            + results.markdown_table(
                [
                    "method",
                    "mean node accuracy",
                    "gap vs ERM (points)",
                    "weight MSE",
                    "q̂ MSE ×10³",
                ],
                table,
            )
            + f"\n{gap_line}\n\n{mlls_row}\n"
        )
        results.plot_curves(
            out_dir / f"acc_{split}.png",
            steps,
            {m: curves[m] for m in method_names},
            xlabel="local gradient steps per node",
            ylabel="mean node test accuracy",
            title=f"vrls-nodes: {used}, {split}",
        )
        if progress:
            print(f"vrls-nodes: {split} done at {time.perf_counter() - t_split:.1f}s", flush=True)
    text = (
        f"# vrls-nodes ({used}, {cfg.num_seeds} seeds)\n\n"
        + "\n".join(f"- {n}" for n in notes)
        + "\n\n"
        + "\n".join(lines)
    )
    return results.write_outputs(
        out_dir,
        experiment="vrls-nodes",
        config=config_to_dict(cfg),
        table=text,
        rows=rows,
        summary=summary,
        wall_time_s=time.perf_counter() - t0,
    )


def _node_weights_per_seed(q_hats: np.ndarray, p_train: np.ndarray) -> np.ndarray:
    """:func:`~lions_jax.vrls.train.node_weights` over a leading seed axis (host-side)."""
    return np.stack([np.asarray(node_weights(q, p)) for q, p in zip(q_hats, p_train, strict=True)])


registry.register(
    registry.Experiment(
        name="vrls-nodes",
        description=(
            "Multi-node IW-ERM under label shift: ERM, FedAvg, FedProx, IW-ERM with BBSE / VRLS "
            "/ true ratios."
        ),
        config_type=VRLSNodesConfig,
        presets=PRESETS,
        run=run,
    )
)
