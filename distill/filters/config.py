"""Configuration of the `filter` stage: inputs, outputs, the rule list and each rule's options."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from distill.verify import VerifyOptions

# Cheap rules first: a record is charged to the first rule that rejects it, and later
# (costlier) rules are skipped for it unless `all_verdicts` is set. `dedup` comes last so
# that only records every other rule kept count as "already seen".
DEFAULT_RULES = ["format", "length", "decontaminate", "repetition", "readability", "language", "correctness", "dedup"]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FormatOptions(_Options):
    allow_empty_reasoning_for: list[str] = Field(
        default=["general"], description="Domains whose records may have an empty reasoning block (simple queries)."
    )


class LengthOptions(_Options):
    unit: Literal["tokens", "chars"] = Field(default="tokens", description="Measure completions in tokens or characters.")
    min: int | None = Field(default=None, ge=0, description="Minimum completion length (none: no minimum).")
    max: int | None = Field(default=None, ge=1, description="Maximum completion length (none: no maximum).")
    tokenizer: str | None = Field(
        default=None, description="Tokenizer (path or hub id) for unit=tokens; default: the record's completion_tokens."
    )


class LanguageOptions(_Options):
    target: str | None = Field(
        default=None, description="Target language (ISO 639-1) for every record; default: the record's, else the prompt's."
    )
    threshold: float = Field(
        default=0.95, ge=0, le=1, description="Minimum share of target-language words in the reasoning and in the answer."
    )
    min_foreign_words: int = Field(
        default=3, ge=1, description="Never reject for fewer foreign words than this (a quoted term is not code-switching)."
    )
    same_script: bool = Field(
        default=True, description="Also catch same-script mixing (French in English) with lingua, on suspicious paragraphs only."
    )
    languages: list[str] = Field(
        default=["en", "fr", "de", "es", "it", "pt", "nl"],
        description="Latin-script languages told apart (prompt detection and same-script mixing).",
    )


class ReadabilityOptions(_Options):
    domains: list[str] = Field(default=["math"], description="Domains the rule applies to (the paper's rule is for math).")
    max_paragraph_chars: int = Field(default=6000, ge=100, description="Longest allowed paragraph of the reasoning, in characters.")
    allow_code_fences: bool = Field(default=False, description="Allow ``` code fences in the reasoning.")


class RepetitionOptions(_Options):
    max_line_repeats: int = Field(default=12, ge=2, description="A line of 20+ characters may occur at most this many times.")
    ngram: int = Field(default=16, ge=4, description="Word n-gram size for loop detection.")
    max_ngram_repeats: int = Field(default=12, ge=2, description="An n-gram may occur at most this many times.")
    tail_loop_chars: int = Field(
        default=600, ge=50, description="Reject when the last this-many characters repeat one short period (a stuck loop)."
    )


class CorrectnessOptions(VerifyOptions):
    no_reference: Literal["reject", "keep", "majority"] = Field(
        default="reject",
        description="Records without a reference answer or tests: reject, keep unchecked, or vote among the problem's samples.",
    )
    majority_min_votes: int = Field(
        default=2, ge=1, description="no_reference=majority: votes the winning answer needs (a strict plurality is also required)."
    )


class DedupOptions(_Options):
    max_per_problem: int | None = Field(default=None, ge=1, description="Keep at most this many samples per problem.")


class DecontaminateOptions(_Options):
    benchmarks: list[str] = Field(default=[], description="Benchmark files (JSONL/JSON/Parquet with a 'problem' column).")
    ngram: int = Field(default=8, ge=3, description="Word n-gram size; one shared n-gram is contamination.")
    problem_field: str = Field(default="problem", description="Column of the benchmark files holding the problem text.")


class FilterConfig(BaseModel):
    """`distill filter`: judge traces with named rules; write kept (SFT-ready) and rejected records."""

    model_config = ConfigDict(extra="forbid")

    input: str = Field(description="Trace records (JSONL, JSON, Parquet or a saved dataset).")
    output: str = Field(description="Kept records (.jsonl or .parquet), with verdicts and SFT messages.")
    rejected: str | None = Field(default=None, description="Rejected records, with rejected_by and reason.")
    report: str | None = Field(default=None, description="Report as JSON.")
    rules: list[str] = Field(default=list(DEFAULT_RULES), description="Rules to apply, in order.")
    workers: int = Field(default=1, ge=1, description="Worker processes.")
    all_verdicts: bool = Field(default=False, description="Evaluate every rule, not only up to the first rejection.")
    delimiters: Literal["r1", "sky-t1"] = Field(default="r1", description="Reasoning delimiters of the input completions.")
    format: FormatOptions = Field(default_factory=FormatOptions)
    length: LengthOptions = Field(default_factory=LengthOptions)
    language: LanguageOptions = Field(default_factory=LanguageOptions)
    readability: ReadabilityOptions = Field(default_factory=ReadabilityOptions)
    repetition: RepetitionOptions = Field(default_factory=RepetitionOptions)
    correctness: CorrectnessOptions = Field(default_factory=CorrectnessOptions)
    dedup: DedupOptions = Field(default_factory=DedupOptions)
    decontaminate: DecontaminateOptions = Field(default_factory=DecontaminateOptions)

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, rules: list[str]) -> list[str]:
        unknown = [rule for rule in rules if rule not in DEFAULT_RULES]
        if unknown:
            raise ValueError(f"unknown rule '{unknown[0]}' (rules are {', '.join(DEFAULT_RULES)})")
        if len(set(rules)) != len(rules):
            raise ValueError("a rule is listed twice")
        return rules
