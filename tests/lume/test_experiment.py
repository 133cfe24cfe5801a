"""``lume`` end to end on barely trained tiny models (the real run memorises; see the README)."""

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np

from lions_jax._src.testing import raises_invalid
from lions_jax.lume import experiment as E


def test_experiment_pipeline(tmp_path: Path):
    cfg = E.LumeConfig(
        num_seeds=2,
        docs_per_task=1,
        num_facts=8,
        d_model=16,
        num_layers=1,
        pretrain_steps=3,
        finetune_steps=3,
        algorithms=("ga", "npo", "simnpo"),
        lora_algorithms=("gd",),
        lora_rank=2,
        epochs=2,
        batch_size=4,
        cache_dir=str(tmp_path / "cache"),
    )
    out = E.run(cfg, tmp_path / "run", progress=False)
    board = out["leaderboard"]
    assert set(board) == {
        "target (before unlearning)",
        "retain-only reference",
        "GA",
        "NPO",
        "SimNPO+GD",
        "GD (LoRA r 2)",
    }
    for row in board.values():
        assert 0.0 <= row["final"] <= 1.0 and 0.0 <= row["mia_auc_loss"] <= 1.0
        expected = (row["task_aggregate"] + row["mia_score"] + row["utility"]) / 3
        assert abs(row["final"] - expected) < 1e-6  # Final is computed in float32
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # reference: 2 seeds; each of the 4 runs: 2 seeds x (1 + 2 epochs)
    assert len(records) == 2 + 4 * 2 * 3
    assert all(r["min_update_norm"] > 0 for r in records if r["method"] != "retain-only reference")
    table = (tmp_path / "run" / "table.md").read_text()
    assert "Leaderboard" in table and "AUC min_k_pp" in table and "SimNPO+GD" in table
    assert (tmp_path / "run" / "lume.png").is_file()
    # models are cached (target + reference per seed) and reload identically without training
    assert len(list((tmp_path / "cache" / "models").glob("*.msgpack"))) == 4
    prep = E.prepare(cfg)
    _, a = E.cached_models(cfg, prep, progress=False)
    _, b = E.cached_models(cfg, prep, progress=False)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


def test_config_validation():
    with raises_invalid("docs_per_task"):
        E.LumeConfig(docs_per_task=0)
    with raises_invalid("learning_rates"):
        E.LumeConfig(learning_rates=())
    with raises_invalid("lora_algorithms"):
        E.LumeConfig(lora_algorithms=("rmu",))
    with raises_invalid("replay"):
        E.TargetConfig(replay=1.0)
    with raises_invalid("window"):
        E.prepare(dataclasses.replace(E.LumeConfig(docs_per_task=1, num_facts=8), window=16))
