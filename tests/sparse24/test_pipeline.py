"""prune_model: stage discovery, captured inputs, sequential propagation, the model left intact."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lions_jax.models import EncoderConfig, LMConfig, TransformerEncoder, TransformerLM
from lions_jax.sparse24 import hessian, is_nm_sparse, prune_layer
from lions_jax.sparse24.pipeline import linear_stages, prune_model


def _lm():
    cfg = LMConfig(
        vocab_size=32,
        d_model=16,
        num_layers=2,
        num_heads=2,
        max_len=16,
        tie_embeddings=False,
        gated_mlp=False,
        activation="gelu",
    )
    return TransformerLM(cfg, rngs=nnx.Rngs(0))


def _tokens(seed, shape=(4, 16)):
    return jax.random.randint(jax.random.key(seed), shape, 0, 32)


def test_stages_group_layers_sharing_an_input_in_forward_order():
    stages = linear_stages(_lm(), _tokens(0))
    names = [["/".join(map(str, p)) for p in s] for s in stages]
    assert names[:4] == [
        ["blocks/0/attn/query", "blocks/0/attn/key", "blocks/0/attn/value"],
        ["blocks/0/attn/out"],
        ["blocks/0/mlp/up"],
        ["blocks/0/mlp/down"],
    ]
    assert len(stages) == 8 and not any("lm_head" in n for s in names for n in s)


def test_prune_model_is_sequential_and_leaves_the_input_model_intact():
    lm = _lm()
    dense_state = jax.tree.map(np.asarray, nnx.state(lm))
    batches = [_tokens(1), _tokens(2)]
    pruned, reports = prune_model(lm, batches, method="wanda", refine_steps=3)
    # the input model is unchanged, including its layers' classes
    for a, b in zip(jax.tree.leaves(dense_state), jax.tree.leaves(nnx.state(lm))):
        np.testing.assert_array_equal(a, b)
    assert type(lm.blocks[0].attn.query) is nnx.Linear
    assert type(pruned.blocks[0].attn.query) is nnx.Linear
    assert len(reports) == 12
    for r in reports:
        module = pruned
        for p in r.path.split("/"):
            module = module[int(p)] if p.isdigit() else getattr(module, p)
        assert bool(is_nm_sparse(module.kernel[...])), r.path
    np.testing.assert_array_equal(pruned.lm_head.kernel[...], lm.lm_head.kernel[...])

    # stage 0 sees the dense model's inputs: attn_norm(embed(tokens)) of every batch
    def attn_in(model, tokens):
        return model.blocks[0].attn_norm(model.embed(tokens)).reshape(-1, 16)

    x0 = jnp.concatenate([attn_in(lm, b) for b in batches])
    ref, _, info = prune_layer(lm.blocks[0].attn.query.kernel[...], x0, "wanda", refine_steps=3)
    np.testing.assert_allclose(pruned.blocks[0].attn.query.kernel[...], ref, rtol=1e-5, atol=1e-6)
    assert reports[0].rel_error == pytest.approx(float(info.rel_error), rel=1e-4)

    # block 1's query sees inputs through the *pruned* block 0 (and differs from the dense ones)
    def block1_in(model, tokens):
        x = model.embed(tokens)
        positions = jnp.broadcast_to(jnp.arange(16), tokens.shape)
        mask = jnp.tril(jnp.ones((16, 16), bool))[None, None]
        x, _ = model.blocks[0](x, mask=mask, positions=positions)
        return model.blocks[1].attn_norm(x).reshape(-1, 16)

    half = nnx.clone(lm)
    for name in ("query", "key", "value", "out"):
        getattr(half.blocks[0].attn, name).kernel[...] = getattr(
            pruned.blocks[0].attn, name
        ).kernel[...]
    for name in ("up", "down"):
        getattr(half.blocks[0].mlp, name).kernel[...] = getattr(pruned.blocks[0].mlp, name).kernel[
            ...
        ]
    x1 = jnp.concatenate([block1_in(half, b) for b in batches])
    x1_dense = jnp.concatenate([block1_in(lm, b) for b in batches])
    assert not np.allclose(hessian(x1), hessian(x1_dense), rtol=1e-3)
    ref1, _, _ = prune_layer(lm.blocks[1].attn.query.kernel[...], x1, "wanda", refine_steps=3)
    np.testing.assert_allclose(pruned.blocks[1].attn.query.kernel[...], ref1, rtol=1e-4, atol=1e-5)


def test_custom_forward_include_and_stages_on_an_encoder():
    enc = TransformerEncoder(
        EncoderConfig.bert(vocab_size=40, d_model=16, num_layers=1, num_heads=2, d_ff=32),
        rngs=nnx.Rngs(1),
    )
    ids = jax.random.randint(jax.random.key(0), (3, 12), 0, 40)

    def forward(model, batch):
        return model(batch["ids"], attention_mask=batch["mask"])

    batch = {"ids": ids, "mask": jnp.ones_like(ids)}
    only_mlp = lambda path, _: "mlp" in path  # noqa: E731
    pruned, reports = prune_model(
        enc, [batch], forward=forward, include=only_mlp, method="sparsegpt"
    )
    assert [r.path for r in reports] == ["blocks/0/mlp/up", "blocks/0/mlp/down"]
    np.testing.assert_array_equal(
        pruned.blocks[0].attn.query.kernel[...], enc.blocks[0].attn.query.kernel[...]
    )
    # explicit stages (here: down before up is allowed; each stage re-captures its inputs)
    _, reports = prune_model(
        enc,
        [batch],
        forward=forward,
        include=only_mlp,
        stages=[[("blocks", 0, "mlp", "up")]],
        method="magnitude",
    )
    assert [r.path for r in reports] == ["blocks/0/mlp/up"]


def test_prune_model_validation():
    lm = _lm()
    with pytest.raises(ValueError, match="at least one calibration batch"):
        prune_model(lm, [])
    with pytest.raises(ValueError, match=r"no nnx\.Linear layers"):
        prune_model(lm, [_tokens(0)], include=lambda p, m: False)
    with pytest.raises(ValueError, match="stages: not prunable"):
        prune_model(lm, [_tokens(0)], stages=[[("lm_head",)]])
    with pytest.raises(ValueError, match="set by prune_model"):
        prune_model(lm, [_tokens(0)], axis=-1)
    with pytest.raises(ValueError, match="2:4 only"):
        prune_model(lm, [_tokens(0)], method="prox", n=1, m=4)
    assert type(lm.blocks[0].attn.query) is nnx.Linear  # released after an error too
