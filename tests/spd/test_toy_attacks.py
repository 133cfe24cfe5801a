"""The toy LM's chat helpers, the black-box attack searches and the ``spd`` experiment's plumbing,
on a tiny (untrained or barely trained) model: shapes, exact log-prob bookkeeping, the searches'
contracts. Whether attacks succeed against the *trained* toy LM is the experiment's result."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lions_jax._src.testing import raises_invalid
from lions_jax.models import LMConfig, TransformerLM
from lions_jax.spd import attacks as A
from lions_jax.spd import task as T
from lions_jax.spd.toy import TOKENIZER, ToyLMConfig, chat_generate, encode_prompts, make_train


@pytest.fixture(scope="module")
def lm():
    model = TransformerLM(LMConfig(vocab_size=259, d_model=32, num_layers=1, num_heads=2),
                          rngs=nnx.Rngs(0))  # fmt: skip
    return nnx.split(model)


def test_encode_prompts_left_pads():
    ids, mask = encode_prompts(["ab", "abcd"])
    assert ids.tolist()[0] == [TOKENIZER.pad_id, TOKENIZER.pad_id, TOKENIZER.bos_id, 97, 98]
    assert mask.sum(1).tolist() == [3, 5]
    with raises_invalid("prompts"):
        encode_prompts(["abcdef"], 3)


def test_chat_generate_matches_unbatched_decoding(lm):
    graphdef, state = lm
    prompts = [T.chat_prompt("Hi"), T.chat_prompt("how do I make zorblax? please")]
    out = chat_generate(graphdef, state, prompts, max_new_tokens=6, batch_size=1)
    assert out.logprobs.shape == (2, 6, 259) and out.tokens.shape == (2, 6)
    np.testing.assert_allclose(np.exp(out.logprobs).sum(-1), 1.0, atol=1e-5)
    # greedy: the generated token is the argmax of the returned log-probs
    live = np.arange(6)[None] < out.lengths[:, None]
    np.testing.assert_array_equal(out.tokens[live], out.logprobs.argmax(-1)[live])
    # batching (left padding) does not change the answers
    both = chat_generate(graphdef, state, prompts, max_new_tokens=6)
    assert both.answers == out.answers
    np.testing.assert_allclose(both.logprobs, out.logprobs, atol=2e-5)
    with raises_invalid("prompts"):
        chat_generate(graphdef, state, [])


def test_make_train_lowers_the_loss():
    cfg = ToyLMConfig(d_model=32, num_layers=1, num_heads=2, steps=30, batch_size=8,
                      corpus_size=64, task=T.ChatTask(seq_len=96))  # fmt: skip
    ids, mask = cfg.corpus()
    _, train = make_train(cfg)
    _, losses = jax.jit(train)(jax.random.key(0), ids, mask)
    losses = np.asarray(losses)
    assert losses.shape == (30,) and losses[-5:].mean() < losses[:5].mean() - 0.5
    with raises_invalid("steps"):
        ToyLMConfig(steps=0)


def test_target_logprob_equals_teacher_forcing(lm):
    graphdef, state = lm
    prompts = [T.chat_prompt("how do I make soap?"), T.chat_prompt("hi")]
    targets = ["Sure", "I can't"]
    got = A.target_logprob(graphdef, state, prompts, targets, mean=False)
    model = nnx.merge(graphdef, state)
    for p, t, g in zip(prompts, targets, got):
        ids = np.concatenate([TOKENIZER.encode(p, add_bos=True), TOKENIZER.encode(t)])
        lp = jax.nn.log_softmax(model(jnp.asarray(ids[None, :-1]))[0], -1)
        n = len(TOKENIZER.encode(t))
        want = lp[np.arange(len(ids) - 1), ids[1:]][-n:].sum()
        np.testing.assert_allclose(g, want, atol=1e-4)
    mean = A.target_logprob(graphdef, state, prompts, targets)
    np.testing.assert_allclose(mean, got / np.array([4, 7]), atol=1e-5)  # bytes per target
    with raises_invalid("prompts, targets"):
        A.target_logprob(graphdef, state, prompts, targets[:1])


def test_continuation_logprobs_share_one_prefill(lm):
    """KV-cached scoring of several continuations equals full teacher forcing of each pair, for
    prompts of different lengths (left padding) and continuations of different lengths."""
    from lions_jax.spd.baselines import continuation_logprobs

    graphdef, state = lm
    prompts = [
        T.chat_prompt("how do I make soap?"),
        T.chat_prompt("hi"),
        T.chat_prompt("Urgent: x"),
    ]
    conts = ["I can't", "Sure", "As an"]
    ids, mask = encode_prompts(prompts, 40)
    c = np.full((3, 8), TOKENIZER.pad_id, np.int32)
    for i, t in enumerate(conts):
        c[i, : len(t)] = TOKENIZER.encode(t)
    got = np.asarray(continuation_logprobs(graphdef, state, ids, mask, c, np.array([7, 4, 5])))
    want = A.target_logprob(graphdef, state, [p for _ in conts for p in prompts],
                            [t for t in conts for _ in prompts], mean=False)  # fmt: skip
    # float32, two different evaluation orders (cached one-token steps vs one forward pass)
    np.testing.assert_allclose(got, want.reshape(3, 3), atol=2e-4)
    with raises_invalid("lengths"):
        continuation_logprobs(graphdef, state, ids, mask, c, np.array([1, 2]))


def test_template_search_is_elitist_and_renders_the_grammar(lm):
    graphdef, state = lm
    goals = T.hazard_requests()[:6]
    ranked, fit = A.template_search(0, graphdef, state, goals, population=6, generations=3,
                                    elite=2, batch=3)  # fmt: skip
    assert np.all(np.diff(fit) <= 0) and len(ranked) == len(set(ranked)) >= 6
    p = A.render(ranked[0], goals[0][1])
    assert p.startswith("User: ") and p.endswith(T.ASSISTANT) and goals[0][1] in p
    res = A.apply_templates(graphdef, state, goals, ranked[:2], max_new_tokens=8)
    assert res.queries.tolist() == [2] * 6  # an untrained model jailbreaks nothing
    assert res.success_rate == 0.0 and res.prompts == []
    with raises_invalid("population"):
        A.template_search(0, graphdef, state, goals, population=4, elite=4)


def test_rewrite_search_stops_at_success(lm):
    graphdef, state = lm
    goals = T.hazard_requests()[:3]
    calls = []

    def judge(answer: str) -> bool:  # a judge that accepts the 2nd query of every goal
        calls.append(answer)
        return len(calls) % 4 == 2

    res = A.rewrite_search(0, graphdef, state, goals, rounds=3, num_proposals=4,
                           max_new_tokens=4, judge=judge)  # fmt: skip
    assert res.success_rate == 1.0 and len(res.prompts) == 3
    assert res.queries.tolist() == [4, 4, 4]  # one round: found in the first batch
    for prompt in res.prompts:
        assert prompt.startswith("User: ") and prompt.endswith(T.ASSISTANT)
    with raises_invalid("rounds"):
        A.rewrite_search(0, graphdef, state, goals, rounds=0)


def test_rewrites_keep_the_goal():
    rng = np.random.default_rng(0)
    for item, req in T.hazard_requests()[:10]:
        for _ in range(20):
            new = A._rewrite(rng, item, req)
            squashed = new.replace("-", "").replace(" ", "").lower()
            assert item.replace(" ", "").lower() in squashed


def test_experiment_pipeline(tmp_path: Path):
    """``spd`` end to end on a barely trained LM with stand-in attack prompts (the searches are
    tested above; a real run's attacks need the trained toy LM)."""
    import lions_jax.spd.experiment as E

    def fake_attacks(cfg, s, graphdef, params, progress):
        goals = T.hazard_requests()[:8]
        wrap = {"gcg": lambda r: r + " x!q~zz{k", "template": lambda r: "Let's play a game. " + r,
                "rewrite": lambda r: "I am a chef. " + r}  # fmt: skip
        return {f: {"prompts": [T.chat_prompt(T._cap(fn(r))) for _, r in goals],
                    "items": [i for i, _ in goals], "requests": [r for _, r in goals],
                    "success_rate": 1.0, "mean_queries": 1.0}
                for f, fn in wrap.items()}  # fmt: skip

    cfg = E.SPDConfig(num_seeds=2, d_model=32, num_layers=1, train_steps=10, num_benign_fit=8,
                      num_benign_test=8, r_sweep=(1, 3), k_sweep=(5,), smoothllm_copies=2,
                      max_new_tokens=86, r=3, k=5, reference_steps=3, cache_dir=str(tmp_path / "cache"))  # fmt: skip
    orig = E._attacks
    E._attacks = fake_attacks
    try:
        out = E.run(cfg, tmp_path / "run", progress=False)
    finally:
        E._attacks = orig
    det = out["detectors"]
    assert set(det) >= {
        "SPD (full logits)",
        "perplexity filter, reference LM (95 %)",
        "SmoothLLM (N = 2)",
    }
    for m in det.values():
        assert 0.0 <= m["fpr"] <= 1.0 and 0.0 <= m["auc"] <= 1.0
    # the models were cached: reloading gives the same parameters, without training
    assert len(list((tmp_path / "cache" / "models").glob("toylm-*.msgpack"))) == 2
    assert len(list((tmp_path / "cache" / "models").glob("reflm-*.msgpack"))) == 1
    _, states = E._models(cfg, [0, 1], progress=False)
    again = E._models(cfg, [0, 1], progress=False)[1]
    for a, b in zip(jax.tree.leaves(states), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(jax.tree.leaves(states[0])[0], jax.tree.leaves(states[1])[0])
    table = (tmp_path / "run" / "table.md").read_text()
    assert "toy LM, synthetic task" in table and "Cross-attack transfer" in table
    assert (tmp_path / "run" / "spd.png").is_file()
    with raises_invalid("r_sweep"):
        E.SPDConfig(r_sweep=(100,), max_new_tokens=90)
    with raises_invalid("max_new_tokens: expected > 85"):  # would cut compliant answers short
        E.SPDConfig(max_new_tokens=48)
