"""`soar-tabular` end to end with a tiny budget."""

import json

from lions_jax import cli


def test_soar_tabular_tiny_run(tmp_path):
    argv = ["run", "soar-tabular", "--out", str(tmp_path / "r"), "--seeds", "2", "--no-progress"]
    extra = ["mdps=chain", "members=2", "betas=0.1", "num_iters=6", "num_expert=20"]
    assert cli.main([*argv, *extra]) == 0
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    arms = res["chain"]["arms"]
    assert set(arms) == {"L=1", "ensemble L=2", "SOAR L=2 β=0.1", "min L=2", "UCB"}
    # the ensemble consumes about twice the transitions of L = 1 per iteration
    ratio = arms["ensemble L=2"]["total_samples"]["mean"] / arms["L=1"]["total_samples"]["mean"]
    assert 1.3 < ratio < 3.0
    assert (tmp_path / "r" / "gap_chain.png").exists()
