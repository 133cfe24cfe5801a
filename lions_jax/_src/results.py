"""Run folders: atomic file writes, metrics logs, Markdown tables, plots and the report.

Every file a run produces is written atomically (to a temporary file in the same folder, then
``os.replace``), so a run that is killed never leaves a half-written ``results.json`` or plot. The
one exception is ``metrics.jsonl``, which is appended line by line; readers skip a torn last line
and a resumed run rewrites the file (atomically) up to its restored step.

A run folder holds::

    config.json     experiment name, preset, the full config, library versions
    metrics.jsonl   one JSON object per logged step: {"step": s, "<metric>": [per-seed values]}
    results.json    the final summary (its presence marks the run as complete)
    table.md        the results table in Markdown
    *.png           plots
    checkpoints/    orbax checkpoints (see ``lions_jax._src.checkpoint``)
"""

import dataclasses
import datetime
import io
import json
import math
import os
import platform
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
TABLE_FILE = "table.md"
REPORT_FILE = "REPORT.md"


# --------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------
def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically: a reader sees the old file or the new one, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomic UTF-8 text write (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomic JSON write; numpy and JAX scalars/arrays are converted to Python lists and numbers."""
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")


def to_jsonable(obj: Any) -> Any:
    """Converts numpy/JAX values, dataclasses, tuples and paths into JSON-serialisable Python objects.

    Non-finite floats become the strings ``"nan"``, ``"inf"``, ``"-inf"`` (JSON has no such numbers).
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return x if math.isfinite(x) else str(x)
    if hasattr(obj, "__array__"):  # numpy / jax arrays
        return to_jsonable(np.asarray(obj).tolist())
    return obj


def write_outputs(
    out_dir: str | os.PathLike,
    *,
    experiment: str,
    config: Mapping[str, Any],
    table: str,
    rows: Iterable[Mapping[str, Any]],
    summary: Mapping[str, Any],
    wall_time_s: float,
) -> dict[str, Any]:
    """Writes a finished run's ``table.md``, ``metrics.jsonl`` and (last) ``results.json``.

    Returns the results dict: ``experiment``, ``config``, the ``summary`` entries,
    ``wall_time_s`` and ``environment``.
    """
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / TABLE_FILE, table)
    atomic_write_text(
        out_dir / METRICS_FILE, "".join(json.dumps(to_jsonable(r)) + "\n" for r in rows)
    )
    out = {
        "experiment": experiment,
        "config": dict(config),
        **summary,
        "wall_time_s": wall_time_s,
        "environment": environment_info(),
    }
    atomic_write_json(out_dir / RESULTS_FILE, out)
    return out


def save_figure(fig: Any, path: str | os.PathLike, *, dpi: int = 120) -> Path:
    """Saves a matplotlib figure as PNG atomically and closes it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------------------------
# Metrics log
# --------------------------------------------------------------------------------------------
def append_metrics(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    """Appends rows to a JSONL metrics file and syncs it to disk."""
    text = "".join(json.dumps(to_jsonable(r)) + "\n" for r in rows)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Reads a JSONL metrics file, skipping a torn (partially written) final line."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def truncate_metrics(path: str | os.PathLike, max_step: int) -> list[dict[str, Any]]:
    """Keeps only complete rows with ``step <= max_step`` (atomic rewrite); returns them.

    Used when resuming from a checkpoint at ``max_step``: rows logged after the checkpoint would
    otherwise be logged twice.
    """
    rows = [r for r in read_metrics(path) if int(r.get("step", -1)) <= max_step]
    if Path(path).exists():
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
    return rows


def stack_metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Turns metrics rows into arrays: ``out["step"]`` is (T,), every metric (T, num_seeds)."""
    if not rows:
        return {}
    keys = [k for k in rows[0] if k != "step"]
    out = {"step": np.asarray([r["step"] for r in rows])}
    for k in keys:
        out[k] = np.asarray([r[k] for r in rows], dtype=np.float64)
    return out


# --------------------------------------------------------------------------------------------
# Summaries, tables and plots
# --------------------------------------------------------------------------------------------
def summarize(values: Any) -> dict[str, Any]:
    """Mean, std (ddof=0), min, max and per-seed values of a 1-D array of per-seed results."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    return {
        "mean": float(v.mean()),
        "std": float(v.std()),
        "min": float(v.min()),
        "max": float(v.max()),
        "per_seed": v.tolist(),
    }


def ci95(values: Any) -> float:
    """Half-width of the 95 % Student-t confidence interval of the mean of per-seed values
    (``t_{0.975, n-1} · s / √n`` with the sample std ``s``; 0 for a single value)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    n = v.shape[0]
    if n < 2:
        return 0.0
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1) * v.std(ddof=1) / np.sqrt(n))


