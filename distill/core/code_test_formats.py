"""Code tests as public datasets ship them, read into the one canonical shape (see
`distill.core.records`), and validated while the data is read: a malformed case or a misspelled
key is an `InputError` naming the file, the line and the column, before anything is written.

Formats (the columns are `FieldMap` settings; `test_format: auto` picks the one a row has):
- tests          `tests`: the canonical shape, or the older {input, output} list / assert string.
- humaneval      `test` + `entry_point` (HumanEval, HumanEval+): test code defining
                 `check(candidate)`, which the harness calls with the entry point.
- mbpp           `test_list` (assert strings), optional `test_setup_code` and `test_imports`.
- apps           `input_output` (APPS, TACO): JSON text {"inputs", "outputs", optional "fn_name"};
                 with fn_name the inputs are argument lists, else stdin text (or lists of lines).
- livecodebench  `public_test_cases`, `private_test_cases`, `metadata`: lists of {input, output,
                 testtype} as JSON text; private tests may be base64(zlib(pickle(JSON text)));
                 functional tests call metadata's `func_name` with one JSON argument per input line.
- codecontests   `public_tests`, `private_tests`, `generated_tests`: {"input": [...], "output": [...]}.

Pickled test data is read by an unpickler that refuses every class and callable, so nothing but
plain containers and scalars can come out of it, whatever the pickle holds.
"""

from __future__ import annotations

import ast
import base64
import binascii
import builtins
import difflib
import io
import json
import pickle
import zlib
from typing import Any

from distill.core.errors import InputError

MAX_DECOMPRESSED = 1 << 30  # a zlib bomb in a dataset stops here, not in the machine's memory


class TestsError(ValueError):
    """A malformed test: the message says where inside the tests; `column` names the dataset column."""

    __test__ = False  # not a pytest class

    def __init__(self, message: str, column: str | None = None):
        super().__init__(message)
        self.column = column


def _fail(path: str, message: str, column: str | None = None) -> TestsError:
    return TestsError(f"{path}: {message}" if path else message, column)


def _keys(value: dict[str, Any], allowed: tuple[str, ...], required: tuple[str, ...], path: str) -> None:
    for key in value:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.5)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (expected {', '.join(allowed)})"
            raise _fail(path, f"unknown key '{key}'{hint}")
    for key in required:
        if key not in value:
            raise _fail(path, f"missing '{key}'")


def _text(value: Any, path: str) -> str:
    """Stdin/stdout text; numbers are accepted as their text, lists of lines are joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "\n".join(value)
    raise _fail(path, f"expected text, got {type(value).__name__}")


def _entry_point(value: Any, path: str) -> str:
    """A function's name; LeetCode's `Solution().twoSum` names the method (the harness makes the `Solution`)."""
    if isinstance(value, str) and value.startswith("Solution()."):
        value = value[len("Solution()."):]
    if not isinstance(value, str) or not value.isidentifier():
        raise _fail(path, f"expected a function name, got {value!r}"[:200])
    return value


def _cases(value: Any, kind: str, path: str = "cases") -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise _fail(path, "expected a non-empty list of cases")
    cases = []
    for index, case in enumerate(value):
        where = f"{path}[{index}]"
        if not isinstance(case, dict):
            raise _fail(where, f"expected an {{input, output}} object, got {type(case).__name__}")
        _keys(case, ("input", "output"), ("input", "output"), where)
        if kind == "stdin":
            cases.append({"input": _text(case["input"], f"{where}.input"), "output": _text(case["output"], f"{where}.output")})
        else:
            if not isinstance(case["input"], list):
                raise _fail(f"{where}.input", "expected the list of arguments")
            cases.append({"input": case["input"], "output": case["output"]})
    return cases


def canonical_tests(value: Any) -> dict[str, Any] | None:
    """The canonical shape of `value` (canonical already, or one of the older shapes); raises TestsError."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            raise _fail("", "empty test code")
        return {"type": "assert", "code": value}
    if isinstance(value, list):
        return {"type": "stdin", "cases": _cases(value, "stdin", "")} if value else None
    if not isinstance(value, dict):
        raise _fail("", f"expected the tests object, got {type(value).__name__}")
    kind = value.get("type")
    allowed = {"stdin": ("type", "cases"), "call": ("type", "cases", "entry_point", "unwrap"), "assert": ("type", "code", "entry_point")}
    if kind not in allowed:
        raise _fail("type", f"expected one of {', '.join(allowed)}, got {kind!r}")
    _keys(value, allowed[kind], {"stdin": ("cases",), "call": ("cases", "entry_point"), "assert": ("code",)}[kind], "")
    tests: dict[str, Any] = {"type": kind}
    if kind == "assert":
        if not isinstance(value["code"], str) or not value["code"].strip():
            raise _fail("code", "expected non-empty test code")
        tests["code"] = value["code"]
    else:
        tests["cases"] = _cases(value["cases"], kind)
    if value.get("entry_point") is not None:
        tests["entry_point"] = _entry_point(value["entry_point"], "entry_point")
    if kind == "call" and value.get("unwrap") is not None:
        if not isinstance(value["unwrap"], bool):
            raise _fail("unwrap", "expected true or false")
        tests["unwrap"] = value["unwrap"]
    return tests


