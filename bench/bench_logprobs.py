"""What recording the teacher's log-probabilities costs on disk, and reading them back for training.

Input: a trace file written by `distill generate --logprobs K` (its .logprobs side file beside it).
For the same recorded data, bytes per generated token:
- side file: this project's format (distill/core/logprobs.py: int32 ids, float16 log-probabilities);
- JSON in the trace line: the same numbers as JSON (ids and log-probabilities rounded to 4 decimals),
  the compact form a tool writing them into each record would use;
- OpenAI JSON: as an OpenAI-compatible server sends them (chat `logprobs.content`, vLLM's
  `token_id:N` tokens, full float precision), what storing the response would cost;
and the trace JSONL itself per token, for scale. Then the read speed: every frame decoded.

    python bench/bench_logprobs.py runs/x/traces.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from distill.core import logprobs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("traces", type=Path)
    args = parser.parse_args()
    index = logprobs.scan(logprobs.side_path(args.traces))
    if not index.frames:
        sys.exit(f"{args.traces}: no log-probabilities beside it (generate with --logprobs K)")
    started = time.perf_counter()
    recorded = [index.read(record_id) for record_id in index.frames]
    read_s = time.perf_counter() - started
    tokens = compact = openai = 0
    k = recorded[0].k
    for lp in recorded:
        tokens += len(lp)
        ids, lps, top_ids, top_lps = lp.ids.tolist(), lp.logprob.astype(float).tolist(), lp.top_ids.tolist(), lp.top_logprobs.astype(float).tolist()
        compact += len(json.dumps({"logprobs": {"ids": ids, "logprob": [round(x, 4) for x in lps], "top_ids": top_ids,
                                                "top_logprobs": [[round(x, 4) for x in row] for row in top_lps]}}, separators=(",", ":")))
        openai += len(json.dumps({"content": [
            {"token": f"token_id:{i}", "logprob": p, "top_logprobs": [{"token": f"token_id:{t}", "logprob": q} for t, q in zip(ti, tl, strict=True)]}
            for i, p, ti, tl in zip(ids, lps, top_ids, top_lps, strict=True)]}))
    side_bytes = index.path.stat().st_size
    table = Table(title=f"{args.traces.name}: {len(index.frames):,} samples, {tokens:,} generated tokens, top-{k}")
    for column in ("stored as", "bytes per token", "vs side file"):
        table.add_column(column, justify="left" if column == "stored as" else "right")
    for name, size in (("side file (int32 + float16)", side_bytes), ("JSON in the trace line (4 decimals)", compact),
                       ("OpenAI response JSON", openai), ("the trace JSONL itself (text)", args.traces.stat().st_size)):
        table.add_row(name, f"{size / tokens:.1f}", f"{size / side_bytes:.2f}x")
    console = Console()
    console.print(table)
    console.print(f"reading every frame back (checksums, arrays): {tokens / read_s:,.0f} tokens/s")


if __name__ == "__main__":
    main()
