"""Public surface: every ``__all__`` name exists, is documented, and nothing private leaks."""

import importlib
import inspect

import pytest

PUBLIC = [
    "lions_jax.models",
    "lions_jax.data",
    "lions_jax.lion",
    "lions_jax.scion",
    "lions_jax.sparse24",
    "lions_jax.rl",
    "lions_jax.soar",
    "lions_jax.soar.deep",
    "lions_jax.floral",
    "lions_jax.vrls",
    "lions_jax.bandits",
    "lions_jax.mpo",
    "lions_jax.spd",
    "lions_jax.lume",
]


@pytest.mark.parametrize("name", PUBLIC)
def test_all_names_exist_and_are_documented(name):
    module = importlib.import_module(name)
    assert module.__doc__
    exported = module.__all__
    assert len(exported) == len(set(exported)), "duplicate names in __all__"
    for attr in exported:
        assert not attr.startswith("_"), attr
        obj = getattr(module, attr)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert inspect.getdoc(obj), f"{name}.{attr} has no docstring"


@pytest.mark.parametrize("name", PUBLIC)
def test_public_callables_are_in_all(name):
    module = importlib.import_module(name)
    public = {
        a
        for a, v in vars(module).items()
        if not a.startswith("_")
        and (inspect.isfunction(v) or inspect.isclass(v))
        and getattr(v, "__module__", "").startswith("lions_jax")
    }
    assert public <= set(module.__all__), public - set(module.__all__)


def test_version():
    import lions_jax

    assert lions_jax.__version__.count(".") == 2
