"""`distill inspect`: records as a person wants to read them, and a summary of the file.

One streaming pass: the summary (counts, verdicts, domains, languages, lengths) is counted as
records go by, and the records to show are picked on the way (by id, by rejecting rule, or a
seeded reservoir sample), so a file of any size can be inspected.
"""

from __future__ import annotations

import json
import random
from collections import Counter

from pydantic import ConfigDict, Field, field_validator
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from distill.core.r1_format import DELIMITER_PRESETS, split_completion
from distill.core.records import Trace
from distill.core.trace_layout import TraceLayout, read_traces
from distill.core.verify import extract_answer
from distill.filters.report import LengthStats
from distill.filters.rules.language import LanguageOptions, target_language

FOLD_CHARS = 500  # head and tail of the reasoning shown when folded


class InspectConfig(TraceLayout):
    """`distill inspect`: which records to show, and how."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(description="Records to look at: kept, rejected or raw traces, a file or a hub id (hf:owner/name), in the --preset layout.")
    id: str | None = Field(default=None, description="Show the record with this id (or problem_id).")
    rejected_by: str | None = Field(default=None, description="Only records rejected by this rule.")
    sample: int | None = Field(default=None, ge=1, description="Show K records picked at random (seed 0).")
    full: bool = Field(default=False, description="Show the whole reasoning instead of its head and tail.")

    @field_validator("rejected_by")
    @classmethod
    def _known_rule(cls, value: str | None) -> str | None:
        from distill.filters.registry import RULES, ordered

        ordered()  # the registry is filled on first use
        if value is not None and value not in RULES:
            raise ValueError(f"unknown rule '{value}' (rules are {', '.join(RULES)})")
        return value


def _reasoning(text: str, full: bool) -> Text:
    if full or len(text) <= 2 * FOLD_CHARS:
        return Text(text, style="dim")
    out = Text(text[:FOLD_CHARS], style="dim")
    out.append(f"\n\n  … {len(text) - 2 * FOLD_CHARS} characters folded (--full shows them) …\n\n", style="italic yellow")
    out.append(text[-FOLD_CHARS:], style="dim")
    return out


def _short(value, limit: int = 60) -> str:
    text = " ".join((value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render(trace: Trace, delimiters: str = "r1", full: bool = False) -> Panel:
    """One record as a panel: problem, reasoning (dimmed, folded), final answer, reference, verdicts."""
    d = DELIMITER_PRESETS[delimiters]
    parts = split_completion(trace.completion, d)
    status = "[green]kept[/]" if trace.rejected_by is None and trace.verdicts else (
        f"[red]rejected by {trace.rejected_by}[/]: {trace.reason}" if trace.rejected_by else "[dim]not filtered[/]"
    )
    items: list = [
        Text("Problem", style="bold cyan"), Text(trace.problem),
        Text(f"\nReasoning ({len(parts.reasoning)} chars)", style="bold cyan"), _reasoning(parts.reasoning, full),
        Text("\nFinal answer", style="bold cyan"), Text(parts.answer or "(none)"),
        Text.from_markup(f"\n[bold]extracted:[/] {extract_answer(trace.completion, d, reference=trace.answer)}    [bold]reference:[/] {trace.answer}"),
    ]
    if trace.model_extra:  # the input's own columns, carried unchanged (prior verdicts among them)
        carried = ", ".join(f"{name}={_short(value)}" for name, value in trace.model_extra.items())
        items.append(Text.assemble(("carried: ", "bold"), carried))
    if trace.verdicts:
        table = Table(show_header=True, header_style="bold", expand=False)
        for column in ("rule", "verdict", "reason"):
            table.add_column(column)
        for name, verdict in trace.verdicts.items():
            table.add_row(name, "[green]pass[/]" if verdict.passed else "[red]fail[/]", verdict.reason)
        items += [Text(""), table]
    title = f"{trace.id}  [dim]{trace.domain}[/]  {status}"
    return Panel(Group(*items), title=title, title_align="left")


def inspect(config: InspectConfig, console: Console | None = None) -> dict:
    """Print the chosen records and the file summary; returns the summary as a dict."""
    console = console or Console()
    path, record_id, rejected_by, sample = config.file, config.id, config.rejected_by, config.sample
    delimiters, full = config.delimiters, config.full
    rng = random.Random(0)
    chosen: list[Trace] = []
    seen_matching = 0
    counts: Counter = Counter()
    domains: Counter = Counter()
    languages: Counter = Counter()
    lengths = LengthStats()
    options = LanguageOptions(same_script=False)
    for trace in read_traces(path, config):
        counts["records"] += 1
        counts["kept" if trace.verdicts and not trace.rejected_by else f"rejected by {trace.rejected_by}" if trace.rejected_by else "not filtered"] += 1
        domains[trace.domain] += 1
        languages[trace.language or target_language(trace, options)] += 1
        lengths.add(len(trace.completion), trace.completion_tokens)
        if record_id is not None and record_id not in (trace.id, trace.problem_id):
            continue
        if rejected_by is not None and trace.rejected_by != rejected_by:
            continue
        seen_matching += 1
        if sample:  # reservoir sampling: a uniform pick without holding the file
            if len(chosen) < sample:
                chosen.append(trace)
            elif (slot := rng.randrange(seen_matching)) < sample:
                chosen[slot] = trace
        elif len(chosen) < (3 if record_id is None else 10):
            chosen.append(trace)
    for trace in chosen:
        console.print(render(trace, delimiters, full))
    if (record_id or rejected_by) and not chosen:
        console.print("[yellow]no record matches[/]")
    summary = {"counts": dict(counts), "domains": dict(domains), "languages": dict(languages), "length": lengths.summary()}
    table = Table(title=f"{path}: {counts['records']} records")
    table.add_column("")
    table.add_column("value")
    for key, value in counts.items():
        if key != "records":
            table.add_row(key, str(value))
    table.add_row("domains", ", ".join(f"{k} {v}" for k, v in domains.most_common()))
    table.add_row("languages", ", ".join(f"{k} {v}" for k, v in languages.most_common()))
    chars = summary["length"]["chars"]
    table.add_row("length (chars)", f"mean {chars['mean']}, p50 {chars['p50']}, p90 {chars['p90']}, max {chars['max']}")
    if "tokens" in summary["length"]:
        tokens = summary["length"]["tokens"]
        table.add_row("length (tokens)", f"mean {tokens['mean']}, p50 {tokens['p50']}, p90 {tokens['p90']}, max {tokens['max']}")
    console.print(table)
    return summary
