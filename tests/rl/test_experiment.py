"""The `sac-brax` and `expert` experiments end to end on the pure-JAX test env (tiny budgets)."""

import json

import numpy as np

from lions_jax import cli
from lions_jax._src import registry
from lions_jax.rl.expert import expert_dir, load_demonstrations

TINY = [
    "total_steps=300",
    "eval_every=100",
    "learning_starts=50",
    "hidden=8",
    "batch_size=8",
    "num_eval_envs=2",
    "episode_length=20",
]


def test_presets_are_registered_and_valid():
    for name in ("sac-brax", "expert"):
        exp = registry.get(name)
        for preset in ("quick", "paper"):
            assert exp.preset(preset).num_seeds >= 2
    assert registry.get("expert").preset("quick").sac_config().total_steps == 20_000


def test_sac_brax_experiment_on_point_mass(tmp_path):
    argv = ["run", "sac-brax", "--out", str(tmp_path / "r"), "--seeds", "2", "--no-progress"]
    assert cli.main([*argv, "envs=point_mass", "members=2", *TINY]) == 0
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert set(res["arms"]) == {"point_mass-L2"}
    assert len(res["arms"]["point_mass-L2"]["final_return"]["per_seed"]) == 2
    assert (tmp_path / "r" / "return_point_mass.png").exists()


def test_expert_command_writes_a_loadable_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("LIONS_JAX_DATA", str(tmp_path / "data"))
    argv = ["run", "expert", "--env", "point_mass", "--out", str(tmp_path / "r"), "--no-progress"]
    assert cli.main([*argv, "num_demos=3", *TINY]) == 0
    demos, summary = load_demonstrations(expert_dir("point_mass", "generalized"))
    assert summary["env"] == "point_mass" and summary["num_demos"] == 3
    for name in ("stochastic", "deterministic"):
        assert demos[name]["obs"].shape == (3, 20, 1)
        np.testing.assert_allclose(
            demos[name]["returns"], (demos[name]["reward"] * demos[name]["mask"]).sum(1), rtol=1e-5
        )
    assert "actor_params" in demos["policy"]
    assert cli.main(["run", "mlp-digits", "--env", "x", "--out", str(tmp_path / "m")]) == 2
