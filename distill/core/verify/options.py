"""How answers are checked: the options `filter`'s correctness rule and `eval` share."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class VerifyOptions(BaseModel):
    """How answers are checked (shared by `filter`'s correctness rule and by `eval`)."""

    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(default=10.0, gt=0, description="Seconds one math verification may take before its worker is killed.", json_schema_extra={"flags": ["--timeout"]})
    memory_mb: int = Field(default=4096, ge=256, description="Address-space cap of a verification worker, in MiB.")
    float_rounding: int = Field(default=6, ge=0, description="Decimal places math-verify rounds floats to.")
    code_timeout: float = Field(default=5.0, gt=0, description="Wall-clock seconds per code test case.")
    code_memory_mb: int = Field(default=1024, ge=64, description="Address-space cap of a sandboxed program, in MiB.")
