"""The parent side of the `judge` rule: which records go to the judge, asking it, the verdict cache.

Like the majority vote, the judge runs before the judging pass (`prepare`):
1. workers read every record, run the rules ordered before the judge (correctness aside: a
   record another rule rejects never costs a judge request) and report what the judge would be
   shown, with why the rules cannot decide it (`distill.core.verify.undecidable`);
2. the parent picks what to ask: the undecidable records (policy `undecided`), also the records
   the rules passed (policy `all`), and `audit` rule-decided records (a fixed sample: the
   smallest hashes of their ids), whose verdicts are only compared with the rules' (each audited
   record carries the judge's verdict, kept or rejected; the report lists disagreements by id);
3. prompts the cache lacks are asked through a generate backend (`teacher.backends`: the openai
   endpoint with its retries, concurrency and key handling, or the vLLM engine), each verdict
   appended to the cache the moment it arrives, so an interrupted run resumes and a re-run asks
   nothing; the cache holds the key, the model, the verdict and the reply, redacted;
4. the verdict of each record goes to a temporary JSON file the workers read in the judging
   pass (`distill.filters.worker`).
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import json
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from distill.core import cost
from distill.core.errors import InputError
from distill.core.jsonl import read_lines, try_parse
from distill.core.r1_format import DELIMITER_PRESETS
from distill.core.records import Problem
from distill.core.secrets import redact
from distill.core.verify import check, undecidable
from distill.core.workers import Failure, WorkerPool
from distill.filters.registry import RULES
from distill.filters.rules.judge import judge_prompt, parse_verdict, prompt_key

REPLY_KEPT = 2000  # characters of each judge reply kept in the cache (for people auditing the judge)


def active(config) -> bool:
    """The judge is asked: it decides records (policy undecided or all), or only audits (policy off, audit N)."""
    options = config.judge
    return "judge" in config.rules and bool(options.model) and (options.resolved_policy() != "off" or options.audit > 0)


def decides(config) -> bool:
    """Records the rules cannot decide go to the judge (else to the no_reference policy)."""
    return active(config) and config.judge.resolved_policy() != "off"


def check_settings(config) -> None:
    """Before anything is read: a judge policy needs a judge, the judge's backend its settings."""
    options = config.judge
    configured = options.model or options.base_url or options.policy not in (None, "off") or options.audit
    if configured and "judge" not in config.rules:
        raise InputError("judge settings given but 'judge' is not in the rule list", field="rules")
    if (options.resolved_policy() != "off" or options.audit) and not options.model:
        what = f"judge policy '{options.policy}'" if options.resolved_policy() != "off" else "the judge audit"
        raise InputError(f"{what} needs a judge model (--judge-model)", field="judge.model")
    if active(config):
        if options.backend in ("openai",) and not options.base_url:
            raise InputError("the openai backend needs the judge's endpoint (--judge-base-url)", field="judge.base_url")
        generate_config(options, "check")


