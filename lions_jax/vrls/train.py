r"""Multi-node importance-weighted ERM (IW-ERM) as one jitted program: ``make_train(cfg) -> train``.

**What the official code does** (github.com/zhiyuan-11/VRLS_main @ ``f22292e``,
``runner_target_shift.py``, ``client.py``, ``server.py``, ``utils.py``; see ``specs/vrls.md`` §2):

* :math:`K` nodes; node :math:`k` holds labelled training data from :math:`p_k^{tr}` and an
  unlabelled test sample from :math:`p_k^{te}`. Each node estimates its test label marginal
  :math:`\hat q_k` locally and shares only :math:`\hat q_k` (:math:`|Y|` floats); the weight of
  label :math:`y` at node :math:`k` is
  :math:`r_k(y) = \sum_j \hat q_j(y) / \hat p_k^{tr}(y)`, with :math:`\hat p_k^{tr}` the node's
  empirical training label frequencies (``use_true_ratio`` swaps in the true marginals).
* Training is synchronous gradient averaging: every step each node computes the gradient of its
  importance-weighted minibatch loss (the sum of :math:`r_k(y_i)\,\ell_i` over the batch divided
  by the batch size), the server averages the gradients uniformly over the nodes and takes one
  ``torch.optim.Adam(lr=1e-3, weight_decay=1e-6)`` step, then broadcasts the model. No local
  epochs. Defaults: batch 128 (README: 64), 5 000 steps (README: 500); LeNet / ResNet-18.
* The paper's objective carries node weights :math:`\lambda_k`; they could not be checked here
  (the PDF was not available). The code's weights, used here, are uniform (:math:`\lambda_k = 1`).

**What is implemented here:**

* :func:`node_weights` (the code's :math:`r_k`; a class absent from node :math:`k`'s training
  data gets weight 0, never inf/NaN: such a weight is never used by node :math:`k`'s loss) and
  :func:`iw_loss` (the code's batch loss).
* :func:`make_train` with ``cfg.local_steps == 1`` (default): the official protocol above, with
  the server optimizer ``optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(lr))``,
  which is torch's ``Adam(weight_decay=...)`` (an L2 term added to the gradient before Adam,
  **not** AdamW's decoupled decay). ``train`` takes the ratios as an argument: all ones is
  plain ERM with synchronous gradient averaging, the true ratios are the oracle
  (``use_true_ratio``), estimated ones are IW-ERM.
* ``cfg.local_steps > 1``: the FedAvg (McMahan et al. 2017, ``prox_mu = 0``) and FedProx
  (Li et al. 2020, ``prox_mu > 0``) baselines. Every round each node starts from the global
  :math:`\theta_g`, takes ``local_steps`` plain SGD steps (``local_lr``, plus the same L2
  ``weight_decay`` term) on its importance-weighted minibatch loss
  :math:`+\,\tfrac{\mu}{2}\|\theta - \theta_g\|^2`, and the server sets :math:`\theta_g` to the
  uniform mean of the node models (``cfg.lr`` is then unused; ``num_steps`` counts rounds).
  FedBN (Li et al. 2021, local BatchNorm statistics) is **not** implemented: the model here, a
  :class:`lions_jax.models.MLP`, has no BatchNorm, so FedBN would coincide with FedAvg.
* The model is ``MLP(d, cfg.hidden, num_classes)`` (ReLU) used functionally (``nnx.split`` /
  ``nnx.merge``), with ``optax.softmax_cross_entropy_with_integer_labels``. Nodes hold equal
  numbers of training (and of test) points, because shapes are static: the experiments subsample
  each node to equal sizes.
* Minibatches: at step (or round) :math:`t` node :math:`k` draws ``batch_size`` distinct indices
  (``jax.random.choice(..., replace=False)``, i.e. without replacement within a batch, independently
  across steps, rather than the official ``DataLoader``'s epoch-wise shuffling) with key
  ``fold_in(fold_in(loop_key, t), k)`` (local step :math:`s` of a round folds in :math:`s` too),
  where ``init_key, loop_key = jax.random.split(key)``. The keys depend on the node index only,
  never on the device, so the vmapped and the sharded runs draw the same batches.
* The whole run is one ``lax.scan`` over chunks of ``eval_every`` steps, each followed by an
  evaluation (when ``eval_every`` does not divide ``num_steps``, the last chunk's surplus steps
  are skipped by a ``lax.cond``), so ``jax.jit(jax.vmap(train, in_axes=(0, None, None)))`` runs many seeds.
* Nodes: with ``mesh=None`` they are a ``jax.vmap``-ed leading axis and the average is a mean
  over it. With a device ``mesh`` the whole run is under ``jax.shard_map``: the node axis of the
  data and ratios is split over ``axis_name`` (several nodes per device are vmapped inside the
  shard) and the average is ``jax.lax.pmean`` of the per-device mean (an all-reduce); the
  parameters and the optimizer state are replicated and updated identically on every device.

**Communication** (:func:`communication_per_step`): with ``local_steps == 1``, per step each node
uploads one gradient and downloads one model (``num_params`` floats each); with
``local_steps > 1`` the same per round. Once before training, each node uploads its
:math:`\hat q_k` (:math:`K \cdot |Y|` floats in total).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from lions_jax.vrls.train import IWERMConfig, NodeData, make_train
    >>> k, n, d = 2, 16, 3
    >>> x = jax.random.normal(jax.random.key(0), (k, n, d))
    >>> y = (x[..., 0] > 0).astype(jnp.int32)
    >>> cfg = IWERMConfig(num_classes=2, hidden=(8,), batch_size=4, num_steps=6, eval_every=3)
    >>> params, m = jax.jit(make_train(cfg))(jax.random.key(1), NodeData(x, y, x, y),
    ...                                      jnp.ones((k, 2)))
    >>> m["test_acc"].shape, m["train_loss"].shape
    ((2, 2), (6,))
"""

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import AxisType, Mesh, PartitionSpec
from jax.typing import ArrayLike

