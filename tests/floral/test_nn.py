"""FLORAL's NN / NN-PGD baselines: the L∞ PGD attack (ascent, feasibility, the closed-form worst
case of a linear model), MLP accuracy on clean moons, vmap over seeds and over datasets against
a Python loop, and config validation.

Compile-time budget: every ``train`` program costs a couple of seconds of XLA CPU compilation, so
the tests share three: clean ``jit(train)`` and ``jit(vmap(train))`` (seeds and datasets), and
NN-PGD ``jit(train)``. Test data and random bits come from numpy, so no jax.random draw compiles.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import make_moons

from lions_jax._src.testing import assert_trees_all_close, raises_invalid
from lions_jax.floral.nn import NNConfig, make_nn_apply, make_nn_init, make_nn_train, pgd_attack

EPS, STEP = 8 / 255, 2 / 255
CLEAN = NNConfig(epochs=60)
ADV = NNConfig(epochs=30, adversarial=True)


def _moons(seed: int):
    """make_moons(300, noise 0.1), standardized, split 200 train / 100 test, labels ±1."""
    x, y = make_moons(300, noise=0.1, random_state=seed)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    y = np.where(y == 1, 1.0, -1.0).astype(np.float32)
    return x[:200], y[:200], x[200:], y[200:]


@functools.cache
def _jitted(cfg: NNConfig, vmapped: bool = False):
    train = make_nn_train(cfg, 2)
    return jax.jit(jax.vmap(train) if vmapped else train)


def _keys(*seeds: int) -> jax.Array:
    """``jax.random.key(s)`` for each seed, stacked, without compiling a split or a vmap."""
    return jax.random.wrap_key_data(np.array([[0, s] for s in seeds], np.uint32))


def _bits(num_bits: int, seed: int) -> np.ndarray:
    """Random uint32 words from numpy (a jax.random draw would cost an extra compilation)."""
    return np.random.default_rng(seed).integers(0, 2**32, num_bits, dtype=np.uint32)


# --- PGD ------------------------------------------------------------------------------------


@pytest.mark.parametrize("update", ["sign", "gradient"])
def test_pgd_increases_the_loss_and_stays_in_the_ball(update):
    cfg = NNConfig(hidden=(16, 16))
    num_bits, init = make_nn_init(cfg, 2)
    apply = make_nn_apply(cfg, 2)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 2)).astype(np.float32)
    y01 = (rng.uniform(size=64) > 0.5).astype(np.float32)
    # a large step for the raw-gradient rule, whose per-example gradients are small
    step = STEP if update == "sign" else 0.5

    @jax.jit
    def run(bits, x, y):
        params = init(bits)

        def loss(xx, yy):
            return jnp.sum(optax.sigmoid_binary_cross_entropy(apply(params, xx), yy))

        def attack(x):
            return pgd_attack(loss, x, y, eps=EPS, step_size=step, num_iters=10, update=update)

        x_adv = attack(x)
        x_none = pgd_attack(loss, x, y, eps=EPS, step_size=STEP, num_iters=0)
        grad_through = jax.grad(lambda x: jnp.sum(attack(x)))(x)
        return x_adv, x_none, loss(x, y), loss(x_adv, y), grad_through

    x_adv, x_none, loss_clean, loss_adv, grad_through = run(_bits(num_bits, 0), x, y01)
    assert float(jnp.max(jnp.abs(x_adv - x))) <= EPS + 1e-6  # float32 rounding of x + δ
    assert float(loss_adv) > float(loss_clean) + 1e-3
    # the adversarial input is data: no gradient flows back through the attack
    assert float(jnp.abs(grad_through).max()) == 0.0
    np.testing.assert_array_equal(np.asarray(x_none), x)  # zero iterations: no perturbation


def test_pgd_reaches_the_linear_closed_form_worst_case():
    """For a logistic loss on a linear model f(x) = w·x + b the loss is monotone in -y·w·x, so the
    worst case in the L∞ ball is x - ε·sign(w)·y; sign-PGD reaches it once iters·step ≥ ε."""
    rng = np.random.default_rng(3)
    w = rng.normal(size=5).astype(np.float32)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = np.where(np.arange(40) % 2 == 0, 1.0, -1.0).astype(np.float32)

    def loss(xx, yy):
        return jnp.sum(jax.nn.softplus(-yy * (xx @ w + 0.3)))

    @jax.jit
    def run(x, y):
        attack = functools.partial(pgd_attack, loss, x, y, eps=EPS, step_size=STEP)
        # 4 · 2/255 = 8/255 exactly (the projection must not overshoot); 3 steps stop short
        return attack(num_iters=4), attack(num_iters=3), attack(num_iters=10, update="gradient")

    x4, x3, x_grad = (np.asarray(a) for a in run(x, y))
    direction = -np.sign(w)[None, :] * y[:, None]
    np.testing.assert_allclose(x4, x + EPS * direction, rtol=0, atol=1e-6)
    np.testing.assert_allclose(x3, x + 3 * STEP * direction, rtol=0, atol=1e-6)
    # the raw-gradient rule moves every coordinate the same way, and stays feasible
    assert np.all(np.abs(x_grad - x) <= EPS + 1e-6)
    np.testing.assert_array_equal(np.sign(x_grad - x), direction)


def test_pgd_rejects_bad_arguments():
    loss = lambda x, y: jnp.sum(x)  # noqa: E731
    x, y = np.zeros((2, 2), np.float32), np.ones(2, np.float32)
    with raises_invalid("num_iters"):
        pgd_attack(loss, x, y, eps=EPS, step_size=STEP, num_iters=-1)
    with raises_invalid("eps"):
        pgd_attack(loss, x, y, eps=-0.1, step_size=STEP, num_iters=1)
    with raises_invalid("update"):
        pgd_attack(loss, x, y, eps=EPS, step_size=STEP, num_iters=1, update="l2")


# --- initialisation -------------------------------------------------------------------------


@pytest.mark.parametrize("init", ["torch", "lecun"])
def test_init_bounds(init):
    cfg = NNConfig(hidden=(32, 10), init=init)
    num_bits, make = make_nn_init(cfg, 8)
    assert num_bits == 8 * 32 + 32 + 32 * 10 + 10 + 10 * 1 + 1
    layers = jax.jit(make)(_bits(num_bits, 0))["layers"]
    for i, fan_in in enumerate((8, 32, 10)):
        kernel = np.asarray(layers[i]["kernel"][...])
        bias = np.asarray(layers[i]["bias"][...])
        bound = 1 / math.sqrt(fan_in) * (1.0 if init == "torch" else 2 / 0.8796256610342398)
        assert np.all(np.abs(kernel) <= bound * (1 + 1e-6)) and kernel.std() > 0.2 * bound
        if init == "torch":
            assert np.all(np.abs(bias) <= bound * (1 + 1e-6))
        else:
            assert np.all(bias == 0)


# --- training -------------------------------------------------------------------------------


def test_mlp_fits_clean_moons():
    data = _moons(0)
    params, m = _jitted(CLEAN)(_keys(0)[0], *data)
    assert float(m["test_accuracy"]) > 0.95
    assert m["train_loss"].shape == m["test_accuracy_curve"].shape == (CLEAN.epochs,)
    assert float(m["train_loss"][-1]) < 0.5 * float(m["train_loss"][0])
    # the returned parameters are the model that was evaluated
    pred = np.where(np.asarray(make_nn_apply(CLEAN, 2)(params, data[2])) > 0, 1.0, -1.0)
    assert np.mean(pred == data[3]) == pytest.approx(float(m["test_accuracy"]))


@pytest.mark.parametrize("axis", ["seeds", "datasets"])
def test_vmap_matches_a_loop(axis):
    """``jit(vmap(train))`` with a leading seed axis on the key and on every data array: over
    seeds (one dataset repeated) and over datasets (a different moons draw per seed), against a
    Python loop over ``jit(train)``. Tolerance: rtol = atol = 1e-5 (float32; on CPU they agree
    bitwise in practice). Both cases share one compiled program."""
    seeds = (1, 2, 3)
    datasets = [_moons(0)] * 3 if axis == "seeds" else [_moons(s) for s in seeds]
    stacked = [np.stack(arrays) for arrays in zip(*datasets, strict=True)]
    keys = _keys(*seeds)
    params_v, metrics_v = _jitted(CLEAN, vmapped=True)(keys, *stacked)
    assert metrics_v["test_accuracy"].shape == (3,)
    for i in range(3):
        params, metrics = _jitted(CLEAN)(keys[i], *datasets[i])
        take = functools.partial(jax.tree.map, lambda a: a[i])  # noqa: B023
        assert_trees_all_close(take(params_v), params, rtol=1e-5, atol=1e-5)
        assert_trees_all_close(take(metrics_v), metrics, rtol=1e-5, atol=1e-5)
    kernels = np.asarray(params_v["layers"][0]["kernel"][...])
    assert not np.allclose(kernels[0], kernels[1])  # different seeds, different models


def test_nn_pgd_trains():
    """NN-PGD (ε = 8/255, step 2/255, 10 sign-PGD iterations) still fits clean moons: the
    standardized features are far larger than ε."""
    _, m = _jitted(ADV)(_keys(0)[0], *_moons(0))
    assert float(m["test_accuracy"]) > 0.95
    assert float(m["train_loss"][-1]) < 0.5 * float(m["train_loss"][0])
    _, m_clean = _jitted(CLEAN)(_keys(0)[0], *_moons(0))
    # the adversarial objective is a worse fit than the clean one (same initial parameters and
    # epoch orders: the random bits are a prefix-stable draw, see make_nn_train)
    assert float(m["train_loss"][ADV.epochs - 1]) > float(m_clean["train_loss"][ADV.epochs - 1])


def test_train_rejects_bad_shapes():
    train = make_nn_train(NNConfig(epochs=1), 2)
    x, y, xt, yt = _moons(0)
    with raises_invalid("train set"):
        train(_keys(0)[0], x[:, :1], y, xt, yt)
    with raises_invalid("test set"):
        train(_keys(0)[0], x, y, xt, yt[:10])
    with raises_invalid("in_features"):
        make_nn_train(NNConfig(), 0)


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("hidden", (32, 0), "hidden"),
        ("activation", "swish", "activation"),
        ("init", "xavier", "init"),
        ("optimizer", "lbfgs", "optimizer"),
        ("learning_rate", 0.0, "learning_rate"),
        ("momentum", 1.0, "momentum"),
        ("epochs", 0, "epochs"),
        ("batch_size", 0, "batch_size"),
        ("pgd_eps", -0.1, "pgd_eps"),
        ("pgd_step", 0.0, "pgd_step"),
        ("pgd_iters", 0, "pgd_iters"),
        ("pgd_update", "l2", "pgd_update"),
    ],
)
def test_config_validation(field, value, match):
    with raises_invalid(match):
        NNConfig(**{field: value})


def test_config_defaults_follow_the_spec():
    cfg = NNConfig()
    assert cfg.hidden == (32, 32) and cfg.activation == "relu" and cfg.batch_size == 32
    assert (cfg.pgd_eps, cfg.pgd_step, cfg.pgd_iters) == (EPS, STEP, 10)
    assert (cfg.optimizer, cfg.momentum) == ("sgd", 0.9)
    with pytest.raises(AttributeError):
        cfg.epochs = 3  # frozen
