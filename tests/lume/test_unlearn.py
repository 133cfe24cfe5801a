"""The unlearning loop: every algorithm moves the weights at every step, evaluations line up,
seeds vmap, configs validate."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lions_jax._src.testing import raises_invalid
from lions_jax.lume import experiment as E
from lions_jax.lume.losses import LOSSES
from lions_jax.lume.model import evaluate, make_train_target
from lions_jax.lume.unlearn import (
    UnlearnArrays,
    UnlearnConfig,
    UnlearnHparams,
    group_batch_sizes,
    make_unlearn,
    steps_per_epoch,
)

TINY = E.LumeConfig(
    num_seeds=1,
    docs_per_task=1,
    num_facts=8,
    vocab_size=4096,
    d_model=16,
    num_layers=1,
    pretrain_steps=3,
    finetune_steps=3,
    epochs=2,
    batch_size=4,
)


@pytest.fixture(scope="module")
def setup():
    prep = E.prepare(TINY)
    graphdef, train = make_train_target(TINY.target_config(), prep.tokenizer.vocab_size)
    s = prep.streams
    params, _ = jax.jit(train)(jax.random.key(0), s["pretrain"], s["finetune"], s["replay"])
    return prep, graphdef, params


@pytest.fixture(scope="module")
def runs(setup):
    prep, graphdef, params = setup
    # one compilation for all algorithms: they are traced hyperparameters
    base = UnlearnConfig(learning_rate=1e-2, epochs=2, batch_size=4)
    unlearn = jax.jit(make_unlearn(base, graphdef, max_new_tokens=prep.max_new_tokens))
    out = {"default": unlearn(jax.random.key(1), params, params, prep.unlearn)}
    for alg in LOSSES:
        h = UnlearnHparams.from_config(dataclasses.replace(base, algorithm=alg))
        out[alg] = unlearn(jax.random.key(1), params, params, prep.unlearn, h)
    return out


def test_default_hparams_come_from_the_config(runs):
    """``hparams=None`` runs the config's own algorithm (``npo_gd`` by default)."""
    np.testing.assert_allclose(runs["default"][1].losses, runs["npo_gd"][1].losses, rtol=1e-6)


@pytest.mark.parametrize("alg", LOSSES)
def test_every_step_changes_the_weights(setup, runs, alg):
    """Guards against open-unlearning#161 (an evaluation of unchanged weights)."""
    prep, _, params = setup
    new, log = runs[alg]
    steps = steps_per_epoch(sum(g.tokens.shape[0] for g in prep.unlearn.forget), 4)
    assert log.losses.shape == (2, steps) and log.update_norms.shape == (2, steps)
    assert np.all(np.asarray(log.update_norms) > 0)
    delta = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), new, params)
    assert max(jax.tree.leaves(delta)) > 1e-4
    assert np.all(np.isfinite(np.asarray(log.losses)))


def test_first_evaluation_is_the_target(setup, runs):
    prep, graphdef, params = setup
    _, log = runs["ga"]
    assert log.evals.doc_logprobs.shape[0] == 3  # before + 2 epochs
    direct = jax.jit(
        lambda p: evaluate(graphdef, p, prep.unlearn.eval, max_new_tokens=prep.max_new_tokens)
    )(params)
    before = jax.tree.map(lambda x: x[0], log.evals)
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(direct)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def test_algorithms_differ(runs):
    """GA and NPO must not produce identical evaluations (open-unlearning#161)."""
    ga, npo = runs["ga"][1].evals, runs["npo"][1].evals
    assert not np.allclose(np.asarray(ga.doc_logprobs[-1]), np.asarray(npo.doc_logprobs[-1]))
    # GA raises the forget loss: the members' mean log-prob falls
    lp = np.asarray(ga.doc_logprobs)
    assert lp[-1].sum() < lp[0].sum()


@pytest.fixture(scope="module")
def unlearn_fn(setup):
    prep, graphdef, _ = setup
    base = UnlearnConfig(learning_rate=1e-2, epochs=2, batch_size=4)
    return base, make_unlearn(base, graphdef, max_new_tokens=prep.max_new_tokens)


def test_vmap_over_seeds_matches_single_runs(setup, runs, unlearn_fn):
    prep, _, params = setup
    base, unlearn = unlearn_fn
    h = UnlearnHparams.from_config(dataclasses.replace(base, algorithm="npo_gd"))
    keys = jnp.stack([jax.random.key(1), jax.random.key(4)])
    stacked = jax.tree.map(lambda x: jnp.stack([x, x]), params)
    _, vlog = jax.jit(jax.vmap(unlearn, in_axes=(0, 0, 0, None, None)))(
        keys, stacked, stacked, prep.unlearn, h
    )
    np.testing.assert_allclose(vlog.losses[0], runs["npo_gd"][1].losses, rtol=1e-4, atol=1e-5)
    assert not np.allclose(vlog.losses[0], vlog.losses[1])  # the seeds differ


