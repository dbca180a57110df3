"""Benchmarks of problems with a reference answer (AIME, MATH-500, AMC, any problem/answer file) or
code tests in a known format: read through the data layer's field mapping, graded by the verifier."""

from __future__ import annotations

from distill.core.data import FieldMap, read_problems
from distill.core.errors import InputError
from distill.core.ids import UniqueIds
from distill.core.records import Problem


def load(source: str, split: str, fields: FieldMap, limit: int | None, spec: str) -> list[Problem]:
    problems: list[Problem] = []
    ids = UniqueIds(fields.id or "id")
    for problem in read_problems(source, fields, split=split):
        where = f"{spec} row {problem.source.get('row') if problem.source else '?'}"
        if not problem.answer and not problem.tests:
            raise InputError("no reference answer or code tests", where=where, field=fields.answer or "answer")
        if fields.id:  # an id column: one id, one problem (derived ids are unique by construction)
            ids.see(problem.problem_id, where)
        problems.append(problem)
        if limit and len(problems) >= limit:
            break
    return problems
