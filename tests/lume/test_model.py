"""Tokenizer, encodings, the evaluation pass and scoring on known outputs."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lions_jax._src.testing import raises_invalid
from lions_jax.lume import experiment as E
from lions_jax.lume import metrics
from lions_jax.lume.model import (
    EvalOutput,
    LumeTokenizer,
    TargetConfig,
    encode_rows,
    encode_stream,
    evaluate,
    score,
)
from lions_jax.models import TransformerLM, generate

TINY = E.LumeConfig(num_seeds=1, docs_per_task=1, num_facts=8, d_model=16, num_layers=1)


@pytest.fixture(scope="module")
def prep():
    return E.prepare(TINY)


def test_tokenizer_round_trip_and_determinism(prep):
    texts = [d.text for d in prep.data.forget + prep.data.nonmember] + ["Zq 900-12-3456 ünï"]
    for t in texts:
        assert prep.tokenizer.decode(prep.tokenizer.encode(t)) == t
    again = E.prepare(TINY).tokenizer
    assert again.to_json() == prep.tokenizer.to_json()
    restored = LumeTokenizer.from_json(prep.tokenizer.to_json())
    assert restored.encode(texts[0]) == prep.tokenizer.encode(texts[0])
    # decode stops at <eos> and skips <pad>
    ids = prep.tokenizer.encode("hello world")
    assert prep.tokenizer.decode([0, *ids, 1, *ids]) == "hello world"


def test_encode_rows_layout(prep):
    tok = prep.tokenizer
    pairs = [("Who found the map?", "Ada Stone"), ("The story of a long day", "ends here.")]
    seqs, prompts, pmask = encode_rows(tok, pairs)
    for i, (x, y) in enumerate(pairs):
        p, a = tok.encode(x), [*tok.encode(" " + y), tok.eos_id]
        n = len(p) + len(a)
        assert np.asarray(seqs.tokens[i, :n]).tolist() == p + a
        assert not np.asarray(seqs.attention_mask[i, n:]).any()
        # the loss covers exactly the predictions of the answer tokens (and <eos>)
        targets = np.asarray(seqs.tokens[i, 1:])[np.asarray(seqs.loss_mask[i])]
        assert targets.tolist() == a
        # generation prompts: the same input, left-padded
        assert np.asarray(prompts[i])[np.asarray(pmask[i])].tolist() == p
        assert pmask[i, -1]
    with raises_invalid("width"):
        encode_rows(tok, pairs, width=4)
    with raises_invalid("rows"):
        encode_rows(tok, [])


def test_stream_windows_start_at_texts(prep):
    tok = prep.tokenizer
    texts = ["alpha beta", "gamma", "delta epsilon zeta"]
    st = encode_stream(tok, texts, window=8)
    ids = np.asarray(st.tokens)
    for s, t in zip(np.asarray(st.starts), texts):
        n = len(tok.encode(t))
        assert tok.decode(ids[s : s + n + 1]) == t and ids[s + n] == tok.eos_id
    assert ids.size == sum(len(tok.encode(t)) + 1 for t in texts) + 9


def test_greedy_generation_matches_teacher_forcing(prep, x64):
    """Left-padded generation sees what contiguous training sees: feeding prompt + greedy output
    back through the model reproduces the greedy tokens as argmaxes (fp64)."""
    cfg = TargetConfig(d_model=16, num_layers=1, num_heads=2, window=128)
    model = TransformerLM(
        dataclasses.replace(cfg.lm_config(prep.tokenizer.vocab_size), param_dtype="float64"),
        rngs=nnx.Rngs(0),
    )
    graphdef, params = nnx.split(model)
    rows = prep.rows[:3]
    _, prompts, pmask = encode_rows(prep.tokenizer, rows)
    gen = jax.jit(
        lambda p, x, m: generate(None, graphdef, p, x, prompt_mask=m, max_new_tokens=6).tokens
    )
    out = np.asarray(gen(params, jnp.asarray(prompts), jnp.asarray(pmask)))
    forward = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))
    for i in range(3):
        p = np.asarray(prompts[i])[np.asarray(pmask[i])]
        logits = forward(params, jnp.asarray(np.concatenate([p, out[i]]))[None])
        greedy = np.asarray(jnp.argmax(logits[0, len(p) - 1 : -1], -1))
        np.testing.assert_array_equal(greedy, out[i])


def _perfect_output(prep, forget_right: bool) -> EvalOutput:
    """Generations that reproduce every reference (forget rows only if ``forget_right``)."""
    tok = prep.tokenizer
    groups, start = [], 0
    for prompts, n in zip(prep.unlearn.eval.prompts, prep.max_new_tokens):
        rows = prep.rows[start : start + prompts.shape[0]]
        start += prompts.shape[0]
        gen = np.zeros((len(rows), n), np.int32)
        for i, r in enumerate(rows):
            text = r.output if (r.split == "retain" or forget_right) else "no"
            ids = [*tok.encode(" " + text), tok.eos_id]
            gen[i, : len(ids)] = ids
        groups.append(jnp.asarray(gen))
    d = prep.unlearn.eval.documents
    n_docs, t = d.loss_mask.shape
    # members get a higher log-prob than every non-member: AUC = 1
    lp = jnp.where(jnp.arange(n_docs)[:, None] < prep.num_members, -0.1, -3.0) * d.loss_mask
    mc = np.full(prep.unlearn.eval.mc.tokens.shape[0], -5.0)
    mc[np.arange(len(prep.mc_answers)) * 4 + prep.mc_answers] = -1.0  # every answer right
    ones = jnp.ones((n_docs, t))
    return EvalOutput(tuple(groups), lp, -ones, ones, jnp.asarray(mc))


def _score(prep, out):
    return score(
        out,
        rows=prep.rows,
        tokenizer=prep.tokenizer,
        documents=prep.unlearn.eval.documents,
        num_members=prep.num_members,
        zlib_bytes=prep.zlib_bytes,
        mc_answers=prep.mc_answers,
    )


def test_score_on_known_outputs(prep):
    remembered = _score(prep, _perfect_output(prep, forget_right=True))
    assert all(v == 1.0 for v in remembered["task_scores"].values.values())
    assert remembered["task_aggregate"] == 0.0  # forget inverted to 0: the harmonic mean is 0
    assert remembered["mia_auc"]["loss"] == 1.0 and remembered["mia_score"] == 0.0
    assert remembered["utility"] == 1.0
    assert remembered["final"] == pytest.approx(1 / 3)

    forgotten = _score(prep, _perfect_output(prep, forget_right=False))
    ts = forgotten["task_scores"].values
    assert all(v == 1.0 for (split, _, _), v in ts.items() if split == "retain")
    assert all(
        v == 0.0 for (split, _, m), v in ts.items() if split == "forget" and m == "knowledge"
    )
    assert forgotten["task_aggregate"] > 0.5


def test_evaluate_shapes_and_mia_reference(prep):
    cfg = TINY.target_config()
    model = TransformerLM(cfg.lm_config(prep.tokenizer.vocab_size), rngs=nnx.Rngs(1))
    graphdef, params = nnx.split(model)
    out = jax.jit(
        lambda p: evaluate(graphdef, p, prep.unlearn.eval, max_new_tokens=prep.max_new_tokens)
    )(params)
    assert [g.shape for g in out.generations] == [
        (p.shape[0], n) for p, n in zip(prep.unlearn.eval.prompts, prep.max_new_tokens)
    ]
    d = prep.unlearn.eval.documents
    loss = metrics.loss_statistic(out.doc_logprobs, d.loss_mask)
    logits = model(d.tokens[:, :-1], attention_mask=d.attention_mask[:, :-1])
    lp = jnp.take_along_axis(jax.nn.log_softmax(logits), d.tokens[:, 1:, None], -1)[..., 0]
    expected = jnp.sum(lp * d.loss_mask, 1) / jnp.sum(d.loss_mask, 1)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    with raises_invalid("max_new_tokens"):
        evaluate(graphdef, params, prep.unlearn.eval, max_new_tokens=(4,))
