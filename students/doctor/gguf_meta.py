"""GGUF metadata against the model folder: the chat template, the stop token, the context.

Read with llama.cpp's own `gguf` package: installed, or the copy in the converter `distill
publish --gguf` caches (students/gguf.py); without either the files are not checked (a warning).
Nothing is downloaded here.
"""

from __future__ import annotations

import functools
import importlib
import sys
from pathlib import Path
from typing import Any

from students.doctor import Check, judged, warn


@functools.lru_cache(maxsize=1)
def _reader():
    """gguf.GGUFReader, or None when llama.cpp's gguf package is nowhere on this machine."""
    try:
        return importlib.import_module("gguf").GGUFReader
    except ImportError:
        pass
    from students.gguf import cache_dir

    for folder in sorted(cache_dir().glob("llama.cpp-converter-*/gguf-py"), reverse=True):
        sys.path.insert(0, str(folder))  # the converter's own copy, as the converter itself imports it
        try:
            return importlib.import_module("gguf").GGUFReader
        except ImportError:
            sys.path.remove(str(folder))
    return None


def metadata(path: Path) -> dict[str, Any]:
    reader = _reader()(str(path))
    wanted = ("general.architecture", "tokenizer.chat_template", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id")
    out = {}
    for key, field in reader.fields.items():
        if key in wanted or key.endswith((".context_length", ".rope.freq_base")):
            out[key] = field.contents()
    return out


def gguf_checks(files: list[Path], jinja: str, turn_end: int | None, stops: list[int], config: dict[str, Any]) -> list[Check]:
    if _reader() is None:
        return [warn("GGUF metadata", f"{len(files)} GGUF files not checked: llama.cpp's gguf package is not installed",
                     "pip install 'distill[gguf]' (or gguf) and run the doctor again")]
    from students.doctor.training import rope_of

    theta, _ = rope_of(config)
    checks = []
    for path in files:
        try:
            meta = metadata(path)
        except Exception as exc:  # a torn or foreign file: the reader fails in many ways
            checks.append(Check(f"GGUF: {path.name}", "fail", f"unreadable ({type(exc).__name__}: {exc})", "publish the GGUF files again"))
            continue
        arch = meta.get("general.architecture", "")
        problems = []
        if meta.get("tokenizer.chat_template") != jinja:
            problems.append("its chat template is not the tokenizer's")
        ends = {meta.get("tokenizer.ggml.eos_token_id"), meta.get("tokenizer.ggml.eot_token_id")} - {None}
        if turn_end not in ends:
            problems.append(f"it ends generation at {sorted(ends)}, not at the end-of-turn id {turn_end}")
        context = meta.get(f"{arch}.context_length")
        if context is not None and context != config.get("max_position_embeddings"):
            problems.append(f"context_length {context} vs max_position_embeddings {config.get('max_position_embeddings')}")
        freq = meta.get(f"{arch}.rope.freq_base")
        if freq is not None and theta is not None and abs(freq - theta) > 1e-6 * theta:
            problems.append(f"rope.freq_base {freq:g} vs rope_theta {theta:g}")
        figure = "; ".join(problems) or (f"chat template = the tokenizer's; eos {sorted(ends)} (stop ids {stops}); "
                                         f"context_length {context}, rope.freq_base {freq}")
        checks.append(judged(f"GGUF: {path.name}", bool(problems), figure,
                             "convert the folder again (distill publish --gguf): the GGUF must carry the folder's template and stops"))
    return checks
