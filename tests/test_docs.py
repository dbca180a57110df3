"""The README and docs/ name only commands and flags the CLI has, and link only to files that exist.

Every `distill COMMAND ...` line in a code block (continuation lines joined) and in inline code is checked against
the click command typer builds from `cli.app`: the command must exist and each flag must be one of its options
(aliases included), so a renamed flag cannot leave stale documentation. `accelerate launch ... -m cli COMMAND` lines
are checked the same way. Building the command imports no heavy library (cli.py imports the stages lazily).
"""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# A shell line is split into its commands; each is read after a `$ ` prompt, environment assignments and `time`/`nice`.
# A command is `distill COMMAND` or `... -m cli COMMAND`, the command word followed by a space or the end, so rich
# output ("distill train: qwen-1.5b") and prose ("files distill did not write") are not read as command lines.
SEPARATORS = re.compile(r"\s*(?:;|&&|\|\||\||&(?!\S)|(?:^|\s)\(|\bdo\b|\bthen\b)\s*")
PREFIX = re.compile(r"^(?:\$\s+)?(?:[A-Za-z_]\w*=\S*\s+)*(?:(?:time|exec|nice(?:\s+-n\s*\d+)?)\s+)?")
COMMAND = re.compile(r"^(?:(?:\S*/)?distill|(?:\S+\s+)*?-m cli)\s+([a-z][a-z0-9-]*)(?=\s|$)")
FLAG = re.compile(r"^--?[A-Za-z][\w-]*$")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
INLINE = re.compile(r"(?<!`)`([^`]+)`(?!`)")


@cache
def cli_flags() -> dict[str, set[str]]:
    """Each command's name -> every option string it accepts (aliases and --no-X forms included)."""
    import cli

    group = typer.main.get_command(cli.app)
    common = {"--help", "-h"}
    return {name: common | {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}
            for name, command in group.commands.items()}


def command_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) of every candidate command: code-block lines (a trailing backslash joins the next
    line) and inline code spans outside code blocks (a span may wrap onto the next line of its paragraph)."""
    found, fence, pending, start, prose = [], None, "", 0, []
    for number, line in enumerate(text.splitlines(), 1):
        mark = FENCE.match(line)
        if mark and (fence is None or (mark.group(1)[0] == fence[0] and len(mark.group(1)) >= len(fence)
                                       and not line.strip()[len(mark.group(1)):])):
            fence = mark.group(1) if fence is None else None
            continue
        if fence is not None:
            if not pending:
                start = number
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            found.append((start, pending + line))
            pending = ""
        else:
            prose.append((number, line))
    found += [(first + text.count("\n", 0, span.start()), span.group(1).replace("\n", " "))
              for first, text in paragraphs(prose) for span in INLINE.finditer(text)]
    return found


def paragraphs(numbered: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Runs of consecutive non-blank lines, joined: (first line number, text)."""
    found, last = [], None
    for number, line in numbered:
        if not line.strip():
            last = None
            continue
        if last is not None and number == last + 1:
            found[-1] = (found[-1][0], found[-1][1] + "\n" + line)
        else:
            found.append((number, line))
        last = number
    return found


def stale(text: str, where: str) -> list[str]:
    """'FILE:LINE: problem: the line' for each command line naming a command or flag the CLI lacks."""
    flags, problems = cli_flags(), []
    for number, line in command_lines(text):
        for segment in SEPARATORS.split(line):
            segment = PREFIX.sub("", segment.strip())
            match = COMMAND.match(segment)
            if not match:
                continue
            name = match.group(1)
            if name not in flags:
                problems.append(f"{where}:{number}: no command '{name}': {line.strip()}")
                continue
            rest = re.split(r"\s#", segment[match.end():])[0]  # up to a comment
            try:
                words = shlex.split(rest)
            except ValueError:  # an unbalanced quote in prose
                words = rest.split()
            for word in words:
                option = word.strip("[]").split("=")[0]
                if FLAG.match(option) and option not in flags[name]:
                    problems.append(f"{where}:{number}: 'distill {name}' has no flag {option}: {line.strip()}")
    return problems


def test_every_documented_command_line_names_flags_the_cli_has():
    problems = [p for path in DOCS for p in stale(path.read_text(), str(path.relative_to(ROOT)))]
    assert not problems, "stale command lines:\n" + "\n".join(problems)


def test_a_stale_flag_or_command_is_reported_with_file_and_line():
    text = ("Run it:\n\n```bash\ndistill filter t.jsonl -o kept.jsonl \\\n    --max-lenght 5   # typo\n```\n\n"
            "Then `distill trian --data kept.jsonl`, or `distill train\n--max-length 8192` (an alias), then `distill eval m\n"
            "--samples 4`.\n")
    assert stale(text, "x.md") == [
        "x.md:4: 'distill filter' has no flag --max-lenght: distill filter t.jsonl -o kept.jsonl      --max-lenght 5   # typo",
        "x.md:8: no command 'trian': distill trian --data kept.jsonl",
        "x.md:9: 'distill eval' has no flag --samples: distill eval m --samples 4",
    ]


def test_command_lines_skip_output_and_comments():
    text = ("```\n$ distill train --student s --data d -o r   # --not-a-flag in a comment\n"
            "              distill train: qwen-1.5b (full)\n"
            "CUDA_VISIBLE_DEVICES=0 distill generate p.jsonl -o t.jsonl --tp 2 &\n```\n")
    assert stale(text, "x.md") == []
    assert stale(text.replace("--tp 2", "--tq 2"), "x.md") == [
        "x.md:4: 'distill generate' has no flag --tq: CUDA_VISIBLE_DEVICES=0 distill generate p.jsonl -o t.jsonl --tq 2 &"]


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def relative_links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every markdown link outside code that is not a URL or an anchor."""
    prose, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        mark = FENCE.match(line)
        if mark:
            fence = mark.group(1) if fence is None else (None if line.strip() == fence else fence)
        elif fence is None:
            prose.append((number, line))
    return [(first + text.count("\n", 0, link.start()), link.group(1))
            for first, text in paragraphs(prose)
            for link in LINK.finditer(INLINE.sub(lambda span: "\n" * span.group().count("\n"), text))
            if not re.match(r"^(?:[a-z][a-z+.-]*:|#)", link.group(1))]


def test_relative_links_point_to_files_that_exist():
    missing = [f"{path.relative_to(ROOT)}:{number}: {target}"
               for path in DOCS for number, target in relative_links(path.read_text())
               if not (path.parent / target.split("#")[0]).exists()]
    assert not missing, "links to missing files:\n" + "\n".join(missing)


def test_the_readme_is_a_door():
    """The README stays short; its commands table links every command's page in docs/."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 400
    pages = {target for _, target in relative_links(text) if target.startswith("docs/")}
    missing = [name for name in cli_flags() if f"docs/{name}.md" not in pages]
    assert not missing, f"commands without a docs page linked from the README: {missing}"
