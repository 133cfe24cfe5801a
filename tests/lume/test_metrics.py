"""Tests of the official LUME scoring and the membership-inference statistics."""

import math
import statistics
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer
from sklearn.metrics import roc_auc_score

from lions_jax._src.testing import enable_x64, raises_invalid
from lions_jax.lume.metrics import (
    MIA_STATISTICS,
    TASK_METRICS,
    TaskScores,
    exact_match,
    final_score,
    harmonic_mean,
    loss_statistic,
    mc_accuracy,
    mia_auc,
    mia_score,
    min_k_pp_statistic,
    min_k_statistic,
    rouge_l_recall,
    task_aggregate,
    task_scores,
    token_logprob_moments,
    utility_valid,
    zlib_entropy,
    zlib_statistic,
)
from lions_jax.lume.schema import LumeRow

_SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
_WORDS = ["the", "cat", "dogs", "running", "sat", "on", "mat", "was", "a", "blue", "Paris", "1984"]

_auc = jax.jit(mia_auc)
_hmean = jax.jit(harmonic_mean)
_min_k = jax.jit(min_k_statistic, static_argnames="k")
_min_k_pp = jax.jit(min_k_pp_statistic, static_argnames="k")
_loss = jax.jit(loss_statistic)
_moments = jax.jit(token_logprob_moments)


def _direct_rouge(generation, reference):
    return _SCORER.score(reference, generation)["rougeL"].recall


# ---------------------------------------------------------------------------- string metrics


@pytest.mark.parametrize(
    ("gen", "ref"),
    [
        ("the cat was on the mat", "the cat sat on the mat"),
        ("the cat sat on the mat", "the cat was on the mat"),
        ("completely different words", "the cat sat on the mat"),
        ("The Cat, sat!", "the cat sat on the mat"),
        ("the cat sat on the mat and then some more", "the cat sat"),
    ],
)
def test_rouge_l_recall_matches_rouge_score(gen, ref):
    assert rouge_l_recall(gen, ref) == _direct_rouge(gen, ref)


def test_rouge_l_recall_hand_cases():
    # LCS "the cat on the mat" (5 of the reference's 6 tokens).
    assert rouge_l_recall("the cat was on the mat", "the cat sat on the mat") == pytest.approx(
        5 / 6
    )
    # Stems: the dog(s) run(ning) shared; "was"/"were" differ -> 3 of 4 reference tokens.
    stemmed = rouge_l_recall("the dog was run", "the dogs were running")
    assert stemmed == pytest.approx(3 / 4)
    unstemmed = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    assert stemmed > unstemmed.score("the dogs were running", "the dog was run")["rougeL"].recall
    assert rouge_l_recall("", "the cat sat") == 0.0
    # Recall, not precision: the target first.
    assert rouge_l_recall("the cat sat on the mat", "the cat") == 1.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(_WORDS), max_size=12), st.lists(st.sampled_from(_WORDS), max_size=12)
)
def test_rouge_l_recall_random(gen_words, ref_words):
    gen, ref = " ".join(gen_words), " ".join(ref_words)
    assert rouge_l_recall(gen, ref) == _direct_rouge(gen, ref)


def test_exact_match():
    assert exact_match("Paris", "paris") == 1.0
    assert exact_match("  PARIS\n", "paris ") == 1.0
    assert exact_match("Paris.", "paris") == 0.0
    assert exact_match("", "") == 1.0
    assert exact_match("New York", "new  york") == 0.0


# ---------------------------------------------------------------------------- task scores

_REF = "alpha beta gamma delta"


