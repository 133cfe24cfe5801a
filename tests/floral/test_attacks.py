"""FLORAL's label-poisoning attacks: exact flip counts, uniformity of random flips, the top-alpha
rule of influential flips, the greedy LFA attack against brute force and against random flips on
moons, traced/vmapped flip counts without recompilation, and input validation."""

import itertools
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import make_moons

from lions_jax._src.testing import count_compilations, raises_invalid
from lions_jax.floral import decision_function, rbf_kernel, solve_svm_dual
from lions_jax.floral.attacks import influential_flips, lfa_flips, random_flips

GAMMA, C = 0.5, 10.0
N = 50  # one label length for the cheap attacks, so each jitted function compiles once
_random = jax.jit(random_flips)
_influential = jax.jit(influential_flips)


def _labels(n=N, seed=0):
    return jnp.asarray(np.where(np.random.default_rng(seed).random(n) < 0.5, -1.0, 1.0))


def _flipped(yp, y):
    return np.nonzero(np.asarray(yp != y))[0]


@pytest.fixture(scope="module")
def moons():
    """Standardised moons: 100 training and 100 validation points, RBF gamma 0.5."""
    x, y = make_moons(200, noise=0.2, random_state=0)
    x = (x - x.mean(0)) / x.std(0)
    y = 2.0 * y - 1.0
    xt, xv = x[:100], x[100:]
    return dict(
        y=jnp.asarray(y[:100]),
        y_val=jnp.asarray(y[100:]),
        k=rbf_kernel(xt, xt, GAMMA),
        k_val=rbf_kernel(xv, xt, GAMMA),
    )


def test_random_flips_exact_count_and_only_sign_changes():
    y = _labels()
    for k in (0, 1, 17, N):
        yp = _random(jax.random.key(k), y, k)
        assert yp.shape == y.shape and yp.dtype == y.dtype
        assert len(_flipped(yp, y)) == k
        assert bool(jnp.all(jnp.abs(yp) == 1))


def test_random_flips_uniform_over_subsets():
    """n = 6, k = 2: each of the 15 subsets has probability 1/15 ≈ 0.0667. With 6 000 draws the
    standard error of a frequency is ≈ 0.0032; we allow 0.015 (≈ 4.6 standard errors)."""
    n, k, draws = 6, 2, 6000
    keys = jax.random.split(jax.random.key(123), draws)
    sample = jax.jit(jax.vmap(random_flips, in_axes=(0, None, None)), static_argnums=2)
    flipped = np.asarray(sample(keys, jnp.ones(n), k)) < 0
    assert np.all(flipped.sum(1) == k)
    counts = Counter(tuple(np.flatnonzero(row)) for row in flipped)
    assert set(counts) == set(itertools.combinations(range(n), k))
    freqs = np.array([counts[s] for s in itertools.combinations(range(n), k)]) / draws
    np.testing.assert_allclose(freqs, 1 / 15, atol=0.015)


def test_influential_flips_top_alpha_with_index_tie_break():
    """alpha takes 5 distinct values, so there are many ties: they go to the smaller index."""
    alpha = np.random.default_rng(0).integers(0, 5, N).astype(np.float32)
    y = _labels(seed=2)
    for k in (0, 1, 9, 23, N):
        expected = np.sort(np.argsort(-alpha, kind="stable")[:k])
        np.testing.assert_array_equal(_flipped(_influential(jnp.asarray(alpha), y, k), y), expected)


def test_traced_num_flips_jit_and_vmap_without_recompiling():
    y, alpha, key = _labels(), jnp.linspace(0.0, 1.0, N), jax.random.key(0)
    jax.block_until_ready((_random(key, y, 3), _influential(alpha, y, 3)))
    with count_compilations() as counter:
        out = [(_random(key, y, k), _influential(alpha, y, k)) for k in (0, 7, N)]
        jax.block_until_ready(out)
    assert counter.count == 0
    for k, (yr, yi) in zip((0, 7, N), out):
        assert len(_flipped(yr, y)) == len(_flipped(yi, y)) == k
    ks = jnp.arange(N + 1)
    counts = jnp.sum(jax.vmap(random_flips, in_axes=(None, None, 0))(key, y, ks) != y, axis=1)
    np.testing.assert_array_equal(counts, ks)
    counts = jnp.sum(
        jax.vmap(influential_flips, in_axes=(None, None, 0))(alpha, y, ks) != y, axis=1
    )
    np.testing.assert_array_equal(counts, ks)


