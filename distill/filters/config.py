"""Configuration of the `filter` stage: inputs, outputs, the rule list, and one section of options
per rule (the rules declare their own options: see `distill.filters.registry`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import ConfigDict, Field, create_model, field_validator, model_validator

from distill.core.prompt_stats import band
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

    # After every rule (distill.filters.selection): a pass-rate band per prompt, then K samples of each.
    added: ClassVar[tuple[str, ...]] = ("pass_rate_min", "pass_rate_max", "per_prompt", "select", "select_by", "select_seed",
                                        "pass_rates")  # fingerprints see them once given
    pass_rate_min: float = Field(default=0.0, ge=0, le=1, description="Keep only prompts whose pass rate (correct / drawn) is at least this.")
    pass_rate_max: float = Field(default=1.0, ge=0, le=1, description="Keep only prompts whose pass rate (correct / drawn) is at most this.")
    pass_rates: str | None = Field(default=None, description="Per-prompt rows (`distill difficulty`, the student's own pass rates; or "
                                   "`--prompt-stats` of another file): the band reads each prompt's pass rate there, not from the samples judged here.")
    per_prompt: int | None = Field(default=None, ge=1, description="Keep at most K of each prompt's kept samples, chosen by --select (default with --select: 1).")
    select: Literal["all", "first", "shortest", "random"] = Field(
        default="all", description="Which samples --per-prompt keeps: all (no selection), the first in input order, the shortest, or random (--select-seed).")
    select_by: Literal["tokens", "chars"] = Field(
        default="tokens", description="--select shortest measures tokens (completion_tokens, else --tokenizer) or characters.")
    select_seed: int = Field(default=0, description="Seed of --select random.")

    @model_validator(mode="after")
    def _selection(self):
        band(self.pass_rate_min, self.pass_rate_max)  # an empty band is bad input
        dedup = getattr(self, "dedup", None)
        if dedup is not None and dedup.max_per_problem is not None:  # the old spelling of --per-prompt N --select first
            if self.select not in ("all", "first") or self.per_prompt not in (None, dedup.max_per_problem):
                raise ValueError("--max-per-problem N is --per-prompt N --select first: give one or the other")
            self.per_prompt, self.select = dedup.max_per_problem, "first"
        if self.per_prompt is not None and self.select == "all":
            raise ValueError(f"--per-prompt {self.per_prompt} keeps {self.per_prompt} of each prompt's samples: say which with --select first|shortest|random")
        if self.select != "all" and self.per_prompt is None:
            self.per_prompt = 1
        return self

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
