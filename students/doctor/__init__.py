"""`distill doctor`: the silent failures of reasoning SFT, caught before the GPUs are paid for.

Two uses. Before a training run (`training.py`): the student, its data rendered exactly as
`train` renders it (students/dataset.py, students/templates.py), the inference template `train`
will save, the context settings and, for KD, the teacher's tokenizer. Before serving a model
folder (`folder.py`): its chat template, generation config, Modelfile and GGUF files. Each check
is one row: pass / warn / fail, the figure behind it, and for a problem the fix (`report.py`
prints the table). The template checks both modes share live in `rendering.py`, the checks of
the training data's text in `data.py`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Status = Literal["pass", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    figure: str  # what was measured: counts, ids, lengths, the first offending sample
    fix: str = ""  # what to change, for a warning or a failure

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def ok(name: str, figure: str) -> Check:
    return Check(name, "pass", figure)


def warn(name: str, figure: str, fix: str) -> Check:
    return Check(name, "warn", figure, fix)


def fail(name: str, figure: str, fix: str) -> Check:
    return Check(name, "fail", figure, fix)


def judged(name: str, problem: bool, figure: str, fix: str, status: Status = "fail") -> Check:
    """`status` (fail by default) with its fix when `problem`, else pass."""
    return Check(name, status, figure, fix) if problem else ok(name, figure)


def message(exc: Exception) -> str:
    """An InputError's text without the field name it starts with (the check's name says what it is about)."""
    text = str(exc)
    field = getattr(exc, "field", None)
    return text.replace(f"field '{field}': ", "", 1) if field else text