def generate_config(options, cache: str):
    """The judge's settings as a generate configuration, so the backends take it unchanged."""
    from pydantic import ValidationError

    from teacher.config import GenerateConfig

    values = {"temperature": options.temperature, "max_tokens": options.max_tokens, "concurrency": options.concurrency,
              "think_prefill": "", "n": 1, "seed": 0, **options.settings}
    values.update(prompts="judge", output=Path(cache), teacher=options.model, backend=options.backend,
                  base_url=options.base_url, api_key_env=options.api_key_env)
    try:
        return GenerateConfig(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise InputError(error["msg"], field="judge.settings." + ".".join(map(str, error["loc"]))) from None


def _requests_chunk(config, items: list[tuple[str, Any]], failure: Failure | None) -> Iterator[tuple | None]:
    """Per record: (id, key, prompt, why undecidable | None, rules passed | None), None when an
    earlier rule rejects it, or the error (a string) when it is unreadable: bad input is reported
    before the judge is asked anything (an unreachable judge must not hide it)."""
    from distill.filters.rules.format import parts_of
    from distill.filters.worker import parse_row

    delimiters = DELIMITER_PRESETS[config.delimiters]
    earlier = [name for name in config.rules if RULES[name].check is not None and name not in ("correctness", "judge")
               and RULES[name].order < RULES["judge"].order]
    confirm = config.judge.resolved_policy() == "all" or config.judge.audit > 0
    for position, (where, raw) in enumerate(items):
        if position == 0 and failure is not None:
            yield None  # its verification hung or crashed: the judging pass charges it to correctness
            continue
        try:
            trace = parse_row(where, raw, config)
        except InputError as exc:
            yield str(exc) if exc.where else f"{where}: {exc}"
            continue
        parts = parts_of(trace, config)
        if any(not RULES[name].check(trace, parts, config).passed for name in earlier):
            yield None
            continue
        why = undecidable(trace, delimiters) if "correctness" in config.rules else "no correctness rule"
        passed = None
        if why is None and confirm:
            passed = check(trace, config.correctness, delimiters).passed
        prompt = judge_prompt(trace, parts, config.judge)
        yield trace.id, prompt_key(config.judge.model, prompt), prompt, why, passed


def load_cache(path: str) -> dict[str, dict[str, Any]]:
    """key -> cached verdict. A torn line (a crash mid-write) is skipped and asked again; a file
    with other lines is not a cache of ours and is never appended to."""
    cache: dict[str, dict[str, Any]] = {}
    if not os.path.exists(path):
        return cache
    for line in read_lines(path):
        row = try_parse(line.raw)
        if isinstance(row, dict) and isinstance(row.get("key"), str) and row.get("verdict") in ("correct", "incorrect", "undecided"):
            cache[row["key"]] = row
        elif row is not None or not line.raw.lstrip().startswith(b"{"):
            raise InputError("not a judge verdict cache (write it to a new file)", where=f"{path}:{line.number}", field="judge.cache")
    return cache


class CacheWriter:
    """Appends verdict lines whole (one os.write on an O_APPEND descriptor); a torn last line is ended first."""

    def __init__(self, path: str):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            handle.seek(max(0, size - 1))
            if size and handle.read(1) != b"\n":
                os.write(self.fd, b"\n")  # a crash mid-line: that line stays unreadable, the next ones whole

    def write(self, row: dict[str, Any]) -> None:
        data = (redact(json.dumps(row, ensure_ascii=False)) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def close(self) -> None:
        os.close(self.fd)


class JudgeSink:
    """What the backends hand finished samples to (the generate Sink's interface): each reply is
    parsed and cached at once. The judge has no budget: it never stops early."""

    stopped: str | None = None

    def __init__(self, writer: CacheWriter, model: str, cache: dict[str, dict[str, Any]], total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from distill.core.cost import Spend

        self.writer, self.model, self.cache = writer, model, cache
        self.retries = self.errors = 0
        self.spend = Spend()  # the judge's tokens in this run, as the endpoint (or engine) counted them
        self.without_usage = 0  # replies whose endpoint did not count tokens: the figures leave them out
        self.progress = Progress(TextColumn("[bold]judge"), BarColumn(bar_width=20), MofNCompleteColumn(),
                                 TextColumn("retries {task.fields[retries]}"), TimeElapsedColumn(), transient=True)
        self.task = self.progress.add_task("judge", total=total, retries=0)

    def _store(self, key: str, verdict: str, why: str, reply: str, tokens: dict[str, int | None] | None = None) -> None:
        row = {"key": key, "model": self.model, "verdict": verdict, "why": why, "reply": reply[-REPLY_KEPT:], **(tokens or {})}
        self.writer.write(row)
        self.cache[key] = row
        self.progress.update(self.task, advance=1)

    def emit(self, problem: Problem, index: int, completion: str, finish_reason: str | None, tokens: int | None,
             prompt_tokens: int | None = None, **_logprobs) -> None:
        verdict, why = parse_verdict(completion, finish_reason)
        self.spend.add(prompt_tokens, tokens)
        self.without_usage += tokens is None
        self._store(problem.problem_id, verdict, why, redact(completion), {"prompt_tokens": prompt_tokens, "completion_tokens": tokens})

    def emit_many(self, problem: Problem, samples: list[tuple], prompt_tokens: int | None = None, **_logprobs) -> None:
        for sample in samples:
            self.emit(problem, *sample[:4], prompt_tokens=prompt_tokens)

    def skip(self, problem: Problem, reason: str, count: int) -> None:
        self._store(problem.problem_id, "undecided", f"judge could not be asked: {reason}", "")

    def retried(self) -> None:
        self.retries += 1
        self.progress.update(self.task, retries=self.retries)

    def failed(self) -> None:
        self.errors += 1


def ask(options, prompts: dict[str, str], cache: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ask the judge every prompt (key -> text) the cache lacks; verdicts go into `cache` and its file."""
    from teacher import backends
    from teacher.progress import Job

    if not prompts:
        return {"asked": 0, "retries": 0, "seconds": 0.0, "spend": None, "without_usage": 0}
    config = generate_config(options, options.cache)
    backend = backends.load(options.backend)
    backend.check(config)
    jobs = [Job(Problem(problem_id=key, problem=text, domain="general"), [0]) for key, text in prompts.items()]
    start = time.monotonic()
    writer = CacheWriter(options.cache)
    sink = JudgeSink(writer, options.model, cache, len(jobs))
    try:
        backend.prepare(config)
        with sink.progress:
            backend.generate(config, jobs, sink)
    finally:
        backend.release()
        writer.close()
    return {"asked": len(jobs), "retries": sink.retries, "seconds": round(time.monotonic() - start, 2), "spend": sink.spend, "without_usage": sink.without_usage}


def _audit_rank(record_id: str) -> int:
    return int.from_bytes(hashlib.sha1(record_id.encode()).digest()[:8], "big")


def prepare(config, pool: WorkerPool, chunks: Iterable[list[tuple[str, Any]]], out: Path) -> dict[str, Any]:
    """Judge what the policy sends to the judge; write each record's verdict to `out`; return the report section."""
    options = config.judge
    policy = options.resolved_policy()
    sent: dict[str, dict[str, Any]] = {}  # record id -> {key, role, why}
    prompts: dict[str, str] = {}
    audit: list[tuple[int, str, str, str, bool]] = []  # a max-heap (negated rank) of the sample so far
    for results in pool.imap_chunks(functools.partial(_requests_chunk, config), chunks):
        for result in results:
            if isinstance(result, str):
                raise InputError(result)
            if not isinstance(result, tuple):
                continue
            record_id, key, prompt, why, passed = result
            if (why is not None and policy != "off") or (policy == "all" and passed):
                sent[record_id] = {"key": key, "role": "decide", "rules": why}
                prompts[key] = prompt
            elif options.audit and passed is not None:
                item = (-_audit_rank(record_id), record_id, key, prompt, passed)
                (heapq.heappush if len(audit) < options.audit else heapq.heappushpop)(audit, item)
    for _, record_id, key, prompt, passed in audit:
        sent[record_id] = {"key": key, "role": "audit", "rules_passed": passed}
        prompts[key] = prompt
    cache = load_cache(options.cache)
    missing = {key: text for key, text in prompts.items() if key not in cache}
    asked = ask(options, missing, cache)
    counts: Counter = Counter()
    agreement: Counter = Counter()
    disagreements = []  # where the rules and the judge differ, by record id: for people to read
    for record_id, entry in sent.items():
        verdict = cache[entry["key"]]
        entry.update(verdict=verdict["verdict"], why=verdict["why"])
        if entry["role"] == "decide":
            counts[verdict["verdict"]] += 1
        elif verdict["verdict"] == "undecided":
            agreement["undecided"] += 1
        else:
            agree = (verdict["verdict"] == "correct") == entry["rules_passed"]
            agreement["agree" if agree else "disagree"] += 1
            if not agree:
                disagreements.append({"id": record_id, "rules": "correct" if entry["rules_passed"] else "incorrect",
                                      "judge": verdict["verdict"], "why": verdict["why"]})
    out.write_text(json.dumps(sent, ensure_ascii=False), encoding="utf-8")
    decided = agreement["agree"] + agreement["disagree"]
    return {
        "model": options.model, "policy": policy, "records_judged": sum(counts.values()),
        "correct": counts["correct"], "incorrect": counts["incorrect"], "undecided": counts["undecided"],
        "prompts": len(prompts), "asked": asked["asked"], "from_cache": len(prompts) - asked["asked"], "retries": asked["retries"],
        "seconds": asked["seconds"],
        # what this run's requests cost (verdicts from the cache cost nothing again)
        **cost.figures(asked["spend"] or cost.Spend(), options), "replies_without_usage": asked["without_usage"],
        "audit": {"records": len(audit), "agree": agreement["agree"], "disagree": agreement["disagree"],
                  "undecided": agreement["undecided"], "agreement": round(agreement["agree"] / decided, 4) if decided else None,
                  "disagreements": sorted(disagreements, key=lambda d: d["id"])},
    }
