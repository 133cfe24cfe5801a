"""Multi-node IW-ERM: the weights and the loss by hand, the scanned run against a host-side loop
of the official protocol (and of FedAvg/FedProx rounds), vmapped vs ``shard_map``-ed nodes, seeds
vmapped in one compilation, and input validation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lions_jax._src.sharding import data_mesh
from lions_jax._src.testing import assert_trees_all_close, count_compilations, raises_invalid
from lions_jax.models import MLP
from lions_jax.models.functional import init_model
from lions_jax.vrls.train import (
    IWERMConfig,
    NodeData,
    communication_per_step,
    iw_loss,
    make_train,
    node_weights,
)

K, N, M, D, C = 8, 24, 12, 4, 3
CFG = IWERMConfig(num_classes=C, hidden=(8,), batch_size=6, num_steps=5, eval_every=2)
PROX = dataclasses.replace(CFG, num_steps=2, local_steps=3, local_lr=0.1, prox_mu=10.0)
KEY = jax.random.key(7)


def _data(seed=0):
    """Labels depend on the inputs (so training makes progress); node k's labels are shifted."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(C, D)) * 2

    def draw(size):
        y = (rng.integers(0, C, size=(K, size)) + np.arange(K)[:, None] % 2) % C
        x = centers[y] + rng.normal(size=(K, size, D))
        return x.astype(np.float32), y.astype(np.int32)

    return NodeData(*draw(N), *draw(M))


DATA = _data()
RATIOS = jnp.asarray(np.random.default_rng(1).uniform(0.2, 3.0, size=(K, C)), jnp.float32)
_TRAIN = {"sync": jax.jit(make_train(CFG)), "prox": jax.jit(make_train(PROX))}


def _host_loop(cfg, key, data, ratios, params):
    """The protocol written out on the host, one node and one step at a time."""
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: MLP(D, cfg.hidden, C, rngs=nnx.Rngs(0))))
    _, loop_key = jax.random.split(key)

    def loss(p, x, y, r):  # the official batch loss: sum of r * CE over the batch / batch size
        ce = optax.softmax_cross_entropy_with_integer_labels(nnx.merge(graphdef, p)(x), y)
        return jnp.sum(r[y] * ce) / y.shape[0]

    def batch(node_key, k):
        idx = jax.random.choice(node_key, N, (cfg.batch_size,), replace=False)
        return data.x_train[k][idx], data.y_train[k][idx], ratios[k]

    grad = jax.jit(jax.grad(loss))
    tx = optax.chain(optax.add_decayed_weights(cfg.weight_decay), optax.adam(cfg.lr))
    opt_state = tx.init(params)
    for t in range(cfg.num_steps):
        node_keys = [jax.random.fold_in(jax.random.fold_in(loop_key, t), k) for k in range(K)]
        if cfg.local_steps == 1:
            grads = [grad(params, *batch(node_keys[k], k)) for k in range(K)]
            mean_grad = jax.tree.map(lambda *g: sum(g) / K, *grads)
            updates, opt_state = tx.update(mean_grad, opt_state, params)
            params = optax.apply_updates(params, updates)
        else:
            local_models = []
            for k in range(K):
                p = params
                for s in range(cfg.local_steps):
                    g = grad(p, *batch(jax.random.fold_in(node_keys[k], s), k))
                    p = jax.tree.map(
                        lambda w, gw, w0: (
                            w - cfg.local_lr * (gw + cfg.weight_decay * w + cfg.prox_mu * (w - w0))
                        ),
                        p,
                        g,
                        params,
                    )
                local_models.append(p)
            params = jax.tree.map(lambda *w: sum(w) / K, *local_models)
    return params


def _init(cfg, key):
    """The documented initialisation: ``init_model`` on the first half of ``split(key)``."""
    return init_model(lambda rngs: MLP(D, cfg.hidden, C, rngs=rngs), jax.random.split(key)[0])[1]


def _dist(a, b):
    return float(
        jnp.sqrt(sum(jnp.sum((x - y) ** 2) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))))
    )


# --- weights and loss ---------------------------------------------------------------------------


def test_node_weights_by_hand():
    q = jnp.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    p = jnp.array([[0.5, 0.5, 0.0], [0.25, 0.25, 0.5]])
    r = node_weights(q, p)  # sum_j q_j = [0.7, 0.8, 0.5]
    np.testing.assert_allclose(r, [[1.4, 1.6, 0.0], [2.8, 3.2, 1.0]], rtol=1e-6)
    assert bool(jnp.all(jnp.isfinite(r)))
    # the gradient through the zero-frequency fallback is finite too
    g = jax.grad(lambda q: jnp.sum(node_weights(q, p)))(q)
    assert bool(jnp.all(jnp.isfinite(g)))


