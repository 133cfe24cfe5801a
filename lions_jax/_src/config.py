"""Frozen dataclass configs: validation, ``field=value`` overrides and JSON round trips.

Every experiment config is a ``@dataclasses.dataclass(frozen=True, kw_only=True)`` with at least the
fields ``seed: int`` and ``num_seeds: int``. Derived quantities are ``@property``; checks that need
several fields go in ``__post_init__`` and raise ``ValueError`` (they never mutate the config).
"""

import dataclasses
import os
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, Union

__all__ = [
    "apply_overrides",
    "cache_root",
    "config_from_dict",
    "config_to_dict",
    "parse_value",
]


def cache_root(cache_dir: str, name: str) -> Path:
    """An experiment's cache folder: ``cache_dir`` if given, else ``$LIONS_JAX_DATA/<name>`` or
    ``~/.cache/lions_jax/<name>``."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    root = os.environ.get("LIONS_JAX_DATA")
    return (Path(root) if root else Path.home() / ".cache" / "lions_jax") / name


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The config's fields as a JSON-ready dict (tuples become lists)."""
    from lions_jax._src.results import to_jsonable

    return to_jsonable(cfg)


def config_from_dict(cls: type, data: Mapping[str, Any]) -> Any:
    """Rebuilds a config of type ``cls`` from :func:`config_to_dict` output (lists become tuples)."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _coerce(data[f.name], hints[f.name], f.name)
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown config field(s) for {cls.__name__}: {sorted(unknown)}")
    return cls(**kwargs)


def _coerce(value: Any, tp: Any, name: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], name) for v in value)
        return tuple(_coerce(v, a, name) for v, a in zip(value, args))
    if origin in (Union, types.UnionType):
        for a in typing.get_args(tp):
            if a is type(None) and value is None:
                return None
        non_none = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(non_none) == 1:
            return _coerce(value, non_none[0], name)
    return value


def parse_value(text: str, tp: Any, name: str) -> Any:
    """Parses the command-line text ``text`` as a value of type ``tp`` for field ``name``.

    Supported: ``int``, ``float``, ``bool`` (true/false/1/0/yes/no), ``str``, ``Literal[...]``,
    ``X | None`` (``none``), and ``tuple[X, ...]`` / ``tuple[X, Y]`` written as comma-separated
    values, optionally in parentheses or brackets (``hidden=64,64`` or ``hidden=(64,64)``).

    Raises:
      ValueError: naming the field, the text and the expected type.
    """
    origin = typing.get_origin(tp)
    t = text.strip()
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and t.lower() in ("none", "null"):
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return parse_value(t, a, name)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(f"{name}={text!r}: expected {_type_name(tp)}")
    if origin is Literal:
        choices = typing.get_args(tp)
        for c in choices:
            if str(c) == t:
                return c
        raise ValueError(f"{name}={text!r}: expected one of {', '.join(map(str, choices))}")
    if origin is tuple:
        args = typing.get_args(tp)
        inner = t[1:-1] if t[:1] in "([" and t[-1:] in ")]" else t
        parts = [p for p in (s.strip() for s in inner.split(",")) if p] if inner.strip() else []
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(parse_value(p, args[0], name) for p in parts)
        if len(parts) != len(args):
            raise ValueError(f"{name}={text!r}: expected {len(args)} comma-separated values")
        return tuple(parse_value(p, a, name) for p, a in zip(parts, args))
    if tp is bool:
        low = t.lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{name}={text!r}: expected a boolean (true/false)")
    if tp is int:
        try:
            return int(t)
        except ValueError:
            try:
                f = float(t)
            except ValueError:
                f = None
            if f is not None and f.is_integer():
                return int(f)
            raise ValueError(f"{name}={text!r}: expected an integer") from None
    if tp is float:
        try:
            return float(t)
        except ValueError:
            raise ValueError(f"{name}={text!r}: expected a number") from None
    if tp is str:
        return t
    raise ValueError(f"{name}: fields of type {_type_name(tp)} cannot be set from the command line")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def apply_overrides(cfg: Any, overrides: Iterable[str]) -> Any:
    """Returns ``cfg`` with ``field=value`` overrides applied (typed by the dataclass annotations).

    Raises:
      ValueError: for a malformed override, an unknown field, a value of the wrong type, or a
        config that its own ``__post_init__`` rejects; the message is one readable line.

    Example:
        >>> import dataclasses
        >>> @dataclasses.dataclass(frozen=True, kw_only=True)
        ... class Cfg:
        ...     lr: float = 0.1
        ...     hidden: tuple[int, ...] = (32,)
        >>> apply_overrides(Cfg(), ["lr=3e-4", "hidden=64,64"])
        Cfg(lr=0.0003, hidden=(64, 64))
    """
    hints = typing.get_type_hints(type(cfg))
    names = [f.name for f in dataclasses.fields(cfg)]
    changes: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form field=value")
        key, text = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in names:
            raise ValueError(
                f"unknown config field {key!r} for {type(cfg).__name__}; "
                f"valid fields: {', '.join(names)}"
            )
        changes[key] = parse_value(text, hints[key], key)
    try:
        return dataclasses.replace(cfg, **changes)
    except (TypeError, ValueError) as e:
        raise ValueError(f"invalid config: {e}") from None
