"""The two record types every stage shares.

`Problem` is one prompt (what `generate` reads, what `eval` scores against). `Trace` is one
teacher sample for a problem: the unit that `generate` writes, `filter` judges and `train`
learns from. Stages add fields as the data moves along (`verdicts`, `messages`), they never
invent a second record shape.

A trace may carry columns of its own (a public dataset's `difficulty`, prior verdicts, a
label): they are kept as they came and written back after the record's own fields (see
`distill.core.trace_layout` for the rule when one is named like a field of ours).

Code tests (`Problem.tests`) have one canonical shape, whatever format a dataset ships them in
(`distill.core.code_test_formats` reads HumanEval, MBPP, APPS/TACO, LiveCodeBench and CodeContests
into it, and validates it whenever a record is read):

    {"type": "stdin", "cases": [{"input": "1 2\n", "output": "3\n"}, ...]}
        The program runs as a script once per case, `input` on its stdin; its stdout must
        match `output` (the rule: `distill.core.verify.code_tests`).
    {"type": "call", "entry_point": "add", "cases": [{"input": [1, 2], "output": 3}, ...]}
        The program is imported as a module; `add(*input)` (or `Solution().add(*input)`,
        LeetCode style) must return `output`. Inputs and outputs are JSON values, compared as
        plain data (a tuple counts as a list). `"unwrap": true` (APPS/TACO) also accepts x
        where the expected value is the one-element list [x], as their harness does.
    {"type": "assert", "code": "assert add(1, 2) == 3\n...", "entry_point": "add"}
        Test code run in its own process against the program: the names it uses but does
        not define (builtins aside) are the program's functions, called across a pipe, and
        variables, read as plain data; `candidate` is the entry point, and `check(candidate)`
        is called when the code defines `check` without calling it (HumanEval).
        `entry_point` is optional (MBPP's asserts name the function).

The older shapes are still read: a list of {input, output} cases (stdin) and a string of
asserts (assert).
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError, to_jsonable_python

Domain = Literal["math", "code", "science", "general"]
FinishReason = Literal["stop", "length"]


class Problem(BaseModel):
    """One prompt with its reference, as read from a dataset through a field mapping."""

    model_config = ConfigDict(extra="forbid")

    problem_id: str = Field(description="Stable id of the problem; samples of one problem share it.")
    problem: str = Field(min_length=1, description="The user prompt text.")
    answer: str | None = Field(default=None, description="Reference final answer, if known.")
    domain: Domain = Field(default="math", description="math, code, science or general.")
    tests: dict[str, Any] | None = Field(
        default=None,
        description="Code tests in the canonical shape above (older shapes are converted on reading).",
    )
    language: str | None = Field(default=None, description="Target language (ISO 639-1), if known.")
    source: dict[str, Any] | None = Field(default=None, description="Provenance: file or dataset, row.")

    @field_validator("tests", mode="before")
    @classmethod
    def _canonical_tests(cls, value: Any) -> dict[str, Any] | None:
        from distill.core.code_test_formats import TestsError, canonical_tests

        try:
            return canonical_tests(value)
        except TestsError as exc:  # the message names the place inside the tests
            raise PydanticCustomError("invalid_tests", "{detail}", {"detail": str(exc)}) from None


class Verdict(BaseModel):
    """One filter rule's judgement of one trace."""

    model_config = ConfigDict(extra="forbid")

    passed: bool
    reason: str = ""
    score: float | None = None


class Trace(Problem):
    """One teacher sample for a problem (R1 form: `<think>\\n...\\n</think>\\n\\nanswer`).

    Columns that are not fields of ours are carried unchanged (`model_extra`); a required field
    spelled wrong is still an error, because the field itself is then missing.
    """

    model_config = ConfigDict(extra="allow")

    id: str = Field(description="Unique per sample: '{problem_id}#{sample_index}'.")
    sample_index: int = Field(ge=0)
    completion: str = Field(description="The teacher's whole output, reasoning included.")
    finish_reason: FinishReason | None = None
    completion_tokens: int | None = Field(default=None, ge=0)
    prompt_tokens: int | None = Field(default=None, ge=0, description="The prompt's tokens (the endpoint's usage or the engine's count).")
    teacher: dict[str, Any] | None = Field(
        default=None, description="Model, backend, sampling parameters and seed that produced it."
    )
    verdicts: dict[str, Verdict] | None = Field(default=None, description="Filter rule -> verdict.")
    rejected_by: str | None = Field(default=None, description="First rule that rejected it.")
    reason: str | None = Field(default=None, description="Why it was rejected, for people.")
    messages: list[dict[str, str]] | None = Field(default=None, description="SFT conversation.")


def sample_id(problem_id: str, sample_index: int) -> str:
    return f"{problem_id}#{sample_index}"


def derive_problem_id(text: str) -> str:
    """Content hash, used when a dataset has no id column: the same prompt keeps its id."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


# Set by the filter and written last, after the carried columns (the filter appends them to
# the rest of the record as its workers serialised it).
JUDGED = ("verdicts", "rejected_by", "reason", "messages")


def to_row(record: BaseModel, exclude: tuple[str, ...] | frozenset[str] = ()) -> dict[str, Any]:
    """A record as a plain dict for writing: its own fields that are set, then the columns it
    carries exactly as they came (None included), then the filter's judgement."""
    extra = {k: v for k, v in (record.model_extra or {}).items() if k not in exclude}
    data = record.model_dump(mode="json", exclude_none=True, exclude={*(record.model_extra or ()), *exclude})
    row = {k: v for k, v in data.items() if k not in JUDGED}
    row.update(to_jsonable_python(extra))
    row.update((k, data[k]) for k in JUDGED if k in data)
    return row
