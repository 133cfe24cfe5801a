"""Scion transforms: closed forms, special cases (signSGD, Muon), the ball, light mode, optax."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lions_jax._src import sharding
from lions_jax._src.testing import assert_no_recompile, assert_rel_close, assert_trees_all_close
from lions_jax.models import MLP, LMConfig, TransformerLM
from lions_jax.scion import (
    ScionGroup,
    apply_lmo,
    default_labels,
    light_accumulator,
    lmo_norm,
    scale_by_scion,
    scion,
    scion_init,
    unconstrained_scion,
)


def _params(seed=0, dtype=jnp.float32):
    rng = np.random.default_rng(seed)
    return {
        "embed": {"embedding": jnp.asarray(rng.normal(size=(12, 8)), dtype)},
        "dense": {
            "kernel": jnp.asarray(rng.normal(size=(8, 16)), dtype) * 0.1,
            "bias": jnp.asarray(rng.normal(size=(16,)), dtype) * 0.1,
        },
        "head": {"kernel": jnp.asarray(rng.normal(size=(16, 12)), dtype) * 0.1},
    }


def _grads(params, step):
    return jax.tree.map(
        lambda p: jnp.asarray(np.random.default_rng(100 + step).normal(size=p.shape), p.dtype),
        params,
    )


def _run(opt, params, steps):
    state = opt.init(params)
    update = jax.jit(opt.update)
    for t in range(steps):
        updates, state = update(_grads(params, t), state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def test_scg_one_step_closed_form():
    params = _params()
    gamma, alpha = 0.05, 0.3
    new, _ = _run(scion(gamma, momentum=alpha), params, 1)
    g = _grads(params, 0)
    labels = default_labels(params)
    defaults = {
        "embedding": ("colnorm", 1.0),
        "hidden": ("auto", 3.0),
        "head": ("sign", 10.0),
        "bias": ("bias_rms", 1.0),
    }  # DEFAULT_GROUPS, spelled out
    for path in [
        ("embed", "embedding"),
        ("dense", "kernel"),
        ("dense", "bias"),
        ("head", "kernel"),
    ]:
        kind, rho = defaults[labels[path[0]][path[1]]]
        w, gg = params[path[0]][path[1]], g[path[0]][path[1]]
        expected = (1 - gamma) * w - gamma * rho * apply_lmo(kind, alpha * gg)
        np.testing.assert_allclose(new[path[0]][path[1]], expected, rtol=1e-5, atol=1e-6)


def test_unconstrained_sign_with_alpha_one_is_sign_sgd():
    params = _params()
    groups = {k: ScionGroup("sign", 1.0, normalized=False) for k in ("embedding", "hidden", "head")}
    groups["bias"] = ScionGroup("bias_rms", 1.0)
    labels = jax.tree.map(lambda p: "hidden", params)
    new, _ = _run(
        unconstrained_scion(0.01, momentum=1.0, groups=groups, param_labels=labels), params, 3
    )
    ref = params
    for t in range(3):
        ref = jax.tree.map(lambda p, g: p - 0.01 * jnp.sign(g), ref, _grads(params, t))
    assert_trees_all_close(new, ref, rtol=0, atol=1e-7)


def test_unconstrained_spectral_equals_optax_muon_without_nesterov():
    """uSCG(spectral, ρ, α) == optax.contrib.muon(lr=γρ, beta=1-α, nesterov=False) for d_out ≥ d_in."""
    rng = np.random.default_rng(5)
    params = {
        "a": jnp.asarray(rng.normal(size=(8, 16)), jnp.float32),
        "b": jnp.asarray(rng.normal(size=(16, 16)), jnp.float32),
    }
    gamma, rho, alpha = 0.01, 3.0, 0.2
    groups = {"hidden": ScionGroup("spectral", rho)}
    ours = unconstrained_scion(
        gamma, momentum=alpha, groups=groups, param_labels=jax.tree.map(lambda _: "hidden", params)
    )
    muon = optax.contrib.muon(
        gamma * rho,
        ns_coeffs=(3.4445, -4.7750, 2.0315),
        ns_steps=5,
        beta=1 - alpha,
        eps=1e-7,
        nesterov=False,
    )
    p1, _ = _run(ours, params, 4)
    p2, _ = _run(muon, params, 4)
    # muon's bias correction rescales the momentum before its (scale-invariant) NS, which only
    # moves the ε of the Frobenius normalisation: float32 agreement ~1e-6
    assert_rel_close(p1, p2, rtol=1e-5)


def test_scg_stays_in_the_ball():
    params = _params(1)
    groups = {
        "embedding": ScionGroup("colnorm", 2.0),
        "hidden": ScionGroup("spectral", 3.0),
        "head": ScionGroup("sign", 5.0),
        "bias": ScionGroup("bias_rms", 0.5),
    }
    start = scion_init(jax.random.key(0), params, groups=groups)
    labels = default_labels(params)
    kinds = {"embedding": "colnorm", "hidden": "spectral", "head": "sign", "bias": "bias_rms"}

    def norms(p):
        return {
            lab: float(lmo_norm(kinds[lab], p[a][b]) / groups[lab].radius)
            for (a, b), lab in [((a, b), labels[a][b]) for a in p for b in p[a]]
        }

    np.testing.assert_array_equal(start["dense"]["bias"], params["dense"]["bias"])  # kept
    for lab, n in norms(start).items():  # scion_init: on the boundary
        if lab == "bias":
            continue
        assert abs(n - 1.0) < (0.25 if lab == "hidden" else 1e-5), (lab, n)
    end, _ = _run(scion(0.2, momentum=0.5, groups=groups), start, 25)
    for lab, n in norms(end).items():
        # convex combinations of points in the ball; the spectral ball only up to the
        # Newton–Schulz overshoot (singular values up to ~1.2, spec §3.2)
        assert n <= (1.25 if lab == "hidden" else 1.0 + 1e-5), (lab, n)


def test_light_mode_equals_ema_mode():
    params = _params(2)
    alpha = 0.3
    ema_opt = scion(0.02, momentum=alpha)
    light_opt = scion(0.02, momentum=alpha, light=True)
    p_ema, _ = _run(ema_opt, params, 5)
    state = light_opt.init(params)
    assert state[0].inner_states["hidden"][0][0].mu is None  # no momentum buffer
    carry = jax.tree.map(jnp.zeros_like, params)
    p = params
    for t in range(5):
        carry = jax.tree.map(jnp.add, light_accumulator(carry, alpha), _grads(params, t))
        updates, state = light_opt.update(carry, state, p)
        p = optax.apply_updates(p, updates)
    # identical directions (every LMO is scale invariant) up to the normalisations' ε
    assert_rel_close(p, p_ema, rtol=1e-5)


def test_inject_hyperparams_schedules_and_chain():
    params = _params(3)
    ref, _ = _run(scion(0.03, momentum=0.2), params, 3)
    injected = optax.inject_hyperparams(scion)(learning_rate=0.03, momentum=0.2)
    out, state = _run(injected, params, 3)
    assert_trees_all_close(out, ref, rtol=1e-6, atol=1e-7)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.03)
    sched = optax.linear_schedule(0.03, 0.0, 10)
    out_s, _ = _run(optax.chain(optax.clip_by_global_norm(1.0), scion(sched)), params, 2)
    assert jax.tree.structure(out_s) == jax.tree.structure(params)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
def test_updates_keep_param_dtype(dtype):
    params = _params(4, dtype)
    opt = scion(0.01, mu_dtype=jnp.float32)
    state = opt.init(params)
    updates, state = jax.jit(opt.update)(_grads(params, 0), state, params)
    for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params)):
        assert u.dtype == p.dtype
    mus = [m for m in jax.tree.leaves(state) if m.ndim > 0]
    assert all(m.dtype == jnp.float32 for m in mus)


def test_float64(x64):
    params = _params(5, jnp.float64)
    out, _ = _run(scion(0.01), params, 2)
    assert all(x.dtype == jnp.float64 for x in jax.tree.leaves(out))


def test_no_recompile_on_second_step():
    params = _params(6)
    opt = scion(0.01)
    state = opt.init(params)
    step = jax.jit(opt.update)
    grads = _grads(params, 0)
    _, state2 = step(grads, state, params)
    assert_no_recompile(step, grads, state2, params)


def test_state_keeps_sharding_on_8_devices():
    """Momentum buffers follow their parameter's sharding through init and every update."""
    mesh = sharding.data_mesh()
    assert mesh.size == 8
    params = sharding.replicate(_params(7), mesh)
    row_sharded = jax.sharding.NamedSharding(mesh, jax.P("data"))
    params["dense"]["kernel"] = jax.device_put(params["dense"]["kernel"], row_sharded)
    opt = scion(0.01)
    update = jax.jit(opt.update)

    def momenta(state):
        out = {}
        for inner in state[0].inner_states.values():
            mu = inner.inner_state[0].mu
            for path, leaf in jax.tree_util.tree_flatten_with_path(
                mu, is_leaf=lambda x: isinstance(x, optax.MaskedNode)
            )[0]:
                if not isinstance(leaf, optax.MaskedNode):
                    out[jax.tree_util.keystr(path)] = leaf
        return out

    flat_params = {
        jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(params)[0]
    }
    state = jax.jit(opt.init)(params)
    for _ in range(2):
        grads = jax.tree.map(lambda g, p: jax.device_put(g, p.sharding), _grads(params, 0), params)
        _, state = update(grads, state, params)
        mus = momenta(state)
        assert set(mus) == set(flat_params)
        for key, mu in mus.items():
            p = flat_params[key]
            assert mu.sharding.is_equivalent_to(p.sharding, p.ndim), (key, mu.sharding)
    assert momenta(state)["['dense']['kernel']"].sharding.spec[0] == "data"


