"""Configuration of the `filter` stage: inputs, outputs, the rule list, and one section of options
per rule (the rules declare their own options: see `distill.filters.registry`)."""

from __future__ import annotations

from pydantic import ConfigDict, Field, create_model, field_validator

from distill.core.trace_layout import TraceLayout
from distill.filters.registry import RULES, default_rules, ordered


class FilterSettings(TraceLayout):
    """What every filter run has, whatever its rules (and the layout of its input: `TraceLayout`)."""

    model_config = ConfigDict(extra="forbid")

    input: str = Field(description="Traces: JSONL, JSON, Parquet, a saved dataset or a hub id (hf:owner/name), in the --preset layout.")
    output: str = Field(description="Kept records (.jsonl or .parquet), with verdicts and SFT messages.", json_schema_extra={"flags": ["-o"]})
    rejected: str | None = Field(default=None, description="Rejected records, with rejected_by and reason.")
    report: str | None = Field(default=None, description="Report as JSON.")
    prompt_stats: str | None = Field(default=None, description="Per-prompt statistics (JSONL): samples drawn and kept, pass rate, "
                                     "correct samples, the shortest correct one, tokens, always/never solved.")
    rules: list[str] = Field(default_factory=default_rules, description="Rules to apply, in order (default: all, cheap first).")
    workers: int = Field(default=1, ge=1, description="Worker processes.")
    all_verdicts: bool = Field(default=False, description="Evaluate every rule, not only up to the first rejection.",
                               json_schema_extra={"flags": ["--all-verdicts/--first-rejection"]})

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, rules: list[str]) -> list[str]:
        unknown = [rule for rule in rules if rule not in RULES]
        if unknown:
            raise ValueError(f"unknown rule '{unknown[0]}' (rules are {', '.join(RULES)})")
        if len(set(rules)) != len(rules):
            raise ValueError("a rule is listed twice")
        return rules


# One nested section per rule, in rule order: `length: {max: 400}` in a recipe, `--length-max 400` on the command line.
FilterConfig = create_model(
    "FilterConfig",
    __base__=FilterSettings,
    __doc__="`distill filter`: judge traces with named rules; write kept (SFT-ready) and rejected records.",
    **{r.name: (r.options, Field(default_factory=r.options, description=f"{r.name} rule: {r.help}")) for r in ordered()},
)