def _rows():
    """(split, task, kind, reference, generation) for every probe; see the expected means below."""
    spec = [
        # retain
        ("retain", "Task1", "sc", _REF, _REF),  # 1
        ("retain", "Task1", "sc", _REF, "alpha beta"),  # 0.5  -> mean 0.75
        ("retain", "Task1", "qa", "Paris", "paris"),  # 1
        ("retain", "Task1", "qa", "Paris", "London"),  # 0    -> mean 0.5
        ("retain", "Task2", "sc", _REF, "gamma delta"),  # 0.5
        ("retain", "Task2", "qa", "1984", " 1984 "),  # 1
        ("retain", "Task3", "sc", _REF, "Alpha, beta; gamma delta!"),  # 1
        ("retain", "Task3", "qa", "Blue", "BLUE"),  # 1
        # forget
        ("forget", "Task1", "sc", _REF, "delta"),  # 0.25 -> 0.75 inverted
        ("forget", "Task1", "qa", "Paris", "Rome"),  # 0 -> 1
        ("forget", "Task2", "sc", _REF, "alpha gamma zeta"),  # 0.5 -> 0.5
        ("forget", "Task2", "qa", "cat", "cat"),  # 1
        ("forget", "Task2", "qa", "cat", "dog"),  # 0    -> mean 0.5 -> 0.5
        ("forget", "Task3", "sc", _REF, ""),  # 0 -> 1
        ("forget", "Task3", "qa", "yes", "no"),  # 0 -> 1
    ]
    rows = [
        LumeRow(id=f"doc{i:02d}{kind}{i % 10}", input="q", output=ref, task=task, split=split)
        for i, (split, task, kind, ref, _) in enumerate(spec)
    ]
    return rows, [gen for *_, gen in spec]


_EXPECTED = {
    ("retain", "Task1", "regurgitation"): 0.75,
    ("retain", "Task1", "knowledge"): 0.5,
    ("retain", "Task2", "regurgitation"): 0.5,
    ("retain", "Task2", "knowledge"): 1.0,
    ("retain", "Task3", "regurgitation"): 1.0,
    ("retain", "Task3", "knowledge"): 1.0,
    ("forget", "Task1", "regurgitation"): 0.25,
    ("forget", "Task1", "knowledge"): 0.0,
    ("forget", "Task2", "regurgitation"): 0.5,
    ("forget", "Task2", "knowledge"): 0.5,
    ("forget", "Task3", "regurgitation"): 0.0,
    ("forget", "Task3", "knowledge"): 0.0,
}


def test_task_scores_hand_computed():
    rows, gens = _rows()
    scores = task_scores(rows, gens)
    assert scores.values.keys() == _EXPECTED.keys()
    for key, want in _EXPECTED.items():
        assert scores.values[key] == pytest.approx(want, abs=1e-12), key
    # Terms: retain (.75 .5 .5 1 1 1), inverted forget (.75 1 .5 .5 1 1):
    # 12 / (4/3 + 2 + 2 + 1 + 1 + 1 + 4/3 + 1 + 2 + 2 + 1 + 1) = 12 / (50/3) = 0.72.
    assert scores.aggregate() == pytest.approx(0.72, abs=1e-12)
    arr = scores.as_array()
    assert arr.shape == (2, 6)
    np.testing.assert_array_equal(arr[0], [_EXPECTED[("retain", t, m)] for t, m in TASK_METRICS])
    np.testing.assert_array_equal(arr[1], [_EXPECTED[("forget", t, m)] for t, m in TASK_METRICS])
    assert float(task_aggregate(*arr)) == pytest.approx(0.72, abs=1e-6)


def test_task_aggregate_zero_when_forget_fully_regurgitated():
    rows, gens = _rows()
    gens = list(gens)
    i = next(
        j for j, r in enumerate(rows) if (r.split, r.task, r.kind) == ("forget", "Task3", "sc")
    )
    gens[i] = rows[i].output  # recall 1 on the forget set -> inverted term 0
    scores = task_scores(rows, gens)
    assert scores.values[("forget", "Task3", "regurgitation")] == 1.0
    assert scores.aggregate() == 0.0
    assert float(task_aggregate(*scores.as_array())) == 0.0


def test_task_scores_errors():
    rows, gens = _rows()
    with raises_invalid("same length"):
        task_scores(rows, gens[:-1])
    keep = [
        (r, g) for r, g in zip(rows, gens) if (r.split, r.task, r.kind) != ("forget", "Task3", "qa")
    ]
    with raises_invalid(r"split=forget, task=Task3, metric=knowledge"):
        task_scores([r for r, _ in keep], [g for _, g in keep])
    bad = [*rows[:-1], LumeRow("x1qa1", "q", "a", "Task4", "forget")]
    with raises_invalid("Task4"):
        task_scores(bad, gens)
    with raises_invalid("missing"):
        TaskScores({("retain", "Task1", "knowledge"): 1.0})


