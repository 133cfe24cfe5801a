"""SPD's surprisal features: exact on full logits, re-normalised on an API's top-5, explicit
handling of short outputs, and clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lions_jax._src.testing import enable_x64, raises_invalid
from lions_jax.spd import feature_vector, surprisal_features


def test_full_logits_give_the_sorted_top_k_surprisals(x64):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 7, 40)) * 3
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    f = surprisal_features(jnp.asarray(logp), r=5, k=8)
    expected = np.sort(-logp[:, :5], axis=-1)[..., :8]
    # float64: log_softmax of a normalised row changes it by one rounding (~1e-15 relative)
    np.testing.assert_allclose(np.asarray(f.values), expected, rtol=0, atol=1e-12)
    assert np.asarray(f.valid).all()
    # raw logits (any per-row shift) give the same features
    shifted = surprisal_features(jnp.asarray(logits + rng.normal(size=(3, 7, 1))), r=5, k=8)
    np.testing.assert_allclose(np.asarray(shifted.values), expected, rtol=0, atol=1e-12)


def test_api_top5_is_renormalised_over_the_five(x64):
    rng = np.random.default_rng(1)
    logp = np.log(rng.dirichlet(np.ones(100), size=(4, 6)))
    top5 = -np.sort(-logp, axis=-1)[..., :5]  # what an API returns, rank-ordered
    f = surprisal_features(jnp.asarray(top5), r=6, k=5)
    p = np.exp(-np.asarray(f.values))
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-12)  # a distribution over the five
    renorm = np.exp(top5) / np.exp(top5).sum(-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(f.values), -np.log(renorm), atol=1e-12)
    # candidates the API did not return (-inf) are never kept
    padded = np.concatenate([top5, np.full((4, 6, 3), -np.inf)], axis=-1)
    np.testing.assert_allclose(
        np.asarray(surprisal_features(jnp.asarray(padded), r=6, k=5).values),
        np.asarray(f.values),
        atol=1e-12,
    )


def test_short_outputs_are_masked_not_uniform():
    logp = jax.nn.log_softmax(jax.random.normal(jax.random.key(0), (3, 5, 20)))
    f = surprisal_features(logp, r=4, k=3, lengths=jnp.array([5, 2, 0]), fill=-1.0)
    assert np.asarray(f.valid).tolist() == [[True] * 4, [True, True, False, False], [False] * 4]
    values = np.asarray(f.values)
    assert (values[1, 2:] == -1.0).all() and (values[2] == -1.0).all()
    assert (values[0] >= 0).all()
    v = np.asarray(feature_vector(f))
    assert v.shape == (3, 4 * 3 + 4)
    np.testing.assert_array_equal(v[:, :12], values.reshape(3, 12))
    np.testing.assert_array_equal(v[:, 12:], np.asarray(f.valid, float))


def test_jit_and_vmap():
    logp = jax.nn.log_softmax(jax.random.normal(jax.random.key(1), (2, 3, 6, 30)))
    lengths = jnp.array([[6, 1, 3], [2, 6, 0]])
    direct = surprisal_features(logp, r=5, k=4, lengths=lengths)
    fn = jax.jit(lambda lp, n: surprisal_features(lp, r=5, k=4, lengths=n))
    mapped = jax.vmap(fn)(logp, lengths)
    for a, b in zip(direct, mapped, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 4),
    st.integers(1, 6),
    st.integers(6, 12),
    st.integers(0, 2**31 - 1),
)
def test_features_are_sorted_non_negative_surprisals(r, k, vocab, seed):
    with enable_x64():
        rng = np.random.default_rng(seed)
        logits = jnp.asarray(rng.normal(size=(4, vocab)) * rng.uniform(0.1, 10))
        f = np.asarray(surprisal_features(logits, r=r, k=k).values)
        assert (f >= 0).all() and (np.diff(f, axis=-1) >= 0).all()
        # the kept probabilities never exceed 1 in total
        assert (np.exp(-f).sum(-1) <= 1 + 1e-12).all()


def test_bad_input_names_the_argument():
    logp = jnp.zeros((2, 4, 10))
    with raises_invalid("r: expected <= 4"):
        surprisal_features(logp, r=5, k=3)
    with raises_invalid("k: expected <= 10"):
        surprisal_features(logp, r=2, k=11)
    with raises_invalid("r: expected a positive int"):
        surprisal_features(logp, r=0, k=3)
    with raises_invalid("logprobs"):
        surprisal_features(jnp.zeros((2, 4, 10), jnp.int32), r=2, k=3)
    with raises_invalid("logprobs"):
        surprisal_features(jnp.zeros(10), r=1, k=3)
    with raises_invalid("lengths"):
        surprisal_features(logp, r=2, k=3, lengths=jnp.array([1, 2, 3]))
    with raises_invalid("lengths"):
        surprisal_features(logp, r=2, k=3, lengths=jnp.array([1.0, 2.0]))


def test_features_from_a_greedy_decode_mask_positions_after_eos():
    from flax import nnx

    from lions_jax.models import LMConfig, TransformerLM, generate
    from lions_jax.spd import features_from_generation

    lm = TransformerLM(LMConfig(vocab_size=12, d_model=16, num_layers=1, num_heads=2),
                       rngs=nnx.Rngs(0))  # fmt: skip
    graphdef, state = nnx.split(lm)
    prompt = jax.random.randint(jax.random.key(0), (6, 4), 0, 12)
    free = generate(None, graphdef, state, prompt, max_new_tokens=5, return_logprobs=True)
    eos = int(free.tokens[0, 1])  # a token the decode emits: row 0 stops at position 1
    out = generate(None, graphdef, state, prompt, max_new_tokens=5, eos_id=eos,
                   return_logprobs=True)  # fmt: skip
    f = features_from_generation(out, r=4, k=3)
    lengths = np.asarray(out.lengths)
    assert lengths[0] <= 2
    np.testing.assert_array_equal(np.asarray(f.valid), np.arange(4) < lengths[:, None])
    # valid positions: the sorted top-3 surprisals of the decode's own distributions
    expected = np.sort(-np.asarray(out.logprobs)[:, :4], axis=-1)[..., :3]
    valid = np.asarray(f.valid)
    np.testing.assert_allclose(np.asarray(f.values)[valid], expected[valid], atol=1e-5)
    with raises_invalid("r: expected <= 5"):
        features_from_generation(out, r=6, k=3)
    with raises_invalid("return_logprobs"):
        features_from_generation(free._replace(logprobs=None), r=2, k=3)
