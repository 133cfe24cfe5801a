"""Replay buffer: ring semantics against a Python reference, (members, batch) sampling, relabelling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lions_jax._src.testing import raises_invalid
from lions_jax.rl import buffer_add, buffer_init, buffer_sample, relabel


@settings(max_examples=25, deadline=None)
@given(
    capacity=st.integers(1, 7),
    sizes=st.lists(st.integers(1, 10), min_size=1, max_size=5),
)
def test_add_matches_one_by_one_reference(capacity, sizes):
    buf = buffer_init(capacity, {"x": jnp.zeros((), jnp.int32)})
    ref, pos, counter = [0] * capacity, 0, 0
    for n in sizes:
        batch = np.arange(counter, counter + n, dtype=np.int32)
        counter += n
        buf = buffer_add(buf, {"x": jnp.asarray(batch)})
        for v in batch:  # the reference: one transition at a time
            ref[pos] = int(v)
            pos = (pos + 1) % capacity
    assert buf.data["x"].tolist() == ref
    assert int(buf.insert_pos) == pos
    assert int(buf.size) == min(counter, capacity)


def test_sample_shapes_only_filled_and_independent_members():
    buf = buffer_init(100, {"obs": jnp.zeros(3), "id": jnp.zeros((), jnp.int32)})
    ids = jnp.arange(10, dtype=jnp.int32)
    buf = buffer_add(buf, {"obs": jnp.ones((10, 3)) * ids[:, None], "id": ids})
    sample = jax.jit(buffer_sample, static_argnums=2)(jax.random.key(0), buf, (4, 64))
    assert sample["obs"].shape == (4, 64, 3) and sample["id"].shape == (4, 64)
    assert int(sample["id"].max()) < 10  # never the unfilled zeros beyond size
    np.testing.assert_array_equal(sample["obs"][..., 0], sample["id"])  # rows stay together
    # members draw independent index sets
    assert not np.array_equal(sample["id"][0], sample["id"][1])
    # roughly uniform over the 10 filled slots: each appears ~25.6 times in 256 draws
    counts = np.bincount(np.asarray(sample["id"]).ravel(), minlength=10)
    assert counts.min() > 5


def test_relabel_uses_current_reward_params():
    buf = buffer_init(8, {"obs": jnp.zeros(2), "action": jnp.zeros(1), "next_obs": jnp.zeros(2)})
    obs = jnp.arange(16.0).reshape(8, 2)
    buf = buffer_add(buf, {"obs": obs, "action": jnp.ones((8, 1)), "next_obs": obs + 1})

    def reward_fn(w, o, a, o2):
        return w * (o[..., 0] + a[..., 0] - o2[..., 1])

    batch = buffer_sample(jax.random.key(1), buf, (2, 5))
    for w in (1.0, -3.0):
        out = relabel(batch, reward_fn, w)
        expected = w * (batch["obs"][..., 0] + 1.0 - batch["next_obs"][..., 1])
        np.testing.assert_allclose(out["reward"], expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="reward_fn"):
        relabel(batch, lambda w, o, a, o2: jnp.zeros(3), None)


def test_bad_inputs():
    with pytest.raises(ValueError, match="capacity"):
        buffer_init(0, {"x": jnp.zeros(())})
    buf = buffer_init(4, {"x": jnp.zeros(2)})
    with raises_invalid("batch"):
        buffer_add(buf, {"x": jnp.zeros((3, 5))})
    with raises_invalid("batch"):
        buffer_add(buf, {"y": jnp.zeros((3, 2))})
    with raises_invalid("shape"):
        buffer_sample(jax.random.key(0), buf, (0, 2))
