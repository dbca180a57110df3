"""The filter report: counts per rule and domain, length statistics before and after."""

from __future__ import annotations

from array import array
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distill.filters.worker import Judged


class LengthStats:
    """Completion lengths in characters (and tokens where records carry them), compactly."""

    def __init__(self) -> None:
        self.chars = array("l")
        self.tokens = array("l")

    def add(self, chars: int, tokens: int | None) -> None:
        self.chars.append(chars)
        if tokens is not None:
            self.tokens.append(tokens)

    @staticmethod
    def _summary(values: array) -> dict[str, float] | None:
        if not values:
            return None
        ordered = sorted(values)
        pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
        return {"mean": round(sum(ordered) / len(ordered), 1), "p50": pick(0.5), "p90": pick(0.9), "max": ordered[-1]}

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"chars": self._summary(self.chars)}
        if self.tokens:
            out["tokens"] = self._summary(self.tokens)
        return out


class Report:
    def __init__(self, rules: list[str]):
        self.rules = rules
        self.records_in = 0
        self.kept = 0
        self.rejected_by: Counter = Counter({rule: 0 for rule in rules})
        self.failed: Counter = Counter()  # every rule's rejections (differs from rejected_by with all_verdicts)
        self.domain_in: Counter = Counter()
        self.domain_kept: Counter = Counter()
        self.before = LengthStats()
        self.after = LengthStats()
        self.judge: dict[str, Any] | None = None  # the judge's counts, when one was asked (distill.filters.judge_requests)
        self.not_checkable: Counter = Counter()  # domain -> kept records no rule could check (general, no reference)

    def add(self, judged: Judged, verdicts: dict[str, dict[str, Any]], rejected_by: str | None) -> None:
        """One judged record (see distill.filters.worker), its merged verdicts and the rule charged."""
        self.records_in += 1
        self.domain_in[judged.domain] += 1
        self.before.add(judged.chars, judged.tokens)
        for name, verdict in verdicts.items():
            if not verdict["passed"]:
                self.failed[name] += 1
        if rejected_by is None:
            if verdicts.get("correctness", {}).get("reason", "").startswith("not checkable"):
                self.not_checkable[judged.domain] += 1
            self.kept += 1
            self.domain_kept[judged.domain] += 1
            self.after.add(judged.chars, judged.tokens)
        else:
            self.rejected_by[rejected_by] += 1

    def drop(self, domain: str, by: str) -> None:
        """A record the rules kept that selection dropped (distill.filters.selection); `after` is rebuilt by the caller."""
        self.kept -= 1
        self.domain_kept[domain] -= 1
        self.rejected_by[by] += 1

    def as_dict(self, **extra: Any) -> dict[str, Any]:
        return {
            "records_in": self.records_in,
            "kept": self.kept,
            "rejected": self.records_in - self.kept,
            "kept_fraction": round(self.kept / self.records_in, 4) if self.records_in else 0.0,
            "rejected_by": dict(self.rejected_by),
            "failed_by_rule": dict(self.failed),
            "domains": {
                domain: {"in": n, "kept": self.domain_kept[domain], "kept_fraction": round(self.domain_kept[domain] / n, 4)}
                for domain, n in sorted(self.domain_in.items())
            },
            "not_checkable": {"kept": sum(self.not_checkable.values()), "domains": dict(self.not_checkable)},
            "length_before": self.before.summary(),
            "length_after": self.after.summary(),
            **({"judge": self.judge} if self.judge else {}),
            **extra,
        }


