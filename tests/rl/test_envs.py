"""Environment wrappers: termination vs truncation, true next observations, resets, keys, dtypes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lions_jax._src.testing import count_compilations
from lions_jax.rl import BatchedEnv, EpisodeEnv, PointMass, canonicalize, make_env
from lions_jax.rl.normalization import init_stats, normalize, update_stats


def _rollout(env, state, actions):
    def f(s, a):
        s = env.step(s, a)
        return s, s

    return jax.lax.scan(f, state, actions)


def test_truncation_vs_termination_and_next_obs():
    env = EpisodeEnv(PointMass(1), episode_length=5)
    s0 = env.reset(jax.random.key(0))
    # zero actions: the point stays put, so only the time limit ends episodes
    _, traj = _rollout(env, s0, jnp.zeros((12, 1)))
    np.testing.assert_array_equal(traj.done, [0, 0, 0, 0, 1] * 2 + [0, 0])
    np.testing.assert_array_equal(traj.truncation, traj.done)
    np.testing.assert_array_equal(traj.episode_length[traj.done > 0], [5, 5])
    # next_obs of the truncated step is the pre-reset position; obs is a fresh reset state
    np.testing.assert_allclose(traj.next_obs[4], s0.obs)
    assert not np.allclose(traj.obs[4], s0.obs)
    np.testing.assert_allclose(traj.next_obs[5], traj.obs[4])
    # full-throttle pushes out of the box: a terminal step, not a truncation
    env = EpisodeEnv(PointMass(1), episode_length=100)
    _, traj = _rollout(env, s0, jnp.ones((40, 1)))
    first = int(np.argmax(np.asarray(traj.done)))
    assert traj.truncation[first] == 0 and abs(float(traj.next_obs[first, 0])) > 1.5
    np.testing.assert_allclose(
        traj.episode_return[first], traj.reward[: first + 1].sum(), rtol=1e-6
    )


def test_reset_modes_and_action_repeat():
    fresh = EpisodeEnv(PointMass(2), episode_length=2, reset_mode="fresh")
    initial = EpisodeEnv(PointMass(2), episode_length=2, reset_mode="initial")
    for env, same in ((fresh, False), (initial, True)):
        s0 = env.reset(jax.random.key(3))
        _, traj = _rollout(env, s0, jnp.zeros((6, 2)))
        starts = np.asarray(traj.obs[1::2])  # observations right after each reset
        assert np.allclose(starts, np.asarray(s0.obs)) == same
    rep = EpisodeEnv(PointMass(1), episode_length=10, action_repeat=3)
    s = rep.step(rep.reset(jax.random.key(0)), jnp.zeros(1))
    x = float(rep.reset(jax.random.key(0)).obs[0])
    np.testing.assert_allclose(s.reward, 3 * (1 - x**2), rtol=1e-6)
    assert int(s.steps) == 3


def test_eval_mode_freezes_ended_episodes():
    env = EpisodeEnv(PointMass(1), episode_length=3, auto_reset=False)
    s0 = env.reset(jax.random.key(0))
    final, traj = _rollout(env, s0, jnp.zeros((7, 1)))
    np.testing.assert_array_equal(traj.reward[3:], 0.0)
    assert int(final.episode_length) == 3 and float(final.done) == 1.0


def test_batched_reset_takes_one_key_or_a_batch():
    env = BatchedEnv(EpisodeEnv(PointMass(1), episode_length=4), 5)
    a = env.reset(jax.random.key(0))
    b = env.reset(jax.random.split(jax.random.key(0), 5))
    np.testing.assert_array_equal(a.obs, b.obs)
    assert a.obs.shape == (5, 1) and len(set(np.asarray(a.obs[:, 0]).tolist())) == 5
    with pytest.raises(ValueError, match="key"):
        env.reset(jax.random.split(jax.random.key(0), 3))
    with pytest.raises(ValueError, match="typed PRNG key"):
        env.reset(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="action"):
        env.step(a, jnp.zeros((4, 1)))


def test_canonicalize_removes_weak_types():
    tree = {"a": jnp.asarray(1.0), "b": 3, "c": jnp.ones(2, jnp.float16), "k": jax.random.key(0)}
    out = canonicalize(tree)
    assert not out["a"].weak_type and out["a"].dtype == jnp.float32
    assert out["b"].dtype == jnp.int32 and not out["b"].weak_type
    assert out["c"].dtype == jnp.float32
    assert out["k"] is tree["k"]


def test_jitted_rollout_compiles_once_and_traces_env_once():
    base = PointMass(2)
    env = BatchedEnv(EpisodeEnv(base, episode_length=7), 3)
    rollout = jax.jit(lambda s, a: _rollout(env, s, a)[0])
    state = env.reset(jax.random.key(0))
    actions = jnp.zeros((20, 3, 2))
    with count_compilations() as counter:
        for _ in range(3):
            state = rollout(state, actions)
    assert counter.count == 1
    assert base.step_count == 1


def test_running_stats_equal_batch_statistics():
    x = jax.random.normal(jax.random.key(0), (37, 3)) * 2 + 5
    s = init_stats(3)
    for part in (x[:10], x[10:11], x[11:]):
        s = update_stats(s, part)
    np.testing.assert_allclose(s.mean, x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(s.m2 / s.count, x.var(0), rtol=1e-4)
    z = normalize(s, x)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(normalize(init_stats(3), x), jnp.clip(x, -10, 10), rtol=1e-5)


def test_make_env_errors():
    with pytest.raises(ValueError, match="env must be one of"):
        make_env("no_such_env")
    with pytest.raises(ValueError, match="backend"):
        make_env("hopper", backend="warp")
    with pytest.raises(ValueError, match="episode_length"):
        EpisodeEnv(PointMass(), episode_length=0)


brax = pytest.importorskip("brax")


def test_brax_inverted_pendulum_rollout_does_not_recompile():
    bare = make_env("inverted_pendulum")
    assert (bare.observation_size, bare.action_size) == (4, 1)
    env = BatchedEnv(EpisodeEnv(bare, episode_length=50), 2)
    state = jax.jit(env.reset)(jax.random.key(0))  # one key, split inside

    @jax.jit
    def rollout(s, key):
        acts = jax.random.uniform(key, (60, 2, 1), minval=-1, maxval=1)
        return _rollout(env, s, acts)[0]

    with count_compilations() as counter:
        for i in range(3):
            state = rollout(state, jax.random.key(i))
    assert counter.count == 1
    assert state.obs.dtype == jnp.float32 and np.all(np.isfinite(state.obs))


@pytest.mark.slow
def test_brax_own_wrappers_do_recompile_which_is_why_we_canonicalize():
    from brax import envs as brax_envs

    env = brax_envs.create("inverted_pendulum", batch_size=2, episode_length=50, auto_reset=True)
    state = jax.jit(env.reset)(jax.random.PRNGKey(0))

    @jax.jit
    def rollout(s, key):
        acts = jax.random.uniform(key, (60, 2, 1), minval=-1, maxval=1)
        return _rollout(env, s, acts)[0]

    with count_compilations() as counter:
        for i in range(3):
            state = rollout(state, jax.random.PRNGKey(i))
    assert counter.count == 2  # brax 0.14.2, jax 0.10.2: the second call recompiles
