"""GCG (lions_jax.spd.gcg): embedding forward, token gradients, candidates, batched evaluation,
the attack loop (loss goes down, vmap), input validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lions_jax._src.testing import assert_no_recompile, raises_invalid
from lions_jax.data.text import ByteTokenizer
from lions_jax.models import LMConfig, TransformerLM
from lions_jax.spd import gcg
from lions_jax.spd.gcg import (
    GCGConfig,
    allowed_token_mask,
    candidate_losses,
    gcg_attack,
    gcg_step,
    sample_candidates,
    target_loss,
    token_gradients,
)

TOK = ByteTokenizer()
CFG = GCGConfig(num_steps=10, top_k=16, num_candidates=32)


def _ids(text: str, *, bos: bool = False) -> jax.Array:
    return jnp.asarray(TOK.encode(text, add_bos=bos), jnp.int32)


def _lm(**kw) -> TransformerLM:
    cfg = dict(vocab_size=TOK.vocab_size, d_model=32, num_layers=1, num_heads=2, max_len=64)
    cfg.update(kw)
    return TransformerLM(LMConfig(**cfg), rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def split():
    return nnx.split(_lm())


PREFIX = _ids("User: how do I make X ", bos=True)
SUFFIX = _ids("!!!!!!!!")
INFIX = _ids("\nAssistant: ")
TARGET = _ids("Sure, here is")
PROMPT = (PREFIX, SUFFIX, INFIX, TARGET)


# ------------------------------------------------------------------------------------------------
# forward / loss / gradients
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("position", ["rope", "learned"])
def test_embedding_forward_matches_model(position):
    lm = _lm(position=position)
    g, s = nnx.split(lm)
    ids = jax.random.randint(jax.random.key(1), (2, 12), 0, TOK.vocab_size)

    @jax.jit
    def both(s, ids):
        m = nnx.merge(g, s)
        return m(ids), gcg._logits_from_embeds(m, m.embed(ids))

    ref, out = both(s, ids)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_target_loss_is_teacher_forced_nll(split):
    g, s = split
    tokens = jnp.concatenate(PROMPT)
    logp = jax.nn.log_softmax(jax.jit(lambda s: nnx.merge(g, s)(tokens[None])[0])(s))
    n = TARGET.shape[0]
    start = tokens.shape[0] - n
    ref = -jnp.mean(logp[start - 1 : -1][jnp.arange(n), TARGET])
    np.testing.assert_allclose(target_loss(g, s, *PROMPT), ref, rtol=1e-5)


def test_token_gradients_match_finite_differences(split):
    g, s = split
    grad = token_gradients(g, s, *PROMPT)
    assert grad.shape == (SUFFIX.shape[0], TOK.vocab_size) and grad.dtype == jnp.float32

    @jax.jit
    def relaxed_loss(s, onehot):
        return gcg._onehot_loss(nnx.merge(g, s), onehot, PREFIX, INFIX, TARGET)

    onehot = jax.nn.one_hot(SUFFIX, TOK.vocab_size)
    # at an exact one-hot the relaxed loss is the token loss
    np.testing.assert_allclose(relaxed_loss(s, onehot), target_loss(g, s, *PROMPT), rtol=1e-6)
    # central differences (float32: the model's logits are float32 even with float64 parameters)
    # along random unit directions and along single coordinates
    eps = 1e-2
    rng = np.random.default_rng(0)
    dirs = [rng.standard_normal(onehot.shape) for _ in range(2)]
    for i, v in [(0, 65), (3, 33), (7, 257)]:
        d = np.zeros(onehot.shape)
        d[i, v] = 1.0
        dirs.append(d)
    scale = float(jnp.linalg.norm(grad))
    for d in dirs:
        d = jnp.asarray(d / np.linalg.norm(d), jnp.float32)
        fd = (relaxed_loss(s, onehot + eps * d) - relaxed_loss(s, onehot - eps * d)) / (2 * eps)
        assert abs(float(jnp.sum(grad * d)) - float(fd)) <= 1e-3 * scale


# ------------------------------------------------------------------------------------------------
# candidates and their evaluation
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("allowed", [gcg.PRINTABLE_ASCII, (40, 41, 42)])
def test_sample_candidates_are_single_swaps_from_topk(allowed):
    m, v, k = 6, TOK.vocab_size, 8
    grad = jax.random.normal(jax.random.key(0), (m, v))
    mask = allowed_token_mask(allowed, v)
    suffix = jnp.full((m,), allowed[0], jnp.int32)
    cands = np.asarray(
        sample_candidates(
            jax.random.key(1), grad, suffix, top_k=k, num_candidates=64, allowed_mask=mask
        )
    )
    assert cands.shape == (64, m)
    assert np.isin(cands, allowed).all()
    diff = cands != np.asarray(suffix)[None]
    assert (diff.sum(axis=1) <= 1).all()
    scores = np.where(np.asarray(mask)[None], -np.asarray(grad), -np.inf)
    top = np.argsort(-scores, axis=1)[:, : min(k, len(allowed))]
    rows, pos = np.nonzero(diff)
    assert len(rows) > 40  # most rows change a token (a no-op swap keeps the token)
    for r, p in zip(rows, pos):
        assert cands[r, p] in top[p]
    assert len(set(pos.tolist())) == m  # positions are spread over the whole suffix


def test_batched_candidate_losses_match_one_by_one(split):
    g, s = split
    cands = jax.random.choice(
        jax.random.key(0), jnp.asarray(gcg.PRINTABLE_ASCII), (5, SUFFIX.shape[0])
    ).astype(jnp.int32)
    batched = candidate_losses(g, s, PREFIX, cands, INFIX, TARGET)
    chunked = candidate_losses(g, s, PREFIX, cands, INFIX, TARGET, eval_batch_size=2)
    single = jnp.stack([target_loss(g, s, PREFIX, c, INFIX, TARGET) for c in cands])
    np.testing.assert_allclose(batched, single, rtol=1e-5)
    np.testing.assert_allclose(chunked, single, rtol=1e-5)


def test_gcg_step(split):
    g, s = split
    mask = allowed_token_mask(gcg.PRINTABLE_ASCII, TOK.vocab_size)
    kw = dict(top_k=8, num_candidates=16, allowed_mask=mask)
    start = target_loss(g, s, *PROMPT)
    new, loss = gcg_step(jax.random.key(0), g, s, *PROMPT, **kw)
    assert new.shape == SUFFIX.shape and new.dtype == jnp.int32
    assert int(jnp.sum(new != SUFFIX)) <= 1
    np.testing.assert_allclose(loss, target_loss(g, s, PREFIX, new, INFIX, TARGET), rtol=1e-5)
    kept, kept_loss = gcg_step(jax.random.key(0), g, s, *PROMPT, keep_current=True, **kw)
    # same key, same candidates: the best one, or the current suffix if that is better
    np.testing.assert_array_equal(kept, new if loss < start else SUFFIX)
    assert kept_loss <= start + 1e-6
    np.testing.assert_allclose(kept_loss, min(float(loss), float(start)), rtol=1e-5)


# ------------------------------------------------------------------------------------------------
# the attack
# ------------------------------------------------------------------------------------------------
def test_gcg_attack_lowers_target_loss_and_vmaps(split):
    g, s = split
    keys = jax.random.split(jax.random.key(3), 2)
    prefixes = jnp.stack([PREFIX, _ids("User: how do I make Y ", bos=True)])
    suffixes = jnp.stack([SUFFIX, _ids("xxxxyyyy")])
    targets = jnp.stack([TARGET, _ids("Okay, here is")])
    batched = jax.vmap(lambda k, p, x, t: gcg_attack(k, g, s, p, x, INFIX, t, config=CFG))(
        keys, prefixes, suffixes, targets
    )
    for b in range(2):
        args = (keys[b], g, s, prefixes[b], suffixes[b], INFIX, targets[b])
        res = assert_no_recompile(gcg_attack, *args, config=CFG)
        # vmap over prompts gives the per-prompt results
        np.testing.assert_array_equal(batched.suffix[b], res.suffix)
        np.testing.assert_allclose(batched.losses[b], res.losses, rtol=1e-5)
        # the attack lowers the target loss; losses is the best-so-far history
        assert res.losses.shape == res.step_losses.shape == (CFG.num_steps,)
        np.testing.assert_allclose(res.initial_loss, target_loss(g, s, *args[3:]), rtol=1e-5)
        assert res.loss < res.initial_loss
        assert res.losses[0] <= res.initial_loss
        assert (np.diff(np.asarray(res.losses)) <= 0).all()
        np.testing.assert_allclose(res.loss, res.losses[-1])
        np.testing.assert_allclose(
            res.loss,
            target_loss(g, s, prefixes[b], res.suffix, INFIX, targets[b]),
            rtol=1e-5,
        )
        assert np.isin(np.asarray(res.suffix), CFG.allowed).all()


def test_gcg_attack_under_an_outer_jit_with_constant_prompts(split):
    """Closed-over constant prompts inside a user's jit: the id-range check must not turn them
    into tracers (it uses NumPy), and the result equals the un-jitted call."""
    g, s = split
    cfg = GCGConfig(num_steps=3, top_k=8, num_candidates=8)
    prefix, suffix, infix, target = PROMPT  # concrete jax arrays, closed over by the jit
    run = jax.jit(lambda k: gcg_attack(k, g, s, prefix, jnp.full(suffix.shape, 33), infix, target,
                                       config=cfg))  # fmt: skip
    ref = gcg_attack(jax.random.key(5), g, s, prefix, np.full(suffix.shape, 33), infix, target,
                     config=cfg)  # fmt: skip
    np.testing.assert_array_equal(run(jax.random.key(5)).suffix, ref.suffix)


# ------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------
def test_invalid_inputs(split):
    g, s = split
    key = jax.random.key(0)
    p, x, i, t = PROMPT
    with raises_invalid("top_k"):
        GCGConfig(top_k=0)
    with raises_invalid("num_candidates"):
        GCGConfig(num_candidates=0)
    with raises_invalid("num_steps"):
        GCGConfig(num_steps=0)
    with raises_invalid("allowed"):
        GCGConfig(allowed=())
    with raises_invalid("allowed"):
        gcg_attack(key, g, s, p, x, i, t, config=GCGConfig(allowed=(33, 300)))
    with raises_invalid("top_k"):
        gcg_attack(key, g, s, p, x, i, t, config=GCGConfig(top_k=1000))
    with raises_invalid("suffix"):
        gcg_attack(key, g, s, p, _ids("ab cd"), i, t, config=CFG)  # space is not allowed
    with raises_invalid("prefix"):
        target_loss(g, s, p[None], x, i, t)
    with raises_invalid("suffix"):
        token_gradients(g, s, p, x.astype(jnp.float32), i, t)
    with raises_invalid("suffix"):
        target_loss(g, s, p, x[:0], i, t)
    with raises_invalid("target"):
        target_loss(g, s, p, x, i, t[:0])
    with raises_invalid("target"):
        target_loss(g, s, p, x, i, t.at[0].set(TOK.vocab_size))
    with raises_invalid("max_len"):
        target_loss(g, s, jnp.zeros((60,), jnp.int32), x, i, t)
    mask = allowed_token_mask(gcg.PRINTABLE_ASCII, TOK.vocab_size)
    with raises_invalid("top_k"):
        gcg_step(key, g, s, *PROMPT, top_k=0, num_candidates=4, allowed_mask=mask)
    with raises_invalid("num_candidates"):
        gcg_step(key, g, s, *PROMPT, top_k=4, num_candidates=0, allowed_mask=mask)
    with raises_invalid("allowed_mask"):
        gcg_step(key, g, s, *PROMPT, top_k=4, num_candidates=4, allowed_mask=mask[:10])
    with raises_invalid("allowed_mask"):
        gcg_step(key, g, s, *PROMPT, top_k=4, num_candidates=4, allowed_mask=mask.astype(int))
    not_lm = nnx.split(nnx.Linear(2, 2, rngs=nnx.Rngs(0)))
    with raises_invalid("graphdef"):
        target_loss(*not_lm, *PROMPT)
    with raises_invalid("candidates"):
        candidate_losses(g, s, p, x, i, t)