def format_mean_std(summary: Mapping[str, Any], digits: int = 4) -> str:
    """``"0.9611 ± 0.0042"`` from a :func:`summarize` dict."""
    return f"{summary['mean']:.{digits}f} ± {summary['std']:.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    if any(len(r) != len(headers) for r in rows):
        raise ValueError("markdown_table: every row must have len(headers) cells")

    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |"]
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot_curves(
    path: str | os.PathLike,
    x: Any,
    curves: Mapping[str, Any],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    logy: bool = False,
) -> Path:
    """Plots per-seed curves: mean line with a min–max band over seeds for each (T, num_seeds) array."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    x = np.asarray(x)
    for label, y in curves.items():
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
        mean = y.mean(axis=1)
        (line,) = ax.plot(x, mean, label=f"{label} (mean, min–max of {y.shape[1]} seeds)")
        if y.shape[1] > 1:
            ax.fill_between(x, y.min(axis=1), y.max(axis=1), color=line.get_color(), alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


# --------------------------------------------------------------------------------------------
# Run folders and the report
# --------------------------------------------------------------------------------------------
def environment_info() -> dict[str, Any]:
    """Versions and device of this process (recorded in every ``config.json`` and results row)."""
    import jax

    import lions_jax

    devices = jax.devices()
    return {
        "lions_jax": lions_jax.__version__,
        "jax": jax.__version__,
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "num_devices": len(devices),
    }


def new_run_dir(root: str | os.PathLike, experiment: str, preset: str) -> Path:
    """A fresh, not yet existing folder ``root/experiment/<timestamp>-<preset>`` (not created)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / experiment / f"{stamp}-{preset}"
    path, i = base, 1
    while path.exists():
        path, i = base.with_name(f"{base.name}-{i}"), i + 1
    return path


def is_complete(run_dir: str | os.PathLike) -> bool:
    """A run is complete once its ``results.json`` exists (it is written last, atomically)."""
    return (Path(run_dir) / RESULTS_FILE).is_file()


def latest_complete_runs(root: str | os.PathLike) -> dict[str, Path]:
    """Maps experiment name -> its most recent complete run folder under ``root``."""
    out: dict[str, Path] = {}
    root = Path(root)
    if not root.is_dir():
        return out
    for exp_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        runs = [p for p in exp_dir.iterdir() if p.is_dir() and is_complete(p)]
        if runs:
            out[exp_dir.name] = max(runs, key=lambda p: (p / RESULTS_FILE).stat().st_mtime)
    return out


def build_report(
    root: str | os.PathLike,
    *,
    descriptions: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Writes ``root/REPORT.md`` from the latest complete run of every experiment under ``root``."""
    root = Path(root)
    runs = latest_complete_runs(root)
    descriptions = descriptions or {}
    lines = ["# lions_jax report", ""]
    lines.append(
        f"Generated {datetime.datetime.now().isoformat(timespec='seconds')} from `{root}`."
    )
    lines.append("")
    if not runs:
        lines += ["No complete runs found. Run `lions-jax demo` or `lions-jax run NAME`.", ""]
    for name, run in runs.items():
        rel = run.relative_to(root)
        cfg = json.loads((run / CONFIG_FILE).read_text()) if (run / CONFIG_FILE).exists() else {}
        env = cfg.get("environment", {})
        lines.append(f"## {name}")
        lines.append("")
        if name in descriptions:
            lines += [descriptions[name], ""]
        lines.append(
            f"Run `{rel}` · preset `{cfg.get('preset', '?')}` · "
            f"{cfg.get('config', {}).get('num_seeds', '?')} seeds · "
            f"jax {env.get('jax', '?')} on {env.get('device_kind', '?')}"
        )
        lines.append("")
        table = run / TABLE_FILE
        if table.exists():
            lines += [table.read_text(encoding="utf-8").rstrip(), ""]
        for png in sorted(run.glob("*.png")):
            lines += [f"![{png.stem}]({png.relative_to(root).as_posix()})", ""]
    lines += list(notes)
    return atomic_write_text(root / REPORT_FILE, "\n".join(lines).rstrip() + "\n")
