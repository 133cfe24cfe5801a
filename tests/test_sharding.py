import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, PartitionSpec

from lions_jax._src import sharding
from lions_jax._src.testing import assert_rel_close, assert_trees_all_close
from lions_jax.examples import mlp_digits

CFG = mlp_digits.Config(
    num_seeds=8,
    hidden=(32,),
    batch_size=64,
    num_steps=20,
    log_every=10,
    checkpoint_every=10,
    baselines=False,
)


def test_mesh_helpers_and_validation():
    mesh = sharding.data_mesh()
    assert mesh.size == 8 and mesh.axis_names == ("data",)
    assert mesh.axis_types == (AxisType.Auto,)
    x = sharding.shard_batch(jnp.arange(16.0).reshape(16, 1), mesh)
    assert x.sharding.spec == PartitionSpec("data")
    assert len(x.addressable_shards) == 8
    r = sharding.replicate({"w": jnp.ones(3)}, mesh)
    assert r["w"].sharding.is_fully_replicated
    with pytest.raises(ValueError, match="multiple of the 8 devices"):
        sharding.shard_batch({"x": jnp.ones((12, 2))}, mesh)
    with pytest.raises(ValueError, match="num_devices must be in"):
        sharding.data_mesh(9)
    assert sharding.data_mesh(2, axis_type=AxisType.Explicit).size == 2


@pytest.mark.parametrize("axis_type", [AxisType.Explicit, AxisType.Auto])
def test_data_parallel_train_step_matches_single_device(axis_type):
    """mlp-digits' train step with the batch split over 8 devices equals the 1-device step."""
    mesh = sharding.data_mesh(axis_type=axis_type)
    data = mlp_digits.load_data(CFG)
    init, graphdef = mlp_digits.make_init(CFG, data)
    state = init(jax.random.key(0))
    x, y = jnp.asarray(data.x_train[:64]), jnp.asarray(data.y_train[:64])

    single = jax.jit(mlp_digits.make_train_step(CFG, graphdef))
    parallel = jax.jit(mlp_digits.make_train_step(CFG, graphdef, mesh=mesh))
    s1, s8 = state, sharding.replicate(state, mesh)
    xs, ys = sharding.shard_batch((x, y), mesh)
    for _ in range(3):
        s1, loss1 = single(s1, x, y)
        s8, loss8 = parallel(s8, xs, ys)
        # float32 sums over the batch are reduced in a different order across devices
        np.testing.assert_allclose(loss8, loss1, rtol=1e-6, atol=0)
    assert_rel_close(s8.params, s1.params, rtol=1e-6)
    # parameters stay replicated on every device
    for leaf in jax.tree.leaves(s8.params):
        assert leaf.sharding.is_fully_replicated


def test_data_parallel_step_fp64_agrees_to_round_off(x64):
    mesh = sharding.data_mesh()
    data = mlp_digits.load_data(CFG)
    init, graphdef = mlp_digits.make_init(CFG, data)
    state = jax.tree.map(
        lambda a: a.astype(jnp.float64) if a.dtype == jnp.float32 else a, init(jax.random.key(1))
    )
    x = jnp.asarray(data.x_train[:64], jnp.float64)
    y = jnp.asarray(data.y_train[:64])
    s1, _ = jax.jit(mlp_digits.make_train_step(CFG, graphdef))(state, x, y)
    s8, _ = jax.jit(mlp_digits.make_train_step(CFG, graphdef, mesh=mesh))(
        sharding.replicate(state, mesh), *sharding.shard_batch((x, y), mesh)
    )
    assert_rel_close(s8.params, s1.params, rtol=1e-12)


def test_stacked_seeds_sharded_across_devices_match_unsharded():
    """8 vmapped seeds, one per device, give the same runs as on one device (no communication)."""
    mesh = sharding.data_mesh(axis_type=AxisType.Auto)
    train = jax.jit(jax.vmap(mlp_digits.make_train(CFG)))
    keys = jax.random.split(jax.random.key(0), 8)
    _, m1 = train(keys)
    _, m8 = train(sharding.shard_seeds(keys, mesh))
    assert m8["test_accuracy"].sharding.spec[0] == "data"
    assert_trees_all_close(m8, m1, rtol=1e-6, atol=1e-7)


def test_constrain_batch_is_noop_without_mesh():
    x = jnp.ones((4, 2))
    assert sharding.constrain_batch(x, None) is x
