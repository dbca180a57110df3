"""The eval stage's tables: Markdown for model cards and READMEs, rich for the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def markdown_table(summaries: list[dict[str, Any]]) -> str:
    """The evaluation table for model cards and READMEs, from one or more summary.json documents."""
    ks = {b.get("k", s["k"]) for s in summaries for b in s["benchmarks"].values()}
    k = ks.pop() if len(ks) == 1 else "k"
    several = len({s["model"] for s in summaries}) > 1
    head = (["model"] if several else []) + ["benchmark", "problems", "pass@1", f"cons@{k}", f"pass@{k}", "mean tokens"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for summary in summaries:
        for name, b in summary["benchmarks"].items():
            kk = b.get("k", summary["k"])
            cells = ([Path(summary["model"]).name] if several else []) + [
                name,
                str(b["problems"]),
                f"{100 * b['pass@1']:.1f} ± {100 * b['pass@1_stderr']:.1f}",
                f"{100 * b[f'cons@{kk}']:.1f}",
                f"{100 * b[f'pass@{kk}']:.1f}",
                f"{b['mean_tokens']:.0f}" if b.get("mean_tokens") is not None else "-",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    speed = f", {summary['tokens_per_s']:.0f} tokens/s" if summary.get("tokens_per_s") else ""
    table = Table(title=f"{summary['model']}: T={summary['temperature']}, top_p={summary['top_p']}{speed}")
    for column in ("benchmark", "problems", "k", "pass@1", "cons@k", "pass@k", "no answer", "truncated", "mean tokens"):
        table.add_column(column, justify="left" if column == "benchmark" else "right")
    for name, b in summary["benchmarks"].items():
        k = b.get("k", summary["k"])
        table.add_row(
            name,
            str(b["problems"]),
            str(k),
            f"{100 * b['pass@1']:.1f} ± {100 * b['pass@1_stderr']:.1f}",
            f"{100 * b[f'cons@{k}']:.1f}",
            f"{100 * b[f'pass@{k}']:.1f}",
            f"{100 * b['no_answer']:.1f}%",
            f"{100 * b['truncated']:.1f}%",
            f"{b['mean_tokens']:.0f}" if b.get("mean_tokens") is not None else "-",
        )
    Console(stderr=True).print(table)
