"""sparse24-prune: config validation and a tiny end-to-end run with resume."""

import json

import pytest

from lions_jax._src import registry
from lions_jax.sparse24 import ProxSchedule
from lions_jax.sparse24 import experiment as E

TINY = dict(
    num_seeds=2,
    # one method: the time here is compilation, per method and layer shape. The other methods'
    # pruners are tested in test_layer.py / test_pipeline.py; the experiment loops over methods
    # with one code path.
    methods=("prox",),
    refine_steps=3,
    growth=1.2,
    max_iters=50,
    minilm_layers=r"^blocks/0/attn/(query|out)$",
    minilm_calib_seqs=2,
    minilm_calib_len=16,
    minilm_eval_texts=4,
    minilm_eval_len=16,
    lm_width=16,
    lm_layers=1,
    lm_heads=2,
    lm_seq_len=16,
    lm_steps=4,
    lm_batch=4,
    lm_calib_seqs=4,
    lm_eval_windows=4,
    log_every=2,
    checkpoint_every=4,
)


def test_configs_validate_and_register():
    with pytest.raises(ValueError, match="methods: unknown"):
        E.PruneConfig(methods=("obs",))
    with pytest.raises(ValueError, match="minilm_layers"):
        E.PruneConfig(minilm_layers="(")
    with pytest.raises(ValueError, match="growth"):
        E.PruneConfig(growth=0.9)
    with pytest.raises(ValueError, match="multiples of log_every"):
        E.PruneConfig(lm_steps=100, log_every=30)
    exp = registry.get("sparse24-prune")
    assert exp.preset("quick").num_seeds >= 3 and exp.preset("paper").num_seeds >= 3
    kw = E.PruneConfig().prune_kwargs("prox-fn", True)
    assert kw["method"] == "prox" and kw["refine_steps"] == 200
    assert kw["schedule"] == ProxSchedule(growth=1.01, normalize_features=True)
    assert E.PruneConfig().prune_kwargs("wanda", False) == {"method": "wanda", "refine_steps": 0}


def test_tiny_run_writes_both_tracks_and_resumes(tmp_path):
    cfg = E.PruneConfig(**TINY)
    out = E.run(cfg, tmp_path, progress=False)
    for track in ("minilm", "lm"):
        rows = out[track]
        assert set(rows) - {"dense_perplexity"} == {"prox", "prox + GD"}
        assert len(rows["prox"]["metric"]["per_seed"]) == 2
    assert rows["prox"]["layers"] == [
        f"blocks/0/{n}"
        for n in ("attn/query", "attn/key", "attn/value", "attn/out", "mlp/up", "mlp/down")
    ]
    assert out["minilm"]["prox"]["layers"] == ["blocks/0/attn/query", "blocks/0/attn/out"]
    assert 0.0 < out["minilm"]["prox + GD"]["metric"]["mean"] <= 1.0 + 1e-6
    assert out["lm"]["dense_perplexity"] > 1.0
    table = (tmp_path / "table.md").read_text()
    assert "### A. all-MiniLM-L6-v2" in table and "| prox + GD |" in table
    assert (tmp_path / "lm_layers.png").exists() and (tmp_path / "minilm_layers.png").exists()
    units = sorted(p.name for p in (tmp_path / "units").iterdir())
    assert len(units) == 2 * 1 * 2 * 2  # tracks x methods x (mask, GD) x seeds
    # a rerun on the same folder reuses every finished unit and reports the same numbers
    again = E.run(cfg, tmp_path, progress=False)
    assert json.dumps(again["lm"], sort_keys=True) == json.dumps(out["lm"], sort_keys=True)