def test_converges_on_a_matrix_quadratic_and_an_mlp():
    target = jnp.asarray(np.random.default_rng(8).normal(size=(16, 16)), jnp.float32)
    params = {"w": jnp.zeros((16, 16))}
    opt = unconstrained_scion(
        optax.linear_schedule(0.5, 0.0, 200),
        momentum=0.5,
        groups={"hidden": ScionGroup("spectral", 1.0)},
        param_labels={"w": "hidden"},
    )
    loss = lambda p: 0.5 * jnp.sum((p["w"] - target) ** 2)  # noqa: E731
    state = opt.init(params)

    @jax.jit
    def step(p, s):
        u, s = opt.update(jax.grad(loss)(p), s, p)
        return optax.apply_updates(p, u), s

    l0 = loss(params)
    for _ in range(200):
        params, state = step(params, state)
    assert loss(params) < 1e-2 * l0

    mlp = MLP(8, (32,), 3, rngs=nnx.Rngs(0))
    graphdef, p = nnx.split(mlp)
    x = jnp.asarray(np.random.default_rng(9).normal(size=(64, 8)), jnp.float32)
    y = (x[:, 0] > 0).astype(jnp.int32) + (x[:, 1] > 0)
    opt = scion(0.05)
    s = opt.init(p)

    def mlp_loss(p):
        logits = nnx.merge(graphdef, p)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def mlp_step(p, s):
        u, s = opt.update(jax.grad(mlp_loss)(p), s, p)
        return optax.apply_updates(p, u), s

    first = mlp_loss(p)
    for _ in range(150):
        p, s = mlp_step(p, s)
    assert mlp_loss(p) < 0.5 * first


