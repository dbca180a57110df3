"""How answers are checked: the options `filter`'s correctness rule and `eval` share."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CodeOptions(BaseModel):
    """Limits and comparison of code tests (see `distill.core.verify.code_tests`)."""

    model_config = ConfigDict(extra="forbid")

    code_timeout: float = Field(
        default=5.0, gt=0, description="Seconds each code test may run: per stdin case, per call of the program (and its loading); an assert script gets 10x.",
        json_schema_extra={"flags": ["--code-timeout"]})
    code_memory_mb: int = Field(default=1024, ge=64, description="Address-space cap of each sandboxed process running code tests, in MiB.",
                                json_schema_extra={"flags": ["--code-memory"]})
    code_float_tolerance: float | None = Field(
        default=None, ge=0, description="Accept numbers in a program's output within this absolute-or-relative tolerance (APPS/TACO style; default: exact).",
        json_schema_extra={"flags": ["--code-float-tolerance"]})


class VerifyOptions(CodeOptions):
    """How answers are checked (shared by `filter`'s correctness rule and by `eval`)."""

    timeout: float = Field(default=10.0, gt=0, description="Seconds one math verification may take before its worker is killed (code: --code-timeout).", json_schema_extra={"flags": ["--timeout"]})
    memory_mb: int = Field(default=4096, ge=256, description="Address-space cap of a verification worker, in MiB.")
    float_rounding: int = Field(default=6, ge=0, description="Decimal places math-verify rounds floats to.")
