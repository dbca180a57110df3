"""The teacher's log-probabilities follow their records through `filter` and `merge`: every kept
record keeps its frame, byte for byte, and nothing else is carried."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distill.core import logprobs
from distill.core.data import write_records
from distill.core.errors import InputError
from distill.core.records import Trace
from distill.filters.config import FilterConfig
from distill.filters.stage import run as filter_run
from teacher.store import merge_shards

ROOT = Path(__file__).resolve().parents[3]
REASONING = "Let me add seven and seven carefully, then check the sum once more to be sure it is right."


def traces_with_logprobs(path: Path, answers: list[str], prefix: str = "p") -> dict[str, bytes]:
    """A trace file and its side file (as `generate --logprobs 4` writes them); returns id -> frame."""
    traces, frames = [], {}
    for i, text in enumerate(answers):
        trace = Trace(problem_id=f"{prefix}{i}", id=f"{prefix}{i}#0", sample_index=0, problem="What is 7 plus 7?", answer="14",
                      completion=f"<think>\n{REASONING}\n</think>\n\nSo \\boxed{{{text}}}.", teacher={"model": "t", "logprobs": 4})
        rng = np.random.default_rng(i)
        top = -np.sort(rng.random((6, 4)), axis=1)
        frames[trace.id] = logprobs.encode(trace.id, logprobs.TokenLogprobs.build(rng.integers(0, 99, 6), top[:, 0], rng.integers(0, 99, (6, 4)), top, 4))
        traces.append(trace)
    write_records(path, traces)
    logprobs.side_path(path).write_bytes(b"".join(frames.values()))
    return frames


def frames_of(path: Path) -> dict[str, bytes]:
    index = logprobs.scan(logprobs.side_path(path))
    return {record_id: index.read_frame(record_id) for record_id in index.frames}


def test_filter_keeps_the_frames_of_kept_and_rejected_records(tmp_path):
    frames = traces_with_logprobs(tmp_path / "in.jsonl", ["14", "13", "14", "12"])
    config = FilterConfig(input=str(tmp_path / "in.jsonl"), output=str(tmp_path / "kept.jsonl"), rejected=str(tmp_path / "rej.jsonl"),
                          rules=["format", "correctness"])
    report = filter_run(config)
    assert frames_of(tmp_path / "kept.jsonl") == {k: frames[k] for k in ("p0#0", "p2#0")}
    assert frames_of(tmp_path / "rej.jsonl") == {k: frames[k] for k in ("p1#0", "p3#0")}
    assert report["logprobs"] == {"file": str(tmp_path / "kept.logprobs"), "records": 2, "tokens": 12}


def test_filter_without_a_side_file_writes_none(tmp_path):
    traces_with_logprobs(tmp_path / "in.jsonl", ["14"])
    logprobs.side_path(tmp_path / "in.jsonl").unlink()
    filter_run(FilterConfig(input=str(tmp_path / "in.jsonl"), output=str(tmp_path / "kept.jsonl"), rules=["format"]))
    assert not (tmp_path / "kept.logprobs").exists()


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_merge_carries_each_records_frame_once(tmp_path, suffix):
    a = traces_with_logprobs(tmp_path / "a.jsonl", ["14", "13"], prefix="a")
    b = traces_with_logprobs(tmp_path / "b.jsonl", ["14"], prefix="b")
    out = tmp_path / f"all{suffix}"
    summary = merge_shards([tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "a.jsonl"], out)
    assert summary["records"] == 3 and summary["logprobs_records"] == 3
    assert frames_of(out) == {**a, **b}


def test_merge_refuses_a_record_recorded_with_logprobs_that_lost_its_frame(tmp_path):
    traces_with_logprobs(tmp_path / "a.jsonl", ["14", "13"])
    side = logprobs.side_path(tmp_path / "a.jsonl")
    side.write_bytes(side.read_bytes()[: len(side.read_bytes()) // 2 - 1])  # the second frame is gone
    with pytest.raises(InputError, match="has no frame for it"):
        merge_shards([tmp_path / "a.jsonl"], tmp_path / "all.jsonl")
    assert not (tmp_path / "all.jsonl").exists() and not (tmp_path / "all.logprobs").exists()


def test_merge_cli_says_how_many_records_kept_their_logprobs(tmp_path):
    traces_with_logprobs(tmp_path / "a.jsonl", ["14", "13"])
    result = subprocess.run([sys.executable, "-c", "import cli; cli.main()", "merge", str(tmp_path / "a.jsonl"), "-o", str(tmp_path / "m.jsonl")],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "log-probabilities of 2 records" in result.stdout
    assert json.loads((tmp_path / "m.jsonl").read_text().split("\n")[:-1][0])["id"] == "p0#0"
