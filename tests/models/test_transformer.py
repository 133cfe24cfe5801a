import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from lions_jax._src.testing import assert_rel_close, raises_invalid
from lions_jax.models import (
    MLP,
    EncoderConfig,
    LMConfig,
    TransformerEncoder,
    TransformerLM,
    apply_rope,
    mean_pool,
)

LM = LMConfig(vocab_size=37, d_model=32, num_layers=2, num_heads=4, max_len=64)
GPT2 = LMConfig.gpt2(vocab_size=37, d_model=32, num_layers=2, num_heads=4, max_len=64)
BERT = EncoderConfig.bert(vocab_size=41, d_model=32, num_layers=2, num_heads=4, d_ff=64, max_len=32)


def jitted(model, method="__call__"):
    """A jitted functional call of ``model.method`` (eager NNX calls compile op by op: slow)."""
    graphdef, state = nnx.split(model)
    fn = jax.jit(lambda st, *a, **k: getattr(nnx.merge(graphdef, st), method)(*a, **k))
    return lambda *a, **k: fn(state, *a, **k)


def test_mlp_shapes_validation_and_ensemble():
    mlp = MLP(5, (7,), 3, rngs=nnx.Rngs(0))
    assert mlp(jnp.ones((4, 5))).shape == (4, 3)
    with pytest.raises(ValueError, match="expected last axis 5"):
        mlp(jnp.ones((4, 6)))
    with pytest.raises(ValueError, match="widths must be positive"):
        MLP(5, (0,), 3, rngs=nnx.Rngs(0))
    # an ensemble is a vmap over keys of the constructor's state
    graphdef = nnx.graphdef(mlp)
    states = jax.vmap(lambda k: nnx.state(MLP(5, (7,), 3, rngs=nnx.Rngs(k))))(
        jax.random.split(jax.random.key(0), 4)
    )
    out = jax.vmap(lambda s, x: nnx.merge(graphdef, s)(x), in_axes=(0, None))(states, jnp.ones(5))
    assert out.shape == (4, 3) and len(np.unique(np.asarray(out[:, 0]))) == 4


@settings(max_examples=20, deadline=None)
@given(m=st.integers(0, 50), n=st.integers(0, 50), shift=st.integers(-20, 20))
def test_rope_scores_depend_on_relative_position_only(m, n, shift):
    q, k = jax.random.normal(jax.random.key(0), (2, 1, 1, 1, 8))

    def score(i, j):
        qi = apply_rope(q, jnp.array([[i]]))
        kj = apply_rope(k, jnp.array([[j]]))
        return float(jnp.sum(qi * kj))

    # float32 angles of positions up to 70: round-off ~1e-5 relative
    np.testing.assert_allclose(
        score(m + 20, n + 20), score(m + 20 + shift, n + 20 + shift), rtol=1e-4, atol=1e-4
    )


def test_rope_is_a_rotation():
    x = jax.random.normal(jax.random.key(1), (2, 5, 3, 8))
    pos = jnp.tile(jnp.arange(5), (2, 1))
    y = apply_rope(x, pos)
    np.testing.assert_allclose(
        jnp.linalg.norm(y, axis=-1), jnp.linalg.norm(x, axis=-1), rtol=1e-5, atol=0
    )
    np.testing.assert_array_equal(y[:, 0], x[:, 0])  # position 0 is the identity
    with pytest.raises(ValueError, match="even"):
        apply_rope(jnp.ones((1, 1, 1, 3)), jnp.zeros((1, 1), jnp.int32))