from lions_jax._src.sharding import constrain_batch, replicated_sharding
from lions_jax.models import MLP
from lions_jax.models.functional import init_model

try:  # jax.shard_map (jax >= 0.7; 0.10 is installed here)
    _shard_map = jax.shard_map
except AttributeError:  # pragma: no cover - older jax
    from jax.experimental.shard_map import shard_map as _shard_map


__all__ = [
    "IWERMConfig",
    "NodeData",
    "communication_per_step",
    "iw_loss",
    "make_train",
    "node_weights",
]


def _to_varying(tree: Any, axis_name: str) -> Any:
    """Marks a device-invariant pytree as varying over ``axis_name`` (inside ``shard_map``)."""
    if hasattr(jax.lax, "pcast"):  # jax >= 0.8.2
        return jax.lax.pcast(tree, axis_name, to="varying")
    return jax.lax.pvary(tree, axis_name)  # pragma: no cover - older jax


def _replicate(mesh: Mesh, tree: Any) -> Any:
    """Inside ``jit``: asks for ``tree`` to be replicated over ``mesh`` (reshards on explicit meshes)."""
    sharding = replicated_sharding(mesh)
    if AxisType.Explicit in tuple(mesh.axis_types):
        return jax.tree.map(lambda x: jax.sharding.reshard(x, sharding), tree)
    return jax.lax.with_sharding_constraint(tree, sharding)


def node_weights(q_hats: ArrayLike, p_train: ArrayLike) -> jax.Array:
    r"""Per-node importance weights :math:`r_k(y) = \sum_j \hat q_j(y) / \hat p_k^{tr}(y)`.

    The official code's weights (uniform node weights :math:`\lambda_k = 1`; the paper's
    :math:`\lambda_k` could not be checked). With them, the mean over nodes of the node losses
    :math:`\frac{1}{n}\sum_i r_k(y_{k,i})\,\ell_{k,i}` estimates the sum of the nodes' test risks.

    Args:
      q_hats: ``(K, C)`` estimated *test* label marginals of the nodes (rows sum to 1).
      p_train: ``(K, C)`` empirical *training* label frequencies of the nodes.

    Returns:
      ``(K, C)`` weights. Where ``p_train[k, y] == 0`` (class ``y`` absent from node ``k``'s
      training data, so the weight is never used by node ``k``'s loss) the weight is 0, never
      inf or NaN.

    Example:
        >>> import jax.numpy as jnp
        >>> print(node_weights(jnp.array([[0.5, 0.5], [0.5, 0.5]]),
        ...                    jnp.array([[1.0, 0.0], [0.5, 0.5]])))
        [[1. 0.]
         [2. 2.]]
    """
    q_hats, p_train = jnp.asarray(q_hats), jnp.asarray(p_train)
    if q_hats.ndim != 2:
        raise ValueError(f"q_hats: expected a (K, C) array, got shape {q_hats.shape}")
    if p_train.shape != q_hats.shape:
        raise ValueError(
            f"p_train: expected shape {q_hats.shape} (the shape of q_hats), got {p_train.shape}"
        )
    dtype = jnp.result_type(q_hats.dtype, p_train.dtype, jnp.float32)
    q_hats, p_train = q_hats.astype(dtype), p_train.astype(dtype)
    present = p_train > 0
    total = jnp.sum(q_hats, axis=0)
    return jnp.where(present, total / jnp.where(present, p_train, 1.0), 0.0)


