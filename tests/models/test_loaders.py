import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

pytest.importorskip("safetensors")

from lions_jax.models import EncoderConfig, LMConfig, TransformerEncoder, TransformerLM
from lions_jax.models.loaders import (
    bert_state_dict,
    gpt2_state_dict,
    load_bert,
    load_gpt2,
    load_safetensors,
    save_safetensors,
)


def _jit_call(model, *args, **kwargs):
    graphdef, state = nnx.split(model)
    return jax.jit(lambda s, *a, **k: nnx.merge(graphdef, s)(*a, **k))(state, *args, **kwargs)


@pytest.mark.parametrize("tie", [True, False])
def test_gpt2_safetensors_round_trip_is_exact(tmp_path, tie):
    cfg = LMConfig.gpt2(
        vocab_size=50, d_model=32, num_layers=2, num_heads=4, max_len=16, tie_embeddings=tie
    )
    model = TransformerLM(cfg, rngs=nnx.Rngs(0))
    tensors = gpt2_state_dict(model)
    assert ("lm_head.weight" in tensors) == (not tie)
    assert tensors["transformer.h.0.attn.c_attn.weight"].shape == (32, 96)
    save_safetensors(tensors, tmp_path / "model.safetensors")
    loaded = load_gpt2(tmp_path / "model.safetensors", config=cfg)
    toks = jax.random.randint(jax.random.key(0), (2, 9), 0, 50)
    np.testing.assert_array_equal(_jit_call(loaded, toks), _jit_call(model, toks))


def test_bert_safetensors_round_trip_is_exact(tmp_path):
    cfg = EncoderConfig.bert(
        vocab_size=60, d_model=32, num_layers=2, num_heads=4, d_ff=64, max_len=16
    )
    model = TransformerEncoder(cfg, rngs=nnx.Rngs(1))
    save_safetensors(bert_state_dict(model, prefix="bert."), tmp_path / "w.safetensors")
    loaded = load_bert(tmp_path / "w.safetensors", config=cfg)
    ids = jax.random.randint(jax.random.key(0), (2, 7), 0, 60)
    mask = jnp.ones((2, 7), bool).at[1, 5:].set(False)
    np.testing.assert_array_equal(
        _jit_call(loaded, ids, attention_mask=mask), _jit_call(model, ids, attention_mask=mask)
    )


def test_tiny_gpt2_matches_transformers(fixtures_dir):
    """Weights and logits written by Hugging Face transformers (see tests/fixtures/README.md)."""
    ref = json.loads((fixtures_dir / "tiny_gpt2" / "reference.json").read_text())
    model = load_gpt2(fixtures_dir / "tiny_gpt2")
    logits = _jit_call(model, jnp.asarray(ref["input_ids"]))
    # float32 in both frameworks, different summation orders: measured max |diff| ~2e-7
    np.testing.assert_allclose(logits, np.asarray(ref["logits"]), rtol=1e-5, atol=1e-5)


def test_tiny_bert_matches_transformers(fixtures_dir):
    ref = json.loads((fixtures_dir / "tiny_bert" / "reference.json").read_text())
    model = load_bert(fixtures_dir / "tiny_bert")
    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state, ids, mask, types):
        m = nnx.merge(graphdef, state)
        h = m(ids, attention_mask=mask, token_type_ids=types)
        return h, m.pool(h)

    h, pooled = run(
        state,
        jnp.asarray(ref["input_ids"]),
        jnp.asarray(ref["attention_mask"]),
        jnp.asarray(ref["token_type_ids"]),
    )
    # measured max |diff| ~1e-6 on hidden states of magnitude ~4
    np.testing.assert_allclose(h, np.asarray(ref["last_hidden_state"]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pooled, np.asarray(ref["pooler_output"]), rtol=1e-5, atol=1e-5)


def test_loader_errors_name_the_tensor(tmp_path, fixtures_dir):
    tensors = load_safetensors(fixtures_dir / "tiny_gpt2" / "model.safetensors")
    cfg = LMConfig.gpt2(vocab_size=97, d_model=32, num_layers=2, num_heads=4, max_len=32)
    missing = {k: v for k, v in tensors.items() if "h.1.mlp.c_fc.bias" not in k}
    save_safetensors(missing, tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match=r"missing GPT-2 tensor 'h.1.mlp.c_fc.bias'"):
        load_gpt2(tmp_path / "a.safetensors", config=cfg)
    extra = {**tensors, "transformer.h.0.adapter.weight": np.zeros(3, np.float32)}
    save_safetensors(extra, tmp_path / "b.safetensors")
    with pytest.raises(ValueError, match=r"unexpected tensors \['h.0.adapter.weight'\]"):
        load_gpt2(tmp_path / "b.safetensors", config=cfg)
    bad = {**tensors, "transformer.ln_f.bias": np.zeros(31, np.float32)}
    save_safetensors(bad, tmp_path / "c.safetensors")
    with pytest.raises(ValueError, match=r"final_norm/bias has shape \(31,\)"):
        load_gpt2(tmp_path / "c.safetensors", config=cfg)
    with pytest.raises(ValueError, match=r"no config\.json"):
        load_gpt2(tmp_path / "c.safetensors")
    with pytest.raises(ValueError, match="no safetensors file"):
        load_safetensors(tmp_path / "nope.safetensors")
