"""The SPD detector end to end on synthetic decodes: fit, save, load, apply; the API variant."""

import jax
import jax.numpy as jnp
import numpy as np

from lions_jax._src.testing import raises_invalid
from lions_jax.spd import SPDDetector, api_top_logprobs


def _decodes(key, n, sharp):
    """n decodes (n, 6, 30): 'jailbreak' decodes (sharp=True) are more confident."""
    logits = jax.random.normal(key, (n, 6, 30)) * (4.0 if sharp else 1.5)
    return jax.nn.log_softmax(logits)


def test_fit_save_load_apply(tmp_path):
    k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
    train = jnp.concatenate([_decodes(k1, 30, True), _decodes(k2, 30, False)])
    labels = jnp.array([1] * 30 + [0] * 30)
    test = jnp.concatenate([_decodes(k3, 20, True), _decodes(k4, 20, False)])
    truth = np.array([True] * 20 + [False] * 20)
    det = SPDDetector(r=3, k=5, num_steps=500).fit(train, labels)
    pred = np.asarray(det.predict(test))
    assert (pred == truth).mean() >= 0.9  # well-separated synthetic classes
    path = det.save(tmp_path / "spd.npz")
    loaded = SPDDetector.load(path)
    assert (loaded.r, loaded.k, loaded.top_logprobs) == (3, 5, None)
    np.testing.assert_array_equal(np.asarray(loaded.decision(test)), np.asarray(det.decision(test)))
    # the API variant (top-5 only) re-normalises over the five it sees
    api = SPDDetector(r=3, k=5, top_logprobs=5, num_steps=500)
    x = np.asarray(api.features(train))
    np.testing.assert_allclose(np.exp(-x[:, :15]).reshape(60, 3, 5).sum(-1), 1.0, atol=1e-5)
    assert np.asarray(api_top_logprobs(train, 5)).shape == (60, 6, 5)


def test_bad_use_is_a_clear_error(tmp_path):
    with raises_invalid("top_logprobs"):
        SPDDetector(k=10, top_logprobs=5)
    with raises_invalid("r: expected"):
        SPDDetector(r=0)
    with raises_invalid("not fitted"):
        SPDDetector().decision(jnp.zeros((2, 6, 30)))
    with raises_invalid("not fitted"):
        SPDDetector().save(tmp_path / "x.npz")


def test_experiment_batched_fits_equal_one_detector_per_setting(x64):
    """The experiment's one-program SPD grid (features sliced from the largest (r, k), zero-padded
    to one width, γ from the unpadded fitted subset, vmapped fits) gives each setting's
    ``SPDDetector`` decisions."""
    from types import SimpleNamespace

    from lions_jax.spd.experiment import _spd_scores

    rng = np.random.default_rng(3)
    n_fit, n_test, t, v = 40, 12, 4, 30
    y = np.arange(n_fit) % 2
    scale = 1.0 + 0.8 * y[:, None, None] + rng.uniform(0, 1, (n_fit, 1, 1))
    lp = lambda s, n: jax.nn.log_softmax(s * rng.normal(size=(n, t, v)), axis=-1)  # noqa: E731
    fit = SimpleNamespace(logprobs=lp(scale, n_fit), lengths=rng.integers(2, t + 1, n_fit))
    test = SimpleNamespace(logprobs=lp(1.5, n_test), lengths=rng.integers(2, t + 1, n_test))
    subset = rng.random(n_fit) < 0.7
    specs = [(3, 10, None, None), (1, 2, None, None), (2, 5, 5, None), (3, 10, None, subset)]
    got = _spd_scores(fit, test, y, specs)
    for (r, k, top, sel), row in zip(specs, got):
        sel = np.ones(n_fit, bool) if sel is None else sel
        det = SPDDetector(r=r, k=k, top_logprobs=top).fit(
            fit.logprobs[sel], y[sel], jnp.asarray(fit.lengths[sel])
        )
        ref = np.asarray(det.decision(test.logprobs, jnp.asarray(test.lengths)))
        # two runs of the same solver on equivalent duals (different step sizes): ~1e-8 apart
        np.testing.assert_allclose(row, ref, atol=1e-6)
