r"""FLORAL's attacker/defender game as one jitted program: ``make_train(cfg) -> train(key, data)``.

Round 0 sets the initial dual point :math:`\alpha_0`. ``init="zero"`` (default) is
:math:`\alpha_0 = 0`: what the official code runs on all three of its benchmark datasets (Moon,
MNIST 1-vs-7, IMDB use its ``SVM_Baseline`` model, whose ``fit`` only zeroes the duals, so the
game starts from the empty SVM and :math:`T` steps of size η make an early-stopped SVM).
``init="exact"`` solves the dual exactly on the given labels :math:`y`
(:func:`~lions_jax.floral.solve_svm_dual`; the official ``svm_opt.SVM`` path, used for other
datasets, and the paper's description). Each later round :math:`t = 1, \dots, T`
(a ``lax.scan``):

1. the attacker draws :math:`\tilde y_t` = ``flip_labels(key_t, α_{t-1}, y, B)``: ``B`` labels
   among the top-``2B`` support vectors of the current model, flipped from the **given** labels
   (flips never accumulate);
2. the model takes one projected-gradient step on the dual under the flipped labels,
   :math:`\alpha_t = \Pi_{S(\tilde y_t)}(\alpha_{t-1} - \eta_t \nabla D(\alpha_{t-1}; \tilde y_t))`;
3. the predictor :math:`f_t(x) = \sum_i \alpha_{t,i} \ell_i K(x_i, x) + b_t` is evaluated on the
   clean test set, with :math:`\ell = \tilde y_t` (the official code's predictor) and with
   :math:`\ell = y` (the spec's parity switch); both accuracies are recorded every round.

This is the official code's order (``src/core/experiment.py``: the flips drawn at the end of
round ``t - 1`` are the labels of round ``t``'s step). The step size follows the official code
by default (``lr_schedule="official"``: :math:`\eta_t = \eta/10` on rounds with
:math:`t \bmod 100 = 0`, :math:`\eta` otherwise, since the configured rate is re-read every
round); ``"step"`` is the cumulative decay the code's comment suggests and ``"constant"`` no decay.
Not implemented: ``flip_set_budget > 1`` (several flip sets per round; the default is 1).

Everything is pure: ``train`` is jit/vmap-able over keys, over datasets of equal shape (e.g.
different splits or poisonings per seed) and over the attacker budget ``B`` (a traced integer
bounded by the static ``cfg.max_budget``). :func:`make_train_ovr` runs one-vs-rest multi-class
FLORAL (one binary game per class, ``vmap``-ed; prediction by the largest decision value). The
paper's "Algorithm 3, FLORAL-Multi Class" could not be read here; one-vs-rest is an assumption.
"""

import dataclasses
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lions_jax.floral.svm import (
    decision_function,
    flip_labels,
    linear_kernel,
    pgd_step,
    rbf_kernel,
    solve_svm_dual,
    svm_dual,
)

__all__ = [
    "FloralConfig",
    "FloralData",
    "FloralState",
    "kernel_matrices",
    "make_train",
    "make_train_ovr",
    "step_size",
]


class FloralData(NamedTuple):
    """A train/test pair. ``y_train``/``y_test`` are ±1 floats (binary) or class ids (one-vs-rest).

    ``y_train`` are the labels FLORAL is given (possibly poisoned); ``y_test`` are clean.
    """

    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any


class FloralState(NamedTuple):
    """The model after the last round: dual coefficients and the labels of its last step."""

    alpha: jax.Array
    labels: jax.Array


