import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lions_jax._src import checkpoint, results, runner
from lions_jax._src.testing import assert_trees_all_close
from lions_jax._src.train_state import TrainState
from lions_jax.examples import mlp_digits
from lions_jax.models import MLP

TINY = dict(
    num_seeds=2,
    hidden=(16,),
    batch_size=16,
    num_steps=40,
    log_every=10,
    checkpoint_every=20,
    baselines=False,
)


def _init(key):
    k1, k2 = jax.random.split(key)
    params = nnx.state(MLP(3, (4,), 2, rngs=nnx.Rngs(k1)))
    tx = optax.adamw(1e-3)
    return TrainState(
        params=params, opt_state=tx.init(params), key=k2, step=jnp.zeros((), jnp.int32)
    )


def test_round_trip_whole_train_state(tmp_path):
    keys = jax.random.split(jax.random.key(0), 3)
    state = jax.vmap(_init)(keys)
    state = state.replace(step=state.step + 7)
    checkpoint.save(tmp_path / "ck", 7, state, metadata={"note": "x"})
    abstract = jax.eval_shape(jax.vmap(_init), keys)
    step, restored = checkpoint.restore(tmp_path / "ck", abstract)
    assert step == 7
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    assert jax.dtypes.issubdtype(restored.key.dtype, jax.dtypes.prng_key)
    assert jax.tree.map(lambda x: x.dtype, restored) == jax.tree.map(lambda x: x.dtype, state)
    assert_trees_all_close(restored, state, rtol=0, atol=0)
    with checkpoint.Checkpointer(tmp_path / "ck") as ck:
        assert ck.metadata() == {"note": "x"}


def test_max_to_keep_and_latest(tmp_path):
    state = {"w": jnp.arange(3.0)}
    with checkpoint.Checkpointer(tmp_path, max_to_keep=2) as ck:
        for s in (1, 2, 3):
            ck.save(s, {"w": state["w"] * s})
        assert ck.latest_step() == 3
    assert sorted(int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()) == [2, 3]
    _, r = checkpoint.restore(tmp_path, state, step=2)
    np.testing.assert_array_equal(r["w"], [0.0, 2.0, 4.0])


def test_missing_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        checkpoint.restore(tmp_path / "nope", {"w": jnp.zeros(2)})
    assert checkpoint.latest_step(tmp_path / "nope") is None
    with pytest.raises(FileNotFoundError):
        checkpoint.restore(tmp_path, {"w": jnp.zeros(2)})


def _comparable(res):
    return {k: v for k, v in res.items() if k not in ("wall_time_s", "environment")}


def test_interrupted_run_resumes_to_identical_metrics(tmp_path, monkeypatch):
    cfg = mlp_digits.Config(**TINY)
    ref = mlp_digits.run(cfg, tmp_path / "ref", progress=False)

    # Interrupt after the metrics of step 30 are written (the last checkpoint is at step 20),
    # leaving a torn line behind as a kill in the middle of a write would.
    real_append = results.append_metrics

    def append_then_die(path, rows):
        real_append(path, rows)
        if rows[-1]["step"] == 30:
            with open(path, "a") as f:
                f.write('{"step": 40, "train_lo')
            raise KeyboardInterrupt

    monkeypatch.setattr(results, "append_metrics", append_then_die)
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        mlp_digits.run(cfg, out, progress=False)
    assert not results.is_complete(out)
    assert checkpoint.latest_step(out / runner.CHECKPOINT_DIR) == 20
    monkeypatch.setattr(results, "append_metrics", real_append)

    resumed = mlp_digits.run(cfg, out, progress=False)
    assert _comparable(resumed) == _comparable(ref)
    assert results.read_metrics(out / "metrics.jsonl") == results.read_metrics(
        tmp_path / "ref" / "metrics.jsonl"
    )


def test_sigkilled_cli_run_resumes_to_identical_metrics(tmp_path):
    """A real `kill -9` of `lions-jax run`, then the same command again."""
    # The kill lands right after the first checkpoint (step 100): the 500 steps and 5
    # checkpoints still to go take seconds (~12 s on a loaded 2-core machine) against the 20 ms
    # polling below, so the run cannot finish first.
    overrides = [
        "num_steps=600",
        "log_every=50",
        "checkpoint_every=100",
        "hidden=16",
        "batch_size=16",
        "baselines=false",
    ]
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "lions_jax.cli",
        "run",
        "mlp-digits",
        "--seeds",
        "2",
        "--no-progress",
        "--out",
        str(out),
        *overrides,
    ]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while checkpoint_steps(out) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not results.is_complete(out), "run finished before it could be killed"
    assert checkpoint_steps(out) >= 1
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    cfg = mlp_digits.Config(
        num_seeds=2,
        num_steps=600,
        log_every=50,
        checkpoint_every=100,
        hidden=(16,),
        batch_size=16,
        baselines=False,
    )
    ref = mlp_digits.run(cfg, tmp_path / "ref", progress=False)
    resumed = json.loads((out / "results.json").read_text())
    assert _comparable(resumed) == json.loads(json.dumps(_comparable(results.to_jsonable(ref))))
    assert results.read_metrics(out / "metrics.jsonl") == results.read_metrics(
        tmp_path / "ref" / "metrics.jsonl"
    )


def checkpoint_steps(out):
    d = out / runner.CHECKPOINT_DIR
    return len([p for p in d.iterdir() if p.name.isdigit()]) if d.exists() else 0
