"""The `judge` rule: strict verdict parsing, the policy (the rules decide first), what the judge is
shown, the verdict cache (a re-run asks nothing, an interrupted run resumes), the audit, secrets
and configuration errors. The judge here is a small HTTP server on 127.0.0.1 speaking the OpenAI
chat API with fixed replies, so every verdict is known; test_judge_vllm.py runs a real model."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from distill.core.data import read_records, write_records
from distill.core.errors import InputError, StageError
from distill.core.records import Trace
from distill.filters.config import FilterConfig
from distill.filters.rules.judge import parse_verdict
from distill.filters.stage import run

from ...conftest import JsonHandler

ROOT = Path(__file__).resolve().parents[3]
SECRET = "sk-judge-never-written-0123456789"
REASONING = "SECRET-REASONING: let me think about the whole problem very carefully before answering it."


class JudgeServer:
    """/v1/models and /v1/chat/completions; the reply is chosen by a word in the graded answer."""

    REPLIES = {"Paris": "The answer names the capital.\nVERDICT: CORRECT", "Lyon": "**VERDICT: INCORRECT**",
               "Maybe": "I am not sure about this one.", "Echo": None}

    def __init__(self, fail_after: int | None = None):
        self.bodies: list[dict] = []
        self.fail_after = fail_after
        server = self

        class Handler(JsonHandler):
            def do_GET(self):
                self._send(200, {"data": [{"id": "judge"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if server.fail_after is not None and len(server.bodies) >= server.fail_after:
                    return self._send(400, {"error": {"message": "judge is down for the test"}})
                server.bodies.append(body)
                graded = body["messages"][-1]["content"].split("Answer to grade:")[1]
                word = next(w for w in JudgeServer.REPLIES if w in graded)
                reply = JudgeServer.REPLIES[word] or f"you sent {self.headers.get('Authorization')}\nVERDICT: CORRECT"
                self._send(200, {"choices": [{"message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": 40, "completion_tokens": 5}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def judge_server():
    server = JudgeServer()
    yield server
    server.close()


def trace(index: int, answer_text: str, reference: str | None, problem: str = "What is the capital of France?") -> Trace:
    return Trace(problem_id=f"p{index}", id=f"p{index}#0", sample_index=0, problem=problem, answer=reference, domain="science",
                 completion=f"<think>\n{REASONING}\n</think>\n\nThe capital is {answer_text}.")


def records() -> list[Trace]:
    return [
        trace(0, "Paris", "The city of Paris"),  # prose reference: the judge decides -> correct
        trace(1, "Lyon", "The city of Paris"),  # -> incorrect
        trace(2, "Maybe", None),  # no reference; the judge's reply has no verdict -> undecided
        Trace(problem_id="p3", id="p3#0", sample_index=0, problem="What is 7 plus 7?", answer="14",
              completion=f"<think>\n{REASONING}\n</think>\n\nSo \\boxed{{14}}."),  # the rules decide: kept, judge not asked
        Trace(problem_id="p4", id="p4#0", sample_index=0, problem="What is 7 plus 8?", answer="15",
              completion=f"<think>\n{REASONING}\n</think>\n\nSo \\boxed{{14}}."),  # the rules decide: rejected by correctness
    ]


def run_filter(tmp_path: Path, traces: list[Trace], server_url: str, **judge) -> tuple[dict, dict[str, Trace], dict[str, Trace]]:
    source = tmp_path / "in.jsonl"
    if not source.exists():
        write_records(source, traces)
    settings = {"model": "judge", "base_url": server_url, "cache": str(tmp_path / "cache.jsonl"),
                "settings": {"max_retries": 0, "retry_base_delay": 0.01}, **judge}
    config = FilterConfig(input=str(source), output=str(tmp_path / "kept.jsonl"), rejected=str(tmp_path / "rej.jsonl"),
                          rules=["format", "correctness", "judge"], judge=settings)
    report = run(config)
    read = lambda path: {t.id: t for t in read_records(path)} if Path(path).stat().st_size else {}  # noqa: E731
    return report, read(config.output), read(config.rejected)


def test_verdicts_are_parsed_strictly():
    assert parse_verdict("Looks right.\nVERDICT: CORRECT") == ("correct", "judge: CORRECT")
    assert parse_verdict("<think>\nVERDICT: INCORRECT? no...\n</think>\n\n**Verdict: incorrect**.")[0] == "incorrect"
    for reply in ("CORRECT", "VERDICT: CORRECT\nwait, no", "VERDICT: CORRECT or INCORRECT", "", "VERDICT: PARTIALLY CORRECT",
                  "<think>\nVERDICT: CORRECT"):
        assert parse_verdict(reply)[0] == "undecided", reply
    assert parse_verdict("VERDICT: CORRECT", "length") == ("undecided", "judge reply cut off (max_tokens)")


def test_the_rules_decide_first_and_the_judge_decides_the_rest(tmp_path, judge_server):
    report, kept, rejected = run_filter(tmp_path, records(), judge_server.url, price_in=1.0, price_out=2.0)
    assert sorted(kept) == ["p0#0", "p3#0"] and sorted(rejected) == ["p1#0", "p2#0", "p4#0"]
    assert kept["p0#0"].verdicts["correctness"].reason == "prose reference answer: left to the judge"
    assert kept["p0#0"].verdicts["judge"].reason == "judge: CORRECT"
    assert kept["p3#0"].verdicts["judge"].reason == "decided by the rules"
    assert (rejected["p1#0"].rejected_by, rejected["p1#0"].reason) == ("judge", "judge: INCORRECT")
    assert rejected["p2#0"].rejected_by == "judge" and rejected["p2#0"].reason.startswith("undecided: unparseable judge reply")
    assert rejected["p4#0"].rejected_by == "correctness"
    judge = report["judge"]
    assert (judge["records_judged"], judge["correct"], judge["incorrect"], judge["undecided"], judge["asked"]) == (3, 1, 1, 1, 3)
    assert report["rejected_by"]["judge"] == 2
    # what the judge cost: the endpoint's usage, at the judge's prices (money per million tokens)
    assert (judge["prompt_tokens"], judge["completion_tokens"]) == (3 * 40, 3 * 5)
    assert judge["cost"] == pytest.approx((3 * 40 * 1.0 + 3 * 5 * 2.0) / 1e6) and judge["replies_without_usage"] == 0
    # The judge saw the problem, the reference and the final answer, never the reasoning.
    prompts = [body["messages"][-1]["content"] for body in judge_server.bodies]
    assert len(prompts) == 3 and not any("SECRET-REASONING" in p for p in prompts)
    assert any("The city of Paris" in p and "The capital is Lyon." in p for p in prompts)
    assert any("(none given" in p for p in prompts)


def test_keep_undecided_keeps_them_and_they_stay_counted(tmp_path, judge_server):
    report, kept, _ = run_filter(tmp_path, records(), judge_server.url, keep_undecided=True)
    assert "p2#0" in kept and kept["p2#0"].verdicts["judge"].reason.startswith("undecided, kept")
    assert report["judge"]["undecided"] == 1


def test_a_rerun_asks_nothing_and_an_interrupted_run_resumes(tmp_path):
    failing = JudgeServer(fail_after=2)  # the endpoint breaks after two verdicts
    try:
        with pytest.raises(StageError):  # one request at a time: the third fails after two answers were stored
            run_filter(tmp_path, records(), failing.url, concurrency=1)
    finally:
        failing.close()
    assert len((tmp_path / "cache.jsonl").read_text().split("\n")[:-1]) == 2  # what was answered is kept
    assert not (tmp_path / "kept.jsonl").exists()  # outputs appear whole or not at all
    server = JudgeServer()
    try:
        report, kept, _ = run_filter(tmp_path, records(), server.url)
        assert (len(server.bodies), report["judge"]["asked"], report["judge"]["from_cache"]) == (1, 1, 2)
        report, kept_again, _ = run_filter(tmp_path, records(), server.url)
        assert len(server.bodies) == 1 and report["judge"]["asked"] == 0 and report["judge"]["from_cache"] == 3
        assert report["judge"]["completion_tokens"] == 0  # verdicts from the cache cost nothing again
        assert sorted(kept_again) == sorted(kept)
    finally:
        server.close()


def test_audit_judges_a_sample_of_rule_decided_records_and_reports_agreement(tmp_path, judge_server):
    traces = records()[:3] + [trace(10 + i, "Paris" if i % 2 else "Lyon", "42") for i in range(4)]
    for t in traces[3:]:  # a numeric reference the rules decide (all right); the judge says CORRECT for Paris only
        t.completion = t.completion.replace("The capital is", "So \\boxed{42}; the capital is")
    report, kept, rejected = run_filter(tmp_path, traces, judge_server.url, audit=3)
    audit = report["judge"]["audit"]
    assert audit["records"] == 3 and audit["agree"] + audit["disagree"] == 3 and audit["disagree"] >= 1
    assert report["judge"]["records_judged"] == 3  # the audit decides nothing
    assert {f"p1{i}#0" for i in range(4)} <= set(kept)
    audited = [t.id for t in kept.values() if "audit" in t.verdicts["judge"].reason]
    assert len(audited) == 3 and all(i.startswith("p1") for i in audited)


def test_an_audit_alone_decides_nothing(tmp_path, judge_server):
    traces = records()[:3] + [trace(10 + i, "Paris" if i % 2 else "Lyon", "42") for i in range(2)]
    for t in traces[3:]:
        t.completion = t.completion.replace("The capital is", "So \\boxed{42}; the capital is")
    report, kept, rejected = run_filter(tmp_path, traces, judge_server.url, policy="off", audit=2)
    assert report["judge"]["records_judged"] == 0 and report["judge"]["audit"]["records"] == 2
    assert sorted(kept) == ["p10#0", "p11#0"]  # the rest is the rules' again (the no_reference policy: reject)
    assert {t.rejected_by for t in rejected.values()} == {"correctness"} and rejected["p2#0"].reason == "no reference answer or tests"
    assert len(judge_server.bodies) == 2


def test_policy_all_has_the_judge_confirm_what_the_rules_passed(tmp_path, judge_server):
    traces = records()
    traces[3].completion = traces[3].completion.replace("So", "Lyon, so")  # rules pass it; the judge says INCORRECT
    report, kept, rejected = run_filter(tmp_path, traces, judge_server.url, policy="all")
    assert rejected["p3#0"].rejected_by == "judge" and rejected["p3#0"].verdicts["correctness"].passed
    assert report["judge"]["records_judged"] == 4


def test_secrets_are_never_written_even_when_the_judge_echoes_them(tmp_path, judge_server, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", SECRET)
    traces = [trace(0, "Echo", "The city of Paris")]
    report, kept, _ = run_filter(tmp_path, traces, judge_server.url, api_key_env="JUDGE_KEY")
    assert "p0#0" in kept and report["judge"]["correct"] == 1
    written = "".join(p.read_text() for p in tmp_path.iterdir())
    assert SECRET not in written and "<redacted>" in (tmp_path / "cache.jsonl").read_text()


def test_configuration_mistakes_are_one_line_and_write_nothing(tmp_path):
    source = tmp_path / "in.jsonl"
    write_records(source, records())
    out = str(tmp_path / "kept.jsonl")
    with pytest.raises(InputError, match="needs a judge model"):
        run(FilterConfig(input=str(source), output=out, judge={"policy": "all"}))
    with pytest.raises(InputError, match="--judge-base-url"):
        run(FilterConfig(input=str(source), output=out, judge={"model": "judge"}))
    with pytest.raises(InputError, match="'judge' is not in the rule list"):
        run(FilterConfig(input=str(source), output=out, rules=["format"], judge={"model": "judge", "base_url": "http://127.0.0.1:9/v1"}))
    foreign = tmp_path / "notes.jsonl"
    foreign.write_text('{"mine": 1}\n')
    with pytest.raises(InputError, match="not a judge verdict cache"):
        run(FilterConfig(input=str(source), output=out, judge={"model": "j", "base_url": "http://127.0.0.1:9/v1", "cache": str(foreign)}))
    assert foreign.read_text() == '{"mine": 1}\n' and not Path(out).exists()
    result = subprocess.run([sys.executable, "-m", "cli", "filter", str(source), "-o", out, "--judge", "undecided"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0 and "--judge-model" in result.stderr


def test_the_command_line_asks_the_judge(tmp_path, judge_server):
    source = tmp_path / "in.jsonl"
    write_records(source, records())
    result = subprocess.run(
        [sys.executable, "-m", "cli", "filter", str(source), "-o", str(tmp_path / "kept.jsonl"), "--rules", "format,correctness,judge",
         "--judge-model", "judge", "--judge-base-url", judge_server.url, "--judge-cache", str(tmp_path / "cache.jsonl"),
         "--keep-undecided", "--report", str(tmp_path / "report.json"), "--judge-price-in", "0.5", "--judge-price-out", "2"],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "judge: judge, policy undecided" in " ".join(result.stderr.split())
    assert "tokens: prompt / completion" in result.stderr and "cost (at --judge-price-in/out)" in result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["kept"] == 3 and report["judge"]["undecided"] == 1


def test_bad_input_is_reported_before_the_judge_is_asked(tmp_path, judge_server):
    # A broken line in the input is the user's mistake (exit 2, file and line), whatever the judge's state:
    # an unreachable judge must not hide it, and a reachable one must not be paid for records never written.
    source = tmp_path / "in.jsonl"
    write_records(source, records())
    with open(source, "a") as handle:
        handle.write('{"problem_id": "p9", "id": "p9#0", "completion": 12}\n')
    for url in (judge_server.url, "http://127.0.0.1:9/v1"):
        with pytest.raises(InputError, match=r"in\.jsonl:6"):
            run_filter(tmp_path, [], url)
    assert judge_server.bodies == [] and not (tmp_path / "kept.jsonl").exists()


def test_every_audited_record_carries_the_judge_verdict_and_the_report_lists_disagreements(tmp_path, judge_server):
    # the rules decide all four (a numeric reference); the judge's word follows the city named
    finals = {10: ("42", "Paris"), 11: ("41", "Paris"), 12: ("42", "Lyon"), 13: ("41", "Lyon")}
    traces = [trace(i, city, "42") for i, (_, city) in finals.items()]
    for t, (boxed, _) in zip(traces, finals.values(), strict=True):
        t.completion = t.completion.replace("The capital is", f"So \\boxed{{{boxed}}}; the capital is")
    report, kept, rejected = run_filter(tmp_path, traces, judge_server.url, policy="off", audit=4)
    assert sorted(kept) == ["p10#0", "p12#0"] and sorted(rejected) == ["p11#0", "p13#0"]  # the rules' verdicts stand
    views = {t.id: t.verdicts["judge"].reason for t in [*kept.values(), *rejected.values()]}
    assert views == {"p10#0": "decided by the rules (audit: judge says correct)",
                     "p11#0": "decided by the rules (audit: judge says correct; the rules say otherwise)",
                     "p12#0": "decided by the rules (audit: judge says incorrect; the rules say otherwise)",
                     "p13#0": "decided by the rules (audit: judge says incorrect)"}
    differ = report["judge"]["audit"]["disagreements"]
    assert [(d["id"], d["rules"], d["judge"]) for d in differ] == [("p11#0", "incorrect", "correct"), ("p12#0", "correct", "incorrect")]
