r"""The FLORAL paper's neural-network baselines: a small MLP ("NN") and the same MLP with
feature-space PGD adversarial training ("NN-PGD", Madry et al. 2018).

Everything is a pure JAX function: ``make_nn_train(cfg, in_features)`` returns
``train(key, x_train, y_train, x_test, y_test) -> (params, metrics)`` whose whole run (epochs of
shuffled minibatches, the inner PGD attack) is one ``lax.scan``, so seeds and datasets vmap:
``jax.jit(jax.vmap(train))(keys, xs_train, ys_train, xs_test, ys_test)``.

**What the official code does** (github.com/melisilaydabal/floral, ``src/models/nn.py``,
``src/players/player_model.py``, ``src/core/experiment.py``, ``configs/default.yaml``):

* Model: Moon ``Linear(2, 32) - ReLU - Linear(32, 32) - ReLU - Linear(32, 1) - sigmoid``; MNIST
  ``784 - 32 - 10 - 1`` with the same ReLUs; ``torch.nn.BCELoss`` on labels in {0, 1}; float64.
* Optimizer: ``torch.optim.<optim.optimizer>(lr=optim.lr, momentum=0.9)``; the only config in the
  repo says ``SGD``, ``lr = 1e-4``, ``batch_size = 32``, ``num_epochs = 1`` (the SVM settings; the
  NN runs' lr/epochs are not in the repo). Minibatches come from a shuffled ``DataLoader``
  (last, smaller batch kept).
* PGD (``Player_Model.PGD``): the perturbation starts at **zero** (no random start), and each
  iteration does ``delta = clamp(delta + N * alpha * grad_delta(mean BCE), -eps, eps)`` with ``N``
  the batch size, i.e. a **raw-gradient** ascent step on the per-example loss (not the sign of the
  gradient) followed by the L∞ projection. Inputs are not clipped to a data range (the features
  are standardized, not pixels). ``eps = 8/255``, ``alpha = 2/255``; the function's default is 10
  iterations, but the training loop calls it with **5**. The model is then trained on the
  perturbed batch only (no clean term), with ``delta`` detached.

**What is implemented here** (differences are configurable):

* The MLP is :class:`lions_jax.models.MLP` with one output logit; the sigmoid is folded into
  ``optax.sigmoid_binary_cross_entropy`` (the same loss as sigmoid + ``BCELoss``, numerically
  stable). Labels are ±1 floats, mapped to {0, 1} internally; predictions are ``sign(logit)``
  (= ``sigmoid > 0.5``). float32.
* Initialisation: PyTorch's ``nn.Linear`` default (``init="torch"``, as the repo) or
  ``nnx.Linear``'s (``init="lecun"``), built from raw random bits (:func:`make_nn_init`).
* Optimizer ``optax.sgd(lr, momentum=0.9)`` (the repo's) or ``optax.adam``; the defaults
  (``lr = 0.05``, 100 epochs, batch 32) are ours, chosen so the clean MLP fits Moon, because the
  repo's NN values are unknown.
* Each epoch visits the training set in a fresh random order; with static shapes, the last
  partial batch is padded and masked, so every point is used once per epoch and the last batch's
  loss is the mean over its real points, as with PyTorch's ``DataLoader``.
* One random draw per run, ``jax.random.bits(key, (num_init_bits + epochs * n,))``: the initial
  parameters, then one row per epoch whose argsort is that epoch's order. With jax's default
  partitionable threefry the draw is prefix-stable, so the initial parameters and the first
  epochs' orders do not depend on ``cfg.epochs``.
* :func:`pgd_attack`: zero start, ``num_iters`` steps of ``delta += step_size * sign(grad)``
  (Madry's L∞ PGD, ``pgd_update="sign"``, default) or ``delta += step_size * grad``
  (``pgd_update="gradient"``, the repo's rule: the inner loss in training is the *sum* of the
  per-example losses, so its gradient is the repo's ``N * grad(mean)``), each followed by
  ``clip(delta, -eps, eps)``. Defaults ``eps = 8/255``, ``step = 2/255``, 10 iterations, as in the
  spec (set ``pgd_iters=5`` for the repo's training loop).
"""

