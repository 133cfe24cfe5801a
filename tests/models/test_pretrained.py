"""The real pretrained all-MiniLM-L6-v2 against sentence-transformers' own embeddings."""

import json

import numpy as np
import pytest

pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")

from lions_jax.models.pretrained import SentenceEncoder, find_minilm


@pytest.fixture(scope="module")
def reference(fixtures_dir_module):
    return json.loads((fixtures_dir_module / "minilm_reference.json").read_text())


@pytest.fixture(scope="module")
def fixtures_dir_module():
    from pathlib import Path

    return Path(__file__).parents[1] / "fixtures"


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder()  # fails with install instructions if the weights are missing


def test_weights_are_found():
    assert (find_minilm() / "model.safetensors").is_file()


def test_tokenization_matches_reference(encoder, reference):
    sents = reference["sentences"]
    ids, mask = encoder.tokenize([s["text"] for s in sents])
    assert ids.shape[1] % 32 == 0 or ids.shape[1] == encoder.max_seq_length
    for i, s in enumerate(sents):
        n = len(s["input_ids"])
        assert ids[i, :n].tolist() == s["input_ids"]
        assert mask[i].sum() == n and (ids[i, n:] == 0).all()


def test_embeddings_match_sentence_transformers(encoder, reference):
    sents = reference["sentences"]
    emb = encoder.encode([s["text"] for s in sents], batch_size=4)
    ref = np.asarray([s["encode"] for s in sents])
    assert emb.shape == (len(sents), 384)
    cos = (emb * ref).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(ref, axis=1)
    # required <= 1e-4 cosine distance; measured ~1e-7 (float32 round-off)
    assert np.max(1.0 - cos) <= 1e-4
    np.testing.assert_allclose(emb, ref, rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)


def test_unnormalized_mean_pooling_matches(reference):
    enc = SentenceEncoder(normalize=False)
    sents = reference["sentences"]
    pooled = enc.encode([s["text"] for s in sents])
    np.testing.assert_allclose(
        pooled, np.asarray([s["mean_pooled"] for s in sents]), rtol=0, atol=1e-5
    )


def test_bad_model_dir(tmp_path):
    with pytest.raises(ValueError, match=r"has no model\.safetensors"):
        SentenceEncoder(tmp_path)
