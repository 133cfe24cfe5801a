"""`floral` end to end with a tiny budget (CLI, outputs, every method present)."""

import json

from lions_jax import cli


def test_floral_tiny_run(tmp_path):
    out = tmp_path / "r"
    argv = ["run", "floral", "--out", str(out), "--seeds", "2", "--no-progress"]
    extra = [
        "datasets=digits17",
        "attacks=random,influential",
        "nn=false",  # the NN baselines have their own tests (tests/floral/test_nn.py)
        "rates=0,20",
        "num_rounds=10",
        "exact_steps=200",
    ]
    assert cli.main([*argv, *extra]) == 0
    res = json.loads((out / "results.json").read_text())
    attacks = res["datasets"]["digits17"]["attacks"]
    assert set(attacks) == {"random", "influential"}
    methods = {"SVM", "FLORAL", "LN-SVM", "LS-SVM", "Curie"}
    assert methods <= set(attacks["random"])
    for m in methods:
        cell = attacks["random"][m]["20"]
        assert len(cell["per_seed"]) == 2 and 0.0 <= cell["mean"] <= 1.0
    # clean digits 1-vs-7 is easy: the exact SVM is near perfect without poisoning
    assert attacks["random"]["SVM"]["0"]["mean"] >= 0.95
    assert (out / "rounds_digits17_random.png").exists()
    assert "digits17, influential flips" in (out / "table.md").read_text()
