"""SAC losses against hand computations, L = 1 against a plain two-critic SAC, member independence."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.scipy.stats import norm

from lions_jax.models import MLP
from lions_jax.rl import (
    Network,
    SACNetworks,
    actor_loss,
    alpha_loss,
    critic_loss,
    make_sac,
    make_sac_networks,
    mean_value,
    mlp,
    optimistic_value,
    tanh_gaussian_log_prob,
    tanh_gaussian_sample,
)

# ---- hand-computable linear networks -----------------------------------------------------------
# actor: mean = m * obs, log_std = s;  critic: Q = w . [obs, act] + b   (obs, act of size 1)


def _linear_networks():
    actor = Network(
        init=lambda k: {"m": jnp.float64(0.5), "s": jnp.float64(-0.3)},
        apply=lambda p, o: (p["m"] * o, jnp.broadcast_to(p["s"], o.shape)),
    )
    critic = Network(
        init=lambda k: {"w": jnp.array([1.0, -2.0]), "b": jnp.float64(0.1)},
        apply=lambda p, o, a: jnp.concatenate([o, a], -1) @ p["w"] + p["b"],
    )
    return SACNetworks(actor, critic, 1, 1)


def _pair(ws, bs):
    return {"w": jnp.array(ws, jnp.float64), "b": jnp.array(bs, jnp.float64)}


def test_critic_loss_by_hand(x64):
    net = _linear_networks()
    actor = {"m": jnp.float64(0.5), "s": jnp.float64(-0.3)}
    params = _pair([[1.0, -2.0], [0.5, 1.0]], [0.1, -0.2])
    target = _pair([[0.9, -1.0], [0.2, 0.3]], [0.0, 0.4])
    batch = {
        "obs": jnp.array([[0.3], [-1.2]]),
        "action": jnp.array([[0.5], [-0.1]]),
        "reward": jnp.array([1.0, -0.5]),
        "next_obs": jnp.array([[0.7], [0.2]]),
        "discount": jnp.array([1.0, 0.0]),
    }
    key = jax.random.key(7)
    alpha, gamma, scale, lam = 0.2, 0.9, 2.0, 1e-3
    loss, _ = critic_loss(
        key,
        params,
        target,
        actor,
        batch,
        networks=net,
        alpha=alpha,
        gamma=gamma,
        reward_scale=scale,
        opt_lambda=lam,
    )
    # by hand, with the same Gaussian noise
    eps = np.asarray(jax.random.normal(key, (2, 1), jnp.float64))[:, 0]
    o2 = np.array([0.7, 0.2])
    u = 0.5 * o2 + np.exp(-0.3) * eps
    a2 = np.tanh(u)
    logp = norm.logpdf(u, 0.5 * o2, np.exp(-0.3)) - np.log(1 - np.tanh(u) ** 2)
    tq = np.minimum(0.9 * o2 - 1.0 * a2 + 0.0, 0.2 * o2 + 0.3 * a2 + 0.4)
    y = scale * np.array([1.0, -0.5]) + gamma * np.array([1.0, 0.0]) * (tq - alpha * logp)
    o, a = np.array([0.3, -1.2]), np.array([0.5, -0.1])
    q1, q2 = 1.0 * o - 2.0 * a + 0.1, 0.5 * o + 1.0 * a - 0.2
    expected = np.mean((q1 - y) ** 2) + np.mean((q2 - y) ** 2) - lam * (q1.mean() + q2.mean())
    np.testing.assert_allclose(loss, expected, rtol=1e-12)


def test_actor_and_alpha_loss_by_hand(x64):
    net = _linear_networks()
    actor = {"m": jnp.float64(-0.4), "s": jnp.float64(0.2)}
    # L = 3 members, pairs on axis 1
    critics = {
        "w": jnp.array(
            [[[1.0, -2.0], [0.5, 1.0]], [[0.3, 0.3], [0.1, -1.0]], [[2.0, 0.5], [1.0, 1.0]]]
        ),
        "b": jnp.array([[0.1, -0.2], [0.0, 0.0], [-0.5, 0.2]]),
    }
    obs = jnp.array([[0.3], [-1.2], [0.8]])
    key = jax.random.key(3)
    beta, sigma = 0.7, 0.25
    agg = lambda q: optimistic_value(q, beta, sigma, ddof=1)  # noqa: E731
    loss, aux = actor_loss(key, actor, critics, obs, networks=net, alpha=0.3, aggregate=agg)
    eps = np.asarray(jax.random.normal(key, (3, 1), jnp.float64))[:, 0]
    o = np.array([0.3, -1.2, 0.8])
    u = -0.4 * o + np.exp(0.2) * eps
    a = np.tanh(u)
    logp = norm.logpdf(u, -0.4 * o, np.exp(0.2)) - np.log(1 - np.tanh(u) ** 2)
    w, b = np.asarray(critics["w"]), np.asarray(critics["b"])
    q = w[..., 0, None] * o + w[..., 1, None] * a + b[..., None]  # [L, 2, B]
    qmin = q.min(1)
    value = qmin.mean(0) + beta * np.clip(qmin.std(0, ddof=1), 0, sigma)
    np.testing.assert_allclose(loss, np.mean(0.3 * logp - value), rtol=1e-12)
    np.testing.assert_allclose(aux["log_prob"], logp, rtol=1e-12)
    # temperature: d/dlog(alpha) of -log(alpha) * mean(logp + target) is -(mean logp + target)
    grad = jax.grad(alpha_loss)(jnp.log(0.3), aux["log_prob"], -1.0)
    np.testing.assert_allclose(grad, -(logp.mean() - 1.0), rtol=1e-12)


def test_aggregations():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(5, 7)).astype(np.float32)
    np.testing.assert_allclose(mean_value(q), q.mean(0), rtol=1e-6)
    for ddof in (0, 1):
        got = optimistic_value(q, 2.0, 10.0, ddof=ddof)
        np.testing.assert_allclose(got, q.mean(0) + 2 * q.std(0, ddof=ddof), rtol=1e-5)
    clipped = optimistic_value(q, 1.0, 0.1)
    np.testing.assert_allclose(clipped, q.mean(0) + 0.1, rtol=1e-5)  # every std > 0.1 here
    cost_form = optimistic_value(q, 1.0, 10.0, sign=-1.0)
    np.testing.assert_allclose(cost_form, q.mean(0) - q.std(0, ddof=1), rtol=1e-5)
    # equal members: no bonus; one member: the std is 0 (not NaN) for both conventions
    same = np.repeat(q[:1], 4, axis=0)
    np.testing.assert_allclose(optimistic_value(same, 5.0, 10.0), q[0], rtol=1e-6)
    for ddof in (0, 1):
        np.testing.assert_array_equal(optimistic_value(q[:1], 5.0, 10.0, ddof=ddof), q[0])
    with pytest.raises(ValueError, match="ddof"):
        optimistic_value(q, 1.0, 1.0, ddof=2)


def test_tanh_gaussian_density_is_normalised_and_stable(x64):
    mean, log_std = jnp.array([0.3]), jnp.array([-0.5])
    a = jnp.linspace(-1 + 1e-9, 1 - 1e-9, 400_001)[:, None]
    dens = jnp.exp(tanh_gaussian_log_prob(mean, log_std, jnp.arctanh(a)))
    np.testing.assert_allclose(jnp.trapezoid(dens, a[:, 0]), 1.0, atol=1e-6)
    lp = tanh_gaussian_log_prob(jnp.zeros(1), jnp.zeros(1), jnp.array([40.0]))
    assert np.isfinite(lp)  # naive log(1 - tanh(u)^2) would be log(0)
    act, logp = tanh_gaussian_sample(jax.random.key(0), jnp.zeros((1000, 2)), jnp.zeros((1000, 2)))
    assert float(jnp.abs(act).max()) < 1 and logp.shape == (1000,)


def test_mlp_matches_models_mlp():
    net = mlp(3, (8, 5), 2)
    params = net.init(jax.random.key(0))
    module = MLP(3, (8, 5), 2, rngs=__import__("flax").nnx.Rngs(0))
    for layer, p in zip(module.layers, params):
        assert layer.kernel[...].shape == p["kernel"].shape
        layer.kernel[...], layer.bias[...] = p["kernel"], p["bias"]
    x = jax.random.normal(jax.random.key(1), (4, 3))
    np.testing.assert_allclose(net.apply(params, x), module(x), rtol=1e-6)


# ---- L = 1 is plain SAC ------------------------------------------------------------------------


def _batch(key, n_members, batch, obs_size=3, act_size=2):
    ks = jax.random.split(key, 5)
    shape = (n_members, batch)
    return {
        "obs": jax.random.normal(ks[0], (*shape, obs_size)),
        "action": jax.random.uniform(ks[1], (*shape, act_size), minval=-1, maxval=1),
        "reward": jax.random.normal(ks[2], shape),
        "next_obs": jax.random.normal(ks[3], (*shape, obs_size)),
        "discount": (jax.random.uniform(ks[4], shape) > 0.2).astype(jnp.float32),
    }


def _plain_sac_update(key, p, b, net, opt, *, gamma, tau, target_entropy):
    """Textbook SAC with two separately stored critics (SpinningUp order), written from scratch."""
    (q1, q2), (t1, t2), actor, log_alpha = p["q"], p["t"], p["pi"], p["log_alpha"]
    k_critic, k_actor = jax.random.split(key)
    (k_next,) = jax.random.split(k_critic, 1)
    alpha = jnp.exp(log_alpha)
    q = lambda params, o, a: net.critic.apply(params, o, a)  # noqa: E731

    mean, log_std = net.actor.apply(actor, b["next_obs"])
    a2, logp2 = tanh_gaussian_sample(k_next, mean, log_std)
    y = b["reward"] + gamma * b["discount"] * (
        jnp.minimum(q(t1, b["next_obs"], a2), q(t2, b["next_obs"], a2)) - alpha * logp2
    )

    def lq(qs):
        return sum(jnp.mean((q(qi, b["obs"], b["action"]) - y) ** 2) for qi in qs)

    g = jax.grad(lq)((q1, q2))
    p = dict(p)
    upd, p["q_opt"] = opt.update(g, p["q_opt"])
    q1, q2 = optax.apply_updates((q1, q2), upd)

    def lpi(pi):
        mean, log_std = net.actor.apply(pi, b["obs"])
        a, logp = tanh_gaussian_sample(k_actor, mean, log_std)
        return jnp.mean(alpha * logp - jnp.minimum(q(q1, b["obs"], a), q(q2, b["obs"], a))), logp

    g, logp = jax.grad(lpi, has_aux=True)(actor)
    upd, p["pi_opt"] = opt.update(g, p["pi_opt"])
    actor = optax.apply_updates(actor, upd)
    g = -jnp.mean(logp + target_entropy)
    upd, p["a_opt"] = opt.update(g, p["a_opt"])
    log_alpha = log_alpha + upd
    t1, t2 = jax.tree.map(lambda t, o: (1 - tau) * t + tau * o, (t1, t2), (q1, q2))
    return {**p, "q": (q1, q2), "t": (t1, t2), "pi": actor, "log_alpha": log_alpha}


def test_single_member_equals_plain_sac():
    net = make_sac_networks(3, 2, hidden=(16, 16))
    hp = {"gamma": 0.97, "tau": 0.05}
    sac = make_sac(net, n_members=1, actor_lr=1e-2, critic_lr=1e-2, alpha_lr=1e-2, **hp)
    state = sac.init(jax.random.key(0))
    opt = optax.adam(1e-2)
    crit = lambda i: jax.tree.map(lambda x: x[0, i], state.critic_params)  # noqa: E731
    ref = {
        "q": (crit(0), crit(1)),
        "t": (crit(0), crit(1)),
        "pi": state.actor_params,
        "log_alpha": state.log_alpha,
        "q_opt": opt.init((crit(0), crit(1))),
        "pi_opt": opt.init(state.actor_params),
        "a_opt": opt.init(state.log_alpha),
    }
    update = jax.jit(sac.update)
    reference = jax.jit(
        lambda k, p, b: _plain_sac_update(k, p, b, net, opt, target_entropy=-2.0, **hp)
    )
    for i in range(4):
        k_batch, k_upd = jax.random.split(jax.random.key(100 + i))
        b = _batch(k_batch, 1, 32)
        state, _ = update(k_upd, state, b)
        ref = reference(k_upd, ref, jax.tree.map(lambda x: x[0], b))
    tol = {"rtol": 2e-5, "atol": 2e-6}
    for got, want in (
        (state.actor_params, ref["pi"]),
        (jax.tree.map(lambda x: x[0, 0], state.critic_params), ref["q"][0]),
        (jax.tree.map(lambda x: x[0, 1], state.critic_params), ref["q"][1]),
        (jax.tree.map(lambda x: x[0, 1], state.target_critic_params), ref["t"][1]),
    ):
        jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, **tol), got, want)
    np.testing.assert_allclose(state.log_alpha, ref["log_alpha"], **tol)


def test_members_are_independent():
    net = make_sac_networks(3, 2, hidden=(8,))
    sac = make_sac(net, n_members=3, critic_lr=1e-2)
    state = sac.init(jax.random.key(0))
    kernels = np.asarray(state.critic_params[0]["kernel"]).reshape(6, -1)
    assert len({tuple(np.round(k, 6)) for k in kernels}) == 6  # six distinct initialisations
    batch = _batch(jax.random.key(1), 3, 16)
    other = jax.tree.map(lambda x: x.at[2].set(x[2][::-1] * 1.5), batch)  # member 2 only
    update = jax.jit(sac.update)
    s1, _ = update(jax.random.key(2), state, batch)
    s2, _ = update(jax.random.key(2), state, other)
    for m, equal in ((0, True), (1, True), (2, False)):
        same = all(
            np.array_equal(x[m], y[m])
            for x, y in zip(jax.tree.leaves(s1.critic_params), jax.tree.leaves(s2.critic_params))
        )
        assert same == equal, m
    with pytest.raises(ValueError, match="n_members"):
        sac.update(jax.random.key(0), state, _batch(jax.random.key(1), 2, 16))


def test_fixed_temperature_and_opt_lambda_shift_q_upwards():
    net = make_sac_networks(3, 2, hidden=(8,))
    fixed = make_sac(net, learn_alpha=False, init_alpha=0.2)
    state = fixed.init(jax.random.key(0))
    new, _ = jax.jit(fixed.update)(jax.random.key(1), state, _batch(jax.random.key(2), 1, 8))
    assert float(new.log_alpha) == float(np.log(np.float32(0.2)))
    # the -lambda * mean(Q) term raises Q relative to the plain loss
    b = jax.tree.map(lambda x: x[0], _batch(jax.random.key(3), 1, 64))
    pair = jax.tree.map(lambda x: x[0], state.critic_params)

    @jax.jit
    def q_after(lam):
        def loss(p):
            return critic_loss(
                jax.random.key(4),
                p,
                pair,
                state.actor_params,
                b,
                networks=net,
                alpha=0.2,
                gamma=0.99,
                opt_lambda=lam,
            )[0]

        p = jax.tree.map(lambda x, d: x - 1e-2 * d, pair, jax.grad(loss)(pair))
        return jnp.mean(net.critic.apply(jax.tree.map(lambda x: x[0], p), b["obs"], b["action"]))

    assert q_after(10.0) > q_after(0.0)