@pytest.mark.parametrize(
    ("q", "p", "match"),
    [
        (jnp.ones(3), jnp.ones(3), "q_hats"),
        (jnp.ones((2, 3)), jnp.ones((3, 2)), "p_train"),
    ],
)
def test_node_weights_shapes(q, p, match):
    with raises_invalid(match):
        node_weights(q, p)


def test_iw_loss():
    loss = jnp.array([1.0, 2.0, 3.0, 4.0])
    labels = jnp.array([0, 1, 1, 2])
    np.testing.assert_allclose(iw_loss(loss, labels, jnp.ones(3)), 2.5, rtol=1e-6)
    r = jnp.array([2.0, 0.5, 0.0])
    np.testing.assert_allclose(iw_loss(loss, labels, r), (2.0 + 1.0 + 1.5 + 0.0) / 4, rtol=1e-6)
    mask = jnp.array([1, 1, 1, 0])  # last example is padding
    np.testing.assert_allclose(iw_loss(loss, labels, r, mask), 4.5 / 3, rtol=1e-6)
    np.testing.assert_allclose(iw_loss(loss, labels, jnp.ones(3), mask), 2.0, rtol=1e-6)
    assert float(iw_loss(loss, labels, r, jnp.zeros(4))) == 0.0
    with raises_invalid("labels"):
        iw_loss(loss, labels[:3], r)
    with raises_invalid("mask"):
        iw_loss(loss, labels, r, jnp.ones(3))


# --- the scanned run against the host loop ------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True], ids=["erm", "iw"])
def test_sync_equals_host_loop(weighted):
    """Ones = plain synchronous gradient averaging (mean over nodes of the mean-CE gradient, one
    Adam step); random ratios check the weighting. Same batches: same documented keys."""
    ratios = RATIOS if weighted else jnp.ones((K, C))
    params, m = _TRAIN["sync"](KEY, DATA, ratios)
    expected = _host_loop(CFG, KEY, DATA, ratios, _init(CFG, KEY))
    # same float32 operations, reduced in a different order (vmap mean vs Python sum): the
    # differences are a few ulps per step, which Adam's normalized steps do not amplify
    assert_trees_all_close(params, expected, rtol=1e-5, atol=1e-6)
    assert m["train_loss"].shape == (CFG.num_steps,)
    assert m["test_acc"].shape == (3, K) and m["mean_test_acc"].shape == (3,)
    np.testing.assert_array_equal(m["eval_step"], [2, 4, 5])
    np.testing.assert_allclose(m["mean_test_acc"], m["test_acc"].mean(axis=1), rtol=1e-6)
    if weighted:  # the ratios matter
        other, _ = _TRAIN["sync"](KEY, DATA, jnp.ones((K, C)))
        assert _dist(params, other) > 1e-3


def test_fedprox_equals_host_loop_and_stays_near_global():
    params0 = _init(PROX, KEY)
    params, m = _TRAIN["prox"](KEY, DATA, RATIOS)
    assert_trees_all_close(
        params, _host_loop(PROX, KEY, DATA, RATIOS, params0), rtol=1e-5, atol=1e-6
    )
    assert m["train_loss"].shape == (PROX.num_steps,)
    assert bool(jnp.all(jnp.isfinite(m["train_loss"])))
    # local_lr * prox_mu = 1: every local step restarts from the global model, so the local
    # models stay within one gradient step of it, unlike FedAvg's drifting local runs
    fedavg = _host_loop(dataclasses.replace(PROX, prox_mu=0.0), KEY, DATA, RATIOS, params0)
    assert _dist(params, params0) < 0.6 * _dist(fedavg, params0)


# --- sharded nodes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cfg_name", "num_devices"), [("sync", 8), ("sync", 4), ("prox", 4)], ids=str
)
def test_sharded_equals_vmapped(cfg_name, num_devices):
    cfg = {"sync": CFG, "prox": PROX}[cfg_name]
    mesh = data_mesh(num_devices, axis_name="nodes")
    sharded, m_sharded = jax.jit(make_train(cfg, mesh=mesh))(KEY, DATA, RATIOS)
    vmapped, m_vmapped = _TRAIN[cfg_name](KEY, DATA, RATIOS)
    # same per-node randomness and arithmetic; only the node average is reduced in another
    # order (per-device means, then an all-reduce), a few float32 ulps per step
    assert_trees_all_close(sharded, vmapped, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m_sharded["train_loss"], m_vmapped["train_loss"], rtol=1e-5)
    np.testing.assert_allclose(m_sharded["test_acc"], m_vmapped["test_acc"], atol=1.01 / M)
    leaf = jax.tree.leaves(sharded)[0]
    assert leaf.sharding.is_fully_replicated