def iw_loss(
    per_example_loss: ArrayLike, labels: ArrayLike, r_k: ArrayLike, mask: ArrayLike | None = None
) -> jax.Array:
    r"""Importance-weighted batch loss :math:`\frac{1}{B}\sum_i r_k(y_i)\,\ell_i` (the official one).

    Args:
      per_example_loss: ``(B,)`` losses :math:`\ell_i`.
      labels: ``(B,)`` integer labels :math:`y_i`.
      r_k: ``(C,)`` the node's weights (a row of :func:`node_weights`).
      mask: optional ``(B,)`` 1 for real examples, 0 for padding; the sum then runs over real
        examples and is divided by their number (0 if there are none).

    Example:
        >>> import jax.numpy as jnp
        >>> print(iw_loss(jnp.array([1.0, 2.0]), jnp.array([0, 1]), jnp.array([3.0, 0.5])))
        2.0
    """
    loss, labels, r_k = jnp.asarray(per_example_loss), jnp.asarray(labels), jnp.asarray(r_k)
    if loss.ndim != 1:
        raise ValueError(f"per_example_loss: expected a (B,) array, got shape {loss.shape}")
    if labels.shape != loss.shape:
        raise ValueError(f"labels: expected shape {loss.shape}, got {labels.shape}")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"labels: expected integer class ids, got dtype {labels.dtype}")
    if r_k.ndim != 1:
        raise ValueError(f"r_k: expected a (C,) array, got shape {r_k.shape}")
    weighted = r_k[labels] * loss
    if mask is None:
        return jnp.mean(weighted)
    mask = jnp.asarray(mask)
    if mask.shape != loss.shape:
        raise ValueError(f"mask: expected shape {loss.shape}, got {mask.shape}")
    mask = mask.astype(weighted.dtype)
    return jnp.sum(mask * weighted) / jnp.maximum(jnp.sum(mask), 1.0)


class NodeData(NamedTuple):
    """Per-node train/test sets, the node axis leading.

    Every node holds the same numbers ``n`` and ``m`` of points (static shapes); the experiments
    subsample the nodes to equal sizes. Labels outside ``[0, num_classes)`` are not checked (they
    may be traced).

    Attributes:
      x_train: ``(K, n, d)`` float training inputs.
      y_train: ``(K, n)`` integer training labels.
      x_test: ``(K, m, d)`` float test inputs (each node's own shifted test distribution).
      y_test: ``(K, m)`` integer test labels.
    """

    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any


