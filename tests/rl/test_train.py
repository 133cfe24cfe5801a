"""Whole SAC runs: solves the test env, traces env functions once, resumes exactly, expert data."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lions_jax.rl import PointMass, SACConfig, evaluate, make_env, make_train, run
from lions_jax.rl.expert import collect_demonstrations, load_demonstrations, save_demonstrations

POINT = SACConfig(
    env="point_mass",
    episode_length=50,
    total_steps=5_000,
    eval_every=1_000,
    learning_starts=500,
    batch_size=64,
    hidden=(64, 64),
    num_eval_envs=16,
)


def _reference_returns(env, episode_length):
    ev = jax.jit(
        lambda k: evaluate(k, env, env.optimal_action, num_episodes=256, episode_length=50)
    )(jax.random.key(0))
    return float(ev["return"].mean())


def test_sac_ensemble_solves_point_mass_with_env_traced_once():
    env = PointMass()
    cfg = dataclasses.replace(POINT, n_members=2, beta=1.0, sigma=1.0)
    train = jax.jit(jax.vmap(make_train(cfg, env)))
    _, metrics = train(jax.random.split(jax.random.key(0), 3))
    # traced once each, however many steps: reset for init, auto-reset and evaluation; step for
    # training and evaluation
    assert (env.reset_count, env.step_count) == (3, 2)
    optimal = _reference_returns(env, 50)  # the greedy controller, about 49.3
    final = np.asarray(metrics["eval_return"][:, -1])
    assert final.min() > 0.9 * optimal, (final, optimal)
    assert np.asarray(metrics["eval_return"][:, 0]).mean() < final.mean()
    assert np.all(np.asarray(metrics["q_member_std"][:, -1]) > 0)  # members disagree
    np.testing.assert_array_equal(metrics["env_steps"][0], np.arange(1, 6) * 1000)


# ~28 s: `make test-slow` (CI time); the shared runner's resume-to-identical-metrics path is in
# the CI through tests/test_checkpoint.py.
@pytest.mark.slow
def test_run_resumes_to_the_same_result(tmp_path):
    cfg = dataclasses.replace(
        POINT,
        total_steps=300,
        eval_every=100,
        learning_starts=50,
        hidden=(8,),
        batch_size=8,
        num_seeds=2,
        num_eval_envs=2,
        episode_length=20,
    )
    full, rows_full = run(cfg, tmp_path / "a", progress=False)
    run(dataclasses.replace(cfg, total_steps=100), tmp_path / "b", progress=False)
    resumed, rows = run(cfg, tmp_path / "b", progress=False)
    assert [r["step"] for r in rows] == [100, 200, 300]
    assert rows == rows_full
    jax.tree.map(np.testing.assert_array_equal, resumed.sac.actor_params, full.sac.actor_params)


def test_config_validation():
    for bad in ({"num_envs": 0}, {"gamma": 1.5}, {"beta": -1.0}, {"eval_every": 10, "num_envs": 3}):
        with pytest.raises(ValueError):
            dataclasses.replace(POINT, **bad)


def test_demonstrations_mask_terminations_and_roundtrip(tmp_path):
    env = PointMass()

    def push_out(key, obs):  # leaves the box: episodes terminate early
        return jnp.ones_like(obs)

    demos = jax.jit(
        lambda k: collect_demonstrations(k, env, push_out, num_episodes=4, episode_length=40)
    )(jax.random.key(0))
    assert demos["obs"].shape == (4, 40, 1) and demos["mask"].shape == (4, 40)
    lengths = np.asarray(demos["lengths"])
    assert np.all(lengths < 40)  # all terminated
    for i, n in enumerate(lengths):
        np.testing.assert_array_equal(demos["mask"][i], np.arange(40) < n)
        np.testing.assert_array_equal(demos["done"][i], np.arange(40) == n - 1)
        np.testing.assert_allclose(demos["returns"][i], demos["reward"][i, :n].sum(), rtol=1e-6)
        # consecutive transitions chain: next_obs[t] == obs[t + 1] inside the episode
        np.testing.assert_allclose(demos["next_obs"][i, : n - 1], demos["obs"][i, 1:n])
    path = save_demonstrations(tmp_path / "d", {"stochastic": demos}, {"env": "point_mass"})
    loaded, summary = load_demonstrations(path)
    assert summary["env"] == "point_mass"
    jax.tree.map(np.testing.assert_array_equal, loaded["stochastic"], jax.device_get(demos))
    with pytest.raises(FileNotFoundError, match="lions-jax run expert"):
        load_demonstrations(tmp_path / "missing")


@pytest.mark.slow
def test_sac_solves_brax_inverted_pendulum():
    pytest.importorskip("brax")
    cfg = SACConfig(
        env="inverted_pendulum",
        total_steps=20_000,
        eval_every=2_000,
        hidden=(64, 64),
        actor_lr=1e-3,
        critic_lr=1e-3,
        alpha_lr=1e-3,
        num_eval_envs=4,
    )
    _, metrics = jax.jit(jax.vmap(make_train(cfg, make_env(cfg.env))))(
        jax.random.split(jax.random.key(0), 3)
    )
    # 2-core CPU, jax 0.10.2: all three seeds reach the maximal return 1000 by ~16k steps
    assert np.all(np.asarray(metrics["eval_return"][:, -1]) >= 950.0)
