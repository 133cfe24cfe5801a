"""The toy conversation game of ``mpo-lm``: judge, exact answer statistics, data and losses."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lions_jax._src.testing import raises_invalid
from lions_jax.models import TransformerLM, init_model
from lions_jax.mpo import lm
from lions_jax.mpo.lm import (
    STYLE_MATRIX,
    LMGameConfig,
    answer_distribution,
    expected_preference,
    judge,
    make_train,
    sample_sft_batch,
    state_exploitability,
)

# One tiny shape for every test here (one jit cache).
TINY = dict(
    horizon=2, num_samples=3, num_prompts=4, num_iterations=1, inner_steps=2, sft_steps=3,
    sft_batch=8, d_model=16, num_heads=2, num_eval_prompts=4,
)  # fmt: skip


def test_judge_is_constant_sum_in_unit_interval_and_cyclic():
    s, c, s2, c2 = (jnp.asarray(v) for v in np.array(list(
        itertools.product(range(4), (0, 1), range(4), (0, 1))
    )).T)  # fmt: skip
    r = np.asarray(judge(s, c, s2, c2, 0.4))
    assert ((r >= 0) & (r <= 1)).all()
    assert np.allclose(r + np.asarray(judge(s2, c2, s, c, 0.4)), 1.0, atol=1e-6)
    # style 0 beats 1 beats 2 beats 0 (equal correctness): not Bradley-Terry
    cyc = judge(jnp.array([0, 1, 2]), 1, jnp.array([1, 2, 0]), 1, 0.4)
    assert (np.asarray(cyc) > 0.5).all()
    assert np.allclose(STYLE_MATRIX, -STYLE_MATRIX.T)


def test_expected_preference_and_exploitability_match_enumeration():
    rng = np.random.default_rng(0)
    w = 0.4
    for _ in range(5):
        ps, ps2 = rng.dirichlet(np.ones(4), size=2)
        pc, pc2 = rng.uniform(size=2)
        # brute force over (style, correct) of both answers, independent
        s, c, s2, c2 = np.array(list(itertools.product(range(4), (0, 1), range(4), (0, 1)))).T
        prob = ps[s] * np.where(c, pc, 1 - pc) * ps2[s2] * np.where(c2, pc2, 1 - pc2)
        brute = float(np.sum(prob * np.asarray(judge(s, c, s2, c2, w))))
        assert float(expected_preference(ps, pc, ps2, pc2, w)) == pytest.approx(brute, abs=1e-5)
        # best response over the 3 styles x {correct, wrong} candidates
        s, c = np.array(list(itertools.product(range(3), (0.0, 1.0)))).T
        best = float(np.max(expected_preference(np.eye(4)[s.astype(int)], c, ps, pc, w)))
        assert float(state_exploitability(ps, pc, w)) == pytest.approx(best - 0.5, abs=1e-5)
    nash = np.array([1 / 3, 1 / 3, 1 / 3, 0.0])
    assert float(state_exploitability(nash, 1.0, w)) == pytest.approx(0.0, abs=1e-6)
    assert float(state_exploitability(np.eye(4)[0], 1.0, w)) > 0.2


def test_sft_data_follow_the_format_and_the_running_sum():
    tok = np.asarray(sample_sft_batch(jax.random.key(0), 4000, 3, (0.6, 0.3, 0.1), 0.7))
    t = tok.reshape(-1, 3, lm.TURN)
    assert (t[..., 0] == lm.Q_TOKEN).all() and (t[..., 3] == lm.A_TOKEN).all()
    assert (t[:, 1:, 1] == t[:, :-1, 5]).all()  # u = own previous answer
    correct = t[..., 5] == (t[..., 1] + t[..., 2]) % 10
    # 12 000 Bernoulli(0.7): std 0.0042; 5 sigma
    assert correct.mean() == pytest.approx(0.7, abs=0.021)
    styles = np.bincount(t[..., 4].ravel() - lm.STYLE0, minlength=3) / correct.size
    assert np.allclose(styles, (0.6, 0.3, 0.1), atol=0.025)  # std <= 0.0045


@pytest.fixture(scope="module")
def tiny():
    """A randomly initialised tiny LM (the identities below hold for any parameters)."""
    cfg = LMGameConfig(method="ompo", **TINY)
    graphdef, params = init_model(lambda rngs: TransformerLM(cfg.lm_config(), rngs=rngs),
                                  jax.random.key(0))  # fmt: skip
    return cfg, graphdef, params


def test_answer_distribution_is_exact(tiny):
    cfg, graphdef, params = tiny
    tok = sample_sft_batch(jax.random.key(1), 3, cfg.horizon, (0.4, 0.3, 0.3), 0.5)
    logits_fn = jax.jit(lambda t: lm._logits(graphdef, params, t))
    for turn in range(cfg.horizon):
        p_style, p_corr = jax.jit(answer_distribution, static_argnums=(0, 3))(
            graphdef, params, tok, turn
        )
        assert np.allclose(p_style.sum(-1), 1.0, atol=1e-5)
        # brute force: P(correct) = sum over the 3 styles of p(style) p(target | style)
        logits = logits_fn(tok)
        pos = lm.TURN * turn + 4
        p = jax.nn.softmax(logits[:, pos - 1])
        target = (tok[:, pos - 3] + tok[:, pos - 2]) % 10
        brute = 0.0
        for s in range(3):
            ls = logits_fn(tok.at[:, pos].set(lm.STYLE0 + s))
            p_d = jax.nn.softmax(ls[:, pos])
            brute = brute + p[:, lm.STYLE0 + s] * p_d[jnp.arange(3), target]
        assert np.allclose(p_corr, brute, atol=1e-6)
        assert np.allclose(p_style[:, :3], p[:, lm.STYLE0 : lm.STYLE0 + 3], atol=1e-6)


def test_losses_tie_gives_zero_and_ompo_first_step_is_mpo(tiny):
    cfg, graphdef, params = tiny
    batch = jax.jit(lambda k: lm._make_batch(k, cfg, graphdef, params, params, jnp.array(0)))(
        jax.random.key(2)
    )
    n = cfg.num_prompts * cfg.horizon * 2  # best and worst per state
    assert batch.tokens.shape == (n, cfg.seq_len) and batch.mask.sum(-1).tolist() == [2] * n
    # logp_old is the sampling log-prob: the loss at θ = θ_t with Q̂ = 1/2 (a tie) is 0
    tie = batch._replace(q=jnp.full_like(batch.q, 0.5), q_prev=jnp.full_like(batch.q, 0.5))
    mpo_cfg = LMGameConfig(method="mpo", **TINY)
    loss = jax.jit(lambda c, b, t: lm._loss(c, graphdef, params, b, t), static_argnums=0)
    assert float(loss(mpo_cfg, tie, 0)) == pytest.approx(0.0, abs=1e-9)
    assert float(loss(cfg, tie, 1)) == pytest.approx(0.0, abs=1e-9)  # τ = 1/2
    assert float(loss(cfg, batch, 0)) == pytest.approx(float(loss(mpo_cfg, batch, 0)), rel=1e-6)
    shifted = batch._replace(q_prev=batch.q_prev + 0.3)
    assert float(loss(cfg, shifted, 1)) != pytest.approx(float(loss(mpo_cfg, shifted, 1)))
    # DPO at θ = θ_t: every log-ratio is 0, the loss is -log σ(0) = log 2
    dpo_cfg = LMGameConfig(method="step_dpo", **TINY)
    assert float(loss(dpo_cfg, batch, 1)) == pytest.approx(np.log(2), rel=1e-6)


@pytest.mark.slow  # CI runs make_train through the mpo-lm experiment (test_games_experiment)
@pytest.mark.parametrize("method", ["mpo", "ompo", "sppo", "dpo", "step_dpo"])
def test_train_runs_end_to_end(method):
    out = jax.jit(make_train(LMGameConfig(method=method, **TINY)))(jax.random.key(3))
    for v in out:
        assert v.shape[0] == TINY["num_iterations"] + 1 and np.isfinite(v).all()
    assert np.allclose(out.style_probs.sum(-1), 1.0, atol=1e-5)
    assert (out.exploitability >= 0).all()


@pytest.mark.parametrize(
    ("field", "value"),
    [("method", "ipo"), ("num_samples", 1), ("style_prior", (0.5, 0.5)), ("quality_weight", 2.0),
     ("train_on", "some"), ("horizon", 0), ("beta", 0.0)],
)  # fmt: skip
def test_config_validation(field, value):
    with raises_invalid(field):
        LMGameConfig(**{field: value})