def test_hparams_from_config():
    for i, alg in enumerate(LOSSES):
        h = UnlearnHparams.from_config(UnlearnConfig(algorithm=alg, learning_rate=3e-4, beta=0.2))
        assert int(h.algorithm) == i
        assert float(h.learning_rate) == pytest.approx(3e-4) and float(h.beta) == pytest.approx(0.2)


def test_config_validation():
    with raises_invalid("algorithm"):
        UnlearnConfig(algorithm="rmu")
    with raises_invalid("epochs"):
        UnlearnConfig(epochs=0)
    with raises_invalid("learning_rate"):
        UnlearnConfig(learning_rate=0.0)
    with raises_invalid("lam"):
        UnlearnConfig(lam=-1.0)
    with raises_invalid("algorithms"):
        dataclasses.replace(TINY, algorithms=("ga", "nope"))


@given(counts=st.lists(st.integers(0, 200), min_size=1, max_size=4), batch=st.integers(1, 64))
def test_group_batch_sizes(counts, batch):
    if sum(counts) == 0:
        with raises_invalid("counts"):
            group_batch_sizes(tuple(counts), batch)
        return
    sizes = group_batch_sizes(tuple(counts), batch)
    live = sum(c > 0 for c in counts)
    assert sum(sizes) == max(batch, live)
    assert all((s >= 1) == (c > 0) for s, c in zip(sizes, counts))
    if batch * min(c for c in counts if c) >= sum(counts):  # no group forced up to one row
        total = sum(counts)
        assert all(abs(s - batch * c / total) < 1 for s, c in zip(sizes, counts))


def test_empty_group_is_rejected(setup):
    prep, graphdef, params = setup
    empty = jax.tree.map(lambda x: x[:0], prep.unlearn.retain[1])
    arrays = UnlearnArrays(prep.unlearn.forget, (prep.unlearn.retain[0], empty), prep.unlearn.eval)
    unlearn = make_unlearn(UnlearnConfig(), graphdef, max_new_tokens=prep.max_new_tokens)
    with raises_invalid("arrays"):
        unlearn(jax.random.key(0), params, params, arrays)


def test_lora_unlearning_is_low_rank_and_leaves_the_rest(setup):
    """LoRA (rank 2): only the attention / MLP kernels move, each by a rank <= 2 matrix."""
    prep, graphdef, params = setup
    cfg = UnlearnConfig(algorithm="gd", learning_rate=1e-2, epochs=1, batch_size=4, lora_rank=2)
    new, log = jax.jit(make_unlearn(cfg, graphdef, max_new_tokens=prep.max_new_tokens))(
        jax.random.key(2), params, params, prep.unlearn
    )
    assert np.all(np.asarray(log.update_norms) > 0)
    moved = 0
    for (path, a), b in zip(
        jax.tree_util.tree_leaves_with_path(params), jax.tree_util.tree_leaves(new)
    ):
        delta = np.asarray(b - a, np.float64)
        if "kernel" in jax.tree_util.keystr(path):
            sv = np.linalg.svd(delta, compute_uv=False)
            assert sv[2:].max(initial=0.0) <= 1e-4 * max(sv[0], 1e-12)
            moved += sv[0] > 0
        else:  # embeddings and norms are frozen
            np.testing.assert_array_equal(delta, 0.0)
    assert moved > 0


def test_lora_init_and_merge():
    from lions_jax.lume.lora import lora_init, lora_merge

    params = {"a": {"kernel": jnp.ones((6, 4))}, "emb": {"embedding": jnp.ones((9, 4))}}
    ad = lora_init(jax.random.key(0), params, rank=3)
    assert list(ad) == ["['a']['kernel']"] and ad["['a']['kernel']"].b.shape == (3, 4)
    same = lora_merge(params, ad, 2.0)
    for x, y in zip(jax.tree.leaves(same), jax.tree.leaves(params)):
        np.testing.assert_array_equal(x, y)  # b = 0: the adapted model starts at the target
    with raises_invalid("rank"):
        lora_init(jax.random.key(0), params, rank=5)
    with raises_invalid("target"):
        lora_init(jax.random.key(0), params, rank=1, target=lambda p, x: False)
    with raises_invalid("adapters"):
        lora_merge({"b": jnp.ones(2)}, ad, 1.0)
    with raises_invalid("lora_rank"):
        UnlearnConfig(lora_rank=-1)