def test_lfa_hurts_validation_accuracy_at_least_as_much_as_random(moons):
    """LFA (defaults: 10 stages, all candidates) against the exact SVM retrained on the poisoned
    labels; random flips are averaged over 8 keys. Also: exact flip counts for every rate in one
    vmapped program, and a second call with other rates compiles nothing."""
    m = moons

    @jax.jit
    def lfa_over_rates(ks):  # one program for every number of flips
        return jax.vmap(
            lambda k: lfa_flips(jax.random.key(0), m["y"], m["k"], m["k_val"], m["y_val"], k, c=C)
        )(ks)

    ks = jnp.array([0, 10, 20])
    poisoned = lfa_over_rates(ks)
    np.testing.assert_array_equal(jnp.sum(poisoned != m["y"], axis=1), ks)
    with count_compilations() as counter:
        other = jax.block_until_ready(lfa_over_rates(jnp.array([3, 25, 7])))
    assert counter.count == 0
    np.testing.assert_array_equal(jnp.sum(other != m["y"], axis=1), [3, 25, 7])

    def val_accuracy(labels):
        alpha = solve_svm_dual(labels, m["k"], C, num_steps=3000)
        f = decision_function(alpha, labels, m["k_val"], m["k"])
        return jnp.mean(m["y_val"] * f > 0)

    @jax.jit
    def accuracies(lfa_labels, keys):  # random flips with a traced, vmapped count, as LFA
        rand = jax.vmap(lambda k: jax.vmap(lambda kk: random_flips(kk, m["y"], k))(keys))(
            jnp.array([10, 20])
        )
        return jax.vmap(val_accuracy)(jnp.concatenate([lfa_labels, rand.reshape(16, -1)]))

    acc = np.asarray(accuracies(poisoned, jax.random.split(jax.random.key(7), 8)))
    clean, lfa, rnd = acc[0], acc[1:3], acc[3:].reshape(2, 8).mean(1)
    assert clean > 0.9
    # measured: clean 0.94, LFA 0.68 / 0.57, random 0.93 / 0.92 at 10 / 20 flips
    assert np.all(lfa <= rnd - 0.05), (clean, lfa, rnd)
    assert lfa[1] < clean - 0.1, (clean, lfa, rnd)


def test_lfa_first_stage_is_brute_force_best_single_flip():
    """Tiny case: one flip, one stage, all 16 candidates, re-solves long enough to converge. The
    chosen flip must be the arg-max of (validation error, validation hinge loss) over all 16
    single flips, each SVM solved from scratch to convergence."""
    x, y = make_moons(56, noise=0.3, random_state=1)
    y = jnp.asarray(2.0 * y - 1.0)
    yt, yv = y[:16], y[16:]
    k, kv = rbf_kernel(x[:16], x[:16], GAMMA), rbf_kernel(x[16:], x[:16], GAMMA)
    steps = 1000
    yp = lfa_flips(
        jax.random.key(0), yt, k, kv, yv, 1, c=C,
        num_stages=1, init_steps=steps, resolve_steps=steps,
    )  # fmt: skip
    chosen = np.nonzero(np.asarray(yp != yt))[0]

    @jax.jit
    @jax.vmap
    def brute(j):
        labels = yt.at[j].multiply(-1.0)
        alpha = solve_svm_dual(labels, k, C, num_steps=steps)
        margin = yv * decision_function(alpha, labels, kv, k)
        return jnp.mean(margin <= 0), jnp.mean(jnp.maximum(0.0, 1.0 - margin))

    err, hinge = map(np.asarray, brute(jnp.arange(16)))
    best = np.lexsort((-hinge, -err))
    assert err[best[0]] > err[best[1]] + 1e-6  # a clear winner, not a near-tie
    np.testing.assert_array_equal(chosen, [best[0]])


def test_lfa_candidate_subsampling_and_hinge_score_flip_exactly(moons):
    m = moons
    yp = lfa_flips(
        jax.random.key(3), m["y"], m["k"], m["k_val"], m["y_val"], 12, c=C,
        num_candidates=10, num_stages=3, score="hinge", bias="free_sv",
        resolve_steps=2, refit_steps=2, init_steps=50,
    )  # fmt: skip
    assert int(jnp.sum(yp != m["y"])) == 12


def test_validation_errors(moons):
    m = moons
    y, k, kv, yv, key = m["y"], m["k"], m["k_val"], m["y_val"], jax.random.key(0)
    with pytest.raises(ValueError, match="num_flips"):
        random_flips(key, y, 101)
    with pytest.raises(ValueError, match="num_flips"):
        random_flips(key, y, -1)
    with raises_invalid("num_flips"):
        random_flips(key, y, 2.0)
    with pytest.raises(ValueError, match="y"):
        random_flips(key, jnp.ones((3, 2)), 1)
    with pytest.raises(ValueError, match="y"):
        random_flips(key, jnp.array([1.0, 0.0, -1.0]), 1)
    with pytest.raises(ValueError, match="alpha"):
        influential_flips(jnp.ones(99), y, 1)
    with pytest.raises(ValueError, match="num_flips"):
        influential_flips(jnp.ones(100), y, 200)

    def lfa(**kw):
        args = dict(key=key, y=y, kernel_train=k, kernel_val_train=kv, y_val=yv, num_flips=10)
        args.update(kw)
        return lfa_flips(c=C, **args)

    for kw, name in [
        (dict(kernel_train=k[:, :50]), "kernel_train"),
        (dict(kernel_val_train=kv[:, :50]), "kernel_val_train"),
        (dict(y_val=yv[:50]), "kernel_val_train"),
        (dict(num_flips=101), "num_flips"),
        (dict(num_stages=0), "num_stages"),
        (dict(resolve_steps=-1), "resolve_steps"),
        (dict(num_candidates=0), "num_candidates"),
        (dict(num_candidates=2, num_stages=2), "num_candidates"),
        (dict(max_flips=5), "num_flips"),
        (dict(alpha_init=jnp.zeros(3)), "alpha_init"),
        (dict(accelerated=1), "accelerated"),
    ]:
        with raises_invalid(name):
            lfa(**kw)
    with raises_invalid("score"):
        lfa(score="loss")
    with raises_invalid("bias"):
        lfa(bias="none")