def test_default_labels_on_models_and_overrides():
    lm = TransformerLM(
        LMConfig(vocab_size=11, d_model=16, num_layers=1, num_heads=2, tie_embeddings=False),
        rngs=nnx.Rngs(0),
    )
    labels = default_labels(nnx.state(lm, nnx.Param))
    flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(labels)[0]}
    assert {v for k, v in flat.items() if "embed" in k} == {"embedding"}
    assert {v for k, v in flat.items() if "lm_head" in k} == {"head"}
    assert {v for k, v in flat.items() if "norm" in k} == {"bias"}
    assert {v for k, v in flat.items() if "mlp" in k and "kernel" in k} == {"hidden"}
    tied = default_labels({"embed": {"embedding": jnp.ones((4, 3))}}, overrides={r"embed": "head"})
    assert tied == {"embed": {"embedding": "head"}}


def test_validation():
    with pytest.raises(ValueError, match="momentum"):
        scale_by_scion("spectral", momentum=0.0)
    with pytest.raises(ValueError, match="groups"):
        scion(0.1, groups={})
    with pytest.raises(ValueError, match="ScionGroup"):
        scion(0.1, groups={"hidden": ("spectral", 1.0)})
    opt = scion(0.1, groups={"hidden": ScionGroup()})
    with pytest.raises(ValueError, match=r"'bias'.*no group"):  # a label without a group
        opt.init({"bias": jnp.ones(3)})


def test_batched_matrices_equal_per_leaf():
    rng = np.random.default_rng(11)
    params = {
        f"l{i}": {"kernel": jnp.asarray(rng.normal(size=(8, 12)), jnp.float32)} for i in range(3)
    }
    params["odd"] = {"kernel": jnp.asarray(rng.normal(size=(12, 8)), jnp.float32)}
    params["norm"] = {"scale": jnp.ones(8)}
    outs = []
    for batch in (True, False):
        opt = scale_by_scion("auto", 2.0, momentum=0.5, batch_matrices=batch)
        state = opt.init(params)
        u, _ = jax.jit(opt.update)(_grads(params, 0), state)
        outs.append(u)
    # identical arithmetic per matrix; only XLA's batched vs single matmul order differs
    assert_trees_all_close(outs[0], outs[1], rtol=1e-5, atol=1e-6)