# ---------------------------------------------------------------------------- dataset formats


def read_tests(row: dict[str, Any], fields: Any, where: str) -> dict[str, Any] | None:
    """The canonical tests of one dataset row (None: it has none), through the field mapping."""
    columns = _columns(fields)
    chosen = fields.test_format
    if chosen == "auto":
        found = _detect(row, columns)
        if len(found) > 1:
            raise InputError(f"holds tests in two formats ({', '.join(found)}); choose one with test_format", where=where)
        if not found:
            return None
        chosen = found[0]
    roles = columns[chosen]
    try:
        tests = _PARSERS[chosen](row, roles)
        return canonical_tests(tests) if tests is not None else None
    except TestsError as exc:
        raise InputError(str(exc), where=where, field=exc.column or next(iter(roles.values()))) from None


def test_columns(fields: Any) -> set[str]:
    """Every column some test format reads (a trace that had tests read from them does not repeat them)."""
    return {column for roles in _columns(fields).values() for column in roles.values() if column}


def _columns(fields: Any) -> dict[str, dict[str, str | None]]:
    """Each format's columns by role; LiveCodeBench and CodeContests differ only in default names."""
    public, private = fields.public_tests, fields.private_tests
    return {
        "tests": {"tests": fields.tests},
        "humaneval": {"code": fields.test_code, "entry_point": fields.entry_point},
        "mbpp": {"asserts": fields.test_list, "setup": fields.test_setup, "imports": fields.test_imports},
        "apps": {"input_output": fields.input_output},
        "livecodebench": {"public": public or "public_test_cases", "private": private or "private_test_cases", "metadata": fields.metadata},
        "codecontests": {"public": public or "public_tests", "private": private or "private_tests",
                         "generated": None if private else "generated_tests", "metadata": fields.metadata},
    }


def _detect(row: dict[str, Any], columns: dict[str, dict[str, str | None]]) -> list[str]:
    found = [name for name, role in (("tests", "tests"), ("mbpp", "asserts"), ("apps", "input_output")) if _present(row, columns[name][role])]
    humaneval = columns["humaneval"]
    if _present(row, humaneval["code"]) and _present(row, humaneval["entry_point"]):
        found.append("humaneval")
    for name in ("livecodebench", "codecontests"):  # one parser: the first whose columns the row has
        roles = columns[name]
        if any(_present(row, roles.get(role)) for role in ("public", "private", "generated")):
            found.append(name)
            break
    return found


def _present(row: dict[str, Any], column: str | None) -> bool:
    return bool(column) and row.get(column) not in (None, "", [], {})


def _json_text(value: Any, column: str | None) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise _fail("", f"malformed JSON ({exc.msg}, column {exc.colno})", column) from None


def _check_syntax(code: str, column: str | None, path: str = "") -> None:
    try:
        compile(code, "<tests>", "exec")
    except (SyntaxError, ValueError) as exc:
        detail = f"{getattr(exc, 'msg', exc)}, line {getattr(exc, 'lineno', '?')}"
        raise _fail(path, f"test code does not compile ({detail})", column) from None


