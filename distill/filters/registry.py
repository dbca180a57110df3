"""The filter's rules, as a registry the rule modules fill.

A rule is a function plus its options model, declared where it is written:

    class RepetitionOptions(RuleOptions):
        max_line_repeats: int = Field(default=12, ...)

    @rule("repetition", RepetitionOptions, order=40)
    def check_repetition(trace, parts, config) -> Verdict: ...

That is all a new rule needs: `distill.filters.rules` imports every module of its package, the
filter's configuration gets one nested section per rule (`repetition: {max_line_repeats: 8}` in
a recipe), and the command line one flag per option (`--repetition-max-line-repeats 8`).

Most rules judge one record at a time, in the worker processes (`check`). A rule that needs
the records before it (`dedup`) runs in the parent on a small digest each worker computes
(`parent`). Rules run in `order` (cheap first); a record is charged to the first that rejects it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict

from distill.core.records import Trace, Verdict

if TYPE_CHECKING:
    from distill.core.r1_format import Parts


class RuleOptions(BaseModel):
    """Base of every rule's options: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class ParentRule(Protocol):
    """A rule that sees the records in input order, in the parent process."""

    def check(self, problem_id: str, key: bytes) -> Verdict: ...

    def remember(self, problem_id: str, key: bytes) -> None: ...


@dataclass(frozen=True)
class Rule:
    name: str
    options: type[RuleOptions]
    order: int  # position in the default list: cheap rules first
    check: Callable[[Trace, Parts, Any], Verdict] | None = None  # per record, in a worker: (trace, parts, FilterConfig)
    # Parent-side rules: key(trace, options) runs in the worker, make(options) builds the judge in the parent.
    key: Callable[[Trace, Any], bytes] | None = None
    make: Callable[[Any], ParentRule] | None = None
    default: bool = True  # part of the default rule list
    help: str = ""


RULES: dict[str, Rule] = {}


def rule(name: str, options: type[RuleOptions], order: int, default: bool = True):
    """Register a per-record rule: `check(trace, parts, config) -> Verdict`."""

    def register(check: Callable[[Trace, Parts, Any], Verdict]):
        RULES[name] = Rule(name, options, order, check=check, default=default, help=(check.__doc__ or "").strip().split("\n")[0])
        return check

    return register


def parent_rule(name: str, options: type[RuleOptions], order: int, key: Callable[[Trace, Any], bytes], default: bool = True):
    """Register a parent-side rule: a class built from its options, checking keys in input order."""

    def register(cls):
        RULES[name] = Rule(name, options, order, key=key, make=cls, default=default, help=(cls.__doc__ or "").strip().split("\n")[0])
        return cls

    return register


def ordered() -> list[Rule]:
    from distill.filters import rules  # noqa: F401 - importing the package registers every rule

    return sorted(RULES.values(), key=lambda r: r.order)


def default_rules() -> list[str]:
    return [r.name for r in ordered() if r.default]