@pytest.mark.parametrize("cfg", [LM, GPT2], ids=["rope-rms-swiglu", "gpt2"])
def test_lm_is_causal_and_left_padding_invariant(cfg):
    lm = jitted(TransformerLM(cfg, rngs=nnx.Rngs(0)))
    toks = jax.random.randint(jax.random.key(0), (2, 10), 0, cfg.vocab_size)
    logits = lm(toks)
    assert logits.shape == (2, 10, cfg.vocab_size) and logits.dtype == jnp.float32
    changed = lm(toks.at[:, 6].set((toks[:, 6] + 1) % cfg.vocab_size))
    np.testing.assert_array_equal(changed[:, :6], logits[:, :6])
    assert not np.allclose(changed[:, 6:], logits[:, 6:])
    # left-pad row 0 by 3 tokens: real positions give the same logits
    padded = jnp.concatenate([jnp.zeros((2, 3), toks.dtype), toks], axis=1)
    mask = jnp.concatenate([jnp.zeros((2, 3), bool), jnp.ones((2, 10), bool)], axis=1)
    np.testing.assert_allclose(lm(padded, attention_mask=mask)[:, 3:], logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cfg", [LM, GPT2], ids=["rope-rms-swiglu", "gpt2"])
def test_prefill_and_decode_equal_full_forward_fp64(cfg, x64):
    """The KV-cache path computes exactly the full forward pass (fp64, to round-off)."""
    import dataclasses

    cfg = dataclasses.replace(cfg, param_dtype="float64")
    model = TransformerLM(cfg, rngs=nnx.Rngs(1))
    toks = jax.random.randint(jax.random.key(2), (3, 12), 0, cfg.vocab_size)
    mask = jnp.ones((3, 12), bool).at[0, :4].set(False)  # row 0 left-padded
    full = jitted(model)(toks, attention_mask=mask)
    cache = model.init_cache(3, 12)
    logits, cache = jitted(model, "prefill")(toks[:, :7], cache, attention_mask=mask[:, :7])
    steps = [logits]
    decode = jitted(model, "decode_step")
    for t in range(7, 12):
        step_logits, cache = decode(toks[:, t], cache)
        steps.append(step_logits[:, None])
    cached = jnp.concatenate(steps, axis=1)
    # the model computes in float64 and returns float32 logits: equal to float32 rounding
    assert cached.dtype == jnp.float32
    assert_rel_close(cached[1:], full[1:], rtol=1e-7)
    assert_rel_close(cached[0, 4:], full[0, 4:], rtol=1e-7)
    assert int(cache.index) == 12
    np.testing.assert_array_equal(cache.positions, [8, 12, 12])  # real tokens per row
    # extend: the last five tokens in one pass after the same prefill
    cache = model.init_cache(3, 12)
    _, cache = jitted(model, "prefill")(toks[:, :7], cache, attention_mask=mask[:, :7])
    ext, cache = jitted(model, "extend")(toks[:, 7:], cache)
    assert_rel_close(ext[1:], full[1:, 7:], rtol=1e-7)
    assert_rel_close(ext[0], full[0, 7:], rtol=1e-7)
    assert int(cache.index) == 12
    np.testing.assert_array_equal(cache.positions, [8, 12, 12])


def test_learned_positions_bound_the_cache():
    lm = TransformerLM(GPT2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="exceeds max_len"):
        lm.init_cache(1, 65)
    with raises_invalid("tokens: expected int"):
        lm(jnp.ones((2, 3)))


def test_config_validation():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        LMConfig(vocab_size=5, d_model=30, num_heads=4)
    with pytest.raises(ValueError, match="needs a vocab_size"):
        EncoderConfig(vocab_size=None)
    with pytest.raises(ValueError, match="multiple of"):
        EncoderConfig.vit(image_size=30, patch_size=8)


def test_bert_encoder_padding_does_not_leak():
    model = TransformerEncoder(BERT, rngs=nnx.Rngs(0))
    enc = jitted(model)
    ids = jax.random.randint(jax.random.key(0), (2, 9), 1, 41)
    types = jnp.zeros_like(ids).at[:, 5:].set(1)
    mask = jnp.ones((2, 9), bool).at[1, 6:].set(False)
    h = enc(ids, attention_mask=mask, token_type_ids=types)
    assert h.shape == (2, 9, 32)
    # changing padded tokens of row 1 leaves its real tokens unchanged
    h2 = enc(ids.at[1, 6:].set(3), attention_mask=mask, token_type_ids=types)
    np.testing.assert_allclose(h2[1, :6], h[1, :6], rtol=1e-6, atol=1e-6)
    assert jitted(model, "pool")(h).shape == (2, 32)


def test_pluggable_attention_function_is_used():
    calls = []

    def my_attention(q, k, v, bias=None, mask=None, **kw):
        calls.append((q.shape, None if mask is None else mask.shape))
        return jax.nn.dot_product_attention(q, k, v, bias=bias, mask=mask, **kw)

    enc = TransformerEncoder(BERT, attention_fn=my_attention, rngs=nnx.Rngs(0))
    ref = TransformerEncoder(BERT, rngs=nnx.Rngs(0))
    ids = jnp.ones((2, 5), jnp.int32)
    mask = jnp.ones((2, 5), bool)
    np.testing.assert_array_equal(enc(ids, attention_mask=mask), ref(ids, attention_mask=mask))
    assert calls == [((2, 5, 4, 8), (2, 1, 1, 5))] * 2


def test_vit_patch_embedding():
    cfg = EncoderConfig.vit(
        image_size=16, patch_size=4, num_channels=3, d_model=32, num_layers=1, num_heads=4, d_ff=64
    )
    vit = TransformerEncoder(cfg, rngs=nnx.Rngs(0))
    out = jitted(vit)(images=jnp.ones((2, 16, 16, 3)))
    assert out.shape == (2, 17, 32)  # 16 patches + class token
    with raises_invalid("NHWC"):
        vit(images=jnp.ones((2, 3, 16, 16)))
    with pytest.raises(ValueError, match="exactly one of"):
        vit()


def test_mean_pool():
    h = jnp.arange(12.0).reshape(1, 4, 3)
    mask = jnp.array([[1, 1, 0, 0]])
    np.testing.assert_allclose(mean_pool(h, mask), [[1.5, 2.5, 3.5]], rtol=0, atol=1e-7)
    np.testing.assert_allclose(mean_pool(h), h.mean(1), rtol=0, atol=1e-7)
    np.testing.assert_array_equal(mean_pool(h, jnp.zeros((1, 4))), jnp.zeros((1, 3)))
