"""The data layer: every supported format reads, every bad input fails with file, line and field."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill.core.data import FieldMap, count_rows, iter_rows, read_problems, read_records, write_records
from distill.core.errors import InputError
from distill.core.records import Trace

ROWS = [
    {"problem": "What is 1+1?", "answer": "2", "unique_id": "a"},
    {"problem": "What is 2+3?", "answer": "5", "unique_id": "b"},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def trace(i: int, **extra) -> Trace:
    return Trace(
        id=f"p{i}#0", problem_id=f"p{i}", sample_index=0, problem=f"Q{i}", answer=str(i),
        completion=f"<think>\nthink {i}\n</think>\n\n\\boxed{{{i}}}", finish_reason="stop",
        teacher={"model": "m", "temperature": 0.6}, **extra,
    )


def test_reads_jsonl_json_parquet_and_dataset_folder(tmp_path):
    import datasets

    write_jsonl(tmp_path / "a.jsonl", ROWS)
    (tmp_path / "a.json").write_text(json.dumps(ROWS))
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "a.parquet")
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "ds"))
    for source in ("a.jsonl", "a.json", "a.parquet", "ds"):
        problems = list(read_problems(tmp_path / source, FieldMap(id="unique_id")))
        assert [(p.problem_id, p.problem, p.answer) for p in problems] == [("a", "What is 1+1?", "2"), ("b", "What is 2+3?", "5")], source


def test_field_mapping_numina_style_takes_answer_from_solution(tmp_path):
    rows = [{"question": "Find x.", "solution": "So x = \\boxed{\\frac{1}{2}}.", "source": "amc"}]
    problems = list(read_problems(write_jsonl(tmp_path / "n.jsonl", rows), FieldMap(problem="question")))
    assert problems[0].answer == "\\frac{1}{2}"
    assert problems[0].problem_id  # derived from the text: stable across runs
    again = list(read_problems(tmp_path / "n.jsonl", FieldMap(problem="question")))
    assert again[0].problem_id == problems[0].problem_id


def test_trace_roundtrip_jsonl_and_parquet(tmp_path):
    records = [trace(i, verdicts={"format": {"passed": True, "reason": ""}}) for i in range(3)]
    for name in ("t.jsonl", "t.parquet"):
        assert write_records(tmp_path / name, records) == 3
        back = list(read_records(tmp_path / name))
        assert back == records, name
    assert count_rows(tmp_path / "t.parquet") == 3


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"problem": "ok", "answer": "1"}\n{"problem": "bad",\n', "bad.jsonl:2: malformed JSON"),
        (b"", "bad.jsonl: empty file"),
        (b"\n\n", "bad.jsonl: empty file"),
        (b'{"problem": "ok"}\n{"problem": "caf\xe9"}\n', "bad.jsonl:2: invalid UTF-8"),
        (b'{"problem": "ok"}\n[1, 2]\n', "bad.jsonl:2: expected a JSON object"),
        (b'{"problem": "ok"}\n{"question": "no problem field"}\n', "bad.jsonl:2: field 'problem': missing"),
        (b'{"problem": 12}\n', "bad.jsonl:1: field 'problem': not a non-empty string"),
        (b'{"problem": "x", "domain": "poetry"}\n', "bad.jsonl:1: field 'domain'"),
    ],
)
def test_bad_problem_input_names_file_line_and_field(tmp_path, content, expected):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        list(read_problems(path))
    assert str(err.value).startswith(str(tmp_path / expected.split(":")[0]) + expected[len(expected.split(":")[0]):]), str(err.value)
    assert "\n" not in str(err.value)


def test_bad_trace_fields(tmp_path):
    good = json.loads(trace(0).model_dump_json(exclude_none=True))
    missing = {k: v for k, v in good.items() if k != "completion"}
    wrong = dict(good, sample_index="first")
    path = write_jsonl(tmp_path / "t.jsonl", [good, missing])
    with pytest.raises(InputError, match=r"t\.jsonl:2: field 'completion': field required"):
        list(read_records(path))
    path = write_jsonl(tmp_path / "t.jsonl", [wrong])
    with pytest.raises(InputError, match=r"t\.jsonl:1: field 'sample_index'"):
        list(read_records(path))


def test_unknown_format_missing_and_unreadable_paths(tmp_path):
    (tmp_path / "data.txt").write_text("hello")
    with pytest.raises(InputError, match=r"data\.txt: unknown format '\.txt'"):
        list(iter_rows(tmp_path / "data.txt"))
    with pytest.raises(InputError, match="no such file"):
        list(iter_rows(tmp_path / "absent.jsonl"))
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        list(iter_rows(tmp_path / "x.parquet"))
    (tmp_path / "x.json").write_text('{"a": 1')
    with pytest.raises(InputError, match=r"x\.json:1: malformed JSON"):
        list(iter_rows(tmp_path / "x.json"))


def test_unreadable_inputs_are_one_line_even_as_root(tmp_path):
    # Permission bits: checked as `nobody` when running as root (root ignores them).
    locked = write_jsonl(tmp_path / "locked.jsonl", ROWS)
    os.chmod(locked, 0)
    assert _error_reading(locked, as_nobody=os.geteuid() == 0).startswith(f"{locked}: cannot read (permission denied)")
    # A file whose reads fail (EIO), which root cannot read either.
    device = tmp_path / "device.jsonl"
    device.symlink_to("/proc/self/mem")
    assert _error_reading(device).startswith(f"{device}: cannot read (input/output error)")


def _error_reading(path, as_nobody: bool = False) -> str:
    """The InputError message reading `path` gives (in a child process that drops to nobody if asked)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read_fd)
            if as_nobody:
                os.setgid(65534)
                os.setuid(65534)
            try:
                list(iter_rows(path))
                message = "read without error"
            except InputError as exc:
                message = str(exc)
            except BaseException as exc:
                message = f"not an InputError: {type(exc).__name__}: {exc}"
            os.write(write_fd, message.encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as handle:
        message = handle.read().decode()
    os.waitpid(pid, 0)
    return message


def test_failed_write_leaves_existing_output_untouched(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")

    def records():
        yield trace(0)
        raise InputError("bad row", where="in.jsonl:2")

    with pytest.raises(InputError):
        write_records(out, records())
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]  # no temporary left behind


def test_reading_streams_instead_of_loading(tmp_path):
    path = write_jsonl(tmp_path / "big.jsonl", ({"problem": f"q{i}"} for i in range(1000)))
    rows = iter_rows(path)
    first = next(rows)
    assert first[0].endswith("big.jsonl:1")
    # The file can be appended to after reading started: a streaming reader sees the new row.
    with open(path, "a") as handle:
        handle.write(json.dumps({"problem": "late"}) + "\n")
    assert sum(1 for _ in rows) == 1000


def test_hub_ids_are_recognised_but_fail_clearly_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="HuggingFaceH4/MATH-500: cannot load dataset from the hub"):
        list(iter_rows("HuggingFaceH4/MATH-500"))