import dataclasses
import itertools
import math
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.typing import ArrayLike

from lions_jax.models import MLP

__all__ = ["NNConfig", "make_nn_apply", "make_nn_init", "make_nn_train", "pgd_attack"]

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
    "sigmoid": jax.nn.sigmoid,
}
_OPTIMIZERS = ("sgd", "adam")
# Standard deviation of a standard normal truncated to [-2, 2] (jax's variance_scaling constant).
_TRUNCATED_NORMAL_STD = 0.87962566103423978
_PGD_UPDATES = ("sign", "gradient")


@dataclasses.dataclass(frozen=True, kw_only=True)
class NNConfig:
    """Configuration of the NN / NN-PGD baseline.

    Attributes:
      hidden: hidden-layer widths (Moon ``(32, 32)``, MNIST ``(32, 10)`` in the paper's code).
      activation: hidden non-linearity (the repo: ReLU).
      init: parameter initialisation, ``"torch"`` (PyTorch's ``nn.Linear`` default, as the repo)
        or ``"lecun"`` (``nnx.Linear``'s default); see :func:`make_nn_init`.
      optimizer: ``"sgd"`` (with ``momentum``; the repo's) or ``"adam"``.
      learning_rate: optimizer step size.
      momentum: SGD momentum (the repo: 0.9); ignored by Adam.
      epochs: passes over the training set, each in a fresh random order.
      batch_size: minibatch size (clamped to the training-set size); the last partial batch of
        an epoch is kept (padded and masked).
      adversarial: NN-PGD: train on PGD-perturbed minibatches instead of the clean ones.
      pgd_eps: L∞ radius of the feature-space perturbation.
      pgd_step: PGD step size.
      pgd_iters: PGD iterations (the repo's training loop uses 5; its function default is 10).
      pgd_update: ``"sign"`` (Madry's sign-gradient step) or ``"gradient"`` (the repo's raw
        per-example gradient step).
    """

    hidden: tuple[int, ...] = (32, 32)
    activation: Literal["relu", "tanh", "gelu", "sigmoid"] = "relu"
    init: Literal["torch", "lecun"] = "torch"
    optimizer: Literal["sgd", "adam"] = "sgd"
    learning_rate: float = 0.05
    momentum: float = 0.9
    epochs: int = 100
    batch_size: int = 32
    adversarial: bool = False
    pgd_eps: float = 8 / 255
    pgd_step: float = 2 / 255
    pgd_iters: int = 10
    pgd_update: Literal["sign", "gradient"] = "sign"

    def __post_init__(self) -> None:
        if any(int(h) < 1 for h in self.hidden):
            raise ValueError(f"hidden widths must be >= 1, got {self.hidden}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}"
            )
        if self.init not in ("torch", "lecun"):
            raise ValueError(f"init must be 'torch' or 'lecun', got {self.init!r}")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        if self.pgd_update not in _PGD_UPDATES:
            raise ValueError(f"pgd_update must be one of {_PGD_UPDATES}, got {self.pgd_update!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        for name in ("epochs", "batch_size", "pgd_iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.pgd_eps >= 0:
            raise ValueError(f"pgd_eps must be >= 0, got {self.pgd_eps}")
        if not self.pgd_step > 0:
            raise ValueError(f"pgd_step must be > 0, got {self.pgd_step}")


def pgd_attack(
    loss_fn: Callable[..., Any],
    x: ArrayLike,
    y: Any,
    *,
    eps: Any,
    step_size: Any,
    num_iters: int,
    update: Literal["sign", "gradient"] = "sign",
) -> jax.Array:
    r"""L∞ projected gradient ascent on ``loss_fn(x_adv, y)`` over :math:`\|x_{adv} - x\|_\infty \le \varepsilon`.

    Starts at ``delta = 0`` (as the FLORAL code; no random start) and repeats ``num_iters`` times
    ``delta <- clip(delta + step_size * s, -eps, eps)`` with ``s = sign(grad_delta loss)``
    (``update="sign"``, Madry et al.) or ``s = grad_delta loss`` (``update="gradient"``). Works
    with any differentiable scalar ``loss_fn(x, y)``; for a loss that is a *sum* over examples,
    each example's perturbation follows its own loss. The result is ``x + delta`` with the
    gradient stopped (the adversarial input is treated as data, as in adversarial training).
    ``eps`` and ``step_size`` may be traced; ``num_iters`` is static.

    Example:
        >>> import jax.numpy as jnp
        >>> w = jnp.array([1.0, -2.0])
        >>> x_adv = pgd_attack(lambda x, y: -jnp.sum(y * (x @ w)), jnp.zeros((1, 2)),
        ...                    jnp.ones(1), eps=0.1, step_size=0.05, num_iters=3)
        >>> print(x_adv)
        [[-0.1  0.1]]
    """
    if update not in _PGD_UPDATES:
        raise ValueError(f"update must be one of {_PGD_UPDATES}, got {update!r}")
    if int(num_iters) != num_iters or num_iters < 0:
        raise ValueError(f"num_iters must be a non-negative int, got {num_iters}")
    for name, value in (("eps", eps), ("step_size", step_size)):
        if isinstance(value, int | float) and value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    eps = jnp.asarray(eps, x.dtype)
    step_size = jnp.asarray(step_size, x.dtype)
    grad_fn = jax.grad(lambda delta: loss_fn(x + delta, y))

    def body(_: Any, delta: Any) -> Any:
        g = grad_fn(delta)
        direction = jnp.sign(g) if update == "sign" else g
        return jnp.clip(delta + step_size * direction, -eps, eps)

    delta = jax.lax.fori_loop(0, int(num_iters), body, jnp.zeros_like(x))
    return jax.lax.stop_gradient(x + delta)


def _make_model(cfg: NNConfig, in_features: int, key: Any) -> MLP:
    return MLP(
        in_features,
        cfg.hidden,
        1,
        activation=_ACTIVATIONS[cfg.activation],
        rngs=nnx.Rngs(key),
    )


def _check_in_features(in_features: int) -> int:
    if int(in_features) != in_features or in_features < 1:
        raise ValueError(f"in_features must be a positive int, got {in_features}")
    return int(in_features)


def _uniform01(bits: Any) -> jax.Array:
    """Uniform [0, 1) float32 from uint32 random bits (the top 23 bits as the mantissa, as jax)."""
    mantissa = jnp.right_shift(bits, jnp.uint32(9)) | jnp.uint32(0x3F800000)
    return jax.lax.bitcast_convert_type(mantissa, jnp.float32) - 1.0


def make_nn_init(cfg: NNConfig, in_features: int) -> tuple[int, Callable[[Any], Any]]:
    r"""``(num_bits, init)``: ``init(bits) -> params``, the MLP's ``nnx.State`` drawn with ``cfg.init``
    from ``num_bits`` random ``uint32`` words (``jax.random.bits(key, (num_bits,))``).

    * ``"torch"`` (default; the official code's PyTorch ``nn.Linear`` default): kernels and biases
      :math:`\sim U(-1/\sqrt{\text{fan\_in}}, 1/\sqrt{\text{fan\_in}})`;
    * ``"lecun"`` (``nnx.Linear``'s default): kernels LeCun-normal (a standard normal truncated
      at ±2, rescaled to unit variance, times ``1/sqrt(fan_in)``), biases zero.

    The parameters are built from raw bits rather than by ``MLP(..., rngs=nnx.Rngs(key))`` so that
    the whole training run has a single random draw: on CPU, XLA spends about half a second
    compiling each separate threefry call site, and ``nnx.Rngs`` plus per-layer initialisers
    make several.
    """
    in_features = _check_in_features(in_features)
    abstract = nnx.state(nnx.eval_shape(lambda: _make_model(cfg, in_features, 0)))
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(abstract)
    widths = (in_features, *cfg.hidden, 1)
    specs = []  # (shape, dtype, fan_in, is_kernel) per leaf, in flatten order
    for path, leaf in leaves_with_path:
        keys = [getattr(k, "key", getattr(k, "name", None)) for k in path]
        layer = next(k for k in keys if isinstance(k, int))
        specs.append((leaf.shape, leaf.dtype, widths[layer], "kernel" in keys))
    offsets = [0, *itertools.accumulate(math.prod(shape) for shape, *_ in specs)]

    def init(bits: Any) -> Any:
        u = _uniform01(bits)
        if cfg.init == "torch":
            flat = 2.0 * u - 1.0
        else:  # inverse-CDF truncated normal on [-2, 2], as jax.random.truncated_normal
            lo, hi = math.erf(-math.sqrt(2.0)), math.erf(math.sqrt(2.0))
            z = math.sqrt(2.0) * jax.scipy.special.erfinv(lo + (hi - lo) * u)
            flat = jnp.clip(z, -2.0, 2.0) / _TRUNCATED_NORMAL_STD
        leaves = []
        for (shape, dtype, fan_in, is_kernel), lo, hi in zip(specs, offsets[:-1], offsets[1:]):
            scale = 0.0 if (cfg.init == "lecun" and not is_kernel) else 1.0 / math.sqrt(fan_in)
            leaves.append((scale * flat[lo:hi]).reshape(shape).astype(dtype))
        return jax.tree_util.tree_unflatten(treedef, leaves)

    return offsets[-1], init


def make_nn_apply(cfg: NNConfig, in_features: int) -> Callable[[Any, Any], jax.Array]:
    """``apply(params, x) -> logits (n,)`` for the parameters returned by ``make_nn_train``'s ``train``.

    Predict the ±1 label as ``sign(logits)`` (ties to +1: ``jnp.where(logits > 0, 1, -1)``).
    """
    in_features = _check_in_features(in_features)
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: _make_model(cfg, in_features, 0)))

    def apply(params: Any, x: Any) -> jax.Array:
        return nnx.merge(graphdef, params)(jnp.asarray(x, jnp.float32))[..., 0]

    return apply


