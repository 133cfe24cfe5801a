"""The ``lions-jax`` command line: list, run, demo and report experiments.

    lions-jax list
    lions-jax run NAME [--preset quick|paper] [--seeds N] [--out DIR] [field=value ...]
    lions-jax demo [--root runs]
    lions-jax report [--root runs]

Usage errors (unknown experiment, unknown field, bad value, a folder that belongs to another run)
print one line to stderr and exit with status 2, before anything is written. ``run`` on an
existing ``--out`` folder of an unfinished run with the same config resumes it from its last
checkpoint.
"""

import argparse
import dataclasses
import json
import shlex
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main"]

PROG = "lions-jax"
DEFAULT_ROOT = "runs"


class UsageError(Exception):
    """A command-line mistake: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Run and report lions_jax experiments.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list registered experiments")
    run = sub.add_parser("run", help="run one experiment")
    run.add_argument("name", help="experiment name (see `lions-jax list`)")
    run.add_argument("--preset", default="quick", help="config preset (default: quick)")
    run.add_argument("--seeds", type=int, default=None, help="number of seeds (vmapped)")
    run.add_argument(
        "--env", default=None, help="environment, for experiments with an env field (= env=ENV)"
    )
    run.add_argument(
        "--out",
        default=None,
        help="run folder (default: ROOT/NAME/<timestamp>-<preset>); an unfinished "
        "run in it is resumed",
    )
    run.add_argument("--root", default=DEFAULT_ROOT, help="runs root (default: runs)")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.add_argument("overrides", nargs="*", metavar="field=value", help="config overrides")
    demo = sub.add_parser("demo", help="run every experiment's quick preset, then the report")
    demo.add_argument("--root", default=DEFAULT_ROOT, help="runs root (default: runs)")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    report = sub.add_parser("report", help="rebuild ROOT/REPORT.md from existing runs")
    report.add_argument("--root", default=DEFAULT_ROOT, help="runs root (default: runs)")
    return parser


def _resolve_config(
    name: str,
    preset: str,
    seeds: int | None,
    overrides: Sequence[str],
    env: str | None = None,
):
    from lions_jax._src import registry
    from lions_jax._src.config import apply_overrides

    try:
        exp = registry.get(name)
        cfg = exp.preset(preset)
        items = list(overrides)
        if env is not None:
            if "env" not in {f.name for f in dataclasses.fields(cfg)}:
                raise ValueError(f"--env: experiment {name!r} has no env field")
            items.insert(0, f"env={env}")
        if seeds is not None:
            items.append(f"num_seeds={seeds}")
        cfg = apply_overrides(cfg, items)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return exp, cfg


def _prepare_out_dir(
    exp: Any, cfg: Any, preset: str, out: str | None, root: str
) -> tuple[Path, bool]:
    """Chooses the run folder; returns ``(path, resuming)``. Writes nothing."""
    from lions_jax._src import results
    from lions_jax._src.config import config_to_dict

    if out is None:
        return results.new_run_dir(root, exp.name, preset), False
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    if not path.exists() or not any(path.iterdir()):
        return path, False
    cfg_file = path / results.CONFIG_FILE
    if not cfg_file.is_file():
        raise UsageError(f"--out {out}: folder is not empty and holds no lions_jax run")
    saved = json.loads(cfg_file.read_text())
    if saved.get("experiment") != exp.name or saved.get("config") != config_to_dict(cfg):
        raise UsageError(
            f"--out {out}: holds a run of {saved.get('experiment')!r} with a different "
            "config; choose another folder"
        )
    if results.is_complete(path):
        raise UsageError(f"--out {out}: that run is already complete; choose another folder")
    return path, True


def _run_one(
    exp: Any,
    cfg: Any,
    preset: str,
    out_dir: Path,
    resuming: bool,
    *,
    progress: bool,
    argv: Sequence[str],
) -> dict[str, Any]:
    from lions_jax._src import results
    from lions_jax._src.config import config_to_dict

    out_dir.mkdir(parents=True, exist_ok=True)
    if not resuming:
        results.atomic_write_json(
            out_dir / results.CONFIG_FILE,
            {
                "experiment": exp.name,
                "preset": preset,
                "config": config_to_dict(cfg),
                "command": " ".join(shlex.quote(a) for a in [PROG, *argv]),
                "environment": results.environment_info(),
            },
        )
    print(
        f"{'resuming' if resuming else 'running'} {exp.name} ({preset}) in {out_dir}",
        file=sys.stderr,
    )
    return exp.run(cfg, out_dir, progress=progress)


def _cmd_list() -> int:
    from lions_jax._src import registry

    exps = registry.all_experiments()
    width = max((len(n) for n in exps), default=0)
    for name, exp in exps.items():
        print(f"{name:<{width}}  {exp.description}")
    for module, reason in registry.unavailable().items():
        print(f"(unavailable: {module}: {reason})")
    return 0


def _cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from lions_jax._src import results

    exp, cfg = _resolve_config(args.name, args.preset, args.seeds, args.overrides, args.env)
    out_dir, resuming = _prepare_out_dir(exp, cfg, args.preset, args.out, args.root)
    try:
        _run_one(exp, cfg, args.preset, out_dir, resuming, progress=not args.no_progress, argv=argv)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; resume with: {PROG} run {exp.name} --preset {args.preset} "
            f"--out {shlex.quote(str(out_dir))}"
            + "".join(f" {shlex.quote(o)}" for o in args.overrides)
            + (f" --seeds {args.seeds}" if args.seeds is not None else "")
            + (f" --env {shlex.quote(args.env)}" if args.env is not None else ""),
            file=sys.stderr,
        )
        return 130
    table = out_dir / results.TABLE_FILE
    if table.exists():
        print(table.read_text(encoding="utf-8"))
    print(f"results in {out_dir}")
    return 0


def _cmd_demo(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from lions_jax._src import registry, results

    failures = []
    exps = registry.all_experiments()
    for name, exp in exps.items():
        cfg = exp.preset("quick")
        out_dir = results.new_run_dir(args.root, name, "quick")
        try:
            _run_one(exp, cfg, "quick", out_dir, False, progress=not args.no_progress, argv=argv)
        except Exception:  # keep going: the report shows what finished
            traceback.print_exc()
            failures.append(name)
    notes = [f"- `{m}` unavailable: {r}" for m, r in registry.unavailable().items()]
    notes += [f"- `{n}` failed in this demo; see the console log." for n in failures]
    if notes:
        notes = ["## Not run", "", *notes]
    report = results.build_report(
        args.root, descriptions={n: e.description for n, e in exps.items()}, notes=notes
    )
    print(f"report: {report}")
    return 1 if failures else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from lions_jax._src import registry, results

    root = Path(args.root)
    if not root.is_dir():
        raise UsageError(f"--root {args.root}: no such folder; run `{PROG} demo` first")
    exps = registry.all_experiments()
    report = results.build_report(root, descriptions={n: e.description for n, e in exps.items()})
    print(f"report: {report}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lions-jax`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args, extra = _build_parser().parse_known_args(argv)
        # Overrides may come before or after options (argparse stops collecting positionals at
        # the first option), so `field=value` items left over are overrides too.
        if args.command == "run":
            args.overrides += [e for e in extra if "=" in e and not e.startswith("-")]
            extra = [e for e in extra if not ("=" in e and not e.startswith("-"))]
        if extra:
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
        if args.command == "list":
            return _cmd_list()
        if args.command == "run":
            if args.seeds is not None and args.seeds < 1:
                raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
            return _cmd_run(args, argv)
        if args.command == "demo":
            return _cmd_demo(args, argv)
        return _cmd_report(args)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2


def _entry() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    _entry()