def _in_column(column: str | None, parse, *args):
    """Run a parser, locating its errors in `column`."""
    try:
        return parse(*args)
    except TestsError as exc:
        raise TestsError(str(exc), exc.column or column) from None


def _humaneval(row: dict[str, Any], columns: dict[str, str | None]) -> dict[str, Any]:
    code = row.get(columns["code"])
    if not isinstance(code, str) or not code.strip():
        raise _fail("", "expected the test code (defining check(candidate))", columns["code"])
    _check_syntax(code, columns["code"])
    entry = _in_column(columns["entry_point"], _entry_point, row.get(columns["entry_point"]), "")
    return {"type": "assert", "code": code, "entry_point": entry}


def _mbpp(row: dict[str, Any], columns: dict[str, str | None]) -> dict[str, Any]:
    column = columns["asserts"]
    asserts = _json_text(row.get(column), column)
    if not isinstance(asserts, list) or not asserts:
        raise _fail("", "expected a non-empty list of assert statements", column)
    for index, line in enumerate(asserts):
        if not isinstance(line, str) or not line.strip():
            raise _fail(f"[{index}]", "expected an assert statement", column)
        _check_syntax(line, column, f"[{index}]")
    imports = _json_text(row.get(columns["imports"]), columns["imports"]) if columns["imports"] else None
    if imports is not None and (not isinstance(imports, list) or not all(isinstance(i, str) for i in imports)):
        raise _fail("", "expected a list of import statements", columns["imports"])
    setup = row.get(columns["setup"]) if columns["setup"] else None
    if setup is not None and not isinstance(setup, str):
        raise _fail("", f"expected setup code, got {type(setup).__name__}", columns["setup"])
    code = "\n".join([*(imports or []), setup or "", *asserts]).strip() + "\n"
    _check_syntax(code, columns["setup"] if setup else column)
    tests: dict[str, Any] = {"type": "assert", "code": code}
    called = called_names(code)
    if len(called) == 1:  # the function every assert calls is the entry point
        tests["entry_point"] = called[0]
    return tests


def _apps(row: dict[str, Any], columns: dict[str, str | None]) -> dict[str, Any] | None:
    column = columns["input_output"]
    spec = _json_text(row.get(column), column)
    if not spec:
        return None  # APPS has problems without tests
    if not isinstance(spec, dict):
        raise _fail("", "expected a JSON object with inputs and outputs", column)
    return _in_column(column, _apps_tests, spec)


def _apps_tests(spec: dict[str, Any]) -> dict[str, Any]:
    _keys(spec, ("inputs", "outputs", "fn_name"), ("inputs", "outputs"), "")
    inputs, outputs = spec["inputs"], spec["outputs"]
    if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
        raise _fail("", "inputs and outputs must be lists of the same length")
    cases = [{"input": i, "output": o} for i, o in zip(inputs, outputs, strict=True)]
    if spec.get("fn_name") is None:
        return {"type": "stdin", "cases": _cases(cases, "stdin", "inputs/outputs")}
    return {"type": "call", "entry_point": _entry_point(spec["fn_name"], "fn_name"), "cases": _cases(cases, "call", "inputs/outputs"),
            "unwrap": True}


def _listed_cases(value: Any, column: str) -> list[dict[str, Any]]:
    """One column of LiveCodeBench cases (JSON text, maybe compressed) or CodeContests columns of inputs and outputs."""
    if isinstance(value, str) and value.strip() and value.lstrip()[0] not in "[{":
        value = decode_compressed(value, column)
    value = _json_text(value, column)
    if isinstance(value, dict):
        _in_column(column, _keys, value, ("input", "output"), ("input", "output"), "")
        inputs, outputs = value["input"], value["output"]
        if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
            raise _fail("", "input and output must be lists of the same length", column)
        return [{"input": i, "output": o} for i, o in zip(inputs, outputs, strict=True)]
    if not isinstance(value, list):
        raise _fail("", f"expected a list of test cases, got {type(value).__name__}", column)
    for index, case in enumerate(value):
        if not isinstance(case, dict):
            raise _fail(f"[{index}]", f"expected an object, got {type(case).__name__}", column)
        _in_column(column, _keys, case, ("input", "output", "testtype"), ("input", "output"), f"[{index}]")
        if case.get("testtype", "stdin") not in ("stdin", "functional"):
            raise _fail(f"[{index}].testtype", f"expected stdin or functional, got {case['testtype']!r}", column)
    return value