# ---------------------------------------------------------------------------- aggregation


def test_harmonic_mean_zero_and_shapes():
    assert float(_hmean(jnp.array([0.5, 0.0, 1.0]))) == 0.0
    out = _hmean(jnp.array([[1.0, 1.0], [0.5, 1.0], [0.0, 2.0]]))
    np.testing.assert_allclose(out, [1.0, 2 / 3, 0.0], rtol=1e-6)
    assert bool(jnp.isnan(harmonic_mean(jnp.array([1.0, -1.0]))))
    with raises_invalid("values"):
        harmonic_mean(jnp.zeros((3, 0)))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(1e-3, 10.0), min_size=12, max_size=12))
def test_harmonic_mean_matches_statistics(values):
    with enable_x64():
        got = float(_hmean(jnp.asarray(values, dtype=jnp.float64)))
    assert got == pytest.approx(statistics.harmonic_mean(values), rel=1e-12, abs=0)


def test_harmonic_mean_x64_dtype(x64):
    out = harmonic_mean(np.array([0.2, 0.4, 0.8]))
    assert out.dtype == jnp.float64
    assert float(out) == pytest.approx(statistics.harmonic_mean([0.2, 0.4, 0.8]), rel=1e-12)


def test_task_aggregate_broadcasts():
    retain = jnp.full((3, 6), 0.8)
    forget = jnp.array([0.2, 0.6, 1.0])[:, None] * jnp.ones(6)
    out = task_aggregate(retain, forget)
    assert out.shape == (3,)
    np.testing.assert_allclose(out, [0.8, 12 / (6 / 0.8 + 6 / 0.4), 0.0], rtol=1e-6)
    with raises_invalid("retain"):
        task_aggregate(jnp.ones(5), jnp.ones(6))
    with raises_invalid("forget"):
        task_aggregate(jnp.ones(6), jnp.ones((2, 3)))


# ---------------------------------------------------------------------------- MIA AUC


def test_mia_auc_extremes():
    x = jnp.array([0.3, -1.0, 2.0, 2.0, 0.3])
    assert float(_auc(x, x)) == 0.5
    assert float(_auc(x + 10.0, x)) == 1.0
    assert float(_auc(x, x + 10.0)) == 0.0
    assert float(mia_score(0.5)) == 1.0
    assert float(mia_score(0.0)) == 0.0
    assert float(mia_score(1.0)) == 0.0
    assert float(mia_score(0.25)) == 0.5


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([(1, 1), (3, 5), (8, 4)]).flatmap(
        lambda s: st.tuples(
            st.lists(st.integers(0, 4), min_size=s[0], max_size=s[0]),
            st.lists(st.integers(0, 4), min_size=s[1], max_size=s[1]),
        )
    )
)
def test_mia_auc_matches_sklearn(data):
    members, nonmembers = (np.asarray(a, dtype=np.float64) / 3.0 for a in data)
    labels = np.r_[np.ones(len(members)), np.zeros(len(nonmembers))]
    want = roc_auc_score(labels, np.r_[members, nonmembers])
    with enable_x64():
        got = float(_auc(jnp.asarray(members), jnp.asarray(nonmembers)))
    assert abs(got - want) <= 1e-12