def test_sharded_rejects_indivisible_nodes():
    train = make_train(CFG, mesh=data_mesh(8, axis_name="nodes"))
    data = NodeData(*(a[:6] for a in DATA))
    with raises_invalid("multiple of the 8 devices"):
        train(KEY, data, RATIOS[:6])
    with raises_invalid("axis_name"):
        make_train(CFG, mesh=data_mesh(2))


# --- seeds --------------------------------------------------------------------------------------


def test_vmap_over_seeds_compiles_once():
    train = jax.jit(jax.vmap(make_train(CFG), in_axes=(0, None, None)))
    keys = jax.random.split(jax.random.key(0), 3)
    with count_compilations() as counter:
        params, m = jax.block_until_ready(train(keys, DATA, RATIOS))
    assert counter.count == 1
    with count_compilations() as counter:
        jax.block_until_ready(train(jax.random.split(jax.random.key(1), 3), DATA, RATIOS))
    assert counter.count == 0
    assert m["test_acc"].shape == (3, 3, K)
    assert 0 < _dist(jax.tree.map(lambda a: a[0], params), jax.tree.map(lambda a: a[1], params))
    assert m["train_loss"][:, -1].mean() < m["train_loss"][:, 0].mean()  # it learns


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_classes": 1}, "num_classes"),
        ({"hidden": (8, 0)}, "hidden"),
        ({"lr": 0.0}, "lr"),
        ({"local_lr": -1.0, "local_steps": 2}, "local_lr"),
        ({"weight_decay": -1e-3}, "weight_decay"),
        ({"batch_size": 0}, "batch_size"),
        ({"num_steps": 0}, "num_steps"),
        ({"local_steps": 0}, "local_steps"),
        ({"eval_every": 0}, "eval_every"),
        ({"prox_mu": -1.0, "local_steps": 2}, "prox_mu"),
        ({"prox_mu": 0.1}, "prox_mu must be 0 when local_steps == 1"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        IWERMConfig(**{"num_classes": 3, **kwargs})


def test_config_eval_steps():
    cfg = IWERMConfig(num_classes=2, hidden=(4, 4), num_steps=7, eval_every=3)
    np.testing.assert_array_equal(cfg.eval_steps, [3, 6, 7])
    np.testing.assert_array_equal(dataclasses.replace(cfg, eval_every=10).eval_steps, [7])


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("x_train", DATA.x_train[0], r"data.x_train: expected shape \(K, n, d\)"),
        ("y_train", DATA.y_train[:, :5], r"data.y_train: expected shape \(8, 24\)"),
        ("y_train", DATA.y_train.astype(np.float32), "data.y_train: expected integer"),
        ("x_test", DATA.x_test[..., :2], r"data.x_test: expected shape \(8, m, 4\)"),
        ("y_test", DATA.y_test[:3], r"data.y_test: expected shape \(8, 12\)"),
    ],
)
def test_data_validation(field, value, match):
    with raises_invalid(match):
        make_train(CFG)(KEY, DATA._replace(**{field: value}), RATIOS)


def test_ratios_and_batch_validation():
    with raises_invalid(r"ratios: expected shape \(8, 3\)"):
        make_train(CFG)(KEY, DATA, jnp.ones((K, C + 1)))
    with raises_invalid("batch_size"):
        make_train(dataclasses.replace(CFG, batch_size=N + 1))(KEY, DATA, RATIOS)


def test_communication_per_step():
    comm = communication_per_step(CFG, 100, 5)
    assert comm["unit"] == "step"
    assert comm["upload_per_node"] == comm["download_per_node"] == 100
    assert comm["total_per_step"] == 1000 and comm["ratio_exchange"] == 5 * C
    assert comm["total"] == CFG.num_steps * 1000 + 5 * C
    assert communication_per_step(PROX, 100, 5)["unit"] == "round"
    with pytest.raises(ValueError, match="num_params"):
        communication_per_step(CFG, 0, 5)
    with pytest.raises(ValueError, match="num_nodes"):
        communication_per_step(CFG, 10, 0)