@dataclasses.dataclass(frozen=True, kw_only=True)
class IWERMConfig:
    """IW-ERM / FedAvg / FedProx hyperparameters (defaults: the official README example).

    Attributes:
      num_classes: number of classes :math:`C`.
      hidden: hidden widths of the MLP.
      lr: server Adam step size (``local_steps == 1``).
      weight_decay: L2 coefficient added to the gradient (torch ``Adam(weight_decay=...)``;
        also added to the local SGD gradient when ``local_steps > 1``).
      batch_size: minibatch size per node per (local) step; at most the node training-set size.
      num_steps: training steps (``local_steps == 1``) or communication rounds (``> 1``).
      local_steps: 1 = the official synchronous gradient averaging with a server Adam step;
        ``> 1`` = FedAvg / FedProx rounds of that many local SGD steps per node.
      local_lr: local SGD step size (``local_steps > 1`` only).
      prox_mu: FedProx coefficient :math:`\\mu` (0 = FedAvg); must be 0 when ``local_steps == 1``
        (the proximal term and its gradient vanish at :math:`\\theta = \\theta_g`).
      eval_every: per-node test accuracy is recorded after every ``eval_every`` steps (rounds)
        and after the last one.
    """

    num_classes: int
    hidden: tuple[int, ...] = (256,)
    lr: float = 1e-3
    weight_decay: float = 1e-6
    batch_size: int = 64
    num_steps: int = 500
    local_steps: int = 1
    local_lr: float = 0.05
    prox_mu: float = 0.0
    eval_every: int = 50

    def __post_init__(self) -> None:
        if int(self.num_classes) != self.num_classes or self.num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {self.num_classes}")
        if not isinstance(self.hidden, Sequence) or any(int(h) != h or h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be a sequence of positive ints, got {self.hidden!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        for name in ("lr", "local_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("weight_decay", "prox_mu"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("batch_size", "num_steps", "local_steps", "eval_every"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value}")
        if self.local_steps == 1 and self.prox_mu != 0:
            raise ValueError(
                f"prox_mu must be 0 when local_steps == 1 (the proximal term is zero at the "
                f"global model), got {self.prox_mu}; use local_steps > 1 for FedProx"
            )

    @property
    def eval_steps(self) -> np.ndarray:
        """The steps (1-based) after which the test accuracy is recorded."""
        steps = list(range(self.eval_every, self.num_steps + 1, self.eval_every))
        if not steps or steps[-1] != self.num_steps:
            steps.append(self.num_steps)
        return np.asarray(steps)


def communication_per_step(
    cfg: IWERMConfig, num_params: int, num_nodes: int
) -> dict[str, int | str]:
    """Floats communicated by :func:`make_train`'s protocol (counts of scalars, not bytes).

    Returns a dict with ``unit`` (``"step"`` for ``local_steps == 1``, ``"round"`` otherwise),
    ``upload_per_node`` (a gradient, or a local model: ``num_params``), ``download_per_node``
    (the global model: ``num_params``), ``total_per_step`` (over all nodes, per unit),
    ``ratio_exchange`` (once, before training: each node uploads its :math:`\\hat q_k`,
    ``num_nodes * num_classes`` floats in total) and ``total`` (the whole run:
    ``cfg.num_steps`` units plus the ratio exchange). Count parameters with
    ``sum(x.size for x in jax.tree.leaves(params))``.

    Example:
        >>> communication_per_step(IWERMConfig(num_classes=10, num_steps=2), 100, 5)["total"]
        2050
    """
    if int(num_params) != num_params or num_params < 1:
        raise ValueError(f"num_params must be a positive int, got {num_params}")
    if int(num_nodes) != num_nodes or num_nodes < 1:
        raise ValueError(f"num_nodes must be a positive int, got {num_nodes}")
    per_step = 2 * int(num_nodes) * int(num_params)
    ratio = int(num_nodes) * cfg.num_classes
    return {
        "unit": "step" if cfg.local_steps == 1 else "round",
        "upload_per_node": int(num_params),
        "download_per_node": int(num_params),
        "total_per_step": per_step,
        "ratio_exchange": ratio,
        "total": cfg.num_steps * per_step + ratio,
    }


def _check_data(cfg: IWERMConfig, data: NodeData, ratios: jax.Array) -> None:
    x_train, y_train, x_test, y_test = data
    if x_train.ndim != 3:
        raise ValueError(f"data.x_train: expected shape (K, n, d), got {x_train.shape}")
    k, n, d = x_train.shape
    if y_train.shape != (k, n):
        raise ValueError(f"data.y_train: expected shape ({k}, {n}), got {y_train.shape}")
    if x_test.ndim != 3 or x_test.shape[0] != k or x_test.shape[2] != d:
        raise ValueError(f"data.x_test: expected shape ({k}, m, {d}), got {x_test.shape}")
    if y_test.shape != x_test.shape[:2]:
        raise ValueError(f"data.y_test: expected shape {x_test.shape[:2]}, got {y_test.shape}")
    for name, y in (("y_train", y_train), ("y_test", y_test)):
        if not jnp.issubdtype(y.dtype, jnp.integer):
            raise ValueError(f"data.{name}: expected integer class ids, got dtype {y.dtype}")
    for name, x in (("x_train", x_train), ("x_test", x_test)):
        if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
            raise ValueError(f"data.{name}: expected a real dtype, got {x.dtype}")
    if k < 1 or n < 1 or x_test.shape[1] < 1:
        raise ValueError(
            f"data: empty node axis or node set, shapes {x_train.shape}, {x_test.shape}"
        )
    if cfg.batch_size > n:
        raise ValueError(f"cfg.batch_size ({cfg.batch_size}) exceeds the node training size n={n}")
    if ratios.shape != (k, cfg.num_classes):
        raise ValueError(f"ratios: expected shape ({k}, {cfg.num_classes}), got {ratios.shape}")


def make_train(cfg: IWERMConfig, *, mesh: Mesh | None = None, axis_name: str = "nodes") -> Any:
    r"""``train(key, data, ratios, params=None) -> (params, metrics)``: IW-ERM over ``K`` nodes.

    ``data`` is a :class:`NodeData`; ``ratios`` is ``(K, C)`` (row ``k`` weights node ``k``'s
    loss: all ones = ERM / FedAvg, the true ratios = the oracle, :func:`node_weights` of the
    estimates = IW-ERM). ``params`` optionally gives the initial model (an ``nnx.State`` of
    ``MLP(d, cfg.hidden, C)``); by default it is ``init_model(..., init_key)`` with
    ``init_key, loop_key = jax.random.split(key)``. Returns the final ``nnx.State`` and
    ``metrics``:

    * ``train_loss`` ``(num_steps,)``: mean over nodes of the importance-weighted minibatch loss
      at each step (before the update; with local steps, also averaged over the local steps and
      without the proximal term);
    * ``test_acc`` ``(num_evals, K)``: each node's accuracy on its own test set after the steps
      in ``eval_step`` ``(num_evals,)`` (every ``cfg.eval_every`` and the last);
    * ``mean_test_acc`` ``(num_evals,)``: the mean over nodes.

    Args:
      cfg: the configuration.
      mesh: ``None`` (nodes are a vmapped axis) or a device mesh with axis ``axis_name``, over
        which the node axis is sharded (``K`` must be a multiple of its size); the run is then
        one ``jax.shard_map``. Both give the same result up to float round-off (the all-reduce
        sums the per-device means in another order).
      axis_name: the mesh axis of the nodes.

    Pure and static-shaped: jit it. With ``mesh=None``,
    ``jax.jit(jax.vmap(train, in_axes=(0, None, None)))(keys, data, ratios)`` runs many seeds.
    """
    if mesh is not None:
        if axis_name not in mesh.axis_names:
            raise ValueError(
                f"axis_name {axis_name!r} is not an axis of the mesh {mesh.axis_names}"
            )
        num_shards = mesh.shape[axis_name]
    else:
        num_shards = 1
    server_tx = optax.chain(optax.add_decayed_weights(cfg.weight_decay), optax.adam(cfg.lr))
    eval_steps = cfg.eval_steps

    def make_model(d: int, rngs: nnx.Rngs) -> MLP:
        return MLP(d, cfg.hidden, cfg.num_classes, rngs=rngs)

    def run(graphdef: Any, params: Any, loop_key: Any, data: Any, ratios: Any, ids: Any) -> Any:
        """The whole run over the local block of nodes; ``average`` over the node axis is global."""
        x_train, y_train, x_test, y_test = data
        n = x_train.shape[1]

        def average(tree: Any) -> Any:
            local = jax.tree.map(lambda a: jnp.mean(a, axis=0), tree)
            return local if mesh is None else jax.lax.pmean(local, axis_name)

        def per_device(tree: Any) -> Any:
            # Under shard_map the replicated parameters are device-invariant; differentiating an
            # invariant input against device-varying data would all-reduce (psum) its gradient
            # implicitly. Marking them varying keeps each device's gradients local, so that the
            # only cross-device reduction is the explicit pmean in `average`.
            return tree if mesh is None else _to_varying(tree, axis_name)

        def node_loss(p: Any, key: Any, x: Any, y: Any, r: Any) -> jax.Array:
            idx = jax.random.choice(key, n, (cfg.batch_size,), replace=False)
            logits = nnx.merge(graphdef, p)(x[idx])
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, y[idx])
            return iw_loss(ce, y[idx], r)

        grad_fn = jax.value_and_grad(node_loss)

        def node_keys(key: Any) -> Any:
            return jax.vmap(lambda i: jax.random.fold_in(key, i))(ids)

        def sync_step(carry: Any, t: Any) -> tuple[Any, jax.Array]:
            p, opt_state = carry
            keys = node_keys(jax.random.fold_in(loop_key, t))
            losses, grads = jax.vmap(grad_fn, in_axes=(None, 0, 0, 0, 0))(
                per_device(p), keys, x_train, y_train, ratios
            )
            updates, opt_state = server_tx.update(average(grads), opt_state, p)
            return (optax.apply_updates(p, updates), opt_state), average(losses)

        def local_run(p_global: Any, key: Any, x: Any, y: Any, r: Any) -> tuple[Any, jax.Array]:
            def local_step(p: Any, s: Any) -> tuple[Any, jax.Array]:
                loss, g = grad_fn(p, jax.random.fold_in(key, s), x, y, r)
                p = jax.tree.map(
                    lambda w, gw, w0: (
                        w - cfg.local_lr * (gw + cfg.weight_decay * w + cfg.prox_mu * (w - w0))
                    ),
                    p,
                    g,
                    p_global,
                )
                return p, loss

            p, losses = jax.lax.scan(local_step, p_global, jnp.arange(cfg.local_steps))
            return p, jnp.mean(losses)

        def fed_round(carry: Any, t: Any) -> tuple[Any, jax.Array]:
            p, opt_state = carry
            keys = node_keys(jax.random.fold_in(loop_key, t))
            local, losses = jax.vmap(local_run, in_axes=(None, 0, 0, 0, 0))(
                per_device(p), keys, x_train, y_train, ratios
            )
            return (average(local), opt_state), average(losses)

        step = sync_step if cfg.local_steps == 1 else fed_round

        def accuracy(p: Any) -> jax.Array:
            logits = jax.vmap(nnx.merge(graphdef, p))(x_test)
            return jnp.mean(jnp.argmax(logits, axis=-1) == y_test, axis=-1)

        def guarded_step(carry: Any, t: Any) -> tuple[Any, jax.Array]:
            # the last chunk may run past num_steps: those steps leave the carry unchanged
            def skip(carry: Any, t: Any) -> tuple[Any, jax.Array]:
                del t
                return carry, jnp.zeros((), jnp.float32)

            return jax.lax.cond(t < cfg.num_steps, step, skip, carry, t)

        def chunk(carry: Any, ts: Any) -> tuple[Any, tuple[jax.Array, jax.Array]]:
            body = step if cfg.num_steps % cfg.eval_every == 0 else guarded_step
            carry, losses = jax.lax.scan(body, carry, ts)
            return carry, (losses, accuracy(carry[0]))

        opt_state = server_tx.init(params) if cfg.local_steps == 1 else None
        num_evals = len(eval_steps)
        ts = jnp.arange(num_evals * cfg.eval_every).reshape(num_evals, cfg.eval_every)
        (params, _), (losses, accs) = jax.lax.scan(chunk, (params, opt_state), ts)
        return params, losses.reshape(-1)[: cfg.num_steps], accs

    if mesh is not None:
        node = PartitionSpec(axis_name)
        rep = PartitionSpec()

        def sharded_run(
            graphdef: Any, params: Any, loop_key: Any, data: Any, ratios: Any, ids: Any
        ) -> Any:
            body = _shard_map(
                lambda *a: run(graphdef, *a),
                mesh=mesh,
                in_specs=(rep, rep, node, node, node),
                out_specs=(rep, rep, PartitionSpec(None, axis_name)),
            )
            data, ratios, ids = constrain_batch((data, ratios, ids), mesh, axis_name)
            params, loop_key = _replicate(mesh, (params, loop_key))
            return body(params, loop_key, data, ratios, ids)

        runner = sharded_run
    else:
        runner = run

    def train(
        key: Any, data: Any, ratios: Any, params: Any = None
    ) -> tuple[Any, dict[str, jax.Array]]:
        x_train, y_train, x_test, y_test = (jnp.asarray(a) for a in data)
        ratios = jnp.asarray(ratios)
        _check_data(cfg, NodeData(x_train, y_train, x_test, y_test), ratios)
        k, _, d = x_train.shape
        if k % num_shards:
            raise ValueError(
                f"data: the number of nodes K={k} must be a multiple of the {num_shards} devices "
                f"on mesh axis {axis_name!r}"
            )
        data = NodeData(x_train.astype(jnp.float32), y_train, x_test.astype(jnp.float32), y_test)
        init_key, loop_key = jax.random.split(key)
        if params is None:
            graphdef, params = init_model(lambda rngs: make_model(d, rngs), init_key)
        else:
            graphdef = nnx.graphdef(nnx.eval_shape(lambda: make_model(d, nnx.Rngs(0))))
        params, losses, accs = runner(
            graphdef, params, loop_key, data, ratios.astype(jnp.float32), jnp.arange(k)
        )
        metrics = {
            "train_loss": losses,
            "test_acc": accs,
            "mean_test_acc": jnp.mean(accs, axis=-1),
            "eval_step": jnp.asarray(eval_steps),
        }
        return params, metrics

    return train
