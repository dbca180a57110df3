"""GPQA Diamond: multiple choice, four options, graded by the letter the model chose.

Rows as the public set ships them (Idavidrein/gpqa, `gpqa_diamond.csv`): `Question`,
`Correct Answer`, `Incorrect Answer 1..3`, and `Record ID`. The four options are shuffled per
problem with a seed (recorded in summary.json as `shuffle_seed`), so the gold letter is spread
over A-D as in simple-evals; the same seed gives the same order on every run and machine.

The prompt is simple-evals' multiple-choice template, which the R1 paper names for GPQA: the
question, then each option on its own line as `A) text` (line breaks inside an option become
spaces, so one option stays one line). Grading: `distill.core.verify.choice`.
"""

from __future__ import annotations

import random
import re
from typing import Any

from distill.core.data import iter_rows, row_ref
from distill.core.errors import InputError
from distill.core.ids import UniqueIds
from distill.core.r1_format import Delimiters
from distill.core.records import Problem, Trace, Verdict, derive_problem_id
from distill.core.verify.choice import LETTERS, check_choice, extract_choice
from distill.core.verify.extract import final_part

QUESTION, CORRECT = "Question", "Correct Answer"
INCORRECT = ("Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
COLUMNS = (QUESTION, CORRECT, *INCORRECT)
TEMPLATE = ("Answer the following multiple choice question. The last line of your response should be of the following format: "
            "'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. Think step by step before answering.\n\n{question}\n\n{options}")
_OPTION_LINE = re.compile(r"^([A-D])\) (.*)$", re.M)


def matches(row: dict[str, Any]) -> bool:
    """A row in GPQA's layout."""
    return QUESTION in row and CORRECT in row


def _cell(row: dict[str, Any], column: str, where: str) -> str:
    value = row.get(column)
    if not isinstance(value, str) or not value.strip():
        found = "missing" if column not in row else "empty"
        raise InputError(f"{found}: a GPQA row needs the question, the correct answer and three incorrect ones", where=where, field=column)
    return " ".join(value.split()) if column != QUESTION else value.strip()


def load(source: str, split: str, limit: int | None, seed: int) -> list[Problem]:
    problems: list[Problem] = []
    ids = UniqueIds("Record ID")
    for where, row in iter_rows(source, split):
        question = _cell(row, QUESTION, where)
        correct, *wrong = (_cell(row, column, where) for column in (CORRECT, *INCORRECT))
        problem_id = str(row.get("Record ID") or derive_problem_id(question))
        ids.see(problem_id, where)
        order = [correct, *wrong]
        random.Random(f"{seed}/{problem_id}").shuffle(order)  # per problem: independent of row order and --limit
        options = "\n".join(f"{letter}) {text}" for letter, text in zip(LETTERS, order, strict=True))
        problems.append(Problem(problem_id=problem_id, problem=TEMPLATE.format(question=question, options=options),
                                answer=LETTERS[order.index(correct)], domain="science",
                                source={"input": str(source), "row": row_ref(where)}))
        if limit and len(problems) >= limit:
            break
    return problems


def options_of(prompt: str) -> dict[str, str]:
    """The options as the prompt shows them (the last line of each letter)."""
    return dict(_OPTION_LINE.findall(prompt))


def grade(trace: Trace, delimiters: Delimiters | None) -> Verdict:
    return check_choice(trace.answer or "", trace.completion, options_of(trace.problem), delimiters)


def answer(trace: Trace, delimiters: Delimiters | None) -> str | None:
    """The letter a sample chose (what the majority vote counts)."""
    return extract_choice(final_part(trace.completion, delimiters), options_of(trace.problem))
