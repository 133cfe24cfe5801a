"""Deep SOAR: reward players against hand-computed cases, the L = 1 reduction, the optimistic
actor's bonus and clipping, honest sample counting, and no recompiles across outer iterations."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lions_jax._src.testing import count_compilations, raises_invalid
from lions_jax.rl import (
    PointMass,
    actor_loss,
    collect_demonstrations,
    make_sac_networks,
    optimistic_value,
)
from lions_jax.soar.deep import (
    METHODS,
    DeepSoarConfig,
    absorbing_bootstrap,
    absorbing_view,
    bc_loss,
    csil_reward,
    discriminator_loss,
    firl_rkl_loss,
    make_chunks,
    make_discriminator,
    make_reward_net,
    make_train,
    mlirl_loss,
)

T = 12  # episode length of the test runs


def _linear_reward(w, obs, action, next_obs):
    return obs @ w


def test_mlirl_loss_hand_computed():
    w = jnp.array([1.0, -2.0])
    agent = {
        "obs": jnp.array([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]]),  # last step masked out
        "mask": jnp.array([[1.0, 1.0, 0.0]]),
    }
    expert = {"obs": jnp.array([[[2.0, 1.0], [1.0, 1.0], [0.0, 0.0]]]), "mask": jnp.ones((1, 3))}
    for d in (agent, expert):
        d["action"] = jnp.zeros((*d["obs"].shape[:-1], 1))
        d["next_obs"] = d["obs"]
    # agent rewards 1, -2 -> mean -0.5; expert rewards 0, -1, 0 -> mean -1/3; T = 7
    got = mlirl_loss(w, _linear_reward, agent, expert, horizon=7.0)
    np.testing.assert_allclose(got, 7.0 * (-0.5 + 1.0 / 3.0), rtol=1e-6)
    # its gradient: T (mean agent s - mean expert s)
    g = jax.grad(mlirl_loss)(w, _linear_reward, agent, expert, 7.0)
    np.testing.assert_allclose(
        g, 7.0 * (np.array([0.5, 0.5]) - np.array([3.0, 2.0]) / 3), rtol=1e-6
    )


def test_firl_rkl_loss_is_the_covariance_surrogate(x64):
    rng = np.random.default_rng(0)
    n, t, d = 5, 4, 3
    obs = rng.normal(size=(n, t, d))
    mask = (rng.uniform(size=(n, t)) > 0.2).astype(np.float64)
    log_ratio = rng.normal(size=(n, t))
    trajs = {"obs": obs, "action": np.zeros((n, t, 1)), "next_obs": obs, "mask": mask}
    w = rng.normal(size=d)
    h = -(mask * log_ratio).sum(1)
    big_r = (mask * (obs @ w)).sum(1)
    expected = (np.mean(h * big_r) - h.mean() * big_r.mean()) / t
    got = firl_rkl_loss(jnp.asarray(w), _linear_reward, log_ratio, trajs, float(t))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # gradient = (1/T) cov(h, grad R) with grad R(tau) = sum_t m_t s_t (f-IRL's Theorem)
    grad_r = (mask[..., None] * obs).sum(1)
    cov = (h[:, None] * grad_r).mean(0) - h.mean() * grad_r.mean(0)
    g = jax.grad(firl_rkl_loss)(jnp.asarray(w), _linear_reward, log_ratio, trajs, float(t))
    np.testing.assert_allclose(g, cov / t, rtol=1e-10)


def test_discriminator_loss_optimum_is_the_log_density_ratio():
    # three states, a free logit per state: the minimiser is log p_E(s) / p_A(s)
    p_e, p_a = np.array([0.6, 0.3, 0.1]), np.array([0.2, 0.3, 0.5])
    expert = np.repeat(np.arange(3), (p_e * 100).astype(int))
    agent = np.repeat(np.arange(3), (p_a * 100).astype(int))
    apply = lambda logits, s: logits[s]  # noqa: E731
    opt = optax.adam(0.1)
    logits = jnp.zeros(3)
    state = opt.init(logits)
    for _ in range(600):
        g = jax.grad(discriminator_loss)(logits, apply, expert, agent)
        updates, state = opt.update(g, state)
        logits = optax.apply_updates(logits, updates)
    np.testing.assert_allclose(logits, np.log(p_e / p_a), atol=1e-3)


def test_absorbing_view_and_bootstrap():
    data = {
        "obs": jnp.array([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]]),
        "action": jnp.array([[[0.5], [0.6], [0.7]]]),
        "mask": jnp.array([[1.0, 1.0, 0.0]]),  # terminated after two steps
    }
    data["next_obs"] = data["obs"]
    v = absorbing_view(data)
    np.testing.assert_array_equal(v["obs"][0], [[1, 2, 0], [3, 4, 0], [0, 0, 1]])
    np.testing.assert_allclose(v["action"][0, :, 0], [0.5, 0.6, 0.0])
    np.testing.assert_array_equal(v["mask"], [[1, 1, 1]])
    # ML-IRL over the view: the absorbing step counts, with the absorbing state's reward
    flag_reward = lambda w, o, a, o2: o[..., -1] * w  # noqa: E731  reward w on absorbing states
    expert = absorbing_view({**data, "mask": jnp.ones((1, 3))})
    np.testing.assert_allclose(
        mlirl_loss(3.0, flag_reward, v, expert, 3.0), 3.0 * (1.0 / 3.0) * 3.0
    )
    # a terminal transition bootstraps from r_abs / (1 - gamma); others are unchanged
    r = absorbing_bootstrap(jnp.array([1.0, 1.0]), jnp.array([1.0, 0.0]), -0.5, 0.9)
    np.testing.assert_allclose(r, [1.0, 1.0 + 0.9 * (-0.5) / 0.1], rtol=1e-6)


def test_discriminator_network_shapes():
    disc = make_discriminator(4, width=16, blocks=3)
    params = disc.init(jax.random.key(0))
    assert disc.apply(params, jnp.ones((2, 5, 4))).shape == (2, 5)
    with pytest.raises(ValueError, match="width"):
        make_discriminator(4, width=0)


def test_reward_net_state_and_state_action_and_clip():
    net = make_reward_net(3, 2, hidden=(8,), clip=0.5)
    p = net.init(jax.random.key(0))
    p = jax.tree.map(lambda x: 100.0 * x, p)
    r = net.apply(p, jnp.ones((4, 3)), jnp.ones((4, 2)), None)
    assert r.shape == (4,) and float(jnp.max(jnp.abs(r))) <= 0.5
    sa = make_reward_net(3, 2, hidden=(8,), state_action=True)
    ps = sa.init(jax.random.key(1))
    r1 = sa.apply(ps, jnp.ones(3), jnp.zeros(2), None)
    r2 = sa.apply(ps, jnp.ones(3), jnp.ones(2), None)
    assert float(r1) != float(r2)  # depends on the action


def test_csil_reward_hand_computed(x64):
    # a linear actor with zero kernel: mean m and log-std ls everywhere
    nets = make_sac_networks(2, 1, hidden=())
    m, ls = 0.3, -0.5
    params = [{"kernel": jnp.zeros((2, 2)), "bias": jnp.array([m, ls])}]
    a, alpha = 0.6, 0.1
    u = np.arctanh(a)
    log_q = -0.5 * ((u - m) / np.exp(ls)) ** 2 - ls - 0.5 * np.log(2 * np.pi) - np.log(1 - a**2)
    got = csil_reward(params, nets, jnp.ones(2), jnp.array([a]), alpha)
    np.testing.assert_allclose(got, alpha * (log_q + np.log(2.0)), rtol=1e-10)
    # behaviour cloning's loss is the mean negative log-likelihood of the same density
    nll = bc_loss(params, nets, jnp.ones((3, 2)), jnp.full((3, 1), a), jnp.ones(3))
    np.testing.assert_allclose(nll, -log_q, rtol=1e-10)


def _members_identical(critic_single, n):
    return jax.tree.map(lambda x: jnp.repeat(x, n, axis=0), critic_single)


def test_optimistic_actor_bonus_and_clipping():
    nets = make_sac_networks(3, 2, hidden=(16,))
    actor = nets.actor.init(jax.random.key(0))
    keys = jax.random.split(jax.random.key(1), (1, 2))
    one = jax.vmap(jax.vmap(nets.critic.init))(keys)  # [1, 2]
    obs = jax.random.normal(jax.random.key(2), (32, 3))
    k = jax.random.key(3)

    def loss_and_grad(critics, beta, sigma):
        agg = lambda q: optimistic_value(q, beta, sigma)  # noqa: E731
        f = lambda p: actor_loss(k, p, critics, obs, networks=nets, alpha=0.2, aggregate=agg)[0]  # noqa: E731
        return jax.value_and_grad(f)(actor)

    base = loss_and_grad(one, 0.0, 1e9)
    # members that agree: zero bonus, the same loss and gradient as one member
    same = loss_and_grad(_members_identical(one, 4), 1.0, 1e9)
    np.testing.assert_allclose(same[0], base[0], rtol=1e-6)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), same[1], base[1]
    )
    # distinct members: with sigma below every std the bonus is the constant beta * sigma,
    # so SOAR's actor gradient equals the ensemble-only gradient
    four = jax.vmap(jax.vmap(nets.critic.init))(jax.random.split(jax.random.key(4), (4, 2)))
    ens = loss_and_grad(four, 0.0, 1e9)
    clipped = loss_and_grad(four, 1.0, 1e-6)
    np.testing.assert_allclose(clipped[0], ens[0] - 1e-6, rtol=1e-6)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), clipped[1], ens[1]
    )
    unclipped = loss_and_grad(four, 1.0, 1e9)
    assert float(unclipped[0]) < float(ens[0])  # the bonus is active without the clip


def test_sac_prior_turns_entropy_into_kl():
    nets = make_sac_networks(3, 2, hidden=(8,))
    actor = nets.actor.init(jax.random.key(0))
    critics = jax.vmap(jax.vmap(nets.critic.init))(jax.random.split(jax.random.key(1), (1, 2)))
    obs = jnp.ones((5, 3))
    k = jax.random.key(2)
    plain = actor_loss(k, actor, critics, obs, networks=nets, alpha=0.5)[0]
    const = actor_loss(
        k, actor, critics, obs, networks=nets, alpha=0.5, prior=lambda o, a: 2.0 + 0 * a[..., 0]
    )[0]
    np.testing.assert_allclose(const, plain - 0.5 * 2.0, rtol=1e-6)


# ---- whole runs on the point-mass test env ------------------------------------------------------
def _env():
    # small steps from [-1, 1] never reach the 1.99 bound in T steps: episodes never terminate
    return PointMass(dim=1, step_size=0.05, bound=1.99)


def _expert(env):
    policy = lambda k, o: env.optimal_action(o)  # noqa: E731
    return collect_demonstrations(jax.random.key(7), env, policy, num_episodes=3, episode_length=T)


def _cfg(**changes):
    base = dict(
        env="point_mass",
        method="mlirl_sa",
        episode_length=T,
        total_steps=48,
        eval_every=24,
        sac_steps_per_itr=12,
        learning_starts=12,
        reward_rollouts=2,
        num_demos=3,
        batch_size=8,
        hidden=(8,),
        reward_hidden=(8,),
        num_eval_envs=2,
        disc_iters=3,
        disc_batch=8,
        bc_steps=5,
        bc_batch=8,
        n_members=1,
    )
    base.update(changes)
    return DeepSoarConfig(**base)


def test_l1_soar_is_the_base_method_and_samples_are_counted():
    env = _env()
    cfg = _cfg()
    train = jax.jit(jax.vmap(make_train(cfg, _expert(env), env)))
    key = jax.random.key(0)
    state, m = train(jnp.stack([key, key]), jnp.array([0.0, 1.0]), jnp.array([10.0, 10.0]))
    # L = 1: the bonus is identically zero, so SOAR's run *is* the base run, bit for bit
    state = jax.tree.map(
        lambda x: jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x,
        state,
    )
    state = state._replace(beta=state.beta[:1].repeat(2))  # the runs differ only in beta
    jax.tree.map(lambda x: np.testing.assert_array_equal(x[0], x[1]), state)
    np.testing.assert_array_equal(m["eval_return"][0], m["eval_return"][1])
    # every environment step counts: SAC's plus reward_rollouts full episodes per iteration
    itrs = np.arange(1, cfg.num_chunks + 1) * cfg.itrs_per_chunk
    np.testing.assert_array_equal(m["env_steps"][0], itrs * cfg.sac_steps_per_itr)
    np.testing.assert_array_equal(
        m["samples"][0], itrs * (cfg.sac_steps_per_itr + cfg.reward_rollouts * T)
    )
    assert np.all(np.isfinite(m["cost_loss"]))


@pytest.mark.parametrize(
    "method",
    # the ML-IRL path also runs in the L = 1 test above: the two ML-IRL variants are slow-only
    [pytest.param(m, marks=pytest.mark.slow) if m.startswith("mlirl") else m for m in METHODS],
)
def test_each_method_runs_without_recompiling(method):
    env = _env()
    extra = {"csil_actor_init": True, "csil_kl_prior": True} if method == "csil" else {}
    cfg = _cfg(method=method, n_members=2, **extra)
    init_fn, chunk_fn = make_chunks(cfg, _expert(env), env)
    state = jax.jit(init_fn)(jax.random.key(1))
    if method == "csil":  # the actor starts at the behaviour-cloning policy
        jax.tree.map(
            np.testing.assert_array_equal, state.train.sac.actor_params, state.cost.reward_params
        )
    chunk = jax.jit(chunk_fn)
    state, m1 = chunk(state)
    steps = env.step_count
    with count_compilations() as counter:
        state, m2 = chunk(state)
    assert counter.count == 0 and env.step_count == steps
    assert int(m2["env_steps"]) == 2 * cfg.eval_every
    assert all(np.isfinite(float(v)) for v in m2.values())
    rollouts = 0 if method == "csil" else cfg.itrs_per_chunk * cfg.reward_rollouts * T
    assert int(m2["samples"]) - int(m1["samples"]) == cfg.eval_every + rollouts
    if method == "firl_rkl":
        assert float(m2["disc_loss"]) > 0


def test_config_and_expert_validation():
    env = _env()
    with raises_invalid("method"):
        _cfg(method="gail")
    with pytest.raises(ValueError, match="eval_every"):
        _cfg(eval_every=18)
    with pytest.raises(ValueError, match="normalize_observations"):
        _cfg(method="csil", csil_kl_prior=True, normalize_observations=True)
    expert = _expert(env)
    with pytest.raises(ValueError, match="num_demos"):
        make_chunks(_cfg(num_demos=5), expert, env)
    short = dict(expert, obs=expert["obs"][:, :5])
    with pytest.raises(ValueError, match=r"expert\['obs'\]"):
        make_chunks(_cfg(), short, env)
    with pytest.raises(ValueError, match="keys"):
        make_chunks(_cfg(), {"obs": expert["obs"]}, env)


def test_config_defaults_are_the_soar_codes():
    cfg = DeepSoarConfig()
    assert (cfg.n_members, cfg.beta, cfg.sigma, cfg.batch_size) == (4, 1.0, 10.0, 100)
    assert (cfg.init_alpha, cfg.learn_alpha, cfg.opt_lambda, cfg.ddof) == (0.2, False, 1e-3, 1)
    assert (cfg.sac_steps_per_itr, cfg.reward_rollouts, cfg.hidden) == (5000, 10, (256, 256))
    assert math.isclose(cfg.tau, 0.005) and cfg.itrs_per_chunk == 1
    assert dataclasses.replace(cfg, eval_every=20_000).itrs_per_chunk == 4