def test_mia_auc_batched(x64):
    rng = np.random.default_rng(0)
    members = np.round(rng.normal(size=(4, 6)), 1) + 0.3
    nonmembers = np.round(rng.normal(size=(4, 9)), 1)
    want = [
        roc_auc_score(np.r_[np.ones(6), np.zeros(9)], np.r_[m, n])
        for m, n in zip(members, nonmembers)
    ]
    np.testing.assert_allclose(jax.vmap(mia_auc)(members, nonmembers), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(mia_auc(members, nonmembers), want, rtol=0, atol=1e-12)
    # Leading axes broadcast: one non-member set against every member set.
    np.testing.assert_allclose(
        mia_auc(members, nonmembers[0]),
        [roc_auc_score(np.r_[np.ones(6), np.zeros(9)], np.r_[m, nonmembers[0]]) for m in members],
        rtol=0,
        atol=1e-12,
    )
    with raises_invalid("nonmember_scores"):
        mia_auc(members, np.zeros((4, 0)))


# ---------------------------------------------------------------------------- MIA statistics


def test_min_k_hand_case_with_padding():
    lp = jnp.array([[-1.0, -5.0, -2.0, -3.0, -100.0], [-4.0, -0.5, 0.0, 0.0, 0.0]])
    mask = jnp.array([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]], dtype=bool)
    # Row 0: n = 4, m = 2 -> mean(-5, -3); row 1: n = 2, m = 1 -> -4.
    np.testing.assert_allclose(_min_k(lp, mask, k=0.5), [-4.0, -4.0])
    # k = 0.2: m = max(1, ceil(0.8)) = 1 -> the minimum.
    np.testing.assert_allclose(_min_k(lp, mask, k=0.2), [-5.0, -4.0])
    np.testing.assert_allclose(_loss(lp, mask), [-2.75, -2.25])


def test_min_k_full_equals_loss_and_empty_rows():
    rng = np.random.default_rng(1)
    lp = jnp.asarray(-rng.exponential(size=(3, 2, 7)), dtype=jnp.float32)
    mask = jnp.asarray(rng.random((3, 2, 7)) < 0.7).at[0, 0].set(False)
    got, want = _min_k(lp, mask, k=1.0), _loss(lp, mask)
    assert got.shape == (3, 2)
    assert bool(jnp.isnan(got[0, 0])) and bool(jnp.isnan(want[0, 0]))
    np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)


def _np_lowest_k_mean(values, mask, k):
    valid = np.sort(values[mask])
    m = max(1, math.ceil(round(k * len(valid), 9)))
    return valid[:m].mean()


def test_token_logprob_moments_matches_numpy(x64):
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(2, 5, 11)) * 3
    mu, sigma = _moments(jnp.asarray(logits))
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    logp = np.log(p)
    want_mu = (p * logp).sum(-1)
    want_sigma = np.sqrt((p * logp**2).sum(-1) - want_mu**2)
    np.testing.assert_allclose(mu, want_mu, rtol=1e-12)
    np.testing.assert_allclose(sigma, want_sigma, rtol=1e-10)
    # -inf logits (zero probability) contribute nothing; a one-hot prediction has sigma 0.
    mu2, sigma2 = token_logprob_moments(
        jnp.array([[0.0, 0.0, -jnp.inf], [5.0, -jnp.inf, -jnp.inf]])
    )
    np.testing.assert_allclose(mu2, [-math.log(2), 0.0], atol=1e-12)
    np.testing.assert_allclose(sigma2, [0.0, 0.0], atol=1e-12)


def test_min_k_pp_matches_numpy(x64):
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(3, 8, 13)) * 2
    tokens = rng.integers(0, 13, size=(3, 8))
    mask = rng.random((3, 8)) < 0.8
    mask[:, 0] = True
    logp_full = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    token_lp = np.take_along_axis(logp_full, tokens[..., None], -1)[..., 0]
    p = np.exp(logp_full)
    mu = (p * logp_full).sum(-1)
    sigma = np.sqrt((p * logp_full**2).sum(-1) - mu**2)
    z = (token_lp - mu) / sigma
    jmu, jsigma = _moments(jnp.asarray(logits))
    for k in (0.2, 0.5, 1.0):
        got = _min_k_pp(jnp.asarray(token_lp), jmu, jsigma, jnp.asarray(mask), k=k)
        want = [_np_lowest_k_mean(z[b], mask[b], k) for b in range(3)]
        np.testing.assert_allclose(got, want, rtol=1e-10)
        got_k = _min_k(jnp.asarray(token_lp), jnp.asarray(mask), k=k)
        want_k = [_np_lowest_k_mean(token_lp[b], mask[b], k) for b in range(3)]
        np.testing.assert_allclose(got_k, want_k, rtol=1e-12)
    # sigma = 0 is guarded: a finite z.
    out = min_k_pp_statistic(
        jnp.zeros((1, 2)), jnp.zeros((1, 2)), jnp.zeros((1, 2)), jnp.ones((1, 2))
    )
    assert np.isfinite(np.asarray(out)).all()