def _public_private(row: dict[str, Any], columns: dict[str, str | None]) -> dict[str, Any] | None:
    located: list[tuple[str, int, dict[str, Any]]] = []
    for role in ("public", "private", "generated"):
        column = columns.get(role)
        if _present(row, column):
            located += [(column, index, case) for index, case in enumerate(_listed_cases(row[column], column))]
    if not located:
        return None
    kinds = {case.get("testtype", "stdin") for _, _, case in located}
    if len(kinds) > 1:
        raise _fail("", "mixes stdin and functional test cases", located[0][0])
    if kinds == {"stdin"}:
        return {"type": "stdin", "cases": [{"input": _in_column(c, _text, case["input"], f"[{i}].input"),
                                            "output": _in_column(c, _text, case["output"], f"[{i}].output")} for c, i, case in located]}
    metadata = _json_text(row.get(columns["metadata"]), columns["metadata"]) if columns["metadata"] else None
    name = metadata.get("func_name") if isinstance(metadata, dict) else None
    if not name:
        raise _fail("", "functional tests need metadata with func_name", columns["metadata"] or "metadata")
    return {"type": "call", "entry_point": name, "cases": [_call_case(c, i, case) for c, i, case in located]}


def _call_case(column: str, index: int, case: dict[str, Any]) -> dict[str, Any]:
    """LiveCodeBench functional case: one JSON argument per input line, the output as JSON."""
    try:
        args = [json.loads(line) for line in str(case["input"]).split("\n") if line.strip()]
        output = json.loads(case["output"]) if isinstance(case["output"], str) else case["output"]
    except json.JSONDecodeError as exc:
        raise _fail(f"[{index}]", f"functional input/output is not JSON ({exc.msg})", column) from None
    return {"input": args, "output": output}


_PARSERS = {
    "tests": lambda row, columns: row.get(columns["tests"]),
    "humaneval": _humaneval,
    "mbpp": _mbpp,
    "apps": _apps,
    "livecodebench": _public_private,
    "codecontests": _public_private,
}


# ---------------------------------------------------------------------------- helpers


def called_names(code: str) -> list[str]:
    """Names the test code calls but neither defines nor gets from builtins: the program's functions."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    defined |= {t.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) for t in [n]}
    defined |= {(a.asname or a.name).split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    defined |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments) for a in (*n.args, *n.kwonlyargs, *n.posonlyargs)}
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name not in defined and not hasattr(builtins, name) and name not in names:
                names.append(name)
    return names


class _PlainUnpickler(pickle.Unpickler):
    """Builds lists, dicts, tuples, sets, strings, bytes, numbers, booleans and None; nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused {module}.{name}: only plain data is read from test pickles")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused a persistent reference")


def plain_unpickle(data: bytes) -> Any:
    return _PlainUnpickler(io.BytesIO(data)).load()


def decode_compressed(text: str, column: str | None = None) -> Any:
    """LiveCodeBench private tests: base64(zlib(pickle(JSON text))), unpickled as plain data only."""
    try:
        packed = base64.b64decode(text.encode("ascii"), validate=True)
        inflater = zlib.decompressobj()
        data = inflater.decompress(packed, MAX_DECOMPRESSED)
    except (binascii.Error, zlib.error, UnicodeEncodeError) as exc:
        raise _fail("", f"not base64 of zlib-compressed data ({exc})", column) from None
    if inflater.unconsumed_tail:
        raise _fail("", f"compressed tests inflate to more than {MAX_DECOMPRESSED >> 20} MiB", column)
    try:
        return plain_unpickle(data)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError) as exc:
        raise _fail("", f"not a plain-data pickle ({exc})", column) from None
