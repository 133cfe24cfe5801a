"""LION experiments: data generators, configs, and tiny end-to-end runs (numbers: see the report)."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lions_jax._src import registry, results
from lions_jax.lion import experiment as E


def test_mirror_batch_structure():
    perm = jnp.asarray(np.random.default_rng(0).permutation(7))
    for n in (8, 9):
        x = np.asarray(E.mirror_batch(jax.random.key(0), perm, 5, n))
        assert x.shape == (5, n) and x.dtype == np.int32
        for i in range(n // 2):
            np.testing.assert_array_equal(x[:, n - 1 - i], np.asarray(perm)[x[:, i]])


def test_markov_batch_follows_its_table():
    v = 5
    table = np.full((v, v, v), -np.inf, np.float32)
    for a in range(v):
        for b in range(v):
            table[a, b, (a + b) % v] = 0.0  # deterministic: c = a + b mod v
    x = np.asarray(E.markov_batch(jax.random.key(1), jnp.asarray(table), 4, 12))
    assert x.shape == (4, 12)
    np.testing.assert_array_equal(x[:, 2:], (x[:, :-2] + x[:, 1:-1]) % v)


def test_configs_validate():
    with pytest.raises(ValueError, match="variants: unknown"):
        E.DigitsConfig(variants=("softmax", "linear"))
    with pytest.raises(ValueError, match="tasks: unknown"):
        E.MLMConfig(tasks=("copy",))
    with pytest.raises(ValueError, match="multiples of log_every"):
        E.DigitsConfig(num_steps=150)
    with pytest.raises(ValueError, match="mask_prob"):
        E.MLMConfig(mask_prob=0.0)
    exps = registry.all_experiments()
    assert {"lion-digits", "lion-mlm"} <= set(exps)


@pytest.mark.slow  # ~50 s on 2 cores (CI time); purity/vmap of make_train is also tested per method
def test_digits_train_is_pure_and_vmaps(variant="s-natural"):
    cfg = E.DigitsConfig(
        num_steps=4,
        log_every=2,
        checkpoint_every=2,
        batch_size=8,
        d_model=16,
        num_layers=1,
        num_heads=2,
    )
    train = jax.jit(jax.vmap(E.make_digits_train(cfg, variant)))
    keys = jax.random.split(jax.random.key(0), 2)
    _, m1 = train(keys)
    _, m2 = train(keys)
    assert m1["test_accuracy"].shape == (2, 2)
    np.testing.assert_array_equal(m1["train_loss"], m2["train_loss"])
    assert not np.array_equal(m1["train_loss"][0], m1["train_loss"][1])


@pytest.mark.slow  # ~60 s of compilation on 2 cores: `make test-slow` (CI time, stop 19)
def test_run_digits_and_mlm_write_results(tmp_path):
    dcfg = E.DigitsConfig(
        num_seeds=2,
        variants=("softmax",),
        num_steps=4,
        log_every=2,
        checkpoint_every=2,
        batch_size=8,
        d_model=16,
        num_layers=1,
        num_heads=2,
    )
    out = E.run_digits(dcfg, tmp_path / "digits", progress=False)
    assert set(out["test_accuracy"]) == {"patches/softmax"}
    assert (tmp_path / "digits" / "test_accuracy_patches.png").exists()
    assert "| softmax |" in (tmp_path / "digits" / "table.md").read_text()
    rows = results.read_metrics(tmp_path / "digits" / "metrics.jsonl")
    assert [r["run"] for r in rows] == ["patches/softmax"] * 2

    mcfg = E.MLMConfig(
        num_seeds=2,
        variants=("s",),
        tasks=("mirror",),
        seq_len=16,
        vocab_size=8,
        d_model=16,
        num_layers=1,
        num_heads=2,
        num_steps=4,
        log_every=2,
        checkpoint_every=2,
        batch_size=4,
        eval_size=8,
    )
    out = E.run_mlm(mcfg, tmp_path / "mlm", progress=False)
    acc = out["masked_accuracy"]["mirror/s"]
    assert len(acc["per_seed"]) == 2 and all(0 <= a <= 1 for a in acc["per_seed"])
    saved = json.loads((tmp_path / "mlm" / "results.json").read_text())
    assert saved["masked_accuracy"]["mirror/s"]["mean"] == pytest.approx(acc["mean"])
    # the same run folder resumes to the same numbers
    again = E.run_mlm(dataclasses.replace(mcfg), tmp_path / "mlm", progress=False)
    assert again["masked_accuracy"] == out["masked_accuracy"]