def test_reads_csv_locating_rows_by_the_line_they_start_on(tmp_path):
    """GPQA ships CSV: a header, quoted cells spanning lines; a row's location is the line it starts on."""
    path = tmp_path / "set.csv"
    path.write_text('problem,answer\n"two\nlines",2\nthree,3\n', encoding="utf-8")
    rows = list(iter_rows(path))
    assert rows == [(f"{path}:2", {"problem": "two\nlines", "answer": "2"}), (f"{path}:4", {"problem": "three", "answer": "3"})]
    assert [p.answer for p in read_problems(path)] == ["2", "3"]
    (tmp_path / "empty.csv").write_text("problem,answer\n")
    with pytest.raises(InputError, match="empty file"):
        list(iter_rows(tmp_path / "empty.csv"))


@pytest.mark.parametrize("reader", ["filter", "generate-resume", "train"])
def test_a_line_over_the_bound_is_one_error_naming_file_line_and_size(tmp_path, distill_cli, monkeypatch, request, reader):
    monkeypatch.setenv("DISTILL_MAX_LINE_BYTES", str(1 << 20))
    row = {"id": "q#0", "problem_id": "q", "problem": "p", "completion": "c", "teacher": {"model": "m"}}
    big = dict(row, id="q#1", completion="x" * (3 << 20))
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(row) + "\n" + json.dumps(big) + "\n")
    size = len(json.dumps(big)) + 1
    args = {"filter": ["filter", path, "-o", tmp_path / "kept.jsonl"],
            "generate-resume": ["generate", tmp_path / "p.jsonl", "-o", path, "--teacher", "m", "--backend", "openai",
                                "--base-url", "http://127.0.0.1:9/v1"],
            "train": ["train", "--student", "qwen-1.5b", "--data", path, "-o", tmp_path / "run", "--base-model", request.getfixturevalue("tiny_qwen") if reader == "train" else ""]}[reader]
    (tmp_path / "p.jsonl").write_text('{"problem": "p"}\n')
    code, _, err = distill_cli(*args)
    assert code == 2 and err.count("\n") == 1, err
    assert f"{path}:2: line 2 is {size:,} bytes, over the limit of 1,048,576" in err, err