@dataclasses.dataclass(frozen=True, kw_only=True)
class FloralConfig:
    """FLORAL hyperparameters (defaults: the official Moon configuration, ``configs/default.yaml``).

    Attributes:
      kernel: ``"rbf"`` or ``"linear"``.
      gamma: RBF width, or ``"scale"`` for :math:`1/(d\\,\\mathrm{Var}\\,X_{train})` (scikit-learn's rule).
      c: box constraint :math:`C`.
      lr: PGD step size :math:`\\eta`.
      lr_schedule: ``"official"`` (η/``lr_decay`` on rounds ``t % lr_decay_every == 0`` only),
        ``"step"`` (η divided by ``lr_decay`` every ``lr_decay_every`` rounds, cumulatively) or
        ``"constant"``.
      lr_decay, lr_decay_every: see ``lr_schedule``.
      num_rounds: PGD rounds after the exact round 0 (the official 501 rounds = 500 steps).
      budget: flips per round :math:`B` (official Moon: 25 = 5 % of 500).
      max_budget: static bound on a traced ``budget`` passed to ``train`` (default ``budget``).
      candidate_factor: the attacker samples among the top ``candidate_factor * B`` SVs.
      sv_threshold: :math:`\\alpha_i` above it marks a support vector.
      projection: ``"bisection"`` or ``"fixed_point"`` (see ``project_box_hyperplane``).
      init: round 0: ``"zero"`` (:math:`\alpha_0 = 0`, the official benchmark path) or
        ``"exact"`` (the exact SVM on the given labels).
      exact_steps: accelerated projected-gradient steps of the round-0 solve (``init="exact"``).
      bias: ``"all_sv"`` (official) or ``"free_sv"`` (libsvm's KKT bias).
      predict_labels: labels of the reported predictor: ``"flipped"`` (the round's
        :math:`\\tilde y_t`, official) or ``"given"`` (:math:`y`). Both are recorded.
    """

    kernel: Literal["rbf", "linear"] = "rbf"
    gamma: float | str = 0.5
    c: float = 10.0
    lr: float = 1e-4
    lr_schedule: Literal["official", "step", "constant"] = "official"
    lr_decay: float = 10.0
    lr_decay_every: int = 100
    num_rounds: int = 500
    budget: int = 25
    max_budget: int | None = None
    candidate_factor: int = 2
    sv_threshold: float = 1e-5
    projection: Literal["bisection", "fixed_point"] = "bisection"
    init: Literal["zero", "exact"] = "zero"
    exact_steps: int = 2_000
    bias: Literal["all_sv", "free_sv"] = "all_sv"
    predict_labels: Literal["flipped", "given"] = "flipped"

    def __post_init__(self) -> None:
        if self.kernel not in ("rbf", "linear"):
            raise ValueError(f"kernel must be 'rbf' or 'linear', got {self.kernel!r}")
        if isinstance(self.gamma, str) and self.gamma != "scale":
            raise ValueError(f"gamma must be a positive float or 'scale', got {self.gamma!r}")
        if not isinstance(self.gamma, str) and not self.gamma > 0:
            raise ValueError(f"gamma must be a positive float or 'scale', got {self.gamma!r}")
        if not self.c > 0:
            raise ValueError(f"c must be > 0, got {self.c}")
        if not self.lr > 0 or not self.lr_decay > 0 or self.lr_decay_every < 1:
            raise ValueError("lr and lr_decay must be > 0 and lr_decay_every >= 1")
        if self.lr_schedule not in ("official", "step", "constant"):
            raise ValueError(
                f"lr_schedule must be official|step|constant, got {self.lr_schedule!r}"
            )
        if self.init not in ("zero", "exact"):
            raise ValueError(f"init must be zero|exact, got {self.init!r}")
        if self.num_rounds < 0 or self.exact_steps < 1:
            raise ValueError("num_rounds must be >= 0 and exact_steps >= 1")
        if self.budget < 0 or (self.max_budget is not None and self.max_budget < self.budget):
            raise ValueError(
                f"budget must be >= 0 and max_budget >= budget, got {self.budget}, {self.max_budget}"
            )
        if self.candidate_factor < 1:
            raise ValueError(f"candidate_factor must be >= 1, got {self.candidate_factor}")
        if self.projection not in ("bisection", "fixed_point"):
            raise ValueError(f"projection must be bisection|fixed_point, got {self.projection!r}")
        if self.bias not in ("all_sv", "free_sv"):
            raise ValueError(f"bias must be all_sv|free_sv, got {self.bias!r}")
        if self.predict_labels not in ("flipped", "given"):
            raise ValueError(f"predict_labels must be flipped|given, got {self.predict_labels!r}")

    @property
    def bound(self) -> int:
        """The static bound on the attacker budget."""
        return self.budget if self.max_budget is None else self.max_budget


