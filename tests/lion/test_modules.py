"""LION NNX layers and models: forms interchangeable on trained parameters, masks, parity flags."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lions_jax._src.testing import assert_rel_close, raises_invalid
from lions_jax.data import load_digits
from lions_jax.lion import LionAttention, lion_mlm_encoder, lion_vit, natural_orders
from lions_jax.models import EncoderConfig, init_model

VIT = EncoderConfig.vit(
    image_size=8,
    patch_size=2,
    num_channels=1,
    d_model=32,
    num_layers=2,
    num_heads=4,
    d_ff=64,
    position_embedding=False,
)


def _digits_images(n=16):
    data = load_digits(test_fraction=0.5, seed=0, standardize=False)
    return jnp.asarray(data.x_test[:n].reshape(n, 8, 8, 1) / 16.0, jnp.float32)


def _apply(graphdef, state, images):
    return nnx.merge(graphdef, state)(images=images)


def _graphdef(make):
    """The graphdef of ``make(rngs)`` without initialising parameters."""
    return nnx.graphdef(nnx.eval_shape(lambda: make(nnx.Rngs(0))))


@pytest.mark.parametrize(
    ("variant", "natural"),
    [
        ("lit", False),
        ("d", False),
        ("s", False),
        # the natural-order variants: ~20 s each, in `make test-slow` (CI time)
        pytest.param("d", True, marks=pytest.mark.slow),
        pytest.param("s", True, marks=pytest.mark.slow),
    ],
)
def test_vit_forms_agree_on_real_images(variant, natural):
    """Train-time parallel parameters reused by recurrent and chunked models: same outputs."""
    images = _digits_images()

    def make(form):
        return lambda rngs: lion_vit(
            VIT, variant=variant, natural=natural, form=form, chunk_size=5, rngs=rngs
        )

    _, state = init_model(make("parallel"), jax.random.key(0))
    # the parallel model's parameters, run by all three forms
    outs = {
        form: jax.jit(_apply, static_argnums=0)(_graphdef(make(form)), state, images)
        for form in ("parallel", "recurrent", "chunked")
    }
    assert outs["parallel"].shape == (16, 17, 32)
    # float32: different summation orders; measured ~1e-6 relative
    for form in ("recurrent", "chunked"):
        assert_rel_close(outs[form], outs["parallel"], rtol=1e-5, err_msg=form)
    # ... and the same predictions from a linear head on the mean-pooled features
    head = jax.random.normal(jax.random.key(1), (32, 10))
    preds = {f: jnp.argmax(o.mean(1) @ head, -1) for f, o in outs.items()}
    np.testing.assert_array_equal(preds["recurrent"], preds["parallel"])
    np.testing.assert_array_equal(preds["chunked"], preds["parallel"])


def test_lit_without_positions_is_permutation_equivariant():
    cfg = dataclasses.replace(VIT, cls_token=False)
    graphdef, state = init_model(
        lambda rngs: lion_vit(cfg, variant="lit", rngs=rngs), jax.random.key(0)
    )
    images = _digits_images(4)
    out = jax.jit(_apply, static_argnums=0)(graphdef, state, images)
    model = nnx.merge(graphdef, state)
    tokens = model.embed_inputs(None, images, None)
    perm = np.random.default_rng(0).permutation(16)

    @jax.jit
    def run_tokens(state, x):
        m = nnx.merge(graphdef, state)
        for block in m.blocks:
            x = block(x, mask=None)
        return m.final_norm(x)

    np.testing.assert_allclose(
        run_tokens(state, tokens[:, perm]), out[:, perm], rtol=1e-5, atol=1e-5
    )


def test_decay_parameters_and_flags():
    x = jax.random.normal(jax.random.key(0), (2, 5, 16))
    s = LionAttention(16, 2, variant="s", first_token_decay_one=True, rngs=nnx.Rngs(0))
    (ld,) = s.log_decays(x)
    assert ld.shape == (2, 5, 2) and ld.dtype == jnp.float32
    np.testing.assert_array_equal(ld[:, 0], 0.0)
    # near-zero init: λ ≈ 0.5
    np.testing.assert_allclose(jnp.exp(ld[:, 1:]), 0.5, atol=0.1)
    d = LionAttention(
        16, 2, variant="d", orders=natural_orders(2, 2, cls_token=True), rngs=nnx.Rngs(0)
    )
    lds = d.log_decays(x)
    assert len(lds) == 2 and lds[0].shape == (2,) and not np.allclose(lds[0], lds[1])

    def gate_grad(stop):
        layer = LionAttention(16, 2, variant="s", stop_gradient_decay=stop, rngs=nnx.Rngs(0))
        graphdef, state = nnx.split(layer)
        g = jax.grad(lambda st: jnp.sum(nnx.merge(graphdef, st)(x) ** 2))(state)
        return g["decay_proj"]["kernel"][...]

    assert np.abs(gate_grad(False)).max() > 0
    np.testing.assert_array_equal(gate_grad(True), 0.0)
    with raises_invalid("variant"):
        LionAttention(16, 2, variant="x", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="LIT"):
        LionAttention(16, 2, variant="lit", orders=[np.arange(5)], rngs=nnx.Rngs(0))


def test_key_padding_mask_removes_padded_tokens():
    layer = LionAttention(16, 2, variant="s", rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(layer)
    f = jax.jit(lambda st, x, m: nnx.merge(graphdef, st)(x, mask=m))
    x = jax.random.normal(jax.random.key(0), (1, 7, 16))
    mask = jnp.array([[True] * 5 + [False] * 2])
    full = f(state, x, mask)
    short = f(state, x[:, :5], mask[:, :5])
    np.testing.assert_allclose(full[:, :5], short, rtol=1e-5, atol=1e-6)
    x2 = x.at[:, 5:].set(7.0)  # padded tokens' content does not matter (right padding)
    np.testing.assert_allclose(f(state, x2, mask)[:, :5], full[:, :5], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["lit", "d", "s"])
def test_mlm_encoder_forms_agree(variant):
    cfg = EncoderConfig.bert(
        vocab_size=40, d_model=32, num_layers=2, num_heads=4, d_ff=64, max_len=64, pooler=False
    )
    ids = jnp.asarray(np.random.default_rng(0).integers(0, 40, (2, 23)))

    def make(form):
        return lambda rngs: lion_mlm_encoder(
            cfg, variant=variant, form=form, chunk_size=8, rngs=rngs
        )

    _, state = init_model(make("parallel"), jax.random.key(0))
    outs = {}
    for form in ("parallel", "chunked"):
        graphdef = _graphdef(make(form))
        outs[form] = jax.jit(lambda s, i, g=graphdef: nnx.merge(g, s)(i))(state, ids)
    assert_rel_close(outs["chunked"], outs["parallel"], rtol=1e-5)
    layer = nnx.merge(graphdef, state).blocks[0].attn
    assert layer.feature_map == "identity" and not layer.normalize
    assert (layer.out_norm is not None) == (variant == "lit")
