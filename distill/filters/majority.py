"""`correctness.no_reference: majority`: records without a reference answer are checked against
the majority answer of their problem's samples (self-consistency as a pseudo-label).

The vote needs every sample of a problem, wherever it sits in the file, so the stage makes a
first pass (`tally`): workers extract the final answers of the records without a reference
(`extract_answer`, the same extraction as the correctness rule, with every part of an answer
given in several boxes: `\\boxed{2} and \\boxed{5}` votes as "2, 5", not "5"), the parent keeps
only those short strings per problem, and each problem's vote runs in a worker. Voting:
- samples without an extractable answer do not vote (and are rejected: no final answer);
- an answer joins the first group whose first answer it matches: equal after `normalise`, or
  equivalent by `check_math` with the group's first answer as the reference (the same checker
  as the correctness rule, so the same spellings count as equal);
- the largest group wins only with a strict plurality: a tie between the top groups means no
  majority, and every sample of that problem is rejected ("tie between 12 and 14, 2 votes
  each"); a winner needs at least `majority_min_votes` votes (default 2: one sample agreeing
  with itself is no evidence);
- a hung or crashed verification during a vote rejects that problem's samples with the reason.
In the second pass each sample's answer is checked against the winner with `check_math`.
"""

from __future__ import annotations

import functools
import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from distill.core.errors import InputError
from distill.core.r1_format import DELIMITER_PRESETS
from distill.core.records import Trace, Verdict
from distill.core.trace_layout import item_values
from distill.core.verify import VerifyOptions, check_math, extract_answer, failure_verdict, normalise
from distill.core.workers import Failure, WorkerPool


def _short(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def vote(answers: list[str | None], options: VerifyOptions, min_votes: int = 2) -> dict[str, Any]:
    """The majority answer among one problem's samples (see the module docstring for the rules)."""
    groups: list[list[Any]] = []  # [first answer, normalised first answer, votes], in first-seen order
    for answer in answers:
        if answer is None or not answer.strip():
            continue
        key = normalise(answer)
        group = next((g for g in groups if g[1] == key), None)
        if group is None:
            group = next((g for g in groups if check_math(g[0], answer, options).passed), None)
        if group is None:
            group = [answer, key, 0]
            groups.append(group)
        group[2] += 1
    tally = {"samples": len(answers), "voters": sum(g[2] for g in groups), "groups": len(groups)}
    if not groups:
        return {"answer": None, "reason": "no sample gave a final answer", **tally}
    ranked = sorted(groups, key=lambda g: -g[2])  # stable: first-seen order among equals
    best = ranked[0]
    if len(ranked) > 1 and ranked[1][2] == best[2]:
        return {"answer": None, "reason": f"tie between {_short(best[0])} and {_short(ranked[1][0])}, {best[2]} vote{'s' * (best[2] > 1)} each", **tally}
    if best[2] < min_votes:
        return {"answer": None, "reason": f"{_short(best[0])} has {best[2]} vote(s) < {min_votes}", **tally}
    return {"answer": best[0], "votes": best[2], "reason": "", **tally}


def majority_verdict(trace: Trace, result: dict[str, Any] | None, config) -> Verdict:
    """The correctness verdict of a record without a reference, given its problem's vote."""
    if result is None or result["answer"] is None:
        return Verdict(passed=False, reason=f"no majority answer ({result['reason'] if result else 'no votes'})", score=0.0)
    winner = result["answer"]
    tally = f"{result['votes']} of {result['samples']} samples"
    answer = extract_answer(trace.completion, DELIMITER_PRESETS[config.delimiters], every_part=True)
    if answer is None:
        return Verdict(passed=False, reason="no final answer found", score=0.0)
    checked = check_math(winner, answer, config.correctness)
    relation = "=" if checked.passed else "!="
    return Verdict(passed=checked.passed, reason=f"answer {_short(answer)} {relation} majority answer {_short(winner)} ({tally})",
                   score=checked.score)


def _answers_chunk(config, items: list[tuple[str, Any]], failure: Failure | None) -> Iterator[tuple[str, str | None] | None]:
    """(problem_id, extracted answer) of each record without a reference; None for the others.

    Unreadable rows yield None here: the judging pass reports them with file and line.
    """
    delimiters = DELIMITER_PRESETS[config.delimiters]
    for where, raw in items:
        try:
            row = item_values(where, raw, config)
        except InputError:
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("problem_id"), str) or not isinstance(row.get("completion"), str):
            yield None
            continue
        answer = row.get("answer")
        if row.get("tests") or (answer is not None and str(answer).strip()) or row.get("domain") == "general":
            yield None
            continue
        yield row["problem_id"], extract_answer(row["completion"], delimiters, every_part=True)


def _vote_task(item: list[str | None], options: VerifyOptions, min_votes: int) -> dict[str, Any]:
    return vote(item, options, min_votes)


def tally(config, pool: WorkerPool, chunks: Iterable[list[tuple[str, Any]]], out: Path) -> int:
    """First pass: the vote of every problem with records lacking a reference, written to `out` (JSON).

    Memory: the extracted answers of the records without a reference (short strings).
    Returns the number of problems voted on.
    """
    answers: dict[str, list[str | None]] = defaultdict(list)
    for results in pool.imap_chunks(functools.partial(_answers_chunk, config), chunks):
        for result in results:
            if isinstance(result, tuple):
                answers[result[0]].append(result[1])
    most = max((len(samples) for samples in answers.values()), default=0)
    if answers and most < config.correctness.majority_min_votes:  # no problem can reach a majority: say so first
        records = sum(len(samples) for samples in answers.values())
        sys.stderr.write(f"warning: --no-reference majority cannot apply to {config.input}: no problem without a reference has "
                         f"{config.correctness.majority_min_votes} samples to vote ({records:,} records, at most {most} per problem), "
                         "so they will all be rejected; give reference answers, a judge (--judge-model) or --no-reference keep\n")
    task = functools.partial(_vote_task, options=config.correctness, min_votes=config.correctness.majority_min_votes)
    votes: dict[str, dict[str, Any]] = {}
    for problem_id, result in zip(list(answers), pool.imap(task, answers.values()), strict=True):
        if isinstance(result, Failure):
            reason = failure_verdict(result, config.correctness).reason
            result = {"answer": None, "reason": f"vote failed: {reason}", "samples": len(answers[problem_id])}
        votes[problem_id] = result
    out.write_text(json.dumps(votes, ensure_ascii=False), encoding="utf-8")
    return len(votes)