def _check_xy(name: str, x: jax.Array, y: jax.Array, in_features: int) -> None:
    if x.ndim != 2 or x.shape[1] != in_features or y.shape != x.shape[:1]:
        raise ValueError(
            f"{name}: expected x (n, {in_features}) and y (n,), got {x.shape} and {y.shape} "
            "(vmap over a leading seed axis instead of passing it)"
        )
    if x.shape[0] < 1:
        raise ValueError(f"{name}: empty set")


def make_nn_train(cfg: NNConfig, in_features: int) -> Callable[..., tuple[Any, dict[str, Any]]]:
    """``train(key, x_train, y_train, x_test, y_test) -> (params, metrics)``: NN or NN-PGD.

    Labels are ±1 floats. ``params`` is the model's ``nnx.State`` (use :func:`make_nn_apply`).
    ``metrics``:

    * ``train_loss`` ``(epochs,)``: mean minibatch training loss of each epoch (BCE on the
      PGD-perturbed batches when ``cfg.adversarial``);
    * ``test_accuracy_curve`` ``(epochs,)``: clean test accuracy after each epoch;
    * ``test_accuracy``: final clean test accuracy; ``train_accuracy``: final clean training
      accuracy (against the labels trained on).

    Pure and static-shaped: ``jax.jit(jax.vmap(train))`` runs many seeds (``keys`` of shape
    ``(s,)``), or many datasets at once (every array with a leading axis of size ``s``).

    Example:
        >>> import jax, numpy as np
        >>> x = np.random.default_rng(0).normal(size=(40, 2))
        >>> y = np.where(x[:, 0] > 0, 1.0, -1.0)
        >>> train = make_nn_train(NNConfig(hidden=(8,), epochs=20, batch_size=16), 2)
        >>> keys = jax.random.split(jax.random.key(1), 3)
        >>> _, m = jax.jit(jax.vmap(train, in_axes=(0, None, None, None, None)))(keys, x, y, x, y)
        >>> m["train_loss"].shape, bool((m["test_accuracy"] > 0.9).all())
        ((3, 20), True)
    """
    in_features = _check_in_features(in_features)
    num_init_bits, init = make_nn_init(cfg, in_features)
    apply = make_nn_apply(cfg, in_features)
    if cfg.optimizer == "sgd":
        tx = optax.sgd(cfg.learning_rate, momentum=cfg.momentum or None)
    else:
        tx = optax.adam(cfg.learning_rate)

    def per_example_bce(params: Any, x: Any, y01: Any) -> jax.Array:
        return optax.sigmoid_binary_cross_entropy(apply(params, x), y01)

    def batch_loss(params: Any, x: Any, y01: Any, w: Any) -> jax.Array:
        return jnp.sum(w * per_example_bce(params, x, y01)) / jnp.maximum(jnp.sum(w), 1.0)

    def accuracy(params: Any, x: Any, y: Any) -> jax.Array:
        pred = jnp.where(apply(params, x) > 0, 1.0, -1.0)
        return jnp.mean(pred == y)

    def train(
        key: Any, x_train: Any, y_train: Any, x_test: Any, y_test: Any
    ) -> tuple[Any, dict[str, Any]]:
        x_train = jnp.asarray(x_train, jnp.float32)
        y_train = jnp.asarray(y_train, jnp.float32)
        x_test = jnp.asarray(x_test, jnp.float32)
        y_test = jnp.asarray(y_test, jnp.float32)
        _check_xy("train set", x_train, y_train, in_features)
        _check_xy("test set", x_test, y_test, in_features)
        n = x_train.shape[0]
        bs = min(cfg.batch_size, n)
        num_batches = math.ceil(n / bs)
        pad = num_batches * bs - n
        y01 = (y_train > 0).astype(jnp.float32)
        mask = jnp.concatenate([jnp.ones(n), jnp.zeros(pad)]).reshape(num_batches, bs)

        # All randomness in one draw (compile time, see make_nn_init): the initial parameters,
        # then one row of bits per epoch whose argsort is that epoch's order.
        bits = jax.random.bits(key, (num_init_bits + cfg.epochs * n,), jnp.uint32)
        params = init(bits[:num_init_bits])
        perms = jnp.argsort(bits[num_init_bits:].reshape(cfg.epochs, n), axis=1)
        opt_state = tx.init(params)

        def step(carry: Any, batch: Any) -> tuple[Any, Any]:
            params, opt_state = carry
            idx, w = batch
            xb, yb = x_train[idx], y01[idx]
            if cfg.adversarial:
                # Sum (not mean) of the masked per-example losses: its gradient is each example's
                # own gradient (the repo's N * grad of the mean); the sign step is unaffected.
                xb = pgd_attack(
                    lambda xx, yy: jnp.sum(w * per_example_bce(params, xx, yy)),
                    xb,
                    yb,
                    eps=cfg.pgd_eps,
                    step_size=cfg.pgd_step,
                    num_iters=cfg.pgd_iters,
                    update=cfg.pgd_update,
                )
            loss, grads = jax.value_and_grad(batch_loss)(params, xb, yb, w)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        def epoch(carry: Any, perm: Any) -> tuple[Any, Any]:
            idx = jnp.concatenate([perm, jnp.zeros(pad, perm.dtype)]).reshape(num_batches, bs)
            carry, losses = jax.lax.scan(step, carry, (idx, mask))
            epoch_loss = jnp.sum(losses * mask.sum(axis=1)) / n
            return carry, (epoch_loss, accuracy(carry[0], x_test, y_test))

        (params, _), (losses, test_acc) = jax.lax.scan(epoch, (params, opt_state), perms)
        metrics = {
            "train_loss": losses,
            "test_accuracy_curve": test_acc,
            "test_accuracy": test_acc[-1],
            "train_accuracy": accuracy(params, x_train, y_train),
        }
        return params, metrics

    return train
