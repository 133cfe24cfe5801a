"""The experiment registry: every runnable experiment, by name.

An experiment is a name, a one-line description, a frozen keyword-only config dataclass with
``quick`` (CPU, at most ~2 minutes) and ``paper`` presets, and a host-side ``run(cfg, out_dir)``
that writes its results into ``out_dir`` (see :mod:`lions_jax._src.results`).

Experiment modules register themselves on import with :func:`register`; :func:`load_all` imports
the modules listed in ``EXPERIMENT_MODULES``. A module that needs an optional extra (e.g. ``rl``)
and cannot be imported is reported by :func:`unavailable` instead of breaking the CLI.
"""

import dataclasses
import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "EXPERIMENT_MODULES",
    "Experiment",
    "all_experiments",
    "get",
    "load_all",
    "register",
    "unavailable",
]

# One entry per experiment module; method issues append theirs.
EXPERIMENT_MODULES: tuple[str, ...] = (
    "lions_jax.examples.mlp_digits",
    "lions_jax.lion.experiment",
    "lions_jax.scion.experiment",
    "lions_jax.sparse24.experiment",
    "lions_jax.rl.experiment",
    "lions_jax.soar.experiment",
    "lions_jax.soar.brax_experiment",
    "lions_jax.floral.experiment",
    "lions_jax.vrls.ratio_experiment",
    "lions_jax.vrls.nodes_experiment",
    "lions_jax.bandits.experiment",
    "lions_jax.mpo.games_experiment",
    "lions_jax.mpo.lm_experiment",
    "lions_jax.spd.experiment",
    "lions_jax.lume.experiment",
)

REQUIRED_PRESETS = ("quick", "paper")
REQUIRED_FIELDS = ("seed", "num_seeds")

_REGISTRY: dict[str, "Experiment"] = {}
_UNAVAILABLE: dict[str, str] = {}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9\-]*$")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Experiment:
    """A registered experiment.

    Attributes:
      name: lower-case name used on the command line (``lions-jax run NAME``).
      description: one line shown by ``lions-jax list`` and in the report.
      config_type: the frozen, keyword-only dataclass type of its config.
      presets: at least ``"quick"`` and ``"paper"``, each an instance of ``config_type``.
      run: ``run(cfg, out_dir, *, progress=True) -> dict`` writes ``metrics.jsonl``, ``results.json``, ``table.md``
        and plots into ``out_dir`` and returns the results dict. Calling it again on a folder
        holding checkpoints of an unfinished run resumes that run.
    """

    name: str
    description: str
    config_type: type
    presets: Mapping[str, Any]
    run: Callable[[Any, Path], dict[str, Any]]

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(
                f"experiment name {self.name!r} must be lower-case letters, digits, '-'"
            )
        if "\n" in self.description or not self.description.strip():
            raise ValueError(f"experiment {self.name!r}: description must be one non-empty line")
        if not dataclasses.is_dataclass(self.config_type):
            raise ValueError(f"experiment {self.name!r}: config_type must be a dataclass")
        params = self.config_type.__dataclass_params__
        if not params.frozen:
            raise ValueError(f"experiment {self.name!r}: config dataclass must be frozen")
        names = {f.name for f in dataclasses.fields(self.config_type)}
        missing = [f for f in REQUIRED_FIELDS if f not in names]
        if missing:
            raise ValueError(f"experiment {self.name!r}: config lacks field(s) {missing}")
        run_params = inspect.signature(self.run).parameters
        if "progress" not in run_params and not any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in run_params.values()
        ):
            raise ValueError(f"experiment {self.name!r}: run must accept a `progress` keyword")
        for p in REQUIRED_PRESETS:
            if p not in self.presets:
                raise ValueError(f"experiment {self.name!r}: missing preset {p!r}")
        for p, cfg in self.presets.items():
            if not isinstance(cfg, self.config_type):
                raise ValueError(
                    f"experiment {self.name!r}: preset {p!r} is not a {self.config_type}"
                )

    def preset(self, name: str) -> Any:
        """The config of preset ``name`` (ValueError if there is none)."""
        if name not in self.presets:
            raise ValueError(
                f"experiment {self.name!r} has no preset {name!r}; choose from {', '.join(self.presets)}"
            )
        return self.presets[name]


def register(experiment: Experiment) -> Experiment:
    """Adds ``experiment`` to the registry (re-registering the same name from a reload replaces it)."""
    existing = _REGISTRY.get(experiment.name)
    if existing is not None and existing.run.__module__ != experiment.run.__module__:
        raise ValueError(
            f"experiment name {experiment.name!r} already registered by {existing.run.__module__}"
        )
    _REGISTRY[experiment.name] = experiment
    return experiment


def load_all() -> None:
    """Imports every module in :data:`EXPERIMENT_MODULES` (idempotent).

    A module whose optional dependency is missing is recorded in :func:`unavailable` with the
    import error, so that the rest of the CLI keeps working.
    """
    for module in EXPERIMENT_MODULES:
        if module in _UNAVAILABLE:
            continue
        try:
            importlib.import_module(module)
        except ImportError as e:
            _UNAVAILABLE[module] = f"{type(e).__name__}: {e}"


def all_experiments() -> dict[str, Experiment]:
    """Registered experiments by name, sorted."""
    load_all()
    return dict(sorted(_REGISTRY.items()))


def unavailable() -> dict[str, str]:
    """Experiment modules that could not be imported (module -> reason)."""
    load_all()
    return dict(_UNAVAILABLE)


def get(name: str) -> Experiment:
    """The experiment called ``name``.

    Raises:
      ValueError: if there is none; the message lists the registered names.
    """
    exps = all_experiments()
    if name not in exps:
        raise ValueError(f"unknown experiment {name!r}; available: {', '.join(exps) or '(none)'}")
    return exps[name]