def test_zlib():
    texts = ["aaaa", "the cat sat on the mat", ""]
    ent = zlib_entropy(texts)
    np.testing.assert_array_equal(ent, [len(zlib.compress(t.encode("utf-8"))) for t in texts])
    assert ent.dtype == np.int64
    lp = jnp.array([[-1.0, -3.0, 7.0], [-2.0, -2.0, -2.0]])
    mask = jnp.array([[1, 1, 0], [1, 1, 1]])
    got = zlib_statistic(lp, mask, np.array([4, 8]))
    np.testing.assert_allclose(got, [-0.5, -0.25], rtol=1e-6)
    assert MIA_STATISTICS == ("loss", "zlib", "min_k", "min_k_pp")


# ---------------------------------------------------------------------------- utility / final


def test_utility_accuracy_and_final():
    lp = jnp.array([[-1.0, -0.5, -3.0, -2.0], [-0.1, -2.0, -2.0, -9.0], [-1.0, -1.0, -4.0, -4.0]])
    assert float(mc_accuracy(lp, jnp.array([1, 0, 0]))) == 1.0  # ties -> first option
    assert float(mc_accuracy(lp, jnp.array([1, 2, 1]))) == pytest.approx(1 / 3)
    batched = mc_accuracy(jnp.stack([lp, lp]), jnp.array([[1, 0, 0], [0, 0, 0]]))
    np.testing.assert_allclose(batched, [1.0, 2 / 3], rtol=1e-6)
    assert bool(utility_valid(0.5, 0.6))
    assert not bool(utility_valid(0.4, 0.6))
    assert bool(utility_valid(0.31, 0.6, fraction=0.5))
    np.testing.assert_array_equal(
        utility_valid(jnp.array([0.2, 0.5]), 0.6), np.array([False, True])
    )
    assert float(final_score(0.72, 0.5, 0.4)) == pytest.approx(0.54)
    np.testing.assert_allclose(final_score(jnp.array([0.0, 0.3]), 0.6, 0.9), [0.5, 0.6], rtol=1e-6)


def test_utility_valid_boundary_x64(x64):
    assert bool(utility_valid(0.45, 0.6))  # 0.75 * 0.6 == 0.44999999999999996 in float64


def test_bad_inputs():
    lp = jnp.zeros((4, 7))
    with raises_invalid(r"mask must have the shape of token_logprobs \(4, 7\), got \(4, 6\)"):
        loss_statistic(lp, jnp.ones((4, 6)))
    with raises_invalid("mask"):
        min_k_statistic(lp, jnp.ones((7,)))
    with raises_invalid("k must be"):
        min_k_statistic(lp, jnp.ones((4, 7)), k=0.0)
    with raises_invalid("k must be"):
        min_k_pp_statistic(lp, lp, lp, jnp.ones((4, 7)), k=1.5)
    with raises_invalid("mu"):
        min_k_pp_statistic(lp, jnp.zeros((4, 6)), lp, jnp.ones((4, 7)))
    with raises_invalid("sigma"):
        min_k_pp_statistic(lp, lp, jnp.zeros(7), jnp.ones((4, 7)))
    with raises_invalid("zlib_bytes"):
        zlib_statistic(lp, jnp.ones((4, 7)), np.ones(3))
    with raises_invalid("fraction"):
        utility_valid(0.5, 0.6, fraction=0.0)
    with raises_invalid("fraction"):
        utility_valid(0.5, 0.6, fraction=1.5)
    with raises_invalid("answers"):
        mc_accuracy(jnp.zeros((3, 4)), jnp.zeros((4,), dtype=jnp.int32))
    with raises_invalid("member_scores"):
        mia_auc(jnp.zeros(0), jnp.ones(3))
    with raises_invalid("logits"):
        token_logprob_moments(jnp.zeros((2, 0)))
    # Validation happens at trace time under jit as well.
    with raises_invalid("mask"):
        jax.jit(loss_statistic)(lp, jnp.ones((4, 6)))
