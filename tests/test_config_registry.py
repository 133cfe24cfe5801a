import dataclasses
from typing import Literal

import pytest

from lions_jax._src import registry
from lions_jax._src.config import apply_overrides, config_from_dict, config_to_dict, parse_value


@dataclasses.dataclass(frozen=True, kw_only=True)
class Cfg:
    seed: int = 0
    num_seeds: int = 2
    lr: float = 0.1
    hidden: tuple[int, ...] = (8,)
    pair: tuple[int, float] = (1, 2.0)
    mode: Literal["a", "b"] = "a"
    flag: bool = False
    name: str = "x"
    cap: int | None = None

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


def test_overrides_parse_every_supported_type():
    cfg = apply_overrides(
        Cfg(),
        [
            "lr=3e-4",
            "hidden=(16, 32)",
            "pair=3,0.5",
            "mode=b",
            "flag=true",
            "name=hi",
            "cap=none",
            "num-seeds=7",
        ],
    )
    assert cfg == Cfg(
        lr=3e-4,
        hidden=(16, 32),
        pair=(3, 0.5),
        mode="b",
        flag=True,
        name="hi",
        cap=None,
        num_seeds=7,
    )
    assert apply_overrides(Cfg(), ["cap=5"]).cap == 5
    assert apply_overrides(Cfg(), ["hidden="]).hidden == ()
    assert apply_overrides(Cfg(), ["num_seeds=1e1"]).num_seeds == 10


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("nosuch=1", "unknown config field 'nosuch'"),
        ("lr=fast", "lr='fast': expected a number"),
        ("num_seeds=2.5", "expected an integer"),
        ("mode=c", "expected one of a, b"),
        ("flag=maybe", "expected a boolean"),
        ("pair=1", "expected 2 comma-separated values"),
        ("lr", "not of the form field=value"),
        ("lr=-1", "invalid config: lr must be > 0"),
    ],
)
def test_bad_overrides_are_one_line_value_errors(override, match):
    with pytest.raises(ValueError, match=match) as e:
        apply_overrides(Cfg(), [override])
    assert "\n" not in str(e.value)


def test_config_json_round_trip():
    cfg = Cfg(hidden=(4, 5), pair=(2, 3.5), cap=3)
    assert config_from_dict(Cfg, config_to_dict(cfg)) == cfg
    with pytest.raises(ValueError, match="unknown config field"):
        config_from_dict(Cfg, {"bogus": 1})


def test_parse_value_rejects_unsupported_types():
    with pytest.raises(ValueError, match="cannot be set from the command line"):
        parse_value("1", dict, "d")


def _exp(**kw):
    args = dict(
        name="toy-exp",
        description="A toy.",
        config_type=Cfg,
        presets={"quick": Cfg(), "paper": Cfg(num_seeds=10)},
        run=lambda cfg, out, progress=True: {},
    )
    args.update(kw)
    return registry.Experiment(**args)


def test_experiment_validation():
    _exp()
    with pytest.raises(ValueError, match="lower-case"):
        _exp(name="Bad Name")
    with pytest.raises(ValueError, match="one non-empty line"):
        _exp(description="two\nlines")
    with pytest.raises(ValueError, match="missing preset 'paper'"):
        _exp(presets={"quick": Cfg()})

    @dataclasses.dataclass(frozen=True)
    class NoSeeds:
        lr: float = 1.0

    with pytest.raises(ValueError, match="lacks field"):
        _exp(config_type=NoSeeds, presets={"quick": NoSeeds(), "paper": NoSeeds()})

    @dataclasses.dataclass
    class Mutable:
        seed: int = 0
        num_seeds: int = 1

    with pytest.raises(ValueError, match="frozen"):
        _exp(config_type=Mutable, presets={"quick": Mutable(), "paper": Mutable()})
    with pytest.raises(ValueError, match="`progress` keyword"):
        _exp(run=lambda cfg, out: {})
    with pytest.raises(ValueError, match="no preset 'huge'"):
        _exp().preset("huge")


def test_registry_lists_mlp_digits():
    exps = registry.all_experiments()
    assert "mlp-digits" in exps
    assert registry.get("mlp-digits").preset("quick").num_seeds == 5
    with pytest.raises(ValueError, match=r"unknown experiment 'nope'; available: .*mlp-digits"):
        registry.get("nope")