def print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    table = Table(title=f"filter: {report['kept']} of {report['records_in']} kept ({100 * report['kept_fraction']:.1f}%)")
    table.add_column("rule")
    table.add_column("rejected (first)", justify="right")
    table.add_column("failed (any)", justify="right")
    for rule, count in report["rejected_by"].items():
        table.add_row(rule, str(count), str(report["failed_by_rule"].get(rule, 0)))
    console.print(table)
    domains = Table(title="by domain")
    for column in ("domain", "in", "kept", "kept %"):
        domains.add_column(column, justify="left" if column == "domain" else "right")
    for domain, row in report["domains"].items():
        domains.add_row(domain, str(row["in"]), str(row["kept"]), f"{100 * row['kept_fraction']:.1f}")
    console.print(domains)
    unchecked = (report.get("not_checkable") or {}).get("kept")
    if unchecked:
        console.print(f"{unchecked:,} kept records are not checkable ({', '.join(f'{d} {n:,}' for d, n in report['not_checkable']['domains'].items())}: "
                      "no reference answer, a domain no rule checks); a judge (--judge-model) decides them")
    lengths = Table(title="completion length (chars)")
    for column in ("", "mean", "p50", "p90", "max"):
        lengths.add_column(column, justify="right")
    for label in ("before", "after"):
        stats = (report[f"length_{label}"] or {}).get("chars")
        lengths.add_row(label, *([str(stats[k]) for k in ("mean", "p50", "p90", "max")] if stats else ["-"] * 4))
    console.print(lengths)
    if report.get("selection"):
        sel = report["selection"]
        saved = f"{sel['tokens_saved']:,} tokens saved, mean {sel['mean_tokens_before']} -> {sel['mean_tokens_after']} per sample" \
            if sel["tokens_saved"] is not None else f"{sel['chars_saved']:,} characters saved"
        console.print(f"selection (pass rate in [{sel['pass_rate_min']:g}, {sel['pass_rate_max']:g}], per prompt {sel['per_prompt'] or 'all'}, "
                      f"{sel['select']}): {sel['before']:,} -> {sel['after']:,} samples, {saved}")
    if report.get("logprobs"):
        side = report["logprobs"]
        console.print(f"log-probabilities of the {side['records']:,} kept records ({side['tokens']:,} tokens) in {side['file']}")
    if report.get("prompt_stats"):
        stats = report["prompt_stats"]
        console.print(f"per-prompt statistics of {stats['prompts']:,} prompts ({stats['always_solved']:,} always solved, "
                      f"{stats['never_solved']:,} never solved) in {stats['file']}")
    if report.get("judge"):
        print_judge(console, report["judge"])


def print_judge(console, judge: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"judge: {judge['model']}, policy {judge['policy']}", min_width=48)
    table.add_column("")
    table.add_column("count", justify="right")
    for label in ("records_judged", "correct", "incorrect", "undecided", "prompts", "asked", "from_cache", "retries"):
        table.add_row(label.replace("_", " "), str(judge[label]))
    if judge.get("prompt_tokens") is not None:
        table.add_row("tokens: prompt / completion", f"{judge['prompt_tokens']:,} / {judge['completion_tokens']:,}")
    if judge.get("cost") is not None:
        from distill.core.cost import money_text

        table.add_row("cost (at --judge-price-in/out)", money_text(judge["cost"]))
    if judge.get("replies_without_usage"):  # so that a 0 is never read as free
        table.add_row("replies the endpoint did not count (not in the figures)", str(judge["replies_without_usage"]))
    audit = judge["audit"]
    if audit["records"]:
        share = "-" if audit["agreement"] is None else f"{100 * audit['agreement']:.1f}%"
        table.add_row("audit: rule-decided records judged", str(audit["records"]))
        table.add_row("audit: agree / disagree / undecided", f"{audit['agree']} / {audit['disagree']} / {audit['undecided']}")
        table.add_row("audit: rule/judge agreement", share)
    console.print(table)
    differ = audit.get("disagreements") or []
    if differ:
        shown = ", ".join(f"{d['id']} (rules {d['rules']}, judge {d['judge']})" for d in differ[:10])
        console.print(f"audit disagreements: {shown}" + (f" and {len(differ) - 10} more" if len(differ) > 10 else "")
                      + " (all in the report's judge.audit.disagreements; each record's verdicts.judge says the judge's view)")
