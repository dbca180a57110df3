"""Generate backends: the ways a teacher (or a student under evaluation, or a judge) is sampled.

One module per backend in this package; the module's name is the backend's name (`--backend
vllm`), and the module itself implements `Backend`. Adding a backend is adding one module:
`names()` discovers it, `SamplingConfig` validates against it, and the sampling layer
(`teacher.sampler.sample`) uses it through `load()`. A backend reads the `SamplingConfig` and the
jobs (`teacher.sampler.Job`), and hands samples to the sink; it knows no stage.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Backend(Protocol):
    """What a backend module provides (module-level names)."""

    # True when the teacher is a served model's name, not a local path (dry runs do not look
    # for it on disk).
    remote: bool

    def check(self, config: Any) -> None:
        """Cheap checks of the settings this backend needs (no connection, no model load)."""

    def prepare(self, config: Any) -> None:
        """Load what the run needs before anything is shown or written (bad names fail here)."""

    def generate(self, config: Any, jobs: list, sink: Any) -> None:
        """Sample every job's indices; hand each finished sample to `sink.emit`/`emit_many` (with the job)."""

    def release(self) -> None:
        """Give back what `prepare` took (engine processes, GPU memory); safe to call twice."""


@functools.cache
def names() -> tuple[str, ...]:
    """The backends this installation has (module names, without importing them)."""
    return tuple(sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")))


def load(name: str) -> Backend:
    """The backend module called `name`, checked against the protocol."""
    if name not in names():
        raise ValueError(f"unknown backend '{name}' (known: {', '.join(names())})")
    module = importlib.import_module(f"{__name__}.{name}")
    if not isinstance(module, Backend):
        missing = [attr for attr in ("remote", "check", "prepare", "generate", "release") if not hasattr(module, attr)]
        raise TypeError(f"backend module {module.__name__} lacks {', '.join(missing)}")
    return module


def check_name(name: str) -> str:
    """A pydantic validator body: the backend must exist."""
    if name not in names():
        raise ValueError(f"unknown backend '{name}' (known: {', '.join(names())})")
    return name
