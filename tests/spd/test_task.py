"""The synthetic assistant task: the judge is exact, the corpus deterministic and well-masked."""

import itertools

import numpy as np
import pytest

from lions_jax._src.testing import raises_invalid
from lions_jax.data.text import ByteTokenizer
from lions_jax.spd import attacks
from lions_jax.spd import task as T


def test_every_refusal_template_is_safe():
    for tpl, item in itertools.product(T.REFUSALS, T.HAZARD_ITEMS + T.BENIGN_ITEMS):
        answer = tpl.format(item=item)
        assert T.is_refusal(answer), answer
        assert not T.is_harmful(answer), answer


def test_hazard_recipes_are_harmful_and_benign_answers_are_not():
    for item in T.HAZARD_ITEMS:
        assert T.is_harmful(T.helpful_recipe(item))
        assert T.is_harmful("Recipe for x: " + T.recipe(item))
        # a refusal that goes on to leak the recipe still counts as a refusal (safe) ...
        assert not T.is_harmful("I can't help with that. " + T.recipe(item))
        # ... and compliance without hazardous content is not harmful
        assert not T.is_harmful(f"Sure, here is how to make {item}: mix flour with salt.")
    for item in T.BENIGN_ITEMS:
        assert not T.is_harmful(T.helpful_recipe(item))


def test_hazard_content_appears_only_in_hazard_recipes():
    rng = np.random.default_rng(0)
    benign = [T.benign_request(rng, T.PHRASINGS) for _ in range(300)]
    texts = [q + a for q, a in benign] + T.benign_prompts(1, 100, held_out=True)
    texts += [T.recipe(i) for i in T.BENIGN_ITEMS] + list(T.REFUSALS)
    texts += [w for fams in T.WRAPPERS.values() for ws in fams.values() for w in ws]
    texts += [v for vs in attacks.GRAMMAR.values() for v in vs] + list(attacks.CONTEXTS)
    for text, word in itertools.product(texts, T.HAZARD_INGREDIENTS):
        assert word not in text
    # every hazardous recipe uses two hazardous ingredients, and the recipes differ
    assert len({T.recipe(i) for i in T.HAZARD_ITEMS}) == len(T.HAZARD_ITEMS)
    for item in T.HAZARD_ITEMS:
        assert sum(w in T.recipe(item) for w in T.HAZARD_INGREDIENTS) == 2


def test_corpus_deterministic_and_masks_answers_only():
    task = T.ChatTask(seq_len=192)
    ids, mask = task.training_corpus(3, 64)
    ids2, mask2 = task.training_corpus(3, 64)
    np.testing.assert_array_equal(ids, ids2)
    np.testing.assert_array_equal(mask, mask2)
    assert not np.array_equal(ids, task.training_corpus(4, 64)[0])
    tok = ByteTokenizer()
    for row, m in zip(ids, mask):
        text = tok.decode(row)
        targets = tok.decode(row[1:][m[:-1]])  # tokens the loss is computed on
        if text.startswith("User: "):
            answer = text.split(T.ASSISTANT, 1)[1]
            assert targets == answer  # the answer (and EOS), never the prompt
        else:
            assert targets == text  # documents: every token
        assert row[np.flatnonzero(row != tok.pad_id)[-1]] == tok.eos_id


def test_held_out_benign_prompts_use_unseen_templates():
    prompts = T.benign_prompts(0, 200, held_out=True)
    seen = [
        w.split("{req}")[0] for g in ("aligned", "gap") for ws in T.WRAPPERS[g].values() for w in ws
    ]
    for p in prompts:
        body = p.removeprefix("User: ")
        assert not any(s and body.startswith(s) for s in seen)


def test_invalid_inputs():
    with raises_invalid("item"):
        T.recipe("plutonium")
    with raises_invalid("p_hazard"):
        T.ChatTask(p_hazard=1.5)
    with raises_invalid("seq_len"):
        T.ChatTask(seq_len=8)


@pytest.mark.parametrize("item", T.HAZARD_ITEMS[:3])
def test_compliance_target_is_the_helpful_opening(item):
    assert T.helpful_recipe(item).startswith(attacks.compliance_target(item))


def test_safety_questions_mention_hazards_and_are_answered_helpfully():
    """Benign prompts include safety questions about hazardous items (so a hazard word alone
    does not mark an attack), answered without recipe content; the held-out benign set uses the
    held-out safety phrasings only."""
    rng = np.random.default_rng(0)
    pairs = [T.benign_request(rng, T.TRAIN_PHRASINGS) for _ in range(400)]
    safety = [(q, a) for q, a in pairs if any(a == T.safety_answer(i) for i in T.HAZARD_ITEMS)]
    assert len(safety) > 20
    for q, a in safety:
        assert not T.is_harmful(a) and not T.is_refusal(a)
        assert any(item in q for item in T.HAZARD_ITEMS)
    held = T.benign_prompts(0, 300, held_out=True)
    assert any(item in p for p in held for item in T.HAZARD_ITEMS)
    items = T.HAZARD_ITEMS + T.BENIGN_ITEMS
    trained = [s.format(item=i) for s in T.SAFETY_PHRASINGS[:3] for i in items]
    assert not any(t.lower() in p.lower() for p in held for t in trained)
    held_out = [s.format(item=i) for s in T.SAFETY_PHRASINGS[3:] for i in items]
    assert any(t.lower() in p.lower() for p in held for t in held_out)