def step_size(cfg: FloralConfig, t: Any) -> jax.Array:
    """The PGD step size of round ``t >= 1`` under ``cfg.lr_schedule``."""
    t = jnp.asarray(t)
    if cfg.lr_schedule == "constant":
        return jnp.asarray(cfg.lr)
    if cfg.lr_schedule == "official":
        return jnp.where(t % cfg.lr_decay_every == 0, cfg.lr / cfg.lr_decay, cfg.lr)
    return cfg.lr / cfg.lr_decay ** (t // cfg.lr_decay_every)


def kernel_matrices(cfg: FloralConfig, x_train: ArrayLike, x_test: ArrayLike) -> tuple[Any, Any]:
    """``(K_train (n, n), K_test (m, n))`` under ``cfg.kernel``/``cfg.gamma`` (traceable)."""
    x_train, x_test = jnp.asarray(x_train), jnp.asarray(x_test)
    if cfg.kernel == "linear":
        return linear_kernel(x_train, x_train), linear_kernel(x_test, x_train)
    if cfg.gamma == "scale":
        gamma = 1.0 / (x_train.shape[1] * jnp.var(x_train))
    else:
        gamma = cfg.gamma
    return rbf_kernel(x_train, x_train, gamma), rbf_kernel(x_test, x_train, gamma)


def _check_data(
    x_train: jax.Array, y_train: jax.Array, x_test: jax.Array, y_test: jax.Array
) -> None:
    if x_train.ndim != 2 or x_test.ndim != 2 or x_train.shape[1] != x_test.shape[1]:
        raise ValueError(
            f"data.x_train, data.x_test: expected (n, d) and (m, d), got {x_train.shape}, {x_test.shape}"
        )
    if y_train.shape != x_train.shape[:1] or y_test.shape != x_test.shape[:1]:
        raise ValueError(
            f"data.y_train, data.y_test: expected ({x_train.shape[0]},) and ({x_test.shape[0]},), "
            f"got {y_train.shape}, {y_test.shape}"
        )


def _check_pm1(y: Any, name: str) -> None:
    """Labels must be ±1; checked when concrete (inside jit the caller is trusted)."""
    if isinstance(y, jax.core.Tracer):
        return
    values = jnp.unique(jnp.asarray(y))
    if not bool(jnp.all(jnp.abs(values) == 1)):
        raise ValueError(f"{name}: labels must be -1 or +1, got values {values.tolist()[:5]}")


def _game(cfg: FloralConfig, key: Any, k_train: Any, k_test: Any, y: Any, budget: Any) -> tuple:
    """Round 0 + ``cfg.num_rounds`` rounds; returns the final state and per-round test decisions."""
    proj = {"method": cfg.projection}
    if cfg.init == "exact":
        alpha0 = solve_svm_dual(y, k_train, cfg.c, num_steps=cfg.exact_steps)
    else:
        alpha0 = jnp.zeros_like(y)

    def decide(alpha: Any, labels: Any) -> jax.Array:
        return decision_function(
            alpha, labels, k_test, k_train, c=cfg.c, bias=cfg.bias, sv_threshold=cfg.sv_threshold
        )

    def record(alpha: Any, labels: Any) -> dict[str, jax.Array]:
        return {
            "decision_flipped": decide(alpha, labels),
            "decision_given": decide(alpha, y),
            "dual": svm_dual(alpha, labels, k_train),
            "num_sv": jnp.sum(alpha > cfg.sv_threshold),
        }

    def round_(alpha: Any, inp: Any) -> tuple[jax.Array, dict[str, jax.Array]]:
        t, key_t = inp
        labels = flip_labels(
            key_t,
            alpha,
            y,
            budget,
            max_budget=cfg.bound,
            candidate_factor=cfg.candidate_factor,
            sv_threshold=cfg.sv_threshold,
        )
        alpha = pgd_step(alpha, labels, k_train, step_size(cfg, t), cfg.c, **proj)
        return alpha, {**record(alpha, labels), "labels": labels}

    ts = jnp.arange(1, cfg.num_rounds + 1)
    keys = jax.random.split(key, cfg.num_rounds)
    alpha, per_round = jax.lax.scan(round_, alpha0, (ts, keys))
    first = {**record(alpha0, y), "labels": y}
    per_round = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, per_round)
    last_labels = per_round.pop("labels")[-1]
    return FloralState(alpha, last_labels), per_round


