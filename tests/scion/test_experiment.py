"""scion-gpt: config validation, the pure vmappable train, and a tiny end-to-end run."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lions_jax._src import registry
from lions_jax.models import TransformerLM
from lions_jax.scion import experiment as E

TINY = dict(
    width=16,
    num_layers=1,  # compilation, most of these tests' time, grows with the depth
    num_seeds=2,
    num_steps=4,
    log_every=2,
    checkpoint_every=4,
    eval_windows=4,
    batch_size=4,
    seq_len=16,
)


def test_configs_validate_and_register():
    with pytest.raises(ValueError, match="optimizers: unknown"):
        E.ScionGPTConfig(optimizers=("sgd",))
    with pytest.raises(ValueError, match="head_dim"):
        E.ScionGPTConfig(width=40)
    with pytest.raises(ValueError, match="positive learning rates"):
        E.ScionGPTConfig(adamw_lrs=(0.0,))
    with pytest.raises(ValueError, match="multiples of log_every"):
        E.ScionGPTConfig(transfer_steps=150)
    with pytest.raises(ValueError, match="momentum"):
        E.ScionGPTConfig(momentum=0.0)
    exp = registry.get("scion-gpt")
    assert exp.preset("quick").width == 32 and exp.preset("paper").width == 64


def test_muon_routes_only_hidden_matrices():
    cfg = E.ScionGPTConfig(**TINY)
    lm = E._lm_config(cfg, 16, 259)
    params = nnx.state(nnx.eval_shape(lambda: TransformerLM(lm, rngs=nnx.Rngs(0))))
    dims = {
        jax.tree_util.keystr(k): v
        for k, v in jax.tree_util.tree_flatten_with_path(
            E._muon_dims(params), is_leaf=lambda x: x is None
        )[0]
    }
    muon = {k for k, v in dims.items() if v is not None}
    assert muon and all("embed" not in k and "lm_head" not in k and "norm" not in k for k in muon)
    assert any("embed" in k and v is None for k, v in dims.items())
    assert isinstance(E.make_optimizer(cfg, "muon", 0.01, 4), optax.GradientTransformation)


# ~25 s: `make test-slow` (CI time); test_run_writes_both_experiments runs the same vmapped
# program end to end in the CI.
@pytest.mark.slow
def test_train_is_pure_and_vmaps_over_seeds_and_lrs():
    cfg = E.ScionGPTConfig(**TINY)
    train = jax.jit(jax.vmap(E.make_train(cfg, "scion")))
    keys = jnp.tile(jax.random.split(jax.random.key(0), 2), 2)
    lrs = jnp.repeat(jnp.asarray([2.0**-6, 2.0**-4]), 2)
    _, m1 = train(keys, lrs)
    _, m2 = train(keys, lrs)
    assert m1["val_bpb"].shape == (4, 2)
    np.testing.assert_array_equal(m1["val_bpb"], m2["val_bpb"])
    assert np.isfinite(m1["val_bpb"]).all()
    # same seed, different learning rate -> different run; same lr, different seed too
    assert not np.array_equal(m1["val_bpb"][0], m1["val_bpb"][2])
    assert not np.array_equal(m1["val_bpb"][0], m1["val_bpb"][1])


def test_run_writes_both_experiments(tmp_path):
    cfg = E.ScionGPTConfig(
        **TINY,
        optimizers=("scion", "adamw"),
        scion_lrs=(2.0**-6,),
        adamw_lrs=(1e-3, 3e-3),
        transfer_widths=(16,),
        transfer_optimizers=("adamw",),
        # B's one run is A's adamw program (same width, steps, seeds and grid): the session's
        # compilation cache (tests/conftest.py) compiles it once.
        transfer_steps=TINY["num_steps"],
        transfer_seeds=TINY["num_seeds"],
    )
    out = E.run(cfg, tmp_path, progress=False)
    assert set(out["equal_steps"]) == {"scion", "adamw"}
    assert min(abs(out["equal_steps"]["adamw"]["best_lr"] - lr) for lr in (1e-3, 3e-3)) < 1e-9
    assert len(out["equal_steps"]["scion"]["val_bpb"]["per_seed"]) == 2
    assert out["width_transfer"]["adamw"]["argmin_moves_grid_steps"] == 0  # one width
    table = (tmp_path / "table.md").read_text()
    assert "| scion |" in table and "### B. Width transfer" in table
    assert (tmp_path / "width_transfer.png").exists()
    assert json.loads((tmp_path / "results.json").read_text())["experiment"] == "scion-gpt"
