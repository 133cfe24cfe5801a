import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lions_jax._src.testing import assert_no_recompile, count_compilations, raises_invalid
from lions_jax.models import (
    LMConfig,
    TransformerLM,
    generate,
    generate_uncached,
    init_model,
    sample_token,
    sequence_logprobs,
    token_logprobs,
)

CFG = LMConfig(vocab_size=29, d_model=32, num_layers=2, num_heads=4, max_len=64)


@pytest.fixture(scope="module")
def lm():
    return init_model(lambda rngs: TransformerLM(CFG, rngs=rngs), jax.random.key(0))


def _apply(graphdef, params, tokens):
    return nnx.merge(graphdef, params)(tokens)


def test_cached_generation_equals_uncached(lm):
    graphdef, state = lm
    prompt = jax.random.randint(jax.random.key(1), (3, 6), 0, CFG.vocab_size)
    out = generate(None, graphdef, state, prompt, max_new_tokens=8, return_logprobs=True)
    ref = generate_uncached(
        None,
        functools.partial(_apply, graphdef),
        state,
        prompt,
        max_new_tokens=8,
        return_logprobs=True,
    )
    np.testing.assert_array_equal(out.tokens, ref.tokens)
    # cache vs recomputation: float32 round-off in different summation orders
    np.testing.assert_allclose(out.token_logprobs, ref.token_logprobs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.logprobs, ref.logprobs, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out.lengths, [8, 8, 8])
    # token_logprobs are the chosen entries of the full log-softmax, which sums to one
    picked = jnp.take_along_axis(out.logprobs, out.tokens[..., None], -1)[..., 0]
    np.testing.assert_allclose(picked, out.token_logprobs, rtol=0, atol=0)
    np.testing.assert_allclose(jnp.exp(out.logprobs).sum(-1), 1.0, rtol=1e-5)
    # greedy: each generated token is the argmax of its step's distribution
    np.testing.assert_array_equal(out.tokens, jnp.argmax(out.logprobs, -1))


def test_greedy_tokens_match_teacher_forced_logprobs(lm):
    graphdef, state = lm
    prompt = jax.random.randint(jax.random.key(2), (2, 5), 0, CFG.vocab_size)
    out = generate(None, graphdef, state, prompt, max_new_tokens=6)
    full = jnp.concatenate([prompt, out.tokens], axis=1)
    lp = jax.jit(sequence_logprobs, static_argnums=0)(graphdef, state, full)
    np.testing.assert_allclose(lp[:, 4:], out.token_logprobs, rtol=1e-5, atol=1e-5)


def test_left_padded_batch_equals_rows_alone(lm):
    graphdef, state = lm
    prompt = jax.random.randint(jax.random.key(3), (2, 7), 0, CFG.vocab_size)
    mask = jnp.ones((2, 7), bool).at[0, :3].set(False)
    batched = generate(None, graphdef, state, prompt, max_new_tokens=5, prompt_mask=mask)
    alone = generate(None, graphdef, state, prompt[:1, 3:], max_new_tokens=5)
    np.testing.assert_array_equal(batched.tokens[0], alone.tokens[0])
    np.testing.assert_allclose(
        batched.token_logprobs[0], alone.token_logprobs[0], rtol=1e-5, atol=1e-5
    )


def test_sampling_is_reproducible_and_key_dependent(lm):
    graphdef, state = lm
    prompt = jnp.zeros((4, 3), jnp.int32)
    kw = dict(max_new_tokens=10, temperature=1.0)
    a = generate(jax.random.key(0), graphdef, state, prompt, **kw)
    b = generate(jax.random.key(0), graphdef, state, prompt, **kw)
    c = generate(jax.random.key(1), graphdef, state, prompt, **kw)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert not np.array_equal(a.tokens, c.tokens)
    top1 = generate(
        jax.random.key(0), graphdef, state, prompt, max_new_tokens=10, temperature=1.0, top_k=1
    )
    greedy = generate(None, graphdef, state, prompt, max_new_tokens=10)
    np.testing.assert_array_equal(top1.tokens, greedy.tokens)


def test_sample_token_top_k_support():
    logits = jnp.array([[0.0, 5.0, 4.0, -1.0]])
    keys = jax.random.split(jax.random.key(0), 200)
    toks = jax.vmap(lambda k: sample_token(k, logits, temperature=1.0, top_k=2))(keys)
    assert set(np.unique(np.asarray(toks)).tolist()) == {1, 2}
    with pytest.raises(ValueError, match="top_k"):
        sample_token(keys[0], logits, temperature=1.0, top_k=5)
    with pytest.raises(ValueError, match="key"):
        sample_token(None, logits, temperature=1.0)


def test_eos_stops_rows(lm):
    graphdef, state = lm
    prompt = jax.random.randint(jax.random.key(4), (3, 4), 0, CFG.vocab_size)
    free = generate(None, graphdef, state, prompt, max_new_tokens=8)
    eos = int(free.tokens[0, 2])  # row 0 emits this token at step 2 (or earlier)
    out = generate(None, graphdef, state, prompt, max_new_tokens=8, eos_id=eos, pad_id=28)
    for r in range(3):
        row = np.asarray(free.tokens[r])
        hits = np.flatnonzero(row == eos)
        n = hits[0] + 1 if hits.size else 8
        assert int(out.lengths[r]) == n
        np.testing.assert_array_equal(out.tokens[r, :n], row[:n])
        assert (np.asarray(out.tokens[r, n:]) == 28).all()
        assert (np.asarray(out.token_logprobs[r, n:]) == 0).all()


def test_generate_compiles_once(lm):
    graphdef, state = lm
    prompt = jnp.zeros((2, 4), jnp.int32)
    generate(None, graphdef, state, prompt, max_new_tokens=3)
    new_state = jax.tree.map(lambda x: x * 1.01, state)
    new_prompt = prompt + 1
    with count_compilations() as c:  # new parameter values and prompts: no recompilation
        out = generate(None, graphdef, new_state, new_prompt, max_new_tokens=3)
        out.tokens.block_until_ready()
    assert c.count == 0
    assert_no_recompile(
        lambda: generate(
            jax.random.key(1), graphdef, state, prompt, max_new_tokens=3, temperature=0.7
        )
    )


def test_generation_validation(lm):
    graphdef, state = lm
    with raises_invalid("prompt: expected int"):
        generate(None, graphdef, state, jnp.zeros((2, 3)), max_new_tokens=2)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(None, graphdef, state, jnp.zeros((2, 3), jnp.int32), max_new_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        generate(
            None, graphdef, state, jnp.zeros((2, 3), jnp.int32), max_new_tokens=2, temperature=-1.0
        )


def test_token_logprobs():
    logits = jnp.log(jnp.array([[[0.25, 0.75], [0.5, 0.5]]]))
    np.testing.assert_allclose(
        token_logprobs(logits, jnp.array([[1, 0]])), jnp.log(jnp.array([[0.75, 0.5]])), rtol=1e-6
    )
