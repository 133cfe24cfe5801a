r"""The source predictor of VRLS step 1: an MLP trained with the entropy-regularised cross-entropy.

``make_predictor(cfg, in_features, num_classes) -> (train, apply)``:

* ``train(key, x, y, zeta=cfg.zeta) -> params`` — ``cfg.num_steps`` Adam steps on minibatches of
  :math:`\mathrm{CE} - \zeta H(\mathrm{softmax})` (:func:`~lions_jax.vrls.entropy_regularized_ce`),
  one ``lax.scan``; ``zeta`` may be traced, so CE (ζ = 0) and several ζ vmap in one program, and
  so do seeds and nodes. Minibatches are drawn without replacement within a batch, independently
  per step.
* ``apply(params, x) -> logits``.

The MLP is :class:`lions_jax.models.MLP` (ReLU), used functionally. The spec's predictors are
784-256-10 (Fashion-MNIST) and 64-128-10 (digits).
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.typing import ArrayLike

from lions_jax.models import MLP
from lions_jax.models.functional import init_model
from lions_jax.vrls.calibration import entropy_regularized_ce

__all__ = ["PredictorConfig", "make_predictor"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class PredictorConfig:
    """Source predictor.

    Attributes:
      hidden: MLP hidden widths.
      zeta: default entropy weight ζ (0: plain cross-entropy); the official notebook uses 0.1.
      lr: Adam learning rate.
      weight_decay: L2 term added to the gradient (torch ``Adam(weight_decay)`` semantics).
      num_steps: minibatch steps.
      batch_size: minibatch size.
    """

    hidden: tuple[int, ...] = (128,)
    zeta: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 0.0
    num_steps: int = 1_000
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.zeta < 0:
            raise ValueError(f"zeta: expected >= 0, got {self.zeta}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(
                f"lr must be > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}"
            )
        if self.num_steps < 1 or self.batch_size < 1:
            raise ValueError(
                f"num_steps and batch_size must be >= 1, got {self.num_steps}, {self.batch_size}"
            )


def make_predictor(
    cfg: PredictorConfig, in_features: int, num_classes: int
) -> tuple[Callable[..., Any], Callable[[Any, Any], jax.Array]]:
    """``(train, apply)`` for an MLP classifier trained with CE − ζH (see the module docstring)."""
    if in_features < 1 or num_classes < 2:
        raise ValueError(
            f"in_features must be >= 1 and num_classes >= 2, got {in_features}, {num_classes}"
        )

    def make_model(rngs: nnx.Rngs) -> MLP:
        return MLP(in_features, cfg.hidden, num_classes, rngs=rngs)

    graphdef = nnx.graphdef(nnx.eval_shape(lambda: make_model(nnx.Rngs(0))))
    opt = optax.chain(optax.add_decayed_weights(cfg.weight_decay), optax.adam(cfg.lr))

    def apply(params: Any, x: Any) -> jax.Array:
        return nnx.merge(graphdef, params)(jnp.asarray(x))

    def train(key: ArrayLike, x: ArrayLike, y: ArrayLike, zeta: ArrayLike | None = None) -> Any:
        x, y = jnp.asarray(x), jnp.asarray(y)
        if x.ndim != 2 or x.shape[1] != in_features:
            raise ValueError(f"x: expected shape (n, {in_features}), got {x.shape}")
        if y.shape != x.shape[:1] or not jnp.issubdtype(y.dtype, jnp.integer):
            raise ValueError(f"y: expected integer shape {x.shape[:1]}, got {y.dtype}{y.shape}")
        if x.shape[0] < cfg.batch_size:
            raise ValueError(
                f"x: needs at least batch_size={cfg.batch_size} rows, got {x.shape[0]}"
            )
        zeta = cfg.zeta if zeta is None else zeta
        init_key, loop_key = jax.random.split(key)
        params = init_model(make_model, init_key)[1]

        def loss(p: Any, xb: Any, yb: Any) -> jax.Array:
            return entropy_regularized_ce(apply(p, xb), yb, zeta).mean()

        def step(carry: Any, k: Any) -> tuple[Any, jax.Array]:
            p, s = carry
            idx = jax.random.choice(k, x.shape[0], (cfg.batch_size,), replace=False)
            value, grad = jax.value_and_grad(loss)(p, x[idx], y[idx])
            updates, s = opt.update(grad, s, p)
            return (optax.apply_updates(p, updates), s), value

        keys = jax.random.split(loop_key, cfg.num_steps)
        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), keys)
        return params

    return train, apply
