"""FLORAL's game loop: equal to a host-side loop over the pure pieces, budgets vmapped in one
program, one-vs-rest, the step-size schedules and input validation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lions_jax._src.testing import count_compilations, raises_invalid
from lions_jax.floral import (
    FloralConfig,
    FloralData,
    decision_function,
    flip_labels,
    kernel_matrices,
    make_train,
    make_train_ovr,
    pgd_step,
    solve_svm_dual,
    step_size,
)

CFG = FloralConfig(num_rounds=8, budget=3, exact_steps=300, lr=1e-2, lr_decay_every=4, init="exact")


def _moons(n_train=60, n_test=40, seed=0):
    from sklearn.datasets import make_moons

    x, y01 = make_moons(n_train + n_test, noise=0.2, random_state=seed)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    y = (2.0 * y01 - 1.0).astype(np.float32)
    return FloralData(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def _host_loop(cfg, key, data):
    """The official loop written out on the host, one round at a time, from the pure pieces."""
    k_train, k_test = kernel_matrices(cfg, data.x_train, data.x_test)
    y = jnp.asarray(data.y_train)
    alpha = solve_svm_dual(y, k_train, cfg.c, num_steps=cfg.exact_steps)
    accs = [np.mean(np.sign(decision_function(alpha, y, k_test, k_train)) == data.y_test)]
    for t, key_t in enumerate(jax.random.split(key, cfg.num_rounds), start=1):
        labels = flip_labels(key_t, alpha, y, cfg.budget)
        lr = cfg.lr / cfg.lr_decay if t % cfg.lr_decay_every == 0 else cfg.lr
        alpha = pgd_step(alpha, labels, k_train, lr, cfg.c)
        d = decision_function(alpha, labels, k_test, k_train)
        accs.append(np.mean(np.sign(d) == data.y_test))
    return alpha, labels, np.array(accs)


def test_scan_equals_host_loop(x64):
    data = jax.tree.map(lambda a: np.asarray(a, np.float64), _moons())
    key = jax.random.key(3)
    state, m = jax.jit(make_train(CFG))(key, data)
    alpha, labels, accs = _host_loop(CFG, key, data)
    # same operations in the same order; differences are float64 round-off in jit vs eager
    np.testing.assert_allclose(state.alpha, alpha, atol=1e-9)
    np.testing.assert_array_equal(state.labels, labels)
    np.testing.assert_allclose(m["test_acc"], accs, atol=1e-6)  # float32 mean of 0/1
    assert m["test_acc"].shape == (CFG.num_rounds + 1,)
    # the attacker really moved the model: labels differ from the given ones in exactly B places
    assert int(np.sum(np.asarray(state.labels) != data.y_train)) == CFG.budget


def test_budget_zero_is_pgd_on_the_given_labels(x64):
    data = jax.tree.map(lambda a: np.asarray(a, np.float64), _moons())
    cfg = dataclasses.replace(CFG, budget=0, exact_steps=3000)
    state, m = jax.jit(make_train(cfg))(jax.random.key(0), data)
    # round 0 is (numerically) optimal, so PGD steps on the same labels barely move it and the
    # dual never increases (step 1e-2 < 2/L, L = lambda_max(K) ~ 25 here)
    assert np.all(np.diff(np.asarray(m["dual"])) <= 1e-9)
    np.testing.assert_array_equal(m["test_acc_flipped"], m["test_acc_given"])
    np.testing.assert_array_equal(state.labels, data.y_train)


def test_budgets_vmap_in_one_program():
    data = _moons()
    cfg = dataclasses.replace(CFG, max_budget=6)
    train = jax.jit(jax.vmap(make_train(cfg), in_axes=(None, None, 0)))
    key = jax.random.key(1)
    budgets = jnp.array([0, 3, 6])
    state, m = train(key, data, budgets)
    flips = np.sum(np.asarray(state.labels) != data.y_train[None], axis=1)
    np.testing.assert_array_equal(flips, [0, 3, 6])
    # a traced budget gives what a static one gives
    _, single = jax.jit(make_train(dataclasses.replace(CFG, budget=3)))(key, data)
    np.testing.assert_allclose(m["test_acc"][1], single["test_acc"], atol=1e-6)
    with count_compilations() as counter:
        train(key, data, jnp.array([1, 2, 4]))
    assert counter.count == 0


def test_seeds_and_datasets_vmap():
    datas = [_moons(seed=s) for s in range(3)]
    stacked = jax.tree.map(lambda *a: np.stack(a), *datas)
    keys = jax.random.split(jax.random.key(0), 3)
    _, m = jax.jit(jax.vmap(make_train(CFG)))(keys, stacked)
    assert m["test_acc"].shape == (3, CFG.num_rounds + 1)
    _, m1 = jax.jit(make_train(CFG))(keys[1], datas[1])
    np.testing.assert_allclose(m["test_acc"][1], m1["test_acc"], atol=1e-6)


def test_one_vs_rest():
    from sklearn.datasets import make_blobs
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.svm import SVC

    x, y = make_blobs(120, centers=3, cluster_std=1.5, random_state=0)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    data = FloralData(x[:80], y[:80].astype(np.int32), x[80:], y[80:].astype(np.int32))
    cfg = dataclasses.replace(CFG, budget=2)
    state, m = jax.jit(make_train_ovr(cfg, 3))(jax.random.key(0), data)
    assert state.alpha.shape == (3, 80)
    assert m["test_acc"].shape == (cfg.num_rounds + 1,)
    # round 0 is the exact one-vs-rest SVM (all-SV bias, as the official code; libsvm's bias
    # differs slightly): its accuracy is scikit-learn's one-vs-rest SVC's within 5 points
    ref = OneVsRestClassifier(SVC(C=cfg.c, gamma=cfg.gamma)).fit(data.x_train, data.y_train)
    assert abs(float(m["test_acc"][0]) - ref.score(data.x_test, data.y_test)) <= 0.05
    # each class's binary game flips exactly B of its own +-1 labels
    y_bin = np.where(data.y_train[None] == np.arange(3)[:, None], 1.0, -1.0)
    np.testing.assert_array_equal(np.sum(np.asarray(state.labels) != y_bin, axis=1), [2, 2, 2])


def test_step_size_schedules():
    t = jnp.arange(1, 9)
    base = FloralConfig(lr=1.0, lr_decay=10.0, lr_decay_every=4)
    np.testing.assert_allclose(step_size(base, t), [1, 1, 1, 0.1, 1, 1, 1, 0.1])
    step = dataclasses.replace(base, lr_schedule="step")
    np.testing.assert_allclose(step_size(step, t), [1, 1, 1, 0.1, 0.1, 0.1, 0.1, 0.01])
    const = dataclasses.replace(base, lr_schedule="constant")
    np.testing.assert_allclose(step_size(const, t), np.ones(8))


def test_bad_inputs():
    data = _moons()
    train = make_train(CFG)
    with pytest.raises(ValueError, match="-1 or \\+1"):
        train(jax.random.key(0), data._replace(y_train=(data.y_train > 0).astype(np.float32)))
    with pytest.raises(ValueError, match="y_train"):
        train(jax.random.key(0), data._replace(y_train=data.y_train[:-1]))
    with pytest.raises(ValueError, match="x_test"):
        train(jax.random.key(0), data._replace(x_test=data.x_test[:, :1]))
    with pytest.raises(ValueError, match="c must be > 0"):
        FloralConfig(c=0.0)
    with pytest.raises(ValueError, match="max_budget"):
        FloralConfig(budget=5, max_budget=2)
    with raises_invalid("gamma"):
        FloralConfig(gamma="auto")
    with raises_invalid("lr_schedule"):
        FloralConfig(lr_schedule="cosine")
    with pytest.raises(ValueError, match="num_classes"):
        make_train_ovr(CFG, 1)
    with pytest.raises(ValueError, match="integer class ids"):
        make_train_ovr(CFG, 2)(jax.random.key(0), data)
    with pytest.raises(ValueError, match="c: expected"):
        from lions_jax.floral import project_box_hyperplane

        project_box_hyperplane(jnp.ones(4), jnp.ones(4), jnp.ones(3))