def make_train(cfg: FloralConfig) -> Any:
    r"""Binary FLORAL: ``train(key, data, budget=None) -> (FloralState, metrics)``.

    ``data`` is a :class:`FloralData` with ±1 labels (``y_train`` possibly poisoned, ``y_test``
    clean); ``budget`` (default ``cfg.budget``) may be traced, bounded by ``cfg.max_budget``.
    ``metrics`` holds arrays over rounds ``0..num_rounds`` (round 0 = the initial point: the exact
    SVM on the given labels for ``init="exact"``, the empty model, accuracy 0, for ``"zero"``): ``test_acc`` (the predictor of ``cfg.predict_labels``), ``test_acc_flipped``,
    ``test_acc_given``, ``dual`` (the dual objective under the round's labels) and ``num_sv``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from lions_jax.floral import FloralConfig, FloralData, make_train
        >>> x = jax.random.normal(jax.random.key(0), (40, 2))
        >>> y = jnp.where(x[:, 0] > 0, 1.0, -1.0)
        >>> cfg = FloralConfig(num_rounds=5, budget=2, exact_steps=200)
        >>> state, m = jax.jit(make_train(cfg))(jax.random.key(1), FloralData(x, y, x, y))
        >>> m["test_acc"].shape
        (6,)
    """

    def train(key: Any, data: Any, budget: Any = None) -> tuple[FloralState, dict[str, jax.Array]]:
        x_train, y_train, x_test, y_test = (jnp.asarray(a) for a in data)
        _check_data(x_train, y_train, x_test, y_test)
        _check_pm1(y_train, "data.y_train")
        _check_pm1(y_test, "data.y_test")
        if x_train.shape[0] < cfg.bound:
            raise ValueError(
                f"cfg.max_budget/budget ({cfg.bound}) exceeds n_train {x_train.shape[0]}"
            )
        dtype = x_train.dtype if jnp.issubdtype(x_train.dtype, jnp.floating) else jnp.float32
        y_train, y_test = y_train.astype(dtype), y_test.astype(dtype)
        k_train, k_test = kernel_matrices(cfg, x_train.astype(dtype), x_test.astype(dtype))
        budget = cfg.budget if budget is None else budget
        state, per_round = _game(cfg, key, k_train, k_test, y_train, budget)
        acc = {
            f"test_acc_{which}": jnp.mean(
                jnp.sign(per_round[f"decision_{which}"]) == y_test, axis=-1
            )
            for which in ("flipped", "given")
        }
        metrics = {
            "test_acc": acc[f"test_acc_{cfg.predict_labels}"],
            **acc,
            "dual": per_round["dual"],
            "num_sv": per_round["num_sv"],
        }
        return state, metrics

    return train


def make_train_ovr(cfg: FloralConfig, num_classes: int) -> Any:
    r"""One-vs-rest multi-class FLORAL: ``train(key, data, budget=None) -> (FloralState, metrics)``.

    ``data.y_train``/``data.y_test`` are integer class ids in ``[0, num_classes)``. Class ``k``'s
    binary game uses labels :math:`+1` for class ``k`` and :math:`-1` otherwise, its own attacker
    (budget ``B`` per class) and key; the prediction is :math:`\arg\max_k f_k(x)`. The returned
    state has a leading class axis; ``metrics`` as in :func:`make_train`, over the joint prediction.
    The paper's Algorithm 3 was not available to check; this one-vs-rest reading is an assumption.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")

    def train(key: Any, data: Any, budget: Any = None) -> tuple[FloralState, dict[str, jax.Array]]:
        x_train, y_train, x_test, y_test = (jnp.asarray(a) for a in data)
        _check_data(x_train, y_train, x_test, y_test)
        if not jnp.issubdtype(y_train.dtype, jnp.integer) or not jnp.issubdtype(
            y_test.dtype, jnp.integer
        ):
            raise ValueError("data.y_train, data.y_test: expected integer class ids")
        dtype = x_train.dtype if jnp.issubdtype(x_train.dtype, jnp.floating) else jnp.float32
        k_train, k_test = kernel_matrices(cfg, x_train.astype(dtype), x_test.astype(dtype))
        budget = cfg.budget if budget is None else budget
        classes = jnp.arange(num_classes)
        y_bin = jnp.where(y_train[None, :] == classes[:, None], 1.0, -1.0).astype(dtype)
        keys = jax.random.split(key, num_classes)
        state, per_round = jax.vmap(lambda k, yb: _game(cfg, k, k_train, k_test, yb, budget))(
            keys, y_bin
        )
        acc = {
            f"test_acc_{which}": jnp.mean(
                jnp.argmax(per_round[f"decision_{which}"], axis=0) == y_test, axis=-1
            )
            for which in ("flipped", "given")
        }
        metrics = {
            "test_acc": acc[f"test_acc_{cfg.predict_labels}"],
            **acc,
            "dual": jnp.sum(per_round["dual"], axis=0),
            "num_sv": jnp.sum(per_round["num_sv"], axis=0),
        }
        return state, metrics

    return train
