"""LiveCodeBench (code generation): programs graded by the verifier's sandbox against the tests.

Rows as the public release ships them (livecodebench/code_generation_lite): `question_content`,
`question_id`, `starter_code`, `public_test_cases`, `private_test_cases`, `metadata` (func_name
of functional problems), `contest_date`, `platform`, `difficulty`. The data layer reads the
tests (`distill.core.code_test_formats`): stdin and functional, public and private; the private ones
are base64(zlib(pickle(JSON))) in the release, and their pickle is read by an unpickler that
builds plain containers and scalars only (it refuses every class and callable), so a crafted
row cannot run code here.

Problems are kept when their contest date lies in the window `since..until` (the R1 paper's
2024-08..2025-01 by default). The prompt is LiveCodeBench's code-generation format (its generic
system text, the question, the starter code or the stdin instruction); R1's advice is to put
every instruction in the user turn, so the system text opens the user turn.
"""

from __future__ import annotations

import calendar
from datetime import date
from typing import Any

from distill.core.data import FieldMap, iter_rows, problem_values, row_ref, validate_record
from distill.core.errors import InputError
from distill.core.ids import UniqueIds
from distill.core.records import Problem

SYSTEM = ("You are an expert Python programmer. You will be given a question (problem specification) and will generate a correct "
          "Python program that matches the specification and passes all tests.")
WITH_STARTER = "You will use the following starter code to write the solution to the problem and enclose your code within delimiters."
WITHOUT_STARTER = ("Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test on the sample inputs). "
                   "Enclose your code within delimiters as follows. Ensure that when the python program runs, it reads the inputs, runs the "
                   "algorithm and writes output to STDOUT.")
FIELDS = FieldMap(problem="question_content", id="question_id", answer=None, solution=None, domain=None, language=None, tests=None,
                  test_format="livecodebench")


def matches(row: dict[str, Any]) -> bool:
    """A row in LiveCodeBench's layout."""
    return "question_content" in row and ("public_test_cases" in row or "private_test_cases" in row)


def prompt(row: dict[str, Any]) -> str:
    text = f"{SYSTEM}\n\n### Question:\n{row['question_content']}\n\n"
    starter = row.get("starter_code")
    if isinstance(starter, str) and starter.strip():
        text += f"### Format: {WITH_STARTER}\n```python\n{starter}\n```\n\n"
    else:
        text += f"### Format: {WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```\n\n"
    return text + "### Answer: (use the provided format with backticks)\n\n"


def parse_day(text: str, field: str, end: bool = False) -> date:
    """YYYY-MM or YYYY-MM-DD; a month alone means its first day (`end`: its last)."""
    try:
        parts = [int(part) for part in str(text).strip()[:10].split("-")]
        if len(parts) == 2:
            year, month = parts
            return date(year, month, calendar.monthrange(year, month)[1] if end else 1)
        return date(*parts)
    except (ValueError, TypeError):
        raise InputError(f"expected a date YYYY-MM or YYYY-MM-DD, got {text!r}"[:200], field=field) from None


def load(source: str, split: str, limit: int | None, since: str | None, until: str | None) -> list[Problem]:
    first = parse_day(since, "since") if since else date.min
    last = parse_day(until, "until", end=True) if until else date.max
    problems: list[Problem] = []
    ids = UniqueIds("question_id")
    for where, row in iter_rows(source, split):
        stamp = row.get("contest_date")
        try:
            day = date.fromisoformat(str(stamp)[:10])
        except ValueError:
            raise InputError(f"expected an ISO date, got {stamp!r}"[:200], where=where, field="contest_date") from None
        if not first <= day <= last:
            continue
        values = problem_values(row, FIELDS, where, prompt(row))  # reads and checks the tests: file, line, column
        if not values["tests"]:
            raise InputError("no test cases", where=where, field="public_test_cases")
        values["source"] = {"input": str(source), "row": row_ref(where), "contest_date": day.isoformat()}
        problem = validate_record(Problem, values, where)
        ids.see(problem.problem_id, where)
        problems.append(problem)
        if limit and len(problems) >= limit:
            break
    if not problems:
        raise InputError(f"no problems with a contest_date from {since or 'the first'} to {until or 'the last'} (set --since/--until)",
                         where=source)
    return problems
