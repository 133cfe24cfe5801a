"""The LUME row schema (SemEval-2025 Task 4): one JSON object per line with ``id, input, output,
task, split``.

A row is a probe of one document: ``id`` is the document id followed by ``sc<n>`` (sentence
completion, a regurgitation probe) or ``qa<n>`` (a knowledge probe), ``n`` one digit, exactly
as the official scorer reads it (``id[:-1].endswith("sc")``).
"""

import dataclasses
import re
from typing import Literal

__all__ = ["FIELDS", "SPLITS", "TASKS", "LumeRow", "probe_kind"]

#: The three LUME tasks: creative stories, synthetic PII biographies, public biographies.
TASKS: tuple[str, ...] = ("Task1", "Task2", "Task3")
#: The two evaluated splits.
SPLITS: tuple[str, ...] = ("forget", "retain")
#: The JSONL fields, in the order they are written.
FIELDS: tuple[str, ...] = ("id", "input", "output", "task", "split")

_PROBE = re.compile(r"(sc|qa)\d$")


def probe_kind(row_id: str) -> Literal["sc", "qa"]:
    """``"sc"`` or ``"qa"`` from a row id ending in ``sc<n>`` / ``qa<n>`` (one digit).

    >>> probe_kind("6de8b2a6-1cd5-4b7e-aa01-28bc6c5d2ac4qa3")
    'qa'
    """
    m = _PROBE.search(row_id)
    if m is None:
        raise ValueError(f"row id {row_id!r} must end in 'sc<digit>' or 'qa<digit>'")
    return m.group(1)  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class LumeRow:
    """One LUME probe: the greedy continuation of ``input`` is compared with ``output``."""

    id: str
    input: str
    output: str
    task: str
    split: str

    @property
    def kind(self) -> Literal["sc", "qa"]:
        """``"sc"`` (regurgitation, ROUGE-L recall) or ``"qa"`` (knowledge, exact match)."""
        return probe_kind(self.id)

    def to_dict(self) -> dict[str, str]:
        return {f: getattr(self, f) for f in FIELDS}
